-- The pure part of redis.mock: the engine answers commands for sessions
-- without any socket, with an injected clock. Here: the dispatch rules
-- (lookup, arity, auth, MULTI, pub/sub context), expiry on mock time,
-- WATCH, pub/sub delivery and command overrides.
local mock = require("redis.mock")

local mock_helper = require("mock_helper")
local setup, words, run = mock_helper.engine, mock_helper.words, mock_helper.run

describe("redis.mock engine dispatch", function()
  it("answers a command with a reply value for the session's protocol", function()
    local e, s = setup()
    assert.are.equal("+OK\r\n", run(e, s, "SET k v"))
    assert.are.equal("$1\r\nv\r\n", run(e, s, "GET k"))
    assert.are.equal("$-1\r\n", run(e, s, "GET nope"))
  end)

  it("looks command names up case-insensitively", function()
    local e, s = setup()
    assert.are.equal("+PONG\r\n", run(e, s, "pInG"))
    assert.are.equal("$1\r\nx\r\n", run(e, s, "echo x"))
  end)

  it("rejects unknown commands with Redis's text, quoting the first args", function()
    local e, s = setup()
    assert.are.equal("-ERR unknown command 'nope', with args beginning with: 'a' 'b' \r\n",
      run(e, s, "nope a b"))
    assert.are.equal("-ERR unknown command 'nope', with args beginning with: \r\n",
      run(e, s, "nope"))
  end)

  it("truncates the quoted arguments of an unknown command at 128 bytes", function()
    local e, s = setup()
    local long = string.rep("y", 300)
    local r = run(e, s, { "nope", long, "z" })
    assert.are.equal("-ERR unknown command 'nope', with args beginning with: '"
      .. string.rep("y", 128) .. "' \r\n", r)
  end)

  it("rejects unknown subcommands of CLIENT with a hint", function()
    local e, s = setup()
    assert.are.equal("-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n",
      run(e, s, "client foo"))
  end)

  it("checks arity with the command's full name, subcommands included", function()
    local e, s = setup()
    assert.are.equal("-ERR wrong number of arguments for 'get' command\r\n",
      run(e, s, "GET"))
    assert.are.equal("-ERR wrong number of arguments for 'client|setname' command\r\n",
      run(e, s, "CLIENT SETNAME"))
    assert.are.equal("-ERR wrong number of arguments for 'client' command\r\n",
      run(e, s, "CLIENT"))
  end)

  it("ignores an empty command", function()
    local e, s = setup()
    assert.are.equal(mock.noreply, e:dispatch(s, {}))
  end)

  it("answers QUIT with OK and marks the session for closing", function()
    local e, s = setup()
    assert.are.equal("+OK\r\n", run(e, s, "QUIT now please"))
    assert.is_true(s.closing)
  end)

  it("counts every command received by upper-case name", function()
    local e, s = setup()
    run(e, s, "ping")
    run(e, s, "PING")
    run(e, s, "nope")
    assert.are.equal(2, e.stats.commands.PING)
    assert.are.equal(1, e.stats.commands.NOPE)
    assert.are.equal(3, e.stats.total_commands)
  end)

  it("gives each session its own id, database and protocol", function()
    local e, a = setup()
    local b = e:session{}
    assert.are_not.equal(a.id, b.id)
    run(e, a, "SELECT 3")
    run(e, a, "SET k in3")
    assert.are.equal("$-1\r\n", run(e, b, "GET k"))
    run(e, b, "SELECT 3")
    assert.are.equal("$3\r\nin3\r\n", run(e, b, "GET k"))
  end)
end)

describe("redis.mock engine authentication", function()
  it("asks for AUTH before any command when a password is set", function()
    local e, s = setup{ password = "pw" }
    assert.are.equal("-NOAUTH Authentication required.\r\n", run(e, s, "GET k"))
    assert.are.equal("-WRONGPASS invalid username-password pair or user is disabled.\r\n",
      run(e, s, "AUTH bad"))
    assert.are.equal("+OK\r\n", run(e, s, "AUTH pw"))
    assert.are.equal("$-1\r\n", run(e, s, "GET k"))
  end)

  it("checks arity and unknown commands before authentication, like Redis", function()
    local e, s = setup{ password = "pw" }
    assert.are.equal("-ERR wrong number of arguments for 'get' command\r\n",
      run(e, s, "GET"))
    assert.matches("^%-ERR unknown command", run(e, s, "NOPE"))
  end)

  it("logs ACL-style users in with AUTH user pass", function()
    local e, s = setup{ password = "pw", users = { alice = "wonder" } }
    assert.matches("^%-WRONGPASS", run(e, s, "AUTH alice pw"))
    assert.are.equal("+OK\r\n", run(e, s, "AUTH alice wonder"))
    assert.are.equal("alice", s.user)
    assert.are.equal("+OK\r\n", run(e, s, "AUTH default pw"))
  end)

  it("lets HELLO authenticate and refuses a bare HELLO before AUTH", function()
    local e, s = setup{ users = { alice = "wonder" }, password = "pw" }
    assert.matches("^%-NOAUTH HELLO must be called", run(e, s, "HELLO 3"))
    assert.are.equal(2, s.proto)
    assert.matches("^%%7\r\n", run(e, s, "HELLO 3 AUTH alice wonder SETNAME me"))
    assert.are.equal(3, s.proto)
    assert.are.equal("me", s.name)
  end)

  it("tells AUTH without a configured password that it makes no sense", function()
    local e, s = setup()
    assert.are.equal("-ERR AUTH <password> called without any password configured "
      .. "for the default user. Are you sure your configuration is correct?\r\n",
      run(e, s, "AUTH x"))
  end)
end)

describe("redis.mock engine expiry on the injected clock", function()
  it("keeps a key through its deadline millisecond and drops it after", function()
    local e, s, clock = setup()
    run(e, s, "SET k v PX 100")
    clock.now = clock.now + 100
    assert.are.equal("$1\r\nv\r\n", run(e, s, "GET k"))
    clock.now = clock.now + 1
    assert.are.equal("$-1\r\n", run(e, s, "GET k"))
    assert.are.equal(":0\r\n", run(e, s, "EXISTS k"))
  end)

  it("reports TTL rounded to seconds and PTTL in milliseconds", function()
    local e, s, clock = setup()
    run(e, s, "SET k v EX 10")
    clock.now = clock.now + 2400
    assert.are.equal(":8\r\n", run(e, s, "TTL k"))
    assert.are.equal(":7600\r\n", run(e, s, "PTTL k"))
    clock.now = clock.now + 7600
    assert.are.equal(":0\r\n", run(e, s, "PTTL k"))
    clock.now = clock.now + 1
    assert.are.equal(":-2\r\n", run(e, s, "TTL k"))
  end)

  it("expires keys set with EXAT and PXAT at those unix times", function()
    local e, s, clock = setup()
    local at = clock.now // 1000 + 5
    run(e, s, { "SET", "k", "v", "EXAT", tostring(at) })
    run(e, s, { "SET", "p", "v", "PXAT", tostring(clock.now + 50) })
    assert.are.equal(":5\r\n", run(e, s, "TTL k"))
    clock.now = clock.now + 51
    assert.are.equal(":0\r\n", run(e, s, "EXISTS p"))
    clock.now = at * 1000 + 1
    assert.are.equal(":0\r\n", run(e, s, "EXISTS k"))
  end)

  it("counts only live keys in DBSIZE and INFO keyspace", function()
    local e, s, clock = setup()
    run(e, s, "SET a 1 PX 10")
    run(e, s, "SET b 2")
    clock.now = clock.now + 11
    assert.are.equal(":1\r\n", run(e, s, "DBSIZE"))
    assert.are.equal("$44\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n\r\n",
      run(e, s, "INFO keyspace"))
  end)

  it("moves time forward with advance", function()
    local e, s = setup()
    run(e, s, "SET k v EX 60")
    e:advance(61)
    assert.are.equal("$-1\r\n", run(e, s, "GET k"))
  end)
end)

describe("redis.mock engine transactions", function()
  it("queues commands inside MULTI and runs them at EXEC", function()
    local e, s = setup()
    assert.are.equal("+OK\r\n", run(e, s, "MULTI"))
    assert.are.equal("+QUEUED\r\n", run(e, s, "SET k 1"))
    assert.are.equal("+QUEUED\r\n", run(e, s, "INCR k"))
    assert.are.equal("*2\r\n+OK\r\n:2\r\n", run(e, s, "EXEC"))
  end)

  it("aborts EXEC after a rejected command inside MULTI", function()
    local e, s = setup()
    run(e, s, "MULTI")
    run(e, s, "SET k 1")
    assert.matches("^%-ERR wrong number", run(e, s, "GET"))
    assert.are.equal("-EXECABORT Transaction discarded because of previous errors.\r\n",
      run(e, s, "EXEC"))
    assert.are.equal("$-1\r\n", run(e, s, "GET k"))
  end)

  it("aborts EXEC with a null array when a watched key changed", function()
    local e, s = setup()
    local other = e:session{}
    run(e, s, "WATCH k")
    run(e, other, "SET k changed")
    run(e, s, "MULTI")
    run(e, s, "SET k mine")
    assert.are.equal("*-1\r\n", run(e, s, "EXEC"))
    assert.are.equal("$7\r\nchanged\r\n", run(e, s, "GET k"))
  end)

  it("aborts EXEC when a watched key expired meanwhile", function()
    local e, s, clock = setup()
    run(e, s, "SET k v PX 10")
    run(e, s, "WATCH k")
    clock.now = clock.now + 20
    run(e, s, "MULTI")
    run(e, s, "PING")
    assert.are.equal("*-1\r\n", run(e, s, "EXEC"))
  end)

  it("runs EXEC when watched keys were only read", function()
    local e, s = setup()
    local other = e:session{}
    run(e, s, "SET k v")
    run(e, s, "WATCH k")
    run(e, other, "GET k")
    run(e, other, "SET unrelated 1")
    run(e, s, "MULTI")
    run(e, s, "GET k")
    assert.are.equal("*1\r\n$1\r\nv\r\n", run(e, s, "EXEC"))
  end)

  it("treats FLUSHDB as a change of every watched key that existed", function()
    local e, s = setup()
    local other = e:session{}
    run(e, s, "SET k v")
    run(e, s, "WATCH k")
    run(e, other, "FLUSHDB")
    run(e, s, "MULTI")
    assert.are.equal("*-1\r\n", run(e, s, "EXEC"))
  end)
end)

describe("redis.mock engine pub/sub", function()
  it("delivers published messages to subscribers' outboxes", function()
    local e, sub = setup()
    local pub = e:session{}
    run(e, sub, "SUBSCRIBE news")
    run(e, sub, "PSUBSCRIBE n*")
    assert.are.equal(":2\r\n", run(e, pub, "PUBLISH news hi"))
    assert.are.equal(2, #sub.outbox)
    assert.are.equal("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
      mock.encode(sub.outbox[1]))
    assert.are.equal("*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
      mock.encode(sub.outbox[2]))
  end)

  it("restricts RESP2 subscribers to the pub/sub commands", function()
    local e, s = setup()
    run(e, s, "SUBSCRIBE a")
    assert.are.equal("-ERR Can't execute 'get': only (P|S)SUBSCRIBE / "
      .. "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
      run(e, s, "GET k"))
    assert.are.equal("*2\r\n$4\r\npong\r\n$0\r\n\r\n", run(e, s, "PING"))
  end)

  it("forgets a session's subscriptions when it goes", function()
    local e, sub = setup()
    local pub = e:session{}
    run(e, sub, "SUBSCRIBE a")
    sub:gone()
    assert.are.equal(":0\r\n", run(e, pub, "PUBLISH a x"))
  end)
end)

describe("redis.mock engine command overrides", function()
  it("runs a handler instead of the built-in command", function()
    local e, s = setup{ handlers = { GET = function(argv) return "fake:" .. argv[2] end } }
    assert.are.equal("$6\r\nfake:k\r\n", run(e, s, "get k"))
  end)

  it("falls back to the built-in command when a handler returns nil", function()
    local seen
    local e, s = setup{ handlers = { SET = function(argv) seen = argv[3] end } }
    assert.are.equal("+OK\r\n", run(e, s, "SET k v"))
    assert.are.equal("v", seen)
    assert.are.equal("$1\r\nv\r\n", run(e, s, "GET k"))
  end)

  it("adds commands Redis does not have", function()
    local e, s = setup{ handlers = { ["CLUSTER"] = function() return mock.error("ERR This instance has cluster support disabled") end } }
    assert.are.equal("-ERR This instance has cluster support disabled\r\n",
      run(e, s, "CLUSTER SLOTS"))
  end)

  it("turns a failing handler into an error reply and keeps the error", function()
    local e, s = setup{ handlers = { PING = function() error("handler bug") end } }
    assert.matches("^%-ERR mock handler failed: .*handler bug", run(e, s, "PING"))
    assert.are.equal(1, #e.errors)
  end)

  it("passes the session to handlers so they can answer per connection", function()
    local e, s = setup{ handlers = { WHO = function(_, conn) return conn.id end } }
    assert.are.equal(":" .. s.id .. "\r\n", run(e, s, "WHO"))
  end)
end)
