-- fault_proxy: a TCP proxy on lev.tcp that sits between the client and a
-- real redis-server and damages the server->client bytes on demand. Test
-- code, for the fault and soak specs.
--
--   local fp = require("fault_proxy")
--   lev.run(function()
--     local p = assert(fp.start{ upstream_port = 6379 })
--     local c = redis.connect{ host = "127.0.0.1", port = p:port(),
--                              timeout = 1 }
--     p.split = 1               -- replies in 1-byte writes
--     p.close_after = 10        -- cut the next reply stream after 10 bytes
--     p.garbage = "\0junk\r\n"  -- injected before the next server chunk
--     p.blackhole = true        -- replies read from the server and dropped
--     p:drop_all()              -- closes every proxied connection now
--     print(p.counters.connections, p.counters.bytes_down)
--     p:close()                 -- required: the pumps keep lev.run alive
--   end)
--
-- Every control is a field that the pumps read for each chunk, so it can be
-- changed at any time. Each one exists on the proxy (all connections) and
-- on each connection object (p:conns()), where a non-nil value wins:
--
--   split = n         write server->client bytes in pieces of n bytes,
--                     letting the loop turn between pieces (so the client
--                     really reads them one piece at a time)
--   close_after = n   one-shot: after n more bytes server->client, close
--                     the connection (both sides); 0 cuts it at the next
--                     server chunk
--   garbage = s       one-shot: write s to the client before the next
--                     server chunk; with align (see start) only where a
--                     whole reply has ended, so it never lands inside one
--   garbage_at = n    with garbage: put it after the first n bytes of that
--                     chunk instead (inside a reply, on purpose)
--   blackhole = true  read replies from the server and drop them
--   delay = secs      wait this long before forwarding each server chunk
--   hold_requests = true  stop reading client->server: what the client
--                     sends piles up unread in the proxy's socket, so a
--                     close then resets the connection (RST) instead of
--                     ending it (FIN)
--
-- counters: connections (accepted), active, bytes_up, bytes_down (written
-- to clients, garbage included), dropped, cut (close_after fired),
-- garbage (injections), blackholed (bytes dropped), refused (upstream
-- connect failed), errors (a pump raised; last_error has the message).
--
-- Methods: p:port(); p:conns() (the live connections, oldest first, each
-- with the controls above, :drop() and :inject(bytes)); p:drop_all();
-- p:inject(bytes) (written now to every connection not writing); p:reset()
-- (every proxy-wide control off); p:close().
--
-- Each client connection gets two pump tasks (client->server and
-- server->client), spawned and joined by the connection's handler task.
--
-- fp.own_server(args) starts a redis-server of the spec's own that can be
-- stopped, started and restarted on the same port; fp.env_port() is the
-- shared test server's port (LEVR_REDIS_PORT).

local lev = require("lev")

local M = {}

---------------------------------------------------------------------------
-- An incremental RESP scanner: fed the server->client bytes, it tells
-- where whole top-level replies end. Only used for aligned garbage.

local Scanner = {}
Scanner.__index = Scanner

function M.scanner()
  return setmetatable({ line = "", bulk = 0, stack = {} }, Scanner)
end

-- True when no reply is partly read.
function Scanner:at_boundary()
  return self.bulk == 0 and self.line == "" and #self.stack == 0
end

-- One value is complete: pop finished containers. Returns true when that
-- finished a top-level reply.
function Scanner:value_done()
  local st = self.stack
  while #st > 0 do
    local top = st[#st]
    top.left = top.left - 1
    if top.left > 0 then return false end
    st[#st] = nil
    if top.attr then return false end -- an attribute precedes its value
  end
  return true
end

function Scanner:open(n, attr)
  if n <= 0 then
    if attr then return false end
    return self:value_done()
  end
  self.stack[#self.stack + 1] = { left = n, attr = attr }
  return false
end

-- Feeds a chunk; returns the array of offsets (0-based counts of bytes
-- of chunk) after which a top-level reply ended.
function Scanner:feed(chunk)
  local ends, i, n = {}, 1, #chunk
  while i <= n do
    if self.bulk > 0 then
      local take = math.min(self.bulk, n - i + 1)
      self.bulk = self.bulk - take
      i = i + take
      if self.bulk == 0 and self:value_done() then ends[#ends + 1] = i - 1 end
    else
      local e = chunk:find("\n", i, true)
      if not e then
        self.line = self.line .. chunk:sub(i)
        break
      end
      local line = self.line .. chunk:sub(i, e)
      self.line = ""
      i = e + 1
      local t, head = line:sub(1, 1), line:sub(2, -3)
      local num = math.tointeger(tonumber(head))
      local done
      if t == "$" or t == "!" or t == "=" then
        if num and num >= 0 then
          self.bulk = num + 2
          done = false
        else
          done = self:value_done()
        end
      elseif t == "*" or t == "~" or t == ">" then
        done = self:open(num or 0, false)
      elseif t == "%" then
        done = self:open(2 * (num or 0), false)
      elseif t == "|" then
        done = self:open(2 * (num or 0), true)
      else -- + - : _ , # ( and anything else: one line, one value
        done = self:value_done()
      end
      if done then ends[#ends + 1] = i - 1 end
    end
  end
  return ends
end

---------------------------------------------------------------------------

local Proxy = {}
Proxy.__index = Proxy

local Conn = {}
Conn.__index = Conn

-- The control in effect for conn: its own value, else the proxy's.
local function control(conn, name)
  local v = conn[name]
  if v == nil then v = conn.proxy[name] end
  return v
end

-- Clears a one-shot control where it was taken from.
local function consume(conn, name)
  if conn[name] ~= nil then
    conn[name] = nil
  else
    conn.proxy[name] = nil
  end
end

-- Closes both sides; the pumps see "closed" and end.
function Conn:drop()
  if self.dead then return false end
  self.dead = true
  self.client:close()
  self.up:close()
  return true
end

-- Writes bytes to the client now (for unsolicited data on an idle
-- connection). Refused while the server->client pump is writing.
function Conn:inject(bytes)
  if self.dead then return nil, "closed" end
  if self.writing then return nil, "busy" end
  self.writing = true
  local ok, err = self.client:write(bytes)
  self.writing = false
  if ok then
    local c = self.proxy.counters
    c.garbage = c.garbage + 1
    c.bytes_down = c.bytes_down + #bytes
  end
  return ok, err
end

local function pump_up(conn)
  local counters = conn.proxy.counters
  while not conn.dead do
    local data = conn.client:read()
    if not data then break end
    counters.bytes_up = counters.bytes_up + #data
    if not conn.up:write(data) then break end
    while control(conn, "hold_requests") and not conn.dead do
      lev.sleep(0.005)
    end
  end
  conn:drop()
end

-- Writes out to the client in pieces of `split` bytes. Returns false once
-- the connection is gone.
local function send(conn, out)
  local counters = conn.proxy.counters
  local i, n = 1, #out
  while i <= n do
    if conn.dead then return false end
    local step = control(conn, "split")
    step = (step and step > 0) and step or n
    local piece = out:sub(i, i + step - 1)
    conn.writing = true
    local ok = conn.client:write(piece)
    conn.writing = false
    if not ok then return false end
    counters.bytes_down = counters.bytes_down + #piece
    i = i + #piece
    if i <= n then coroutine.yield() end -- let the client read this piece
  end
  return true
end

local function pump_down(conn)
  local p, counters = conn.proxy, conn.proxy.counters
  while not conn.dead do
    local data = conn.up:read()
    if not data then break end
    local was_boundary = conn.scan and conn.scan:at_boundary()
    local ends = conn.scan and conn.scan:feed(data)
    if control(conn, "blackhole") then
      counters.blackholed = counters.blackholed + #data
    else
      local delay = control(conn, "delay")
      if delay and delay > 0 then lev.sleep(delay) end
      if conn.dead then break end
      local out = data
      local g = control(conn, "garbage")
      if g then
        local at = control(conn, "garbage_at")
        if at then
          at = math.min(at, #data)
        elseif not conn.scan or was_boundary then
          at = 0
        else
          at = ends[1]
        end
        if at then
          consume(conn, "garbage")
          if control(conn, "garbage_at") then consume(conn, "garbage_at") end
          counters.garbage = counters.garbage + 1
          out = data:sub(1, at) .. g .. data:sub(at + 1)
        end
      end
      local budget = control(conn, "close_after")
      if budget and budget <= #out then
        consume(conn, "close_after")
        send(conn, out:sub(1, budget))
        counters.cut = counters.cut + 1
        break
      elseif budget then
        if conn.close_after ~= nil then
          conn.close_after = budget - #out
        else
          p.close_after = budget - #out
        end
      end
      if not send(conn, out) then break end
    end
  end
  conn:drop()
end

function Proxy:_serve(client)
  local counters = self.counters
  counters.connections = counters.connections + 1
  if self.closed then return end
  local up, err = lev.tcp.connect(self.upstream_host, self.upstream_port,
                                  { timeout = 2 })
  if not up then
    counters.refused = counters.refused + 1
    self.last_error = err
    return
  end
  if self.closed then
    up:close()
    return
  end
  local conn = setmetatable({
    proxy = self, client = client, up = up, id = counters.connections,
    scan = self.align and M.scanner() or nil,
  }, Conn)
  self.live[conn] = true
  counters.active = counters.active + 1
  local tasks = { lev.spawn(pump_up, conn), lev.spawn(pump_down, conn) }
  for _, t in ipairs(tasks) do
    local ok, perr = t:join()
    if not ok then
      counters.errors = counters.errors + 1
      self.last_error = tostring(perr)
      conn:drop()
    end
  end
  conn:drop()
  self.live[conn] = nil
  counters.active = counters.active - 1
end

function Proxy:port()
  return self.server:port()
end

-- The live connections, oldest first.
function Proxy:conns()
  local list = {}
  for conn in pairs(self.live) do
    if not conn.dead then list[#list + 1] = conn end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end

-- Closes every proxied connection; returns how many.
function Proxy:drop_all()
  local n = 0
  for _, conn in ipairs(self:conns()) do
    if conn:drop() then n = n + 1 end
  end
  self.counters.dropped = self.counters.dropped + n
  return n
end

-- Writes bytes now to every idle live connection; returns how many got it.
function Proxy:inject(bytes)
  local n = 0
  for _, conn in ipairs(self:conns()) do
    if conn:inject(bytes) then n = n + 1 end
  end
  return n
end

-- Stops listening and drops every connection. Idempotent.
function Proxy:close()
  if self.closed then return true end
  self.closed = true
  self.server:close()
  self:drop_all()
  return true
end

-- Sets every global control back to off.
function Proxy:reset()
  self.split, self.close_after, self.garbage = nil, nil, nil
  self.garbage_at = nil
  self.blackhole, self.delay, self.hold_requests = false, 0, false
end

-- opts: upstream_port (required), upstream_host (127.0.0.1), host
-- (127.0.0.1), port (0: any free one), align (track reply boundaries so
-- garbage lands only between replies), and initial controls.
function M.start(opts)
  assert(type(opts) == "table", "fault_proxy.start: options table expected")
  assert(math.type(opts.upstream_port) == "integer",
         "fault_proxy.start: upstream_port must be an integer")
  local p = setmetatable({
    upstream_host = opts.upstream_host or "127.0.0.1",
    upstream_port = opts.upstream_port,
    align = opts.align or false,
    split = opts.split,
    close_after = opts.close_after,
    garbage = opts.garbage,
    blackhole = opts.blackhole or false,
    delay = opts.delay or 0,
    hold_requests = opts.hold_requests or false,
    counters = {
      connections = 0, active = 0, bytes_up = 0, bytes_down = 0, dropped = 0,
      cut = 0, garbage = 0, blackholed = 0, refused = 0, errors = 0,
    },
    live = {},
    closed = false,
  }, Proxy)
  local server, err = lev.tcp.listen(opts.host or "127.0.0.1", opts.port or 0,
                                     function(stream)
                                       return p:_serve(stream)
                                     end)
  if not server then return nil, err end
  p.server = server
  return p
end

---------------------------------------------------------------------------
-- Servers for the specs.

-- The shared test server's port (LEVR_REDIS_PORT); fails loudly without it.
function M.env_port()
  local port = math.tointeger(tonumber(os.getenv("LEVR_REDIS_PORT") or ""))
  if not port then
    error("fault specs: LEVR_REDIS_PORT is not set; start a server with "
      .. "tools/redis-server.sh start DIR and pass its port", 0)
  end
  return port
end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local Server = {}
Server.__index = Server

-- A redis-server of the spec's own (not the shared one), with persistence
-- off and the given extra arguments (a string). Blocks the process while
-- it starts: call it outside lev.run or where nothing must run meanwhile.
function M.own_server(extra)
  local p = assert(io.popen("mktemp -d /tmp/levr-fault.XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp failed")
  local out = assert(io.popen("tools/redis-server.sh start " .. dir .. " "
                              .. (extra or "")))
  local port = math.tointeger(tonumber(out:read("l") or ""))
  out:close()
  assert(port, "cannot start an own redis-server")
  return setmetatable({ dir = dir, port = port, extra = extra or "" },
                      Server)
end

function Server:pid()
  return math.tointeger(tonumber(read_file(self.dir .. "/redis.pid") or ""))
end

-- Stops the server by its pid and waits until it has exited.
function Server:stop()
  local pid = self:pid()
  if not pid then return end
  sh("kill " .. pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not sh("kill -0 " .. pid .. " 2>/dev/null") then break end
    sh("sleep 0.01")
  end
  sh("kill -9 " .. pid .. " 2>/dev/null")
  os.remove(self.dir .. "/redis.pid")
end

-- Starts it again on the same port; waits until it accepts connections.
function Server:start()
  local log = self.dir .. "/redis.log"
  for _ = 1, 40 do
    os.remove(log)
    sh(string.format("redis-server --port %d --bind 127.0.0.1 --save '' "
      .. "--appendonly no --daemonize yes --pidfile %s/redis.pid "
      .. "--logfile %s --dir %s %s >/dev/null 2>&1", self.port, self.dir,
      log, self.dir, self.extra))
    for _ = 1, 100 do
      local text = read_file(log) or ""
      if text:find("Ready to accept connections", 1, true) then
        return true
      end
      if text:find("already in use", 1, true) then break end
      sh("sleep 0.02")
    end
    self:stop()
    sh("sleep 0.05")
  end
  error("cannot restart redis-server on port " .. self.port)
end

function Server:restart()
  self:stop()
  self:start()
end

-- Stops it for good and removes its directory.
function Server:destroy()
  self:stop()
  sh("rm -rf " .. self.dir)
end

return M
