-- The connection pool: close() hands the connection back; the next
-- connect() with the same config reuses it (same CLIENT ID on the server).
-- REDIS_CLIENT_POOL_SIZE (default 20, 0 = off) bounds idle connections.
--
-- Run it (Redis on 127.0.0.1:6379, or the server REDIS_ADDR names:
-- "host:port" or a URL such as redis://:password@127.0.0.1:6390/0):
--   in the checkout, after `make build`:
--     lua5.4 tools/run-lua.lua examples/pool.lua
--   with the rock in a tree (`make rock` puts it in ./.rocks), from any
--   directory:
--     eval "$(/path/to/lev-redis/tools/env.sh /path/to/lev-redis/.rocks)"
--     lua5.4 /path/to/lev-redis/examples/pool.lua
--   no Redis at hand? Start the bundled mock first (in the checkout):
--     lua5.4 examples/mock-server.lua --port 6390 &
--     REDIS_ADDR=127.0.0.1:6390 lua5.4 tools/run-lua.lua examples/pool.lua
local lev = require("lev")
local redis = require("redis")

local addr = os.getenv("REDIS_ADDR")

lev.run(function()
  local c = assert(redis.connect(addr))
  local id1 = c:cmd("CLIENT", "ID")
  c:close()                        -- pooled
  print("idle in pool:", redis.pool_size(addr))

  local c2 = assert(redis.connect(addr))
  local id2 = c2:cmd("CLIENT", "ID")
  print("reused:", id1 == id2, id1, id2)
  assert(id1 == id2)

  c2:cmd("SELECT", 1)              -- session state changed: never pooled
  c2:close()
  print("idle after SELECT:", redis.pool_size(addr))

  local c3 = assert(redis.connect(addr))
  print("new connection:", c3:cmd("CLIENT", "ID") ~= id1)
  c3:close(true)                   -- close the socket instead of pooling
end)
