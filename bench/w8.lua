-- W8: client-side caching (contract section 17). Written as a user of the
-- documented API would write it.
--
--   lua5.4 bench/w8.lua HOST PORT load
--       writes the data set: 1,000 hot keys w8:hot:i, 100,000 cold keys
--       w8:cold:i (values of 32 bytes)
--   lua5.4 bench/w8.lua HOST PORT run SECONDS
--       20 tasks read for SECONDS with the cache, then for SECONDS
--       without it (same process, same server, same data): each read is a
--       hot key 90% of the time and a cold key otherwise (with the cache,
--       about 90% hits), while one writer task changes 1% of the hot keys
--       per second (one SET every 0.1 s). Every value read is checked to
--       be one the key can hold. Prints both rates, the ratio and the
--       cache's counts.
--   lua5.4 bench/w8.lua HOST PORT hits N [hash]
--       N cached GETs of one hot key after a fixed warm-up (callgrind: the
--       difference of two runs is the instructions of N hits); with
--       "hash", N cached HGETALLs of a hash of 10 fields instead.

local lev = require("lev")
local redis = require("redis")

local host, port, mode = arg[1], math.tointeger(tonumber(arg[2])), arg[3]
assert(host and port and mode, "usage: w8.lua HOST PORT load|run S|hits N")

local HOT, COLD, TASKS = 1000, 100000, 20

local function value(i, gen)
  return string.format("v%08d-%08d-xxxxxxxxxxxxx", i, gen)
end

local function cfg(cache)
  return { host = host, port = port, protocol = 3,
           cache = cache and { max_entries = 2000 } or false }
end

local function load()
  lev.run(function()
    local c = assert(redis.connect(cfg(false)))
    for base = 0, COLD - 1, 5000 do
      local cmds = {}
      for i = base, base + 4999 do
        cmds[#cmds + 1] = { "SET", "w8:cold:" .. i, value(i, 0) }
      end
      assert(c:pipeline(cmds))
    end
    local cmds = {}
    for i = 0, HOT - 1 do cmds[#cmds + 1] = { "SET", "w8:hot:" .. i, value(i, 0) } end
    assert(c:pipeline(cmds))
    c:close()
  end)
end

-- One timed phase: reads/s of TASKS readers on one client.
local function phase(c, seconds, writer_c)
  local stop, reads = false, 0
  local gen = 0
  local tasks = {}
  local function reader(seed)
    local rnd = seed
    while not stop do
      -- a small LCG per task: math.random is shared and costs more
      rnd = (rnd * 1103515245 + 12345) & 0x7fffffff
      local key, i
      if rnd % 10 ~= 0 then
        i = (rnd >> 8) % HOT
        key = "w8:hot:" .. i
      else
        i = (rnd >> 8) % COLD
        key = "w8:cold:" .. i
      end
      local v = c:cmd("GET", key)
      if type(v) ~= "string" or v:sub(2, 9) ~= string.format("%08d", i) then
        error("w8: wrong value for " .. key .. ": " .. tostring(v), 0)
      end
      reads = reads + 1
    end
  end
  local function writer()
    while not stop do
      gen = gen + 1
      local i = (gen * 7919) % HOT
      assert(writer_c:cmd("SET", "w8:hot:" .. i, value(i, gen)) == "OK")
      lev.sleep(0.1) -- 10 keys a second: 1% of the hot keys
    end
  end
  local t0 = lev.now()
  for t = 1, TASKS do tasks[#tasks + 1] = lev.spawn(reader, t * 7777) end
  tasks[#tasks + 1] = lev.spawn(writer)
  lev.sleep(seconds)
  stop = true
  for _, t in ipairs(tasks) do assert(t:join()) end
  return reads / (lev.now() - t0), gen
end

local function run(seconds)
  lev.run(function()
    local w = assert(redis.connect(cfg(false)))
    local cached = assert(redis.connect(cfg(true)))
    local plain = assert(redis.connect(cfg(false)))
    local rate_c, writes_c = phase(cached, seconds, w)
    local st = cached:cache_stats()
    local rate_p, writes_p = phase(plain, seconds, w)
    print(string.format("W8 cache    ops/s=%.0f hits=%d misses=%d "
      .. "hit_ratio=%.3f entries=%d bytes=%d invalidations=%d "
      .. "evictions=%d writes=%d", rate_c, st.hits, st.misses,
      st.hits / math.max(1, st.hits + st.misses), st.entries, st.bytes,
      st.invalidations, st.evictions, writes_c))
    print(string.format("W8 no-cache ops/s=%.0f writes=%d", rate_p, writes_p))
    print(string.format("W8 ratio=%.2f", rate_c / rate_p))
    cached:close(); plain:close(); w:close()
  end)
end

local function hits(n, hash)
  lev.run(function()
    local c = assert(redis.connect(cfg(true)))
    local cmd, key = "GET", "w8:hot:1"
    if hash then
      cmd, key = "HGETALL", "w8:hash"
      local args = { "HSET", key }
      for i = 1, 10 do
        args[#args + 1] = "field" .. i
        args[#args + 1] = value(i, 0)
      end
      assert(c:cmd(table.unpack(args)) == 10 or true)
    end
    local want = c:cmd(cmd, key)
    for _ = 1, 1000 do -- warm-up
      local v = c:cmd(cmd, key)
      assert(type(v) == type(want))
    end
    for _ = 1, n do c:cmd(cmd, key) end
    local st = c:cache_stats()
    assert(st.misses == 1 and st.hits == 1000 + n, "not all hits")
    c:close(true)
  end)
end

if mode == "load" then
  load()
elseif mode == "run" then
  run(tonumber(arg[4]) or 3)
elseif mode == "hits" then
  hits(math.tointeger(tonumber(arg[4])) or 10000, arg[5] == "hash")
else
  error("w8.lua: unknown mode " .. tostring(mode))
end
