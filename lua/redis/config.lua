-- redis.config: validates and normalizes redis.connect's config.
--
-- One place, one table of rules (STYLE 21). A config that breaks a rule is
-- not an exception: normalize returns nil, "invalid config: <field> ...".

local M = {}

local function fail(msg)
  return nil, "invalid config: " .. msg
end

-- Integral numbers (7000 or 7000.0) as integers; anything else nil.
local function integral(v)
  if math.type(v) == "integer" then return v end
  if math.type(v) == "float" and v == math.floor(v)
     and v >= math.mininteger and v <= math.maxinteger then
    return math.tointeger(v)
  end
  return nil
end

local function nonempty_string(v)
  return type(v) == "string" and v ~= ""
end

-- The rules, in the order they are checked.
local RULES = {
  { field = "host", required = true,
    msg = "host must be a non-empty string",
    check = function(v) if nonempty_string(v) then return v end end },
  { field = "port", default = 6379,
    msg = "port must be an integer in 1..65535",
    check = function(v)
      local n = integral(v)
      if n and n >= 1 and n <= 65535 then return n end
    end },
  { field = "db", default = 0,
    msg = "db must be an integer >= 0",
    check = function(v)
      local n = integral(v)
      if n and n >= 0 then return n end
    end },
  { field = "max_pending", default = 100000,
    msg = "max_pending must be an integer >= 1",
    check = function(v)
      local n = integral(v)
      if n and n >= 1 then return n end
    end },
  { field = "max_reply", default = 1 << 30,
    msg = "max_reply must be an integer >= 1 (bytes)",
    check = function(v)
      local n = integral(v)
      if n and n >= 1 then return n end
    end },
  { field = "timeout",
    msg = "timeout must be a number > 0 (seconds)",
    check = function(v)
      if type(v) == "number" and v > 0 and v == v and v < 1e9 then
        return v + 0.0
      end
    end },
  -- Round 2 (contract section 11): the handshake and reconnect.
  { field = "protocol", default = 2,
    msg = "protocol must be 2 or 3",
    check = function(v)
      local n = integral(v)
      if n == 2 or n == 3 then return n end
    end },
  { field = "name",
    msg = "name must be a non-empty string of printable ASCII without "
      .. "spaces",
    check = function(v)
      -- CLIENT SETNAME's own rule: bytes '!'..'~' only.
      if nonempty_string(v) and not v:find("[^!-~]") then return v end
    end },
  { field = "connect_timeout", default = 10.0,
    msg = "connect_timeout must be a number > 0 (seconds)",
    check = function(v)
      if type(v) == "number" and v > 0 and v == v and v < 1e9 then
        return v + 0.0
      end
    end },
  { field = "reconnect", default = false,
    msg = "reconnect must be true, false or a table",
    check = function(v) return M.check_reconnect(v) end },
}

local function seconds(v, min_exclusive)
  if type(v) ~= "number" or v ~= v or v >= 1e9 then return nil end
  if min_exclusive and v <= 0 or v < 0 then return nil end
  return v + 0.0
end

-- reconnect = true is this table; a table may set any of its fields.
-- Returns the full table with every default filled in, or false, or
-- nil and the rule it breaks.
function M.check_reconnect(v)
  if v == false then return false end
  if v == true then v = {} end
  if type(v) ~= "table" then
    return nil, "reconnect must be true, false or a table"
  end
  local strategy = v.strategy == nil and "exponential" or v.strategy
  local out = { strategy = strategy, jitter = true, wait = 0.0 }
  if strategy == "exponential" then
    if v.delay ~= nil then
      return nil, "reconnect.delay is for strategy \"fixed\" (exponential "
        .. "takes base and max)"
    end
    out.base = v.base == nil and 0.1 or seconds(v.base, true)
    if not out.base then
      return nil, "reconnect.base must be a number > 0 (seconds)"
    end
    out.max = v.max == nil and 5.0 or seconds(v.max, true)
    if not out.max then
      return nil, "reconnect.max must be a number > 0 (seconds)"
    end
  elseif strategy == "fixed" then
    if v.base ~= nil or v.max ~= nil then
      return nil, "reconnect.base and reconnect.max are for strategy "
        .. "\"exponential\" (fixed takes delay)"
    end
    out.delay = v.delay == nil and 1.0 or seconds(v.delay, false)
    if not out.delay then
      return nil, "reconnect.delay must be a number >= 0 (seconds)"
    end
  else
    return nil, 'reconnect.strategy must be "exponential" or "fixed"'
  end
  if v.jitter ~= nil then
    if type(v.jitter) ~= "boolean" then
      return nil, "reconnect.jitter must be a boolean"
    end
    out.jitter = v.jitter
  end
  if v.attempts ~= nil then
    local n = integral(v.attempts)
    if not n or n < 1 then
      return nil, "reconnect.attempts must be an integer >= 1"
    end
    out.attempts = n
  end
  if v.wait ~= nil then
    out.wait = seconds(v.wait, false)
    if not out.wait then
      return nil, "reconnect.wait must be a number >= 0 (seconds)"
    end
  end
  return out
end

local SSL_FIELDS = { "ca", "cert", "key", "server_name" }

local function check_ssl(v)
  if v == nil or v == false then return false end
  if v == true then return { verify = true } end
  if type(v) ~= "table" then
    return nil, "ssl must be true, false or a table"
  end
  local out = { verify = true }
  if v.verify ~= nil then
    if type(v.verify) ~= "boolean" then
      return nil, "ssl.verify must be a boolean"
    end
    out.verify = v.verify
  end
  for _, f in ipairs(SSL_FIELDS) do
    if v[f] ~= nil then
      if not nonempty_string(v[f]) then
        return nil, "ssl." .. f .. " must be a non-empty string"
      end
      out[f] = v[f]
    end
  end
  if out.key and not out.cert then
    return nil, "ssl.key needs ssl.cert"
  end
  return out
end

-- auth.pass is kept out of every printed form of the config.
local AUTH_MT = {
  __tostring = function(a) return "auth{user=" .. a.user .. ", pass=***}" end,
}

local function check_auth(v)
  if v == nil then return nil end
  if type(v) ~= "table" or not nonempty_string(v.user)
     or not nonempty_string(v.pass) then
    return nil, "auth must be a table with non-empty string fields user "
      .. "and pass"
  end
  return setmetatable({ user = v.user, pass = v.pass }, AUTH_MT)
end

local CFG_MT = {
  __tostring = function(c)
    return string.format("redis config %s:%d/%d%s%s", c.host, c.port, c.db,
      c.ssl and " ssl" or "", c.auth and (" user " .. c.auth.user) or "")
  end,
}

-- "host:port", "host:port/db", "[v6]:port[/db]" or "host".
local function parse_string(s)
  local host, rest = s:match("^%[([^%]]+)%](.*)$")
  if not host then
    host, rest = s:match("^([^:/]*)(.*)$")
  end
  local t = { host = host }
  if rest ~= "" then
    local port, db = rest:match("^:(%d+)/(%d+)$")
    if not port then port = rest:match("^:(%d+)$") end
    if not port then
      if rest:match("^:") then
        return nil, "port must be an integer in 1..65535"
      end
      return nil, 'expected "host:port" or "host:port/db", got "' .. s .. '"'
    end
    t.port, t.db = tonumber(port), db and tonumber(db)
    if math.type(t.port) ~= "integer" then
      return nil, "port must be an integer in 1..65535"
    end
  end
  return t
end

function M.normalize(config)
  if config == nil then config = "127.0.0.1:6379" end
  local src = config
  if type(config) == "string" then
    local t, err = parse_string(config)
    if not t then return fail(err) end
    src = t
  elseif type(config) ~= "table" then
    return fail('config must be nil, a "host:port[/db]" string or a table')
  end
  local cfg = {}
  for _, rule in ipairs(RULES) do
    local v = src[rule.field]
    if v == nil then
      if rule.required then return fail(rule.msg) end
      cfg[rule.field] = rule.default
    else
      local ok, why = rule.check(v)
      if ok == nil then return fail(why or rule.msg) end
      cfg[rule.field] = ok
    end
  end
  local ssl, err = check_ssl(src.ssl)
  if ssl == nil then return fail(err) end
  cfg.ssl = ssl
  if src.auth ~= nil then
    local auth, aerr = check_auth(src.auth)
    if not auth then return fail(aerr) end
    cfg.auth = auth
  end
  return setmetatable(cfg, CFG_MT)
end

-- FNV-1a over the AUTH identity: the pool keeps connections apart per
-- identity without holding the password in another place.
local function fnv1a(s)
  local h = -3750763034362895579 -- 14695981039346656037 as a signed int
  for i = 1, #s do
    h = (h ~ s:byte(i)) * 1099511628211
  end
  return string.format("%016x", h)
end

-- host:port/db, +ssl and its identity, +the AUTH identity, +the
-- protocol and the client name. fallback: the key of a protocol = 3
-- connection that fell back to RESP2 (the server has no HELLO), kept apart
-- so that whoever takes it from the pool knows it speaks RESP2. db: the
-- database the connection is on, when not cfg.db (after a reconnect).
function M.pool_key(cfg, fallback, db)
  local key = string.format("%s:%d/%d", cfg.host, cfg.port, db or cfg.db)
  if cfg.protocol == 3 then
    key = key .. (fallback and "+resp3>2" or "+resp3")
  end
  if cfg.ssl then
    local s = cfg.ssl
    key = key .. string.format("+ssl(%s|%s|%s|%s|%s)", tostring(s.verify),
      s.server_name or "", s.ca or "", s.cert or "", s.key or "")
  end
  if cfg.auth then
    key = key .. "+auth(" .. cfg.auth.user .. ":"
      .. fnv1a(cfg.auth.user .. "\0" .. cfg.auth.pass) .. ")"
  end
  -- Last, with its length: no name can make one key look like another.
  if cfg.name then key = key .. "+name" .. #cfg.name .. ":" .. cfg.name end
  return key
end

return M
