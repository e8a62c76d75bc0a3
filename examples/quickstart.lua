-- Quick start: connect, SET, GET, close.
--   lua5.4 examples/quickstart.lua            (Redis on 127.0.0.1:6379)
--   REDIS_ADDR=127.0.0.1:7000 lua5.4 examples/quickstart.lua
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
