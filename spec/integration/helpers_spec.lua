-- Contract section 14 (helpers for everyday work) against a real
-- redis-server (started by the test run; see spec/support/int_helper.lua),
-- plus redis.mock where a reply must be scripted exactly.

local h = require("int_helper")
local lev = require("lev")
local redis = require("redis")
local helpers = require("redis.helpers")
local mock = require("redis.mock")

local run, cfg, connect, cli = h.run, h.cfg, h.connect, h.cli

local CONFLICT = "transaction aborted: a watched key changed"

-- pcall's message for a call that must raise.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

-- Writes n keys name(i) = value(i) in pipelines of 1000.
local function fill(c, n, cmd_of)
  local batch = {}
  for i = 1, n do
    batch[#batch + 1] = cmd_of(i)
    if #batch == 1000 or i == n then
      local res = assert(c:pipeline(batch))
      for _, r in ipairs(res) do assert(r[1] ~= nil, r[2]) end
      batch = {}
    end
  end
end

-- An object with only :cmd, counting the calls and the batches it saw
-- (the helpers are written against :cmd, so it stands in for a client).
local function counting(c)
  local o = { calls = 0, empty_nonzero = 0, sizes = {} }
  function o.cmd(_, ...)
    o.calls = o.calls + 1
    o.last_argv = { ... }
    local r, err = c:cmd(...)
    if type(r) == "table" then
      o.sizes[#o.sizes + 1] = #r[2]
      if #r[2] == 0 and r[1] ~= "0" then
        o.empty_nonzero = o.empty_nonzero + 1
      end
    end
    return r, err
  end
  return o
end

local function client_id(c)
  local id, err = c:cmd("CLIENT", "ID")
  assert(math.type(id) == "integer", "CLIENT ID failed: " .. tostring(err))
  return id
end

-- INFO commandstats calls of one command (0 when never called).
local function calls_of(name)
  local info = cli("INFO", "commandstats")
  return tonumber(info:match("cmdstat_" .. name .. ":calls=(%d+)")) or 0
end

before_each(function()
  h.reset()
end)

after_each(function()
  assert.is_true(h.settled(), "a client was left blocked, subscribed, in "
    .. "MULTI or monitoring on the server")
end)

describe("14. the helpers are client methods", function()
  it("are in the shared client method table that redis.core exposes",
     function()
    local methods = require("redis.core").methods
    for _, name in ipairs{ "scan_iter", "hscan_iter", "sscan_iter",
                           "zscan_iter", "transaction" } do
      assert.equal(helpers[name], methods[name], name)
    end
    assert.equal(helpers.script, redis.script)
    assert.equal(helpers.map, redis.map)
    run(function()
      local c = connect()
      assert.equal(helpers.scan_iter, c.scan_iter)
      c:close()
    end)
  end)
end)

describe("14. scan iterators", function()
  it("scan_iter returns each of 10,000 keys exactly once, one SCAN per "
     .. "batch, filtered by match and by type", function()
    run(function()
      local c = connect()
      fill(c, 10000, function(i) return { "SET", "k:" .. i, i } end)
      fill(c, 2000, function(i) return { "HSET", "h:" .. i, "f", i } end)
      fill(c, 500, function(i) return { "SADD", "k:set:" .. i, "m" } end)

      local o = counting(c)
      local seen, n = {}, 0
      for key in helpers.scan_iter(o, { match = "k:*", count = 500 }) do
        assert.is_nil(seen[key], "key twice: " .. key)
        seen[key], n = true, n + 1
      end
      assert.equal(10500, n)
      for i = 1, 10000 do assert.is_true(seen["k:" .. i]) end
      for i = 1, 500 do assert.is_true(seen["k:set:" .. i]) end
      -- One round trip per batch: as many SCANs as batches, and every
      -- element of every batch came out of the iterator.
      assert.equal(#o.sizes, o.calls)
      local total = 0
      for _, s in ipairs(o.sizes) do total = total + s end
      assert.equal(n, total)
      assert.is_true(o.calls > 10, "expected many batches")
      assert.same({ "SCAN", o.last_argv[2], "MATCH", "k:*", "COUNT", 500 },
                  o.last_argv)

      -- type alone, and match with type.
      local hashes = {}
      for key in c:scan_iter{ type = "hash", count = 1000 } do
        assert.is_nil(hashes[key]); hashes[key] = true
      end
      local nh = 0
      for key in pairs(hashes) do
        assert.matches("^h:%d+$", key); nh = nh + 1
      end
      assert.equal(2000, nh)
      local sets = 0
      for key in c:scan_iter{ match = "k:*", type = "set" } do
        assert.matches("^k:set:%d+$", key); sets = sets + 1
      end
      assert.equal(500, sets)
      -- No options: the whole keyspace.
      local all = 0
      for _ in c:scan_iter() do all = all + 1 end
      assert.equal(12500, all)
      c:close()
    end)
  end)

  it("scan_iter returns every key that existed throughout exactly once "
     .. "while another task adds keys", function()
    run(function()
      local c = connect()
      fill(c, 10000, function(i) return { "SET", "old:" .. i, i } end)
      local writer_done = false
      -- The writer shares the client: its pipelines of 200 SETs go out
      -- between the SCANs, enough to make Redis grow (rehash) its table
      -- of keys while the scan goes on.
      local writer = lev.spawn(function()
        for p = 0, 99 do
          local batch = {}
          for i = 1, 200 do batch[i] = { "SET", "new:" .. (p * 200 + i), i } end
          for _, r in ipairs(assert(c:pipeline(batch))) do
            assert(r[1] == "OK")
          end
        end
        writer_done = true
      end)
      local seen, old, new, batches_during = {}, 0, 0, 0
      local o = counting(c)
      for key in helpers.scan_iter(o, { count = 100 }) do
        assert.is_nil(seen[key], "key twice: " .. key)
        seen[key] = true
        if key:match("^old:") then old = old + 1 else new = new + 1 end
        if not writer_done then batches_during = o.calls end
      end
      writer:join()
      assert.equal(10000, old)
      for i = 1, 10000 do assert.is_true(seen["old:" .. i]) end
      assert.is_true(batches_during > 1,
        "the writer should have run while the scan went on")
      assert.is_true(new > 0 and new <= 20000)
      c:close()
    end)
  end)

  it("hscan_iter with COUNT 1 on a big hash gives each field once with "
     .. "its value", function()
    run(function()
      local c = connect()
      fill(c, 5000, function(i) return { "HSET", "big", "f" .. i, "v" .. i } end)
      assert.equal("hashtable", c:cmd("OBJECT", "ENCODING", "big"))
      local o = counting(c)
      local seen, n = {}, 0
      for field, value in helpers.hscan_iter(o, "big", { count = 1 }) do
        assert.is_nil(seen[field])
        assert.equal("v" .. field:sub(2), value)
        seen[field], n = true, n + 1
      end
      assert.equal(5000, n)
      -- COUNT 1 asks for about one bucket per call: thousands of calls.
      assert.is_true(o.calls >= 1000, "calls: " .. o.calls)
      assert.equal(1, o.last_argv[#o.last_argv])
      local m = 0
      for field, value in c:hscan_iter("big", { match = "f1?" }) do
        assert.matches("^f1%d$", field); assert.equal("v" .. field:sub(2), value)
        m = m + 1
      end
      assert.equal(10, m)
      c:close()
    end)
  end)

  it("goes on past batches that MATCH emptied while the cursor is not 0",
     function()
    run(function()
      local c = connect()
      fill(c, 10000, function(i) return { "SET", "k:" .. i, i } end)
      local o = counting(c)
      local got = {}
      for key in helpers.scan_iter(o, { match = "k:7777", count = 10 }) do
        got[#got + 1] = key
      end
      assert.same({ "k:7777" }, got)
      assert.is_true(o.empty_nonzero > 0)
      c:close()
    end)
  end)

  it("does not stop at an empty batch with a non-zero cursor (scripted "
     .. "replies from redis.mock)", function()
    run(function()
      local srv = assert(mock.start{ port = 0 })
      local replies = {
        ["0"] = { "17", {} },
        ["17"] = { "4", { "a", "b" } },
        ["4"] = { "9", {} },
        ["9"] = { "0", { "c" } },
      }
      local asked = {}
      srv:script{ command = { "SCAN", "SSCAN" }, reply = function(argv)
        local cur = argv[1]:upper() == "SCAN" and argv[2] or argv[3]
        asked[#asked + 1] = cur
        return replies[cur]
      end }
      local c = assert(redis.connect{ host = "127.0.0.1", port = srv:port() })
      local got = {}
      for key in c:scan_iter() do got[#got + 1] = key end
      assert.same({ "a", "b", "c" }, got)
      assert.same({ "0", "17", "4", "9" }, asked)
      got, asked = {}, {}
      for m in c:sscan_iter("s") do got[#got + 1] = m end
      assert.same({ "a", "b", "c" }, got)
      assert.same({ "0", "17", "4", "9" }, asked)
      c:close(true)
      srv:close()
    end)
  end)

  it("sscan_iter gives each member once; zscan_iter gives scores as "
     .. "numbers, infinities included, in RESP2 and RESP3", function()
    run(function()
      local c = connect()
      fill(c, 1000, function(i) return { "SADD", "set", "m" .. i } end)
      fill(c, 1000, function(i) return { "ZADD", "z", i + 0.5, "m" .. i } end)
      assert(c:cmd("ZADD", "z", "-inf", "low", "+inf", "high"))
      local seen, n = {}, 0
      for m in c:sscan_iter("set", { count = 50 }) do
        assert.is_nil(seen[m]); seen[m], n = true, n + 1
      end
      assert.equal(1000, n)
      for _, proto in ipairs{ 2, 3 } do
        local p = connect()
        if proto == 3 then assert(p:cmd("HELLO", 3)) end
        local scores, count = {}, 0
        for member, score in p:zscan_iter("z", { count = 100 }) do
          assert.equal("number", type(score))
          assert.is_nil(scores[member])
          scores[member], count = score, count + 1
        end
        assert.equal(1002, count)
        assert.equal(-math.huge, scores.low)
        assert.equal(math.huge, scores.high)
        for i = 1, 1000 do assert.equal(i + 0.5, scores["m" .. i]) end
        local m = 0
        for member in p:zscan_iter("z", { match = "m99?" }) do
          assert.matches("^m99%d$", member); m = m + 1
        end
        assert.equal(10, m)
        p:close(true)
      end
      c:close()
    end)
  end)

  it("raises the nil, err text when a batch fails", function()
    run(function()
      local c = connect()
      assert(c:cmd("SET", "str", "x"))
      local err = raised(function() for _ in c:hscan_iter("str") do end end)
      local _, want = c:cmd("HSCAN", "str", "0")
      assert.equal(want, err)
      assert.matches("^WRONGTYPE", err)
      err = raised(function() for _ in c:scan_iter{ type = 1 } do end end)
      assert.matches("type must be a string", err)
      err = raised(function() c:scan_iter{ count = 0 } end)
      assert.matches("count must be an integer >= 1", err)
      err = raised(function() c:sscan_iter("s", { type = "set" }) end)
      assert.matches("type is for scan_iter only", err)
      c:close()
      err = raised(function() for _ in c:scan_iter() do end end)
      assert.equal("closed", err)
    end)
  end)
end)

-- A read-modify-write: the counter + 1, under WATCH.
local function increment(c, key, opts, runs)
  opts = opts or {}
  opts.watch = { key }
  return c:transaction(opts, function(tx)
    runs.n = runs.n + 1
    local v = tx:get(key)
    return { { "SET", key, (tonumber(v) or 0) + 1 } }
  end)
end

describe("14. transaction", function()
  it("50 tasks on one shared client each add 1: the total is exact and "
     .. "every retry is a conflict the server saw", function()
    local base_exec, base_watch = calls_of("exec"), calls_of("watch")
    local runs, conflicts = { n = 0 }, 0
    run(function()
      local c = connect()
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = lev.spawn(function()
          local res, err, cat = increment(c, "counter", { retries = 60 }, runs)
          assert(res, tostring(err) .. " " .. tostring(cat))
          assert.same({ { "OK" } }, res)
        end)
      end
      for _, t in ipairs(tasks) do assert(t:join()) end
      assert.equal("50", c:cmd("GET", "counter"))
      c:close()
    end)
    conflicts = runs.n - 50
    assert.is_true(conflicts > 0, "50 tasks reading at once must conflict")
    -- fn ran once per WATCH and per EXEC: the retries are EXECs that a
    -- watched key aborted, as many as the server counted.
    assert.equal(runs.n, calls_of("exec") - base_exec)
    assert.equal(runs.n, calls_of("watch") - base_watch)
  end)

  it("starts again from WATCH when a conflicting write lands between "
     .. "WATCH and EXEC, and gives up after retries", function()
    run(function()
      local c, other = connect(), connect()
      assert(c:cmd("SET", "k", "10"))
      local runs = 0
      local res, err = c:transaction({ watch = { "k" } }, function(tx)
        runs = runs + 1
        local v = tonumber(tx:get("k"))
        if runs == 1 then assert(other:cmd("SET", "k", "100")) end
        return { { "SET", "k", v + 1 }, { "GET", "k" } }
      end)
      assert(res, err)
      assert.equal(2, runs)
      assert.same({ { "OK" }, { "101" } }, res)
      assert.equal("101", c:cmd("GET", "k"))

      -- Always conflicting: fn runs retries + 1 times, nothing is applied.
      for _, retries in ipairs{ 0, 2 } do
        runs = 0
        local r, e, cat = c:transaction({ watch = { "k" }, retries = retries },
          function(tx)
            runs = runs + 1
            assert(tx:get("k"))
            assert(other:cmd("INCR", "k"))
            return { { "SET", "k", "lost" } }
          end)
        assert.is_nil(r)
        assert.equal(CONFLICT, e)
        assert.equal("conflict", cat)
        assert.equal(retries + 1, runs)
      end
      assert.equal("105", c:cmd("GET", "k")) -- 101 + 1 + 3 conflicting INCRs
      -- The default is 5 retries: 6 runs.
      runs = 0
      local r, e = c:transaction({ watch = { "k" } }, function()
        runs = runs + 1
        assert(other:cmd("INCR", "k"))
        return {}
      end)
      assert.is_nil(r); assert.equal(CONFLICT, e); assert.equal(6, runs)
      c:close(); other:close()
    end)
  end)

  it("runs on a connection of its own: another task's commands on the "
     .. "same client are never inside the MULTI", function()
    run(function()
      local c = connect()
      local shared_id = client_id(c)
      local stop, outside = false, 0
      -- Another task keeps using the shared client all the time.
      local side = lev.spawn(function()
        while not stop do
          local v = c:cmd("INCR", "outside")
          assert.equal("integer", math.type(v)) -- never "QUEUED"
          outside = outside + 1
          lev.sleep(0)
        end
      end)
      local tx_ids = {}
      for i = 1, 20 do
        local res = assert(c:transaction({ watch = { "t" } }, function(tx)
          tx_ids[#tx_ids + 1] = client_id(tx)
          lev.sleep(0)
          return { { "CLIENT", "ID" }, { "INCR", "t" }, { "GET", "outside" } }
        end))
        assert.equal(3, #res)
        -- The id of the connection that ran MULTI/EXEC.
        assert.equal(tx_ids[#tx_ids], res[1][1])
        assert.are_not.equal(shared_id, res[1][1])
        assert.equal(i, res[2][1])
      end
      stop = true
      side:join()
      assert.is_true(outside > 20)
      assert.equal(outside, tonumber(c:cmd("GET", "outside")))
      -- The server never saw a command of the shared client inside MULTI:
      -- its connection made no MULTI at all.
      local info = assert(c:cmd("CLIENT", "INFO"))
      assert.matches("multi=%-1", info)
      assert.matches("id=" .. shared_id .. " ", info)
      c:close()
    end)
  end)

  it("gives pipeline-shaped results: values, NULL as { nil }, errors "
     .. "inside EXEC as { nil, text }; a refused command aborts it all",
     function()
    run(function()
      local c = connect()
      assert(c:cmd("SET", "s", "x"))
      local res = assert(c:transaction({}, function()
        return { { "INCR", "n" }, { "GET", "missing" }, { "HGET", "s", "f" },
                 { "LRANGE", "none", 0, -1 }, { "SET", "s", "y" } }
      end))
      assert.equal(5, #res)
      assert.same({ 1 }, res[1])
      assert.same({ nil }, res[2]); assert.equal(0, select("#", table.unpack(res[2])))
      assert.is_nil(res[3][1]); assert.matches("^WRONGTYPE", res[3][2])
      assert.same({ {} }, res[4])
      assert.same({ "OK" }, res[5])
      -- A command refused while queueing (wrong arity): EXECABORT, none ran.
      local r, err, cat = c:transaction(function()
        return { { "SET", "s", "z" }, { "GET" } }
      end)
      assert.is_nil(r)
      assert.matches("^EXECABORT", err)
      assert.matches("command 2: ERR wrong number of arguments", err, 1, true)
      assert.equal("redis", cat)
      assert.equal("y", c:cmd("GET", "s"))
      -- A user whose ACL refuses MULTI: the server's text comes back, and
      -- (as documented) the commands ran on their own.
      assert.equal("OK", cli("ACL", "SETUSER", "nomulti", "on", ">pw", "~*",
                             "&*", "+@all", "-multi"))
      local nm = assert(redis.connect(cfg({ auth = { user = "nomulti",
                                                     pass = "pw" } })))
      r, err, cat = nm:transaction(function() return { { "SET", "s", "z" } } end)
      assert.is_nil(r); assert.matches("^NOPERM", err); assert.equal("redis", cat)
      assert.equal("z", c:cmd("GET", "s"))
      nm:close()
      assert.equal("1", cli("ACL", "DELUSER", "nomulti"))
      -- fn may read with the scan iterators through tx.
      assert(c:cmd("HSET", "hh", "a", 1, "b", 2))
      local copied = assert(c:transaction({ watch = { "hh" } }, function(tx)
        local cmds = {}
        for f, v in tx:hscan_iter("hh") do
          cmds[#cmds + 1] = { "SET", "copy:" .. f, v }
        end
        table.sort(cmds, function(x, y) return x[2] < y[2] end)
        return cmds
      end))
      assert.same({ { "OK" }, { "OK" } }, copied)
      assert.equal("2", c:cmd("GET", "copy:b"))
      -- No commands: an empty EXEC.
      assert.same({}, assert(c:transaction(function() end)))
      c:close()
    end)
  end)

  it("a raising fn leaves no MULTI or WATCH open; the pooled connection "
     .. "is clean at its next use, and the error is re-raised", function()
    run(function()
      h.drain(nil)
      local c, other = connect(), connect()
      local cause = { reason = "fn failed" }
      for _, open_multi in ipairs{ false, true } do
        local tx_id
        local err = raised(c.transaction, c, { watch = { "w" } }, function(tx)
          tx_id = client_id(tx)
          assert(tx:get("w") == nil)
          if open_multi then
            -- MULTI is the transaction's own: fn cannot open one.
            assert.matches("tx cannot run MULTI", raised(tx.multi, tx))
            assert.matches("tx cannot run EXEC", raised(tx.cmd, tx, "exec"))
            assert.matches("tx cannot run DISCARD",
              raised(tx.pipeline, tx, { { "GET", "w" }, { "DISCARD" } }))
          end
          error(cause)
        end)
        assert.equal(cause, err) -- the very same value
        assert.equal("-1", h.client(tx_id).multi)
        -- Next use of the pooled connection: same connection, not in MULTI
        -- and not watching (a write to w from elsewhere does not abort).
        assert.equal(1, redis.pool_size(cfg()))
        local p = connect()
        assert.equal(tx_id, client_id(p))
        assert.equal("OK", p:cmd("MULTI"))
        assert(other:cmd("SET", "w", "changed"))
        assert.same({}, (p:cmd("EXEC")))
        assert(p:cmd("DEL", "w"))
        p:close()
      end
      -- A string error keeps its text.
      local err = raised(c.transaction, c, {}, function() error("boom", 0) end)
      assert.equal("boom", err)
      -- fn returning something else than commands is a programmer error.
      err = raised(c.transaction, c, {}, function() return "SET" end)
      assert.matches("fn must return an array of command arrays", err)
      err = raised(c.transaction, c, {}, function()
        return { { "SET", "a", "1" }, { "exec" } }
      end)
      assert.matches("without MULTI, EXEC, DISCARD", err)
      assert.equal("not found", select(2, c:cmd("GET", "a")))
      err = raised(c.transaction, c, { retries = -1 }, function() end)
      assert.matches("retries must be an integer >= 0", err)
      c:close(); other:close()
    end)
  end)

  it("a connection that fails mid-way gives nil, err, category and is "
     .. "never pooled; tx stops working once fn returns", function()
    run(function()
      h.drain(nil)
      local c, other = connect(), connect()
      local kept, tx_id
      local res, err, cat = c:transaction({ watch = { "k" } }, function(tx)
        kept = tx
        tx_id = client_id(tx)
        assert(other:cmd("CLIENT", "KILL", "ID", tx_id))
        local v, e = tx:get("k")
        assert.is_nil(v); assert.is_string(e)
        return { { "SET", "k", "1" } }
      end)
      assert.is_nil(res)
      assert.is_string(err)
      -- eof or io if the kill arrives while GET waits, closed if before.
      assert.is_true(cat == "eof" or cat == "io" or cat == "closed",
                     tostring(cat))
      assert.equal(0, redis.pool_size(cfg()))
      assert.is_nil(c:cmd("GET", "k"))
      local e = raised(kept.get, kept, "k")
      assert.matches("tx used after its function returned", e)
      -- A connect that fails returns its nil, err too.
      local dead = { cfg = { host = "127.0.0.1", port = 1 } }
      local r2, err2 = helpers.transaction(dead, {}, function() return {} end)
      assert.is_nil(r2); assert.is_string(err2)
      c:close(); other:close()
    end)
  end)
end)

describe("14. redis.script", function()
  local source = "return redis.call('INCRBY', KEYS[1], ARGV[1])"

  it("has the SHA1 that SCRIPT LOAD gives, and that sha1sum gives",
     function()
    local s = redis.script(source)
    assert.equal(cli("SCRIPT", "LOAD", source), s.sha)
    for _, text in ipairs{ "", "abc", string.rep("x", 55), string.rep("y", 56),
                           string.rep("z", 64), string.rep("\0\255", 5000) } do
      local name = os.tmpname()
      f = assert(io.open(name, "wb")); f:write(text); f:close()
      local p = assert(io.popen("sha1sum " .. name))
      local want = p:read("a"):match("^%x+")
      p:close(); os.remove(name)
      assert.equal(want, redis.script(text).sha)
    end
    assert.matches("^redis.script %(%x+%)$", tostring(s))
  end)

  it("runs with EVALSHA, loads the script on NOSCRIPT (also after SCRIPT "
     .. "FLUSH) and runs it once more", function()
    cli("SCRIPT", "FLUSH")
    local base_load, base_sha = calls_of("script|load"), calls_of("evalsha")
    run(function()
      local c = connect()
      local s = redis.script(source)
      assert.equal(5, s:run(c, { "n" }, { 5 }))
      assert.equal(1, calls_of("script|load") - base_load)
      assert.equal(7, s:run(c, { "n" }, { 2 }))
      assert.equal(1, calls_of("script|load") - base_load)
      assert(c:cmd("SCRIPT", "FLUSH"))
      assert.same({ 0 }, c:cmd("SCRIPT", "EXISTS", s.sha))
      assert.equal(10, s:run(c, { "n" }, { 3 }))
      assert.equal(2, calls_of("script|load") - base_load)
      assert.same({ 1 }, c:cmd("SCRIPT", "EXISTS", s.sha))
      -- 2 NOSCRIPT + 3 runs: each run sent once, never twice.
      assert.equal(5, calls_of("evalsha") - base_sha)
      assert.equal("10", c:cmd("GET", "n"))
      c:close()
    end)
  end)

  it("returns error replies from inside a script as nil, text, and its "
     .. "results as cmd would", function()
    run(function()
      local c = connect()
      assert(c:cmd("SET", "str", "x"))
      local s = redis.script("return redis.error_reply('MYERR went wrong')")
      local r, err, cat = s:run(c)
      assert.is_nil(r); assert.equal("MYERR went wrong", err)
      assert.equal("redis", cat)
      r, err = redis.script("return redis.call('HGET', KEYS[1], 'f')")
        :run(c, { "str" })
      assert.is_nil(r); assert.matches("WRONGTYPE", err)
      r, err = redis.script("return redis.call('NOSUCHCMD')"):run(c)
      assert.is_nil(r); assert.matches("Unknown Redis command", err)
      r, err = redis.script("error('raised in lua')"):run(c)
      assert.is_nil(r); assert.matches("raised in lua", err)
      -- A NOSCRIPT-looking error from the script itself is not Redis's
      -- NOSCRIPT: the script ran, and is not sent again.
      local twice = redis.script(
        "redis.call('INCR', KEYS[1]); return redis.error_reply('NOSCRIPT fake')")
      for i = 1, 2 do
        r, err = twice:run(c, { "cnt" })
        assert.is_nil(r); assert.equal("NOSCRIPT fake", err)
        assert.equal(tostring(i), c:cmd("GET", "cnt"))
      end
      local v = redis.script("return {1, 'two', false, {err='inner'}}"):run(c)
      assert.same({ 1, "two", redis.null, { err = "inner" } }, v)
      r, err = redis.script("return false"):run(c)
      assert.is_nil(r); assert.equal("not found", err)
      local raise = raised(function() redis.script(42) end)
      assert.matches("source must be a string", raise)
      raise = raised(function() redis.script("return 1"):run(c, "k") end)
      assert.matches("keys must be an array", raise)
      c:close()
    end)
  end)
end)

describe("14. redis.map", function()
  it("turns flat replies and RESP3 pairs into tables; maps pass through",
     function()
    run(function()
      local c = connect()
      assert(c:cmd("HSET", "h", "a", "1", "b", "2"))
      assert(c:cmd("ZADD", "z", 1, "x", 2.5, "y"))
      assert.same({ a = "1", b = "2" }, redis.map(c:cmd("HGETALL", "h")))
      local conf = redis.map(c:cmd("CONFIG", "GET", "maxmemory-policy"))
      assert.is_string(conf["maxmemory-policy"])
      local z2 = redis.map(c:cmd("ZRANGE", "z", 0, -1, "WITHSCORES"))
      assert.same({ x = "1", y = "2.5" }, z2)
      assert(c:cmd("HELLO", 3))
      local m = c:cmd("HGETALL", "h")
      assert.equal(m, redis.map(m))
      assert.same({ x = 1.0, y = 2.5 }, redis.map(c:cmd("ZRANGE", "z", 0, -1,
        "WITHSCORES")))
      assert.same({}, redis.map({}))
      assert.matches("odd number", raised(redis.map, { "a" }))
      assert.matches("table expected", raised(redis.map, "a"))
      c:close(true)
    end)
  end)
end)
