-- Sentinel: a client whose master is found through Redis Sentinel, and
-- that follows a failover. It writes for a few seconds, printing the
-- client's events; with --failover it asks the sentinels to fail over
-- first, so the events show the move to the new master.
--
-- Run it (SENTINELS names the sentinels, default 127.0.0.1:26379;
-- SENTINEL_PASS their password if they have one; MASTER the master's name,
-- default mymaster). `tools/redis-sentinel.sh start /tmp/sent` starts a
-- throw-away set (one master, two replicas, three sentinels with the
-- password "sentpass") and prints its ports, the sentinels last:
--   in the checkout, after `make build`:
--     SENTINELS=127.0.0.1:PORT4,127.0.0.1:PORT5 SENTINEL_PASS=sentpass \
--       lua5.4 tools/run-lua.lua examples/sentinel.lua --failover
--   with the rock in a tree (`make rock` puts it in ./.rocks), from any
--   directory:
--     eval "$(/path/to/lev-redis/tools/env.sh /path/to/lev-redis/.rocks)"
--     SENTINELS=... lua5.4 /path/to/lev-redis/examples/sentinel.lua
local lev = require("lev")
local redis = require("redis")

local sentinels = {}
for a in (os.getenv("SENTINELS") or "127.0.0.1:26379"):gmatch("[^,%s]+") do
  sentinels[#sentinels + 1] = a
end
local pass = os.getenv("SENTINEL_PASS")
local master = os.getenv("MASTER") or "mymaster"
local failover = arg and arg[1] == "--failover"

local function stamp() return string.format("%7.3f", lev.now() % 1000) end

lev.run(function()
  local c = assert(redis.sentinel({
    sentinels = sentinels, master = master,
    sentinel_auth = pass and { user = "default", pass = pass } or nil,
    -- Data nodes of tools/redis-sentinel.sh let the default user in
    -- without a password; give auth = { user = ..., pass = ... } for yours.
    reconnect = { base = 0.05, max = 1, wait = 2 },
  }))
  print(stamp(), "connected to", c.cfg.host .. ":" .. c.cfg.port,
        "(ROLE " .. c:cmd("ROLE")[1] .. ")")
  c:on("disconnect", function(text, category)
    print(stamp(), "disconnect:", text, "(" .. category .. ")")
  end)
  c:on("reconnect", function()
    print(stamp(), "reconnect: now on", c.cfg.host .. ":" .. c.cfg.port)
  end)
  if failover then
    local s = assert(redis.connect{ host = c.cfg.sentinel.sentinels[1].host,
      port = c.cfg.sentinel.sentinels[1].port,
      auth = pass and { user = "default", pass = pass } or nil })
    print(stamp(), "SENTINEL FAILOVER:", s:cmd("SENTINEL", "FAILOVER",
                                                master))
    s:close()
  end
  -- Writes go on; the ones in flight when the client leaves a node fail
  -- (never sent twice), later ones reach the new master.
  local ok, failed, until_ = 0, 0, lev.now() + (failover and 8 or 2)
  local start = c.cfg.port
  while lev.now() < until_ do
    local v, err = c:incr("example:sentinel:n")
    if v then ok = ok + 1 else
      failed = failed + 1
      print(stamp(), "write failed:", err)
      lev.sleep(0.1)
    end
    lev.sleep(0.005)
    if failover and c.cfg.port ~= start and lev.now() < until_ - 1 then
      until_ = lev.now() + 1 -- a second more on the new master, then stop
    end
  end
  print(stamp(), string.format("%d writes acknowledged, %d failed; master "
    .. "now %s:%d", ok, failed, c.cfg.host, c.cfg.port))
  c:del("example:sentinel:n")
  c:close()
end)
