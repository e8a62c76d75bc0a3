-- lev: the coroutine runtime (run, spawn/join, sleep, now, timeout), its
-- misuse errors, deadlock reports and clean-up.
local lev = require("lev")
local helper = require("lev_helper")

local error_of, has = helper.error_of, helper.has

local assert_clean = helper.assert_clean

describe("lev.run", function()
  after_each(assert_clean)

  it("returns every result of the main task, nils included", function()
    local n, a, b, c = (function(...) return select("#", ...), ... end)(
      lev.run(function(x, y, z) return x, y, z end, 1, nil, 3))
    assert.are.equal(3, n)
    assert.are.same({1, nil, 3}, {a, b, c})
  end)

  it("lev.time() is the wall clock in seconds with a fraction", function()
    local t, s = lev.time(), os.time()
    assert.is_true(math.abs(t - s) <= 1)
    -- Microseconds: many readings give many values (a clock of whole
    -- seconds would give one, two across a second's boundary).
    local seen, distinct = {}, 0
    for _ = 1, 100000 do
      local v = lev.time()
      if not seen[v] then seen[v], distinct = true, distinct + 1 end
      if distinct >= 3 then break end
    end
    assert.is_true(distinct >= 3)
    assert.is_true(lev.time() >= t)
  end)

  it("returns nothing when the main task returns nothing", function()
    assert.are.equal(0, select("#", lev.run(function() end)))
  end)

  it("appends a traceback to a string error of the main task", function()
    local err = error_of(lev.run, function() error("main went wrong") end)
    assert.is_true(has(err, "main went wrong"))
    assert.is_true(has(err, "lev task traceback:"))
  end)

  it("re-raises a table error of the main task as the same table", function()
    local e = { code = 42 }
    local err = error_of(lev.run, function() error(e) end)
    assert.are.equal(e, err)
  end)

  it("raises a clear error when called inside a running lev.run", function()
    local ok, err = lev.run(function()
      return pcall(lev.run, function() end)
    end)
    assert.is_false(ok)
    assert.is_true(has(err, "lev.run: already running"))
  end)

  it("raises when called inside a plain coroutine inside a task", function()
    local ok, err = lev.run(function()
      return coroutine.wrap(function()
        return pcall(lev.run, function() end)
      end)()
    end)
    assert.is_false(ok)
    assert.is_true(has(err, "already running"))
  end)

  it("rejects a main task that is not a function", function()
    assert.is_true(has(error_of(lev.run, 42), "function expected"))
  end)

  it("waits for every spawned task before it returns", function()
    local finished = 0
    lev.run(function()
      for i = 1, 5 do
        lev.spawn(function() lev.sleep(i / 1000); finished = finished + 1 end)
      end
    end)
    assert.are.equal(5, finished)
  end)

  it("waits for tasks spawned by spawned tasks", function()
    local deepest = false
    lev.run(function()
      lev.spawn(function()
        lev.sleep(0.002)
        lev.spawn(function() lev.sleep(0.002); deepest = true end)
      end)
    end)
    assert.is_true(deepest)
  end)

  it("can be called again after it raised an error", function()
    error_of(lev.run, function() lev.sleep(0); error("first") end)
    assert.are.equal("second", lev.run(function()
      lev.sleep(0)
      return "second"
    end))
  end)

  it("drops the other tasks when the main task fails", function()
    local reached = false
    error_of(lev.run, function()
      lev.spawn(function() lev.sleep(0.05); reached = true end)
      error("main fails first")
    end)
    lev.run(function() lev.sleep(0.08) end)
    assert.is_false(reached)
  end)

  it("lets a task give way to the others with coroutine.yield", function()
    local order = {}
    lev.run(function()
      lev.spawn(function() order[#order + 1] = "spawned" end)
      coroutine.yield()
      order[#order + 1] = "main"
    end)
    assert.are.same({ "spawned", "main" }, order)
  end)
end)

describe("lev.spawn and task:join", function()
  after_each(assert_clean)

  it("returns true and the results of a task that finished", function()
    assert.are.same({ true, "a", 2 }, lev.run(function()
      local t = lev.spawn(function(x) lev.sleep(0.001); return x, 2 end, "a")
      return { t:join() }
    end))
  end)

  it("returns false and the error, with a traceback, of a failed task", function()
    local ok, err = lev.run(function()
      return lev.spawn(function() lev.sleep(0); error("task broke") end):join()
    end)
    assert.is_false(ok)
    assert.is_true(has(err, "task broke"))
    assert.is_true(has(err, "lev task traceback:"))
  end)

  it("returns a table error of a task as the same table", function()
    local e = {}
    local ok, err = lev.run(function()
      return lev.spawn(function() error(e) end):join()
    end)
    assert.is_false(ok)
    assert.are.equal(e, err)
  end)

  it("returns the same outcome to every joiner and on a second join", function()
    local got = lev.run(function()
      local t = lev.spawn(function() lev.sleep(0.002); return "v" end)
      local a = lev.spawn(function() return select(2, t:join()) end)
      local b = lev.spawn(function() return select(2, t:join()) end)
      local _, ra = a:join()
      local _, rb = b:join()
      local _, again = t:join()
      return { ra, rb, again }
    end)
    assert.are.same({ "v", "v", "v" }, got)
  end)

  it("reports the state of a task through task:status", function()
    local seen = lev.run(function()
      local s = {}
      local t = lev.spawn(function() lev.sleep(0.002) end)
      local f = lev.spawn(function() error("x") end)
      s[1] = t:status()
      lev.sleep(0)
      s[2] = t:status()
      t:join()
      s[3] = t:status()
      f:join()
      s[4] = f:status()
      return s
    end)
    assert.are.same({ "ready", "waiting", "done", "failed" }, seen)
  end)

  it("raises when a task joins itself", function()
    local ok, err = lev.run(function()
      local me
      me = lev.spawn(function()
        lev.sleep(0)
        return pcall(me.join, me)
      end)
      return select(2, me:join())
    end)
    assert.is_false(ok)
    assert.is_true(has(err, "cannot join itself"))
  end)

  it("raises when lev.spawn is called outside lev.run", function()
    assert.is_true(has(error_of(lev.spawn, function() end),
      "must be called while lev.run is running"))
  end)

  it("rejects a task body that is not a function", function()
    local ok, err = lev.run(function() return pcall(lev.spawn, "nope") end)
    assert.is_false(ok)
    assert.is_true(has(err, "function expected"))
  end)

  it("makes lev.run report a failed task that nobody joined", function()
    local err = error_of(lev.run, function()
      lev.spawn(function() error("lonely failure") end)
      lev.sleep(0.001)
      return "main is fine"
    end)
    assert.is_true(has(err,
      "lev.run: 1 spawned task failed and was not joined; the first: "))
    assert.is_true(has(err, "lonely failure"))
  end)

  it("counts every unjoined failure and quotes the first spawned", function()
    local err = error_of(lev.run, function()
      lev.spawn(function() lev.sleep(0.002); error("failure one") end)
      lev.spawn(function() error("failure two") end)
    end)
    assert.is_true(has(err, "2 spawned tasks failed and were not joined"))
    assert.is_true(has(err, "failure one"))
    assert.is_false(has(err, "failure two"))
  end)

  it("reports an unjoined failure even after its handle was collected", function()
    local err = error_of(lev.run, function()
      lev.spawn(function() lev.sleep(0.001); error("handle dropped") end)
      collectgarbage()
      collectgarbage()
      lev.sleep(0.005)
    end)
    assert.is_true(has(err, "handle dropped"))
  end)

  it("re-raises the table of an unjoined failure as it is", function()
    local e = {}
    assert.are.equal(e, error_of(lev.run, function()
      lev.spawn(function() error(e) end)
    end))
  end)

  it("does not report a failure that was joined", function()
    assert.are.equal("joined", lev.run(function()
      local t = lev.spawn(function() error("seen") end)
      assert(not t:join())
      return "joined"
    end))
  end)

  it("reports an unjoined failure only once", function()
    error_of(lev.run, function() lev.spawn(function() error("once") end) end)
    assert.are.equal("clean", lev.run(function() return "clean" end))
  end)

  it("closes the to-be-closed variables of a task that fails", function()
    local closed = false
    lev.run(function()
      local t = lev.spawn(function()
        local guard <close> = setmetatable({}, {
          __close = function() closed = true end })
        lev.sleep(0)
        error("with a guard")
      end)
      t:join()
    end)
    assert.is_true(closed)
  end)

  it("wakes a joiner that cannot hold all the results with an error", function()
    local ok, err = lev.run(function()
      local t = lev.spawn(function()
        lev.sleep(0) -- finish after the joiner parked
        return table.unpack({}, 1, 990000)
      end)
      local function hold(...) return t:join() end
      -- 20000 values already on the joiner's stack leave no room for 990000
      return hold(table.unpack({}, 1, 20000))
    end)
    assert.is_false(ok)
    assert.is_true(has(err, "too many results"))
  end)
end)

describe("lev.sleep and lev.now", function()
  after_each(assert_clean)

  it("wakes 1000 sleeping tasks in the order of their deadlines", function()
    local n = 1000
    local delays = {}
    for i = 1, n do delays[i] = i end
    math.randomseed(7)
    for i = n, 2, -1 do
      local j = math.random(i)
      delays[i], delays[j] = delays[j], delays[i]
    end
    local woke = {}
    lev.run(function()
      for i = 1, n do
        lev.spawn(function()
          -- A sleep counts from the call: its deadline is now + delay.
          local deadline = lev.now() + delays[i] / 1000
          lev.sleep(delays[i] / 1000)
          woke[#woke + 1] = { deadline = deadline, at = lev.now() }
        end)
      end
    end)
    assert.are.equal(n, #woke)
    -- Timers have millisecond resolution: deadlines less than 1 ms apart
    -- may wake either way round.
    for i = 1, n do
      assert.is_true(woke[i].at >= woke[i].deadline - 0.001,
                     "task " .. i .. " woke before its deadline")
      if i > 1 then
        assert.is_true(woke[i].deadline >= woke[i - 1].deadline - 0.001,
                       "task woke out of deadline order at " .. i)
      end
    end
  end)

  it("counts a sleep from its start even when the loop sat idle", function()
    lev.run(function() lev.sleep(0.001) end)
    local t0 = lev.now()
    while lev.now() - t0 < 0.1 do end -- no loop runs meanwhile
    local elapsed = lev.run(function()
      local t1 = lev.now()
      lev.sleep(0.05)
      return lev.now() - t1
    end)
    assert.is_true(elapsed >= 0.045, "slept only " .. elapsed)
  end)

  it("suspends the task for at least the given time", function()
    local elapsed = lev.run(function()
      local t0 = lev.now()
      lev.sleep(0.05)
      return lev.now() - t0
    end)
    assert.is_true(elapsed >= 0.045, "slept only " .. elapsed)
    assert.is_true(elapsed < 1, "slept " .. elapsed)
  end)

  it("wakes a task whose timer is due without waiting for later timers", function()
    local elapsed = lev.run(function()
      lev.spawn(function() lev.sleep(0.3) end)
      local t0 = lev.now()
      for _ = 1, 20 do lev.sleep(0) end
      lev.sleep(0.001)
      return lev.now() - t0
    end)
    assert.is_true(elapsed < 0.15, "20 zero sleeps took " .. elapsed)
  end)

  it("gives the other tasks a turn when asked to sleep 0 seconds", function()
    local order = {}
    lev.run(function()
      lev.spawn(function() order[#order + 1] = "other" end)
      lev.sleep(0)
      order[#order + 1] = "main"
    end)
    assert.are.same({ "other", "main" }, order)
  end)

  it("tells monotonic time in seconds as a float", function()
    local a = lev.now()
    assert.are.equal("float", math.type(a))
    local b = lev.now()
    assert.is_true(b >= a)
    local t = lev.run(function() lev.sleep(0.02); return lev.now() end)
    assert.is_true(t - a >= 0.015)
  end)

  it("rejects a negative, NaN, huge or non-number duration", function()
    local errs = lev.run(function()
      local out = {}
      for _, v in ipairs({ -1, 0 / 0, math.huge, "soon", {} }) do
        out[#out + 1] = select(2, pcall(lev.sleep, v))
      end
      return out
    end)
    assert.are.equal(5, #errs)
    for _, e in ipairs(errs) do
      assert.is_true(has(e, "bad argument #1"), e)
    end
  end)
end)

describe("lev.timeout", function()
  after_each(assert_clean)

  it("returns the results of fn when it finishes in time", function()
    assert.are.same({ "done", 7 }, lev.run(function()
      return { lev.timeout(1, function(x)
        lev.sleep(0.001)
        return "done", x
      end, 7) }
    end))
  end)

  it("returns nil and timeout and abandons fn at its wait point", function()
    local after_wait = false
    local r = lev.run(function()
      local r = { lev.timeout(0.01, function()
        lev.sleep(0.2)
        after_wait = true
      end) }
      lev.sleep(0.3)
      return r
    end)
    assert.are.same({ nil, "timeout" }, r)
    assert.is_false(after_wait)
  end)

  it("returns exactly two values when it times out", function()
    assert.are.equal(2, lev.run(function()
      return select("#", lev.timeout(0.001, function() lev.sleep(1) end))
    end))
  end)

  it("re-raises the error of fn with its traceback", function()
    local err = lev.run(function()
      return select(2, pcall(lev.timeout, 1, function()
        lev.sleep(0)
        error("inside the timeout")
      end))
    end)
    assert.is_true(has(err, "inside the timeout"))
    assert.is_true(has(err, "lev task traceback:"))
  end)

  it("re-raises a table error of fn as the same table", function()
    local e = {}
    local err = lev.run(function()
      return select(2, pcall(lev.timeout, 1, function() error(e) end))
    end)
    assert.are.equal(e, err)
  end)

  it("closes the to-be-closed variables of an abandoned fn", function()
    local closed = false
    lev.run(function()
      lev.timeout(0.05, function()
        local guard <close> = setmetatable({}, {
          __close = function() closed = true end })
        lev.sleep(10)
      end)
    end)
    assert.is_true(closed)
  end)

  it("lets the inner of two nested timeouts expire first", function()
    local r = lev.run(function()
      return { lev.timeout(1, function()
        local a, b = lev.timeout(0.01, function() lev.sleep(10) end)
        return "outer went on", a, b
      end) }
    end)
    assert.are.same({ "outer went on", nil, "timeout" }, r)
  end)

  it("abandons an inner timeout and its child when the outer expires", function()
    local inner_done = false
    local a, b = lev.run(function()
      return lev.timeout(0.01, function()
        lev.timeout(5, function() lev.sleep(10) end)
        inner_done = true
      end)
    end)
    assert.is_nil(a)
    assert.are.equal("timeout", b)
    assert.is_false(inner_done)
  end)

  it("does not report an abandoned fn as a failure", function()
    assert.are.equal("fine", lev.run(function()
      lev.timeout(0.001, function() lev.sleep(1) end)
      return "fine"
    end))
  end)

  it("leaves nothing behind after many timeouts, hit or missed", function()
    lev.run(function()
      for i = 1, 200 do
        if i % 2 == 0 then
          lev.timeout(0.001, function() lev.sleep(1) end)
        else
          lev.timeout(1, function() return i end)
        end
      end
    end)
    local handles, tasks = helper.leftovers()
    assert.are.same({ 0, 0 }, { handles, tasks })
  end)

  it("rejects a duration or fn of the wrong type", function()
    local e1, e2 = lev.run(function()
      return select(2, pcall(lev.timeout, "x", function() end)),
             select(2, pcall(lev.timeout, 1, "not a function"))
    end)
    assert.is_true(has(e1, "bad argument #1"))
    assert.is_true(has(e2, "bad argument #2"))
  end)
end)

describe("lev misuse", function()
  after_each(assert_clean)

  it("raises a clear error for lev.sleep outside a task", function()
    assert.is_true(has(error_of(lev.sleep, 0),
      "lev.sleep: must be called inside a lev task (lev.run)"))
  end)

  it("raises a clear error for lev.timeout outside a task", function()
    assert.is_true(has(error_of(lev.timeout, 1, function() end),
      "lev.timeout: must be called inside a lev task"))
  end)

  it("raises for a wait inside a plain coroutine inside a task", function()
    local ok, err = lev.run(function()
      return coroutine.wrap(function() return pcall(lev.sleep, 0) end)()
    end)
    assert.is_false(ok)
    assert.is_true(has(err, "lev.sleep: called from a plain coroutine "
      .. "(coroutine.wrap or coroutine.create) inside a lev task"))
  end)

  it("raises for task:join outside a task", function()
    local t
    lev.run(function() t = lev.spawn(function() end) end)
    assert.is_true(has(error_of(t.join, t), "task:join: must be called inside"))
  end)

  it("raises for a wait across a C call boundary such as table.sort", function()
    local ok, err = lev.run(function()
      return pcall(table.sort, { 3, 1, 2 }, function(a, b)
        lev.sleep(0)
        return a < b
      end)
    end)
    assert.is_false(ok)
    assert.is_true(has(err, "cannot suspend here"))
  end)

  it("raises for a task method called on something else", function()
    local t
    lev.run(function() t = lev.spawn(function() end) end)
    assert.is_true(has(error_of(t.join, {}), "lev.task expected"))
    assert.is_true(has(error_of(t.status, 1), "lev.task expected"))
  end)

  it("survives a parked task whose coroutine was closed by hand", function()
    local ok, err = lev.run(function()
      local co
      local t = lev.spawn(function()
        co = coroutine.running()
        lev.sleep(0.005)
      end)
      lev.sleep(0)
      assert(coroutine.close(co))
      return t:join()
    end)
    assert.is_false(ok)
    assert.is_true(has(err, "dead coroutine"))
  end)
end)

describe("lev deadlocks", function()
  after_each(assert_clean)

  it("raises a clear error when tasks wait on each other forever", function()
    local err = error_of(lev.run, function()
      local a, b
      a = lev.spawn(function() lev.sleep(0); return b:join() end)
      b = lev.spawn(function() lev.sleep(0); return a:join() end)
      return a:join()
    end)
    assert.is_true(has(err,
      "lev.run: deadlock: 3 tasks are waiting and nothing can wake them"))
  end)

  it("raises when spawned tasks wait forever after the main task returned", function()
    local err = error_of(lev.run, function()
      local a, b
      a = lev.spawn(function() lev.sleep(0); b:join() end)
      b = lev.spawn(function() lev.sleep(0); a:join() end)
      return "main is done"
    end)
    assert.is_true(has(err, "deadlock: 2 tasks are waiting"))
  end)

  it("mentions unjoined failures in the deadlock report", function()
    local err = error_of(lev.run, function()
      lev.spawn(function() error("the real cause") end)
      local a, b
      a = lev.spawn(function() lev.sleep(0); b:join() end)
      b = lev.spawn(function() lev.sleep(0); a:join() end)
      a:join()
    end)
    assert.is_true(has(err, "deadlock"))
    assert.is_true(has(err, "meanwhile 1 spawned task failed"))
    assert.is_true(has(err, "the real cause"))
  end)

  it("reports a read from a handler that never writes as a deadlock", function()
    local server_side
    local t0 = lev.now()
    local err = error_of(lev.run, function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        server_side = s
        s:read() -- waits for a request the client never sends
      end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      srv:close()
      return c:read() -- waits for a greeting the server never sends
    end)
    assert.is_true(has(err, "lev.run: deadlock: 1 task is waiting"))
    assert.is_true(has(err, "reads between lev.tcp streams of this process"))
    assert.is_true(lev.now() - t0 < 2)
    -- The handler is a daemon and still waits: closing its stream wakes
    -- it, and it finishes in the next run.
    server_side:close()
    lev.run(function() end)
  end)

  it("does not call a read a deadlock while a timer can still fire", function()
    local got = lev.run(function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        local req = s:read()
        s:write("re:" .. req)
      end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      srv:close()
      lev.spawn(function() lev.sleep(0.1); c:write("late") end)
      local r = c:read()
      c:close()
      return r
    end)
    assert.are.equal("re:late", got)
  end)

  it("leaves lev usable after a deadlock", function()
    error_of(lev.run, function()
      local a, b
      a = lev.spawn(function() lev.sleep(0); b:join() end)
      b = lev.spawn(function() lev.sleep(0); a:join() end)
      a:join()
    end)
    assert.are.equal(3, lev.run(function() lev.sleep(0); return 3 end))
  end)
end)

describe("lev at lua_close", function()
  after_each(assert_clean)

  it("tidies up open streams, a listener and parked tasks at exit", function()
    local ok, how, status, out = helper.run_child([[
      local lev = require("lev")
      local keep = {}
      lev.run(function()
        local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
          keep[#keep + 1] = s
          s:write(string.rep("w", 4 * 1024 * 1024)) -- parks: nobody reads
        end))
        keep.srv = srv
        keep.c1 = assert(lev.tcp.connect("127.0.0.1", srv:port()))
        keep.c2 = assert(lev.tcp.connect("127.0.0.1", srv:port()))
        lev.sleep(0.05)
        keep.task = lev.spawn(function() return 1 end)
      end)
      print("ok", #keep, lev._handles())
    ]])
    assert.is_true(ok, out)
    assert.are.equal("exit", how)
    assert.are.equal(0, status)
    assert.is_true(has(out, "ok\t2\t5\t"), out)
  end)

  it("tidies up a connect in flight and a sleeping handler at exit", function()
    local ok, _, status, out = helper.run_child([[
      local lev = require("lev")
      local keep, connecting = {}, false
      lev.run(function()
        local srv
        srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
          if not connecting then
            connecting = true
            lev.tcp.connect("localhost", srv:port(), { timeout = 50 })
          else
            lev.sleep(100)
          end
        end))
        keep.srv = srv
        keep.c1 = assert(lev.tcp.connect("127.0.0.1", srv:port()))
        keep.c2 = assert(lev.tcp.connect("127.0.0.1", srv:port()))
        while not connecting do lev.sleep(0) end
      end)
      print("ok", lev._handles())
    ]])
    assert.is_true(ok, out)
    assert.are.equal(0, status)
    assert.is_true(has(out, "ok"), out)
  end)
end)
