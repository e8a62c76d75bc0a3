-- redis: the lev-redis client.
--
--   local c = assert(redis.connect("127.0.0.1:6379"))
--   c:cmd("SET", "k", "v"); c:get("k"); c:pipeline{...}; c:read(); c:close()
--
-- Validation and the connect handshake live here; cmd, pipeline, read,
-- close and the method sugar are C (redis.core), so the hot path does not
-- pass through Lua.

local core = require("redis.core")
local config = require("redis.config")

local redis = {
  VERSION = core.version,
  -- NULL inside arrays (compare with ==), like cjson.null and ngx.null.
  null = core.null,
}

-- Idle connections younger than this are reused without a PING.
local FRESH_SECONDS = 5

local function handshake(c, cfg)
  if cfg.auth then
    local ok, err, cat = c:cmd("AUTH", cfg.auth.user, cfg.auth.pass)
    if not ok then return nil, err, cat end
  end
  if cfg.db ~= 0 then
    local ok, err, cat = c:cmd("SELECT", cfg.db)
    if not ok then return nil, err, cat end
  end
  if cfg.ssl and not cfg.auth and cfg.db == 0 then
    -- TLS 1.3 servers reject a missing client certificate only after the
    -- client's side of the handshake is done: one round trip makes such a
    -- failure a failed connect rather than a failed first command.
    local ok, err, cat = c:cmd("PING")
    if not ok and cat ~= "redis" then return nil, err, cat end
  end
  return true
end

function redis.connect(conf)
  local cfg, err = config.normalize(conf)
  if not cfg then return nil, err, "config" end
  local key = config.pool_key(cfg)
  while true do
    local c, idle = core.take(key)
    if not c then break end
    if idle < FRESH_SECONDS then
      core.ready(c, key, cfg)
      return c
    end
    core.ready(c, key, cfg) -- applies this caller's timeout to the check
    if c:cmd("PING") == "PONG" then return c end
    c:close(true)
  end
  local c, cerr, cat = core.connect(cfg.host, cfg.port, cfg.timeout,
                                    cfg.ssl or nil)
  if not c then return nil, cerr, cat end
  local ok, herr, hcat = handshake(c, cfg)
  if not ok then
    c:close(true)
    return nil, herr, hcat
  end
  core.ready(c, key, cfg)
  return c
end

-- A Redis Cluster client (section 15; lua/redis/cluster.lua).
function redis.cluster(conf)
  return require("redis.cluster").new(conf)
end

-- Idle pooled connections for a config (for tests and diagnostics).
function redis.pool_size(conf)
  local cfg, err = config.normalize(conf)
  if not cfg then return nil, err end
  return core.pool_count(config.pool_key(cfg))
end

-- scan iterators, transaction, redis.script, redis.map (redis.helpers)
require("redis.helpers").install(redis, core.methods)

return redis
