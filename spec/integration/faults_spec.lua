-- Faults between the client and a real redis-server, injected by a proxy
-- (spec/support/fault_proxy.lua): replies in 1-byte writes, connections
-- cut after N bytes, garbage, a server that never answers, resets, and a
-- server restarted under the pool. Each fault must give the documented
-- nil, text, never a crash, a damaged connection must never come back out
-- of the pool, and the next connect must work.
--
-- Needs LEVR_REDIS_PORT (the shared server); starts one redis-server of
-- its own (DEBUG enabled, restarted by one group of specs).

local lev = require("lev")
local redis = require("redis")
local fp = require("fault_proxy")

local HOST = "127.0.0.1"
local PORT = fp.env_port()
local PREFIX = string.format("levr:fault:%d:%d:", os.time(),
                             math.random(1, 1 << 30))

local function key(name) return PREFIX .. name end


-- ---- running a spec body ---------------------------------------------

local function counts()
  collectgarbage()
  collectgarbage()
  return lev._handles()
end

-- Short runs until the proxies' handler tasks have seen their sockets
-- close (at most about two seconds); returns handles, tasks.
local function settle()
  local handles, tasks = counts()
  local deadline = os.time() + 3
  while tasks > 0 and os.time() < deadline do
    lev.run(function() lev.sleep(0.005) end)
    handles, tasks = counts()
  end
  return handles, tasks
end

-- Empties the pool of one config (inside lev.run).
local function drain(cfg)
  while redis.pool_size(cfg) > 0 do
    local c = redis.connect(cfg)
    if not c then break end
    c:close(true)
  end
end

-- Runs body(proxy, cfg) in lev.run with a proxy in front of the upstream
-- (the shared server unless opts.upstream_port). cfg is a client config
-- for the proxy (timeout 2 s unless opts.timeout). The body is bounded by
-- limit seconds; afterwards the pool is drained, the proxy closed, and no
-- task or handle may be left behind.
local function with_proxy(opts, body, limit)
  local base_handles = settle()
  lev.run(function()
    local popts = {}
    for k, v in pairs(opts) do popts[k] = v end
    popts.upstream_port = opts.upstream_port or PORT
    popts.timeout = nil
    local p = assert(fp.start(popts))
    local cfg = { host = HOST, port = p:port(), timeout = opts.timeout or 2 }
    local ok, done = pcall(lev.timeout, limit or 10, function()
      body(p, cfg)
      return true
    end)
    p:reset()
    drain(cfg)
    drain({ host = HOST, port = p:port() })
    p:close()
    if not ok then error(done, 0) end
    assert(done == true, "the spec body did not finish in time")
    assert.equal(0, p.counters.errors, p.last_error)
  end)
  local handles, tasks = settle()
  assert.equal(0, tasks, "tasks left behind")
  assert.is_true(handles <= base_handles, "handles left behind: "
    .. handles .. " > " .. base_handles)
end

-- A plain client to the shared server, for checks from outside the proxy.
local function direct(port)
  return assert(redis.connect({ host = HOST, port = port or PORT,
                                timeout = 2 }))
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" or depth > 3 then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do
    parts[#parts + 1] = tostring(k) .. "=" .. show(x, depth + 1)
  end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- The client must have failed with exactly text and category.
local function fails(text, cat, ok, err, ecat)
  assert.is_nil(ok, "expected a failure, got " .. show(ok))
  assert.equal(text, err)
  assert.equal(cat, ecat)
end

-- A client that failed must refuse further work, close cleanly and stay
-- out of the pool; then a fresh connect must work.
local function check_after_failure(c, cfg)
  fails("closed", "closed", c:cmd("PING"))
  assert.is_true(c:close())
  assert.equal(0, redis.pool_size(cfg))
  local fresh = assert(redis.connect(cfg))
  assert.equal("fresh", fresh:cmd("ECHO", "fresh"))
  assert.is_true(fresh:close(true))
end

local own -- the spec's own redis-server (DEBUG on, restartable)

setup(function()
  own = fp.own_server("--enable-debug-command yes")
end)

teardown(function()
  if own then own:destroy() end
  lev.run(function()
    local c = direct()
    require("int_helper").delete_prefix(c, PREFIX)
    c:close(true)
  end)
  settle()
end)

-- ---- 1. replies split into 1-byte writes ------------------------------

describe("faults: replies split into 1-byte writes:", function()
  -- Commands whose replies cover every RESP2 type; {k} marks a key.
  local resp2 = {
    { "SET", "{s}", "hello" },                      -- simple string
    { "GET", "{s}" },                               -- bulk
    { "GET", "{missing}" },                         -- NULL bulk
    { "SET", "{empty}", "" }, { "GET", "{empty}" }, -- empty bulk
    { "SET", "{bin}", "a\r\nb\0c$3\r\n*1\r\n" }, { "GET", "{bin}" },
    { "SET", "{big}", string.rep("xyz", 3000) }, { "GET", "{big}" },
    { "INCRBY", "{max}", math.maxinteger },         -- integers
    { "DECRBY", "{min}", math.maxinteger }, { "DECR", "{min}" },
    { "INCR", "{s}" },                              -- error
    { "RPUSH", "{l}", "a", "", "c" },               -- array
    { "LRANGE", "{l}", 0, -1 },
    { "LRANGE", "{nolist}", 0, -1 },                -- empty array
    { "BLPOP", "{nolist}", 0.01 },                  -- NULL array
    { "MGET", "{s}", "{missing}", "{empty}" },      -- NULL inside an array
    { "EVAL", "return {1, {2, {3, 'x'}}, 'y'}", 0 }, -- nested arrays
    { "EVAL", "return {1, redis.error_reply('E inner'), 'z'}", 0 },
    { "HSET", "{h}", "f1", "v1", "f2", "v2" }, { "HGETALL", "{h}" },
    { "ZADD", "{z}", 1.5, "m" }, { "ZSCORE", "{z}", "m" },
    { "MULTI" }, { "SET", "{t}", "1" }, { "INCR", "{s}" }, { "EXEC" },
    { "PING" }, { "ECHO", "" },
  }

  local function run_all(c, prefix, list)
    local out = {}
    for i, cmd in ipairs(list) do
      local args = {}
      for j, a in ipairs(cmd) do
        args[j] = type(a) == "string" and a:gsub("^{(.*)}$", prefix .. "%1")
                  or a
      end
      out[i] = table.pack(c:cmd(table.unpack(args)))
    end
    return out
  end

  it("decodes every RESP2 reply type exactly as over a direct connection "
     .. "when each byte arrives in its own write", function()
    with_proxy({ split = 1 }, function(p, cfg)
      local d = direct()
      local want = run_all(d, key("r2a:"), resp2)
      d:close(true)
      local c = assert(redis.connect(cfg))
      local before = p.counters.bytes_down
      local got = run_all(c, key("r2b:"), resp2)
      assert.is_true(c:close())
      for i, w in ipairs(want) do
        assert.is_true(deep_equal(w, got[i]), "command #" .. i .. " ("
          .. resp2[i][1] .. "): want " .. show(w) .. ", got " .. show(got[i]))
      end
      -- Not vacuous: the values are the documented ones.
      assert.equal("OK", got[1][1])
      assert.same({ nil, "not found", n = 2 }, got[3])
      assert.equal(math.maxinteger, got[10][1])
      assert.equal(math.mininteger, got[12][1])
      assert.matches("^ERR ", got[13][2])
      assert.same({ "a", "", "c" }, got[15][1])
      assert.same({ "hello", redis.null, "" }, got[18][1])
      assert.same({ 1, { err = "E inner" }, "z" }, got[20][1])
      assert.equal("QUEUED", got[26][1])
      assert.equal("OK", got[28][1][1])                  -- EXEC
      assert.matches("^ERR ", got[28][1][2].err)
      assert.is_true(p.counters.bytes_down - before > 9000)
    end)
  end)

  it("decodes every RESP3 reply type exactly as over a direct connection "
     .. "when each byte arrives in its own write", function()
    with_proxy({ upstream_port = own.port }, function(p, cfg)
      local kinds = { "string", "integer", "double", "bignum", "null",
                      "array", "set", "map", "attrib", "verbatim", "true",
                      "false" }
      local function all(c)
        local out = { hello = c:cmd("HELLO", 3).proto }
        for i, kind in ipairs(kinds) do
          out[i] = table.pack(c:cmd("DEBUG", "PROTOCOL", kind))
        end
        -- A push reply: the command gets what follows it, read() the push.
        out.push = table.pack(c:cmd("DEBUG", "PROTOCOL", "push"))
        out.pushed = c:read()
        out.error = table.pack(c:cmd("DEBUG", "PROTOCOL", "nosuchtype"))
        return out
      end
      local d = direct(own.port)
      local want = all(d)
      d:close(true)
      p.split = 1
      local c = assert(redis.connect(cfg))
      local got = all(c)
      c:close()
      assert.equal(3, want.hello)
      assert.is_true(deep_equal(want, got), "want " .. show(want)
        .. ", got " .. show(got))
      assert.equal("push", got.pushed.type)
      assert.equal(12345, got[2][1])
      assert.equal(3.141, got[3][1])
      assert.is_true(got[11][1])
      assert.is_false(got[12][1])
      assert.equal(0, redis.pool_size(cfg)) -- HELLO: never pooled
    end)
  end)

  it("delivers pub/sub confirmations and messages intact when each byte "
     .. "arrives in its own write", function()
    with_proxy({ split = 1 }, function(p, cfg)
      local ch = key("chan")
      local sub = assert(redis.connect(cfg))
      assert.same({ "subscribe", ch, 1 }, sub:cmd("SUBSCRIBE", ch))
      local d = direct()
      local payloads = { "one", "", string.rep("\r\n", 50), "last" }
      for _, m in ipairs(payloads) do
        assert.equal(1, d:cmd("PUBLISH", ch, m))
      end
      d:close(true)
      for _, m in ipairs(payloads) do
        assert.same({ type = "array", value = { "message", ch, m } },
                    sub:read())
      end
      assert.is_true(sub:close())
      assert.equal(0, redis.pool_size(cfg))
    end)
  end)

  it("returns all 10,000 replies of one pipeline, each to its own command "
     .. "and in order, when each byte arrives in its own write", function()
    -- The deadline restarts as each reply arrives (see "keeps the clock
    -- running" below); the generous timeout is for a slow machine.
    with_proxy({ split = 1, timeout = 15 }, function(p, cfg)
      local c = assert(redis.connect(cfg))
      local n, s = key("p:n"), key("p:s")
      assert.equal("OK", c:cmd("SET", s, "str"))
      local cmds = {}
      for i = 1, 10000 do
        local m = i % 4
        if m == 0 then cmds[i] = { "ECHO", "e" .. i }
        elseif m == 1 then cmds[i] = { "INCR", n }
        elseif m == 2 then cmds[i] = { "GET", key("p:none") }
        else cmds[i] = { "INCR", s } end
      end
      local before = p.counters.bytes_down
      local res = assert(c:pipeline(cmds))
      assert.equal(10000, #res)
      local incr = 0
      for i = 1, 10000 do
        local m, r = i % 4, res[i]
        if m == 0 then
          assert.same({ "e" .. i }, r)
        elseif m == 1 then
          incr = incr + 1
          assert.same({ incr }, r)
        elseif m == 2 then
          assert.same({}, r) -- { nil }
        else
          assert.is_nil(r[1])
          assert.matches("^ERR value is not an integer", r[2])
        end
      end
      assert.is_true(p.counters.bytes_down - before > 100000)
      assert.is_true(c:close())
      assert.equal(1, redis.pool_size(cfg)) -- clean: pooled
    end, 30)
  end)
end)

-- ---- 2. connection closed after N bytes -------------------------------

describe("faults: connection closed after N bytes:", function()
  it("fails a pipeline with nil, 'connection closed by server' for every "
     .. "cut inside its replies, and returns them all when the cut comes "
     .. "after the last byte", function()
    with_proxy({}, function(p, cfg)
      local s, l, h = key("cut:s"), key("cut:l"), key("cut:h")
      local setup_c = direct()
      setup_c:cmd("RPUSH", l, "a", "", "ccc")
      setup_c:cmd("HSET", h, "f", "v")
      setup_c:close(true)
      local cmds = {
        { "SET", s, "v" }, { "GET", s }, { "GET", key("cut:none") },
        { "INCR", s }, { "LRANGE", l, 0, -1 }, { "HGETALL", h },
        { "ECHO", "a\r\nb" }, { "PING" }, { "BLPOP", key("cut:nl"), 0.01 },
      }
      -- The reference, and its length in bytes.
      local c = assert(redis.connect(cfg))
      local before = p.counters.bytes_down
      local want = assert(c:pipeline(cmds))
      local total = p.counters.bytes_down - before
      c:close(true)
      assert.is_true(total > 60)
      for n = 0, total do
        p.split = (n % 3 == 1) and 1 or nil -- sometimes byte by byte
        c = assert(redis.connect(cfg))
        p.close_after = n
        local res, err, cat = c:pipeline(cmds)
        if n < total then
          fails("connection closed by server", "eof", res, err, cat)
          check_after_failure(c, cfg)
        else
          assert.is_true(deep_equal(want, res), "cut after all " .. n
            .. " bytes: " .. show(res))
          c:close()
          lev.sleep(0.02) -- the close reaches the idle connection
          assert.equal(0, redis.pool_size(cfg))
        end
        assert.is_nil(p.close_after)
      end
      assert.equal(total + 1, p.counters.cut)
    end, 20)
  end)

  it("fails a single command with nil, 'connection closed by server' for "
     .. "every cut inside its bulk reply", function()
    with_proxy({}, function(p, cfg)
      local k, v = key("cut1"), string.rep("0123456789", 5)
      local d = direct()
      d:cmd("SET", k, v)
      d:close(true)
      local total = #("$50\r\n" .. v .. "\r\n")
      for n = 0, total - 1 do
        p.split = (n % 2 == 0) and 1 or nil
        local c = assert(redis.connect(cfg))
        p.close_after = n
        fails("connection closed by server", "eof", c:cmd("GET", k))
        check_after_failure(c, cfg)
      end
    end)
  end)

  it("fails connect with nil, 'connection closed by server' when the "
     .. "handshake reply is cut, and leaves nothing in the pool", function()
    with_proxy({}, function(p, cfg)
      cfg.db = 1 -- the handshake sends SELECT 1 and reads +OK
      for n = 0, 4 do
        p.close_after = n
        local c, err, cat = redis.connect(cfg)
        fails("connection closed by server", "eof", c, err, cat)
        assert.equal(0, redis.pool_size(cfg))
      end
      p.close_after = nil
      local c = assert(redis.connect(cfg))
      assert.equal(1, c.cfg.db)
      assert.equal("ok", c:cmd("ECHO", "ok"))
      assert.is_true(c:close())
    end)
  end)
end)

-- ---- 3. garbage -------------------------------------------------------

describe("faults: garbage in the reply stream:", function()
  local garbage = {
    { "\0", "unexpected byte 0x00" },
    { "junk\r\n", "unexpected byte 0x6a" },
    { "\r\n", "unexpected byte 0x0d" },
    { "$abc\r\n", "invalid bulk length" },
    { "$-2\r\n", "invalid bulk length" },
    { "*-5\r\n", "invalid aggregate length" },
    { ":12x\r\n", "invalid integer" },
    { "+ok\n", "line not terminated by CRLF" },
    { "$3\r\nabcd\r\n", "bulk string not terminated by CRLF" },
  }

  it("fails the command with nil, 'protocol error: ...' for each kind of "
     .. "garbage, then refuses the client and never pools it", function()
    with_proxy({}, function(p, cfg)
      for _, g in ipairs(garbage) do
        local c = assert(redis.connect(cfg))
        p.garbage = g[1]
        fails("protocol error: " .. g[2], "protocol", c:cmd("ECHO", "x"))
        check_after_failure(c, cfg)
      end
      assert.equal(#garbage, p.counters.garbage)
    end)
  end)

  it("fails every command pending on a shared client when garbage arrives "
     .. "before their replies", function()
    with_proxy({ delay = 0.05 }, function(p, cfg)
      local c = assert(redis.connect(cfg))
      p.garbage = "\0"
      local tasks = {}
      for i = 1, 10 do
        tasks[i] = lev.spawn(function() return c:cmd("ECHO", "t" .. i) end)
      end
      for i = 1, 10 do
        local _, ok, err, cat = tasks[i]:join()
        fails("protocol error: unexpected byte 0x00", "protocol", ok, err,
              cat)
      end
      p.delay = 0
      check_after_failure(c, cfg)
    end)
  end)

  it("detects garbage inside a bulk string reply instead of returning a "
     .. "corrupted value", function()
    with_proxy({}, function(p, cfg)
      local k = key("gbulk")
      local d = direct()
      d:cmd("SET", k, "0123456789")
      d:close(true)
      local c = assert(redis.connect(cfg))
      p.garbage, p.garbage_at = "X", 7 -- "$10\r\n01" .. "X" .. "23456789\r\n"
      fails("protocol error: bulk string not terminated by CRLF",
            "protocol", c:cmd("GET", k))
      check_after_failure(c, cfg)
    end)
  end)

  it("discards a pooled idle connection that receives bytes nobody asked "
     .. "for", function()
    with_proxy({}, function(p, cfg)
      local c = assert(redis.connect(cfg))
      assert.equal("PONG", c:cmd("PING"))
      c:close()
      assert.equal(1, redis.pool_size(cfg))
      assert.equal(1, p:inject("+SURPRISE\r\n"))
      lev.sleep(0.05)
      assert.equal(0, redis.pool_size(cfg))
      local fresh = assert(redis.connect(cfg))
      assert.equal("mine", fresh:cmd("ECHO", "mine"))
      fresh:close()
    end)
  end)

  it("queues a reply nobody asked for on a held client for read(), gives "
     .. "the next command its own reply, and never pools that connection",
     function()
    with_proxy({}, function(p, cfg)
      local c = assert(redis.connect(cfg))
      assert.equal("PONG", c:cmd("PING"))
      assert.equal(1, p:inject("+SURPRISE\r\n"))
      lev.sleep(0.05)
      assert.equal("mine", c:cmd("ECHO", "mine"))
      assert.same({ type = "simple_string", value = "SURPRISE" }, c:read())
      c:close()
      assert.equal(0, redis.pool_size(cfg))
    end)
  end)
end)

-- ---- 4. a server that never answers -----------------------------------

describe("faults: a server that never answers:", function()
  it("returns nil, 'timeout' after the configured timeout to the command "
     .. "and to every other command pending on the client, and never pools "
     .. "the connection", function()
    with_proxy({ timeout = 0.2 }, function(p, cfg)
      local c = assert(redis.connect(cfg))
      p.blackhole = true
      local others = {}
      for i = 1, 5 do
        others[i] = lev.spawn(function() return c:cmd("ECHO", "o" .. i) end)
      end
      local t0 = lev.now()
      fails("timeout", "timeout", c:cmd("ECHO", "main"))
      local took = lev.now() - t0
      assert.is_true(took >= 0.15 and took < 1, "took " .. took)
      for i = 1, 5 do
        local _, ok, err, cat = others[i]:join()
        fails("timeout", "timeout", ok, err, cat)
      end
      fails("closed", "closed", c:pipeline({ { "PING" } }))
      p.blackhole = false
      check_after_failure(c, cfg)
      assert.is_true(p.counters.blackholed > 0)
    end)
  end)

  it("fails a pipeline with nil, 'timeout' when its replies never come",
     function()
    with_proxy({ timeout = 0.2 }, function(p, cfg)
      local c = assert(redis.connect(cfg))
      p.blackhole = true
      fails("timeout", "timeout", c:pipeline({ { "PING" }, { "ECHO", "x" } }))
      p.blackhole = false
      check_after_failure(c, cfg)
    end)
  end)

  it("fails connect with nil, 'timeout' when the handshake is never "
     .. "answered, and leaves nothing in the pool", function()
    with_proxy({ timeout = 0.2 }, function(p, cfg)
      cfg.db = 2
      p.blackhole = true
      fails("timeout", "timeout", redis.connect(cfg))
      assert.equal(0, redis.pool_size(cfg))
      p.blackhole = false
      local c = assert(redis.connect(cfg))
      assert.equal("PONG", c:cmd("PING"))
      c:close()
    end)
  end)

  it("drops pooled connections idle for over 5 s whose PING check goes "
     .. "unanswered or fails, and connects anew", function()
    with_proxy({ timeout = 0.2 }, function(p, cfg)
      local cs = {}
      for i = 1, 3 do cs[i] = assert(redis.connect(cfg)) end
      for i = 1, 3 do cs[i]:close() end
      assert.equal(3, redis.pool_size(cfg))
      lev.sleep(0.05) -- the proxy has connected all three upstream
      local conns = p:conns()
      assert.equal(3, #conns)
      lev.sleep(5.1) -- past the age that triggers the PING check
      conns[1].blackhole = true
      conns[2].blackhole = true
      conns[3].garbage = "\0"
      local t0 = lev.now()
      local c = assert(redis.connect(cfg))
      local took = lev.now() - t0
      assert.is_true(took >= 0.35 and took < 1.5, "took " .. took)
      assert.equal(0, redis.pool_size(cfg))
      assert.equal("fresh", c:cmd("ECHO", "fresh"))
      assert.equal(1, #p:conns()) -- the three old ones are gone
      c:close()
    end)
  end)

  it("extends the deadline of a blocking command by its own blocking time",
     function()
    with_proxy({ timeout = 0.2 }, function(p, cfg)
      local c = assert(redis.connect(cfg))
      p.blackhole = true
      local t0 = lev.now()
      fails("timeout", "timeout", c:cmd("BLPOP", key("never"), 0.5))
      local took = lev.now() - t0
      assert.is_true(took >= 0.6 and took < 1.5, "took " .. took)
      p.blackhole = false
      check_after_failure(c, cfg)
    end)
  end)

  it("never hands the late reply of a timed-out command to a later "
     .. "command", function()
    with_proxy({ timeout = 0.1 }, function(p, cfg)
      local c = assert(redis.connect(cfg))
      p.delay = 0.3
      fails("timeout", "timeout", c:cmd("ECHO", "late"))
      p.delay = 0
      local c2 = assert(redis.connect(cfg))
      assert.equal("mine", c2:cmd("ECHO", "mine"))
      lev.sleep(0.35) -- when the late reply would have come
      assert.equal("again", c2:cmd("ECHO", "again"))
      c:close()
      c2:close()
    end)
  end)

  it("drops the reply of a command abandoned by lev.timeout, gives the "
     .. "next command its own reply, and pools the connection once it is "
     .. "clean", function()
    with_proxy({}, function(p, cfg)
      local c = assert(redis.connect(cfg))
      p.delay = 0.2
      assert.same({ nil, "timeout" },
                  { lev.timeout(0.05, c.cmd, c, "ECHO", "abandoned") })
      p.delay = 0
      assert.equal("next", c:cmd("ECHO", "next"))
      assert.is_true(c:close())
      assert.equal(1, redis.pool_size(cfg))
      local again = assert(redis.connect(cfg))
      assert.equal("own", again:cmd("ECHO", "own"))
      again:close()
    end)
  end)

  it("closes rather than pools a client closed while a command abandoned "
     .. "by lev.timeout is still unanswered", function()
    with_proxy({}, function(p, cfg)
      local c = assert(redis.connect(cfg))
      p.delay = 0.2
      assert.is_nil((lev.timeout(0.05, c.cmd, c, "ECHO", "abandoned")))
      assert.is_true(c:close())
      assert.equal(0, redis.pool_size(cfg))
      p.delay = 0
      local fresh = assert(redis.connect(cfg))
      lev.sleep(0.25)
      assert.equal("fresh", fresh:cmd("ECHO", "fresh"))
      fresh:close()
    end)
  end)

  it("keeps the clock running while a long pipeline's replies trickle in, "
     .. "as each reply restarts it", function()
    with_proxy({ split = 1, timeout = 0.3 }, function(p, cfg)
      local c = assert(redis.connect(cfg))
      local cmds = {}
      for i = 1, 10000 do cmds[i] = { "ECHO", "v" .. i } end
      local t0 = lev.now()
      local res, err = c:pipeline(cmds)
      local took = lev.now() - t0
      assert.is_table(res, "after " .. took .. " s: " .. tostring(err))
      assert.is_true(took > 0.3, "the replies came too fast to test this")
      assert.equal(10000, #res)
      assert.same({ "v10000" }, res[10000])
      c:close()
    end, 20)
  end)
end)

-- ---- 5. resets --------------------------------------------------------

describe("faults: reset mid-pipeline:", function()
  it("fails a 10,000-command pipeline with nil, 'connection reset by peer' "
     .. "when the connection is reset halfway, and the next connect works",
     function()
    with_proxy({}, function(p, cfg)
      local c = assert(redis.connect(cfg))
      local cmds = {}
      for i = 1, 10000 do cmds[i] = { "ECHO", string.rep("x", 40) .. i } end
      p.hold_requests = true -- the rest of the pipeline stays unread
      local t = lev.spawn(function() return c:pipeline(cmds) end)
      while p.counters.bytes_down == 0 do lev.sleep(0.002) end
      lev.sleep(0.05) -- more of the request lands in the proxy's socket
      assert.equal(1, p:drop_all())
      local _, res, err, cat = t:join()
      fails("connection reset by peer", "io", res, err, cat)
      p.hold_requests = false
      check_after_failure(c, cfg)
    end)
  end)

  it("fails every command pending on shared and held clients when every "
     .. "connection drops at once, and empties the pool", function()
    with_proxy({ delay = 0.1 }, function(p, cfg)
      local shared = assert(redis.connect(cfg))
      local idle = {}
      for i = 1, 3 do idle[i] = assert(redis.connect(cfg)) end
      local held = assert(redis.connect(cfg))
      for i = 1, 3 do idle[i]:close() end
      assert.equal(3, redis.pool_size(cfg))
      local tasks = {}
      for i = 1, 10 do
        tasks[i] = lev.spawn(function() return shared:cmd("ECHO", i) end)
      end
      tasks[11] = lev.spawn(function()
        return held:pipeline({ { "PING" }, { "PING" } })
      end)
      lev.sleep(0.02)
      assert.equal(5, p:drop_all())
      for i = 1, 11 do
        local _, ok, err, cat = tasks[i]:join()
        fails("connection closed by server", "eof", ok, err, cat)
      end
      lev.sleep(0.02)
      assert.equal(0, redis.pool_size(cfg))
      p.delay = 0
      check_after_failure(shared, cfg)
      check_after_failure(held, cfg)
    end)
  end)
end)

-- ---- 6. server restarted under the pool -------------------------------

describe("faults: server restarted while connections sit in the pool:",
         function()
  local function fill_pool(cfg, n)
    drain(cfg)
    local cs = {}
    for i = 1, n do
      cs[i] = assert(redis.connect(cfg))
      assert.equal("PONG", cs[i]:cmd("PING"))
    end
    for i = 1, n do cs[i]:close() end
    assert.equal(n, redis.pool_size(cfg))
  end

  it("discards the pooled connections once the loop has seen the restart, "
     .. "and the next connect reaches the new server", function()
    lev.run(function()
      local cfg = { host = HOST, port = own.port, timeout = 1 }
      local c = assert(redis.connect(cfg))
      assert.equal("OK", c:cmd("SET", "before", "restart"))
      c:close()
      fill_pool(cfg, 3)
      own:restart() -- blocks the loop: nothing is noticed meanwhile
      lev.sleep(0.05)
      assert.equal(0, redis.pool_size(cfg))
      c = assert(redis.connect(cfg))
      fails("not found", nil, c:cmd("GET", "before")) -- a new server
      assert.equal("PONG", c:cmd("PING"))
      c:close(true)
    end)
    local _, tasks = settle()
    assert.equal(0, tasks)
  end)

  it("does not hand out a pooled connection that the server closed before "
     .. "the loop could notice", function()
    lev.run(function()
      local cfg = { host = HOST, port = own.port, timeout = 1 }
      fill_pool(cfg, 3)
      own:restart()
      local c = assert(redis.connect(cfg)) -- no loop turn since the restart
      assert.equal("PONG", c:cmd("PING"))
      c:close(true)
      drain(cfg)
    end)
  end)

  it("fails connect with nil, 'connection refused' while the server is "
     .. "down, discards the pool, and connects again once it is back",
     function()
    lev.run(function()
      local cfg = { host = HOST, port = own.port, timeout = 1 }
      fill_pool(cfg, 2)
      own:stop()
      lev.sleep(0.05)
      assert.equal(0, redis.pool_size(cfg))
      fails("connection refused", "io", redis.connect(cfg))
      own:start()
      local c = assert(redis.connect(cfg))
      assert.equal("PONG", c:cmd("PING"))
      c:close(true)
    end)
    local _, tasks = settle()
    assert.equal(0, tasks)
  end)

  it("fails commands in flight with nil, text when the server restarts "
     .. "under them, and the client then refuses work", function()
    lev.run(function()
      local cfg = { host = HOST, port = own.port, timeout = 1 }
      local c = assert(redis.connect(cfg))
      local blocked = lev.spawn(function()
        return c:cmd("BLPOP", "restart:list", 5)
      end)
      lev.sleep(0.05)
      own:restart()
      local _, ok, err, cat = blocked:join()
      fails("connection closed by server", "eof", ok, err, cat)
      fails("closed", "closed", c:cmd("PING"))
      c:close()
      assert.equal(0, redis.pool_size(cfg))
      local fresh = assert(redis.connect(cfg))
      assert.equal("PONG", fresh:cmd("PING"))
      fresh:close(true)
    end)
  end)
end)

-- ---- 7. read() on a failing subscription ------------------------------

describe("faults: read() on a subscription whose connection fails:",
         function()
  it("returns nil, 'connection closed by server' and category eof when the "
     .. "connection drops", function()
    with_proxy({}, function(p, cfg)
      local s = assert(redis.connect(cfg))
      assert.is_table(s:cmd("SUBSCRIBE", key("rc")))
      local t = lev.spawn(function() return s:read() end)
      lev.sleep(0.05)
      p:drop_all()
      local _, ok, err, cat = t:join()
      fails("connection closed by server", "eof", ok, err, cat)
      s:close()
    end)
  end)

  it("returns nil, 'protocol error: ...' when garbage arrives, and the "
     .. "client then refuses work", function()
    with_proxy({}, function(p, cfg)
      local s = assert(redis.connect(cfg))
      assert.is_table(s:cmd("SUBSCRIBE", key("rg")))
      local t = lev.spawn(function() return s:read() end)
      lev.sleep(0.05)
      assert.equal(1, p:inject("\0"))
      local _, ok, err = t:join()
      assert.is_nil(ok)
      assert.equal("protocol error: unexpected byte 0x00", err)
      fails("closed", "closed", s:read())
      s:close()
      assert.equal(0, redis.pool_size(cfg))
    end)
  end)
end)
