-- Benchmark client for lev-redis: the same workloads as the hiredis peers
-- (hiredis_sync.c, hiredis_async.c), written as a user of the documented
-- API would write them.
--
--   lua5.4 bench/bench.lua probe
--       exits 0 when require("lev") and require("redis") both load,
--       else prints why and exits 1 (run.sh then skips our client)
--   lua5.4 bench/bench.lua HOST PORT WORK OPS [DEPTH] [--tls CAFILE]
--       WORK is w1 (SET then GET), w2 (pipelines of DEPTH GETs),
--       w3 (DEPTH tasks sharing one client), w4 (GET of 100 KB),
--       lat (w3, and each GET's latency into a histogram)
--   lua5.4 bench/bench.lua HOST PORT mem-idle N
--       RSS growth for N idle pooled connections
--       (run.sh sets REDIS_CLIENT_POOL_SIZE above N)
--   lua5.4 bench/bench.lua HOST PORT mem-park N
--       RSS growth for N tasks parked on one client, a BLPOP each in flight
--   lua5.4 bench/bench.lua HOST PORT mem-pipe N
--       the same N BLPOPs in flight as one pipeline of one task
--
-- Prints one line "LABEL ops=N secs=S cpu=C" like the peers (lat adds
-- " hist=I:C,..." and mem-* print "MEM ..."; see lat_bucket). OPS counts
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

-- Latency histogram, HDR-style: 64 sub-buckets per power of two of the
-- latency in ns (exact below 64 ns), so a bucket is at most 1/64 (1.6%)
-- wide. hiredis_async.c has the same function; report.lua turns the
-- counts into percentiles.
local floor, log = math.floor, math.log
local function lat_bucket(ns)
  if ns < 64 then return ns end
  local m = floor(log(ns, 2))
  local top = ns >> m
  if top == 0 then m = m - 1 elseif top > 1 then m = m + 1 end
  return (m - 5) * 64 + ((ns >> (m - 6)) - 64)
end

-- W3 with each GET timed from the call to its return, as the calling
-- task sees it (queueing in the client and the scheduler included).
local hist
local function lat(c, ops, depth)
  local left = ops
  local now = lev.now
  local h = {}
  local function worker(slot)
    local k = ((slot - 1) & 15) + 1
    local key, v = keys[k], vals[k]
    while left > 0 do
      left = left - 1
      local t0 = now()
      local r, err = c:cmd("GET", key)
      local b = lat_bucket(floor((now() - t0) * 1e9))
      h[b] = (h[b] or 0) + 1
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
  hist = h
  return ops
end

local function w4(c, ops)
  for _ = 1, ops do
    local r, err = c:cmd("GET", "bench:big")
    check(r, big, err, "GET big")
  end
  return ops
end

-- Resident set size of this process, in bytes, from /proc/self/status.
local function rss()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+) kB")) * 1024
end

-- The state both memory runs start from: one client connected and used,
-- everything loaded, garbage collected.
local function mem_base(host, port)
  local c, err = redis.connect({ host = host, port = port })
  if not c then error("connect: " .. tostring(err), 0) end
  check(c:cmd("PING"), "PONG", nil, "PING")
  for _ = 1, 3 do collectgarbage("collect") end
  return c, rss(), collectgarbage("count") * 1024
end

-- N idle pooled connections: N clients connect and PING (held open at
-- once, so none is reused), then close() hands each to the pool.
local function mem_idle(host, port, n)
  local c, rss0, lua0 = mem_base(host, port)
  local cfg = { host = host, port = port }
  local cs = {}
  for i = 1, n do
    local ci, err = redis.connect(cfg)
    if not ci then error("connect " .. i .. ": " .. tostring(err), 0) end
    check(ci:cmd("PING"), "PONG", nil, "PING")
    cs[i] = ci
  end
  for i = 1, n do cs[i]:close() end
  cs = nil
  -- c still holds its connection: the pool has exactly the N.
  local pooled = redis.pool_size(cfg)
  if pooled ~= n then
    error(string.format("%d idle pooled connections, expected %d", pooled, n), 0)
  end
  for _ = 1, 3 do collectgarbage("collect") end
  local rss1, lua1 = rss(), collectgarbage("count") * 1024
  io.stdout:write(string.format("MEM idle n=%d rss0=%d rss1=%d lua=%d\n",
    n, rss0, rss1, floor(lua1 - lua0)))
  c:close()
end

-- N tasks parked on one client, each with a BLPOP on an empty list in
-- flight (the server blocks on the first; the rest wait behind it). A
-- second client then pushes N distinct values in one LPUSH, and every
-- task must get exactly one of them.
-- pipe: the N BLPOPs go as one pipeline from one task instead (the cost
-- of a pending command without a task of its own).
local function mem_park(host, port, n, pipe)
  local c, rss0, lua0 = mem_base(host, port)
  local c2, err = redis.connect({ host = host, port = port })
  if not c2 then error("connect: " .. tostring(err), 0) end
  check(c2:cmd("DEL", "bench:park"), 0, nil, "DEL")
  local got, tasks = {}, {}
  local function pop(r, e)
    if type(r) ~= "table" or r[1] ~= "bench:park" then
      error("BLPOP: wrong reply: " .. tostring(e or r), 0)
    end
    got[#got + 1] = r[2]
  end
  if pipe then
    -- One command table N times: the caller's list costs 16 B an entry,
    -- so the growth is nearly all the client's.
    local blpop, cmds = { "BLPOP", "bench:park", 0 }, {}
    for i = 1, n do cmds[i] = blpop end
    tasks[1] = lev.spawn(function()
      local res, e = c:pipeline(cmds)
      if not res then error("pipeline: " .. tostring(e), 0) end
      for i = 1, n do pop(res[i][1], res[i][2]) end
    end)
  else
    for i = 1, n do
      tasks[i] = lev.spawn(function() pop(c:cmd("BLPOP", "bench:park", 0)) end)
    end
  end
  -- Let every task run up to its BLPOP and the client write them all:
  -- the server's view (its client's query buffer and blocked state) is
  -- the check that they are really in flight.
  local waited = 0
  while true do
    lev.sleep(0.05)
    waited = waited + 0.05
    local info = c2:cmd("INFO", "clients")
    if info:match("blocked_clients:1") then break end
    if waited > 10 then error("the BLPOPs never reached the server", 0) end
  end
  lev.sleep(0.2)
  for _ = 1, 3 do collectgarbage("collect") end
  local rss1, lua1 = rss(), collectgarbage("count") * 1024
  local vals_ = {}
  for i = 1, n do vals_[i] = "p" .. i end
  check(c2:cmd("LPUSH", "bench:park", table.unpack(vals_)), n, nil, "LPUSH")
  for i = 1, #tasks do
    local ok, e = tasks[i]:join()
    if not ok then error(e, 0) end
  end
  local seen = {}
  for _, v in ipairs(got) do
    if seen[v] then error("value " .. v .. " popped twice", 0) end
    seen[v] = true
  end
  if #got ~= n then error(#got .. " BLPOP replies for " .. n, 0) end
  io.stdout:write(string.format("MEM %s n=%d rss0=%d rss1=%d lua=%d\n",
    pipe and "pipe" or "park", n, rss0, rss1, floor(lua1 - lua0)))
  c:close()
  c2:close()
end

local host, port, work = args[1], tonumber(args[2]), args[3]
if work == "mem-idle" or work == "mem-park" or work == "mem-pipe" then
  local n = math.tointeger(tonumber(args[4]))
  if not (host and port and n and n > 0) then
    die("usage: bench.lua HOST PORT mem-idle|mem-park|mem-pipe N")
  end
  local ok, err = pcall(lev.run, function()
    if work == "mem-idle" then mem_idle(host, port, n)
    else mem_park(host, port, n, work == "mem-pipe") end
  end)
  if not ok then die(err) end
  os.exit(0)
end
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
elseif work == "lat" then
  run, warm, label = lat, math.max(200, 10 * depth), "W3/" .. depth
else
  die("unknown workload " .. tostring(work))
end

-- The kernel share of this process's CPU time so far, from the clock
-- ticks of /proc/self/stat (utime, stime: fields 14 and 15); Lua has no
-- getrusage, and a share needs no tick length.
local function ticks()
  local f = io.open("/proc/self/stat")
  if not f then return 0, 0 end
  local st = f:read("a")
  f:close()
  -- Fields after the command name, which is in parentheses.
  local rest = st:match("%) (.*)")
  local w = {}
  for x in rest:gmatch("%S+") do w[#w + 1] = x end
  return tonumber(w[12]), tonumber(w[13]) -- utime, stime
end

local ok, err = pcall(lev.run, function()
  local cfg = { host = host, port = port }
  if ca then cfg.ssl = { ca = ca } end
  local c, cerr = redis.connect(cfg)
  if not c then error("connect: " .. tostring(cerr), 0) end
  run(c, warm, depth)
  -- os.clock() is clock(3): this process's user + system CPU time, the
  -- same quantity the peers read with getrusage.
  local u0, s0 = ticks()
  local t0, c0 = lev.now(), os.clock()
  local done = run(c, ops, depth)
  local t1, c1 = lev.now(), os.clock()
  local u1, s1 = ticks()
  local share = (u1 - u0 + s1 - s0) > 0 and (s1 - s0) / (u1 - u0 + s1 - s0) or 0
  -- A clock that does not advance would turn into an infinite rate.
  if not (t1 > t0) then error("lev.now() did not advance over the run", 0) end
  local h = ""
  if hist then
    local b = {}
    for k, n in pairs(hist) do b[#b + 1] = k .. ":" .. n end
    table.sort(b)
    h = " hist=" .. table.concat(b, ",")
  end
  io.stdout:write(string.format("%s ops=%d secs=%.6f cpu=%.6f sys=%.6f%s\n",
    label, done, t1 - t0, c1 - c0, (c1 - c0) * share, h))
  c:close()
end)
if not ok then die(err) end
