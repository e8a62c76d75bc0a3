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
log=$(mktemp)
lua5.4 examples/mock-server.lua --port 0 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
port=""
i=0
while [ -z "$port" ] && [ $i -lt 50 ]; do
  port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
  i=$((i + 1)); sleep 0.1
done
if [ -z "$port" ]; then
  echo "the mock server did not start:"; cat "$log"; exit 1
fi
echo "No Redis on 127.0.0.1:6379: running the quick-start against the bundled mock server on port $port"
REDIS_ADDR=127.0.0.1:$port lua5.4 examples/quickstart.lua
