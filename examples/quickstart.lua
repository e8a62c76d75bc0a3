-- Quick start: connect, SET, GET, close.
--
-- Run it (Redis on 127.0.0.1:6379, or the server REDIS_ADDR names:
-- "host:port" or a URL such as redis://:password@127.0.0.1:6390/0):
--   in the checkout, after `make build`:
--     lua5.4 tools/run-lua.lua examples/quickstart.lua
--   with the rock in a tree (`make rock` puts it in ./.rocks), from any
--   directory:
--     eval "$(/path/to/lev-redis/tools/env.sh /path/to/lev-redis/.rocks)"
--     lua5.4 /path/to/lev-redis/examples/quickstart.lua
--   no Redis at hand? Start the bundled mock first (in the checkout):
--     lua5.4 examples/mock-server.lua --port 6390 &
--     REDIS_ADDR=127.0.0.1:6390 lua5.4 tools/run-lua.lua examples/quickstart.lua
local lev = require("lev")
local redis = require("redis")

local addr = os.getenv("REDIS_ADDR") or "127.0.0.1:6379"

lev.run(function()
  local c = assert(redis.connect(addr))
  assert(c:cmd("SET", "greeting", "hello"))
  print("GET greeting ->", c:cmd("GET", "greeting"))
  print("GET missing  ->", c:get("no-such-key"))   --> nil  not found
  print("INCR visits  ->", c:incr("visits"))       --> an integer
  c:close()                                        -- back to the pool
end)
