-- Contract section 13: redis.subscriber against real redis-servers that
-- this spec starts (redis_proc), kills by PID and starts again on the same
-- port; CLIENT KILL from a second connection; Redis's own
-- client-output-buffer-limit for a subscriber that stays behind.
--
-- Nothing here asserts on wall-clock time: waits for a state are bounded
-- loops whose assertion is about the state.

local lev = require("lev")
local redis = require("redis")
local redis_proc = require("redis_proc")

local run = lev.run

local srv -- unlimited pub/sub output buffers unless a spec sets them

local function cfg(extra)
  local t = { host = "127.0.0.1", port = srv.port,
              auth = { user = redis_proc.user, pass = redis_proc.pass } }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function eventually(cond, limit)
  local deadline = lev.now() + (limit or 10)
  while not cond() and lev.now() < deadline do lev.sleep(0.005) end
  return cond()
end

local function record(s)
  local log = {}
  for _, ev in ipairs({ "disconnect", "reconnecting", "reconnect", "end" }) do
    s:on(ev, function(...) log[#log + 1] = { ev, ... } end)
  end
  return log
end

local function count(log, ev)
  local n = 0
  for _, e in ipairs(log) do if e[1] == ev then n = n + 1 end end
  return n
end

local function find(log, ev)
  for _, e in ipairs(log) do if e[1] == ev then return e end end
end

-- PUBLISH ch 1..n (payload: the number, then pad), pipelined 1000 at a
-- time.
local function publish_seq(c, ch, n, pad)
  local batch = {}
  pad = pad or ""
  for i = 1, n do
    batch[#batch + 1] = { "PUBLISH", ch, i .. pad }
    if #batch == 1000 or i == n then
      assert(c:pipeline(batch))
      batch = {}
    end
  end
end

-- CLIENT KILL of the connections named name; how many there were.
local function kill_named(admin, name)
  local n = 0
  for id, cname in assert(admin:cmd("CLIENT", "LIST")):gmatch(
      "id=(%d+) .- name=(%S*)") do
    if cname == name then
      n = n + assert(admin:cmd("CLIENT", "KILL", "ID", id))
    end
  end
  return n
end

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function up()
  if not srv:alive() then srv:restart() end
  srv:cli("CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0")
end

setup(function()
  srv = redis_proc.start{ conf = { "client-output-buffer-limit pubsub 0 0 0" } }
end)
teardown(function() srv:stop() end)

describe("subscriber: config", function()
  before_each(up)

  it("rejects a bad max_queue and a bad connect field with invalid config",
     function()
    run(function()
      for _, bad in ipairs({ 0, -1, 1.5, "10", true }) do
        local s, err = redis.subscriber(cfg{ max_queue = bad })
        assert.is_nil(s)
        assert.equal("invalid config: max_queue must be an integer >= 1", err)
      end
      local s, err = redis.subscriber(cfg{ port = 70000 })
      assert.is_nil(s)
      assert.equal("invalid config: port must be an integer in 1..65535", err)
      s, err = redis.subscriber(cfg{ reconnect = "yes" })
      assert.is_nil(s)
      assert.equal("invalid config: reconnect must be true, false or a table",
        err)
    end)
  end)

  it("has reconnect on by default and max_queue 10000; both can be set",
     function()
    run(function()
      local s = assert(redis.subscriber(cfg()))
      assert.equal(10000, s.cfg.max_queue)
      assert.same({ strategy = "exponential", base = 0.1, max = 5.0,
                    jitter = true, wait = 0.0 }, s.cfg.reconnect)
      s:close()
      s = assert(redis.subscriber(cfg{ reconnect = false, max_queue = 5.0 }))
      assert.equal(false, s.cfg.reconnect)
      assert.equal(5, s.cfg.max_queue)
      s:close()
      -- the string form too
      s = assert(redis.subscriber("redis://" .. redis_proc.user .. ":"
        .. redis_proc.pass .. "@127.0.0.1:" .. srv.port))
      assert.is_table(s.cfg.reconnect)
      s:close()
    end)
  end)

  it("fails a connect to a closed port with nil, err", function()
    run(function()
      local s, err = redis.subscriber{ host = "127.0.0.1", port = 1,
                                       connect_timeout = 2 }
      assert.is_nil(s)
      assert.equal("connection refused", err)
    end)
  end)
end)

describe("subscriber: subscriptions", function()
  before_each(up)

  it("confirms every name of every kind; un- forms with no names drop all "
     .. "of their kind", function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local s = assert(redis.subscriber(cfg()))
      assert.is_true(s:subscribe("c1", "c2", "c3"))
      assert.is_true(s:psubscribe("p1*", "p2*"))
      assert.is_true(s:ssubscribe("s1", "s2"))
      -- the server already counts every one of them
      assert.same({ "c1", 1, "c2", 1, "c3", 1 },
        admin:cmd("PUBSUB", "NUMSUB", "c1", "c2", "c3"))
      assert.equal(2, admin:cmd("PUBSUB", "NUMPAT"))
      assert.same({ "s1", 1, "s2", 1 },
        admin:cmd("PUBSUB", "SHARDNUMSUB", "s1", "s2"))
      assert.same({ channels = { "c1", "c2", "c3" }, patterns = { "p1*", "p2*" },
                    shard_channels = { "s1", "s2" } }, s:subscriptions())

      assert.is_true(s:unsubscribe("c2"))
      assert.same({ "c2", 0 }, admin:cmd("PUBSUB", "NUMSUB", "c2"))
      assert.is_true(s:unsubscribe())
      assert.same({ "c1", 0, "c3", 0 }, admin:cmd("PUBSUB", "NUMSUB", "c1", "c3"))
      assert.equal(2, admin:cmd("PUBSUB", "NUMPAT")) -- other kinds stay
      assert.is_true(s:punsubscribe())
      assert.equal(0, admin:cmd("PUBSUB", "NUMPAT"))
      assert.is_true(s:sunsubscribe())
      assert.same({ "s1", 0, "s2", 0 },
        admin:cmd("PUBSUB", "SHARDNUMSUB", "s1", "s2"))
      assert.same({ channels = {}, patterns = {}, shard_channels = {} },
        s:subscriptions())
      assert.is_true(s:unsubscribe()) -- nothing left: nothing to do
      -- and it can subscribe again
      assert.is_true(s:subscribe("c1"))
      assert.same({ "c1", 1 }, admin:cmd("PUBSUB", "NUMSUB", "c1"))
      s:close()
      assert.same({ nil, "closed", "closed" }, { s:subscribe("c1") })
      admin:close()
    end)
  end)

  it("raises for a name that is not a string or a number, and for a "
     .. "subscribe without names", function()
    run(function()
      local s = assert(redis.subscriber(cfg()))
      assert.has_error(function() s:subscribe("a", {}) end,
        "redis: subscribe: name #2 must be a string, got table")
      assert.has_error(function() s:psubscribe() end,
        "redis: psubscribe: at least one name is needed")
      assert.is_true(s:subscribe("after-error"))
      s:close()
    end)
  end)
end)

describe("subscriber: messages", function()
  before_each(up)

  for _, proto in ipairs({ 2, 3 }) do
    it("have the shape of their kind (protocol " .. proto .. ")", function()
      run(function()
        local admin = assert(redis.connect(cfg()))
        local s = assert(redis.subscriber(cfg{ protocol = proto }))
        assert.equal(proto, s.protocol)
        assert(s:subscribe("news"))
        assert(s:psubscribe("ev:*"))
        assert(s:ssubscribe("shard"))
        assert.equal(1, admin:cmd("PUBLISH", "news", "n1"))
        assert.equal(1, admin:cmd("PUBLISH", "ev:x", "e1"))
        assert.equal(1, admin:cmd("SPUBLISH", "shard", "s1"))
        assert.same({ kind = "message", channel = "news", payload = "n1" },
          s:next(5))
        assert.same({ kind = "pmessage", pattern = "ev:*", channel = "ev:x",
                      payload = "e1" }, s:next(5))
        assert.same({ kind = "smessage", channel = "shard", payload = "s1" },
          s:next(5))
        assert.same({ nil, "timeout" }, { s:next(0.05) })
        assert.same({ nil, "timeout" }, { s:next(0) })
        s:close()
        admin:close()
      end)
    end)
  end

  it("arrive in order: 100,000 messages from a pipelining publisher",
     function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local s = assert(redis.subscriber(cfg()))
      assert(s:subscribe("order"))
      local pub = lev.spawn(publish_seq, admin, "order", 100000)
      local bad
      for i = 1, 100000 do
        local m = assert(s:next(10))
        if m.payload ~= tostring(i) and not bad then
          bad = { i, m.payload }
        end
      end
      assert.is_nil(bad)
      assert(pub:join())
      assert.same({ nil, "timeout" }, { s:next(0.01) })
      s:close()
      admin:close()
    end)
  end)

  it("carry 1 MB binary payloads unchanged", function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local s = assert(redis.subscriber(cfg()))
      assert(s:subscribe("big"))
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local block = table.concat(bytes) -- every byte value, \0 and \r\n too
      local payloads = {}
      for k = 1, 3 do
        payloads[k] = string.rep(block, 4096):sub(k) .. "\r\n$-1\r\n"
        assert.equal(1, admin:cmd("PUBLISH", "big", payloads[k]))
      end
      for k = 1, 3 do
        local m = assert(s:next(10))
        assert.equal(#payloads[k], #m.payload)
        assert.is_true(m.payload == payloads[k])
      end
      s:close()
      admin:close()
    end)
  end)

  it("messages() iterates until the subscriber is closed", function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local s = assert(redis.subscriber(cfg()))
      assert(s:subscribe("it"))
      for i = 1, 5 do admin:cmd("PUBLISH", "it", "m" .. i) end
      local got = {}
      for m in s:messages() do
        got[#got + 1] = m.payload
        if #got == 5 then
          lev.spawn(function() s:close() end)
        end
      end
      assert.same({ "m1", "m2", "m3", "m4", "m5" }, got)
      assert.equal("closed", s:status())
      assert.same({ nil, "closed", "closed" }, { s:next() })
      admin:close()
    end)
  end)
end)

describe("subscriber: reconnect", function()
  before_each(up)

  local function publish_all_kinds(admin, tag)
    assert.equal(1, admin:cmd("PUBLISH", "rc", tag))
    assert.equal(1, admin:cmd("PUBLISH", "rp:1", tag))
    assert.equal(1, admin:cmd("SPUBLISH", "rs", tag))
  end

  local function receive_all_kinds(s, tag)
    local got = {}
    for _ = 1, 3 do
      local m = assert(s:next(10))
      got[m.kind] = m.payload
    end
    assert.same({ message = tag, pmessage = tag, smessage = tag }, got)
  end

  local function subscribed(s)
    assert(s:subscribe("rc"))
    assert(s:psubscribe("rp:*"))
    assert(s:ssubscribe("rs"))
  end

  it("after CLIENT KILL: resubscribes everything, then fires reconnect; "
     .. "later messages arrive", function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local s = assert(redis.subscriber(cfg{ name = "sub-kill",
        reconnect = { base = 0.01, max = 0.05 } }))
      local log = record(s)
      subscribed(s)
      publish_all_kinds(admin, "before")
      receive_all_kinds(s, "before")
      local before = s:subscriptions()
      assert.equal(1, kill_named(admin, "sub-kill"))
      assert.truthy(eventually(function() return count(log, "reconnect") == 1 end))
      assert.equal("ready", s:status())
      local d = find(log, "disconnect")
      assert.equal("connection closed by server", d[2])
      assert.equal("eof", d[3])
      -- the reconnect event comes after the resubscription
      assert.same({ "rc", 1 }, admin:cmd("PUBSUB", "NUMSUB", "rc"))
      assert.equal(1, admin:cmd("PUBSUB", "NUMPAT"))
      assert.same({ "rs", 1 }, admin:cmd("PUBSUB", "SHARDNUMSUB", "rs"))
      assert.same(before, s:subscriptions())
      publish_all_kinds(admin, "after")
      receive_all_kinds(s, "after")
      s:close()
      assert.truthy(eventually(function() return count(log, "end") == 1 end))
      admin:close()
    end)
  end)

  it("after a server restart on the same port: disconnect, reconnecting, "
     .. "reconnect; a next() waiting across the outage gets the later "
     .. "messages", function()
    run(function()
      local s = assert(redis.subscriber(cfg{
        reconnect = { base = 0.02, max = 0.1 } }))
      local log = record(s)
      subscribed(s)
      local waiter = lev.spawn(function()
        local got = {}
        for _ = 1, 3 do
          local m = assert(s:next())
          got[m.kind] = m.payload
        end
        return got
      end)
      lev.sleep(0.01)
      srv:kill()
      assert.truthy(eventually(function() return count(log, "disconnect") == 1 end))
      assert.equal("reconnecting", s:status())
      srv:restart()
      assert.truthy(eventually(function() return count(log, "reconnect") == 1 end))
      local admin = assert(redis.connect(cfg()))
      publish_all_kinds(admin, "restarted")
      local ok, got = waiter:join()
      assert.is_true(ok)
      assert.same({ message = "restarted", pmessage = "restarted",
                    smessage = "restarted" }, got)
      assert.truthy(count(log, "reconnecting") >= 1)
      assert.equal("eof", find(log, "disconnect")[3])
      s:close()
      admin:close()
    end)
  end)

  it("under a steady flood across CLIENT KILL: messages stay in order, "
     .. "the ones published after the reconnect all arrive", function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local pubc = assert(redis.connect(cfg()))
      local s = assert(redis.subscriber(cfg{
        reconnect = { base = 0.01, max = 0.05 } }))
      local log = record(s)
      assert(s:subscribe("flood", "flood2"))
      local last_sent, after_from
      local pub = lev.spawn(function()
        local i, extra = 0, 0
        while extra < 2000 do
          local batch = {}
          for _ = 1, 100 do
            i = i + 1
            batch[#batch + 1] = { "PUBLISH", "flood", tostring(i) }
          end
          assert(pubc:pipeline(batch))
          if count(log, "reconnect") == 1 then
            after_from = after_from or i + 1
            extra = extra + 100
          end
          lev.sleep(0)
        end
        last_sent = i
        assert(pubc:cmd("PUBLISH", "flood", "end"))
      end)
      lev.spawn(function()
        lev.sleep(0.05)
        admin:cmd("CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "yes")
      end)
      local prev, got, seen = 0, 0, {}
      while true do
        local m = assert(s:next(10))
        if m.payload == "end" then break end
        local v = tonumber(m.payload)
        assert.truthy(v > prev, "out of order: " .. v .. " after " .. prev)
        prev = v
        got = got + 1
        seen[v] = true
      end
      assert(pub:join())
      print(string.format("\n    flood across a kill: %d of %d received; "
        .. "every one from #%d (after the reconnect) on", got, last_sent,
        after_from))
      for v = after_from, last_sent do
        assert.truthy(seen[v], "lost #" .. v .. ", published after the "
          .. "reconnect")
      end
      s:close()
      pubc:close()
      admin:close()
    end)
  end)

  it("without reconnect, a lost connection ends next() with the error",
     function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local s = assert(redis.subscriber(cfg{ reconnect = false }))
      local log = record(s)
      assert(s:subscribe("gone"))
      admin:cmd("CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "yes")
      assert.same({ nil, "connection closed by server", "eof" },
        { s:next(5) })
      assert.equal("closed", s:status())
      assert.truthy(eventually(function() return count(log, "end") == 1 end))
      admin:close()
    end)
  end)
end)

describe("subscriber: backpressure", function()
  before_each(up)

  it("a subscriber that does not read while 100,000 messages are "
     .. "published: memory stays bounded and nothing is lost", function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local s = assert(redis.subscriber(cfg{ max_queue = 1000 }))
      assert(s:subscribe("bp"))
      -- 100 bytes each: more than the kernel's socket buffers hold. The
      -- publisher is another process (redis-cli --pipe), so that only the
      -- subscriber's memory is in this one's RSS. It blocks this process
      -- meanwhile, which is what a program that does not read looks like.
      local pad = (" "):rep(100)
      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      for i = 1, 100000 do
        local p = i .. pad
        f:write("*3\r\n$7\r\nPUBLISH\r\n$2\r\nbp\r\n$", #p, "\r\n", p,
                "\r\n")
      end
      f:close()
      collectgarbage()
      local rss0, heap0 = rss_kb(), collectgarbage("count")
      local p = assert(io.popen(string.format("redis-cli -h 127.0.0.1 -p %d "
        .. "--user %s --pass %s --no-auth-warning --pipe < %s 2>&1", srv.port,
        redis_proc.user, redis_proc.pass, file)))
      local out = p:read("a")
      p:close()
      os.remove(file)
      assert.truthy(out:find("replies: 100000", 1, true), out)
      lev.sleep(0.2) -- let the subscriber's socket take what it will
      collectgarbage()
      local rss1, heap1 = rss_kb(), collectgarbage("count")
      -- the server holds what the subscriber did not read
      local list = admin:cmd("CLIENT", "LIST", "TYPE", "pubsub")
      local omem = tonumber(list:match("omem=(%d+)"))
      print(string.format("\n    backpressure: 100,000 messages published, "
        .. "none read: RSS +%d kB, Lua heap +%d kB, Redis holds %d kB for "
        .. "the subscriber", rss1 - rss0, math.floor(heap1 - heap0),
        omem // 1024))
      -- 1000 queued messages are a few hundred kB; 100,000 would be ~25 MB
      assert.truthy(heap1 - heap0 < 2048, "Lua heap grew by "
        .. (heap1 - heap0) .. " kB")
      assert.truthy(rss1 - rss0 < 8192, "RSS grew by " .. (rss1 - rss0)
        .. " kB")
      assert.truthy(omem > 0)
      local bad
      for i = 1, 100000 do
        local m = assert(s:next(10))
        if m.payload ~= i .. pad and not bad then bad = { i, m.payload } end
      end
      assert.is_nil(bad)
      assert.same({ nil, "timeout" }, { s:next(0.01) })
      s:close()
      admin:close()
    end)
  end)

  it("subscribe while max_queue messages wait unread gets its "
     .. "confirmation (reading goes on while it waits)", function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local s = assert(redis.subscriber(cfg{ max_queue = 10 }))
      assert(s:subscribe("full"))
      publish_seq(admin, "full", 2000)
      lev.sleep(0.05)
      assert.same({ true }, { lev.timeout(10, s.subscribe, s, "more") })
      assert.same({ "more", 1 }, admin:cmd("PUBSUB", "NUMSUB", "more"))
      admin:cmd("PUBLISH", "more", "last")
      for i = 1, 2000 do
        assert.equal(tostring(i), assert(s:next(10)).payload)
      end
      assert.same({ kind = "message", channel = "more", payload = "last" },
        s:next(10))
      s:close()
      admin:close()
    end)
  end)

  it("Redis's client-output-buffer-limit disconnects a subscriber that "
     .. "stays behind; the disconnect event says so and what arrived is an "
     .. "unbroken prefix", function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      assert(admin:cmd("CONFIG", "SET", "client-output-buffer-limit",
                       "pubsub 256kb 128kb 1"))
      local s = assert(redis.subscriber(cfg{ max_queue = 100,
        reconnect = { base = 0.01, max = 0.05 } }))
      local log = record(s)
      assert(s:subscribe("slow"))
      publish_seq(admin, "slow", 100000, (" "):rep(200))
      -- The subscriber sees the server's close once it has read what
      -- reached it before the close: the messages come first, in order.
      local n = 0
      while true do
        local m = s:next(1)
        if not m then break end
        n = n + 1
        assert.equal(tostring(n), m.payload:match("^%d+"))
      end
      print(string.format("\n    output buffer limit: received %d of "
        .. "100,000 before the server dropped the rest", n))
      assert.truthy(eventually(function() return count(log, "reconnect") == 1 end))
      local d = find(log, "disconnect")
      print(string.format("    disconnect event: %q (%s)", d[2], d[3]))
      assert.equal("connection closed by server", d[2])
      assert.equal("eof", d[3])
      assert.truthy(n < 100000)
      -- resubscribed: later messages arrive
      admin:cmd("PUBLISH", "slow", "again")
      assert.equal("again", assert(s:next(10)).payload)
      s:close()
      admin:close()
    end)
  end)
end)

describe("subscriber: pooling", function()
  before_each(up)

  it("never enters the pool, after subscriptions, after unsubscribing "
     .. "all, after a reconnect", function()
    run(function()
      -- its own pool key (the name): other specs' clients are not counted
      local c = cfg{ name = "sub-pool" }
      assert.equal(0, redis.pool_size(c))
      local s = assert(redis.subscriber(c))
      s:close()
      assert.equal(0, redis.pool_size(c))
      s = assert(redis.subscriber(c))
      assert(s:subscribe("x"))
      assert(s:unsubscribe())
      s:close()
      assert.equal(0, redis.pool_size(c))
      local admin = assert(redis.connect(cfg()))
      s = assert(redis.subscriber(cfg{ name = "sub-pool",
                                       reconnect = { base = 0.01 } }))
      local log = record(s)
      assert(s:subscribe("y"))
      assert.equal(1, kill_named(admin, "sub-pool"))
      assert.truthy(eventually(function() return count(log, "reconnect") == 1 end))
      s:close()
      assert.equal(0, redis.pool_size(c))
      admin:close(true)
    end)
  end)
end)

describe("protocol 3 client: pub/sub beside ordinary commands", function()
  before_each(up)

  it("SUBSCRIBE, then SET/GET on the same client; messages from read()",
     function()
    run(function()
      local admin = assert(redis.connect(cfg()))
      local c = assert(redis.connect(cfg{ protocol = 3 }))
      assert.equal(3, c.protocol)
      assert.same({ "subscribe", "r3", 1 }, c:cmd("SUBSCRIBE", "r3"))
      assert.equal("OK", c:cmd("SET", "r3:k", "v"))
      assert.equal(1, admin:cmd("PUBLISH", "r3", "hello"))
      assert.equal("v", c:cmd("GET", "r3:k"))
      assert.same({ type = "push", value = { "message", "r3", "hello" } },
        c:read())
      assert.same({ "psubscribe", "r3:*", 2 }, c:cmd("PSUBSCRIBE", "r3:*"))
      assert.equal(1, admin:cmd("PUBLISH", "r3:x", "p"))
      assert.equal(2, c:cmd("INCR", "r3:n") + 1)
      assert.same({ type = "push", value = { "pmessage", "r3:*", "r3:x", "p" } },
        c:read())
      c:cmd("DEL", "r3:k", "r3:n")
      c:close()
      admin:close()
    end)
  end)
end)
