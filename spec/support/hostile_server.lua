-- hostile_server: a RESP server on lev.tcp that answers every command
-- with a reply chosen to hurt the client (the modes of the issue-12
-- reproducers' hostile.py). Test code, for the repro and chaos specs.
--
--   local hs = require("hostile_server")
--   lev.run(function()
--     local s = assert(hs.start{ mode = "nullarray", arg = 1000 })
--     local c = redis.connect{ host = "127.0.0.1", port = s:port() }
--     ...
--     s.mode, s.arg = "echo", nil   -- may change at any time
--     s:close()                     -- required: closes every connection
--   end)
--
-- PING answers +PONG and AUTH, SELECT and HELLO +OK in every mode. Every
-- other command gets, by mode:
--   ok                 +OK
--   echo               its first argument as a bulk string
--   nankey             a RESP3 map whose key is a NaN double
--   nilkey             a RESP3 map whose key is a null
--   raw                arg (bytes) as the first such reply, +OK after
--   bigmsg             SUBSCRIBE is confirmed, then 0.3 s later a pub/sub
--                      message whose payload is an array of arg bulks
--   pushmid            a RESP3 push, an attribute, then the first argument
--   halfclose          half a bulk string, then the write side is shut
--   unsolicited_idle   +OK, then 0.2 s later an unasked +SURPRISE
--   pushflood          arg pushes (>2 invalidate 1), then +REAL
--   nullarray          an array of arg RESP3 nulls
--   bigbulk            a bulk string of arg bytes
--   silent             nothing at all
--
-- Counters: s.commands (commands answered or ignored), s.connections.
--
-- Standalone, as a process of its own (a client under `ulimit -v`, or one
-- that may crash, must not share its process with the server):
--   lua5.4 spec/support/hostile_server.lua MODE [ARG]
-- prints the port, then its PID, one per line, and serves for
-- HOSTILE_LIFE seconds (default 60) or until killed.

local lev = require("lev")

local M = {}

local function bulk(s)
  return "$" .. #s .. "\r\n" .. s .. "\r\n"
end

-- Parses the whole commands at the front of buf (arrays of bulk strings,
-- as clients send them). Returns the commands and the rest of buf.
local function parse(buf)
  local cmds, pos = {}, 1
  while true do
    if buf:sub(pos, pos) ~= "*" then break end
    local e = buf:find("\r\n", pos, true)
    if not e then break end
    local n = tonumber(buf:sub(pos + 1, e - 1))
    local p, args, whole = e + 2, {}, true
    for i = 1, n do
      local e2 = buf:find("\r\n", p, true)
      if not e2 then whole = false break end
      local len = tonumber(buf:sub(p + 1, e2 - 1))
      if #buf < e2 + 2 + len + 1 then whole = false break end
      args[i] = buf:sub(e2 + 2, e2 + 1 + len)
      p = e2 + 2 + len + 2
    end
    if not whole then break end
    cmds[#cmds + 1] = args
    pos = p
  end
  return cmds, buf:sub(pos)
end

-- One write at a time per stream (lev.tcp's rule): a writer waits its turn.
local function writer(conn)
  return function(data)
    while conn.busy do lev.sleep(0.001) end
    if conn.closed then return nil end
    conn.busy = true
    local ok = conn.stream:write(data)
    conn.busy = false
    return ok
  end
end

local function reply_for(s, conn, args, write)
  local name = (args[1] or ""):upper()
  if name == "PING" then return "+PONG\r\n" end
  if name == "AUTH" or name == "SELECT" or name == "HELLO" then
    return "+OK\r\n"
  end
  conn.n = conn.n + 1
  local mode, arg = s.mode, s.arg
  if mode == "echo" then return bulk(args[2] or "") end
  if mode == "nankey" then return "%1\r\n,nan\r\n:1\r\n" end
  if mode == "nilkey" then return "%1\r\n_\r\n:1\r\n" end
  if mode == "raw" then return conn.n == 1 and arg or "+OK\r\n" end
  if mode == "bigmsg" and name == "SUBSCRIBE" then
    lev.spawn(function()
      lev.sleep(0.3)
      local n = tonumber(arg) or 500000
      local parts = { "*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n*" .. n .. "\r\n" }
      for i = 0, n - 1 do
        parts[#parts + 1] = string.format("$8\r\n%08d\r\n", i)
      end
      write(table.concat(parts))
    end)
    return "*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n"
  end
  if mode == "pushmid" then
    return ">3\r\n+message\r\n+ch\r\n+m" .. conn.n .. "\r\n"
      .. "|1\r\n+k\r\n+v\r\n" .. bulk(args[2] or "x")
  end
  if mode == "halfclose" then
    write("$5\r\nab")
    conn.stream:close()
    conn.closed = true
    return ""
  end
  if mode == "unsolicited_idle" then
    lev.spawn(function()
      lev.sleep(0.2)
      write("+SURPRISE\r\n")
    end)
    return "+OK\r\n"
  end
  if mode == "pushflood" then
    return string.rep(">2\r\n+invalidate\r\n:1\r\n", tonumber(arg))
      .. "+REAL\r\n"
  end
  if mode == "nullarray" then
    local n = tonumber(arg)
    return "*" .. n .. "\r\n" .. string.rep("_\r\n", n)
  end
  if mode == "bigbulk" then
    return bulk(string.rep("x", tonumber(arg)))
  end
  if mode == "silent" then return "" end
  return "+OK\r\n"
end

local Server = {}
Server.__index = Server

function Server:port() return self.listener:port() end

-- Closes the listener and every connection (their handlers then end).
function Server:close()
  if self.listener then
    self.listener:close()
    self.listener = nil
  end
  for conn in pairs(self.conns) do
    conn.closed = true
    conn.stream:close()
  end
  self.conns = {}
end

-- Drops every connection now (the listener stays).
function Server:drop_all()
  for conn in pairs(self.conns) do
    conn.closed = true
    conn.stream:close()
  end
  self.conns = {}
end

function M.start(opts)
  local s = setmetatable({ mode = opts.mode or "ok", arg = opts.arg,
                           conns = {}, commands = 0, connections = 0 },
                         Server)
  local listener, err = lev.tcp.listen("127.0.0.1", 0, function(stream)
    local conn = { stream = stream, n = 0, busy = false }
    local write = writer(conn)
    s.conns[conn] = true
    s.connections = s.connections + 1
    local buf = ""
    while not conn.closed do
      local data = stream:read()
      if not data then break end
      buf = buf .. data
      local cmds
      cmds, buf = parse(buf)
      local out = {}
      for _, args in ipairs(cmds) do
        s.commands = s.commands + 1
        out[#out + 1] = reply_for(s, conn, args, write)
        if conn.closed then break end
      end
      out = table.concat(out)
      if out ~= "" and not conn.closed then write(out) end
    end
    s.conns[conn] = nil
    conn.closed = true
  end)
  if not listener then return nil, err end
  s.listener = listener
  return s
end

-- Run as a script: serve one mode until HOSTILE_LIFE seconds have passed.
if (...) ~= "hostile_server" and arg and arg[0] and
   arg[0]:match("hostile_server%.lua$") then
  local mode, a = arg[1], arg[2]
  local life = tonumber(os.getenv("HOSTILE_LIFE") or "60")
  local pid = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
  lev.run(function()
    local s = assert(M.start{ mode = mode, arg = a })
    io.stdout:write(s:port(), "\n", pid, "\n")
    io.stdout:flush()
    lev.sleep(life)
    s:close()
  end)
end

return M
