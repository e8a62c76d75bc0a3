-- Many tasks, one client: commands from concurrent tasks are pipelined on
-- the one connection automatically, and each task gets its own reply.
--
-- Run it (Redis on 127.0.0.1:6379, or the server REDIS_ADDR names:
-- "host:port" or a URL such as redis://:password@127.0.0.1:6390/0):
--   in the checkout, after `make build`:
--     lua5.4 tools/run-lua.lua examples/concurrency.lua
--   with the rock in a tree (`make rock` puts it in ./.rocks), from any
--   directory:
--     eval "$(/path/to/lev-redis/tools/env.sh /path/to/lev-redis/.rocks)"
--     lua5.4 /path/to/lev-redis/examples/concurrency.lua
--   no Redis at hand? Start the bundled mock first (in the checkout):
--     lua5.4 examples/mock-server.lua --port 6390 &
--     REDIS_ADDR=127.0.0.1:6390 lua5.4 tools/run-lua.lua examples/concurrency.lua
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
