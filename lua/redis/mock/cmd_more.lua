-- More string and keyspace commands of the mock: GETEX SETRANGE SUBSTR
-- SETBIT GETBIT BITCOUNT BITPOS LCS, COPY MOVE SWAPDB RANDOMKEY TOUCH
-- EXPIRETIME PEXPIRETIME DUMP RESTORE.
--
-- DUMP's payload is the mock's own serialization (RESTORE on the mock
-- reads it back), not Redis's RDB format.
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")
local store = require("redis.mock.store")

local err, ok = reply.error, reply.ok
local lower = util.lower

local INT_MAX = math.maxinteger
local MAX_STRING = 512 * 1024 * 1024

return function(E)
  local def = E.def

  local function get_string(s, key)
    local obj = s.db:lookup(key)
    if not obj then return nil end
    if obj.type ~= "string" then return false, util.WRONGTYPE end
    return obj.value
  end

  local function put_string(s, key, value)
    local obj = s.db:lookup(key)
    if obj then
      obj.value = value
      s.db:touch(key)
    else
      s.db:put(key, { type = "string", value = value })
    end
  end

  def{ "getex", -2, function(s, argv)
    local unit, ttl_text, persist
    local i = 3
    while i <= #argv do
      local opt = lower(argv[i])
      if (opt == "ex" or opt == "px" or opt == "exat" or opt == "pxat")
        and not unit and not persist and i < #argv then
        unit, ttl_text = opt, argv[i + 1]
        i = i + 2
      elseif opt == "persist" and not unit and not persist then
        persist = true
        i = i + 1
      else
        return util.SYNTAX
      end
    end
    local when
    if unit then
      local v = util.int(ttl_text)
      if not v then return util.NOT_INTEGER end
      local bad = err("ERR invalid expire time in 'getex' command")
      if v <= 0 or ((unit == "ex" or unit == "exat") and v > INT_MAX // 1000) then
        return bad
      end
      if unit == "ex" or unit == "exat" then v = v * 1000 end
      if unit == "ex" or unit == "px" then
        if v > INT_MAX - s.engine.clock() then return bad end
        v = v + s.engine.clock()
      end
      when = v
    end
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    if v == nil then return reply.null end
    if when then
      if when <= s.engine.clock() then
        s.db:remove(argv[2])
        E.notify(s, "g", "del", argv[2])
      else
        s.db:set_expire(argv[2], when)
        E.notify(s, "g", "expire", argv[2])
      end
    elseif persist then
      if s.db:persist(argv[2]) then E.notify(s, "g", "persist", argv[2]) end
    end
    return v
  end }

  def{ "setrange", 4, function(s, argv)
    local offset = util.int(argv[3])
    if not offset then return util.NOT_INTEGER end
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    if offset < 0 then return err("ERR offset is out of range") end
    local value = argv[4]
    if v == nil then
      if #value == 0 then return 0 end
      v = ""
    elseif #value == 0 then
      return #v
    end
    if offset > MAX_STRING - #value then
      return err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    end
    if #v < offset then v = v .. string.rep("\0", offset - #v) end
    local new = v:sub(1, offset) .. value .. v:sub(offset + #value + 1)
    put_string(s, argv[2], new)
    E.notify(s, "$", "setrange", argv[2])
    return #new
  end }

  local function getrange(s, argv)
    local start, stop = util.int(argv[3]), util.int(argv[4])
    if not start or not stop then return util.NOT_INTEGER end
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    if v == nil then return "" end
    local len = #v
    if start < 0 and stop < 0 and start > stop then return "" end
    if start < 0 then start = len + start end
    if stop < 0 then stop = len + stop end
    if start < 0 then start = 0 end
    if stop < 0 then stop = 0 end
    if stop >= len then stop = len - 1 end
    if start > stop or len == 0 then return "" end
    return v:sub(start + 1, stop + 1)
  end
  def{ "substr", 4, getrange }

  ---------------------------------------------------------------- bits
  local BAD_OFFSET = err("ERR bit offset is not an integer or out of range")

  local function bit_offset(text)
    local v = util.int(text)
    if not v or v < 0 or v >= 4 * 1024 * 1024 * 1024 then return nil end
    return v
  end

  def{ "setbit", 4, function(s, argv)
    local off = bit_offset(argv[3])
    if not off then return BAD_OFFSET end
    local bit = argv[4]
    if bit ~= "0" and bit ~= "1" then
      return err("ERR bit is not an integer or out of range")
    end
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    v = v or ""
    local byte = off // 8
    if #v < byte + 1 then v = v .. string.rep("\0", byte + 1 - #v) end
    local b = v:byte(byte + 1)
    local mask = 1 << (7 - off % 8)
    local old = (b & mask) ~= 0 and 1 or 0
    if bit == "1" then b = b | mask else b = b & ~mask end
    put_string(s, argv[2], v:sub(1, byte) .. string.char(b) .. v:sub(byte + 2))
    E.notify(s, "$", "setbit", argv[2])
    return old
  end }

  def{ "getbit", 3, function(s, argv)
    local off = bit_offset(argv[3])
    if not off then return BAD_OFFSET end
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    if not v then return 0 end
    local b = v:byte(off // 8 + 1)
    if not b then return 0 end
    return (b & (1 << (7 - off % 8))) ~= 0 and 1 or 0
  end }

  local POP = {}
  for i = 0, 255 do
    local n, x = 0, i
    while x > 0 do n = n + (x & 1); x = x >> 1 end
    POP[i] = n
  end

  -- [start, end] in bytes or bits, Redis's index arithmetic; returns the
  -- bit range [from, to] (0-based, inclusive) or nil when empty.
  local function bit_range(v, start, stop, isbit)
    local total = isbit and #v * 8 or #v
    if start < 0 then start = total + start end
    if stop < 0 then stop = total + stop end
    if start < 0 then start = 0 end
    if stop < 0 then stop = 0 end
    if stop >= total then stop = total - 1 end
    if start > stop then return nil end
    if isbit then return start, stop end
    return start * 8, stop * 8 + 7
  end

  def{ "bitcount", -2, function(s, argv)
    local start, stop, isbit
    if #argv == 4 or #argv == 5 then
      start, stop = util.int(argv[3]), util.int(argv[4])
      if not start or not stop then return util.NOT_INTEGER end
      if argv[5] then
        local u = lower(argv[5])
        if u == "bit" then isbit = true elseif u ~= "byte" then return util.SYNTAX end
      end
    elseif #argv ~= 2 then
      return util.SYNTAX
    end
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    if not v then return 0 end
    local from, to = 0, #v * 8 - 1
    if start then
      from, to = bit_range(v, start, stop, isbit)
      if not from then return 0 end
    end
    local n, p = 0, from
    while p <= to do
      if p % 8 == 0 and p + 7 <= to then
        n = n + POP[v:byte(p // 8 + 1)]
        p = p + 8
      else
        if (v:byte(p // 8 + 1) & (1 << (7 - p % 8))) ~= 0 then n = n + 1 end
        p = p + 1
      end
    end
    return n
  end }

  def{ "bitpos", -3, function(s, argv)
    local bit = util.int(argv[3])
    if bit ~= 0 and bit ~= 1 then
      if not bit then return util.NOT_INTEGER end
      return err("ERR The bit argument must be 1 or 0.")
    end
    local start, stop, isbit, end_given = 0, -1, false, false
    if #argv >= 4 then
      start = util.int(argv[4])
      if not start then return util.NOT_INTEGER end
    end
    if #argv >= 5 then
      stop = util.int(argv[5])
      if not stop then return util.NOT_INTEGER end
      end_given = true
    end
    if #argv >= 6 then
      local u = lower(argv[6])
      if u == "bit" then isbit = true elseif u ~= "byte" then return util.SYNTAX end
    end
    if #argv > 6 then return util.SYNTAX end
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    if not v then return bit == 1 and -1 or 0 end
    local from, to = bit_range(v, start, stop, isbit)
    if not from then return -1 end
    for p = from, to do
      local b = (v:byte(p // 8 + 1) >> (7 - p % 8)) & 1
      if b == bit then return p end
    end
    if bit == 0 and not end_given then return to + 1 end
    return -1
  end }

  ----------------------------------------------------------------- LCS
  def{ "lcs", -3, function(s, argv)
    local a, b
    local oa, ob = s.db:lookup(argv[2]), s.db:lookup(argv[3])
    if (oa and oa.type ~= "string") or (ob and ob.type ~= "string") then
      return err("ERR The specified keys must contain string values")
    end
    a, b = oa and oa.value or "", ob and ob.value or ""
    local getlen, getidx, withlen, minlen = false, false, false, 0
    local j = 4
    while j <= #argv do
      local opt = lower(argv[j])
      if opt == "idx" then getidx = true
      elseif opt == "len" then getlen = true
      elseif opt == "withmatchlen" then withlen = true
      elseif opt == "minmatchlen" and j < #argv then
        minlen = util.int(argv[j + 1])
        if not minlen then return util.NOT_INTEGER end
        if minlen < 0 then minlen = 0 end
        j = j + 1
      else
        return util.SYNTAX
      end
      j = j + 1
    end
    if getlen and getidx then
      return err("ERR If you want both the length and indexes, please just use IDX.")
    end
    local alen, blen = #a, #b
    local w = blen + 1
    local T = {}
    for i = 0, alen do
      for k = 0, blen do
        if i == 0 or k == 0 then
          T[i * w + k] = 0
        elseif a:byte(i) == b:byte(k) then
          T[i * w + k] = T[(i - 1) * w + k - 1] + 1
        else
          local l1, l2 = T[(i - 1) * w + k], T[i * w + k - 1]
          T[i * w + k] = l1 > l2 and l1 or l2
        end
      end
    end
    local total = T[alen * w + blen]
    if getlen then return total end
    local result = {}
    local idx = total
    local matches = {}
    local as, ae, bs, be = alen, 0, 0, 0
    local i, k = alen, blen
    while i > 0 and k > 0 do
      local emit = false
      if a:byte(i) == b:byte(k) then
        result[idx] = a:sub(i, i)
        if as == alen then
          as, ae, bs, be = i - 1, i - 1, k - 1, k - 1
        elseif as == i and bs == k then
          as, bs = as - 1, bs - 1
        else
          emit = true
        end
        if as == 0 or bs == 0 then emit = true end
        idx, i, k = idx - 1, i - 1, k - 1
      else
        local l1, l2 = T[(i - 1) * w + k], T[i * w + k - 1]
        if l1 > l2 then i = i - 1 else k = k - 1 end
        if as ~= alen then emit = true end
      end
      local mlen = ae - as + 1
      if emit then
        if minlen == 0 or mlen >= minlen then
          local m = { { as, ae }, { bs, be } }
          if withlen then m[3] = mlen end
          matches[#matches + 1] = m
        end
        as = alen
      end
    end
    if getidx then
      return reply.map{ "matches", matches, "len", total }
    end
    return table.concat(result)
  end }

  ------------------------------------------------------------- keyspace
  local function copy_obj(obj)
    local t = obj.type
    if t == "string" then return { type = "string", value = obj.value } end
    if t == "hash" then
      local h = { type = "hash", fields = {}, values = {} }
      for i, f in ipairs(obj.fields) do h.fields[i] = f; h.values[f] = obj.values[f] end
      return h
    end
    if t == "list" then
      local l = { type = "list", head = obj.head, tail = obj.tail }
      for i = obj.head, obj.tail do l[i] = obj[i] end
      return l
    end
    if t == "set" then
      local c = { type = "set", members = {}, order = {}, n = obj.n, intset = obj.intset }
      for i = 1, obj.n do c.order[i] = obj.order[i]; c.members[obj.order[i]] = i end
      return c
    end
    if t == "zset" then
      local z = { type = "zset", scores = {}, sorted = {} }
      for i, m in ipairs(obj.sorted) do z.sorted[i] = m; z.scores[m] = obj.scores[m] end
      return z
    end
    if E.copy_other then return E.copy_other(obj) end
    return obj
  end
  E.copy_obj = copy_obj

  local function db_index(text)
    local id = util.int(text)
    if not id then return nil, util.NOT_INTEGER end
    if id < 0 or id >= store.NDBS then return nil, err("ERR DB index is out of range") end
    return id
  end

  def{ "copy", -3, function(s, argv)
    local dst_db, replace = s.db, false
    local i = 4
    while i <= #argv do
      local opt = lower(argv[i])
      if opt == "replace" then
        replace = true
        i = i + 1
      elseif opt == "db" and i < #argv then
        local id, e = db_index(argv[i + 1])
        if not id then return e end
        dst_db = s.engine.store.dbs[id]
        i = i + 2
      else
        return util.SYNTAX
      end
    end
    if dst_db == s.db and argv[2] == argv[3] then
      return err("ERR source and destination objects are the same")
    end
    local obj = s.db:lookup(argv[2])
    if not obj then return 0 end
    if dst_db:lookup(argv[3]) then
      if not replace then return 0 end
      dst_db:remove(argv[3])
    end
    dst_db:put(argv[3], copy_obj(obj))
    local when = s.db.expires[argv[2]]
    if when then dst_db:set_expire(argv[3], when) end
    E.notify(s, "g", "copy_to", argv[3], dst_db.index)
    return 1
  end }

  def{ "move", 3, function(s, argv)
    local id, e = db_index(argv[3])
    if not id then return e end
    local dst = s.engine.store.dbs[id]
    if dst == s.db then
      return err("ERR source and destination objects are the same")
    end
    local obj = s.db:lookup(argv[2])
    if not obj then return 0 end
    if dst:lookup(argv[2]) then return 0 end
    local when = s.db.expires[argv[2]]
    s.db:remove(argv[2])
    dst:put(argv[2], obj)
    if when then dst:set_expire(argv[2], when) end
    E.notify(s, "g", "move_from", argv[2])
    E.notify(s, "g", "move_to", argv[2], id)
    return 1
  end }

  def{ "swapdb", 3, function(s, argv)
    local a, b = util.int(argv[2]), util.int(argv[3])
    if not a then return err("ERR invalid first DB index") end
    if not b then return err("ERR invalid second DB index") end
    if a < 0 or a >= store.NDBS or b < 0 or b >= store.NDBS then
      return err("ERR DB index is out of range")
    end
    if a == b then return ok end
    local st = s.engine.store
    local da, db = st.dbs[a], st.dbs[b]
    -- Swap the contents, keep the Db objects (sessions point at them).
    for _, f in ipairs({ "data", "expires", "slot", "at", "next_slot", "count", "nexpires" }) do
      da[f], db[f] = db[f], da[f]
    end
    -- WATCHers of keys in either db see the swap as a change.
    for _, d in ipairs({ da, db }) do
      local w = st.watchers[d.index]
      if w then for key in pairs(w) do d:touch(key) end end
      local waiting = st.waiting[d.index]
      if waiting then for key in pairs(waiting) do d:touch(key) end end
    end
    return ok
  end }

  def{ "randomkey", 1, function(s)
    local keys = s.db:iterate(1)
    if #keys == 0 then return reply.null end
    return keys[math.random(#keys)]
  end }

  def{ "touch", -2, function(s, argv)
    local n = 0
    for i = 2, #argv do if s.db:lookup(argv[i]) then n = n + 1 end end
    return n
  end }

  local function expiretime(s, argv, ms)
    if not s.db:lookup(argv[2]) then return -2 end
    local when = s.db.expires[argv[2]]
    if not when then return -1 end
    return ms and when or when // 1000
  end
  def{ "expiretime", 2, function(s, argv) return expiretime(s, argv, false) end }
  def{ "pexpiretime", 2, function(s, argv) return expiretime(s, argv, true) end }

  ------------------------------------------------------------ DUMP/RESTORE
  -- Payload: "MOCKDUMP1" then length-prefixed fields.
  local function pack(list)
    local out = { "MOCKDUMP1" }
    for _, v in ipairs(list) do out[#out + 1] = #v .. ":" .. v end
    return table.concat(out)
  end

  local function unpack_payload(p)
    if p:sub(1, 9) ~= "MOCKDUMP1" then return nil end
    local list, i = {}, 10
    while i <= #p do
      local colon = p:find(":", i, true)
      if not colon then return nil end
      local n = tonumber(p:sub(i, colon - 1))
      if not n then return nil end
      list[#list + 1] = p:sub(colon + 1, colon + n)
      i = colon + n + 1
    end
    return list
  end

  local function serialize(obj)
    local t = obj.type
    local list = { t }
    if t == "string" then
      list[2] = obj.value
    elseif t == "hash" then
      for _, f in ipairs(obj.fields) do list[#list + 1] = f; list[#list + 1] = obj.values[f] end
    elseif t == "list" then
      for i = obj.head, obj.tail do list[#list + 1] = obj[i] end
    elseif t == "set" then
      for i = 1, obj.n do list[#list + 1] = obj.order[i] end
    elseif t == "zset" then
      for _, m in ipairs(obj.sorted) do
        list[#list + 1] = m
        list[#list + 1] = string.format("%.17g", obj.scores[m])
      end
    else
      return nil
    end
    return pack(list)
  end

  local function deserialize(p)
    local list = unpack_payload(p)
    if not list or #list == 0 then return nil end
    local t = list[1]
    if t == "string" then return { type = "string", value = list[2] or "" } end
    if t == "hash" then
      local h = { type = "hash", fields = {}, values = {} }
      for i = 2, #list, 2 do E.hash.set(h, list[i], list[i + 1]) end
      return h
    end
    if t == "list" then
      local l = { type = "list", head = 1, tail = #list - 1 }
      for i = 2, #list do l[i - 1] = list[i] end
      return l
    end
    if t == "set" then
      local set = E.set.new(list[2] or "")
      for i = 2, #list do E.set.add(set, list[i]) end
      return set
    end
    if t == "zset" then
      local z = { type = "zset", scores = {}, sorted = {} }
      local items = {}
      for i = 2, #list, 2 do
        z.scores[list[i]] = tonumber(list[i + 1])
        items[#items + 1] = list[i]
      end
      table.sort(items, function(x, y)
        if z.scores[x] ~= z.scores[y] then return z.scores[x] < z.scores[y] end
        return x < y
      end)
      z.sorted = items
      return z
    end
    return nil
  end

  def{ "dump", 2, function(s, argv)
    local obj = s.db:lookup(argv[2])
    if not obj then return reply.null end
    return serialize(obj) or reply.null
  end }

  def{ "restore", -4, function(s, argv)
    local replace, absttl = false, false
    local i = 5
    while i <= #argv do
      local opt = lower(argv[i])
      if opt == "replace" then replace = true
      elseif opt == "absttl" then absttl = true
      elseif (opt == "idletime" or opt == "freq") and i < #argv then
        local v = util.int(argv[i + 1])
        if not v then return util.NOT_INTEGER end
        if v < 0 then
          return err(opt == "idletime" and "ERR Invalid IDLETIME value, must be >= 0"
            or "ERR Invalid FREQ value, must be >= 0 and <= 255")
        end
        i = i + 1
      else
        return util.SYNTAX
      end
      i = i + 1
    end
    local ttl = util.int(argv[3])
    if not ttl then return util.NOT_INTEGER end
    if ttl < 0 then return err("ERR Invalid TTL value, must be >= 0") end
    if not replace and s.db:lookup(argv[2]) then
      return err("BUSYKEY Target key name already exists.")
    end
    local obj = deserialize(argv[4])
    if not obj then return err("ERR DUMP payload version or checksum are wrong") end
    local when
    if ttl > 0 then when = absttl and ttl or s.engine.clock() + ttl end
    if s.db:lookup(argv[2]) then s.db:remove(argv[2]) end
    if when and when <= s.engine.clock() then
      return ok
    end
    s.db:put(argv[2], obj)
    if when then s.db:set_expire(argv[2], when) end
    E.notify(s, "g", "restore", argv[2])
    return ok
  end }

  ------------------------------------------------------------------ SORT
  -- SORT key [BY pattern] [LIMIT offset count] [GET pattern ...]
  -- [ASC|DESC] [ALPHA] [STORE destination], and SORT_RO.
  local function sort_lookup(s, pattern, elem)
    if pattern == "#" then return elem end
    local star = pattern:find("*", 1, true)
    if not star then return nil end
    local arrow = pattern:find("->", star + 1, true)
    local keypart = arrow and pattern:sub(1, arrow - 1) or pattern
    local key = keypart:sub(1, star - 1) .. elem .. keypart:sub(star + 1)
    local obj = s.db:lookup(key)
    if not obj then return nil end
    if arrow then
      if obj.type ~= "hash" then return nil end
      return obj.values[pattern:sub(arrow + 2)]
    end
    if obj.type ~= "string" then return nil end
    return obj.value
  end

  local function sort_cmd(s, argv, readonly)
    local by, offset, count, gets, desc, alpha, dst
    local i = 3
    while i <= #argv do
      local opt, left = lower(argv[i]), #argv - i
      if opt == "asc" then desc = false
      elseif opt == "desc" then desc = true
      elseif opt == "alpha" then alpha = true
      elseif opt == "limit" and left >= 2 then
        offset, count = util.int(argv[i + 1]), util.int(argv[i + 2])
        if not offset or not count then return util.NOT_INTEGER end
        i = i + 2
      elseif opt == "store" and left >= 1 and not readonly then
        dst = argv[i + 1]
        i = i + 1
      elseif opt == "by" and left >= 1 then
        by = argv[i + 1]
        i = i + 1
      elseif opt == "get" and left >= 1 then
        gets = gets or {}
        gets[#gets + 1] = argv[i + 1]
        i = i + 1
      else
        return util.SYNTAX
      end
      i = i + 1
    end
    local obj = s.db:lookup(argv[2])
    local elems = {}
    if obj then
      if obj.type == "list" then
        for k = obj.head, obj.tail do elems[#elems + 1] = obj[k] end
      elseif obj.type == "set" then
        for k = 1, obj.n do elems[#elems + 1] = obj.order[k] end
      elseif obj.type == "zset" then
        for k, m in ipairs(obj.sorted) do elems[k] = m end
      else
        return util.WRONGTYPE
      end
    end
    local nosort = by and not by:find("*", 1, true)
    if not nosort then
      local keys = {}
      for _, el in ipairs(elems) do
        local w = el
        if by then w = sort_lookup(s, by, el) end
        if alpha then
          keys[el] = w or ""
        else
          local v = 0
          if w then
            v = util.strtod_full(w)
            if v == nil then
              return err("ERR One or more scores can't be converted into double")
            end
          end
          keys[el] = v
        end
      end
      table.sort(elems, function(a, b)
        local ka, kb = keys[a], keys[b]
        if ka == kb then
          if desc then return a > b end
          return a < b
        end
        if desc then return ka > kb end
        return ka < kb
      end)
    end
    local from, to = 1, #elems
    if offset then
      if offset < 0 then offset = 0 end
      from = offset + 1
      if count >= 0 then to = math.min(#elems, offset + count) end
    end
    local out = {}
    for k = from, to do
      local el = elems[k]
      if gets then
        for _, g in ipairs(gets) do
          out[#out + 1] = sort_lookup(s, g, el) or reply.null
        end
      else
        out[#out + 1] = el
      end
    end
    if dst then
      if #out == 0 then
        if s.db:lookup(dst) then
          s.db:remove(dst)
          E.notify(s, "g", "del", dst)
        else
          s.db:touch(dst)
        end
        return 0
      end
      local l = { type = "list", head = 1, tail = #out }
      for k, v in ipairs(out) do l[k] = v == reply.null and "" or v end
      if s.db:lookup(dst) then s.db:remove(dst) end
      s.db:put(dst, l)
      E.notify(s, "l", "sortstore", dst)
      return #out
    end
    return out
  end
  def{ "sort", -2, function(s, argv) return sort_cmd(s, argv, false) end }
  def{ "sort_ro", -2, function(s, argv) return sort_cmd(s, argv, true) end }

  def{ "shutdown", -1, function()
    return err("ERR Errors trying to SHUTDOWN. Check logs.")
  end, flags = { nomulti = true } }
end
