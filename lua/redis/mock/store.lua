-- redis.mock.store: the keyspace of the mock server.
--
-- A store holds 16 databases. A database maps key names to objects:
--   { type = "string", value = s }
--   { type = "hash", fields = { f1, f2, ... }, values = { [f] = v } }
--   { type = "list", head = h, tail = t, [h..t] = items }
--   { type = "set", members = { [m] = true }, order = { ... }, n = count,
--     intset = bool }
--   { type = "zset", scores = { [m] = score }, sorted = { m1, m2, ... } }
-- Keys remember the order they were created in, so KEYS and SCAN answer in
-- a stable order (Redis's own order is a hash order, which specs must not
-- rely on anyway) and a SCAN cursor is simply a creation position.
--
-- Expiry is lazy: a key whose deadline has passed is deleted the moment it
-- is looked up, as Redis does on access. Time comes from store.clock(),
-- milliseconds, injectable for specs.
--
-- Every change to a key goes through touch(), which marks the sessions
-- WATCHing it, so EXEC can abort like Redis.
local M = {}

local NDBS = 16
M.NDBS = NDBS

local Db = {}
Db.__index = Db

local function new_db(store, index)
  return setmetatable({
    store = store,
    index = index,
    data = {},       -- key -> object
    expires = {},    -- key -> unix ms deadline
    slot = {},       -- key -> creation position
    at = {},         -- creation position -> key
    next_slot = 1,
    count = 0,
    nexpires = 0,
  }, Db)
end

-- Marks WATCHers of key dirty (Redis's signalModifiedKey) and, when
-- blocked clients wait on it, the key ready (redis.mock.blocking).
function Db:touch(key)
  local st = self.store
  st.dirty = st.dirty + 1
  local w = st.watchers[self.index]
  local sessions = w and w[key]
  if sessions then
    for s in pairs(sessions) do s.dirty_cas = true end
  end
  local waiting = st.waiting[self.index]
  if waiting and waiting[key] then
    local id = self.index .. ":" .. key
    if not st.ready_set[id] then
      st.ready_set[id] = true
      st.ready_n = st.ready_n + 1
      st.ready[st.ready_n] = { dbi = self.index, key = key }
    end
  end
end

function Db:now()
  return self.store.clock()
end

-- Drops key with no questions asked (no expiry check).
function Db:remove(key)
  if self.data[key] == nil then return false end
  self.data[key] = nil
  if self.expires[key] then
    self.expires[key] = nil
    self.nexpires = self.nexpires - 1
  end
  local pos = self.slot[key]
  self.slot[key] = nil
  self.at[pos] = nil
  self.count = self.count - 1
  self:touch(key)
  return true
end

function Db:expired(key)
  local when = self.expires[key]
  -- Redis's keyIsExpired: a key lives through its deadline millisecond.
  return when ~= nil and self.store.clock() > when
end

-- The object at key, or nil; an expired key is deleted first.
function Db:lookup(key)
  local obj = self.data[key]
  if obj == nil then return nil end
  local when = self.expires[key]
  -- Db:expired, written out: this runs for nearly every command.
  if when ~= nil and self.store.clock() > when then
    self:remove(key)
    self.store.expired_keys = self.store.expired_keys + 1
    if self.store.on_expired then self.store.on_expired(self, key) end
    return nil
  end
  return obj
end

-- Renumbers creation positions once holes dominate, so iteration stays
-- proportional to the live keys. A SCAN in progress may then see a key
-- twice, which SCAN's contract allows.
function Db:compact()
  local at, n = {}, 0
  for pos = 1, self.next_slot - 1 do
    local key = self.at[pos]
    if key ~= nil then
      n = n + 1
      at[n] = key
      self.slot[key] = n
    end
  end
  self.at = at
  self.next_slot = n + 1
end

-- Stores obj at key. keep_ttl keeps an existing deadline (SET KEEPTTL,
-- in-place updates); otherwise any deadline is cleared as SET does.
function Db:put(key, obj, keep_ttl)
  if self.data[key] == nil then
    if self.next_slot > 4 * self.count + 1024 then self:compact() end
    local pos = self.next_slot
    self.next_slot = pos + 1
    self.slot[key] = pos
    self.at[pos] = key
    self.count = self.count + 1
    if self.store.on_new then self.store.on_new(self, key) end
  elseif not keep_ttl and self.expires[key] then
    self.expires[key] = nil
    self.nexpires = self.nexpires - 1
  end
  self.data[key] = obj
  self:touch(key)
end

function Db:set_expire(key, when)
  if self.expires[key] == nil then self.nexpires = self.nexpires + 1 end
  self.expires[key] = when
  self:touch(key)
end

function Db:persist(key)
  if self.expires[key] == nil then return false end
  self.expires[key] = nil
  self.nexpires = self.nexpires - 1
  self:touch(key)
  return true
end

-- Deletes every expired key (DBSIZE and INFO count live keys only).
function Db:purge()
  local now = self.store.clock()
  local dead = {}
  for key, when in pairs(self.expires) do
    if now > when then dead[#dead + 1] = key end
  end
  for _, key in ipairs(dead) do self:remove(key) end
end

function Db:size()
  self:purge()
  return self.count
end

-- Live keys in creation order, from position `from` on; stops after
-- `limit` positions holding keys have been visited. Returns the keys and
-- the position to resume from (0 when the end was reached).
function Db:iterate(from, limit)
  local keys, visited = {}, 0
  local pos = from < 1 and 1 or from
  local last = self.next_slot - 1
  while pos <= last do
    local key = self.at[pos]
    pos = pos + 1
    if key ~= nil then
      visited = visited + 1
      if self:lookup(key) then keys[#keys + 1] = key end
      if limit and visited >= limit then break end
    end
  end
  if pos > last then return keys, 0 end
  return keys, pos
end

function Db:flush()
  -- WATCHers of keys that existed see the flush as a change.
  local w = self.store.watchers[self.index]
  if w then
    for key in pairs(w) do
      if self.data[key] ~= nil then self:touch(key) end
    end
  end
  -- So do clients blocked on keys that existed (a blocked XREADGROUP
  -- learns its stream is gone, as after a DEL).
  local waiting = self.store.waiting[self.index]
  if waiting then
    for key in pairs(waiting) do
      if self.data[key] ~= nil then self:touch(key) end
    end
  end
  self.data, self.expires, self.slot, self.at = {}, {}, {}, {}
  self.next_slot, self.count, self.nexpires = 1, 0, 0
end

-- A new store. clock() returns the time in unix milliseconds.
function M.new(clock)
  local store = {
    clock = clock,
    dbs = {},
    watchers = {},   -- db index -> key -> { [session] = true }
    waiting = {},    -- db index -> key -> { blocked sessions, FIFO }
    ready = {}, ready_n = 0, ready_set = {},   -- keys written with waiters
    expired_keys = 0,
    dirty = 0,       -- writes so far (a script that wrote cannot be killed)
  }
  for i = 0, NDBS - 1 do store.dbs[i] = new_db(store, i) end
  return store
end

-- Redis's glob matcher (util.c stringmatchlen), byte for byte, so KEYS,
-- SCAN MATCH and PSUBSCRIBE patterns select exactly what Redis selects.
-- Bytes compare as C's signed char does in ranges.
local function sbyte(s, i)
  local b = s:byte(i)
  if b and b > 127 then b = b - 256 end
  return b
end

local function lower(b)
  if b and b >= 65 and b <= 90 then return b + 32 end
  return b
end

local function match_impl(p, pi, plen, s, si, slen, nocase, state)
  -- pi/si are 1-based positions; plen/slen the bytes left.
  while plen > 0 and slen > 0 do
    local pc = p:byte(pi)
    if pc == 42 then -- '*'
      while plen > 0 and p:byte(pi + 1) == 42 do
        pi, plen = pi + 1, plen - 1
      end
      if plen == 1 then return true end
      while slen > 0 do
        if match_impl(p, pi + 1, plen - 1, s, si, slen, nocase, state) then
          return true
        end
        if state.skip then return false end
        si, slen = si + 1, slen - 1
      end
      state.skip = true
      return false
    elseif pc == 63 then -- '?'
      si, slen = si + 1, slen - 1
    elseif pc == 91 then -- '['
      pi, plen = pi + 1, plen - 1
      local negate = p:byte(pi) == 94
      if negate then pi, plen = pi + 1, plen - 1 end
      local matched = false
      local c = sbyte(s, si)
      while true do
        local b = p:byte(pi)
        if b == 92 and plen >= 2 then -- '\\'
          pi, plen = pi + 1, plen - 1
          if p:byte(pi) == s:byte(si) then matched = true end
        elseif b == 93 then -- ']'
          break
        elseif plen == 0 then
          pi, plen = pi - 1, plen + 1
          break
        elseif plen >= 3 and p:byte(pi + 1) == 45 then -- 'a-z'
          local from, to, ch = sbyte(p, pi), sbyte(p, pi + 2), c
          if from > to then from, to = to, from end
          if nocase then from, to, ch = lower(from), lower(to), lower(ch) end
          pi, plen = pi + 2, plen - 2
          if ch >= from and ch <= to then matched = true end
        else
          if nocase then
            if lower(b) == lower(s:byte(si)) then matched = true end
          elseif b == s:byte(si) then
            matched = true
          end
        end
        pi, plen = pi + 1, plen - 1
      end
      if negate then matched = not matched end
      if not matched then return false end
      si, slen = si + 1, slen - 1
    else
      if pc == 92 and plen >= 2 then -- '\\' escapes the next byte
        pi, plen = pi + 1, plen - 1
        pc = p:byte(pi)
      end
      local sc = s:byte(si)
      if nocase then pc, sc = lower(pc), lower(sc) end
      if pc ~= sc then return false end
      si, slen = si + 1, slen - 1
    end
    pi, plen = pi + 1, plen - 1
    if slen == 0 then
      while p:byte(pi) == 42 do pi, plen = pi + 1, plen - 1 end
      break
    end
  end
  return plen == 0 and slen == 0
end

function M.match(pattern, s, nocase)
  return match_impl(pattern, 1, #pattern, s, 1, #s, nocase, { skip = false })
end

return M
