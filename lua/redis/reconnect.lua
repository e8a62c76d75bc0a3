-- redis.reconnect: events, status and reconnect for a client table.
--
-- The C client (redis.core) knows one connection at a time. This module
-- watches it from a daemon task (core.wait_closed), and for a client with
-- cfg.reconnect runs the outage as another daemon task (the "cycle"):
-- backoff delays, the whole handshake again (handshake.open, with the
-- database the client last selected), the subscriptions again, and only
-- then core.attach, so nothing new reaches the new connection before the
-- session is restored. Commands that find no connection call the fallback
-- installed here (core.set_fallback): they wait up to cfg.reconnect.wait
-- for the cycle to end, by joining it under lev.timeout.
--
-- Daemon tasks (lev._daemon) do not keep lev.run alive: a program whose
-- main task ends is not held by a client it forgot to close. Handlers run
-- as ordinary tasks (lev.spawn), one per call, in the order of the events,
-- so lev.run waits for them and reports one that raises.
--
-- Nothing here runs per command: the hot path is C and never calls Lua
-- while the connection is usable.

local lev = require("lev")
local core = require("redis.core")
local config = require("redis.config")
local handshake = require("redis.handshake")

local M = {}

local EVENTS = { disconnect = true, reconnecting = true, reconnect = true,
                 ["end"] = true, push = true }

-- Handler tasks of push events not yet finished, beyond which the push
-- dispatcher stops taking pushes (the C side then stops reading the
-- socket once its own queue is full): a flood of pushes cannot spawn
-- tasks without bound.
local PUSH_INFLIGHT = 1000

-- Per client state, kept beside the client table so pairs(c) shows only
-- the program's fields and cfg/protocol.
local states = setmetatable({}, { __mode = "k" })

local function state(c)
  local st = states[c]
  if not st then
    st = { handlers = {}, counts = {}, status = "ready" }
    states[c] = st
  end
  return st
end

-- The delay before attempt n (seconds), jitter applied.
function M.delay(r, n)
  local d
  if r.strategy == "fixed" then
    d = r.delay
  else
    d = r.base * 2.0 ^ (n - 1)
    if d > r.max then d = r.max end
  end
  if r.jitter then d = d / 2 + math.random() * (d / 2) end
  return d
end

local function emit(st, event, ...)
  local list = st.handlers[event]
  if not list then return end
  local tasks
  -- A copy: a handler registered or removed from another handler counts
  -- from the next event on.
  for _, h in ipairs({ table.unpack(list) }) do
    -- lev.spawn raises only outside lev.run (a close() there): no task can
    -- run a handler then, and the event is not delivered.
    local ok, t = pcall(lev.spawn, h.fn, ...)
    if ok and event == "push" then
      tasks = tasks or {}
      tasks[#tasks + 1] = t
    end
  end
  return tasks
end

-- Closed for good: by close() (this module's), or by the C close that
-- __close runs.
local function stopped(c, st)
  if st.status == "closed" then return true end
  if core.is_closed(c) then
    st.status = "closed"
    emit(st, "end", "closed")
    return true
  end
  return false
end

-- The session to restore on a fresh connection: every channel, pattern
-- and shard channel the client was subscribed to, one command per name
-- (each command then gets its own confirmation, and none is left for
-- read()).
function M.resubscribe(fresh, c)
  local subs = core.subscriptions(c)
  for _, kind in ipairs({ { "SUBSCRIBE", subs.channels },
                          { "PSUBSCRIBE", subs.patterns },
                          { "SSUBSCRIBE", subs.shard_channels } }) do
    for _, name in ipairs(kind[2]) do
      local ok, err, cat = fresh:cmd(kind[1], name)
      if ok == nil then return nil, err, cat end
    end
  end
  return true
end

-- One outage: attempts until one succeeds (true), attempts run out or the
-- client is closed (false, reason).
local function cycle(c, st)
  local cfg = st.cfg
  local r = cfg.reconnect
  local n, last = 0, nil
  while true do
    n = n + 1
    if r.attempts and n > r.attempts then
      return false, string.format("reconnect gave up after %d attempt%s: %s",
        r.attempts, r.attempts > 1 and "s" or "", tostring(last))
    end
    local d = M.delay(r, n)
    emit(st, "reconnecting", n, d)
    lev.sleep(d)
    if stopped(c, st) then return false, "closed" end
    local db = core.selected_db(c)
    local fresh, proto = st.open(cfg, db, true)
    if stopped(c, st) then
      if fresh then fresh:close(true) end
      return false, "closed"
    end
    if fresh then
      local ok, err = st.restore(fresh, c)
      if ok and not core.is_open(fresh) then
        -- It failed after its last reply (the loop saw the end of the
        -- stream meanwhile): that attempt failed too.
        ok, err = nil, "connection lost before it was ready"
      end
      if ok and not stopped(c, st) then
        -- Pooled (on close) under the key of the database it is on.
        core.ready(fresh, config.pool_key(cfg, proto ~= cfg.protocol, db),
                   cfg)
        core.attach(c, fresh)
        rawset(c, "protocol", proto)
        return true
      end
      fresh:close(true)
      if stopped(c, st) then return false, "closed" end
      last = err
    else
      last = proto -- handshake.open's error text
    end
  end
end

-- The watcher of one client: a daemon task for as long as the client
-- lives.
local function watch(c, st)
  while true do
    local text, cat = core.wait_closed(c)
    if stopped(c, st) then return end -- close() ended it
    emit(st, "disconnect", text, cat)
    if not st.cfg.reconnect then
      st.status = "closed"
      emit(st, "end", text)
      return
    end
    st.status = "reconnecting"
    st.cycle = lev._daemon(cycle, c, st)
    local fine, ok, why = st.cycle:join()
    st.cycle = nil
    if not fine then error(ok, 0) end -- a bug: reported by lev.run
    if not ok then
      if st.status ~= "closed" then
        st.status = "closed"
        emit(st, "end", why)
      end
      return
    end
    st.status = "ready"
    emit(st, "reconnect")
  end
end

local function start_watch(c, st)
  if st.watcher then return end
  st.watcher = lev._daemon(watch, c, st)
end

-- The push dispatcher: a daemon task while push handlers exist.
local function dispatch(c, st)
  local inflight = {}
  while st.counts.push and st.counts.push > 0 do
    local item = core.next_push(c)
    if item == nil then break end -- the client was closed
    for _, t in ipairs(emit(st, "push", item.value) or {}) do
      inflight[#inflight + 1] = t
    end
    if #inflight >= PUSH_INFLIGHT then
      local keep = {}
      for _, t in ipairs(inflight) do
        local s = t:status()
        if s ~= "done" and s ~= "failed" then keep[#keep + 1] = t end
      end
      inflight = keep
      while #inflight >= PUSH_INFLIGHT do
        lev.sleep(0.001)
        local s = inflight[1]:status()
        if s == "done" or s == "failed" then table.remove(inflight, 1) end
      end
    end
  end
  st.dispatcher = nil
end

-- ---- the fallback: a command that found no usable connection ----------

-- Deadlines of tasks retrying after a wait, so that a retry that lands
-- here again waits only what is left of `wait`.
local deadlines = setmetatable({}, { __mode = "k" })

local function fallback(c, op, ...)
  local st = states[c]
  if not st or not st.cfg or not st.cfg.reconnect or stopped(c, st) then
    return nil, "closed", "closed"
  end
  local wait = st.cfg.reconnect.wait
  local me = coroutine.running()
  local deadline = deadlines[me] or lev.now() + wait
  if wait <= 0 or lev.now() >= deadline
     or (st.waiting or 0) >= st.cfg.max_pending then
    return nil, "reconnecting", "closed"
  end
  st.waiting = (st.waiting or 0) + 1
  -- The watcher learns of the failure a loop turn after the command did:
  -- let it start the cycle, then wait for that cycle to end.
  while not st.cycle and st.status == "ready" and lev.now() < deadline do
    lev.sleep(0)
  end
  local cyc = st.cycle
  if cyc then
    lev.timeout(math.max(0, deadline - lev.now()), cyc.join, cyc)
  end
  st.waiting = st.waiting - 1
  if st.status ~= "ready" or not core.is_open(c) then
    return nil, st.status == "closed" and "closed" or "reconnecting",
      "closed"
  end
  deadlines[me] = deadline
  local r = table.pack(core.methods[op](c, ...))
  deadlines[me] = nil
  return table.unpack(r, 1, r.n)
end

-- ---- public ------------------------------------------------------------

-- manage(c, cfg[, opts]): reconnect for client c (ready, connected) as
-- cfg.reconnect says. redis.connect calls it; other modules may pass
-- opts.open(cfg, db, verify) -> fresh, protocol | nil, err (default
-- handshake.open; sentinel asks its sentinels first) and
-- opts.restore(fresh, c) -> true | nil, err (default M.resubscribe),
-- which runs on the fresh connection before it is attached.
function M.manage(c, cfg, opts)
  local st = state(c)
  st.cfg = cfg
  st.status = "ready"
  st.open = opts and opts.open or handshake.open
  st.restore = opts and opts.restore or M.resubscribe
  core.set_fallback(c, fallback)
  start_watch(c, st)
end

local methods = core.methods
local raw_close = methods.close

-- c:status() -> "ready" | "reconnecting" | "closed"
function methods.status(c)
  local st = states[c]
  if st and st.status ~= "ready" then return st.status end
  if core.is_open(c) then return "ready" end
  if core.is_closed(c) then return "closed" end
  if st and st.cfg and st.cfg.reconnect then return "reconnecting" end
  return "closed"
end

-- c:on(event, fn) -> handle
function methods.on(c, event, fn)
  if not EVENTS[event] then
    error("redis: on: unknown event " .. tostring(event) .. " (disconnect, "
      .. "reconnecting, reconnect, end, push)", 2)
  end
  if type(fn) ~= "function" then
    error("redis: on: the handler must be a function", 2)
  end
  local st = state(c)
  st.cfg = st.cfg or rawget(c, "cfg")
  local list = st.handlers[event] or {}
  st.handlers[event] = list
  local h = { event = event, fn = fn }
  list[#list + 1] = h
  st.counts[event] = (st.counts[event] or 0) + 1
  if st.status ~= "closed" and not core.is_closed(c) then
    if event == "push" then
      core.set_push(c, true) -- kept across reconnects
      if not st.dispatcher then
        st.dispatcher = lev._daemon(dispatch, c, st)
      end
    elseif core.is_open(c) then
      start_watch(c, st) -- a reconnect client has it already
    end
  end
  return h
end

-- c:off(handle) -> true if it was registered
function methods.off(c, h)
  local st = states[c]
  local list = st and type(h) == "table" and st.handlers[h.event]
  if not list then return false end
  for i, x in ipairs(list) do
    if x == h then
      table.remove(list, i)
      st.counts[h.event] = st.counts[h.event] - 1
      if h.event == "push" and st.counts.push == 0 then
        core.set_push(c, false) -- pushes wait for read() again
      end
      return true
    end
  end
  return false
end

-- close(): stops reconnecting and fires end, then closes as before.
function methods.close(c, no_keepalive)
  if not core.is_client(c) then
    error(string.format("bad argument #1 to 'close' (redis.client expected, "
      .. "got %s)", type(c) == "nil" and "no value" or type(c)), 2)
  end
  local st = states[c]
  if st and st.status ~= "closed" then
    st.status = "closed"
    emit(st, "end", "closed")
  end
  return raw_close(c, no_keepalive)
end

return M
