-- Pipelining: many commands, one round trip. Each result is { value },
-- { nil } for NULL, or { nil, "error text" }.
--
-- Run it (Redis on 127.0.0.1:6379, or the server REDIS_ADDR names:
-- "host:port" or a URL such as redis://:password@127.0.0.1:6390/0):
--   in the checkout, after `make build`:
--     lua5.4 tools/run-lua.lua examples/pipeline.lua
--   with the rock in a tree (`make rock` puts it in ./.rocks), from any
--   directory:
--     eval "$(/path/to/lev-redis/tools/env.sh /path/to/lev-redis/.rocks)"
--     lua5.4 /path/to/lev-redis/examples/pipeline.lua
--   no Redis at hand? Start the bundled mock first (in the checkout):
--     lua5.4 examples/mock-server.lua --port 6390 &
--     REDIS_ADDR=127.0.0.1:6390 lua5.4 tools/run-lua.lua examples/pipeline.lua
local lev = require("lev")
local redis = require("redis")

lev.run(function()
  local c = assert(redis.connect(os.getenv("REDIS_ADDR")))
  local cmds = {}
  for i = 1, 1000 do cmds[#cmds + 1] = { "SET", "key:" .. i, i } end
  cmds[#cmds + 1] = { "GET", "key:500" }
  cmds[#cmds + 1] = { "GET", "no-such-key" }
  cmds[#cmds + 1] = { "INCR", "key:1", "extra-arg" }  -- an error reply
  local res = assert(c:pipeline(cmds))
  print(#res .. " replies")
  print("GET key:500   ->", res[1001][1])
  print("GET missing   ->", res[1002][1])
  print("bad INCR      ->", res[1003][1], res[1003][2])
  assert(res[1001][1] == "500" and res[1002][1] == nil and res[1003][2])
  c:close()
end)
