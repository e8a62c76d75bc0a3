-- The mock's own CPU cost per request, without sockets: redis.mock's
-- connection loop fed, from a stand-in stream, with the pipelined
-- requests redis-benchmark -P 16 sends (same keys and values), each
-- command on its own over one mock.
--
--   lua5.4 tools/mock-cpu.lua [N] [SET,GET,...]      (from the checkout)
--
-- Prints microseconds of CPU per request. Under callgrind the counts
-- repeat exactly, which a shared machine's wall clock does not:
--   valgrind --tool=callgrind lua5.4 tools/mock-cpu.lua 16000 SET
-- (the difference of two N gives instructions per request). Environment:
-- LEVR_BUILD (default build/), GCMODE (generational, the standalone mock's
-- setting, or incremental).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("LEVR_BUILD") or "build") .. "/?.so;" .. package.cpath
collectgarbage(os.getenv("GCMODE") or "generational")

local lev = require("lev")
local core = require("redis.core")

-- The server is started as usual, but its listener is a stand-in whose
-- accept callback is called here with a stand-in stream.
local accept
lev.tcp.listen = function(_, _, fn)
  accept = fn
  return { port = function() return 1 end, close = function() end }
end
local srv = assert(require("redis.mock.server").start({ port = 1 }))

local N = math.tointeger(tonumber(arg[1] or "")) or 100000
local PIPELINE = 16
local only = arg[2] and ("," .. arg[2]:upper() .. ",")

local tests = {
  { "SET", "key:__rand_int__", "xxx" },
  { "GET", "key:__rand_int__" },
  { "INCR", "counter:__rand_int__" },
  { "LPUSH", "mylist", "xxx" },
  { "LPOP", "mylist" },
  { "RPUSH", "mylist2", "xxx" },
  { "SADD", "myset", "element:__rand_int__" },
  { "HSET", "myhash", "element:__rand_int__", "xxx" },
  { "ZADD", "myzset", "0", "element:__rand_int__" },
  { "ECHO", "xxx" },
}

local written = 0
for _, t in ipairs(tests) do
  if not only or only:find("," .. t[1] .. ",", 1, true) then
    local chunk = core.encode(table.unpack(t)):rep(PIPELINE)
    local left = N // PIPELINE
    local stream = {
      read = function()
        if left == 0 then return nil end
        left = left - 1
        return chunk
      end,
      write = function(_, bytes) written = written + #bytes; return true end,
      peer = function() return "127.0.0.1:1" end,
      close = function() end,
    }
    collectgarbage()
    local t0 = os.clock()
    accept(stream)
    local dt = os.clock() - t0
    print(string.format("%-6s %6.3f us/req", t[1], dt / N * 1e6))
  end
end
local errors = srv:errors()
if #errors > 0 then
  io.stderr:write("mock errors: ", tostring(errors[1]), "\n")
  os.exit(1)
end
