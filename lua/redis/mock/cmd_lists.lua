-- More list commands of the mock: LPUSHX RPUSHX LINSERT LREM LTRIM LPOS
-- LMOVE RPOPLPUSH LMPOP and the blocking BLPOP BRPOP BLMOVE BRPOPLPUSH
-- BLMPOP (redis.mock.blocking). Lists are the deques of
-- redis.mock.cmd_collections: items at [head .. tail].
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")

local err = reply.error
local lower = util.lower

return function(E)
  local def = E.def

  local function typed(s, key)
    local obj = s.db:lookup(key)
    if not obj then return nil end
    if obj.type ~= "list" then return false, util.WRONGTYPE end
    return obj
  end

  local function len(l) return l.tail - l.head + 1 end

  local function items(l)
    local out = {}
    for i = l.head, l.tail do out[#out + 1] = l[i] end
    return out
  end

  -- Replaces the content of l with the array t.
  local function refill(l, t)
    for i = l.head, l.tail do l[i] = nil end
    l.head, l.tail = 1, #t
    for i, v in ipairs(t) do l[i] = v end
  end

  local function new_list() return { type = "list", head = 1, tail = 0 } end

  local function push_one(l, v, left)
    if left then
      E.lpush_one(l, v)
    else
      l.tail = l.tail + 1
      l[l.tail] = v
    end
  end

  local pop_one = E.list_pop_one

  -- After items left list key: delete it when empty, else mark it written.
  local function settle(s, key, l, event)
    if event then E.notify(s, "l", event, key) end
    if len(l) == 0 then
      s.db:remove(key)
      E.notify(s, "g", "del", key)
    else
      s.db:touch(key)
    end
  end
  E.list = { typed = typed, len = len, items = items, push_one = push_one,
             pop_one = pop_one, new = new_list, refill = refill }

  -- A long argument within [min, max], else msg (Redis's
  -- getRangeLongFromObjectOrReply).
  local function range_int(text, min, max, msg)
    local v = util.int(text)
    if not v then return nil, err("ERR " .. (msg or "value is not an integer or out of range")) end
    if v < min or v > max then
      return nil, err("ERR " .. (msg or string.format(
        "value is out of range, value must between %d and %d", min, max)))
    end
    return v
  end
  E.range_int = range_int

  local function pushx(s, argv, left)
    local l, e = typed(s, argv[2])
    if l == false then return e end
    if not l then return 0 end
    for i = 3, #argv do push_one(l, argv[i], left) end
    s.db:touch(argv[2])
    E.notify(s, "l", left and "lpush" or "rpush", argv[2])
    return len(l)
  end
  def{ "lpushx", -3, function(s, argv) return pushx(s, argv, true) end }
  def{ "rpushx", -3, function(s, argv) return pushx(s, argv, false) end }

  def{ "linsert", 5, function(s, argv)
    local where = lower(argv[3])
    if where ~= "before" and where ~= "after" then return util.SYNTAX end
    local l, e = typed(s, argv[2])
    if l == false then return e end
    if not l then return 0 end
    local t = items(l)
    for i, v in ipairs(t) do
      if v == argv[4] then
        table.insert(t, where == "before" and i or i + 1, argv[5])
        refill(l, t)
        s.db:touch(argv[2])
        E.notify(s, "l", "linsert", argv[2])
        return #t
      end
    end
    return -1
  end }

  def{ "lrem", 4, function(s, argv)
    local count = util.int(argv[3])
    if not count then return util.NOT_INTEGER end
    local l, e = typed(s, argv[2])
    if l == false then return e end
    if not l then return 0 end
    local t = items(l)
    local keep, removed = {}, 0
    if count >= 0 then
      for _, v in ipairs(t) do
        if v == argv[4] and (count == 0 or removed < count) then
          removed = removed + 1
        else
          keep[#keep + 1] = v
        end
      end
    else
      local marks = {}
      for i = #t, 1, -1 do
        if t[i] == argv[4] and removed < -count then
          removed = removed + 1
          marks[i] = true
        end
      end
      for i, v in ipairs(t) do if not marks[i] then keep[#keep + 1] = v end end
    end
    if removed > 0 then
      refill(l, keep)
      settle(s, argv[2], l, "lrem")
    end
    return removed
  end }

  def{ "ltrim", 4, function(s, argv)
    local start, stop = util.int(argv[3]), util.int(argv[4])
    if not start or not stop then return util.NOT_INTEGER end
    local l, e = typed(s, argv[2])
    if l == false then return e end
    if not l then return reply.ok end
    local n = len(l)
    if start < 0 then start = n + start end
    if stop < 0 then stop = n + stop end
    if start < 0 then start = 0 end
    local t = {}
    if start <= stop and start < n then
      if stop >= n then stop = n - 1 end
      for i = start, stop do t[#t + 1] = l[l.head + i] end
    end
    refill(l, t)
    settle(s, argv[2], l, "ltrim")
    return reply.ok
  end }

  def{ "lpos", -3, function(s, argv)
    local rank, count, maxlen = 1, -1, 0
    local i = 4
    while i <= #argv do
      local opt = lower(argv[i])
      local more = #argv - i
      local e
      if opt == "rank" and more >= 1 then
        rank = util.int(argv[i + 1])
        if not rank then return util.NOT_INTEGER end
        if rank == 0 then
          return err("ERR RANK can't be zero: use 1 to start from the first "
            .. "match, 2 from the second ... or use negative to start from "
            .. "the end of the list")
        end
        if rank == math.mininteger then
          return err("ERR value is out of range, value must between "
            .. "-9223372036854775807 and 9223372036854775807")
        end
      elseif opt == "count" and more >= 1 then
        count, e = range_int(argv[i + 1], 0, math.maxinteger, "COUNT can't be negative")
        if not count then return e end
      elseif opt == "maxlen" and more >= 1 then
        maxlen, e = range_int(argv[i + 1], 0, math.maxinteger, "MAXLEN can't be negative")
        if not maxlen then return e end
      else
        return util.SYNTAX
      end
      i = i + 2
    end
    local l, e = typed(s, argv[2])
    if l == false then return e end
    if not l then
      if count ~= -1 then return {} end
      return reply.null
    end
    local n = len(l)
    local from_tail = rank < 0
    if from_tail then rank = -rank end
    local out, matches = {}, 0
    for idx = 0, n - 1 do
      if maxlen > 0 and idx >= maxlen then break end
      local pos = from_tail and (n - 1 - idx) or idx
      if l[l.head + pos] == argv[3] then
        matches = matches + 1
        if matches >= rank then
          if count == -1 then return pos end
          out[#out + 1] = pos
          if count > 0 and #out >= count then break end
        end
      end
    end
    if count == -1 then return reply.null end
    return out
  end }

  -- LMOVE's core: pops from src (wherefrom) and pushes to dst (whereto);
  -- returns the element or nil when src is empty/missing, or false and an
  -- error.
  local function move(s, src, dst, from_left, to_left)
    local l, e = typed(s, src)
    if l == false then return false, e end
    if not l or len(l) == 0 then return nil end
    local d, e2 = typed(s, dst)
    if d == false then return false, e2, true end
    local v = pop_one(l, from_left)
    if src == dst and not d then d = l end
    if not d then
      d = new_list()
      s.db:put(dst, d)
    end
    push_one(d, v, to_left)
    E.notify(s, "l", from_left and "lpop" or "rpop", src)
    if len(l) == 0 then
      s.db:remove(src)
      E.notify(s, "g", "del", src)
    else
      s.db:touch(src)
    end
    s.db:touch(dst)
    E.notify(s, "l", to_left and "lpush" or "rpush", dst)
    return v
  end

  local function side(text)
    local w = lower(text)
    if w == "left" then return true end
    if w == "right" then return false end
    return nil
  end

  def{ "lmove", 5, function(s, argv)
    local from, to = side(argv[4]), side(argv[5])
    if from == nil or to == nil then return util.SYNTAX end
    local v, e = move(s, argv[2], argv[3], from, to)
    if v == false then return e end
    return v or reply.null
  end }

  def{ "rpoplpush", 3, function(s, argv)
    local v, e = move(s, argv[2], argv[3], false, true)
    if v == false then return e end
    return v or reply.null
  end }

  -- Pops up to count from the first non-empty list of keys; returns
  -- { key, { items } } or nil, or false and an error.
  local function mpop(s, keys, left, count)
    for _, key in ipairs(keys) do
      local l, e = typed(s, key)
      if l == false then return false, e end
      if l and len(l) > 0 then
        local out = {}
        for _ = 1, count do
          if len(l) == 0 then break end
          out[#out + 1] = pop_one(l, left)
        end
        settle(s, key, l, left and "lpop" or "rpop")
        return { key, out }
      end
    end
    return nil
  end

  -- LMPOP/BLMPOP arguments from numkeys_idx on: keys, left, count.
  local function mpop_args(argv, numkeys_idx)
    local numkeys, e = range_int(argv[numkeys_idx], 1, math.maxinteger,
      "numkeys should be greater than 0")
    if not numkeys then return nil, e end
    local where_idx = numkeys_idx + numkeys + 1
    if where_idx > #argv then return nil, util.SYNTAX end
    local left = side(argv[where_idx])
    if left == nil then return nil, util.SYNTAX end
    local count = -1
    local j = where_idx + 1
    while j <= #argv do
      if count == -1 and lower(argv[j]) == "count" and j < #argv then
        count, e = range_int(argv[j + 1], 1, math.maxinteger,
          "count should be greater than 0")
        if not count then return nil, e end
        j = j + 2
      else
        return nil, util.SYNTAX
      end
    end
    local keys = {}
    for k = numkeys_idx + 1, numkeys_idx + numkeys do keys[#keys + 1] = argv[k] end
    return keys, left, count == -1 and 1 or count
  end

  def{ "lmpop", -4, function(s, argv)
    local keys, left, count = mpop_args(argv, 2)
    if not keys then return left end
    local r, e = mpop(s, keys, left, count)
    if r == false then return e end
    return r or reply.null_array
  end }

  ------------------------------------------------------------ blocking

  -- The keys a retry should look at: the one that became ready first
  -- (Redis serves a client from the key that woke it), then the rest.
  local function ready_first(s, keys)
    local rk = s.ready_key
    if not rk then return keys end
    return { rk }
  end

  local function bpop(s, argv, left)
    local deadline, e = E.timeout_arg(s, argv[#argv])
    if not deadline then return e end
    local keys = {}
    for i = 2, #argv - 1 do keys[#keys + 1] = argv[i] end
    local function try(sess, list, retrying)
      for _, key in ipairs(list) do
        local l, e2 = typed(sess, key)
        -- Redis 7.0 leaves a client blocked when the key turns into
        -- another type; only the first attempt reports WRONGTYPE.
        if l == false then
          if retrying then return nil end
          return e2
        end
        if l and len(l) > 0 then
          local v = pop_one(l, left)
          settle(sess, key, l, left and "lpop" or "rpop")
          return { key, v }
        end
      end
      return nil
    end
    local r = try(s, keys)
    if r then return r end
    if s.deny_blocking then return reply.null_array end
    return E.block(keys, deadline, function(sess)
      return try(sess, ready_first(sess, keys), true)
    end)
  end
  def{ "blpop", -3, function(s, argv) return bpop(s, argv, true) end }
  def{ "brpop", -3, function(s, argv) return bpop(s, argv, false) end }

  local function bmove(s, src, dst, from, to, timeout_text)
    local deadline, e = E.timeout_arg(s, timeout_text)
    if not deadline then return e end
    local function try(sess, retrying)
      local v, e2, at_dst = move(sess, src, dst, from, to)
      if v == false then
        -- A wrong destination type is the client's answer; a source that
        -- changed type leaves it blocked (Redis 7.0).
        if retrying and not at_dst then return nil end
        return e2
      end
      return v
    end
    local r = try(s)
    if r then return r end
    if s.deny_blocking then return reply.null end
    return E.block({ src }, deadline, function(sess) return try(sess, true) end)
  end

  def{ "blmove", 6, function(s, argv)
    local from, to = side(argv[4]), side(argv[5])
    if from == nil or to == nil then return util.SYNTAX end
    return bmove(s, argv[2], argv[3], from, to, argv[6])
  end }
  def{ "brpoplpush", 4, function(s, argv)
    return bmove(s, argv[2], argv[3], false, true, argv[4])
  end }

  def{ "blmpop", -5, function(s, argv)
    local deadline, e = E.timeout_arg(s, argv[2])
    if not deadline then return e end
    local keys, left, count = mpop_args(argv, 3)
    if not keys then return left end
    local function try(sess, list, retrying)
      local r, e2 = mpop(sess, list, left, count)
      if r == false then
        if retrying then return nil end
        return e2
      end
      return r
    end
    local r = try(s, keys)
    if r then return r end
    if s.deny_blocking then return reply.null_array end
    return E.block(keys, deadline, function(sess)
      return try(sess, ready_first(sess, keys), true)
    end)
  end }
end
