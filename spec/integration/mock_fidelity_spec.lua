-- redis.mock against a real redis-server: every case below is sent as raw
-- RESP bytes to both, one reply is read from each, and the bytes must be
-- identical. The real server is the one the test run starts
-- (LEVR_REDIS_PORT); without it this spec fails, it never skips.
--
-- What is not compared byte for byte, and why:
--   * CLIENT ID, and the "id" field of HELLO's reply: connection numbers
--     differ between any two servers (HELLO is compared with the id
--     masked);
--   * INFO sections other than Keyspace: pids, uptimes, memory figures;
--   * PTTL of a key with a deadline: the milliseconds left drift with
--     time (TTL in seconds is compared);
--   * the order of SMEMBERS for sets that are not all integers and of
--     KEYS/SCAN with several keys: Redis answers in hash-table order, so
--     those replies are compared as multisets (cases marked unordered).
local lev = require("lev")
local mock = require("redis.mock")
local rc = require("resp_client")

local REAL_PORT = math.tointeger(tonumber(os.getenv("LEVR_REDIS_PORT") or ""))
if not REAL_PORT then
  error("mock_fidelity_spec: LEVR_REDIS_PORT is not set; start a server with "
    .. "tools/redis-server.sh start DIR and pass its port", 0)
end

-- A user known to both servers, for AUTH with a user name.
local FID_USER, FID_PASS = "mockfid", "fidpass"

local compared = 0

-- "SET k v" -> { "SET", "k", "v" }; a table case is used as is.
local function argv_of(case)
  if type(case) == "string" then
    local argv = {}
    for w in case:gmatch("%S+") do argv[#argv + 1] = w end
    return argv
  end
  if type(case[1]) == "string" and case[1]:find(" ") and #case == 1 then
    return argv_of(case[1])
  end
  local argv = {}
  for i = 1, #case do argv[i] = case[i] end
  return argv
end

-- The top-level elements of an aggregate reply, sorted, after its header:
-- how unordered replies are compared.
local function canonical(bytes)
  local e = bytes:find("\r\n", 1, true)
  local head = bytes:sub(1, e + 1)
  local items, pos = {}, e + 2
  while pos <= #bytes do
    local stop = rc.scan(bytes, pos)
    items[#items + 1] = bytes:sub(pos, stop)
    pos = stop + 1
  end
  -- A SCAN reply: cursor then an array; sort inside the array.
  if head == "*2\r\n" and #items == 2 and items[2]:sub(1, 1) == "*" then
    return head .. items[1] .. canonical(items[2])
  end
  table.sort(items)
  return head .. table.concat(items)
end

local function show(s)
  if s == nil then return "nil" end
  return (s:gsub("\r\n", "\\r\\n"))
end

-- Connection pairs: pairs[i] = { real = client, mock = client }.
local function open_pairs(srv, n)
  local ps = {}
  for i = 1, n do
    ps[i] = {
      real = assert(rc.connect(REAL_PORT)),
      mock = assert(rc.connect(srv:port())),
    }
  end
  return ps
end

local function reply_of(client)
  local r, err = client:reply(2)
  if r then return r end
  return "<" .. tostring(err) .. ">"
end

-- Runs a list of cases; returns the mismatches as text lines.
local function run_cases(ps, cases)
  local bad = {}
  for _, case in ipairs(cases) do
    local opts = type(case) == "table" and case or {}
    local p = ps[opts.on or 1]
    local label
    if opts.raw then
      p.real:raw(opts.raw)
      p.mock:raw(opts.raw)
      label = "raw " .. show(opts.raw)
    elseif not opts.read then
      local argv = argv_of(case)
      p.real:send(table.unpack(argv))
      p.mock:send(table.unpack(argv))
      label = table.concat(argv, " ")
    else
      label = "(read)"
    end
    if opts.closes then p.closed = true end
    for _ = 1, opts.replies or 1 do
      local want, got = reply_of(p.real), reply_of(p.mock)
      if opts.normalize then
        want, got = opts.normalize(want), opts.normalize(got)
      end
      if opts.unordered and want:sub(1, 1) ~= "-" then
        want, got = canonical(want), canonical(got)
      end
      if opts.skip then
        -- Sent to keep both servers in step; not comparable (see header).
      else
        compared = compared + 1
        if want ~= got then
          bad[#bad + 1] = label .. "\n      redis: " .. show(want)
            .. "\n      mock:  " .. show(got)
        end
      end
    end
  end
  return bad
end

-- One group: a fresh mock (with the shared test user), n connection pairs,
-- both servers flushed first, every case compared.
local function check(cases, n)
  local bad = lev.run(function()
    local srv = assert(mock.start{ port = 0, users = { [FID_USER] = FID_PASS } })
    local admin = assert(rc.connect(REAL_PORT))
    assert(admin:call("FLUSHALL") == "+OK\r\n")
    assert(admin:call("ACL", "SETUSER", FID_USER, "on", ">" .. FID_PASS,
      "~*", "&*", "+@all") == "+OK\r\n")
    local ps = open_pairs(srv, n or 1)
    local result = run_cases(ps, cases)
    -- Both sides must have answered exactly the replies read: a sentinel
    -- echoed on every open pair comes back next, or the cases miscounted.
    for i, p in ipairs(ps) do
      if not p.closed then
        for _, side in ipairs({ "real", "mock" }) do
          p[side]:send("ECHO", "sentinel")
          local r = reply_of(p[side])
          if r ~= "$8\r\nsentinel\r\n" then
            result[#result + 1] = "pair " .. i .. " (" .. side
              .. ") out of step: " .. show(r)
          end
        end
      end
    end
    for _, p in ipairs(ps) do p.real:close(); p.mock:close() end
    admin:call("ACL", "DELUSER", FID_USER)
    admin:call("FLUSHALL")
    admin:close()
    srv:close()
    return result
  end)
  assert(#bad == 0, #bad .. " replies differ from Redis:\n  "
    .. table.concat(bad, "\n  "))
end

local function mask_id(s)
  return (s:gsub("(\r\nid\r\n:)%d+\r\n", "%1ID\r\n"))
end

local LONG = string.rep("x", 200)

describe("redis.mock compared with a real Redis", function()
  it("answers connection and server commands with Redis's bytes", function()
    check{
      "PING", "PING hello", "PING a b", "ECHO hi", "ECHO", "ECHO a b",
      { "ECHO", "" },
      "SELECT 15", "SET in15 x", "DBSIZE", "SELECT 0", "DBSIZE",
      "SELECT 16", "SELECT -1", "SELECT x", "SELECT", "SELECT 99999999999",
      "DBSIZE x", "FLUSHDB", "FLUSHDB ASYNC", "FLUSHDB SYNC", "FLUSHDB x",
      "FLUSHDB a b", "FLUSHALL", "FLUSHALL sync", "FLUSHALL foo",
      "CLIENT SETNAME fid", "CLIENT GETNAME", { "CLIENT", "SETNAME", "a b" },
      { "CLIENT", "SETNAME", "" }, "CLIENT GETNAME", "CLIENT SETNAME",
      "CLIENT SETNAME x y", "CLIENT GETNAME x", "CLIENT ID x",
      { "CLIENT ID", skip = true }, "CLIENT KILL",
      "CLIENT KILL 1.2.3.4:5", "CLIENT KILL ID 999999", "CLIENT KILL ID x",
      "CLIENT KILL ID 0", "CLIENT KILL ADDR 1.2.3.4:5",
      "CLIENT KILL LADDR 1.2.3.4:5", "CLIENT KILL foo bar",
      "CLIENT KILL TYPE foo", "CLIENT KILL TYPE normal SKIPME yes ID 999999",
      "CLIENT KILL SKIPME maybe", "CLIENT KILL USER nobody",
      "CLIENT KILL ID 1 ADDR", "CLIENT foo", "CLIENT", "client Setname up",
      "INFO foo", "SET k v", "INFO keyspace", "INFO KEYSPACE foo",
      { "HELLO", normalize = mask_id }, { "HELLO 2", normalize = mask_id },
      "HELLO 1", "HELLO 4", "HELLO x", "HELLO 2 AUTH", "HELLO 2 AUTH a",
      "HELLO 2 foo", "HELLO 2 SETNAME", { "HELLO", "2", "SETNAME", "a b" },
      { "HELLO 2 SETNAME fid2", normalize = mask_id }, "CLIENT GETNAME",
      { "HELLO 2 AUTH " .. FID_USER .. " " .. FID_PASS, normalize = mask_id },
      "HELLO 2 AUTH " .. FID_USER .. " wrong",
      "AUTH", "AUTH x", "AUTH u p", "AUTH a b c",
      "AUTH " .. FID_USER .. " " .. FID_PASS, "AUTH " .. FID_USER .. " bad",
      "AUTH default anything",
      "FOO", "FOO a b", "GET a b", "get", { "FOO", LONG, LONG },
      { "FOO", "a\r\nb" }, { "BAR", "x", "" },
      "QUIT", { read = true, closes = true },
    }
  end)

  it("answers keyspace commands with Redis's bytes", function()
    check{
      "SET a 1", "SET b 2", "DEL a b c", "DEL", "EXISTS a b", "SET a 1",
      "EXISTS a a a nope", "EXISTS", "TYPE a", "TYPE nope", "TYPE",
      "HSET h f v", "TYPE h", "LPUSH l x", "TYPE l", "SADD s m", "TYPE s",
      "ZADD z 1 m", "TYPE z", "DEL h l s z",
      "EXPIRE a 100", "TTL a", "EXPIRE nope 100", "EXPIRE a abc",
      "EXPIRE a", "EXPIRE a 100 NX", "EXPIRE a 100 XX", "EXPIRE a 200 GT",
      "EXPIRE a 50 GT", "EXPIRE a 50 LT", "TTL a", "EXPIRE a 50 NX XX",
      "EXPIRE a 50 GT LT", "EXPIRE a 50 foo", "EXPIRE a 9223372036854775807",
      "EXPIRE a 9223372036854775", "PEXPIRE a 9223372036854775807",
      "PEXPIRE a 100000", "TTL a", "PEXPIRE a x", "PTTL nope", "TTL nope",
      "SET c 3", "TTL c", "PTTL c", "PERSIST c", "PERSIST a", "PERSIST a",
      "PERSIST nope", "TTL a", "EXPIRE a 10 LT", "TTL a", "EXPIRE c -5 GT",
      "EXISTS c", "EXPIRE c -1", "EXISTS c", "EXPIRE c 0", "PEXPIRE a 0 xx",
      "EXISTS a", "SET a 1 EX 100", "PERSIST a", "TTL a",
      "KEYS *", "KEYS", "KEYS * x", "KEYS nomatch*", "SET foo 1",
      "KEYS fo?", "KEYS f[a-o]o", "KEYS f[^a]o", "KEYS f*", "KEYS *o",
      { "KEYS *", unordered = true }, "KEYS [", "KEYS \\f*", "KEYS f[o-a]o",
      { "SCAN 0", unordered = true }, "SCAN 0 MATCH f*",
      "SCAN 0 MATCH nomatch", "SCAN 0 COUNT 0", "SCAN 0 COUNT -1",
      "SCAN 0 COUNT x", "SCAN x", "SCAN -", "SCAN 0 COUNT", "SCAN 0 foo",
      "SCAN 0 MATCH f* TYPE string", "SCAN 0 MATCH f* TYPE hash",
      "SCAN 99999999999999999999999", "SCAN",
      "RENAME foo bar", "RENAME nope bar", "RENAME bar bar",
      "RENAME nope nope", "GET bar", "RENAME bar", "SET x 1",
      "EXPIRE x 100", "RENAME x y", "TTL y", "EXISTS x", "SET y2 z",
      "RENAME y y2", "TTL y2", "GET y2", "RENAMENX y2 bar", "RENAMENX y2 q",
      "DBSIZE", "FLUSHDB", "DBSIZE", "KEYS *", "SCAN 0",
    }
  end)

  it("answers string commands with Redis's bytes", function()
    check{
      "SET k v EX 0", "SET k v EX -1", "SET k v EX abc",
      "SET k v EX 10 PX 100", "SET k v NX XX", "SET k v foo", "SET k v EX",
      "SET k v KEEPTTL EX 10", "SET k v EX 10 KEEPTTL", "SET k v GET",
      "SET k v2 GET", "SET k v GET NX", "SET k v3 XX GET", "SET n 1 NX GET",
      "SET k", "SET", "SET k v EX 100 EX 200", "TTL k",
      "SET k v EX 9999999999999999", "SET k v PX 9223372036854775807",
      "SET k v EXAT 1", "GET k", "SET k v PXAT 0", "SET k v EX 100",
      "TTL k", "SET k v nx", "SET k v xx", "SET nk v XX", "GET nk",
      "SET k v KEEPTTL", "TTL k", "SET k v", "TTL k",
      "HSET h a 1", "SET h v GET", "GET h", "GET", "GET a b",
      "MGET k nk h", "MGET", "MSET a 1 b", "MSET a 1 b 2", "MGET a b",
      "MSETNX a 1", "MSETNX a 1 c", "MSETNX c 3 d 4", "MGET c d",
      "INCR a", "INCR k", "INCR", "INCRBY a 10", "INCRBY a x", "INCRBY a",
      "INCRBY a 9223372036854775807", "SET big 9223372036854775807",
      "INCR big", "DECR big", "SET small -9223372036854775808",
      "DECR small", "DECRBY a -9223372036854775808",
      "DECRBY a 9223372036854775808", "INCRBY a 1.5", { "INCRBY", "a", " 1" },
      "INCRBY a +1", "INCRBY a 01", "INCRBY a -0", "SET z 01", "INCR z",
      { "SET", "sp", " 1" }, "INCR sp", "INCR h", "DECR a", "DECRBY a 5",
      "DECRBY a x", "INCR newkey", "DECR newkey2", "SET ex 5 EX 100",
      "INCR ex", "TTL ex",
      "SET f 10.5", "INCRBYFLOAT f 0.1", "SET f 5000", "INCRBYFLOAT f 0.1",
      "INCRBYFLOAT f -5000.1", "INCRBYFLOAT f 1e400", "INCRBYFLOAT f x",
      "INCRBYFLOAT k 1", "INCRBYFLOAT h 1", "INCRBYFLOAT nf 3.0e3",
      "INCRBYFLOAT nf 2.0e2", "INCRBYFLOAT nf inf", "INCRBYFLOAT nf 1e5000",
      "INCRBYFLOAT nf 1e-5000", "INCRBYFLOAT nf -5200",
      "INCRBYFLOAT nf 0.000003814697265625", "INCRBYFLOAT nf2 1.",
      "INCRBYFLOAT nf2 .", "INCRBYFLOAT nf2 0x10", { "INCRBYFLOAT", "nf2", "" },
      "INCRBYFLOAT hx 0x1092233720368547758079223372036854775807",
      "INCRBYFLOAT hx2 0x1.8p1", "INCRBYFLOAT hx2 0x", "INCRBYFLOAT hx2 0x1p-16446",
      "SET one 1", "INCRBYFLOAT one 0.33333333333333333333333",
      "APPEND k xyz", "APPEND h x", "APPEND nk2 hello", "APPEND nk2 ''",
      "STRLEN k", "STRLEN nope", "STRLEN h", "STRLEN",
      "GETRANGE k 0 -1", "GETRANGE k -100 100", "GETRANGE k 5 2",
      "GETRANGE nope 0 -1", "GETRANGE k a b", "GETRANGE h 0 1",
      "GETRANGE k 0 0", "GETRANGE k -1 -1", "GETRANGE k 0 -100",
      "GETRANGE k 2 -100", "GETRANGE k -1 -100", "GETRANGE k 1",
      "SETNX k v", "SETNX sn v", "GET sn", "SETEX k 0 v", "SETEX k x v",
      "SETEX se 100 v", "TTL se", "PSETEX k -1 v", "PSETEX ps 100000 v",
      "TTL ps", "GETSET k new", "GETSET nope2 v", "GETSET h v", "GETDEL k",
      "GETDEL k", "GETDEL h",
    }
  end)

  it("answers hash commands with Redis's bytes", function()
    check{
      "HSET h", "HSET h a", "HSET h a 1 b", "HSET h a 1 b 2 a 3", "HGET h a",
      "HGET h nope", "HGET nope a", "HGET h", "HMGET h a nope b",
      "HMGET nope a", "HMGET h", "HDEL h a nope", "HDEL h", "HGETALL h",
      "HGETALL nope", "HGETALL", "HEXISTS h b", "HEXISTS h zz",
      "HEXISTS h", "HINCRBY h b 5", "HINCRBY h b x", "HSET h s str",
      "HINCRBY h s 1", "HINCRBY h n 9223372036854775807", "HINCRBY h n 1",
      "HINCRBY h n -1", "HINCRBY h b", "HKEYS h", "HVALS h", "HLEN h",
      "HLEN nope", "HKEYS nope", "HLEN", "SET str x", "HGET str a",
      "HSET str a 1", "HGETALL str", "HDEL str a", "HLEN str",
      "HKEYS str", "HEXISTS str a", "HINCRBY str a 1", "HMGET str a",
      "HDEL h b s n", "EXISTS h", "HINCRBY h2 f -3", "HSET h3 b 1 a 2 c 3",
      "HDEL h3 a", "HSET h3 a 9", "HGETALL h3", "HSETNX h3 a 1",
      "HSETNX h3 z 1", "HMSET h3 x 1", "HMSET h3 x", "HSTRLEN h3 a",
      "HSTRLEN h3 nope", "HGETALL h3",
    }
  end)

  it("answers list commands with Redis's bytes", function()
    check{
      "LPUSH l", "LPUSH l a b c", "RPUSH l d e", "LRANGE l 0 -1",
      "LRANGE l -2 -1", "LRANGE l 5 10", "LRANGE l -100 100", "LRANGE l 3 1",
      "LRANGE l a b", "LRANGE nope 0 -1", "LRANGE l 0", "LLEN l",
      "LLEN nope", "LLEN", "LINDEX l 0", "LINDEX l -1", "LINDEX l 99",
      "LINDEX l -99", "LINDEX l x", "LINDEX nope 0", "LINDEX nope x",
      "LPOP l", "RPOP l", "LPOP l 2", "LPOP l 0", "LPOP l -1", "LPOP l x",
      "LPOP nope", "LPOP nope 2", "LPOP nope 0", "LPOP nope x",
      "RPOP l 10", "EXISTS l", "LPOP l a b", "RPOP", "SET s x",
      "LPUSH s a", "RPUSH s a", "LLEN s", "LRANGE s 0 1", "LINDEX s 0",
      "LPOP s", "RPOP s 1", "RPUSH l2 1 2 3", "LPOP l2 0", "RPOP l2 2",
      "LRANGE l2 0 -1", "LSET l2 0 x", "LSET l2 5 x", "LSET nope 0 x",
      "LRANGE l2 0 -1",
    }
  end)

  it("answers set commands with Redis's bytes", function()
    check{
      "SADD s", "SADD s 3 1 2 1", "SMEMBERS s", "SADD s 10 -5", "SMEMBERS s",
      "SADD s 007", { "SMEMBERS s", unordered = true }, "SREM s 007 99",
      "SISMEMBER s 1", "SISMEMBER s 9", "SISMEMBER nope 1", "SISMEMBER s",
      "SCARD s", "SCARD nope", "SMEMBERS nope", "SREM nope a", "SREM s",
      "SREM s 3 1 2 10 -5", "EXISTS s", "SET str x", "SADD str a",
      "SMEMBERS str", "SISMEMBER str a", "SCARD str", "SREM str a",
      "SADD s3 9223372036854775807 -9223372036854775808 0", "SMEMBERS s3",
      "SADD s4 1 +2 4", { "SMEMBERS s4", unordered = true },
      "SMISMEMBER s4 1 2 +2", "SMISMEMBER nope a", "SADD words b a c",
      { "SMEMBERS words", unordered = true }, "SCARD words",
    }
  end)

  it("answers sorted set commands with Redis's bytes", function()
    check{
      "ZADD z", "ZADD z 1", "ZADD z 1 a 2", "ZADD z 1 a 2 b 1.5 c",
      "ZADD z x a", "ZADD z nan a", "ZADD z inf a", "ZADD z -inf b +inf c",
      "ZRANGE z 0 -1 WITHSCORES", "ZADD z 1 a 2 b 3 c", "ZADD z nx xx 1 a",
      "ZADD z gt lt 1 a", "ZADD z nx gt 1 a", "ZADD z incr 1 a 2 b",
      "ZADD z incr 5 a", "ZADD z nx incr 5 a", "ZADD z xx incr 5 nope",
      "ZADD nope xx 1 a", "ZADD nope xx incr 1 a", "ZADD z ch 10 a 2 b 7 d",
      "ZADD z gt ch 1 a 20 b", "ZADD z lt 1 a", "ZADD z foo 1 a",
      "ZADD z 1e2 e 0x10 f 1. g .5 h", "ZRANGE z 0 -1 WITHSCORES",
      "ZSCORE z a", "ZSCORE z nope", "ZSCORE nope a", "ZSCORE z",
      "ZRANK z a", "ZRANK z nope", "ZRANK nope a", "ZRANK z a withscore",
      "ZCARD z", "ZCARD nope", "ZCARD", "ZREM z a nope", "ZREM z",
      "ZRANGE z 0 -1", "ZRANGE z 0 1 WITHSCORES", "ZRANGE z -2 -1",
      "ZRANGE z 10 20", "ZRANGE nope 0 -1", "ZRANGE z 0 -1 REV",
      "ZRANGE z 0 -1 foo", "ZRANGE z a b", "ZRANGE z 0",
      "ZRANGE z 0 -1 WITHSCORES WITHSCORES", "ZRANGE z (1 5 BYSCORE",
      "ZRANGE z -inf +inf BYSCORE LIMIT 1 2 WITHSCORES",
      "ZRANGE z 0 1 LIMIT 0 1", "ZRANGE z +inf -inf BYSCORE REV",
      "ZRANGE z [a [z BYLEX", "ZRANGE z - + BYLEX LIMIT 0 2",
      "ZRANGE z x y BYSCORE", "ZRANGE z a b BYLEX",
      "ZRANGE z 0 -1 BYSCORE BYLEX", "ZRANGE z - + BYLEX WITHSCORES",
      "ZRANGE z (3 (100 BYSCORE WITHSCORES", "ZRANGE z 0 10 BYSCORE LIMIT -1 2",
      "ZRANGE z 0 10 BYSCORE LIMIT 1 -1", "ZRANGE z ( 10 BYSCORE",
      "SET str x", "ZADD str 1 a", "ZSCORE str a", "ZRANGE str 0 -1",
      "ZCARD str", "ZREM str a", "ZRANK str a",
      "ZADD z2 1.1 a 2.5 b 3 c -0.0 d 1e20 e 0.1 f 1e-5 g 123456789012345678 h",
      "ZRANGE z2 0 -1 WITHSCORES", "ZADD z3 1 b 1 a 1 c 0 z", "ZRANGE z3 0 -1",
      "ZINCRBY z3 nan a", "ZADD z3 incr inf a", "ZADD z3 incr -inf a",
      "ZADD zz -0.0 a", "ZSCORE zz a", "ZADD zz incr -0.0 b",
      "ZADD zz incr -0.0 a", "ZINCRBY zz 2.5 a", "ZREVRANK zz a",
      "ZREVRANGE z2 0 2 WITHSCORES", "ZRANGEBYSCORE z2 1 3",
      "ZCOUNT z2 1 3", "ZCOUNT z2 (1 x", "ZREM zz a b", "EXISTS zz",
    }
  end)

  it("answers transactions and WATCH with Redis's bytes", function()
    check({
      "EXEC", "DISCARD", "MULTI", "MULTI", "SET a 1", "INCR a", "GET a b",
      "EXEC", "MULTI", "SET a 1", "FOO", "EXEC", "MULTI", "SET a 1",
      "DISCARD", "GET a", "MULTI", "SET a x", "INCR a", "LPUSH a b", "EXEC",
      "WATCH", "WATCH a", "MULTI", "EXEC", "WATCH a", "SET a 2", "MULTI",
      "GET a", "EXEC", "MULTI", "WATCH a", "EXEC", "WATCH a", "UNWATCH",
      "MULTI", "PING", "EXEC", "MULTI", "EXEC x", "MULTI", "UNWATCH", "EXEC",
      "WATCH k1 k2", { "SET k2 x", on = 2 }, "MULTI", "SET k1 y", "EXEC",
      "GET k1", "WATCH k3", { "GET k3", on = 2 }, "MULTI", "SET k3 y",
      "EXEC", "GET k3", "WATCH k4", { "DEL k4", on = 2 }, "MULTI",
      "SET k4 y", "EXEC", "WATCH k5", { "SET k5 v", on = 2 },
      { "FLUSHDB", on = 2 }, "MULTI", "EXEC", "MULTI", "SUBSCRIBE x",
      "EXEC", "PING", "UNSUBSCRIBE x",
    }, 2)
  end)

  it("answers pub/sub commands with Redis's bytes", function()
    check({
      "SUBSCRIBE", { "SUBSCRIBE a b", replies = 2 }, "SUBSCRIBE a",
      "PSUBSCRIBE p*", "PUBLISH a hello", { "PUBLISH a hello", on = 2 },
      { read = true }, { "PUBLISH pq x", on = 2 }, { read = true },
      { "PUBLISH a2 x", on = 2 }, { "PUBLISH", on = 2 },
      "PING", "PING x", "GET x", "UNSUBSCRIBE b", "UNSUBSCRIBE a",
      "PUNSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PING", "SUBSCRIBE a",
      "RESET", "PING", "UNSUBSCRIBE x", "PSUBSCRIBE a*",
      { "PUBLISH abc m", on = 2 }, { read = true }, "PUNSUBSCRIBE a*",
    }, 2)
  end)

  it("answers RESP3 connections with Redis's bytes after HELLO 3", function()
    check({
      { "HELLO 3", normalize = mask_id }, "GET nope", "SET k v", "GET k",
      "HSET h a 1 b 2", "HGETALL h", "HGETALL nope", "HMGET h a x",
      "SADD s 2 1", "SMEMBERS s", "SMEMBERS nope", "SISMEMBER s 1",
      "ZADD z 1.5 a 2 b", "ZSCORE z a", "ZSCORE z nope",
      "ZRANGE z 0 -1 WITHSCORES", "ZRANGE z 0 -1", "ZADD z INCR 1 b",
      "ZADD z NX INCR 1 b", "ZINCRBY z 0.25 a", "ZRANK z nope",
      "LPOP nope", "LPOP nope 2", "RPUSH l a", "LPOP l 5", "LINDEX nope 0",
      "INCRBYFLOAT f 1.5", "TTL k", "PING", "ECHO x", "CLIENT GETNAME",
      "MULTI", "GET nope", "EXEC", "WATCH k", "SET k x", "MULTI", "EXEC",
      "SET z2 x", "GET z2", "INFO keyspace",
      "UNSUBSCRIBE", { "SUBSCRIBE a b", replies = 2 }, "PING", "GET k",
      { "PUBLISH a m", on = 2 }, { read = true },
      -- A RESP3 publisher subscribed to the channel gets the message
      -- first, then the count.
      { "PUBLISH a self", replies = 2 }, { "PUBLISH b x", replies = 2 },
      "UNSUBSCRIBE a",
      "PSUBSCRIBE p*", "PUNSUBSCRIBE", "UNSUBSCRIBE b",
      { "HELLO 2", normalize = mask_id }, "HGETALL h",
    }, 2)
  end)

  it("reads inline commands as redis-cli and telnet send them", function()
    check{
      { raw = "PING\r\n" }, { raw = "SET inl \"a b\"\r\n" },
      { raw = "GET inl\r\n" }, { raw = "ECHO 'x y'\r\n" },
      { raw = "  ECHO   spaced  \r\n" }, { raw = "\r\nPING\r\n" },
      { raw = "ECHO \"\\x41\\n\"\r\n" }, { raw = "*1\r\n$4\r\nPING\r\n" },
      { raw = "*0\r\nPING\r\n" }, { raw = "set inl2 v\nget inl2\n", replies = 2 },
      { raw = "PING\r\nPING\r\n", replies = 2 },
    }
  end)

  it("answers malformed requests with Redis's protocol errors and closes", function()
    local bad = lev.run(function()
      local srv = assert(mock.start{ port = 0 })
      local out = {}
      for _, raw in ipairs({ "*x\r\n", "*1\r\n$x\r\n", "*1\r\nx\r\n",
                             "SET \"abc\r\n", "*1\r\n$-1\r\n",
                             "*1\r\n$600000000\r\n", "PING\r\n*1\r\n$z\r\n" }) do
        local got = {}
        for i, port in ipairs({ REAL_PORT, srv:port() }) do
          local c = assert(rc.connect(port))
          c:raw(raw)
          local bytes, why = c:drain(0.5)
          got[i] = bytes .. "<" .. tostring(why) .. ">"
          c:close()
        end
        compared = compared + 1
        if got[1] ~= got[2] then
          out[#out + 1] = show(raw) .. "\n      redis: " .. show(got[1])
            .. "\n      mock:  " .. show(got[2])
        end
      end
      srv:close()
      return out
    end)
    assert(#bad == 0, table.concat(bad, "\n  "))
  end)

  it("compared at least 150 replies byte for byte", function()
    assert.is_true(compared >= 150, "only " .. compared .. " replies compared")
  end)
end)
