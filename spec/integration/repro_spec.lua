-- The reproducers of issue 12 (hostile input and misuse), as specs. Each
-- scenario runs in a child lua5.4 of its own (the build under test, with
-- the sanitizers when the suite has them), so that a crash, a sanitizer
-- report or a hang fails one spec instead of the whole run: the child must
-- exit 0, print END, and leave no sanitizer report. Hostile replies come
-- from spec/support/hostile_server.lua, started as a process of its own.
--
-- Item 5 (lev.run nested in a __close handler) is in
-- spec/unit/lev_hardening_spec.lua, item 16 (the method-sugar cache) in
-- spec/unit/client_mock_spec.lua.

local h = require("int_helper")

local BUILD = h.build
local TLS_PORT = math.tointeger(tonumber(os.getenv("LEVR_TLS_PORT") or ""))
local CERTS = os.getenv("LEVR_TLS_CERTS")

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local PRELUDE = [[
package.path = "lua/?.lua;lua/?/init.lua;spec/support/?.lua;" .. package.path
package.cpath = os.getenv("LEVR_BUILD") .. "/?.so;" .. package.cpath
local lev = require("lev")
local redis = require("redis")
local RPORT = tonumber(os.getenv("RPORT"))
local HPORT = tonumber(os.getenv("HPORT"))
local AUTH = { user = os.getenv("RUSER"), pass = os.getenv("RPASS") }
local function say(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  io.stdout:write(table.concat(t, "\t"), "\n")
  io.stdout:flush()
end
]]

-- Starts the hostile server (a process) in mode/arg; returns its port and a
-- stop function (kills it by PID).
local function hostile(mode, arg)
  local p = assert(io.popen("HOSTILE_LIFE=120 LEVR_BUILD=" .. shquote(BUILD)
    .. " lua5.4 -e " .. shquote("package.path = 'lua/?.lua;spec/support/?.lua;'"
      .. " .. package.path; package.cpath = os.getenv('LEVR_BUILD') .. "
      .. "'/?.so;' .. package.cpath; arg = { [0] = 'hostile_server.lua', "
      .. string.format("%q", mode) .. ", " .. string.format("%q", arg or "")
      .. " }; dofile('spec/support/hostile_server.lua')")
    .. " 2>&1"))
  local port = tonumber(p:read("l"))
  local pid = tonumber(p:read("l"))
  assert(port and pid, "the hostile server did not start")
  return port, function()
    os.execute("kill " .. pid .. " 2>/dev/null")
    p:close()
  end
end

-- Runs body (Lua source, after PRELUDE) in a child. opts: hostile =
-- { mode, arg }, env = { NAME = value }, ulimit_v (KB), build (a build
-- directory other than the suite's), timeout (seconds, default 60).
-- Returns the output; fails the spec unless the child ended well.
local function scenario(body, opts)
  opts = opts or {}
  local env = { RPORT = h.port, RUSER = h.user, RPASS = h.pass,
                LEVR_BUILD = opts.build or BUILD }
  local stop
  if opts.hostile then
    env.HPORT, stop = hostile(opts.hostile[1], opts.hostile[2])
  end
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(PRELUDE, body, '\nsay("END")\n')
  f:close()
  local vars = {}
  for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. shquote(v) end
  local cmd = "env " .. table.concat(vars, " ")
    .. " timeout -k 5 " .. (opts.timeout or 60) .. " lua5.4 " .. shquote(file)
  for _, a in ipairs(opts.args or {}) do cmd = cmd .. " " .. shquote(a) end
  if opts.ulimit_v then
    cmd = "ulimit -v " .. opts.ulimit_v .. "; " .. cmd
  end
  -- Another build runs without the suite's preloaded sanitizers (which
  -- could not even start under ulimit -v).
  if opts.build then cmd = "unset LD_PRELOAD; " .. cmd end
  -- The outer group also catches the shell's own "Aborted" notice.
  local p = assert(io.popen("{ (" .. cmd .. ") 2>&1; echo \"rc=$?\"; } 2>&1"))
  local out = p:read("a")
  p:close()
  os.remove(file)
  if stop then stop() end
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  assert(rc == 0, "the child failed (rc " .. tostring(rc) .. "):\n" .. out)
  assert(not out:find("AddressSanitizer", 1, true)
         and not out:find("runtime error:", 1, true),
         "sanitizer report:\n" .. out)
  assert(out:find("\nEND\n", 1, true) or out:find("^END\n"),
         "the child did not finish:\n" .. out)
  return out
end

describe("issue 12: memory safety and the runtime", function()
  it("item 1: a dropped subscriber that receives a large message from a "
     .. "real server (CLIENT TRACKING BCAST) is freed safely", function()
    scenario([[
      local CFG = { host = "127.0.0.1", port = RPORT }
      lev.run(function()
        local t = assert(redis.connect(CFG))
        do
          local s = assert(redis.connect(CFG))
          local sid = s:cmd("CLIENT", "ID")
          s:cmd("SUBSCRIBE", "__redis__:invalidate")
          assert(t:cmd("CLIENT", "TRACKING", "on", "REDIRECT", sid, "BCAST"))
        end -- s is dropped without close()
        -- another process writes 200,000 keys in one MSET
        local n, parts = 200000, {}
        parts[1] = "*" .. (1 + 2 * n) .. "\r\n$4\r\nMSET\r\n"
        for i = 1, n do
          parts[#parts + 1] = string.format("$12\r\ninv:%08d\r\n$1\r\nv\r\n", i)
        end
        local file = os.tmpname()
        local f = assert(io.open(file, "wb"))
        f:write(table.concat(parts))
        f:close()
        os.execute("redis-cli -p " .. RPORT .. " --pipe < " .. file
          .. " >/dev/null")
        os.remove(file)
        collectgarbage()
        lev.sleep(1)
        assert(t:cmd("PING") == "PONG")
        t:cmd("CLIENT", "TRACKING", "off")
        t:cmd("FLUSHDB")
        t:close(true)
      end)
    ]], { timeout = 120 })
  end)

  it("item 1: a dropped subscriber that receives a 500,000-element message "
     .. "(hostile bigmsg) is freed safely", function()
    -- The client is dropped just before the message arrives (0.3 s after
    -- SUBSCRIBE), so that the collector finalizes it while the message is
    -- converted.
    scenario([[
      lev.run(function()
        local hold = { assert(redis.connect("127.0.0.1:" .. HPORT)) }
        hold[1]:cmd("SUBSCRIBE", "x")
        lev.sleep(0.2)
        hold = nil
        lev.sleep(1.3)
      end)
    ]], { hostile = { "bigmsg", "500000" }, timeout = 120 })
  end)

  it("item 2: a RESP3 map with a NaN key from a real server fails that one "
     .. "command with nil, text and the runtime stays usable", function()
    local out = scenario([[
      local ok, err = pcall(lev.run, function()
        local c = assert(redis.connect("127.0.0.1:" .. RPORT))
        c:cmd("HELLO", 3)
        local script = "redis.setresp(3); local t = {}; "
          .. "t[{double = 0/0}] = 1; return {map = t}"
        local r = table.pack(pcall(c.cmd, c, "EVAL", script, 0))
        assert(r[1] == true, "the command raised: " .. tostring(r[2]))
        assert(r[2] == nil and type(r[3]) == "string",
               "expected nil, text; got " .. tostring(r[2]))
        say("nan:", r[3])
        c:close(true)
      end)
      assert(ok, err)
      assert(select(2, pcall(lev.run, function() return "ok" end)) == "ok")
    ]])
    assert.matches("nan:\t", out, 1, true)
  end)

  it("item 2: a NaN map key (hostile) fails that command only; a null "
     .. "key never escapes either", function()
    for _, mode in ipairs({ "nankey", "nilkey" }) do
      scenario([[
        local mode = ...
        lev.run(function()
          local c = assert(redis.connect("127.0.0.1:" .. HPORT))
          local r = table.pack(pcall(c.cmd, c, "GET", "k"))
          assert(r[1] == true, "the command raised: " .. tostring(r[2]))
          -- A NaN cannot be a Lua table key; a null key may be represented
          -- (as redis.null) or refused.
          assert((r[2] == nil and type(r[3]) == "string")
                 or (mode == "nilkey" and type(r[2]) == "table"),
                 mode .. ": expected nil, text; got " .. tostring(r[2]))
          c:close(true)
        end)
        assert(lev.run(function() return "again" end) == "again")
      ]], { hostile = { mode }, args = { mode } })
    end
  end)

  it("item 2: running out of memory converting a 100 MB reply (ulimit -v) "
     .. "fails that command and the runtime stays usable", function()
    -- The normal build: ASan's shadow memory cannot live under ulimit -v.
    scenario([[
      local ok, err = pcall(lev.run, function()
        local c = assert(redis.connect{ host = "127.0.0.1", port = HPORT,
                                        timeout = 20 })
        local r = table.pack(pcall(c.cmd, c, "GET", "k"))
        assert(r[1] == true, "the command raised: " .. tostring(r[2]))
        assert(r[2] == nil and type(r[3]) == "string",
               "expected nil, text; got " .. type(r[2]))
        say("big:", r[3])
      end)
      assert(ok, err)
      assert(select(2, pcall(lev.run, function() return "fine" end))
             == "fine")
    ]], { hostile = { "bigbulk", "100000000" }, build = "build",
          ulimit_v = 280000 })
  end)

  it("item 3: a finalizer that closes the client inside c:pipeline leaves "
     .. "the pipeline a result or an error, never a freed connection",
     function()
    scenario([[
      collectgarbage("incremental", 10, 400)
      lev.run(function()
        local c = assert(redis.connect("127.0.0.1:" .. RPORT))
        local cmds = {}
        for i = 1, 5000 do cmds[i] = { "PING" } end
        setmetatable({}, { __gc = function() c:close(true) end })
        local r, e = c:pipeline(cmds)
        assert((type(r) == "table" and #r == 5000)
               or (r == nil and type(e) == "string"),
               "pipeline gave " .. tostring(r) .. ", " .. tostring(e))
      end)
    ]])
  end)

  it("item 4: a finalizer that closes the client while pipeline replies "
     .. "are converted: the pipeline returns its results or an error",
     function()
    scenario([[
      collectgarbage("incremental", 10, 400)
      lev.run(function()
        local c = assert(redis.connect("127.0.0.1:" .. RPORT))
        c:cmd("SET", "gk", string.rep("v", 300))
        local cmds = {}
        for i = 1, 20000 do cmds[i] = { "GET", "gk" } end
        local t = lev.spawn(function() return c:pipeline(cmds) end)
        lev.spawn(function()
          setmetatable({}, { __gc = function() c:close(true) end })
        end)
        local ok, a, b = t:join()
        assert(ok, a)
        assert(a ~= c, "pipeline returned its own arguments")
        assert((type(a) == "table" and #a == 20000
                and a[20000] == string.rep("v", 300))
               or (a == nil and type(b) == "string"),
               "pipeline gave " .. tostring(a) .. ", " .. tostring(b))
      end)
    ]])
  end)
end)

describe("issue 12: replies to the wrong task, dirty connections", function()
  it("item 6: a rejected EXEC or DISCARD leaves no MULTI on the pooled "
     .. "connection", function()
    scenario([[
      local CFG = "127.0.0.1:" .. RPORT .. "/3"
      lev.run(function()
        for _, closer in ipairs{ { "EXEC", "x" }, { "DISCARD", "x" } } do
          local a = assert(redis.connect(CFG))
          assert(a:cmd("MULTI") == "OK")
          local r, e = a:cmd(table.unpack(closer))
          assert(r == nil and type(e) == "string")
          a:close()
          local b = assert(redis.connect(CFG))
          local s = b:cmd("SET", "repro:b-key", "1")
          assert(s == "OK", closer[1] .. " x: SET answered " .. tostring(s))
          assert(b:cmd("GET", "repro:b-key") == "1")
          b:cmd("DEL", "repro:b-key")
          b:close(true)
        end
      end)
    ]])
  end)

  it("item 6: WATCH then EXEC or DISCARD without MULTI leaves no WATCH on "
     .. "the pooled connection", function()
    scenario([[
      local CFG = "127.0.0.1:" .. RPORT .. "/3"
      lev.run(function()
        for _, closer in ipairs{ "EXEC", "DISCARD" } do
          local other = assert(redis.connect(CFG))
          local a = assert(redis.connect(CFG))
          assert(a:cmd("WATCH", "repro:wk") == "OK")
          a:cmd(closer)
          a:close()
          other:cmd("SET", "repro:wk", "changed")
          local b = assert(redis.connect(CFG))
          assert(b:cmd("MULTI") == "OK")
          assert(b:cmd("SET", "repro:b-key", "1") == "QUEUED")
          local ex = b:cmd("EXEC")
          assert(type(ex) == "table", closer .. ": the EXEC of the next "
            .. "borrower was aborted by a stale WATCH")
          b:cmd("DEL", "repro:wk", "repro:b-key")
          b:close(true)
          other:close(true)
        end
      end)
    ]])
  end)

  it("item 7: after MONITOR no other task gets a monitor line as its reply",
     function()
    scenario([[
      lev.run(function()
        local CFG = { host = "127.0.0.1", port = RPORT, timeout = 1 }
        local m = assert(redis.connect(CFG))
        local o = assert(redis.connect(CFG))
        m:cmd("MONITOR")
        for i = 1, 20 do
          local s = lev.spawn(function()
            return o:cmd("SET", "repro:monk", "secret-" .. i)
          end)
          local e = lev.spawn(function()
            return m:cmd("ECHO", "mine-" .. i)
          end)
          local ok, v, err = e:join()
          s:join()
          -- The reply, a failure, or a refusal raised as a programmer
          -- error that names MONITOR; never a monitor line.
          assert((ok and (v == "mine-" .. i
                          or (v == nil and type(err) == "string")))
                 or (not ok and tostring(v):find("MONITOR", 1, true)),
                 "ECHO mine-" .. i .. " got " .. tostring(v))
        end
        o:cmd("DEL", "repro:monk")
        m:close(true)
        o:close(true)
      end)
    ]])
  end)

  it("item 7: CLIENT REPLY SKIP from one task does not shift the replies "
     .. "of the others", function()
    scenario([[
      lev.run(function()
        local c = assert(redis.connect{ host = "127.0.0.1", port = RPORT })
        local a = lev.spawn(function() return c:cmd("CLIENT", "REPLY", "SKIP") end)
        local b = lev.spawn(function() return c:cmd("ECHO", "for-b") end)
        local d = lev.spawn(function() return c:cmd("ECHO", "for-d") end)
        local ra = table.pack(lev.timeout(2, function() return a:join() end))
        local rb = table.pack(lev.timeout(2, function() return b:join() end))
        local rd = table.pack(lev.timeout(2, function() return d:join() end))
        -- CLIENT REPLY SKIP is handled or refused (nil, text, or raised),
        -- but it returns.
        assert(ra[1] == true or (ra[1] == false and type(ra[2]) == "string"),
               "CLIENT REPLY SKIP never returned")
        assert(rb[1] == true and rb[2] == "for-b",
               "b got " .. tostring(rb[2]))
        assert(rd[1] == true and rd[2] == "for-d",
               "d got " .. tostring(rd[2]))
        c:close(true)
      end)
    ]])
  end)

  it("item 8: a pending reply shaped like a pub/sub message goes to its "
     .. "command when SUBSCRIBE is queued behind it", function()
    scenario([[
      lev.run(function()
        local c = assert(redis.connect{ host = "127.0.0.1", port = RPORT })
        c:cmd("DEL", "repro:evil")
        c:cmd("RPUSH", "repro:evil", "message", "chan", "payload")
        local l = lev.spawn(function()
          return c:cmd("LRANGE", "repro:evil", 0, -1)
        end)
        local s = lev.spawn(function() return c:cmd("SUBSCRIBE", "news") end)
        local rl = table.pack(lev.timeout(2, function() return l:join() end))
        local rs = table.pack(lev.timeout(2, function() return s:join() end))
        assert(rl[1] == true and type(rl[2]) == "table"
               and rl[2][1] == "message" and rl[2][3] == "payload",
               "LRANGE got " .. tostring(rl[2]))
        assert(rs[1] == true and rs[2] ~= nil, "SUBSCRIBE got "
               .. tostring(rs[2]) .. " " .. tostring(rs[3]))
        c:close(true)
        local d = assert(redis.connect{ host = "127.0.0.1", port = RPORT })
        d:cmd("DEL", "repro:evil")
        d:close(true)
      end)
    ]])
  end)
end)

describe("issue 12: limits and costs", function()
  it("item 9: max_reply bounds what a reply of many tiny values costs "
     .. "parsed, not only its wire bytes", function()
    scenario([[
      lev.run(function()
        -- 300,000 nulls: 0.9 MB on the wire, about 20 MB parsed.
        local c = assert(redis.connect{ host = "127.0.0.1", port = HPORT,
                                        max_reply = 4 * 1024 * 1024 })
        local v, e = c:cmd("GET", "k")
        assert(v == nil and e == "protocol error: reply too large",
               "4 MB max_reply accepted " .. tostring(v and #v))
        c:close(true)
        local d = assert(redis.connect{ host = "127.0.0.1", port = HPORT,
                                        max_reply = 64 * 1024 * 1024 })
        local w = assert(d:cmd("GET", "k"))
        assert(#w == 300000 and w[300000] == redis.null)
        d:close(true)
      end)
    ]], { hostile = { "nullarray", "300000" } })
  end)

  it("item 10: 5,000 tasks waiting on one client abandoned at once all "
     .. "time out and the client still answers", function()
    -- The O(N^2) cost itself is a speed: the benchmark's business.
    scenario([[
      lev.run(function()
        local c = assert(redis.connect{ host = "127.0.0.1", port = RPORT })
        local ts = {}
        for i = 1, 5000 do
          ts[i] = lev.spawn(function()
            return lev.timeout(0.5, function()
              return c:cmd("BLPOP", "repro:quad", 2)
            end)
          end)
        end
        for i = 1, 5000 do
          -- "timeout", or the failure that another task's abandonment
          -- brought on the shared connection (issue 21 item 1)
          local ok, v, e = ts[i]:join()
          assert(ok and v == nil and type(e) == "string", tostring(e))
        end
        local d = assert(redis.connect{ host = "127.0.0.1", port = RPORT })
        assert(d:cmd("PING") == "PONG")
        d:close(true)
        c:close(true)
      end)
    ]], { timeout = 120 })
  end)

  it("item 12: a status or an error line of 100 KB (a script's "
     .. "status_reply) is a reply, and the connection carries on", function()
    scenario([[
      lev.run(function()
        local c = assert(redis.connect("127.0.0.1:" .. RPORT))
        local other = lev.spawn(function() return c:cmd("ECHO", "innocent") end)
        local v = c:cmd("EVAL",
          "return redis.status_reply(string.rep('x', 100000))", 0)
        assert(v == string.rep("x", 100000), "status: " .. tostring(v))
        local ok, o = other:join()
        assert(ok and o == "innocent")
        local r, e = c:cmd("EVAL",
          "return redis.error_reply(string.rep('y', 100000))", 0)
        assert(r == nil and e:find(string.rep("y", 100000), 1, true),
               "error: " .. tostring(e and #e))
        assert(c:cmd("PING") == "PONG")
        c:close(true)
      end)
    ]])
  end)

  it("item 13: a host with a NUL or another control byte is invalid config",
     function()
    scenario([[
      lev.run(function()
        for _, host in ipairs{ "127.0.0.1\0", "127.0.0.1\0x", "127.0.0.1\r\n",
                               "\t127.0.0.1" } do
          local c, e = redis.connect{ host = host, port = RPORT, db = 5,
                                      auth = AUTH }
          assert(c == nil and e == "invalid config: host must not contain "
            .. "control characters", tostring(e))
        end
        local c, e = redis.connect("127.0.0.1\0:" .. RPORT)
        assert(c == nil and e:find("control characters", 1, true))
      end)
    ]])
  end)

  it("item 14: CLIENT NO-EVICT on does not reach the next borrower",
     function()
    scenario([[
      local CFG = "127.0.0.1:" .. RPORT .. "/4"
      lev.run(function()
        local a = assert(redis.connect(CFG))
        assert(a:cmd("CLIENT", "NO-EVICT", "on") == "OK")
        local aid = a:cmd("CLIENT", "ID")
        a:close()
        local b = assert(redis.connect(CFG))
        local flags = b:cmd("CLIENT", "INFO"):match("flags=(%S+)")
        if b:cmd("CLIENT", "ID") == aid then
          assert(not flags:find("e", 1, true),
                 "the pooled connection kept no-evict: flags=" .. flags)
        end
        b:close(true)
      end)
    ]])
  end)

  it("item 15: read() keeps its timeout when another task runs a command "
     .. "on the client", function()
    scenario([[
      lev.run(function()
        local c = assert(redis.connect{ host = "127.0.0.1", port = RPORT,
                                        timeout = 0.5 })
        c:cmd("SUBSCRIBE", "repro:quiet")
        local r = lev.spawn(function() return c:read() end)
        lev.sleep(0.1)
        c:cmd("PING")
        local got = table.pack(lev.timeout(5, function() return r:join() end))
        -- r:join() gives true, nil, "timeout" (read's own timeout); the
        -- outer lev.timeout would give nil, "timeout".
        assert(got[1] == true and got[2] == nil and got[3] == "timeout",
               "read() got " .. tostring(got[1]) .. " " .. tostring(got[2])
               .. " " .. tostring(got[3]))
        c:close(true)
      end)
    ]])
  end)
end)

describe("issue 12 item 11: one TLS context per configuration", function()
  local function need_tls()
    assert(TLS_PORT and CERTS, "LEVR_TLS_PORT and LEVR_TLS_CERTS must be set "
      .. "(see spec/integration/tls_spec.lua)")
  end

  it("loads the system trust store once for every ssl = true connect of a "
     .. "state, redis.connect and lev.tcp.connect alike", function()
    need_tls()
    local store = os.tmpname()
    assert(os.execute("cp " .. shquote(CERTS .. "/ca.crt") .. " "
      .. shquote(store)))
    scenario([[
      local P, store = tonumber(os.getenv("TLSPORT")), os.getenv("STORE")
      lev.run(function()
        local c = assert(redis.connect{ host = "127.0.0.1", port = P,
                                        ssl = true })
        assert(c:cmd("PING") == "PONG")
        c:close(true)
        local s = assert(lev.tcp.connect("127.0.0.1", P, { ssl = true }))
        s:close()
        -- Gone from disk: only a store loaded before can verify now.
        assert(os.remove(store))
        for _ = 1, 5 do
          local d = assert(redis.connect{ host = "127.0.0.1", port = P,
                                          ssl = true })
          assert(d:cmd("PING") == "PONG")
          d:close(true)
          local t = assert(lev.tcp.connect("127.0.0.1", P, { ssl = true }))
          t:close()
        end
      end)
    ]], { env = { TLSPORT = TLS_PORT, SSL_CERT_FILE = store, STORE = store,
                  SSL_CERT_DIR = "/nonexistent" } })
    os.remove(store)
  end)

  it("takes another CA file, or the same one renewed, as another "
     .. "configuration", function()
    need_tls()
    local ca = os.tmpname()
    scenario([[
      local P, ca, certs = tonumber(os.getenv("TLSPORT")), os.getenv("CA"),
        os.getenv("CERTS")
      local function copy(from, to)
        local f = assert(io.open(from, "rb"))
        local data = f:read("a")
        f:close()
        f = assert(io.open(to, "wb"))
        f:write(data)
        f:close()
      end
      local function try(path)
        local c, e = redis.connect{ host = "127.0.0.1", port = P,
                                    ssl = { ca = path } }
        if c then c:close(true) end
        return c ~= nil, e
      end
      lev.run(function()
        assert(try(certs .. "/ca.crt"))
        local ok, e = try(certs .. "/other-ca.crt")
        assert(not ok and e:find("certificate verify failed", 1, true), e)
        assert(try(certs .. "/ca.crt"))
        -- the same path, renewed with another CA, then back
        copy(certs .. "/ca.crt", ca)
        assert(try(ca))
        copy(certs .. "/other-ca.crt", ca)
        ok, e = try(ca)
        assert(not ok and e:find("certificate verify failed", 1, true),
               "a renewed CA file was not loaded again")
        copy(certs .. "/ca.crt", ca)
        assert(try(ca))
        -- more configurations than the cache holds still work
        for i = 1, 20 do
          local path = ca .. "." .. i
          copy(certs .. "/ca.crt", path)
          assert(try(path))
          os.remove(path)
        end
        assert(try(certs .. "/ca.crt"))
      end)
    ]], { env = { TLSPORT = TLS_PORT, CA = ca, CERTS = CERTS } })
    os.remove(ca)
  end)
end)
