#!/bin/bash
# W7: the cost of cluster routing. W3/128 (128 tasks sharing one client,
# GET of 16 keys) through redis.cluster against a local 3-master cluster
# (tools/redis-cluster.sh), and through a plain client to one redis-server,
# in one run: ops/s for both (median of REPS) and callgrind instructions
# per op for both. Target: cluster <= 1.15 x plain instructions per op.
#
#   bench/w7.sh [BUILD_DIR]          (default build)
#
# Environment: REPS=3, W7_OPS=300000 (timed ops), BENCH_CALLGRIND=1,
# W7_CG="20000 100000" (the two callgrind run lengths).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
REPS=${REPS:-3}
OPS=${W7_OPS:-300000}
CG=${W7_CG:-"20000 100000"}
CALLGRIND=${BENCH_CALLGRIND:-1}
export LUA_PATH_5_4="$root/lua/?.lua;$root/lua/?/init.lua"
export LUA_CPATH_5_4="$build/?.so"

work=$(mktemp -d /tmp/levr-w7.XXXXXX)
cleanup() {
  "$root/tools/redis-cluster.sh" stop "$work/cluster" >/dev/null 2>&1 || true
  "$root/tools/redis-server.sh" stop "$work/single" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ports=$("$root/tools/redis-cluster.sh" start "$work/cluster")
cport=${ports%% *}
sport=$("$root/tools/redis-server.sh" start "$work/single" \
  --user alice on '>s3cret' '~*' '&*' '+@all')

run() { # mode port ops -> "ops secs cpu"
  local line
  line=$(timeout 300 lua5.4 "$here/w7.lua" "$1" "127.0.0.1:$2" "$3" 128)
  echo "$line" | sed 's/.*ops=\([0-9]*\) secs=\([0-9.]*\) cpu=\([0-9.]*\)/\1 \2 \3/'
}

declare -A rates
for ((r = 1; r <= REPS; r++)); do
  for mode in plain cluster; do
    port=$sport; [ $mode = cluster ] && port=$cport
    read -r o s c < <(run $mode "$port" "$OPS")
    rates[$mode]+="$(awk -v o="$o" -v s="$s" 'BEGIN { printf "%.0f", o / s }') "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "W7 (W3/128, $OPS ops, median of $REPS):"
for mode in plain cluster; do
  printf '  %-8s %10s ops/s   (runs: %s)\n' "$mode" \
    "$(echo "${rates[$mode]}" | median)" "${rates[$mode]% }"
done

if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null; then
  declare -A ipo
  for mode in plain cluster; do
    port=$sport; [ $mode = cluster ] && port=$cport
    res=()
    for n in $CG; do
      f=$work/cg-$mode-$n.out
      timeout 900 valgrind -q --tool=callgrind --callgrind-out-file="$f" \
        lua5.4 "$here/w7.lua" "$mode" "127.0.0.1:$port" "$n" 128 >/dev/null
      res+=("$n" "$(awk '/^totals:/ { print $2; exit }' "$f")")
    done
    ipo[$mode]=$(awk -v o1="${res[0]}" -v i1="${res[1]}" -v o2="${res[2]}" \
      -v i2="${res[3]}" 'BEGIN { printf "%.0f", (i2 - i1) / (o2 - o1) }')
  done
  printf '  callgrind: plain %s, cluster %s instructions per op: %.3fx (target <= 1.15x)\n' \
    "${ipo[plain]}" "${ipo[cluster]}" \
    "$(awk -v a="${ipo[cluster]}" -v b="${ipo[plain]}" 'BEGIN { print a / b }')"
fi
