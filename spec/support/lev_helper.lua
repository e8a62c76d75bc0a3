-- Helpers for the lev specs: leak checks, error capture, child processes.
local lev = require("lev")

local helper = {}

-- After a full collection: the loop's handles that are not closing and the
-- task structs still alive (lev._handles, an undocumented debug hook).
function helper.leftovers()
  collectgarbage()
  collectgarbage()
  return lev._handles()
end

-- Lets parked connection handlers (daemon tasks) see the EOF of clients
-- that a finished run closed: short runs until no task is left, for at
-- most about two seconds. Returns the task count left.
function helper.drain()
  local _, tasks = helper.leftovers()
  local deadline = lev.now() + 2
  while tasks > 0 and lev.now() < deadline do
    lev.run(function() lev.sleep(0.005) end)
    _, tasks = helper.leftovers()
  end
  return tasks
end

-- Runs fn under pcall and returns its error (fails when fn succeeds).
function helper.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then
    error("expected an error, got success", 2)
  end
  return err
end

-- True when s contains text (plain search).
function helper.has(s, text)
  return type(s) == "string" and s:find(text, 1, true) ~= nil
end

-- A shell-quoted string.
local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs `lua5.4 -e code` with the same module paths as this process.
-- Returns ok, exit kind, code, and the combined output.
function helper.run_child(code)
  local prelude = ("package.cpath = %q; package.path = %q\n")
    :format(package.cpath, package.path)
  local cmd = "lua5.4 -e " .. quote(prelude .. code) .. " 2>&1"
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, how, status = p:close()
  return ok, how, status, out
end

-- The leak checks specs end with (after_each): no libuv handle and no lev
-- task left behind, after a full collection; the drained form first gives
-- parked connection handlers (daemons) a few turns to see their EOF.
function helper.assert_clean()
  local assert = require("luassert")
  local handles, tasks = helper.leftovers()
  assert.are.equal(0, handles, "live libuv handles left behind")
  assert.are.equal(0, tasks, "lev tasks left behind")
end

function helper.assert_clean_drained()
  helper.drain()
  helper.assert_clean()
end

return helper
