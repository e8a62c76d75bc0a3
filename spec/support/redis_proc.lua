-- redis_proc: redis-server processes that a spec owns: started on a free
-- loopback port, killed by PID, started again on the same port.
--
--   local srv = redis_proc.start{ conf = { 'rename-command HELLO ""' } }
--   srv.port; srv:kill(); srv:restart(); srv:stop()
--
-- conf lines go into a config file (redis-server takes a config file as
-- its first argument; rename-command is a config directive). Every server
-- gets the ACL user alice/s3cret, like the suite's main server. Starting
-- and stopping block the whole process for a moment (they wait for the
-- server's log to say it is ready), which specs accept: a reconnect timer
-- that is late is still a reconnect timer.

local M = {}

M.user, M.pass = "alice", "s3cret"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function sleep(s) os.execute("sleep " .. s) end

local Server = {}
Server.__index = Server

function Server:pid()
  local s = read(self.dir .. "/redis.pid")
  return s and math.tointeger(tonumber(s:match("%d+")))
end

-- Running (a zombie waiting to be reaped counts as gone: its port is
-- free and it answers nothing).
function Server:alive()
  local pid = self.last_pid
  if not pid then return false end
  local stat = read("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- Starts redis-server on self.port; true, or false and the log.
function Server:launch()
  os.remove(self.dir .. "/redis.pid")
  os.remove(self.dir .. "/redis.log")
  local cmd = string.format("redis-server %s/redis.conf --bind 127.0.0.1 "
    .. "--port %d --save '' --appendonly no --daemonize yes "
    .. "--pidfile %s/redis.pid --logfile %s/redis.log --dir %s",
    self.dir, self.port, self.dir, self.dir, self.dir)
  sh(cmd)
  for _ = 1, 100 do
    local log = read(self.dir .. "/redis.log") or ""
    if log:find("Ready to accept connections", 1, true) then
      for _ = 1, 50 do
        self.last_pid = self:pid()
        if self.last_pid then return true end
        sleep(0.02)
      end
    end
    if log:find("Address already in use", 1, true)
       or log:find("aborting", 1, true) then
      return false, log
    end
    sleep(0.05)
  end
  return false, read(self.dir .. "/redis.log") or "(no log)"
end

-- Kills the server by its PID (SIGKILL unless sig is given) and waits
-- until the process is gone.
function Server:kill(sig)
  local pid = self.last_pid
  if not pid then return end
  os.execute(string.format("kill -%s %d 2>/dev/null", sig or "KILL", pid))
  for _ = 1, 400 do
    if not self:alive() then break end
    sleep(0.01)
  end
  assert(not self:alive(), "redis-server " .. pid .. " did not exit")
  self.last_pid = nil
end

-- Starts it again on the same port (the old one must be gone).
function Server:restart()
  assert(not self:alive(), "restart: the server is still running")
  local ok, log
  for _ = 1, 20 do -- the port may be in TIME_WAIT for a moment
    ok, log = self:launch()
    if ok then return end
    sleep(0.1)
  end
  error("redis-server did not start again on port " .. self.port .. ":\n"
    .. tostring(log))
end

function Server:stop()
  if self:alive() then self:kill("TERM") end
  os.execute("rm -rf " .. self.dir)
end

-- redis-cli against this server as alice; the output without the last
-- newline.
function Server:cli(...)
  local args = {}
  for i = 1, select("#", ...) do
    args[i] = "'" .. tostring((select(i, ...))):gsub("'", "'\\''") .. "'"
  end
  local _, out = sh(string.format("redis-cli -h 127.0.0.1 -p %d --user %s "
    .. "--pass %s --no-auth-warning --raw %s", self.port, M.user, M.pass,
    table.concat(args, " ")))
  return (out:gsub("\n$", ""))
end

-- start{ conf = { lines } } -> server. Fails loudly when redis-server
-- cannot start: a spec that needs a real server never skips.
function M.start(opts)
  opts = opts or {}
  local ok, which = sh("command -v redis-server")
  assert(ok, "redis_proc: redis-server is not installed: " .. which)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local f = assert(io.open(dir .. "/redis.conf", "w"))
  f:write("user " .. M.user .. " on >" .. M.pass .. " ~* &* +@all\n")
  for _, line in ipairs(opts.conf or {}) do f:write(line, "\n") end
  f:close()
  local self = setmetatable({ dir = dir }, Server)
  local log
  for _ = 1, 20 do
    local rnd = assert(io.open("/dev/urandom", "rb")):read(2)
    self.port = 20000 + (rnd:byte(1) * 256 + rnd:byte(2)) % 40000
    local started
    started, log = self:launch()
    if started then return self end
  end
  os.execute("rm -rf " .. dir)
  error("redis_proc: redis-server failed to start:\n" .. tostring(log))
end

return M
