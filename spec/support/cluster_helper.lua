-- cluster_helper: what the cluster specs share. make test starts a real
-- Redis Cluster with tools/redis-cluster.sh (three masters, three
-- replicas, the ACL user alice) and names it through LEVR_CLUSTER_DIR and
-- LEVR_CLUSTER_PORTS; without them the specs fail loudly.
local redis = require("redis")

local M = {}

local function need(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error("cluster specs: " .. name .. " is not set; start a cluster with "
      .. "tools/redis-cluster.sh start DIR and pass LEVR_CLUSTER_DIR=DIR "
      .. "LEVR_CLUSTER_PORTS=\"$(cat DIR/ports)\"", 0)
  end
  return v
end

M.DIR = need("LEVR_CLUSTER_DIR")
M.PORTS = {}
for p in need("LEVR_CLUSTER_PORTS"):gmatch("%d+") do
  M.PORTS[#M.PORTS + 1] = math.tointeger(tonumber(p))
end
assert(#M.PORTS == 6, "LEVR_CLUSTER_PORTS must name six ports")
M.AUTH = { user = "alice", pass = "s3cret" }
M.SEEDS = { "127.0.0.1:" .. M.PORTS[1], "127.0.0.1:" .. M.PORTS[2] }

-- A plain connection to one node, as alice.
function M.admin(port)
  local c, err = redis.connect{ host = "127.0.0.1", port = port,
    auth = M.AUTH, timeout = 5 }
  assert(c, err)
  return c
end

-- One-off command to one node.
function M.on(port, ...)
  local c = M.admin(port)
  local r, err = c:cmd(...)
  c:close(true)
  return r, err
end

return M
