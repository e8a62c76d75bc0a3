-- Pub/sub: a redis.subscriber (its own connection, messages as tables,
-- resubscribed by itself after a reconnect), then the plain way: SUBSCRIBE
-- with cmd() and every further reply from read().
--
-- Run it (Redis on 127.0.0.1:6379, or the server REDIS_ADDR names:
-- "host:port" or a URL such as redis://:password@127.0.0.1:6390/0):
--   in the checkout, after `make build`:
--     lua5.4 tools/run-lua.lua examples/pubsub.lua
--   with the rock in a tree (`make rock` puts it in ./.rocks), from any
--   directory:
--     eval "$(/path/to/lev-redis/tools/env.sh /path/to/lev-redis/.rocks)"
--     lua5.4 /path/to/lev-redis/examples/pubsub.lua
local lev = require("lev")
local redis = require("redis")

local addr = os.getenv("REDIS_ADDR")

lev.run(function()
  -- 1. The subscriber. subscribe() returns once the server has confirmed
  -- every channel; reconnect is on unless the config says otherwise.
  local sub = assert(redis.subscriber(addr))
  sub:on("disconnect", function(err) print("disconnected:", err) end)
  sub:on("reconnect", function() print("back, subscriptions restored") end)
  assert(sub:subscribe("news", "alerts"))
  assert(sub:psubscribe("user:*"))

  lev.spawn(function()
    local pub = assert(redis.connect(addr))
    for i = 1, 3 do pub:cmd("PUBLISH", "news", "story " .. i) end
    pub:cmd("PUBLISH", "user:42", "logged in")
    pub:cmd("PUBLISH", "alerts", "done")
    pub:close()
  end)

  for msg in sub:messages() do
    -- { kind = "message", channel = "news", payload = "story 1" }
    -- { kind = "pmessage", pattern = "user:*", channel = "user:42", ... }
    print(msg.kind, msg.pattern or "-", msg.channel, msg.payload)
    if msg.channel == "alerts" then break end
  end
  print("subscribed to:", table.concat(sub:subscriptions().channels, ", "))
  print("next with a timeout:", sub:next(0.1))  --> nil  timeout
  sub:close()

  -- 2. The plain client: cmd() returns the first confirmation; the others
  -- and every message come from read(), tagged with their RESP type.
  local c = assert(redis.connect(addr))
  print("subscribed:", table.unpack(assert(c:cmd("SUBSCRIBE", "news"))))
  local pub = assert(redis.connect(addr))
  pub:cmd("PUBLISH", "news", "via read()")
  pub:close()
  local r = assert(c:read())             -- { type = "array", value = {...} }
  print(r.type, table.unpack(r.value))   --> array message news via read()
  c:close()   -- a subscribed connection is never pooled: this closes it
end)
