#!/bin/sh
# Starts redis.mock (examples/mock-server.lua) in the background on a free
# loopback port and prints "PID PORT" once it listens; the caller stops it
# by that PID. Its output goes to DIR/mock.out and DIR/mock.err.
#
#   tools/mock-server.sh DIR      (LEVR_BUILD: the build, default build/)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
mkdir -p "$dir"
: > "$dir/mock.out"
rm -f "$dir/mock.err"
LEVR_BUILD=${LEVR_BUILD:-$here/build} lua5.4 "$here/examples/mock-server.lua" \
  --port 0 > "$dir/mock.out" 2> "$dir/mock.err" &
pid=$!
i=0
while ! grep -q "^listening on" "$dir/mock.out" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    echo "the mock did not start:" >&2; cat "$dir/mock.err" >&2; exit 1
  fi
  sleep 0.1
done
echo "$pid $(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$dir/mock.out")"
