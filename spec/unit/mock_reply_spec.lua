-- redis.mock's reply values and their encoding: the bytes Redis 7.0 writes
-- for each RESP2 and RESP3 kind. Pure Lua, no sockets.
local mock = require("redis.mock")

local enc = mock.encode

describe("redis.mock reply encoding", function()
  it("encodes a Lua string as a bulk string, binary bytes included", function()
    assert.are.equal("$5\r\nhello\r\n", enc("hello"))
    assert.are.equal("$0\r\n\r\n", enc(""))
    assert.are.equal("$3\r\na\0b\r\n", enc("a\0b"))
    assert.are.equal("$4\r\n\r\n\r\n\r\n", enc("\r\n\r\n"))
  end)

  it("encodes Lua integers as RESP integers over the whole int64 range", function()
    assert.are.equal(":42\r\n", enc(42))
    assert.are.equal(":-1\r\n", enc(-1))
    assert.are.equal(":9223372036854775807\r\n", enc(math.maxinteger))
    assert.are.equal(":-9223372036854775808\r\n", enc(math.mininteger))
  end)

  it("encodes statuses and errors as lines, newlines turned into spaces", function()
    assert.are.equal("+OK\r\n", enc(mock.status("OK")))
    assert.are.equal("+OK\r\n", enc(mock.ok))
    assert.are.equal("-ERR boom\r\n", enc(mock.error("ERR boom")))
    assert.are.equal("-ERR a b\r\n", enc(mock.error("ERR a\nb")))
    assert.are.equal("+a  b\r\n", enc(mock.status("a\r\nb")))
  end)

  it("encodes nulls as $-1 and *-1 in RESP2 and as _ in RESP3", function()
    assert.are.equal("$-1\r\n", enc(mock.null))
    assert.are.equal("*-1\r\n", enc(mock.null_array))
    assert.are.equal("$-1\r\n", enc(mock.null, 2))
    assert.are.equal("_\r\n", enc(mock.null, 3))
    assert.are.equal("_\r\n", enc(mock.null_array, 3))
  end)

  it("encodes doubles with %.17g like Redis 7.0, as bulk strings in RESP2", function()
    assert.are.equal("$3\r\n3.5\r\n", enc(3.5))
    assert.are.equal(",3.5\r\n", enc(3.5, 3))
    assert.are.equal(",1.1000000000000001\r\n", enc(1.1, 3))
    assert.are.equal(",3\r\n", enc(mock.double(3), 3))
    assert.are.equal("$1\r\n3\r\n", enc(mock.double(3)))
    assert.are.equal(",1e+20\r\n", enc(1e20, 3))
    assert.are.equal(",inf\r\n", enc(math.huge, 3))
    assert.are.equal(",-inf\r\n", enc(-math.huge, 3))
    assert.are.equal("$3\r\ninf\r\n", enc(math.huge))
    assert.are.equal("$4\r\n-inf\r\n", enc(-math.huge))
    assert.are.equal(",nan\r\n", enc(0 / 0, 3))
  end)

  it("encodes booleans as RESP3 booleans and as 1 and 0 in RESP2", function()
    assert.are.equal("#t\r\n", enc(true, 3))
    assert.are.equal("#f\r\n", enc(false, 3))
    assert.are.equal(":1\r\n", enc(true))
    assert.are.equal(":0\r\n", enc(false))
  end)

  it("encodes nested arrays, with null elements, in both protocols", function()
    local v = { "a", 1, { "b", mock.null }, {} }
    local bytes = "*4\r\n$1\r\na\r\n:1\r\n*2\r\n$1\r\nb\r\n$-1\r\n*0\r\n"
    assert.are.equal(bytes, enc(v))
    assert.are.equal((bytes:gsub("%$%-1", "_")), enc(v, 3))
  end)

  it("honours an explicit n for arrays that end in holes", function()
    assert.are.equal("*2\r\n$1\r\na\r\n$1\r\nb\r\n", enc({ "a", "b", n = 2 }))
  end)

  it("encodes maps as %n in RESP3 and as flat arrays in RESP2", function()
    local m = mock.map{ "a", 1, "b", "x" }
    assert.are.equal("%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$1\r\nx\r\n", enc(m, 3))
    assert.are.equal("*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$1\r\nx\r\n", enc(m))
    assert.are.equal("%0\r\n", enc(mock.map{}, 3))
  end)

  it("accepts a table with string keys as a map with its keys sorted", function()
    assert.are.equal("%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n",
      enc(mock.map{ b = 2, a = 1 }, 3))
  end)

  it("encodes sets as ~n and pushes as >n in RESP3, both as arrays in RESP2", function()
    assert.are.equal("~2\r\n:1\r\n:2\r\n", enc(mock.set{ 1, 2 }, 3))
    assert.are.equal("*2\r\n:1\r\n:2\r\n", enc(mock.set{ 1, 2 }))
    assert.are.equal(">2\r\n$1\r\na\r\n:1\r\n", enc(mock.push{ "a", 1 }, 3))
    assert.are.equal("*2\r\n$1\r\na\r\n:1\r\n", enc(mock.push{ "a", 1 }))
  end)

  it("encodes verbatim strings with their format in RESP3 and as bulk in RESP2", function()
    assert.are.equal("=7\r\ntxt:abc\r\n", enc(mock.verbatim("abc"), 3))
    assert.are.equal("=7\r\nmkd:abc\r\n", enc(mock.verbatim("abc", "mkd"), 3))
    assert.are.equal("$3\r\nabc\r\n", enc(mock.verbatim("abc")))
  end)

  it("encodes big numbers as ( in RESP3 and as bulk strings in RESP2", function()
    assert.are.equal("(123456789012345678901234567890\r\n",
      enc(mock.bignum("123456789012345678901234567890"), 3))
    assert.are.equal("$3\r\n123\r\n", enc(mock.bignum("123")))
  end)

  it("writes raw bytes exactly as given, in any protocol", function()
    assert.are.equal("garbage\r\n", enc(mock.raw("garbage\r\n")))
    assert.are.equal("+x", enc(mock.raw("+x"), 3))
  end)

  it("writes several replies one after the other for mock.many", function()
    assert.are.equal("+A\r\n:1\r\n", enc(mock.many{ mock.status("A"), 1 }))
  end)

  it("writes nothing at all for mock.noreply", function()
    assert.are.equal("", enc(mock.noreply))
  end)

  it("tells the kind of any reply value", function()
    assert.are.equal("bulk", mock.kind("x"))
    assert.are.equal("integer", mock.kind(1))
    assert.are.equal("double", mock.kind(1.5))
    assert.are.equal("array", mock.kind({}))
    assert.are.equal("map", mock.kind(mock.map{}))
    assert.are.equal("null", mock.kind(mock.null))
    assert.are.equal("status", mock.kind(mock.ok))
  end)

  it("raises a clear error for values that are not replies", function()
    local ok, err = pcall(enc, function() end)
    assert.is_false(ok)
    assert.matches("^redis.mock: not a reply value: function", err)
    ok, err = pcall(enc, { "a", coroutine.create(print) })
    assert.is_false(ok)
    assert.matches("not a reply value: thread", err)
  end)
end)
