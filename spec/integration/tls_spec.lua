-- TLS against real redis-servers, with certificates made by the openssl CLI
-- at test time (tools/make-test-certs.sh).
--
-- The test run starts the main TLS server (--port 0 --tls-port,
-- --tls-auth-clients optional, server.crt signed by ca.crt) and names it
-- with LEVR_TLS_PORT and LEVR_TLS_CERTS; the plain server comes from
-- int_helper (LEVR_REDIS_PORT). Servers with other certificates (expired,
-- wrong name) or requiring client certificates are started here.

local h = require("int_helper")
local lev = require("lev")
local redis = require("redis")
local fp = require("fault_proxy")

local HOST = "127.0.0.1"

local function need(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error("TLS integration specs: " .. name .. " is not set; make "
      .. "certificates with tools/make-test-certs.sh DIR, start "
      .. "tools/redis-server.sh start DIR2 --port 0 --tls-port PORT2 --tls-cert-file DIR/server.crt "
      .. "--tls-key-file DIR/server.key --tls-ca-cert-file DIR/ca.crt "
      .. "--tls-auth-clients optional, and pass LEVR_TLS_PORT (its TLS port) "
      .. "and LEVR_TLS_CERTS=DIR", 0)
  end
  return v
end

local TLS_PORT = math.tointeger(tonumber(need("LEVR_TLS_PORT")))
if not TLS_PORT then
  error("TLS integration specs: LEVR_TLS_PORT must be a port number", 0)
end
local CERTS = need("LEVR_TLS_CERTS")

local function cert(name)
  return CERTS .. "/" .. name
end

for _, f in ipairs({ "ca.crt", "other-ca.crt", "client.crt", "client.key",
                     "server.crt", "server.key", "expired.crt",
                     "expired.key", "wrongname.crt", "wrongname.key" }) do
  local fh = io.open(cert(f), "r")
  if not fh then
    error("TLS integration specs: " .. cert(f) .. " is missing (made by "
      .. "tools/make-test-certs.sh)", 0)
  end
  fh:close()
end

local run = h.run

-- The trusted test CA, with the fields of extra on top.
local function ssl(extra)
  local t = { ca = cert("ca.crt") }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- A config for a TLS server (the main one unless port is given).
local function tcfg(sslt, extra, port)
  local t = { host = HOST, port = port or TLS_PORT, ssl = sslt or ssl() }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function fails(text, ok, err, cat)
  assert.is_nil(ok)
  assert.equal(text, err)
  return cat
end

local fails_like = h.fails_like
local client_id = h.client_id

-- Empties the pool of one config (inside lev.run).
local function drain(cfg)
  while redis.pool_size(cfg) > 0 do
    assert(redis.connect(cfg)):close(true)
  end
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

-- Extra servers, started once for this file and stopped at its end.
local tmp
local extra = {}

local function start_server(name, crt, auth_clients)
  local dir = tmp .. "/" .. name
  local out, ok = sh(string.format("tools/redis-server.sh start %q --port 0 "
    .. "--tls-port PORT2 --tls-cert-file %q --tls-key-file %q "
    .. "--tls-ca-cert-file %q --tls-auth-clients %s", dir,
    cert(crt .. ".crt"), cert(crt .. ".key"), cert("ca.crt"), auth_clients))
  local port = ok and math.tointeger(tonumber(out:match("^%d+ (%d+)")))
  if not port then
    error("cannot start the " .. name .. " TLS redis-server: " .. out, 0)
  end
  extra[name] = { dir = dir, port = port }
  return port
end

-- Runs a Lua script in a child lua5.4 with env applied, for what OpenSSL
-- reads from the environment (SSL_CERT_FILE). The script gets PORT.
local function child(env, script)
  return h.child(env, string.format("local PORT = %d\n", TLS_PORT) .. script)
end

-- A lev.tcp server that plays the far end of a failed TLS handshake.
local function fake_server(handler)
  return assert(lev.tcp.listen(HOST, 0, handler))
end

-- Reads exactly n bytes from a lev.tcp stream; also returns the number
-- of read() calls it took.
local function read_n(s, n)
  local parts, got, reads = {}, 0, 0
  while got < n do
    local chunk, err = s:read()
    reads = reads + 1
    if not chunk then return nil, err or "eof" end
    parts[#parts + 1] = chunk
    got = got + #chunk
  end
  return table.concat(parts), reads
end

-- Sends one command in RESP over a lev.tcp stream, returns the reply line.
local function tcp_command(s, ...)
  local args = table.pack(...)
  local out = { "*" .. args.n .. "\r\n" }
  for i = 1, args.n do
    local a = tostring(args[i])
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  assert(s:write(table.concat(out)))
  return s:read()
end

-- 16 MiB and a bit that no shifted or repeated piece of itself matches:
-- 256 blocks of pseudo-random bytes, each led by its index.
local function big_value()
  local x, bytes = 12345, {}
  for i = 1, 65536 do
    x = (x * 1103515245 + 12345) % 2147483648
    bytes[i] = string.char(x >> 16 & 255)
  end
  local block, parts = table.concat(bytes), {}
  for i = 0, 255 do
    parts[#parts + 1] = string.format("%08d", i) .. block:sub(i + 1)
      .. block:sub(1, i)
  end
  return table.concat(parts)
end

describe("TLS:", function()
  lazy_setup(function()
    local out = sh("mktemp -d /tmp/levr-tls-spec.XXXXXX")
    tmp = assert(out:match("^(%S+)"), out)
    start_server("mtls", "server", "yes")
    start_server("expired", "expired", "optional")
    start_server("wrongname", "wrongname", "optional")
  end)

  lazy_teardown(function()
    -- In parallel: each stop waits for its server's process to go away.
    local stops = {}
    for _, s in pairs(extra) do
      stops[#stops + 1] = string.format("tools/redis-server.sh stop %q &",
                                        s.dir)
    end
    sh(table.concat(stops, " ") .. " wait")
    if tmp then sh(string.format("rm -rf %q", tmp)) end
  end)

  before_each(function()
    run(function()
      local c = assert(redis.connect(tcfg()))
      assert(c:cmd("FLUSHALL") == "OK")
      c:close()
    end)
  end)

  describe("redis.connect", function()
    it("succeeds with an ssl table naming the test CA, and runs commands "
       .. "and error replies over TLS", function()
      run(function()
        local c = assert(redis.connect(tcfg()))
        assert.equal("PONG", c:cmd("PING"))
        assert.equal("OK", c:cmd("SET", "k", "v"))
        assert.equal("v", c:get("k"))
        assert.equal(1, c:cmd("INCR", "n"))
        assert.equal(3, c:cmd("RPUSH", "l", "a", "b", "c"))
        assert.same({ "a", "b", "c" }, c:cmd("LRANGE", "l", 0, -1))
        local ok, err, cat = c:cmd("INCR", "k")
        assert.is_nil(ok)
        assert.equal("ERR value is not an integer or out of range", err)
        assert.equal("redis", cat)
        assert.is_true(c:close(true))
      end)
    end)

    it("succeeds with ssl = true, verifying against the store that "
       .. "SSL_CERT_FILE names, for redis.connect and lev.tcp.connect alike",
       function()
      local script = [[
        local lev = require("lev")
        local redis = require("redis")
        lev.run(function()
          local c, err = redis.connect({ host = "127.0.0.1", port = PORT,
                                         ssl = true, timeout = 5 })
          print("redis", c and c:cmd("PING") or err)
          if c then c:close(true) end
          local s, serr = lev.tcp.connect("127.0.0.1", PORT,
                                          { ssl = true, timeout = 5 })
          if s then
            assert(s:write("PING\r\n"))
            serr = s:read()
            s:close()
          end
          print("tcp", (serr:gsub("\r\n", "")))
        end)
      ]]
      local empty = tmp .. "/empty-cert-dir"
      sh(string.format("mkdir -p %q", empty))
      local good = child({ SSL_CERT_FILE = cert("ca.crt"),
                           SSL_CERT_DIR = empty }, script)
      local bad = child({ SSL_CERT_FILE = cert("other-ca.crt"),
                          SSL_CERT_DIR = empty }, script)
      local out, ok = good.result()
      assert.is_true(ok, out)
      assert.equal("redis\tPONG\ntcp\t+PONG\n", out)
      out, ok = bad.result()
      assert.is_true(ok, out)
      assert.equal("redis\tssl: certificate verify failed: self-signed "
        .. "certificate in certificate chain\ntcp\tssl: certificate verify "
        .. "failed: self-signed certificate in certificate chain\n", out)
    end)

    it("succeeds with mutual TLS: a server that requires client "
       .. "certificates accepts ssl.cert and ssl.key", function()
      run(function()
        local c = assert(redis.connect(tcfg(ssl{ cert = cert("client.crt"),
          key = cert("client.key") }, nil, extra.mtls.port)))
        assert.equal("PONG", c:cmd("PING"))
        assert.equal("OK", c:cmd("SET", "mtls", "yes"))
        assert.equal("yes", c:cmd("GET", "mtls"))
        c:close(true)
      end)
    end)

    it("succeeds when ssl.server_name names the certificate, checking it "
       .. "instead of the host", function()
      run(function()
        local c = assert(redis.connect(tcfg(ssl{
          server_name = "wrong.example" }, nil, extra.wrongname.port)))
        assert.equal("PONG", c:cmd("PING"))
        c:close(true)
      end)
    end)

    it("checks the host name rather than the IP address when host is a "
       .. "name", function()
      run(function()
        local c = assert(redis.connect(tcfg(nil, { host = "localhost" })))
        assert.equal("PONG", c:cmd("PING"))
        c:close(true)
        fails("ssl: certificate verify failed: hostname mismatch",
          redis.connect(tcfg(nil, { host = "localhost" },
                             extra.wrongname.port)))
      end)
    end)

    it("succeeds with verify = false even when the certificate has "
       .. "expired", function()
      run(function()
        local c = assert(redis.connect(tcfg({ verify = false }, nil,
                                            extra.expired.port)))
        assert.equal("PONG", c:cmd("PING"))
        c:close(true)
      end)
    end)
  end)

  describe("redis.connect fails with nil, \"ssl: ...\"", function()
    it("when the server's chain is not signed by the given CA", function()
      run(function()
        local cat = fails("ssl: certificate verify failed: self-signed "
          .. "certificate in certificate chain",
          redis.connect(tcfg{ ca = cert("other-ca.crt") }))
        assert.equal("io", cat)
        assert.equal(0, redis.pool_size(tcfg{ ca = cert("other-ca.crt") }))
      end)
    end)

    it("when the server's certificate has expired", function()
      run(function()
        fails("ssl: certificate verify failed: certificate has expired",
          redis.connect(tcfg(nil, nil, extra.expired.port)))
      end)
    end)

    it("when the server's certificate is for another name or address",
       function()
      run(function()
        fails("ssl: certificate verify failed: IP address mismatch",
          redis.connect(tcfg(nil, nil, extra.wrongname.port)))
        fails("ssl: certificate verify failed: hostname mismatch",
          redis.connect(tcfg(ssl{ server_name = "other.example" }, nil,
                             extra.wrongname.port)))
      end)
    end)

    it("when the server requires a client certificate that was not given",
       function()
      run(function()
        local c, err = redis.connect(tcfg(nil, nil, extra.mtls.port))
        if c then c:close(true) end
        fails_like("^ssl: .*the server requires a client certificate",
                   c, err)
      end)
    end)

    it("when the CA file cannot be read, before any connection is made",
       function()
      run(function()
        local missing = tmp .. "/no-such-ca.crt"
        local cat = fails("ssl: cannot load CA file " .. missing
          .. ": No such file or directory",
          redis.connect(tcfg{ ca = missing }))
        assert.equal("io", cat)
      end)
    end)

    it("when the other end speaks plain text and answers the ClientHello",
       function()
      run(function()
        local srv = fake_server(function(s)
          s:read()
          s:write("-ERR unknown command\r\n")
          s:read()
        end)
        fails("ssl: handshake failed: wrong version number (is the server "
          .. "speaking TLS?)", redis.connect(tcfg(nil, { timeout = 2 },
                                                 srv:port())))
        srv:close()
      end)
    end)

    it("when the connection is dropped in the middle of the handshake",
       function()
      run(function()
        local srv = fake_server(function(s)
          assert(s:read()) -- the ClientHello; the handler's return closes
        end)
        local dt, ok, err = h.timed(redis.connect,
          tcfg(nil, { timeout = 2 }, srv:port()))
        fails("ssl: connection closed during handshake", ok, err)
        assert.is_true(dt < 1, dt)
        srv:close()
      end)
    end)
  end)

  describe("redis.connect fails with nil, \"timeout\"", function()
    it("when the handshake gets no answer within timeout", function()
      run(function()
        local srv = fake_server(function(s)
          while s:read() do end -- reads the ClientHello, never answers
        end)
        local dt, ok, err = h.timed(redis.connect,
          tcfg(nil, { timeout = 0.3 }, srv:port()))
        fails("timeout", ok, err)
        assert.is_true(dt > 0.25 and dt < 1, dt)
        srv:close()
      end)
    end)

    it("when the other end is the plain redis-server, which waits for a "
       .. "line that never ends", function()
      run(function()
        local dt, ok, err = h.timed(redis.connect,
          tcfg(nil, { timeout = 0.3 }, h.port))
        fails("timeout", ok, err)
        assert.is_true(dt > 0.25 and dt < 1, dt)
      end)
    end)
  end)

  describe("volume over TLS:", function()
    it("a pipeline of 10,000 commands gets every reply, in order", function()
      run(function()
        local c = assert(redis.connect(tcfg()))
        local cmds = {}
        for i = 1, 10000 do
          cmds[i] = i % 2 == 1 and { "INCR", "ctr" } or { "GET", "ctr" }
        end
        local res = assert(c:pipeline(cmds))
        assert.equal(10000, #res)
        for i = 1, 10000 do
          local want = i % 2 == 1 and (i + 1) // 2 or tostring(i // 2)
          if res[i][1] ~= want then
            error(string.format("reply %d: %s, expected %s", i,
              tostring(res[i][1]), tostring(want)))
          end
        end
        c:close()
      end)
    end)

    it("a 16 MB value is stored and read back byte for byte", function()
      local v = big_value()
      assert.is_true(#v > 16 * 1024 * 1024)
      run(function()
        local c = assert(redis.connect(tcfg(nil, { timeout = 20 })))
        assert.equal("OK", c:cmd("SET", "big", v))
        assert.equal(#v, c:cmd("STRLEN", "big"))
        local got = c:cmd("GET", "big")
        assert.equal(#v, #got)
        assert.is_true(got == v, "the value came back changed")
        c:close()
      end)
    end)
  end)

  describe("a damaged or slow transport:", function()
    it("commands work when the TLS records arrive one byte at a time",
       function()
      run(function()
        local p = assert(fp.start{ upstream_port = TLS_PORT, split = 1 })
        local c = assert(redis.connect(tcfg(nil, { timeout = 5 }, p:port())))
        assert.equal("OK", c:cmd("SET", "split", string.rep("s", 3000)))
        assert.equal(string.rep("s", 3000), c:cmd("GET", "split"))
        c:close(true)
        p:close()
      end)
    end)

    it("a forged record makes read() return nil, \"ssl: ...\" while a "
       .. "large write is still in flight, and close() ends both", function()
      run(function()
        local p = assert(fp.start{ upstream_port = TLS_PORT })
        local s = assert(lev.tcp.connect(HOST, p:port(),
                                         { ssl = ssl(), timeout = 5 }))
        assert.equal("+PONG\r\n", tcp_command(s, "PING"))
        p.hold_requests = true
        local big = string.rep("x", 8 * 1024 * 1024)
        local writer = lev.spawn(function()
          return s:write("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$" .. #big
            .. "\r\n" .. big .. "\r\n")
        end)
        lev.sleep(0.05) -- the writer is parked on a full socket
        -- An application-data record of 32 bytes nobody encrypted.
        assert(p:conns()[1]:inject("\23\3\3\0\32" .. string.rep("\0", 32)))
        local r, err = lev.timeout(5, s.read, s)
        assert.is_nil(r)
        assert.matches("^ssl: read failed: ", err)
        s:close()
        local done, ok, werr = writer:join()
        assert.is_true(done)
        assert.is_nil(ok)
        assert.equal("closed", werr)
        p:close()
      end)
    end)

    it("a subscriber that falls 10,500 messages behind gets them all, in "
       .. "order, after its socket was paused and resumed", function()
      -- Reading pauses when 10,000 unread messages are queued; with
      -- 10,500 that happens in the last socket read, so the other 500 are
      -- left decrypted-but-undelivered in the TLS session, with nothing
      -- more to come from the socket: resuming must hand them over.
      local n = 10500
      run(function()
        local sub = assert(redis.connect(tcfg(nil, { timeout = 5 })))
        local pub = assert(redis.connect(tcfg()))
        assert.same({ "subscribe", "flood", 1 }, sub:cmd("SUBSCRIBE", "flood"))
        local cmds = {}
        for i = 1, n do cmds[i] = { "PUBLISH", "flood", i } end
        assert(pub:pipeline(cmds))
        pub:close()
        lev.sleep(0.2) -- the backlog builds up; reading pauses at 10,000
        local bad = lev.timeout(10, function()
          for i = 1, n do
            local m, err = sub:read()
            if not m then return "read " .. i .. ": " .. tostring(err) end
            if m.value[3] ~= tostring(i) then
              return "message " .. i .. " was " .. tostring(m.value[3])
            end
          end
          return false
        end)
        assert.is_false(bad)
        sub:close(true)
      end)
    end)
  end)

  describe("the pool", function()
    it("reuses a closed TLS connection for the same TLS settings",
       function()
      run(function()
        drain(tcfg())
        local c = assert(redis.connect(tcfg()))
        local id = client_id(c)
        c:close()
        assert.equal(1, redis.pool_size(tcfg()))
        c = assert(redis.connect(tcfg()))
        assert.equal(id, client_id(c))
        assert.equal(0, redis.pool_size(tcfg()))
        c:close()
      end)
    end)

    it("keeps TLS connections apart from plain ones and per TLS identity",
       function()
      run(function()
        drain(tcfg())
        local c = assert(redis.connect(tcfg()))
        local id = client_id(c)
        c:close()
        -- Another client identity gets its own connection.
        local mcfg = tcfg(ssl{ cert = cert("client.crt"),
                               key = cert("client.key") })
        local m = assert(redis.connect(mcfg))
        assert.are_not.equal(id, client_id(m))
        m:close(true)
        -- A plain config for the same host and port is never handed the
        -- pooled TLS connection: its own plain socket meets the TLS port.
        local plain = { host = HOST, port = TLS_PORT, timeout = 2 }
        assert.equal(0, redis.pool_size(plain))
        local p = redis.connect(plain)
        if p then
          local r, err = p:cmd("CLIENT", "ID")
          assert.is_nil(r, "a plain client got an answer from a TLS port")
          assert.is_string(err)
          p:close(true)
        end
        assert.equal(1, redis.pool_size(tcfg()))
        c = assert(redis.connect(tcfg()))
        assert.equal(id, client_id(c))
        c:close()
      end)
    end)
  end)

  describe("lev.tcp.connect with ssl", function()
    it("talks RESP to the TLS redis-server", function()
      run(function()
        local s = assert(lev.tcp.connect(HOST, TLS_PORT,
                                         { ssl = ssl(), timeout = 5 }))
        assert.equal("+PONG\r\n", tcp_command(s, "PING"))
        assert.equal("+OK\r\n", tcp_command(s, "SET", "t", "over tls"))
        assert.equal("$8\r\nover tls\r\n", tcp_command(s, "GET", "t"))
        s:close()
      end)
    end)

    it("reads a burst of replies in pieces without stalling on records "
       .. "that arrived together", function()
      -- 10,000 replies are ~70 KB: several TLS records that reach the
      -- socket in one go, while read() hands over one record at a time.
      local n = 10000
      run(function()
        local s = assert(lev.tcp.connect(HOST, TLS_PORT,
                                         { ssl = ssl(), timeout = 5 }))
        assert(s:write(string.rep("PING\r\n", n)))
        local got, reads = lev.timeout(5, read_n, s, 7 * n)
        assert.is_string(got, "the reader stalled: " .. tostring(reads))
        assert.is_true(got == string.rep("+PONG\r\n", n),
                       "the replies came back changed")
        assert.is_true(reads > 1, reads)
        s:close()
      end)
    end)

    it("does mutual TLS with ssl.cert and ssl.key", function()
      run(function()
        local s = assert(lev.tcp.connect(HOST, extra.mtls.port, { ssl =
          ssl{ cert = cert("client.crt"), key = cert("client.key") } }))
        assert.equal("+PONG\r\n", tcp_command(s, "PING"))
        s:close()
      end)
    end)

    it("returns nil, \"ssl: ...\" for a wrong CA, an expired or wrong-name "
       .. "certificate, and an unreadable CA file", function()
      run(function()
        fails("ssl: certificate verify failed: self-signed certificate in "
          .. "certificate chain", lev.tcp.connect(HOST, TLS_PORT,
            { ssl = { ca = cert("other-ca.crt") } }))
        fails("ssl: certificate verify failed: certificate has expired",
          lev.tcp.connect(HOST, extra.expired.port, { ssl = ssl() }))
        fails("ssl: certificate verify failed: IP address mismatch",
          lev.tcp.connect(HOST, extra.wrongname.port, { ssl = ssl() }))
        local missing = tmp .. "/missing.crt"
        fails("ssl: cannot load CA file " .. missing
          .. ": No such file or directory",
          lev.tcp.connect(HOST, TLS_PORT, { ssl = { ca = missing } }))
      end)
    end)

    it("reports a missing client certificate on the first read, where "
       .. "TLS 1.3 delivers the server's refusal", function()
      run(function()
        local s = assert(lev.tcp.connect(HOST, extra.mtls.port,
                                         { ssl = ssl() }))
        fails("ssl: read failed: tlsv13 alert certificate required (the "
          .. "server requires a client certificate)", s:read())
        s:close()
      end)
    end)

    it("reports the server's refusal of a missing client certificate from "
       .. "write() as well, not as a reset connection", function()
      run(function()
        local s = assert(lev.tcp.connect(HOST, extra.mtls.port,
                                         { ssl = ssl() }))
        lev.sleep(0.1) -- the server has refused, and closed
        local ok, err
        for _ = 1, 20 do -- the first writes may still be accepted
          ok, err = s:write("PING\r\n")
          if not ok then break end
          lev.sleep(0.02)
        end
        fails("ssl: read failed: tlsv13 alert certificate required (the "
          .. "server requires a client certificate)", ok, err)
        fails("ssl: read failed: tlsv13 alert certificate required (the "
          .. "server requires a client certificate)", s:read())
        s:close()
      end)
    end)
  end)
end)
