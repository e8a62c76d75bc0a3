-- A representative workload for the valgrind leak check (tools/
-- valgrind-check.sh): the runtime, TCP streams, the client (commands,
-- pipelines, pub/sub, pool, timeouts, failures, reconnect) and a lua_close
-- with handles, pooled connections, a parked task and a client still
-- reconnecting.
local lev = require("lev")
local redis = require("redis")
local port = assert(tonumber(os.getenv("LEVR_REDIS_PORT")), "LEVR_REDIS_PORT")
local addr = "127.0.0.1:" .. port

lev.run(function()
  local c = assert(redis.connect(addr))
  assert(c:cmd("SET", "vg", string.rep("x", 100000)) == "OK")
  assert(#c:cmd("GET", "vg") == 100000)
  assert(c:cmd("GET", "vg-missing") == nil)
  assert(select(2, c:cmd("INCR", "vg")):match("^ERR"))
  local cmds = {}
  for i = 1, 2000 do cmds[i] = { "ECHO", i } end
  assert(#c:pipeline(cmds) == 2000)
  local ts = {}
  for i = 1, 20 do
    ts[i] = lev.spawn(function() return c:cmd("INCR", "vg-n") end)
  end
  for i = 1, 20 do assert(ts[i]:join()) end
  assert(c:cmd("EVAL", "return {1,{2,'x'},false}", 0))
  c:close()                                   -- pooled
  local c2 = assert(redis.connect(addr))      -- reused
  c2:close(true)

  local sub = assert(redis.connect(addr))
  sub:cmd("SUBSCRIBE", "vg-a", "vg-b")
  local pub = assert(redis.connect(addr))
  pub:cmd("PUBLISH", "vg-a", "m")
  assert(sub:read())
  sub:close()

  local slow = assert(redis.connect({ host = "127.0.0.1", port = port,
                                      timeout = 0.05 }))
  pub:cmd("CLIENT", "PAUSE", 300, "ALL")  -- the server stops answering
  assert(select(2, slow:cmd("PING")) == "timeout")
  assert(select(2, slow:cmd("PING")) == "closed")
  assert(redis.connect({ host = "127.0.0.1", port = 1 }) == nil)
  assert(redis.connect({ host = "127.0.0.1", port = "x" }) == nil)
  assert(lev.timeout(0.01, function() lev.sleep(1) end) == nil)

  local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
    local d = s:read(); if d then s:write(d) end
  end))
  local s = assert(lev.tcp.connect("127.0.0.1", srv:port()))
  assert(s:write("ping")); assert(s:read() == "ping")
  s:close(); srv:close()
  pub:close()
  -- Reconnect: RESP3, a name, a selected db, a subscription and a push
  -- handler, across a CLIENT KILL; handler tasks; attempts running out;
  -- close() while reconnecting.
  local rcfg = { host = "127.0.0.1", port = port, protocol = 3,
                 name = "vg-rc", reconnect = { base = 0.01, max = 0.02,
                 wait = 2 } }
  local rc = assert(redis.connect(rcfg))
  local seen = {}
  rc:on("disconnect", function(text) seen[#seen + 1] = text end)
  local back = false
  rc:on("reconnect", function() back = true end)
  rc:on("push", function(v) seen[#seen + 1] = v[1] end)
  assert(rc:cmd("SELECT", 2) == "OK")
  assert(rc:cmd("SUBSCRIBE", "vg-rc"))
  assert(rc:cmd("CLIENT", "TRACKING", "on") == "OK")
  rc:cmd("GET", "vg-tracked")
  local killer = assert(redis.connect(addr))
  killer:cmd("SET", "vg-tracked", "1")
  killer:cmd("CLIENT", "KILL", "ID", rc:cmd("CLIENT", "ID"))
  assert(rc:cmd("ECHO", "again") == "again")   -- waits for the reconnect
  assert(back and rc:status() == "ready")
  rc:close()
  local gone = assert(redis.connect({ host = "127.0.0.1", port = port,
    reconnect = { base = 0.005, attempts = 2 } }))
  local ended = false
  gone:on("end", function() ended = true end)
  gone.cfg.port = 1                           -- nothing listens there
  killer:cmd("CLIENT", "KILL", "ID", gone:cmd("CLIENT", "ID"))
  while not ended do lev.sleep(0.01) end
  local stop = assert(redis.connect({ host = "127.0.0.1", port = port,
    reconnect = { strategy = "fixed", delay = 0.05 } }))
  stop.cfg.port = 1
  killer:cmd("CLIENT", "KILL", "ID", stop:cmd("CLIENT", "ID"))
  while stop:status() ~= "reconnecting" do lev.sleep(0.005) end
  stop:close()
  -- Left reconnecting for lua_close: its outage task sleeps.
  _G.leftover_rc = assert(redis.connect({ host = "127.0.0.1", port = port,
    reconnect = { strategy = "fixed", delay = 60 } }))
  _G.leftover_rc.cfg.port = 1
  killer:cmd("CLIENT", "KILL", "ID", _G.leftover_rc:cmd("CLIENT", "ID"))
  while _G.leftover_rc:status() ~= "reconnecting" do lev.sleep(0.005) end
  killer:close()

  -- Left open on purpose for lua_close: a pooled connection, a listener,
  -- an idle handler task.
  local keep = assert(redis.connect(addr)); keep:close()
  _G.leftover = assert(lev.tcp.listen("127.0.0.1", 0, function(st) st:read() end))
  _G.leftover_conn = assert(lev.tcp.connect("127.0.0.1", _G.leftover:port()))
end)
print("workload done")
