-- redis.cluster against a real Redis Cluster: three masters and three
-- replicas that the test run starts with tools/redis-cluster.sh (the ports
-- in LEVR_CLUSTER_PORTS, its directory in LEVR_CLUSTER_DIR). Every node has
-- the ACL user alice (s3cret) and requirepass defaultpw. Section 15 of
-- CONTRACT.md. The destructive cases (SIGSTOP, kill) come last and restore
-- the nodes they stopped.

local lev = require("lev")
local redis = require("redis")
local cluster = require("redis.cluster")

local ch = require("cluster_helper")
local DIR, PORTS, AUTH, SEEDS = ch.DIR, ch.PORTS, ch.AUTH, ch.SEEDS

local function new_cluster(extra)
  local conf = { nodes = SEEDS, auth = AUTH, timeout = 5 }
  for k, v in pairs(extra or {}) do conf[k] = v end
  local cl, err = redis.cluster(conf)
  assert(cl, err)
  return cl
end

local admin, on = ch.admin, ch.on

-- The same after ASKING (a key of a slot being imported).
local function on_asking(port, ...)
  local c = admin(port)
  local res = assert(c:pipeline{ { "ASKING" }, { ... } })
  c:close(true)
  return res[2][1], res[2][2]
end

-- Moves an empty slot the documented way (IMPORTING, MIGRATING, then
-- NODE on the target first, which bumps its config epoch, then on the
-- others), so every node agrees on the new owner.
local function move_slot(slot, src, dst, masters)
  assert(on(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", masters[src].id))
  assert(on(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", masters[dst].id))
  assert(on(dst, "CLUSTER", "SETSLOT", slot, "NODE", masters[dst].id))
  assert(on(src, "CLUSTER", "SETSLOT", slot, "NODE", masters[dst].id))
  for port in pairs(masters) do
    if port ~= src and port ~= dst then
      assert(on(port, "CLUSTER", "SETSLOT", slot, "NODE", masters[dst].id))
    end
  end
end

local function info_field(port, section, field)
  local text = assert(on(port, "INFO", section))
  return text:match(field .. ":([^\r\n]*)")
end

local function calls(port, cmd)
  local text = assert(on(port, "INFO", "commandstats"))
  return math.tointeger(tonumber(
    text:match("cmdstat_" .. cmd .. ":calls=(%d+)") or "0"))
end

-- Polls cond() inside a task, every 50 ms, for at most secs seconds.
local function wait_for(secs, what, cond)
  local deadline = lev.now() + secs
  while true do
    if cond() then return end
    if lev.now() > deadline then error("gave up waiting for " .. what, 2) end
    lev.sleep(0.05)
  end
end

-- A hash tag for every slot: "{tag}anything" lands in that slot.
local TAG = {}
do
  local left, i = 16384, 0
  while left > 0 do
    local t = "t" .. i
    local s = cluster.keyslot(t)
    if not TAG[s] then TAG[s] = t; left = left - 1 end
    i = i + 1
  end
end
local function key_in(slot, suffix)
  return "{" .. TAG[slot] .. "}" .. (suffix or "")
end

-- The cluster's current masters: port -> { id =, ranges = {...} }, from
-- CLUSTER SHARDS of a node that answers.
local function shards()
  local masters = {}
  for _, p in ipairs(PORTS) do
    local c = redis.connect{ host = "127.0.0.1", port = p, auth = AUTH,
      timeout = 2 }
    local r = c and c:cmd("CLUSTER", "SHARDS")
    if c then c:close() end
    if r then
      for _, sh in ipairs(r) do
        local t = {}
        for i = 1, #sh, 2 do t[sh[i]] = sh[i + 1] end
        for _, nd in ipairs(t.nodes) do
          local n = {}
          for i = 1, #nd, 2 do n[nd[i]] = nd[i + 1] end
          if n.role == "master" and #t.slots > 0 then
            masters[n.port] = { id = n.id, slots = t.slots }
          end
        end
      end
      return masters
    end
  end
  error("no node answered CLUSTER SHARDS")
end

local function owner_of(slot)
  for port, m in pairs(shards()) do
    for i = 1, #m.slots, 2 do
      if slot >= m.slots[i] and slot <= m.slots[i + 1] then
        return port, m.id
      end
    end
  end
end

local function flush_all()
  for port in pairs(shards()) do assert(on(port, "FLUSHALL")) end
end

-- Every reachable node says cluster_state:ok and they all agree on the
-- owner of every slot (gossip has spread the last change).
local function cluster_ok()
  local view
  for _, p in ipairs(PORTS) do
    local c = redis.connect{ host = "127.0.0.1", port = p, auth = AUTH,
      timeout = 1 }
    if c then
      local r = c:cmd("CLUSTER", "INFO")
      local slots = c:cmd("CLUSTER", "SLOTS")
      c:close(true)
      if not (r and r:find("cluster_state:ok", 1, true)) then return false end
      if not slots then return false end
      local parts = {}
      for _, e in ipairs(slots) do
        parts[#parts + 1] = e[1] .. "-" .. e[2] .. "@" .. e[3][2]
      end
      table.sort(parts)
      local v = table.concat(parts, ",")
      if view and v ~= view then return false end
      view = v
    end
  end
  return true
end

describe("redis.cluster", function()
  before_each(function()
    lev.run(function()
      wait_for(20, "cluster_state:ok", cluster_ok)
      flush_all()
    end)
  end)

  describe("config", function()
    it("rejects bad configs with invalid config texts", function()
      lev.run(function()
        local function bad(conf, pattern)
          local cl, err = redis.cluster(conf)
          assert.is_nil(cl)
          assert.matches("^invalid config: " .. pattern, err)
        end
        bad(nil, "cluster config must be a table")
        bad({}, "nodes must be an array")
        bad({ nodes = { "nohost" } }, "nodes%[1%] must be")
        bad({ nodes = SEEDS, db = 1 }, "db must be 0 in a cluster")
        bad({ nodes = SEEDS, max_redirects = 0 }, "max_redirects must be")
        bad({ nodes = SEEDS, max_redirects = 1.5 }, "max_redirects must be")
        bad({ nodes = SEEDS, read_from = "any" }, "read_from must be")
        bad({ nodes = SEEDS, timeout = -1 }, "timeout must be")
        bad({ nodes = SEEDS, auth = { user = "x" } }, "auth must be")
      end)
    end)

    it("normalizes cl.cfg and loads the map before returning", function()
      lev.run(function()
        local cl = new_cluster{ db = 0, read_from = "prefer_replica" }
        assert.same({ SEEDS[1], SEEDS[2] }, cl.cfg.nodes)
        assert.equal(16, cl.cfg.max_redirects)
        assert.equal("prefer_replica", cl.cfg.read_from)
        assert.equal(0, cl.cfg.db)
        assert.equal(5.0, cl.cfg.timeout)
        assert.equal("alice", cl.cfg.auth.user)
        assert.equal(1, cl.refreshes)
        cl:close()
      end)
    end)

    it("fails in redis.cluster when no seed is reachable", function()
      lev.run(function()
        local cl, err = redis.cluster{ nodes = { "127.0.0.1:1" },
          auth = AUTH }
        assert.is_nil(cl)
        assert.matches("127.0.0.1:1", err)
      end)
    end)

    it("fails with the server's text on a wrong password, never showing it",
      function()
        lev.run(function()
          local cl, err = redis.cluster{ nodes = SEEDS,
            auth = { user = "alice", pass = "wrong-secret-x" } }
          assert.is_nil(cl)
          assert.matches("WRONGPASS", err)
          assert.is_nil(err:find("wrong-secret-x", 1, true))
          -- requirepass: no auth at all is refused too
          cl, err = redis.cluster{ nodes = SEEDS }
          assert.is_nil(cl)
          assert.matches("NOAUTH", err)
        end)
      end)
  end)

  describe("routing", function()
    it("puts a key in every one of the 16384 slots on its owner", function()
      lev.run(function()
        local cl = new_cluster()
        -- the C slot function agrees with the server's CLUSTER KEYSLOT
        local c = admin(PORTS[1])
        local cmds = {}
        for s = 0, 16383, 7 do cmds[#cmds + 1] = { "CLUSTER", "KEYSLOT",
          key_in(s, "x") } end
        cmds[#cmds + 1] = { "CLUSTER", "KEYSLOT", "{}plain" }
        cmds[#cmds + 1] = { "CLUSTER", "KEYSLOT", "a{b" }
        cmds[#cmds + 1] = { "CLUSTER", "KEYSLOT", "x{}{y}" }
        local res = assert(c:pipeline(cmds))
        for i, r in ipairs(res) do
          assert.equal(r[1], cluster.keyslot(cmds[i][3]))
        end
        c:close()
        -- 16384 SETs from 64 tasks, one key per slot
        local next_slot = 0
        local tasks = {}
        for t = 1, 64 do
          tasks[t] = lev.spawn(function()
            while next_slot < 16384 do
              local s = next_slot
              next_slot = next_slot + 1
              assert.equal("OK", cl:cmd("SET", key_in(s, ":k"), s))
            end
          end)
        end
        for _, t in ipairs(tasks) do assert(t:join()) end
        assert.equal(0, cl.redirections)
        -- every key is on the master that owns its slot
        local total = 0
        for port, m in pairs(shards()) do
          local n = 0
          for i = 1, #m.slots, 2 do n = n + m.slots[i + 1] - m.slots[i] + 1 end
          assert.equal(n, on(port, "DBSIZE"))
          total = total + n
        end
        assert.equal(16384, total)
        for s = 0, 16383, 97 do
          assert.equal(tostring(s), cl:get(key_in(s, ":k")))
        end
        cl:close()
      end)
    end)

    it("keeps keys with one hash tag in one slot, so multi-key commands run",
      function()
        lev.run(function()
          local cl = new_cluster()
          assert.equal(cluster.keyslot("user1"),
            cluster.keyslot("{user1}.name"))
          assert.equal("OK", cl:cmd("MSET", "{user1}.name", "ann",
            "{user1}.mail", "a@x"))
          assert.same({ "ann", "a@x" }, cl:cmd("MGET", "{user1}.name",
            "{user1}.mail"))
          assert.equal(1, cl:del("{user1}.name"))
          cl:close()
        end)
      end)

    it("routes multi-key commands by the server's key specs", function()
      lev.run(function()
        local cl = new_cluster()
        -- keys on a master other than the first, so any wrong guess of the
        -- key position would be redirected and counted
        local s = 16000
        local a, b, d = key_in(s, "a"), key_in(s, "b"), key_in(s, "d")
        assert(cl:cmd("RPUSH", a, "x", "y"))
        assert.equal("x", cl:cmd("LMOVE", a, b, "LEFT", "RIGHT"))
        assert.same({ "x" }, cl:cmd("LRANGE", b, 0, -1))
        cl:del(a, b)
        assert(cl:cmd("ZADD", a, 1, "m1"))
        assert(cl:cmd("ZADD", b, 2, "m2"))
        assert.equal(2, cl:cmd("ZUNIONSTORE", d, 2, a, b))
        assert(cl:cmd("XADD", key_in(s, "s1"), "1-1", "f", "v"))
        assert(cl:cmd("XADD", key_in(s, "s2"), "1-1", "f", "w"))
        local r = assert(cl:cmd("XREAD", "COUNT", 5, "STREAMS",
          key_in(s, "s1"), key_in(s, "s2"), "0", "0"))
        assert.equal(2, #r)
        assert.equal("v", cl:cmd("EVAL",
          "return redis.call('XRANGE', KEYS[1], '-', '+')[1][2][2]", 1,
          key_in(s, "s1")))
        assert(cl:cmd("RPUSH", key_in(s, "l"), "x"))
        assert.equal("x", cl:cmd("EVAL", "return redis.call('LINDEX', "
          .. "KEYS[1], 0)", "1", key_in(s, "l")))
        assert(cl:cmd("SADD", key_in(s, "set"), "m"))
        assert.equal(1, cl:cmd("SINTERCARD", 1, key_in(s, "set")))
        assert.equal("skiplist", (cl:cmd("OBJECT", "ENCODING", d)) and
          "skiplist" or "?")
        assert.is_string(cl:cmd("OBJECT", "ENCODING", d))
        assert.is_number(cl:cmd("MEMORY", "USAGE", d))
        -- a command without keys goes to a master
        assert.equal("PONG", cl:cmd("PING"))
        assert.equal(0, cl.redirections)
        cl:close()
      end)
    end)

    it("fails CROSSSLOT locally and sends nothing", function()
      lev.run(function()
        local cl = new_cluster()
        local before = {}
        local ms = shards()
        for port in pairs(ms) do
          before[port] = { calls(port, "mset"), calls(port, "zunionstore"),
            calls(port, "lmove"), calls(port, "eval") }
        end
        local a, b = key_in(1, "a"), key_in(9000, "b")
        local ok, err = cl:cmd("MSET", a, 1, b, 2)
        assert.is_nil(ok)
        assert.matches("^CROSSSLOT", err)
        ok, err = cl:cmd("ZUNIONSTORE", a, 2, a, b)
        assert.matches("^CROSSSLOT", err)
        ok, err = cl:cmd("LMOVE", a, b, "LEFT", "LEFT")
        assert.matches("^CROSSSLOT", err)
        ok, err = cl:cmd("EVAL", "return 1", 2, a, b)
        assert.matches("^CROSSSLOT", err)
        -- in a pipeline only that entry fails
        local res = assert(cl:pipeline{ { "SET", a, "1" },
          { "MSET", a, 1, b, 2 }, { "GET", a } })
        assert.same({ "OK" }, res[1])
        assert.is_nil(res[2][1])
        assert.matches("^CROSSSLOT", res[2][2])
        assert.same({ "1" }, res[3])
        for port in pairs(ms) do
          assert.same(before[port], { calls(port, "mset"),
            calls(port, "zunionstore"), calls(port, "lmove"),
            calls(port, "eval") })
        end
        cl:close()
      end)
    end)

    it("runs a 10,000-command pipeline across all slots, replies in order",
      function()
        lev.run(function()
          local cl = new_cluster()
          local cmds = {}
          for i = 1, 5000 do
            local k = key_in((i * 7919) % 16384, ":p")
            cmds[#cmds + 1] = { "SET", k, i }
            cmds[#cmds + 1] = { "GET", k }
          end
          local res = assert(cl:pipeline(cmds))
          assert.equal(10000, #res)
          for i = 1, 5000 do
            assert.same({ "OK" }, res[2 * i - 1])
            assert.same({ tostring(i) }, res[2 * i])
          end
          assert.same({}, cl:pipeline{})
          assert.same({}, cl:pipeline(nil))
          cl:close()
        end)
      end)

    it("shares one connection per node between all tasks", function()
      lev.run(function()
        local cl = new_cluster()
        local ports = {}
        for port in pairs(shards()) do
          ports[#ports + 1] = port
        end
        local function conns()
          local n = 0
          for _, port in ipairs(ports) do
            n = n + tonumber(info_field(port, "clients", "connected_clients"))
          end
          return n
        end
        assert(cl:pipeline{ { "PING" } })
        local before = conns()
        local tasks = {}
        for t = 1, 50 do
          tasks[t] = lev.spawn(function()
            for i = 1, 20 do assert(cl:cmd("SET", key_in((t * 331 + i * 17)
              % 16384), i)) end
          end)
        end
        for _, t in ipairs(tasks) do assert(t:join()) end
        -- the INFO connections are counted in both
        assert.equal(before, conns())
        cl:close()
      end)
    end)

    it("reads from replicas with read_from = replica (READONLY)", function()
      lev.run(function()
        local cl = new_cluster{ read_from = "replica" }
        local roles = {}
        for _, n in ipairs(cl:nodes()) do roles[n.port] = n.role end
        local before = {}
        for _, p in ipairs(PORTS) do before[p] = calls(p, "get") end
        for s = 0, 16383, 64 do
          assert(cl:cmd("SET", key_in(s), s))
        end
        -- wait for replication, then read everything from the replicas
        for p, role in pairs(roles) do
          if role == "master" then assert(on(p, "WAIT", 1, 2000)) end
        end
        for s = 0, 16383, 64 do
          assert.equal(tostring(s), cl:get(key_in(s)))
        end
        local on_replicas, on_masters = 0, 0
        for _, p in ipairs(PORTS) do
          local d = calls(p, "get") - before[p]
          if roles[p] == "replica" then on_replicas = on_replicas + d
          else on_masters = on_masters + d end
        end
        assert.equal(256, on_replicas)
        assert.equal(0, on_masters)
        cl:close()
      end)
    end)

    it("scan_iter walks every master; hscan_iter follows its key", function()
      lev.run(function()
        local cl = new_cluster()
        local want = {}
        for s = 0, 16383, 41 do
          local k = key_in(s, ":scan")
          want[k] = true
          assert(cl:cmd("SET", k, 1))
        end
        assert(cl:cmd("HSET", key_in(9999, ":h"), "f1", "v1", "f2", "v2"))
        local seen, n = {}, 0
        for k in cl:scan_iter{ match = "*:scan", count = 100 } do
          assert.is_nil(seen[k])
          seen[k] = true
          n = n + 1
        end
        assert.same(want, seen)
        local fields = {}
        for f, v in cl:hscan_iter(key_in(9999, ":h")) do fields[f] = v end
        assert.same({ f1 = "v1", f2 = "v2" }, fields)
        cl:close()
      end)
    end)

    it("runs a transaction in the slot of its keys, refuses several slots",
      function()
        lev.run(function()
          local cl = new_cluster()
          local a, b = key_in(12000, "a"), key_in(12000, "b")
          assert(cl:cmd("SET", a, 10))
          local res = assert(cl:transaction({ watch = { a, b } }, function(tx)
            local v = tonumber(tx:get(a))
            return { { "SET", a, v + 1 }, { "INCRBY", b, v } }
          end))
          assert.same({ { "OK" }, { 10 } }, res)
          assert.equal("11", cl:get(a))
          -- no watch: the slot of the commands
          res = assert(cl:transaction(function()
            return { { "INCR", a }, { "INCR", b } }
          end))
          assert.same({ { 12 }, { 11 } }, res)
          local v, err = cl:transaction({ watch = { a, key_in(1, "x") } },
            function() return {} end)
          assert.is_nil(v)
          assert.matches("^CROSSSLOT", err)
          v, err = cl:transaction(function()
            return { { "SET", a, 1 }, { "SET", key_in(1, "x"), 1 } }
          end)
          assert.is_nil(v)
          assert.matches("^CROSSSLOT", err)
          assert.equal("12", cl:get(a))
          cl:close()
        end)
      end)

    it("runs redis.script on the key's node, loading it where it is missing",
      function()
        lev.run(function()
          local cl = new_cluster()
          for port in pairs(shards()) do assert(on(port, "SCRIPT", "FLUSH")) end
          local script = redis.script(
            "return redis.call('INCRBY', KEYS[1], ARGV[1])")
          for _, s in ipairs{ 100, 8000, 16000 } do
            assert.equal(5, script:run(cl, { key_in(s, ":n") }, { 5 }))
            assert.equal(7, script:run(cl, { key_in(s, ":n") }, { 2 }))
          end
          for port in pairs(shards()) do
            assert.same({ 1 }, on(port, "SCRIPT", "EXISTS", script.sha))
          end
          cl:close()
        end)
      end)

    it("describes the map with nodes(), refresh() and masters()", function()
      lev.run(function()
        local cl = new_cluster()
        local nodes = cl:nodes()
        assert.equal(6, #nodes)
        local masters, covered = 0, 0
        for _, n in ipairs(nodes) do
          assert.equal("127.0.0.1", n.host)
          assert.is_number(n.port)
          if n.role == "master" then
            masters = masters + 1
            for _, r in ipairs(n.slots) do covered = covered + r[2] - r[1] + 1 end
          else
            assert.equal("replica", n.role)
          end
        end
        assert.equal(3, masters)
        assert.equal(16384, covered)
        assert.is_true(cl:refresh())
        local ms = assert(cl:masters())
        assert.equal(3, #ms)
        local total = 0
        for _, c in ipairs(ms) do
          total = total + assert(c:cmd("DBSIZE"))
          c:close()
        end
        assert.equal(0, total)
        assert.is_true(cl:close())
        assert.is_true(cl:close())
        local v, err = cl:get("x")
        assert.is_nil(v)
        assert.equal("closed", err)
      end)
    end)
  end)

  describe("redirections", function()
    it("follows ASK and TRYAGAIN during a hand-made migration, MOVED after",
      function()
      lev.run(function()
        local cl = new_cluster()
        local slot = 7777
        local src, src_id = owner_of(slot)
        local dst, dst_id
        for port, m in pairs(shards()) do
          if port ~= src then dst, dst_id = port, m.id end
        end
        local k1, k2 = key_in(slot, "old"), key_in(slot, "new")
        local k3 = key_in(slot, "third")
        assert.equal("OK", cl:cmd("SET", k1, "v1"))
        assert.equal("OK", cl:cmd("SET", k3, "v3"))
        assert(on(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id))
        assert(on(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id))
        assert.equal("OK", on(src, "MIGRATE", "127.0.0.1", dst, "", 0, 5000,
          "AUTH2", "alice", "s3cret", "KEYS", k1))
        -- k1 moved: the source answers ASK, the client asks the target
        assert.equal("v1", cl:get(k1))
        -- a new key of a migrating slot goes to the target, too
        assert.equal("OK", cl:cmd("SET", k2, "v2"))
        assert.equal(2, cl.redirections)
        assert.equal(1, on_asking(dst, "EXISTS", k2))
        assert.equal(1, on(src, "CLUSTER", "COUNTKEYSINSLOT", slot))
        -- ASK does not change the map: the next command tries src again
        assert.equal("v2", cl:get(k2))
        assert.equal(3, cl.redirections)
        -- keys of one command on both sides: TRYAGAIN, retried after 10,
        -- 20, 40 ... ms; max_redirects bounds it
        local cl2 = new_cluster{ max_redirects = 2 }
        local v, err = cl2:cmd("MGET", k1, k3)
        assert.is_nil(v)
        assert.matches("^TRYAGAIN", err)
        cl2:close()
        local mover = lev.spawn(function()
          lev.sleep(0.1)
          assert.equal("OK", on(src, "MIGRATE", "127.0.0.1", dst, "", 0,
            5000, "AUTH2", "alice", "s3cret", "KEYS", k3))
        end)
        assert.same({ "v1", "v3" }, cl:cmd("MGET", k1, k3))
        assert(mover:join())
        assert.equal(4, cl.redirections) -- the ASK once k3 had moved too
        local stats = assert(on(src, "INFO", "errorstats"))
        assert.is_true(tonumber(stats:match("errorstat_TRYAGAIN:count=(%d+)"))
          >= 3)
        assert.equal(0, on(src, "CLUSTER", "COUNTKEYSINSLOT", slot))
        -- end the migration: the slot is dst's, src answers MOVED once
        assert(on(dst, "CLUSTER", "SETSLOT", slot, "NODE", dst_id))
        for port in pairs(shards()) do
          if port ~= dst then
            assert(on(port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id))
          end
        end
        assert.equal("v1", cl:get(k1))
        assert.equal(5, cl.redirections)
        assert.equal("v2", cl:get(k2))
        assert.equal(5, cl.redirections)
        cl:close()
      end)
    end)

    it("1,000 MOVEDs in a burst cause few map refreshes", function()
      lev.run(function()
        local cl = new_cluster()
        -- move 40 empty slots to another master behind the client's back
        local first = 300
        local src = owner_of(first)
        local ms = shards()
        local dst
        for port in pairs(ms) do
          if port ~= src then dst = port end
        end
        for s = first, first + 39 do move_slot(s, src, dst, ms) end
        local r0 = cl.refreshes
        local tasks = {}
        for i = 1, 1000 do
          tasks[i] = lev.spawn(function()
            local v, err = cl:cmd("SET", key_in(first + i % 40, i), i)
            assert(v == "OK", err)
          end)
        end
        for _, t in ipairs(tasks) do assert(t:join()) end
        lev.sleep(0.3) -- a refresh asked for runs after a short gap
        local refreshes = cl.refreshes - r0
        print(string.format("\ncluster: 1000 MOVED replies (%d redirections"
          .. ") caused %d map refreshes", cl.redirections, refreshes))
        assert.equal(1000, cl.redirections)
        assert.is_true(refreshes >= 1 and refreshes <= 3)
        assert.equal(1000, on(dst, "DBSIZE"))
        -- the next commands go straight to dst
        for i = 1, 40 do assert.equal(tostring(i), cl:get(key_in(first + i % 40, i))) end
        assert.equal(1000, cl.redirections)
        -- give the slots back for the next cases
        flush_all()
        for s = first, first + 39 do move_slot(s, dst, src, ms) end
        cl:close()
      end)
    end)

    it("keeps writing through redis-cli --cluster reshard (MOVED, ASK)",
      function()
        lev.run(function()
          local cl = new_cluster()
          local ms = shards()
          local from_port = owner_of(0)
          local to_id
          for port, m in pairs(ms) do
            if port ~= from_port then to_id = m.id end
          end
          local done = os.tmpname()
          os.remove(done)
          local writes, failures, stop = {}, {}, false
          local tasks = {}
          for t = 1, 8 do
            tasks[t] = lev.spawn(function()
              local i = 0
              while not stop do
                i = i + 1
                -- slots 0..99 are the ones being moved
                local k = key_in((t * 13 + i) % 100, ":" .. t .. ":" .. i)
                local v, err = cl:cmd("SET", k, i)
                if v == "OK" then writes[k] = i
                else failures[#failures + 1] = err end
                lev.sleep(0.001)
              end
            end)
          end
          os.execute(string.format("(redis-cli -h 127.0.0.1 -p %d --user "
            .. "alice --pass s3cret --no-auth-warning --cluster reshard "
            .. "127.0.0.1:%d --cluster-from %s --cluster-to %s "
            .. "--cluster-slots 100 --cluster-yes >%s.log 2>&1; echo $? >%s) &",
            from_port, from_port, ms[from_port].id, to_id, done, done))
          wait_for(40, "the reshard", function()
            local f = io.open(done)
            if f then f:close() return true end
          end)
          lev.sleep(0.2)
          stop = true
          for _, t in ipairs(tasks) do assert(t:join()) end
          local f = io.open(done)
          local rc = f:read("l")
          f:close()
          local lf = io.open(done .. ".log")
          local log = lf:read("a")
          lf:close()
          os.remove(done)
          os.remove(done .. ".log")
          assert.equal("0", rc, log)
          assert.same({}, failures)
          local n = 0
          for k, v in pairs(writes) do
            n = n + 1
            assert.equal(tostring(v), cl:get(k))
          end
          assert.is_true(n > 0)
          assert.is_true(cl.redirections > 0)
          -- give the slots back (empty them first)
          flush_all()
          local to_port
          for port, m in pairs(ms) do
            if m.id == to_id then to_port = port end
          end
          for s = 0, 99 do move_slot(s, to_port, from_port, ms) end
          cl:close()
        end)
      end)
  end)

  describe("failover", function()
    -- Writers append unique ids to per-task lists spread over the slots;
    -- acked[list] holds the ids the cluster acknowledged.
    local function writers(cl, n)
      local st = { stop = false, acked = {}, failed = 0, ok = 0, tasks = {} }
      for t = 1, n do
        local key = key_in((t * 2311) % 16384, ":log")
        st.acked[key] = {}
        st.tasks[t] = lev.spawn(function()
          local id = 0
          while not st.stop do
            id = id + 1
            local v = cl:cmd("RPUSH", key, id)
            if v then
              local a = st.acked[key]
              a[#a + 1] = id
              st.ok = st.ok + 1
            else
              st.failed = st.failed + 1
              lev.sleep(0.02)
            end
            lev.sleep(0.002)
          end
        end)
      end
      function st.finish()
        st.stop = true
        for _, t in ipairs(st.tasks) do assert(t:join()) end
      end
      -- lists read back: duplicates (applied twice) and acked ids missing
      function st.check()
        local dup, lost = 0, 0
        for key, ids in pairs(st.acked) do
          local list = assert(cl:cmd("LRANGE", key, 0, -1))
          local seen = {}
          for _, v in ipairs(list) do
            if seen[v] then dup = dup + 1 end
            seen[v] = true
          end
          for _, id in ipairs(ids) do
            if not seen[tostring(id)] then lost = lost + 1 end
          end
        end
        return dup, lost
      end
      return st
    end

    it("loses no acknowledged write in a CLUSTER FAILOVER", function()
      lev.run(function()
        local cl = new_cluster()
        local st = writers(cl, 12)
        lev.sleep(0.3)
        -- promote the replica of the master of slot 0
        local mport = owner_of(0)
        local rport
        for _, n in ipairs(cl:nodes()) do
          if n.role == "replica" and n.slots[1][1] == 0 then rport = n.port end
        end
        assert(rport, "no replica for slot 0")
        assert.equal("OK", on(rport, "CLUSTER", "FAILOVER"))
        wait_for(15, "the replica's promotion", function()
          return owner_of(0) == rport
        end)
        local before = st.ok
        wait_for(10, "writes after the failover", function()
          return st.ok > before + 50
        end)
        st.finish()
        local dup, lost = st.check()
        print(string.format("\ncluster: CLUSTER FAILOVER %d -> %d: %d writes"
          .. " acknowledged, %d failed, %d lost, %d applied twice",
          mport, rport, st.ok, st.failed, lost, dup))
        assert.equal(0, dup)
        assert.equal(0, lost)
        -- the old master is a replica now; wait until it is in sync
        wait_for(15, "the old master in sync as a replica", function()
          local r = on(mport, "ROLE")
          return r and r[1] == "slave" and r[4] == "connected"
        end)
        cl:close()
      end)
    end)

    it("soak: reads and writes through a reshard and a failover, no "
      .. "mismatch, no acknowledged write lost", function()
      lev.run(function()
        local cl = new_cluster()
        local stop = false
        local st = { ops = 0, failed = 0, mismatches = 0, lost = 0 }
        local acked, maybe = {}, {}
        local tasks = {}
        for t = 1, 16 do
          tasks[t] = lev.spawn(function()
            local keys = {}
            for j = 1, 8 do keys[j] = key_in((t * 977 + j * 2039) % 16384,
              ":soak:" .. t .. ":" .. j) end
            local n = 0
            while not stop do
              n = n + 1
              local k = keys[n % 8 + 1]
              local v = tostring(n)
              local ok = cl:cmd("SET", k, v)
              if ok then acked[k], maybe[k] = v, nil
              else maybe[k] = v; st.failed = st.failed + 1 end
              local got = cl:get(k)
              if got ~= nil and got ~= acked[k] and got ~= maybe[k] then
                st.mismatches = st.mismatches + 1
              end
              -- a pipeline across the task's keys now and then
              if n % 10 == 0 then
                local cmds = {}
                for j = 1, 8 do cmds[j] = { "GET", keys[j] } end
                local res = cl:pipeline(cmds)
                if res then
                  for j = 1, 8 do
                    local g = res[j][1]
                    if g ~= nil and g ~= acked[keys[j]]
                       and g ~= maybe[keys[j]] then
                      st.mismatches = st.mismatches + 1
                    end
                  end
                end
              end
              st.ops = st.ops + 2
              lev.sleep(0.001)
            end
          end)
        end
        lev.sleep(0.5)
        -- a reshard of 300 slots while the tasks run
        local ms = shards()
        local from_port = owner_of(16383)
        local to_id
        for port, m in pairs(ms) do
          if port ~= from_port then to_id = m.id end
        end
        local done = os.tmpname()
        os.remove(done)
        os.execute(string.format("(redis-cli -h 127.0.0.1 -p %d --user "
          .. "alice --pass s3cret --no-auth-warning --cluster reshard "
          .. "127.0.0.1:%d --cluster-from %s --cluster-to %s "
          .. "--cluster-slots 300 --cluster-yes >/dev/null 2>&1; echo $? >%s) &",
          from_port, from_port, ms[from_port].id, to_id, done))
        wait_for(40, "the reshard", function()
          local f = io.open(done)
          if f then f:close() return true end
        end)
        local f = io.open(done)
        local rc = f:read("l")
        f:close()
        os.remove(done)
        assert.equal("0", rc)
        -- then a failover of the master of slot 8000
        local mport = owner_of(8000)
        local rport
        for _, n in ipairs(cl:nodes()) do
          if n.role == "replica" then
            for _, r in ipairs(n.slots) do
              if r[1] <= 8000 and 8000 <= r[2] then rport = n.port end
            end
          end
        end
        assert.equal("OK", on(rport, "CLUSTER", "FAILOVER"))
        wait_for(15, "the promotion", function()
          return owner_of(8000) == rport
        end)
        local mark = st.ops
        wait_for(10, "traffic after the failover", function()
          return st.ops > mark + 200
        end)
        stop = true
        for _, t in ipairs(tasks) do assert(t:join()) end
        for k, v in pairs(acked) do
          local got = cl:get(k)
          if got ~= v and got ~= maybe[k] then st.lost = st.lost + 1 end
        end
        print(string.format("\ncluster soak: %d ops, %d failed, %d "
          .. "mismatches, %d acknowledged writes lost, %d redirections, %d "
          .. "map refreshes", st.ops, st.failed, st.mismatches, st.lost,
          cl.redirections, cl.refreshes))
        assert.equal(0, st.mismatches)
        assert.equal(0, st.lost)
        assert.is_true(cl.redirections > 0)
        wait_for(15, "the old master in sync as a replica", function()
          local r = on(mport, "ROLE")
          return r and r[1] == "slave" and r[4] == "connected"
        end)
        cl:close()
      end)
    end)

    it("survives a master stopped (SIGSTOP) and one killed", function()
      local function pid_of(port)
        local f = assert(io.open(DIR .. "/" .. port .. "/redis.pid"))
        local pid = f:read("l")
        f:close()
        return pid
      end
      local stopped, killed, spid
      local ok, err = pcall(lev.run, function()
        local cl = new_cluster()
        local st = writers(cl, 12)
        lev.sleep(0.3)
        local ms = shards()
        for port in pairs(ms) do
          if not stopped then stopped = port
          elseif not killed then killed = port end
        end
        spid = pid_of(stopped)
        os.execute("kill -STOP " .. spid)
        wait_for(20, "a replica promoted for the stopped master", function()
          return shards()[stopped] == nil and cluster_ok()
        end)
        local mark = st.ok
        wait_for(10, "writes after the first promotion", function()
          return st.ok > mark + 50
        end)
        os.execute("kill -9 " .. pid_of(killed))
        wait_for(20, "a replica promoted for the killed master", function()
          return shards()[killed] == nil and cluster_ok()
        end)
        mark = st.ok
        wait_for(10, "writes after the second promotion", function()
          return st.ok > mark + 50
        end)
        st.finish()
        local dup, lost = st.check()
        print(string.format("\ncluster: master %d stopped, %d killed: %d "
          .. "writes acknowledged, %d failed, %d acknowledged writes lost "
          .. "by asynchronous replication, %d applied twice, %d map "
          .. "refreshes", stopped, killed, st.ok, st.failed, lost, dup,
          cl.refreshes))
        assert.equal(0, dup)
        cl:close()
      end)
      -- restore, whatever happened: both come back as replicas
      if spid then os.execute("kill -CONT " .. spid) end
      if killed then
        os.execute("tools/redis-cluster.sh restart-node " .. DIR .. " "
          .. killed .. " >/dev/null")
      end
      if stopped then
        lev.run(function()
          wait_for(60, "the cluster with six nodes again", function()
            if not cluster_ok() then return false end
            local r = on(killed, "ROLE")
            local s = on(stopped, "ROLE")
            return r and s and r[1] == "slave" and s[1] == "slave"
              and r[4] == "connected" and s[4] == "connected"
          end)
        end)
      end
      assert(ok, err)
    end)
  end)
end)
