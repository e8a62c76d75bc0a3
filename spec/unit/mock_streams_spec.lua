-- redis.mock's consumer-group commands on the pure engine with a clock
-- that moves only when a test moves it, so idle times are exact: XCLAIM,
-- XAUTOCLAIM, XPENDING's idle, XINFO's entries-read and lag, and blocked
-- XREADGROUP readers woken by a group or key going away. The same
-- commands are compared byte for byte with a real Redis in
-- spec/integration/mock_fidelity_spec.lua (where only what the clock does
-- not decide can be compared).
local mock = require("redis.mock")

local T0 = 1700000000000

local mock_helper = require("mock_helper")
-- The engine on a clock that moves only when a test moves it (T0 at
-- first); replies as RESP2 bytes (sessions speak RESP2 unless HELLO 3).
local setup, words, run = mock_helper.engine, mock_helper.words, mock_helper.run

-- A bulk string's bytes, and an array of bulks.
local function bulk(v) return "$" .. #v .. "\r\n" .. v .. "\r\n" end
local function bulks(list)
  local out = { "*" .. #list .. "\r\n" }
  for _, v in ipairs(list) do out[#out + 1] = bulk(v) end
  return table.concat(out)
end
-- One entry with a single field f = v.
local function entry(id, v) return "*2\r\n" .. bulk(id) .. "*2\r\n" .. bulk("f") .. bulk(v) end
-- XPENDING's line for one pending entry.
local function pending(id, who, idle, count)
  return "*4\r\n" .. bulk(id) .. bulk(who) .. ":" .. idle .. "\r\n:" .. count .. "\r\n"
end

-- A stream x of n entries 1-0 .. n-0 (f = "1" ...), group g read whole
-- by Alice at T0.
local function stream_read_by_alice(e, s, n)
  for i = 1, n do run(e, s, "XADD x " .. i .. "-0 f " .. i) end
  assert.are.equal("+OK\r\n", run(e, s, "XGROUP CREATE x g 0"))
  run(e, s, "XREADGROUP GROUP g Alice STREAMS x >")
end

describe("redis.mock XCLAIM", function()
  it("claims only entries idle for min-idle-time, and resets their idle time", function()
    local e, s, clock = setup()
    stream_read_by_alice(e, s, 2)
    clock.now = T0 + 999
    assert.are.equal("*0\r\n", run(e, s, "XCLAIM x g Bob 1000 1-0"))
    -- Nothing claimed: Bob was not created.
    assert.are.equal("*1\r\n", run(e, s, "XINFO CONSUMERS x g"):sub(1, 4))
    clock.now = T0 + 1000
    assert.are.equal("*1\r\n" .. entry("1-0", "1"), run(e, s, "XCLAIM x g Bob 1000 1-0"))
    clock.now = T0 + 1500
    assert.are.equal("*2\r\n" .. pending("1-0", "Bob", 500, 2) .. pending("2-0", "Alice", 1500, 1),
      run(e, s, "XPENDING x g - + 10"))
  end)

  it("counts a delivery unless JUSTID; RETRYCOUNT sets the count", function()
    local e, s = setup()
    stream_read_by_alice(e, s, 3)
    assert.are.equal(bulks{ "1-0" }, run(e, s, "XCLAIM x g Bob 0 1-0 JUSTID"))
    run(e, s, "XCLAIM x g Bob 0 2-0")
    run(e, s, "XCLAIM x g Bob 0 3-0 RETRYCOUNT 9")
    -- A negative RETRYCOUNT is no RETRYCOUNT: the count goes up.
    run(e, s, "XCLAIM x g Bob 0 2-0 RETRYCOUNT -1")
    assert.are.equal("*3\r\n" .. pending("1-0", "Bob", 0, 1) .. pending("2-0", "Bob", 0, 3)
      .. pending("3-0", "Bob", 0, 9), run(e, s, "XPENDING x g - + 10"))
  end)

  it("sets the delivery time with IDLE and TIME, now when it would be in the future", function()
    local e, s, clock = setup()
    stream_read_by_alice(e, s, 3)
    clock.now = T0 + 10000
    run(e, s, "XCLAIM x g Bob 0 1-0 IDLE 4000")
    run(e, s, "XCLAIM x g Bob 0 2-0 TIME " .. (T0 + 1000))
    run(e, s, "XCLAIM x g Bob 0 3-0 TIME " .. (T0 + 20000))
    assert.are.equal("*3\r\n" .. pending("1-0", "Bob", 4000, 2) .. pending("2-0", "Bob", 9000, 2)
      .. pending("3-0", "Bob", 0, 2), run(e, s, "XPENDING x g - + 10"))
    assert.are.equal("*2\r\n" .. pending("1-0", "Bob", 4000, 2) .. pending("2-0", "Bob", 9000, 2),
      run(e, s, "XPENDING x g IDLE 4000 - + 10"))
  end)

  it("drops a deleted entry from the PEL without answering it", function()
    local e, s = setup()
    stream_read_by_alice(e, s, 3)
    run(e, s, "XDEL x 2-0")
    assert.are.equal("*2\r\n" .. entry("1-0", "1") .. entry("3-0", "3"),
      run(e, s, "XCLAIM x g Bob 0 1-0 2-0 3-0"))
    assert.are.equal("*0\r\n", run(e, s, "XPENDING x g - + 10 Alice"))
    assert.are.equal(":2\r\n", run(e, s, "XPENDING x g"):match("^%*4\r\n(:%d+\r\n)"))
    -- Even an entry too young to claim leaves the PEL once deleted.
    run(e, s, "XDEL x 3-0")
    assert.are.equal("*0\r\n", run(e, s, "XCLAIM x g Carol 3600000 3-0"))
    assert.are.equal("*1\r\n" .. pending("1-0", "Bob", 0, 2), run(e, s, "XPENDING x g - + 10"))
  end)

  it("FORCE makes a pending entry for an existing entry only", function()
    local e, s = setup()
    for i = 1, 2 do run(e, s, "XADD x " .. i .. "-0 f " .. i) end
    run(e, s, "XGROUP CREATE x g $")
    assert.are.equal("*0\r\n", run(e, s, "XCLAIM x g Bob 0 1-0"))
    assert.are.equal(bulks{ "1-0" }, run(e, s, "XCLAIM x g Bob 3600000 1-0 9-0 FORCE JUSTID"))
    assert.are.equal("*1\r\n" .. pending("1-0", "Bob", 0, 1), run(e, s, "XPENDING x g - + 10"))
  end)

  it("LASTID moves the group's last id on, never back", function()
    local e, s = setup()
    stream_read_by_alice(e, s, 2)
    run(e, s, "XCLAIM x g Bob 0 1-0 LASTID 7-0")
    assert.truthy(run(e, s, "XINFO GROUPS x"):find(bulk("last-delivered-id") .. bulk("7-0"), 1, true))
    run(e, s, "XCLAIM x g Bob 0 1-0 LASTID 3-0")
    assert.truthy(run(e, s, "XINFO GROUPS x"):find(bulk("last-delivered-id") .. bulk("7-0"), 1, true))
  end)

  it("words its errors as Redis does", function()
    local e, s = setup()
    assert.are.equal("-NOGROUP No such key 'x' or consumer group 'g'\r\n",
      run(e, s, "XCLAIM x g Bob 0 1-0"))
    stream_read_by_alice(e, s, 1)
    assert.are.equal("-ERR Invalid min-idle-time argument for XCLAIM\r\n",
      run(e, s, "XCLAIM x g Bob -x 1-0"))
    assert.are.equal("-ERR Unrecognized XCLAIM option '2-x'\r\n",
      run(e, s, "XCLAIM x g Bob 0 1-0 2-x"))
    assert.are.equal("-ERR Invalid IDLE option argument for XCLAIM\r\n",
      run(e, s, "XCLAIM x g Bob 0 1-0 IDLE 1.5"))
    assert.are.equal("-ERR Invalid stream ID specified as stream command argument\r\n",
      run(e, s, "XCLAIM x g Bob 0 1-0 LASTID +"))
  end)
end)

describe("redis.mock XAUTOCLAIM", function()
  it("answers the next cursor, the claimed entries and the deleted IDs", function()
    local e, s = setup()
    stream_read_by_alice(e, s, 4)
    run(e, s, "XDEL x 2-0")
    assert.are.equal("*3\r\n" .. bulk("3-0") .. "*1\r\n" .. entry("1-0", "1") .. bulks{ "2-0" },
      run(e, s, "XAUTOCLAIM x g Bob 0 - COUNT 2"))
    assert.are.equal("*3\r\n" .. bulk("0-0") .. bulks{ "3-0", "4-0" } .. "*0\r\n",
      run(e, s, "XAUTOCLAIM x g Bob 0 3-0 JUSTID"))
    -- JUSTID left the counts alone; the first claim counted one.
    assert.are.equal("*3\r\n" .. pending("1-0", "Bob", 0, 2) .. pending("3-0", "Bob", 0, 1)
      .. pending("4-0", "Bob", 0, 1), run(e, s, "XPENDING x g - + 10"))
  end)

  it("looks at no more than COUNT * 10 pending entries", function()
    local e, s, clock = setup()
    stream_read_by_alice(e, s, 12)
    clock.now = T0 + 50
    -- Entries 1-0 .. 11-0 delivered again 50 ms later; 12-0 not.
    run(e, s, "XCLAIM x g Alice 0 1-0 2-0 3-0 4-0 5-0 6-0 7-0 8-0 9-0 10-0 11-0 JUSTID")
    clock.now = T0 + 100
    -- Only 12-0 is idle for 100 ms; ten looks with COUNT 1 stop at 11-0.
    assert.are.equal("*3\r\n" .. bulk("11-0") .. "*0\r\n*0\r\n",
      run(e, s, "XAUTOCLAIM x g Bob 100 0-0 COUNT 1"))
    assert.are.equal("*3\r\n" .. bulk("0-0") .. bulks{ "12-0" } .. "*0\r\n",
      run(e, s, "XAUTOCLAIM x g Bob 100 11-0 COUNT 1 JUSTID"))
  end)

  it("words its errors as Redis does", function()
    local e, s = setup()
    assert.are.equal("-ERR COUNT must be > 0\r\n", run(e, s, "XAUTOCLAIM x g Bob 0 0-0 COUNT 0"))
    assert.are.equal("-ERR COUNT must be > 0\r\n",
      run(e, s, "XAUTOCLAIM x g Bob 0 0-0 COUNT 8070450532247928833"))
    assert.are.equal("-ERR Invalid min-idle-time argument for XAUTOCLAIM\r\n",
      run(e, s, "XAUTOCLAIM x g Bob x 0-0"))
    assert.are.equal("-ERR syntax error\r\n", run(e, s, "XAUTOCLAIM x g Bob 0 0-0 COUNT"))
    assert.are.equal("-NOGROUP No such key 'x' or consumer group 'g'\r\n",
      run(e, s, "XAUTOCLAIM x g Bob 0 0-0"))
  end)
end)

describe("redis.mock XINFO entries-read and lag", function()
  local function group_fields(e, s)
    local r = run(e, s, "XINFO GROUPS x")
    local read = r:match("entries%-read\r\n([^\r]*)")
    local lag = r:match("lag\r\n([^\r]*)")
    return read, lag
  end

  it("counts reads and lag while the stream has no deletions", function()
    local e, s = setup()
    for i = 1, 5 do run(e, s, "XADD x " .. i .. "-0 f " .. i) end
    run(e, s, "XGROUP CREATE x g 0")
    assert.are.same({ "$-1", ":5" }, { group_fields(e, s) })
    run(e, s, "XREADGROUP GROUP g c COUNT 2 STREAMS x >")
    assert.are.same({ ":2", ":3" }, { group_fields(e, s) })
    run(e, s, "XADD x 6-0 f 6")
    assert.are.same({ ":2", ":4" }, { group_fields(e, s) })
  end)

  it("cannot tell the lag across a deletion until the group passes it", function()
    local e, s = setup()
    for i = 1, 5 do run(e, s, "XADD x " .. i .. "-0 f " .. i) end
    run(e, s, "XDEL x 3-0")
    run(e, s, "XGROUP CREATE x g 0")
    assert.are.same({ "$-1", "$-1" }, { group_fields(e, s) })
    run(e, s, "XREADGROUP GROUP g c COUNT 3 STREAMS x >")
    assert.are.same({ "$-1", "$-1" }, { group_fields(e, s) })
    run(e, s, "XREADGROUP GROUP g c COUNT 1 STREAMS x >")
    assert.are.same({ ":5", ":0" }, { group_fields(e, s) })
  end)

  it("XSETID sets entries-added and the max deleted id XINFO STREAM shows", function()
    local e, s = setup()
    run(e, s, "XADD x 1-0 f 1")
    assert.are.equal("+OK\r\n", run(e, s, "XSETID x 5-0 ENTRIESADDED 9 MAXDELETEDID 4-0"))
    local r = run(e, s, "XINFO STREAM x")
    assert.truthy(r:find(bulk("last-generated-id") .. bulk("5-0"), 1, true))
    assert.truthy(r:find(bulk("max-deleted-entry-id") .. bulk("4-0"), 1, true))
    assert.truthy(r:find(bulk("entries-added") .. ":9\r\n", 1, true))
    assert.are.equal("-ERR The ID specified in XSETID is smaller than the target stream top item\r\n",
      run(e, s, "XSETID x 0-5"))
  end)
end)

describe("redis.mock stream trimming", function()
  it("with ~ removes whole nodes of stream-node-max-entries only, within LIMIT", function()
    local e, s = setup()
    run(e, s, "CONFIG SET stream-node-max-entries 4")
    for i = 1, 10 do run(e, s, "XADD x " .. i .. "-0 f " .. i) end
    -- Nodes 1-4, 5-8, 9-10: the first node may go, the second may not.
    assert.are.equal(":4\r\n", run(e, s, "XTRIM x MAXLEN ~ 5"))
    assert.are.equal(":0\r\n", run(e, s, "XTRIM x MAXLEN ~ 0 LIMIT 3"))
    -- Exact trimming takes entries out of a node, leaving 6-0 7-0 8-0.
    assert.are.equal(":1\r\n", run(e, s, "XTRIM x MAXLEN 5"))
    assert.are.equal(":0\r\n", run(e, s, "XTRIM x MAXLEN ~ 3"))
    assert.are.equal(":3\r\n", run(e, s, "XTRIM x MAXLEN ~ 2"))
    -- A deleted entry still counts in its node's size: 13-0 opens a node.
    run(e, s, "XADD x 11-0 f 11")
    run(e, s, "XADD x 12-0 f 12")
    run(e, s, "XDEL x 12-0")
    run(e, s, "XADD x 13-0 f 13")
    assert.truthy(run(e, s, "XINFO STREAM x"):find(bulk("radix-tree-keys") .. ":2\r\n", 1, true))
    assert.are.equal("-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n",
      run(e, s, "XTRIM x MAXLEN 1 LIMIT 2"))
  end)
end)

describe("redis.mock blocked XREADGROUP", function()
  it("ends with NOGROUP when its group is destroyed", function()
    local e, s = setup()
    run(e, s, "XGROUP CREATE x g $ MKSTREAM")
    local reader = e:session{}
    e:dispatch(reader, words("XREADGROUP GROUP g Alice BLOCK 0 STREAMS x >"))
    assert.are.equal(0, #reader.outbox)
    run(e, s, "XGROUP DESTROY x g")
    assert.are.equal(1, #reader.outbox)
    assert.are.equal("-NOGROUP the consumer group this client was blocked on no longer exists\r\n",
      mock.encode(reader.outbox[1], 2))
  end)

  it("ends with UNBLOCKED when its stream is deleted", function()
    local e, s = setup()
    run(e, s, "XGROUP CREATE x g $ MKSTREAM")
    local reader = e:session{}
    e:dispatch(reader, words("XREADGROUP GROUP g Alice BLOCK 0 STREAMS x >"))
    run(e, s, "DEL x")
    assert.are.equal("-UNBLOCKED the stream key no longer exists\r\n",
      mock.encode(reader.outbox[1], 2))
  end)

  it("ends with UNBLOCKED when its database is flushed", function()
    local e, s = setup()
    run(e, s, "XGROUP CREATE x g $ MKSTREAM")
    local reader = e:session{}
    e:dispatch(reader, words("XREADGROUP GROUP g Alice BLOCK 0 STREAMS x >"))
    run(e, s, "FLUSHALL")
    assert.are.equal("-UNBLOCKED the stream key no longer exists\r\n",
      mock.encode(reader.outbox[1], 2))
  end)

  it("counts the error it ends with in errorstats and as a failed call", function()
    local e, s = setup()
    run(e, s, "XGROUP CREATE x g $ MKSTREAM")
    local reader = e:session{}
    e:dispatch(reader, words("XREADGROUP GROUP g Alice BLOCK 0 STREAMS x >"))
    run(e, s, "XGROUP DESTROY x g")
    local info = run(e, s, "INFO errorstats")
    assert.truthy(info:find("errorstat_NOGROUP:count=1", 1, true))
    info = run(e, s, "INFO commandstats")
    assert.truthy(info:match("cmdstat_xreadgroup:calls=1,[^\r]*failed_calls=1"))
  end)

  it("is served by an XADD, which moves the group's read counter", function()
    local e, s = setup()
    run(e, s, "XGROUP CREATE x g $ MKSTREAM")
    local reader = e:session{}
    e:dispatch(reader, words("XREADGROUP GROUP g Alice BLOCK 0 STREAMS x >"))
    run(e, s, "XADD x 1-0 f 1")
    assert.are.equal("*1\r\n*2\r\n" .. bulk("x") .. "*1\r\n" .. entry("1-0", "1"),
      mock.encode(reader.outbox[1], 2))
    local r = run(e, s, "XINFO GROUPS x")
    assert.truthy(r:find(bulk("entries-read") .. ":1\r\n" .. bulk("lag") .. ":0\r\n", 1, true))
  end)
end)
