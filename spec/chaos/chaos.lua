-- chaos: a bounded-time random driver for lev + redis (issue 12, "a tool
-- that finds the next ones"). Each round, in one lev.run, tasks mix at
-- random: commands, pipelines, read() on a subscriber, lev.timeout
-- abandonment, close() from finalizers and from <close> handlers, forced
-- collections inside finalizers, and a client of the hostile server in a
-- mode drawn for the round. Every command carries a unique token, and every
-- reply is checked against the command that asked: the token itself, or
-- nil and a text; a token of another command is a mismatch. After each
-- round a fresh lev.run must work and a fresh client must answer PING.
--
--   lua5.4 tools/run-lua.lua spec/chaos/chaos.lua    (LEVR_BUILD as usual)
--
-- Environment: LEVR_REDIS_PORT, LEVR_REDIS_USER, LEVR_REDIS_PASS (the real
-- server, as for the integration specs); LEVR_CHAOS_SECONDS (default 30);
-- LEVR_CHAOS_SEED (default: from the clock and /dev/urandom); it prints
-- the seed first, so that a crash can be replayed with it. The same seed
-- gives the same choices (timings of the loop may still differ). Exits 0
-- when no problem was seen; else prints them and exits 1.

package.path = "spec/support/?.lua;" .. package.path
local lev = require("lev")
local redis = require("redis")
local hs = require("hostile_server")

local function env_num(name, default)
  local v = tonumber(os.getenv(name) or "")
  return v or default
end

local function fresh_seed()
  local f = io.open("/dev/urandom", "rb")
  local r = 0
  if f then
    local b = f:read(4)
    f:close()
    for i = 1, #b do r = r * 256 + b:byte(i) end
  end
  return (os.time() * 7919 + r) % 2147483647
end

local SEED = math.tointeger(env_num("LEVR_CHAOS_SEED", 0))
if SEED == 0 then SEED = fresh_seed() end
local SECONDS = env_num("LEVR_CHAOS_SECONDS", 30)
local PORT = math.tointeger(env_num("LEVR_REDIS_PORT", 0))
assert(PORT and PORT > 0, "chaos: LEVR_REDIS_PORT is not set")
local AUTH = { user = os.getenv("LEVR_REDIS_USER"),
               pass = os.getenv("LEVR_REDIS_PASS") }
if not AUTH.user then AUTH = nil end

io.stdout:write(("chaos: seed %d, %g s (LEVR_CHAOS_SEED=%d replays it)\n")
  :format(SEED, SECONDS, SEED))
io.stdout:flush()
math.randomseed(SEED)
local rnd = math.random

local stats = { rounds = 0, ops = 0, ok = 0, failed = 0, raised = 0,
                abandoned = 0, finalizer_closes = 0, close_handlers = 0,
                messages = 0 }
local errors_seen = {}
local problems = {}

local function problem(fmt, ...)
  local msg = ("round %d: " .. fmt):format(stats.rounds, ...)
  if #problems < 50 then problems[#problems + 1] = msg end
  io.stdout:write("chaos: PROBLEM ", msg, "\n")
  io.stdout:flush()
end

local ntok = 0
local function token()
  ntok = ntok + 1
  return ("tok:%d:%d"):format(SEED, ntok)
end

local function is_token(v)
  return type(v) == "string" and v:match("^tok:%d+:%d+$") ~= nil
end

-- A reply to a command whose answer must be tok. garbage_ok: a hostile
-- mode whose replies are nonsense by design (anything but another
-- command's token is then accepted).
local function check(what, tok, garbage_ok, v, e)
  stats.ops = stats.ops + 1
  if v == tok then
    stats.ok = stats.ok + 1
  elseif v == nil and type(e) == "string" then
    stats.failed = stats.failed + 1
    local k = e:gsub("%d+", "N"):sub(1, 60)
    errors_seen[k] = (errors_seen[k] or 0) + 1
  elseif is_token(v) then
    problem("%s: asked for %s, got another command's %s", what, tok, v)
  elseif not garbage_ok then
    problem("%s: asked for %s, got %s (%s)", what, tok, tostring(v),
            tostring(e))
  end
end

-- Runs op under pcall: a raised error is a problem (the API raises only
-- for programmer errors, which the driver does not make).
local function guarded(what, fn, ...)
  local r = table.pack(pcall(fn, ...))
  if not r[1] then
    stats.raised = stats.raised + 1
    problem("%s raised: %s", what, tostring(r[2]))
    return
  end
  return table.unpack(r, 2, r.n)
end

local function cfg(extra)
  local t = { host = "127.0.0.1", port = PORT, auth = AUTH, timeout = 2 }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- Hostile modes for a round: the reply check each allows.
local MODES = {
  { "echo", nil, false },
  { "echo", nil, false },
  { "pushmid", nil, false },
  { "unsolicited_idle", nil, true },
  { "halfclose", nil, true },
  { "silent", nil, true },
  { "nullarray", "2000", true },
  { "nankey", nil, true },
  { "raw", "2b4f4b0d0a2d455252206e6f0d0a3a31300d0a", true },
  { "bigbulk", "300000", true },
}

---------------------------------------------------------------------------
-- The operations. Each runs in a task of its own; ctx holds the round's
-- clients and settings.

local OPS = {}

-- ECHO on the shared client.
OPS[#OPS + 1] = function(ctx)
  local tok = token()
  check("ECHO", tok, false, guarded("ECHO", ctx.c.cmd, ctx.c, "ECHO", tok))
end

-- SET then GET of a key of the task's own.
OPS[#OPS + 1] = function(ctx)
  local tok, key = token(), "chaos:" .. token()
  local ok = guarded("SET", ctx.c.cmd, ctx.c, "SET", key, tok, "EX", 30)
  if ok == "OK" then
    check("GET", tok, false, guarded("GET", ctx.c.cmd, ctx.c, "GET", key))
  end
end

-- A pipeline of ECHOs.
OPS[#OPS + 1] = function(ctx)
  local n, toks, cmds = rnd(1, 60), {}, {}
  for i = 1, n do
    toks[i] = token()
    cmds[i] = { "ECHO", toks[i] }
  end
  local res, err = guarded("pipeline", ctx.c.pipeline, ctx.c, cmds)
  if res == nil then
    check("pipeline", nil, false, nil, err or "raised")
    return
  end
  if type(res) ~= "table" or #res ~= n then
    problem("pipeline of %d returned %s (%s entries)", n, tostring(res),
            type(res) == "table" and #res or "-")
    return
  end
  for i = 1, n do
    local entry = res[i]
    if type(entry) ~= "table" then
      problem("pipeline entry %d is %s", i, tostring(entry))
    else
      check("pipeline entry", toks[i], false, entry[1], entry[2])
    end
  end
end

-- A command abandoned by lev.timeout (often before its reply).
OPS[#OPS + 1] = function(ctx)
  local tok = token()
  local v, e = guarded("lev.timeout", lev.timeout, rnd() * 0.004,
    function() return ctx.c:cmd("ECHO", tok) end)
  if v == nil and e == "timeout" then
    stats.abandoned = stats.abandoned + 1
  else
    check("ECHO in lev.timeout", tok, false, v, e)
  end
end

-- A blocking command abandoned on a client of its own.
OPS[#OPS + 1] = function(ctx)
  local d = guarded("connect", redis.connect, cfg())
  if not d then return end
  local v, e = guarded("BLPOP in lev.timeout", lev.timeout, 0.01,
    function() return d:cmd("BLPOP", "chaos:never:" .. token(), 1) end)
  if v == nil and e == "timeout" then stats.abandoned = stats.abandoned + 1 end
  local tok = token()
  check("ECHO after BLPOP", tok, false, guarded("ECHO", d.cmd, d, "ECHO", tok))
  guarded("close", d.close, d, rnd() < 0.5)
end

-- A client closed by a finalizer (which forces a collection step) while
-- commands are in flight on it.
OPS[#OPS + 1] = function(ctx)
  local d = guarded("connect", redis.connect, cfg())
  if not d then return end
  local toks, tasks = {}, {}
  for i = 1, rnd(1, 4) do
    toks[i] = token()
    tasks[i] = lev.spawn(function()
      if rnd() < 0.5 then
        return d:cmd("ECHO", toks[i])
      end
      local r, e = d:pipeline({ { "ECHO", toks[i] }, { "PING" } })
      if r then return r[1][1], r[1][2] end
      return r, e
    end)
  end
  setmetatable({}, { __gc = function()
    collectgarbage("step")
    stats.finalizer_closes = stats.finalizer_closes + 1
    d:close(rnd() < 0.7)
  end })
  if rnd() < 0.5 then collectgarbage() else collectgarbage("step") end
  for i, t in ipairs(tasks) do
    local ok, v, e = t:join()
    if not ok then
      problem("task on a finalizer-closed client failed: %s", tostring(v))
    else
      check("ECHO on a finalizer-closed client", toks[i], false, v, e)
    end
  end
  guarded("close", d.close, d)
end

-- A <close> handler that closes the client, in a task abandoned by
-- lev.timeout or ending normally.
OPS[#OPS + 1] = function(ctx)
  local tok = token()
  local v, e = guarded("lev.timeout", lev.timeout, rnd() * 0.01, function()
    local d <close> = assert(redis.connect(cfg()))
    local guard <close> = setmetatable({}, { __close = function()
      stats.close_handlers = stats.close_handlers + 1
      collectgarbage("step")
      d:close(rnd() < 0.5)
    end })
    return d:cmd("ECHO", tok)
  end)
  if not (v == nil and e == "timeout") then
    check("ECHO with a <close> handler", tok, false, v, e)
  end
end

-- The shared client closed under the other tasks (rarely): they must all
-- get their reply or nil, text; the round reconnects it.
OPS[#OPS + 1] = function(ctx)
  if rnd() < 0.85 then return OPS[1](ctx) end
  lev.sleep(rnd() * 0.003)
  local old = ctx.c
  ctx.c = assert(redis.connect(cfg()))
  ctx.spare[#ctx.spare + 1] = ctx.c
  guarded("close", old.close, old, rnd() < 0.5)
end

-- A finalizer that closes the shared client itself, at whatever point the
-- collector runs it (inside a pipeline, while replies are converted...);
-- the next operation reconnects.
OPS[#OPS + 1] = function(ctx)
  local victim = ctx.c
  setmetatable({}, { __gc = function()
    stats.finalizer_closes = stats.finalizer_closes + 1
    collectgarbage("step")
    victim:close(true)
    ctx.dead[victim] = true
  end })
  local n, toks, cmds = rnd(100, 3000), {}, {}
  for i = 1, n do
    toks[i] = token()
    cmds[i] = { "ECHO", toks[i] }
  end
  local res, err = guarded("pipeline", victim.pipeline, victim, cmds)
  if res == nil then
    check("pipeline", nil, false, nil, err or "raised")
  elseif type(res) ~= "table" or #res ~= n then
    problem("pipeline of %d returned %s (%s entries)", n, tostring(res),
            type(res) == "table" and #res or "-")
  else
    for i = 1, n, 97 do
      check("pipeline entry", toks[i], false, res[i][1], res[i][2])
    end
  end
end

-- Pooled connections left in a session state (MULTI, WATCH, a rejected
-- EXEC or DISCARD, CLIENT NO-EVICT) by close(): the next borrower must get
-- a clean one (its SET answers OK, its EXEC is not aborted by a stale
-- WATCH, no-evict is off).
OPS[#OPS + 1] = function(ctx)
  local pcfg = cfg({ db = 2 })
  local a = guarded("connect", redis.connect, pcfg)
  if not a then return end
  local k = rnd(5)
  if k == 1 then
    a:cmd("MULTI")
  elseif k == 2 then
    a:cmd("MULTI")
    a:cmd(rnd() < 0.5 and "EXEC" or "DISCARD", "x")
  elseif k == 3 then
    a:cmd("WATCH", "chaos:pool:w")
    a:cmd(rnd() < 0.5 and "EXEC" or "DISCARD")
  elseif k == 4 then
    a:cmd("CLIENT", "NO-EVICT", "on")
  else
    a:cmd("WATCH", "chaos:pool:w")
  end
  guarded("close", a.close, a)
  -- Another pool key (the default user), so that it does not take a's
  -- connection from the pool.
  local touch = guarded("connect", redis.connect,
                        { host = "127.0.0.1", port = PORT, db = 2 })
  if touch then
    touch:cmd("SET", "chaos:pool:w", token())
    touch:close(true)
  end
  local b = guarded("connect", redis.connect, pcfg)
  if not b then return end
  local tok, key = token(), "chaos:pool:" .. token()
  local v, e = guarded("SET", b.cmd, b, "SET", key, tok, "EX", 30)
  if v ~= "OK" and not (v == nil and type(e) == "string" and e:match("^closed")) then
    problem("a pooled connection answered SET with %s (this op left state "
            .. "%d; other tasks share the pool)",
            tostring(v), k)
  end
  if b:cmd("MULTI") == "OK" then
    b:cmd("GET", key)
    local ex = b:cmd("EXEC")
    if type(ex) ~= "table" then
      problem("a pooled connection's EXEC gave %s (stale WATCH? this op "
              .. "left state %d; other tasks share the pool)",
              tostring(ex), k)
    elseif ex[1] ~= tok then
      problem("a pooled connection's EXEC gave %s for %s", tostring(ex[1]),
              tok)
    end
  end
  local info = b:cmd("CLIENT", "INFO")
  local flags = type(info) == "string" and info:match("flags=(%S+)") or ""
  if flags:find("e", 1, true) then
    problem("a pooled connection kept CLIENT NO-EVICT (flags=%s)", flags)
  end
  guarded("close", b.close, b, rnd() < 0.3)
end

-- PUBLISH a token for the round's subscriber.
OPS[#OPS + 1] = function(ctx)
  local tok = token()
  ctx.published[tok] = true
  local n = guarded("PUBLISH", ctx.c.cmd, ctx.c, "PUBLISH", ctx.chan, tok)
  if n ~= 1 and n ~= nil then
    problem("PUBLISH reached %s subscribers, expected 1", tostring(n))
  end
end

-- The hostile server.
OPS[#OPS + 1] = function(ctx)
  local tok = token()
  local h = ctx.h
  if not h then return end
  local v, e
  if rnd() < 0.7 then
    v, e = guarded("hostile ECHO", h.cmd, h, "ECHO", tok)
  else
    local r, err = guarded("hostile pipeline", h.pipeline, h,
                           { { "ECHO", tok }, { "ECHO", token() } })
    if r then v, e = r[1][1], r[1][2] else v, e = nil, err or "raised" end
  end
  check("hostile " .. ctx.mode[1], tok, ctx.mode[3], v, e)
end

-- A forced collection step from a finalizer, at a random point.
OPS[#OPS + 1] = function(ctx)
  setmetatable({}, { __gc = function() collectgarbage("step", rnd(0, 50)) end })
  collectgarbage("step", rnd(0, 20))
  local tok = token()
  check("ECHO", tok, false, guarded("ECHO", ctx.c.cmd, ctx.c, "ECHO", tok))
end

---------------------------------------------------------------------------

local function subscriber(ctx)
  -- read() takes every message; a message must carry a token published
  -- this round, once.
  local seen = {}
  while not ctx.done do
    local m, e = guarded("read", ctx.sub.read, ctx.sub)
    if m == nil then
      if e ~= "timeout" then
        if not ctx.done then
          local k = "read: " .. tostring(e)
          errors_seen[k] = (errors_seen[k] or 0) + 1
        end
        return
      end
    elseif type(m) ~= "table" or type(m.value) ~= "table" then
      problem("read() gave %s", tostring(m))
    else
      local tok = m.value[3]
      if m.value[1] == "message" then
        if not ctx.published[tok] or seen[tok] then
          problem("read() gave a message %s that was not published once",
                  tostring(tok))
        end
        seen[tok] = true
        stats.messages = stats.messages + 1
      end
    end
  end
end

local function round(server)
  local ctx = { spare = {}, published = {}, chan = "chaos:" .. token(),
                dead = setmetatable({}, { __mode = "k" }) }
  -- Finalizers at other points of the allocation pattern each round.
  if rnd() < 0.5 then
    collectgarbage("incremental", rnd(5, 200), rnd(100, 400))
  else
    collectgarbage("generational", rnd(5, 50), rnd(50, 200))
  end
  ctx.mode = MODES[rnd(#MODES)]
  server.mode, server.arg = ctx.mode[1], ctx.mode[2]
  ctx.c = assert(redis.connect(cfg()))
  ctx.sub = assert(redis.connect(cfg({ timeout = 0.05 })))
  assert(ctx.sub:cmd("SUBSCRIBE", ctx.chan))
  ctx.h = redis.connect{ host = "127.0.0.1", port = server:port(),
                         timeout = 0.3 }
  local reader = lev.spawn(subscriber, ctx)
  local tasks = {}
  for i = 1, rnd(4, 24) do
    tasks[i] = lev.spawn(function()
      for _ = 1, rnd(1, 6) do
        if ctx.dead[ctx.c] then
          ctx.c = assert(redis.connect(cfg()))
          ctx.spare[#ctx.spare + 1] = ctx.c
        end
        OPS[rnd(#OPS)](ctx)
        if rnd() < 0.3 then lev.sleep(rnd() * 0.002) end
      end
    end)
  end
  for i, t in ipairs(tasks) do
    local ok, a, b = lev.timeout(15, function() return t:join() end)
    if ok == nil and a == "timeout" then
      problem("task %d hung for 15 s", i)
    elseif not ok then
      problem("task %d failed: %s", i, tostring(a))
    end
    local _ = b
  end
  ctx.done = true
  if lev.timeout(5, function() return reader:join() end) == nil then
    problem("the subscriber's read() hung")
  end
  ctx.sub:close(true)
  ctx.c:close(rnd() < 0.5)
  for _, s in ipairs(ctx.spare) do s:close(true) end
  if ctx.h then ctx.h:close(true) end
end

local deadline = os.time() + SECONDS
local server
lev.run(function()
  server = assert(hs.start{ mode = "echo" })
end)
local t0 = lev.now()
while lev.now() - t0 < SECONDS do
  stats.rounds = stats.rounds + 1
  local ok, err = pcall(lev.run, function()
    return lev.timeout(30, function() return round(server) end)
  end)
  if not ok then
    problem("lev.run raised: %s", tostring(err))
  end
  -- The runtime stays usable: a new run, a new client.
  local ok2, v = pcall(lev.run, function()
    local c = assert(redis.connect(cfg()))
    local pong = c:cmd("PING")
    c:close()
    return pong
  end)
  if not ok2 or v ~= "PONG" then
    problem("after the round, a fresh client got %s", tostring(v))
    break
  end
  if os.time() > deadline + 60 then break end
end
if not pcall(lev.run, function() server:close() end) then
  problem("the runtime was not usable at the end")
end
collectgarbage("incremental")

collectgarbage()
collectgarbage()
local handles, tasks = lev._handles()
local errs = {}
for k, n in pairs(errors_seen) do errs[#errs + 1] = ("%s x%d"):format(k, n) end
table.sort(errs)
print(("chaos: seed %d: %d rounds, %d replies checked (%d right, %d nil+text), "
  .. "%d abandoned, %d finalizer closes, %d <close> handlers, %d messages "
  .. "read, %d raised; left: %d handles, %d tasks")
  :format(SEED, stats.rounds, stats.ops, stats.ok, stats.failed,
          stats.abandoned, stats.finalizer_closes, stats.close_handlers,
          stats.messages, stats.raised, handles, tasks))
print("chaos: failures seen: " .. table.concat(errs, "; "))
if #problems > 0 then
  print(("chaos: %d problem(s) with seed %d"):format(#problems, SEED))
  os.exit(1)
end
print("chaos: no problem")
