-- int_helper: what the integration specs share.
--
-- The specs talk to a real redis-server that the test run starts
-- (tools/redis-server.sh start DIR --user "alice on >s3cret ~* &* +@all")
-- and names through LEVR_REDIS_PORT, LEVR_REDIS_USER and LEVR_REDIS_PASS.
-- Without them the specs fail loudly: an integration run that silently
-- tests nothing is worse than one that fails.

local lev = require("lev")
local redis = require("redis")

local M = {}

local function need(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error("integration specs: " .. name .. " is not set; start a server "
      .. "with tools/redis-server.sh start DIR --user \"alice on >s3cret "
      .. "~* &* +@all\" and pass LEVR_REDIS_PORT, LEVR_REDIS_USER and "
      .. "LEVR_REDIS_PASS", 0)
  end
  return v
end

M.host = "127.0.0.1"
M.port = math.tointeger(tonumber(need("LEVR_REDIS_PORT")))
if not M.port then
  error("integration specs: LEVR_REDIS_PORT must be a port number", 0)
end
M.user = need("LEVR_REDIS_USER")
M.pass = need("LEVR_REDIS_PASS")
M.build = os.getenv("LEVR_BUILD") or "build"
M.addr = M.host .. ":" .. M.port

-- A config table for the test server, logged in as the test user, with
-- the fields of extra on top. Pass noauth = true for the default user.
function M.cfg(extra, noauth)
  local t = { host = M.host, port = M.port }
  if not noauth then t.auth = { user = M.user, pass = M.pass } end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- Runs body as lev's main task; returns its results. lev.run only returns
-- once every task the body spawned has finished, so nothing a spec started
-- is left waiting afterwards.
function M.run(body, ...)
  return lev.run(body, ...)
end

function M.connect(extra, noauth)
  local c, err = redis.connect(M.cfg(extra, noauth))
  assert(c, err)
  return c
end

-- Seconds a call takes, then its results.
function M.timed(fn, ...)
  local t0 = lev.now()
  local r = table.pack(fn(...))
  return lev.now() - t0, table.unpack(r, 1, r.n)
end

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- redis-cli as the test user, for checks from outside the client under
-- test. Blocks the whole process: use it outside lev.run, or where the
-- server answers by itself.
function M.cli(...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = shquote((select(i, ...))) end
  local cmd = string.format("redis-cli -h %s -p %d --user %s --pass %s "
    .. "--no-auth-warning --raw %s 2>&1", M.host, M.port, shquote(M.user),
    shquote(M.pass), table.concat(args, " "))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return (out:gsub("\n$", ""))
end

-- CLIENT LIST, each client as a table of its fields.
function M.clients()
  local list = {}
  for line in M.cli("CLIENT", "LIST"):gmatch("[^\n]+") do
    local t = {}
    for k, v in line:gmatch("(%S+)=(%S*)") do t[k] = v end
    t.id = math.tointeger(tonumber(t.id))
    list[#list + 1] = t
  end
  return list
end

-- The server's view of one client (by CLIENT ID), or nil if it is gone.
function M.client(id)
  for _, t in ipairs(M.clients()) do
    if t.id == id then return t end
  end
  return nil
end

-- Polls cond() (which may use M.cli) until it holds or 2 s pass; a close
-- on our side reaches the server a moment later.
function M.eventually(cond)
  for _ = 1, 200 do
    if cond() then return true end
    os.execute("sleep 0.01")
  end
  return cond()
end

-- Is client id still connected, as seen by the server (after polling for
-- a close to arrive)?
function M.gone(id)
  return M.eventually(function() return M.client(id) == nil end)
end

-- Empties the pool of one config (inside lev.run), so a spec about
-- pooling starts from nothing.
function M.drain(extra, noauth)
  local cfg = M.cfg(extra, noauth)
  while redis.pool_size(cfg) > 0 do
    local c = assert(redis.connect(cfg))
    c:close(true)
  end
end

-- Starts a Lua script in a child lua5.4 with env applied (a table; false
-- unsets a variable), the in-tree modules on its paths and H (host, port,
-- user, pass) defined. Returns a handle whose result() waits and gives the
-- child's output and exit status.
function M.child(env, script)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(string.format("package.path = %q .. package.path\n"
    .. "package.cpath = %q .. package.cpath\n"
    .. "local H = { host = %q, port = %d, user = %q, pass = %q }\n",
    "lua/?.lua;lua/?/init.lua;", M.build .. "/?.so;", M.host, M.port,
    M.user, M.pass))
  f:write(script)
  f:close()
  local unset, vars = {}, {}
  for k, v in pairs(env) do
    if v == false then
      unset[#unset + 1] = "-u " .. k
    else
      vars[#vars + 1] = k .. "=" .. shquote(v)
    end
  end
  table.move(vars, 1, #vars, #unset + 1, unset)
  vars = unset
  local p = assert(io.popen("env " .. table.concat(vars, " ") .. " lua5.4 "
    .. shquote(file) .. " 2>&1"))
  return {
    result = function()
      local out = p:read("a")
      local ok = p:close()
      os.remove(file)
      return out, ok
    end,
  }
end

-- Between specs: an empty keyspace, and nothing of ours left blocked,
-- subscribed or inside MULTI on the server.
function M.reset()
  assert(M.cli("FLUSHALL") == "OK", "FLUSHALL failed")
end

function M.settled()
  return M.eventually(function()
    local info = M.cli("INFO", "clients")
    if not info:match("blocked_clients:0") then return false end
    for _, t in ipairs(M.clients()) do
      if t.sub ~= "0" or t.psub ~= "0" or t.multi ~= "-1"
         or (t.flags or ""):match("[OP]") then
        return false
      end
    end
    return true
  end)
end

-- A failure whose text matches pattern: nil, then the text.
function M.fails_like(pattern, ok, err)
  local assert = require("luassert")
  assert.is_nil(ok, "expected a failure")
  assert.is_string(err)
  assert.matches(pattern, err)
end

-- The server's id for a client, which must answer.
function M.client_id(c)
  local id, err = c:cmd("CLIENT", "ID")
  assert(math.type(id) == "integer", "CLIENT ID failed: " .. tostring(err))
  return id
end

-- Deletes every key starting with prefix, through client c (SCAN loop).
function M.delete_prefix(c, prefix)
  local cursor = "0"
  repeat
    local r = assert(c:cmd("SCAN", cursor, "MATCH", prefix .. "*",
                           "COUNT", 1000))
    cursor = r[1]
    if #r[2] > 0 then c:cmd("DEL", table.unpack(r[2])) end
  until cursor == "0"
end

return M
