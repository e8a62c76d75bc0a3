#!/usr/bin/env bash
# W6, pub/sub: one publisher pipelining PUBLISH of 16-byte messages (100 in
# flight; bench/hiredis_sub.c pub), one subscriber receiving them; our
# redis.subscriber through next() (bench/w6_sub.lua) against a subscriber
# on hiredis async with libuv (bench/hiredis_sub.c sub), in the same run,
# against one throw-away redis-server started here.
#
#   bench/w6.sh [BUILD_DIR]        (default build)
#
# Reports, per subscriber, messages/s received and CPU per message (the
# subscriber's own user + system time over the timed messages; median of
# REPS interleaved runs), and callgrind instructions per message:
# (Ir(N2) - Ir(N1)) / (N2 - N1) of two runs of the subscriber process, so
# start-up and warm-up cancel. Writes bench/out/w6/results.md and prints it.
#
# Environment: REPS=3, W6_N=500000 (timed messages, x BENCH_SCALE),
# W6_WARM=20000, W6_CG=20000:100000 (callgrind lengths; BENCH_CALLGRIND=0
# skips them), BENCH_CPU=0 and BENCH_NOPIN=1 as in run.sh (default: server,
# publisher and subscriber pinned to one CPU), BENCH_TIMEOUT=120.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=$here/out/w6
HOST=127.0.0.1
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
REPS=${REPS:-3}
SCALE=${BENCH_SCALE:-1}
N=$(awk -v n="${W6_N:-500000}" -v s="$SCALE" 'BEGIN { v = int(n * s); if (v < 2) v = 2; print v }')
WARM=${W6_WARM:-20000}
CG=${W6_CG:-20000:100000}
CALLGRIND=${BENCH_CALLGRIND:-1}
CPU=${BENCH_CPU:-0}
TMO=${BENCH_TIMEOUT:-120}
die() { echo "w6.sh: $*" >&2; exit 1; }
for t in cc pkg-config redis-server redis-cli lua5.4; do
  command -v "$t" >/dev/null || die "$t is not installed (make bench-deps)"
done
PIN=()
[ "${BENCH_NOPIN:-0}" = 1 ] || PIN=(taskset -c "$CPU")
pin() { "${PIN[@]}" "$@"; }
if [ "$CALLGRIND" = 1 ] && ! command -v valgrind >/dev/null; then
  echo "w6.sh: valgrind not installed: no instruction counts" >&2; CALLGRIND=0
fi
export LUA_PATH_5_4="$root/lua/?.lua;$root/lua/?/init.lua"
export LUA_CPATH_5_4="$build/?.so"
mkdir -p "$out"
cc -std=c99 -O2 -Wall -Wextra -Werror $(pkg-config --cflags libuv) \
  -o "$out/hiredis_sub" "$here/hiredis_sub.c" -lhiredis \
  $(pkg-config --libs libuv) || die "cannot build bench/hiredis_sub.c"

srv=$out/redis
cleanup() { "$root/tools/redis-server.sh" stop "$srv" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$srv"
PORT=$(pin "$root/tools/redis-server.sh" start "$srv") || die "cannot start redis-server"
# A subscriber under callgrind falls far behind: Redis must keep it.
redis-cli -h $HOST -p "$PORT" CONFIG SET client-output-buffer-limit \
  "pubsub 0 0 0" >/dev/null

# sub_cmd CLIENT WARM N: the subscriber's command line.
sub_cmd() {
  case $1 in
    lev-redis) echo lua5.4 "$here/w6_sub.lua" $HOST "$PORT" "$2" "$3" ;;
    hiredis-async) echo "$out/hiredis_sub" $HOST "$PORT" sub "$2" "$3" ;;
  esac
}

# once CLIENT WARM N [WRAP...]: runs one subscriber (WRAP prefixes it, e.g.
# valgrind) fed by the publisher; prints the subscriber's W6 line.
once() {
  local client=$1 warm=$2 n=$3 log=$out/sub.log pid i; shift 3
  : >"$log"
  # shellcheck disable=SC2046
  timeout -k 5 "$TMO" "$@" $(sub_cmd "$client" "$warm" "$n") >"$log" 2>&1 &
  pid=$!
  for ((i = 0; i < 2000; i++)); do
    grep -q '^ready' "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  grep -q '^ready' "$log" || { cat "$log" >&2; die "$client did not subscribe"; }
  pin "$out/hiredis_sub" $HOST "$PORT" pub $((warm + n)) ||
    die "publisher failed"
  wait "$pid" || { cat "$log" >&2; die "$client subscriber failed"; }
  grep '^W6 ' "$log" || { cat "$log" >&2; die "$client printed no W6 line"; }
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A rate=() cpu=() ir=()
clients=(lev-redis hiredis-async)
for c in "${clients[@]}"; do rate[$c]=""; cpu[$c]=""; done
for ((r = 0; r < REPS; r++)); do
  for c in "${clients[@]}"; do
    line=$(once "$c" "$WARM" "$N" "${PIN[@]}")
    ops=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' <<<"$line")
    secs=$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<<"$line")
    c_s=$(sed -n 's/.* cpu=\([0-9.]*\).*/\1/p' <<<"$line")
    rate[$c]+="$(awk -v o="$ops" -v s="$secs" 'BEGIN { printf "%.0f", o / s }') "
    cpu[$c]+="$(awk -v o="$ops" -v s="$c_s" 'BEGIN { printf "%.3f", s / o * 1e6 }') "
    echo "w6: $c run $((r + 1)): $line" >&2
  done
done

if [ "$CALLGRIND" = 1 ]; then
  n1=${CG%%:*} n2=${CG##*:}
  for c in "${clients[@]}"; do
    f=$out/cg.out
    once "$c" 2000 "$n1" valgrind -q --tool=callgrind --callgrind-out-file="$f" >/dev/null
    i1=$(awk '/^totals:/ { print $2; exit }' "$f")
    once "$c" 2000 "$n2" valgrind -q --tool=callgrind --callgrind-out-file="$f" >/dev/null
    i2=$(awk '/^totals:/ { print $2; exit }' "$f")
    ir[$c]=$(awk -v a="$i1" -v b="$i2" -v n1="$n1" -v n2="$n2" \
      'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }')
  done
fi

{
  echo "## W6: pub/sub, 16-byte messages"
  echo
  echo "One publisher pipelining PUBLISH (100 in flight), one subscriber;"
  echo "$N timed messages after $WARM of warm-up, median of $REPS runs;"
  if [ ${#PIN[@]} -gt 0 ]; then echo "server, publisher and subscriber pinned to CPU $CPU."
  else echo "unpinned."; fi
  echo
  echo "| subscriber | messages/s | CPU µs/message | instructions/message |"
  echo "|---|---:|---:|---:|"
  for c in "${clients[@]}"; do
    echo "| $c | $(tr ' ' '\n' <<<"${rate[$c]}" | grep . | median) |" \
      "$(tr ' ' '\n' <<<"${cpu[$c]}" | grep . | median) | ${ir[$c]:--} |"
  done
  lr=$(tr ' ' '\n' <<<"${rate[lev-redis]}" | grep . | median)
  hr=$(tr ' ' '\n' <<<"${rate[hiredis-async]}" | grep . | median)
  li=${ir[lev-redis]:-} hi=${ir[hiredis-async]:-}
  echo
  echo "lev-redis / hiredis async: messages/s $(awk -v a="$lr" -v b="$hr" 'BEGIN { printf "%.2fx", a / b }') (target >= 1.0x)$(
    [ -n "$li" ] && awk -v a="$li" -v b="$hi" 'BEGIN { printf ", instructions per message %.2fx (target <= 1.0x)", a / b }')"
} >"$out/results.md"
cat "$out/results.md"
