-- Blocking commands' machinery (BLPOP, BZPOPMIN, XREAD BLOCK ...), pure:
-- no sockets, no tasks.
--
-- A blocking command that finds nothing to serve returns
-- reply.block{ keys = { ... }, deadline = unix ms or nil, retry = fn,
-- timeout_reply = r }. The engine parks the session on those keys (FIFO
-- per key, as Redis queues blocked clients). Any write to a key someone
-- waits on marks it ready (store touch); when the command that wrote it
-- has finished (after EXEC or a script as a whole), the waiters of each
-- ready key are offered it in the order they blocked: retry(session)
-- runs the command again without blocking and returns its reply, or nil
-- to keep waiting. A served or timed-out session gets its reply through
-- session:wake(reply) (the network layer writes it and resumes reading).
-- Inside MULTI or a script a blocking command answers at once instead
-- (session.deny_blocking).
local reply = require("redis.mock.reply")

return function(E)
  local Engine, Session = E.Engine, E.Session

  -- Parks s on b.keys until served, timed out or unblocked.
  function Engine:block(s, b)
    b.dbi = s.dbi
    b.cmd = s.last_cmd
    s.blocked = b
    self.blocked_count = (self.blocked_count or 0) + 1
    local w = self.store.waiting
    w[s.dbi] = w[s.dbi] or {}
    local per_db = w[s.dbi]
    for _, key in ipairs(b.keys) do
      local q = per_db[key]
      if not q then
        q = {}
        per_db[key] = q
      end
      q[#q + 1] = s
    end
    self.blocked_list = self.blocked_list or {}
    self.blocked_list[s] = true
  end

  -- Takes s out of every queue it waits in.
  function Engine:unpark(s)
    local b = s.blocked
    if not b then return end
    s.blocked = nil
    if b.busy then return end   -- a busy script's client, not parked here
    self.blocked_count = self.blocked_count - 1
    self.blocked_list[s] = nil
    local per_db = self.store.waiting[b.dbi]
    for _, key in ipairs(b.keys) do
      local q = per_db and per_db[key]
      if q then
        for i = #q, 1, -1 do
          if q[i] == s then table.remove(q, i) end
        end
        if #q == 0 then per_db[key] = nil end
      end
    end
  end

  -- Ends a block with reply r (served, timed out, CLIENT UNBLOCK). An
  -- error answered then counts in errorstats and as a failed call of the
  -- command, as Redis counts it on unblocking.
  local ERROR_MT = getmetatable(reply.error("x"))
  function Engine:unblock(s, r)
    local b = s.blocked
    if not b then return end
    self:unpark(s)
    if getmetatable(r) == ERROR_MT then
      E.count_error(self, r)
      local st = b.cmd and self.cmdstats[b.cmd]
      if st then st[3] = st[3] + 1 end
    end
    s:wake(r)
  end

  -- Serves waiters of the keys written since the last call, in blocking
  -- order; repeats while serving makes other keys ready (BLMOVE).
  function Engine:serve_ready()
    local st = self.store
    local guard = 0
    while st.ready_n > 0 and guard < 1000 do
      guard = guard + 1
      local ready = st.ready
      st.ready, st.ready_n, st.ready_set = {}, 0, {}
      for _, item in ipairs(ready) do
        local per_db = st.waiting[item.dbi]
        local q = per_db and per_db[item.key]
        if q then
          local i = 1
          -- A copy: serving changes the queue under us.
          local order = {}
          for j, s in ipairs(q) do order[j] = s end
          for _, s in ipairs(order) do
            local b = s.blocked
            if b then
              local saved = s.dbi
              if s.dbi ~= b.dbi then s:select(b.dbi) end
              s.ready_key = item.key
              self.snap = false
              local ok, r = pcall(b.retry, s)
              self.snap = nil
              s.ready_key = nil
              if s.dbi ~= saved then s:select(saved) end
              if not ok then
                self.errors[#self.errors + 1] = r
                r = reply.error("ERR mock internal error: " .. tostring(r))
              end
              if r ~= nil then self:unblock(s, r) end
            end
            i = i + 1
          end
        end
      end
    end
  end

  -- Times out the blocks whose deadline has passed; returns the nearest
  -- remaining deadline (unix ms) or nil.
  function Engine:expire_blocks()
    if not self.blocked_list then return nil end
    local now = self.clock()
    local due, nearest = {}, nil
    for s in pairs(self.blocked_list) do
      local d = s.blocked.deadline
      if d then
        if d <= now then
          due[#due + 1] = s
        elseif not nearest or d < nearest then
          nearest = d
        end
      end
    end
    table.sort(due, function(a, b) return a.id < b.id end)
    for _, s in ipairs(due) do
      self:unblock(s, s.blocked.timeout_reply or reply.null_array)
    end
    return nearest
  end

  -- The pure engine keeps a woken session's reply in its outbox.
  function Session:wake(r)
    self.outbox[#self.outbox + 1] = r
  end

  -- A blocking timeout argument (seconds, a float) -> deadline in unix ms
  -- (0: forever) or nil and the error; ms = true for milliseconds.
  function E.timeout_arg(s, text, ms)
    local util = require("redis.mock.util")
    local v
    if ms then
      v = util.int(text)
      if not v then
        return nil, reply.error("ERR timeout is not an integer or out of range")
      end
    else
      v = util.double(text)
      if v == nil or v ~= v then
        return nil, reply.error("ERR timeout is not a float or out of range")
      end
      v = math.ceil(v * 1000)
    end
    if v < 0 then return nil, reply.error("ERR timeout is negative") end
    if v == math.huge then v = math.maxinteger // 2 end
    if v > 0 then return s.engine.clock() + v end
    return 0
  end

  -- The block value for a command (see the top of this file).
  function E.block(keys, deadline, retry, timeout_reply)
    return reply.block{ keys = keys, deadline = deadline ~= 0 and deadline or nil,
                        retry = retry, timeout_reply = timeout_reply }
  end
end
