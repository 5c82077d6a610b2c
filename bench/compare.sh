#!/usr/bin/env bash
# Compares the p2pchat relay with the same traffic through a pure byte relay (splice), a direct
# connection (no server), Redis pub/sub and NATS, on this machine, over loopback only, and prints
# one table: throughput, latency and many-pairs figures per target, plus p2pchat/splice and
# p2pchat/nats ratios.
#
#   bench/compare.sh                      the comparison (bench defaults: see MESSAGES etc.)
#   QUICK=1 bench/compare.sh              a quick run with small counts
#   LONG=1 REPEAT=3 bench/compare.sh      10x the messages, median of 3 runs (steadier figures)
#   bench/compare.sh --connections 10000  only the connections scenario, on a fresh relay
#   CONNECTIONS=10000 bench/compare.sh    the comparison, then the connections scenario
#
# Environment: MESSAGES (throughput), TRIPS (latency), PAIRS and PER_PAIR (pairs), SIZE (payload
# bytes), REPEAT (runs per target; the table shows medians), CONNECTIONS, TIMEOUT (seconds per
# scenario), TARGETS (default
# "direct splice p2pchat redis nats"), OUT (directory for logs and JSON; default a new
# /tmp/p2pchat-compare.*), P2PCHAT (the p2pchat binary; default: built here in release),
# BENCH_BIN (the binary providing `bench` and `bench-splice`; default: P2PCHAT), RELAY_ARGS
# (extra `p2pchat server` options). Installs redis-server and nats-server with apt-get if
# missing. Stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=compare
if [ "${1:-}" = "--connections" ]; then
  [ -n "${2:-}" ] || { echo "usage: $0 [--connections N]" >&2; exit 2; }
  mode=connections
  CONNECTIONS=$2
elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--connections N]" >&2
  exit 2
fi

if [ "${QUICK:-0}" = 1 ]; then
  : "${MESSAGES:=20000}" "${TRIPS:=1000}" "${PAIRS:=100}" "${PER_PAIR:=100}"
fi
if [ "${LONG:-0}" = 1 ]; then
  : "${MESSAGES:=2000000}" "${PER_PAIR:=10000}"
fi
MESSAGES=${MESSAGES:-200000}
TRIPS=${TRIPS:-10000}
PAIRS=${PAIRS:-1000}
PER_PAIR=${PER_PAIR:-1000}
SIZE=${SIZE:-64}
TIMEOUT=${TIMEOUT:-120}
REPEAT=${REPEAT:-1}
TARGETS=${TARGETS:-direct splice p2pchat redis nats}
OUT=${OUT:-$(mktemp -d /tmp/p2pchat-compare.XXXXXX)}
mkdir -p "$OUT"

have() { command -v "$1" >/dev/null 2>&1; }
apt_updated=false
apt_install() {
  have apt-get || { echo "compare: cannot install $* (no apt-get)" >&2; return 1; }
  if [ "$apt_updated" = false ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" </dev/null
}
wants() { [[ " $TARGETS " == *" $1 "* ]]; }

have python3 || apt_install python3
if [ "$mode" = compare ]; then
  if wants redis && ! have redis-server; then apt_install redis-server; fi
  if wants nats && ! have nats-server; then
    # Debian installs it in /usr/sbin, which may not be on PATH.
    [ -x /usr/sbin/nats-server ] || apt_install nats-server
  fi
fi
nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)

if [ -z "${P2PCHAT:-}" ]; then
  echo "compare: building p2pchat (release)" >&2
  cargo build --release -q </dev/null
  P2PCHAT=${CARGO_TARGET_DIR:-target}/release/p2pchat
fi
BENCH_BIN=${BENCH_BIN:-$P2PCHAT}

# --- servers: started one at a time, stopped on exit ---
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits until something accepts on 127.0.0.1:$1, or fails after 10 s.
wait_port() {
  local _
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "compare: nothing is listening on port $1 after 10 s" >&2
  return 1
}
# Waits until file $1 has a line matching the regex $2 and prints the port after its last ':'.
port_from_log() {
  local _ line
  for _ in $(seq 100); do
    line=$(grep -aoE "$2" "$1" 2>/dev/null | head -n 1 || true)
    if [ -n "$line" ]; then
      echo "${line##*:}"
      return 0
    fi
    sleep 0.1
  done
  echo "compare: no '$2' line in $1 after 10 s:" >&2
  cat "$1" >&2
  return 1
}

# start_server TARGET: sets server_pid and server_port (both empty for direct).
start_server() {
  server_pid='' server_port=''
  case $1 in
    direct) return 0 ;;
    p2pchat)
      # Default logging: the port is in the INFO line `🚀 Chat server started on HOST:PORT`.
      # shellcheck disable=SC2086
      "$P2PCHAT" server 127.0.0.1 0 ${RELAY_ARGS:-} >"$OUT/relay.log" 2>&1 &
      server_pid=$!
      pids+=("$server_pid")
      server_port=$(port_from_log "$OUT/relay.log" 'Chat server started on [^ ]*:[0-9]+')
      ;;
    splice)
      "$BENCH_BIN" bench-splice 127.0.0.1 0 >"$OUT/splice.log" 2>&1 &
      server_pid=$!
      pids+=("$server_pid")
      server_port=$(port_from_log "$OUT/splice.log" 'splice relay listening on [^ ]*:[0-9]+')
      ;;
    redis)
      server_port=$(free_port)
      # No pub/sub output limit: by default Redis drops a subscriber more than 32 MB behind,
      # which large SIZE runs reach (p2pchat and NATS slow the sender or buffer instead).
      redis-server --port "$server_port" --bind 127.0.0.1 --save '' --appendonly no \
        --protected-mode no --daemonize no --client-output-buffer-limit 'pubsub 0 0 0' \
        >"$OUT/redis.log" 2>&1 &
      server_pid=$!
      pids+=("$server_pid")
      wait_port "$server_port"
      ;;
    nats)
      server_port=$(free_port)
      "$nats_bin" -a 127.0.0.1 -p "$server_port" >"$OUT/nats.log" 2>&1 &
      server_pid=$!
      pids+=("$server_pid")
      wait_port "$server_port"
      ;;
    *) echo "compare: unknown target $1" >&2; return 1 ;;
  esac
}

# bench TARGET ARGS...: runs the bench against a freshly started server, JSON to stdout.
bench() {
  local target=$1
  shift
  start_server "$target"
  local where=()
  [ -n "$server_port" ] && where=(--port "$server_port" --server-pid "$server_pid")
  local status=0
  "$BENCH_BIN" bench --target "$target" "${where[@]}" --json --size "$SIZE" \
    --timeout "$TIMEOUT" "$@" 2>>"$OUT/$target.bench.log" || status=$?
  cleanup
  return "$status"
}

raise_open_files() {
  local need=$1 now
  now=$(ulimit -n)
  [ "$now" = unlimited ] && return 0
  if [ "$now" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    now=$(ulimit -n)
    if [ "$now" != unlimited ] && [ "$now" -lt "$need" ]; then
      echo "compare: the open-file limit is $now but about $need are needed; run as root or" \
        "raise it (ulimit -n $need, prlimit --nofile=$need)" >&2
    fi
  fi
}

run_connections() {
  local n=$1
  raise_open_files $((n * 2 + 1000))
  echo "compare: connections scenario, $n clients (logs in $OUT)" >&2
  bench p2pchat connections --connections "$n" >"$OUT/connections.jsonl"
  python3 - "$OUT/connections.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(f"connections: {d['connections']:,} idle p2pchat clients in {d['connect_seconds']:.2f} s "
          f"({d['connects_per_sec']:,.0f}/s); relay RSS {d['rss_before_kb']:,} -> {d['rss_after_kb']:,} KiB "
          f"= {d['bytes_per_connection']:,} bytes per connection; sample {d['sample_ok']}/{d['sample']} pairs OK; "
          f"bench CPU {d['bench_cpu']:.2f}, relay CPU {d['server_cpu']:.2f} cores while connecting")
EOF
}

if [ "$mode" = connections ]; then
  run_connections "$CONNECTIONS"
  exit 0
fi

results=$OUT/results.jsonl
: >"$results"
failed=()
for run in $(seq "$REPEAT"); do
  for target in $TARGETS; do
    echo "compare: run $run/$REPEAT: $target (throughput $MESSAGES, latency $TRIPS," \
      "pairs $PAIRS x $PER_PAIR)" >&2
    if ! bench "$target" throughput latency pairs --messages "$MESSAGES" --trips "$TRIPS" \
      --pairs "$PAIRS" --per-pair "$PER_PAIR" >>"$results"; then
      echo "compare: $target failed; see $OUT/$target.bench.log" >&2
      failed+=("$target")
    fi
  done
done

python3 - "$results" "$TARGETS" "$SIZE" <<'EOF'
import json, sys
results, targets, size = sys.argv[1], sys.argv[2].split(), sys.argv[3]
import statistics
runs = {}
for line in open(results):
    d = json.loads(line)
    runs.setdefault((d["scenario"], d["target"]), []).append(d)
# With REPEAT > 1, every figure is the median of the runs (low median for an even count).
data = {}
for key, ds in runs.items():
    merged = dict(ds[-1])
    for field, v in ds[-1].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = [d[field] for d in ds if isinstance(d.get(field), (int, float))]
            merged[field] = statistics.median_low(vals)
    noted = [d["notes"] for d in ds if d.get("notes")]
    merged["notes"] = noted[0] if noted else []
    if noted and len(ds) > 1:
        merged["notes"] = [f"{n} ({len(noted)} of {len(ds)} runs)" for n in noted[0]]
    data[key] = merged
repeat = max(len(ds) for ds in runs.values()) if runs else 0
rows = [
    ("throughput msgs/s", "throughput", "msgs_per_sec", 0),
    ("throughput MB/s", "throughput", "mb_per_sec", 1),
    ("throughput bench CPU", "throughput", "bench_cpu", 2),
    ("throughput server CPU", "throughput", "server_cpu", 2),
    ("latency p50 µs", "latency", "p50_us", 1),
    ("latency p90 µs", "latency", "p90_us", 1),
    ("latency p99 µs", "latency", "p99_us", 1),
    ("latency max µs", "latency", "max_us", 1),
    ("pairs msgs/s", "pairs", "msgs_per_sec", 0),
    ("pairs connect s", "pairs", "connect_seconds", 3),
    ("pairs server RSS MiB", "pairs", "server_rss_kb", -1),
    ("pairs server peak MiB", "pairs", "server_peak_rss_kb", -1),
    ("pairs bench CPU", "pairs", "bench_cpu", 2),
    ("pairs server CPU", "pairs", "server_cpu", 2),
]
def value(scenario, target, key):
    v = data.get((scenario, target), {}).get(key)
    if v is not None and key.endswith("_kb"):
        v = v / 1024
    return v
def show(v, decimals):
    if v is None:
        return "-"
    if decimals == -1:
        decimals = 1
    return f"{v:,.{decimals}f}"
def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}"
header = ["metric"] + targets + ["p2p/splice", "p2p/nats"]
table = [header]
for label, scenario, key, decimals in rows:
    values = [value(scenario, t, key) for t in targets]
    p2p = value(scenario, "p2pchat", key)
    table.append([label] + [show(v, decimals) for v in values]
                 + [ratio(p2p, value(scenario, "splice", key)), ratio(p2p, value(scenario, "nats", key))])
widths = [max(len(row[i]) for row in table) for i in range(len(header))]
def fmt(row):
    return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
if repeat > 1:
    print(f"medians of {repeat} runs; ", end="")
print(f"payload {size} B; CPU in cores used; ratios are p2pchat / other (for msgs/s above 1 is better, "
      f"for µs, seconds and MiB below 1 is better)")
print(fmt(table[0]))
print("  ".join("-" * w for w in widths))
for row in table[1:]:
    print(fmt(row))
notes = [f"{t} {s}: {n}" for (s, t), d in sorted(data.items()) for n in d.get("notes", [])]
if notes:
    print()
    for note in notes:
        print("note:", note)
EOF
echo "compare: JSON results and logs in $OUT" >&2

if [ -n "${CONNECTIONS:-}" ]; then
  run_connections "$CONNECTIONS"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "compare: failed: ${failed[*]}" >&2
  exit 1
fi
