-- The bundled mock Redis server (redis.mock), standalone, for redis-cli,
-- telnet or any Redis client:
--
--   lua5.4 examples/mock-server.lua --port 6390     (in the checkout)
--   redis-cli -p 6390 SET greeting hello
--
-- It needs `make build` first (or the rock installed); from another
-- directory give its path: lua5.4 /path/to/lev-redis/examples/mock-server.lua
--
-- Options:
--   --port N            port to listen on (default 6379; 0 picks a free one)
--   --host ADDR         address to bind (default 127.0.0.1)
--   --password PW       password of the default user (AUTH PW)
--   --user NAME:PASS    an ACL-style user (AUTH NAME PASS); repeatable
--   --delay SECONDS     delay every reply (to try client timeouts)
--
-- It prints "listening on HOST:PORT" once ready and serves until killed.
-- Run from a checkout it finds the in-tree modules (lua/ and build/, or
-- $LEVR_BUILD); installed with the rock it uses the installed ones.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
if not pcall(require, "lev") then
  local build = os.getenv("LEVR_BUILD") or (here .. "/../build")
  package.cpath = build .. "/?.so;" .. package.cpath
end
package.path = package.path .. ";" .. here .. "/../lua/?.lua;"
  .. here .. "/../lua/?/init.lua"

local lev = require("lev")
local mock = require("redis.mock")

local function usage(msg)
  io.stderr:write("mock-server: ", msg, "\n",
    "usage: lua5.4 examples/mock-server.lua [--port N] [--host ADDR] ",
    "[--password PW] [--user NAME:PASS]... [--delay SECONDS]\n")
  os.exit(2)
end

local opts = { port = 6379, host = "127.0.0.1", users = {} }
local delay
local i = 1
while i <= #arg do
  local a, v = arg[i], arg[i + 1]
  if a == "--port" then
    opts.port = math.tointeger(tonumber(v or ""))
    if not opts.port or opts.port < 0 or opts.port > 65535 then
      usage("--port needs a number in 0..65535")
    end
  elseif a == "--host" and v then
    opts.host = v
  elseif a == "--password" and v then
    opts.password = v
  elseif a == "--user" and v and v:find(":", 1, true) then
    local name, pass = v:match("^([^:]*):(.*)$")
    opts.users[name] = pass
  elseif a == "--delay" then
    delay = tonumber(v or "")
    if not delay or delay < 0 then usage("--delay needs seconds") end
  else
    usage("unknown or incomplete option " .. tostring(a))
  end
  i = i + 2
end

lev.run(function()
  local srv, err = mock.start(opts)
  if not srv then
    io.stderr:write("mock-server: cannot listen on ", opts.host, ":",
      opts.port, ": ", tostring(err), "\n")
    os.exit(1)
  end
  if delay then srv:script{ delay = delay } end
  print(("listening on %s:%d"):format(opts.host, srv:port()))
  io.stdout:flush()
  -- The server does not keep lev.run alive by itself: this task does.
  while true do lev.sleep(3600) end
end)
