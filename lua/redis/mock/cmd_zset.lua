-- Sorted set commands of the mock: ZADD ZINCRBY ZSCORE ZRANGE ZREVRANGE
-- ZRANGEBYSCORE ZRANK ZREVRANK ZCARD ZCOUNT ZREM.
--
-- A sorted set keeps its members in a sorted array (score, then bytes),
-- which is all the speed a test server needs. Stored scores of zero are
-- +0, as Redis's compact encoding returns them.
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")

local err = reply.error
local lower = util.lower

return function(E)
  local def = E.def

  local function typed(s, key)
    local obj = s.db:lookup(key)
    if not obj then return nil end
    if obj.type ~= "zset" then return false, util.WRONGTYPE end
    return obj
  end

  local function before(sa, ma, sb, mb)
    if sa ~= sb then return sa < sb end
    return ma < mb
  end

  -- Index (1-based) where (score, member) is or would be inserted.
  local function find(z, score, member)
    local lo, hi = 1, #z.sorted
    while lo <= hi do
      local mid = (lo + hi) // 2
      local m = z.sorted[mid]
      if before(z.scores[m], m, score, member) then lo = mid + 1 else hi = mid - 1 end
    end
    return lo
  end

  local function zinsert(z, member, score)
    if score == 0 then score = 0.0 end   -- no -0 in storage
    table.insert(z.sorted, find(z, score, member), member)
    z.scores[member] = score
  end

  local function zdelete(z, member)
    local score = z.scores[member]
    if score == nil then return false end
    table.remove(z.sorted, find(z, score, member))
    z.scores[member] = nil
    return true
  end

  local NAN_ERR = err("ERR resulting score is not a number (NaN)")

  -- zsetAdd: returns outcome ("added", "updated", "nop" or "nan") and the
  -- new score.
  local function zadd_one(z, score, member, f)
    if score ~= score then return "nan" end
    local cur = z.scores[member]
    if cur ~= nil then
      if f.nx then return "nop" end
      if f.incr then
        score = score + cur
        if score ~= score then return "nan" end
      end
      if (f.lt and score >= cur) or (f.gt and score <= cur) then return "nop" end
      if score ~= cur then
        zdelete(z, member)
        zinsert(z, member, score)
        return "updated", score
      end
      return "same", score
    elseif not f.xx then
      zinsert(z, member, score)
      return "added", score
    end
    return "nop"
  end

  local function zadd_generic(s, argv, f, first)
    local i = first
    while i <= #argv do
      local opt = lower(argv[i])
      if opt == "nx" then f.nx = true
      elseif opt == "xx" then f.xx = true
      elseif opt == "ch" then f.ch = true
      elseif opt == "incr" then f.incr = true
      elseif opt == "gt" then f.gt = true
      elseif opt == "lt" then f.lt = true
      else break end
      i = i + 1
    end
    local elements = #argv - i + 1
    if elements % 2 == 1 or elements == 0 then return util.SYNTAX end
    elements = elements // 2
    if f.nx and f.xx then
      return err("ERR XX and NX options at the same time are not compatible")
    end
    if (f.gt and f.nx) or (f.lt and f.nx) or (f.gt and f.lt) then
      return err("ERR GT, LT, and/or NX options at the same time are not compatible")
    end
    if f.incr and elements > 1 then
      return err("ERR INCR option supports a single increment-element pair")
    end
    local scores = {}
    for j = 0, elements - 1 do
      local v = util.double(argv[i + j * 2])
      if v == nil then return util.NOT_FLOAT end
      scores[j + 1] = v
    end
    local z, e = typed(s, argv[2])
    if z == false then return e end
    local added, updated, processed, score = 0, 0, 0, nil
    if not z then
      if f.xx then
        if f.incr then return reply.null end
        return 0
      end
      z = { type = "zset", scores = {}, sorted = {} }
      s.db:put(argv[2], z)
    end
    for j = 1, elements do
      local out, new = zadd_one(z, scores[j], argv[i + j * 2 - 1], f)
      if out == "nan" then return NAN_ERR end
      if out == "added" then added = added + 1 end
      if out == "updated" then updated = updated + 1 end
      if out ~= "nop" then processed = processed + 1 end
      score = new
    end
    if added + updated > 0 then
      s.db:touch(argv[2])
      E.notify(s, "z", f.incr and "zincr" or "zadd", argv[2])
    end
    if f.incr then
      if processed > 0 then return reply.double(score) end
      return reply.null
    end
    return f.ch and (added + updated) or added
  end

  -- ZADD key score member, the usual form: no options to read (a score
  -- is never an option word), one element.
  local NO_FLAGS = {}
  local function zadd_plain(s, argv, score)
    local key = argv[2]
    local z, e = typed(s, key)
    if z == false then return e end
    if not z then
      z = { type = "zset", scores = {}, sorted = {} }
      s.db:put(key, z)
    end
    local out = zadd_one(z, score, argv[4], NO_FLAGS)
    if out == "added" or out == "updated" then
      s.db:touch(key)
      E.notify(s, "z", "zadd", key)
    end
    return out == "added" and 1 or 0
  end

  def{ "zadd", -4, function(s, argv)
    local score = argv[5] == nil and util.double(argv[3])
    if score then return zadd_plain(s, argv, score) end
    return zadd_generic(s, argv, {}, 3)
  end }

  def{ "zincrby", 4, function(s, argv)
    return zadd_generic(s, { argv[1], argv[2], argv[3], argv[4] }, { incr = true }, 3)
  end }

  def{ "zscore", 3, function(s, argv)
    local z, e = typed(s, argv[2])
    if z == false then return e end
    local score = z and z.scores[argv[3]]
    if score == nil then return reply.null end
    return reply.double(score)
  end }

  def{ "zcard", 2, function(s, argv)
    local z, e = typed(s, argv[2])
    if z == false then return e end
    return z and #z.sorted or 0
  end }

  def{ "zrem", -3, function(s, argv)
    local z, e = typed(s, argv[2])
    if z == false then return e end
    if not z then return 0 end
    return util.remove_members(s, argv, z, zdelete,
                               function(o) return #o.sorted == 0 end)
  end }

  local function rank(s, argv, rev)
    local z, e = typed(s, argv[2])
    if z == false then return e end
    local score = z and z.scores[argv[3]]
    if score == nil then return reply.null end
    local r = find(z, score, argv[3]) - 1
    if rev then r = #z.sorted - 1 - r end
    return r
  end
  def{ "zrank", 3, function(s, argv) return rank(s, argv, false) end }
  def{ "zrevrank", 3, function(s, argv) return rank(s, argv, true) end }

  -- Score bounds: "(" makes a bound exclusive; strtod reads the rest.
  local function score_bound(text)
    if text:sub(1, 1) == "(" then
      local v = util.strtod_full(text:sub(2))
      return v, true
    end
    return util.strtod_full(text), false
  end

  local MAXSTR, MINSTR = {}, {}
  local function lex_bound(text)
    local c = text:sub(1, 1)
    if c == "+" then
      if #text ~= 1 then return nil end
      return MAXSTR, true
    elseif c == "-" then
      if #text ~= 1 then return nil end
      return MINSTR, true
    elseif c == "(" then
      return text:sub(2), true
    elseif c == "[" then
      return text:sub(2), false
    end
    return nil
  end

  local function lex_gte(m, b, ex)
    if b == MINSTR then return true end
    if b == MAXSTR then return false end
    if ex then return m > b end
    return m >= b
  end
  local function lex_lte(m, b, ex)
    if b == MAXSTR then return true end
    if b == MINSTR then return false end
    if ex then return m < b end
    return m <= b
  end

  local function emit(s, z, list, withscores)
    local out = {}
    for _, m in ipairs(list) do
      if withscores then
        if s.proto == 3 then
          out[#out + 1] = { m, reply.double(z.scores[m]) }
        else
          out[#out + 1] = m
          out[#out + 1] = reply.double(z.scores[m])
        end
      else
        out[#out + 1] = m
      end
    end
    return out
  end

  -- zrangeGenericCommand of Redis 7.0: argument checks in its order.
  -- mode: "auto" for ZRANGE, or a fixed "rank"/"score" with direction.
  local function zrange_generic(s, argv, fixed_type, fixed_rev)
    local withscores, offset, limit = false, 0, -1
    local has_limit = false
    local rev, rtype = fixed_rev, fixed_type
    local i = 5
    while i <= #argv do
      local opt = lower(argv[i])
      local left = #argv - i
      if opt == "withscores" then
        withscores = true
      elseif opt == "limit" and left >= 2 then
        offset, limit = util.int(argv[i + 1]), util.int(argv[i + 2])
        if not offset or not limit then return util.NOT_INTEGER end
        has_limit = true
        i = i + 2
      elseif rev == nil and opt == "rev" then
        rev = true
      elseif rtype == nil and opt == "bylex" then
        rtype = "lex"
      elseif rtype == nil and opt == "byscore" then
        rtype = "score"
      else
        return util.SYNTAX
      end
      i = i + 1
    end
    rev = rev or false
    rtype = rtype or "rank"
    if has_limit and rtype == "rank" then
      return err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
    end
    if withscores and rtype == "lex" then
      return err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    end
    local a, b = argv[3], argv[4]
    if rev and rtype ~= "rank" then a, b = b, a end
    local start, stop, min, minex, max, maxex
    if rtype == "rank" then
      start, stop = util.int(a), util.int(b)
      if not start or not stop then return util.NOT_INTEGER end
    elseif rtype == "score" then
      min, minex = score_bound(a)
      max, maxex = score_bound(b)
      if min == nil or max == nil then return err("ERR min or max is not a float") end
    else
      min, minex = lex_bound(a)
      max, maxex = lex_bound(b)
      if min == nil or max == nil then
        return err("ERR min or max not valid string range item")
      end
    end
    local z, e = typed(s, argv[2])
    if z == false then return e end
    if not z then return {} end
    local n = #z.sorted
    local list = {}
    if rtype == "rank" then
      if start < 0 then start = n + start end
      if stop < 0 then stop = n + stop end
      if start < 0 then start = 0 end
      if start > stop or start >= n then return {} end
      if stop >= n then stop = n - 1 end
      for r = start, stop do
        list[#list + 1] = rev and z.sorted[n - r] or z.sorted[r + 1]
      end
      return emit(s, z, list, withscores)
    end
    if offset > 0 and offset >= n then return {} end
    local function inside(m)
      if rtype == "score" then
        local sc = z.scores[m]
        local lo = minex and sc > min or (not minex and sc >= min)
        local hi = maxex and sc < max or (not maxex and sc <= max)
        return lo and hi
      end
      return lex_gte(m, min, minex) and lex_lte(m, max, maxex)
    end
    local from, to, step = 1, n, 1
    if rev then from, to, step = n, 1, -1 end
    local skipped = 0
    for idx = from, to, step do
      local m = z.sorted[idx]
      if inside(m) then
        if offset < 0 then break end
        if skipped < offset then
          skipped = skipped + 1
        else
          if limit >= 0 and #list >= limit then break end
          list[#list + 1] = m
        end
      end
    end
    return emit(s, z, list, withscores)
  end

  def{ "zrange", -4, function(s, argv) return zrange_generic(s, argv, nil, nil) end }
  def{ "zrevrange", -4, function(s, argv)
    return zrange_generic(s, argv, "rank", true)
  end }
  def{ "zrangebyscore", -4, function(s, argv)
    return zrange_generic(s, argv, "score", false)
  end }

  def{ "zcount", 4, function(s, argv)
    local min, minex = score_bound(argv[3])
    local max, maxex = score_bound(argv[4])
    if min == nil or max == nil then return err("ERR min or max is not a float") end
    local z, e = typed(s, argv[2])
    if z == false then return e end
    if not z then return 0 end
    local n = 0
    for _, m in ipairs(z.sorted) do
      local sc = z.scores[m]
      if (minex and sc > min or (not minex and sc >= min))
        and (maxex and sc < max or (not maxex and sc <= max)) then
        n = n + 1
      end
    end
    return n
  end }

  ------------------------------------------------------------ round 2
  -- ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZLEXCOUNT ZMSCORE
  -- ZREMRANGEBYSCORE/RANK/LEX ZPOPMIN ZPOPMAX ZMPOP BZPOPMIN BZPOPMAX
  -- BZMPOP ZRANDMEMBER ZUNION ZINTER ZDIFF (and STORE) ZINTERCARD
  -- ZRANGESTORE ZSCAN.
  def{ "zrevrangebyscore", -4, function(s, argv)
    return zrange_generic(s, argv, "score", true)
  end }
  def{ "zrangebylex", -4, function(s, argv)
    return zrange_generic(s, argv, "lex", false)
  end }
  def{ "zrevrangebylex", -4, function(s, argv)
    return zrange_generic(s, argv, "lex", true)
  end }

  def{ "zlexcount", 4, function(s, argv)
    local min, minex = lex_bound(argv[3])
    local max, maxex = lex_bound(argv[4])
    if min == nil or max == nil then
      return err("ERR min or max not valid string range item")
    end
    local z, e = typed(s, argv[2])
    if z == false then return e end
    if not z then return 0 end
    local n = 0
    for _, m in ipairs(z.sorted) do
      if lex_gte(m, min, minex) and lex_lte(m, max, maxex) then n = n + 1 end
    end
    return n
  end }

  def{ "zmscore", -3, function(s, argv)
    local z, e = typed(s, argv[2])
    if z == false then return e end
    local out = {}
    for i = 3, #argv do
      local sc = z and z.scores[argv[i]]
      out[i - 2] = sc and reply.double(sc) or reply.null
    end
    return out
  end }

  -- Drops members of z at sorted positions [from, to] (1-based); deletes
  -- the key when empty; returns how many went.
  local function remove_positions(s, key, z, keep_fn)
    local kept, removed = {}, 0
    for _, m in ipairs(z.sorted) do
      if keep_fn(m) then
        kept[#kept + 1] = m
      else
        z.scores[m] = nil
        removed = removed + 1
      end
    end
    z.sorted = kept
    if removed > 0 then
      if #kept == 0 then
        s.db:remove(key)
      else
        s.db:touch(key)
      end
    end
    return removed
  end

  def{ "zremrangebyscore", 4, function(s, argv)
    local min, minex = score_bound(argv[3])
    local max, maxex = score_bound(argv[4])
    if min == nil or max == nil then return err("ERR min or max is not a float") end
    local z, e = typed(s, argv[2])
    if z == false then return e end
    if not z then return 0 end
    local n = remove_positions(s, argv[2], z, function(m)
      local sc = z.scores[m]
      return not ((minex and sc > min or (not minex and sc >= min))
        and (maxex and sc < max or (not maxex and sc <= max)))
    end)
    if n > 0 then E.notify(s, "z", "zremrangebyscore", argv[2]) end
    return n
  end }

  def{ "zremrangebylex", 4, function(s, argv)
    local min, minex = lex_bound(argv[3])
    local max, maxex = lex_bound(argv[4])
    if min == nil or max == nil then
      return err("ERR min or max not valid string range item")
    end
    local z, e = typed(s, argv[2])
    if z == false then return e end
    if not z then return 0 end
    local n = remove_positions(s, argv[2], z, function(m)
      return not (lex_gte(m, min, minex) and lex_lte(m, max, maxex))
    end)
    if n > 0 then E.notify(s, "z", "zremrangebylex", argv[2]) end
    return n
  end }

  def{ "zremrangebyrank", 4, function(s, argv)
    local start, stop = util.int(argv[3]), util.int(argv[4])
    if not start or not stop then return util.NOT_INTEGER end
    local z, e = typed(s, argv[2])
    if z == false then return e end
    if not z then return 0 end
    local n = #z.sorted
    if start < 0 then start = n + start end
    if stop < 0 then stop = n + stop end
    if start < 0 then start = 0 end
    if start > stop or start >= n then return 0 end
    if stop >= n then stop = n - 1 end
    local rank = {}
    for i, m in ipairs(z.sorted) do rank[m] = i - 1 end
    local removed = remove_positions(s, argv[2], z, function(m)
      return rank[m] < start or rank[m] > stop
    end)
    if removed > 0 then E.notify(s, "z", "zremrangebyrank", argv[2]) end
    return removed
  end }

  -- genericZpopCommand: pops from the first key holding a zset. Returns
  -- the reply, or nil when every key is missing.
  local function zpop(s, keys, max, count, emitkey, nested, retrying)
    local z, key
    for _, k in ipairs(keys) do
      local obj, e = typed(s, k)
      if obj == false then
        if retrying then return nil end
        return e
      end
      if obj then z, key = obj, k; break end
    end
    if not z then return nil end
    if count == 0 then return {} end
    count = count == -1 and 1 or count
    local items = {}
    for _ = 1, count do
      local n = #z.sorted
      if n == 0 then break end
      local m = max and z.sorted[n] or z.sorted[1]
      local sc = z.scores[m]
      zdelete(z, m)
      if nested then
        items[#items + 1] = { m, reply.double(sc) }
      else
        items[#items + 1] = m
        items[#items + 1] = reply.double(sc)
      end
    end
    E.notify(s, "z", max and "zpopmax" or "zpopmin", key)
    if #z.sorted == 0 then
      s.db:remove(key)
      E.notify(s, "g", "del", key)
    else
      s.db:touch(key)
    end
    if not emitkey then return items end
    if nested then return { key, items } end
    table.insert(items, 1, key)
    return items
  end

  local POSITIVE = err("ERR value is out of range, must be positive")

  local function zpop_cmd(s, argv, max)
    if #argv > 3 then return util.SYNTAX end
    local count = -1
    if argv[3] then
      count = util.int(argv[3])
      if not count or count < 0 then return POSITIVE end
    end
    local r = zpop(s, { argv[2] }, max, count, false, s.proto == 3 and argv[3] ~= nil)
    return r or {}
  end
  def{ "zpopmin", -2, function(s, argv) return zpop_cmd(s, argv, false) end }
  def{ "zpopmax", -2, function(s, argv) return zpop_cmd(s, argv, true) end }

  local function bzpop(s, argv, max)
    local deadline, e = E.timeout_arg(s, argv[#argv])
    if not deadline then return e end
    local keys = {}
    for i = 2, #argv - 1 do keys[#keys + 1] = argv[i] end
    local r = zpop(s, keys, max, -1, true, false)
    if r then return r end
    if s.deny_blocking then return reply.null_array end
    return E.block(keys, deadline, function(sess)
      return zpop(sess, sess.ready_key and { sess.ready_key } or keys, max, -1,
        true, false, true)
    end)
  end
  def{ "bzpopmin", -3, function(s, argv) return bzpop(s, argv, false) end }
  def{ "bzpopmax", -3, function(s, argv) return bzpop(s, argv, true) end }

  -- ZMPOP/BZMPOP arguments from numkeys_idx: keys, max, count.
  local function zmpop_args(argv, numkeys_idx)
    local numkeys, e = E.range_int(argv[numkeys_idx], 1, math.maxinteger,
      "numkeys should be greater than 0")
    if not numkeys then return nil, e end
    local where_idx = numkeys_idx + numkeys + 1
    if where_idx > #argv then return nil, util.SYNTAX end
    local w = lower(argv[where_idx])
    if w ~= "min" and w ~= "max" then return nil, util.SYNTAX end
    local count = -1
    local j = where_idx + 1
    while j <= #argv do
      if count == -1 and lower(argv[j]) == "count" and j < #argv then
        count, e = E.range_int(argv[j + 1], 1, math.maxinteger,
          "count should be greater than 0")
        if not count then return nil, e end
        j = j + 2
      else
        return nil, util.SYNTAX
      end
    end
    local keys = {}
    for k = numkeys_idx + 1, numkeys_idx + numkeys do keys[#keys + 1] = argv[k] end
    return keys, w == "max", count == -1 and 1 or count
  end

  def{ "zmpop", -4, function(s, argv)
    local keys, max, count = zmpop_args(argv, 2)
    if not keys then return max end
    return zpop(s, keys, max, count, true, true) or reply.null_array
  end }

  def{ "bzmpop", -5, function(s, argv)
    local deadline, e = E.timeout_arg(s, argv[2])
    if not deadline then return e end
    local keys, max, count = zmpop_args(argv, 3)
    if not keys then return max end
    local r = zpop(s, keys, max, count, true, true)
    if r then return r end
    if s.deny_blocking then return reply.null_array end
    return E.block(keys, deadline, function(sess)
      return zpop(sess, sess.ready_key and { sess.ready_key } or keys, max, count,
        true, true, true)
    end)
  end }

  def{ "zrandmember", -2, function(s, argv)
    local count, withscores
    if argv[3] then
      count = util.int(argv[3])
      if not count then return util.NOT_INTEGER end
      if #argv > 4 or (argv[4] and lower(argv[4]) ~= "withscores") then
        return util.SYNTAX
      end
      withscores = argv[4] ~= nil
      if count < -math.maxinteger // 2 or count > math.maxinteger // 2 then
        return err("ERR value is out of range")
      end
    end
    local z, e = typed(s, argv[2])
    if z == false then return e end
    if not count then
      if not z then return reply.null end
      return z.sorted[math.random(#z.sorted)]
    end
    if not z or count == 0 then return {} end
    local picked = util.random_pick(z.sorted, count)
    local out = {}
    for _, m in ipairs(picked) do
      if withscores then
        if s.proto == 3 then
          out[#out + 1] = { m, reply.double(z.scores[m]) }
        else
          out[#out + 1] = m
          out[#out + 1] = reply.double(z.scores[m])
        end
      else
        out[#out + 1] = m
      end
    end
    return out
  end }

  -- ZUNION/ZINTER/ZDIFF and their STORE forms, ZINTERCARD
  -- (zunionInterDiffGenericCommand). Sources may be sets (score 1).
  local function source_pairs(obj)
    local list = {}
    if not obj then return list end
    if obj.type == "zset" then
      for i, m in ipairs(obj.sorted) do list[i] = { m, obj.scores[m] } end
    else
      for i = 1, obj.n do list[i] = { obj.order[i], 1.0 } end
    end
    return list
  end

  local function has(obj, m)
    if not obj then return nil end
    if obj.type == "zset" then return obj.scores[m] end
    return obj.members[m] and 1.0 or nil
  end

  local function size(obj)
    if not obj then return 0 end
    if obj.type == "zset" then return #obj.sorted end
    return obj.n
  end

  local function aggregate(a, b, how)
    if how == "sum" then
      local v = a + b
      if v ~= v then v = 0.0 end
      return v
    elseif how == "min" then
      return b < a and b or a
    end
    return b > a and b or a
  end

  local function setop(s, argv, op, numkeys_idx, dst, card_only)
    local cmdname = lower(argv[1])
    local n = util.int(argv[numkeys_idx])
    if not n then return util.NOT_INTEGER end
    if n < 1 then
      return err("ERR at least 1 input key is needed for '" .. cmdname .. "' command")
    end
    if n > #argv - numkeys_idx then
      if card_only then
        return err("ERR Number of keys can't be greater than number of args")
      end
      return util.SYNTAX
    end
    local srcs = {}
    for i = 1, n do
      local obj = s.db:lookup(argv[numkeys_idx + i])
      if obj and obj.type ~= "zset" and obj.type ~= "set" then return util.WRONGTYPE end
      srcs[i] = { obj = obj or false, weight = 1.0 }
    end
    local how, withscores, limit = "sum", false, 0
    local j = numkeys_idx + n + 1
    while j <= #argv do
      local opt = lower(argv[j])
      local remaining = #argv - j + 1
      if op ~= "diff" and not card_only and remaining >= n + 1 and opt == "weights" then
        for i = 1, n do
          local w = util.double(argv[j + i])
          if w == nil then return err("ERR weight value is not a float") end
          srcs[i].weight = w
        end
        j = j + n + 1
      elseif op ~= "diff" and not card_only and remaining >= 2 and opt == "aggregate" then
        how = lower(argv[j + 1])
        if how ~= "sum" and how ~= "min" and how ~= "max" then return util.SYNTAX end
        j = j + 2
      elseif not dst and not card_only and opt == "withscores" then
        withscores = true
        j = j + 1
      elseif card_only and remaining >= 2 and opt == "limit" then
        local e
        limit, e = E.range_int(argv[j + 1], 0, math.maxinteger, "LIMIT can't be negative")
        if not limit then return e end
        j = j + 2
      else
        return util.SYNTAX
      end
    end
    local result, order = {}, {}
    if op == "inter" then
      local sorted = {}
      for i, src in ipairs(srcs) do sorted[i] = src end
      table.sort(sorted, function(a, b) return size(a.obj) < size(b.obj) end)
      local first = sorted[1]
      for _, pair in ipairs(source_pairs(first.obj)) do
        local m = pair[1]
        local score = pair[2] * first.weight
        if score ~= score then score = 0.0 end
        local all = true
        for k = 2, #sorted do
          local sc = has(sorted[k].obj, m)
          if not sc then all = false; break end
          score = aggregate(score, sc * sorted[k].weight, how)
        end
        if all then
          result[m] = score
          order[#order + 1] = m
          if card_only and limit > 0 and #order >= limit then break end
        end
      end
    elseif op == "union" then
      for _, src in ipairs(srcs) do
        for _, pair in ipairs(source_pairs(src.obj)) do
          local m = pair[1]
          local score = pair[2] * src.weight
          if score ~= score then score = 0.0 end
          if result[m] == nil then
            result[m] = score
            order[#order + 1] = m
          else
            result[m] = aggregate(result[m], score, how)
          end
        end
      end
    else -- diff
      for _, pair in ipairs(source_pairs(srcs[1].obj)) do
        local m = pair[1]
        local keep = true
        for k = 2, #srcs do
          if has(srcs[k].obj, m) then keep = false; break end
        end
        if keep then
          result[m] = pair[2]
          order[#order + 1] = m
        end
      end
    end
    if card_only then return #order end
    local z = { type = "zset", scores = {}, sorted = {} }
    for _, m in ipairs(order) do
      local sc = result[m]
      if sc == 0 then sc = 0.0 end
      z.scores[m] = sc
      z.sorted[#z.sorted + 1] = m
    end
    table.sort(z.sorted, function(a, b) return before(z.scores[a], a, z.scores[b], b) end)
    if dst then
      if #z.sorted == 0 then
        if s.db:lookup(dst) then
          s.db:remove(dst)
          E.notify(s, "g", "del", dst)
        end
        return 0
      end
      if s.db:lookup(dst) then s.db:remove(dst) end
      s.db:put(dst, z)
      E.notify(s, "z", lower(argv[1]), dst)
      return #z.sorted
    end
    return emit(s, z, z.sorted, withscores)
  end

  for _, op in ipairs({ "union", "inter", "diff" }) do
    def{ "z" .. op, -3, function(s, argv) return setop(s, argv, op, 2) end }
    def{ "z" .. op .. "store", -4, function(s, argv)
      return setop(s, argv, op, 3, argv[2])
    end }
  end
  def{ "zintercard", -3, function(s, argv)
    return setop(s, argv, "inter", 2, nil, true)
  end }

  -- ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT o c]: the
  -- ZRANGE selection stored as a new sorted set.
  def{ "zrangestore", -5, function(s, argv)
    local args = { "zrange" }
    for i = 3, #argv do args[#args + 1] = argv[i] end
    for i = 5, #args do
      if lower(args[i]) == "withscores" then return util.SYNTAX end
    end
    local r = zrange_generic(s, args, nil, nil)
    if getmetatable(r) ~= nil then return r end
    local srcz = s.db:lookup(argv[3])
    local dst = argv[2]
    if #r == 0 then
      if s.db:lookup(dst) then
        s.db:remove(dst)
        E.notify(s, "g", "del", dst)
      end
      return 0
    end
    local z = { type = "zset", scores = {}, sorted = {} }
    for _, m in ipairs(r) do z.scores[m] = srcz.scores[m] end
    for m in pairs(z.scores) do z.sorted[#z.sorted + 1] = m end
    table.sort(z.sorted, function(a, b) return before(z.scores[a], a, z.scores[b], b) end)
    if s.db:lookup(dst) then s.db:remove(dst) end
    s.db:put(dst, z)
    E.notify(s, "z", "zrangestore", dst)
    return #z.sorted
  end }

  def{ "zscan", -3, function(s, argv)
    local z, e = typed(s, argv[2])
    if z == false then return e end
    return E.scan_collection(s, argv, function()
      if not z then return nil end
      local t = {}
      for i, m in ipairs(z.sorted) do t[i] = m end
      return t
    end, function(m) return reply.double(z.scores[m]) end)
  end }
end
