-- redis.subscriber: pub/sub on a connection of its own (contract section 13).
--
--   local sub = assert(redis.subscriber{ host = "127.0.0.1" })
--   assert(sub:subscribe("news", "alerts"))
--   for msg in sub:messages() do print(msg.kind, msg.channel, msg.payload) end
--
-- The subscriber holds a private client (redis.core) that is never pooled.
-- Its handshake, reconnect, resubscription and events are redis.handshake's
-- and redis.reconnect's, the same as a client's: reconnect.manage watches
-- it, and the reconnect cycle subscribes again to everything the server had
-- confirmed (tracked in C from the confirmations) before it attaches the
-- new connection and fires `reconnect`.
--
-- Per message, everything is C (core.sub_*): the reply becomes the message
-- table as it is parsed and waits in a queue of at most max_queue messages;
-- at the bound the socket is not read until next() makes room (Redis then
-- holds the rest, under its own client-output-buffer-limit). next() is one
-- C call while messages are queued.

local lev = require("lev")
local core = require("redis.core")
local config = require("redis.config")
local handshake = require("redis.handshake")
local reconnect = require("redis.reconnect")

local M = {}

M.DEFAULT_MAX_QUEUE = 10000

-- While the connection is being reopened, next() looks again this often.
local RECONNECT_POLL = 0.02

local sub_next, sub_hold = core.sub_next, core.sub_hold

local Sub = {}
Sub.__index = Sub

local function invalid(msg)
  return nil, "invalid config: " .. msg, "config"
end

-- redis.subscriber(config) -> subscriber | nil, err
function M.new(conf)
  -- the cluster form (contract section 15): lua/redis/cluster_subscriber.lua
  if type(conf) == "table" and conf.cluster ~= nil then
    return require("redis.cluster_subscriber").new(conf, M)
  end
  local cfg, err = config.normalize(conf)
  if not cfg then return nil, err, "config" end
  local mq = type(conf) == "table" and conf.max_queue or nil
  if mq == nil then
    mq = M.DEFAULT_MAX_QUEUE
  else
    local n = math.type(mq) == "integer" and mq
      or (math.type(mq) == "float" and mq == math.floor(mq)
          and mq <= math.maxinteger and mq >= math.mininteger
          and math.tointeger(mq))
    if not n or n < 1 then
      return invalid("max_queue must be an integer >= 1")
    end
    mq = n
  end
  cfg.max_queue = mq
  -- reconnect is on unless the config says otherwise.
  if type(conf) ~= "table" or conf.reconnect == nil then
    cfg.reconnect = config.check_reconnect(true)
  end
  local c, proto, cat = handshake.open(cfg)
  if not c then return nil, proto, cat end
  -- No pool key: close() below never pools, and neither would __gc.
  core.ready(c, "", cfg)
  core.sub_mode(c, mq)
  c.protocol = proto
  if cfg.reconnect then reconnect.manage(c, cfg, { restore = M.restore }) end
  return setmetatable({ cfg = cfg, protocol = proto, _c = c }, Sub)
end

-- ---- subscribe and unsubscribe ---------------------------------------

local function check_names(what, n, ...)
  for i = 1, n do
    local v = select(i, ...)
    local t = type(v)
    if t ~= "string" and t ~= "number" then
      error(string.format("redis: %s: name #%d must be a string, got %s",
        what, i, t), 3)
    end
  end
end

-- Sends `name names...` and waits until the server has confirmed every
-- name: the command's own reply is the first confirmation, and a PING
-- after it is answered only after the others (replies come in order).
local function send(c, name, n, ...)
  sub_hold(c, true) -- keep reading past max_queue: the confirmations
                    -- are behind the messages already on their way
  local ok, r, err, cat = pcall(c.cmd, c, name, ...)
  if ok and r ~= nil and n > 1 then
    r, err, cat = c:cmd("PING")
  end
  sub_hold(c, false)
  if not ok then error(r, 0) end
  if r == nil then return nil, err, cat end
  return true
end

-- reconnect's restore hook: the fresh connection becomes a subscriber's
-- before anything else, so that messages arriving while it resubscribes
-- are message tables (moved to the subscriber's queue when it is
-- attached) and reading never pauses under the confirmations; one command
-- per kind, then one PING.
function M.restore(fresh, c)
  core.sub_mode(fresh, c.cfg.max_queue)
  local subs = core.subscriptions(c)
  for _, k in ipairs({ { "SUBSCRIBE", subs.channels },
                       { "PSUBSCRIBE", subs.patterns },
                       { "SSUBSCRIBE", subs.shard_channels } }) do
    local names = k[2]
    if #names > 0 then
      local ok, err, cat = send(fresh, k[1], #names, table.unpack(names))
      if not ok then return nil, err, cat end
    end
  end
  return true
end

local KINDS = {
  subscribe = { "SUBSCRIBE" }, psubscribe = { "PSUBSCRIBE" },
  ssubscribe = { "SSUBSCRIBE" },
  unsubscribe = { "UNSUBSCRIBE", "channels" },
  punsubscribe = { "PUNSUBSCRIBE", "patterns" },
  sunsubscribe = { "SUNSUBSCRIBE", "shard_channels" },
}

for method, k in pairs(KINDS) do
  local cmdname, family = k[1], k[2]
  Sub[method] = function(self, ...)
    local c = self._c
    local n = select("#", ...)
    check_names(method, n, ...)
    if n > 0 then return send(c, cmdname, n, ...) end
    if not family then
      error("redis: " .. method .. ": at least one name is needed", 2)
    end
    -- No names: every subscription of this kind, by name, so that each
    -- confirmation is accounted for.
    local names = core.subscriptions(c)[family]
    if #names == 0 then
      if c:status() == "closed" then return nil, "closed", "closed" end
      return true
    end
    return send(c, cmdname, #names, table.unpack(names))
  end
end

-- ---- messages ----------------------------------------------------------

-- The part of next() that is not C (core.sub_method): a timeout, a
-- reconnect under way, the end. C calls it as slow(sub, timeout) when no
-- message is queued and it cannot simply wait.
local function next_slow(self, timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout
                         or timeout < 0) then
    error("redis: next: timeout must be a number >= 0 (seconds) or nil", 3)
  end
  local c = self._c
  local deadline = timeout and lev.now() + timeout
  local m, err, cat = sub_next(c, true)
  while true do
    if m then return m end
    if m == nil and c:status() == "closed" then
      return nil, err or "closed", cat or "closed"
    end
    local left
    if deadline then
      left = deadline - lev.now()
      if left <= 0 then return nil, "timeout" end
    end
    if m == nil then
      -- No connection: the reconnect cycle is reopening it.
      lev.sleep(left and math.min(left, RECONNECT_POLL) or RECONNECT_POLL)
      m, err, cat = sub_next(c, true)
    elseif left then
      m, err, cat = lev.timeout(left, sub_next, c)
      -- lev.timeout's own nil, "timeout" has no category.
      if m == nil and cat == nil then return nil, "timeout" end
    else
      m, err, cat = sub_next(c)
    end
  end
end

-- sub:next(timeout) -> message | nil, "timeout" | nil, err
Sub.next = core.sub_method(next_slow)

-- for msg in sub:messages() do ... end: until the subscriber is closed
-- (or fails for good).
function Sub:messages()
  local nxt = Sub.next
  return function()
    return (nxt(self))
  end
end

-- ---- state, events, close ----------------------------------------------

function Sub:subscriptions()
  return core.subscriptions(self._c)
end

function Sub:status() return self._c:status() end
function Sub:on(event, fn) return self._c:on(event, fn) end
function Sub:off(handle) return self._c:off(handle) end

-- Closes the connection (a subscriber is never pooled) and fires `end`.
function Sub:close()
  self._c:close(true)
  return true
end

Sub.__close = Sub.close

function Sub.__tostring(self)
  return string.format("redis.subscriber (%s:%d, %s): %p", self.cfg.host,
    self.cfg.port, self._c:status(), self)
end

return M
