-- URL config strings against real servers: the ACL user of the test
-- server, a server with only requirepass (the default user), and the TLS
-- server through rediss:// (ssl = true, so the CA comes from
-- SSL_CERT_FILE in a child process, as in tls_spec.lua).

local h = require("int_helper")
local redis = require("redis")

local function need(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error("URL integration specs: " .. name .. " is not set (the TLS server "
      .. "of tools/run-tests.sh: LEVR_TLS_PORT and LEVR_TLS_CERTS)", 0)
  end
  return v
end

local TLS_PORT = math.tointeger(tonumber(need("LEVR_TLS_PORT")))
local CERTS = need("LEVR_TLS_CERTS")

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local function url(userinfo, path)
  return "redis://" .. (userinfo and (userinfo .. "@") or "") .. h.host
    .. ":" .. h.port .. (path or "")
end

describe("URL config against a real server", function()
  before_each(h.reset)

  it("logs in as the ACL user and selects the db from the path", function()
    h.run(function()
      local c = assert(redis.connect(url(h.user .. ":" .. h.pass, "/2")))
      assert.equal(h.user, c:cmd("ACL", "WHOAMI"))
      assert.equal("OK", c:cmd("SET", "url-key", "v"))
      c:close(true)
      assert.equal(2, c.cfg.db)
      assert.equal(h.user, c.cfg.auth.user)
    end)
    assert.equal("v", h.cli("-n", "2", "GET", "url-key"))
    assert.equal("", h.cli("-n", "0", "GET", "url-key"))
  end)

  it("takes timeout from the query", function()
    h.run(function()
      local c = assert(redis.connect(url(h.user .. ":" .. h.pass)
                                     .. "?timeout=0.5"))
      assert.equal(0.5, c.cfg.timeout)
      assert.equal("PONG", c:cmd("PING"))
      c:close(true)
    end)
  end)

  it("percent-decodes a password that holds URL characters", function()
    local pass = "p@ss:w/rd?#%&="
    assert.equal("OK", h.cli("ACL", "SETUSER", "url-user", "reset", "on",
      ">" .. pass, "~*", "&*", "+@all"))
    finally(function() h.cli("ACL", "DELUSER", "url-user") end)
    h.run(function()
      local c, err = redis.connect(url("url-user:p%40ss%3Aw%2Frd%3F%23%25%26%3D"))
      assert(c, err)
      assert.equal("url-user", c:cmd("ACL", "WHOAMI"))
      c:close(true)
    end)
  end)

  it("fails a wrong password with the server's text, never the password",
     function()
    h.run(function()
      local c, err, cat = redis.connect(url(h.user .. ":wrong-Zq9"))
      assert.is_nil(c)
      assert.equal("WRONGPASS invalid username-password pair or user is "
        .. "disabled.", err)
      assert.equal("redis", cat)
    end)
  end)

  it("fails an unsupported scheme before touching the network", function()
    h.run(function()
      local c, err, cat = redis.connect("http://" .. h.host .. ":" .. h.port)
      assert.is_nil(c)
      assert.equal('invalid config: unsupported scheme "http" (use redis:// '
        .. "or rediss://)", err)
      assert.equal("config", cat)
    end)
  end)

  describe("a server with only requirepass", function()
    local dir, port

    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      local out, ok = sh(string.format(
        "tools/redis-server.sh start %q --requirepass pw%%1", dir))
      port = ok and math.tointeger(tonumber(out:match("^(%d+)")))
      if not port then
        error("cannot start the requirepass redis-server: " .. out, 0)
      end
    end)

    teardown(function()
      if dir then sh(string.format("tools/redis-server.sh stop %q", dir)) end
      if dir then sh(string.format("rm -rf %q", dir)) end
    end)

    it("accepts redis://:pass@ and user default, as AUTH pass does",
       function()
      h.run(function()
        for _, u in ipairs({ ":pw%251", "default:pw%251" }) do
          local c, err = redis.connect("redis://" .. u .. "@127.0.0.1:"
                                       .. port .. "/1")
          assert(c, err)
          assert.equal("default", c:cmd("ACL", "WHOAMI"))
          assert.equal("OK", c:cmd("SET", "k", u))
          c:close(true)
        end
      end)
    end)

    it("accepts auth = { user = \"default\", pass = ... } in a table",
       function()
      h.run(function()
        local c = assert(redis.connect({ host = "127.0.0.1", port = port,
          auth = { user = "default", pass = "pw%1" } }))
        assert.equal("PONG", c:cmd("PING"))
        c:close(true)
        -- Without auth the connect succeeds and commands are refused.
        local n = assert(redis.connect({ host = "127.0.0.1", port = port }))
        local ok, err = n:cmd("GET", "k")
        assert.is_nil(ok)
        assert.matches("^NOAUTH", err)
        n:close(true)
      end)
    end)
  end)

  it("connects with rediss://, verifying as ssl = true does", function()
    local script = string.format([[
      local lev = require("lev")
      local redis = require("redis")
      lev.run(function()
        local c, err = redis.connect("rediss://127.0.0.1:%d/3?timeout=5")
        if not c then print("connect", err) return end
        print(c.cfg.ssl.verify, c.cfg.db, c:cmd("SET", "k", "v"),
              c:cmd("CLIENT", "INFO"):match("db=(%%d+)"))
        c:close(true)
      end)
    ]], TLS_PORT)
    local empty = os.tmpname()
    os.remove(empty)
    sh(string.format("mkdir -p %q", empty))
    finally(function() sh(string.format("rm -rf %q", empty)) end)
    local good = h.child({ SSL_CERT_FILE = CERTS .. "/ca.crt",
                           SSL_CERT_DIR = empty }, script)
    local out, ok = good.result()
    assert.is_true(ok, out)
    assert.equal("true\t3\tOK\t3\n", out)
    local bad = h.child({ SSL_CERT_FILE = CERTS .. "/other-ca.crt",
                          SSL_CERT_DIR = empty }, script)
    out, ok = bad.result()
    assert.is_true(ok, out)
    assert.equal("connect\tssl: certificate verify failed: self-signed "
      .. "certificate in certificate chain\n", out)
  end)
end)
