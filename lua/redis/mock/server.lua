-- redis.mock.server: the network part of the mock. Accepts connections
-- with lev.tcp, reads requests with redis.core's C request reader, answers
-- through the engine (redis.mock.engine) and writes the encoded replies,
-- bent by the scripting rules (delay, split, close_after, silent, garbage,
-- close, refuse, hangup) described in redis.mock.
--
-- Each connection has one output queue. Whichever task finds the queue
-- idle drains it (the connection's own task for replies, a publisher's
-- task for pub/sub messages), so bytes leave in order and a stream never
-- has two writers. Connection tasks are lev daemons: a listening mock does
-- not keep lev.run alive.
local engine_mod = require("redis.mock.engine")
local reply = require("redis.mock.reply")

-- Globals the per-request path uses, as locals (a global is a table look-up).
local pcall, type, math_type = pcall, type, math.type

-- The outbuf's methods, called directly in the per-request loop.
local outbuf = getmetatable(require("redis.core").outbuf()).__index
local ob_add, ob_bulk, ob_int = outbuf.add, outbuf.bulk, outbuf.int

local M = {}

local Session = engine_mod.Session

-- A connection is its engine session plus the socket and the scripting.
local Conn = setmetatable({}, { __index = Session })
Conn.__index = Conn
M.Conn = Conn

local Server = {}
Server.__index = Server
M.Server = Server

local Rule = {}
Rule.__index = Rule

local LOG_MAX = 1000
local SPLIT_PAUSE = 0.002

local function upper_set(v)
  if v == nil then return nil end
  local set = {}
  if type(v) == "string" then v = { v } end
  for _, name in ipairs(v) do set[name:upper()] = true end
  return set
end

local function new_rule(owner, spec)
  local r = setmetatable({}, Rule)
  for k, v in pairs(spec) do r[k] = v end
  r.commands = upper_set(spec.command)
  r.owner = owner
  r.used = 0
  return r
end

function Rule:matches(argv, conn)
  if self.commands and not self.commands[argv[1]:upper()] then return false end
  if self.match and not self.match(argv, conn) then return false end
  return true
end

-- Takes the rule out of service (a refusing server listens again).
function Rule:cancel()
  if self.cancelled then return end
  self.cancelled = true
  local list = self.owner.rules
  for i, r in ipairs(list) do
    if r == self then table.remove(list, i); break end
  end
  if self.refuse and self.owner.relisten then self.owner:relisten() end
end

local function use(rule)
  rule.used = rule.used + 1
  if rule.times and rule.used >= rule.times then rule:cancel() end
end

local function find_rule(lists, argv, conn)
  for _, list in ipairs(lists) do
    for _, r in ipairs(list) do
      if not r.refuse and not r.hangup and r:matches(argv, conn) then
        return r
      end
    end
  end
  return nil
end

---------------------------------------------------------------- output

-- Sleeps in short slices so that closing the connection (or the server)
-- ends a long delay at once instead of leaving a sleeping task behind.
local function pause(conn, seconds)
  local lev = conn.server.lev
  local deadline = lev.now() + seconds
  while not conn.closed do
    local left = deadline - lev.now()
    if left <= 0 then break end
    lev.sleep(left < 0.01 and left or 0.01)
  end
end

-- Writes the queue out, honouring each item's effects. Runs in whichever
-- task enqueued into an idle queue.
local function drain(conn)
  if conn.draining then return end
  conn.draining = true
  local q = conn.queue
  while q.first <= q.last and not conn.closed do
    local item = q[q.first]
    q[q.first] = nil
    q.first = q.first + 1
    if item.delay and item.delay > 0 then pause(conn, item.delay) end
    if conn.closed then break end
    if item.close then
      conn:close()
      break
    end
    local data = item.garbage or item.bytes
    if item.silent then data = "" end
    local cut = false
    if item.close_after and item.close_after < #data then
      data = data:sub(1, item.close_after)
      cut = true
    end
    local ok = true
    if item.split and item.split > 0 and #data > item.split then
      for i = 1, #data, item.split do
        ok = conn.stream:write(data:sub(i, i + item.split - 1))
        if not ok then break end
        if i + item.split <= #data then
          pause(conn, item.split_delay or SPLIT_PAUSE)
        end
        if conn.closed then ok = false; break end
      end
    elseif #data > 0 then
      ok = conn.stream:write(data)
    end
    if not ok or cut or item.close_after then
      conn:close()
      break
    end
  end
  conn.draining = false
  if conn.closing and q.first > q.last and not conn.closed then conn:close() end
end

local function enqueue(conn, item)
  if conn.closed then return end
  local q = conn.queue
  q.last = q.last + 1
  q[q.last] = item
  drain(conn)
end

-- Replies of one batch of requests collect in conn.batch (a redis.core
-- outbuf, which appends a reply's bytes without making a Lua string of
-- each) and leave in one write (flush_batch); a reply with effects
-- (delay, split ...) first flushes what is collected, so bytes keep their
-- order.
local function flush_batch(conn)
  local b = conn.batch
  if b then
    local bytes = b:take()
    if bytes then enqueue(conn, { bytes = bytes }) end
  end
end

local function add_bytes(conn, bytes)
  local b = conn.batch
  if b then
    b:add(bytes)
  else
    enqueue(conn, { bytes = bytes })
  end
end

-- Pub/sub messages and other out-of-band replies. One pushed while the
-- connection's own batch is being answered joins the batch, in order.
function Conn:deliver(r)
  add_bytes(self, reply.encode(r, self.proto))
end

-- Sends a reply value (or mock.raw bytes) to this client now.
function Conn:push(r)
  self:deliver(r)
end

-- Adds a scripting rule for this connection only (see redis.mock).
function Conn:script(spec)
  local r = new_rule(self, spec)
  self.rules[#self.rules + 1] = r
  return r
end

-- Overrides a command for this connection only; fn = nil removes it.
function Conn:handle(name, fn)
  self.handlers[name:upper()] = fn
end

function Conn:close()
  if self.closed then return end
  self.closed = true
  self.stream:close()
end

function Conn:on_kill()
  -- CLIENT KILL from another connection.
  self:close()
end

---------------------------------------------------------------- input

-- The reader's texts, in Redis's words where they differ.
local REDIS_WORDS = {
  ["invalid aggregate length"] = "invalid multibulk length",
  ["too many elements in aggregate"] = "invalid multibulk length",
  ["bulk string too long"] = "invalid bulk length",
}

local run_requests

local function protocol_error(conn, text)
  local detail = text:gsub("^protocol error: ", "")
  detail = REDIS_WORDS[detail] or detail
  conn.closing = true
  enqueue(conn, { bytes = reply.encode(reply.error("ERR Protocol error: "
    .. detail)) })
  conn:close()
end

local encode = reply.encode

-- The log is a ring of LOG_MAX entries.
local function log_request(srv, argv)
  local log = srv.history
  local at = log.next
  log[at] = argv
  log.next = at % LOG_MAX + 1
  if log.n < LOG_MAX then log.n = log.n + 1 end
end

-- Queues reply r of a request, or drops it under CLIENT REPLY OFF/SKIP;
-- rule (or nil) is the scripting rule that matched the request.
local function answer(conn, r, rule)
  if conn.reply_off or conn.reply_skip then
    -- CLIENT REPLY OFF/SKIP: the reply is dropped; pushes (subscription
    -- confirmations) still go, as in Redis.
    local kind = reply.kind(r)
    local push = kind == "push" or (kind == "many" and reply.kind(r[1]) == "push")
    if conn.reply_skip then
      conn.reply_skip = conn.reply_skip - 1
      if conn.reply_skip <= 0 then conn.reply_skip = false end
    end
    if not push then return end
  end
  local notify = conn.server.engine.notify
  if notify and notify.x then conn.server:watch_expiry() end
  if not rule then
    add_bytes(conn, encode(r, conn.proto))
    return
  end
  local item = { bytes = encode(r, conn.proto) }
  item.delay, item.split, item.split_delay = rule.delay, rule.split, rule.split_delay
  item.close_after, item.silent, item.garbage = rule.close_after, rule.silent, rule.garbage
  item.close = rule.close
  flush_batch(conn)
  enqueue(conn, item)
end

local function process(conn, argv)
  local srv = conn.server
  local e = srv.engine
  if argv[1] == nil then return end
  log_request(srv, argv)
  local rule
  if conn.rules[1] or srv.rules[1] then
    rule = find_rule({ conn.rules, srv.rules }, argv, conn)
  end
  local r
  if rule then use(rule) end
  if rule and rule.reply ~= nil then
    e:count(argv)
    r = rule.reply
    if type(r) == "function" then
      local ok, v = pcall(r, argv, conn)
      if ok then
        r = v
      else
        e.errors[#e.errors + 1] = v
        r = reply.error("ERR mock rule failed: " .. tostring(v))
      end
    end
    if r == nil then r = e:dispatch(conn, argv, true) end
  else
    r = e:dispatch(conn, argv)
  end
  answer(conn, r, rule)
end

-- Redis's limits for a client that has not authenticated yet: more than
-- 10 arguments or a bulk over 16 KB is a protocol error and a close. The
-- request reader would wait for the whole request, so the headers are
-- read here, in Lua, only while the connection is unauthenticated.
local UNAUTH_ARGS, UNAUTH_BULK = 10, 16384

local function unauth_check(conn, data)
  local buf = (conn.unauth_buf or "") .. data
  local p = 1
  while p <= #buf do
    local start = p
    if buf:byte(p) ~= 42 then -- inline request: one line
      local nl = buf:find("\n", p, true)
      if not nl then break end
      p = nl + 1
    else
      local eol = buf:find("\r\n", p, true)
      if not eol then break end
      local n = tonumber(buf:sub(p + 1, eol - 1)) or 0
      if n > UNAUTH_ARGS then return "unauthenticated multibulk length" end
      p = eol + 2
      local complete = true
      for _ = 1, n do
        eol = buf:find("\r\n", p, true)
        if not eol then complete = false; break end
        local len = tonumber(buf:sub(p + 1, eol - 1)) or 0
        if len > UNAUTH_BULK then return "unauthenticated bulk length" end
        if eol + 2 + len + 2 - 1 > #buf then complete = false; break end
        p = eol + 2 + len + 2
      end
      if not complete then p = start; break end
    end
  end
  conn.unauth_buf = buf:sub(p)
  return nil
end

-- Answers the requests the connection's reader holds, until it runs dry
-- or a blocking command parks the connection (further requests wait in
-- the reader, as Redis leaves them in the query buffer). Runs in the
-- connection's task, or in a task resuming a connection a blocking
-- command has released; never twice at once for one connection.
-- The loop of run_requests. Without scripting rules a request takes
-- the short way: process() and answer() with the branches for rules and
-- dropped replies left out.
local function answer_all(conn)
  local reader, srv = conn.reader, conn.server
  local e = srv.engine
  local next_request, dispatch = reader.next, e.dispatch
  while not conn.closed and not conn.closing and not conn.blocked do
    local argv, perr = next_request(reader)
    if not argv then
      if perr then
        flush_batch(conn)
        protocol_error(conn, perr)
      end
      break
    end
    if argv[1] == nil then
      -- an empty request: no reply
    elseif conn.rules[1] or srv.rules[1] then
      process(conn, argv)
    else
      local log = srv.history
      local at = log.next
      log[at] = argv
      log.next = at % LOG_MAX + 1
      if log.n < LOG_MAX then log.n = log.n + 1 end
      local r = dispatch(e, conn, argv)
      if conn.reply_off or conn.reply_skip then
        answer(conn, r)
      else
        local notify = e.notify
        if notify and notify.x then srv:watch_expiry() end
        local ty = type(r)
        if ty == "string" then
          ob_bulk(conn.batch, r)
        elseif ty == "number" and math_type(r) == "integer" then
          ob_int(conn.batch, r)
        else
          ob_add(conn.batch, encode(r, conn.proto))
        end
      end
    end
    if conn.blocked then
      flush_batch(conn)
      srv:watch_blocks()
    end
  end
end

function run_requests(conn)
  if conn.processing then return end
  conn.processing = true
  -- Set only while this batch is answered (deliveries to an idle
  -- connection go straight out).
  conn.batch = conn.batch_buf
  local ok, failure = pcall(answer_all, conn)
  flush_batch(conn)
  conn.batch = false
  conn.processing = false
  if not ok then
    conn.server.engine.errors[#conn.server.engine.errors + 1] = failure
    conn:close()
  end
  if conn.closing and not conn.draining and not conn.closed
    and conn.queue.first > conn.queue.last then
    conn:close()
  end
end

-- A blocked connection's answer (served, timed out or unblocked): write
-- it, then answer the requests that waited behind it, in a task of
-- their own (the caller is another connection's command).
function Conn:wake(r)
  add_bytes(self, reply.encode(r, self.proto))
  local lev = self.server.lev
  if self.reader and not self.closed then
    lev.spawn(function() pcall(run_requests, self) end)
  end
end

-- Keeps one task timing out blocked clients while any has a deadline.
function Server:watch_blocks()
  if self.block_timer then return end
  self.block_timer = true
  local lev, e = self.lev, self.engine
  lev.spawn(function()
    local ok = pcall(function()
      while not self.closed do
        local nearest = e:expire_blocks()
        if not nearest then break end
        local wait = (nearest - e.clock()) / 1000
        if wait > 0.01 then wait = 0.01 end
        if wait < 0.001 then wait = 0.001 end
        lev.sleep(wait)
      end
    end)
    self.block_timer = false
    if not ok then return end
  end)
end

-- With expired-key notifications on, one task deletes keys whose time
-- has come (Redis's active expiry), so "expired" events fire without a
-- command touching the key. It ends when no key has a deadline.
function Server:watch_expiry()
  if self.expiry_timer then return end
  self.expiry_timer = true
  local lev, e = self.lev, self.engine
  lev.spawn(function()
    pcall(function()
      while not self.closed and e.notify and e.notify.x do
        local any = false
        for i = 0, 15 do
          local db = e.store.dbs[i]
          if db.nexpires > 0 then
            any = true
            local dead = {}
            local now = e.clock()
            for key, when in pairs(db.expires) do
              if now > when then dead[#dead + 1] = key end
            end
            for _, key in ipairs(dead) do db:lookup(key) end
          end
        end
        if not any then break end
        lev.sleep(0.05)
      end
    end)
    self.expiry_timer = false
  end)
end

local function serve(srv, stream)
  local e = srv.engine
  e.stats.accepted = e.stats.accepted + 1
  for _, r in ipairs(srv.rules) do
    if r.hangup then
      use(r)
      e.stats.refused = e.stats.refused + 1
      stream:close()
      return
    end
  end
  local conn = e:session({
    addr = stream:peer(),
    laddr = srv.host .. ":" .. srv.port_number,
    stream = stream,
    server = srv,
    rules = {},
    handlers = {},
    queue = { first = 1, last = 0 },
    batch_buf = srv.core.outbuf(),
    batch = false,
    closed = false,
    processing = false,
    draining = false,
  }, Conn)
  e.stats.live = e.stats.live + 1
  srv.conns[conn] = true
  local reader = srv.core.reader({ request = true })
  conn.reader = reader
  local ok, failure = pcall(function()
    if srv.on_connect then srv.on_connect(conn) end
    while not conn.closed and not conn.closing do
      local data = stream:read()
      if not data then break end
      if not conn.authenticated then
        local bad = unauth_check(conn, data)
        if bad then
          protocol_error(conn, bad)
          break
        end
      else
        conn.unauth_buf = nil
      end
      reader:feed(data)
      run_requests(conn)
    end
  end)
  -- A QUIT answered while another task drains: wait for the bytes.
  while conn.draining and not conn.closed do srv.lev.sleep(0.001) end
  conn:close()
  conn:gone()
  srv.conns[conn] = nil
  e.stats.live = e.stats.live - 1
  if not ok then
    e.errors[#e.errors + 1] = failure
  end
end

function Server:listen_now()
  local lev = self.lev
  local l, why = lev.tcp.listen(self.host, self.port_number, function(stream)
    serve(self, stream)
  end)
  if not l then return nil, why end
  self.listener = l
  self.port_number = l:port()
  return true
end

function Server:refusing()
  for _, r in ipairs(self.rules) do
    if r.refuse then return true end
  end
  return false
end

function Server:relisten()
  if self.closed or self.listener or self:refusing() then return end
  assert(self:listen_now())
end

---------------------------------------------------------------- API

function Server:port() return self.port_number end

-- Adds a server-wide scripting rule (see redis.mock); returns it.
function Server:script(spec)
  local r = new_rule(self, spec)
  self.rules[#self.rules + 1] = r
  if r.refuse and self.listener then
    self.listener:close()
    self.listener = nil
  end
  return r
end

-- Removes every rule of the server and of its live connections.
function Server:unscript()
  local refused = self:refusing()
  self.rules = {}
  for conn in pairs(self.conns) do conn.rules = {} end
  if refused then self:relisten() end
end

function Server:handle(name, fn)
  self.engine.handlers[name:upper()] = fn
end

function Server:stats()
  local s = self.engine.stats
  local commands = {}
  for k, v in pairs(s.commands) do commands[k] = v end
  return { accepted = s.accepted, live = s.live, commands = commands,
           total_commands = s.total_commands, refused = s.refused }
end

function Server:reset_stats()
  local s = self.engine.stats
  s.accepted, s.commands, s.total_commands, s.refused = 0, {}, 0, 0
  self.history = { n = 0, next = 1 }
end

-- The last commands received (argument arrays, oldest first, at most
-- 1000).
function Server:log()
  local out = {}
  local log = self.history
  local first = log.n < LOG_MAX and 1 or log.next
  for i = 0, log.n - 1 do out[i + 1] = log[(first - 1 + i) % LOG_MAX + 1] end
  return out
end

-- Lua errors raised by handlers, rule functions or on_connect (each also
-- answered with an error reply, or closing its connection).
function Server:errors()
  local out = {}
  for i, v in ipairs(self.engine.errors) do out[i] = v end
  return out
end

-- Live connections, oldest first.
function Server:connections()
  local out = {}
  for conn in pairs(self.conns) do out[#out + 1] = conn end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

-- Moves the mock's clock forward: keys expire without waiting.
function Server:advance(seconds)
  self.engine:advance(seconds)
end

function Server:flush()
  for i = 0, 15 do self.engine.store.dbs[i]:flush() end
end

-- Stops listening and closes every connection. Idempotent. Inside a task
-- it also waits (up to a second) for the connection tasks to finish, so
-- nothing of the mock outlives the call.
function Server:close()
  if not self.closed then
    self.closed = true
    if self.listener then
      self.listener:close()
      self.listener = nil
    end
    for conn in pairs(self.conns) do conn:close() end
  end
  local lev = self.lev
  local deadline = lev.now() + 1
  while next(self.conns) ~= nil and lev.now() < deadline do
    if not pcall(lev.sleep, 0.001) then break end
  end
  return true
end

Server.__close = Server.close

function M.start(opts)
  opts = opts or {}
  local lev = require("lev")
  local core = require("redis.core")
  local clock = opts.clock or require("redis.mock.util").wall_clock(lev.now)
  local srv = setmetatable({
    lev = lev,
    core = core,
    host = opts.host or "127.0.0.1",
    port_number = opts.port or 0,
    rules = {},
    conns = {},
    history = { n = 0, next = 1 },
    on_connect = opts.on_connect,
  }, Server)
  srv.engine = engine_mod.new({
    password = opts.password,
    users = opts.users,
    handlers = opts.handlers,
    version = opts.version,
    clock = clock,
  })
  local ok, why = srv:listen_now()
  if not ok then return nil, why end
  srv.engine.port = srv.port_number
  for _, spec in ipairs(opts.script or {}) do srv:script(spec) end
  return srv
end

M._process = process
M._flush = flush_batch
return M
