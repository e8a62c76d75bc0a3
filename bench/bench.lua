-- Benchmark client for lev-redis: the same workloads as the hiredis peers
-- (hiredis_sync.c, hiredis_async.c), written as a user of the documented
-- API would write them.
--
--   lua5.4 bench/bench.lua probe
--       exits 0 when require("lev") and require("redis") both load,
--       else prints why and exits 1 (run.sh then skips our client)
--   lua5.4 bench/bench.lua HOST PORT WORK OPS [DEPTH] [--tls CAFILE]
--       WORK is w1 (SET then GET), w2 (pipelines of DEPTH GETs),
--       w3 (DEPTH tasks sharing one client), w4 (GET of 100 KB)
--
-- Prints one line "LABEL ops=N secs=S cpu=C" like the peers. OPS counts
-- commands. A warm-up of fixed size runs first so that, under callgrind,
-- the difference of two runs of different OPS cancels start-up exactly.
-- Every reply is compared with the value it must be; a mismatch aborts.
--
-- Paths: run.sh sets LUA_PATH_5_4 / LUA_CPATH_5_4 to the tree's lua/ and
-- the build directory, so no installed copy can be picked up by mistake.

local args = { ... }

local function die(msg)
  io.stderr:write("bench.lua: ", tostring(msg), "\n")
  os.exit(1)
end

if args[1] == "probe" then
  local ok, err = pcall(require, "lev")
  if ok then ok, err = pcall(require, "redis") end
  if not ok then
    io.stdout:write((tostring(err):gsub("\n.*", "")), "\n")
    os.exit(1)
  end
  os.exit(0)
end

local lev = require("lev")
local redis = require("redis")

-- The data set, byte for byte as bench/common.h defines it and
-- `hiredis_sync load` writes it.
local NKEYS, BIG_LEN = 16, 102400
local keys, vals = {}, {}
for i = 0, NKEYS - 1 do
  keys[i + 1] = "bench:k" .. i
  vals[i + 1] = string.format("value-%02d-xxxxxxx", i)
end
local big
do
  local period = {}
  for j = 0, 250 do period[j + 1] = string.char(33 + j % 94) end
  period = table.concat(period)
  big = string.rep(period, BIG_LEN // 251 + 1):sub(1, BIG_LEN)
end

local function check(got, want, err, what)
  if got ~= want then
    if got == nil then
      error(what .. ": " .. tostring(err), 0)
    end
    error(string.format("%s: wrong reply (%s, %d bytes)", what, type(got),
      type(got) == "string" and #got or -1), 0)
  end
end

-- W1: the value cycles through the 16 known strings, so each GET has to
-- return what this very SET wrote.
local function w1(c, ops)
  local key = "bench:w1:lev"
  local iters = ops // 2
  for i = 0, iters - 1 do
    local v = vals[(i & 15) + 1]
    local r, err = c:cmd("SET", key, v)
    check(r, "OK", err, "SET")
    r, err = c:cmd("GET", key)
    check(r, v, err, "GET")
  end
  return iters * 2
end

-- W2: the command list is built once and reused, as a program issuing
-- the same batch repeatedly would; the client still encodes it each time.
local function w2(c, ops, depth)
  local cmds, want = {}, {}
  for j = 1, depth do
    local k = ((j - 1) & 15) + 1
    cmds[j] = { "GET", keys[k] }
    want[j] = vals[k]
  end
  local batches = ops // depth
  for _ = 1, batches do
    local res, err = c:pipeline(cmds)
    if not res then error("pipeline: " .. tostring(err), 0) end
    for j = 1, depth do
      local r = res[j]
      check(r[1], want[j], r[2], "GET")
    end
  end
  return batches * depth
end

-- W3: DEPTH tasks share the one client and each loops on cmd("GET"); the
-- client pipelines their commands on its connection, so DEPTH requests
-- are in flight until the shared budget runs out.
local function w3(c, ops, depth)
  local left = ops
  local function worker(slot)
    local k = ((slot - 1) & 15) + 1
    local key, v = keys[k], vals[k]
    while left > 0 do
      left = left - 1
      local r, err = c:cmd("GET", key)
      check(r, v, err, "GET")
    end
  end
  local tasks = {}
  for i = 1, depth do
    tasks[i] = lev.spawn(function() worker(i) end)
  end
  for i = 1, depth do
    local ok, err = tasks[i]:join()
    if not ok then error(err, 0) end
  end
  return ops
end

local function w4(c, ops)
  for _ = 1, ops do
    local r, err = c:cmd("GET", "bench:big")
    check(r, big, err, "GET big")
  end
  return ops
end

local host, port, work = args[1], tonumber(args[2]), args[3]
local ops, depth = tonumber(args[4]), 1
local ca
local i = 5
while args[i] do
  if args[i] == "--tls" then
    ca = args[i + 1]
    i = i + 2
  else
    depth = tonumber(args[i])
    i = i + 1
  end
end
if not (host and port and ops and ops > 0 and depth and depth > 0) then
  die("usage: bench.lua HOST PORT w1|w2|w3|w4 OPS [DEPTH] [--tls CAFILE]")
end
ops = math.tointeger(ops) or die("OPS must be an integer")
depth = math.tointeger(depth) or die("DEPTH must be an integer")

local run, warm, label
if work == "w1" then
  run, warm, label = w1, 200, ca and "W5" or "W1"
elseif work == "w2" then
  run, warm, label = w2, 5 * depth, "W2/" .. depth
elseif work == "w3" then
  run, warm, label = w3, math.max(200, 10 * depth), "W3/" .. depth
elseif work == "w4" then
  run, warm, label = w4, 20, "W4"
else
  die("unknown workload " .. tostring(work))
end

local ok, err = pcall(lev.run, function()
  local cfg = { host = host, port = port }
  if ca then cfg.ssl = { ca = ca } end
  local c, cerr = redis.connect(cfg)
  if not c then error("connect: " .. tostring(cerr), 0) end
  run(c, warm, depth)
  -- os.clock() is clock(3): this process's user + system CPU time, the
  -- same quantity the peers read with getrusage.
  local t0, c0 = lev.now(), os.clock()
  local done = run(c, ops, depth)
  local t1, c1 = lev.now(), os.clock()
  -- A clock that does not advance would turn into an infinite rate.
  if not (t1 > t0) then error("lev.now() did not advance over the run", 0) end
  io.stdout:write(string.format("%s ops=%d secs=%.6f cpu=%.6f\n",
    label, done, t1 - t0, c1 - c0))
  c:close()
end)
if not ok then die(err) end
