-- redis.mock.cluster: several in-process mock servers that act as one
-- Redis Cluster of masters, for users' tests of redis.cluster code.
--
--   local mc = assert(mock.start_cluster{ masters = 3 })   -- in lev.run
--   local cl = assert(redis.cluster{ nodes = mc:seeds() })
--   mc:move_slot(slot, 2)       -- node 2 owns it now: the old owner says MOVED
--   mc:migrate(slot, 3)         -- the owner says ASK for keys it lacks,
--   mc:migrate_key(key)         --   node 3 serves the slot after ASKING
--   mc:finish(slot)             -- the migration ends: node 3 owns the slot
--   mc:stats()                  -- { moved = n, ask = n, crossslot = n }
--   mc:close()
--
-- Each node is a mock server (mc.servers[i], all of redis.mock's scripting
-- works on it) that answers CLUSTER SHARDS, SLOTS, KEYSLOT, MYID, INFO,
-- ASKING, READONLY and COMMAND (key specifications of the mock's
-- commands), and answers MOVED for a key of a slot another node owns.
-- Slots start split evenly between the nodes, in node order.
-- opts: masters (default 3), and password / users as for mock.start.
-- Not modelled: replicas, failover, gossip, TRYAGAIN.

local core = require("redis.core")
local reply = require("redis.mock.reply")

local keyslot = core.keyslot
local NSLOTS = 16384

-- Key positions of the mock's commands as Redis's (first, last, step).
local KEYS = {}
for name in ([[TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL PERSIST GET
  SET SETNX SETEX PSETEX GETSET GETDEL INCR INCRBY INCRBYFLOAT DECR DECRBY
  APPEND STRLEN GETRANGE HSET HMSET HSETNX HGET HMGET HDEL HGETALL HEXISTS
  HINCRBY HKEYS HVALS HLEN HSTRLEN LPUSH RPUSH LPOP RPOP LRANGE LLEN LINDEX
  LSET SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD ZADD ZINCRBY ZSCORE
  ZRANGE ZREVRANGE ZRANGEBYSCORE ZRANK ZREVRANK ZCARD ZCOUNT ZREM]]):gmatch("%u+") do
  KEYS[name] = { 1, 1, 1 }
end
for name in ("DEL UNLINK EXISTS MGET WATCH"):gmatch("%u+") do
  KEYS[name] = { 1, -1, 1 }
end
KEYS.MSET, KEYS.MSETNX = { 1, -1, 2 }, { 1, -1, 2 }
KEYS.RENAME, KEYS.RENAMENX = { 1, 2, 1 }, { 1, 2, 1 }

local READONLY = {}
for name in ([[EXISTS TYPE TTL PTTL GET MGET STRLEN GETRANGE HGET HMGET
  HGETALL HEXISTS HKEYS HVALS HLEN HSTRLEN LRANGE LLEN LINDEX SMEMBERS
  SISMEMBER SMISMEMBER SCARD ZSCORE ZRANGE ZREVRANGE ZRANGEBYSCORE ZRANK
  ZREVRANK ZCARD ZCOUNT]]):gmatch("%u+") do
  READONLY[name] = true
end

-- The keys of a command, from the table above.
local function keys_of(argv)
  local k = KEYS[argv[1]:upper()]
  if not k then return {} end
  local first, last, step = k[1], k[2], k[3]
  if last < 0 then last = #argv + last end
  local out = {}
  for i = first, math.min(last, #argv - 1), step do
    out[#out + 1] = argv[i + 1]
  end
  return out
end

-- COMMAND's reply: one entry per command with its key specification, as
-- Redis 7 shapes it (RESP2 flat key/value lists).
local function command_reply()
  local out = {}
  for name, k in pairs(KEYS) do
    local first, last, step = k[1], k[2], k[3]
    local spec = { "flags", {}, "begin_search",
      { "type", "index", "spec", { "index", first } },
      "find_keys", { "type", "range", "spec",
        { "lastkey", last >= 0 and last - first or last, "keystep", step,
          "limit", 0 } } }
    out[#out + 1] = { name:lower(), -2,
      { reply.status(READONLY[name] and "readonly" or "write") },
      first, last, step, {}, {}, { spec }, {} }
  end
  return out
end

local Cluster = {}
Cluster.__index = Cluster

function Cluster:addr(i)
  return "127.0.0.1:" .. self.servers[i]:port()
end

function Cluster:seeds()
  local t = {}
  for i = 1, #self.servers do t[i] = self:addr(i) end
  return t
end

function Cluster:owner(slot)
  return self.owners[slot]
end

function Cluster:stats()
  return { moved = self.counts.moved, ask = self.counts.ask,
    crossslot = self.counts.crossslot }
end

local function db0(self, i)
  return self.servers[i].engine.store.dbs[0]
end

-- Moves one key from its slot's owner to the migration target (the
-- MIGRATE of a real migration).
function Cluster:migrate_key(key)
  local slot = keyslot(key)
  local m = self.migrating[slot]
  if not m then error("mock cluster: slot " .. slot .. " is not migrating", 2) end
  local src, dst = db0(self, m.from), db0(self, m.to)
  local obj = src:lookup(key)
  if obj ~= nil then
    dst:put(key, obj)
    src:remove(key)
  end
end

-- The keys of one slot on node i.
local function slot_keys(self, i, slot)
  local list = {}
  for key in pairs(db0(self, i).data) do
    if keyslot(key) == slot then list[#list + 1] = key end
  end
  return list
end

-- Gives a slot (and its keys) to node i at once.
function Cluster:move_slot(slot, i)
  local from = self.owners[slot]
  if from ~= i then
    local src, dst = db0(self, from), db0(self, i)
    for _, key in ipairs(slot_keys(self, from, slot)) do
      dst:put(key, src:lookup(key))
      src:remove(key)
    end
    self.owners[slot] = i
  end
end

-- Starts moving a slot to node i: its owner answers ASK for the keys it
-- no longer holds, and node i serves the slot to clients that sent ASKING.
function Cluster:migrate(slot, i)
  self.migrating[slot] = { from = self.owners[slot], to = i }
end

-- Ends a migration: the remaining keys move and node i owns the slot.
function Cluster:finish(slot)
  local m = self.migrating[slot]
  if not m then return end
  self.migrating[slot] = nil
  self.owners[slot] = m.from
  self:move_slot(slot, m.to)
end

function Cluster:close()
  for _, s in ipairs(self.servers) do s:close() end
end

-- CLUSTER SHARDS / SLOTS from the owner table.
local function ranges(self)
  local list, cur = {}, nil
  for s = 0, NSLOTS - 1 do
    local o = self.owners[s]
    if cur and cur.node == o and cur.to == s - 1 then
      cur.to = s
    else
      cur = { node = o, from = s, to = s }
      list[#list + 1] = cur
    end
  end
  return list
end

local function cluster_cmd(self, i, argv)
  local sub = (argv[2] or ""):upper()
  if sub == "SHARDS" then
    local per = {}
    for _, r in ipairs(ranges(self)) do
      per[r.node] = per[r.node] or {}
      local t = per[r.node]
      t[#t + 1] = r.from
      t[#t + 1] = r.to
    end
    local out = {}
    for n = 1, #self.servers do
      out[#out + 1] = { "slots", per[n] or {}, "nodes", { { "id", self.ids[n],
        "port", self.servers[n]:port(), "ip", "127.0.0.1", "endpoint",
        "127.0.0.1", "role", "master", "replication-offset", 0,
        "health", "online" } } }
    end
    return out
  elseif sub == "SLOTS" then
    local out = {}
    for _, r in ipairs(ranges(self)) do
      out[#out + 1] = { r.from, r.to,
        { "127.0.0.1", self.servers[r.node]:port(), self.ids[r.node] } }
    end
    return out
  elseif sub == "KEYSLOT" and argv[3] then
    return keyslot(argv[3])
  elseif sub == "MYID" then
    return self.ids[i]
  elseif sub == "INFO" then
    return "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"
      .. "cluster_known_nodes:" .. #self.servers .. "\r\n"
  end
  return reply.error("ERR unknown subcommand '" .. tostring(argv[2])
    .. "'. Try CLUSTER HELP.")
end

-- The redirection a command on node i gets, or nil to run it.
local function redirect(self, i, argv, conn)
  local name = argv[1]:upper()
  if name == "ASKING" then return nil end
  local asking = conn.cluster_asking
  conn.cluster_asking = nil
  local keys = keys_of(argv)
  if #keys == 0 then return nil end
  local slot = keyslot(keys[1])
  for k = 2, #keys do
    if keyslot(keys[k]) ~= slot then
      self.counts.crossslot = self.counts.crossslot + 1
      return reply.error("CROSSSLOT Keys in request don't hash to the same slot")
    end
  end
  local owner, m = self.owners[slot], self.migrating[slot]
  if m and i == m.to and asking then return nil end
  if owner ~= i then
    self.counts.moved = self.counts.moved + 1
    return reply.error("MOVED " .. slot .. " " .. self:addr(owner))
  end
  if m then
    local db = db0(self, i)
    for _, k in ipairs(keys) do
      if db:lookup(k) == nil then
        self.counts.ask = self.counts.ask + 1
        return reply.error("ASK " .. slot .. " " .. self:addr(m.to))
      end
    end
  end
  return nil
end

local M = {}

function M.start(opts)
  opts = opts or {}
  local n = opts.masters or 3
  if math.type(n) ~= "integer" or n < 1 or n > 64 then
    return nil, "mock cluster: masters must be an integer in 1..64"
  end
  local mock = require("redis.mock")
  local self = setmetatable({ servers = {}, ids = {}, owners = {},
    migrating = {}, counts = { moved = 0, ask = 0, crossslot = 0 } }, Cluster)
  for s = 0, NSLOTS - 1 do self.owners[s] = s * n // NSLOTS + 1 end
  local commands = command_reply()
  for i = 1, n do
    self.ids[i] = string.format("%040x", i)
    local handlers = {
      CLUSTER = function(argv) return cluster_cmd(self, i, argv) end,
      ASKING = function(_, conn)
        conn.cluster_asking = true
        return reply.ok
      end,
      READONLY = function() return reply.ok end,
      COMMAND = function(argv)
        if #argv == 1 then return commands end
        return nil
      end,
    }
    local srv, err = mock.start{ port = 0, password = opts.password,
      users = opts.users, handlers = handlers }
    if not srv then
      self:close()
      return nil, err
    end
    self.servers[i] = srv
    srv:script{
      match = function(argv, conn)
        conn.cluster_reply = redirect(self, i, argv, conn)
        return conn.cluster_reply ~= nil
      end,
      reply = function(_, conn) return conn.cluster_reply end,
    }
  end
  return self
end

return M
