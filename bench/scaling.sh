#!/usr/bin/env bash
# Server CPU per forwarded message as conversations are added: runs the bench's pairs scenario
# against a fresh p2pchat relay with P = 1, 10, 100, 1000 conversations and the same total number
# of messages, and prints CPU nanoseconds per message for each P. Loopback only; stops the relay
# it starts. The relay keeps history in a fresh directory (which also holds its certificate),
# deleted on exit. By default relay and bench speak TLS and the bench seals messages end to
# end, up to BATCH (default 64) per envelope, one frame each: the figures are per message, and
# per frame in the last column. At most 2,000 connections, so the TLS handshakes cost little.
# The relay runs without its rate limit and per-address cap (--max-rate 0 --max-per-ip 0): the
# bench sends at full speed from one address.
#
#   bench/scaling.sh                 1,000,000 messages per point
#   TOTAL=200000 bench/scaling.sh    a quicker run
#   HISTORY=0 bench/scaling.sh       the relay with --no-history
#   PLAINTEXT=1 bench/scaling.sh     relay and bench with --plaintext
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
relay_options=(--data-dir "$data" --max-rate 0 --max-per-ip 0)
bench_options=(--batch "${BATCH:-64}")
[ "${HISTORY:-1}" = 0 ] && relay_options+=(--no-history)
if [ "${PLAINTEXT:-0}" = 1 ]; then
  relay_options+=(--plaintext)
  bench_options=(--plaintext)
fi
"$P2PCHAT" server 127.0.0.1 0 "${relay_options[@]}" 2>"$log" &
relay=$!
trap 'kill "$relay" 2>/dev/null || true; wait "$relay" 2>/dev/null || true; rm -rf "$log" "$data"' EXIT
port=
for _ in $(seq 1 100); do
  port=$(grep -o 'started on 127.0.0.1:[0-9]*' "$log" | cut -d: -f2 || true)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "scaling: the relay did not start" >&2; exit 1; }
printf '%-14s %14s %12s %16s %16s  %s\n' conversations "msgs/s" "server CPU" "CPU ns/message" \
  "CPU ns/frame" security
for pairs in 1 10 100 1000; do
  per_pair=$((TOTAL / pairs))
  "$P2PCHAT" bench --port "$port" --server-pid "$relay" "${bench_options[@]}" --pairs "$pairs" \
    --per-pair "$per_pair" --json pairs 2>/dev/null |
    python3 -c '
import json, sys
r = json.loads(sys.stdin.readline())
rate, frames, cpu, pairs = r["msgs_per_sec"], r["frames_per_sec"], r["server_cpu"], r["pairs"]
security = r["security"]
print(f"{pairs:<14} {rate:>14,.0f} {cpu:>12.2f} {cpu / rate * 1e9:>16.1f} {cpu / frames * 1e9:>16.1f}"
      f"  {security}")'
  sleep 0.3
done
