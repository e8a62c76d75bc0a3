-- redis.handshake: the one way a connection becomes ready.
--
-- redis.connect, reconnect, and later cluster nodes and sentinel all open
-- connections through open(cfg): DNS, TCP, TLS and run(conn, cfg), all of
-- it bounded by cfg.connect_timeout (and cfg.timeout, the smaller wins).
--
-- run() sends, in as few round trips as it can:
--   protocol 3: HELLO 3 [AUTH user pass] [SETNAME name], then SELECT db;
--               a server without HELLO (Redis < 6, or the command renamed
--               away) gets the RESP2 sequence instead;
--   protocol 2: AUTH user pass, CLIENT SETNAME name, SELECT db, pipelined.
-- A rejected password is never a reason to fall back: it fails the
-- handshake with the server's text (which never holds the password).

local lev = require("lev")
local core = require("redis.core")

local M = {}

-- What a server answers HELLO with when it does not know the command:
-- Redis 7 "ERR unknown command 'HELLO', with args beginning with: ...",
-- Redis 5 "ERR unknown command `HELLO`, with args beginning with: ...",
-- older ones "ERR unknown command 'HELLO'". NOPROTO: it knows HELLO but
-- not version 3.
local function no_hello(err)
  return err:find("^ERR unknown command") ~= nil
      or err:find("^NOPROTO") ~= nil
end

-- Sends the commands (argument arrays) in one round trip; true, or the
-- first failure as nil, text, category.
local function send_all(conn, cmds)
  if #cmds == 1 then
    local ok, err, cat = conn:cmd(table.unpack(cmds[1]))
    if ok == nil then return nil, err, cat or "redis" end
    return true
  end
  local res, err, cat = conn:pipeline(cmds)
  if not res then return nil, err, cat end
  for _, r in ipairs(res) do
    if r[2] ~= nil then return nil, r[2], "redis" end
  end
  return true
end

-- run(conn, cfg[, db[, verify]]) -> protocol in use | nil, text, category
-- conn is a fresh connection (a client from core.connect); db, when
-- given, is selected instead of cfg.db (reconnect restores the database
-- the program last selected). verify: make sure of one round trip (a
-- PING when nothing else was sent), so that a server that accepts and
-- closes at once fails the handshake instead of passing it.
function M.run(conn, cfg, db, verify)
  db = db or cfg.db
  local proto, cmds = 2, {}
  if cfg.protocol == 3 then
    local hello = { "HELLO", 3 }
    if cfg.auth then
      hello[#hello + 1] = "AUTH"
      hello[#hello + 1] = cfg.auth.user
      hello[#hello + 1] = cfg.auth.pass
    end
    if cfg.name then
      hello[#hello + 1] = "SETNAME"
      hello[#hello + 1] = cfg.name
    end
    local ok, err, cat = conn:cmd(table.unpack(hello))
    if ok ~= nil then
      proto = 3
    elseif cat ~= "redis" or not no_hello(err) then
      return nil, err, cat
    elseif cfg.cache then
      -- Caching without tracking would serve stale values (contract 17).
      return nil, "cache needs RESP3: " .. err, "redis"
    end
  end
  if cfg.cache then
    cmds[#cmds + 1] = { "CLIENT", "TRACKING", "on" }
  end
  if proto == 2 then
    if cfg.auth then
      cmds[#cmds + 1] = { "AUTH", cfg.auth.user, cfg.auth.pass }
    end
    if cfg.name then
      cmds[#cmds + 1] = { "CLIENT", "SETNAME", cfg.name }
    end
  end
  if db ~= 0 then cmds[#cmds + 1] = { "SELECT", db } end
  if #cmds > 0 then
    local ok, err, cat = send_all(conn, cmds)
    if not ok then return nil, err, cat end
    if cfg.cache then
      local c = cfg.cache
      ok, err, cat = core.cache_enable(conn, c.max_entries, c.max_bytes,
                                       c.ttl, db)
      if not ok then return nil, err, cat end
    end
  elseif (cfg.ssl or verify) and cfg.protocol == 2 then
    -- TLS 1.3 servers reject a missing client certificate only after the
    -- client's side of the handshake is done: one round trip makes such a
    -- failure a failed connect rather than a failed first command. An
    -- error reply (NOAUTH: the server wants a password) is the program's
    -- business, not the handshake's.
    local ok, err, cat = conn:cmd("PING")
    if not ok and cat ~= "redis" then return nil, err, cat end
  end
  return proto
end

-- The bound of a whole connect: connect_timeout, or timeout if smaller.
function M.limit(cfg)
  local limit = cfg.connect_timeout or 10
  if cfg.timeout and cfg.timeout < limit then limit = cfg.timeout end
  return limit
end

-- open(cfg[, db[, verify]]) -> conn, protocol | nil, text, category
-- A new connection to cfg.host:cfg.port, handshake done. On failure
-- nothing is left open.
function M.open(cfg, db, verify)
  local limit = M.limit(cfg)
  local conn
  local function attempt()
    local c, err, cat = core.connect(cfg.host, cfg.port, limit,
                                     cfg.ssl or nil)
    if not c then return nil, err, cat end
    conn = c
    return M.run(c, cfg, db, verify)
  end
  -- lev.timeout bounds the whole sequence; the same limit given to the
  -- connection bounds each step in C as well.
  local proto, err, cat = lev.timeout(limit, attempt)
  if not proto then
    if conn then conn:close(true) end
    if err == "timeout" then cat = "timeout" end
    return nil, err, cat
  end
  return conn, proto
end

return M
