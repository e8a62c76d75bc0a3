-- The client against redis.mock: the client object (a table with shared
-- methods), the seams Lua modules build on (redis.core.methods, attach,
-- wait_closed, set_fallback), and the client's fault handling driven by
-- the mock's fault scripting.
local lev = require("lev")
local redis = require("redis")
local core = require("redis.core")
local mh = require("mock_helper")
local mock = require("redis.mock")

local with_mock, addr = mh.with_mock, mh.addr

describe("the client object", function()
  after_each(mh.assert_clean)

  it("is a table: pairs works, user fields stay, cfg is where it was",
     function()
    with_mock(function(srv)
      local c = assert(redis.connect(addr(srv)))
      assert.equal("table", type(c))
      assert.is_true(core.is_client(c))
      c.my_field = 42
      assert.equal(42, c.my_field)
      local seen = {}
      for k, v in pairs(c) do seen[k] = v end
      assert.equal(42, seen.my_field)
      assert.equal(c.cfg, seen.cfg)
      assert.equal("127.0.0.1", c.cfg.host)
      assert.equal(srv:port(), c.cfg.port)
      assert.equal("OK", c:set("k", "v"))
      assert.equal("v", c:get("k"))
      assert.equal("v", c:cmd("GET", "k"))
      assert.matches("^redis.client %(127.0.0.1:%d+%): ", tostring(c))
      c:close()
      assert.matches("closed", tostring(c))
    end)
  end)

  it("shares one method table, reachable as redis.core.methods", function()
    with_mock(function(srv)
      local a = assert(redis.connect(addr(srv)))
      local b = assert(redis.connect(addr(srv)))
      assert.equal(getmetatable(a), getmetatable(b))
      assert.equal(core.methods, getmetatable(a).__index)
      assert.equal(a.cmd, b.cmd)
      assert.equal(a.get, b.get) -- sugar is cached and shared
      core.methods.echo_twice = function(self, s)
        return self:cmd("ECHO", s .. s)
      end
      assert.equal("abab", b:echo_twice("ab"))
      core.methods.echo_twice = nil
      a:close()
      b:close()
    end)
  end)

  it("keeps the private state out of reach: a plain table is no client",
     function()
    with_mock(function(srv)
      local c = assert(redis.connect(addr(srv)))
      local fake = setmetatable({}, getmetatable(c))
      assert.is_false(core.is_client(fake))
      local ok, err = pcall(fake.cmd, fake, "PING")
      assert.is_false(ok)
      assert.matches("redis.client expected, got redis.client", err)
      for _, v in pairs(c) do assert.not_equal("userdata", type(v)) end
      c:close()
    end)
  end)

  it("bounds the method-sugar cache (a million distinct names)", function()
    with_mock(function(srv)
      local c = assert(redis.connect(addr(srv)))
      local function cached()
        local n = 0
        for _ in pairs(core.methods) do n = n + 1 end
        return n
      end
      for i = 1, 5000 do local _ = c["name" .. i] end
      local n1 = cached()
      collectgarbage(); collectgarbage()
      local kb = collectgarbage("count")
      for i = 5001, 1000000 do local _ = c["name" .. i] end
      collectgarbage(); collectgarbage()
      assert.equal(n1, cached())
      assert.is_true(n1 <= 1100, "cache holds " .. n1)
      assert.is_true(collectgarbage("count") < kb + 1024,
                     "heap grew by " .. (collectgarbage("count") - kb) .. " KB")
      -- names past the bound still work
      assert.equal("PONG", c:ping())
      c:close()
    end)
  end)
end)

describe("seams for reconnect", function()
  after_each(mh.assert_clean)

  it("attach moves a fresh connection into a client", function()
    with_mock(function(srv)
      local c = assert(redis.connect(addr(srv)))
      local id1 = c:cmd("CLIENT", "ID")
      c:close(true)
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
      local fresh = assert(redis.connect(addr(srv)))
      local id2 = fresh:cmd("CLIENT", "ID")
      core.attach(c, fresh)
      assert.equal(id2, c:cmd("CLIENT", "ID"))
      assert.not_equal(id1, id2)
      assert.same({ nil, "closed", "closed" }, { fresh:cmd("PING") })
      c:close()
    end)
  end)

  it("attach over a live connection fails what is pending on it", function()
    with_mock(function(srv)
      srv:script{ command = "BLPOP", silent = true }
      local c = assert(redis.connect(addr(srv)))
      local t = lev.spawn(function() return c:cmd("BLPOP", "q", 0) end)
      lev.sleep(0.01)
      core.attach(c, assert(redis.connect(addr(srv))))
      assert.same({ true, nil, "closed", "closed" }, { t:join() })
      assert.equal("PONG", c:ping())
      c:close()
    end)
  end)

  it("wait_closed parks until the connection ends and says why", function()
    with_mock(function(srv)
      local c = assert(redis.connect(addr(srv)))
      local w = lev.spawn(function() return core.wait_closed(c) end)
      lev.sleep(0.01)
      assert.equal("waiting", w:status())
      srv:script{ command = "PING", close = true, times = 1 }
      assert.same({ nil, "connection closed by server", "eof" },
                  { c:cmd("PING") })
      assert.same({ true, "connection closed by server", "eof" },
                  { w:join() })
      -- no connection: at once, with the last reason
      assert.same({ "connection closed by server", "eof" },
                  { core.wait_closed(c) })
      local d = assert(redis.connect(addr(srv)))
      w = lev.spawn(function() return core.wait_closed(d) end)
      lev.sleep(0.01)
      d:close()
      assert.same({ true, "closed", "closed" }, { w:join() })
    end)
  end)

  it("set_fallback answers for cmd, sugar, pipeline and read without a "
     .. "connection", function()
    with_mock(function(srv)
      local c = assert(redis.connect(addr(srv)))
      local calls = {}
      core.set_fallback(c, function(self, op, ...)
        calls[#calls + 1] = { self == c, op, ... }
        lev.sleep(0.001) -- it may park
        return "fb:" .. op, select("#", ...)
      end)
      assert.equal("PONG", c:ping()) -- connection present: not called
      assert.same({}, calls)
      c:close()
      assert.same({ "fb:cmd", 2 }, { c:cmd("GET", "k") })
      assert.same({ "fb:cmd", 3 }, { c:set("k", "v") })
      assert.same({ "fb:pipeline", 1 }, { c:pipeline{ { "PING" } } })
      assert.same({ "fb:read", 0 }, { c:read() })
      assert.same({ { true, "cmd", "GET", "k" },
                    { true, "cmd", "SET", "k", "v" },
                    { true, "pipeline", { { "PING" } } },
                    { true, "read" } }, calls)
      core.set_fallback(c, nil)
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
    end)
  end)
end)

-- The client's error paths, driven by the mock's fault scripting.
describe("the client against a misbehaving server (redis.mock rules)",
         function()
  after_each(mh.assert_clean)

  local function connect(srv, extra)
    local cfg = { host = "127.0.0.1", port = srv:port() }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    return assert(redis.connect(cfg))
  end

  it("split: a reply written a byte at a time is the same reply", function()
    with_mock(function(srv)
      local c = connect(srv)
      c:cmd("RPUSH", "l", "a", "bb", "ccc")
      srv:script{ command = "LRANGE", split = 1, times = 1 }
      assert.same({ "a", "bb", "ccc" }, c:cmd("LRANGE", "l", 0, -1))
      srv:script{ command = "GET", split = 3, times = 2 }
      c:cmd("SET", "k", string.rep("x", 100))
      local r = c:pipeline{ { "GET", "k" }, { "GET", "k" }, { "PING" } }
      assert.same({ { string.rep("x", 100) }, { string.rep("x", 100) },
                    { "PONG" } }, r)
      c:close(true)
    end)
  end)

  it("cut: a reply cut in the middle fails every pending command with "
     .. "eof, and the client is closed", function()
    with_mock(function(srv)
      local c = connect(srv)
      c:cmd("SET", "k", string.rep("x", 100))
      srv:script{ command = "GET", close_after = 20, times = 1 }
      local behind = lev.spawn(function() return c:cmd("PING") end)
      assert.same({ nil, "connection closed by server", "eof" },
                  { c:cmd("GET", "k") })
      assert.same({ true, nil, "connection closed by server", "eof" },
                  { behind:join() })
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
      c:close(true)
    end)
  end)

  it("garbage: bytes that are not RESP fail the connection with a "
     .. "protocol error", function()
    with_mock(function(srv)
      local c = connect(srv)
      srv:script{ command = "GET", garbage = "?what\r\n", times = 1 }
      local v, err, cat = c:cmd("GET", "k")
      assert.is_nil(v)
      assert.matches("^protocol error", err)
      assert.equal("protocol", cat)
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
      c:close(true)
    end)
  end)

  it("silence: a reply that never comes ends in the client's timeout, "
     .. "and the connection is not used again", function()
    with_mock(function(srv)
      local c = connect(srv, { timeout = 0.1 })
      srv:script{ command = "GET", silent = true, times = 1 }
      assert.same({ nil, "timeout", "timeout" }, { c:cmd("GET", "k") })
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
      c:close(true)
    end)
  end)

  it("delay: a slow reply within the timeout arrives, and each task gets "
     .. "its own", function()
    with_mock(function(srv)
      local c = connect(srv, { timeout = 1 })
      srv:script{ command = "ECHO", delay = 0.05, times = 3 }
      local t = {}
      for i = 1, 3 do
        t[i] = lev.spawn(function() return c:cmd("ECHO", "e" .. i) end)
      end
      for i = 1, 3 do assert.same({ true, "e" .. i }, { t[i]:join() }) end
      c:close(true)
    end)
  end)

  it("an error reply fails only its command (category redis)", function()
    with_mock(function(srv)
      local c = connect(srv)
      srv:script{ command = "GET", reply = mock.error("ERR nope"), times = 1 }
      assert.same({ nil, "ERR nope", "redis" }, { c:cmd("GET", "k") })
      assert.equal("PONG", c:ping())
      c:close(true)
    end)
  end)

  it("an unsolicited reply on an idle pooled connection drops it from "
     .. "the pool", function()
    with_mock(function(srv)
      local cfg = { host = "127.0.0.1", port = srv:port() }
      local c = connect(srv)
      c:close()
      assert.equal(1, redis.pool_size(cfg))
      srv:connections()[1]:push("surprise")
      lev.sleep(0.05)
      assert.equal(0, redis.pool_size(cfg))
    end)
  end)
end)
