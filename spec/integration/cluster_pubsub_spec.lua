-- redis.subscriber{ cluster = ... } against a real Redis Cluster: three
-- masters and three replicas started by tools/redis-cluster.sh (the ports
-- in LEVR_CLUSTER_PORTS, its directory in LEVR_CLUSTER_DIR), as for
-- cluster_spec.lua. Contract sections 13 and 15 (last bullet). It runs
-- after cluster_spec.lua on the same cluster, so it reads the map as it
-- finds it; the slot move and the failover come last.

local lev = require("lev")
local redis = require("redis")
local cluster = require("redis.cluster")

local ch = require("cluster_helper")
local DIR, PORTS, AUTH, SEEDS = ch.DIR, ch.PORTS, ch.AUTH, ch.SEEDS

local function new_sub(extra)
  local conf = { cluster = { nodes = SEEDS }, auth = AUTH, timeout = 5 }
  for k, v in pairs(extra or {}) do conf[k] = v end
  return assert(redis.subscriber(conf))
end

local function new_cluster()
  return assert(redis.cluster{ nodes = SEEDS, auth = AUTH, timeout = 5 })
end

local on = ch.on

-- Polls cond() every 50 ms for at most secs seconds.
local function wait_for(secs, what, cond)
  local deadline = lev.now() + secs
  while true do
    if cond() then return end
    if lev.now() > deadline then error("gave up waiting for " .. what, 2) end
    lev.sleep(0.05)
  end
end

-- The masters: port -> { id =, slots = { from, to, ... } } (CLUSTER SHARDS).
local function shards()
  for _, p in ipairs(PORTS) do
    local c = redis.connect{ host = "127.0.0.1", port = p, auth = AUTH,
      timeout = 2 }
    local r = c and c:cmd("CLUSTER", "SHARDS")
    if c then c:close() end
    if r then
      local masters = {}
      for _, sh in ipairs(r) do
        local t = {}
        for i = 1, #sh, 2 do t[sh[i]] = sh[i + 1] end
        for _, nd in ipairs(t.nodes) do
          local n = {}
          for i = 1, #nd, 2 do n[nd[i]] = nd[i + 1] end
          if n.role == "master" and #t.slots > 0 and n.health == "online" then
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

-- A shard channel in a slot of each master: port -> channel.
local function channel_per_master(prefix)
  local out, left = {}, 0
  for _ in pairs(shards()) do left = left + 1 end
  local i = 0
  while left > 0 do
    local ch = prefix .. i
    local port = owner_of(cluster.keyslot(ch))
    if port and not out[port] then out[port] = ch; left = left - 1 end
    i = i + 1
  end
  return out
end

-- Shard-channel subscribers of ch on node port (PUBSUB SHARDNUMSUB).
local function shardnumsub(port, ch)
  local r = on(port, "PUBSUB", "SHARDNUMSUB", ch)
  return r and r[2]
end

-- Waits until every node connection of sub is ready (what they restored
-- on reconnecting is on the servers then), then until node port holds no
-- subscriber of shard channel ch; what names the node in the failures.
local function wait_released(sub, secs, port, ch, what)
  wait_for(secs, "every node connection ready", function()
    return sub:status() == "ready"
  end)
  wait_for(5, what .. " holding no subscription", function()
    return shardnumsub(port, ch) == 0
  end)
end

-- Moves an empty slot the documented way (IMPORTING, MIGRATING, then
-- NODE on the target first, which bumps its config epoch, then on the
-- others; pub/sub has no keys, so nothing to MIGRATE), then waits until
-- every node names the new owner.
local function move_slot(slot, src, dst)
  local masters = shards()
  assert(on(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", masters[src].id))
  assert(on(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", masters[dst].id))
  assert(on(dst, "CLUSTER", "SETSLOT", slot, "NODE", masters[dst].id))
  for port in pairs(masters) do
    if port ~= dst then
      assert(on(port, "CLUSTER", "SETSLOT", slot, "NODE", masters[dst].id))
    end
  end
  wait_for(10, "every node to agree on the owner of " .. slot, function()
    for _, p in ipairs(PORTS) do
      local r = on(p, "CLUSTER", "SLOTS")
      local found
      for _, e in ipairs(r or {}) do
        if slot >= e[1] and slot <= e[2] then found = e[3][2] end
      end
      if found ~= dst then return false end
    end
    return true
  end)
end

-- The next message, or a failure naming what was awaited (the bound is
-- there so that a lost message fails the spec instead of hanging it).
local function next_msg(sub, what)
  local m, err = sub:next(10)
  assert(m, "no message for " .. what .. ": " .. tostring(err))
  return m
end

describe("redis.subscriber with cluster", function()
  it("rejects invalid configs with invalid config texts", function()
    lev.run(function()
      local s, err = redis.subscriber{ cluster = { nodes = SEEDS },
        host = "127.0.0.1" }
      assert.is_nil(s)
      assert.matches("^invalid config: cluster and host/port cannot", err)
      s, err = redis.subscriber{ cluster = { nodes = {} } }
      assert.is_nil(s)
      assert.matches('^invalid config: nodes must be an array of "host:port"',
        err)
      s, err = redis.subscriber{ cluster = "127.0.0.1:1" }
      assert.is_nil(s)
      assert.equal("invalid config: cluster must be a table with nodes", err)
      s, err = redis.subscriber{ cluster = { nodes = SEEDS, auth = AUTH } }
      assert.is_nil(s)
      assert.equal("invalid config: cluster takes nodes and max_redirects; "
        .. "auth goes at the top level of the config", err)
      s, err = redis.subscriber{ cluster = { nodes = SEEDS }, auth = AUTH,
        max_queue = 0 }
      assert.is_nil(s)
      assert.equal("invalid config: max_queue must be an integer >= 1", err)
    end)
  end)

  it("routes shard channels to every master; subscribe, psubscribe on one",
    function()
    lev.run(function()
      local sub = new_sub()
      local cl = new_cluster()
      assert.equal(10000, sub.cfg.max_queue)
      assert.same({ "127.0.0.1:" .. PORTS[1], "127.0.0.1:" .. PORTS[2] },
        sub.cfg.nodes)
      local per = channel_per_master("route:")
      local names = {}
      for _, ch in pairs(per) do names[#names + 1] = ch end
      table.sort(names)
      assert.equal(3, #names)
      assert.is_true(sub:ssubscribe(table.unpack(names)))
      assert.is_true(sub:subscribe("plain"))
      assert.is_true(sub:psubscribe("pat:*"))
      -- each channel is held on its owner, and only there
      for port, ch in pairs(per) do
        assert.equal(1, shardnumsub(port, ch))
      end
      assert.same({ channels = { "plain" }, patterns = { "pat:*" },
        shard_channels = names }, sub:subscriptions())
      -- SPUBLISH through the cluster object reaches the owner: 1 receiver
      for _, ch in ipairs(names) do
        assert.equal(1, cl:cmd("SPUBLISH", ch, "to " .. ch))
      end
      local got = {}
      for _ = 1, 3 do
        local m = next_msg(sub, "an smessage")
        assert.equal("smessage", m.kind)
        assert.equal("to " .. m.channel, m.payload)
        got[#got + 1] = m.channel
      end
      table.sort(got)
      assert.same(names, got)
      -- PUBLISH is cluster-wide: sent to any node, it reaches the one
      -- node the subscriber uses (its count is the receiving node's own)
      for _, p in ipairs(PORTS) do
        assert(on(p, "PUBLISH", "plain", "p1"))
        assert.same({ kind = "message", channel = "plain", payload = "p1" },
          next_msg(sub, "a message published on " .. p))
      end
      assert(cl:cmd("PUBLISH", "pat:x", "p2"))
      assert.same({ kind = "pmessage", pattern = "pat:*", channel = "pat:x",
        payload = "p2" }, next_msg(sub, "a pmessage"))
      assert.same({ nil, "timeout" }, { sub:next(0) })
      cl:close()
      sub:close()
      assert.equal("closed", sub:status())
      assert.same({ nil, "closed", "closed" }, { sub:next() })
    end)
  end)

  it("keeps arrival order per node and drops nothing at max_queue",
    function()
    lev.run(function()
      local sub = new_sub{ max_queue = 4 }
      local cl = new_cluster()
      local per = channel_per_master("bp:")
      local names = {}
      for _, ch in pairs(per) do names[#names + 1] = ch end
      assert.is_true(sub:ssubscribe(table.unpack(names)))
      local N = 200
      for i = 1, N do
        for _, ch in ipairs(names) do
          assert.equal(1, cl:cmd("SPUBLISH", ch, tostring(i)))
        end
      end
      local last = {}
      for _ = 1, N * #names do
        local m = next_msg(sub, "a queued smessage")
        local i = tonumber(m.payload)
        assert.equal((last[m.channel] or 0) + 1, i)
        last[m.channel] = i
      end
      for _, ch in ipairs(names) do assert.equal(N, last[ch]) end
      assert.same({ nil, "timeout" }, { sub:next(0) })
      cl:close()
      sub:close()
    end)
  end)

  it("un- forms: by name, and every subscription of a kind", function()
    lev.run(function()
      local sub = new_sub()
      local cl = new_cluster()
      local per = channel_per_master("un:")
      local names = {}
      for _, ch in pairs(per) do names[#names + 1] = ch end
      table.sort(names)
      assert.is_true(sub:ssubscribe(table.unpack(names)))
      assert.is_true(sub:subscribe("c1", "c2"))
      assert.is_true(sub:psubscribe("q:*"))
      assert.is_true(sub:sunsubscribe(names[1]))
      assert.equal(0, cl:cmd("SPUBLISH", names[1], "gone"))
      assert.same({ names[2], names[3] }, sub:subscriptions().shard_channels)
      assert.is_true(sub:sunsubscribe())
      for port, ch in pairs(per) do assert.equal(0, shardnumsub(port, ch)) end
      assert.same({}, sub:subscriptions().shard_channels)
      assert.is_true(sub:unsubscribe("c1"))
      assert(cl:cmd("PUBLISH", "c1", "x"))
      assert(cl:cmd("PUBLISH", "c2", "still"))
      assert.same({ kind = "message", channel = "c2", payload = "still" },
        next_msg(sub, "c2, still subscribed"))
      assert.is_true(sub:unsubscribe())
      assert.is_true(sub:punsubscribe())
      assert.same({ channels = {}, patterns = {}, shard_channels = {} },
        sub:subscriptions())
      for _, p in ipairs(PORTS) do
        assert.equal(0, on(p, "PUBLISH", "c2", "x"))
        assert.equal(0, on(p, "PUBLISH", "q:1", "x"))
      end
      -- a marker on a channel subscribed last: nothing came before it
      assert.is_true(sub:subscribe("marker"))
      assert(cl:cmd("PUBLISH", "marker", "end"))
      assert.same({ kind = "message", channel = "marker", payload = "end" },
        next_msg(sub, "the marker"))
      cl:close()
      sub:close()
    end)
  end)

  it("lets go of a shard channel unsubscribed while its node reconnects",
    function()
    lev.run(function()
      -- a fixed 1 s delay: the connection stays down long enough to ask
      local sub = new_sub{ reconnect = { strategy = "fixed", delay = 1 } }
      local cl = new_cluster()
      -- two names of one slot: the node connection stays in use
      local ch, kept = "recon:{r1}", "kept:{r1}"
      local port = owner_of(cluster.keyslot(ch))
      assert.is_true(sub:ssubscribe(ch, kept))
      assert.equal(1, shardnumsub(port, ch))
      assert(on(port, "CLIENT", "KILL", "TYPE", "pubsub"))
      wait_for(5, "the node connection down", function()
        return sub:status() == "reconnecting"
      end)
      -- the node connection cannot send it now; the name is dropped from
      -- what the subscriber serves at once
      assert.same({ nil, "reconnecting", "closed" },
        { sub:sunsubscribe(ch) })
      assert.same({ kept }, sub:subscriptions().shard_channels)
      -- the reconnect restores what the server had confirmed, this name
      -- too; the watcher then lets go of it and keeps the other
      wait_released(sub, 10, port, ch, "the node")
      assert.equal(1, shardnumsub(port, kept))
      assert.equal(0, cl:cmd("SPUBLISH", ch, "not for us"))
      assert.equal(1, cl:cmd("SPUBLISH", kept, "still"))
      assert.same({ kind = "smessage", channel = kept, payload = "still" },
        next_msg(sub, "the kept channel's smessage, nothing before it"))
      assert.same({ kept }, sub:subscriptions().shard_channels)
      cl:close()
      sub:close()
    end)
  end)

  it("follows a shard channel whose slot is moved by hand", function()
    lev.run(function()
      local sub = new_sub()
      local cl = new_cluster()
      local ch = "moving:{m1}"
      local slot = cluster.keyslot(ch)
      local src = owner_of(slot)
      local dst
      for port in pairs(shards()) do if port ~= src then dst = port end end
      assert.is_true(sub:ssubscribe(ch))
      assert.equal(1, cl:cmd("SPUBLISH", ch, "before"))
      assert.equal("before", next_msg(sub, "the first smessage").payload)
      -- a second subscriber whose map goes stale: it has nothing to follow
      local stale = new_sub()
      move_slot(slot, src, dst)
      -- the old owner dropped the channel (an sunsubscribe push); the
      -- subscriber subscribes again on the new one
      wait_for(10, "the channel on the new owner", function()
        return shardnumsub(dst, ch) == 1
      end)
      assert.equal(0, shardnumsub(src, ch))
      assert.equal(1, cl:cmd("SPUBLISH", ch, "after"))
      assert.same({ kind = "smessage", channel = ch, payload = "after" },
        next_msg(sub, "the smessage after the move"))
      assert.same({ ch }, sub:subscriptions().shard_channels)
      -- SSUBSCRIBE on the old owner answers MOVED: the map is reloaded
      -- and the channel subscribed on the new owner
      local ch2 = "moving2:{m1}"
      local function moved_count()
        local text = assert(on(src, "INFO", "errorstats"))
        return tonumber(text:match("errorstat_MOVED:count=(%d+)") or "0")
      end
      local moved_before = moved_count()
      assert.is_true(stale:ssubscribe(ch2))
      assert.is_true(moved_count() > moved_before)
      assert.equal(1, shardnumsub(dst, ch2))
      assert.equal(0, shardnumsub(src, ch2))
      assert.equal(1, cl:cmd("SPUBLISH", ch2, "via moved"))
      assert.equal("via moved", next_msg(stale, "ch2's smessage").payload)
      stale:close()
      -- and back, so the map is as it was
      move_slot(slot, dst, src)
      wait_for(10, "the channel back on its owner", function()
        return shardnumsub(src, ch) == 1
      end)
      assert.equal(1, cl:cmd("SPUBLISH", ch, "back"))
      assert.equal("back", next_msg(sub, "the smessage after moving back")
        .payload)
      cl:close()
      sub:close()
    end)
  end)

  it("follows a CLUSTER FAILOVER of the owner of a shard channel", function()
    lev.run(function()
      local sub = new_sub()
      local events = {}
      for _, ev in ipairs({ "disconnect", "reconnect" }) do
        sub:on(ev, function() events[ev] = (events[ev] or 0) + 1 end)
      end
      local cl = new_cluster()
      local ch = "failover:{f1}"
      local slot = cluster.keyslot(ch)
      assert.is_true(sub:ssubscribe(ch))
      local mport = owner_of(slot)
      local rport
      for _, n in ipairs(cl:nodes()) do
        if n.role == "replica" then
          for _, r in ipairs(n.slots) do
            if slot >= r[1] and slot <= r[2] then rport = n.port end
          end
        end
      end
      assert(rport, "no replica for slot " .. slot)
      assert.equal("OK", on(rport, "CLUSTER", "FAILOVER"))
      wait_for(15, "the replica's promotion", function()
        return owner_of(slot) == rport
      end)
      wait_for(10, "the channel on the promoted replica", function()
        return shardnumsub(rport, ch) == 1
      end)
      -- cl's own map may still name the old master (now a replica, which
      -- runs SPUBLISH for its own clients): reload it
      assert(cl:refresh())
      wait_for(10, "a working SPUBLISH", function()
        return cl:cmd("SPUBLISH", ch, "after failover") == 1
      end)
      assert.same({ kind = "smessage", channel = ch,
        payload = "after failover" }, next_msg(sub, "the smessage"))
      assert.same({ ch }, sub:subscriptions().shard_channels)
      -- a failover moves the slots without closing connections (the old
      -- owner unsubscribes its clients); a connection that does break
      -- fires the events, and the subscriber subscribes again
      local before = events.reconnect or 0
      assert(on(rport, "CLIENT", "KILL", "TYPE", "pubsub"))
      wait_for(10, "the reconnect event", function()
        return (events.reconnect or 0) > before
      end)
      assert.is_true(events.disconnect > 0)
      assert.equal(1, shardnumsub(rport, ch))
      assert.equal(1, cl:cmd("SPUBLISH", ch, "after reconnect"))
      assert.same({ kind = "smessage", channel = ch,
        payload = "after reconnect" }, next_msg(sub, "the smessage"))
      -- the old master is a replica now; wait until it is in sync
      wait_for(15, "the old master in sync as a replica", function()
        local r = on(mport, "ROLE")
        return r and r[1] == "slave" and r[4] == "connected"
      end)
      cl:close()
      sub:close()
    end)
  end)

  it("follows a shard channel when its master is killed, no duplicates "
    .. "once the node is back", function()
    local killed
    local ok, err = pcall(lev.run, function()
      local sub = new_sub()
      local events = {}
      sub:on("disconnect", function() events.disconnect = true end)
      local ends = 0
      sub:on("end", function() ends = ends + 1 end)
      local cl = new_cluster()
      -- The master killed is the node of the subscriber's subscribe
      -- connection as well (found by a channel only it has), which also
      -- comes back: what it restores there must hold no shard channel.
      assert.is_true(sub:subscribe("probe"))
      local main
      for _, p in ipairs(PORTS) do
        local r = on(p, "PUBSUB", "NUMSUB", "probe")
        if r and r[2] == 1 then main = p end
      end
      assert(main, "no node holds the subscribe connection")
      local ch, i = nil, 0
      repeat
        i = i + 1
        assert(i < 10000, "no shard channel name for node " .. main)
        ch = "killed:{k" .. i .. "}"
      until owner_of(cluster.keyslot(ch)) == main
      local slot = cluster.keyslot(ch)
      assert.is_true(sub:ssubscribe(ch))
      killed = owner_of(slot)
      assert.equal(main, killed)
      local f = assert(io.open(DIR .. "/" .. killed .. "/redis.pid"))
      local pid = f:read("l")
      f:close()
      os.execute("kill -9 " .. pid)
      wait_for(20, "a replica promoted for the killed master", function()
        local p = owner_of(slot)
        return p and p ~= killed
      end)
      local new = owner_of(slot)
      wait_for(10, "the channel on the promoted replica", function()
        return shardnumsub(new, ch) == 1
      end)
      assert.is_true(events.disconnect)
      assert(cl:refresh())
      assert.equal(1, cl:cmd("SPUBLISH", ch, "after kill"))
      assert.same({ kind = "smessage", channel = ch, payload = "after kill" },
        next_msg(sub, "the smessage after the kill"))
      -- the killed node comes back as a replica of the new master: the
      -- subscriber does not subscribe there again (SPUBLISH reaches a
      -- shard's replicas too, so that would deliver every message twice)
      os.execute("tools/redis-cluster.sh restart-node " .. DIR .. " "
        .. killed .. " >/dev/null")
      wait_for(20, "the killed node back as a replica", function()
        local r = on(killed, "ROLE")
        return r and r[1] == "slave" and r[4] == "connected"
      end)
      -- Every node connection is back (the subscribe one reconnects to
      -- the killed node). A reconnect may land a subscription there before
      -- the watcher (every 50 ms) sees the node is a replica now and lets
      -- go; it must let go, and then a message arrives once.
      wait_released(sub, 20, killed, ch, "the killed node")
      assert.equal(1, cl:cmd("SPUBLISH", ch, "once"))
      -- The subscribe/psubscribe node may be the killed one, still
      -- reconnecting: subscribe then says nil, "reconnecting" (documented).
      wait_for(10, "subscribe on the subscribe node", function()
        return sub:subscribe("marker") == true
      end)
      assert(cl:cmd("PUBLISH", "marker", "end"))
      -- "once" and "end" come on two connections (the shard's master and
      -- the subscribe node): their order is not defined, only that each
      -- comes once.
      local two = { next_msg(sub, "the smessage or the marker"),
                    next_msg(sub, "the other of the two") }
      table.sort(two, function(a, b) return a.payload < b.payload end)
      assert.same({ { kind = "message", channel = "marker", payload = "end" },
                    { kind = "smessage", channel = ch, payload = "once" } },
        two)
      assert(cl:cmd("PUBLISH", "marker", "end2"))
      assert.same({ kind = "message", channel = "marker", payload = "end2" },
        next_msg(sub, "the next marker, no second copy before it"))
      cl:close()
      -- the node connection given up on the way closed without an `end`
      -- event; close() fires one (emitted before it returns)
      assert.equal(0, ends)
      sub:close()
      wait_for(5, "the end event", function() return ends > 0 end)
      assert.equal(1, ends)
    end)
    if not ok and killed then
      -- restore for whatever runs next
      os.execute("tools/redis-cluster.sh restart-node " .. DIR .. " "
        .. killed .. " >/dev/null 2>&1")
    end
    assert(ok, err)
  end)
end)
