-- The client against a real redis-server (started by the test run; see
-- spec/support/int_helper.lua). The sections follow the README's API
-- sections.

local h = require("int_helper")
local lev = require("lev")
local redis = require("redis")

local run, cfg, connect, cli = h.run, h.cfg, h.connect, h.cli

-- Assertions on a failure: nil and exactly text, or nil and a text
-- matching pattern.
local function fails(text, ok, err)
  assert.is_nil(ok)
  assert.equal(text, err)
end

local fails_like, client_id = h.fails_like, h.client_id

-- pcall's message for a call that must raise.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

before_each(function()
  h.reset()
end)

after_each(function()
  assert.is_true(h.settled(), "a client was left blocked, subscribed, in "
    .. "MULTI or monitoring on the server")
end)

describe("1. modules and the runtime:", function()
  it("runs the README example: SET then GET prints the stored value",
     function()
    local got = run(function()
      local c = assert(redis.connect(h.addr))
      c:cmd("SET", "greeting", "hello")
      local v = c:cmd("GET", "greeting")
      assert.is_true(c:close())
      return v
    end)
    assert.equal("hello", got)
    assert.equal("hello", cli("GET", "greeting"))
  end)

  it("raises a clear error, without hanging, when connect is called "
     .. "outside lev.run", function()
    local err = raised(redis.connect, cfg())
    assert.matches("redis.connect: must be called inside a lev task", err,
      1, true)
  end)

  it("raises a clear error when cmd, the sugar, pipeline and read are "
     .. "called outside lev.run, and the client still works inside",
     function()
    local c = run(function() return connect() end)
    assert.matches("inside a lev task", raised(c.cmd, c, "PING"), 1, true)
    assert.matches("inside a lev task", raised(function() return c:ping() end),
      1, true)
    assert.matches("inside a lev task",
      raised(c.pipeline, c, { { "PING" } }), 1, true)
    assert.matches("inside a lev task", raised(c.read, c), 1, true)
    assert.equal("PONG", run(function() return c:cmd("PING") end))
    run(function() assert.is_true(c:close()) end)
  end)

  it("raises when a client is used from a plain coroutine inside a task",
     function()
    run(function()
      local c = connect()
      local ok, err = coroutine.wrap(function()
        return pcall(c.cmd, c, "PING")
      end)()
      assert.is_false(ok)
      assert.matches("inside a lev task", err, 1, true)
      assert.equal("PONG", c:cmd("PING"))
      c:close()
    end)
  end)

  it("returns the main task's results and re-raises its errors: a string "
     .. "with a traceback, a table as the same table", function()
    local a, b = run(function(x)
      local c = connect()
      local v = c:cmd("ECHO", x)
      c:close()
      return v, 2
    end, "one")
    assert.equal("one", a)
    assert.equal(2, b)
    -- The failed task's stack is closed, so a to-be-closed client is
    -- closed too.
    local id
    local err = raised(run, function()
      local c <close> = connect()
      c:cmd("SET", "k", "v")
      id = client_id(c)
      error("boom")
    end)
    assert.matches("boom", err, 1, true)
    assert.matches("stack traceback", err, 1, true)
    assert.is_true(h.gone(id))
    local t = { reason = "table" }
    local ok, e = pcall(run, function()
      local c = connect()
      c:cmd("PING")
      c:close()
      error(t)
    end)
    assert.is_false(ok)
    assert.equal(t, e)
    assert.equal("v", cli("GET", "k"))
  end)

  it("refuses to run lev.run inside a running lev.run", function()
    run(function()
      local ok, err = pcall(lev.run, function() end)
      assert.is_false(ok)
      assert.matches("lev.run: already running", err, 1, true)
    end)
  end)
end)

describe("2. redis.connect(config):", function()
  it("connects with the \"host:port\" string form, as the default user, "
     .. "to database 0", function()
    run(function()
      local c = assert(redis.connect(h.addr))
      local info = c:cmd("CLIENT", "INFO")
      assert.matches(" db=0 ", info, 1, true)
      assert.matches(" user=default ", info, 1, true)
      c:close()
    end)
  end)

  it("selects the database of the \"host:port/db\" string form", function()
    run(function()
      local c = assert(redis.connect(h.addr .. "/3"))
      assert.matches(" db=3 ", c:cmd("CLIENT", "INFO"), 1, true)
      assert.equal(3, c.cfg.db)
      c:close()
    end)
  end)

  it("treats nil as \"127.0.0.1:6379\"", function()
    local config = require("redis.config")
    local a = assert(config.normalize(nil))
    local b = assert(config.normalize("127.0.0.1:6379"))
    assert.same({ "127.0.0.1", 6379, 0, false },
      { a.host, a.port, a.db, a.ssl })
    assert.same({ b.host, b.port, b.db, b.ssl },
      { a.host, a.port, a.db, a.ssl })
  end)

  it("connects with a table of host, port, db, timeout and auth, and "
     .. "ignores fields it does not know", function()
    run(function()
      local conf = cfg{ db = 2, timeout = 2, app = "mine",
                        meta = { owner = "x" } }
      h.drain(conf)
      local c = assert(redis.connect(conf))
      -- The handshake is complete when connect returns: the server's
      -- newest client is logged in and has selected db 2.
      local newest = { id = -1 }
      for _, t in ipairs(h.clients()) do
        if t.id > newest.id and t.cmd ~= "client|list" then newest = t end
      end
      assert.same({ h.user, "2", "select" },
        { newest.user, newest.db, newest.cmd })
      local info = c:cmd("CLIENT", "INFO")
      assert.matches(" db=2 ", info, 1, true)
      assert.matches(" user=" .. h.user .. " ", info, 1, true)
      assert.equal(h.user, c:cmd("ACL", "WHOAMI"))
      assert.equal("mine", conf.app)
      c:close()
    end)
  end)

  it("accepts integral floats for port and db and stores them as "
     .. "integers", function()
    run(function()
      local c = assert(redis.connect(cfg{ port = h.port + 0.0, db = 1.0 }))
      assert.equal(math.type(c.cfg.port), "integer")
      assert.equal(h.port, c.cfg.port)
      assert.equal(math.type(c.cfg.db), "integer")
      assert.equal(1, c.cfg.db)
      assert.matches(" db=1 ", c:cmd("CLIENT", "INFO"), 1, true)
      c:close()
    end)
  end)

  it("returns nil and \"invalid config: <field> ...\" for each broken "
     .. "rule, without raising", function()
    local port = "invalid config: port must be an integer in 1..65535"
    local db = "invalid config: db must be an integer >= 0"
    local host = "invalid config: host must be a non-empty string"
    local timeout = "invalid config: timeout must be a number > 0 (seconds)"
    local auth = "invalid config: auth must be a table with non-empty "
      .. "string fields user and pass"
    local cases = {
      { { port = tostring(h.port) }, port },
      { { port = h.port + 0.5 }, port },
      { { port = 0 }, port },
      { { port = 65536 }, port },
      { { port = true }, port },
      { { db = "1" }, db },
      { { db = 1.5 }, db },
      { { db = -1 }, db },
      { { host = "" }, host },
      { { host = 127 }, host },
      { { timeout = 0 }, timeout },
      { { timeout = -1 }, timeout },
      { { timeout = "1" }, timeout },
      { { timeout = 0 / 0 }, timeout },
      { { auth = "alice:s3cret" }, auth },
      { { auth = { user = "alice" } }, auth },
      { { auth = { user = "", pass = "x" } }, auth },
      { { auth = { user = "alice", pass = "" } }, auth },
      { { ssl = "yes" }, "invalid config: ssl must be true, false or a table" },
    }
    run(function()
      for _, case in ipairs(cases) do
        local ok, err, cat = redis.connect(cfg(case[1]))
        assert.is_nil(ok)
        assert.equal(case[2], err)
        assert.equal("config", cat)
      end
      fails(host, redis.connect{ port = h.port })
      fails("invalid config: config must be nil, a \"host:port[/db]\" "
        .. "string or a table", redis.connect(42))
    end)
  end)

  it("parses port and db from the text of the string form and rejects "
     .. "malformed strings", function()
    run(function()
      fails("invalid config: port must be an integer in 1..65535",
        redis.connect("127.0.0.1:70000"))
      fails("invalid config: port must be an integer in 1..65535",
        redis.connect("127.0.0.1:0"))
      fails("invalid config: port must be an integer in 1..65535",
        redis.connect("127.0.0.1:port"))
      fails_like("^invalid config: ", redis.connect(h.addr .. "/x"))
      fails_like("^invalid config: ", redis.connect(h.addr .. "/-1"))
      fails("invalid config: host must be a non-empty string",
        redis.connect(":" .. h.port))
      local c = assert(redis.connect(h.addr .. "/15"))
      assert.same({ "127.0.0.1", h.port, 15 },
        { c.cfg.host, c.cfg.port, c.cfg.db })
      c:close()
    end)
  end)

  it("gives the client a new, normalized cfg with defaults and a copy of "
     .. "auth", function()
    run(function()
      local conf = cfg{ app = 1 }
      local c = assert(redis.connect(conf))
      local n = c.cfg
      assert.is_not.equal(conf, n)
      assert.equal(h.host, n.host)
      assert.equal(h.port, n.port)
      assert.equal(0, n.db)
      assert.is_nil(n.timeout)
      assert.is_false(n.ssl)
      assert.is_not.equal(conf.auth, n.auth)
      assert.equal(h.user, n.auth.user)
      assert.equal(h.pass, n.auth.pass)
      c:close()
      local d = assert(redis.connect(cfg{ timeout = 1 }))
      assert.equal(1.0, d.cfg.timeout)
      d:close()
    end)
  end)

  it("never shows auth.pass in tostring of cfg, auth or client, nor in "
     .. "error messages", function()
    local secret = "Sup3r-Secret-Pass"
    run(function()
      local c = connect()
      local shown = { tostring(c.cfg), tostring(c.cfg.auth), tostring(c) }
      for _, s in ipairs(shown) do
        assert.is_nil(s:find(h.pass, 1, true), s)
      end
      c:close()
      local texts = {}
      local function collect(_, err) texts[#texts + 1] = err end
      collect(redis.connect(cfg{ auth = { user = h.user, pass = secret } }))
      collect(redis.connect(cfg{ auth = { user = "nobody", pass = secret } }))
      collect(redis.connect(cfg{ auth = { user = h.user, pass = secret },
                                 port = 0 }))
      collect(redis.connect(cfg{ auth = { user = h.user, pass = secret },
                                 db = 99 }))
      collect(redis.connect(cfg{ auth = { user = h.user, pass = secret },
                                 port = 1 }))
      for _, t in ipairs(texts) do
        assert.is_string(t)
        assert.is_nil(t:find(secret, 1, true), t)
      end
    end)
  end)

  it("returns nil and \"connection refused\" when nothing listens",
     function()
    run(function()
      local ok, err, cat = redis.connect(cfg{ port = 1 })
      fails("connection refused", ok, err)
      assert.equal("io", cat)
    end)
  end)

  it("returns nil and a dns text when the host does not resolve",
     function()
    run(function()
      fails_like("^dns", redis.connect(cfg{ host = "no-such-host.invalid" }))
    end)
  end)

  it("returns nil and the server's WRONGPASS text for a wrong password, "
     .. "leaving no connection behind", function()
    local before = #h.clients()
    run(function()
      local ok, err, cat = redis.connect(cfg{
        auth = { user = h.user, pass = "wrong" } })
      fails_like("^WRONGPASS ", ok, err)
      assert.equal("redis", cat)
      fails_like("^WRONGPASS ", redis.connect(cfg{
        auth = { user = "nobody", pass = "wrong" } }))
    end)
    assert.is_true(h.eventually(function()
      return #h.clients() == before
    end))
  end)

  it("returns nil and \"ERR DB index is out of range\" for a db the "
     .. "server does not have, leaving no connection behind", function()
    local before = #h.clients()
    run(function()
      fails("ERR DB index is out of range", redis.connect(cfg{ db = 16 }))
      fails("ERR DB index is out of range",
        redis.connect(h.addr .. "/100"))
      assert.equal(0, redis.pool_size(cfg{ db = 16 }))
    end)
    assert.is_true(h.eventually(function()
      return #h.clients() == before
    end))
  end)

  it("returns nil, \"timeout\" when a TLS handshake meets a plain-text "
     .. "server that never answers it", function()
    run(function()
      local dt, ok, err = h.timed(redis.connect,
        cfg{ ssl = { verify = false }, timeout = 0.3 })
      fails("timeout", ok, err)
      assert.is_true(dt > 0.25 and dt < 1, dt)
    end)
  end)

  it("keeps databases apart", function()
    run(function()
      local c1 = connect{ db = 1 }
      local c0 = connect()
      local c2 = connect{ db = 2 }
      assert.equal("OK", c1:cmd("SET", "shared", "one"))
      fails("not found", c0:cmd("GET", "shared"))
      fails("not found", c2:cmd("GET", "shared"))
      assert.equal("OK", c2:cmd("SET", "shared", "two"))
      assert.equal("one", c1:cmd("GET", "shared"))
      assert.equal(1, c1:cmd("DBSIZE"))
      assert.equal(0, c0:cmd("DBSIZE"))
      c0:close() c1:close() c2:close()
    end)
  end)

  it("returns a client with cfg, cmd, pipeline, read and close",
     function()
    run(function()
      local c = connect()
      assert.is_table(c.cfg)
      for _, m in ipairs{ "cmd", "pipeline", "read", "close" } do
        assert.is_function(c[m], m)
      end
      c:close()
    end)
  end)
end)

describe("3. client:cmd:", function()
  it("gives OK for SET, the value for GET, nil and \"not found\" for a "
     .. "missing key and an integer for INCR", function()
    run(function()
      local c = connect()
      assert.equal("OK", c:cmd("SET", "k", "v"))
      assert.equal("v", c:cmd("GET", "k"))
      fails("not found", c:cmd("GET", "missing"))
      local n = c:cmd("INCR", "n")
      assert.equal(1, n)
      assert.equal("integer", math.type(n))
      c:close()
    end)
  end)

  it("round-trips binary values with \\0, \\r\\n and every byte",
     function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local all = table.concat(bytes)
    local values = { "\0", "a\0b", "\r\n", "x\r\ny\r\n", "$-1\r\n",
                     "*1\r\n$1\r\nx\r\n", "", all:rep(4) }
    run(function()
      local c = connect()
      for i, v in ipairs(values) do
        assert.equal("OK", c:cmd("SET", "bin\0" .. i, v))
        assert.equal(v, c:cmd("GET", "bin\0" .. i))
        assert.equal(#v, c:cmd("STRLEN", "bin\0" .. i))
      end
      c:close()
    end)
  end)

  it("round-trips a 16 MB value", function()
    local big = string.rep("0123456789abcd\0\r\n", 16 * 1024 * 1024 // 17 + 1)
    big = big:sub(1, 16 * 1024 * 1024)
    run(function()
      local c = connect()
      assert.equal("OK", c:cmd("SET", "big", big))
      assert.equal(16 * 1024 * 1024, c:cmd("STRLEN", "big"))
      local got = c:cmd("GET", "big")
      assert.equal(#big, #got)
      assert.is_true(got == big)
      assert.equal("PONG", c:cmd("PING"))
      c:close()
    end)
  end)

  it("sends integers and integral floats as integer text", function()
    run(function()
      local c = connect()
      local cases = { { 2.0, "2" }, { 2, "2" }, { -7.0, "-7" }, { 0.0, "0" },
                      { -0.0, "0" }, { math.maxinteger, "9223372036854775807" },
                      { math.mininteger, "-9223372036854775808" },
                      { 2.0 ^ 53, "9007199254740992" } }
      for i, case in ipairs(cases) do
        assert.equal("OK", c:cmd("SET", "n" .. i, case[1]))
        assert.equal(case[2], c:cmd("GET", "n" .. i))
      end
      -- The server reads them as integers.
      assert.equal(5, c:cmd("INCRBY", "n1", 3.0))
      c:cmd("SET", "s", "xyz")
      assert.equal("xy", c:cmd("GETRANGE", "s", 0.0, 1.0))
      c:close()
    end)
  end)

  it("sends other floats with %.17g, and infinities as inf and -inf",
     function()
    run(function()
      local c = connect()
      local cases = { { 0.1, "0.10000000000000001" },
                      { 1 / 3, string.format("%.17g", 1 / 3) },
                      { -2.5, "-2.5" }, { 1e300, "1.0000000000000001e+300" },
                      { 2.0 ^ 63, string.format("%.17g", 2.0 ^ 63) },
                      { math.huge, "inf" }, { -math.huge, "-inf" } }
      for i, case in ipairs(cases) do
        assert.equal("OK", c:cmd("SET", "f" .. i, case[1]))
        local text = c:cmd("GET", "f" .. i)
        assert.equal(case[2], text)
        if case[1] == case[1] and math.abs(case[1]) ~= math.huge then
          assert.equal(case[1], tonumber(text))
        end
      end
      -- The server reads them back as numbers.
      assert.equal(0.1, tonumber(c:cmd("INCRBYFLOAT", "fl", 0.1)))
      assert.equal(1, c:cmd("ZADD", "z", math.huge, "top"))
      assert.equal(1, c:cmd("ZADD", "z", -math.huge, "bottom"))
      assert.same({ "bottom", "top" },
        c:cmd("ZRANGEBYSCORE", "z", -math.huge, math.huge))
      c:close()
    end)
  end)

  it("raises a clear argument error for a boolean, a table or a nil hole "
     .. "and sends nothing", function()
    run(function()
      local c = connect()
      assert.matches("redis: cmd: argument #3 must be a string or a number, "
        .. "got boolean", raised(c.cmd, c, "SET", "k", true), 1, true)
      assert.matches("argument #3 must be a string or a number, got table",
        raised(c.cmd, c, "SET", "k", {}), 1, true)
      assert.matches("argument #2 must be a string or a number, got nil",
        raised(c.cmd, c, "SET", nil, "v"), 1, true)
      assert.matches("argument #3 must be a string or a number, got nil",
        raised(c.cmd, c, "SET", "k", nil), 1, true)
      assert.matches("argument #2 must be a string or a number, got boolean",
        raised(function() return c:set(false, "v") end), 1, true)
      assert.matches("command name must be a string",
        raised(c.cmd, c, nil), 1, true)
      -- Nothing half-written reached the server: the next command is
      -- read as it was sent.
      assert.equal("PONG", c:cmd("PING"))
      fails("not found", c:cmd("GET", "k"))
      assert.equal(0, c:cmd("DBSIZE"))
      c:close()
    end)
  end)

  it("returns nil and the server's text for error replies", function()
    run(function()
      local c = connect()
      local ok, err, cat = c:cmd("NOSUCHCOMMAND", "x")
      fails_like("^ERR unknown command", ok, err)
      assert.equal("redis", cat)
      c:cmd("SET", "str", "v")
      fails("WRONGTYPE Operation against a key holding the wrong kind of "
        .. "value", c:cmd("LPUSH", "str", "x"))
      fails_like("^ERR wrong number of arguments", c:cmd("GET"))
      fails("ERR value is not an integer or out of range",
        c:cmd("INCR", "str"))
      -- An error reply leaves the connection usable.
      assert.equal("v", c:cmd("GET", "str"))
      c:close()
    end)
  end)

  it("returns nil and a text when the connection fails under a command",
     function()
    run(function()
      local c = connect()
      local admin = connect()
      local id = client_id(c)
      local t = lev.spawn(function() return c:cmd("BLPOP", "never", 0) end)
      lev.sleep(0.05)
      assert.equal(1, admin:cmd("CLIENT", "KILL", "ID", id))
      local _, ok, err, cat = t:join()
      fails("connection closed by server", ok, err)
      assert.equal("eof", cat)
      fails("closed", c:cmd("PING"))
      c:close()
      admin:close()
    end)
  end)

  it("turns any method name into that command (c:get, c:hset, ...)",
     function()
    run(function()
      local c = connect()
      assert.equal("OK", c:set("k", "v"))
      assert.equal("v", c:get("k"))
      fails("not found", c:get("nope"))
      assert.equal(2, c:hset("h", "a", 1, "b", 2.0))
      assert.equal("2", c:hget("h", "b"))
      local all = c:hgetall("h")
      table.sort(all)
      assert.same({ "1", "2", "a", "b" }, all)
      assert.equal(3, c:Rpush("l", "x", "y", "z"))
      assert.same({ "x", "y", "z" }, c:lrange("l", 0, -1))
      fails_like("^ERR unknown command", c:no_such_command())
      assert.equal(c.get, c.get)
      c:close()
    end)
  end)
end)

describe("4. client:pipeline:", function()
  it("returns { value }, { nil } and { nil, text } in command order",
     function()
    run(function()
      local c = connect()
      c:cmd("SET", "str", "v")
      local r = c:pipeline{
        { "SET", "a", "1" }, { "GET", "a" }, { "GET", "missing" },
        { "INCR", "str" }, { "INCR", "a" }, { "LPUSH", "str", "x" },
        { "MGET", "a", "missing" }, { "PING" },
      }
      assert.equal(8, #r)
      assert.same({ "OK" }, r[1])
      assert.same({ "1" }, r[2])
      assert.same({}, r[3])
      assert.is_nil(r[3][1])
      assert.same({ nil, "ERR value is not an integer or out of range" },
        r[4])
      assert.same({ 2 }, r[5])
      assert.same({ nil, "WRONGTYPE Operation against a key holding the "
        .. "wrong kind of value" }, r[6])
      assert.equal("2", r[7][1][1])
      assert.equal(redis.null, r[7][1][2])
      assert.same({ "PONG" }, r[8])
      c:close()
    end)
  end)

  it("gives a NULL array reply as { nil }", function()
    run(function()
      local c = connect()
      local r = c:pipeline{ { "BLPOP", "empty", 0.05 }, { "ECHO", "after" } }
      assert.same({}, r[1])
      assert.same({ "after" }, r[2])
      c:close()
    end)
  end)

  it("returns {} for nil or an empty array without touching the network",
     function()
    -- Outside lev.run and on a closed client: no network is possible.
    local c = run(function() return connect() end)
    assert.same({}, c:pipeline(nil))
    assert.same({}, c:pipeline{})
    run(function() c:close() end)
    assert.same({}, c:pipeline())
    assert.same({}, c:pipeline{})
  end)

  it("runs 100,000 commands in one pipeline", function()
    run(function()
      local c = connect()
      local cmds = {}
      for i = 1, 100000 do cmds[i] = { "INCR", "counter" } end
      local r = c:pipeline(cmds)
      assert.equal(100000, #r)
      for i = 1, 100000 do
        if r[i][1] ~= i then
          error(("entry %d is %s"):format(i, tostring(r[i][1])))
        end
      end
      assert.equal("100000", c:cmd("GET", "counter"))
      c:close()
    end)
  end)

  it("converts arguments like cmd and raises for other types, sending "
     .. "none of the pipeline", function()
    run(function()
      local c = connect()
      local r = c:pipeline{ { "SET", "a", 2.0 }, { "SET", "b", 0.1 },
                            { "SET", "c", -math.huge }, { "GET", "a" },
                            { "GET", "b" }, { "GET", "c" } }
      assert.same({ { "OK" }, { "OK" }, { "OK" }, { "2" },
                    { "0.10000000000000001" }, { "-inf" } }, r)
      assert.matches("redis: pipeline: command #2: argument #3 must be a "
        .. "string or a number, got boolean",
        raised(c.pipeline, c, { { "SET", "x", "1" },
                                { "SET", "y", true } }), 1, true)
      assert.matches("command #1: argument #2 must be a string or a number, "
        .. "got table", raised(c.pipeline, c, { { "GET", {} } }), 1, true)
      assert.matches("command #2 must be a table",
        raised(c.pipeline, c, { { "PING" }, "PING" }), 1, true)
      assert.matches("command #1 has no command name",
        raised(c.pipeline, c, { {} }), 1, true)
      fails("not found", c:cmd("GET", "x"))
      assert.equal("PONG", c:cmd("PING"))
      c:close()
    end)
  end)

  it("returns nil and a text when the connection fails before every reply "
     .. "is read", function()
    run(function()
      local c = connect()
      local admin = connect()
      local id = client_id(c)
      lev.spawn(function()
        lev.sleep(0.1)
        admin:cmd("CLIENT", "KILL", "ID", id)
        admin:close()
      end)
      local ok, err = c:pipeline{ { "SET", "before", "1" },
                                  { "BLPOP", "never", 0 }, { "PING" } }
      fails("connection closed by server", ok, err)
      c:close()
      local d = connect()
      assert.equal("1", d:cmd("GET", "before"))
      d:close()
    end)
  end)

  it("refuses SUBSCRIBE and its family with a clear error instead of "
     .. "waiting forever", function()
    run(function()
      local c = connect()
      for _, name in ipairs{ "SUBSCRIBE", "psubscribe", "SSUBSCRIBE",
                             "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE" } do
        assert.matches("cannot be pipelined",
          raised(c.pipeline, c, { { "PING" }, { name, "ch" } }), 1, true)
      end
      -- Nothing was sent, and the connection is still a plain one.
      assert.same({ { "PONG" } }, c:pipeline{ { "PING" } })
      local id = client_id(c)
      c:close()
      local d = connect()
      assert.equal(id, client_id(d))
      d:close()
    end)
  end)
end)

describe("5. client:read and client:close:", function()
  it("delivers pub/sub through read(): SUBSCRIBE returns the first "
     .. "confirmation, read() the others and every message", function()
    run(function()
      local s = connect()
      local pub = connect()
      assert.same({ "subscribe", "a", 1 }, s:cmd("SUBSCRIBE", "a", "b"))
      assert.same({ type = "array", value = { "subscribe", "b", 2 } },
        s:read())
      assert.equal(1, pub:cmd("PUBLISH", "a", "hello"))
      assert.equal(1, pub:cmd("PUBLISH", "b", "bin\0\r\n"))
      assert.same({ type = "array", value = { "message", "a", "hello" } },
        s:read())
      assert.same({ type = "array", value = { "message", "b", "bin\0\r\n" } },
        s:read())
      assert.same({ "psubscribe", "p*", 3 }, s:cmd("PSUBSCRIBE", "p*"))
      assert.equal(1, pub:cmd("PUBLISH", "px", "m"))
      assert.same({ type = "array", value = { "pmessage", "p*", "px", "m" } },
        s:read())
      -- A reader waiting before the message arrives gets it too.
      local t = lev.spawn(function() return s:read() end)
      lev.sleep(0.05)
      pub:cmd("PUBLISH", "a", "late")
      local _, msg = t:join()
      assert.same({ "message", "a", "late" }, msg.value)
      -- Commands still get their own replies in between.
      assert.same({ "pong", "" }, s:cmd("PING"))
      assert.same({ "unsubscribe", "a", 2 }, s:cmd("UNSUBSCRIBE", "a"))
      s:close()
      pub:close()
    end)
  end)

  it("hands replies that look like pub/sub to their commands once every "
     .. "subscription has ended, and always under RESP3", function()
    run(function()
      local c = connect{ timeout = 1 }
      local pub = connect()
      pub:cmd("RPUSH", "l", "message", "a", "b")
      pub:cmd("RPUSH", "s", "subscribe", "a", 1)
      c:cmd("SUBSCRIBE", "a", "b")
      c:cmd("PSUBSCRIBE", "p*")
      assert.same({ "subscribe", "b", 2 }, c:read().value)
      -- UNSUBSCRIBE with no channel lists them in the server's hash order.
      local first = c:cmd("UNSUBSCRIBE")
      local second = c:read().value
      assert.same({ "unsubscribe", 2 }, { first[1], first[3] })
      assert.same({ "unsubscribe", 1 }, { second[1], second[3] })
      local names = { first[2], second[2] }
      table.sort(names)
      assert.same({ "a", "b" }, names)
      assert.same({ "punsubscribe", "p*", 0 }, c:cmd("PUNSUBSCRIBE"))
      assert.same({ "message", "a", "b" }, c:cmd("LRANGE", "l", 0, -1))
      assert.same({ "subscribe", "a", "1" }, c:cmd("LRANGE", "s", 0, -1))
      -- Subscribing again routes messages to read() again.
      assert.same({ "subscribe", "a", 1 }, c:cmd("SUBSCRIBE", "a"))
      pub:cmd("PUBLISH", "a", "again")
      assert.same({ type = "array", value = { "message", "a", "again" } },
        c:read())
      c:close()
      -- RESP3: commands run while subscribed; only pushes are pub/sub.
      local r3 = connect{ timeout = 1 }
      r3:cmd("HELLO", 3)
      assert.same({ "subscribe", "a", 1 }, r3:cmd("SUBSCRIBE", "a"))
      assert.same({ "message", "a", "b" }, r3:cmd("LRANGE", "l", 0, -1))
      pub:cmd("PUBLISH", "a", "pushed")
      assert.same({ "message", "a", "b" }, r3:cmd("LRANGE", "l", 0, -1))
      assert.same({ type = "push", value = { "message", "a", "pushed" } },
        r3:read())
      r3:close()
      pub:close()
    end)
  end)

  it("tags read() values with their RESP type: array, simple_string, "
     .. "push", function()
    run(function()
      local pub = connect()
      local m = connect()
      assert.equal("OK", m:cmd("MONITOR"))
      pub:cmd("SET", "watched", "1")
      local r = m:read()
      assert.equal("simple_string", r.type)
      assert.matches('"SET" "watched" "1"', r.value, 1, true)
      m:close()
      local r3 = connect()
      local hello = r3:cmd("HELLO", 3)
      assert.equal(3, hello.proto)
      assert.same({ "subscribe", "c3", 1 }, r3:cmd("SUBSCRIBE", "c3"))
      pub:cmd("PUBLISH", "c3", "pushed")
      assert.same({ type = "push", value = { "message", "c3", "pushed" } },
        r3:read())
      r3:close()
      pub:close()
    end)
  end)

  it("raises from read() while commands of other tasks are pending",
     function()
    run(function()
      local c = connect()
      local t = lev.spawn(function() return c:cmd("BLPOP", "q", 0.3) end)
      lev.sleep(0.05)
      assert.matches("redis: read: commands are pending on this client",
        raised(c.read, c), 1, true)
      local _, ok, err = t:join()
      fails("not found", ok, err)
      c:close()
    end)
  end)

  it("lets read() time out with nil, \"timeout\" and keeps the "
     .. "subscription", function()
    run(function()
      local s = connect{ timeout = 0.2 }
      local pub = connect()
      s:cmd("SUBSCRIBE", "t")
      local dt, ok, err = h.timed(s.read, s)
      fails("timeout", ok, err)
      assert.is_true(dt > 0.15 and dt < 1, dt)
      pub:cmd("PUBLISH", "t", "still here")
      assert.same({ "message", "t", "still here" }, s:read().value)
      s:close()
      pub:close()
    end)
  end)

  it("returns nil and a text from read() when the server closes the "
     .. "connection", function()
    run(function()
      local s = connect()
      local admin = connect()
      local id = client_id(s)
      s:cmd("SUBSCRIBE", "k")
      lev.spawn(function()
        lev.sleep(0.05)
        admin:cmd("CLIENT", "KILL", "ID", id)
        admin:close()
      end)
      local ok, err, cat = s:read()
      fails("connection closed by server", ok, err)
      assert.equal("eof", cat)
      fails("closed", s:read())
      s:close()
    end)
  end)

  it("returns true from close() every time and nil, \"closed\" from every "
     .. "call after it", function()
    run(function()
      local c = connect()
      assert.is_true(c:close())
      assert.is_true(c:close())
      assert.is_true(c:close(true))
      local ok, err, cat = c:cmd("PING")
      fails("closed", ok, err)
      assert.equal("closed", cat)
      fails("closed", c:get("k"))
      fails("closed", c:pipeline{ { "PING" } })
      fails("closed", c:read())
      local d = connect()
      d:close(true)
      assert.is_true(d:close())
      fails("closed", d:cmd("PING"))
    end)
  end)

  it("fails the pending commands of other tasks with \"closed\" when a "
     .. "task closes the client", function()
    run(function()
      local c = connect()
      local t1 = lev.spawn(function() return c:cmd("BLPOP", "never", 0) end)
      local t2 = lev.spawn(function()
        return c:pipeline{ { "PING" }, { "BLPOP", "never", 0 } }
      end)
      lev.sleep(0.05)
      assert.is_true(c:close())
      local _, ok, err = t1:join()
      fails("closed", ok, err)
      _, ok, err = t2:join()
      fails("closed", ok, err)
      assert.equal(0, redis.pool_size(cfg()))
    end)
  end)

  it("wakes a task waiting in read() with nil, \"closed\" when another "
     .. "task closes the client", function()
    run(function()
      local s = connect()
      s:cmd("SUBSCRIBE", "x")
      local t = lev.spawn(function() return s:read() end)
      lev.sleep(0.05)
      s:close()
      local _, ok, err = t:join()
      fails("closed", ok, err)
    end)
  end)
end)

describe("6. reply mapping:", function()
  it("maps simple strings, integers and bulk strings to Lua strings and "
     .. "integers", function()
    run(function()
      local c = connect()
      assert.equal("PONG", c:cmd("PING"))
      assert.equal("hi", c:cmd("ECHO", "hi"))
      assert.equal("", c:cmd("ECHO", ""))
      assert.equal("integer", math.type(c:cmd("DBSIZE")))
      c:close()
    end)
  end)

  it("keeps integers exact at math.maxinteger and math.mininteger",
     function()
    run(function()
      local c = connect()
      c:cmd("SET", "max", math.maxinteger - 1)
      local v = c:cmd("INCR", "max")
      assert.equal("integer", math.type(v))
      assert.equal(math.maxinteger, v)
      fails("ERR increment or decrement would overflow", c:cmd("INCR", "max"))
      c:cmd("SET", "min", math.mininteger + 1)
      v = c:cmd("DECR", "min")
      assert.equal("integer", math.type(v))
      assert.equal(math.mininteger, v)
      assert.equal(-4611686018427387905,
        c:cmd("DECRBY", "half", 4611686018427387905))
      assert.same({ { math.maxinteger }, { math.mininteger } },
        c:pipeline{ { "INCRBY", "max", 0 }, { "INCRBY", "min", 0 } })

      c:close()
    end)
  end)

  it("maps nested arrays to nested tables, to any depth", function()
    run(function()
      local c = connect()
      local v = c:cmd("EVAL", [[
        local function nest(n) if n == 0 then return {'leaf', n} end
          return {n, nest(n - 1)} end
        return {1, 'two', {3, {'four', {}}}, nest(30)}]], 0)
      assert.equal(1, v[1])
      assert.equal("two", v[2])
      assert.same({ 3, { "four", {} } }, v[3])
      local node, depth = v[4], 0
      while node[1] ~= "leaf" do
        assert.equal(30 - depth, node[1])
        node, depth = node[2], depth + 1
      end
      assert.equal(30, depth)
      assert.same({}, c:cmd("LRANGE", "none", 0, -1))
      c:close()
    end)
  end)

  it("gives a NULL array reply as nil, \"not found\"", function()
    run(function()
      local c = connect()
      fails("not found", c:cmd("BLPOP", "empty", 0.05))
      -- EXEC aborted by WATCH: a NULL array.
      local other = connect()
      assert.equal("OK", c:cmd("WATCH", "w"))
      other:cmd("SET", "w", "changed")
      assert.equal("OK", c:cmd("MULTI"))
      assert.equal("QUEUED", c:cmd("SET", "w", "mine"))
      fails("not found", c:cmd("EXEC"))
      assert.equal("changed", c:cmd("GET", "w"))
      c:close()
      other:close()
    end)
  end)

  it("gives NULL inside an array as redis.null", function()
    run(function()
      local c = connect()
      c:cmd("SET", "a", "1")
      local v = c:cmd("MGET", "a", "missing", "a")
      assert.equal(3, #v)
      assert.equal("1", v[1])
      assert.equal(redis.null, v[2])
      assert.is_not_nil(v[2])
      assert.equal("1", v[3])
      local e = c:cmd("EVAL", "return {1, false, 3}", 0)
      assert.equal(redis.null, e[2])
      c:close()
    end)
  end)

  it("gives an error inside an array as { err = text }, e.g. from EXEC",
     function()
    run(function()
      local c = connect()
      c:cmd("SET", "str", "v")
      assert.equal("OK", c:cmd("MULTI"))
      assert.equal("QUEUED", c:cmd("INCR", "n"))
      assert.equal("QUEUED", c:cmd("LPUSH", "str", "x"))
      assert.equal("QUEUED", c:cmd("GET", "str"))
      local r = c:cmd("EXEC")
      assert.equal(1, r[1])
      assert.same({ err = "WRONGTYPE Operation against a key holding the "
        .. "wrong kind of value" }, r[2])
      assert.equal("v", r[3])
      local e = c:cmd("EVAL", "return {redis.error_reply('MY failure'), "
        .. "redis.status_reply('FINE')}", 0)
      assert.same({ { err = "MY failure" }, "FINE" }, e)
      c:close()
    end)
  end)
end)

describe("RESP3 (HELLO 3) replies:", function()
  it("maps a map to a keyed table, a double to a number and a boolean to "
     .. "a boolean", function()
    run(function()
      local c = connect()
      assert.equal(3, c:cmd("HELLO", 3).proto)
      c:cmd("HSET", "h", "f", "v", "g", 1)
      assert.same({ f = "v", g = "1" }, c:cmd("HGETALL", "h"))
      c:cmd("ZADD", "z", 1.5, "m")
      local d = c:cmd("ZSCORE", "z", "m")
      assert.equal("float", math.type(d))
      assert.equal(1.5, d)
      assert.is_true(c:cmd("EVAL", "redis.setresp(3) return true", 0))
      assert.is_false(c:cmd("EVAL", "redis.setresp(3) return false", 0))
      fails("not found", c:cmd("GET", "missing"))
      local r = c:pipeline{ { "HGETALL", "h" }, { "GET", "missing" },
                            { "ZSCORE", "z", "m" } }
      assert.same({ { { f = "v", g = "1" } }, {}, { 1.5 } }, r)
      c:close()
    end)
  end)
end)

describe("7. the connection pool:", function()
  it("reuses a closed connection, as CLIENT ID shows", function()
    run(function()
      h.drain()
      local c = connect()
      local id = client_id(c)
      c:close()
      assert.equal(1, redis.pool_size(cfg()))
      local d = connect()
      assert.equal(0, redis.pool_size(cfg()))
      assert.equal(id, client_id(d))
      -- Reused as it is: no PING for a connection idle under 5 s.
      assert.equal("client|id", h.client(id).cmd)
      d:close()
    end)
  end)

  it("closes the socket on close(true) instead of pooling it", function()
    local id = run(function()
      h.drain()
      local c = connect()
      local id = client_id(c)
      c:close(true)
      assert.equal(0, redis.pool_size(cfg()))
      local d = connect()
      assert.is_not.equal(id, client_id(d))
      d:close()
      return id
    end)
    assert.is_true(h.gone(id))
  end)

  it("puts a connection into the pool only once however often it is "
     .. "closed", function()
    run(function()
      h.drain()
      local c = connect()
      c:close()
      c:close()
      c:close()
      assert.equal(1, redis.pool_size(cfg()))
      local a, b = connect(), connect()
      assert.is_not.equal(client_id(a), client_id(b))
      a:close(true)
      b:close(true)
    end)
  end)

  -- Each case leaves the connection in a state no other caller may
  -- inherit; close() must then close it.
  local dirty = {
    { "an open MULTI", function(c) assert.equal("OK", c:cmd("MULTI")) end },
    { "a WATCH", function(c) assert.equal("OK", c:cmd("WATCH", "k")) end },
    { "a WATCH of many keys sent in a pipeline", function(c)
        assert.same({ { "OK" } }, c:pipeline{ { "WATCH", "k1", "k2", "k3",
          "k4", "k5", "k6", "k7", "k8", "k9", "k10" } })
      end },
    { "a MULTI that a raising pipeline tried to EXEC", function(c)
        assert.equal("OK", c:cmd("MULTI"))
        raised(c.pipeline, c, { { "EXEC" }, { "SET", "k", true } })
      end },
    { "a subscription", function(c)
        c:cmd("SUBSCRIBE", "ch")
      end },
    { "a pattern subscription ended by PUNSUBSCRIBE", function(c)
        c:cmd("PSUBSCRIBE", "p*")
        c:cmd("PUNSUBSCRIBE", "p*")
      end },
    { "a database changed with SELECT", function(c)
        assert.equal("OK", c:cmd("SELECT", 0))
      end },
    { "RESP3 switched on with HELLO 3", function(c)
        assert.equal(3, c:cmd("HELLO", 3).proto)
      end },
    { "a name set with CLIENT SETNAME", function(c)
        assert.equal("OK", c:cmd("CLIENT", "SETNAME", "mine"))
      end },
    { "a timed-out command", function(c)
        cli("CLIENT", "PAUSE", "300", "ALL")
        fails("timeout", c:cmd("PING"))
        lev.sleep(0.3)
      end, { timeout = 0.1 } },
  }
  for _, case in ipairs(dirty) do
    it("never pools a connection left with " .. case[1], function()
      local id = run(function()
        h.drain(case[3])
        local c = connect(case[3])
        local id = client_id(c)
        case[2](c)
        assert.is_true(c:close())
        assert.equal(0, redis.pool_size(cfg(case[3])))
        local d = connect(case[3])
        assert.is_not.equal(id, client_id(d))
        assert.equal("PONG", d:cmd("PING"))
        d:close()
        return id
      end)
      assert.is_true(h.gone(id))
    end)
  end

  it("keeps a pool per database and per AUTH identity", function()
    cli("ACL", "SETUSER", "bob", "on", ">bobpw", "~*", "&*", "+@all")
    local ok, err = pcall(run, function()
      local bob = cfg{ auth = { user = "bob", pass = "bobpw" } }
      local variants = { {}, { db = 1 }, { auth = bob.auth } }
      for _, v in ipairs(variants) do h.drain(v) end
      h.drain({}, true)
      local ids = {}
      local function open(extra, noauth)
        local c = connect(extra, noauth)
        local id = client_id(c)
        assert.is_nil(ids[id], "a connection was shared across keys")
        ids[id] = true
        return c, id
      end
      local c0, id0 = open({})
      c0:close()
      local c1, id1 = open({ db = 1 })
      assert.matches(" db=1 ", c1:cmd("CLIENT", "INFO"), 1, true)
      c1:close()
      local cb, idb = open({ auth = bob.auth })
      assert.equal("bob", cb:cmd("ACL", "WHOAMI"))
      cb:close()
      local cn, idn = open({}, true)
      assert.equal("default", cn:cmd("ACL", "WHOAMI"))
      cn:close()
      -- Each key hands back its own connection, logged in as its user.
      local back = {
        { {}, false, id0, h.user }, { { db = 1 }, false, id1, h.user },
        { { auth = bob.auth }, false, idb, "bob" },
        { {}, true, idn, "default" },
      }
      for _, b in ipairs(back) do
        local c = connect(b[1], b[2])
        assert.equal(b[3], client_id(c))
        assert.equal(b[4], c:cmd("ACL", "WHOAMI"))
        c:close()
      end
      -- The string form shares the default user's db 0 pool.
      local s = assert(redis.connect(h.addr))
      assert.equal(idn, client_id(s))
      s:close()
    end)
    cli("ACL", "DELUSER", "bob")
    assert(ok, err)
  end)

  it("drops a pooled connection that the server kills while it is idle",
     function()
    run(function()
      h.drain()
      local admin = connect{ db = 9 }
      local c = connect()
      local id = client_id(c)
      c:close()
      assert.equal(1, redis.pool_size(cfg()))
      assert.equal(1, admin:cmd("CLIENT", "KILL", "ID", id))
      lev.sleep(0.05)
      assert.equal(0, redis.pool_size(cfg()))
      local d = connect()
      assert.is_not.equal(id, client_id(d))
      assert.equal("PONG", d:cmd("PING"))
      d:close()
      admin:close(true)
    end)
  end)

  it("does not hand out a pooled connection that the server closed before "
     .. "the loop could notice", function()
    run(function()
      h.drain()
      local c = connect()
      local id = client_id(c)
      c:close()
      -- redis-cli blocks the process: the loop does not run in between.
      assert.equal("1", cli("CLIENT", "KILL", "ID", tostring(id)))
      local d = connect()
      local nid = assert(client_id(d))
      assert.is_not.equal(id, nid)
      d:close()
    end)
  end)

  it("checks a connection idle for 5 s with PING (dropping it when the "
     .. "check fails) and reuses a younger one as it is", function()
    cli("ACL", "SETUSER", "carol", "on", ">carolpw", "~*", "&*", "+@all")
    local carol = { auth = { user = "carol", pass = "carolpw" } }
    local ok, err = pcall(run, function()
      for _, v in ipairs{ { db = 4 }, { db = 5 }, { db = 6 }, carol } do
        h.drain(v)
      end
      local function pooled(extra)
        local c = connect(extra)
        local id = client_id(c)
        c:close()
        return id
      end
      -- db 4: idle from now; carol: two idle connections; db 5: in use
      -- all along, pooled only at the end; db 6: pooled 0.8 s later.
      local old = pooled{ db = 4 }
      local carol1, carol2 = connect(carol), connect(carol)
      local cid1, cid2 = client_id(carol1), client_id(carol2)
      carol1:close()
      carol2:close()
      local busy = connect{ db = 5 }
      local busy_id = client_id(busy)
      lev.sleep(0.8)
      local young = pooled{ db = 6 }
      lev.sleep(4.5)
      -- 5.3 s idle: checked with PING first, then reused.
      local c = connect{ db = 4 }
      assert.equal("ping", h.client(old).cmd)
      assert.equal(old, client_id(c))
      c:close()
      -- 4.5 s idle: reused as it is.
      c = connect{ db = 6 }
      assert.equal("client|id", h.client(young).cmd)
      assert.equal(young, client_id(c))
      c:close()
      -- Open for 5.3 s but idle only from close(): reused as it is.
      assert.equal("OK", busy:cmd("SET", "busy", "1"))
      busy:close()
      c = connect{ db = 5 }
      assert.equal("set", h.client(busy_id).cmd)
      assert.equal(busy_id, client_id(c))
      c:close()
      -- carol may no longer PING: both idle connections fail the check
      -- and are dropped, and a new one is opened.
      cli("ACL", "SETUSER", "carol", "-ping")
      assert.equal(2, redis.pool_size(cfg(carol)))
      c = connect(carol)
      local id = client_id(c)
      assert.is_true(id ~= cid1 and id ~= cid2)
      assert.equal(0, redis.pool_size(cfg(carol)))
      assert.equal("hi", c:cmd("ECHO", "hi"))
      c:close(true)
      assert.is_true(h.gone(cid1))
      assert.is_true(h.gone(cid2))
    end)
    cli("ACL", "DELUSER", "carol")
    assert(ok, err)
  end)

  it("keeps at most REDIS_CLIENT_POOL_SIZE idle connections per key "
     .. "(default 20, 0 turns pooling off, invalid values ignored)",
     function()
    local script = [[
      local lev, redis = require("lev"), require("redis")
      local n = tonumber(os.getenv("CHILD_N"))
      local cfg = { host = H.host, port = H.port, db = 7,
                    auth = { user = H.user, pass = H.pass } }
      lev.run(function()
        local admin = assert(redis.connect{ host = H.host, port = H.port })
        local cs, ids = {}, {}
        for i = 1, n do
          cs[i] = assert(redis.connect(cfg))
          ids[i] = cs[i]:cmd("CLIENT", "ID")
        end
        for i = 1, n do cs[i]:close() end
        local pooled, alive = redis.pool_size(cfg), 0
        for _ = 1, 100 do
          local list = admin:cmd("CLIENT", "LIST")
          alive = 0
          for _, id in ipairs(ids) do
            if list:find("id=" .. id .. " ", 1, true) then alive = alive + 1 end
          end
          if alive == pooled then break end
          lev.sleep(0.02)
        end
        local reused = 0
        for i = 1, n do cs[i] = assert(redis.connect(cfg)) end
        for i = 1, n do
          local id = cs[i]:cmd("CLIENT", "ID")
          for _, old in ipairs(ids) do
            if old == id then reused = reused + 1 end
          end
          cs[i]:close(true)
        end
        io.write(("pooled=%d alive=%d reused=%d\n"):format(pooled, alive,
          reused))
        admin:close(true)
      end)
    ]]
    local cases = {
      { { REDIS_CLIENT_POOL_SIZE = "2", CHILD_N = "5" }, 2 },
      { { REDIS_CLIENT_POOL_SIZE = "0", CHILD_N = "3" }, 0 },
      { { REDIS_CLIENT_POOL_SIZE = false, CHILD_N = "22" }, 20 },
      { { REDIS_CLIENT_POOL_SIZE = "abc", CHILD_N = "21" }, 20 },
      { { REDIS_CLIENT_POOL_SIZE = "-1", CHILD_N = "21" }, 20 },
      { { REDIS_CLIENT_POOL_SIZE = "2.5", CHILD_N = "21" }, 20 },
      { { REDIS_CLIENT_POOL_SIZE = "25", CHILD_N = "26" }, 25 },
    }
    local children = {}
    for i, case in ipairs(cases) do children[i] = h.child(case[1], script) end
    for i, case in ipairs(cases) do
      local out, ok = children[i].result()
      local want = case[2]
      assert.is_true(ok, out)
      assert.equal(("pooled=%d alive=%d reused=%d\n"):format(want, want, want),
        out, "REDIS_CLIENT_POOL_SIZE="
          .. tostring(case[1].REDIS_CLIENT_POOL_SIZE))
    end
  end)
end)

describe("8. timeouts:", function()
  it("fails a command held up past timeout with nil, \"timeout\", fails "
     .. "every other pending command the same way and closes the connection",
     function()
    local id = run(function()
      local c = connect{ timeout = 0.2 }
      local id = client_id(c)
      assert.equal("OK", cli("CLIENT", "PAUSE", "600", "ALL"))
      local t1 = lev.spawn(function() return c:cmd("INCR", "late") end)
      local t2 = lev.spawn(function()
        return c:pipeline{ { "ECHO", "p1" }, { "ECHO", "p2" } }
      end)
      local dt, ok, err, cat = h.timed(c.cmd, c, "ECHO", "mine")
      fails("timeout", ok, err)
      assert.equal("timeout", cat)
      assert.is_true(dt > 0.15 and dt < 0.5, dt)
      local _, ok1, err1 = t1:join()
      fails("timeout", ok1, err1)
      local _, ok2, err2 = t2:join()
      fails("timeout", ok2, err2)
      fails("closed", c:cmd("PING"))
      assert.is_true(c:close())
      assert.equal(0, redis.pool_size(cfg{ timeout = 0.2 }))
      -- A later client is a new connection that sees only its own replies.
      local d = connect{ timeout = 2 }
      assert.is_not.equal(id, client_id(d))
      assert.equal("fresh", d:cmd("ECHO", "fresh"))
      assert.same({ { "p" } }, d:pipeline{ { "ECHO", "p" } })
      lev.sleep(0.2)
      assert.equal("again", d:cmd("ECHO", "again"))
      d:close()
      return id
    end)
    assert.is_true(h.gone(id))
  end)

  it("bounds the connect handshake: AUTH held up past timeout gives nil, "
     .. "\"timeout\" and no client", function()
    local before = #h.clients()
    run(function()
      h.drain{ db = 8 }
      assert.equal("OK", cli("CLIENT", "PAUSE", "500", "ALL"))
      local dt, ok, err, cat = h.timed(redis.connect,
        cfg{ db = 8, timeout = 0.15 })
      fails("timeout", ok, err)
      assert.equal("timeout", cat)
      assert.is_true(dt > 0.1 and dt < 0.45, dt)
    end)
    assert.is_true(h.eventually(function()
      return #h.clients() == before
    end))
  end)

  it("extends the wait by a blocking command's own time: BLPOP k 1 with "
     .. "timeout 0.5 waits about 1 s and gives nil, \"not found\"", function()
    run(function()
      local c = connect{ timeout = 0.5 }
      local dt, ok, err = h.timed(c.cmd, c, "BLPOP", "k", 1)
      fails("not found", ok, err)
      assert.is_true(dt > 0.9 and dt < 1.4, dt)
      assert.equal("PONG", c:cmd("PING"))
      c:close()
    end)
  end)

  it("gives a command its whole timeout even when the task kept the loop "
     .. "busy before sending it", function()
    run(function()
      local c = connect{ timeout = 0.3 }
      assert.equal("PONG", c:cmd("PING"))
      os.execute("sleep 0.4") -- the loop's clock falls behind
      fails("not found", c:cmd("BLPOP", "k", 0.1))
      c:close()
    end)
  end)

  it("extends the wait for every blocking family: BRPOP, BLMOVE, BZPOPMIN, "
     .. "BLMPOP, XREAD BLOCK, WAIT, also inside a pipeline", function()
    local cases = {
      { "BRPOP", "k", 0.6 },
      { "BLMOVE", "a", "b", "LEFT", "RIGHT", 0.6 },
      { "BZPOPMIN", "z", 0.6 },
      { "BLMPOP", 0.6, 1, "k", "LEFT" },
      { "XREAD", "BLOCK", 600, "STREAMS", "s", "$" },
      { "WAIT", 1, 600 },
    }
    run(function()
      local tasks = {}
      for i, args in ipairs(cases) do
        tasks[i] = lev.spawn(function()
          local c = connect{ timeout = 0.3 }
          local dt, ok, err = h.timed(c.cmd, c, table.unpack(args))
          local pdt, res = h.timed(c.pipeline, c, { { "PING" }, args })
          c:close()
          return dt, ok, err, pdt, res
        end)
      end
      for i, t in ipairs(tasks) do
        local _, dt, ok, err, pdt, res = t:join()
        local name = cases[i][1]
        if name == "WAIT" then
          assert.equal(0, ok, name)
          assert.same({ { "PONG" }, { 0 } }, res)
        else
          assert.equal("not found", err, name)
          assert.is_nil(ok)
          assert.same({ { "PONG" }, {} }, res)
        end
        assert.is_true(dt > 0.5 and dt < 1, name .. " took " .. dt)
        assert.is_true(pdt > 0.5 and pdt < 1, name .. " took " .. pdt)
      end
    end)
  end)

  it("passes a blocking time too large for a deadline to the server and "
     .. "returns its error", function()
    run(function()
      local c = connect{ timeout = 0.3 }
      for _, v in ipairs{ math.huge, 1e300, 1e17 } do
        fails_like("^ERR timeout", c:cmd("BLPOP", "k", v))
      end
      assert.equal("PONG", c:cmd("PING"))
      c:close()
    end)
  end)

  it("delivers what a blocking command gets after timeout has passed, and "
     .. "never times out BLPOP k 0", function()
    run(function()
      local c = connect{ timeout = 0.2 }
      local pusher = connect()
      lev.spawn(function()
        lev.sleep(0.4)
        pusher:cmd("RPUSH", "k", "v1")
        lev.sleep(0.4)
        pusher:cmd("RPUSH", "k", "v2")
      end)
      assert.same({ "k", "v1" }, c:cmd("BLPOP", "k", 2))
      assert.same({ { { "k", "v2" } } }, c:pipeline{ { "BLPOP", "k", 0 } })
      pusher:close()
      c:close()
    end)
  end)
end)

describe("8. timeouts, with the server stopped (SIGSTOP):", function()
  -- The server's own pid; it is always continued again.
  local function with_server_stopped(body)
    local pid = cli("INFO", "server"):match("process_id:(%d+)")
    assert(pid, "no process_id in INFO server")
    assert(os.execute("kill -STOP " .. pid))
    local ok, err = pcall(body)
    assert(os.execute("kill -CONT " .. pid))
    assert(ok, err)
  end

  it("bounds the wait for a write that the server does not read, and for "
     .. "a handshake it does not answer", function()
    run(function()
      h.drain{ db = 10 }
      local c = connect{ timeout = 0.3 }
      local big = string.rep("x", 64 * 1024 * 1024)
      with_server_stopped(function()
        local dt, ok, err = h.timed(c.cmd, c, "SET", "big", big)
        fails("timeout", ok, err)
        assert.is_true(dt > 0.25 and dt < 1, dt)
        dt, ok, err = h.timed(redis.connect, cfg{ db = 10, timeout = 0.2 })
        fails("timeout", ok, err)
        assert.is_true(dt > 0.15 and dt < 1, dt)
      end)
      fails("closed", c:cmd("PING"))
      c:close()
      local d = connect()
      assert.equal("PONG", d:cmd("PING"))
      d:close()
    end)
  end)
end)

describe("9. errors:", function()
  it("uses the stable texts: not found, the server's text, timeout, "
     .. "connection refused, closed, invalid config", function()
    run(function()
      local c = connect{ timeout = 1 }
      assert.same({ nil, "not found" }, { c:cmd("GET", "nope") })
      local _, text = c:cmd("LPUSH")
      assert.matches("^ERR wrong number of arguments for 'lpush' command$",
        text)
      c:close()
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
      assert.same({ nil, "connection refused", "io" },
        { redis.connect(cfg{ port = 1 }) })
      local _, cerr = redis.connect(cfg{ port = -1 })
      assert.matches("^invalid config: port", cerr)
    end)
  end)
end)

describe("concurrency:", function()
  it("counts exactly 10,000 from 100 tasks x 100 INCR, each task with its "
     .. "own client", function()
    local seen = run(function()
      local tasks, seen = {}, {}
      for i = 1, 100 do
        tasks[i] = lev.spawn(function()
          local c = connect()
          for _ = 1, 100 do
            local n = assert(c:cmd("INCR", "own"))
            seen[#seen + 1] = n
          end
          c:close()
        end)
      end
      for i = 1, 100 do assert(tasks[i]:join()) end
      return seen
    end)
    assert.equal("10000", cli("GET", "own"))
    table.sort(seen)
    for i = 1, 10000 do
      assert(seen[i] == i, "INCR results are not 1..10000")
    end
  end)

  it("counts exactly 10,000 from 100 tasks x 100 INCR through one shared "
     .. "client, each task getting its own replies", function()
    run(function()
      local c = connect()
      local tasks, seen = {}, {}
      for i = 1, 100 do
        tasks[i] = lev.spawn(function()
          local last = 0
          for j = 1, 100 do
            local n = assert(c:cmd("INCR", "shared"))
            assert(n > last, "replies out of order")
            last = n
            seen[n] = true
            -- Interleave another command whose reply is easy to check.
            if j % 10 == 0 then
              assert(c:cmd("ECHO", "t" .. i) == "t" .. i)
            end
          end
        end)
      end
      for i = 1, 100 do assert(tasks[i]:join()) end
      assert.equal("10000", c:cmd("GET", "shared"))
      for n = 1, 10000 do assert(seen[n], "missing INCR result " .. n) end
      c:close()
    end)
  end)
end)
