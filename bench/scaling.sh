#!/usr/bin/env bash
# Server CPU per forwarded message as conversations are added: runs the bench's pairs scenario
# against a fresh p2pchat relay with P = 1, 10, 100, 1000 conversations and the same total number
# of messages, and prints CPU nanoseconds per message for each P. Loopback only; stops the relay
# it starts. The relay keeps history in a fresh directory, deleted on exit.
#
#   bench/scaling.sh                 1,000,000 messages per point
#   TOTAL=200000 bench/scaling.sh    a quicker run
#   HISTORY=0 bench/scaling.sh       the relay with --no-history
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${TOTAL:-1000000}
P2PCHAT=${P2PCHAT:-}
if [ -z "$P2PCHAT" ]; then
  cargo build --release -q </dev/null
  P2PCHAT=${CARGO_TARGET_DIR:-target}/release/p2pchat
fi
log=$(mktemp)
data=$(mktemp -d)
if [ "${HISTORY:-1}" = 0 ]; then
  history=(--no-history)
else
  history=(--data-dir "$data")
fi
"$P2PCHAT" server 127.0.0.1 0 "${history[@]}" 2>"$log" &
relay=$!
trap 'kill "$relay" 2>/dev/null || true; wait "$relay" 2>/dev/null || true; rm -rf "$log" "$data"' EXIT
port=
for _ in $(seq 1 100); do
  port=$(grep -o 'started on 127.0.0.1:[0-9]*' "$log" | cut -d: -f2 || true)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "scaling: the relay did not start" >&2; exit 1; }
printf '%-14s %14s %12s %16s\n' conversations "msgs/s" "server CPU" "CPU ns/message"
for pairs in 1 10 100 1000; do
  per_pair=$((TOTAL / pairs))
  "$P2PCHAT" bench --port "$port" --server-pid "$relay" --pairs "$pairs" --per-pair "$per_pair" \
    --json pairs 2>/dev/null |
    python3 -c '
import json, sys
r = json.loads(sys.stdin.readline())
rate, cpu, pairs = r["msgs_per_sec"], r["server_cpu"], r["pairs"]
print(f"{pairs:<14} {rate:>14,.0f} {cpu:>12.2f} {cpu / rate * 1e9:>16.1f}")'
  sleep 0.3
done
