-- String commands of the mock: GET SET SETNX SETEX PSETEX GETSET GETDEL
-- MGET MSET MSETNX INCR INCRBY DECR DECRBY INCRBYFLOAT APPEND STRLEN
-- GETRANGE.
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")
local ldouble = require("redis.mock.ldouble")

local err, ok = reply.error, reply.ok
local lower = util.lower

local INT_MAX = math.maxinteger
local INT_MIN = math.mininteger
local tostring = tostring

return function(E)
  local def = E.def

  -- The string at key: value, or nil when missing, or false plus the
  -- WRONGTYPE error.
  local function get_string(s, key)
    local obj = s.db:lookup(key)
    if not obj then return nil end
    if obj.type ~= "string" then return false, util.WRONGTYPE end
    return obj.value
  end

  -- An existing string object is updated in place (no garbage per SET).
  local function put_string(s, key, value, keep_ttl)
    local db = s.db
    local obj = db.data[key]
    if obj and obj.type == "string" then
      obj.value = value
      if not keep_ttl and db.expires[key] then db:persist(key) end
      db:touch(key)
      return
    end
    db:put(key, { type = "string", value = value }, keep_ttl)
  end
  E.put_string = put_string

  def{ "get", 2, function(s, argv)
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    return v or reply.null
  end }

  -- The deadline for an EX/PX/EXAT/PXAT argument, or nil and the error
  -- (Redis's getExpireMillisecondsOrReply).
  local function expire_ms(s, name, text, unit)
    local v = util.int(text)
    if not v then return nil, util.NOT_INTEGER end
    local bad = err("ERR invalid expire time in '" .. name .. "' command")
    if v <= 0 or ((unit == "ex" or unit == "exat") and v > INT_MAX // 1000) then
      return nil, bad
    end
    if unit == "ex" or unit == "exat" then v = v * 1000 end
    if unit == "ex" or unit == "px" then
      v = v + s.engine.clock()   -- wraps like C on overflow, caught below
    end
    if v <= 0 then return nil, bad end
    return v
  end

  -- setGenericCommand: flags nx, xx, get, keepttl; expire = deadline.
  local function set_generic(s, key, value, f, when)
    local old
    if f.get then
      local v, e = get_string(s, key)
      if v == false then return e end
      old = v or reply.null
    end
    local found = s.db:lookup(key) ~= nil
    if (f.nx and found) or (f.xx and not found) then
      return old or reply.null
    end
    put_string(s, key, value, f.keepttl)
    if when then s.db:set_expire(key, when) end
    return old or ok
  end

  def{ "set", -3, function(s, argv)
    if argv[4] == nil then
      -- SET key value: set_generic without options (the lookup stays, as
      -- Redis's: it expires a key whose time has come).
      local key = argv[2]
      s.db:lookup(key)
      put_string(s, key, argv[3])
      return ok
    end
    local f, unit, ttl_text = {}, nil, nil
    local i = 4
    while i <= #argv do
      local opt = lower(argv[i])
      local has_next = i < #argv
      if opt == "nx" and not f.xx then
        f.nx = true
      elseif opt == "xx" and not f.nx then
        f.xx = true
      elseif opt == "get" then
        f.get = true
      elseif opt == "keepttl" and not unit then
        f.keepttl = true
      elseif (opt == "ex" or opt == "px" or opt == "exat" or opt == "pxat")
        and not f.keepttl and (unit == nil or unit == opt) and has_next then
        unit, ttl_text = opt, argv[i + 1]
        i = i + 1
      else
        return util.SYNTAX
      end
      i = i + 1
    end
    local when
    if unit then
      local e
      when, e = expire_ms(s, "set", ttl_text, unit)
      if not when then return e end
    end
    return set_generic(s, argv[2], argv[3], f, when)
  end }

  def{ "setnx", 3, function(s, argv)
    if s.db:lookup(argv[2]) then return 0 end
    put_string(s, argv[2], argv[3])
    return 1
  end }

  def{ "setex", 4, function(s, argv)
    local when, e = expire_ms(s, "setex", argv[3], "ex")
    if not when then return e end
    return set_generic(s, argv[2], argv[4], {}, when)
  end }

  def{ "psetex", 4, function(s, argv)
    local when, e = expire_ms(s, "psetex", argv[3], "px")
    if not when then return e end
    return set_generic(s, argv[2], argv[4], {}, when)
  end }

  def{ "getset", 3, function(s, argv)
    return set_generic(s, argv[2], argv[3], { get = true })
  end }

  def{ "getdel", 2, function(s, argv)
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    if v == nil then return reply.null end
    s.db:remove(argv[2])
    return v
  end }

  def{ "mget", -2, function(s, argv)
    local out = {}
    for i = 2, #argv do
      local obj = s.db:lookup(argv[i])
      out[i - 1] = (obj and obj.type == "string") and obj.value or reply.null
    end
    return out
  end }

  def{ "mset", -3, function(s, argv)
    if #argv % 2 == 0 then return util.arity_error("mset") end
    for i = 2, #argv, 2 do put_string(s, argv[i], argv[i + 1]) end
    return ok
  end }

  def{ "msetnx", -3, function(s, argv)
    if #argv % 2 == 0 then return util.arity_error("msetnx") end
    for i = 2, #argv, 2 do
      if s.db:lookup(argv[i]) then return 0 end
    end
    for i = 2, #argv, 2 do put_string(s, argv[i], argv[i + 1]) end
    return 1
  end }

  local function incr_by(s, key, by)
    local db = s.db
    local obj = db:lookup(key)
    local cur = 0
    if obj then
      if obj.type ~= "string" then return util.WRONGTYPE end
      cur = util.int(obj.value)
      if not cur then return util.NOT_INTEGER end
    end
    if (by < 0 and cur < 0 and by < INT_MIN - cur)
      or (by > 0 and cur > 0 and by > INT_MAX - cur) then
      return util.OVERFLOW
    end
    local new = cur + by
    if obj then
      -- put_string's in-place update, deadline kept
      obj.value = tostring(new)
      db:touch(key)
    else
      put_string(s, key, tostring(new), true)
    end
    return new
  end

  def{ "incr", 2, function(s, argv) return incr_by(s, argv[2], 1) end }
  def{ "decr", 2, function(s, argv) return incr_by(s, argv[2], -1) end }

  def{ "incrby", 3, function(s, argv)
    local by = util.int(argv[3])
    if not by then return util.NOT_INTEGER end
    return incr_by(s, argv[2], by)
  end }

  def{ "decrby", 3, function(s, argv)
    local by = util.int(argv[3])
    if not by then return util.NOT_INTEGER end
    if by == INT_MIN then return err("ERR decrement would overflow") end
    return incr_by(s, argv[2], -by)
  end }

  -- INCRBYFLOAT adds in x87 long double like Redis (redis.mock.ldouble).
  def{ "incrbyfloat", 3, function(s, argv)
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    local cur = ldouble.parse(v or "0")
    local by = ldouble.parse(argv[3])
    if not cur or not by then return util.NOT_FLOAT end
    local sum = ldouble.add(cur, by)
    if ldouble.bad(sum) then
      return err("ERR increment would produce NaN or Infinity")
    end
    local text = ldouble.format(sum)
    put_string(s, argv[2], text, true)
    return text
  end }

  def{ "append", 3, function(s, argv)
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    local new = (v or "") .. argv[3]
    put_string(s, argv[2], new, true)
    return #new
  end }

  def{ "strlen", 2, function(s, argv)
    local v, e = get_string(s, argv[2])
    if v == false then return e end
    return v and #v or 0
  end }

  -- GETRANGE with Redis 7.0's index arithmetic, quirks included (an end
  -- below -len clamps to 0 and still returns the first byte).
  def{ "getrange", 4, function(s, argv)
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
  end }
end
