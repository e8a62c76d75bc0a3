-- W6 for lev-redis: a redis.subscriber receiving through next(), written
-- as a user of the documented API would write it (bench/hiredis_sub.c is
-- the hiredis async peer, and its publisher feeds both).
--
--   lua5.4 bench/w6_sub.lua HOST PORT WARM N
--
-- Subscribes to "w6", prints "ready", then after WARM messages times the
-- next N and prints "W6 ops=N secs=S cpu=C" (cpu: this process's user +
-- system time, os.clock). Each message is checked as the peer checks it.

local lev = require("lev")
local redis = require("redis")

local host, port, warm, n = ...
port, warm, n = math.tointeger(tonumber(port)), math.tointeger(tonumber(warm)),
  math.tointeger(tonumber(n))
assert(host and port and warm and n, "usage: w6_sub.lua HOST PORT WARM N")

lev.run(function()
  local sub = assert(redis.subscriber{ host = host, port = port })
  assert(sub:subscribe("w6"))
  io.stdout:write("ready\n")
  io.stdout:flush()
  local function take(count)
    for _ = 1, count do
      local m = sub:next()
      if not m or m.kind ~= "message" or m.channel ~= "w6"
         or #m.payload ~= 16 then
        error("bad message: " .. tostring(m and m.payload))
      end
    end
  end
  take(warm)
  local t0, c0 = lev.now(), os.clock()
  take(n)
  local t1, c1 = lev.now(), os.clock()
  io.stdout:write(string.format("W6 ops=%d secs=%.6f cpu=%.6f\n", n,
    t1 - t0, c1 - c0))
  sub:close()
end)
