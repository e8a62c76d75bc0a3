-- Contract section 17: client-side caching on RESP3 tracking, against the
-- suite's real redis-server (hits proven by the server's own INFO
-- commandstats), redis-servers of this spec's own (one without HELLO, one
-- killed by PID and started again), and the fault proxy (a request held
-- on its way while another client writes the key; connections cut during
-- the soak).
--
-- No assertion is about wall-clock speed. Waits for a push to arrive are
-- bounded loops whose assertion is about the state reached.

local lev = require("lev")
local redis = require("redis")
local H = require("int_helper")
local fp = require("fault_proxy")
local redis_proc = require("redis_proc")

local run = lev.run

local function ccfg(extra)
  local t = { protocol = 3, cache = true }
  for k, v in pairs(extra or {}) do t[k] = v end
  return H.cfg(t)
end

-- Calls of each command the server has run: { get = n, ... }.
local function calls(admin)
  local info = assert(admin:cmd("INFO", "commandstats"))
  local t = setmetatable({}, { __index = function() return 0 end })
  for name, n in info:gmatch("cmdstat_([%w_|]+):calls=(%d+)") do
    t[name:lower()] = tonumber(n)
  end
  return t
end

local function eventually(cond, limit)
  local deadline = lev.now() + (limit or 5)
  while not cond() and lev.now() < deadline do lev.sleep(0.002) end
  return cond()
end

local function deep_equal(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

describe("cache config:", function()
  it("needs protocol = 3, and says so", function()
    local c, err = redis.connect(H.cfg({ cache = true }))
    assert.is_nil(c)
    assert.equals("invalid config: cache needs protocol = 3", err)
    c, err = redis.connect(H.cfg({ protocol = 2, cache = {} }))
    assert.equals("invalid config: cache needs protocol = 3", err)
  end)

  it("checks max_entries, max_bytes and ttl", function()
    local cases = {
      { { max_entries = 0 }, "cache.max_entries must be an integer >= 1" },
      { { max_entries = 1.5 }, "cache.max_entries must be an integer >= 1" },
      { { max_bytes = "1" }, "cache.max_bytes must be an integer >= 1" },
      { { max_bytes = -5 }, "cache.max_bytes must be an integer >= 1" },
      { { ttl = 0 }, "cache.ttl must be a number > 0 (seconds)" },
      { { ttl = 0 / 0 }, "cache.ttl must be a number > 0 (seconds)" },
      { { ttl = "60" }, "cache.ttl must be a number > 0 (seconds)" },
    }
    for _, case in ipairs(cases) do
      local c, err = redis.connect(ccfg({ cache = case[1] }))
      assert.is_nil(c)
      assert.equals("invalid config: " .. case[2], err)
    end
    local c, err = redis.connect(ccfg({ cache = "yes" }))
    assert.is_nil(c)
    assert.equals("invalid config: cache must be true, false or a table", err)
  end)

  it("fills cfg.cache with every default (or false)", function()
    run(function()
      local c = H.connect({ protocol = 3, cache = true })
      assert.same({ max_entries = 10000, max_bytes = 64 * 1024 * 1024,
                    ttl = 60.0 }, c.cfg.cache)
      c:close()
      c = H.connect({ protocol = 3, cache = { max_entries = 7, ttl = 2 } })
      assert.same({ max_entries = 7, max_bytes = 64 * 1024 * 1024,
                    ttl = 2.0 }, c.cfg.cache)
      c:close()
      c = H.connect({ protocol = 3 })
      assert.is_false(c.cfg.cache)
      c:close()
    end)
  end)

  it("fails the connect against a server without HELLO", function()
    local srv = redis_proc.start({ conf = { 'rename-command HELLO ""' } })
    local ok, perr = pcall(run, function()
      local c, err = redis.connect({ host = "127.0.0.1", port = srv.port,
        protocol = 3, cache = true,
        auth = { user = redis_proc.user, pass = redis_proc.pass } })
      assert.is_nil(c)
      assert.matches("^cache needs RESP3: ERR unknown command", err)
      -- Without a cache the same server is fine (RESP2 fallback).
      c = assert(redis.connect({ host = "127.0.0.1", port = srv.port,
        protocol = 3,
        auth = { user = redis_proc.user, pass = redis_proc.pass } }))
      assert.equals(2, c.protocol)
      c:close(true)
    end)
    srv:stop()
    assert(ok, perr)
  end)
end)

describe("cache:", function()
  before_each(H.reset)

  it("turns CLIENT TRACKING on in the handshake", function()
    run(function()
      local c = H.connect({ protocol = 3, cache = true })
      local info = c:cmd("CLIENT", "TRACKINGINFO")
      local flags = {}
      for _, f in ipairs(info.flags) do flags[f] = true end
      assert.is_true(flags.on)
      c:close(true)
    end)
  end)

  it("answers each listed read from memory the second time (INFO "
     .. "commandstats), with a fresh copy of the same value", function()
    run(function()
      local admin = H.connect()
      local c = H.connect({ protocol = 3, cache = true })
      assert(admin:pipeline({
        { "SET", "s", "hello" }, { "HSET", "h", "a", "1", "b", "2" },
        { "RPUSH", "l", "x", "y", "z" }, { "SADD", "set", "m1", "m2" },
        { "ZADD", "z", 1, "one", 2, "two", 3, "three" },
      }))
      local reads = {
        { "GET", "s" }, { "STRLEN", "s" }, { "GETRANGE", "s", 0, 2 },
        { "EXISTS", "s" }, { "TYPE", "h" }, { "HGET", "h", "a" },
        { "HMGET", "h", "a", "b", "nope" }, { "HGETALL", "h" },
        { "HLEN", "h" }, { "HEXISTS", "h", "a" }, { "HSTRLEN", "h", "b" },
        { "LRANGE", "l", 0, -1 }, { "LLEN", "l" }, { "LINDEX", "l", 1 },
        { "SMEMBERS", "set" }, { "SISMEMBER", "set", "m1" },
        { "SMISMEMBER", "set", "m1", "m9" }, { "SCARD", "set" },
        { "ZSCORE", "z", "two" }, { "ZMSCORE", "z", "one", "nine" },
        { "ZCARD", "z" }, { "ZRANK", "z", "three" },
        { "ZRANGE", "z", 0, -1, "WITHSCORES" },
        { "ZRANGE", "z", "(1", "+inf", "BYSCORE", "LIMIT", 0, 1 },
        { "ZRANGE", "z", "[a", "[z", "BYLEX" },
        { "ZRANGE", "z", 0, -1, "REV" },
      }
      local extra = 0
      for _, r in ipairs(reads) do
        local name = r[1]:lower()
        local before = calls(admin)[name]
        local v1 = table.pack(c:cmd(table.unpack(r)))
        local v2 = table.pack(c:cmd(table.unpack(r)))
        local v3 = table.pack(c:cmd(table.unpack(r)))
        assert.equals(before + 1, calls(admin)[name],
                      table.concat(r, " ") .. " reached the server again")
        assert.is_true(deep_equal(v1, v2), table.concat(r, " "))
        assert.is_true(deep_equal(v1, v3), table.concat(r, " "))
        if type(v1[1]) == "table" then
          assert.are_not.equal(v1[1], v2[1]) -- a fresh table each time
          v2[1].changed = true
          assert.is_nil(select(1, c:cmd(table.unpack(r))).changed)
          extra = extra + 1
        end
      end
      local st = c:cache_stats()
      assert.equals(#reads, st.misses)
      assert.equals(#reads * 2 + extra, st.hits)
      assert.equals(#reads, st.entries)
      c:close(true)
      admin:close(true)
    end)
  end)

  it("matches names in any case and numbers as the strings sent",
     function()
    run(function()
      local admin = H.connect()
      local c = H.connect({ protocol = 3, cache = true })
      admin:cmd("SET", "k", "abcdef")
      local before = calls(admin)
      assert.equals("abc", c:cmd("GETRANGE", "k", 0, 2))
      assert.equals("abc", c:cmd("getrange", "k", "0", "2"))
      assert.equals("abc", c:getRange("k", 0.0, 2))
      assert.equals(before.getrange + 1, calls(admin).getrange)
      assert.equals(2, c:cache_stats().hits)
      c:close(true)
      admin:close(true)
    end)
  end)

  it("keeps NULL replies and never error replies", function()
    run(function()
      local admin = H.connect()
      local c = H.connect({ protocol = 3, cache = true })
      admin:cmd("SET", "str", "v")
      local before = calls(admin)
      for _ = 1, 3 do
        local v, err = c:cmd("GET", "missing")
        assert.is_nil(v)
        assert.equals("not found", err)
        local v2, err2 = c:cmd("HGET", "str", "f")
        assert.is_nil(v2)
        assert.matches("^WRONGTYPE", err2)
      end
      local after = calls(admin)
      assert.equals(before.get + 1, after.get)
      assert.equals(before.hget + 3, after.hget)
      c:close(true)
      admin:close(true)
    end)
  end)

  it("drops an entry when another client writes its key (redis-cli)",
     function()
    run(function()
      local c = H.connect({ protocol = 3, cache = true })
      c:cmd("SET", "k", "v1")
      assert.equals("v1", c:cmd("GET", "k"))
      assert.equals("v1", c:cmd("GET", "k"))
      local inv = c:cache_stats().invalidations
      assert.equals("OK", H.cli("SET", "k", "v2"))
      assert.is_true(eventually(function()
        return c:cache_stats().invalidations > inv
      end))
      assert.equals("v2", c:cmd("GET", "k"))
      assert.equals(1, c:cache_stats().entries)
      c:close(true)
    end)
  end)

  it("drops an entry when the same client writes its key, before the "
     .. "write's caller reads again", function()
    run(function()
      local c = H.connect({ protocol = 3, cache = true })
      for i = 1, 50 do
        assert.equals("OK", c:cmd("SET", "k", "v" .. i))
        assert.equals("v" .. i, c:cmd("GET", "k"))
        assert.equals("v" .. i, c:cmd("GET", "k"))
        c:cmd("INCR", "n")
      end
      local st = c:cache_stats()
      assert.equals(50, st.misses)
      assert.equals(50, st.hits)
      c:close(true)
    end)
  end)

  it("drops every entry on FLUSHDB, and a key in every database", function()
    run(function()
      local admin = H.connect()
      local c = H.connect({ protocol = 3, cache = true })
      admin:pipeline({ { "SET", "a", "1" }, { "SET", "b", "2" } })
      c:cmd("GET", "a")
      c:cmd("GET", "b")
      assert.equals(2, c:cache_stats().entries)
      local inv = c:cache_stats().invalidations
      admin:cmd("FLUSHDB")
      assert.is_true(eventually(function()
        return c:cache_stats().entries == 0
      end))
      assert.equals(inv + 1, c:cache_stats().invalidations)
      assert.equals("not found", select(2, c:cmd("GET", "a")))
      -- The same key in two databases: one invalidation drops both.
      admin:cmd("SET", "k", "db0")
      assert.equals("OK", c:cmd("SELECT", 1))
      c:cmd("SET", "k", "db1")
      assert.equals("db1", c:cmd("GET", "k"))
      assert.equals("OK", c:cmd("SELECT", 0))
      assert.equals("db0", c:cmd("GET", "k"))
      local hits = c:cache_stats().hits
      assert.equals("OK", c:cmd("SELECT", 1))
      assert.equals("db1", c:cmd("GET", "k")) -- from memory, db 1
      assert.equals("OK", c:cmd("SELECT", 0))
      assert.equals("db0", c:cmd("GET", "k")) -- from memory, db 0
      assert.equals(hits + 2, c:cache_stats().hits)
      local entries = c:cache_stats().entries
      admin:cmd("SET", "k", "new")
      assert.is_true(eventually(function()
        return c:cache_stats().entries == entries - 2
      end))
      assert.equals("new", c:cmd("GET", "k"))
      c:cmd("FLUSHALL")
      c:close(true)
      admin:close(true)
    end)
  end)

  it("returns but does not keep a read whose key was invalidated while "
     .. "it was on its way (fault proxy holds the request)", function()
    run(function()
      local p = assert(fp.start({ upstream_port = H.port }))
      local admin = H.connect()
      local c = assert(redis.connect({ host = "127.0.0.1", port = p:port(),
        protocol = 3, cache = true,
        auth = { user = H.user, pass = H.pass } }))
      admin:cmd("SET", "k", "v1")
      assert.equals("v1", c:cmd("GET", "k")) -- k is tracked now
      local before = calls(admin)
      -- The next read waits in the proxy while the key changes (the
      -- proxy forwards the chunk it holds after: the PING).
      p.hold_requests = true
      assert.equals("PONG", c:cmd("PING"))
      local reader = lev.spawn(function() return c:cmd("STRLEN", "k") end)
      lev.sleep(0.01)
      local inv = c:cache_stats().invalidations
      admin:cmd("SET", "k", "v22")
      assert.is_true(eventually(function()
        return c:cache_stats().invalidations > inv
      end))
      p.hold_requests = false
      local ok, n = reader:join()
      assert.is_true(ok)
      assert.equals(3, n) -- returned to its caller...
      assert.equals(3, c:cmd("STRLEN", "k"))
      -- ...but not kept: the second STRLEN went to the server too.
      assert.equals(before.strlen + 2, calls(admin).strlen)
      assert.equals(0, c:cache_stats().hits)
      -- A read whose reply came before the invalidation is kept, then
      -- dropped by it (the push follows its reply on the connection).
      assert.equals(3, c:cmd("STRLEN", "k"))
      assert.equals(1, c:cache_stats().hits)
      c:close(true)
      admin:close(true)
      p:close()
    end)
  end)

  it("lets other tasks run and reads invalidations during a loop that "
     .. "only hits", function()
    run(function()
      local admin = H.connect()
      local c = H.connect({ protocol = 3, cache = true })
      admin:cmd("SET", "flag", "waiting")
      assert.equals("waiting", c:cmd("GET", "flag"))
      local ran = false
      lev.spawn(function() ran = true end)
      local writer = lev.spawn(function()
        lev.sleep(0.01)
        admin:cmd("SET", "flag", "done")
      end)
      local v, n = nil, 0
      repeat
        v = c:cmd("GET", "flag")
        n = n + 1
      until v == "done" or n == 10000000
      assert.equals("done", v)
      assert.is_true(ran)
      assert.is_true(c:cache_stats().hits > 0)
      assert(writer:join())
      c:close(true)
      admin:close(true)
    end)
  end)

  it("does not serve entries older than ttl", function()
    run(function()
      local admin = H.connect()
      local c = H.connect({ protocol = 3, cache = { ttl = 0.2 } })
      admin:cmd("SET", "k", "v")
      local before = calls(admin).get
      c:cmd("GET", "k")
      c:cmd("GET", "k")
      assert.equals(before + 1, calls(admin).get)
      lev.sleep(0.5)
      assert.equals("v", c:cmd("GET", "k"))
      assert.equals(before + 2, calls(admin).get)
      c:close(true)
      admin:close(true)
    end)
  end)

  it("keeps max_entries and max_bytes over 100,000 distinct keys, "
     .. "dropping the least recently used", function()
    run(function()
      local admin = H.connect()
      local N = 100000
      for base = 0, N - 1, 5000 do
        local cmds = {}
        for i = base + 1, base + 5000 do
          cmds[#cmds + 1] = { "SET", "key:" .. i, string.rep("x", i % 50) }
        end
        assert(admin:pipeline(cmds))
      end
      local by_n = H.connect({ protocol = 3,
                               cache = { max_entries = 1000 } })
      local by_b = H.connect({ protocol = 3,
                               cache = { max_bytes = 200000 } })
      local tasks = {}
      local per = N // 50
      for t = 0, 49 do
        tasks[#tasks + 1] = lev.spawn(function()
          for i = t * per + 1, (t + 1) * per do
            local v = by_n:cmd("GET", "key:" .. i)
            assert(v == string.rep("x", i % 50), "wrong value for " .. i)
            local w = by_b:cmd("GET", "key:" .. i)
            assert(w == v, "wrong value for " .. i)
          end
        end)
      end
      for _, t in ipairs(tasks) do assert(t:join()) end
      local sn, sb = by_n:cache_stats(), by_b:cache_stats()
      assert.equals(1000, sn.entries)
      assert.equals(N - 1000, sn.evictions)
      assert.equals(N, sn.misses)
      assert.is_true(sb.bytes <= 200000)
      assert.is_true(sb.entries > 100)
      assert.equals(N - sb.entries, sb.evictions)
      -- Honest bytes: each entry holds at least its key, command and value.
      assert.is_true(sb.bytes >= sb.entries * 40)
      -- The most recently used stay: the last key read is a hit, the
      -- first one a miss.
      local before = calls(admin).get
      by_n:cmd("GET", "key:" .. N)
      assert.equals(before, calls(admin).get)
      by_n:cmd("GET", "key:1")
      assert.equals(before + 1, calls(admin).get)
      -- A big value is accounted for its size.
      local b0 = by_n:cache_stats().bytes
      admin:cmd("SET", "big", string.rep("y", 100000))
      by_n:cmd("GET", "big")
      assert.is_true(by_n:cache_stats().bytes - b0 >= 100000 - 200)
      by_n:close(true)
      by_b:close(true)
      admin:close(true)
    end)
  end)

  it("is bypassed by pipelines, transactions and read(); writes and "
     .. "unlisted commands are never cached", function()
    run(function()
      local admin = H.connect()
      local c = H.connect({ protocol = 3, cache = true })
      c:cmd("SET", "k", "v")
      c:cmd("GET", "k")
      local before = calls(admin)
      local res = c:pipeline({ { "GET", "k" }, { "GET", "k" } })
      assert.same({ { "v" }, { "v" } }, res)
      assert.equals("OK", c:cmd("MULTI"))
      assert.equals("QUEUED", c:cmd("GET", "k"))
      assert.equals("QUEUED", c:cmd("GET", "k"))
      assert.same({ "v", "v" }, c:cmd("EXEC"))
      c:cmd("SET", "w", "1")
      c:cmd("SET", "w", "1")
      c:cmd("INCR", "n")
      c:cmd("INCR", "n")
      c:cmd("MGET", "k")
      c:cmd("MGET", "k")
      c:cmd("EXISTS", "k", "w") -- EXISTS of two keys is not listed
      c:cmd("EXISTS", "k", "w")
      local after = calls(admin)
      assert.equals(before.get + 4, after.get)
      assert.equals(before.set + 2, after.set)
      assert.equals(before.incr + 2, after.incr)
      assert.equals(before.mget + 2, after.mget)
      assert.equals(before.exists + 2, after.exists)
      -- After EXEC the cache answers again.
      c:cmd("GET", "k")
      assert.equals(after.get, calls(admin).get)
      c:close(true)
      admin:close(true)
    end)
  end)

  it("gives invalidations to push handlers as well, and never to read()",
     function()
    run(function()
      local admin = H.connect()
      local c = H.connect({ protocol = 3, cache = true })
      admin:cmd("SET", "k", "v")
      c:cmd("GET", "k")
      admin:cmd("SET", "k", "v2")
      assert.is_true(eventually(function()
        return c:cache_stats().entries == 0
      end))
      -- Nothing waits for read(): a read now would wait (timeout).
      local got = lev.timeout(0.05, function() return c:read() end)
      assert.is_nil(got)
      local pushes = {}
      c:on("push", function(v) pushes[#pushes + 1] = v end)
      c:cmd("GET", "k")
      admin:cmd("SET", "k", "v3")
      assert.is_true(eventually(function() return #pushes > 0 end))
      assert.same({ "invalidate", { "k" } }, pushes[1])
      assert.equals(0, c:cache_stats().entries)
      assert.equals("v3", c:cmd("GET", "k"))
      c:close(true)
      admin:close(true)
    end)
  end)

  it("stays with a pooled connection for the next client of the same "
     .. "settings, and only for those", function()
    run(function()
      local admin = H.connect()
      H.drain({ protocol = 3, cache = true })
      admin:cmd("SET", "k", "v")
      local c1 = H.connect({ protocol = 3, cache = true })
      c1:cmd("GET", "k")
      c1:close()
      local c2 = H.connect({ protocol = 3, cache = true })
      assert.equals(1, c2:cache_stats().entries)
      local before = calls(admin).get
      assert.equals("v", c2:cmd("GET", "k"))
      assert.equals(before, calls(admin).get)
      local other = H.connect({ protocol = 3, cache = { max_entries = 5 } })
      assert.equals(0, other:cache_stats().entries)
      other:close(true)
      -- Invalidated while idle in the pool: never served stale.
      c2:close()
      admin:cmd("SET", "k", "v2")
      lev.sleep(0.02)
      local c3 = H.connect({ protocol = 3, cache = true })
      assert.equals("v2", c3:cmd("GET", "k"))
      c3:cmd("CLIENT", "TRACKING", "off") -- the cache turns itself off
      assert.equals("v2", c3:cmd("GET", "k"))
      assert.equals(0, c3:cache_stats().entries)
      c3:close()
      H.drain({ protocol = 3, cache = true })
      admin:close(true)
    end)
  end)

  it("drops everything when CLIENT KILL ends the connection", function()
    run(function()
      local c = H.connect({ protocol = 3, cache = true,
                            reconnect = { base = 0.01, wait = 5 } })
      c:cmd("SET", "k", "v")
      c:cmd("GET", "k")
      assert.equals(1, c:cache_stats().entries)
      local id = c:cmd("CLIENT", "ID")
      local reconnected = false
      c:on("reconnect", function() reconnected = true end)
      H.cli("CLIENT", "KILL", "ID", id)
      assert.is_true(eventually(function() return reconnected end))
      local st = c:cache_stats()
      assert.equals(0, st.entries)
      assert.equals(0, st.hits + st.misses) -- a new connection's counts
      assert.equals("v", c:cmd("GET", "k"))
      assert.equals(1, c:cache_stats().misses)
      c:close(true)
    end)
  end)

  it("never serves a value from before a server restart", function()
    local srv = redis_proc.start()
    local ok, perr = pcall(run, function()
      local c = assert(redis.connect({ host = "127.0.0.1", port = srv.port,
        protocol = 3, cache = true, reconnect = { base = 0.05, wait = 10 },
        auth = { user = redis_proc.user, pass = redis_proc.pass } }))
      c:cmd("SET", "k", "before")
      assert.equals("before", c:cmd("GET", "k"))
      assert.equals("before", c:cmd("GET", "k"))
      local reconnected = false
      c:on("reconnect", function() reconnected = true end)
      srv:kill()
      srv:restart() -- empty: no persistence
      assert.is_true(eventually(function() return reconnected end, 15))
      local v, err = c:cmd("GET", "k")
      assert.is_nil(v)
      assert.equals("not found", err)
      c:close(true)
    end)
    srv:stop()
    assert(ok, perr)
  end)

  it("cache_clear drops every entry; cache_stats counts zeros without a "
     .. "cache", function()
    run(function()
      local c = H.connect({ protocol = 3, cache = true })
      c:cmd("SET", "k", "v")
      c:cmd("GET", "k")
      assert.is_true(c:cache_stats().bytes > 0)
      assert.is_true(c:cache_clear())
      local st = c:cache_stats()
      assert.equals(0, st.entries)
      assert.equals(0, st.bytes)
      c:close(true)
      local plain = H.connect({ protocol = 3 })
      plain:cmd("GET", "k")
      assert.same({ hits = 0, misses = 0, entries = 0, bytes = 0,
                    invalidations = 0, evictions = 0 }, plain:cache_stats())
      plain:close(true)
    end)
  end)
end)

describe("cache soak:", function()
  before_each(H.reset)

  it("never returns a value older than the last write (or read) "
     .. "completed before the read started, through cut connections",
     function()
    local seconds = tonumber(os.getenv("LEVR_CACHE_SOAK_SECONDS") or "6")
    run(function()
      local p = assert(fp.start({ upstream_port = H.port }))
      local c = assert(redis.connect({ host = "127.0.0.1", port = p:port(),
        protocol = 3, cache = { max_entries = 60 },
        reconnect = { base = 0.01, max = 0.05, wait = 2 },
        auth = { user = H.user, pass = H.pass } }))
      local ext = H.connect()
      local NK = 40
      -- own:i written through c (each key by one writer task, so versions
      -- complete in order); ext:i written by another connection.
      local own_done, ext_seen, issued = {}, {}, {}
      for i = 1, NK do
        own_done[i], ext_seen[i], issued[i] = 0, 0, 0
        assert(ext:cmd("SET", "own:" .. i, 0))
        assert(ext:cmd("SET", "ext:" .. i, 0))
      end
      local stop = false
      local n = { reads = 0, stale = 0, failed = 0, writes = 0, faults = 0 }
      local stale_msgs = {}
      local function own_writer(first)
        while not stop do
          for i = first, NK, 2 do
            local v = own_done[i] + 1
            if c:cmd("SET", "own:" .. i, v) == "OK" then
              own_done[i] = v
              n.writes = n.writes + 1
            else
              n.failed = n.failed + 1
            end
          end
          lev.sleep(0.002)
        end
      end
      local function ext_writer()
        while not stop do
          local i = math.random(NK)
          issued[i] = issued[i] + 1
          if ext:cmd("SET", "ext:" .. i, issued[i]) == "OK" then
            n.writes = n.writes + 1
          end
          lev.sleep(0.001)
        end
      end
      local function reader()
        while not stop do
          local i = math.random(NK)
          local own = math.random(2) == 1
          local floor = own and own_done[i] or ext_seen[i]
          local v = c:cmd("GET", (own and "own:" or "ext:") .. i)
          if v == nil then
            n.failed = n.failed + 1
          else
            v = tonumber(v)
            n.reads = n.reads + 1
            if v < floor then
              n.stale = n.stale + 1
              stale_msgs[#stale_msgs + 1] = string.format("%s:%d: %d < %d",
                own and "own" or "ext", i, v, floor)
            end
            if not own and v > ext_seen[i] then ext_seen[i] = v end
          end
          if math.random(20) == 1 then lev.sleep(0) end
        end
      end
      local hits, misses = 0, 0
      local function account()
        local st = c:cache_stats()
        hits, misses = hits + st.hits, misses + st.misses
      end
      local tasks = { lev.spawn(own_writer, 1), lev.spawn(own_writer, 2),
                      lev.spawn(ext_writer) }
      for _ = 1, 8 do tasks[#tasks + 1] = lev.spawn(reader) end
      local deadline = lev.now() + seconds
      while lev.now() < deadline do
        lev.sleep(0.4)
        account() -- the counts of the connection about to be cut
        n.faults = n.faults + p:drop_all()
      end
      stop = true
      for _, t in ipairs(tasks) do assert(t:join()) end
      account()
      print(string.format("\ncache soak: %.0f s, %d reads, hit ratio %.2f "
        .. "(%d hits, %d misses), %d writes, %d faults, %d failed calls, "
        .. "%d stale", seconds, n.reads, hits / math.max(1, hits + misses),
        hits, misses, n.writes, n.faults, n.failed, n.stale))
      assert.equals(0, n.stale, table.concat(stale_msgs, "\n"))
      assert.is_true(n.reads > 1000)
      assert.is_true(hits > 0)
      assert.is_true(n.faults > 0)
      c:close(true)
      ext:close(true)
      p:close()
    end)
  end)
end)
