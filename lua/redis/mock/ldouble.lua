-- redis.mock.ldouble: the x87 80-bit long double arithmetic behind Redis's
-- INCRBYFLOAT, emulated exactly.
--
-- Redis parses both operands with strtold, adds them in long double and
-- prints the sum with "%.17Lf" minus trailing zeros. A Lua double gives
-- other digits (10.5 + 0.1 is "10.6" in Redis, 5000 + 0.1 is
-- "5000.10000000000000009"), so the mock does the same arithmetic: values
-- are sign * m * 2^e with a 64-bit significand m, every step correctly
-- rounded to nearest-even, on small arbitrary-precision naturals.
local M = {}

local BITS = 24
local BASE = 1 << BITS
local MASK = BASE - 1

-- Naturals: little-endian arrays of 24-bit limbs, no trailing zero limbs.
local function norm(a)
  local n = #a
  while n > 0 and a[n] == 0 do a[n] = nil; n = n - 1 end
  return a
end

local function from_int(v)
  local a = {}
  while v > 0 do a[#a + 1] = v & MASK; v = v >> BITS end
  return a
end

local function mul_small(a, k)
  local r, carry = {}, 0
  for i = 1, #a do
    local x = a[i] * k + carry
    r[i] = x & MASK
    carry = x >> BITS
  end
  while carry > 0 do r[#r + 1] = carry & MASK; carry = carry >> BITS end
  return r
end

local function add_small(a, k)
  local r, carry = {}, k
  for i = 1, #a do
    local x = a[i] + carry
    r[i] = x & MASK
    carry = x >> BITS
  end
  while carry > 0 do r[#r + 1] = carry & MASK; carry = carry >> BITS end
  return r
end

local function add(a, b)
  local r, carry = {}, 0
  for i = 1, math.max(#a, #b) do
    local x = (a[i] or 0) + (b[i] or 0) + carry
    r[i] = x & MASK
    carry = x >> BITS
  end
  if carry > 0 then r[#r + 1] = carry end
  return r
end

-- a - b, a >= b.
local function sub(a, b)
  local r, borrow = {}, 0
  for i = 1, #a do
    local x = a[i] - (b[i] or 0) - borrow
    if x < 0 then x = x + BASE; borrow = 1 else borrow = 0 end
    r[i] = x
  end
  return norm(r)
end

local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  for i = #a, 1, -1 do
    if a[i] ~= b[i] then return a[i] < b[i] and -1 or 1 end
  end
  return 0
end

local function bitlen(a)
  local n = #a
  if n == 0 then return 0 end
  local top, b = a[n], 0
  while top > 0 do b = b + 1; top = top >> 1 end
  return (n - 1) * BITS + b
end

local function shl(a, k)
  if #a == 0 then return {} end
  local limbs, bits = k // BITS, k % BITS
  local r = {}
  for i = 1, limbs do r[i] = 0 end
  local carry = 0
  for i = 1, #a do
    local x = (a[i] << bits) | carry
    r[limbs + i] = x & MASK
    carry = x >> BITS
  end
  if carry > 0 then r[#r + 1] = carry end
  return r
end

-- a >> k, and whether any of the dropped bits was set.
local function shr(a, k)
  local limbs, bits = k // BITS, k % BITS
  local sticky = false
  for i = 1, math.min(limbs, #a) do
    if a[i] ~= 0 then sticky = true end
  end
  local r = {}
  for i = limbs + 1, #a do
    local x = a[i] >> bits
    local hi = a[i + 1]
    if hi then x = x | ((hi << (BITS - bits)) & MASK) end
    r[#r + 1] = x
  end
  if bits > 0 and a[limbs + 1] and a[limbs + 1] & ((1 << bits) - 1) ~= 0 then
    sticky = true
  end
  return norm(r), sticky
end

local function bit(a, k)
  local limb = a[k // BITS + 1]
  return limb ~= nil and (limb >> (k % BITS)) & 1 == 1
end

-- Quotient and remainder of a / b (b > 0) by shift and subtract: the
-- quotients needed here have a few dozen bits, so this is quick.
local function divmod(a, b)
  local q, r = {}, a
  local k = bitlen(a) - bitlen(b)
  while k >= 0 do
    local bs = shl(b, k)
    if cmp(r, bs) >= 0 then
      r = sub(r, bs)
      local limb = k // BITS + 1
      for i = #q + 1, limb do q[i] = 0 end
      q[limb] = q[limb] | (1 << (k % BITS))
    end
    k = k - 1
  end
  return norm(q), r
end

local function mul(a, b)
  local r = {}
  for i = 1, #a + #b do r[i] = 0 end
  for i = 1, #a do
    local carry, ai = 0, a[i]
    for j = 1, #b do
      local x = r[i + j - 1] + ai * b[j] + carry
      r[i + j - 1] = x & MASK
      carry = x >> BITS
    end
    local k = i + #b
    while carry > 0 do
      local x = r[k] + carry
      r[k] = x & MASK
      carry = x >> BITS
      k = k + 1
    end
  end
  return norm(r)
end

local function divmod_small(a, k)
  local q, rem = {}, 0
  for i = #a, 1, -1 do
    local x = (rem << BITS) | a[i]
    q[i] = x // k
    rem = x % k
  end
  return norm(q), rem
end

local function to_decimal(a)
  if #a == 0 then return "0" end
  local parts = {}
  while #a > 0 do
    local rem
    a, rem = divmod_small(a, 10000000)
    parts[#parts + 1] = rem
  end
  local out = { tostring(parts[#parts]) }
  for i = #parts - 1, 1, -1 do out[#out + 1] = string.format("%07d", parts[i]) end
  return table.concat(out)
end

local pow10_cache = { [0] = { 1 } }
local function pow10(k)
  local p = pow10_cache[k]
  if p then return p end
  local base = k
  while not pow10_cache[base] do base = base - 1 end
  p = pow10_cache[base]
  while base < k do
    local step = math.min(7, k - base)
    p = mul_small(p, math.tointeger(10 ^ step))
    base = base + step
  end
  if k <= 5000 then pow10_cache[k] = p end
  return p
end

-- Long double layout: 64-bit significand, exponents as for x87.
local MANT = 64
local EMIN = -16445          -- exponent of the smallest denormal's unit
local EMAX = 16384           -- values >= 2^EMAX overflow

-- A value: { neg = bool, m = natural, e = int } meaning (-1)^neg * m * 2^e,
-- or { neg = bool, inf = true }.

-- Rounds (q + sticky) * 2^e to the long double grid, to nearest even.
local function round(neg, q, sticky, e)
  local len = bitlen(q)
  if len == 0 then return { neg = neg, m = {}, e = 0 } end
  local target = e + len - MANT
  if target < EMIN then target = EMIN end
  local shift = target - e
  local m
  if shift <= 0 then
    m = shl(q, -shift)
  else
    m = shr(q, shift)
    local half = bit(q, shift - 1)
    local below
    if shift >= 2 then
      local _, s2 = shr(q, shift - 1)
      below = s2 or sticky
    else
      below = sticky
    end
    if half and (below or bit(m, 0)) then
      m = add_small(m, 1)
      if bitlen(m) > MANT then
        m = shr(m, 1)
        target = target + 1
      end
    end
  end
  if #m == 0 then return { neg = neg, m = {}, e = 0 } end
  if target + bitlen(m) > EMAX then return { neg = neg, inf = true } end
  return { neg = neg, m = m, e = target }
end

local function is_zero(v)
  return not v.inf and #v.m == 0
end

local SPACE = { [9] = true, [10] = true, [11] = true, [12] = true,
                [13] = true, [32] = true }

-- strtold + Redis's string2ld checks: nil when Redis would answer
-- "value is not a valid float".
function M.parse(s)
  if #s == 0 or #s >= 5 * 1024 then return nil end
  if SPACE[s:byte(1)] then return nil end
  local sign, rest = s:match("^([+-]?)(.*)$")
  local neg = sign == "-"
  local low = rest:lower()
  if low == "inf" or low == "infinity" then return { neg = neg, inf = true } end
  if low:sub(1, 2) == "0x" then
    -- Hexadecimal floats are binary already: digits * 2^(p - 4 * fraction
    -- digits), rounded once.
    local hint, hfrac, pexp = rest:match("^0[xX](%x*)%.?(%x*)[pP]([+-]?%d+)$")
    if not hint then
      hint, hfrac = rest:match("^0[xX](%x*)%.?(%x*)$")
      pexp = "0"
    end
    if not hint or (#hint == 0 and #hfrac == 0) then return nil end
    if #hfrac > 0 and not rest:find("%.") then return nil end
    local hdigits = (hint .. hfrac):gsub("^0+", "")
    if #hdigits == 0 then return { neg = neg, m = {}, e = 0 } end
    local e2 = (tonumber(pexp) or 0) - 4 * #hfrac
    -- Far outside the range: decide before building huge naturals.
    local mag = 4 * #hdigits + e2
    if mag > EMAX + 8 then return nil end
    if mag < EMIN - 8 then return nil end
    local h = {}
    for i = 1, #hdigits, 5 do
      local chunk = hdigits:sub(i, i + 4)
      h = add_small(mul_small(h, 1 << (4 * #chunk)), tonumber(chunk, 16))
    end
    local v = round(neg, h, false, e2)
    if v.inf or is_zero(v) then return nil end
    return v
  end
  local int, frac, exp = rest:match("^(%d*)%.?(%d*)[eE]([+-]?%d+)$")
  if not int then
    int, frac = rest:match("^(%d*)%.?(%d*)$")
    exp = "0"
  end
  if not int or (#int == 0 and #frac == 0) then return nil end
  if rest:find("%.") == nil and #frac > 0 then return nil end
  local digits = (int .. frac):gsub("^0+", "")
  local e10 = (tonumber(exp) or 0) - #frac
  if #digits == 0 then return { neg = neg, m = {}, e = 0 } end
  -- Magnitudes far outside the long double range: decide without bignums.
  local mag = #digits + e10
  if mag > 4934 then return nil end               -- overflow (ERANGE)
  if mag < -4952 then return nil end              -- underflow to zero
  local d = {}
  for i = 1, #digits, 7 do
    local chunk = digits:sub(i, i + 6)
    d = add_small(mul_small(d, math.tointeger(10 ^ #chunk)), tonumber(chunk))
  end
  local v
  if e10 >= 0 then
    v = round(neg, mul(d, pow10(e10)), false, 0)
  else
    local b = pow10(-e10)
    -- Scale so the quotient has MANT + 3 bits: enough for the rounding bit
    -- and a guard; the remainder supplies the sticky bit.
    local s = MANT + 3 + bitlen(b) - bitlen(d)
    local num, den = d, b
    if s >= 0 then num = shl(d, s) else den = shl(b, -s) end
    local q, r = divmod(num, den)
    v = round(neg, q, #r > 0, -s)
  end
  if v.inf then return nil end                    -- overflow (ERANGE)
  if is_zero(v) then return nil end               -- underflow to zero
  return v
end

-- a + b, correctly rounded.
function M.add(a, b)
  if a.inf or b.inf then
    if a.inf and b.inf and a.neg ~= b.neg then return { nan = true } end
    return a.inf and a or b
  end
  if is_zero(a) then return is_zero(b) and { neg = a.neg and b.neg, m = {}, e = 0 } or b end
  if is_zero(b) then return a end
  local e = math.min(a.e, b.e)
  local x, y = shl(a.m, a.e - e), shl(b.m, b.e - e)
  if a.neg == b.neg then return round(a.neg, add(x, y), false, e) end
  local c = cmp(x, y)
  if c == 0 then return { neg = false, m = {}, e = 0 } end
  if c > 0 then return round(a.neg, sub(x, y), false, e) end
  return round(b.neg, sub(y, x), false, e)
end

function M.bad(v)
  return v.nan or v.inf
end

-- "%.17Lf" with trailing zeros (and a bare '.') removed, "-0" as "0":
-- Redis's ld2string in LD_STR_HUMAN mode.
function M.format(v)
  local n
  if #v.m == 0 then
    n = {}
  else
    local x = mul(v.m, pow10(17))
    if v.e >= 0 then
      n = shl(x, v.e)
    else
      local k = -v.e
      local q = shr(x, k)
      local half = bit(x, k - 1)
      local below = false
      if k >= 2 then
        local _, s2 = shr(x, k - 1)
        below = s2
      end
      if half and (below or bit(q, 0)) then q = add_small(q, 1) end
      n = q
    end
  end
  local digits = to_decimal(n)
  if #digits < 18 then digits = string.rep("0", 18 - #digits) .. digits end
  local text = digits:sub(1, -18) .. "." .. digits:sub(-17)
  text = text:gsub("0+$", ""):gsub("%.$", "")
  if v.neg then text = "-" .. text end
  if text == "-0" then text = "0" end
  return text
end

return M
