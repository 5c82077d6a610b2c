#!/usr/bin/env bash
# The fanout part of bench/compare.sh: one sender, a room of R receivers, for each R of
# FANOUT_MEMBERS, against the p2pchat relay (a room; over TLS with end-to-end-sized bodies, and
# in plaintext), Redis pub/sub (R subscribers of one channel) and NATS (R subscriptions to one
# subject), each on a fresh server. Delivered messages/s (messages x R over the time from the
# first send to the last receipt) and p50/p99 of the time from sending a message to the LAST
# member's receipt, then the issue's target: fully encrypted p2pchat delivers at least NATS's
# messages/s at R = 10 and R = 100.
#
#   bench/fanout.sh                       only the fanout comparison (= bench/compare.sh --fanout)
#   QUICK=1 bench/fanout.sh               the same with small counts
#   LONG=1 REPEAT=3 bench/fanout.sh       10x the deliveries, medians of 3 runs (steadier)
#   FANOUT_ONLY=1 bench/compare.sh        the same as bench/fanout.sh
#   bench/compare.sh                      the whole comparison, this table last (FANOUT=0: skip)
#
# Environment (besides compare.sh's OUT, REPEAT, SIZE, TIMEOUT, P2PCHAT, BENCH_BIN, RELAY_LIMITS
# and RELAY_ARGS): FANOUT_MEMBERS (room sizes, default "1 10 100 1000"), FANOUT_TARGETS (default
# "p2pchat p2pchat-plain redis nats"), FANOUT_DELIVERIES (messages x R per room size, default
# 2000000; each room size sends at least 100 messages), FANOUT_WINDOW (messages sent and not yet
# received by every member, default 512: their Said frames must stay well under the relay's
# 256 KiB queue per member, or members are disconnected as too slow for the room).
#
# The p2pchat relays are started with --max-room-members (the sender is a member too, so a room
# of R receivers has R + 1 members; default limit 1000) and compare.sh's RELAY_LIMITS. This
# machine's open-file limit is raised for 2R + 1000 files before any server starts (Redis sizes
# its maxclients from it).
#
# Sourced by compare.sh, which defines bench, raise_open_files, $results and $failed.
# shellcheck disable=SC2154 # results, OUT, REPEAT and SIZE are compare.sh's

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  exec "$(dirname "$0")/compare.sh" --fanout "$@"
fi

if [ "${QUICK:-0}" = 1 ]; then
  : "${FANOUT_DELIVERIES:=500000}"
fi
if [ "${LONG:-0}" = 1 ]; then
  : "${FANOUT_DELIVERIES:=20000000}"
fi
FANOUT_MEMBERS=${FANOUT_MEMBERS:-1 10 100 1000}
FANOUT_TARGETS=${FANOUT_TARGETS:-p2pchat p2pchat-plain redis nats}
FANOUT_DELIVERIES=${FANOUT_DELIVERIES:-2000000}
FANOUT_WINDOW=${FANOUT_WINDOW:-512}

# Runs every fanout target (REPEAT times), appending JSON lines tagged "set":"fanout" to $results.
run_fanout() {
  local largest=0 r run kind
  for r in $FANOUT_MEMBERS; do
    [ "$r" -gt "$largest" ] && largest=$r
  done
  raise_open_files $((largest * 2 + 1000))
  local room_limit=$((largest + 1 > 2000 ? largest + 1 : 2000))
  local members
  # shellcheck disable=SC2086 # split on any white space, joined with commas
  members=$(echo $FANOUT_MEMBERS | tr ' ' ,)
  for run in $(seq "$REPEAT"); do
    for kind in $FANOUT_TARGETS; do
      echo "compare: run $run/$REPEAT: fanout, $kind, rooms of $members receivers" \
        "($FANOUT_DELIVERIES deliveries each, window $FANOUT_WINDOW)" >&2
      if ! SET=fanout RELAY_ARGS="${RELAY_ARGS:-} --max-room-members $room_limit" \
        bench "$kind" fanout --members "$members" --deliveries "$FANOUT_DELIVERIES" \
        --window "$FANOUT_WINDOW" >>"$results"; then
        echo "compare: $kind failed; see $OUT/$kind.bench.log" >&2
        failed+=("$kind(fanout)")
      fi
    done
  done
}

# Prints the fanout table from $results.
fanout_table() {
  python3 - "$results" "$FANOUT_TARGETS" "$SIZE" "$FANOUT_WINDOW" <<'EOF'
import json, statistics, sys
results, targets, size, window = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
runs = {}
for d in map(json.loads, open(results)):
    if d.get("set") == "fanout":
        runs.setdefault((d["kind"], d["members"]), []).append(d)
def get(kind, members, field):
    vals = [d[field] for d in runs.get((kind, members), []) if isinstance(d.get(field), (int, float))]
    return statistics.median_low(vals) if vals else None
def show(v, decimals):
    return "-" if v is None else f"{v:,.{decimals}f}"
def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}"
sizes = sorted({m for _, m in runs})
repeat = max((len(ds) for ds in runs.values()), default=0)
names = {"p2pchat": "p2p-e2e", "p2pchat-plain": "p2p-plain"}
ratios = [("e2e/nats", "p2pchat", "nats"), ("plain/nats", "p2pchat-plain", "nats")]
fields = [("delivered msgs/s", "delivered_per_sec", 0), ("last receipt p50 ms", "last_p50_ms", 2),
          ("last receipt p99 ms", "last_p99_ms", 2), ("bench CPU", "bench_cpu", 2),
          ("server CPU", "server_cpu", 2)]
header = ["metric"] + [names.get(t, t) for t in targets] + [r[0] for r in ratios]
table = [header]
for members in sizes:
    for label, field, decimals in fields:
        row = [f"R={members:,} {label}"]
        row += [show(get(t, members, field), decimals) for t in targets]
        row += [ratio(get(a, members, field), get(b, members, field)) for _, a, b in ratios]
        table.append(row)
widths = [max(len(row[i]) for row in table) for i in range(len(header))]
def fmt(row):
    return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
body = get("p2pchat", sizes[0], "body_size") if sizes else None
med = f"medians of {repeat} runs; " if repeat > 1 else ""
print(f"fanout ({med}one sender, a room of R receivers; payload {size} B"
      + (f", p2p-e2e bodies {body} B: random bytes the size of a sealed room envelope, which the "
         f"bench's receivers do not open (a real client opens one per message)" if body else "")
      + f"; at most {int(window):,} messages not yet received by every member; delivered = "
      f"messages x R / seconds from the first send to the last receipt; last receipt = time from "
      f"sending a message to its receipt by the last member; ratios are p2pchat / NATS; CPU in cores)")
print(fmt(header))
print("  ".join("-" * w for w in widths))
for row in table[1:]:
    print(fmt(row))
print()
for members in (10, 100):
    e2e, nats = get("p2pchat", members, "delivered_per_sec"), get("nats", members, "delivered_per_sec")
    what = (f"fully encrypted (TLS + end-to-end) p2pchat delivered msgs/s at least NATS's at "
            f"R = {members}, e2e/nats")
    if e2e is None or not nats:
        print(f"target not measured: {what}")
    else:
        print(f"target {'met:   ' if e2e >= nats else 'MISSED:'} {what} ({e2e / nats:.2f})")
    plain = get("p2pchat-plain", members, "delivered_per_sec")
    if plain is not None and nats:
        print(f"       (p2pchat plaintext at R = {members}: {plain / nats:.2f} of NATS)")
notes = sorted({f"{kind} R={members}: {n}" for (kind, members), ds in runs.items()
                for d in ds for n in d.get("notes", []) if "do not open" not in n})
if notes:
    print()
    for n in notes:
        print("note:", n)
EOF
}
