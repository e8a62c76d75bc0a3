-- Redis Cluster: one client for the whole cluster. Keys are routed to the
-- master that owns their slot; keys that share a hash tag ({user:1}) share
-- a slot, so multi-key commands on them work.
--   REDIS_CLUSTER=127.0.0.1:7000,127.0.0.1:7001 \
--   REDIS_USER=alice REDIS_PASS=s3cret lua5.4 examples/cluster.lua
local lev = require("lev")
local redis = require("redis")

local seeds = {}
for addr in (os.getenv("REDIS_CLUSTER") or "127.0.0.1:7000"):gmatch("[^,]+") do
  seeds[#seeds + 1] = addr
end
local auth
if os.getenv("REDIS_USER") then
  auth = { user = os.getenv("REDIS_USER"), pass = os.getenv("REDIS_PASS") }
end

lev.run(function()
  local cl = assert(redis.cluster{ nodes = seeds, auth = auth, timeout = 5 })
  for _, n in ipairs(cl:nodes()) do
    if n.role == "master" then
      print(string.format("master %s:%d owns %d slot range(s)", n.host,
        n.port, #n.slots))
    end
  end

  -- single keys go wherever their slot lives
  for i = 1, 100 do assert(cl:cmd("SET", "example:" .. i, i)) end
  print("example:42 ->", cl:get("example:42"))

  -- one hash tag, one slot: MSET/MGET and scripts over several keys
  assert(cl:cmd("MSET", "{user:1}.name", "ann", "{user:1}.mail", "a@x"))
  print("user:1 ->", table.concat(cl:cmd("MGET", "{user:1}.name",
    "{user:1}.mail"), ", "))
  print("script ->", cl:cmd("EVAL", "return redis.call('GET', KEYS[1])", 1,
    "{user:1}.name"))

  -- keys in different slots cannot meet in one command: refused locally
  print("cross-slot ->", cl:cmd("MGET", "example:1", "example:2"))

  -- a pipeline is split per node and comes back in command order
  local cmds = {}
  for i = 1, 100 do cmds[i] = { "GET", "example:" .. i } end
  local res = assert(cl:pipeline(cmds))
  assert(res[42][1] == "42")
  print(#res .. " pipelined replies, in order")

  -- node-level commands go through plain clients, one per master
  local keys = 0
  for _, c in ipairs(assert(cl:masters())) do
    keys = keys + c:cmd("DBSIZE")
    c:close()
  end
  print("keys in the cluster:", keys)
  cl:close()
end)
