-- lev.tcp.connect's ssl option without a TLS server: argument checks and
-- every handshake failure a lev.tcp server in this process can stage.
-- (Successful TLS, certificates and the read path are in
-- spec/integration/tls_spec.lua, against redis-server.)
local lev = require("lev")
local helper = require("lev_helper")

local has = helper.has
local HOST = "127.0.0.1"

local assert_clean = helper.assert_clean_drained

local function fails(text, ok, err)
  assert.is_nil(ok)
  assert.are.equal(text, err)
end

-- A server whose handler gets each accepted stream.
local function server(handler)
  return assert(lev.tcp.listen(HOST, 0, handler))
end

-- Answers the first bytes it gets like a plain-text Redis would.
local function plain_server()
  return server(function(s)
    s:read()
    s:write("-ERR unknown command\r\n")
    s:read()
  end)
end

describe("lev.tcp.connect with ssl", function()
  after_each(assert_clean)

  it("raises an argument error for every invalid ssl value", function()
    local cases = {
      { "yes", "ssl must be true, false or a table" },
      { 1, "ssl must be true, false or a table" },
      { { verify = 1 }, "ssl.verify must be a boolean" },
      { { verify = "no" }, "ssl.verify must be a boolean" },
      { { ca = "" }, "ssl.ca must be a non-empty string" },
      { { ca = 42 }, "ssl.ca must be a non-empty string" },
      { { cert = true }, "ssl.cert must be a non-empty string" },
      { { cert = "c.crt", key = {} }, "ssl.key must be a non-empty string" },
      { { server_name = "" }, "ssl.server_name must be a non-empty string" },
      { { key = "k.key" }, "ssl.key needs ssl.cert" },
    }
    local errs = lev.run(function()
      local out = {}
      for i, c in ipairs(cases) do
        local ok, err = pcall(lev.tcp.connect, HOST, 1, { ssl = c[1] })
        assert.is_false(ok, "case " .. i .. " did not raise")
        out[i] = err
      end
      return out
    end)
    for i, c in ipairs(cases) do
      assert.is_true(has(errs[i], "bad argument #3"), errs[i])
      assert.is_true(has(errs[i], c[2]), errs[i])
    end
  end)

  it("connects in plain text with ssl = false", function()
    local got = lev.run(function()
      local srv = server(function(s)
        local chunk = s:read()
        s:write(chunk)
      end)
      local s = assert(lev.tcp.connect(HOST, srv:port(), { ssl = false }))
      assert(s:write("plain"))
      local r = s:read()
      s:close()
      srv:close()
      return r
    end)
    assert.are.equal("plain", got)
  end)

  it("returns nil, \"ssl: ...\" for a CA or certificate file it cannot "
     .. "load, without connecting", function()
    local accepted = 0
    lev.run(function()
      local srv = server(function() accepted = accepted + 1 end)
      local missing = os.tmpname()
      os.remove(missing)
      fails("ssl: cannot load CA file " .. missing
        .. ": No such file or directory",
        lev.tcp.connect(HOST, srv:port(), { ssl = { ca = missing } }))
      fails("ssl: cannot load certificate " .. missing
        .. ": No such file or directory",
        lev.tcp.connect(HOST, srv:port(), { ssl = { verify = false,
          cert = missing } }))
      lev.sleep(0.05)
      srv:close()
    end)
    assert.are.equal(0, accepted)
  end)

  it("returns nil, \"ssl: ...\" when the server answers in plain text",
     function()
    lev.run(function()
      local srv = plain_server()
      fails("ssl: handshake failed: wrong version number (is the server "
        .. "speaking TLS?)",
        lev.tcp.connect(HOST, srv:port(), { ssl = true, timeout = 2 }))
      fails("ssl: handshake failed: wrong version number (is the server "
        .. "speaking TLS?)",
        lev.tcp.connect(HOST, srv:port(), { ssl = { verify = false } }))
      srv:close()
    end)
  end)

  it("returns nil, \"ssl: connection closed during handshake\" when the "
     .. "server drops the connection after the ClientHello", function()
    local hello
    lev.run(function()
      local srv = server(function(s)
        hello = s:read()
      end)
      fails("ssl: connection closed during handshake",
        lev.tcp.connect(HOST, srv:port(), { ssl = true, timeout = 2 }))
      srv:close()
    end)
    -- A TLS handshake record (22) was what the server got.
    assert.is_string(hello)
    assert.are.equal(22, hello:byte(1))
  end)

  it("returns nil, \"timeout\" when the handshake gets no answer within "
     .. "timeout", function()
    local dt, ok, err = lev.run(function()
      local srv = server(function(s)
        while s:read() do end
      end)
      local t0 = lev.now()
      local a, b = lev.tcp.connect(HOST, srv:port(),
                                   { ssl = true, timeout = 0.3 })
      srv:close()
      return lev.now() - t0, a, b
    end)
    fails("timeout", ok, err)
    assert.is_true(dt > 0.25 and dt < 1, dt)
  end)

  it("closes a handshake abandoned by lev.timeout without leaving "
     .. "anything behind", function()
    local r1, r2 = lev.run(function()
      local srv = server(function(s)
        while s:read() do end
      end)
      local a, b = lev.timeout(0.1, lev.tcp.connect, HOST, srv:port(),
                               { ssl = true })
      srv:close()
      return a, b
    end)
    fails("timeout", r1, r2)
  end)
end)
