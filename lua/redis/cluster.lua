-- redis.cluster: a Redis Cluster client on the public client API.
--
--   local cl = assert(redis.cluster{ nodes = { "127.0.0.1:7000" } })
--   cl:cmd("SET", "{user1}.name", "ann"); cl:get("{user1}.name")
--
-- One plain client (redis.connect) per node, shared by every task, so the
-- commands of many tasks to one node are pipelined on its connection. The
-- slot map comes from CLUSTER SHARDS (CLUSTER SLOTS on older servers); key
-- positions come from the server's COMMAND key specifications, compiled
-- once per cluster object into C records (core.cluster_spec); cl:cmd is a C
-- closure (core.cluster_cmd) that computes the slot, indexes the route
-- table and calls the node connection's cmd (docs/cluster.md).
--
-- Redirections and retries live in the slow path (redirect below): only
-- errors that say the server did not run the command are retried.

local lev = require("lev")
local core = require("redis.core")
local config = require("redis.config")

local kslot_argv = core.cluster_slot_argv
local NSLOTS = 16384
local REFRESH_GAP = 0.1     -- seconds between two map loads, at least
local DELAY_FIRST, DELAY_MAX = 0.01, 1.0 -- TRYAGAIN/CLUSTERDOWN backoff
local CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"
-- Without a configured timeout, one node's answer to a map load is still
-- awaited at most this long, so that a stopped node cannot hold up a
-- refresh (and with it the failover) for ever.
local FETCH_WAIT = 5

local M = {}
local Cluster = {}

local function fail(msg)
  return nil, "invalid config: " .. msg, "config"
end

local function integral(v)
  if math.type(v) == "integer" then return v end
  if math.type(v) == "float" and v == math.floor(v) then
    return math.tointeger(v)
  end
end

-- "host:port" or "[v6]:port" -> host, port
local function split_addr(s)
  if type(s) ~= "string" then return nil end
  local host, port = s:match("^%[([^%]]+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]+):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  return host, math.tointeger(port)
end

local READ_FROM = { master = true, replica = true, prefer_replica = true }
-- The connect fields every node gets (section 15); db is checked apart.
local NODE_FIELDS = { "auth", "ssl", "timeout", "connect_timeout",
  "protocol", "name", "max_pending", "max_reply" }

local function normalize(conf)
  if type(conf) ~= "table" then
    return fail("cluster config must be a table with nodes")
  end
  local nodes = conf.nodes
  if type(nodes) ~= "table" or #nodes < 1 then
    return fail('nodes must be an array of "host:port" strings (at least one)')
  end
  local cfg = { nodes = {} }
  for i = 1, #nodes do
    local host, port = split_addr(nodes[i])
    if not host then
      return fail('nodes[' .. i .. '] must be a "host:port" string')
    end
    cfg.nodes[i] = host .. ":" .. port
  end
  if conf.db ~= nil and integral(conf.db) ~= 0 then
    return fail("db must be 0 in a cluster (a cluster has only database 0)")
  end
  cfg.db = 0
  local mr = conf.max_redirects
  if mr == nil then
    cfg.max_redirects = 16
  else
    mr = integral(mr)
    if not mr or mr < 1 then
      return fail("max_redirects must be an integer >= 1")
    end
    cfg.max_redirects = mr
  end
  local rf = conf.read_from
  if rf == nil then rf = "master" end
  if not READ_FROM[rf] then
    return fail('read_from must be "master", "replica" or "prefer_replica"')
  end
  cfg.read_from = rf
  -- The shared fields are checked by the client's own rules, on the first
  -- seed, so they mean exactly what they mean for redis.connect.
  local host, port = split_addr(cfg.nodes[1])
  local probe = { host = host, port = port }
  for _, f in ipairs(NODE_FIELDS) do probe[f] = conf[f] end
  local norm, err = config.normalize(probe)
  if not norm then return nil, err, "config" end
  for _, f in ipairs(NODE_FIELDS) do
    if norm[f] ~= nil then cfg[f] = norm[f] end
  end
  if cfg.ssl == false then cfg.ssl = nil end
  return cfg
end

-- The redis.connect config of one node.
local function node_config(cfg, host, port)
  local t = { host = host, port = port }
  for _, f in ipairs(NODE_FIELDS) do t[f] = cfg[f] end
  return t
end

-- ---- COMMAND: key specifications ----------------------------------------

-- A RESP2 flat list { k1, v1, ... } or a RESP3 map as a map.
local function kv(t)
  if type(t) ~= "table" then return {} end
  if t[1] == nil then return t end
  local m = {}
  for i = 1, #t - 1, 2 do m[t[i]] = t[i + 1] end
  return m
end

local function has(list, word)
  if type(list) ~= "table" then return false end
  for _, v in ipairs(list) do
    if v == word then return true end
  end
  -- RESP3 sets arrive as arrays too; a map form would be { word = true }
  return list[word] == true
end

local function compile_spec(raw)
  local s = kv(raw)
  local bs, fk = kv(s.begin_search), kv(s.find_keys)
  local bsspec, fkspec = kv(bs.spec), kv(fk.spec)
  local out = { not_key = has(s.flags, "not_key") }
  if bs.type == "index" then
    out.bs, out.index = 1, bsspec.index
  elseif bs.type == "keyword" then
    out.bs, out.keyword, out.index = 2, bsspec.keyword, bsspec.startfrom
  else
    out.bs = 0
  end
  if fk.type == "range" then
    out.fk, out.last, out.step, out.limit = 1, fkspec.lastkey,
      fkspec.keystep, fkspec.limit
  elseif fk.type == "keynum" then
    out.fk, out.last, out.step, out.limit = 2, fkspec.keynumidx,
      fkspec.keystep, fkspec.firstkey
  else
    out.fk = 0
  end
  return out
end

local function compile_command(specs, entry)
  if type(entry) ~= "table" or type(entry[1]) ~= "string" then return end
  local name = entry[1]:lower()
  local flags = 0
  if has(entry[3], "readonly") then flags = flags | 1 end
  local subs = entry[10]
  if type(subs) == "table" and #subs > 0 then flags = flags | 2 end
  local list = {}
  if type(entry[9]) == "table" then
    for i, raw in ipairs(entry[9]) do list[i] = compile_spec(raw) end
  end
  local rec = core.cluster_spec{ flags = flags, specs = list }
  specs[name] = rec
  if not name:find("|", 1, true) then specs[name:upper()] = rec end
  if flags & 2 ~= 0 then
    for _, sub in ipairs(subs) do compile_command(specs, sub) end
  end
end

-- ---- nodes and connections ----------------------------------------------

local function node_get(self, host, port)
  local addr = host .. ":" .. port
  local n = self._nodes[addr]
  if not n then
    n = { host = host, port = port, addr = addr, role = "master" }
    self._nodes[addr] = n
  end
  return n
end

local function alive(n)
  return n.client ~= nil and not n.dead
end

-- Opens the node's one connection; many tasks asking at once share one
-- attempt (they join the connecting task).
local function node_client(self, n)
  if alive(n) then return n.client end
  if self._closed then return nil, "closed", "closed" end
  if not n.connecting then
    n.connecting = lev.spawn(function()
      local redis = require("redis")
      local c, err, cat = redis.connect(node_config(self.cfg, n.host, n.port))
      if c and n.role == "replica" then
        local ok, rerr, rcat = c:cmd("READONLY")
        if not ok then
          c:close(true)
          c, err, cat = nil, rerr, rcat
        end
      end
      n.readonly = c ~= nil and n.role == "replica"
      n.connecting = nil
      if not c then return nil, err, cat end
      if self._closed then
        c:close(true)
        return nil, "closed", "closed"
      end
      if n.client then n.client:close(true) end
      n.client, n.dead = c, nil
      return c
    end)
  end
  local t = n.connecting
  local ok, c, err, cat = t:join()
  if not ok then
    -- the connecting task failed or was abandoned (lev.timeout around a
    -- map load): the next caller starts a new attempt
    if n.connecting == t then n.connecting = nil end
    return nil, "node " .. n.addr .. ": " .. tostring(c), "io"
  end
  if not c then
    return nil, "node " .. n.addr .. ": " .. tostring(err), cat
  end
  return c
end

-- Categories after which a connection is closed (sections 8, 9): its
-- in-flight commands have all failed, so it may be replaced. Anything else
-- ("redis", "limit", ...) leaves a connection that others still use.
local BROKEN = { io = true, eof = true, timeout = true, protocol = true,
  closed = true }

-- The node's connection failed: drop it; a later call opens a new one.
local function node_dead(self, n, cat)
  if BROKEN[cat] then n.dead = true end
end

-- ---- the slot map ---------------------------------------------------------

-- Points route[slot] (masters) and rroute[slot] (reads) at the
-- connections of the nodes the map names, for the fast path. Both tables
-- are filled in place: the C cmd closure holds them. route[-1] serves
-- commands without keys.
local function rebuild_routes(self)
  local route, rroute = self._route, self._rroute
  local slots = self._slots
  local replicas = self._replicas
  local prefer = self.cfg.read_from == "prefer_replica"
  for s = 0, NSLOTS - 1 do
    local n = slots[s]
    local c = n and alive(n) and n.client or nil
    route[s] = c
    if rroute then
      local reps = n and replicas[n]
      local pick
      if reps then
        for _, r in ipairs(reps) do
          if alive(r) and r.readonly and not r.failed then
            pick = r.client
            break
          end
        end
      end
      if not pick and prefer then pick = c end
      rroute[s] = pick
    end
  end
  -- Commands without keys take the slow path (slot -1): it picks a
  -- master, and sends SCRIPT LOAD/FLUSH to every master
  route[-1] = nil
end

-- CLUSTER SHARDS -> { { master = {host, port}, replicas = {...},
-- ranges = { {from, to}, ... } }, ... }
local function parse_shards(reply, default_host)
  local shards = {}
  for _, raw in ipairs(reply) do
    local sh = kv(raw)
    local entry = { ranges = {}, replicas = {} }
    local sl = sh.slots or {}
    for i = 1, #sl - 1, 2 do
      entry.ranges[#entry.ranges + 1] = { sl[i], sl[i + 1] }
    end
    for _, rn in ipairs(sh.nodes or {}) do
      local nd = kv(rn)
      local host = nd.ip or nd.endpoint
      if host == nil or host == "" or host == "?" then host = default_host end
      local port = nd.port or nd["tls-port"]
      local info = { host = host, port = port, health = nd.health }
      if nd.role == "master" then
        entry.master = info
      else
        entry.replicas[#entry.replicas + 1] = info
      end
    end
    if entry.master and #entry.ranges > 0 then
      shards[#shards + 1] = entry
    end
  end
  return shards
end

local function parse_slots(reply, default_host)
  local shards = {}
  for _, r in ipairs(reply) do
    local from, to = r[1], r[2]
    local function info(t)
      local host = t[1]
      if host == nil or host == "" or host == "?" then host = default_host end
      return { host = host, port = t[2], health = "online" }
    end
    local entry = { ranges = { { from, to } }, master = info(r[3]),
      replicas = {} }
    for i = 4, #r do entry.replicas[#entry.replicas + 1] = info(r[i]) end
    shards[#shards + 1] = entry
  end
  return shards
end

-- One node's view of the map, through its connection or a new one.
local function fetch_map(self, n)
  local c, err, cat = node_client(self, n)
  if not c then return nil, err, cat end
  local reply
  reply, err, cat = c:cmd("CLUSTER", "SHARDS")
  if reply then return parse_shards(reply, n.host) end
  if cat == "redis" and err:find("unknown subcommand", 1, true) then
    reply, err, cat = c:cmd("CLUSTER", "SLOTS")
    if reply then return parse_slots(reply, n.host) end
  end
  node_dead(self, n, cat)
  return nil, "node " .. n.addr .. ": " .. tostring(err), cat
end

local function apply_map(self, shards)
  local slots, replicas, masters = {}, {}, {}
  for _, n in pairs(self._nodes) do n.in_map = nil end
  for _, sh in ipairs(shards) do
    local m = node_get(self, sh.master.host, sh.master.port)
    m.role, m.in_map, m.ranges = "master", true, sh.ranges
    masters[#masters + 1] = m
    local reps = {}
    for _, ri in ipairs(sh.replicas) do
      local r = node_get(self, ri.host, ri.port)
      r.role, r.in_map, r.ranges, r.master = "replica", true, sh.ranges, m
      r.failed = ri.health ~= nil and ri.health ~= "online"
      reps[#reps + 1] = r
    end
    replicas[m] = reps
    for _, rg in ipairs(sh.ranges) do
      for s = rg[1], rg[2] do slots[s] = m end
    end
  end
  self._slots, self._replicas, self._masters = slots, replicas, masters
end

-- Loads the whole map: from known masters first, then the other known
-- nodes, then the seeds; then connects every master (and the replicas
-- reads go to) and rebuilds the routes.
local function load_map(self)
  self.refreshes = self.refreshes + 1
  local tried, order = {}, {}
  local function add(n)
    if n and not tried[n.addr] then
      tried[n.addr] = true
      order[#order + 1] = n
    end
  end
  for _, m in ipairs(self._masters) do if not m.dead then add(m) end end
  for _, n in pairs(self._nodes) do if not n.dead then add(n) end end
  for _, s in ipairs(self.cfg.nodes) do
    add(node_get(self, split_addr(s)))
  end
  for _, n in pairs(self._nodes) do add(n) end
  local last_err, last_cat = "no node answered", "io"
  for _, n in ipairs(order) do
    local shards, err, cat
    if self.cfg.timeout then
      shards, err, cat = fetch_map(self, n)
    else
      shards, err, cat = lev.timeout(FETCH_WAIT, fetch_map, self, n)
      if shards == nil and err == "timeout" and cat == nil then
        err, cat = "node " .. n.addr .. ": timeout", "timeout"
      end
    end
    if shards and #shards > 0 then
      apply_map(self, shards)
      local want = {}
      for _, m in ipairs(self._masters) do want[#want + 1] = m end
      if self.cfg.read_from ~= "master" then
        for _, reps in pairs(self._replicas) do
          for _, r in ipairs(reps) do
            if not r.failed then want[#want + 1] = r end
          end
        end
      end
      -- connect in parallel; a node that cannot be reached stays without
      -- a connection until a command needs it
      local tasks = {}
      for i, n2 in ipairs(want) do
        if not alive(n2) then
          tasks[i] = lev.spawn(node_client, self, n2)
        end
      end
      local function join_all()
        for _, t in pairs(tasks) do t:join() end
      end
      if self.cfg.timeout then join_all()
      else lev.timeout(FETCH_WAIT, join_all) end
      -- a master turned replica keeps its connection (tasks may have
      -- commands in flight on it); READONLY lets it serve reads now
      for _, n2 in ipairs(want) do
        if n2.role == "replica" and alive(n2) and not n2.readonly then
          n2.readonly = n2.client:cmd("READONLY") == "OK"
        end
      end
      rebuild_routes(self)
      return true
    elseif shards then
      err, cat = "node " .. n.addr .. ": empty slot map", "redis"
    end
    last_err, last_cat = err, cat
    -- a wrong password fails everywhere alike: no need to try on
    if cat == "redis" and (err:find("WRONGPASS", 1, true)
        or err:find("NOAUTH", 1, true) or err:find("NOPERM", 1, true)) then
      break
    end
  end
  return nil, last_err, last_cat
end

-- Coalesced map refresh: one load at a time, and the next one not sooner
-- than REFRESH_GAP after the previous one ended. With wait, the caller
-- waits for the load (and its result); otherwise it only asks for one.
local function refresh(self, wait)
  if self._closed then return nil, "closed", "closed" end
  local t = self._refreshing
  if not t then
    t = lev.spawn(function()
      local gap = self._last_refresh + REFRESH_GAP - lev.now()
      if gap > 0 then lev.sleep(gap) end
      local ok, err, cat
      if self._closed then
        ok, err, cat = nil, "closed", "closed"
      else
        ok, err, cat = load_map(self)
      end
      self._last_refresh = lev.now()
      self._refreshing = nil
      return ok, err, cat
    end)
    self._refreshing = t
  end
  if not wait then return true end
  local ok, r, err, cat = t:join()
  if not ok then return nil, tostring(r), "io" end
  return r, err, cat
end

-- ---- commands -------------------------------------------------------------

local function any_master(self)
  for _, m in ipairs(self._masters) do
    if alive(m) then return m end
  end
  return self._masters[1]
end

-- The node for a slot (nil slot: any master), for the slow path.
local function slot_node(self, slot, ro)
  local n
  if slot >= 0 then n = self._slots[slot] else n = any_master(self) end
  if ro and n and self.cfg.read_from ~= "master" then
    for _, r in ipairs(self._replicas[n] or {}) do
      if not r.failed and not r.dead then return r end
    end
    if self.cfg.read_from == "replica" and slot < 0 then return n end
  end
  return n
end

local function find_node(self, client)
  for _, n in pairs(self._nodes) do
    if n.client == client then return n end
  end
end

-- What an error reply means for a retry: nil (not retried), or the kind.
local function classify(err, cat)
  if cat ~= "redis" then
    if cat == "closed" then return "notsent" end
    -- a local bound (max_pending): the connection is fine, not retried
    if cat == "limit" or cat == "config" then return nil end
    return "conn"
  end
  local w = err:match("^(%u+)")
  if w == "MOVED" then return "moved"
  elseif w == "ASK" then return "ask"
  elseif w == "TRYAGAIN" or w == "CLUSTERDOWN" or w == "LOADING" then
    return "wait"
  elseif w == "READONLY" or w == "MASTERDOWN" then return "stale"
  end
end

local function moved_target(self, err, from)
  local slot, host, port = err:match("^%u+ (%d+) (.*):(%d+)$")
  if not slot then return end
  if host == "" then host = from and from.host or "127.0.0.1" end
  return math.tointeger(tonumber(slot)),
    node_get(self, host, math.tointeger(tonumber(port)))
end

-- The slow path: the first attempt went to client c and failed with
-- err/cat, or found no connection (c nil). Retries what is safe to retry,
-- bounded by max_redirects and timeout.
local function redirect(self, slot, ro, c, err, cat, argv)
  local cfg = self.cfg
  local deadline = cfg.timeout and lev.now() + cfg.timeout
  local delay = DELAY_FIRST
  local hops = 0
  local asking
  while true do
    if self._closed then return nil, "closed", "closed" end
    local n
    if c then
      local kind = classify(err, cat)
      if not kind then return nil, err, cat end
      hops = hops + 1
      if hops > cfg.max_redirects then return nil, err, cat end
      if deadline and lev.now() >= deadline then return nil, err, cat end
      local from = find_node(self, c)
      if kind == "moved" or kind == "ask" then
        self.redirections = self.redirections + 1
      end
      if kind == "moved" then
        local s, target = moved_target(self, err, from)
        if not s then return nil, err, cat end
        self._slots[s] = target
        if target.role ~= "master" then target.role = "master" end
        local tc = alive(target) and target.client
        if tc and self._route then self._route[s] = tc end
        refresh(self, false)
        n = target
      elseif kind == "ask" then
        local _, target = moved_target(self, err, from)
        if not target then return nil, err, cat end
        asking = target
      elseif kind == "wait" then
        if deadline and lev.now() + delay > deadline then
          return nil, err, cat
        end
        lev.sleep(delay)
        delay = math.min(delay * 2, DELAY_MAX)
      elseif kind == "stale" then
        refresh(self, true)
      elseif kind == "notsent" then
        if from then node_dead(self, from, cat) end
        local ok = refresh(self, true)
        if not ok and hops > 1 then lev.sleep(delay) end
      else -- the connection failed with the command sent: never resend
        if from then node_dead(self, from, cat) end
        refresh(self, false)
        return nil, err, cat
      end
    end
    if asking then
      local ac, aerr, acat = node_client(self, asking)
      asking = nil
      if not ac then return nil, aerr, acat end
      local res, perr, pcat = ac:pipeline{ { "ASKING" }, argv }
      if not res then
        local an = find_node(self, ac)
        if an then node_dead(self, an, pcat) end
        refresh(self, false)
        return nil, perr, pcat
      end
      local r = res[2]
      if r[1] ~= nil then return r[1] end
      if r[2] == nil then return nil, "not found" end
      c, err, cat = ac, r[2], "redis"
    else
      n = n or slot_node(self, slot, ro)
      if not n then
        -- no node serves the slot: the map is incomplete; ask for a new one
        hops = hops + 1
        if hops > cfg.max_redirects then
          return nil, "CLUSTERDOWN Hash slot not served", "redis"
        end
        local ok, rerr, rcat = refresh(self, true)
        if not ok and rcat ~= "redis" and hops > 1 then
          return nil, rerr, rcat
        end
      else
        local nc, nerr, ncat = node_client(self, n)
        if not nc then
          node_dead(self, n, ncat)
          refresh(self, false)
          return nil, nerr, ncat
        end
        local r
        r, err, cat = nc:cmd(table.unpack(argv, 1, argv.n or #argv))
        if r ~= nil or cat == nil then return r, err, cat end
        c = nc
      end
    end
  end
end

-- cl:cmd(name, ...) is a C closure per cluster object
-- (core.cluster_cmd): it finds the command's key specs, computes the slot,
-- takes the connection that serves it from route/rroute and calls that
-- connection's cmd; only when there
-- is no connection (or CROSSSLOT), or the reply is a failure with a
-- category (a redirection, a broken connection), does it call slow().
-- Commands every master must see: a script loaded on one master only
-- would answer NOSCRIPT on the others.
local EVERY_MASTER = { LOAD = true, FLUSH = true }

local function on_every_master(self, argv)
  local first
  for _, m in ipairs(self._masters) do
    local c, err, cat = node_client(self, m)
    if not c then return nil, err, cat end
    local r
    r, err, cat = c:cmd(table.unpack(argv, 1, argv.n))
    if r == nil then return nil, err, cat end
    first = first or r
  end
  return first
end

local function slow(self, err, cat, slot, ro, c, name, ...)
  if c == nil then
    if slot == -2 then return nil, CROSSSLOT, "redis" end
    if self._closed then return nil, "closed", "closed" end
    local argv = table.pack(name, ...)
    if slot == -1 and type(name) == "string" and name:upper() == "SCRIPT"
       and type(argv[2]) == "string" and EVERY_MASTER[argv[2]:upper()] then
      return on_every_master(self, argv)
    end
    return redirect(self, slot, ro, nil, nil, nil, argv)
  end
  return redirect(self, slot, ro, c, err, cat, table.pack(name, ...))
end

-- A pipeline: split by node, sent to all nodes at once, reassembled in
-- command order; entries that got a redirection are retried one by one.
function Cluster:pipeline(cmds)
  if cmds == nil or #cmds == 0 then return {} end
  if self._closed then return nil, "closed", "closed" end
  local specs = self._specs
  local out, groups, order = {}, {}, {}
  for i = 1, #cmds do
    local argv = cmds[i]
    if type(argv) ~= "table" then
      error("redis.cluster: pipeline: command " .. i .. " must be a table", 2)
    end
    local slot, ro = kslot_argv(specs, argv)
    if slot == -2 then
      out[i] = { nil, CROSSSLOT }
    else
      local n = slot_node(self, slot, ro)
      if not n then
        refresh(self, true)
        n = slot_node(self, slot, ro)
        if not n then
          return nil, "CLUSTERDOWN Hash slot not served", "redis"
        end
      end
      local c, err, cat = node_client(self, n)
      if not c then
        node_dead(self, n, cat)
        refresh(self, false)
        return nil, err, cat
      end
      local g = groups[c]
      if not g then
        g = { c = c, idx = {}, cmds = {}, slot = {}, ro = {} }
        groups[c] = g
        order[#order + 1] = g
      end
      local k = #g.idx + 1
      g.idx[k], g.cmds[k], g.slot[k], g.ro[k] = i, argv, slot, ro
    end
  end
  local function run(g)
    g.res, g.err, g.cat = g.c:pipeline(g.cmds)
  end
  if #order == 1 then
    run(order[1])
  elseif #order > 1 then
    local tasks = {}
    for j, g in ipairs(order) do tasks[j] = lev.spawn(run, g) end
    local raised
    for _, t in ipairs(tasks) do
      local ok, e = t:join()
      if not ok and not raised then raised = e end
    end
    if raised then error(raised, 0) end
  end
  local retry = {}
  for _, g in ipairs(order) do
    if not g.res then
      local n = find_node(self, g.c)
      if n then node_dead(self, n, g.cat) end
      refresh(self, false)
      return nil, g.err, g.cat
    end
    for k, i in ipairs(g.idx) do
      local r = g.res[k]
      out[i] = r
      if r[1] == nil and r[2] ~= nil and classify(r[2], "redis") then
        retry[#retry + 1] = { i, g.slot[k], g.ro[k], g.c, r[2] }
      end
    end
  end
  for _, rt in ipairs(retry) do
    local i = rt[1]
    local argv = table.move(cmds[i], 1, #cmds[i], 1, { n = #cmds[i] })
    local v, err, cat = redirect(self, rt[2], rt[3], rt[4], rt[5], "redis",
      argv)
    if v == nil and cat ~= nil and cat ~= "redis" then
      return nil, err, cat
    end
    if v == nil and err == "not found" then err = nil end
    out[i] = { v, err }
  end
  return out
end

-- ---- helpers (section 14) through the cluster -----------------------------

local helpers = require("redis.helpers")

-- for key in cl:scan_iter(opts): SCAN on every master in turn (a snapshot
-- of the masters when the loop starts).
function Cluster:scan_iter(opts)
  local list, i, it = {}, 0, nil
  for _, m in ipairs(self._masters) do list[#list + 1] = m end
  return function()
    while true do
      if it then
        local k = it()
        if k ~= nil then return k end
        it = nil
      end
      i = i + 1
      local m = list[i]
      if not m then return nil end
      local c, err = node_client(self, m)
      if not c then error(err, 0) end
      it = helpers.scan_iter(c, opts)
    end
  end
end

-- HSCAN, SSCAN and ZSCAN have a key: they route like any command.
Cluster.hscan_iter = helpers.hscan_iter
Cluster.sscan_iter = helpers.sscan_iter
Cluster.zscan_iter = helpers.zscan_iter

-- cl:transaction(opts, fn): on a connection of its own to the master of
-- the one slot of the watched keys; without watched keys, fn runs once
-- (its reads through the cluster) and the slot of the commands it returns
-- picks the master. Keys in several slots: nil, CROSSSLOT ...
function Cluster:transaction(opts, fn)
  if type(opts) == "function" and fn == nil then opts, fn = {}, opts end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("transaction: options must be a table", 2)
  end
  if type(fn) ~= "function" then
    error("transaction: fn must be a function", 2)
  end
  if self._closed then return nil, "closed", "closed" end
  local redis = require("redis")
  local function connect_slot(slot)
    local n = slot >= 0 and self._slots[slot] or any_master(self)
    if not n then return nil, "CLUSTERDOWN Hash slot not served", "redis" end
    return redis.connect(node_config(self.cfg, n.host, n.port))
  end
  local watch = opts.watch
  if type(watch) == "table" and #watch > 0 then
    local argv = { "WATCH" }
    table.move(watch, 1, #watch, 2, argv)
    local slot = kslot_argv(self._specs, argv)
    if slot == -2 then return nil, CROSSSLOT, "redis" end
    return helpers.transaction(self, opts, fn,
      function() return connect_slot(slot) end)
  end
  -- no watch: fn's commands name the slot
  local cmds = fn(self)
  local slot = -1
  if type(cmds) == "table" then
    for _, argv in ipairs(cmds) do
      if type(argv) == "table" then
        local s = kslot_argv(self._specs, argv)
        if s == -2 or (s >= 0 and slot >= 0 and s ~= slot) then
          return nil, CROSSSLOT, "redis"
        end
        if s >= 0 then slot = s end
      end
    end
  end
  return helpers.transaction(self, opts, function() return cmds end,
    function() return connect_slot(slot) end)
end

-- cl:nodes(): what the map says, for diagnostics.
function Cluster:nodes()
  local list = {}
  local function ranges(rs)
    local t = {}
    for i, r in ipairs(rs or {}) do t[i] = { r[1], r[2] } end
    return t
  end
  for _, m in ipairs(self._masters) do
    list[#list + 1] = { host = m.host, port = m.port, role = "master",
      slots = ranges(m.ranges) }
    for _, r in ipairs(self._replicas[m] or {}) do
      list[#list + 1] = { host = r.host, port = r.port, role = "replica",
        slots = ranges(m.ranges) }
    end
  end
  return list
end

function Cluster:refresh()
  if self._closed then return nil, "closed", "closed" end
  return refresh(self, true)
end

-- A plain client per master, for node-level commands; the caller closes.
function Cluster:masters()
  if self._closed then return nil, "closed", "closed" end
  local redis = require("redis")
  local out = {}
  for _, m in ipairs(self._masters) do
    local c, err, cat = redis.connect(node_config(self.cfg, m.host, m.port))
    if not c then
      for _, o in ipairs(out) do o:close() end
      return nil, "node " .. m.addr .. ": " .. tostring(err), cat
    end
    out[#out + 1] = c
  end
  return out
end

function Cluster:close()
  if self._closed then return true end
  self._closed = true
  for _, n in pairs(self._nodes) do
    if n.client then
      -- READONLY is connection state: replica connections are not pooled
      n.client:close(n.role ~= "master" or n.dead)
      n.client = nil
    end
  end
  for k in pairs(self._route) do self._route[k] = nil end
  if self._rroute then
    for k in pairs(self._rroute) do self._rroute[k] = nil end
  end
  return true
end

Cluster.__close = Cluster.close

function Cluster:__tostring()
  return string.format("redis.cluster (%d masters)%s", #self._masters,
    self._closed and " closed" or "")
end

-- Method sugar: cl:get(k) is cl:cmd("GET", k); generated once per name.
-- __index is the methods table itself (a plain table look-up for cmd and
-- the rest on the hot path); only a missing name reaches the generator.
local methods = {}
for k, v in pairs(Cluster) do
  if not k:match("^__") then methods[k] = v end
end
setmetatable(methods, {
  __index = function(t, key)
    -- private fields (_x) stay nil when unset; no command starts with "_"
    if type(key) ~= "string" or key:byte(1) == 95 then return nil end
    local name = key:upper()
    local m = function(cl, ...) return cl:cmd(name, ...) end
    rawset(t, key, m)
    return m
  end,
})
Cluster.__index = methods
Cluster.__name = "redis.cluster"

function M.new(conf)
  local cfg, err, cat = normalize(conf)
  if not cfg then return nil, err, cat end
  local self = setmetatable({
    cfg = cfg,
    refreshes = 0,        -- map loads so far (diagnostics, specs)
    redirections = 0,     -- MOVED and ASK replies followed so far
    _specs = {},          -- command name -> compiled key specs
    _nodes = {},          -- "host:port" -> node
    _masters = {},
    _replicas = {},
    _slots = {},          -- slot -> master node
    _route = {},          -- slot -> master connection (fast path)
    _rroute = nil,        -- slot -> connection for reads (read_from)
    _last_refresh = -math.huge,
  }, Cluster)
  if cfg.read_from ~= "master" then self._rroute = {} end
  local ok, lerr, lcat = load_map(self)
  self._last_refresh = lev.now()
  if not ok then
    self:close()
    return nil, lerr, lcat
  end
  -- The key specifications, once per cluster object.
  local m = any_master(self)
  local reply, cerr, ccat = m.client:cmd("COMMAND")
  if not reply then
    self:close()
    return nil, "node " .. m.addr .. ": COMMAND: " .. tostring(cerr), ccat
  end
  for _, entry in ipairs(reply) do compile_command(self._specs, entry) end
  -- every connection has the same cmd method: the closure calls it
  self.cmd = core.cluster_cmd(self._specs, self._route, self._rroute or false,
    m.client.cmd, function(...) return slow(self, ...) end)
  return self
end

-- The slot of a key (hash tags honoured), as CLUSTER KEYSLOT computes it.
M.keyslot = core.keyslot

return M
