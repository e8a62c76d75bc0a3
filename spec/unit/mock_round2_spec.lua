-- redis.mock round 2 (issue 18) over a real socket, scenarios as data:
-- each step a command and the exact reply bytes. "" as the reply sends
-- without reading (a blocking command), "<" reads the next reply, "~ N"
-- moves the mock clock on N seconds, "2> "/"3> " run a step on a second
-- or third connection, "raw:" sends bytes as they are, "<eof>" expects
-- the connection closed, "?blocked N" waits until N clients are parked,
-- "?busy" until a script has made the mock busy.
-- The clock stands still unless a step moves it.
-- spec/integration/mock_fidelity_spec.lua checks the same kinds of bytes
-- against a real Redis.
local lev = require("lev")
local mock = require("redis.mock")
local rc = require("resp_client")
local helper = require("lev_helper")
local util = require("redis.mock.util")

local NOW = 1700000000000

local function argv_of(step)
  if type(step) == "table" then return step end
  local argv = {}
  for w in step:gmatch("%S+") do argv[#argv + 1] = w end
  return argv
end

local function read_bytes(c, n)
  local got = ""
  while #got < n do
    local r, err = c:reply(2)
    if not r then return got .. "<" .. err .. ">" end
    got = got .. r
  end
  return got
end

local function show(s) return (s:gsub("\r\n", "\\r\\n")) end

local function play(sc)
  lev.run(function()
    local opts = { port = 0, clock = function() return NOW end }
    for k, v in pairs(sc.opts or {}) do opts[k] = v end
    local srv = assert(mock.start(opts))
    local conns = {}
    local function conn(i)
      conns[i] = conns[i] or assert(rc.connect(srv:port()))
      return conns[i]
    end
    local ok, err = pcall(function()
      for i = 2, #sc, 2 do
        local step, want = sc[i], sc[i + 1]
        local c, got = conn(1), nil
        if type(step) == "string" and step:match("^%d> ") then
          c, step = conn(tonumber(step:sub(1, 1))), step:sub(4)
        end
        if step == "?busy" then
          -- Waits until a script has made the mock busy.
          for _ = 1, 500 do
            if srv.engine.busy then break end
            lev.sleep(0.002)
          end
          got = srv.engine.busy and "" or "not busy"
        elseif type(step) == "string" and step:match("^%?blocked ") then
          -- Waits until the mock has parked that many clients.
          local want_n = tonumber(step:sub(10))
          local n
          for _ = 1, 500 do
            n = srv.engine.blocked_count or 0
            if n == want_n then break end
            lev.sleep(0.002)
          end
          got = tostring(n) == tostring(want_n) and "" or ("blocked " .. tostring(n))
        elseif type(step) == "string" and step:match("^~ ") then
          srv:advance(tonumber(step:sub(3)))
          lev.sleep(0.05)   -- the block timer looks every 10 ms
          got = ""
        elseif step == "<" then
          got = read_bytes(c, #want)
        elseif step == "<eof>" then
          local r, e = c:reply(1)
          got = r or (e == "eof" and "" or "<" .. e .. ">")
        elseif type(step) == "string" and step:match("^raw:") then
          c:raw(step:sub(5))
          got = read_bytes(c, #want)
        else
          assert(c:send(table.unpack(argv_of(step))))
          got = read_bytes(c, #want)
        end
        if want then
          local label = type(step) == "table" and table.concat(step, " ") or step
          assert(got == want, ("%s\n  step: %s\n  want: %s\n  got:  %s")
            :format(sc[1], label, show(want), show(got)))
        end
      end
    end)
    for _, c in pairs(conns) do c:close() end
    srv:close()
    if not ok then error(err, 0) end
  end)
end

local SCENARIOS = {
  { "BLPOP waits for a push from another client and gets its element",
    "BLPOP q1 q2 0", "",
    "?blocked 1", "",
    "2> RPUSH q2 a b", ":2\r\n",
    "<", "*2\r\n$2\r\nq2\r\n$1\r\na\r\n",
    "LRANGE q2 0 -1", "*1\r\n$1\r\nb\r\n",
  },
  { "blocked clients are served in the order they blocked",
    "BLPOP q 0", "",
    "?blocked 1", "",
    "2> BRPOP q 0", "",
    "?blocked 2", "",
    "3> RPUSH q x y", ":2\r\n",
    "<", "*2\r\n$1\r\nq\r\n$1\r\nx\r\n",
    "2> <", "*2\r\n$1\r\nq\r\n$1\r\ny\r\n",
    "3> EXISTS q", ":0\r\n",
  },
  { "a blocking pop times out with a null array when the clock passes",
    "BLPOP q 1.5", "",
    "?blocked 1", "",
    "~ 1", "",
    "2> LLEN q", ":0\r\n",
    "~ 1", "",
    "<", "*-1\r\n",
    "PING", "+PONG\r\n",
  },
  { "requests pipelined behind a blocked command wait for it",
    "raw:*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n", "",
    "?blocked 1", "",
    "2> LPUSH q v", ":1\r\n",
    "<", "*2\r\n$1\r\nq\r\n$1\r\nv\r\n",
    "<", "+PONG\r\n",
  },
  { "a key turning into another type leaves BLPOP blocked (Redis 7.0)",
    "BLPOP q 0", "",
    "?blocked 1", "",
    "2> SET q str", "+OK\r\n",
    "2> DEL q", ":1\r\n",
    "2> RPUSH q v", ":1\r\n",
    "<", "*2\r\n$1\r\nq\r\n$1\r\nv\r\n",
  },
  { "blocking commands answer at once inside MULTI",
    "MULTI", "+OK\r\n",
    "BLPOP q 0", "+QUEUED\r\n",
    "BRPOPLPUSH q d 0", "+QUEUED\r\n",
    "BZPOPMIN z 0", "+QUEUED\r\n",
    "BLMPOP 0 1 q LEFT", "+QUEUED\r\n",
    "EXEC", "*4\r\n*-1\r\n$-1\r\n*-1\r\n*-1\r\n",
  },
  { "a push inside MULTI wakes the blocked client after EXEC",
    "BLMOVE src dst LEFT RIGHT 0", "",
    "?blocked 1", "",
    "2> MULTI", "+OK\r\n",
    "2> RPUSH src a", "+QUEUED\r\n",
    "2> EXEC", "*1\r\n:1\r\n",
    "<", "$1\r\na\r\n",
    "LRANGE dst 0 -1", "*1\r\n$1\r\na\r\n",
  },
  { "BZPOPMIN and BZMPOP wake on ZADD",
    "BZPOPMIN z 0", "",
    "?blocked 1", "",
    "2> ZADD z 2 b 1 a", ":2\r\n",
    "<", "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n",
    "BZMPOP 0 1 z MAX COUNT 3", "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
  },
  { "CLIENT UNBLOCK ends a block with a timeout or an error",
    "CLIENT ID", ":1\r\n",
    "BLPOP q 0", "",
    "?blocked 1", "",
    "2> CLIENT UNBLOCK 1", ":1\r\n",
    "<", "*-1\r\n",
    "BLPOP q 0", "",
    "?blocked 1", "",
    "2> CLIENT UNBLOCK 1 ERROR", ":1\r\n",
    "<", "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n",
    "2> CLIENT UNBLOCK 1", ":0\r\n",
  },
  { "XREAD BLOCK waits for XADD",
    "XREAD BLOCK 0 STREAMS s $", "",
    "?blocked 1", "",
    "2> XADD s 5-1 f v", "$3\r\n5-1\r\n",
    "<", "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
  },
  { "list commands of round 2",
    "RPUSH l a b c a", ":4\r\n",
    "LPOS l a RANK -1", ":3\r\n",
    "LPOS l a COUNT 0", "*2\r\n:0\r\n:3\r\n",
    "LINSERT l BEFORE c X", ":5\r\n",
    "LREM l 0 a", ":2\r\n",
    "LTRIM l 0 1", "+OK\r\n",
    "LMOVE l m RIGHT LEFT", "$1\r\nX\r\n",
    "RPOPLPUSH l m", "$1\r\nb\r\n",
    "LMPOP 2 l m LEFT COUNT 5", "*2\r\n$1\r\nm\r\n*2\r\n$1\r\nb\r\n$1\r\nX\r\n",
    "LPUSHX l a", ":0\r\n",
  },
  { "set, hash and string commands of round 2",
    "SADD a 1 2 3", ":3\r\n",
    "SADD b 2 3 4", ":3\r\n",
    "SINTER a b", "*2\r\n$1\r\n2\r\n$1\r\n3\r\n",
    "SDIFFSTORE d a b", ":1\r\n",
    "SINTERCARD 2 a b LIMIT 1", ":1\r\n",
    "SMOVE a b 1", ":1\r\n",
    "HINCRBYFLOAT h f 1.5", "$3\r\n1.5\r\n",
    "SET s foobar", "+OK\r\n",
    "SETRANGE s 3 XY", ":6\r\n",
    "GETRANGE s 2 4", "$3\r\noXY\r\n",
    "SETBIT bits 9 1", ":0\r\n",
    "BITCOUNT bits", ":1\r\n",
    "BITPOS bits 1", ":9\r\n",
    "GETEX s EX 100", "$6\r\nfooXYr\r\n",
    "EXPIRETIME s", ":1700000100\r\n",
    "PEXPIRETIME s", ":1700000100000\r\n",
    "COPY s s2", ":1\r\n",
    "TTL s2", ":100\r\n",
    "MOVE s2 3", ":1\r\n",
    "LCS s s", "$6\r\nfooXYr\r\n",
  },
  { "sorted set commands of round 2",
    "ZADD z 1 a 2 b 3 c", ":3\r\n",
    "ZPOPMIN z", "*2\r\n$1\r\na\r\n$1\r\n1\r\n",
    "ZRANGEBYLEX z - +", "*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
    "ZADD y 5 c", ":1\r\n",
    "ZUNIONSTORE u 2 z y", ":2\r\n",
    "ZRANGE u 0 -1 WITHSCORES", "*4\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n8\r\n",
    "ZINTERCARD 2 z y", ":1\r\n",
    "ZRANGESTORE r z 0 0", ":1\r\n",
    "ZMPOP 1 z MAX", "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n",
  },
  { "EVAL runs a script atomically with redis.call and Redis's conversions",
    { "EVAL", "redis.call('incr', KEYS[1]); return redis.call('incr', KEYS[1])", "1", "n" },
    ":2\r\n",
    { "EVAL", "return {1, 'x', {ok='S'}, false, 2.9}", "0" },
    "*5\r\n:1\r\n$1\r\nx\r\n+S\r\n$-1\r\n:2\r\n",
    { "EVAL", "return redis.pcall('lpush', 'n', 'x')", "0" },
    "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    { "EVAL", "return redis.call('lpush', 'n', 'x')", "0" },
    "-WRONGTYPE Operation against a key holding the wrong kind of value script: 210e90cee85079ed9cfbe46eb2fe85d8a2e533e3, on @user_script:1.\r\n",
    { "SCRIPT", "LOAD", "return ARGV[1]" }, "$40\r\n098e0f0d1448c0a81dafe820f66d460eb09263da\r\n",
    "EVALSHA 098e0f0d1448c0a81dafe820f66d460eb09263da 0 hi", "$2\r\nhi\r\n",
    "SCRIPT FLUSH", "+OK\r\n",
    "EVALSHA 098e0f0d1448c0a81dafe820f66d460eb09263da 0 hi",
    "-NOSCRIPT No matching script. Please use EVAL.\r\n",
    { "EVAL", "return os.execute", "0" }, "$-1\r\n",
    { "EVAL", "return io", "0" }, "$-1\r\n",
  },
  { "a script past busy-reply-threshold makes the server BUSY until SCRIPT KILL",
    "CONFIG SET busy-reply-threshold 50", "+OK\r\n",
    { "EVAL", "while true do end", "0" }, "",
    "?busy", "",
    "2> ECHO sync", "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n",
    "2> MULTI", "+OK\r\n",
    "2> INCR n", "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n",
    "3> SCRIPT KILL", "+OK\r\n",
    "<", "-ERR Script killed by user with SCRIPT KILL... script: 694a5fe1ddb97a4c6a1bf299d9537c7d3d0f84e7, on @user_script:1.\r\n",
    "2> EXEC", "-EXECABORT Transaction discarded because of previous errors.\r\n",
    "3> SCRIPT KILL", "-NOTBUSY No scripts in execution right now.\r\n",
    "PING", "+PONG\r\n",
  },
  { "a script that wrote is stopped with an error past busy-reply-threshold",
    "CONFIG SET busy-reply-threshold 50", "+OK\r\n",
    { "EVAL", "redis.call('set','k','v') while true do end", "0" },
    "-ERR Error running script: the mock stops scripts running longer than busy-reply-threshold (50 ms) script: 6b6da2ec572bf97babe08cca45aaeb9bb7f4dc19, on @user_script:1.\r\n",
    "PING", "+PONG\r\n",
  },
  { "CONFIG GET/SET and the harness's FUNCTION FLUSH",
    "CONFIG SET list-max-ziplist-size 4", "+OK\r\n",
    "CONFIG GET list-max-listpack-size", "*2\r\n$22\r\nlist-max-listpack-size\r\n$1\r\n4\r\n",
    "CONFIG SET maxmemory 1mb", "+OK\r\n",
    "CONFIG GET maxmemory", "*2\r\n$9\r\nmaxmemory\r\n$7\r\n1048576\r\n",
    "CONFIG SET nope 1", "-ERR Unknown option or number of arguments for CONFIG SET - 'nope'\r\n",
    "FUNCTION FLUSH", "+OK\r\n",
    "MEMORY USAGE none", "$-1\r\n",
  },
  { "keyspace notifications reach pattern subscribers",
    "CONFIG SET notify-keyspace-events KEl", "+OK\r\n",
    "2> PSUBSCRIBE *", "*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n",
    "SET k v", "+OK\r\n",
    "LPUSH l a", ":1\r\n",
    "2> <", "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$16\r\n__keyspace@0__:l\r\n$5\r\nlpush\r\n",
    "2> <", "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$20\r\n__keyevent@0__:lpush\r\n$1\r\nl\r\n",
  },
  { "CLIENT REPLY OFF and SKIP silence replies",
    "CLIENT REPLY SKIP", "",
    "SET a 1", "",
    "GET a", "$1\r\n1\r\n",
    "CLIENT REPLY OFF", "",
    "SET a 2", "",
    "CLIENT REPLY ON", "+OK\r\n",
    "GET a", "$1\r\n2\r\n",
  },
  { "sharded pub/sub delivers SPUBLISH to SSUBSCRIBErs",
    "2> SSUBSCRIBE sc", "*3\r\n$10\r\nssubscribe\r\n$2\r\nsc\r\n:1\r\n",
    "SPUBLISH sc hi", ":1\r\n",
    "2> <", "*3\r\n$8\r\nsmessage\r\n$2\r\nsc\r\n$2\r\nhi\r\n",
    "PUBSUB SHARDNUMSUB sc", "*2\r\n$2\r\nsc\r\n:1\r\n",
  },
  { "an unauthenticated client sending more than 10 arguments is cut off",
    opts = { password = "pw" },
    "raw:*11\r\n", "-ERR Protocol error: unauthenticated multibulk length\r\n",
    "<eof>", "",
  },
  { "an unauthenticated client announcing a big bulk is cut off",
    opts = { password = "pw" },
    "raw:*1\r\n$100000000\r\n", "-ERR Protocol error: unauthenticated bulk length\r\n",
    "<eof>", "",
  },
  { "after AUTH the same request sizes are fine",
    opts = { password = "pw" },
    "AUTH pw", "+OK\r\n",
    "RPUSH l 1 2 3 4 5 6 7 8 9 10 11", ":11\r\n",
  },
  { "pipelined requests read together are all answered, in order",
    "raw:*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\nPING\r\n",
    "+OK\r\n$1\r\nv\r\n-ERR value is not an integer or out of range\r\n+PONG\r\n",
  },
}

describe("redis.mock round 2", function()
  after_each(function()
    local handles, tasks = helper.leftovers()
    assert.are.equal(0, handles, "live libuv handles left behind")
    assert.are.equal(0, tasks, "lev tasks left behind")
  end)
  for _, sc in ipairs(SCENARIOS) do
    it(sc[1], function() play(sc) end)
  end

  it("answers a batch of pipelined requests with one write", function()
    lev.run(function()
      local writes = {}
      local srv = assert(mock.start{ port = 0, on_connect = function(conn)
        -- Count the writes on this connection's stream.
        local real = conn.stream
        conn.stream = setmetatable({}, { __index = function(_, k)
          local v = real[k]
          if type(v) ~= "function" then return v end
          return function(_, ...)
            if k == "write" then writes[#writes + 1] = select(1, ...) end
            return v(real, ...)
          end
        end })
      end })
      local c = assert(rc.connect(srv:port()))
      local batch = {}
      for i = 1, 16 do batch[i] = rc.encode("INCR", "n") end
      c:raw(table.concat(batch))
      local got = read_bytes(c, #":1\r\n" * 9 + #":10\r\n" * 7)
      c:close()
      srv:close()
      assert.are.equal(":1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n:8\r\n:9\r\n"
        .. ":10\r\n:11\r\n:12\r\n:13\r\n:14\r\n:15\r\n:16\r\n", got)
      assert.are.equal(1, #writes)
    end)
  end)

  it("TIME is the real time to well under a second (not whole seconds)", function()
    local function date_us()
      local p = io.popen("date +%s%N")
      local ns = tonumber(p:read("l"))
      p:close()
      return ns // 1000
    end
    lev.run(function()
      local srv = assert(mock.start{ port = 0 })
      local c = assert(rc.connect(srv:port()))
      for _ = 1, 3 do
        local before = date_us()
        local r = c:call("TIME")
        local after = date_us()
        local sec, usec = r:match("^%*2\r\n%$%d+\r\n(%d+)\r\n%$%d+\r\n(%d+)\r\n$")
        local t = tonumber(sec) * 1000000 + tonumber(usec)
        assert.is_true(t >= before - 100000 and t <= after + 100000,
          ("TIME %d outside [%d, %d]"):format(t, before, after))
        lev.sleep(0.3)
      end
      c:close()
      srv:close()
    end)
  end)

  it("the wall clock corrects itself on an os.time() step", function()
    local mono = 0
    local clock = util.wall_clock(function() return mono end)
    -- Whatever the first reading, it stays monotonic as mono advances.
    local a = clock()
    mono = 0.5
    local b = clock()
    assert.is_true(b >= a + 499 and b <= a + 501)
  end)
end)
