-- More set and hash commands of the mock: SPOP SRANDMEMBER SMOVE SINTER
-- SINTERSTORE SINTERCARD SUNION SUNIONSTORE SDIFF SDIFFSTORE SSCAN,
-- HINCRBYFLOAT HRANDFIELD HSCAN. Random picks use math.random.
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")
local ldouble = require("redis.mock.ldouble")
local store = require("redis.mock.store")

local err = reply.error
local lower = util.lower

return function(E)
  local def = E.def
  local S, H = E.set, E.hash

  local POSITIVE = err("ERR value is out of range, must be positive")

  -- The members of a set in reply order (intsets ascending).
  local function members(set) return S.members(set) end

  ---------------------------------------------------------------- SPOP
  def{ "spop", -2, function(s, argv)
    if #argv > 3 then return util.SYNTAX end
    local count
    if argv[3] then
      count = util.int(argv[3])
      if not count or count < 0 then return POSITIVE end
    end
    local set, e = S.typed(s, argv[2])
    if set == false then return e end
    if not set then return count and reply.set{} or reply.null end
    local out = {}
    for _ = 1, count or 1 do
      if set.n == 0 then break end
      local m = set.order[math.random(set.n)]
      S.rem(set, m)
      out[#out + 1] = m
    end
    E.notify(s, "s", "spop", argv[2])
    if set.n == 0 then
      s.db:remove(argv[2])
      E.notify(s, "g", "del", argv[2])
    else
      s.db:touch(argv[2])
    end
    if count then return reply.set(out) end
    return out[1]
  end }

  def{ "srandmember", -2, function(s, argv)
    if #argv > 3 then return util.SYNTAX end
    local count
    if argv[3] then
      count = util.int(argv[3])
      if not count then return util.NOT_INTEGER end
      if count == math.mininteger then
        return err("ERR value is out of range, value must between "
          .. "-9223372036854775807 and 9223372036854775807")
      end
    end
    local set, e = S.typed(s, argv[2])
    if set == false then return e end
    if not count then
      if not set then return reply.null end
      return set.order[math.random(set.n)]
    end
    if not set or count == 0 then return {} end
    local out = {}
    if count < 0 then
      for i = 1, -count do out[i] = set.order[math.random(set.n)] end
      return out
    end
    if count >= set.n then return members(set) end
    -- Distinct members: a partial shuffle of a copy.
    local copy = {}
    for i = 1, set.n do copy[i] = set.order[i] end
    for i = 1, count do
      local j = math.random(i, set.n)
      copy[i], copy[j] = copy[j], copy[i]
      out[i] = copy[i]
    end
    return out
  end }

  def{ "smove", 4, function(s, argv)
    local src, e = S.typed(s, argv[2])
    if src == false then return e end
    local dst, e2 = S.typed(s, argv[3])
    if dst == false then return e2 end
    if not src then return 0 end
    local m = argv[4]
    if argv[2] == argv[3] then
      return src.members[m] and 1 or 0
    end
    if not S.rem(src, m) then return 0 end
    E.notify(s, "s", "srem", argv[2])
    if src.n == 0 then
      s.db:remove(argv[2])
      E.notify(s, "g", "del", argv[2])
    else
      s.db:touch(argv[2])
    end
    if not dst then
      dst = S.new(m)
      s.db:put(argv[3], dst)
    end
    if S.add(dst, m) then
      s.db:touch(argv[3])
      E.notify(s, "s", "sadd", argv[3])
    end
    return 1
  end }

  -- The sets at keys (missing ones empty), or nil and WRONGTYPE.
  local function load(s, keys)
    local sets = {}
    for i, key in ipairs(keys) do
      local set, e = S.typed(s, key)
      if set == false then return nil, e end
      sets[i] = set or false
    end
    return sets
  end

  local function inter(sets, limit)
    for _, set in ipairs(sets) do
      if not set or set.n == 0 then return {} end
    end
    local smallest = sets[1]
    for _, set in ipairs(sets) do if set.n < smallest.n then smallest = set end end
    local out = {}
    for i = 1, smallest.n do
      local m = smallest.order[i]
      local all = true
      for _, set in ipairs(sets) do
        if not set.members[m] then all = false; break end
      end
      if all then
        out[#out + 1] = m
        if limit and limit > 0 and #out >= limit then break end
      end
    end
    return out
  end

  local function union(sets)
    local out, seen = {}, {}
    for _, set in ipairs(sets) do
      if set then
        for i = 1, set.n do
          local m = set.order[i]
          if not seen[m] then
            seen[m] = true
            out[#out + 1] = m
          end
        end
      end
    end
    return out
  end

  local function diff(sets)
    local out = {}
    local first = sets[1]
    if not first then return out end
    for i = 1, first.n do
      local m = first.order[i]
      local keep = true
      for j = 2, #sets do
        if sets[j] and sets[j].members[m] then keep = false; break end
      end
      if keep then out[#out + 1] = m end
    end
    return out
  end

  -- Reply order: intset-like results ascending, as Redis's intsets.
  local function as_reply(list)
    local all_int = #list <= 512
    for _, m in ipairs(list) do
      if not util.int(m) then all_int = false; break end
    end
    if all_int then
      table.sort(list, function(a, b) return util.int(a) < util.int(b) end)
    end
    return reply.set(list)
  end

  local function store_result(s, dst, list, event)
    if #list == 0 then
      if s.db:lookup(dst) then
        s.db:remove(dst)
        E.notify(s, "g", "del", dst)
      end
      return 0
    end
    local set = S.new(list[1])
    for _, m in ipairs(list) do S.add(set, m) end
    s.db:put(dst, set)
    E.notify(s, "s", event, dst)
    return set.n
  end

  local function keys_from(argv, first)
    local keys = {}
    for i = first, #argv do keys[#keys + 1] = argv[i] end
    return keys
  end

  for name, op in pairs({ sinter = inter, sunion = union, sdiff = diff }) do
    def{ name, -2, function(s, argv)
      local sets, e = load(s, keys_from(argv, 2))
      if not sets then return e end
      return as_reply(op(sets))
    end }
    def{ name .. "store", -3, function(s, argv)
      local sets, e = load(s, keys_from(argv, 3))
      if not sets then return e end
      return store_result(s, argv[2], op(sets), name .. "store")
    end }
  end

  def{ "sintercard", -3, function(s, argv)
    local numkeys, e = E.range_int(argv[2], 1, math.maxinteger,
      "numkeys should be greater than 0")
    if not numkeys then return e end
    if numkeys > #argv - 2 then
      return err("ERR Number of keys can't be greater than number of args")
    end
    local limit = 0
    local j = 3 + numkeys
    while j <= #argv do
      if lower(argv[j]) == "limit" and j < #argv then
        limit, e = E.range_int(argv[j + 1], 0, math.maxinteger, "LIMIT can't be negative")
        if not limit then return e end
        j = j + 2
      else
        return util.SYNTAX
      end
    end
    local sets
    sets, e = load(s, keys_from({ table.unpack(argv, 1, 2 + numkeys) }, 3))
    if not sets then return e end
    return #inter(sets, limit)
  end }

  ------------------------------------------------------------ SCAN family
  -- SSCAN/HSCAN/ZSCAN key cursor [MATCH p] [COUNT n]: the cursor is a
  -- position in the collection's member order; small collections answer
  -- whole at cursor 0, as Redis's compact encodings do.
  local function parse_cursor(text)
    if not text:match("^%d+$") or #text > 20 then return nil end
    return tonumber(text)
  end

  function E.scan_collection(s, argv, all, pairs_of)
    local cursor = parse_cursor(argv[3])
    if not cursor then return err("ERR invalid cursor") end
    local count, pattern = 10, nil
    local i = 4
    while i <= #argv do
      local opt, more = lower(argv[i]), #argv - i
      if opt == "count" and more >= 1 then
        count = util.int(argv[i + 1])
        if not count then return util.NOT_INTEGER end
        if count < 1 then return util.SYNTAX end
        i = i + 2
      elseif opt == "match" and more >= 1 then
        pattern = argv[i + 1]
        if pattern == "*" then pattern = nil end
        i = i + 2
      else
        return util.SYNTAX
      end
    end
    local list = all()
    if not list then return { "0", {} } end
    local from, to = cursor + 1, #list
    if #list > 128 then to = math.min(#list, cursor + count) else from = 1 end
    local out = {}
    for k = from, to do
      local m = list[k]
      if not pattern or store.match(pattern, m) then
        out[#out + 1] = m
        if pairs_of then out[#out + 1] = pairs_of(m) end
      end
    end
    local next_cursor = to >= #list and "0" or tostring(to)
    return { next_cursor, out }
  end

  def{ "sscan", -3, function(s, argv)
    local set, e = S.typed(s, argv[2])
    if set == false then return e end
    return E.scan_collection(s, argv, function() return set and members(set) end)
  end }

  def{ "hscan", -3, function(s, argv)
    local h, e = H.typed(s, argv[2])
    if h == false then return e end
    return E.scan_collection(s, argv, function()
      if not h then return nil end
      local t = {}
      for i, f in ipairs(h.fields) do t[i] = f end
      return t
    end, function(f) return h.values[f] end)
  end }

  --------------------------------------------------------------- hashes
  def{ "hincrbyfloat", 4, function(s, argv)
    local by = ldouble.parse(argv[4])
    if not by then return util.NOT_FLOAT end
    if ldouble.bad(by) then return err("ERR value is NaN or Infinity") end
    local h, e = H.for_write(s, argv[2])
    if not h then return e end
    local cur = ldouble.parse("0")
    local v = h.values[argv[3]]
    if v ~= nil then
      cur = ldouble.parse(v)
      if not cur then return err("ERR hash value is not a float") end
    end
    local sum = ldouble.add(cur, by)
    if ldouble.bad(sum) then
      return err("ERR increment would produce NaN or Infinity")
    end
    local text = ldouble.format(sum)
    H.set(h, argv[3], text)
    s.db:touch(argv[2])
    E.notify(s, "h", "hincrbyfloat", argv[2])
    return text
  end }

  def{ "hrandfield", -2, function(s, argv)
    local count, withvalues
    if argv[3] then
      count = util.int(argv[3])
      if not count then return util.NOT_INTEGER end
      if #argv > 4 or (argv[4] and lower(argv[4]) ~= "withvalues") then
        return util.SYNTAX
      end
      withvalues = argv[4] ~= nil
      if count < -math.maxinteger // 2 or count > math.maxinteger // 2 then
        return err("ERR value is out of range")
      end
    end
    local h, e = H.typed(s, argv[2])
    if h == false then return e end
    if not count then
      if not h then return reply.null end
      return h.fields[math.random(#h.fields)]
    end
    if not h or count == 0 then return {} end
    local picked = util.random_pick(h.fields, count)
    local out = {}
    for _, f in ipairs(picked) do
      if withvalues then
        if s.proto == 3 then
          out[#out + 1] = { f, h.values[f] }
        else
          out[#out + 1] = f
          out[#out + 1] = h.values[f]
        end
      else
        out[#out + 1] = f
      end
    end
    return out
  end }
end
