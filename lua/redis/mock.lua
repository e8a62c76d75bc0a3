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
-- Commands: PING ECHO AUTH HELLO SELECT QUIT RESET CLIENT (ID SETNAME
-- GETNAME KILL LIST INFO HELP) FLUSHDB FLUSHALL DBSIZE INFO TIME COMMAND
-- DEL UNLINK EXISTS TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL
-- PERSIST KEYS SCAN RENAME RENAMENX GET SET SETNX SETEX PSETEX GETSET
-- GETDEL MGET MSET MSETNX INCR INCRBY INCRBYFLOAT DECR DECRBY APPEND
-- STRLEN GETRANGE HSET HMSET HSETNX HGET HMGET HDEL HGETALL HEXISTS
-- HINCRBY HKEYS HVALS HLEN HSTRLEN LPUSH RPUSH LPOP RPOP LRANGE LLEN
-- LINDEX LSET SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD ZADD ZINCRBY
-- ZSCORE ZRANGE ZREVRANGE ZRANGEBYSCORE ZRANK ZREVRANK ZCARD ZCOUNT ZREM
-- MULTI EXEC DISCARD WATCH UNWATCH SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE
-- PUNSUBSCRIBE PUBLISH. Any other name gets Redis's "unknown command"
-- error unless a handler defines it.
--
-- Where the mock knowingly differs from Redis: KEYS, SCAN and SMEMBERS of
-- non-integer sets answer in creation order (Redis: hash order), SCAN
-- cursors are creation positions, hashes keep insertion order at any size
-- (Redis only below 128 fields), CLIENT LIST/INFO and INFO carry fewer
-- fields.
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
