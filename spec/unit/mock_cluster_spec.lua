-- redis.cluster against redis.mock's cluster mode (mock.start_cluster):
-- the routing, MOVED and ASK handling without a real cluster, and the
-- mock cluster itself as users' tests would use it.

local lev = require("lev")
local redis = require("redis")
local mock = require("redis.mock")
local keyslot = require("redis.cluster").keyslot

local function with_cluster(opts, fn)
  lev.run(function()
    local mc = assert(mock.start_cluster(opts))
    local ok, err = pcall(fn, mc)
    mc:close()
    assert(ok, err)
  end)
end

-- A key of a given slot.
local function key_in(slot, suffix)
  local i = 0
  while keyslot("t" .. i) ~= slot do i = i + 1 end
  return "{t" .. i .. "}" .. (suffix or "")
end

describe("mock.start_cluster", function()
  it("serves a cluster client: keys on their owners, no redirection", function()
    with_cluster({ masters = 3 }, function(mc)
      local cl = assert(redis.cluster{ nodes = { mc:seeds()[1] } })
      assert.equal(3, #cl:nodes())
      for i = 1, 300 do assert.equal("OK", cl:cmd("SET", "k" .. i, i)) end
      for i = 1, 300, 37 do assert.equal(tostring(i), cl:get("k" .. i)) end
      local total = 0
      for n = 1, 3 do
        local c = assert(redis.connect(mc:seeds()[n]))
        total = total + c:cmd("DBSIZE")
        c:close()
      end
      assert.equal(300, total)
      assert.same({ moved = 0, ask = 0, crossslot = 0 }, mc:stats())
      local ok, err = cl:cmd("MSET", key_in(1), 1, key_in(2), 2)
      assert.is_nil(ok)
      assert.matches("^CROSSSLOT", err)
      assert.equal(0, mc:stats().crossslot) -- refused locally, never sent
      cl:close()
    end)
  end)

  it("answers MOVED after move_slot, and the client follows", function()
    with_cluster({ masters = 3 }, function(mc)
      local cl = assert(redis.cluster{ nodes = mc:seeds() })
      local k = key_in(100, ":x")
      assert.equal("OK", cl:cmd("SET", k, "v"))
      assert.equal(1, mc:owner(100))
      mc:move_slot(100, 3)
      assert.equal("v", cl:get(k))
      assert.equal(1, mc:stats().moved)
      assert.equal(1, cl.redirections)
      assert.equal("v", cl:get(k))
      assert.equal(1, mc:stats().moved)
      cl:close()
    end)
  end)

  it("answers ASK during a migration, and the client sends ASKING", function()
    with_cluster({ masters = 2 }, function(mc)
      local cl = assert(redis.cluster{ nodes = mc:seeds() })
      local a, b = key_in(5, "a"), key_in(5, "b")
      assert.equal("OK", cl:cmd("MSET", a, 1, b, 2))
      mc:migrate(5, 2)
      mc:migrate_key(a)
      assert.equal("1", cl:get(a))
      assert.equal("2", cl:get(b))
      assert.equal(1, mc:stats().ask)
      mc:finish(5)
      assert.equal("2", cl:get(b))
      assert.equal(1, mc:stats().moved)
      local res = assert(cl:pipeline{ { "GET", a }, { "GET", b },
        { "GET", key_in(16000) } })
      assert.same({ { "1" }, { "2" }, { nil } }, res)
      cl:close()
    end)
  end)

  it("falls back to CLUSTER SLOTS where CLUSTER SHARDS is unknown", function()
    with_cluster({ masters = 3 }, function(mc)
      for _, srv in ipairs(mc.servers) do
        srv:script{
          match = function(argv)
            return argv[1]:upper() == "CLUSTER"
              and (argv[2] or ""):upper() == "SHARDS"
          end,
          reply = mock.error("ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP."),
        }
      end
      local cl = assert(redis.cluster{ nodes = { mc:seeds()[3] } })
      assert.equal(3, #cl:nodes())
      for i = 1, 50 do assert.equal("OK", cl:cmd("SET", "s" .. i, i)) end
      assert.equal(0, mc:stats().moved)
      cl:close()
    end)
  end)

  it("retries only the pipeline entries that got MOVED, in order", function()
    with_cluster({ masters = 3 }, function(mc)
      local cl = assert(redis.cluster{ nodes = mc:seeds() })
      local moved, other = key_in(200, ":m"), key_in(9000, ":o")
      assert(cl:cmd("SET", moved, "m"))
      assert(cl:cmd("SET", other, "o"))
      mc:move_slot(200, 2)
      for _, srv in ipairs(mc.servers) do srv:reset_stats() end
      local res = assert(cl:pipeline{ { "GET", other }, { "GET", moved },
        { "INCR", key_in(9000, ":n") }, { "GET", moved } })
      assert.same({ { "o" }, { "m" }, { 1 }, { "m" } }, res)
      assert.equal(2, mc:stats().moved)
      -- INCR ran once: the entries that were not redirected are not resent
      local incr = 0
      for _, srv in ipairs(mc.servers) do
        incr = incr + (srv:stats().commands.INCR or 0)
      end
      assert.equal(1, incr)
      cl:close()
    end)
  end)

  it("fails the whole pipeline when a node's connection fails", function()
    with_cluster({ masters = 2 }, function(mc)
      local cl = assert(redis.cluster{ nodes = mc:seeds() })
      local a, b = key_in(10), key_in(16000)
      assert(cl:cmd("SET", a, 1))
      mc.servers[2]:script{ command = "GET", close = true }
      local res, err = cl:pipeline{ { "GET", a }, { "GET", b } }
      assert.is_nil(res)
      assert.is_string(err)
      -- a single command on the failed node fails the same way, once
      local v, err2 = cl:get(key_in(16001))
      assert.is_nil(v)
      assert.is_string(err2)
      assert.equal("1", cl:get(a))
      cl:close()
    end)
  end)

  it("answers CLUSTER SLOTS, KEYSLOT and COMMAND like Redis", function()
    with_cluster({ masters = 3 }, function(mc)
      local c = assert(redis.connect(mc:seeds()[2]))
      local slots = assert(c:cmd("CLUSTER", "SLOTS"))
      assert.equal(3, #slots)
      assert.same({ 0, 5461 }, { slots[1][1], slots[1][2] })
      assert.equal(keyslot("foo"), c:cmd("CLUSTER", "KEYSLOT", "foo"))
      assert.matches("^MOVED %d+ 127.0.0.1:%d+$",
        select(2, c:cmd("GET", key_in(0))))
      c:close()
    end)
  end)
end)
