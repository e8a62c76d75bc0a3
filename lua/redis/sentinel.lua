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
local function round(redis, scfg, connect, deadline, tried)
  local now = require("lev").now
  for i, s in ipairs(scfg.sentinels) do
    local left = deadline - now()
    if left <= 0 then break end
    local where = s.host .. ":" .. s.port
    local sc, err = redis.connect{ host = s.host, port = s.port,
      auth = scfg.sentinel_auth, timeout = left }
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
        local c, cerr = connect(ncfg)
        if c then
          local role, rerr = node_role(c)
          if role == scfg.role then
            -- This sentinel knew a usable node: ask it first next time.
            table.remove(scfg.sentinels, i)
            table.insert(scfg.sentinels, 1, s)
            return c, n
          end
          c:close(true)
          err = string.format("%s:%d is %s, not %s", n.host, n.port,
            role or ("unknown (" .. tostring(rerr) .. ")"), scfg.role)
        else
          err = string.format("%s:%d: %s", n.host, n.port, cerr)
        end
      end
    end
    tried[#tried + 1] = where .. " " .. tostring(err)
  end
  return nil
end

-- Finds and connects the node scfg asks for, trying rounds until
-- connect_timeout runs out. Returns client, {host, port} or nil, text.
function M.discover(redis, scfg, connect)
  local lev = require("lev")
  local limit = scfg.node.connect_timeout or 10
  if scfg.node.timeout and scfg.node.timeout < limit then
    limit = scfg.node.timeout
  end
  local deadline = lev.now() + limit
  local tried = {}
  repeat
    local c, n = round(redis, scfg, connect, deadline, tried)
    if c then return c, n end
    local left = deadline - lev.now()
    if left > 0 then lev.sleep(math.min(ROUND_PAUSE, left)) end
  until lev.now() >= deadline
  -- The last round's texts are the freshest; earlier rounds said the same.
  local last = {}
  for i = math.max(1, #tried - #scfg.sentinels + 1), #tried do
    last[#last + 1] = tried[i]
  end
  return nil, string.format('sentinel: no %s for "%s" (tried %s)',
    scfg.role, scfg.master, table.concat(last, "; "))
end

return M
