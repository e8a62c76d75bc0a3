-- redis.mock as a server: starting and closing inside lev.run, the
-- request reader (RESP and inline), protocol switching, statistics, and
-- the standalone examples/mock-server.lua for redis-cli.
local lev = require("lev")
local mock = require("redis.mock")
local rc = require("resp_client")
local helper = require("lev_helper")

local assert_clean = helper.assert_clean

-- Runs fn(srv) inside lev.run on a fresh mock, and closes it afterwards.
local with_mock = require("mock_helper").with_mock

describe("redis.mock server", function()
  after_each(assert_clean)

  it("starts on a free port inside lev.run and answers a client", function()
    with_mock(function(srv)
      assert.is_true(srv:port() > 0)
      local c = assert(rc.connect(srv:port()))
      assert.are.equal("+PONG\r\n", c:call("PING"))
      c:close()
    end)
  end)

  it("does not keep lev.run alive by itself", function()
    -- In a child process, so that a mock that did keep the loop alive
    -- fails the spec through the timeout instead of hanging it.
    local code = ("package.path = %q; package.cpath = %q\n"):format(package.path, package.cpath)
      .. "local lev = require('lev'); local mock = require('redis.mock')\n"
      .. "local srv = lev.run(function() return assert(mock.start{ port = 0 }) end)\n"
      .. "io.write('returned ', type(srv:port()))\n"
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write(code)
    f:close()
    local p = assert(io.popen("timeout 10 lua5.4 " .. file .. " 2>&1; echo \" rc=$?\""))
    local out = p:read("a")
    p:close()
    os.remove(file)
    assert.are.equal("returned number rc=0\n", out)
  end)

  it("keeps listening across lev.run calls until closed", function()
    local srv
    lev.run(function()
      srv = assert(mock.start{ port = 0 })
    end)
    lev.run(function()
      local c = assert(rc.connect(srv:port()))
      assert.are.equal("+PONG\r\n", c:call("PING"))
      c:close()
      srv:close()
    end)
  end)

  it("closes its connections and stops listening on close", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      assert.are.equal("+PONG\r\n", c:call("PING"))
      local port = srv:port()
      assert.is_true(srv:close())
      assert.are.same({ nil, "eof" }, { c:reply(1) })
      assert.are.same({ nil, "connection refused", "io" }, { lev.tcp.connect("127.0.0.1", port) })
      assert.is_true(srv:close())
      c:close()
    end)
  end)

  it("supports to-be-closed variables", function()
    local port
    lev.run(function()
      local srv <close> = assert(mock.start{ port = 0 })
      port = srv:port()
    end)
    lev.run(function()
      assert.is_nil((lev.tcp.connect("127.0.0.1", port)))
    end)
  end)

  it("returns nil and the error when the port is taken", function()
    with_mock(function(srv)
      local other, err = mock.start{ port = srv:port() }
      assert.is_nil(other)
      assert.is_string(err)
    end)
  end)

  it("reads inline commands with quotes, as redis-cli and telnet send them", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:raw("SET greeting \"hello world\"\r\nGET greeting\r\nECHO 'a b'\r\n")
      assert.are.equal("+OK\r\n", c:reply())
      assert.are.equal("$11\r\nhello world\r\n", c:reply())
      assert.are.equal("$3\r\na b\r\n", c:reply())
      c:close()
    end)
  end)

  it("ignores empty lines and empty arrays", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:raw("\r\n*0\r\nPING\r\n")
      assert.are.equal("+PONG\r\n", c:reply())
      assert.are.equal(1, srv:stats().total_commands)
      c:close()
    end)
  end)

  it("reads a request that arrives one byte at a time", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      local req = rc.encode("SET", "k", "split value")
      for i = 1, #req do
        c:raw(req:sub(i, i))
        lev.sleep(0)
      end
      assert.are.equal("+OK\r\n", c:reply())
      assert.are.equal("$11\r\nsplit value\r\n", c:call("GET", "k"))
      c:close()
    end)
  end)

  it("answers pipelined requests in order", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      local batch = {}
      for i = 1, 100 do batch[i] = rc.encode("INCR", "n") end
      c:raw(table.concat(batch))
      for i = 1, 100 do assert.are.equal(":" .. i .. "\r\n", c:reply()) end
      c:close()
    end)
  end)

  it("answers a protocol error with an error reply and closes", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:raw("*1\r\n$x\r\n")
      local r = c:reply()
      assert.matches("^%-ERR Protocol error: ", r)
      assert.are.same({ nil, "eof" }, { c:reply(1) })
      c:close()
    end)
  end)

  it("speaks RESP2 until HELLO 3, and each connection has its own protocol", function()
    with_mock(function(srv)
      local a = assert(rc.connect(srv:port()))
      local b = assert(rc.connect(srv:port()))
      assert.are.equal("$-1\r\n", a:call("GET", "nope"))
      assert.matches("^%%7\r\n", a:call("HELLO", "3"))
      assert.are.equal("_\r\n", a:call("GET", "nope"))
      assert.are.equal("$-1\r\n", b:call("GET", "nope"))
      a:close(); b:close()
    end)
  end)

  it("counts accepted and live connections", function()
    with_mock(function(srv)
      local a = assert(rc.connect(srv:port()))
      local b = assert(rc.connect(srv:port()))
      a:call("PING"); b:call("PING")
      local st = srv:stats()
      assert.are.equal(2, st.accepted)
      assert.are.equal(2, st.live)
      a:close()
      for _ = 1, 100 do
        if srv:stats().live == 1 then break end
        lev.sleep(0.01)
      end
      st = srv:stats()
      assert.are.equal(2, st.accepted)
      assert.are.equal(1, st.live)
      b:close()
    end)
  end)

  it("counts commands by upper-case name so a spec can assert what was sent", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("ping"); c:call("PING"); c:call("SET", "k", "v"); c:call("NOPE")
      local st = srv:stats()
      assert.are.equal(2, st.commands.PING)
      assert.are.equal(1, st.commands.SET)
      assert.are.equal(1, st.commands.NOPE)
      assert.is_nil(st.commands.GET)
      assert.are.equal(4, st.total_commands)
      srv:reset_stats()
      assert.are.same({}, srv:stats().commands)
      c:close()
    end)
  end)

  it("keeps a log of the commands received", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("SELECT", "3"); c:call("SET", "k", "v")
      assert.are.same({ { "SELECT", "3" }, { "SET", "k", "v" } }, srv:log())
      c:close()
    end)
  end)

  it("lists live connections with their id, address and state", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("CLIENT", "SETNAME", "me")
      c:call("SELECT", "2")
      local conns = srv:connections()
      assert.are.equal(1, #conns)
      assert.are.equal(1, conns[1].id)
      assert.are.equal("me", conns[1].name)
      assert.are.equal(2, conns[1].dbi)
      assert.matches("^127%.0%.0%.1:%d+$", conns[1].addr)
      c:close()
    end)
  end)

  it("reports the connection list in CLIENT LIST and CLIENT INFO", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      local list = rc.decode(c:call("CLIENT", "LIST"))
      assert.matches("^id=1 addr=127%.0%.0%.1:%d+ laddr=127%.0%.0%.1:" .. srv:port(), list)
      assert.matches("resp=2\n$", list)
      local info = rc.decode(c:call("CLIENT", "INFO"))
      assert.matches("cmd=client|info", info)
      c:call("HELLO", "3")
      assert.matches("^=%d+\r\ntxt:id=1 ", c:call("CLIENT", "INFO"))
      c:close()
    end)
  end)

  it("answers INFO with the server, clients, stats and keyspace sections", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("SET", "k", "v")
      local info = rc.decode(c:call("INFO"))
      assert.matches("# Server\r\nredis_version:7.0.15\r\n", info)
      assert.matches("tcp_port:" .. srv:port() .. "\r\n", info)
      assert.matches("# Clients\r\nconnected_clients:1\r\n", info)
      assert.matches("total_connections_received:1\r\n", info)
      assert.matches("# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n$", info)
      c:close()
    end)
  end)

  it("expires keys on its clock, which advance moves forward", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("SET", "k", "v", "EX", "30")
      srv:advance(29)
      assert.are.equal("$1\r\nv\r\n", c:call("GET", "k"))
      srv:advance(2)
      assert.are.equal("$-1\r\n", c:call("GET", "k"))
      c:close()
    end)
  end)

  it("empties every database with flush", function()
    with_mock(function(srv)
      local c = assert(rc.connect(srv:port()))
      c:call("SET", "k", "v")
      srv:flush()
      assert.are.equal(":0\r\n", c:call("DBSIZE"))
      c:close()
    end)
  end)
end)

describe("examples/mock-server.lua", function()
  it("serves redis-cli standalone on the port it prints", function()
    local build = os.getenv("LEVR_BUILD") or "build"
    local script = table.concat({
      "log=$(mktemp)",
      "LEVR_BUILD=" .. build .. " lua5.4 examples/mock-server.lua --port 0 >\"$log\" 2>&1 &",
      "pid=$!",
      "i=0; port=''",
      "while [ -z \"$port\" ] && [ $i -lt 50 ]; do",
      "  port=$(sed -n 's/^listening on 127.0.0.1:\\([0-9]*\\)$/\\1/p' \"$log\")",
      "  i=$((i+1)); sleep 0.1",
      "done",
      "redis-cli -p \"$port\" SET greeting hello",
      "redis-cli -p \"$port\" GET greeting",
      "redis-cli -p \"$port\" --no-raw HGETALL nope",
      "kill $pid; wait $pid 2>/dev/null; rm -f \"$log\"",
    }, "\n")
    local p = assert(io.popen(script))
    local out = p:read("a")
    p:close()
    assert.are.equal("OK\nhello\n(empty array)\n", out)
  end)

  it("refuses unknown options with a usage line", function()
    local p = assert(io.popen("lua5.4 examples/mock-server.lua --bogus 2>&1; echo \"rc=$?\""))
    local out = p:read("a")
    p:close()
    assert.matches("usage: lua5.4 examples/mock%-server.lua", out)
    assert.matches("rc=2\n$", out)
  end)
end)
