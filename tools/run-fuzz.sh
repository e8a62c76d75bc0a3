#!/bin/sh
# Runs every libFuzzer target (fuzz_*) found in BUILD_DIR for SECONDS each.
#
#   tools/run-fuzz.sh BUILD_DIR SECONDS
#
# Each target fuzz_<name> starts from a temporary copy of
# csrc/fuzz/corpus/<name>/, so the seeds in the repository stay as they are.
# Crash inputs are kept as BUILD_DIR/fuzz-artifacts/<target>-crash-*, the
# full output as BUILD_DIR/fuzz-<target>.log. Prints one line per target:
#   fuzz <name>: <N> executions in <S> s, <R>/s
# and exits non-zero when any target found a crash, leak or timeout.
set -u

if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build=$1
secs=$2
case $secs in
  ''|*[!0-9]*) echo "run-fuzz: SECONDS must be a whole number" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
arts="$build/fuzz-artifacts"
mkdir -p "$arts"
work=$(mktemp -d "${TMPDIR:-/tmp}/levr-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM

found=0
failed=0
for bin in "$build"/fuzz_*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  found=1
  target=$(basename "$bin")
  name=${target#fuzz_}
  corpus="$work/$name"
  mkdir -p "$corpus"
  if [ -d "$root/csrc/fuzz/corpus/$name" ]; then
    cp -R "$root/csrc/fuzz/corpus/$name/." "$corpus/"
  fi
  log="$build/fuzz-$target.log"
  t0=$(date +%s)
  "$bin" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$arts/$target-" "$corpus" >"$log" 2>&1
  rc=$?
  t1=$(date +%s)

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" |
         tail -n 1)
  [ -n "$took" ] || took=$((t1 - t0))
  echo "fuzz $name: ${execs:-0} executions in $took s, ${rate:-0}/s"

  if [ $rc -ne 0 ]; then
    failed=1
    echo "fuzz $name: FAILED (exit $rc); log: $log" >&2
    grep -E 'ERROR|runtime error|invariant failed|Test unit written' "$log" |
      head -n 20 >&2
  fi
done

if [ $found -eq 0 ]; then
  echo "run-fuzz: no fuzz_* targets in $build" >&2
  exit 1
fi
exit $failed
