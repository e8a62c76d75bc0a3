#!/usr/bin/env bash
# The hot-path guard: callgrind instructions per op of our client for the
# workloads that have a CG column in bench/workloads.txt (W1, W2/100,
# W3/128), compared with bench/baseline.txt. Prints the deltas in %; never
# fails on a regression (make bench-quick), only when it cannot measure.
#
#   bench/quick.sh [BUILD_DIR]            compare with bench/baseline.txt
#   bench/quick.sh --save [BUILD_DIR]     measure and rewrite the baseline
#
# Method: each workload runs under valgrind --tool=callgrind for the two
# lengths N1 < N2 of its CG column; start-up and a fixed warm-up are the
# same in both, so (Ir2 - Ir1) / (N2 - N1) is one op's instructions (the
# whole process in user space: Lua interpreter, our C, libuv, libc). Lua
# seeds its string hash from the clock and how many replies one read
# brings varies a little, so a pair can move by ~1% when server and client
# float between CPUs: both are pinned to one CPU (then W3/128 repeats to
# within ~0.2%), QUICK_REPS pairs run and the median is kept.
#
# Environment: QUICK_REPS=3 (odd), BENCH_TIMEOUT=360 (per valgrind run),
# BENCH_CPU (the CPU server and client share; default the last one, away
# from make bench's CPU 0; wall time does not matter here, so a busy CPU
# only makes the run longer), BENCH_NOPIN=1.
# Needs valgrind, redis-server, lua5.4 and libhiredis-dev (make bench-deps).
# Scratch files go to bench/out/quick/ (your worktree's own).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=$here/out/quick
HOST=127.0.0.1
REPS=${QUICK_REPS:-3}
TMO=${BENCH_TIMEOUT:-360}
CPU=${BENCH_CPU:-$(($(nproc) - 1))}
PIN=()
if [ "${BENCH_NOPIN:-0}" != 1 ] && command -v taskset >/dev/null; then
  PIN=(taskset -c "$CPU")
fi
save=0
build=
for a in "$@"; do
  case $a in
    --save) save=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "quick.sh: unknown option $a" >&2; exit 2 ;;
    *) build=$a ;;
  esac
done
build=${build:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
die() { echo "quick.sh: $*" >&2; exit 1; }
for t in valgrind redis-server lua5.4 cc; do
  command -v "$t" >/dev/null || die "$t is not installed (make bench-deps)"
done

export LUA_PATH_5_4="$root/lua/?.lua;$root/lua/?/init.lua"
export LUA_CPATH_5_4="$build/?.so"
why=$(lua5.4 "$here/bench.lua" probe 2>&1) ||
  die "our client cannot be loaded from $build: $why"

mkdir -p "$out"
cc -std=c99 -O2 -Wall -Wextra -Werror -o "$out/hiredis_sync" \
  "$here/hiredis_sync.c" -lhiredis || die "cannot build the data loader"

srv=$out/redis
cleanup() { "$root/tools/redis-server.sh" stop "$srv"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$srv"
PORT=$("$root/tools/redis-server.sh" start "$srv") || die "cannot start redis-server"
# Every server thread on the client's CPU (see the header).
[ "${#PIN[@]}" = 0 ] || taskset -a -p -c "$CPU" "$(cat "$srv/redis.pid")" >/dev/null
"$out/hiredis_sync" "$HOST" "$PORT" load

# cg_ir N WORK [DEPTH]: total instructions of one run of N ops.
cg_ir() {
  local n=$1 f=$out/cg.out; shift
  timeout -k 5 "$TMO" "${PIN[@]}" valgrind -q --tool=callgrind --callgrind-out-file="$f" \
    lua5.4 "$here/bench.lua" "$HOST" "$PORT" "$1" "$n" "${@:2}" >/dev/null ||
    die "callgrind run of $1 $n failed or timed out"
  awk '/^totals:/ { print $2; exit }' "$f"
}

declare -A base=()
if [ -f "$here/baseline.txt" ]; then
  while read -r l v _; do
    case $l in ''|'#'*) continue ;; esac
    base[$l]=$v
  done <"$here/baseline.txt"
fi

results=()
printf '%-10s %12s %12s %9s\n' workload baseline now delta
while read -r label work depth _ops cg _clients; do
  case $label in ''|'#'*) continue ;; esac
  [ "$cg" = - ] && continue
  n1=${cg%%:*} n2=${cg##*:}
  dargs=(); [ "$depth" = - ] || dargs=("$depth")
  per=()
  for ((r = 0; r < REPS; r++)); do
    i1=$(cg_ir "$n1" "$work" "${dargs[@]}")
    i2=$(cg_ir "$n2" "$work" "${dargs[@]}")
    per+=("$(awk -v a="$i1" -v b="$i2" -v n1="$n1" -v n2="$n2" \
      'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }')")
  done
  med=$(printf '%s\n' "${per[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  results+=("$label $med")
  b=${base[$label]:-}
  if [ -n "$b" ]; then
    printf '%-10s %12.0f %12.0f %+8.2f%%   (pairs: %s)\n' "$label" "$b" "$med" \
      "$(awk -v a="$b" -v c="$med" 'BEGIN { print (c - a) / a * 100 }')" "${per[*]}"
  else
    printf '%-10s %12s %12.0f %9s   (pairs: %s)\n' "$label" - "$med" "no base" "${per[*]}"
  fi
done <"$here/workloads.txt"

if [ "$save" = 1 ]; then
  # The client's code is csrc/, lua/ and the build files: name the last
  # commit that changed them, which is what the figures belong to.
  commit=$(git -C "$root" log -1 --format=%h -- csrc lua CMakeLists.txt 2>/dev/null || echo '?')
  dirty=$(git -C "$root" status --porcelain -- csrc lua CMakeLists.txt 2>/dev/null | head -1)
  pinned="pinned to CPU $CPU"; [ "${#PIN[@]}" = 0 ] && pinned=unpinned
  {
    echo "# bench-quick baseline: callgrind instructions per op of lev-redis"
    echo "# (bench/quick.sh --save, median of $REPS pairs, $pinned), client code"
    echo "# of commit $commit${dirty:+ with local changes}, measured $(date -u '+%Y-%m-%d %H:%M UTC'); $(lua5.4 -v 2>&1 | awk '{ print $1, $2 }'), libuv $(pkg-config --modversion libuv 2>/dev/null || echo '?')."
    echo "# LABEL INSTR_PER_OP"
    printf '%s\n' "${results[@]}"
  } >"$here/baseline.txt"
  echo "baseline written: bench/baseline.txt"
fi
echo "(instructions per op from callgrind; the hot-path budget is +3%; this never fails the build)"
