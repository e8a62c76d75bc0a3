-- The number rules and pattern matching that redis.mock shares with Redis:
-- strict integers (string2ll), floats (string2d), strtod ranges, the long
-- double arithmetic of INCRBYFLOAT and the glob matcher of KEYS, SCAN and
-- PSUBSCRIBE. Pure Lua, no sockets.
local util = require("redis.mock.util")
local ldouble = require("redis.mock.ldouble")
local store = require("redis.mock.store")

local function incrbyfloat(current, by)
  local a, b = ldouble.parse(current), ldouble.parse(by)
  if not a or not b then return "invalid" end
  local sum = ldouble.add(a, b)
  if ldouble.bad(sum) then return "nan or inf" end
  return ldouble.format(sum)
end

describe("redis.mock integer parsing", function()
  it("accepts canonical decimal integers across the int64 range", function()
    assert.are.equal(0, util.int("0"))
    assert.are.equal(-5, util.int("-5"))
    assert.are.equal(math.maxinteger, util.int("9223372036854775807"))
    assert.are.equal(math.mininteger, util.int("-9223372036854775808"))
  end)

  it("refuses what Redis's string2ll refuses", function()
    for _, s in ipairs({ "", "+1", "01", "-0", " 1", "1 ", "1.5", "1e3",
                         "0x10", "-", "9223372036854775808",
                         "-9223372036854775809", "1\0" }) do
      assert.is_nil(util.int(s), s)
    end
  end)
end)

describe("redis.mock float parsing", function()
  it("accepts strtod syntax: decimals, exponents, hex and infinities", function()
    assert.are.equal(1.5, util.double("1.5"))
    assert.are.equal(0.5, util.double(".5"))
    assert.are.equal(1.0, util.double("1."))
    assert.are.equal(100.0, util.double("1e2"))
    assert.are.equal(16.0, util.double("0x10"))
    assert.are.equal(math.huge, util.double("inf"))
    assert.are.equal(-math.huge, util.double("-Infinity"))
    assert.are.equal(5.0, util.double("+5"))
  end)

  it("keeps the sign of a negative zero", function()
    assert.are.equal(-math.huge, 1 / util.double("-0"))
    assert.are.equal(-math.huge, 1 / util.double("-0.0"))
  end)

  it("refuses spaces, NaN, trailing bytes and finite literals out of range", function()
    for _, s in ipairs({ "", " 1", "1 ", "nan", "1e", "x", "1e400", "1e-400",
                         ".", "1.2.3" }) do
      assert.is_nil(util.double(s), s)
    end
  end)

  it("reads score bounds like strtod, where an empty string is zero", function()
    assert.are.equal(0.0, util.strtod_full(""))
    assert.are.equal(2.0, util.strtod_full(" 2"))
    assert.are.equal(math.huge, util.strtod_full("1e400"))
    assert.is_nil(util.strtod_full("2 "))
    assert.is_nil(util.strtod_full("nan"))
  end)
end)

describe("redis.mock INCRBYFLOAT arithmetic", function()
  it("adds in x87 long double and prints %.17Lf without trailing zeros", function()
    assert.are.equal("10.6", incrbyfloat("10.5", "0.1"))
    assert.are.equal("5000.10000000000000009", incrbyfloat("5000", "0.1"))
    assert.are.equal("-0.1", incrbyfloat("-1", "0.9"))
    assert.are.equal("5200", incrbyfloat("5.0e3", "2.0e2"))
    assert.are.equal("123456789.12345678899873747",
      incrbyfloat("0", "123456789.123456789"))
    assert.are.equal("7.33333333333333333",
      incrbyfloat("7", "0.33333333333333333333333"))
  end)

  it("reads hexadecimal operands with the full 64-bit significand", function()
    assert.are.equal("94602828820523078747411733301589342552357601280",
      incrbyfloat("0", "0x1092233720368547758079223372036854775807"))
    assert.are.equal("3", incrbyfloat("0", "0x1.8p1"))
    assert.are.equal("-16", incrbyfloat("0", "-0x10"))
    assert.are.equal("invalid", incrbyfloat("0", "0x"))
    assert.are.equal("invalid", incrbyfloat("0", "0x1p-16446"))
  end)

  it("rounds a tie at the 17th decimal to even as glibc does", function()
    assert.are.equal("0.00000381469726562", incrbyfloat("0", "0.000003814697265625"))
  end)

  it("prints zero without a sign and large sums in full", function()
    assert.are.equal("0", incrbyfloat("1.5", "-1.5"))
    assert.are.equal("0", incrbyfloat("0", "-0"))
    assert.are.equal(401, #incrbyfloat("10.50", "1e400"))
    assert.matches("^10000000000000000000281880683947586514586453433629", incrbyfloat("10.50", "1e400"))
  end)

  it("refuses operands strtold overflows or underflows, and infinite sums", function()
    assert.are.equal("invalid", incrbyfloat("0", "1e5000"))
    assert.are.equal("invalid", incrbyfloat("0", "1e-5000"))
    assert.are.equal("invalid", incrbyfloat("0", " 1"))
    assert.are.equal("invalid", incrbyfloat("", "1"))
    assert.are.equal("nan or inf", incrbyfloat("0", "inf"))
    assert.are.equal("nan or inf", incrbyfloat("1e4932", "1e4932"))
  end)
end)

describe("redis.mock glob matching", function()
  local match = store.match

  it("matches *, ? and literal bytes", function()
    assert.is_true(match("*", "anything"))
    assert.is_true(match("h?llo", "hello"))
    assert.is_false(match("h?llo", "hllo"))
    assert.is_true(match("h*llo", "heeeello"))
    assert.is_true(match("*o", "foo"))
    assert.is_false(match("f*x", "foo"))
  end)

  it("matches classes, negated classes, ranges and reversed ranges", function()
    assert.is_true(match("h[ae]llo", "hallo"))
    assert.is_false(match("h[ae]llo", "hillo"))
    assert.is_true(match("h[^e]llo", "hallo"))
    assert.is_false(match("h[^e]llo", "hello"))
    assert.is_true(match("h[a-b]llo", "hbllo"))
    assert.is_true(match("f[o-a]o", "foo"))
  end)

  it("treats a backslash as an escape inside and outside classes", function()
    assert.is_true(match("a\\*b", "a*b"))
    assert.is_false(match("a\\*b", "axb"))
    assert.is_true(match("[\\]]", "]"))
  end)

  it("handles an unterminated class the way Redis does", function()
    assert.is_false(match("[", "f"))
    assert.is_true(match("f[o", "fo"))
  end)

  it("matches case-insensitively on request", function()
    assert.is_true(match("HeLLo", "hello", true))
    assert.is_true(match("[A-C]x", "bx", true))
  end)
end)
