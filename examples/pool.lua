-- The connection pool: close() hands the connection back; the next
-- connect() with the same config reuses it (same CLIENT ID on the server).
-- REDIS_CLIENT_POOL_SIZE (default 20, 0 = off) bounds idle connections.
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
