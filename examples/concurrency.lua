-- Many tasks, one client: commands from concurrent tasks are pipelined on
-- the one connection automatically, and each task gets its own reply.
local lev = require("lev")
local redis = require("redis")

lev.run(function()
  local c = assert(redis.connect(os.getenv("REDIS_ADDR")))
  c:cmd("DEL", "counter")
  local t0 = lev.now()
  local tasks = {}
  for t = 1, 100 do
    tasks[t] = lev.spawn(function()
      for _ = 1, 100 do assert(c:cmd("INCR", "counter")) end
      return assert(c:cmd("ECHO", "task " .. t))
    end)
  end
  for t = 1, 100 do
    local ok, echoed = tasks[t]:join()
    assert(ok and echoed == "task " .. t, echoed)
  end
  local total = c:cmd("GET", "counter")
  print(string.format("100 tasks x 100 INCR -> %s in %.3f s", total,
                      lev.now() - t0))
  assert(total == "10000")
  c:close()
end)
