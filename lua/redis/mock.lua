-- redis.mock: a scriptable in-process Redis server for tests.
--
-- It speaks RESP2 and RESP3 (after HELLO 3) with the bytes Redis 7.0
-- writes, keeps an in-memory keyspace (16 databases, key expiry, strings,
-- hashes, lists, sets, sorted sets, MULTI/EXEC/WATCH, pub/sub, AUTH with
-- ACL-style users) and lets a test bend every reply.
--
-- Running it
--   lev.run(function()
--     local srv = assert(mock.start{ port = 0 })   -- inside a lev task
--     local c = redis.connect("127.0.0.1:" .. srv:port())
--     ...
--     srv:close()
--   end)
-- A listening mock and its connections do not keep lev.run alive.
-- Standalone, for redis-cli: lua5.4 examples/mock-server.lua --port 6390
--
-- mock.start(opts) -> server | nil, err
--   opts.port       0 (default) picks a free port
--   opts.host       "127.0.0.1"
--   opts.password   password of the default user (AUTH pw)
--   opts.users      { name = password, ... } for AUTH name pw / HELLO AUTH
--   opts.handlers   { NAME = function(argv, conn) -> reply | nil }:
--                   replaces the command (nil falls back to the built-in);
--                   unknown names become new commands
--   opts.on_connect function(conn) called for each accepted connection
--   opts.clock      function() -> unix milliseconds (default: real time)
--   opts.script     list of rules, as if passed to server:script
--   opts.version    version reported by HELLO and INFO ("7.0.15")
--   Run standalone (examples/mock-server.lua) it also answers Redis's own
--   TCL test suite: tools/redis-suite.sh measures that.
--
-- server:port()            the port listened on
-- server:close()           stops listening, closes every connection
-- server:stats()           { accepted =, live =, refused =,
--                            total_commands =, commands = { PING = n, ... } }
--                          (command names upper-case, every command received)
-- server:reset_stats()
-- server:log()             the last 1000 commands received, as argv arrays
-- server:errors()          Lua errors raised by handlers, rule functions
--                          or on_connect (the client got an error reply)
-- server:connections()     live connections, oldest first
-- server:handle(name, fn)  set (or with nil remove) a command override
-- server:script(rule)      add a rule for every connection -> rule
-- server:unscript()        drop all rules
-- server:advance(seconds)  move the mock clock on (keys expire at once)
-- server:flush()           empty every database
-- server.engine            the pure part (store, sessions), see below
--
-- A connection (the conn argument of handlers and on_connect; the items
-- of server:connections()):
--   conn.id, conn.addr, conn.name, conn.dbi, conn.proto, conn.user,
--   conn.db (its database in the store)
--   conn:script(rule)       a rule for this connection only -> rule
--   conn:handle(name, fn)   an override for this connection only
--   conn:push(reply)        send a reply value now (out of band)
--   conn:close()
--
-- Rules (scenarios as data). A rule applies to the commands it matches;
-- connection rules are tried before server rules, the first match wins:
--   command = "GET" or { "GET", "SET" }   match by name (default: all)
--   match = function(argv, conn) -> bool  match by anything
--   times = n              retire the rule after n matches
--   reply = value or function(argv, conn) -> value
--                          answer this instead of running the command
--   delay = seconds        wait before writing the reply
--   split = n              write the reply in pieces of n bytes
--   split_delay = seconds  pause between pieces (default 0.002)
--   close_after = n        write the first n bytes of the reply, then close
--   silent = true          run the command, never reply
--   garbage = "bytes"      send these bytes instead of the reply
--   close = true           close the connection instead of replying
--   refuse = true          (server rules) connections are refused
--                          (ECONNREFUSED) until rule:cancel()
--   hangup = true          (server rules) accept, then close at once;
--                          with times = n for the next n connections
-- rule:cancel() removes a rule.
--
-- Reply values (handlers, rules, conn:push):
--   "text" bulk string; 42 integer; 3.5 double; true/false boolean;
--   { ... } array; mock.status("OK"); mock.error("ERR text");
--   mock.null; mock.null_array; mock.map{ k1, v1, k2, v2 };
--   mock.set{ ... }; mock.push{ ... }; mock.double(n);
--   mock.verbatim(text[, "txt"]); mock.bignum("123"); mock.raw("bytes");
--   mock.many{ r1, r2 } (several replies); mock.noreply.
-- A handler returning a Lua float answers a double; mock.array(t) marks a
-- table as an array explicitly.
-- mock.encode(value, proto) gives the exact bytes (proto 2 or 3).
--
-- The pure part, no sockets: mock.engine(opts) -> engine (opts as for
-- start: password, users, handlers, clock, version);
-- engine:session() -> session; engine:dispatch(session, argv) -> reply;
-- pub/sub messages for a session collect in session.outbox.
--
-- Commands (205; container commands list their subcommands):
-- APPEND AUTH BGREWRITEAOF BGSAVE BITCOUNT BITPOS BLMOVE BLMPOP BLPOP
-- BRPOP BRPOPLPUSH BZMPOP BZPOPMAX BZPOPMIN CLIENT (GETNAME HELP ID INFO
-- KILL LIST NO-EVICT REPLY SETNAME UNBLOCK) COMMAND CONFIG (GET RESETSTAT
-- REWRITE SET) COPY DBSIZE DEBUG DECR DECRBY DEL DISCARD DUMP ECHO EVAL
-- EVALSHA EVALSHA_RO EVAL_RO EXEC EXISTS EXPIRE EXPIREAT EXPIRETIME
-- FLUSHALL FLUSHDB FUNCTION (DELETE DUMP FLUSH LIST STATS) GET GETBIT
-- GETDEL GETEX GETRANGE GETSET HDEL HELLO HEXISTS HGET HGETALL HINCRBY
-- HINCRBYFLOAT HKEYS HLEN HMGET HMSET HRANDFIELD HSCAN HSET HSETNX
-- HSTRLEN HVALS INCR INCRBY INCRBYFLOAT INFO KEYS LASTSAVE LATENCY LCS
-- LINDEX LINSERT LLEN LMOVE LMPOP LOLWUT LPOP LPOS LPUSH LPUSHX LRANGE
-- LREM LSET LTRIM MEMORY (DOCTOR USAGE) MGET MOVE MSET MSETNX MULTI
-- OBJECT (ENCODING FREQ IDLETIME REFCOUNT) PERSIST PEXPIRE PEXPIREAT
-- PEXPIRETIME PING PSETEX PSUBSCRIBE PTTL PUBLISH PUBSUB (CHANNELS NUMPAT
-- NUMSUB SHARDCHANNELS SHARDNUMSUB) PUNSUBSCRIBE QUIT RANDOMKEY READONLY
-- READWRITE RENAME RENAMENX RESET RESTORE ROLE RPOP RPOPLPUSH RPUSH
-- RPUSHX SADD SAVE SCAN SCARD SCRIPT (EXISTS FLUSH KILL LOAD) SDIFF
-- SDIFFSTORE SELECT SET SETBIT SETEX SETNX SETRANGE SHUTDOWN SINTER
-- SINTERCARD SINTERSTORE SISMEMBER SLOWLOG SMEMBERS SMISMEMBER SMOVE SORT
-- SORT_RO SPOP SPUBLISH SRANDMEMBER SREM SSCAN SSUBSCRIBE STRLEN
-- SUBSCRIBE SUBSTR SUNION SUNIONSTORE SUNSUBSCRIBE SWAPDB TIME TOUCH TTL
-- TYPE UNLINK UNSUBSCRIBE UNWATCH WATCH XACK XADD XAUTOCLAIM XCLAIM XDEL
-- XGROUP (CREATE CREATECONSUMER DELCONSUMER DESTROY SETID) XINFO
-- (CONSUMERS GROUPS STREAM) XLEN XPENDING XRANGE XREAD XREADGROUP
-- XREVRANGE XSETID XTRIM ZADD
-- ZCARD ZCOUNT ZDIFF ZDIFFSTORE ZINCRBY ZINTER ZINTERCARD ZINTERSTORE ZLEXCOUNT ZMPOP ZMSCORE ZPOPMAX ZPOPMIN
-- ZRANDMEMBER ZRANGE ZRANGEBYLEX ZRANGEBYSCORE ZRANGESTORE ZRANK ZREM
-- ZREMRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE
-- ZREVRANGEBYLEX ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE ZUNION ZUNIONSTORE.
-- Any other name gets Redis's "unknown command" error unless a handler
-- defines it. Blocking commands really block (FIFO wake-up per key,
-- timeouts, answered at once inside MULTI and scripts); EVAL runs Lua in
-- a per-run sandbox, atomically; notify-keyspace-events is honoured.
--
-- Where the mock knowingly differs from Redis:
--   * KEYS, SCAN, SMEMBERS (sets that are not small all-integer ones)
--     and the set operations answer in the mock's own order (Redis: hash
--     order); SCAN cursors are creation positions; SSCAN/HSCAN/ZSCAN of
--     collections up to 128 members answer whole at cursor 0;
--   * hashes keep insertion order at any size (Redis only below 128
--     fields); OBJECT ENCODING guesses from sizes, DEBUG OBJECT is a
--     sketch, MEMORY USAGE an estimate;
--   * CLIENT LIST/INFO and INFO carry fewer fields; INFO's memory and CPU
--     figures are the Lua process's (mem_allocator says jemalloc-5.3.0,
--     as Redis's default build, so tests gated on it run); commandstats
--     count calls but no time;
--   * DUMP's payload is the mock's own format (RESTORE on the mock reads
--     it, a real Redis does not); no persistence (SAVE, BGSAVE succeed and
--     write nothing), no replication, no cluster, no ACL rules beyond
--     users with passwords;
--   * scripts run on Lua 5.4, not 5.1 (no cjson, cmsgpack, bit, struct);
--     a script running longer than busy-reply-threshold (default 5 s of
--     CPU) is stopped with an error, because the mock cannot answer BUSY
--     meanwhile; "return redis.call(...)" errors name line 1;
--   * FUNCTION has no libraries (FLUSH/LIST/STATS answer as an empty
--     registry); streams group entries into nodes as Redis does, but a
--     node's size in bytes (stream-node-max-bytes) is an estimate, so
--     "~" trimming of big entries may keep a different number; XINFO
--     STREAM's radix-tree-nodes is made up; stream ids are Lua's signed
--     64-bit integers (Redis: unsigned; ids past 2^63-1 are refused, "+"
--     is written as Redis writes it); DUMP of a stream answers nil;
--   * an unauthenticated client's request limits (10 arguments, 16 KB
--     bulks) are checked on each read before the requests in it are run,
--     so an AUTH followed by a big request in the same read is refused;
--   * the wall clock is the real one (lev.time(), gettimeofday, as Redis
--     reads it), or opts.clock.
--
-- Modes: mock.start builds an engine (redis.mock.engine: keyspace and
-- commands, no sockets) and serves it (redis.mock.server); a mode such as
-- a cluster front goes in its own module next to them and reuses both.
local reply = require("redis.mock.reply")

local M = {}

for _, name in ipairs({ "status", "error", "double", "map", "set", "push",
                        "array", "verbatim", "bignum", "raw", "many",
                        "encode", "kind" }) do
  M[name] = reply[name]
end
M.null = reply.null
M.null_array = reply.null_array
M.noreply = reply.noreply
M.ok = reply.ok

function M.engine(opts)
  return require("redis.mock.engine").new(opts)
end

function M.start(opts)
  return require("redis.mock.server").start(opts)
end

-- A mock Redis Cluster of masters (lua/redis/mock/cluster.lua).
function M.start_cluster(opts)
  return require("redis.mock.cluster").start(opts)
end

return M
