-- Pub/sub: SUBSCRIBE with cmd(), then every message comes from read().
--
-- Run it (Redis on 127.0.0.1:6379, or the server REDIS_ADDR names:
-- "host:port" or a URL such as redis://:password@127.0.0.1:6390/0):
--   in the checkout, after `make build`:
--     lua5.4 tools/run-lua.lua examples/pubsub.lua
--   with the rock in a tree (`make rock` puts it in ./.rocks), from any
--   directory:
--     eval "$(/path/to/lev-redis/tools/env.sh /path/to/lev-redis/.rocks)"
--     lua5.4 /path/to/lev-redis/examples/pubsub.lua
--   no Redis at hand? Start the bundled mock first (in the checkout):
--     lua5.4 examples/mock-server.lua --port 6390 &
--     REDIS_ADDR=127.0.0.1:6390 lua5.4 tools/run-lua.lua examples/pubsub.lua
local lev = require("lev")
local redis = require("redis")

local addr = os.getenv("REDIS_ADDR")

lev.run(function()
  local sub = assert(redis.connect(addr))
  local first = assert(sub:cmd("SUBSCRIBE", "news", "alerts"))
  print("subscribed:", first[1], first[2], first[3])   -- subscribe news 1
  local second = assert(sub:read())                    -- the 2nd confirmation
  print("subscribed:", second.value[1], second.value[2], second.value[3])

  lev.spawn(function()
    local pub = assert(redis.connect(addr))
    for i = 1, 3 do pub:cmd("PUBLISH", "news", "story " .. i) end
    pub:cmd("PUBLISH", "alerts", "done")
    pub:close()
  end)

  while true do
    local msg = assert(sub:read())          -- { type = "array", value = {...} }
    local kind, channel, payload = table.unpack(msg.value)
    print(kind, channel, payload)
    if channel == "alerts" then break end
  end
  sub:close()   -- a subscribed connection is never pooled: this closes it
end)
