#!/usr/bin/env bash
# W8, client-side caching: ops/s of 20 tasks reading 1,000 hot keys (90%
# hits) with the cache and without it, in the same run, while one writer
# changes 1% of the hot keys per second; then callgrind instructions per
# cached hit. See bench/w8.lua for the workload.
#
#   bench/w8.sh [BUILD_DIR]
#
# Environment: W8_SECONDS=5 (each phase), W8_CALLGRIND=1 (0 skips the
# per-hit measurement; needs valgrind).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
secs=${W8_SECONDS:-5}
out=$here/out/w8
mkdir -p "$out"
export LUA_PATH_5_4="$root/lua/?.lua;$root/lua/?/init.lua"
export LUA_CPATH_5_4="$build/?.so"

srv=$out/redis
cleanup() { "$root/tools/redis-server.sh" stop "$srv"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$srv"
PORT=$("$root/tools/redis-server.sh" start "$srv")
lua5.4 "$here/w8.lua" 127.0.0.1 "$PORT" load
lua5.4 "$here/w8.lua" 127.0.0.1 "$PORT" run "$secs"

if [ "${W8_CALLGRIND:-1}" = 1 ]; then
  command -v valgrind >/dev/null || { echo "w8.sh: valgrind not installed" >&2; exit 1; }
  ir() {
    valgrind -q --tool=callgrind --callgrind-out-file="$out/cg.out" \
      lua5.4 "$here/w8.lua" 127.0.0.1 "$PORT" hits "$1" >/dev/null
    awk '/^totals:/ { print $2; exit }' "$out/cg.out"
  }
  n1=20000 n2=120000
  i1=$(ir $n1) i2=$(ir $n2)
  awk -v a="$i1" -v b="$i2" -v n1=$n1 -v n2=$n2 \
    'BEGIN { printf "W8 instructions per cached hit=%.0f (callgrind, whole process, c:cmd(\"GET\", k) from Lua)\n", (b - a) / (n2 - n1) }'
fi
