#!/bin/sh
# make example: runs examples/quickstart.lua with the rock installed in
# TREE, against Redis on 127.0.0.1:6379 if one answers, or else against the
# bundled mock server started on a free port (and stopped afterwards).
set -u
TREE=${1:-.rocks}
cd "$(dirname "$0")/.."
eval "$(luarocks --lua-version 5.4 --tree "$TREE" path)"
if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; then
  echo "Redis answers on 127.0.0.1:6379: running the quick-start against it"
  REDIS_ADDR=127.0.0.1:6379 lua5.4 examples/quickstart.lua
  exit $?
fi
dir=$(mktemp -d)
# the mock finds the rock's modules through the path set above
mock=$(tools/mock-server.sh "$dir") || { rm -rf "$dir"; exit 1; }
pid=${mock% *} port=${mock#* }
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
echo "No Redis on 127.0.0.1:6379: running the quick-start against the bundled mock server on port $port"
REDIS_ADDR=127.0.0.1:$port lua5.4 examples/quickstart.lua
