-- redis.subscriber{ cluster = { nodes = {...} }, ... }: pub/sub through a
-- Redis Cluster (contract sections 13 and 15).
--
--   local sub = assert(redis.subscriber{
--     cluster = { nodes = { "127.0.0.1:7000" } }, auth = { ... } })
--   assert(sub:ssubscribe("orders:{eu}"))
--   for msg in sub:messages() do print(msg.kind, msg.channel) end
--
-- Built from the existing pieces: a redis.cluster object holds the slot
-- map, and one plain redis.subscriber per node in use holds a connection
-- (its handshake, reconnect, resubscription, per-message C path and
-- max_queue are the subscriber's). subscribe/psubscribe go to one node
-- (the "main" subscriber, opened on a master at creation); ssubscribe goes
-- to the master of each channel's slot, on node subscribers of their own:
-- never the main one, even on the same node, because the main one stays
-- for good and would restore, after a reconnect, shard channels that were
-- moved elsewhere meanwhile (on a killed master back as a replica, every
-- message would then arrive twice), while a shard node subscriber left
-- with nothing placed on it is closed. A pump task per node subscriber
-- moves its messages into one merged queue in arrival order.
--
-- Following moves: when a slot moves, Redis unsubscribes the old owner's
-- clients from its shard channels by itself (cluster.c, clusterDelSlot ->
-- removeChannelsInSlot), which the node subscriber's C side tracks; an
-- SSUBSCRIBE sent to a node that does not own the slot answers MOVED. A
-- watcher task compares what each node subscriber still has with what the
-- program asked for, and re-places what is missing on the owner of the
-- new map (refreshes are the cluster object's: coalesced, >= 100 ms apart).

local lev = require("lev")
local cluster = require("redis.cluster")

local M = {}

-- How often the watcher checks that every shard channel is still held.
local FOLLOW_POLL = 0.05
-- How often an idle next() looks at the merged queue again (the pumps
-- cannot wake it: lev has no wake-up primitive for a parked task other
-- than the connection it waits on).
local WAIT_POLL = 0.005

-- The fields a node's subscriber shares with the cluster object.
local CLUSTER_FIELDS = { "auth", "ssl", "timeout", "connect_timeout",
  "protocol", "name", "max_pending", "max_reply" }

local CSub = {}
CSub.__index = CSub
CSub.__name = "redis.subscriber"

local function invalid(msg)
  return nil, "invalid config: " .. msg, "config"
end

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

-- ---- node subscribers ---------------------------------------------------

local function pump(self, e)
  local q = self._q
  while not self._closed and not e.dropped do
    -- backpressure: the node subscriber's own queue fills, then its
    -- socket pauses (subscriber.lua); nothing is dropped here
    while self._qt - self._qh >= self._max and not self._closed do
      lev.sleep(WAIT_POLL)
    end
    if self._closed then return end
    local m, err, cat = e.sub:next()
    if m then
      self._qt = self._qt + 1
      q[self._qt] = m
    else
      if e == self._main and not self._closed then
        -- the main subscriber failed for good: so does this one
        self._err, self._errcat = err, cat
        self:close()
      end
      return
    end
  end
end

-- The shard-channel subscriber of node host:port, opened on first use;
-- with main, the main subscriber (not kept in _subs).
local function entry(self, host, port, main)
  local addr = host .. ":" .. port
  local e = not main and self._subs[addr]
  if e and not e.dropped then
    if e.sub:status() ~= "closed" then return e end
    e.dropped = true
  end
  local conf = {}
  for k, v in pairs(self._conf) do conf[k] = v end
  conf.cluster, conf.host, conf.port = nil, host, port
  local sub, err, cat = self._subscriber.new(conf)
  if not sub then return nil, "node " .. addr .. ": " .. tostring(err), cat end
  if self._closed then -- closed while this one was connecting
    sub:close()
    return nil, "closed", "closed"
  end
  e = { sub = sub, addr = addr, handles = {} }
  for _, h in ipairs(self._handlers) do
    h.per[e] = sub:on(h.event, h.fn)
  end
  if not main then self._subs[addr] = e end
  e.pump = lev._daemon(pump, self, e)
  return e
end

-- Closes a node subscriber that is no longer used, without the program's
-- handlers: its `end` is not the end of the cluster subscriber.
local function drop(self, e)
  e.dropped = true
  for _, h in ipairs(self._handlers) do
    if h.per[e] then
      e.sub:off(h.per[e])
      h.per[e] = nil
    end
  end
  e.sub:close()
end

-- ---- shard channels: placement and following ---------------------------

local function is_redirect(err)
  return type(err) == "string" and (err:match("^MOVED ") or
    err:match("^ASK ") or err:match("^CLUSTERDOWN") or
    err:match("^TRYAGAIN"))
end

-- SSUBSCRIBEs names (all of one slot) on the slot's owner, refreshing the
-- map after a MOVED (or a node that cannot be reached), at most
-- max_redirects times.
local function place(self, slot, names, fresh)
  local cl = self._cl
  local err, cat = "CLUSTERDOWN Hash slot not served", "redis"
  for attempt = 0, cl.cfg.max_redirects do
    if attempt > 0 or fresh then
      local ok, rerr, rcat = cl:refresh()
      if not ok then return nil, rerr, rcat end
    end
    if self._closed then return nil, "closed", "closed" end
    -- the cluster object's map (slot -> master node); library-internal
    local node = cl._slots[slot]
    if node then
      local e
      e, err, cat = entry(self, node.host, node.port)
      if e then
        local ok
        ok, err, cat = e.sub:ssubscribe(table.unpack(names))
        if ok then
          for _, name in ipairs(names) do
            if not self._want[name] then
              -- sunsubscribe()d while this was on its way
              e.sub:sunsubscribe(name)
            else
              local old = self._where[name]
              self._where[name] = e
              if old and old ~= e and not old.dropped
                  and old.sub:status() == "ready" then
                -- still held by the former owner (no push yet): let go
                old.sub:sunsubscribe(name)
              end
            end
          end
          return true
        end
        if not is_redirect(err) and cat ~= "io" and cat ~= "eof"
            and cat ~= "closed" then
          return nil, err, cat
        end
      elseif cat == "config" then
        return nil, err, cat
      end
    end
  end
  return nil, err, cat
end

-- names -> { [slot] = { names... } }
local function by_slot(names)
  local groups = {}
  for _, name in ipairs(names) do
    local s = cluster.keyslot(tostring(name))
    local g = groups[s]
    if not g then g = {}; groups[s] = g end
    g[#g + 1] = tostring(name)
  end
  return groups
end

local function held_by(e)
  local set = {}
  for _, n in ipairs(e.sub:subscriptions().shard_channels) do set[n] = true end
  return set
end

-- One watcher pass: drops placements the server took back (the channel is
-- no longer in the node subscriber's set) or whose node failed for good,
-- and places every wanted channel that has no node.
local function follow(self)
  local sets, lost = {}, false
  local todo, slots = {}, self._cl._slots
  for name, slot in pairs(self._want) do
    local e = self._where[name]
    if e then
      local st = e.sub:status()
      if e.dropped or st == "closed" then
        self._where[name] = nil
      elseif st == "ready" then
        local set = sets[e]
        if not set then set = held_by(e); sets[e] = set end
        local node = slots[slot]
        if not set[name] then
          self._where[name] = nil
        elseif node and node.host .. ":" .. node.port ~= e.addr then
          -- held where the map (refreshed since, by a MOVED, say) no
          -- longer points: move it to the owner
          todo[#todo + 1] = name
        end
      else
        lost = true -- reconnecting: maybe the node is gone for good
      end
    end
    if not self._where[name] and not self._pending[name] then
      todo[#todo + 1] = name
    end
  end
  if lost and #todo == 0 then
    -- a node is away: if the map now names another owner, move there
    if self._cl:refresh() then
      for name in pairs(self._want) do
        local e = self._where[name]
        local node = self._cl._slots[cluster.keyslot(name)]
        if e and node and node.host .. ":" .. node.port ~= e.addr
            and e.sub:status() ~= "ready" then
          todo[#todo + 1] = name
        end
      end
    end
  end
  if #todo > 0 then
    -- something moved: place on the owner of a fresh map (a failure is
    -- tried again on the next pass)
    local fresh = true
    for slot, names in pairs(by_slot(todo)) do
      if self._closed then return end
      place(self, slot, names, fresh)
      fresh = false
    end
  end
  -- a node subscriber no channel is placed on is closed, even one still
  -- reconnecting with names it had (restored on a node that came back as
  -- a replica, they would deliver every message twice); not while an
  -- ssubscribe() call may be placing names on it. Every pass looks, not
  -- only one that moved something: a pass that had to skip this (a call
  -- placing names) must not leave such a subscriber for good.
  if next(self._pending) then return end
  for addr, e in pairs(self._subs) do
    if not e.dropped then
      local used = false
      for _, w in pairs(self._where) do
        if w == e then used = true; break end
      end
      if not used then
        self._subs[addr] = nil
        drop(self, e)
      elseif sets[e] and e.sub:status() == "ready" then
        -- names it still holds but no longer serves (an sunsubscribe()
        -- while it was reconnecting, which the reconnect restored): let go
        local extra = {}
        for name in pairs(sets[e]) do
          if self._where[name] ~= e then extra[#extra + 1] = name end
        end
        for _, group in pairs(by_slot(extra)) do
          e.sub:sunsubscribe(table.unpack(group))
        end
      end
    end
  end
end

local function watcher(self)
  while not self._closed do
    lev.sleep(FOLLOW_POLL)
    if self._closed then return end
    follow(self)
  end
end

-- ---- the public object ---------------------------------------------------

function M.new(conf, subscriber)
  local cc = conf.cluster
  if type(cc) ~= "table" then
    return invalid("cluster must be a table with nodes")
  end
  for k in pairs(cc) do
    if k ~= "nodes" and k ~= "max_redirects" then
      return invalid("cluster takes nodes and max_redirects; "
        .. tostring(k) .. " goes at the top level of the config")
    end
  end
  if conf.host ~= nil or conf.port ~= nil then
    return invalid("cluster and host/port cannot be used together (the "
      .. "cluster's nodes name the servers)")
  end
  local ccfg = { nodes = cc.nodes, max_redirects = cc.max_redirects }
  for _, f in ipairs(CLUSTER_FIELDS) do ccfg[f] = conf[f] end
  local cl, err, cat = cluster.new(ccfg)
  if not cl then return nil, err, cat end
  local self = setmetatable({
    _cl = cl, _conf = conf, _subscriber = subscriber,
    _subs = {}, _want = {}, _where = {}, _handlers = {},
    _pending = {}, -- names an ssubscribe() call is placing
    _q = {}, _qh = 0, _qt = 0,
  }, CSub)
  -- the main subscriber (subscribe, psubscribe) on a master; opening it
  -- also checks the rest of the config by the subscriber's own rules
  local m = cl._masters[1]
  local e
  e, err, cat = entry(self, m.host, m.port, true)
  if not e then
    cl:close()
    if cat == "config" then err = err:gsub("^node [^ ]+: ", "") end
    return nil, err, cat
  end
  self._main = e
  self._max = e.sub.cfg.max_queue
  -- cfg: the cluster's normalized config, with the subscriber's fields
  local cfg = {}
  for k, v in pairs(cl.cfg) do cfg[k] = v end
  cfg.max_queue, cfg.reconnect = self._max, e.sub.cfg.reconnect
  self.cfg = cfg
  self.protocol = e.sub.protocol
  self._watcher = lev._daemon(watcher, self)
  return self
end

-- subscribe and friends on the main node.
for _, method in ipairs({ "subscribe", "psubscribe", "unsubscribe",
                          "punsubscribe" }) do
  CSub[method] = function(self, ...)
    if self._closed then return nil, "closed", "closed" end
    local s = self._main.sub
    return s[method](s, ...)
  end
end

function CSub:ssubscribe(...)
  local n = select("#", ...)
  check_names("ssubscribe", n, ...)
  if n == 0 then error("redis: ssubscribe: at least one name is needed", 2) end
  if self._closed then return nil, "closed", "closed" end
  local names = {}
  for i = 1, n do
    local name = tostring((select(i, ...)))
    names[i] = name
    self._want[name] = cluster.keyslot(name)
    self._pending[name] = true
  end
  local ok, err, cat = true, nil, nil
  for slot, group in pairs(by_slot(names)) do
    ok, err, cat = place(self, slot, group)
    if not ok then break end
  end
  for _, name in ipairs(names) do
    self._pending[name] = nil
    -- a failed call leaves the names it did not place unwanted
    if not ok and not self._where[name] then self._want[name] = nil end
  end
  if not ok then return nil, err, cat end
  return true
end

function CSub:sunsubscribe(...)
  local n = select("#", ...)
  check_names("sunsubscribe", n, ...)
  if self._closed then return nil, "closed", "closed" end
  local names = {}
  if n == 0 then
    for name in pairs(self._want) do names[#names + 1] = name end
  else
    for i = 1, n do names[i] = tostring((select(i, ...))) end
  end
  -- by node subscriber, one command per slot (Redis wants one slot each)
  local per = {}
  for _, name in ipairs(names) do
    local e = self._where[name]
    self._want[name], self._where[name] = nil, nil
    if e and not e.dropped then
      local t = per[e]
      if not t then t = {}; per[e] = t end
      t[#t + 1] = name
    end
  end
  for e, list in pairs(per) do
    for _, group in pairs(by_slot(list)) do
      local ok, err, cat = e.sub:sunsubscribe(table.unpack(group))
      -- the watcher may close a node subscriber left with nothing placed
      -- on it (as these names no longer are) while this waits: closing
      -- its connection ended those subscriptions too
      if not ok and not is_redirect(err) and not e.dropped then
        return nil, err, cat
      end
    end
  end
  return true
end

-- sub:next(timeout): the merged queue, in arrival order.
function CSub:next(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout
                         or timeout < 0) then
    error("redis: next: timeout must be a number >= 0 (seconds) or nil", 2)
  end
  local deadline
  while true do
    local h = self._qh
    if h < self._qt then
      h = h + 1
      local m = self._q[h]
      self._q[h] = nil
      self._qh = h
      return m
    end
    if self._closed then
      return nil, self._err or "closed", self._errcat or "closed"
    end
    local wait = WAIT_POLL
    if timeout then
      deadline = deadline or lev.now() + timeout
      local left = deadline - lev.now()
      if left <= 0 then return nil, "timeout" end
      if left < wait then wait = left end
    end
    lev.sleep(wait)
  end
end

function CSub:messages()
  return function()
    return (self:next())
  end
end

function CSub:subscriptions()
  local s = self._main.sub:subscriptions()
  local shard = {}
  for name, e in pairs(self._where) do
    if self._want[name] and e then shard[#shard + 1] = name end
  end
  table.sort(shard)
  s.shard_channels = shard
  return s
end

-- Events fire per node connection (each has its own disconnect and
-- reconnect); a handler given to on() is also given to node subscribers
-- opened later.
function CSub:on(event, fn)
  local h = { event = event, fn = fn, per = {} }
  h.per[self._main] = self._main.sub:on(event, fn)
  for _, e in pairs(self._subs) do
    if not e.dropped then h.per[e] = e.sub:on(event, fn) end
  end
  self._handlers[#self._handlers + 1] = h
  return h
end

function CSub:off(handle)
  for i, h in ipairs(self._handlers) do
    if h == handle then
      table.remove(self._handlers, i)
      for e, ph in pairs(h.per) do e.sub:off(ph) end
      return true
    end
  end
  return false
end

-- "closed" once closed; "reconnecting" while a node connection in use is
-- being reopened; else "ready".
function CSub:status()
  if self._closed then return "closed" end
  local st = self._main.sub:status()
  if st ~= "ready" then return st end
  for _, e in pairs(self._subs) do
    if not e.dropped then
      local st = e.sub:status()
      if st ~= "ready" then return st end
    end
  end
  return "ready"
end

function CSub:close()
  if self._closed then return true end
  self._closed = true
  -- one `end` event: the main node's
  for _, e in pairs(self._subs) do drop(self, e) end
  self._main.dropped = true
  self._main.sub:close()
  self._cl:close()
  return true
end

CSub.__close = CSub.close

function CSub.__tostring(self)
  local n = 1 -- the main subscriber
  for _, e in pairs(self._subs) do if not e.dropped then n = n + 1 end end
  return string.format("redis.subscriber (cluster, %d nodes in use, %s): %p",
    n, self:status(), self)
end

return M
