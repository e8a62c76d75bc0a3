-- URL config strings (contract 11): redis.config.parse_url takes a URL
-- apart into a config table, and normalize runs that table through the
-- same rules as a table config.

local config = require("redis.config")

local function parse(url)
  return config.parse_url(url)
end

-- The normalized fields a URL gives (auth as a plain table).
local function norm(url)
  local cfg, err = config.normalize(url)
  if not cfg then return nil, err end
  local auth = cfg.auth and { user = cfg.auth.user, pass = cfg.auth.pass }
  return { host = cfg.host, port = cfg.port, db = cfg.db, ssl = cfg.ssl,
           timeout = cfg.timeout, auth = auth }
end

local function invalid(url, text)
  local cfg, err = config.normalize(url)
  assert.is_nil(cfg, "expected " .. url .. " to be rejected")
  assert.equal("invalid config: " .. text, err)
  return err
end

describe("URL config", function()
  describe("parse_url", function()
    it("takes host alone: port and db are left to the defaults", function()
      assert.same({ host = "cache.local", ssl = false },
                  parse("redis://cache.local"))
    end)

    it("takes host, port and db", function()
      assert.same({ host = "127.0.0.1", port = 7000, db = 3, ssl = false },
                  parse("redis://127.0.0.1:7000/3"))
    end)

    it("treats an empty path and a lone slash as no db", function()
      assert.same({ host = "h", port = 1, ssl = false }, parse("redis://h:1/"))
      assert.same({ host = "h", ssl = false }, parse("redis://h/"))
    end)

    it("turns rediss:// into ssl = true, and accepts the scheme in any case",
       function()
      assert.same({ host = "h", ssl = true }, parse("rediss://h"))
      assert.same({ host = "h", ssl = true }, parse("REDISS://h"))
      assert.same({ host = "h", ssl = false }, parse("Redis://h"))
    end)

    it("takes user and password", function()
      assert.same({ host = "h", ssl = false,
                    auth = { user = "alice", pass = "s3cret" } },
                  parse("redis://alice:s3cret@h"))
    end)

    it("gives the user default to a password with an empty user", function()
      assert.same({ host = "h", port = 6380, ssl = false,
                    auth = { user = "default", pass = "pw" } },
                  parse("redis://:pw@h:6380"))
    end)

    it("percent-decodes user and password", function()
      local t = parse("redis://al%69ce%40corp:p%40ss%3Aw%2Frd%3F%23%25@h")
      assert.same({ user = "alice@corp", pass = "p@ss:w/rd?#%" }, t.auth)
    end)

    it("splits user info at the first colon: the password may hold more",
       function()
      assert.same({ user = "u", pass = "a:b:c" },
                  parse("redis://u:a:b:c@h").auth)
    end)

    it("takes an IPv6 address in brackets, with and without a port",
       function()
      assert.same({ host = "::1", port = 6379, db = 1, ssl = false },
                  parse("redis://[::1]:6379/1"))
      assert.same({ host = "fe80::1", ssl = false },
                  parse("redis://[fe80::1]"))
      assert.same({ host = "::1", ssl = false,
                    auth = { user = "default", pass = "x" } },
                  parse("redis://:x@[::1]"))
    end)

    it("puts query parameters into the table, numbers converted", function()
      assert.same({ host = "h", ssl = false, protocol = 3, name = "worker-1",
                    timeout = 2.0, connect_timeout = 0.5 },
                  parse("redis://h?protocol=3&name=worker-1&timeout=2"
                        .. "&connect_timeout=0.5"))
      local t = parse("redis://h?timeout=2")
      assert.equal("float", math.type(t.timeout))
      assert.equal("integer", math.type(parse("redis://h?protocol=2").protocol))
    end)

    it("percent-decodes parameter values and ignores empty parts", function()
      assert.same({ host = "h", db = 2, ssl = false, name = "a/b" },
                  parse("redis://h/2?&name=a%2Fb&"))
      assert.same({ host = "h", ssl = false }, parse("redis://h?"))
    end)

    it("leaves a value that is not decimal as a string, for the rules",
       function()
      assert.same("fast", parse("redis://h?timeout=fast").timeout)
      assert.same("-1", parse("redis://h?timeout=-1").timeout)
      assert.same("", parse("redis://h?protocol=").protocol)
    end)
  end)

  describe("normalize", function()
    it("gives a URL the same cfg as the equal table", function()
      local a = assert(config.normalize(
        "rediss://bob:pw@db.example.com:6380/4?timeout=1.5"))
      local b = assert(config.normalize({ host = "db.example.com",
        port = 6380, db = 4, ssl = true, timeout = 1.5,
        auth = { user = "bob", pass = "pw" } }))
      assert.same(norm("rediss://bob:pw@db.example.com:6380/4?timeout=1.5"),
        { host = "db.example.com", port = 6380, db = 4,
          ssl = { verify = true }, timeout = 1.5,
          auth = { user = "bob", pass = "pw" } })
      assert.equal(config.pool_key(b), config.pool_key(a))
      assert.equal(tostring(b), tostring(a))
    end)

    it("fills in the defaults", function()
      assert.same({ host = "h", port = 6379, db = 0, ssl = false },
                  norm("redis://h"))
    end)

    it("never shows the password in tostring", function()
      local cfg = assert(config.normalize("redis://alice:hunter2@h:1/2"))
      assert.equal("redis config h:1/2 user alice", tostring(cfg))
      assert.equal("auth{user=alice, pass=***}", tostring(cfg.auth))
    end)

    it("still reads host:port/db and [v6]:port strings", function()
      assert.same({ host = "h", port = 7000, db = 2, ssl = false },
                  norm("h:7000/2"))
      assert.same({ host = "::1", port = 7000, db = 0, ssl = false },
                  norm("[::1]:7000"))
    end)
  end)

  describe("errors", function()
    it("names an unsupported scheme", function()
      invalid("http://h:6379",
        'unsupported scheme "http" (use redis:// or rediss://)')
      invalid("unix:///tmp/redis.sock",
        'unsupported scheme "unix" (use redis:// or rediss://)')
      invalid("HTTPS://u:pw@h",
        'unsupported scheme "https" (use redis:// or rediss://)')
    end)

    it("rejects a scheme without its two slashes", function()
      invalid("redis:/h", 'URL must start with "redis://" or "rediss://"')
    end)

    it("rejects a missing host", function()
      local text = "URL has no host (redis://host[:port][/db]; an IPv6 "
        .. "address goes in brackets: redis://[::1]:6379)"
      invalid("redis://", text)
      invalid("redis://:6379", text)
      invalid("redis://u:pw@", text)
      invalid("redis:///0", text)
      invalid("redis://::1", text)
      invalid("redis://[]:6379", text)
    end)

    it("rejects an unclosed IPv6 bracket", function()
      invalid("redis://[::1:6379", 'URL host has a "[" without its "]"')
    end)

    it("rejects a port that is not a number, and checks the range", function()
      local text = "URL port must be an integer in 1..65535"
      invalid("redis://h:", text)
      invalid("redis://h:abc", text)
      invalid("redis://h:-1", text)
      invalid("redis://h:63.5", text)
      invalid("redis://[::1]x", text)
      invalid("redis://h:99999999999999999999999", text)
      invalid("redis://h:0", "port must be an integer in 1..65535")
      invalid("redis://h:65536", "port must be an integer in 1..65535")
    end)

    it("rejects a path that is not a database number", function()
      local text = "URL path must be /db, a database number (redis://host/2)"
      invalid("redis://h/x", text)
      invalid("redis://h/-1", text)
      invalid("redis://h/1/2", text)
      invalid("redis://h//", text)
    end)

    it("rejects a user without a password, and an empty password",
       function()
      invalid("redis://alice@h", "URL has a user but no password (use "
        .. "redis://user:password@host, or redis://:password@host for the "
        .. "default user)")
      invalid("redis://@h", "URL has a user but no password (use "
        .. "redis://user:password@host, or redis://:password@host for the "
        .. "default user)")
      invalid("redis://alice:@h", "URL password is empty")
      invalid("redis://:@h", "URL password is empty")
    end)

    it("rejects broken percent-encoding without quoting it", function()
      invalid("redis://al%zzce:pw@h", "URL user is not validly percent-encoded")
      invalid("redis://u:sec%4@h", "URL password is not validly percent-encoded")
      invalid("redis://u:sec%@h", "URL password is not validly percent-encoded")
      invalid("redis://h?name=a%2", "URL parameter name is not validly "
        .. "percent-encoded")
      invalid("redis://h?na%GGme=a", "URL has a parameter name that is not "
        .. "validly percent-encoded")
    end)

    it("asks for percent-encoding when an '@' follows the host", function()
      local text = 'URL has an "@" after the host: percent-encode "/", "?", '
        .. '"#" and "@" in the user and password (%2F, %3F, %23, %40)'
      invalid("redis://u:pa/ss@h", text)
      invalid("redis://u:pa?ss@h", text)
      invalid("redis://u:pa#ss@h", text)
      invalid("redis://u:x@y?z@h", text)
      invalid("redis://h?name=a@b", text)
    end)

    it("rejects a fragment", function()
      invalid("redis://h/0#x", 'URL must not have a "#" fragment (write "#" '
        .. "in a password as %23)")
    end)

    it("rejects unknown, valueless and repeated parameters", function()
      invalid("redis://h?db=2", 'URL parameter "db" is not supported (use '
        .. "protocol, name, timeout, connect_timeout)")
      invalid("redis://h?timeout", 'URL parameter "timeout" has no value '
        .. "(use timeout=value)")
      invalid("redis://h?timeout=1&timeout=2",
        "URL parameter timeout is given twice")
    end)

    it("judges parameter values by the field's rule", function()
      invalid("redis://h?timeout=fast", "timeout must be a number > 0 (seconds)")
      invalid("redis://h?timeout=0", "timeout must be a number > 0 (seconds)")
      invalid("redis://h?timeout=-1", "timeout must be a number > 0 (seconds)")
    end)

    it("never puts the password in an error text", function()
      local secret = "Zq9secret"
      local urls = {
        "redis://u:" .. secret .. "@h:abc",
        "redis://u:" .. secret .. "@h/x",
        "redis://u:" .. secret .. "@h:0",
        "redis://u:" .. secret .. "@",
        "redis://u:" .. secret .. "@h?bad=1",
        "redis://u:" .. secret .. "@h?timeout=x",
        "redis://u:" .. secret .. "%zz@h",
        "redis://u:" .. secret .. "/x@h",
        "redis://u:a/" .. secret .. "@h",
        "redis://u:a?" .. secret .. "@h",
        "redis://u:a#" .. secret .. "@h",
        "redis://u:a@b?" .. secret .. "@h",
        "redis://:" .. secret .. "@[::1",
        "http://u:" .. secret .. "@h",
        "redis:/u:" .. secret .. "@h",
        "u:" .. secret .. "@h:6379",
        "//u:" .. secret .. "@h",
      }
      for _, url in ipairs(urls) do
        local cfg, err = config.normalize(url)
        assert.is_nil(cfg, url)
        assert.matches("^invalid config: ", err)
        assert.is_nil(err:find(secret, 1, true), err)
        assert.is_nil(err:find("Zq9", 1, true), err)
      end
    end)
  end)
end)
