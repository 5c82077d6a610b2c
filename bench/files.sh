#!/usr/bin/env bash
# File transfer through the relay (issue 6), against the same file copied without p2pchat, on
# this machine, over loopback only, in one run. One table: seconds, MB/s and peak RSS per target,
# then the issue's two targets. The targets (TARGETS, in this order within each run):
# - direct:        socat -b 131072 -u OPEN:FILE TCP:... into socat -u TCP-LISTEN:... OPEN:OUT
#                  (a plain TCP copy, no server, no encryption);
# - socat-relay:   the same two with a socat byte relay in the middle (a third socat
#                  forwarding one connection, no encryption);
# - p2pchat-plain: a p2pchat relay and two clients, all with --plaintext (no TLS). The client
#                  always encrypts end to end, so this figure includes end-to-end encryption of
#                  every chunk: it is what a user of a --plaintext relay gets;
# - p2pchat:       the relay and the clients as they run by default: TLS on both legs (relay
#                  certificate trusted on first use) plus end-to-end encryption;
# - wormhole:      magic-wormhole sending the same file through its own transit relay on
#                  loopback (mailbox server and transit relay started here; both ends run with
#                  --no-listen, so no direct connection bypasses the relay). Its data is
#                  encrypted end to end (SecretBox), the legs to the transit relay are plain TCP.
# Every p2pchat relay keeps history in a fresh --data-dir of its own, runs with RELAY_LIMITS
# (default "--max-rate 0 --max-per-ip 0", as in compare.sh) and is stopped after its transfer;
# each p2pchat client has a fresh XDG_CONFIG_HOME (identity key, known hosts). The receiver
# (`--auto-accept DIR`) starts first and waits for its companion; the sender (`--send FILE`)
# exits once the receiver has checked the file's SHA-256.
#
# Time: from the sender's start until the transfer is over, i.e. until the receiving socat
# exits (direct, socat-relay), until the p2pchat sender exits (it exits once the receiver
# confirmed the hash), or until both wormhole ends exited (the sender waits for the receiver's
# hash ack). Process start-up and the handshakes are included (they are the same for every
# size). MB/s = SIZE / 10^6 / seconds. Peak RSS: the relay's (VmHWM, or /usr/bin/time's maximum
# resident set for socat) and each end's (/usr/bin/time -f %M). Each received file's SHA-256 is
# checked against the source's (outside the timed part); a mismatch fails the target. The
# source and the received files are on the tmpfs /dev/shm when it has room for two copies (see
# FILES_DIR), so the disk is in none of the figures.
#
#   bench/files.sh                           1 GiB, one run of every target
#   SIZE=$((256<<20)) bench/files.sh         a quicker run
#   REPEAT=3 bench/files.sh                  median seconds of 3 runs (RSS: the highest)
#   TARGETS="direct p2pchat-plain" bench/files.sh
#
# Environment: SIZE (bytes, default 1 GiB), REPEAT (default 1), TARGETS (default "direct
# socat-relay p2pchat-plain p2pchat wormhole"), TIMEOUT (seconds per transfer, default 300),
# BUF (socat -b, default 131072), OUT (directory for logs, results.jsonl and commands.txt;
# default a new /tmp/p2pchat-files.XXXXXX), FILES_DIR (where the source and the received files
# go; default a new /dev/shm/p2pchat-files.XXXXXX if /dev/shm is a tmpfs with room for 2 x SIZE,
# else OUT), KEEP=1 (keep the source and received files; by default the received ones are
# deleted as soon as checked and the source at exit), P2PCHAT (the p2pchat binary; default:
# built here in release), RELAY_LIMITS, RELAY_ARGS (extra `p2pchat server` options),
# WORMHOLE_VENV (virtualenv for the mailbox server, default /tmp/p2pchat-bench-wormhole-venv,
# reused by later runs). Installs socat, magic-wormhole and magic-wormhole-transit-relay with
# apt-get and magic-wormhole-mailbox-server with pip (in WORMHOLE_VENV, which sees Debian's
# Twisted) when missing; if that fails the wormhole row says why and the other rows are still
# printed. Stops everything it started on exit; needs 2 x SIZE of free space (memory, with the
# default FILES_DIR).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

SIZE=${SIZE:-$((1 << 30))}
REPEAT=${REPEAT:-1}
TARGETS=${TARGETS:-direct socat-relay p2pchat-plain p2pchat wormhole}
TIMEOUT=${TIMEOUT:-300}
BUF=${BUF:-131072}
KEEP=${KEEP:-0}
RELAY_LIMITS=${RELAY_LIMITS---max-rate 0 --max-per-ip 0}
WORMHOLE_VENV=${WORMHOLE_VENV:-/tmp/p2pchat-bench-wormhole-venv}
OUT=${OUT:-$(mktemp -d /tmp/p2pchat-files.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/versions.txt"
[[ $SIZE =~ ^[0-9]+$ ]] || { echo "files: SIZE must be a number of bytes" >&2; exit 2; }
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "files: REPEAT must be at least 1" >&2; exit 2; }

say() { echo "files: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
wants() { [[ " $TARGETS " == *" $1 "* ]]; }
apt_updated=false
apt_install() {
  have apt-get || { say "cannot install $* (no apt-get)"; return 1; }
  if [ "$apt_updated" = false ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null || return 1
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" </dev/null
}

have python3 || apt_install python3
[ -x /usr/bin/time ] || apt_install time
have timeout || apt_install coreutils
if { wants direct || wants socat-relay; } && ! have socat; then
  say "installing socat (apt-get)"
  apt_install socat >>"$OUT/install.log" 2>&1 || { say "apt-get install socat failed (see $OUT/install.log)"; exit 1; }
fi

# magic-wormhole: the clients and the transit relay from Debian, the mailbox server from PyPI in
# a virtualenv on top of Debian's Python (so Twisted finds both servers' plugins). Sets
# wormhole_py (the venv's python) or wormhole_missing (why not).
wormhole_missing=''
wormhole_py=''
setup_wormhole() {
  local sys=/usr/bin/python3
  if ! have wormhole || ! "$sys" -c 'import wormhole_transit_relay' 2>/dev/null; then
    say "installing magic-wormhole and magic-wormhole-transit-relay (apt-get)"
    if ! apt_install magic-wormhole magic-wormhole-transit-relay >"$OUT/install.log" 2>&1; then
      wormhole_missing="apt-get install magic-wormhole magic-wormhole-transit-relay failed (see $OUT/install.log)"
      return 1
    fi
  fi
  if ! have wormhole || ! "$sys" -c 'import wormhole_transit_relay' 2>/dev/null; then
    wormhole_missing="wormhole or the transit relay is still missing after apt-get install"
    return 1
  fi
  if ! "$WORMHOLE_VENV/bin/python" -c 'import wormhole_mailbox_server, twisted' 2>/dev/null; then
    say "installing magic-wormhole-mailbox-server (pip, in $WORMHOLE_VENV)"
    if ! "$sys" -c 'import ensurepip' 2>/dev/null; then
      apt_install python3-venv >>"$OUT/install.log" 2>&1 || true
    fi
    if [ -e "$WORMHOLE_VENV" ] && [ ! -f "$WORMHOLE_VENV/pyvenv.cfg" ]; then
      wormhole_missing="WORMHOLE_VENV=$WORMHOLE_VENV exists and is not a virtualenv"
      return 1
    fi
    rm -rf "$WORMHOLE_VENV"
    if ! { "$sys" -m venv --system-site-packages "$WORMHOLE_VENV" &&
      "$WORMHOLE_VENV/bin/pip" install -q --disable-pip-version-check \
        magic-wormhole-mailbox-server </dev/null; } >>"$OUT/install.log" 2>&1; then
      wormhole_missing="pip install magic-wormhole-mailbox-server failed (see $OUT/install.log)"
      return 1
    fi
  fi
  if ! "$WORMHOLE_VENV/bin/python" -c 'import wormhole_mailbox_server, wormhole_transit_relay, twisted' \
    >>"$OUT/install.log" 2>&1; then
    wormhole_missing="the mailbox server or the transit relay does not import (see $OUT/install.log)"
    return 1
  fi
  wormhole_py=$WORMHOLE_VENV/bin/python
  local v
  v=$("$wormhole_py" -c 'import sys; from importlib.metadata import version
print(", ".join(f"{n} {version(n)}" for n in sys.argv[1:]))' magic-wormhole \
    magic-wormhole-transit-relay magic-wormhole-mailbox-server twisted 2>/dev/null || true)
  [ -z "$v" ] || echo "$v" >>"$OUT/versions.txt"
}
if wants wormhole; then
  setup_wormhole || say "magic-wormhole NOT AVAILABLE: $wormhole_missing"
fi

# p2pchat: which file-transfer options this build has.
p2pchat_missing=''
send_mode='' accept_mode=''
if wants p2pchat || wants p2pchat-plain; then
  if [ -z "${P2PCHAT:-}" ]; then
    say "building p2pchat (release)"
    cargo build --release -q </dev/null
    P2PCHAT=${CARGO_TARGET_DIR:-target}/release/p2pchat
    p2pchat_built=$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')
  fi
  help=$("$P2PCHAT" client --help 2>&1 || true)
  # --send FILE: the sender sends and exits; otherwise `/send FILE` typed in scripting mode.
  if grep -q -- '--send ' <<<"$help"; then send_mode=option; else send_mode=typed; fi
  # --auto-accept DIR; otherwise --downloads DIR and `/accept` typed when the offer shows.
  if grep -q -- '--auto-accept' <<<"$help"; then
    accept_mode=option
  elif grep -q -- '--downloads' <<<"$help"; then
    accept_mode=typed
  else
    p2pchat_missing="$P2PCHAT has no file transfer (client --help lists neither --auto-accept nor --downloads)"
    say "p2pchat NOT MEASURED: $p2pchat_missing"
  fi
  if [ -z "$p2pchat_missing" ] && [ "$send_mode$accept_mode" != optionoption ]; then
    say "note: this p2pchat lacks --send or --auto-accept: typing /send or /accept instead"
  fi
fi

# --- processes: every one is stopped on exit ---
# jobs_: process groups of one-shot commands (timeout runs each in a group of its own);
# servers: plain pids; fds: fifo write ends held open as clients' standard input.
jobs_=()
servers=()
fds=()
big=()
# close_fd FD: closes a fifo write end opened here and forgets it. (No redirection around the
# close: bash would save stderr in a spare descriptor, possibly the very one being closed.)
close_fd() {
  local fd=$1 kept=() f
  for f in "${fds[@]}"; do
    [ "$f" = "$fd" ] || kept+=("$f")
  done
  [ ${#kept[@]} = ${#fds[@]} ] && return 0
  fds=("${kept[@]}")
  exec {fd}>&-
}
stop_all() {
  local g
  while [ ${#fds[@]} -gt 0 ]; do
    close_fd "${fds[0]}"
  done
  for g in "${jobs_[@]}"; do
    kill -TERM -- "-$g" 2>/dev/null || true
  done
  for g in "${servers[@]}"; do
    kill -TERM "$g" 2>/dev/null || true
  done
  for g in "${jobs_[@]}" "${servers[@]}"; do
    wait "$g" 2>/dev/null || true
  done
  jobs_=() servers=()
}
cleanup() {
  stop_all
  if [ "$KEEP" != 1 ] && [ ${#big[@]} -gt 0 ]; then
    rm -rf "${big[@]}"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

log_command() { { printf '%s' "$1"; shift; printf ' %q' "$@"; echo; } >>"$OUT/commands.txt"; }
# job NAME STDIN COMMAND...: runs COMMAND in the background under timeout (TIMEOUT + 60 s) and
# /usr/bin/time (peak RSS to $OUT/NAME.rss), stdout to NAME.out, stderr to NAME.err; sets
# job_pid (timeout's pid, which is also the job's process group).
job() {
  local name=$1 input=$2 fd
  shift 2
  log_command "# $name:" "$@"
  (
    # Not the other clients' fifo ends: end of input must reach them when this script closes
    # its copy.
    for fd in "${fds[@]}"; do exec {fd}>&-; done
    exec timeout -k 5 $((TIMEOUT + 60)) /usr/bin/time -f %M -o "$OUT/$name.rss" "$@" \
      <"$input" >"$OUT/$name.out" 2>"$OUT/$name.err"
  ) &
  job_pid=$!
  jobs_+=("$job_pid")
}
# server NAME COMMAND...: a long-running server, stderr and stdout to NAME.log; sets server_pid.
server() {
  local name=$1
  shift
  log_command "# $name:" "$@"
  "$@" >"$OUT/$name.log" 2>&1 </dev/null &
  server_pid=$!
  servers+=("$server_pid")
}
stop_server() {
  kill -TERM "$1" 2>/dev/null || true
  local _
  for _ in $(seq 100); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$1" 2>/dev/null; then kill -KILL "$1" 2>/dev/null || true; fi
  wait "$1" 2>/dev/null || true
}
# finish PID SECONDS: waits for a job at most SECONDS (then kills its group); returns its status.
finish() {
  local _ status=0
  for _ in $(seq $(($2 * 20))); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -TERM -- "-$1" 2>/dev/null || true
  wait "$1" || status=$?
  return "$status"
}
peak_kb() { # the maximum RSS /usr/bin/time wrote for job NAME, or empty
  local v
  v=$(tail -n 1 "$OUT/$1.rss" 2>/dev/null || true)
  if [[ $v =~ ^[0-9]+$ ]]; then echo "$v"; fi
}
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits until something listens on 127.0.0.1:$1 without connecting (a one-shot socat listener
# would take the probe for the transfer), at most 10 s.
wait_listen() {
  local hex _
  hex=$(printf '%04X' "$1")
  for _ in $(seq 200); do
    if awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
      /proc/net/tcp; then
      return 0
    fi
    sleep 0.05
  done
  say "nothing is listening on port $1 after 10 s"
  return 1
}
# wait_line REGEX SECONDS FILE...: waits until one of the files has a line matching REGEX.
wait_line() {
  local regex=$1 seconds=$2 _
  shift 2
  for _ in $(seq $((seconds * 20))); do
    grep -aqE "$regex" "$@" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
port_from_log() {
  wait_line "$2" 10 "$1" || return 1
  local line
  line=$(grep -aoE "$2" "$1" | head -n 1)
  echo "${line##*:}"
}

if have socat; then
  socat -V 2>/dev/null | sed -n 's/^socat version \([^ ]*\).*/socat \1/p' >>"$OUT/versions.txt" || true
fi
if [ -n "${P2PCHAT:-}" ] && [ -z "$p2pchat_missing" ]; then
  if [ -n "${p2pchat_built:-}" ]; then
    echo "p2pchat built here from $p2pchat_built" >>"$OUT/versions.txt"
  else
    echo "p2pchat $P2PCHAT of $(date -u -r "$P2PCHAT" '+%F %T' 2>/dev/null || echo '?') UTC" >>"$OUT/versions.txt"
  fi
fi

# --- the file ---
# The source and every received file live in FILES_DIR: by default a directory on the tmpfs
# /dev/shm when it has room for two copies, so that no figure depends on the disk (the p2pchat
# receiver fsyncs the file it saved, which costs nothing on tmpfs; the others do not fsync, and
# dirty pages written back to a VM disk during a run would slow whichever target they hit).
if [ -z "${FILES_DIR:-}" ]; then
  FILES_DIR=$OUT
  shm_free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }' || true)
  if [ "$(stat -f -c %T /dev/shm 2>/dev/null || true)" = tmpfs ] &&
    [[ $shm_free_kb =~ ^[0-9]+$ ]] && [ "$shm_free_kb" -gt $(((2 * SIZE + (256 << 20)) / 1024)) ]; then
    FILES_DIR=$(mktemp -d /dev/shm/p2pchat-files.XXXXXX)
    big+=("$FILES_DIR")
  else
    say "note: /dev/shm is not a tmpfs with room for 2 x SIZE: files go to $OUT, on its disk"
  fi
fi
mkdir -p "$FILES_DIR"
FILES_DIR=$(cd "$FILES_DIR" && pwd)
files_fs=$(stat -f -c %T "$FILES_DIR" 2>/dev/null || echo '?')
echo "files in $FILES_DIR ($files_fs)" >>"$OUT/versions.txt"
src=$FILES_DIR/bench-file.bin
big+=("$src")
say "writing $SIZE random bytes to $src"
head -c "$SIZE" /dev/urandom >"$src"
[ "$(stat -c %s "$src")" = "$SIZE" ] || { say "could not write $SIZE bytes to $src"; exit 1; }
src_sha=$(sha256sum "$src" | cut -d' ' -f1)
# Warm-up, untimed: one copy of the file made and deleted, so the first target does not pay
# for memory the machine touches for the first time (on a VM, first-touch page faults made the
# first copy up to 2x slower than the next ones).
cp "$src" "$FILES_DIR/warm-up.bin"
rm -f "$FILES_DIR/warm-up.bin"

results=$OUT/results.jsonl
: >"$results"
json_num() { [ -n "$1" ] && echo "$1" || echo null; }
# record KIND RUN SECONDS RELAY_KB SENDER_KB RECEIVER_KB [NOTE]
record() {
  python3 - "$results" "$@" <<'EOF'
import json, sys
path, kind, run, seconds, relay, sender, receiver, *note = sys.argv[1:]
num = lambda v: None if v in ("", "null") else float(v)
d = {"kind": kind, "run": int(run), "seconds": num(seconds), "relay_kb": num(relay),
     "sender_kb": num(sender), "receiver_kb": num(receiver)}
if note and note[0]:
    d["note"] = note[0]
open(path, "a").write(json.dumps(d) + "\n")
EOF
}
# failure KIND RUN WHY
failure() {
  say "$1 (run $2) FAILED: $3"
  python3 -c 'import json, sys; open(sys.argv[1], "a").write(json.dumps({"kind": sys.argv[2], "run": int(sys.argv[3]), "error": sys.argv[4]}) + "\n")' \
    "$results" "$1" "$2" "$3"
  stop_all
  return 1
}
drop() { if [ "$KEEP" != 1 ]; then rm -rf "$@"; fi; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
# check_copy KIND RUN FILE: the received file is the source, byte for byte (by SHA-256).
check_copy() {
  [ -f "$3" ] || { failure "$1" "$2" "no file arrived at $3"; return 1; }
  local got
  got=$(sha256sum "$3" | cut -d' ' -f1)
  if [ "$got" != "$src_sha" ]; then
    failure "$1" "$2" "SHA-256 mismatch: $3 has $got, the source $src_sha ($(stat -c %s "$3") bytes)"
    return 1
  fi
}

# --- the targets; each returns non-zero (after recording why) when it failed ---
# Note: these run in `if` context, where set -e does not apply: every step is checked.
run_socat() {
  local kind=$1 run=$2 tag="$1.$2"
  local dst=$FILES_DIR/$tag.received p1 p2 target relay='' t0 t1 status=0
  big+=("$dst")
  p1=$(free_port)
  job "$tag.receiver" /dev/null socat -b "$BUF" -u "TCP-LISTEN:$p1,reuseaddr,bind=127.0.0.1" \
    "OPEN:$dst,creat,trunc"
  local receiver=$job_pid
  wait_listen "$p1" || { failure "$kind" "$run" "the receiving socat did not listen"; return 1; }
  target=$p1
  if [ "$kind" = socat-relay ]; then
    p2=$(free_port)
    job "$tag.relay" /dev/null socat -b "$BUF" "TCP-LISTEN:$p2,reuseaddr,bind=127.0.0.1" \
      "TCP:127.0.0.1:$p1"
    relay=$job_pid
    wait_listen "$p2" || { failure "$kind" "$run" "the relaying socat did not listen"; return 1; }
    target=$p2
  fi
  t0=$EPOCHREALTIME
  job "$tag.sender" /dev/null socat -b "$BUF" -u "OPEN:$src" "TCP:127.0.0.1:$target"
  local sender=$job_pid
  wait "$receiver" || status=$?
  t1=$EPOCHREALTIME
  [ "$status" = 0 ] || { failure "$kind" "$run" "the receiving socat exited with $status (see $OUT/$tag.receiver.err)"; return 1; }
  finish "$sender" 10 || { failure "$kind" "$run" "the sending socat failed (see $OUT/$tag.sender.err)"; return 1; }
  if [ -n "$relay" ]; then
    finish "$relay" 10 || { failure "$kind" "$run" "the relaying socat failed (see $OUT/$tag.relay.err)"; return 1; }
  fi
  check_copy "$kind" "$run" "$dst" || return 1
  drop "$dst"
  record "$kind" "$run" "$(elapsed "$t0" "$t1")" "$([ -n "$relay" ] && peak_kb "$tag.relay")" \
    "$(peak_kb "$tag.sender")" "$(peak_kb "$tag.receiver")"
  stop_all
}

run_p2pchat() {
  local kind=$1 run=$2 tag="$1.$2"
  [ -z "$p2pchat_missing" ] || { failure "$kind" "$run" "$p2pchat_missing"; return 1; }
  local dir=$OUT/$tag security=() port relay t0 t1 status=0 relay_kb
  [ "$kind" = p2pchat-plain ] && security=(--plaintext)
  rm -rf "$dir"
  local downloads=$FILES_DIR/$tag.downloads
  rm -rf "$downloads"
  mkdir -p "$dir/data" "$dir/config-a" "$dir/config-b" "$downloads"
  big+=("$downloads" "$dir/data")
  # shellcheck disable=SC2086
  server "$tag.relay" "$P2PCHAT" server 127.0.0.1 0 --data-dir "$dir/data" "${security[@]}" \
    $RELAY_LIMITS ${RELAY_ARGS:-}
  relay=$server_pid
  port=$(port_from_log "$OUT/$tag.relay.log" 'Chat server started on [^ ]*:[0-9]+') ||
    { failure "$kind" "$run" "the relay did not start (see $OUT/$tag.relay.log)"; return 1; }
  # Both clients read a fifo held open here: standard input stays open (no end of input).
  mkfifo "$dir/b.in" "$dir/a.in"
  local receiving=(--auto-accept "$downloads")
  [ "$accept_mode" = typed ] && receiving=(--downloads "$downloads")
  job "$tag.receiver" "$dir/b.in" env XDG_CONFIG_HOME="$dir/config-b" "$P2PCHAT" client \
    127.0.0.1 "$port" --nick B --to A "${receiving[@]}" "${security[@]}"
  local receiver=$job_pid b_in a_in
  exec {b_in}>"$dir/b.in"
  fds+=("$b_in")
  wait_line 'Waiting for A' 30 "$OUT/$tag.receiver.out" "$OUT/$tag.receiver.err" ||
    { failure "$kind" "$run" "the receiver did not get to 'Waiting for A' in 30 s (see $OUT/$tag.receiver.out and .err)"; return 1; }
  local name
  name=$(basename "$src")
  local sending=()
  [ "$send_mode" = option ] && sending=(--send "$src")
  t0=$EPOCHREALTIME
  job "$tag.sender" "$dir/a.in" env XDG_CONFIG_HOME="$dir/config-a" "$P2PCHAT" client \
    127.0.0.1 "$port" --nick A --to B "${sending[@]}" "${security[@]}"
  local sender=$job_pid
  exec {a_in}>"$dir/a.in"
  fds+=("$a_in")
  if [ "$send_mode" = option ] && [ "$accept_mode" = option ]; then
    wait "$sender" || status=$?
    t1=$EPOCHREALTIME
  else
    # Without --send / --auto-accept: type the commands and watch the output (50 ms steps).
    [ "$send_mode" = typed ] && echo "/send $src" >&"$a_in"
    local accepted=false done=false _
    for _ in $(seq $((TIMEOUT * 50))); do
      if [ "$accept_mode" = typed ] && [ "$accepted" = false ] &&
        grep -aq "offers $name" "$OUT/$tag.receiver.out"; then
        echo /accept >&"$b_in"
        accepted=true
      fi
      if [ "$send_mode" = typed ]; then
        grep -aq "received $name" "$OUT/$tag.sender.out" && { done=true; break; }
      else
        kill -0 "$sender" 2>/dev/null || { done=true; break; }
      fi
      sleep 0.02
    done
    t1=$EPOCHREALTIME
    [ "$done" = true ] || status=124
    if [ "$send_mode" = typed ]; then
      close_fd "$a_in"
      finish "$sender" 10 || true
    else
      wait "$sender" || status=$?
    fi
  fi
  [ "$status" = 0 ] || { failure "$kind" "$run" "the sender exited with $status (see $OUT/$tag.sender.out and .err)"; return 1; }
  wait_line "Saved $name" 10 "$OUT/$tag.receiver.out" "$OUT/$tag.receiver.err" ||
    { failure "$kind" "$run" "the receiver never printed 'Saved $name' (see $OUT/$tag.receiver.out)"; return 1; }
  relay_kb=$(hwm_kb "$relay")
  # End of input: the receiver leaves (and /usr/bin/time writes its peak RSS).
  close_fd "$b_in"
  finish "$receiver" 15 || say "$kind: the receiver did not leave cleanly at end of input"
  stop_server "$relay"
  # What the relay kept on disk (history): the file itself must not be there (a note if it
  # holds more than a tenth of it, and more than 16 MiB).
  local stored_kb note=''
  stored_kb=$(du -sk "$dir/data" 2>/dev/null | cut -f1)
  local allowed_kb=$((SIZE / 10240 > 16384 ? SIZE / 10240 : 16384))
  if [ -n "$stored_kb" ] && [ "$stored_kb" -gt "$allowed_kb" ]; then
    note="the relay's --data-dir holds ${stored_kb} KiB after the transfer"
  fi
  check_copy "$kind" "$run" "$downloads/$name" || return 1
  drop "$downloads" "$dir/data"
  record "$kind" "$run" "$(elapsed "$t0" "$t1")" "$relay_kb" "$(peak_kb "$tag.sender")" \
    "$(peak_kb "$tag.receiver")" "$note$([ "$send_mode$accept_mode" != optionoption ] &&
      echo "${note:+; }sender: $send_mode /send, receiver: $accept_mode /accept (timed by polling)")"
  stop_all
}

run_wormhole() {
  local kind=wormhole run=$2 tag="wormhole.$2"
  [ -z "$wormhole_missing" ] || { failure "$kind" "$run" "not installed: $wormhole_missing"; return 1; }
  local dir=$OUT/$tag mport tport mailbox transit t0 t1 status=0 relay_kb
  rm -rf "$dir"
  local received=$FILES_DIR/$tag.received
  rm -rf "$received"
  mkdir -p "$dir/mailbox" "$dir/transit" "$received"
  big+=("$received")
  mport=$(free_port)
  tport=$(free_port)
  # `python -m twisted` is `twist`, with the venv's path (both servers' plugins).
  (cd "$dir/mailbox" && exec "$wormhole_py" -m twisted wormhole-mailbox \
    --port "tcp:$mport:interface=127.0.0.1" >"$OUT/$tag.mailbox.log" 2>&1 </dev/null) &
  mailbox=$!
  servers+=("$mailbox")
  log_command "# wormhole mailbox (cwd $dir/mailbox):" "$wormhole_py" -m twisted wormhole-mailbox \
    --port "tcp:$mport:interface=127.0.0.1"
  (cd "$dir/transit" && exec "$wormhole_py" -m twisted transitrelay \
    --port "tcp:$tport:interface=127.0.0.1" >"$OUT/$tag.transit.log" 2>&1 </dev/null) &
  transit=$!
  servers+=("$transit")
  log_command "# wormhole transit relay (cwd $dir/transit):" "$wormhole_py" -m twisted \
    transitrelay --port "tcp:$tport:interface=127.0.0.1"
  wait_listen "$mport" || { failure "$kind" "$run" "the mailbox server did not start (see $OUT/$tag.mailbox.log)"; return 1; }
  wait_listen "$tport" || { failure "$kind" "$run" "the transit relay did not start (see $OUT/$tag.transit.log)"; return 1; }
  local common=(wormhole --relay-url "ws://127.0.0.1:$mport/v1" --transit-helper
    "tcp:127.0.0.1:$tport")
  local code="$((run + 1))-files-bench" name
  name=$(basename "$src")
  t0=$EPOCHREALTIME
  job "$tag.sender" /dev/null "${common[@]}" send --hide-progress --no-listen --code "$code" \
    "$src"
  local sender=$job_pid
  job "$tag.receiver" /dev/null "${common[@]}" receive --hide-progress --no-listen \
    --accept-file --output-file "$received/$name" "$code"
  local receiver=$job_pid
  local sender_status=0
  wait "$receiver" || status=$?
  wait "$sender" || sender_status=$?
  t1=$EPOCHREALTIME
  [ "$status" != 0 ] || status=$sender_status
  relay_kb=$(hwm_kb "$transit")
  [ "$status" = 0 ] || { failure "$kind" "$run" "a wormhole end exited with $status (see $OUT/$tag.sender.err, $OUT/$tag.receiver.err)"; return 1; }
  local note=''
  grep -aq "relay:tcp:127.0.0.1:$tport" "$OUT/$tag.receiver.err" "$OUT/$tag.receiver.out" ||
    note="the receiver's output does not say it went through the transit relay (relay:tcp:127.0.0.1:$tport)"
  stop_server "$mailbox"
  stop_server "$transit"
  check_copy "$kind" "$run" "$received/$name" || return 1
  drop "$received"
  record "$kind" "$run" "$(elapsed "$t0" "$t1")" "$relay_kb" "$(peak_kb "$tag.sender")" \
    "$(peak_kb "$tag.receiver")" "$note"
  stop_all
}

failed=()
for run in $(seq "$REPEAT"); do
  for target in $TARGETS; do
    say "run $run/$REPEAT: $target ($SIZE bytes)"
    case $target in
      direct | socat-relay) runner=run_socat ;;
      p2pchat | p2pchat-plain) runner=run_p2pchat ;;
      wormhole) runner=run_wormhole ;;
      *) say "unknown target $target"; exit 2 ;;
    esac
    if ! "$runner" "$target" "$run"; then
      failed+=("$target")
      stop_all
    fi
  done
done

python3 - "$results" "$TARGETS" "$SIZE" "$OUT/versions.txt" <<'EOF'
import json, statistics, sys
results, targets, size = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
try:
    versions = [l.strip() for l in open(sys.argv[4]) if l.strip()]
except OSError:
    versions = []
runs, errors, notes = {}, {}, {}
for d in map(json.loads, open(results)):
    if "error" in d:
        errors.setdefault(d["kind"], []).append(d["error"])
    else:
        runs.setdefault(d["kind"], []).append(d)
        if d.get("note"):
            notes.setdefault(d["kind"], set()).add(d["note"])
names = {
    "direct": "direct TCP copy (socat, no relay)",
    "socat-relay": "socat byte relay in the middle",
    "p2pchat-plain": "p2pchat --plaintext (end-to-end on)",
    "p2pchat": "p2pchat TLS + end-to-end",
    "wormhole": "magic-wormhole via transit relay",
}
def seconds(kind):
    ds = runs.get(kind)
    return statistics.median_low([d["seconds"] for d in ds]) if ds else None
def mbps(kind):
    s = seconds(kind)
    return size / 1e6 / s if s else None
def peak(kind, field):
    vals = [d[field] for d in runs.get(kind, []) if d.get(field) is not None]
    return max(vals) / 1024 if vals else None
def show(v, decimals):
    return "-" if v is None else f"{v:,.{decimals}f}"
repeat = max((len(ds) for ds in runs.values()), default=0)
header = ["target", "seconds", "MB/s", "relay MiB", "sender MiB", "receiver MiB", "runs"]
table = [header]
for t in targets:
    table.append([names.get(t, t), show(seconds(t), 3), show(mbps(t), 1),
                  show(peak(t, "relay_kb"), 1), show(peak(t, "sender_kb"), 1),
                  show(peak(t, "receiver_kb"), 1),
                  f"{len(runs.get(t, []))}" + (f" ({len(errors[t])} failed)" if t in errors else "")])
widths = [max(len(r[i]) for r in table) for i in range(len(header))]
def fmt(r):
    return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
med = f"medians of {repeat} runs (peak RSS: the highest); " if repeat > 1 else ""
print(f"{med}file {size:,} bytes ({size / 2**20:,.0f} MiB) over loopback; seconds from the sender's start "
      f"until the receiver has it all (p2pchat and wormhole: until the sender got the receiver's hash check); "
      f"MB/s = 10^6 bytes/s; peak RSS per process (relay: -, none)")
print(fmt(header))
print("  ".join("-" * w for w in widths))
for r in table[1:]:
    print(fmt(r))
print()
def ratio(a, b):
    ra, rb = mbps(a), mbps(b)
    return ra / rb if ra and rb else None
checks = [
    ("p2pchat --plaintext (no TLS; chunks still encrypted end to end) through the relay at least 50% of "
     "a direct TCP copy, p2pchat-plain/direct", ratio("p2pchat-plain", "direct"), 0.5),
    ("fully encrypted p2pchat (TLS on both legs + end to end) at least 2x magic-wormhole through its "
     "transit relay, p2pchat/wormhole", ratio("p2pchat", "wormhole"), 2.0),
]
for what, r, goal in checks:
    if r is None:
        print(f"target not measured: {what}")
    else:
        print(f"target {'met:   ' if r >= goal else 'MISSED:'} {what} ({r:.2f})")
for what, a, b in (("socat byte relay / direct", "socat-relay", "direct"),
                   ("p2pchat --plaintext / socat byte relay", "p2pchat-plain", "socat-relay"),
                   ("p2pchat TLS / p2pchat --plaintext", "p2pchat", "p2pchat-plain")):
    r = ratio(a, b)
    if r is not None:
        print(f"for reference: {what}: {r:.2f}")
if errors or notes:
    print()
for kind, errs in errors.items():
    for e in dict.fromkeys(errs):
        print(f"FAILED: {names.get(kind, kind)}: {e}")
for kind, ns in notes.items():
    for n in sorted(ns):
        print(f"note: {names.get(kind, kind)}: {n}")
if versions:
    print("setup: " + "; ".join(versions))
EOF
say "logs, results.jsonl and the commands run (commands.txt) in $OUT"
if [ ${#failed[@]} -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
