-- redis.sentinel: a client whose server is found through Redis Sentinel.
--
--   local c = assert(redis.sentinel{
--     sentinels = { "10.0.0.1:26379", "10.0.0.2:26379" },
--     master = "mymaster", role = "master",
--     sentinel_auth = { user = "default", pass = "..." },
--     auth = { user = "app", pass = "..." }, db = 0, timeout = 2,
--   })
--
-- Discovery asks the sentinels in turn, connects to the node named with the
-- usual handshake and checks its ROLE; a sentinel that answered with a
-- usable node moves to the front of the list, so the next discovery asks it
-- first. The sentinel list and its order belong to one sentinel config
-- object (kept in the client's cfg), not to the module.

local config = require("redis.config")

local M = {}

local ROLES = { master = true, replica = true }
-- A whole round over the list failed: wait this long before the next one,
-- within connect_timeout.
local ROUND_PAUSE = 0.25
-- One sentinel gets at most its share of connect_timeout, and no less than
-- this, so that one that hangs does not stop the others from being asked.
local SENTINEL_MIN_WAIT = 0.5

local function fail(msg) return nil, "invalid config: " .. msg end

local function parse_addr(s)
  if type(s) ~= "string" then return nil end
  local host, port = s:match("^%[([^%]]+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]+):(%d+)$") end
  port = tonumber(port)
  if not host or host == "" or not port or port < 1 or port > 65535 then
    return nil
  end
  return { host = host, port = math.tointeger(port) }
end

-- Splits a redis.sentinel config into the sentinel part (validated here)
-- and the data-node part (validated by redis.config like connect's).
function M.normalize(conf)
  if type(conf) ~= "table" then
    return fail("redis.sentinel needs a table with sentinels and master")
  end
  if type(conf.sentinels) ~= "table" or #conf.sentinels == 0 then
    return fail('sentinels must be a non-empty array of "host:port" strings')
  end
  local list = {}
  for i, s in ipairs(conf.sentinels) do
    local a = parse_addr(s)
    if not a then
      return fail(string.format('sentinels[%d] must be a "host:port" string',
        i))
    end
    list[i] = a
  end
  if type(conf.master) ~= "string" or conf.master == "" then
    return fail("master must be a non-empty string (the name the sentinels "
      .. "know)")
  end
  local role = conf.role == nil and "master" or conf.role
  if not ROLES[role] then
    return fail('role must be "master" or "replica"')
  end
  local sauth
  if conf.sentinel_auth ~= nil then
    local a = conf.sentinel_auth
    if type(a) ~= "table" or type(a.user) ~= "string" or a.user == ""
       or type(a.pass) ~= "string" or a.pass == "" then
      return fail("sentinel_auth must be a table with non-empty string "
        .. "fields user and pass")
    end
    sauth = { user = a.user, pass = a.pass }
  end
  -- The data node's fields, checked as connect checks them (host and port
  -- are placeholders: the sentinels name the real ones).
  local node = {}
  for k, v in pairs(conf) do node[k] = v end
  node.host, node.port = "sentinel-placeholder", 6379
  node.sentinels, node.master, node.role, node.sentinel_auth = nil, nil,
    nil, nil
  if node.reconnect == nil then node.reconnect = true end
  local cfg, err = config.normalize(node)
  if not cfg then return nil, err end
  return {
    sentinels = list, master = conf.master, role = role,
    sentinel_auth = sauth, node = cfg,
  }
end

-- SENTINEL replicas gives, per replica, a flat array (RESP2) or a map
-- (RESP3) of fields.
local function fields(entry)
  if entry[1] == nil then return entry end
  local t = {}
  for i = 1, #entry - 1, 2 do t[entry[i]] = entry[i + 1] end
  return t
end

local function usable_replica(f)
  local flags = f.flags or ""
  return not (flags:find("s_down", 1, true) or flags:find("o_down", 1, true)
    or flags:find("disconnected", 1, true))
    and (f["master-link-status"] == nil or f["master-link-status"] == "ok")
end

-- Candidate nodes one sentinel names: the master's address, or its usable
-- replicas in random order (spreading readers). nil, text when it has none.
local function ask(sc, scfg)
  if scfg.role == "master" then
    local addr, err = sc:cmd("SENTINEL", "get-master-addr-by-name",
      scfg.master)
    if not addr then
      if err == "not found" then
        return nil, 'does not know master "' .. scfg.master .. '"'
      end
      return nil, err
    end
    return { { host = addr[1], port = math.tointeger(tonumber(addr[2])) } }
  end
  local reps, err = sc:cmd("SENTINEL", "replicas", scfg.master)
  if not reps then
    if err and err:find("No such master", 1, true) then
      return nil, 'does not know master "' .. scfg.master .. '"'
    end
    return nil, err
  end
  local out = {}
  for _, e in ipairs(reps) do
    local f = fields(e)
    if usable_replica(f) then
      out[#out + 1] = { host = f.ip, port = math.tointeger(tonumber(f.port)) }
    end
  end
  if #out == 0 then return nil, "no usable replica" end
  for i = #out, 2, -1 do
    local j = math.random(i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

-- What ROLE says a node is: "master", "replica" (or "sentinel").
local function node_role(c)
  local r, err = c:cmd("ROLE")
  if not r then return nil, err end
  if r[1] == "slave" then return "replica" end
  return r[1]
end

-- One round over the sentinels. connect(node_cfg) opens a data node
-- connection (the caller's: the plain connect, or reconnect's).
-- Returns the connected client, or nil and the per-sentinel texts.
local function round(redis, scfg, connect, deadline, per, tried)
  local now = require("lev").now
  for i, s in ipairs(scfg.sentinels) do
    local left = deadline - now()
    if left <= 0 then break end
    local where = s.host .. ":" .. s.port
    -- A sentinel that does not answer may not eat the whole budget.
    local sc, err = redis.connect{ host = s.host, port = s.port,
      auth = scfg.sentinel_auth, timeout = math.min(left, per) }
    local nodes
    if sc then
      nodes, err = ask(sc, scfg)
      sc:close()
    end
    if nodes then
      for _, n in ipairs(nodes) do
        local ncfg = {}
        for k, v in pairs(scfg.node) do ncfg[k] = v end
        ncfg.host, ncfg.port = n.host, n.port
        local c, proto = connect(ncfg)
        local cerr = proto
        if c then
          local role, rerr = node_role(c)
          if role == scfg.role then
            -- This sentinel knew a usable node: ask it first next time.
            table.remove(scfg.sentinels, i)
            table.insert(scfg.sentinels, 1, s)
            return c, proto, n
          end
          c:close(true)
          err = string.format("%s:%d is %s, not %s", n.host, n.port,
            role or ("unknown (" .. tostring(rerr) .. ")"), scfg.role)
        else
          err = string.format("%s:%d: %s", n.host, n.port, cerr)
        end
      end
    end
    -- One text per sentinel, the latest; but a timeout that only the end
    -- of connect_timeout caused does not hide what it said before.
    if not tried[where] then tried[#tried + 1] = where end
    if err ~= "timeout" or not tried[where] then tried[where] = tostring(err) end
  end
  return nil
end

-- Finds and connects the node scfg asks for, trying rounds until
-- connect_timeout runs out. connect(node_cfg) -> conn, protocol | nil, err.
-- Returns conn, protocol, {host, port} or nil, text.
function M.discover(redis, scfg, connect)
  local lev = require("lev")
  local limit = require("redis.handshake").limit(scfg.node)
  local deadline = lev.now() + limit
  local per = math.max(SENTINEL_MIN_WAIT, limit / #scfg.sentinels)
  local tried = {}
  repeat
    local c, proto, n = round(redis, scfg, connect, deadline, per, tried)
    if c then return c, proto, n end
    local left = deadline - lev.now()
    if left > 0 then lev.sleep(math.min(ROUND_PAUSE, left)) end
  until lev.now() >= deadline
  local last = {}
  for i, where in ipairs(tried) do last[i] = where .. " " .. tried[where] end
  return nil, string.format('sentinel: no %s for "%s" (tried %s)',
    scfg.role, scfg.master, table.concat(last, "; "))
end


-- ---- the client ----------------------------------------------------------

local core = require("redis.core")
local handshake = require("redis.handshake")
local reconnect = require("redis.reconnect")
local lev = require("lev")

-- Per client: the sentinel config, the connection generation (bumped by
-- every discovery, so a READONLY from a connection already left behind
-- does not drop the new one) and the +switch-master watcher's connection.
local states = setmetatable({}, { __mode = "k" })

local function is_readonly(err, cat)
  return cat == "redis" and type(err) == "string"
    and err:find("^READONLY") ~= nil
end

-- Leaves the current node (when it is still the one that answered gen)
-- and waits for the reconnect to find the new one.
local function leave(c, st, gen, why)
  if st.gen == gen and core.is_open(c) then core.fail(c, why) end
  local limit = handshake.limit(st.scfg.node)
  return reconnect.wait_ready(c, limit + math.max(0,
    st.scfg.node.reconnect and st.scfg.node.reconnect.wait or 0))
end

local methods = core.methods
local smethods = {}

-- cmd: a write answered READONLY was not run by the demoted node, so it
-- is sent once more to the master the sentinels name now.
function smethods.cmd(c, ...)
  local st = states[c]
  local gen = st and st.gen
  local v, err, cat = methods.cmd(c, ...)
  if v == nil and st and is_readonly(err, cat) then
    if leave(c, st, gen, "READONLY: the node was demoted; asking the "
             .. "sentinels for the new master") then
      return methods.cmd(c, ...)
    end
  end
  return v, err, cat
end

-- pipeline: the entries answered READONLY (not run) are sent again, as
-- one pipeline, to the new master; the others keep their replies.
function smethods.pipeline(c, cmds)
  local st = states[c]
  local gen = st and st.gen
  local res, err, cat = methods.pipeline(c, cmds)
  if not res or not st then return res, err, cat end
  local again, where = {}, {}
  for i, r in ipairs(res) do
    if r[1] == nil and is_readonly(r[2], "redis") then
      again[#again + 1] = cmds[i]
      where[#where + 1] = i
    end
  end
  if #again == 0 then return res end
  if not leave(c, st, gen, "READONLY: the node was demoted; asking the "
               .. "sentinels for the new master") then
    return res
  end
  local more, merr, mcat = methods.pipeline(c, again)
  if not more then return nil, merr, mcat end
  for k, i in ipairs(where) do res[i] = more[k] end
  return res
end

function smethods.close(c, no_keepalive)
  local st = states[c]
  if st and st.watch_conn then
    local w = st.watch_conn
    st.watch_conn = nil
    w:close(true)
  end
  return methods.close(c, no_keepalive)
end

-- Method sugar goes through smethods.cmd, so c:set(...) gets the READONLY
-- rule too. Names are bounded like the C sugar cache.
local SUGAR_MAX = 1024
local sugar, nsugar = {}, 0
local SMT = {
  __index = function(_, k)
    local m = smethods[k]
    if m then return m end
    if rawget(methods, k) ~= nil or type(k) ~= "string" then
      return methods[k]
    end
    local f = sugar[k]
    if f then return f end
    local name = k:upper()
    f = function(c, ...) return smethods.cmd(c, name, ...) end
    if nsugar < SUGAR_MAX then
      sugar[k] = f
      nsugar = nsugar + 1
    end
    return f
  end,
  __close = function(c) smethods.close(c, true) end,
  __tostring = function(c)
    return string.format("redis.sentinel client (%s %s at %s:%s)",
      c.cfg.sentinel.master, c.cfg.sentinel.role, c.cfg.host, c.cfg.port)
  end,
}

-- Watches one sentinel at a time for +switch-master of our master: the
-- client leaves its node at once, instead of writing to a demoted master
-- until that node drops its connections.
local function watch_switch(redis, c, st)
  local scfg = st.scfg
  local i = 0
  while not core.is_closed(c) do
    i = i % #scfg.sentinels + 1
    local s = scfg.sentinels[i]
    local w = redis.connect{ host = s.host, port = s.port,
      auth = scfg.sentinel_auth, timeout = handshake.limit(scfg.node) }
    if w and not core.is_closed(c) and w:cmd("SUBSCRIBE", "+switch-master")
    then
      st.watch_conn = w
      while true do
        local m = w:read()
        if not m then break end
        local v = m.value
        -- { "message", "+switch-master", "<name> <old ip> <old port>
        --   <new ip> <new port>" }
        if type(v) == "table" and v[1] == "message" then
          local name, nhost, nport = tostring(v[3]):match(
            "^(%S+) %S+ %S+ (%S+) (%d+)$")
          if name == scfg.master then
            nport = math.tointeger(tonumber(nport))
            local here = scfg.node.host == nhost and scfg.node.port == nport
            -- A master client on another node, or a replica client on the
            -- node just promoted, must move.
            if (scfg.role == "master") ~= here and core.is_open(c) then
              core.fail(c, string.format("sentinel: +switch-master %s "
                .. "now at %s:%d", name, nhost, nport))
            end
          end
        end
      end
      st.watch_conn = nil
    end
    if w then w:close(true) end
    if core.is_closed(c) then return end
    lev.sleep(0.2)
  end
end

-- redis.sentinel(config) -> client | nil, err, category
function M.connect(redis, conf)
  local scfg, err = M.normalize(conf)
  if not scfg then return nil, err, "config" end
  local cfg = scfg.node
  cfg.sentinel = { master = scfg.master, role = scfg.role,
                   sentinels = scfg.sentinels }
  local st = { scfg = scfg, gen = 0 }
  -- Every connect and reconnect asks the sentinels again; cfg then names
  -- the node in use (its pool key too).
  local function open(_, db, verify)
    local conn, proto, node = M.discover(redis, scfg, function(ncfg)
      return handshake.open(ncfg, db, verify)
    end)
    if not conn then return nil, proto end
    cfg.host, cfg.port = node.host, node.port
    st.gen = st.gen + 1
    return conn, proto
  end
  local c, proto = open(cfg, cfg.db)
  if not c then return nil, proto, "io" end
  core.ready(c, config.pool_key(cfg, proto ~= cfg.protocol), cfg)
  c.protocol = proto
  states[c] = st
  if not SMT.__gc then
    -- The C state of a client goes with the table: keep its finalizer.
    local base = getmetatable(c)
    SMT.__gc, SMT.__name = base.__gc, base.__name
  end
  setmetatable(c, SMT)
  if cfg.reconnect then
    reconnect.manage(c, cfg, { open = open })
    lev._daemon(watch_switch, redis, c, st)
  end
  return c
end

return M
