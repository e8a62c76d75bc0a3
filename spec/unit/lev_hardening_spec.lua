-- lev: the end of a run while Lua code runs in it (__close handlers of the
-- tasks it drops), the error a plain coroutine inside a task gets, and how a
-- task's traceback reads under the standalone interpreter (issues 12, 21).
local lev = require("lev")
local helper = require("lev_helper")

local error_of, has = helper.error_of, helper.has

local function assert_clean()
  local handles, tasks = helper.leftovers()
  assert.are.equal(0, handles, "live libuv handles left behind")
  assert.are.equal(0, tasks, "lev tasks left behind")
end

describe("lev.run ending while it drops tasks", function()
  after_each(assert_clean)

  it("refuses a lev.run nested in a __close handler of a dropped task, "
     .. "and raises the main task's error", function()
    local nested
    local err = error_of(lev.run, function()
      lev.spawn(function()
        local x <close> = setmetatable({}, { __close = function()
          nested = table.pack(pcall(lev.run, function()
            lev.sleep(0.01)
            return "inner"
          end))
        end })
        lev.sleep(10)
      end)
      lev.spawn(function() lev.sleep(10) end)
      lev.sleep(0.01)
      error("main fails")
    end)
    assert.is_true(has(err, "main fails"))
    assert.is_false(nested[1])
    assert.is_true(has(nested[2], "lev.run: already running"), nested[2])
    -- The runtime is usable afterwards.
    assert.are.equal("again", lev.run(function()
      lev.sleep(0)
      return "again"
    end))
  end)

  it("refuses lev.spawn from a __close handler of a dropped task", function()
    local spawned
    error_of(lev.run, function()
      lev.spawn(function()
        local x <close> = setmetatable({}, { __close = function()
          spawned = table.pack(pcall(lev.spawn, function() end))
        end })
        lev.sleep(10)
      end)
      lev.sleep(0)
      error("main fails")
    end)
    assert.is_false(spawned[1])
    assert.is_true(has(spawned[2], "lev.spawn: lev.run is ending"),
                   spawned[2])
  end)

  it("survives a handler that collects the handles of finished tasks",
     function()
    -- The handler drops every task handle and collects: the abandon loop
    -- must not walk into a freed task.
    local handles = {}
    error_of(lev.run, function()
      for i = 1, 50 do
        handles[#handles + 1] = lev.spawn(function() return i end)
        lev.spawn(function()
          local x <close> = setmetatable({}, { __close = function()
            handles = {}
            collectgarbage()
            collectgarbage()
          end })
          lev.sleep(10)
        end)
        handles[#handles + 1] = lev.spawn(function() return i end)
      end
      lev.sleep(0)
      error("main fails")
    end)
    assert.are.equal(0, #handles)
  end)

  it("runs __close handlers of dropped tasks after a deadlock too", function()
    local closed, nested = 0, 0
    local function guarded(fn)
      return function()
        local x <close> = setmetatable({}, { __close = function()
          closed = closed + 1
          if not pcall(lev.run, function() end) then nested = nested + 1 end
        end })
        lev.sleep(0)
        return fn()
      end
    end
    local err = error_of(lev.run, function()
      local a, b
      a = lev.spawn(guarded(function() return b:join() end))
      b = lev.spawn(guarded(function() return a:join() end))
      return a:join()
    end)
    assert.is_true(has(err, "deadlock"), err)
    assert.are.equal(2, closed)
    assert.are.equal(2, nested)
  end)
end)

describe("lev's task check", function()
  after_each(assert_clean)

  it("says that a plain coroutine inside a task cannot wait, and what to "
     .. "do instead", function()
    local err = lev.run(function()
      local gen = coroutine.wrap(function()
        coroutine.yield(1)
        lev.sleep(0)
      end)
      gen()
      return error_of(gen)
    end)
    assert.is_true(has(err, "lev.sleep: called from a plain coroutine "
      .. "(coroutine.wrap or coroutine.create) inside a lev task"), err)
    assert.is_true(has(err, "lev.spawn"), err)
  end)

  it("keeps the plain message outside lev.run", function()
    local err = error_of(lev.sleep, 0)
    assert.is_true(has(err, "lev.sleep: must be called inside a lev task "
      .. "(lev.run)"), err)
  end)

  it("lets the task use a generator that does not wait", function()
    assert.are.same({ 1, 2, 3 }, lev.run(function()
      local out = {}
      for v in coroutine.wrap(function()
        for i = 1, 3 do coroutine.yield(i) end
      end) do
        out[#out + 1] = v
        lev.sleep(0)
      end
      return out
    end))
  end)
end)

describe("a task's traceback", function()
  after_each(assert_clean)

  it("reads as one traceback under the standalone interpreter", function()
    local ok, _, status, out = helper.run_child([[
      local lev = require("lev")
      local function inner() error("boom") end
      lev.run(function()
        lev.timeout(1, function() inner() end)
      end)
    ]])
    assert.is_falsy(ok)
    assert.are.equal(1, status)
    assert.is_true(has(out, "boom\nlev task traceback:\n"), out)
    -- one Lua traceback (the interpreter's, from lev.run outwards)
    local _, n = out:gsub("stack traceback:", "")
    assert.are.equal(1, n, out)
    local _, m = out:gsub("lev task traceback:", "")
    assert.are.equal(1, m, out)
    -- innermost first: the error, the child, lev.timeout, then lev.run
    local e = out:find("in function 'error'", 1, true)
    local t = out:find("in function 'lev.timeout'", 1, true)
    local r = out:find("in function 'lev.run'", 1, true)
    assert.is_truthy(e and t and r, out)
    assert.is_true(e < t and t < r, out)
  end)

  it("keeps a table error as the same table", function()
    local e = { code = 7 }
    assert.are.equal(e, error_of(lev.run, function()
      lev.timeout(1, function() error(e) end)
    end))
  end)
end)
