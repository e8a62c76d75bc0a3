-- Contract section 11: the handshake (protocol, name, connect_timeout),
-- the RESP2 fallback, RESP3 replies and pushes, the pool key.
--
-- Real servers: the suite's main one (int_helper) and servers of this
-- spec's own (redis_proc): one with DEBUG enabled (DEBUG PROTOCOL sends
-- every RESP3 type, a push included), one with HELLO renamed away (it
-- answers HELLO as Redis 5 does: ERR unknown command).

local h = require("int_helper")
local lev = require("lev")
local redis = require("redis")
local fp = require("fault_proxy")
local redis_proc = require("redis_proc")

local run = h.run

-- CLIENT INFO of a connection, as a table of its fields (from itself).
local function info(c)
  local text = assert(c:cmd("CLIENT", "INFO"))
  local t = {}
  for k, v in text:gmatch("(%S+)=(%S*)") do t[k] = v end
  return t
end

-- Calls per command from INFO commandstats ("client|setname" = 1, ...).
local function commandstats(c)
  local text = assert(c:cmd("INFO", "commandstats"))
  local t = {}
  for name, calls in text:gmatch("cmdstat_([^:]+):calls=(%d+)") do
    t[name] = tonumber(calls)
  end
  return t
end

local function own_cfg(srv, extra)
  local t = { host = "127.0.0.1", port = srv.port,
              auth = { user = redis_proc.user, pass = redis_proc.pass } }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

describe("handshake: config fields", function()
  it("fills protocol 2, no name, connect_timeout 10 and reconnect false by "
     .. "default", function()
    run(function()
      local c = h.connect()
      assert.equal(2, c.cfg.protocol)
      assert.is_nil(c.cfg.name)
      assert.equal(10, c.cfg.connect_timeout)
      assert.is_false(c.cfg.reconnect)
      assert.equal(2, c.protocol)
      c:close()
    end)
  end)

  it("keeps the new fields normalized in cfg, reconnect as the full table "
     .. "with every default", function()
    run(function()
      h.drain({ protocol = 3, name = "cfg-test", connect_timeout = 2,
                reconnect = true })
      local c = h.connect({ protocol = 3.0, name = "cfg-test",
                            connect_timeout = 2, reconnect = true })
      assert.equal(3, c.cfg.protocol)
      assert.equal(math.type(c.cfg.protocol), "integer")
      assert.equal("cfg-test", c.cfg.name)
      assert.equal(2, c.cfg.connect_timeout)
      assert.same({ strategy = "exponential", base = 0.1, max = 5,
                    jitter = true, wait = 0 }, c.cfg.reconnect)
      assert.is_nil(c.cfg.reconnect.attempts)
      c:close(true)
      local cases = {
        { { base = 0.5 }, { strategy = "exponential", base = 0.5, max = 5,
                            jitter = true, wait = 0 } },
        { { strategy = "fixed", delay = 2, jitter = false, attempts = 3,
            wait = 1.5 },
          { strategy = "fixed", delay = 2, jitter = false, attempts = 3,
            wait = 1.5 } },
        { { strategy = "fixed" }, { strategy = "fixed", delay = 1,
                                    jitter = true, wait = 0 } },
        { { max = 1, attempts = 2.0, wait = 0 },
          { strategy = "exponential", base = 0.1, max = 1, jitter = true,
            attempts = 2, wait = 0 } },
      }
      for _, case in ipairs(cases) do
        local d = assert(redis.connect(h.cfg({ reconnect = case[1] })))
        assert.same(case[2], d.cfg.reconnect)
        d:close(true)
      end
    end)
  end)

  it("returns nil, 'invalid config: <field> ...' for every bad value of the "
     .. "new fields", function()
    local bad = {
      { { protocol = 1 }, "protocol must be 2 or 3" },
      { { protocol = "3" }, "protocol must be 2 or 3" },
      { { protocol = 3.5 }, "protocol must be 2 or 3" },
      { { name = "" }, "name must be a non-empty string of printable ASCII "
        .. "without spaces" },
      { { name = "a b" }, "name must be a non-empty string" },
      { { name = "a\nb" }, "name must be a non-empty string" },
      { { name = "caf\xc3\xa9" }, "name must be a non-empty string" },
      { { name = 7 }, "name must be a non-empty string" },
      { { connect_timeout = 0 }, "connect_timeout must be a number > 0 "
        .. "(seconds)" },
      { { connect_timeout = -1 }, "connect_timeout must be a number > 0" },
      { { connect_timeout = "1" }, "connect_timeout must be a number > 0" },
      { { connect_timeout = 0 / 0 }, "connect_timeout must be a number > 0" },
      { { connect_timeout = math.huge },
        "connect_timeout must be a number > 0" },
      { { reconnect = 1 }, "reconnect must be true, false or a table" },
      { { reconnect = "yes" }, "reconnect must be true, false or a table" },
      { { reconnect = { strategy = "linear" } },
        'reconnect.strategy must be "exponential" or "fixed"' },
      { { reconnect = { base = 0 } },
        "reconnect.base must be a number > 0 (seconds)" },
      { { reconnect = { base = "1" } },
        "reconnect.base must be a number > 0 (seconds)" },
      { { reconnect = { max = -1 } },
        "reconnect.max must be a number > 0 (seconds)" },
      { { reconnect = { delay = 1 } },
        'reconnect.delay is for strategy "fixed"' },
      { { reconnect = { strategy = "fixed", base = 1 } },
        'reconnect.base and reconnect.max are for strategy "exponential"' },
      { { reconnect = { strategy = "fixed", delay = -1 } },
        "reconnect.delay must be a number >= 0 (seconds)" },
      { { reconnect = { jitter = 1 } }, "reconnect.jitter must be a boolean" },
      { { reconnect = { attempts = 0 } },
        "reconnect.attempts must be an integer >= 1" },
      { { reconnect = { attempts = 1.5 } },
        "reconnect.attempts must be an integer >= 1" },
      { { reconnect = { wait = -0.1 } },
        "reconnect.wait must be a number >= 0 (seconds)" },
      { { reconnect = { wait = 0 / 0 } },
        "reconnect.wait must be a number >= 0 (seconds)" },
    }
    run(function()
      for _, case in ipairs(bad) do
        local c, err, cat = redis.connect(h.cfg(case[1]))
        assert.is_nil(c)
        assert.equal("config", cat)
        assert.truthy(err:find("invalid config: " .. case[2], 1, true),
                      "expected '" .. case[2] .. "', got '" .. err .. "'")
      end
    end)
  end)
end)

describe("handshake: protocol 3", function()
  local srv
  setup(function()
    srv = redis_proc.start{ conf = { "enable-debug-command yes" } }
  end)
  teardown(function() srv:stop() end)

  it("is one HELLO 3 AUTH user pass SETNAME name, then SELECT; nothing else",
     function()
    run(function()
      local admin = assert(redis.connect(own_cfg(srv)))
      assert.equal("OK", admin:cmd("CONFIG", "RESETSTAT"))
      admin:close(true)
      local c = assert(redis.connect(own_cfg(srv, { protocol = 3,
        name = "hs-one", db = 2 })))
      local stats = commandstats(c)
      assert.equal(1, stats.hello)
      assert.is_nil(stats.auth)
      assert.is_nil(stats["client|setname"])
      assert.equal(1, stats.select)
      assert.equal(3, c.protocol)
      local me = info(c)
      assert.equal("3", me.resp)
      assert.equal("hs-one", me.name)
      assert.equal("alice", me.user)
      assert.equal("2", me.db)
      c:close(true)
    end)
  end)

  it("without protocol 3 sends AUTH and CLIENT SETNAME (RESP2)", function()
    run(function()
      local admin = assert(redis.connect(own_cfg(srv)))
      assert.equal("OK", admin:cmd("CONFIG", "RESETSTAT"))
      admin:close(true)
      local c = assert(redis.connect(own_cfg(srv, { name = "hs-two" })))
      local stats = commandstats(c)
      assert.is_nil(stats.hello)
      assert.equal(1, stats.auth)
      assert.equal(1, stats["client|setname"])
      assert.equal(2, c.protocol)
      local me = info(c)
      assert.equal("2", me.resp)
      assert.equal("hs-two", me.name)
      c:close(true)
    end)
  end)

  it("maps every RESP3 reply type as the README documents", function()
    run(function()
      local c = assert(redis.connect(own_cfg(srv, { protocol = 3 })))
      local function dp(t) return c:cmd("DEBUG", "PROTOCOL", t) end
      assert.equal("Hello World", dp("string"))
      assert.equal(12345, dp("integer"))
      assert.equal(3.141, dp("double"))
      assert.equal("float", math.type(dp("double")))
      assert.equal("1234567999999999999999999999999999999", dp("bignum"))
      assert.same({ nil, "not found" }, { dp("null") })
      assert.same({ 0, 1, 2 }, dp("array"))
      assert.same({ 0, 1, 2 }, dp("set"))
      assert.same({ [0] = false, [1] = true, [2] = false }, dp("map"))
      assert.equal("Some real reply following the attribute", dp("attrib"))
      assert.equal("This is a verbatim\nstring", dp("verbatim"))
      assert.is_true(dp("true"))
      assert.is_false(dp("false"))
      local m = c:cmd("HELLO", 3)
      assert.equal("redis", m.server)
      assert.equal(3, m.proto)
      c:close(true)
    end)
  end)

  it("never gives a push to a command: DEBUG PROTOCOL push gets the reply "
     .. "that follows, the push waits for read()", function()
    run(function()
      local c = assert(redis.connect(own_cfg(srv, { protocol = 3 })))
      assert.equal("Some real reply following the push reply",
                   c:cmd("DEBUG", "PROTOCOL", "push"))
      assert.equal("after", c:cmd("ECHO", "after"))
      assert.same({ type = "push", value = { "server-cpu-usage", 42 } },
                  c:read())
      c:close(true)
    end)
  end)
end)

describe("handshake: CLIENT TRACKING pushes", function()
  it("delivers a real invalidate push to read(), never to the next command",
     function()
    run(function()
      local c = h.connect({ protocol = 3 })
      local other = h.connect()
      assert.equal("OK", c:cmd("CLIENT", "TRACKING", "on"))
      assert.equal("OK", other:cmd("SET", "hs:tracked", "1"))
      assert.equal("1", c:cmd("GET", "hs:tracked"))
      assert.equal("OK", other:cmd("SET", "hs:tracked", "2"))
      -- The server has written the push before it answered SET: it is on
      -- its way to c ahead of every later reply.
      for i = 1, 20 do
        assert.equal("e" .. i, c:cmd("ECHO", "e" .. i))
      end
      assert.same({ type = "push", value = { "invalidate", { "hs:tracked" } } },
                  c:read())
      other:close()
      c:close() -- tracking makes it unclean: closed, not pooled
      assert.equal(0, redis.pool_size(h.cfg({ protocol = 3 })))
    end)
  end)
end)

describe("handshake: RESP2 fallback", function()
  local srv
  setup(function()
    srv = redis_proc.start{ conf = { 'rename-command HELLO ""' } }
  end)
  teardown(function() srv:stop() end)

  it("answers HELLO as Redis 5 does (the server under test)", function()
    run(function()
      local c = assert(redis.connect(own_cfg(srv)))
      local ok, err = c:cmd("HELLO", 3)
      assert.is_nil(ok)
      assert.truthy(err:find("^ERR unknown command 'HELLO'"))
      c:close(true)
    end)
  end)

  it("does AUTH, CLIENT SETNAME and SELECT instead, and says protocol 2",
     function()
    run(function()
      local c = assert(redis.connect(own_cfg(srv, { protocol = 3,
        name = "fb-one", db = 3 })))
      assert.equal(2, c.protocol)
      assert.equal(3, c.cfg.protocol)
      local me = info(c)
      assert.equal("2", me.resp)
      assert.equal("fb-one", me.name)
      assert.equal("alice", me.user)
      assert.equal("3", me.db)
      -- RESP2 replies: HGETALL is a flat array.
      assert.equal(1, c:cmd("HSET", "h", "f", "v"))
      assert.same({ "f", "v" }, c:cmd("HGETALL", "h"))
      c:close()
    end)
  end)

  it("pools the fallen-back connection apart and hands it out as protocol 2",
     function()
    run(function()
      local cfg = own_cfg(srv, { protocol = 3, name = "fb-pool" })
      local c = assert(redis.connect(cfg))
      local id = c:cmd("CLIENT", "ID")
      c:close()
      assert.equal(0, redis.pool_size(cfg)) -- not under the RESP3 key
      local again = assert(redis.connect(cfg))
      assert.equal(id, again:cmd("CLIENT", "ID"))
      assert.equal(2, again.protocol)
      -- a protocol 2 config of the same fields does not get it
      local two = assert(redis.connect(own_cfg(srv, { name = "fb-pool" })))
      assert.not_equal(id, two:cmd("CLIENT", "ID"))
      again:close(true)
      two:close(true)
    end)
  end)

  it("fails on a wrong password with the server's text, never the password",
     function()
    run(function()
      local c, err, cat = redis.connect(own_cfg(srv, { protocol = 3,
        auth = { user = "alice", pass = "wrong-secret" } }))
      assert.is_nil(c)
      assert.truthy(err:find("^WRONGPASS"))
      assert.equal("redis", cat)
      assert.is_nil(err:find("wrong-secret", 1, true))
    end)
  end)
end)

describe("handshake: failures", function()
  it("fails a protocol 3 connect on a wrong password, without falling back",
     function()
    run(function()
      local c, err, cat = redis.connect(h.cfg({ protocol = 3,
        auth = { user = h.user, pass = "not-the-pass" } }))
      assert.is_nil(c)
      assert.truthy(err:find("^WRONGPASS"), err)
      assert.equal("redis", cat)
      assert.is_nil(err:find("not-the-pass", 1, true))
      -- and a user that does not exist: the same, not a fallback
      c, err = redis.connect(h.cfg({ protocol = 3,
        auth = { user = "nobody", pass = "x" } }))
      assert.is_nil(c)
      assert.truthy(err:find("^WRONGPASS"), err)
    end)
  end)

  it("fails a protocol 3 connect whose SELECT is rejected", function()
    run(function()
      local c, err = redis.connect(h.cfg({ protocol = 3, db = 100000 }))
      assert.is_nil(c)
      assert.equal("ERR DB index is out of range", err)
    end)
  end)

  it("ends ssl = true against a plain server (no answer to the TLS hello) "
     .. "with nil, 'timeout' after connect_timeout, without timeout set",
     function()
    run(function()
      local c, err, cat = redis.connect(h.cfg({ ssl = true,
                                                connect_timeout = 0.3 }))
      assert.is_nil(c)
      assert.equal("timeout", err)
      assert.equal("timeout", cat)
    end)
  end)

  it("bounds a handshake the server never answers by connect_timeout, or "
     .. "timeout when that is smaller, and leaves no connection open",
     function()
    run(function()
      local p = assert(fp.start{ upstream_port = h.port, blackhole = true })
      -- Each connect is bounded by a generous outer limit: ending inside it
      -- with the connect's own three values shows the smaller bound won.
      for _, extra in ipairs({ { connect_timeout = 0.2 },
                               { connect_timeout = 30, timeout = 0.2 },
                               { connect_timeout = 0.2, timeout = 30 },
                               { connect_timeout = 0.2, protocol = 3 } }) do
        local cfg = h.cfg(extra)
        cfg.port = p:port()
        local r = table.pack(lev.timeout(20, redis.connect, cfg))
        assert.same({ n = 3, nil, "timeout", "timeout" }, r)
      end
      for _ = 1, 100 do
        if p.counters.active == 0 then break end
        lev.sleep(0.01)
      end
      assert.equal(0, p.counters.active)
      assert.equal(4, p.counters.connections)
      p:close()
    end)
  end)

  it("does not apply connect_timeout to commands after the connect",
     function()
    run(function()
      local c = h.connect({ connect_timeout = 0.05 })
      -- BLPOP waits longer than connect_timeout and ends by itself.
      assert.same({ nil, "not found" },
                  { c:cmd("BLPOP", "hs:nothing", 0.3) })
      c:close()
    end)
  end)
end)

describe("handshake: pool key", function()
  it("never hands a RESP3 connection to a RESP2 config, nor one named a to "
     .. "a config named b", function()
    run(function()
      local configs = { {}, { protocol = 3 }, { name = "a" }, { name = "b" },
                        { protocol = 3, name = "a" } }
      for _, extra in ipairs(configs) do h.drain(extra) end
      local ids = {}
      for i, extra in ipairs(configs) do
        local c = h.connect(extra)
        ids[i] = c:cmd("CLIENT", "ID")
        assert.equal(0, redis.pool_size(h.cfg(extra)))
        c:close()
        assert.equal(1, redis.pool_size(h.cfg(extra)))
      end
      -- each config gets back its own connection, and only that one
      for i, extra in ipairs(configs) do
        local c = h.connect(extra)
        assert.equal(ids[i], c:cmd("CLIENT", "ID"))
        assert.equal(extra.protocol or 2, c.protocol)
        if extra.name then
          assert.equal(extra.name, c:cmd("CLIENT", "GETNAME"))
        end
        c:close(true)
      end
    end)
  end)
end)
