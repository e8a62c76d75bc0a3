-- hostile_resp: a RESP server on lev.tcp that answers each command as the
-- spec says, for faults a real Redis will not produce on demand (a NaN map
-- key, a flood of pushes, a reply that never comes, a huge unsolicited
-- message). Test code.
--
--   local hostile = require("hostile_resp")
--   local srv = assert(hostile.start(function(argv, conn)
--     if argv[1] == "GET" then return "%1\r\n,nan\r\n:1\r\n" end
--     return "+OK\r\n"          -- raw bytes; nil: no reply at all
--   end))
--   redis.connect{ host = "127.0.0.1", port = srv:port() }
--   srv.accepted, srv.closed    -- connections seen, and seen to end
--   srv:close()
--
-- conn:send(bytes) writes at any time (from another task, for replies
-- that come later); conn.argvs is every command received. Handlers run as
-- daemon tasks (see lev.tcp.listen): they do not keep lev.run alive.
local lev = require("lev")
local core = require("redis.core")

local M = {}

function M.start(answer)
  local srv = { accepted = 0, closed = 0, conns = {} }
  local listener, err = lev.tcp.listen("127.0.0.1", 0, function(stream)
    local conn = { stream = stream, argvs = {} }
    function conn.send(_, bytes) return stream:write(bytes) end
    srv.accepted = srv.accepted + 1
    srv.conns[#srv.conns + 1] = conn
    local rd = core.reader{ request = true }
    while true do
      local chunk = stream:read()
      if not chunk then break end
      rd:feed(chunk)
      while true do
        local argv = rd:next()
        if not argv then break end
        argv[1] = argv[1]:upper()
        conn.argvs[#conn.argvs + 1] = argv
        local out = answer(argv, conn)
        if out then stream:write(out) end
      end
    end
    srv.closed = srv.closed + 1
  end)
  if not listener then return nil, err end
  function srv.port() return listener:port() end
  function srv.close() listener:close() end
  return srv
end

-- The RESP bytes of a bulk string.
function M.bulk(s) return ("$%d\r\n%s\r\n"):format(#s, s) end

return M
