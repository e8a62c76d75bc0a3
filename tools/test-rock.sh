#!/bin/sh
# Installs the rock into a fresh tree (TREE, default a temp dir) and checks
# that a plain lua5.4 using only that tree's paths can require "redis" and
# talk to the bundled mock server.
set -eu
TREE=${1:-$(mktemp -d)}
cd "$(dirname "$0")/.."
luarocks --lua-version 5.4 make --tree "$TREE" rockspec/lev-redis-scm-1.rockspec
eval "$(luarocks --lua-version 5.4 --tree "$TREE" path)"
cd /   # nothing from the source tree on the paths
lua5.4 -e '
  local lev, redis, mock = require("lev"), require("redis"), require("redis.mock")
  assert(package.searchpath("redis", package.path):find("'"$TREE"'", 1, true))
  lev.run(function()
    local srv = assert(mock.start({ port = 0 }))
    local c = assert(redis.connect({ host = "127.0.0.1", port = srv:port() }))
    assert(c:cmd("SET", "k", "from the rock") == "OK")
    assert(c:cmd("GET", "k") == "from the rock")
    c:close(true)
    srv:close()
  end)
  print("rock ok: " .. redis.VERSION)
'
