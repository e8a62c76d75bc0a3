-- redis.mock.engine: the pure part of the mock server. No sockets: an
-- engine owns the keyspace, the sessions (one per connection), pub/sub
-- subscriptions and statistics, and answers one command at a time with a
-- reply value (redis.mock.reply) for the session's protocol.
--
--   local e = engine.new{ password = "pw", users = { alice = "x" },
--                         clock = function() return unix_ms end }
--   local s = e:session{ addr = "127.0.0.1:5000" }
--   local r = e:dispatch(s, { "SET", "k", "v" })   --> reply.ok
--   reply.encode(r, s.proto)                        --> "+OK\r\n"
--
-- The checks before a command runs follow Redis 7.0's processCommand in
-- order: QUIT, command lookup (unknown command / unknown subcommand),
-- arity, authentication, the RESP2 pub/sub context, MULTI queueing. A
-- rejected command inside MULTI makes EXEC fail with EXECABORT.
local reply = require("redis.mock.reply")
local store = require("redis.mock.store")
local util = require("redis.mock.util")

-- Globals the per-request path uses, as locals (a global is a table look-up).
local next, pcall, type, getmetatable = next, pcall, type, getmetatable

local M = {}

local err = reply.error

-- The command table: lower-case name -> { name, arity, flags, fn, sub }.
-- Container commands (CLIENT) keep their subcommands in `sub`.
local commands = {}
M.commands = commands

-- def{ "name", arity, fn, flags = { ... } }; flags: noauth, pubsub (allowed
-- in the RESP2 subscribed context), nomulti (runs at once inside MULTI).
function M.def(spec)
  local name = spec[1]
  local cmd = {
    name = name,
    fullname = name,
    arity = spec[2],
    fn = spec[3],
    flags = spec.flags or {},
  }
  local parent = name:match("^(%w+)|")
  if parent then
    cmd.sub_name = name:match("|(.+)$")
    local container = commands[parent]
    container.sub[cmd.sub_name] = cmd
  else
    if spec.container then cmd.sub = {} end
    commands[name] = cmd
  end
  return cmd
end

-- An ordered set: iteration in insertion order, O(1) membership.
local Oset = {}
Oset.__index = Oset
local function oset() return setmetatable({ list = {}, index = {} }, Oset) end
function Oset:add(v)
  if self.index[v] then return false end
  self.list[#self.list + 1] = v
  self.index[v] = #self.list
  return true
end
function Oset:remove(v)
  local i = self.index[v]
  if not i then return false end
  table.remove(self.list, i)
  self.index[v] = nil
  for j = i, #self.list do self.index[self.list[j]] = j end
  return true
end
function Oset:has(v) return self.index[v] ~= nil end
function Oset:size() return #self.list end
function Oset:items()
  local copy = {}
  for i, v in ipairs(self.list) do copy[i] = v end
  return copy
end
M.oset = oset

local Engine = {}
Engine.__index = Engine

-- A handlers table notes in owner.hmaybe that it may hold an entry: a
-- new key, however it is set, passes through __newindex. The per-request
-- path looks into the table only then.
local function watched_handlers(owner, t)
  owner.hmaybe = next(t) ~= nil or getmetatable(t) ~= nil
  if getmetatable(t) == nil then
    setmetatable(t, { __newindex = function(h, k, v)
      owner.hmaybe = true
      rawset(h, k, v)
    end })
  end
  return t
end

-- The default clock: real time with sub-second precision when lev is
-- there (its monotonic clock), whole seconds otherwise.
local function default_clock()
  local ok, lev = pcall(require, "lev")
  if ok and lev.now then return util.wall_clock(lev.now) end
  return function() return os.time() * 1000 end
end

-- opts: password (the default user's), users ({ name = password }),
-- clock (function returning unix ms), handlers ({ NAME = fn }),
-- version (reported by HELLO and INFO, "7.0.15").
function M.new(opts)
  opts = opts or {}
  local e = setmetatable({}, Engine)
  e.offset = 0
  local clock = opts.clock or default_clock()
  e.base_clock = clock
  -- While a command runs the time is read once (e.snap), as Redis reads
  -- it once per command for expiry.
  e.clock = function()
    local t = e.snap
    if t then return t end
    t = math.floor(clock() + e.offset)
    if e.snap == false then e.snap = t end
    return t
  end
  -- TIME's microseconds: the clock's fraction of a millisecond kept.
  e.clock_us = function() return (clock() + e.offset) * 1000 end
  e.store = store.new(e.clock)
  e.store.on_new = function(db, key)
    if e.notify and e.notify.n then
      M.notify({ engine = e, dbi = db.index }, "n", "new", key, db.index)
    end
  end
  e.store.on_expired = function(db, key)
    if e.notify and e.notify.x then
      M.notify({ engine = e, dbi = db.index }, "x", "expired", key, db.index)
    end
  end
  e.password = opts.password
  e.users = {}
  for name, pass in pairs(opts.users or {}) do e.users[name] = pass end
  e.handlers = watched_handlers(e, {})
  for name, fn in pairs(opts.handlers or {}) do e.handlers[name:upper()] = fn end
  e.version = opts.version or "7.0.15"
  e.sessions = {}
  e.session_list = oset()
  e.next_id = 1
  e.channels = {}   -- channel -> oset of sessions
  e.patterns = {}   -- pattern -> oset of sessions
  e.pattern_order = oset()
  e.started = e.clock()
  e.errors = {}
  e.busy, e.notify = false, false
  e.port = opts.port or 6379
  e.stats = { accepted = 0, live = 0, commands = {}, total_commands = 0,
              refused = 0, error_replies = 0 }
  e.cmdstats = {}   -- fullname -> { calls, rejected, failed } (INFO)
  e.errstats = {}   -- error code -> count (INFO errorstats)
  return e
end

-- Moves the engine's time forward (keys expire without waiting).
function Engine:advance(seconds)
  self.offset = self.offset + seconds * 1000
end

function Engine:auth_required()
  return self.password ~= nil
end

-- Checks a user name and password like Redis's ACL: the default user
-- without a password accepts any password.
function Engine:check_user(user, pass)
  if user == "default" then
    return self.password == nil or pass == self.password
  end
  local want = self.users[user]
  return want ~= nil and want == pass
end

local Session = {}
Session.__index = Session
M.Session = Session

-- A session is one client connection's state. fields may hold addr
-- ("ip:port" of the peer) and laddr (the local "ip:port"); mt is a
-- metatable extending Session (the network layer's connections).
function Engine:session(fields, mt)
  local s = setmetatable(fields or {}, mt or Session)
  s.engine = self
  s.id = self.next_id
  self.next_id = self.next_id + 1
  s.dbi = 0
  s.db = self.store.dbs[0]
  s.proto = 2
  s.user = "default"
  s.authenticated = not self:auth_required()
  s.channels = oset()
  s.patterns = oset()
  s.chlist, s.ptlist = s.channels.list, s.patterns.list   -- never replaced
  -- Fields the per-request path reads, set to false rather than left nil:
  -- a nil field is looked up through the metatable chain on every read.
  s.multi, s.shard, s.blocked, s.closing = false, false, false, false
  s.reply_off, s.reply_skip = false, false
  s.watched = {}
  s.handlers = watched_handlers(s, s.handlers or {})
  s.created = self.clock()
  s.last = s.created
  s.addr = s.addr or "127.0.0.1:0"
  s.laddr = s.laddr or ("127.0.0.1:" .. self.port)
  s.last_cmd = "NULL"
  s.outbox = s.outbox or {}
  self.sessions[s.id] = s
  self.session_list:add(s)
  return s
end

-- Pushes out-of-band replies (pub/sub messages) to the session. The
-- network layer replaces deliver; the pure engine keeps them in outbox.
function Session:deliver(r)
  self.outbox[#self.outbox + 1] = r
end

function Session:select(dbi)
  self.dbi = dbi
  self.db = self.engine.store.dbs[dbi]
end

function Session:subscriptions()
  return self.channels:size() + self.patterns:size()
    + (self.shard and self.shard:size() or 0)
end

function Session:unwatch()
  local w = self.engine.store.watchers
  for _, item in ipairs(self.watched) do
    local keys = w[item.dbi]
    local set = keys and keys[item.key]
    if set then
      set[self] = nil
      if next(set) == nil then keys[item.key] = nil end
    end
  end
  self.watched = {}
  self.dirty_cas = false
end

function Session:watch(key)
  for _, item in ipairs(self.watched) do
    if item.dbi == self.dbi and item.key == key then return end
  end
  self.watched[#self.watched + 1] = { dbi = self.dbi, key = key }
  local w = self.engine.store.watchers
  w[self.dbi] = w[self.dbi] or {}
  local set = w[self.dbi][key] or {}
  w[self.dbi][key] = set
  set[self] = true
end

-- A watched key whose deadline has passed counts as changed at EXEC, as
-- in Redis 7.0 (isWatchedKeyExpired).
function Session:watched_expired()
  local dbs = self.engine.store.dbs
  for _, item in ipairs(self.watched) do
    if dbs[item.dbi]:expired(item.key) then return true end
  end
  return false
end

function Session:discard()
  self.multi = false
  self.multi_error = nil
  self:unwatch()
end

-- Forgets the session: its subscriptions and watches go. The network
-- layer calls this when the connection closes.
function Session:gone()
  if self.dead then return end
  self.dead = true
  self:unwatch()
  local e = self.engine
  if self.blocked then e:unpark(self) end
  if e.busy and e.busy.session == self then e.busy = nil end
  for _, ch in ipairs(self.channels.list) do
    local subs = e.channels[ch]
    if subs then
      subs:remove(self)
      if subs:size() == 0 then e.channels[ch] = nil end
    end
  end
  for _, p in ipairs(self.patterns.list) do
    local subs = e.patterns[p]
    if subs then
      subs:remove(self)
      if subs:size() == 0 then
        e.patterns[p] = nil
        e.pattern_order:remove(p)
      end
    end
  end
  if self.shard and e.shard_channels then
    for _, ch in ipairs(self.shard.list) do
      local subs = e.shard_channels[ch]
      if subs then
        subs:remove(self)
        if subs:size() == 0 then e.shard_channels[ch] = nil end
      end
    end
  end
  e.sessions[self.id] = nil
  e.session_list:remove(self)
end

-- Asks the network layer to close the connection (CLIENT KILL); the pure
-- engine just forgets the session.
function Session:kill()
  self.killed = true
  if self.on_kill then self:on_kill() end
  self:gone()
end

-- Command names as received -> { lower, upper }, for known commands only
-- and at most NAMES_MAX spellings, so a hostile client cannot grow it.
local NAMES, names_n, NAMES_MAX = {}, 0, 4096
local function names_of(raw)
  local c = NAMES[raw]
  if c then return c[1], c[2] end
  local lo, up = util.lower(raw), raw:upper()
  if commands[lo] and names_n < NAMES_MAX then
    NAMES[raw] = { lo, up, commands[lo], commands[lo].fn }
    names_n = names_n + 1
  end
  return lo, up
end
M.names_of = names_of

local function handler_for(e, s, up)
  if next(s.handlers) == nil and next(e.handlers) == nil then return nil end
  return s.handlers[up] or e.handlers[up]
end

-- Command lookup: the command, or nil and the error reply Redis gives.
local function lookup(e, s, argv)
  local name, up = names_of(argv[1])
  local cmd = commands[name]
  local handler = handler_for(e, s, up)
  if cmd and cmd.sub and #argv >= 2 then
    local sub = cmd.sub[util.lower(argv[2])]
    if not sub then
      if handler then
        return { name = name, fullname = name, arity = -1, flags = {},
                 handler = handler }
      end
      return nil, "unknown subcommand '" .. argv[2]:sub(1, 128):gsub("%z.*", "")
        .. "'. Try " .. argv[1]:upper() .. " HELP."
    end
    cmd = sub
  end
  if not cmd then
    if handler then
      return { name = name, fullname = name, arity = -1, flags = {},
               handler = handler }
    end
    local args = ""
    for i = 2, #argv do
      if #args >= 128 then break end
      args = args .. "'" .. argv[i]:gsub("%z.*", ""):sub(1, 128 - #args) .. "' "
    end
    return nil, "unknown command '" .. argv[1]:gsub("%z.*", ""):sub(1, 128)
      .. "', with args beginning with: " .. args
  end
  return cmd
end

-- A rejected command: inside MULTI it also dooms the transaction, and a
-- rejected EXEC reports EXECABORT with the reason.
-- Counts an error reply in INFO's errorstats (by its first word).
local ERROR_MT = getmetatable(reply.error("x"))
local STATUS_MT = getmetatable(reply.ok)
local OK = reply.ok
local BLOCK_MT = reply.BLOCK_MT
local function count_error(e, r)
  local code = r[1]:match("^(%S+)") or "ERR"
  e.errstats[code] = (e.errstats[code] or 0) + 1
  e.stats.error_replies = e.stats.error_replies + 1
end
M.count_error = count_error

local function cmdstat(e, cmd)
  local name = cmd.fullname
  local st = e.cmdstats[name]
  if not st then
    st = { 0, 0, 0 }
    e.cmdstats[name] = st
  end
  return st
end

-- text is the error without its code ("ERR " is added) unless coded.
local function reject(s, cmd, text, coded)
  if s.multi then s.multi_error = true end
  local r
  if cmd and cmd.name == "exec" and s.multi then
    s:discard()
    r = err("EXECABORT Transaction discarded because of: " .. text)
  else
    r = err(coded and text or "ERR " .. text)
  end
  local e = s.engine
  if cmd then local st = cmdstat(e, cmd); st[2] = st[2] + 1 end
  count_error(e, r)
  return r
end

local PUBSUB_OK = { ping = true, subscribe = true, unsubscribe = true,
                    psubscribe = true, punsubscribe = true, quit = true,
                    reset = true, ssubscribe = true, sunsubscribe = true }
-- What a client may run while a script is busy (Redis's allow-busy).
local ALLOW_BUSY = { auth = true, discard = true, hello = true, multi = true,
  quit = true, reset = true, unwatch = true, watch = true, shutdown = true,
  ["script|kill"] = true, ["function|kill"] = true, ["function|stats"] = true }
local BUSY_TEXT = "BUSY Redis is busy running a script. You can only call "
  .. "SCRIPT KILL or SHUTDOWN NOSAVE."
local MULTI_RUNS = { exec = true, discard = true, multi = true, watch = true,
                     quit = true, reset = true }

-- Runs a command that passed every check. A handler (per session first,
-- then per engine) may answer instead; returning nil falls back to the
-- built-in command. A Lua error in a handler (or a bug in a built-in)
-- becomes an error reply and is kept in engine.errors, so a spec sees it
-- instead of a dead connection.
function Engine:call(s, cmd, argv)
  local handler = cmd.handler
  if not handler and (next(s.handlers) ~= nil or next(self.handlers) ~= nil) then
    local _, up = names_of(argv[1])
    handler = handler_for(self, s, up)
  end
  local ok, r
  if handler then
    ok, r = pcall(handler, argv, s)
    if not ok then
      self.errors[#self.errors + 1] = r
      return err("ERR mock handler failed: " .. tostring(r))
    end
    if r ~= nil then
      if type(r) == "number" and math.type(r) == "float" then
        r = reply.double(r)
      end
      return r
    end
    if not cmd.fn then
      return err("ERR unknown command '" .. argv[1] .. "'")
    end
  end
  ok, r = pcall(cmd.fn, s, argv)
  if not ok then
    self.errors[#self.errors + 1] = r
    r = err("ERR mock internal error: " .. tostring(r))
  end
  return self:finish(s, cmd, argv, r, getmetatable(r))
end

-- After a command ran: notifications, a block to park, statistics.
function Engine:finish(s, cmd, argv, r, mt)
  local n = self.notify
  if n and (n.K or n.E) then M.after_command(s, cmd, argv, r) end
  if mt == reply.BLOCK_MT then
    self:block(s, r)
    r = reply.noreply
  end
  local st = cmdstat(self, cmd)
  st[1] = st[1] + 1
  if mt == ERROR_MT then
    st[3] = st[3] + 1
    count_error(self, r)
  end
  return r
end

-- Counts a received command under its upper-case name.
function Engine:count(argv)
  local _, name = names_of(argv[1])
  local c = self.stats.commands
  c[name] = (c[name] or 0) + 1
  self.stats.total_commands = self.stats.total_commands + 1
end

-- One command from session s: returns the reply value. s.closing is set
-- when the connection must be closed after this reply (QUIT). counted
-- says the caller has already counted the command in the statistics.
function Engine:dispatch(s, argv, counted)
  if self.snap ~= nil then return self:dispatch_now(s, argv, counted) end
  -- The common case in one place: a known, plain command with its arity
  -- from an authenticated client outside MULTI and pub/sub, no handlers.
  local nm = NAMES[argv[1]]
  local fn = nm and nm[4]
  if fn and not counted and s.authenticated and not s.multi
    and not self.busy
    and s.chlist[1] == nil and s.ptlist[1] == nil and not s.shard
    and (not s.hmaybe or next(s.handlers) == nil)
    and (not self.hmaybe or next(self.handlers) == nil) then
    local cmd = nm[3]
    local n, ar = #argv, cmd.arity
    if ar == n or (ar < 0 and n >= -ar) then
      local stats = self.stats
      local c, up = stats.commands, nm[2]
      c[up] = (c[up] or 0) + 1
      stats.total_commands = stats.total_commands + 1
      s.last_cmd = cmd.fullname
      self.snap = false   -- the time is read when first needed
      local ok, r = pcall(fn, s, argv)
      if not ok then
        self.errors[#self.errors + 1] = r
        r = err("ERR mock internal error: " .. tostring(r))
      end
      -- Strings and numbers need no look at a metatable (a string's
      -- would be the string library's).
      local mt = r ~= OK and type(r) == "table" and getmetatable(r)
      if mt == ERROR_MT or mt == BLOCK_MT then r = self:finish(s, cmd, argv, r, mt)
      else
        local notify = self.notify
        if notify and (notify.K or notify.E) then M.after_command(s, cmd, argv, r) end
        local st = self.cmdstats[cmd.fullname] or cmdstat(self, cmd)
        st[1] = st[1] + 1
      end
      local snap = self.snap
      if snap then s.last = snap end
      self.snap = nil
      if self.store.ready_n > 0 then self:serve_ready() end
      return r
    end
  end
  self.snap = false
  local ok, r = pcall(self.dispatch_now, self, s, argv, counted)
  s.last = self.snap or self.clock()
  self.snap = nil
  if not ok then error(r, 0) end
  if self.store.ready_n > 0 then self:serve_ready() end
  return r
end

function Engine:dispatch_now(s, argv, counted)
  if #argv == 0 then return reply.noreply end
  if not counted then self:count(argv) end
  if names_of(argv[1]) == "quit" then
    -- Redis 7.0 answers QUIT before any other check, args or not.
    s.closing = true
    return reply.ok
  end
  local cmd, why = lookup(self, s, argv)
  if not cmd then return reject(s, nil, why) end
  s.last_cmd = cmd.fullname
  local n = #argv
  if (cmd.arity > 0 and cmd.arity ~= n) or n < -cmd.arity then
    return reject(s, cmd, "wrong number of arguments for '" .. cmd.fullname
      .. "' command")
  end
  if not s.authenticated and not cmd.flags.noauth then
    if s.multi then s.multi_error = true end
    local r = err("NOAUTH Authentication required.")
    local st = cmdstat(self, cmd)
    st[2] = st[2] + 1
    count_error(self, r)
    return r
  end
  if s:subscriptions() > 0 and s.proto == 2 and not PUBSUB_OK[cmd.name] then
    return reject(s, cmd, "Can't execute '" .. cmd.fullname .. "': only "
      .. "(P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
      .. "allowed in this context")
  end
  if self.busy and not ALLOW_BUSY[cmd.fullname] then
    return reject(s, cmd, BUSY_TEXT, true)
  end
  if s.multi and cmd.flags.nomulti then
    return reject(s, cmd, "Command not allowed inside a transaction")
  end
  if s.multi and not MULTI_RUNS[cmd.name] then
    local copy = {}
    for i = 1, n do copy[i] = argv[i] end
    s.multi[#s.multi + 1] = { cmd = cmd, argv = copy }
    return reply.status("QUEUED")
  end
  return self:call(s, cmd, argv)
end

-- EXEC's body: runs the queued commands, each reply one array element.
function Engine:exec(s)
  local queue = s.multi
  local aborted = s.dirty_cas or s:watched_expired()
  if s.multi_error then
    s:discard()
    return err("EXECABORT Transaction discarded because of previous errors.")
  end
  if aborted then
    s:discard()
    return reply.null_array
  end
  s.multi = false
  s:unwatch()
  local out = { n = #queue }
  -- Blocking commands answer at once inside a transaction.
  local deny = s.deny_blocking
  s.deny_blocking = true
  for i, item in ipairs(queue) do
    out[i] = self:call(s, item.cmd, item.argv)
  end
  s.deny_blocking = deny
  return out
end

-- Sessions subscribed to channel, directly or by pattern, get message;
-- returns the number of receivers as PUBLISH does.
function Engine:publish(channel, message)
  local n = 0
  local subs = self.channels[channel]
  if subs then
    for _, s in ipairs(subs:items()) do
      s:deliver(reply.push({ "message", channel, message }))
      n = n + 1
    end
  end
  for _, pattern in ipairs(self.pattern_order:items()) do
    local psubs = self.patterns[pattern]
    if psubs and store.match(pattern, channel) then
      for _, s in ipairs(psubs:items()) do
        s:deliver(reply.push({ "pmessage", pattern, channel, message }))
        n = n + 1
      end
    end
  end
  return n
end

M.Engine = Engine

-- Loads the command modules into the table.
require("redis.mock.cmd_server")(M)
require("redis.mock.cmd_keys")(M)
require("redis.mock.cmd_strings")(M)
require("redis.mock.cmd_collections")(M)
require("redis.mock.cmd_zset")(M)
require("redis.mock.cmd_admin")(M)
require("redis.mock.blocking")(M)
require("redis.mock.notify")(M)
require("redis.mock.cmd_lists")(M)
require("redis.mock.cmd_sets")(M)
require("redis.mock.cmd_more")(M)
require("redis.mock.cmd_scripting")(M)
require("redis.mock.cmd_streams")(M)

return M
