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
    if added + updated > 0 then s.db:touch(argv[2]) end
    if f.incr then
      if processed > 0 then return reply.double(score) end
      return reply.null
    end
    return f.ch and (added + updated) or added
  end

  def{ "zadd", -4, function(s, argv) return zadd_generic(s, argv, {}, 3) end }

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
end
