-- Hardening of the Lua glue (redis.core): issue 12 items 1-4, 6-8, 10,
-- 13 (pool keys), 14, 15 and issue 21 bugs 1-3. Each case is a reproducer
-- of a defect: against the real server where it can show it, against a
-- hostile RESP server (spec/support/hostile_resp.lua) where it cannot.
-- Several only crash under the ASan build (make test runs both).
local lev = require("lev")
local redis = require("redis")
local core = require("redis.core")
local h = require("int_helper")
local hostile = require("hostile_resp")

local PREFIX = ("levr:glue:%d:%d:"):format(os.time(), math.random(1, 1e9))
local function key(s) return PREFIX .. s end

local lev_helper = require("lev_helper")

-- lev.run(body), then nothing may be left (the hostile server's handlers
-- get a few short runs to see their sockets close).
local function run(body)
  local out = table.pack(lev.run(body))
  assert.equal(0, lev_helper.drain(), "tasks left behind")
  return table.unpack(out, 1, out.n)
end

-- Runs body(srv) with a hostile server answering per answer.
local function with_hostile(answer, body)
  return run(function()
    local srv = assert(hostile.start(answer))
    local ok, err = pcall(body, srv)
    srv:close()
    if not ok then error(err, 0) end
  end)
end

local function hcfg(srv, extra)
  local t = { host = "127.0.0.1", port = srv:port() }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- A collector that runs all the time: finalizers run at every allocation.
local function with_eager_gc(fn)
  collectgarbage("incremental", 10, 400)
  local ok, err = pcall(fn)
  collectgarbage("incremental", 200, 100)
  if not ok then error(err, 0) end
end

local CLOSED = "connection closed: a command pending on it was abandoned "
  .. "(lev.timeout)"

describe("hardening of the glue", function()
  it("12.1: a client dropped without close() survives a large unsolicited "
     .. "message converted while its finalizer runs", function()
    local N = 200000
    local parts = { ("*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n*%d\r\n"):format(N) }
    for i = 1, N do parts[#parts + 1] = ("$8\r\n%08d\r\n"):format(i) end
    local big = table.concat(parts)
    with_hostile(function(argv, conn)
      if argv[1] == "SUBSCRIBE" then
        lev.spawn(function() lev.sleep(0.05); conn:send(big) end)
        return "*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n"
      end
      return "+OK\r\n"
    end, function(srv)
      with_eager_gc(function()
        do
          local c = assert(redis.connect(hcfg(srv)))
          assert.same({ "subscribe", "x", 1 }, c:cmd("SUBSCRIBE", "x"))
        end -- dropped without close()
        lev.sleep(0.4)
      end)
      local c = assert(redis.connect(hcfg(srv)))
      assert.equal("OK", c:cmd("SET", "k", "v"))
      c:close(true)
    end)
  end)

  it("12.2: a reply Lua cannot hold (a RESP3 map with a NaN key) fails "
     .. "its command only, and the runtime stays usable", function()
    with_hostile(function(argv)
      if argv[1] == "GET" then return "%1\r\n,nan\r\n:1\r\n" end
      if argv[1] == "ECHO" then return hostile.bulk(argv[2]) end
      return "+OK\r\n"
    end, function(srv)
      local c = assert(redis.connect(hcfg(srv)))
      local t = lev.spawn(function() return c:cmd("ECHO", "behind") end)
      local v, err, cat = c:cmd("GET", "k")
      assert.is_nil(v)
      assert.matches("^reply cannot be converted: .*NaN", err)
      assert.equal("protocol", cat)
      assert.same({ true, "behind" }, { t:join() })
      assert.equal("after", c:cmd("ECHO", "after"))
      -- in a pipeline: that entry's command fails, nothing else is lost
      local r, perr = c:pipeline{ { "ECHO", "a" }, { "GET", "k" } }
      assert.is_nil(r)
      assert.matches("NaN", perr)
      assert.equal("still", c:cmd("ECHO", "still"))
      c:close(true)
    end)
    assert.equal("ok", lev.run(function() return "ok" end))
  end)

  it("12.3: a finalizer that closes the client while pipeline queues does "
     .. "not leave the task parked on a freed connection", function()
    run(function()
      with_eager_gc(function()
        for _ = 1, 3 do
          local c = assert(redis.connect(h.cfg()))
          local cmds = {}
          for i = 1, 5000 do cmds[i] = { "PING" } end
          setmetatable({}, { __gc = function() c:close(true) end })
          local r, err = c:pipeline(cmds)
          if r then
            assert.equal(5000, #r)
            assert.same({ "PONG" }, r[5000])
          else
            assert.equal("closed", err)
          end
        end
      end)
    end)
  end)

  it("12.4: a finalizer that closes the client while pipeline replies are "
     .. "converted gives the pipeline its results or nil, \"closed\"",
     function()
    run(function()
      local c = assert(redis.connect(h.cfg()))
      local v = string.rep("v", 300)
      assert.equal("OK", c:cmd("SET", key("gk"), v))
      local cmds = {}
      for i = 1, 20000 do cmds[i] = { "GET", key("gk") } end
      with_eager_gc(function()
        local t = lev.spawn(function() return c:pipeline(cmds) end)
        lev.spawn(function()
          setmetatable({}, { __gc = function() c:close(true) end })
        end)
        local ok, r, err, cat = t:join()
        assert.is_true(ok)
        if r then
          assert.equal(20000, #r)
          for i = 1, 20000, 997 do assert.same({ v }, r[i]) end
        else
          assert.same({ "closed", "closed" }, { err, cat })
        end
      end)
      c:close()
      local d = assert(redis.connect(h.cfg()))
      d:cmd("DEL", key("gk"))
      d:close()
    end)
  end)

  it("12.6: a rejected EXEC or DISCARD leaves the connection in MULTI: it "
     .. "is not pooled", function()
    run(function()
      local cfg = h.cfg{ db = 5 }
      h.drain{ db = 5 }
      for _, bad in ipairs{ { "EXEC", "x" }, { "DISCARD", "x" } } do
        local c = assert(redis.connect(cfg))
        assert.equal("OK", c:cmd("MULTI"))
        assert.is_nil((c:cmd(table.unpack(bad))))
        c:close()
        assert.equal(0, redis.pool_size(cfg))
        local d = assert(redis.connect(cfg))
        assert.equal("OK", d:cmd("SET", key("m"), "1")) -- not QUEUED
        d:cmd("DEL", key("m"))
        d:close(true)
      end
      -- WATCH, then EXEC without MULTI: Redis keeps the WATCH
      local c = assert(redis.connect(cfg))
      assert.equal("OK", c:cmd("WATCH", key("w")))
      assert.is_nil((c:cmd("EXEC")))
      c:close()
      assert.equal(0, redis.pool_size(cfg))
      -- an accepted MULTI ... EXEC leaves it clean
      c = assert(redis.connect(cfg))
      assert.same({ "OK", "QUEUED", "QUEUED" },
                  { c:cmd("MULTI"), c:cmd("PING"), c:cmd("PING") })
      assert.same({ "PONG", "PONG" }, c:cmd("EXEC"))
      c:close()
      assert.equal(1, redis.pool_size(cfg))
      h.drain{ db = 5 }
    end)
  end)

  it("12.7: MONITOR takes a client of its own; CLIENT REPLY OFF|SKIP is "
     .. "refused; other tasks keep their own replies", function()
    run(function()
      local m = assert(redis.connect(h.cfg()))
      local o = assert(redis.connect(h.cfg()))
      -- refused while other commands are pending on the client
      local b = lev.spawn(function() return m:cmd("BLPOP", key("q"), 0.3) end)
      lev.sleep(0.05)
      local ok, err = pcall(m.cmd, m, "MONITOR")
      assert.is_false(ok)
      assert.matches("MONITOR needs a client of its own", err)
      assert.is_true((b:join()))
      assert.equal("OK", m:cmd("MONITOR"))
      ok, err = pcall(m.cmd, m, "ECHO", "mine")
      assert.is_false(ok)
      assert.matches("MONITOR mode", err)
      assert.equal("OK", o:cmd("SET", key("mon"), "1"))
      local line
      repeat line = m:read() until line.value:find(key("mon"), 1, true)
      assert.equal("simple_string", line.type)
      m:close()
      ok, err = pcall(o.cmd, o, "CLIENT", "REPLY", "SKIP")
      assert.is_false(ok)
      assert.matches("CLIENT REPLY OFF|SKIP is not supported", err, 1, true)
      ok, err = pcall(o.pipeline, o, { { "CLIENT", "REPLY", "OFF" } })
      assert.is_false(ok)
      assert.matches("not supported", err)
      local e1 = lev.spawn(function() return o:cmd("ECHO", "for-1") end)
      local e2 = lev.spawn(function() return o:cmd("ECHO", "for-2") end)
      assert.same({ true, "for-1" }, { e1:join() })
      assert.same({ true, "for-2" }, { e2:join() })
      o:cmd("DEL", key("mon"))
      o:close()
    end)
  end)

  it("12.8: a pending reply that looks like a pub/sub message goes to its "
     .. "command, also when another task queues SUBSCRIBE", function()
    run(function()
      local c = assert(redis.connect(h.cfg()))
      c:cmd("RPUSH", key("evil"), "message", "news", "payload")
      local l = lev.spawn(function()
        return c:cmd("LRANGE", key("evil"), 0, -1)
      end)
      local s = lev.spawn(function() return c:cmd("SUBSCRIBE", "news") end)
      assert.same({ true, { "message", "news", "payload" } }, { l:join() })
      assert.same({ true, { "subscribe", "news", 1 } }, { s:join() })
      c:close()
      local d = assert(redis.connect(h.cfg()))
      d:cmd("DEL", key("evil"))
      d:close()
    end)
  end)

  it("12.10: abandoning one of many tasks pending on a client fails the "
     .. "others at once, so abandoning them all is linear", function()
    run(function()
      local c = assert(redis.connect(h.cfg()))
      local N = 2000
      local tasks = {}
      local head = lev.spawn(function()
        return lev.timeout(0.1, c.cmd, c, "BLPOP", key("never"), 0)
      end)
      lev.sleep(0.01)
      for i = 1, N do
        tasks[i] = lev.spawn(function() return c:cmd("ECHO", i) end)
      end
      assert.same({ true, nil, "timeout" }, { head:join() })
      for i = 1, N do
        assert.same({ true, nil, CLOSED, "closed" }, { tasks[i]:join() })
      end
      c:close()
    end)
  end)

  it("12.13: pool keys are length-delimited (bytes after a NUL count)",
     function()
    run(function()
      local c = assert(redis.connect(h.cfg()))
      local k = "glue-key\0" .. PREFIX
      core.ready(c, k, c.cfg)
      c:close()
      assert.equal(1, core.pool_count(k))
      assert.equal(0, core.pool_count("glue-key"))
      assert.equal(0, core.pool_count("glue-key\0other"))
      local t = assert(core.take(k))
      t:close(true)
    end)
  end)

  it("12.14: CLIENT NO-EVICT and NO-TOUCH keep a connection out of the "
     .. "pool", function()
    run(function()
      local cfg = h.cfg{ db = 6 }
      h.drain{ db = 6 }
      for _, sub in ipairs{ "NO-EVICT", "NO-TOUCH" } do
        local a = assert(redis.connect(cfg))
        local ok, err = a:cmd("CLIENT", sub, "on")
        if sub == "NO-TOUCH" and not ok then
          -- Redis before 7.2 has no NO-TOUCH: the rejected command still
          -- counts as session-changing (the client cannot know), so the
          -- connection is not pooled either.
          assert.matches("unknown subcommand", err)
        else
          assert(ok, err)
        end
        a:close()
        assert.equal(0, redis.pool_size(cfg), sub)
      end
      local b = assert(redis.connect(cfg))
      assert.equal("flags=N", b:cmd("CLIENT", "INFO"):match("flags=%S+"))
      b:close(true)
    end)
  end)

  it("12.15: read() keeps its timeout while another task runs a command",
     function()
    run(function()
      local c = assert(redis.connect(h.cfg{ timeout = 0.3 }))
      c:cmd("HELLO", 3)
      c:cmd("SUBSCRIBE", key("quiet"))
      local r = lev.spawn(function() return c:read() end)
      lev.sleep(0.05)
      assert.equal("PONG", c:cmd("PING"))
      -- lev.timeout only catches a hang: read() itself must end it
      assert.same({ true, nil, "timeout", "timeout" },
                  { lev.timeout(5, function() return r:join() end) })
      c:close()
    end)
  end)
end)

describe("commands abandoned by lev.timeout (issue 21)", function()
  it("21.1: an abandoned blocking command fails the commands queued "
     .. "behind it at once, and later ones get nil, \"closed\"", function()
    run(function()
      local c = assert(redis.connect(h.cfg()))
      local behind = {}
      local blk = lev.spawn(function()
        return lev.timeout(0.2, c.cmd, c, "BLPOP", key("q"), 0)
      end)
      lev.sleep(0.01)
      for i = 1, 3 do
        behind[i] = lev.spawn(function() return c:cmd("ECHO", i) end)
      end
      assert.same({ true, nil, "timeout" }, { blk:join() })
      for i = 1, 3 do
        assert.same({ true, nil, CLOSED, "closed" }, { behind[i]:join() })
      end
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
      -- no late reply reaches anyone: the BLPOP's connection is gone
      local d = assert(redis.connect(h.cfg()))
      assert.equal(0, d:cmd("RPUSH", key("q"), "late") - 1)
      d:cmd("DEL", key("q"))
      d:close()
      c:close()
    end)
  end)

  it("21.1: an abandoned slow command and an abandoned pipeline fail what "
     .. "waits behind them", function()
    with_hostile(function(argv, conn)
      if argv[1] == "SLOW" then
        lev.sleep(0.5) -- replies stay in order: later ones wait too
        return "+SLOW\r\n"
      end
      if argv[1] == "ECHO" then return hostile.bulk(argv[2]) end
      return "+OK\r\n"
    end, function(srv)
      for _, call in ipairs{
        function(c) return c:cmd("SLOW") end,
        function(c) return c:pipeline{ { "ECHO", "p" }, { "SLOW" } } end,
      } do
        local c = assert(redis.connect(hcfg(srv)))
        local t = lev.spawn(function() return lev.timeout(0.1, call, c) end)
        lev.sleep(0.01)
        local behind = lev.spawn(function() return c:cmd("ECHO", "b") end)
        assert.same({ true, nil, "timeout" }, { t:join() })
        assert.same({ true, nil, CLOSED, "closed" }, { behind:join() })
        c:close(true)
      end
      lev.sleep(0.5) -- the late replies find nobody
    end)
  end)

  it("21.2: a connect abandoned by lev.timeout closes its socket at once",
     function()
    -- Polls until the server has seen n connections, all of them closed.
    local function all_closed(srv, n)
      for _ = 1, 100 do
        if srv.accepted == n and srv.closed == n then return true end
        lev.sleep(0.02)
      end
      return false
    end
    with_hostile(function() return nil end, function(srv)
      collectgarbage("stop") -- the collector must not be what closes it
      local ok, err = pcall(function()
        -- stuck in the handshake (AUTH never answered)
        assert.same({ nil, "timeout" }, { lev.timeout(0.3, redis.connect,
          hcfg(srv, { auth = { user = "u", pass = "p" } })) })
        assert.is_true(all_closed(srv, 1), "handshake: the socket stays")
        -- stuck in the TLS handshake (nobody answers the ClientHello)
        assert.same({ nil, "timeout" }, { lev.timeout(0.5, redis.connect,
          hcfg(srv, { ssl = true })) })
        assert.is_true(all_closed(srv, 2), "TLS: the socket stays")
      end)
      collectgarbage("restart")
      if not ok then error(err, 0) end
    end)
  end)

  it("21.3: RESP3 pushes nobody reads are bounded: past 10000 the socket "
     .. "is not read; nothing is dropped", function()
    local N = 30000
    local flood = string.rep(">2\r\n+invalidate\r\n:1\r\n", N)
    with_hostile(function(argv)
      if argv[1] == "GET" then return flood .. "+REAL\r\n" end
      return "+OK\r\n"
    end, function(srv)
      -- nobody reads: the command's reply stays behind the pushes
      local c = assert(redis.connect(hcfg(srv, { timeout = 0.5 })))
      assert.same({ nil, "timeout", "timeout" }, { c:cmd("GET", "k") })
      local n = 0
      while c:read() do n = n + 1 end
      assert.equal(10000, n)
      c:close(true)
    end)
  end)
end)
