-- Keyspace commands of the mock: DEL UNLINK EXISTS TYPE EXPIRE PEXPIRE
-- EXPIREAT PEXPIREAT TTL PTTL PERSIST KEYS SCAN RENAME RENAMENX.
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")
local store = require("redis.mock.store")

local err, status, ok = reply.error, reply.status, reply.ok
local lower = util.lower

local INT_MAX = math.maxinteger

return function(E)
  local def = E.def

  local function del(s, argv)
    local n = 0
    for i = 2, #argv do
      if s.db:lookup(argv[i]) and s.db:remove(argv[i]) then
        n = n + 1
        E.notify(s, "g", "del", argv[i])
      end
    end
    return n
  end
  def{ "del", -2, del }
  def{ "unlink", -2, del }

  def{ "exists", -2, function(s, argv)
    local n = 0
    for i = 2, #argv do
      if s.db:lookup(argv[i]) then n = n + 1 end
    end
    return n
  end }

  def{ "type", 2, function(s, argv)
    local obj = s.db:lookup(argv[2])
    return status(obj and obj.type or "none")
  end }

  -- EXPIRE family: Redis 7.0's expireGenericCommand, options first.
  local function expire_generic(s, argv, name, basetime, unit_seconds)
    local nx, xx, gt, lt = false, false, false, false
    for i = 4, #argv do
      local opt = lower(argv[i])
      if opt == "nx" then nx = true
      elseif opt == "xx" then xx = true
      elseif opt == "gt" then gt = true
      elseif opt == "lt" then lt = true
      else return err("ERR Unsupported option " .. argv[i]:gsub("%z.*", "")) end
    end
    if nx and (xx or gt or lt) then
      return err("ERR NX and XX, GT or LT options at the same time are not compatible")
    end
    if gt and lt then
      return err("ERR GT and LT options at the same time are not compatible")
    end
    local when = util.int(argv[3])
    if not when then return util.NOT_INTEGER end
    local bad = err("ERR invalid expire time in '" .. name .. "' command")
    if unit_seconds then
      if when > INT_MAX // 1000 or when < -(INT_MAX // 1000) then return bad end
      when = when * 1000
    end
    if when > INT_MAX - basetime then return bad end
    when = when + basetime
    local db = s.db
    if not db:lookup(argv[2]) then return 0 end
    local current = db.expires[argv[2]]
    if nx and current then return 0 end
    if xx and not current then return 0 end
    if gt and (not current or when <= current) then return 0 end
    if lt and current and when >= current then return 0 end
    if when <= s.engine.clock() then
      db:remove(argv[2])
    else
      db:set_expire(argv[2], when)
    end
    return 1
  end

  def{ "expire", -3, function(s, argv)
    return expire_generic(s, argv, "expire", s.engine.clock(), true)
  end }
  def{ "pexpire", -3, function(s, argv)
    return expire_generic(s, argv, "pexpire", s.engine.clock(), false)
  end }
  def{ "expireat", -3, function(s, argv)
    return expire_generic(s, argv, "expireat", 0, true)
  end }
  def{ "pexpireat", -3, function(s, argv)
    return expire_generic(s, argv, "pexpireat", 0, false)
  end }

  local function ttl(s, argv, ms)
    local db = s.db
    if not db:lookup(argv[2]) then return -2 end
    local when = db.expires[argv[2]]
    if not when then return -1 end
    local left = when - s.engine.clock()
    if left < 0 then left = 0 end
    if ms then return left end
    return (left + 500) // 1000
  end
  def{ "ttl", 2, function(s, argv) return ttl(s, argv, false) end }
  def{ "pttl", 2, function(s, argv) return ttl(s, argv, true) end }

  def{ "persist", 2, function(s, argv)
    if not s.db:lookup(argv[2]) then return 0 end
    return s.db:persist(argv[2]) and 1 or 0
  end }

  def{ "keys", 2, function(s, argv)
    local pattern = argv[2]
    local all = pattern == "*"
    local keys = s.db:iterate(1)
    local out = {}
    for _, k in ipairs(keys) do
      if all or store.match(pattern, k) then out[#out + 1] = k end
    end
    return out
  end }

  -- SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. The cursor is
  -- a creation position (see redis.mock.store); strtoul rules for it.
  local function parse_cursor(text)
    if text == "" then return 0 end
    if util.SPACE[text:byte(1)] then return nil end
    local sign, digits = text:match("^([+-]?)(%d+)$")
    if not digits then return nil end
    if #digits > 20 then return nil end
    local v = tonumber(digits)
    if math.type(v) ~= "integer" then
      -- Beyond int64 but maybe within unsigned long: past every key.
      if tonumber(digits) > 18446744073709551615 then return nil end
      return INT_MAX
    end
    if sign == "-" and v ~= 0 then return INT_MAX end
    return v
  end

  def{ "scan", -2, function(s, argv)
    local cursor = parse_cursor(argv[2])
    if not cursor then return err("ERR invalid cursor") end
    local count, pattern, want_type = 10, nil, nil
    local i = 3
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
      elseif opt == "type" and more >= 1 then
        want_type = lower(argv[i + 1])
        i = i + 2
      else
        return util.SYNTAX
      end
    end
    local keys, next_pos = s.db:iterate(cursor == 0 and 1 or cursor, count)
    local out = {}
    for _, k in ipairs(keys) do
      local keep = not pattern or store.match(pattern, k)
      if keep and want_type then
        local obj = s.db:lookup(k)
        keep = obj ~= nil and obj.type == want_type
      end
      if keep then out[#out + 1] = k end
    end
    return { tostring(next_pos), out }
  end }

  local function rename(s, argv, nx)
    local db = s.db
    local src, dst = argv[2], argv[3]
    local obj = db:lookup(src)
    if not obj then return util.NO_SUCH_KEY end
    if src == dst then return nx and 0 or ok end
    local when = db.expires[src]
    if db:lookup(dst) then
      if nx then return 0 end
      db:remove(dst)
    end
    db:remove(src)
    db:put(dst, obj)
    if when then db:set_expire(dst, when) end
    return nx and 1 or ok
  end
  def{ "rename", 3, function(s, argv) return rename(s, argv, false) end }
  def{ "renamenx", 3, function(s, argv) return rename(s, argv, true) end }

end
