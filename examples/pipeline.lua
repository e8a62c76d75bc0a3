-- Pipelining: many commands, one round trip. Each result is { value },
-- { nil } for NULL, or { nil, "error text" }.
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
