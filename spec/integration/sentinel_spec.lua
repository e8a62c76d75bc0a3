-- redis.sentinel against a real Sentinel set: one master, two replicas and
-- three sentinels that tools/redis-sentinel.sh starts (make test names
-- them through LEVR_SENTINEL_DIR and LEVR_SENTINEL_PORTS). The sentinels
-- require the password "sentpass"; the data nodes have the ACL user alice.
-- Failovers move the master, so every spec asks the sentinels where it is
-- now instead of assuming it.
local lev = require("lev")
local redis = require("redis")
local mock = require("redis.mock")
local fp = require("fault_proxy")

local function need(name)
  local v = os.getenv(name)
  if not v or v == "" then
    error("sentinel specs: " .. name .. " is not set; start a set with "
      .. "tools/redis-sentinel.sh start DIR and pass LEVR_SENTINEL_DIR=DIR "
      .. "and LEVR_SENTINEL_PORTS (its output)", 0)
  end
  return v
end

local DIR = need("LEVR_SENTINEL_DIR")
local PORTS = {}
for p in need("LEVR_SENTINEL_PORTS"):gmatch("%d+") do
  PORTS[#PORTS + 1] = math.tointeger(tonumber(p))
end
assert(#PORTS == 6, "LEVR_SENTINEL_PORTS must name six ports")
local SENTINELS = { PORTS[4], PORTS[5], PORTS[6] }
local SAUTH = { user = "default", pass = "sentpass" }
local AUTH = { user = "alice", pass = "s3cret" }

local function addrs(list)
  local t = {}
  for i, p in ipairs(list or SENTINELS) do t[i] = "127.0.0.1:" .. p end
  return t
end

local function cfg(extra)
  local t = { sentinels = addrs(), master = "mymaster",
              sentinel_auth = SAUTH, auth = AUTH, connect_timeout = 5 }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- redis-cli against a port (a sentinel with its password, or a data node
-- as alice). Blocks the process: fine for checks between steps.
local function cli(port, sentinel, ...)
  local args = {}
  for i = 1, select("#", ...) do
    args[i] = "'" .. tostring((select(i, ...))):gsub("'", "'\\''") .. "'"
  end
  local auth = sentinel and "-a sentpass" or "--user alice --pass s3cret"
  local p = assert(io.popen(string.format(
    "redis-cli -h 127.0.0.1 -p %d %s --no-auth-warning --raw %s 2>&1",
    port, auth, table.concat(args, " "))))
  local out = p:read("a")
  p:close()
  return (out:gsub("\n$", ""))
end

-- The master's port as the sentinels see it now (asking each one: after a
-- failover they agree within a moment).
local function master_port()
  for _, s in ipairs(SENTINELS) do
    local out = cli(s, true, "SENTINEL", "get-master-addr-by-name",
                    "mymaster")
    local port = out:match("\n(%d+)$")
    if port then return math.tointeger(tonumber(port)) end
  end
  error("no sentinel names a master")
end

local function role(port)
  return (cli(port, false, "ROLE"):match("^(%S+)"))
end

-- Waits (outside lev.run) until the set is whole again: a master every
-- sentinel agrees on, two replicas in sync, no failover in progress.
local function settle(limit)
  local deadline = os.time() + (limit or 60)
  while os.time() <= deadline do
    local ok, m = pcall(master_port)
    if ok and role(m) == "master" then
      local info = cli(m, false, "INFO", "replication")
      local n = tonumber(info:match("connected_slaves:(%d+)"))
      local same = true
      for _, s in ipairs(SENTINELS) do
        local st = cli(s, true, "SENTINEL", "master", "mymaster")
        if not st:find("\n" .. m .. "\n", 1, true)
           or st:find("failover_in_progress", 1, true)
           or st:find("o_down", 1, true) then
          same = false
        end
      end
      if n == 2 and same and not info:find("slave%d+:.-state=wait_bgsave")
      then
        return m
      end
    end
    os.execute("sleep 0.2")
  end
  error("the sentinel set did not settle in " .. (limit or 60) .. " s")
end

local function free_port()
  local srv = assert(mock.start{ port = 0 })
  local port = srv:port()
  srv:close()
  return port
end

describe("redis.sentinel:", function()
  setup(function() settle() end)

  it("finds the master, checks its ROLE and keeps the sentinel config in cfg",
     function()
    local m = master_port()
    lev.run(function()
      local c = assert(redis.sentinel(cfg()))
      assert.are.equal("master", c:cmd("ROLE")[1])
      assert.are.equal(m, c.cfg.port)
      assert.are.equal("mymaster", c.cfg.sentinel.master)
      assert.are.equal("master", c.cfg.sentinel.role)
      assert.is_true(c.cfg.reconnect ~= false) -- on by default here
      assert.are.equal("ready", c:status())
      assert.are.equal("OK", c:set("sentinel:k", "v"))
      assert.are.equal("v", c:get("sentinel:k"))
      assert.are.equal("table", type(c))
      c.mine = 1 -- a client table like any other
      assert.are.equal(1, c.mine)
      assert.is_truthy(tostring(c):find("mymaster master at 127.0.0.1:"
        .. m, 1, true))
      c:close()
      assert.are.equal("closed", c:status())
      assert.are.same({ nil, "closed", "closed" }, { c:get("sentinel:k") })
    end)
  end)

  it("finds a replica when role is replica (ROLE says slave)", function()
    local m = master_port()
    lev.run(function()
      local seen = {}
      for _ = 1, 6 do
        local c = assert(redis.sentinel(cfg{ role = "replica" }))
        local r = c:cmd("ROLE")
        assert.are.equal("slave", r[1])
        assert.are.equal(m, math.tointeger(r[3]))
        assert.are_not.equal(m, c.cfg.port)
        seen[c.cfg.port] = true
        -- A replica refuses writes: READONLY comes back as the error.
        local v, err = c:cmd("SET", "sentinel:r", "1")
        assert.is_nil(v)
        assert.is_truthy(err:find("^READONLY"))
        c:close(true)
      end
      assert.is_true(next(seen) ~= nil)
    end)
  end)

  it("asks the next sentinel when the first is down and moves the one that "
     .. "answered to the front", function()
    local dead = free_port()
    lev.run(function()
      local c = assert(redis.sentinel(cfg{
        sentinels = addrs{ dead, SENTINELS[2], SENTINELS[3] } }))
      assert.are.equal("master", c:cmd("ROLE")[1])
      local order = c.cfg.sentinel.sentinels
      assert.are.equal(SENTINELS[2], order[1].port)
      assert.are.equal(dead, order[2].port)
      c:close()
    end)
  end)

  it("fails with a text naming every sentinel and what it said for an "
     .. "unknown master", function()
    local dead = free_port()
    lev.run(function()
      local t0 = lev.now()
      -- connect_timeout leaves each sentinel time to answer on a loaded
      -- machine (its share is connect_timeout / #sentinels).
      local c, err, cat = redis.sentinel(cfg{ master = "nosuch",
        sentinels = addrs{ SENTINELS[1], dead }, connect_timeout = 3 })
      assert.is_nil(c)
      assert.are.equal("io", cat)
      assert.is_truthy(err:find('^sentinel: no master for "nosuch"'))
      assert.is_truthy(err:find("127.0.0.1:" .. SENTINELS[1]
        .. ' does not know master "nosuch"', 1, true))
      assert.is_truthy(err:find("127.0.0.1:" .. dead
        .. " connection refused", 1, true))
      -- It kept asking (rounds) until connect_timeout.
      assert.is_true(lev.now() - t0 >= 3)
      -- role = replica asks SENTINEL replicas, with the same failure.
      c, err = redis.sentinel(cfg{ master = "nosuch", role = "replica",
        sentinels = addrs{ SENTINELS[1] }, connect_timeout = 2 })
      assert.is_nil(c)
      assert.is_truthy(err:find('does not know master "nosuch"', 1, true),
                       err)
    end)
  end)

  it("fails when no sentinel is reachable, naming each one", function()
    local d1, d2 = free_port(), free_port()
    lev.run(function()
      local c, err = redis.sentinel(cfg{ sentinels = addrs{ d1, d2 },
                                         connect_timeout = 0.5 })
      assert.is_nil(c)
      assert.is_truthy(err:find("127.0.0.1:" .. d1 .. " connection refused",
                                1, true))
      assert.is_truthy(err:find("127.0.0.1:" .. d2 .. " connection refused",
                                1, true))
    end)
  end)

  it("needs sentinel_auth for sentinels with a password, and never shows "
     .. "a password", function()
    lev.run(function()
      local noauth = cfg{ sentinels = addrs{ SENTINELS[1] },
                          connect_timeout = 2 }
      noauth.sentinel_auth = nil
      local c, err = redis.sentinel(noauth)
      assert.is_nil(c)
      assert.is_truthy(err:find("NOAUTH", 1, true), err)
      c, err = redis.sentinel(cfg{
        sentinel_auth = { user = "default", pass = "wrong-secret" },
        sentinels = addrs{ SENTINELS[1] }, connect_timeout = 2 })
      assert.is_nil(c)
      assert.is_truthy(err:find("WRONGPASS", 1, true), err)
      assert.is_nil(err:find("wrong-secret", 1, true))
      -- A wrong password for the data node fails too, not the sentinels.
      c, err = redis.sentinel(cfg{ auth = { user = "alice", pass = "nope" },
        connect_timeout = 2 })
      assert.is_nil(c)
      assert.is_truthy(err:find("WRONGPASS", 1, true))
      assert.is_nil(err:find("nope", 1, true))
    end)
  end)

  it("rejects invalid configs with invalid config texts", function()
    lev.run(function()
      local cases = {
        { nil, "redis.sentinel needs a table with sentinels and master" },
        { { master = "m" }, 'sentinels must be a non-empty array of '
          .. '"host:port" strings' },
        { { sentinels = {}, master = "m" }, 'sentinels must be a non-empty '
          .. 'array of "host:port" strings' },
        { { sentinels = { "h:1", "nope" }, master = "m" },
          'sentinels[2] must be a "host:port" string' },
        { { sentinels = { "h:1" } }, "master must be a non-empty string "
          .. "(the name the sentinels know)" },
        { { sentinels = { "h:1" }, master = "m", role = "leader" },
          'role must be "master" or "replica"' },
        { { sentinels = { "h:1" }, master = "m", sentinel_auth = "pw" },
          "sentinel_auth must be a table with non-empty string fields "
          .. "user and pass" },
        { { sentinels = { "h:1" }, master = "m", db = -1 },
          "db must be an integer >= 0" },
        { { sentinels = { "h:1" }, master = "m", reconnect = 5 },
          nil },
      }
      for _, case in ipairs(cases) do
        local c, err, cat = redis.sentinel(case[1])
        assert.is_nil(c)
        assert.are.equal("config", cat)
        if case[2] then
          assert.are.equal("invalid config: " .. case[2], err)
        else
          assert.is_truthy(err:find("^invalid config: reconnect"))
        end
      end
    end)
  end)

  it("follows SENTINEL FAILOVER under a write load from 20 tasks: writes "
     .. "resume on the new master, nothing is applied twice", function()
    local old = settle()
    local report = {}
    lev.run(function()
      local c = assert(redis.sentinel(cfg()))
      assert.are.equal(old, c.cfg.port)
      local events = {}
      c:on("disconnect", function(text, cat)
        events[#events + 1] = { "disconnect", text, cat, lev.now() }
      end)
      c:on("reconnect", function()
        events[#events + 1] = { "reconnect", c.cfg.port, lev.now() }
      end)
      local acked, failed = {}, 0
      local first_fail, first_ok_after
      local stop = false
      local tasks = {}
      for t = 1, 20 do
        tasks[t] = lev.spawn(function()
          local i = 0
          acked[t] = {}
          while not stop do
            i = i + 1
            -- One list per task: each write appends its own number, so a
            -- write applied twice shows as a repeated number.
            local n, err = c:rpush("fo:" .. t, i)
            lev.sleep(0.002) -- ~10,000 writes/s in all
            if n then
              acked[t][#acked[t] + 1] = i
              if first_fail and not first_ok_after then
                first_ok_after = lev.now()
              end
            else
              failed = failed + 1
              first_fail = first_fail or lev.now()
              assert.is_truthy(err == "reconnecting" or err == "closed"
                or err:find("switch%-master") or err:find("READONLY")
                or err == "connection closed by server", err)
              lev.sleep(0.02)
            end
          end
        end)
      end
      lev.sleep(0.3)
      local s = assert(redis.connect{ host = "127.0.0.1",
        port = SENTINELS[1], auth = SAUTH })
      assert.are.equal("OK", s:cmd("SENTINEL", "FAILOVER", "mymaster"))
      s:close()
      -- Until the client has moved and written for a while on the new one.
      local deadline = lev.now() + 30
      while lev.now() < deadline
            and not (c.cfg.port ~= old and first_ok_after
                     and lev.now() - first_ok_after > 0.5) do
        lev.sleep(0.05)
      end
      stop = true
      for _, t in ipairs(tasks) do assert(t:join()) end
      assert.are_not.equal(old, c.cfg.port)
      assert.are.equal("master", c:cmd("ROLE")[1])
      -- It left the old master because the sentinels announced the new
      -- one, not because that node dropped it later.
      assert.are.equal("disconnect", events[1][1])
      assert.is_truthy(events[1][2]:find("+switch-master mymaster now at",
                                         1, true), events[1][2])
      -- Nothing twice: each list strictly increasing on the new master;
      -- acknowledged numbers missing there were lost by Redis's
      -- asynchronous replication (the old master took them before it was
      -- demoted), which we count and print.
      local lost, total = 0, 0
      for t = 1, 20 do
        local list = assert(c:lrange("fo:" .. t, 0, -1))
        local have = {}
        local prev = 0
        for _, v in ipairs(list) do
          v = math.tointeger(tonumber(v))
          assert.is_true(v > prev, "task " .. t .. " has " .. v
            .. " after " .. prev)
          prev = v
          have[v] = true
        end
        for _, i in ipairs(acked[t]) do
          total = total + 1
          if not have[i] then lost = lost + 1 end
        end
      end
      report.total, report.lost, report.failed = total, lost, failed
      report.outage = first_fail and first_ok_after
        and first_ok_after - first_fail
      for t = 1, 20 do c:del("fo:" .. t) end
      c:close()
    end)
    print(string.format("\nsentinel failover: %d writes acknowledged, %d "
      .. "failed while switching, client-side outage %.3f s (first failed "
      .. "write to first successful one), %d acknowledged writes lost by "
      .. "Redis's asynchronous replication", report.total, report.failed,
      report.outage or -1, report.lost))
    settle()
  end)

  it("reconnects to the new master when the master is killed outright",
     function()
    local old = settle()
    local name
    for _, n in ipairs({ "master", "replica1", "replica2" }) do
      local f = io.open(DIR .. "/" .. n .. "/port")
      if f and math.tointeger(tonumber(f:read("l"))) == old then name = n end
      if f then f:close() end
    end
    assert(name, "no node of the set has port " .. old)
    local ok, err = pcall(lev.run, function()
      local c = assert(redis.sentinel(cfg()))
      assert.are.equal(old, c.cfg.port)
      local ev = {}
      c:on("disconnect", function(text, cat) ev[#ev + 1] = cat end)
      c:on("reconnect", function() ev[#ev + 1] = "reconnect" end)
      assert.are.equal("OK", c:set("kill:k", "before"))
      local f = assert(io.open(DIR .. "/" .. name .. "/pid"))
      local pid = f:read("l")
      f:close()
      os.execute("kill -9 " .. pid)
      -- Commands fail while the sentinels notice and promote (about
      -- down-after-milliseconds + the election); none waits forever.
      local deadline = lev.now() + 30
      local v, err
      repeat
        v, err = c:set("kill:k", "after")
        if not v then lev.sleep(0.1) end
      until v or lev.now() > deadline
      assert.are.equal("OK", v, err)
      assert.are_not.equal(old, c.cfg.port)
      assert.are.equal("master", c:cmd("ROLE")[1])
      assert.are.equal("after", c:get("kill:k"))
      -- The server vanished: end of stream or a reset, as the kernel saw it.
      assert.is_truthy(ev[1] == "eof" or ev[1] == "io", ev[1])
      assert.are.equal("reconnect", ev[#ev])
      c:del("kill:k")
      c:close()
    end)
    -- The killed node comes back empty; the sentinels make it a replica.
    -- (Also when the spec failed: the next specs need the whole set.)
    assert(os.execute("tools/redis-sentinel.sh restart " .. DIR .. " "
                      .. name))
    assert(ok, err)
    settle()
  end)

  it("sends a write answered READONLY once more to the new master", function()
    -- A master demoted by hand (REPLICAOF) keeps its clients, so a write
    -- gets READONLY; a sentinel-driven demotion kills them first. Two real
    -- data nodes of this spec's own, and a scripted sentinel naming one
    -- and then the other.
    local a = fp.own_server("--user alice on '>s3cret' '~*' '&*' +@all")
    local b = fp.own_server("--user alice on '>s3cret' '~*' '&*' +@all")
    local ok, err = pcall(function()
      assert(os.execute(string.format("redis-cli -p %d REPLICAOF 127.0.0.1 "
        .. "%d >/dev/null", b.port, a.port)))
      lev.run(function()
        local current = a.port
        local s = assert(mock.start{ port = 0, handlers = {
          SENTINEL = function(argv)
            if argv[2]:lower() == "get-master-addr-by-name"
               and argv[3] == "mymaster" then
              return { "127.0.0.1", tostring(current) }
            end
          end } })
        local c = assert(redis.sentinel{ sentinels = { "127.0.0.1:"
          .. s:port() }, master = "mymaster", auth = AUTH })
        assert.are.equal(a.port, c.cfg.port)
        assert.are.equal("OK", c:set("ro:k", "1"))
        local dis
        c:on("disconnect", function(text) dis = text end)
        -- The switch: b becomes master, a its replica; the sentinel now
        -- names b. The client does not know yet.
        local bc = assert(redis.connect{ host = "127.0.0.1", port = b.port,
                                         auth = AUTH })
        assert.are.equal("OK", bc:cmd("REPLICAOF", "NO", "ONE"))
        local ac = assert(redis.connect{ host = "127.0.0.1", port = a.port,
                                         auth = AUTH })
        assert.are.equal("OK", ac:cmd("REPLICAOF", "127.0.0.1", b.port))
        current = b.port
        assert.are.equal(1, c:incr("ro:n")) -- answered by b, once
        assert.are.equal(b.port, c.cfg.port)
        assert.is_truthy(dis and dis:find("^READONLY"), dis)
        -- a rejected it (not run), b ran it once.
        local astats = ac:cmd("INFO", "commandstats")
        local bstats = bc:cmd("INFO", "commandstats")
        assert.is_truthy(astats:find("cmdstat_incr:calls=0,.-rejected_calls=1"),
                         astats)
        assert.is_truthy(bstats:find("cmdstat_incr:calls=1,"), bstats)
        assert.are.equal("1", bc:get("ro:n"))
        -- A pipeline's READONLY entries go again too, the others keep
        -- their replies.
        local function synced(conn)
          for _ = 1, 200 do
            if conn:cmd("INFO", "replication"):find("master_link_status:up")
            then
              return true
            end
            lev.sleep(0.05)
          end
          return false
        end
        assert.is_true(synced(ac), "a did not sync from b")
        assert.are.equal("OK", ac:cmd("REPLICAOF", "NO", "ONE"))
        assert.are.equal("OK", bc:cmd("REPLICAOF", "127.0.0.1", a.port))
        current = a.port
        assert.is_true(synced(bc), "b did not sync from a")
        local res = assert(c:pipeline{ { "GET", "ro:n" },
          { "INCR", "ro:n" }, { "GET", "missing:x" } })
        assert.are.same({ "1" }, res[1])
        assert.are.same({ 2 }, res[2])
        assert.are.same({}, res[3])
        assert.are.equal(a.port, c.cfg.port)
        c:close(); ac:close(); bc:close(); s:close()
      end)
    end)
    a:destroy(); b:destroy()
    assert(ok, err)
  end)
end)
