-- W7: W3/128 (DEPTH tasks sharing one client, each looping on GET of one
-- of 16 keys) through redis.cluster, or the same through a plain client to
-- one server, for bench/w7.sh.
--
--   lua5.4 bench/w7.lua plain|cluster HOST:PORT OPS [DEPTH]
--
-- Prints "W7-<mode> ops=N secs=S cpu=C". A fixed warm-up runs first so the
-- difference of two callgrind runs of different OPS is the cost of OPS
-- operations alone. The nodes have the user alice (s3cret).
local lev = require("lev")
local redis = require("redis")

local mode, addr, ops, depth = arg[1], arg[2], tonumber(arg[3]),
  tonumber(arg[4] or 128)
assert(mode == "plain" or mode == "cluster", "mode must be plain or cluster")
ops, depth = math.tointeger(ops), math.tointeger(depth)
assert(addr and ops and depth, "usage: w7.lua plain|cluster HOST:PORT OPS [DEPTH]")
local host, port = addr:match("^(.+):(%d+)$")
local auth = { user = "alice", pass = "s3cret" }

local keys, vals = {}, {}
for i = 0, 15 do
  keys[i + 1] = "bench:k" .. i
  vals[i + 1] = string.format("value-%02d-xxxxxxx", i)
end

local function w3(c, n)
  local left = n
  local function worker(slot)
    local k = ((slot - 1) & 15) + 1
    local key, v = keys[k], vals[k]
    while left > 0 do
      left = left - 1
      local r, err = c:cmd("GET", key)
      if r ~= v then error("GET " .. key .. ": " .. tostring(r or err), 0) end
    end
  end
  local tasks = {}
  for i = 1, depth do tasks[i] = lev.spawn(worker, i) end
  for i = 1, depth do
    local ok, err = tasks[i]:join()
    if not ok then error(err, 0) end
  end
end

local ok, err = pcall(lev.run, function()
  local c, cerr
  if mode == "cluster" then
    c, cerr = redis.cluster{ nodes = { addr }, auth = auth }
  else
    c, cerr = redis.connect{ host = host, port = tonumber(port), auth = auth }
  end
  if not c then error("connect: " .. tostring(cerr), 0) end
  for i = 1, 16 do assert(c:cmd("SET", keys[i], vals[i])) end
  w3(c, math.max(200, 10 * depth))
  local t0, c0 = lev.now(), os.clock()
  w3(c, ops)
  local t1, c1 = lev.now(), os.clock()
  io.stdout:write(string.format("W7-%s ops=%d secs=%.6f cpu=%.6f\n", mode,
    ops, t1 - t0, c1 - c0))
  c:close()
end)
if not ok then
  io.stderr:write("w7.lua: ", tostring(err), "\n")
  os.exit(1)
end
