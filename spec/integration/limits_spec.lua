-- Resource caps: max_reply (bytes of one reply) and max_pending (pending
-- commands per connection), with their defaults and config rules.
local h = require("int_helper")
local lev = require("lev")
local redis = require("redis")

describe("limits:", function()
  it("defaults max_pending to 100000 and max_reply to 1 GiB", function()
    h.run(function()
      local c = assert(h.connect())
      assert.are.equal(100000, c.cfg.max_pending)
      assert.are.equal(1 << 30, c.cfg.max_reply)
      c:close()
    end)
  end)

  it("rejects caps that are not positive integers with invalid config",
     function()
    h.run(function()
      for _, bad in ipairs({ 0, -1, 1.5, "10", true }) do
        local c, err, cat = redis.connect(h.cfg({ max_pending = bad }))
        assert.is_nil(c)
        assert.are.equal("invalid config: max_pending must be an integer >= 1",
                         err)
        assert.are.equal("config", cat)
        c, err = redis.connect(h.cfg({ max_reply = bad }))
        assert.is_nil(c)
        assert.are.equal(
          "invalid config: max_reply must be an integer >= 1 (bytes)", err)
      end
    end)
  end)

  it("fails a reply larger than max_reply with a protocol error and closes "
     .. "the connection, and a fresh connect works", function()
    h.run(function()
      local c = assert(h.connect({ max_reply = 1000 }))
      assert.are.equal("OK", c:cmd("SET", "lim:big", string.rep("x", 2000)))
      assert.are.equal("OK", c:cmd("SET", "lim:small", "ok"))
      local v, err, cat = c:cmd("GET", "lim:big")
      assert.is_nil(v)
      assert.are.equal("protocol error: reply too large", err)
      assert.are.equal("protocol", cat)
      assert.are.same({ nil, "closed", "closed" },
                      { c:cmd("GET", "lim:small") })
      c:close()
      local c2 = assert(h.connect({ max_reply = 1000 }))
      assert.are.equal("ok", c2:cmd("GET", "lim:small"))
      c2:close(true)
    end)
  end)

  it("refuses a command beyond max_pending with nil, text, 'limit' and "
     .. "keeps the connection for the others", function()
    h.run(function()
      local c = assert(h.connect({ max_pending = 2 }))
      local tasks = {}
      for i = 1, 3 do
        tasks[i] = lev.spawn(function() return c:cmd("ECHO", "t" .. i) end)
      end
      local got = {}
      for i = 1, 3 do got[i] = { tasks[i]:join() } end
      assert.are.same({ true, "t1" }, got[1])
      assert.are.same({ true, "t2" }, got[2])
      assert.are.same({ true, nil, "too many pending commands on this "
                        .. "connection", "limit" }, got[3])
      assert.are.equal("PONG", c:cmd("PING"))
      c:close(true)
    end)
  end)

  it("applies the caller's caps to a connection taken from the pool",
     function()
    h.run(function()
      local c = assert(h.connect())
      local id = c:cmd("CLIENT", "ID")
      assert.are.equal("OK", c:cmd("SET", "lim:mid", string.rep("y", 5000)))
      c:close()
      local c2 = assert(h.connect({ max_reply = 1000 }))
      assert.are.equal(id, c2:cmd("CLIENT", "ID"))
      local v, err = c2:cmd("GET", "lim:mid")
      assert.is_nil(v)
      assert.are.equal("protocol error: reply too large", err)
      c2:close()
    end)
  end)
end)
