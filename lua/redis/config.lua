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
}

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
      local ok = rule.check(v)
      if ok == nil then return fail(rule.msg) end
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

-- host:port/db, +ssl and its identity, +the AUTH identity.
function M.pool_key(cfg)
  local key = string.format("%s:%d/%d", cfg.host, cfg.port, cfg.db)
  if cfg.ssl then
    local s = cfg.ssl
    key = key .. string.format("+ssl(%s|%s|%s|%s|%s)", tostring(s.verify),
      s.server_name or "", s.ca or "", s.cert or "", s.key or "")
  end
  if cfg.auth then
    key = key .. "+auth(" .. cfg.auth.user .. ":"
      .. fnv1a(cfg.auth.user .. "\0" .. cfg.auth.pass) .. ")"
  end
  return key
end

return M
