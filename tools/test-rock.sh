#!/bin/sh
# make test's rock suite, both ways a project gets lev-redis:
#  1. `luarocks make --tree TREE` from the checkout;
#  2. `make pack`, then `luarocks install` of the .src.rock alone, copied
#     to a directory outside the checkout, with no network (inside
#     `unshare -rn` where the kernel allows it, and with no rocks server in
#     any case), into a second tree.
# After each, a plain lua5.4 run from / with only that tree on its paths
# (LUA_PATH_5_4/LUA_CPATH_5_4 from tools/env.sh) must find "redis" in the
# tree and talk to the bundled mock server.
#
#   tools/test-rock.sh [WORKDIR]     (default: a temp dir)
set -eu
WORK=${1:-$(mktemp -d)}
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# The program: only TREE's modules, checked for where they came from.
cat >"$WORK/app.lua" <<'LUA'
local label, tree = arg[1], arg[2]
local lev, redis, mock = require("lev"), require("redis"), require("redis.mock")
for name, path in pairs({
    redis = package.searchpath("redis", package.path),
    mock = package.searchpath("redis.mock", package.path),
    lev = package.searchpath("lev", package.cpath),
    core = package.searchpath("redis.core", package.cpath) }) do
  assert(path and path:sub(1, #tree + 1) == tree .. "/",
         name .. " from " .. tostring(path) .. ", not " .. tree)
end
lev.run(function()
  local srv = assert(mock.start({ port = 0 }))
  local c = assert(redis.connect("redis://127.0.0.1:" .. srv:port() .. "/1"))
  assert(c:cmd("SET", "k", "from the rock") == "OK")
  assert(c:cmd("GET", "k") == "from the rock")
  c:close(true)
  srv:close()
end)
print(label .. " ok: redis " .. redis.VERSION .. " from " .. tree)
LUA

try_tree() { # label tree
  ( eval "$("$TOP/tools/env.sh" "$2")"
    unset LUA_PATH LUA_CPATH LUA_INIT LUA_INIT_5_4
    cd /   # nothing from the source tree on the paths
    lua5.4 "$WORK/app.lua" "$1" "$2" )
}

# 1. luarocks make from the checkout.
luarocks --lua-version 5.4 make --tree "$WORK/make-tree" \
  rockspec/lev-redis-scm-1.rockspec
try_tree "luarocks make" "$WORK/make-tree"

# 2. make pack, then the .src.rock alone, offline.
rock=$(make -s pack PACK="$WORK/pack" | tail -1)
mkdir -p "$WORK/elsewhere/no-server"
cp "$rock" "$WORK/elsewhere/"
cd "$WORK/elsewhere"
offline=""
if unshare -rn true 2>/dev/null; then
  offline="unshare -rn"
else
  echo "note: unshare -rn is not allowed here; installing without a rocks server instead"
fi
$offline luarocks --lua-version 5.4 install --tree "$WORK/pack-tree" \
  --only-server="$WORK/elsewhere/no-server" "$(basename "$rock")"
try_tree "src.rock" "$WORK/pack-tree"
