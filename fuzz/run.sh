#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints, per target, how many inputs it ran and
# whether it found anything. Installs cargo-fuzz and a nightly toolchain if they are missing.
#
#   fuzz/run.sh                 60 seconds per target
#   SECONDS_EACH=600 fuzz/run.sh
#   fuzz/run.sh decode envelope only these targets
#
# Crashing inputs land in fuzz/artifacts/TARGET/ (git-ignored); the script exits 1 if any target
# found one.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${SECONDS_EACH:-60}

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked </dev/null
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal </dev/null

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
printf '%-10s %14s %10s  %s\n' target executions exec/s result
for target in "${targets[@]}"; do
  log="$logs/$target.log"
  if cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
      >"$log" 2>&1; then
    result=clean
  else
    result="FOUND A CRASH (see fuzz/artifacts/$target/; log below)"
    failed=1
  fi
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log" | tail -1)
  printf '%-10s %14s %10s  %s\n' "$target" "${runs:-?}" "${rate:-?}" "$result"
  [ "$result" = clean ] || tail -40 "$log"
done
exit $failed
