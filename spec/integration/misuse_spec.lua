-- Bad input from Lua: each misuse gets its clear error (raised for
-- programmer errors, nil, text for runtime conditions such as a closed
-- client or a bad config), never a crash, and the client keeps working
-- afterwards with nothing half-sent. Against the shared redis-server
-- (LEVR_REDIS_PORT).

local lev = require("lev")
local redis = require("redis")
local fp = require("fault_proxy")

local HOST = "127.0.0.1"
local PORT = fp.env_port()
local CFG = { host = HOST, port = PORT, timeout = 2 }
local PREFIX = string.format("levr:misuse:%d:%d:", os.time(),
                             math.random(1, 1 << 30))

local function key(name) return PREFIX .. name end

local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error, got success")
  return tostring(err)
end

local function contains(text, s)
  assert.is_truthy(s:find(text, 1, true), "expected the error to say \""
    .. text .. "\", got: " .. s)
end

local function run(body)
  local out = table.pack(lev.run(body))
  collectgarbage()
  collectgarbage()
  local _, tasks = lev._handles()
  assert.equal(0, tasks, "tasks left behind")
  return table.unpack(out, 1, out.n)
end

local function cleanup()
  run(function()
    local c = assert(redis.connect(CFG))
    require("int_helper").delete_prefix(c, PREFIX)
    c:close(true)
  end)
end

teardown(cleanup)

-- Empties the pool of CFG (inside lev.run), for specs that count it.
local function drain()
  while redis.pool_size(CFG) > 0 do
    assert(redis.connect(CFG)):close(true)
  end
end

-- Each case: a name, the misuse (given a connected client) and the text
-- its error must contain.
local RAISES = {
  { "cmd without a command name",
    function(c) return c:cmd() end,
    "redis: cmd: the command name must be a string" },
  { "cmd with a number as the command name",
    function(c) return c:cmd(1, "x") end,
    "redis: cmd: the command name must be a string" },
  { "cmd with nil as the command name",
    function(c) return c:cmd(nil, "x") end,
    "redis: cmd: the command name must be a string" },
  { "a boolean argument",
    function(c) return c:cmd("SET", key("k"), true) end,
    "redis: cmd: argument #3 must be a string or a number, got boolean" },
  { "a table argument",
    function(c) return c:cmd("SET", key("k"), {}) end,
    "redis: cmd: argument #3 must be a string or a number, got table" },
  { "a function argument",
    function(c) return c:cmd("ECHO", print) end,
    "redis: cmd: argument #2 must be a string or a number, got function" },
  { "a coroutine argument",
    function(c) return c:cmd("ECHO", coroutine.create(print)) end,
    "redis: cmd: argument #2 must be a string or a number, got thread" },
  { "a userdata argument",
    function(c) return c:cmd("ECHO", io.stdout) end,
    "redis: cmd: argument #2 must be a string or a number, got userdata" },
  { "a nil hole between arguments",
    function(c) return c:cmd("SET", nil, "v") end,
    "redis: cmd: argument #2 must be a string or a number, got nil" },
  { "an explicit nil after the last argument",
    function(c) return c:cmd("SET", key("k"), "v", nil) end,
    "redis: cmd: argument #4 must be a string or a number, got nil" },
  { "a nil hole in method sugar",
    function(c) return c:set(key("k"), nil, "v") end,
    "redis: cmd: argument #3 must be a string or a number, got nil" },
  { "a bad argument late in a long command",
    function(c)
      local args = {}
      for i = 1, 5000 do args[i] = i end
      args[4000] = false
      return c:cmd("RPUSH", key("l"), table.unpack(args, 1, 5000))
    end,
    "redis: cmd: argument #4002 must be a string or a number, got boolean" },
  { "cmd called on nil instead of a client",
    function(c) return c.cmd(nil, "PING") end,
    "bad argument #1 to 'cmd' (redis.client expected, got nil)" },
  { "cmd called on a plain table",
    function(c) return c.cmd({}, "PING") end,
    "bad argument #1 to 'cmd' (redis.client expected, got table)" },
  { "cmd called with a dot instead of a colon",
    function(c) return c.cmd("PING") end,
    "bad argument #1 to 'cmd' (redis.client expected, got string)" },
  { "method sugar called with a dot",
    function(c) return c.ping() end,
    "redis.client expected, got no value" },
  { "pipeline given a string",
    function(c) return c:pipeline("PING") end,
    "bad argument #1 to 'pipeline' (table expected, got string)" },
  { "pipeline given a number",
    function(c) return c:pipeline(42) end,
    "bad argument #1 to 'pipeline' (table expected, got number)" },
  { "a pipeline command that is not a table",
    function(c) return c:pipeline({ { "PING" }, "PING" }) end,
    "redis: pipeline: command #2 must be a table of arguments, got string" },
  { "a nil hole in the list of pipeline commands",
    function(c) return c:pipeline({ { "PING" }, nil, { "PING" } }) end,
    "redis: pipeline: command #2 must be a table of arguments, got nil" },
  { "an empty pipeline command",
    function(c) return c:pipeline({ {} }) end,
    "redis: pipeline: command #1 has no command name" },
  { "a pipeline command whose name is a number",
    function(c) return c:pipeline({ { 1, "x" } }) end,
    "redis: pipeline: command #1 has no command name" },
  { "a boolean argument in a pipeline",
    function(c) return c:pipeline({ { "PING" }, { "SET", "k", true } }) end,
    "redis: pipeline: command #2: argument #3 must be a string or a number, "
    .. "got boolean" },
  { "a nil hole inside a pipeline command",
    function(c) return c:pipeline({ { "SET", nil, "v" } }) end,
    "redis: pipeline: command #1: argument #2 must be a string or a number, "
    .. "got nil" },
  { "SUBSCRIBE in a pipeline",
    function(c) return c:pipeline({ { "SUBSCRIBE", "ch" } }) end,
    "redis: pipeline: command #1: SUBSCRIBE cannot be pipelined" },
  { "read() called on nil",
    function(c) return c.read(nil) end,
    "bad argument #1 to 'read' (redis.client expected, got nil)" },
  { "close() called on a string",
    function(c) return c.close("x") end,
    "bad argument #1 to 'close' (redis.client expected, got string)" },
  { "cmd inside a table.sort comparator",
    function(c)
      table.sort({ 3, 1, 2 }, function(a, b)
        c:cmd("PING")
        return a < b
      end)
    end,
    "redis: cmd: cannot suspend here (inside a C call boundary" },
  { "cmd from a plain coroutine inside a task",
    function(c)
      return coroutine.wrap(function() return c:cmd("PING") end)()
    end,
    "redis: cmd: must be called inside a lev task (lev.run)" },
  { "pipeline from a plain coroutine inside a task",
    function(c)
      return coroutine.wrap(function()
        return c:pipeline({ { "PING" } })
      end)()
    end,
    "redis: pipeline: must be called inside a lev task (lev.run)" },
  { "connect from a plain coroutine inside a task",
    function()
      return coroutine.wrap(function() return redis.connect(CFG) end)()
    end,
    "redis.connect: must be called inside a lev task (lev.run)" },
  { "lev.run inside lev.run",
    function() return lev.run(function() end) end,
    "lev.run: already running (lev.run cannot be nested; use lev.spawn)" },
}

describe("misuse: programmer errors raise a clear error:", function()
  it("raises the documented error for each of " .. #RAISES .. " misuses, "
     .. "and the client keeps working with nothing half-sent", function()
    run(function()
      drain()
      local c = assert(redis.connect(CFG))
      for i, case in ipairs(RAISES) do
        local err = raised(case[2], c)
        contains(case[3], err)
        -- Nothing of the bad call reached the server, and the reply stream
        -- is still in step.
        assert.equal("after " .. i, c:cmd("ECHO", "after " .. i),
          case[1])
      end
      assert.same({ nil, "not found" }, { c:cmd("GET", key("k")) })
      assert.same({ nil, "not found" }, { c:cmd("GET", key("l")) })
      assert.is_true(c:close())
      assert.equal(1, redis.pool_size(CFG)) -- still clean
      assert(redis.connect(CFG)):close(true)
    end)
  end)

  it("sends nothing of a pipeline rejected for a bad command, and keeps "
     .. "no MULTI state from it", function()
    run(function()
      drain()
      local c = assert(redis.connect(CFG))
      local err = raised(c.pipeline, c, {
        { "MULTI" }, { "SET", key("p"), "1" }, { "INCR", key("p") },
        { "SET", key("p"), false },
      })
      contains("command #4: argument #3", err)
      assert.same({ nil, "not found" }, { c:cmd("GET", key("p")) })
      assert.is_true(c:close())
      assert.equal(1, redis.pool_size(CFG)) -- not held in MULTI
      c = assert(redis.connect(CFG))
      assert.equal("PONG", c:cmd("PING")) -- no QUEUED: not in MULTI
      c:close(true)
    end)
  end)

  it("raises when read() is called while commands are pending, or while "
     .. "another task is reading", function()
    run(function()
      local c = assert(redis.connect(CFG))
      local t = lev.spawn(function() return c:cmd("BLPOP", key("bl"), 0.05) end)
      lev.sleep(0.01)
      contains("redis: read: commands are pending on this client",
               raised(c.read, c))
      assert.same({ true, nil, "not found" }, { t:join() })
      local s = assert(redis.connect(CFG))
      assert.is_table(s:cmd("SUBSCRIBE", key("ch")))
      local reader = lev.spawn(function() return s:read() end)
      lev.sleep(0.01)
      contains("redis: read: another task is already reading",
               raised(s.read, s))
      assert.equal(1, c:cmd("PUBLISH", key("ch"), "m"))
      local _, msg = reader:join()
      assert.same({ "message", key("ch"), "m" }, msg.value)
      s:close()
      c:close()
    end)
  end)

  it("raises outside lev.run for connect, cmd, method sugar, pipeline and "
     .. "read, and the client still works inside a later run", function()
    local c = run(function() return assert(redis.connect(CFG)) end)
    contains("redis.connect: must be called inside a lev task",
             raised(redis.connect, CFG))
    contains("redis: cmd: must be called inside a lev task",
             raised(c.cmd, c, "PING"))
    contains("redis: cmd: must be called inside a lev task",
             raised(function() return c:ping() end))
    contains("redis: pipeline: must be called inside a lev task",
             raised(c.pipeline, c, { { "PING" } }))
    contains("redis: read: must be called inside a lev task",
             raised(c.read, c))
    contains("redis: cmd: must be called inside a lev task",
             raised(coroutine.wrap(function() return c:cmd("PING") end)))
    assert.equal("PONG", run(function() return c:cmd("PING") end))
    run(function() assert.is_true(c:close()) end)
  end)
end)

describe("misuse: runtime conditions return nil, text:", function()
  it("answers every call on a closed client with nil, 'closed', and "
     .. "closing again is harmless", function()
    run(function()
      local c = assert(redis.connect(CFG))
      assert.is_true(c:close())
      local closed = { nil, "closed", "closed" }
      assert.same(closed, { c:cmd("PING") })
      assert.same(closed, { c:get(key("k")) })
      assert.same(closed, { c:pipeline({ { "PING" } }) })
      assert.same(closed, { c:read() })
      assert.same({}, c:pipeline({})) -- nothing to send
      assert.same({}, c:pipeline())
      assert.is_true(c:close())
      assert.is_true(c:close(true))
      -- Argument errors still raise on a closed client.
      contains("table expected", raised(c.pipeline, c, "x"))
      assert.matches("closed", tostring(c))
    end)
  end)

  it("fails the commands other tasks have pending with nil, 'closed' when "
     .. "a task closes the client", function()
    run(function()
      drain()
      local c = assert(redis.connect(CFG))
      local waiting = {}
      for i = 1, 3 do
        waiting[i] = lev.spawn(function()
          return c:cmd("BLPOP", key("never" .. i), 2)
        end)
      end
      lev.sleep(0.02)
      local t0 = lev.now()
      assert.is_true(c:close())
      for i = 1, 3 do
        assert.same({ true, nil, "closed", "closed" }, { waiting[i]:join() })
      end
      assert.is_true(lev.now() - t0 < 0.5)
      assert.equal(0, redis.pool_size(CFG)) -- commands were pending
    end)
  end)

  it("returns nil, 'invalid config: ...' for each bad config instead of "
     .. "raising", function()
    local bad = {
      { 42, 'config must be nil, a "host:port[/db]" string or a table' },
      { true, 'config must be nil, a "host:port[/db]" string or a table' },
      { {}, "host must be a non-empty string" },
      { { host = "" }, "host must be a non-empty string" },
      { { host = 127 }, "host must be a non-empty string" },
      { { host = HOST, port = "6379" }, "port must be an integer in 1..65535" },
      { { host = HOST, port = 1.5 }, "port must be an integer in 1..65535" },
      { { host = HOST, port = 0 }, "port must be an integer in 1..65535" },
      { { host = HOST, port = 70000 }, "port must be an integer in 1..65535" },
      { { host = HOST, port = math.huge },
        "port must be an integer in 1..65535" },
      { { host = HOST, port = 0 / 0 }, "port must be an integer in 1..65535" },
      { { host = HOST, db = -1 }, "db must be an integer >= 0" },
      { { host = HOST, db = "1" }, "db must be an integer >= 0" },
      { { host = HOST, timeout = 0 }, "timeout must be a number > 0" },
      { { host = HOST, timeout = -1 }, "timeout must be a number > 0" },
      { { host = HOST, timeout = "1" }, "timeout must be a number > 0" },
      { { host = HOST, timeout = 0 / 0 }, "timeout must be a number > 0" },
      { { host = HOST, timeout = math.huge }, "timeout must be a number > 0" },
      { { host = HOST, ssl = 1 }, "ssl must be true, false or a table" },
      { { host = HOST, auth = "x" }, "auth must be a table with non-empty "
        .. "string fields user and pass" },
      { { host = HOST, auth = { user = "u" } }, "auth must be a table with "
        .. "non-empty string fields user and pass" },
      { "h:notaport", "port must be an integer in 1..65535" },
      { "h:1:2", "port must be an integer in 1..65535" },
      { "h/1", 'expected "host:port" or "host:port/db", got "h/1"' },
    }
    run(function()
      for _, case in ipairs(bad) do
        local c, err, cat = redis.connect(case[1])
        assert.is_nil(c)
        contains("invalid config: " .. case[2], err)
        assert.equal("config", cat)
      end
    end)
  end)
end)

describe("misuse: huge argument counts:", function()
  it("sends a command with 300,000 arguments, and a pipeline command with "
     .. "1,000,000", function()
    run(function()
      local c = assert(redis.connect({ host = HOST, port = PORT,
                                       timeout = 10 }))
      local args = {}
      for i = 1, 300000 do args[i] = i end
      assert.equal(300000, c:cmd("RPUSH", key("big"), table.unpack(args)))
      local cmd = { "RPUSH", key("big2") }
      for i = 1, 1000000 do cmd[i + 2] = "x" end
      local res = assert(c:pipeline({ cmd, { "LLEN", key("big2") },
                                      { "DEL", key("big"), key("big2") } }))
      assert.same({ { 1000000 }, { 1000000 }, { 2 } }, res)
      assert.equal("PONG", c:cmd("PING"))
      c:close(true)
    end)
  end)

  it("returns all 100,000 results of a 100,000-command pipeline", function()
    run(function()
      local c = assert(redis.connect(CFG))
      local cmds = {}
      for i = 1, 100000 do cmds[i] = { "ECHO", i } end
      local res = assert(c:pipeline(cmds))
      assert.equal(100000, #res)
      for i = 1, 100000, 997 do assert.same({ tostring(i) }, res[i]) end
      assert.same({ "100000" }, res[100000])
      c:close(true)
    end)
  end)
end)

describe("misuse: out-of-range numbers:", function()
  it("sends NaN and infinities as text and returns the server's answer",
     function()
    run(function()
      local c = assert(redis.connect(CFG))
      assert.equal("inf", c:cmd("ECHO", math.huge))
      assert.equal("-inf", c:cmd("ECHO", -math.huge))
      assert.matches("nan", c:cmd("ECHO", 0 / 0))
      assert.equal("9223372036854775807", c:cmd("ECHO", math.maxinteger))
      assert.equal("-9223372036854775808", c:cmd("ECHO", math.mininteger))
      c:close(true)
    end)
  end)

  it("passes a blocking command's out-of-range timeout to the server and "
     .. "returns the server's error, keeping the connection", function()
    run(function()
      for _, v in ipairs({ math.huge, 1e300, 1e17, "1e300" }) do
        local c = assert(redis.connect(CFG))
        local ok, err, cat = c:cmd("BLPOP", key("never"), v)
        assert.is_nil(ok)
        assert.equal("redis", cat, "BLPOP timeout " .. tostring(v) .. ": "
          .. tostring(err))
        assert.matches("^ERR timeout", err)
        assert.equal("PONG", c:cmd("PING"))
        c:close(true)
      end
      local c = assert(redis.connect(CFG))
      local _, err, cat = c:cmd("XREAD", "BLOCK", 1e300, "STREAMS",
                                key("nostream"), "$")
      assert.equal("redis", cat, tostring(err))
      c:close(true)
    end)
  end)
end)

describe("misuse: dropped clients:", function()
  it("collects a client dropped without close, with commands answered, "
     .. "without a crash", function()
    run(function()
      for i = 1, 20 do
        local c = assert(redis.connect(CFG))
        assert.equal(i, c:cmd("INCR", key("gc")))
      end
      collectgarbage()
      collectgarbage()
      local c = assert(redis.connect(CFG))
      assert.equal(21, c:cmd("INCR", key("gc")))
      c:close(true)
    end)
  end)
end)
