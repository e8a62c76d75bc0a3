-- redis.mock.util: Redis's number parsing rules and shared error replies.
--
-- Redis accepts numbers by its own strict rules (no '+', no leading zeros,
-- no spaces for integers; strtod syntax minus spaces for floats); Lua's
-- tonumber is more lenient, so each rule is checked here explicitly.
local reply = require("redis.mock.reply")

local M = {}

local err = reply.error
M.WRONGTYPE = err("WRONGTYPE Operation against a key holding the wrong kind of value")
M.NOT_INTEGER = err("ERR value is not an integer or out of range")
M.NOT_FLOAT = err("ERR value is not a valid float")
M.SYNTAX = err("ERR syntax error")
M.OVERFLOW = err("ERR increment or decrement would overflow")
M.NO_SUCH_KEY = err("ERR no such key")

function M.arity_error(fullname)
  return err("ERR wrong number of arguments for '" .. fullname .. "' command")
end

-- Redis's string2ll: "0", or an optional '-' then a non-zero digit, at
-- most 20 bytes, within int64. Returns the integer or nil.
-- Lua's tonumber reads an integer in more spellings (spaces around it,
-- leading zeros, hex, '+'); the bytes checked around it leave Redis's:
-- the first digit 1-9 after an optional '-' rules out spaces, zeros, '+'
-- and "0x", a digit at the end rules out trailing spaces, and tonumber
-- gives an integer only within int64 and without '.' or an exponent.
local tonumber, math_type, byte = tonumber, math.type, string.byte
function M.int(s)
  local n = tonumber(s)
  if math_type(n) ~= "integer" then return nil end
  if s == "0" then return 0 end
  local b = byte(s, 1)
  if b == 45 then b = byte(s, 2) end
  if not b or b < 49 or b > 57 then return nil end
  b = byte(s, -1)
  if b < 48 or b > 57 then return nil end
  return n
end

local SPACE = { [9] = true, [10] = true, [11] = true, [12] = true,
                [13] = true, [32] = true }
M.SPACE = SPACE

-- The longest prefix of s that C's strtod reads, as (value, end index) with
-- end = 0 when nothing could be read. Only the syntax is checked here;
-- Lua's tonumber (which calls strtod for decimals) gives the value.
local function strtod_prefix(s, i)
  local j = i
  local sign = s:match("^[+-]", j)
  if sign then j = j + 1 end
  local low = s:sub(j, j + 7):lower()
  if low == "infinity" then
    return (sign == "-" and -math.huge or math.huge), j + 7
  end
  if low:sub(1, 3) == "inf" then
    return (sign == "-" and -math.huge or math.huge), j + 2
  end
  if low:sub(1, 3) == "nan" then
    local k = j + 2
    local paren = s:match("^%([%w_]*%)", k + 1)
    if paren then k = k + #paren end
    return 0 / 0, k
  end
  local hex = s:match("^0[xX]", j)
  if hex then
    local body = s:match("^[%x]*%.?[%x]*", j + 2)
    if body:find("%x") then
      local k = j + 1 + #body
      local e = s:match("^[pP][+-]?%d+", k + 1)
      if e then k = k + #e end
      local text = s:sub(j, k)
      if not text:find("[pP]") then text = text .. "p0" end
      local v = tonumber(text)
      if sign == "-" then v = -v end
      return v, k
    end
    -- "0x" alone: strtod reads the "0".
    return (sign == "-" and -0.0 or 0.0), j
  end
  local mant = s:match("^%d*%.?%d*", j)
  if not mant:find("%d") then return nil, 0 end
  local k = j + #mant - 1
  local e = s:match("^[eE][+-]?%d+", k + 1)
  if e then k = k + #e end
  local text = s:sub(i, k)
  local v = tonumber(text)
  -- An integer-looking literal still reads as a double ("-0" is -0.0).
  if math.type(v) == "integer" then v = tonumber(text .. "e0") end
  return v, k
end

-- Redis's string2d (ZADD scores, INCRBYFLOAT-like arguments): the whole
-- string must be a strtod number, no leading space, not NaN, and not a
-- finite literal that overflows or underflows to zero.
function M.double(s)
  -- Plain short integers ("0", "-15") are the usual scores.
  if s == "0" or (#s < 16 and s:find("^%-?[1-9]%d*$")) then
    return tonumber(s) + 0.0
  end
  if #s == 0 or SPACE[s:byte(1)] then return nil end
  local v, k = strtod_prefix(s, 1)
  if v == nil or k ~= #s or v ~= v then return nil end
  local body = s:lower():gsub("^[+-]", "")
  local literal_inf = body == "inf" or body == "infinity"
  if (v == math.huge or v == -math.huge) and not literal_inf then
    return nil
  end
  if v == 0 and s:find("[1-9]") and not s:find("^[+-]?0[xX]") then
    -- ERANGE towards zero: the digits said something else.
    local mant = s:match("^[+-]?(%d*%.?%d*)")
    if mant:find("[1-9]") then return nil end
  end
  return v
end

-- Plain strtod with "nothing may follow" (zslParseRange): leading spaces
-- allowed, the empty string reads as 0, NaN refused.
function M.strtod_full(s)
  if #s == 0 then return 0.0 end
  local i = 1
  while SPACE[s:byte(i)] do i = i + 1 end
  local v, k = strtod_prefix(s, i)
  if v == nil then return nil end
  if k ~= #s or v ~= v then return nil end
  return v
end

-- Lower-case ASCII, as strcasecmp compares.
function M.lower(s)
  if not s:find("%u") then return s end
  return (s:gsub("%u", string.lower))
end

-- HDEL, SREM, ZREM: removes argv[3..] from obj with del(obj, member), then
-- drops the key when is_empty(obj) or marks it written when anything went.
-- Returns how many members were removed.
function M.remove_members(s, argv, obj, del, is_empty)
  local n = 0
  for i = 3, #argv do
    if del(obj, argv[i]) then n = n + 1 end
  end
  if is_empty(obj) then
    s.db:remove(argv[2])
  elseif n > 0 then
    s.db:touch(argv[2])
  end
  return n
end

-- A wall clock in unix milliseconds with sub-second precision, built on
-- a monotonic clock (mono() -> seconds, lev.now) and one reading of the
-- real time. Lua only has whole seconds (os.time), so the real time comes
-- from `date +%s%N` once per process, bracketed by two monotonic readings;
-- where that fails, os.time() steps correct the estimate as they are seen
-- (a step is the exact start of a second).
-- HRANDFIELD/ZRANDMEMBER's count rule: count < 0 picks -count times with
-- repeats; count >= #list gives the whole list; else count distinct ones.
function M.random_pick(list, count)
  local picked, n = {}, #list
  if count < 0 then
    for i = 1, -count do picked[i] = list[math.random(n)] end
  elseif count >= n then
    for i, v in ipairs(list) do picked[i] = v end
  else
    local copy = {}
    for i, v in ipairs(list) do copy[i] = v end
    for i = 1, count do
      local j = math.random(i, n)
      copy[i], copy[j] = copy[j], copy[i]
      picked[i] = copy[i]
    end
  end
  return picked
end

local calibrated = setmetatable({}, { __mode = "k" })   -- mono -> { wall, mono }
function M.wall_clock(mono)
  -- With lev's own wall clock, the time is read as Redis reads it, with
  -- no calibration (a `date` run under load was a few ms off).
  local ok, lev = pcall(require, "lev")
  if ok and type(lev) == "table" and lev.time and mono == lev.now then
    local time = lev.time
    return function() return time() * 1000 end
  end
  local cal = calibrated[mono]
  if not cal then
    local t0 = mono()
    local p = io.popen and io.popen("date +%s%N 2>/dev/null")
    local text = p and p:read("l")
    if p then p:close() end
    local t1 = mono()
    local ns = text and text:match("^%d+$") and tonumber(text)
    if ns and ns > 1e18 then
      cal = { ns / 1e6, (t0 + t1) / 2 }
    else
      cal = { os.time() * 1000 + 500, mono() }
    end
    calibrated[mono] = cal
  end
  -- This clock's own base, which os.time() steps may correct.
  local wall_base, mono_base = cal[1], cal[2]
  local last_sec = os.time()
  return function()
    local est = wall_base + (mono() - mono_base) * 1000
    local sec = os.time()
    if sec ~= last_sec then
      -- The true time is within [sec, sec + 1) seconds.
      last_sec = sec
      if est < sec * 1000 then
        wall_base, est = wall_base + (sec * 1000 - est), sec * 1000
      elseif est >= (sec + 1) * 1000 then
        wall_base, est = wall_base - (est - (sec + 1) * 1000 + 1), (sec + 1) * 1000 - 1
      end
    end
    return est
  end
end

return M
