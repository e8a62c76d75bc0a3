-- A minimal RESP client on lev.tcp for specs: it sends commands and reads
-- exactly one reply at a time as raw bytes, so specs can compare bytes
-- with what Redis writes. Test code; the real client is require("redis").
--
--   local rc = require("resp_client")
--   local c = assert(rc.connect(port))          -- inside a lev task
--   c:call("SET", "k", "v")                     --> "+OK\r\n"
--   c:send("GET", "k"); c:reply()               --> "$1\r\nv\r\n"
--   rc.decode("*2\r\n:1\r\n$1\r\na\r\n")        --> { 1, "a" }
local lev = require("lev")

local M = {}

local function line_end(buf, pos)
  local e = buf:find("\r\n", pos, true)
  return e
end

-- Length of the one whole reply at buf[pos..], or nil when more bytes are
-- needed. Raises on bytes that are not RESP.
function M.scan(buf, pos)
  pos = pos or 1
  local pending = 1          -- values still to read
  while pending > 0 do
    if pos > #buf then return nil end
    local t = buf:sub(pos, pos)
    local e = line_end(buf, pos)
    if not e then return nil end
    local head = buf:sub(pos + 1, e - 1)
    pos = e + 2
    pending = pending - 1
    if t == "$" or t == "!" or t == "=" then
      local n = tonumber(head)
      if not n then error("resp_client: bad length " .. head) end
      if n >= 0 then
        if #buf < pos + n + 1 then return nil end
        pos = pos + n + 2
      end
    elseif t == "*" or t == "~" or t == ">" then
      local n = tonumber(head)
      if not n then error("resp_client: bad count " .. head) end
      if n > 0 then pending = pending + n end
    elseif t == "%" or t == "|" then
      local n = tonumber(head)
      if not n then error("resp_client: bad count " .. head) end
      pending = pending + 2 * n
      if t == "|" then pending = pending + 1 end
    elseif not ("+-:_,#("):find(t, 1, true) then
      error("resp_client: not RESP: " .. string.format("%q", buf:sub(pos - 2 - #head - 1)))
    end
  end
  return pos - 1
end

-- Lua values from reply bytes: strings, integers, tables; errors as
-- { err = text }, statuses as { ok = text }, nulls as M.null.
M.null = setmetatable({}, { __name = "resp_client.null" })

local function decode_at(buf, pos)
  local t = buf:sub(pos, pos)
  local e = buf:find("\r\n", pos, true)
  local head = buf:sub(pos + 1, e - 1)
  pos = e + 2
  if t == "+" then return { ok = head }, pos end
  if t == "-" then return { err = head }, pos end
  if t == ":" then return math.tointeger(tonumber(head)), pos end
  if t == "_" then return M.null, pos end
  if t == "," then
    if head == "inf" then return math.huge, pos end
    if head == "-inf" then return -math.huge, pos end
    return tonumber(head) + 0.0, pos
  end
  if t == "#" then return head == "t", pos end
  if t == "(" then return head, pos end
  if t == "$" or t == "!" or t == "=" then
    local n = tonumber(head)
    if n < 0 then return M.null, pos end
    return buf:sub(pos, pos + n - 1), pos + n + 2
  end
  local n = tonumber(head)
  if n < 0 then return M.null, pos end
  if t == "%" then n = 2 * n end
  local out = {}
  for i = 1, n do out[i], pos = decode_at(buf, pos) end
  return out, pos
end

function M.decode(bytes)
  return (decode_at(bytes, 1))
end

function M.encode(...)
  local argv = { ... }
  local out = { "*" .. #argv .. "\r\n" }
  for _, a in ipairs(argv) do
    a = tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(out)
end

local Client = {}
Client.__index = Client

-- Connects to 127.0.0.1:port (or host). timeout bounds each wait for a
-- reply (default 2 s), so a spec fails instead of hanging.
function M.connect(port, host, timeout)
  local s, err = lev.tcp.connect(host or "127.0.0.1", port, { timeout = 2 })
  if not s then return nil, err end
  return setmetatable({ stream = s, buf = "", timeout = timeout or 2 }, Client)
end

function Client:raw(bytes)
  return self.stream:write(bytes)
end

function Client:send(...)
  return self.stream:write(M.encode(...))
end

-- More bytes from the socket into the buffer: true, or nil and "eof",
-- "timeout" or the error.
function Client:fill(timeout)
  local data, err = lev.timeout(timeout or self.timeout, function()
    return self.stream:read()
  end)
  if data then
    self.buf = self.buf .. data
    return true
  end
  if err == "timeout" then return nil, "timeout" end
  return nil, err or "eof"
end

-- Exactly one reply, as its bytes; or nil and "eof" / "timeout".
function Client:reply(timeout)
  while true do
    local n = M.scan(self.buf, 1)
    if n then
      local r = self.buf:sub(1, n)
      self.buf = self.buf:sub(n + 1)
      return r
    end
    local ok, err = self:fill(timeout)
    if not ok then return nil, err end
  end
end

-- Whatever arrives until the peer closes or `wait` seconds pass.
function Client:drain(wait)
  while true do
    local ok, err = self:fill(wait or 0.2)
    if not ok then
      local all = self.buf
      self.buf = ""
      return all, err
    end
  end
end

function Client:call(...)
  local ok, err = self:send(...)
  if not ok then return nil, err end
  return self:reply()
end

-- The decoded value of the next reply.
function Client:value(...)
  local r, err = self:call(...)
  if not r then return nil, err end
  return M.decode(r)
end

function Client:close()
  return self.stream:close()
end

return M
