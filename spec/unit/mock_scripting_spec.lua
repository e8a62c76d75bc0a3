-- Scripting redis.mock from a spec: command overrides, and rules that
-- bend replies (delay, split, close_after, silent, garbage, close, reply)
-- or connections (refuse, hangup), per server or per connection, plus
-- out-of-band pushes and the on_connect hook.
local lev = require("lev")
local mock = require("redis.mock")
local rc = require("resp_client")
local helper = require("lev_helper")

local assert_clean = helper.assert_clean

local with_mock = require("mock_helper").with_mock

-- The chunks a raw stream receives until EOF or `wait` seconds of quiet.
local function chunks(stream, wait)
  local out = {}
  while true do
    local data = lev.timeout(wait or 0.3, function() return stream:read() end)
    if not data then return out end
    out[#out + 1] = data
  end
end

describe("redis.mock command overrides", function()
  after_each(assert_clean)

  it("answers with the handler given to start", function()
    with_mock({ handlers = { GET = function(argv) return "stub:" .. argv[2] end } },
      function(srv)
        local c = assert(rc.connect(srv:port()))
        assert.are.equal("$6\r\nstub:k\r\n", c:call("GET", "k"))
        c:close()
      end)
  end)

  it("accepts every kind of reply value from a handler", function()
    local replies = {
      A = 7, B = 2.5, C = mock.status("FINE"), D = mock.error("ERR nope"),
      E = mock.null, F = { "x", 1, mock.null }, G = mock.raw("+RAW\r\n"),
      H = mock.map{ "k", "v" }, I = true,
    }
    local handlers = {}
    for name, r in pairs(replies) do handlers[name] = function() return r end end
    with_mock({ handlers = handlers }, function(srv)
      local c = assert(rc.connect(srv:port()))
      assert.are.equal(":7\r\n", c:call("A"))
      assert.are.equal("$3\r\n2.5\r\n", c:call("B"))
      assert.are.equal("+FINE\r\n", c:call("C"))
      assert.are.equal("-ERR nope\r\n", c:call("D"))
      assert.are.equal("$-1\r\n", c:call("E"))
      assert.are.equal("*3\r\n$1\r\nx\r\n:1\r\n$-1\r\n", c:call("F"))
      assert.are.equal("+RAW\r\n", c:call("G"))
      assert.are.equal("*2\r\n$1\r\nk\r\n$1\r\nv\r\n", c:call("H"))
      assert.are.equal(":1\r\n", c:call("I"))
      c:call("HELLO", "3")
      assert.are.equal(",2.5\r\n", c:call("B"))
      assert.are.equal("%1\r\n$1\r\nk\r\n$1\r\nv\r\n", c:call("H"))
      assert.are.equal("#t\r\n", c:call("I"))
      c:close()
    end)
  end)

  it("installs and removes handlers at run time", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      srv:handle("ping", function() return mock.status("PANG") end)
      assert.are.equal("+PANG\r\n", c:call("PING"))
      srv:handle("PING", nil)
      assert.are.equal("+PONG\r\n", c:call("PING"))
      c:close()
    end)
  end)

  it("falls back to the built-in command when the handler returns nil", function()
    local seen = {}
    with_mock({ handlers = { SET = function(argv) seen[#seen + 1] = argv[2] end } },
      function(srv)
        local c = assert(rc.connect(srv:port()))
        assert.are.equal("+OK\r\n", c:call("SET", "k", "v"))
        assert.are.equal("$1\r\nv\r\n", c:call("GET", "k"))
        assert.are.same({ "k" }, seen)
        c:close()
      end)
  end)

  it("overrides a command for one connection only", function()
    with_mock({ on_connect = function(conn)
      if conn.id == 1 then
        conn:handle("GET", function() return "first connection" end)
      end
    end }, function(srv)
      local a = assert(rc.connect(srv:port()))
      assert.are.equal("$16\r\nfirst connection\r\n", a:call("GET", "k"))
      local b = assert(rc.connect(srv:port()))
      assert.are.equal("$-1\r\n", b:call("GET", "k"))
      a:close(); b:close()
    end)
  end)

  it("gives handlers the connection, with its database and name", function()
    with_mock({ handlers = { WHOAMI = function(_, conn)
      return { conn.id, conn.dbi, conn.name or mock.null }
    end } }, function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("SELECT", "4")
      c:call("CLIENT", "SETNAME", "tester")
      assert.are.equal("*3\r\n:1\r\n:4\r\n$6\r\ntester\r\n", c:call("WHOAMI"))
      c:close()
    end)
  end)

  it("answers a failing handler with an error and records the failure", function()
    with_mock({ handlers = { GET = function() error("oops in handler") end } },
      function(srv)
        local c = assert(rc.connect(srv:port()))
        assert.matches("^%-ERR mock handler failed: .*oops in handler", c:call("GET", "k"))
        assert.are.equal("+PONG\r\n", c:call("PING"))
        assert.are.equal(1, #srv:errors())
        c:close()
      end)
  end)

  it("queues overridden commands inside MULTI like built-in ones", function()
    with_mock({ handlers = { GET = function() return "stub" end } }, function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("MULTI")
      assert.are.equal("+QUEUED\r\n", c:call("GET", "k"))
      assert.are.equal("*1\r\n$4\r\nstub\r\n", c:call("EXEC"))
      c:close()
    end)
  end)
end)

describe("redis.mock reply rules", function()
  after_each(assert_clean)

  it("delays replies by the given seconds, keeping their order", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      srv:script{ command = "GET", delay = 0.2, times = 1 }
      local t0 = lev.now()
      c:raw(rc.encode("GET", "k") .. rc.encode("PING"))
      assert.are.equal("$-1\r\n", c:reply())
      assert.is_true(lev.now() - t0 >= 0.19)
      assert.are.equal("+PONG\r\n", c:reply())
      t0 = lev.now()
      c:call("GET", "k")
      assert.is_true(lev.now() - t0 < 0.1)
      c:close()
    end)
  end)

  it("splits a reply into writes of N bytes", function()
    with_mock(function(srv)
      local s = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      srv:script{ command = "ECHO", split = 4, split_delay = 0.02 }
      s:write(rc.encode("ECHO", "0123456789"))
      local got = chunks(s, 0.3)
      assert.are.equal("$10\r\n0123456789\r\n", table.concat(got))
      assert.are.equal(5, #got)
      for i = 1, 4 do assert.are.equal(4, #got[i]) end
      s:close()
    end)
  end)

  it("closes the connection after N bytes of a reply", function()
    with_mock(function(srv)
      local s = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      srv:script{ command = "ECHO", close_after = 5 }
      s:write(rc.encode("ECHO", "0123456789"))
      assert.are.equal("$10\r\n", table.concat(chunks(s, 1)))
      assert.is_nil(s:read())
      s:close()
    end)
  end)

  it("never replies to silenced commands but answers the others", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      srv:script{ command = "GET", silent = true }
      c:send("GET", "k")
      assert.are.same({ nil, "timeout" }, { c:reply(0.2) })
      assert.are.equal("+PONG\r\n", c:call("PING"))
      assert.are.equal(1, srv:stats().commands.GET)
      c:close()
    end)
  end)

  it("still runs a silenced command", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      srv:script{ command = "SET", silent = true, times = 1 }
      c:send("SET", "k", "v")
      assert.are.equal("$1\r\nv\r\n", c:call("GET", "k"))
      c:close()
    end)
  end)

  it("sends the given garbage instead of the reply", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      srv:script{ command = "PING", garbage = "?not resp\r\n", times = 1 }
      c:send("PING")
      assert.are.equal("?not resp\r\n", (c:drain(0.2)))
      c:close()
    end)
  end)

  it("closes the connection instead of replying", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      srv:script{ command = "GET", close = true }
      c:send("GET", "k")
      assert.are.same({ nil, "eof" }, { c:reply(1) })
      c:close()
    end)
  end)

  it("answers with a fixed reply or a function without running the command", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      srv:script{ command = "SET", reply = mock.error("READONLY You can't write against a read only replica."), times = 1 }
      assert.are.equal("-READONLY You can't write against a read only replica.\r\n",
        c:call("SET", "k", "v"))
      assert.are.equal("$-1\r\n", c:call("GET", "k"))
      srv:script{ command = "GET", reply = function(argv) return argv[2]:upper() end }
      assert.are.equal("$1\r\nK\r\n", c:call("GET", "k"))
      c:close()
    end)
  end)

  it("retires a rule after it matched the given number of times", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      srv:script{ command = "PING", reply = mock.status("ONE"), times = 2 }
      assert.are.equal("+ONE\r\n", c:call("PING"))
      assert.are.equal("+ONE\r\n", c:call("PING"))
      assert.are.equal("+PONG\r\n", c:call("PING"))
      c:close()
    end)
  end)

  it("matches rules by a list of commands or by a function", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      srv:script{ command = { "GET", "MGET" }, reply = "hit" }
      srv:script{ match = function(argv) return argv[2] == "magic" end, reply = 42 }
      assert.are.equal("$3\r\nhit\r\n", c:call("get", "k"))
      assert.are.equal("$3\r\nhit\r\n", c:call("MGET", "k"))
      assert.are.equal(":42\r\n", c:call("ECHO", "magic"))
      assert.are.equal("$5\r\nplain\r\n", c:call("ECHO", "plain"))
      c:close()
    end)
  end)

  it("stops applying a rule once it is cancelled, or all with unscript", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      local rule = srv:script{ command = "PING", reply = mock.status("NO") }
      assert.are.equal("+NO\r\n", c:call("PING"))
      rule:cancel()
      assert.are.equal("+PONG\r\n", c:call("PING"))
      srv:script{ reply = mock.status("ALL") }
      assert.are.equal("+ALL\r\n", c:call("ECHO", "x"))
      srv:unscript()
      assert.are.equal("$1\r\nx\r\n", c:call("ECHO", "x"))
      c:close()
    end)
  end)

  it("applies a connection's own rules before the server's", function()
    with_mock(function(srv)
      local a = assert(rc.connect(srv:port()))
      local b = assert(rc.connect(srv:port()))
      a:call("PING"); b:call("PING")
      srv:script{ command = "PING", reply = mock.status("SERVER") }
      local conns = srv:connections()
      conns[1]:script{ command = "PING", reply = mock.status("MINE") }
      assert.are.equal("+MINE\r\n", a:call("PING"))
      assert.are.equal("+SERVER\r\n", b:call("PING"))
      a:close(); b:close()
    end)
  end)

  it("takes rules as data at start", function()
    with_mock({ script = {
      { command = "PING", times = 1, reply = mock.status("FIRST") },
      { command = "GET", reply = "scripted" },
    } }, function(srv)
      local c = assert(rc.connect(srv:port()))
      assert.are.equal("+FIRST\r\n", c:call("PING"))
      assert.are.equal("+PONG\r\n", c:call("PING"))
      assert.are.equal("$8\r\nscripted\r\n", c:call("GET", "x"))
      c:close()
    end)
  end)
end)

describe("redis.mock connection rules", function()
  after_each(assert_clean)

  it("refuses connections while a refuse rule is active", function()
    with_mock(function(srv)
      local port = srv:port()
      local rule = srv:script{ refuse = true }
      assert.are.same({ nil, "connection refused", "io" }, { lev.tcp.connect("127.0.0.1", port) })
      rule:cancel()
      local c = assert(rc.connect(port))
      assert.are.equal("+PONG\r\n", c:call("PING"))
      c:close()
    end)
  end)

  it("accepts and hangs up on the next connections with a hangup rule", function()
    with_mock(function(srv)
      srv:script{ hangup = true, times = 1 }
      local c = assert(rc.connect(srv:port()))
      c:send("PING")
      assert.are.same({ nil, "eof" }, { c:reply(1) })
      c:close()
      local d = assert(rc.connect(srv:port()))
      assert.are.equal("+PONG\r\n", d:call("PING"))
      d:close()
      local st = srv:stats()
      assert.are.equal(2, st.accepted)
      assert.are.equal(1, st.refused)
    end)
  end)

  it("tells a reused connection from a new one through the counters", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("PING")
      c:call("PING")
      assert.are.equal(1, srv:stats().accepted)
      assert.are.equal(2, srv:stats().commands.PING)
      local d = assert(rc.connect(srv:port()))
      d:call("PING")
      assert.are.equal(2, srv:stats().accepted)
      c:close(); d:close()
    end)
  end)

  it("sends out-of-band replies with conn:push", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("HELLO", "3")
      srv:connections()[1]:push(mock.push{ "invalidate", { "k" } })
      assert.are.equal(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", c:reply())
      srv:connections()[1]:push(mock.raw("garbage"))
      assert.are.equal("garbage", (c:drain(0.1)))
      c:close()
    end)
  end)

  it("calls on_connect for each accepted connection, which may greet it", function()
    local seen = {}
    with_mock({ on_connect = function(conn)
      seen[#seen + 1] = conn.id
      conn:push(mock.status("WELCOME"))
    end }, function(srv)
      local c = assert(rc.connect(srv:port()))
      assert.are.equal("+WELCOME\r\n", c:reply())
      c:close()
    end)
    assert.are.same({ 1 }, seen)
  end)

  it("closes one connection from the spec with conn:close", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("PING")
      srv:connections()[1]:close()
      assert.are.same({ nil, "eof" }, { c:reply(1) })
      c:close()
    end)
  end)

  it("ends a long delay at once when the server closes", function()
    local t0
    lev.run(function()
      local srv = assert(mock.start{ port = 0 })
      local c = assert(rc.connect(srv:port()))
      srv:script{ delay = 30 }
      c:send("PING")
      lev.sleep(0.05)
      t0 = lev.now()
      srv:close()
      assert.is_true(lev.now() - t0 < 0.5)
      c:close()
    end)
  end)
end)
