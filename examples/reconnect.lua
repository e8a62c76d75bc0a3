-- Reconnect: a long-lived loop that keeps working when its connection
-- drops, printing the client's events as they happen.
--
--   lua5.4 examples/reconnect.lua              (REDIS_ADDR, default
--                                               127.0.0.1:6379; ends after
--                                               3 s, dropping its own
--                                               connection once on the way)
--   lua5.4 examples/reconnect.lua --forever    (runs until killed: restart
--                                               redis-server meanwhile and
--                                               watch it come back)
--
-- A command that was in flight when the connection dropped fails (the
-- library cannot know whether the server ran it, so it never sends it
-- again): the loop prints that failure and carries on. Commands issued
-- while the client reconnects wait up to reconnect.wait seconds.
local lev = require("lev")
local redis = require("redis")

local addr = os.getenv("REDIS_ADDR") or "127.0.0.1:6379"
local host, port = addr:match("^(.*):(%d+)$")
local forever = arg and arg[1] == "--forever"
local SECONDS = 3

local function stamp() return string.format("%7.3f", lev.now() % 1000) end

lev.run(function()
  local c = assert(redis.connect({
    host = host or addr, port = tonumber(port) or 6379,
    name = "reconnect-example",
    reconnect = { base = 0.05, max = 2, wait = 5 },
  }))
  local reconnects = 0
  c:on("disconnect", function(text, category)
    print(stamp(), "disconnect:", text, "(" .. category .. ")")
  end)
  c:on("reconnecting", function(attempt, delay)
    print(stamp(), string.format("reconnecting: attempt %d in %.3f s",
                                 attempt, delay))
  end)
  c:on("reconnect", function()
    reconnects = reconnects + 1
    print(stamp(), "reconnect: back, status " .. c:status())
  end)
  c:on("end", function(reason) print(stamp(), "end:", reason) end)

  local key = "reconnect-example:count"
  local t0, dropped = lev.now(), false
  while forever or lev.now() - t0 < SECONDS do
    local n, err = c:cmd("INCR", key)
    if n then
      print(stamp(), "INCR ->", n, c:status())
    else
      print(stamp(), "INCR failed:", err, "(not retried)")
    end
    if not forever and not dropped and lev.now() - t0 > SECONDS / 3 then
      -- Stands in for a server restart: a second connection kills ours.
      dropped = true
      local admin = assert(redis.connect(addr))
      admin:cmd("CLIENT", "KILL", "ID", c:cmd("CLIENT", "ID"))
      admin:close()
    end
    lev.sleep(0.2)
  end
  c:cmd("DEL", key)
  c:close()
  if not forever then
    assert(reconnects == 1, "the connection did not come back")
  end
end)
