-- Contract section 12: reconnect, events and status, against real
-- redis-servers that this spec kills by PID and starts again on the same
-- port (redis_proc), CLIENT KILL from a second connection, and the fault
-- proxy (cuts after the command was written, a server that accepts and
-- closes at once).
--
-- Nothing here asserts on wall-clock time: delays are checked on the
-- values the reconnecting events report, and waits for a state are
-- bounded loops whose assertion is about the state.

local lev = require("lev")
local redis = require("redis")
local core = require("redis.core")
local fp = require("fault_proxy")
local redis_proc = require("redis_proc")

local run = lev.run

local function cfg_for(port, extra, noauth)
  local t = { host = "127.0.0.1", port = port }
  if not noauth then
    t.auth = { user = redis_proc.user, pass = redis_proc.pass }
  end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- Runs until cond() holds or `limit` seconds pass; returns cond().
local function eventually(cond, limit)
  local deadline = lev.now() + (limit or 10)
  while not cond() and lev.now() < deadline do lev.sleep(0.005) end
  return cond()
end

-- Registers a handler for each event that appends { event, args... } to
-- the returned log.
local function record(c, events)
  local log = {}
  for _, ev in ipairs(events or { "disconnect", "reconnecting", "reconnect",
                                  "end" }) do
    c:on(ev, function(...) log[#log + 1] = { ev, ... } end)
  end
  return log
end

local function count(log, ev)
  local n = 0
  for _, e in ipairs(log) do if e[1] == ev then n = n + 1 end end
  return n
end

local function delays(log)
  local d = {}
  for _, e in ipairs(log) do
    if e[1] == "reconnecting" then d[#d + 1] = e[3] end
  end
  return d
end

local function info(c)
  local text = assert(c:cmd("CLIENT", "INFO"))
  local t = {}
  for k, v in text:gmatch("(%S+)=(%S*)") do t[k] = v end
  return t
end

local srv -- killed and restarted by the specs below
local function up()
  if not srv:alive() then srv:restart() end
end

setup(function() srv = redis_proc.start() end)
teardown(function() srv:stop() end)

describe("reconnect: without it", function()
  before_each(up)

  it("a failed connection stays failed: nil, 'closed' and status closed, "
     .. "disconnect and end once", function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port)))
      local log = record(c)
      assert.equal("ready", c:status())
      srv:kill()
      local ok, _, cat = c:cmd("PING")
      assert.is_nil(ok)
      assert.truthy(cat == "eof" or cat == "io", cat)
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
      assert.equal("closed", c:status())
      assert.truthy(eventually(function() return count(log, "end") == 1 end))
      assert.equal(1, count(log, "disconnect"))
      assert.equal(0, count(log, "reconnecting"))
      c:close()
      lev.sleep(0.01)
      assert.equal(1, count(log, "end")) -- close() of a dead client: no second
    end)
  end)
end)

describe("reconnect: in-flight commands", function()
  before_each(up)

  it("fail with their error and are never sent again: INCR counted by the "
     .. "server across a cut after the command was written", function()
    run(function()
      local admin = assert(redis.connect(cfg_for(srv.port)))
      admin:cmd("DEL", "rc:n")
      local p = assert(fp.start{ upstream_port = srv.port })
      local c = assert(redis.connect(cfg_for(p:port(), {
        reconnect = { base = 0.02, max = 0.05 } })))
      local log = record(c)
      -- one INCR: the server runs it, the reply is cut on its way back
      p.close_after = 0
      local v, err = c:cmd("INCR", "rc:n")
      assert.is_nil(v)
      assert.is_string(err)
      assert.equal(1, tonumber(admin:cmd("GET", "rc:n")))
      assert.truthy(eventually(function() return c:status() == "ready" end))
      assert.equal(2, c:cmd("INCR", "rc:n")) -- the first was not resent
      -- ten tasks' INCRs in one write, all cut: each fails, none resent
      p.close_after = 0
      local tasks = {}
      for i = 1, 10 do
        tasks[i] = lev.spawn(function() return c:cmd("INCR", "rc:n") end)
      end
      local ran = 0
      for i = 1, 10 do
        local fine, r = tasks[i]:join()
        assert.is_true(fine)
        assert.is_nil(r)
      end
      ran = tonumber(admin:cmd("GET", "rc:n")) - 2
      assert.truthy(ran >= 1 and ran <= 10, ran)
      assert.truthy(eventually(function() return c:status() == "ready" end))
      lev.sleep(0.1)
      assert.equal(2 + ran, tonumber(admin:cmd("GET", "rc:n")))
      assert.equal(2, count(log, "disconnect"))
      assert.equal(2, count(log, "reconnect"))
      c:close(true)
      admin:close(true)
      p:close()
    end)
  end)
end)

describe("reconnect: the session", function()
  before_each(up)

  it("redoes the whole handshake after a kill and a restart on the same "
     .. "port: HELLO 3 with AUTH and SETNAME, the database last selected",
     function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, { protocol = 3,
        name = "rc-session", db = 1, reconnect = { base = 0.02, max = 0.1 } })))
      local log = record(c)
      assert.equal("OK", c:cmd("SELECT", 5))
      assert.is_nil(c:cmd("SELECT", 100000)) -- rejected: not the last db
      srv:kill()
      assert.truthy(eventually(function()
        return c:status() == "reconnecting"
      end))
      srv:restart()
      assert.truthy(eventually(function() return c:status() == "ready" end))
      local me = info(c)
      assert.equal("5", me.db)
      assert.equal("rc-session", me.name)
      assert.equal("alice", me.user)
      assert.equal("3", me.resp)
      assert.equal(3, c.protocol)
      assert.equal(1, count(log, "disconnect"))
      assert.equal(1, count(log, "reconnect"))
      assert.truthy(count(log, "reconnecting") >= 1)
      -- the order of the events, each handler its own call
      assert.equal("disconnect", log[1][1])
      assert.equal("reconnect", log[#log][1])
      for i = 2, #log - 1 do
        assert.equal("reconnecting", log[i][1])
        assert.equal(i - 1, log[i][2])
      end
      c:close()
      assert.truthy(eventually(function() return count(log, "end") == 1 end))
      assert.equal("end", log[#log][1])
      assert.equal("closed", log[#log][2])
    end)
  end)

  it("subscribes again to every channel, pattern and shard channel before "
     .. "anything new is sent", function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, { protocol = 3,
        reconnect = { strategy = "fixed", delay = 0.05, wait = 10 } })))
      assert.truthy(c:cmd("SUBSCRIBE", "rc:a"))
      assert.truthy(c:cmd("SUBSCRIBE", "rc:b"))
      assert.truthy(c:cmd("PSUBSCRIBE", "rc:p*"))
      assert.truthy(c:cmd("SSUBSCRIBE", "rc:s"))
      assert.truthy(c:cmd("UNSUBSCRIBE", "rc:b"))
      local subs = { channels = { "rc:a" }, patterns = { "rc:p*" },
                     shard_channels = { "rc:s" } }
      assert.same(subs, core.subscriptions(c))
      srv:kill()
      assert.truthy(eventually(function()
        return c:status() == "reconnecting"
      end))
      -- issued while reconnecting: it waits, and runs after the
      -- resubscription, so the server counts our subscriptions
      local probe = lev.spawn(function()
        return c:pipeline({ { "PUBSUB", "NUMSUB", "rc:a", "rc:b" },
                            { "PUBSUB", "NUMPAT" },
                            { "PUBSUB", "SHARDNUMSUB", "rc:s" } })
      end)
      lev.sleep(0.02)
      srv:restart()
      local fine, res = probe:join()
      assert.is_true(fine)
      assert.same({ { { "rc:a", 1, "rc:b", 0 } }, { 1 },
                    { { "rc:s", 1 } } }, res)
      assert.same(subs, core.subscriptions(c))
      local pub = assert(redis.connect(cfg_for(srv.port)))
      assert.equal(1, pub:cmd("PUBLISH", "rc:a", "m1"))
      assert.equal(1, pub:cmd("PUBLISH", "rc:px", "m2"))
      assert.equal(1, pub:cmd("SPUBLISH", "rc:s", "m3"))
      local got = {}
      while #got < 3 do
        local m = assert(c:read())
        if m.value[1]:match("message$") then got[#got + 1] = m.value end
      end
      assert.same({ { "message", "rc:a", "m1" },
                    { "pmessage", "rc:p*", "rc:px", "m2" },
                    { "smessage", "rc:s", "m3" } }, got)
      pub:close()
      c:close()
    end)
  end)

  it("in RESP2 too: subscriptions tracked through read() confirmations, "
     .. "the database of a pipeline's last SELECT", function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, {
        reconnect = { base = 0.01, wait = 5 } })))
      local log = record(c)
      local res = c:pipeline({ { "SELECT", 7 }, { "SET", "rc:p", "1" },
                               { "SELECT", 6 } })
      assert.same({ { "OK" }, { "OK" }, { "OK" } }, res)
      assert.equal(6, core.selected_db(c))
      -- two names in one command: the second confirmation goes to read()
      assert.truthy(c:cmd("SUBSCRIBE", "rc:x", "rc:y"))
      assert.truthy(c:cmd("PSUBSCRIBE", "rc:q*"))
      assert.same({ channels = { "rc:x", "rc:y" }, patterns = { "rc:q*" },
                    shard_channels = {} }, core.subscriptions(c))
      assert.equal("subscribe", c:read().value[1])
      local admin = assert(redis.connect(cfg_for(srv.port)))
      local id
      for line in admin:cmd("CLIENT", "LIST"):gmatch("[^\n]+") do
        if line:find("psub=1", 1, true) then id = line:match("^id=(%d+)") end
      end
      assert.equal(1, admin:cmd("CLIENT", "KILL", "ID", id))
      assert.truthy(eventually(function() return count(log, "reconnect") == 1
      end))
      assert.equal(1, admin:cmd("PUBLISH", "rc:y", "hello"))
      assert.equal(1, admin:cmd("PUBLISH", "rc:qq", "world"))
      assert.same({ "message", "rc:y", "hello" }, c:read().value)
      assert.same({ "pmessage", "rc:q*", "rc:qq", "world" }, c:read().value)
      -- unsubscribing from everything: one confirmation per name
      assert.truthy(c:cmd("UNSUBSCRIBE"))
      assert.truthy(c:cmd("PUNSUBSCRIBE"))
      lev.sleep(0.05)
      assert.same({ channels = {}, patterns = {}, shard_channels = {} },
                  core.subscriptions(c))
      id = nil
      for line in admin:cmd("CLIENT", "LIST"):gmatch("[^\n]+") do
        if line:find(" db=6 ", 1, true) then id = line:match("^id=(%d+)") end
      end
      assert.truthy(id, "the reconnected client is not on db 6")
      admin:close()
      c:close()
    end)
  end)

  it("reconnects after CLIENT KILL from a second connection", function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, {
        reconnect = { base = 0.01 } })))
      local log = record(c)
      local id = c:cmd("CLIENT", "ID")
      local admin = assert(redis.connect(cfg_for(srv.port)))
      assert.equal(1, admin:cmd("CLIENT", "KILL", "ID", id))
      assert.truthy(eventually(function() return count(log, "reconnect") == 1
      end))
      assert.equal("ready", c:status())
      assert.equal("connection closed by server", log[1][2])
      assert.equal("eof", log[1][3])
      assert.not_equal(id, c:cmd("CLIENT", "ID"))
      admin:close()
      c:close()
    end)
  end)

  it("pools a clean connection of a reconnect client on close()", function()
    run(function()
      local cfg = cfg_for(srv.port, { reconnect = true, name = "rc-pool" })
      while redis.pool_size(cfg) > 0 do redis.connect(cfg):close(true) end
      local c = assert(redis.connect(cfg))
      local id = c:cmd("CLIENT", "ID")
      c:close()
      assert.equal("closed", c:status())
      assert.equal(1, redis.pool_size(cfg))
      local again = assert(redis.connect(cfg))
      assert.equal(id, again:cmd("CLIENT", "ID"))
      again:close(true)
    end)
  end)
end)

describe("reconnect: delays and attempts", function()
  before_each(up)

  -- Connects with r as reconnect, kills the server for good, and returns
  -- the event log once end has fired.
  local function outage(r)
    local c = assert(redis.connect(cfg_for(srv.port, { reconnect = r })))
    local log = record(c)
    srv:kill()
    assert.truthy(eventually(function() return count(log, "end") == 1 end))
    assert.equal("closed", c:status())
    assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
    return log, c
  end

  it("doubles exponentially up to max, gives up after attempts, fires "
     .. "disconnect once and end with the reason", function()
    run(function()
      local log = outage{ base = 0.01, max = 0.04, jitter = false,
                          attempts = 5 }
      assert.same({ 0.01, 0.02, 0.04, 0.04, 0.04 }, delays(log))
      assert.equal(1, count(log, "disconnect"))
      assert.equal(0, count(log, "reconnect"))
      local last = log[#log]
      assert.equal("end", last[1])
      assert.equal("reconnect gave up after 5 attempts: connection refused",
                   last[2])
    end)
  end)

  it("draws each jittered delay from [d/2, d]", function()
    run(function()
      local log = outage{ base = 0.004, max = 0.05, attempts = 8 }
      local d = delays(log)
      assert.equal(8, #d)
      local distinct = {}
      for n, v in ipairs(d) do
        local full = math.min(0.05, 0.004 * 2 ^ (n - 1))
        assert.truthy(v >= full / 2 and v <= full,
                      string.format("attempt %d: %g not in [%g, %g]", n, v,
                                    full / 2, full))
        distinct[v] = true
      end
      assert.truthy(next(distinct, next(distinct)), "jitter drew one value")
    end)
  end)

  it("waits a fixed delay with strategy fixed", function()
    run(function()
      local log = outage{ strategy = "fixed", delay = 0.02, jitter = false,
                          attempts = 3 }
      assert.same({ 0.02, 0.02, 0.02 }, delays(log))
      assert.same({ 1, 2, 3 }, { log[2][2], log[3][2], log[4][2] })
    end)
  end)

  it("keeps its backoff against a server that accepts and closes at once "
     .. "(connects counted)", function()
    run(function()
      local p = assert(fp.start{ upstream_port = srv.port })
      -- no AUTH, no name: the attempt's own PING meets the close
      local c = assert(redis.connect(cfg_for(p:port(), { reconnect = {
        strategy = "fixed", delay = 0.03, jitter = false, attempts = 6 } },
        true)))
      local log = record(c)
      local before = p.counters.connections
      srv:kill() -- the proxy now accepts and closes each connection
      assert.truthy(eventually(function() return count(log, "end") == 1 end))
      assert.equal(6, p.counters.connections - before)
      assert.equal(6, #delays(log))
      assert.equal(0, count(log, "reconnect"))
      assert.equal(1, count(log, "disconnect"))
      p:close()
    end)
  end)

  it("survives a host name that stops resolving during the outage",
     function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, { reconnect = {
        base = 0.01, max = 0.02 } })))
      local log = record(c)
      srv:kill()
      -- From here on the configured name does not resolve (.invalid is
      -- reserved, RFC 2606): the attempts meet a real resolver failure.
      c.cfg.host = "levr-reconnect.invalid"
      assert.truthy(eventually(function() return #delays(log) >= 3 end))
      assert.equal("reconnecting", c:status())
      c.cfg.host = "127.0.0.1"
      srv:restart()
      assert.truthy(eventually(function() return count(log, "reconnect") == 1
      end))
      assert.equal("PONG", c:cmd("PING"))
      c:close()
      -- and when it never comes back: the reason names the DNS failure
      local d = assert(redis.connect(cfg_for(srv.port, { reconnect = {
        base = 0.01, attempts = 2 } })))
      local dlog = record(d)
      d.cfg.host = "levr-reconnect.invalid"
      srv:kill()
      assert.truthy(eventually(function() return count(dlog, "end") == 1
      end))
      assert.truthy(dlog[#dlog][2]:find("^reconnect gave up after 2 "
        .. "attempts: dns: "), dlog[#dlog][2])
    end)
  end)
end)

describe("reconnect: commands while reconnecting", function()
  before_each(up)

  it("fail at once with nil, 'reconnecting', 'closed' when wait is 0",
     function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, {
        reconnect = { base = 0.05 } })))
      srv:kill()
      assert.truthy(eventually(function()
        return c:status() == "reconnecting"
      end))
      assert.same({ nil, "reconnecting", "closed" }, { c:cmd("PING") })
      assert.same({ nil, "reconnecting", "closed" }, { c:get("k") })
      assert.same({ nil, "reconnecting", "closed" },
                  { c:pipeline({ { "PING" } }) })
      assert.same({ nil, "reconnecting", "closed" }, { c:read() })
      c:close()
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
    end)
  end)

  it("wait up to wait seconds, then fail; or run once the connection is "
     .. "back", function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, {
        reconnect = { base = 0.02, max = 0.05, wait = 0.1 } })))
      local log = record(c)
      srv:kill()
      assert.truthy(eventually(function()
        return c:status() == "reconnecting"
      end))
      local before = #delays(log)
      assert.same({ nil, "reconnecting", "closed" }, { c:cmd("PING") })
      -- it waited: attempts happened meanwhile
      assert.truthy(#delays(log) > before)
      c.cfg.reconnect.wait = 30
      local t = lev.spawn(function() return c:cmd("ECHO", "waited") end)
      lev.sleep(0.05)
      assert.equal("waiting", t:status())
      srv:restart()
      assert.same({ true, "waited" }, { t:join() })
      c:close()
    end)
  end)

  it("bound the waiting commands by max_pending: the others fail at once",
     function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, { max_pending = 2,
        reconnect = { base = 0.02, max = 0.05, wait = 30 } })))
      srv:kill()
      assert.truthy(eventually(function()
        return c:status() == "reconnecting"
      end))
      local tasks = {}
      for i = 1, 5 do
        tasks[i] = lev.spawn(function() return c:cmd("ECHO", "e" .. i) end)
      end
      lev.sleep(0.05)
      local waiting, failed = 0, 0
      for i = 1, 5 do
        if tasks[i]:status() == "waiting" then
          waiting = waiting + 1
        else
          assert.same({ true, nil, "reconnecting", "closed" },
                      { tasks[i]:join() })
          failed = failed + 1
        end
      end
      assert.same({ 2, 3 }, { waiting, failed })
      srv:restart()
      for i = 1, 2 do
        assert.same({ true, "e" .. i }, { tasks[i]:join() })
      end
      c:close()
    end)
  end)
end)

describe("reconnect: stopping", function()
  before_each(up)

  it("stops when close() is called while reconnecting; end fires once",
     function()
    run(function()
      local p = assert(fp.start{ upstream_port = srv.port })
      local c = assert(redis.connect(cfg_for(p:port(), {
        reconnect = { strategy = "fixed", delay = 0.02 } })))
      local log = record(c)
      srv:kill()
      assert.truthy(eventually(function() return #delays(log) >= 2 end))
      c:close()
      assert.equal("closed", c:status())
      local seen = p.counters.connections
      lev.sleep(0.15)
      assert.equal(seen, p.counters.connections) -- no attempt after close
      assert.equal(1, count(log, "end"))
      assert.equal("closed", log[#log][2])
      assert.same({ nil, "closed", "closed" }, { c:cmd("PING") })
      p:close()
    end)
  end)

  it("stops when a <close> variable goes out of scope while reconnecting",
     function()
    run(function()
      local log
      do
        local c <close> = assert(redis.connect(cfg_for(srv.port, {
          reconnect = { strategy = "fixed", delay = 0.02 } })))
        log = record(c)
        srv:kill()
        assert.truthy(eventually(function() return #delays(log) >= 1 end))
      end
      assert.truthy(eventually(function() return count(log, "end") == 1 end))
      srv:restart()
      lev.sleep(0.1)
      assert.equal(0, count(log, "reconnect")) -- it did not come back
      assert.equal(1, count(log, "end"))
    end)
  end)

  it("stops when a handler calls close(); the client never crashes",
     function()
    run(function()
      local p = assert(fp.start{ upstream_port = srv.port })
      local c = assert(redis.connect(cfg_for(p:port(), {
        reconnect = { strategy = "fixed", delay = 0.03 } })))
      local log = record(c)
      c:on("reconnecting", function(n) if n == 2 then c:close() end end)
      local before = p.counters.connections
      srv:kill()
      assert.truthy(eventually(function() return count(log, "end") == 1 end))
      lev.sleep(0.15)
      assert.equal(2, #delays(log))
      -- attempt 1 connected (and was closed by the proxy); attempt 2 was
      -- stopped during its delay
      assert.equal(1, p.counters.connections - before)
      assert.equal(1, count(log, "end"))
      p:close()
    end)
  end)

  it("reports a handler that raises as lev reports an unjoined failed task, "
     .. "and keeps the client working", function()
    local ok, err = pcall(run, function()
      local c = assert(redis.connect(cfg_for(srv.port, {
        reconnect = { base = 0.01 } })))
      c:on("disconnect", function() error("handler boom") end)
      local log = record(c)
      local admin = assert(redis.connect(cfg_for(srv.port)))
      admin:cmd("CLIENT", "KILL", "ID", c:cmd("CLIENT", "ID"))
      assert.truthy(eventually(function() return count(log, "reconnect") == 1
      end))
      assert.equal("PONG", c:cmd("PING"))
      admin:close()
      c:close()
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("1 spawned task failed and was not "
      .. "joined; the first: .*handler boom"), err)
  end)
end)

describe("reconnect: on, off and push", function()
  before_each(up)

  it("runs each handler call as its own task and removes handlers with off",
     function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, {
        reconnect = { base = 0.01 } })))
      local threads, calls = {}, 0
      local h = c:on("disconnect", function()
        calls = calls + 1
        threads[coroutine.running()] = true
        lev.sleep(0.01) -- handlers may wait: they are tasks
      end)
      c:on("disconnect", function() threads[coroutine.running()] = true end)
      local rec = record(c, { "reconnect" })
      local admin = assert(redis.connect(cfg_for(srv.port)))
      admin:cmd("CLIENT", "KILL", "ID", c:cmd("CLIENT", "ID"))
      assert.truthy(eventually(function() return #rec == 1 end))
      assert.is_true(c:off(h))
      assert.is_false(c:off(h))
      admin:cmd("CLIENT", "KILL", "ID", c:cmd("CLIENT", "ID"))
      assert.truthy(eventually(function() return #rec == 2 end))
      assert.equal(1, calls)
      local n = 0
      for _ in pairs(threads) do n = n + 1 end
      assert.equal(3, n) -- three calls, three tasks
      admin:close()
      c:close()
    end)
  end)

  it("raises for an unknown event or a handler that is not a function",
     function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port)))
      assert.has_error(function() c:on("connect", print) end,
        "redis: on: unknown event connect (disconnect, reconnecting, "
        .. "reconnect, end, push)")
      assert.has_error(function() c:on("push", "f") end,
        "redis: on: the handler must be a function")
      c:close()
    end)
  end)

  it("gives real invalidation pushes to push handlers only, and to read() "
     .. "again after off", function()
    run(function()
      local c = assert(redis.connect(cfg_for(srv.port, { protocol = 3 })))
      local other = assert(redis.connect(cfg_for(srv.port)))
      local pushes = {}
      local h = c:on("push", function(v) pushes[#pushes + 1] = v end)
      assert.equal("OK", c:cmd("CLIENT", "TRACKING", "on"))
      assert.same({ nil, "not found" }, { c:cmd("GET", "rc:t1") })
      assert.equal("OK", other:cmd("SET", "rc:t1", "x"))
      assert.equal("e", c:cmd("ECHO", "e"))
      assert.truthy(eventually(function() return #pushes == 1 end))
      assert.same({ "invalidate", { "rc:t1" } }, pushes[1])
      assert.same({ nil, "timeout" }, { lev.timeout(0.05, c.read, c) })
      assert.is_true(c:off(h))
      assert.same({ nil, "not found" }, { c:cmd("GET", "rc:t2") })
      assert.equal("OK", other:cmd("SET", "rc:t2", "y"))
      assert.same({ type = "push", value = { "invalidate", { "rc:t2" } } },
                  c:read())
      assert.equal(1, #pushes)
      other:close()
      c:close()
    end)
  end)
end)
