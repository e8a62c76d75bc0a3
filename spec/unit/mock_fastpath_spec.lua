-- The short ways the mock takes for speed (issue 18, pipelined
-- throughput) answer exactly as the general ones: the quick request
-- reader, the reply buffer, SET/ZADD without options, single LPOP/RPOP,
-- LPUSH moving items up, handlers added behind the API's back, and
-- util.int's integer spelling.
local mock = require("redis.mock")
local core = require("redis.core")
local util = require("redis.mock.util")
local rc = require("resp_client")
local helper = require("lev_helper")

local with_mock = require("mock_helper").with_mock

local function setup()
  local e = mock.engine({ clock = function() return 1700000000000 end })
  return e, e:session{}
end

local function run(e, s, ...)
  return mock.encode(e:dispatch(s, { ... }), s.proto)
end

describe("redis.mock quick paths", function()
  after_each(helper.assert_clean)

  it("reads pipelined requests of every shape the same as one by one", function()
    -- Binary arguments with CRLF inside, an empty one, more arguments
    -- than the quick reader takes (16), an inline request and a *0 in
    -- between: the log holds exactly what was sent.
    local many = { "RPUSH", "l" }
    for i = 1, 20 do many[#many + 1] = "v" .. i end
    local requests = {
      { "SET", "k\r\n1", "a\r\nb\0c" },
      { "ECHO", "" },
      many,
      { "GET", "k\r\n1" },
    }
    local bytes = rc.encode(table.unpack(requests[1])) .. rc.encode(table.unpack(requests[2]))
      .. "*0\r\nPING\r\n" .. rc.encode(table.unpack(requests[3]))
      .. rc.encode(table.unpack(requests[4]))
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:raw(bytes)
      assert.are.equal("+OK\r\n", c:reply())
      assert.are.equal("$0\r\n\r\n", c:reply())
      assert.are.equal("+PONG\r\n", c:reply())
      assert.are.equal(":20\r\n", c:reply())
      assert.are.equal("$6\r\na\r\nb\0c\r\n", c:reply())
      local log = srv:log()
      assert.are.same(requests[1], log[1])
      assert.are.same(requests[2], log[2])
      assert.are.same({ "PING" }, log[3])
      assert.are.same(requests[3], log[4])
      assert.are.same(requests[4], log[5])
      c:close()
    end)
  end)

  it("buffers replies as the encoder writes them", function()
    local b = core.outbuf()
    assert.is_nil(b:take())
    b:bulk("")
    b:bulk("x\r\ny")
    b:int(0)
    b:int(-42)
    b:int(math.mininteger)
    b:add("+OK\r\n")
    assert.are.equal(mock.encode("") .. mock.encode("x\r\ny") .. mock.encode(0)
      .. mock.encode(-42) .. mock.encode(math.mininteger) .. "+OK\r\n", b:take())
    assert.is_nil(b:take())
    local big = ("z"):rep(200000)
    b:bulk(big)
    assert.are.equal(mock.encode(big), b:take())
    -- The methods check what they are called on.
    local reader = core.reader({ request = true })
    assert.has_error(function() b.add(reader, "x") end)
    assert.has_error(function() b.int({}, 1) end)
    assert.has_error(function() reader.next(b) end)
    assert.has_error(function() b:int(1.5) end)
  end)

  it("answers bulk, integer and other replies of a batch in order", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:raw(rc.encode("SET", "n", "5") .. rc.encode("INCR", "n") .. rc.encode("GET", "n")
        .. rc.encode("INCR", "nope", "x") .. rc.encode("HSET", "h", "f", "1")
        .. rc.encode("HGETALL", "h") .. rc.encode("GET", "missing"))
      assert.are.equal("+OK\r\n", c:reply())
      assert.are.equal(":6\r\n", c:reply())
      assert.are.equal("$1\r\n6\r\n", c:reply())
      assert.are.equal("-ERR wrong number of arguments for 'incr' command\r\n", c:reply())
      assert.are.equal(":1\r\n", c:reply())
      assert.are.equal("*2\r\n$1\r\nf\r\n$1\r\n1\r\n", c:reply())
      assert.are.equal("$-1\r\n", c:reply())
      c:close()
    end)
  end)

  it("SET key value clears a deadline and replaces any type", function()
    local e, s = setup()
    run(e, s, "SET", "k", "v", "EX", "100")
    assert.are.equal(":100\r\n", run(e, s, "TTL", "k"))
    assert.are.equal("+OK\r\n", run(e, s, "SET", "k", "w"))
    assert.are.equal(":-1\r\n", run(e, s, "TTL", "k"))
    run(e, s, "RPUSH", "l", "x")
    assert.are.equal("+OK\r\n", run(e, s, "SET", "l", "y"))
    assert.are.equal("$1\r\ny\r\n", run(e, s, "GET", "l"))
  end)

  it("ZADD key score member counts additions only and keeps the order", function()
    local e, s = setup()
    assert.are.equal(":1\r\n", run(e, s, "ZADD", "z", "2", "b"))
    assert.are.equal(":1\r\n", run(e, s, "ZADD", "z", "1", "a"))
    assert.are.equal(":0\r\n", run(e, s, "ZADD", "z", "1", "a"))
    assert.are.equal(":0\r\n", run(e, s, "ZADD", "z", "3", "a"))
    assert.are.equal("*2\r\n$1\r\nb\r\n$1\r\na\r\n", run(e, s, "ZRANGE", "z", "0", "-1"))
    assert.are.equal("-ERR value is not a valid float\r\n", run(e, s, "ZADD", "z", "x", "a"))
    assert.are.equal("-ERR syntax error\r\n", run(e, s, "ZADD", "z", "NX", "a"))
    run(e, s, "SET", "str", "v")
    assert.are.equal("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
      run(e, s, "ZADD", "str", "1", "a"))
  end)

  it("LPUSH keeps the order across the moves that keep items in the array part", function()
    local e, s = setup()
    local model = {}
    for i = 1, 500 do
      run(e, s, "LPUSH", "l", "a" .. i)
      table.insert(model, 1, "a" .. i)
      if i % 7 == 0 then
        run(e, s, "RPUSH", "l", "b" .. i)
        model[#model + 1] = "b" .. i
      end
      if i % 5 == 0 then
        assert.are.equal(mock.encode(model[1]), run(e, s, "LPOP", "l"))
        table.remove(model, 1)
      end
      if i % 11 == 0 then
        assert.are.equal(mock.encode(model[#model]), run(e, s, "RPOP", "l"))
        table.remove(model)
      end
    end
    assert.are.same(model, e:dispatch(s, { "LRANGE", "l", "0", "-1" }))
    assert.are.equal(":" .. #model .. "\r\n", run(e, s, "LLEN", "l"))
  end)

  it("LPOP and RPOP of the last item remove the key", function()
    local e, s = setup()
    run(e, s, "RPUSH", "l", "a", "b")
    assert.are.equal("$1\r\na\r\n", run(e, s, "LPOP", "l"))
    assert.are.equal("$1\r\nb\r\n", run(e, s, "RPOP", "l"))
    assert.are.equal(":0\r\n", run(e, s, "EXISTS", "l"))
    assert.are.equal("$-1\r\n", run(e, s, "LPOP", "l"))
  end)

  it("runs a handler set straight into the handlers tables", function()
    local e, s = setup()
    assert.are.equal("$-1\r\n", run(e, s, "GET", "k"))
    e.handlers.GET = function() return "engine" end
    assert.are.equal("$6\r\nengine\r\n", run(e, s, "GET", "k"))
    s.handlers.GET = function() return "session" end
    assert.are.equal("$7\r\nsession\r\n", run(e, s, "GET", "k"))
    s.handlers.GET, e.handlers.GET = nil, nil
    assert.are.equal("$-1\r\n", run(e, s, "GET", "k"))
  end)

  it("reads integers by Redis's rules", function()
    local cases = {
      ["0"] = 0, ["1"] = 1, ["-1"] = -1, ["10"] = 10,
      ["9223372036854775807"] = math.maxinteger,
      ["-9223372036854775808"] = math.mininteger,
    }
    for text, want in pairs(cases) do
      assert.are.equal(want, util.int(text), text)
      assert.are.equal("integer", math.type(util.int(text)), text)
    end
    for _, text in ipairs({ "", "-", "-0", "00", "01", "+1", " 1", "1 ", "1\0", "0x10",
                            "1e3", "1.0", "9223372036854775808",
                            "-9223372036854775809", "1a", "inf" }) do
      assert.is_nil(util.int(text), text)
    end
  end)
end)
