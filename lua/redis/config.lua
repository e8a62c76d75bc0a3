-- redis.config: validates and normalizes redis.connect's config.
--
-- One place, one table of rules (docs/CONVENTIONS.md, "Config"). A config
-- that breaks a rule is not an exception: normalize returns
-- nil, "invalid config: <field> ...".

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
  -- A NUL or other control byte is never part of a host name, and a NUL
  -- would cut the name short in C.
  { field = "host",
    msg = "host must not contain control characters",
    check = function(v) if not v:find("%c") then return v end end },
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
  -- Contract section 17: client-side caching (needs protocol = 3, checked
  -- in normalize once protocol is known).
  { field = "cache", default = false,
    msg = "cache must be true, false or a table",
    check = function(v) return M.check_cache(v) end },
}

-- cache = true is this table; a table may set any of its fields. Returns
-- the full table, or false, or nil and the rule it breaks.
function M.check_cache(v)
  if v == false then return false end
  if v == true then v = {} end
  if type(v) ~= "table" then
    return nil, "cache must be true, false or a table"
  end
  local out = { max_entries = 10000, max_bytes = 64 * 1024 * 1024,
                ttl = 60.0 }
  for _, f in ipairs({ "max_entries", "max_bytes" }) do
    if v[f] ~= nil then
      local n = integral(v[f])
      if not n or n < 1 then
        return nil, "cache." .. f .. " must be an integer >= 1"
      end
      out[f] = n
    end
  end
  if v.ttl ~= nil then
    local t = v.ttl
    if type(t) ~= "number" or not (t > 0) or t >= 1e9 then
      return nil, "cache.ttl must be a number > 0 (seconds)"
    end
    out.ttl = t + 0.0
  end
  return out
end

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
      if s:find("@", 1, true) then   -- may hold a password: not quoted
        return nil, 'expected "host:port", "host:port/db" or a '
          .. 'redis:// URL'
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

-- URL strings (contract 11) -------------------------------------------------
-- redis://[[user]:pass@]host[:port][/db][?param=value&...], rediss:// for
-- TLS. parse_url only takes the URL apart into a config table; the rules
-- above judge the values, so a URL and a table give the same errors. No
-- error text ever quotes the user info: a malformed URL may have put part
-- of the password anywhere, so only the scheme and parameter names (after
-- the check that no "@" follows the host) are quoted.

local URL_PARAMS = { protocol = true, name = true, timeout = true,
                     connect_timeout = true }
local URL_PARAM_LIST = "protocol, name, timeout, connect_timeout"

local function url_fail(msg)
  return nil, "URL " .. msg
end

-- %XX decoding; nil when a "%" is not followed by two hex digits.
local function percent_decode(s)
  if s:find("%%") and (s:find("%%[^%x]") or s:find("%%%x[^%x]")
                       or s:find("%%%x?$")) then
    return nil
  end
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

-- Decimal text becomes a number (protocol=3 -> 3, timeout=0.5 -> 0.5);
-- anything else stays a string for the rules to reject with their text.
local function url_number(v)
  if v:match("^%d+$") then return math.tointeger(tonumber(v)) or v end
  if v:match("^%d*%.%d+$") or v:match("^%d+%.%d*$") then
    return tonumber(v)
  end
  return v
end

local function parse_query(q, t)
  for part in (q .. "&"):gmatch("([^&]*)&") do
    if part ~= "" then
      local k, v = part:match("^([^=]*)=(.*)$")
      if not k then
        return url_fail('parameter "' .. part .. '" has no value (use '
          .. part .. "=value)")
      end
      local key, val = percent_decode(k), percent_decode(v)
      if not key then
        return url_fail("has a parameter name that is not validly "
          .. "percent-encoded")
      end
      if not URL_PARAMS[key] then
        return url_fail('parameter "' .. key .. '" is not supported (use '
          .. URL_PARAM_LIST .. ")")
      end
      if not val then
        return url_fail("parameter " .. key .. " is not validly "
          .. "percent-encoded")
      end
      if t[key] ~= nil then
        return url_fail("parameter " .. key .. " is given twice")
      end
      if key == "name" then
        t.name = val
      else
        t[key] = url_number(val)
        if key ~= "protocol" and math.type(t[key]) == "integer" then
          t[key] = t[key] + 0.0        -- seconds: timeout=2 -> 2.0
        end
      end
    end
  end
  return t
end

-- "user:pass" (the user may be empty: AUTH pass means user default).
local function parse_userinfo(info, t)
  local user, pass = info:match("^([^:]*):(.*)$")
  if not user then
    return url_fail("has a user but no password (use "
      .. "redis://user:password@host, or redis://:password@host for the "
      .. "default user)")
  end
  user, pass = percent_decode(user), percent_decode(pass)
  if not user then return url_fail("user is not validly percent-encoded") end
  if not pass then
    return url_fail("password is not validly percent-encoded")
  end
  if pass == "" then return url_fail("password is empty") end
  if user == "" then user = "default" end
  t.auth = { user = user, pass = pass }
  return t
end

function M.parse_url(s)
  local scheme, rest = s:match("^([%a][%w+.-]*)://(.*)$")
  if not scheme then return url_fail('must start with "redis://" or "rediss://"') end
  scheme = scheme:lower()
  if scheme ~= "redis" and scheme ~= "rediss" then
    return nil, 'unsupported scheme "' .. scheme
      .. '" (use redis:// or rediss://)'
  end
  local t = { ssl = scheme == "rediss" }
  -- The authority ends at the first "/", "?" or "#" (RFC 3986); the user
  -- info is what comes before its last "@".
  local authority, tail = rest:match("^([^/?#]*)(.*)$")
  if tail:find("@", 1, true) then
    return url_fail('has an "@" after the host: percent-encode "/", "?", '
      .. '"#" and "@" in the user and password (%2F, %3F, %23, %40)')
  end
  if tail:find("#", 1, true) then
    return url_fail('must not have a "#" fragment (write "#" in a password '
      .. "as %23)")
  end
  local info, hostport = authority:match("^(.*)@([^@]*)$")
  if info then
    local ok, err = parse_userinfo(info, t)
    if not ok then return nil, err end
  else
    hostport = authority
  end
  local host, port
  if hostport:sub(1, 1) == "[" then
    host, port = hostport:match("^%[([^%]]*)%](.*)$")
    if not host then return url_fail('host has a "[" without its "]"') end
  else
    host, port = hostport:match("^([^:]*)(.*)$")
  end
  if host == "" then
    return url_fail("has no host (redis://host[:port][/db]; an IPv6 address "
      .. "goes in brackets: redis://[::1]:6379)")
  end
  t.host = host
  if port ~= "" then
    local digits = port:match("^:(%d+)$")
    local n = digits and math.tointeger(tonumber(digits))
    if not n then return url_fail("port must be an integer in 1..65535") end
    t.port = n                          -- the port rule checks the range
  end
  local path, query = tail:match("^([^?]*)%??(.*)$")
  if path ~= "" and path ~= "/" then
    local db = path:match("^/(%d+)$")
    t.db = db and math.tointeger(tonumber(db))
    if not t.db then
      return url_fail("path must be /db, a database number (redis://host/2)")
    end
  end
  return parse_query(query, t)
end

-- A string with a scheme goes to parse_url; "host:port[/db]" does not.
local function is_url(s)
  return s:match("^[%a][%w+.-]*:/") ~= nil
end

function M.normalize(config)
  if config == nil then config = "127.0.0.1:6379" end
  local src = config
  if type(config) == "string" then
    local parse = is_url(config) and M.parse_url or parse_string
    local t, err = parse(config)
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
  if cfg.cache and cfg.protocol ~= 3 then
    return fail("cache needs protocol = 3")
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
  -- A cache lives with its connection: only the same settings share it.
  if cfg.cache then
    key = key .. string.format("+cache(%d,%d,%.17g)", cfg.cache.max_entries,
      cfg.cache.max_bytes, cfg.cache.ttl)
  end
  -- Last, with its length: no name can make one key look like another.
  if cfg.name then key = key .. "+name" .. #cfg.name .. ":" .. cfg.name end
  return key
end

return M
