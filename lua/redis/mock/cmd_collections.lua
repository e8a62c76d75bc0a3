-- Hash, list and set commands of the mock.
--   hashes: HSET HMSET HSETNX HGET HMGET HDEL HGETALL HEXISTS HINCRBY HKEYS
--           HVALS HLEN HSTRLEN
--   lists:  LPUSH RPUSH LPOP RPOP LRANGE LLEN LINDEX LSET
--   sets:   SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD
-- Hashes keep field insertion order and small all-integer sets answer in
-- ascending order, which is what Redis's compact encodings (listpack,
-- intset) do; other sets answer in insertion order.
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")

local err, ok = reply.error, reply.ok

local INT_MAX = math.maxinteger
local INT_MIN = math.mininteger

return function(E)
  local def = E.def

  -- The object of type ty at key: obj, or nil when missing, or false and
  -- WRONGTYPE.
  local function typed(s, key, ty)
    local obj = s.db:lookup(key)
    if not obj then return nil end
    if obj.type ~= ty then return false, util.WRONGTYPE end
    return obj
  end

  ---------------------------------------------------------------- hashes
  local function hash_set(h, f, v)
    if h.values[f] == nil then
      h.fields[#h.fields + 1] = f
      h.values[f] = v
      return true
    end
    h.values[f] = v
    return false
  end

  local function hash_del(h, f)
    if h.values[f] == nil then return false end
    h.values[f] = nil
    for i, x in ipairs(h.fields) do
      if x == f then table.remove(h.fields, i); break end
    end
    return true
  end

  local function hash_for_write(s, key)
    local h, e = typed(s, key, "hash")
    if h == false then return nil, e end
    if not h then
      h = { type = "hash", fields = {}, values = {} }
      s.db:put(key, h)
    end
    return h
  end

  local function hset(s, argv, name)
    if #argv % 2 == 1 then return util.arity_error(name) end
    local h, e = hash_for_write(s, argv[2])
    if not h then return e end
    local n = 0
    for i = 3, #argv, 2 do
      if hash_set(h, argv[i], argv[i + 1]) then n = n + 1 end
    end
    s.db:touch(argv[2])
    return n
  end

  def{ "hset", -4, function(s, argv) return hset(s, argv, "hset") end }
  def{ "hmset", -4, function(s, argv)
    local r = hset(s, argv, "hmset")
    if type(r) == "number" then return ok end
    return r
  end }

  def{ "hsetnx", 4, function(s, argv)
    local h, e = hash_for_write(s, argv[2])
    if not h then return e end
    if h.values[argv[3]] ~= nil then return 0 end
    hash_set(h, argv[3], argv[4])
    s.db:touch(argv[2])
    return 1
  end }

  def{ "hget", 3, function(s, argv)
    local h, e = typed(s, argv[2], "hash")
    if h == false then return e end
    return (h and h.values[argv[3]]) or reply.null
  end }

  def{ "hmget", -3, function(s, argv)
    local h, e = typed(s, argv[2], "hash")
    if h == false then return e end
    local out = {}
    for i = 3, #argv do
      out[i - 2] = (h and h.values[argv[i]]) or reply.null
    end
    return out
  end }

  def{ "hdel", -3, function(s, argv)
    local h, e = typed(s, argv[2], "hash")
    if h == false then return e end
    if not h then return 0 end
    return util.remove_members(s, argv, h, hash_del,
                               function(o) return #o.fields == 0 end)
  end }

  def{ "hgetall", 2, function(s, argv)
    local h, e = typed(s, argv[2], "hash")
    if h == false then return e end
    local flat = {}
    if h then
      for _, f in ipairs(h.fields) do
        flat[#flat + 1] = f
        flat[#flat + 1] = h.values[f]
      end
    end
    return reply.map(flat)
  end }

  def{ "hexists", 3, function(s, argv)
    local h, e = typed(s, argv[2], "hash")
    if h == false then return e end
    return (h and h.values[argv[3]] ~= nil) and 1 or 0
  end }

  def{ "hincrby", 4, function(s, argv)
    local by = util.int(argv[4])
    if not by then return util.NOT_INTEGER end
    local h, e = hash_for_write(s, argv[2])
    if not h then return e end
    local cur = 0
    local v = h.values[argv[3]]
    if v ~= nil then
      cur = util.int(v)
      if not cur then return err("ERR hash value is not an integer") end
    end
    if (by < 0 and cur < 0 and by < INT_MIN - cur)
      or (by > 0 and cur > 0 and by > INT_MAX - cur) then
      return util.OVERFLOW
    end
    local new = cur + by
    hash_set(h, argv[3], tostring(new))
    s.db:touch(argv[2])
    return new
  end }

  def{ "hkeys", 2, function(s, argv)
    local h, e = typed(s, argv[2], "hash")
    if h == false then return e end
    local out = {}
    if h then for i, f in ipairs(h.fields) do out[i] = f end end
    return out
  end }

  def{ "hvals", 2, function(s, argv)
    local h, e = typed(s, argv[2], "hash")
    if h == false then return e end
    local out = {}
    if h then for i, f in ipairs(h.fields) do out[i] = h.values[f] end end
    return out
  end }

  def{ "hlen", 2, function(s, argv)
    local h, e = typed(s, argv[2], "hash")
    if h == false then return e end
    return h and #h.fields or 0
  end }

  def{ "hstrlen", 3, function(s, argv)
    local h, e = typed(s, argv[2], "hash")
    if h == false then return e end
    local v = h and h.values[argv[3]]
    return v and #v or 0
  end }

  ----------------------------------------------------------------- lists
  -- A deque: items at [head .. tail].
  local function list_len(l) return l.tail - l.head + 1 end
  local function list_at(l, i) return l[l.head + i] end   -- 0-based

  -- Puts v in front of list l. Items stay at positive indices: when head
  -- reaches 1 they move up by half their count (at least 16), which keeps
  -- the table more than half full from index 1, so Lua holds the items in
  -- its array part (indices below 1 would go to the slower hash part,
  -- where a long list made LPUSH about a third slower than RPUSH). The
  -- moves cost O(1) per push on average.
  local function lpush_one(l, v)
    local head = l.head
    if head <= 1 then
      local tail = l.tail
      local shift = (tail - head + 1) // 2 + 16
      for i = tail, head, -1 do l[i + shift] = l[i] end
      local last = head + shift - 1
      if last > tail then last = tail end
      for i = head, last do l[i] = nil end
      head, l.tail = head + shift, tail + shift
    end
    head = head - 1
    l[head] = v
    l.head = head
  end
  E.lpush_one = lpush_one

  -- Takes one item off the left or the right end of list l.
  local function pop_one(l, left)
    local v
    if left then
      v = l[l.head]; l[l.head] = nil; l.head = l.head + 1
    else
      v = l[l.tail]; l[l.tail] = nil; l.tail = l.tail - 1
    end
    return v
  end
  E.list_pop_one = pop_one

  local function push(s, argv, left)
    local l, e = typed(s, argv[2], "list")
    if l == false then return e end
    if not l then
      l = { type = "list", head = 1, tail = 0 }
      s.db:put(argv[2], l)
    end
    for i = 3, #argv do
      if left then
        lpush_one(l, argv[i])
      else
        l.tail = l.tail + 1
        l[l.tail] = argv[i]
      end
    end
    s.db:touch(argv[2])
    return list_len(l)
  end

  def{ "lpush", -3, function(s, argv) return push(s, argv, true) end }
  def{ "rpush", -3, function(s, argv) return push(s, argv, false) end }

  local POSITIVE = err("ERR value is out of range, must be positive")

  local function pop(s, argv, left, name)
    if #argv > 3 then return util.arity_error(name) end
    local count
    if #argv == 3 then
      count = util.int(argv[3])
      if not count or count < 0 then return POSITIVE end
    end
    local l, e = typed(s, argv[2], "list")
    if l == false then return e end
    if not l then return count and reply.null_array or reply.null end
    if count == 0 then return {} end
    if not count and list_len(l) > 1 then
      -- One item from a list that stays: no array to build.
      local v = pop_one(l, left)
      s.db:touch(argv[2])
      return v
    end
    local out = {}
    for _ = 1, count or 1 do
      if list_len(l) == 0 then break end
      out[#out + 1] = pop_one(l, left)
    end
    if list_len(l) == 0 then
      s.db:remove(argv[2])
    else
      s.db:touch(argv[2])
    end
    if count then return out end
    return out[1]
  end

  def{ "lpop", -2, function(s, argv) return pop(s, argv, true, "lpop") end }
  def{ "rpop", -2, function(s, argv) return pop(s, argv, false, "rpop") end }

  def{ "lrange", 4, function(s, argv)
    local start, stop = util.int(argv[3]), util.int(argv[4])
    if not start or not stop then return util.NOT_INTEGER end
    local l, e = typed(s, argv[2], "list")
    if l == false then return e end
    if not l then return {} end
    local len = list_len(l)
    if start < 0 then start = len + start end
    if stop < 0 then stop = len + stop end
    if start < 0 then start = 0 end
    if start > stop or start >= len then return {} end
    if stop >= len then stop = len - 1 end
    local out = {}
    for i = start, stop do out[#out + 1] = list_at(l, i) end
    return out
  end }

  def{ "llen", 2, function(s, argv)
    local l, e = typed(s, argv[2], "list")
    if l == false then return e end
    return l and list_len(l) or 0
  end }

  def{ "lindex", 3, function(s, argv)
    local l, e = typed(s, argv[2], "list")
    if l == false then return e end
    if not l then return reply.null end
    local i = util.int(argv[3])
    if not i then return util.NOT_INTEGER end
    local len = list_len(l)
    if i < 0 then i = len + i end
    if i < 0 or i >= len then return reply.null end
    return list_at(l, i)
  end }

  def{ "lset", 4, function(s, argv)
    local l, e = typed(s, argv[2], "list")
    if l == false then return e end
    if not l then return util.NO_SUCH_KEY end
    local i = util.int(argv[3])
    if not i then return util.NOT_INTEGER end
    local len = list_len(l)
    if i < 0 then i = len + i end
    if i < 0 or i >= len then return err("ERR index out of range") end
    l[l.head + i] = argv[4]
    s.db:touch(argv[2])
    return ok
  end }

  ------------------------------------------------------------------ sets
  local INTSET_MAX = 512

  -- members[m] is m's position in order; a removal moves the last member
  -- into the hole, so both stay O(1) (the order is Redis-like arbitrary).
  local function set_add(set, m)
    if set.members[m] then return false end
    set.n = set.n + 1
    set.order[set.n] = m
    set.members[m] = set.n
    if set.intset and (util.int(m) == nil or set.n > INTSET_MAX) then
      set.intset = false
    end
    return true
  end

  local function set_rem(set, m)
    local i = set.members[m]
    if not i then return false end
    local last = set.order[set.n]
    set.order[i] = last
    set.members[last] = i
    set.order[set.n] = nil
    set.members[m] = nil
    set.n = set.n - 1
    return true
  end

  local function new_set(first)
    -- Redis picks the encoding from the first member.
    return { type = "set", members = {}, order = {}, n = 0,
             intset = util.int(first) ~= nil }
  end

  def{ "sadd", -3, function(s, argv)
    local set, e = typed(s, argv[2], "set")
    if set == false then return e end
    if not set then
      set = new_set(argv[3])
      s.db:put(argv[2], set)
    end
    local n = 0
    for i = 3, #argv do
      if set_add(set, argv[i]) then n = n + 1 end
    end
    if n > 0 then s.db:touch(argv[2]) end
    return n
  end }

  def{ "srem", -3, function(s, argv)
    local set, e = typed(s, argv[2], "set")
    if set == false then return e end
    if not set then return 0 end
    return util.remove_members(s, argv, set, set_rem,
                               function(o) return o.n == 0 end)
  end }

  local function members(set)
    local out = {}
    for i, m in ipairs(set.order) do out[i] = m end
    if set.intset then
      table.sort(out, function(a, b) return util.int(a) < util.int(b) end)
    end
    return out
  end

  E.set = { add = set_add, rem = set_rem, new = new_set, members = members,
            typed = function(s, key) return typed(s, key, "set") end }
  E.hash = { set = hash_set, del = hash_del, for_write = hash_for_write,
             typed = function(s, key) return typed(s, key, "hash") end }

  def{ "smembers", 2, function(s, argv)
    local set, e = typed(s, argv[2], "set")
    if set == false then return e end
    return reply.set(set and members(set) or {})
  end }

  def{ "sismember", 3, function(s, argv)
    local set, e = typed(s, argv[2], "set")
    if set == false then return e end
    return (set and set.members[argv[3]]) and 1 or 0
  end }

  def{ "smismember", -3, function(s, argv)
    local set, e = typed(s, argv[2], "set")
    if set == false then return e end
    local out = {}
    for i = 3, #argv do
      out[i - 2] = (set and set.members[argv[i]]) and 1 or 0
    end
    return out
  end }

  def{ "scard", 2, function(s, argv)
    local set, e = typed(s, argv[2], "set")
    if set == false then return e end
    return set and set.n or 0
  end }
end
