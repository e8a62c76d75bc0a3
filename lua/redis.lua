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
local handshake = require("redis.handshake")
local reconnect = require("redis.reconnect")

local redis = {
  VERSION = core.version,
  -- NULL inside arrays (compare with ==), like cjson.null and ngx.null.
  null = core.null,
}

-- Idle connections younger than this are reused without a PING.
local FRESH_SECONDS = 5

-- Takes a usable idle connection of this key from the pool, or nil.
local function take(key, cfg)
  while true do
    local c, idle = core.take(key)
    if not c then return nil end
    core.ready(c, key, cfg) -- applies this caller's timeout to the check
    if idle < FRESH_SECONDS or c:cmd("PING") == "PONG" then return c end
    c:close(true)
  end
end

-- The client for cfg: from the pool, or a new connection; protocol says
-- which protocol it speaks.
local function open(cfg)
  local key = config.pool_key(cfg)
  local c = take(key, cfg)
  if c then return c, cfg.protocol end
  if cfg.protocol == 3 then
    -- A protocol 3 connection that fell back to RESP2 (see below).
    c = take(config.pool_key(cfg, true), cfg)
    if c then return c, 2 end
  end
  local proto, cat
  c, proto, cat = handshake.open(cfg)
  if not c then return nil, proto, cat end
  -- A connection that fell back to RESP2 is pooled apart, so that whoever
  -- takes it knows which protocol it speaks.
  core.ready(c, proto == cfg.protocol and key
                or config.pool_key(cfg, true), cfg)
  return c, proto
end

function redis.connect(conf)
  local cfg, err = config.normalize(conf)
  if not cfg then return nil, err, "config" end
  local c, proto, cat = open(cfg)
  if not c then return nil, proto, cat end
  c.protocol = proto
  if cfg.reconnect then reconnect.manage(c, cfg) end
  return c
end

-- redis.subscriber(config) -> subscriber | nil, err (lua/redis/subscriber.lua)
function redis.subscriber(conf)
  return require("redis.subscriber").new(conf)
end

-- A client whose server is found through Redis Sentinel (redis.sentinel).
function redis.sentinel(conf)
  return require("redis.sentinel").connect(redis, conf)
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
