-- A representative workload for the valgrind leak check (tools/
-- valgrind-check.sh): the runtime, TCP streams, the client (commands,
-- pipelines, pub/sub, pool, timeouts, failures) and a lua_close with
-- handles, pooled connections and a parked task still open.
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
  -- Left open on purpose for lua_close: a pooled connection, a listener,
  -- an idle handler task.
  local keep = assert(redis.connect(addr)); keep:close()
  _G.leftover = assert(lev.tcp.listen("127.0.0.1", 0, function(st) st:read() end))
  _G.leftover_conn = assert(lev.tcp.connect("127.0.0.1", _G.leftover:port()))
end)
print("workload done")
