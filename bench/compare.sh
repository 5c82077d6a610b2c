#!/usr/bin/env bash
# Compares the p2pchat relay with the same traffic through a pure byte relay (splice), a direct
# connection (no server), Redis pub/sub and NATS, on this machine, over loopback only, and prints
# one table: throughput, latency and many-pairs figures per target, plus ratios. p2pchat is
# measured twice in the same run:
# - p2pchat: with the product's full security, as it runs by default: TLS to the relay and
#   end-to-end encrypted message bodies (the bench seals up to BATCH queued messages per
#   envelope, one relay frame, as the client batches; rates count messages, not frames);
# - p2pchat-plain: the relay and the bench both with --plaintext (plain TCP, raw bodies).
# Each p2pchat server keeps history in a fresh --data-dir of its own (which also holds its
# self-signed certificate; the bench trusts it on first use in a temporary known-hosts file).
# Under the table, the issue's targets: encrypted one-pair throughput at least NATS's plaintext
# throughput, and encrypted latency p50 within 20% of p2pchat-plain's.
#
# Then two more tables:
# - history cost: the throughput scenario against the relay with history and with --no-history,
#   run alternately, encrypted and in plaintext, and the ratios of the receiver's rates (target:
#   at least 0.90, checked for the encrypted relay);
# - durable: the durable scenario (acks only once messages are on disk) against the relay with
#   history, encrypted (TLS + end-to-end; an ack covers a frame, i.e. all the messages of its
#   envelope), and against Redis Streams (XADD) on a redis-server of its own with
#   --appendonly yes --appendfsync always: acknowledged msgs/s at 1 and at 1,000 conversations
#   and ack latency at full load, then ack latency again with both servers paced at 10% of the
#   relay's peak (targets: 2x Redis Streams; p50 under 1 ms at 10%).
# - fanout: one sender and a room of R receivers (1, 10, 100, 1,000) on the relay (encrypted and
#   plaintext), Redis pub/sub and NATS: delivered msgs/s and the time to the last member's
#   receipt (target: at least NATS's delivered msgs/s at R = 10 and 100); see bench/fanout.sh.
#
#   bench/compare.sh                      the comparison (bench defaults: see MESSAGES etc.)
#   QUICK=1 bench/compare.sh              a quick run with small counts
#   LONG=1 REPEAT=3 bench/compare.sh      10x the messages, median of 3 runs (steadier figures)
#   bench/compare.sh --connections 10000  only the connections scenario, on a fresh relay
#   bench/compare.sh --fanout             only the fanout table (also FANOUT_ONLY=1 bench/compare.sh
#                                         or bench/fanout.sh; QUICK=1 works with each)
#   CONNECTIONS=10000 bench/compare.sh    the comparison, then the connections scenario
#
# Environment: MESSAGES (throughput), TRIPS (latency), PAIRS and PER_PAIR (pairs), SIZE (payload
# bytes), BATCH (most messages per end-to-end envelope, default 64; 1: one per message), REPEAT
# (runs per target; the table shows medians), CONNECTIONS, CONNECTIONS_KIND (p2pchat, the
# default, over TLS; or p2pchat-plain), TIMEOUT (seconds per scenario), TARGETS (default
# "direct splice p2pchat p2pchat-plain redis nats"), HISTORY_MESSAGES (history-cost throughput
# runs), DURABLE=0 (skip the history-cost and durable tables), DURABLE_PAIRS (conversation
# counts, default "1 1000"), DURABLE_MESSAGES (messages per durable run, in all) and
# DURABLE_MESSAGES_ONE (the same for one conversation, which runs much faster), IN_FLIGHT
# (unacknowledged messages with one conversation, default 1024), IN_FLIGHT_EACH (unacknowledged
# messages per conversation with several, pipelined, default 16), RATE_PERCENT (default 10) and
# RATE_SECONDS (length of a paced run, default 3), OUT (directory for logs and JSON; default a
# new /tmp/p2pchat-compare.*), P2PCHAT (the p2pchat binary; default: built here in release),
# BENCH_BIN (the binary providing `bench` and `bench-splice`; default: P2PCHAT), RELAY_LIMITS
# (the relay's abuse limits, default "--max-rate 0 --max-per-ip 0": no per-connection message
# rate limit and no per-address connection cap, since the bench sends at full speed and opens
# thousands of connections from one address; set it empty for a relay without these options),
# RELAY_ARGS (extra `p2pchat server` options), FANOUT=0 (skip the fanout table) and the FANOUT_*
# variables of bench/fanout.sh. Installs redis-server and nats-server with apt-get if missing.
# Stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: $0 [--connections N | --fanout]"
mode=compare
[ "${FANOUT_ONLY:-0}" = 1 ] && mode=fanout
if [ "${1:-}" = "--connections" ]; then
  [ -n "${2:-}" ] || { echo "$usage" >&2; exit 2; }
  mode=connections
  CONNECTIONS=$2
elif [ "${1:-}" = "--fanout" ] && [ -z "${2:-}" ]; then
  mode=fanout
elif [ -n "${1:-}" ]; then
  echo "$usage" >&2
  exit 2
fi

if [ "${QUICK:-0}" = 1 ]; then
  : "${MESSAGES:=20000}" "${TRIPS:=1000}" "${PAIRS:=100}" "${PER_PAIR:=100}"
  : "${HISTORY_MESSAGES:=200000}" "${DURABLE_MESSAGES:=20000}" "${DURABLE_MESSAGES_ONE:=200000}"
  : "${RATE_SECONDS:=1}"
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
TARGETS=${TARGETS:-direct splice p2pchat p2pchat-plain redis nats}
BATCH=${BATCH:-64}
RELAY_LIMITS=${RELAY_LIMITS---max-rate 0 --max-per-ip 0}
CONNECTIONS_KIND=${CONNECTIONS_KIND:-p2pchat}
HISTORY_MESSAGES=${HISTORY_MESSAGES:-1000000}
DURABLE=${DURABLE:-1}
DURABLE_PAIRS=${DURABLE_PAIRS:-1 1000}
DURABLE_MESSAGES=${DURABLE_MESSAGES:-200000}
DURABLE_MESSAGES_ONE=${DURABLE_MESSAGES_ONE:-1000000}
IN_FLIGHT=${IN_FLIGHT:-1024}
IN_FLIGHT_EACH=${IN_FLIGHT_EACH:-16}
# Unacknowledged messages in all for a durable run over $1 conversations.
in_flight_for() { if [ "$1" = 1 ]; then echo "$IN_FLIGHT"; else echo $(($1 * IN_FLIGHT_EACH)); fi; }
RATE_PERCENT=${RATE_PERCENT:-10}
RATE_SECONDS=${RATE_SECONDS:-3}
FANOUT=${FANOUT:-1}
OUT=${OUT:-$(mktemp -d /tmp/p2pchat-compare.XXXXXX)}
mkdir -p "$OUT"
# run_fanout and fanout_table, and the FANOUT_* settings.
# shellcheck source=bench/fanout.sh
. bench/fanout.sh

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
# Whether this run uses target $1: in the main table, or (when it is run) the fanout table.
wants() {
  case $mode in
    compare)
      [[ " $TARGETS " == *" $1 "* ]] ||
        { [ "$FANOUT" = 1 ] && [[ " $FANOUT_TARGETS " == *" $1 "* ]]; }
      ;;
    fanout) [[ " $FANOUT_TARGETS " == *" $1 "* ]] ;;
    *) false ;;
  esac
}

have python3 || apt_install python3
if [ "$mode" != connections ]; then
  if { wants redis || { [ "$mode" = compare ] && [ "$DURABLE" = 1 ]; }; } && ! have redis-server; then
    apt_install redis-server
  fi
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

# --- servers: started one at a time, stopped on exit; their data directories go with them ---
pids=()
dirs=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
  if [ ${#dirs[@]} -gt 0 ]; then
    rm -rf "${dirs[@]}"
  fi
  dirs=()
}
# Sets data to a fresh, empty directory under $OUT, deleted with the server that uses it.
new_data_dir() {
  data=$(mktemp -d "$OUT/data.XXXXXX")
  dirs+=("$data")
}
# launch LOG COMMAND...: starts a server in the background, output to LOG; sets server_pid and
# records the command in $OUT/commands.txt.
launch() {
  local log=$1
  shift
  { printf '# server:'; printf ' %q' "$@"; echo; } >>"$OUT/commands.txt"
  "$@" >"$log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
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

# start_server KIND: sets server_pid and server_port (both empty for direct). KIND is a target,
# or p2pchat-nohist (the relay with --no-history), p2pchat-plain and p2pchat-plain-nohist (the
# same with --plaintext) or redis-aof (Redis fsyncing every write).
start_server() {
  server_pid='' server_port=''
  local options data
  case $1 in
    direct) return 0 ;;
    p2pchat | p2pchat-nohist | p2pchat-plain | p2pchat-plain-nohist)
      # Always a fresh data dir: it holds the relay's certificate and nickname owners even
      # with --no-history (the default would be the user's own ~/.local/share/p2pchat).
      new_data_dir
      options=(--data-dir "$data")
      [[ $1 == *-nohist ]] && options+=(--no-history)
      [[ $1 == p2pchat-plain* ]] && options+=(--plaintext)
      # Default logging: the port is in the INFO line `🚀 Chat server started on HOST:PORT`.
      # shellcheck disable=SC2086
      launch "$OUT/$1.log" "$P2PCHAT" server 127.0.0.1 0 "${options[@]}" $RELAY_LIMITS \
        ${RELAY_ARGS:-}
      server_port=$(port_from_log "$OUT/$1.log" 'Chat server started on [^ ]*:[0-9]+')
      ;;
    splice)
      launch "$OUT/splice.log" "$BENCH_BIN" bench-splice 127.0.0.1 0
      server_port=$(port_from_log "$OUT/splice.log" 'splice relay listening on [^ ]*:[0-9]+')
      ;;
    redis)
      server_port=$(free_port)
      # No pub/sub output limit: by default Redis drops a subscriber more than 32 MB behind,
      # which large SIZE runs reach (p2pchat and NATS slow the sender or buffer instead).
      launch "$OUT/redis.log" redis-server --port "$server_port" --bind 127.0.0.1 --save '' \
        --appendonly no --protected-mode no --daemonize no \
        --client-output-buffer-limit 'pubsub 0 0 0'
      wait_port "$server_port"
      ;;
    redis-aof)
      # Redis Streams as a durable store: every write reaches the disk (fsync) before Redis
      # answers it; no snapshots.
      server_port=$(free_port)
      new_data_dir
      launch "$OUT/redis-aof.log" redis-server --port "$server_port" --bind 127.0.0.1 \
        --save '' --appendonly yes --appendfsync always --dir "$data" --protected-mode no \
        --daemonize no
      wait_port "$server_port"
      ;;
    nats)
      server_port=$(free_port)
      launch "$OUT/nats.log" "$nats_bin" -a 127.0.0.1 -p "$server_port"
      wait_port "$server_port"
      ;;
    *) echo "compare: unknown target $1" >&2; return 1 ;;
  esac
}

# bench KIND ARGS...: runs the bench against a freshly started server of KIND (see
# start_server), JSON to stdout, each object tagged with "kind" and "set" ($SET, default "main").
# Every command is recorded in $OUT/commands.txt.
bench() {
  local kind=$1 target=$1
  shift
  local security=()
  case $kind in
    p2pchat) security=(--batch "$BATCH") ;;
    p2pchat-nohist) target=p2pchat security=(--batch "$BATCH") ;;
    p2pchat-plain | p2pchat-plain-nohist) target=p2pchat security=(--plaintext) ;;
    redis-aof) target=redis ;;
  esac
  start_server "$kind"
  local where=()
  [ -n "$server_port" ] && where=(--port "$server_port" --server-pid "$server_pid")
  local command=("$BENCH_BIN" bench --target "$target" "${where[@]}" "${security[@]}" --json
    --size "$SIZE" --timeout "$TIMEOUT" "$@")
  { printf '%q ' "${command[@]}"; echo; } >>"$OUT/commands.txt"
  local status=0
  "${command[@]}" 2>>"$OUT/$kind.bench.log" |
    sed -u "s/^{/{\"kind\":\"$kind\",\"set\":\"${SET:-main}\",/" || status=$?
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

# The connections scenario runs over TLS by default, as clients connect: every client makes a
# full handshake (no session resumption). On the project's 2-core VM that logs in 1,100-1,800
# clients/s against 3,400/s in plaintext, so 100,000 take one to one and a half minutes: long,
# not unreasonable, and the relay's memory per connection then includes its TLS session, which
# is what a deployment pays. CONNECTIONS_KIND=p2pchat-plain measures the plaintext relay.
run_connections() {
  local n=$1
  raise_open_files $((n * 2 + 1000))
  echo "compare: connections scenario, $n clients, $CONNECTIONS_KIND (logs in $OUT)" >&2
  TIMEOUT=$((TIMEOUT + n / 500)) bench "$CONNECTIONS_KIND" connections --connections "$n" \
    >"$OUT/connections.jsonl"
  python3 - "$OUT/connections.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(f"connections ({d['security']}): {d['connections']:,} idle p2pchat clients in {d['connect_seconds']:.2f} s "
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
if [ "$mode" = fanout ]; then
  run_fanout
  fanout_table
  echo "compare: JSON results, logs and the commands run (commands.txt) in $OUT" >&2
  if [ ${#failed[@]} -gt 0 ]; then
    echo "compare: failed: ${failed[*]}" >&2
    exit 1
  fi
  exit 0
fi
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

# --- history cost and durability: see the header ---
# median_of SET KIND PAIRS FIELD: the median (low) of FIELD over the runs of SET so far.
median_of() {
  python3 - "$results" "$@" <<'EOF'
import json, statistics, sys
results, set_, kind, pairs, field = sys.argv[1:]
vals = [d[field] for d in map(json.loads, open(results))
        if d.get("set") == set_ and d.get("kind") == kind and d.get("pairs") == int(pairs)]
print(statistics.median_low(vals) if vals else "")
EOF
}
if [ "$DURABLE" = 1 ]; then
  for run in $(seq "$REPEAT"); do
    for kind in p2pchat p2pchat-nohist p2pchat-plain p2pchat-plain-nohist; do
      echo "compare: run $run/$REPEAT: history cost, $kind (throughput $HISTORY_MESSAGES)" >&2
      if ! SET=history bench "$kind" throughput --messages "$HISTORY_MESSAGES" >>"$results"; then
        echo "compare: $kind failed; see $OUT/$kind.bench.log" >&2
        failed+=("$kind(history)")
      fi
    done
  done
  for run in $(seq "$REPEAT"); do
    for pairs in $DURABLE_PAIRS; do
      count=$DURABLE_MESSAGES
      [ "$pairs" = 1 ] && count=$DURABLE_MESSAGES_ONE
      window=$(in_flight_for "$pairs")
      for kind in p2pchat redis-aof; do
        echo "compare: run $run/$REPEAT: durable, $kind, $pairs conversation(s)" \
          "($count messages, $window in flight)" >&2
        if ! SET=durable bench "$kind" durable --pairs "$pairs" --messages "$count" \
          --in-flight "$window" >>"$results"; then
          echo "compare: $kind failed; see $OUT/$kind.bench.log" >&2
          failed+=("$kind(durable)")
        fi
      done
    done
  done
  # Both servers are paced at the same rate: RATE_PERCENT of the relay's median peak.
  for pairs in $DURABLE_PAIRS; do
    peak=$(median_of durable p2pchat "$pairs" msgs_per_sec)
    [ -n "$peak" ] || continue
    rate=$(python3 -c "print(max(1, round($peak * $RATE_PERCENT / 100)))")
    count=$(python3 -c "print(max($pairs, round($rate * $RATE_SECONDS)))")
    for run in $(seq "$REPEAT"); do
      for kind in p2pchat redis-aof; do
        echo "compare: run $run/$REPEAT: durable at $rate msgs/s ($RATE_PERCENT% of the" \
          "relay's peak), $kind, $pairs conversation(s)" >&2
        if ! SET=paced bench "$kind" durable --pairs "$pairs" --messages "$count" \
          --in-flight "$(in_flight_for "$pairs")" --rate "$rate" >>"$results"; then
          echo "compare: $kind failed; see $OUT/$kind.bench.log" >&2
          failed+=("$kind(paced)")
        fi
      done
    done
  done
fi

[ "$FANOUT" = 1 ] && run_fanout

python3 - "$results" "$TARGETS" "$SIZE" "$BATCH" <<'EOF'
import json, sys
results, targets, size, batch = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
import statistics
runs = {}
for line in open(results):
    d = json.loads(line)
    if d.get("set", "main") != "main":
        continue
    runs.setdefault((d["scenario"], d.get("kind", d["target"])), []).append(d)
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
    ("throughput frames/s", "throughput", "frames_per_sec", 0),
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
# Column names: p2pchat with TLS and end-to-end envelopes, and p2pchat in plaintext.
names = {"p2pchat": "p2p-e2e", "p2pchat-plain": "p2p-plain"}
ratios = [("e2e/nats", "p2pchat", "nats"), ("e2e/plain", "p2pchat", "p2pchat-plain"),
          ("plain/splice", "p2pchat-plain", "splice"), ("plain/nats", "p2pchat-plain", "nats")]
header = ["metric"] + [names.get(t, t) for t in targets] + [r[0] for r in ratios]
table = [header]
for label, scenario, key, decimals in rows:
    values = [value(scenario, t, key) for t in targets]
    table.append([label] + [show(v, decimals) for v in values]
                 + [ratio(value(scenario, a, key), value(scenario, b, key)) for _, a, b in ratios])
widths = [max(len(row[i]) for row in table) for i in range(len(header))]
def fmt(row):
    return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
if repeat > 1:
    print(f"medians of {repeat} runs; ", end="")
print(f"payload {size} B; CPU in cores used; ratios are p2pchat / other (for msgs/s above 1 is better, "
      f"for µs, seconds and MiB below 1 is better); the p2pchat relays keep history (--data-dir); "
      f"p2p-e2e: TLS and end-to-end envelopes of up to {batch} messages (one frame each), "
      f"p2p-plain: relay and bench with --plaintext; rates count messages")
print(fmt(table[0]))
print("  ".join("-" * w for w in widths))
for row in table[1:]:
    print(fmt(row))
# The issue's targets for the encrypted relay.
print()
e2e_rate, nats_rate = value("throughput", "p2pchat", "msgs_per_sec"), value("throughput", "nats", "msgs_per_sec")
e2e_p50, plain_p50 = value("latency", "p2pchat", "p50_us"), value("latency", "p2pchat-plain", "p50_us")
checks = [
    ("fully encrypted (TLS + end-to-end) 1-pair throughput at least NATS plaintext throughput, e2e/nats",
     e2e_rate, nats_rate, lambda r: r >= 1.0),
    ("encrypted latency p50 within 20% of p2pchat plaintext p50, e2e/plain",
     e2e_p50, plain_p50, lambda r: r <= 1.2),
]
for what, a, b, good in checks:
    if a is None or not b:
        print(f"target not measured: {what}")
    else:
        print(f"target {'met:   ' if good(a / b) else 'MISSED:'} {what} ({a / b:.2f})")
notes = [f"{t} {s}: {n}" for (s, t), d in sorted(data.items()) for n in d.get("notes", [])]
if notes:
    print()
    for note in notes:
        print("note:", note)
EOF
if [ "$DURABLE" = 1 ]; then
  echo
  python3 - "$results" "$DURABLE_PAIRS" "$SIZE" "$IN_FLIGHT/$IN_FLIGHT_EACH" "$RATE_PERCENT" "$BATCH" <<'EOF'
import json, statistics, sys
results, pairs_list, size, in_flight, percent, batch = sys.argv[1:]
pairs_list = [int(p) for p in pairs_list.split()]
runs = {}
for d in map(json.loads, open(results)):
    if d.get("set") in ("history", "durable", "paced"):
        runs.setdefault((d["set"], d["kind"], d.get("pairs")), []).append(d)
def get(set_, kind, pairs, field):
    ds = runs.get((set_, kind, pairs), [])
    vals = [d[field] for d in ds if isinstance(d.get(field), (int, float))]
    return statistics.median_low(vals) if vals else None
def show(v, decimals=0):
    return "-" if v is None else f"{v:,.{decimals}f}"
repeat = max((len(ds) for ds in runs.values()), default=0)
med = f"medians of {repeat} runs; " if repeat > 1 else ""

# History cost: the same throughput scenario with and without history, encrypted and plain.
def cost(kind):
    on = get("history", kind, None, "msgs_per_sec")
    off = get("history", kind + "-nohist", None, "msgs_per_sec")
    return on / off if on and off else None
hist_ratio, plain_ratio = cost("p2pchat"), cost("p2pchat-plain")
count = get("history", "p2pchat", None, "messages") or 0
print(f"history cost ({med}throughput scenario: one conversation, {count:,} messages, "
      f"the receiver's rate; TLS + end-to-end unless marked plaintext)")
for label, kind in (("history on (--data-dir)", "p2pchat"), ("--no-history", "p2pchat-nohist"),
                    ("plaintext, history on", "p2pchat-plain"),
                    ("plaintext, --no-history", "p2pchat-plain-nohist")):
    rate = get("history", kind, None, "msgs_per_sec")
    frames = get("history", kind, None, "frames_per_sec")
    cpu = get("history", kind, None, "server_cpu")
    print(f"  {label:<24} {show(rate):>12} msgs/s {show(frames):>12} frames/s   relay CPU {show(cpu, 2)} cores")
print(f"  {'history / no-history':<24} {show(hist_ratio, 2):>12}          (target: at least 0.90)")
print(f"  {'the same, plaintext':<24} {show(plain_ratio, 2):>12}")
print()

# Durable: p2pchat against Redis Streams with appendfsync always.
rows, checks, lagging = [], [], []
def row(label, set_, pairs, field, decimals):
    p = get(set_, "p2pchat", pairs, field)
    r = get(set_, "redis-aof", pairs, field)
    ratio = p / r if p is not None and r else None
    rows.append((label, show(p, decimals), show(r, decimals), show(ratio, 2)))
    return ratio, p, r
for pairs in pairs_list:
    ratio, _, _ = row(f"acked msgs/s, {pairs:,} conversation(s)", "durable", pairs, "msgs_per_sec", 0)
    checks.append((f"acked msgs/s at {pairs:,} conversation(s) at least 2x Redis Streams",
                   ratio is not None and ratio >= 2, ratio, 2))
    row("  received msgs/s", "durable", pairs, "recv_per_sec", 0)
    row("  ack p50 µs, full load", "durable", pairs, "ack_p50_us", 1)
    row("  ack p99 µs, full load", "durable", pairs, "ack_p99_us", 1)
    row("  server CPU, full load", "durable", pairs, "server_cpu", 2)
    row("  bench CPU, full load", "durable", pairs, "bench_cpu", 2)
    rate = get("paced", "p2pchat", pairs, "rate")
    if rate:
        paced = f"at {rate:,} msgs/s"
        _, p50, _ = row(f"  ack p50 µs, {paced}", "paced", pairs, "ack_p50_us", 1)
        row(f"  ack p99 µs, {paced}", "paced", pairs, "ack_p99_us", 1)
        row(f"  acked msgs/s, {paced}", "paced", pairs, "msgs_per_sec", 0)
        checks.append((f"ack p50 under 1 ms at {percent}% of the peak ({rate:,} msgs/s), "
                       f"{pairs:,} conversation(s), in µs", p50 is not None and p50 < 1000, p50, 1))
        for kind in ("p2pchat", "redis-aof"):
            got = get("paced", kind, pairs, "msgs_per_sec")
            if got is not None and got < 0.95 * rate:
                lagging.append(f"{kind} acknowledged {got:,.0f} of the {rate:,} msgs/s asked at "
                               f"{pairs:,} conversation(s): it could not keep that pace, so its "
                               f"paced latencies are those of an overloaded server")
header = ("metric", "p2pchat", "redis-streams", "p2p/redis")
table = [header] + rows
widths = [max(len(r[i]) for r in table) for i in range(4)]
def fmt(r):
    return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
one, each = in_flight.split("/")
print(f"durable ({med}payload {size} B, at most {int(one):,} unacknowledged with one conversation and "
      f"{int(each):,} per conversation with several (pipelined); acks counted per message, latency from write to ack): p2pchat relay with "
      f"--data-dir (acks after the commit's fsync) over TLS with end-to-end envelopes (up to {batch} messages "
      f"each; a message is acknowledged with its frame) vs Redis Streams XADD on redis-server "
      f"--appendonly yes --appendfsync always; the paced rows run both at {percent}% of p2pchat's peak")
print(fmt(header))
print("  ".join("-" * w for w in widths))
for r in rows:
    print(fmt(r))
checks.append(("receive rate with history at least 0.90 of --no-history (TLS + end-to-end)",
               hist_ratio is not None and hist_ratio >= 0.9, hist_ratio, 2))
print()
for what, ok, value, decimals in checks:
    print(f"target {'met:   ' if ok else 'MISSED:'} {what} ({show(value, decimals)})")
if lagging:
    print()
for n in lagging:
    print("note:", n)
notes = sorted({f"{kind} {set_} {pairs or 1} conv: {n}"
                for (set_, kind, pairs), ds in runs.items() for d in ds for n in d.get("notes", [])})
if notes:
    print()
    for n in notes:
        print("note:", n)
EOF
fi
if [ "$FANOUT" = 1 ]; then
  echo
  fanout_table
fi
echo "compare: JSON results, logs and the commands run (commands.txt) in $OUT" >&2

if [ -n "${CONNECTIONS:-}" ]; then
  run_connections "$CONNECTIONS"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "compare: failed: ${failed[*]}" >&2
  exit 1
fi
