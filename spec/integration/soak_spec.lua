-- Soak: no lost and no stale replies under random faults.
--
-- 100 tasks issue commands whose replies identify the request (ECHO of
-- "<task>:<seq>", INCR of a per-task key, pipelines of both) for
-- LEVR_SOAK_SECONDS (default 30) through a fault proxy in front of the
-- shared redis-server, half of them on pooled clients (connect, a few
-- commands, close) and half on shared clients (five tasks per client).
-- Meanwhile the proxy injects random faults: garbage between replies,
-- dropped connections, connections cut after N bytes, replies delayed past
-- the timeout, servers that stop answering, and the tasks abandon some
-- commands with lev.timeout. Every successful reply must match its
-- request, and every failure must come back as nil, text (category).
-- Half of the shared clients use reconnect: they are never replaced, they
-- come back by themselves, and their INCR keys prove that no command was
-- sent twice (a resent INCR would push a key past what its task saw plus
-- the INCRs whose outcome it never learned).

local lev = require("lev")
local redis = require("redis")
local fp = require("fault_proxy")

local HOST = "127.0.0.1"
local PORT = fp.env_port()
local SECONDS = tonumber(os.getenv("LEVR_SOAK_SECONDS") or "") or 30
local TASKS, GROUP = 100, 5          -- tasks; tasks per shared client
local TIMEOUT = 0.5                  -- the clients' timeout
local PREFIX = string.format("levr:soak:%d:%d:", os.time(),
                             math.random(1, 1 << 30))

-- Failure categories the client may report for a fault.
local FAULT_CATEGORIES = {
  timeout = true, eof = true, io = true, protocol = true, closed = true,
}

local function settle()
  collectgarbage()
  collectgarbage()
  local handles, tasks = lev._handles()
  local deadline = os.time() + 3
  while tasks > 0 and os.time() < deadline do
    lev.run(function() lev.sleep(0.005) end)
    collectgarbage()
    collectgarbage()
    handles, tasks = lev._handles()
  end
  return handles, tasks
end

local function new_stats()
  return {
    ops = 0, ok = 0, failed = 0, mismatches = 0, unexpected = 0,
    raised = 0, abandoned = 0, connects = 0, connect_failures = 0,
    by_category = {}, samples = {},
  }
end

local function note(stats, what)
  if #stats.samples < 10 then stats.samples[#stats.samples + 1] = what end
end

-- One task's view of its INCR key: the last value seen, and how many
-- INCRs may have been applied without the task learning their result.
local function new_counter(key)
  return { key = key, last = 0, unknown = 0 }
end

-- An INCR succeeded with v: it must be past the last value, and the gap
-- can only be INCRs whose outcome the task never learned.
local function incr_ok(ctr, v)
  if math.type(v) ~= "integer" or v <= ctr.last
     or v > ctr.last + 1 + ctr.unknown then
    return false
  end
  ctr.unknown = ctr.unknown - (v - ctr.last - 1)
  ctr.last = v
  return true
end

-- Runs one operation; returns the number of mismatches it showed.
-- kind: "echo", "big", "incr", "pipeline".
local function operate(stats, c, kind, tag, ctr, abandon)
  local fn, args, incrs
  if kind == "echo" then
    fn, args, incrs = c.cmd, { "ECHO", tag }, 0
  elseif kind == "big" then
    tag = tag .. ":" .. string.rep("b", 2000 + #tag * 97 % 3000)
    fn, args, incrs = c.cmd, { "ECHO", tag }, 0
  elseif kind == "incr" then
    fn, args, incrs = c.cmd, { "INCR", ctr.key }, 1
  else
    fn, incrs = c.pipeline, 1
    args = { {
      { "ECHO", tag .. ":a" }, { "INCR", ctr.key }, { "ECHO", tag .. ":b" },
      { "GET", ctr.key .. ":none" },
    } }
  end
  stats.ops = stats.ops + 1
  local r
  if abandon then
    r = table.pack(pcall(lev.timeout, abandon, fn, c, table.unpack(args)))
  else
    r = table.pack(pcall(fn, c, table.unpack(args)))
  end
  if not r[1] then
    stats.raised = stats.raised + 1
    note(stats, "raised: " .. tostring(r[2]))
    return "raised"
  end
  local v, err, cat = r[2], r[3], r[4]
  if v == nil then
    ctr.unknown = ctr.unknown + incrs
    stats.failed = stats.failed + 1
    if abandon and err == "timeout" and cat == nil then
      stats.abandoned = stats.abandoned + 1
      return "abandoned"
    end
    if type(err) ~= "string" or not FAULT_CATEGORIES[cat] then
      stats.unexpected = stats.unexpected + 1
      note(stats, string.format("unexpected failure of %s: %s (%s)", kind,
                                tostring(err), tostring(cat)))
      return "unexpected"
    end
    stats.by_category[cat] = (stats.by_category[cat] or 0) + 1
    return "failed", err
  end
  local good
  if kind == "echo" or kind == "big" then
    good = v == tag
  elseif kind == "incr" then
    good = incr_ok(ctr, v)
  else
    good = type(v) == "table" and #v == 4
      and type(v[1]) == "table" and v[1][1] == tag .. ":a"
      and type(v[2]) == "table" and incr_ok(ctr, v[2][1])
      and type(v[3]) == "table" and v[3][1] == tag .. ":b"
      and type(v[4]) == "table" and v[4][1] == nil and v[4][2] == nil
  end
  if not good then
    stats.mismatches = stats.mismatches + 1
    note(stats, string.format("mismatch: %s %q got %s (last %d, unknown %d)",
                              kind, tag:sub(1, 40), tostring(v), ctr.last,
                              ctr.unknown))
    return "mismatch"
  end
  stats.ok = stats.ok + 1
  return "ok"
end

local KINDS = { "echo", "echo", "incr", "incr", "pipeline", "big" }

local function random_op(rng)
  local kind = KINDS[rng(#KINDS)]
  local abandon = rng(20) == 1 and (rng(50) / 1000) or nil
  return kind, abandon
end

-- The fault injector: every 10-40 ms, one random fault on one random live
-- connection (or on all of them, rarely).
local function chaos(p, deadline, rng, faults)
  local function bump(k) faults[k] = (faults[k] or 0) + 1 end
  while lev.now() < deadline do
    lev.sleep((10 + rng(30)) / 1000)
    local conns = p:conns()
    if #conns > 0 then
      local conn = conns[rng(#conns)]
      local dice = rng(100)
      if dice <= 30 then
        conn.garbage = "\0garbage\r\n"
        bump("garbage")
      elseif dice <= 50 then
        conn:drop()
        bump("drop")
      elseif dice <= 65 then
        conn.close_after = rng(0, 400)
        bump("cut")
      elseif dice <= 75 then
        conn.delay = TIMEOUT + 0.1
        bump("delay")
      elseif dice <= 85 then
        conn.blackhole = true
        bump("blackhole")
      elseif dice <= 97 then
        conn.split = rng(16)
        bump("split")
      else
        p:drop_all()
        bump("drop_all")
      end
    end
  end
end

describe("soak:", function()
  it("returns every successful reply to its own request and reports every "
     .. "failure as nil, text while the proxy injects random faults for "
     .. "LEVR_SOAK_SECONDS", function()
    local base_handles = settle()
    local stats, faults = new_stats(), {}
    local counters, finals, bad_finals
    local shared_n = (TASKS // 2) // GROUP
    local rc = { clients = 0, disconnects = 0, reconnects = 0, refused = 0,
                 ops = 0, ok = 0 }
    -- Shared clients of even groups use reconnect.
    local function reconnecting_group(g) return g % 2 == 0 end
    lev.run(function()
      local p = assert(fp.start{ upstream_port = PORT, align = true })
      local cfg = { host = HOST, port = p:port(), timeout = TIMEOUT }
      local deadline = lev.now() + SECONDS
      local rng = math.random
      local shared = {}
      local ctrs = {}

      local rcfg = { host = HOST, port = p:port(), timeout = TIMEOUT,
                     reconnect = { base = 0.01, max = 0.05, wait = 0.2 } }

      local function shared_client(g)
        if shared[g] then return shared[g] end
        stats.connects = stats.connects + 1
        local c, err, cat = redis.connect(reconnecting_group(g) and rcfg
                                          or cfg)
        if not c then return nil, err, cat end
        if reconnecting_group(g) and not shared[g] then
          rc.clients = rc.clients + 1
          c:on("disconnect", function() rc.disconnects = rc.disconnects + 1 end)
          c:on("reconnect", function() rc.reconnects = rc.reconnects + 1 end)
        end
        if shared[g] then -- another task of the group was quicker
          c:close()
          return shared[g]
        end
        shared[g] = c
        return c
      end

      local function worker(id)
        local ctr = new_counter(PREFIX .. id)
        ctrs[id] = ctr
        local seq = 0
        local pooled = id <= TASKS // 2
        local g = pooled and nil or (id - TASKS // 2 - 1) // GROUP + 1
        while lev.now() < deadline do
          local c, err, cat
          if pooled then
            stats.connects = stats.connects + 1
            c, err, cat = redis.connect(cfg)
          else
            c, err, cat = shared_client(g)
          end
          if not c then
            stats.connect_failures = stats.connect_failures + 1
            if type(err) ~= "string" or not FAULT_CATEGORIES[cat] then
              stats.unexpected = stats.unexpected + 1
              note(stats, "connect: " .. tostring(err))
            end
            lev.sleep(0.01)
          else
            for _ = 1, rng(5) do
              seq = seq + 1
              local kind, abandon = random_op(rng)
              local res, err = operate(stats, c, kind, id .. ":" .. seq,
                                       ctr, abandon)
              if not pooled and reconnecting_group(g) then
                rc.ops = rc.ops + 1
                if res == "ok" then rc.ok = rc.ok + 1 end
                if err == "reconnecting" then rc.refused = rc.refused + 1 end
              end
              if res ~= "ok" and res ~= "abandoned" then
                if not pooled and shared[g] == c
                   and not reconnecting_group(g) then
                  shared[g] = nil -- broken: the group connects anew
                  c:close(true)
                end
                break
              end
            end
            if pooled then assert(c:close() == true) end
          end
        end
      end

      local tasks = {}
      for id = 1, TASKS do tasks[id] = lev.spawn(worker, id) end
      local injector = lev.spawn(chaos, p, deadline, rng, faults)
      local ok, done = pcall(lev.timeout, SECONDS + 30, function()
        for id = 1, TASKS do
          local tok, terr = tasks[id]:join()
          if not tok then
            stats.raised = stats.raised + 1
            note(stats, "task " .. id .. " raised: " .. tostring(terr))
          end
        end
        assert(injector:join())
        return true
      end)
      p:reset()
      for g = 1, shared_n do
        if shared[g] then shared[g]:close(true) end
      end
      while redis.pool_size(cfg) > 0 do
        local c = redis.connect(cfg)
        if not c then break end
        c:close(true)
      end
      counters = p.counters
      p:close()
      assert(ok, done)
      assert(done == true, "the soak's tasks did not finish in time")

      -- The final value of each key: the INCRs seen, plus at most the ones
      -- whose outcome was never learned.
      local d = assert(redis.connect({ host = HOST, port = PORT,
                                       timeout = 2 }))
      finals, bad_finals = 0, {}
      for id = 1, TASKS do
        local ctr = ctrs[id]
        local v = d:cmd("GET", ctr.key) or "0"
        v = math.tointeger(tonumber(v))
        finals = finals + 1
        if not v or v < ctr.last or v > ctr.last + ctr.unknown then
          bad_finals[#bad_finals + 1] = string.format("%s = %s, last %d, "
            .. "unknown %d", ctr.key, tostring(v), ctr.last, ctr.unknown)
        end
        d:cmd("DEL", ctr.key)
      end
      d:close(true)
    end)

    local injected, splits = 0, faults.split or 0
    faults.split = nil -- splitting is stress, not a fault
    for _, n in pairs(faults) do injected = injected + n end
    local function list(t)
      local keys, parts = {}, {}
      for k in pairs(t) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do parts[#parts + 1] = k .. " " .. t[k] end
      return table.concat(parts, ", ")
    end
    print(string.format("\nsoak: %g s, %d tasks (%d pooled, %d on %d shared "
      .. "clients)\n  ops %d: ok %d, failed %d\n  faults injected %d (%s), "
      .. "connections re-split %d\n  failures reported %d (%s, abandoned by "
      .. "lev.timeout %d)\n  connects %d (failed %d), proxied connections "
      .. "%d, bytes to clients %d\n  mismatches %d, unexpected failures %d, "
      .. "raised %d", SECONDS, TASKS, TASKS // 2, TASKS - TASKS // 2,
      shared_n, stats.ops, stats.ok, stats.failed, injected, list(faults),
      splits, stats.failed, list(stats.by_category), stats.abandoned,
      stats.connects, stats.connect_failures, counters.connections,
      counters.bytes_down, stats.mismatches, stats.unexpected,
      stats.raised))
    print(string.format("  reconnect clients %d (%d tasks): ops %d, ok %d, "
      .. "disconnects %d, reconnects %d, refused while reconnecting %d",
      rc.clients, rc.clients * GROUP, rc.ops, rc.ok, rc.disconnects,
      rc.reconnects, rc.refused))
    for _, s in ipairs(stats.samples) do print("  " .. s) end

    assert.equal(0, stats.mismatches, "replies that did not match their "
      .. "request")
    assert.equal(0, stats.unexpected, "failures not reported as nil, text")
    assert.equal(0, stats.raised, "operations that raised")
    assert.same({}, bad_finals)
    assert.equal(TASKS, finals)
    assert.is_true(stats.ok > 100 * SECONDS, "too few successful operations")
    assert.is_true(injected > 5 * SECONDS, "too few faults injected")
    assert.is_true(stats.failed > 0, "the faults did not show as failures")
    if SECONDS >= 10 then -- long enough for every kind to show
      for _, cat in ipairs({ "protocol", "timeout", "eof" }) do
        assert.is_truthy(stats.by_category[cat], "no failure of kind " .. cat)
      end
    end
    assert.equal(0, counters.errors)
    -- the reconnect clients lived through the faults by themselves
    assert.equal(shared_n // 2, rc.clients, "reconnect clients replaced")
    assert.is_true(rc.reconnects > 0, "no reconnect happened")
    assert.is_true(rc.ok > 0, "the reconnect clients did no work")
    local handles, tasks = settle()
    assert.equal(0, tasks, "tasks left behind")
    assert.is_true(handles <= base_handles, "handles left behind")
  end)
end)
