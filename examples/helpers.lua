-- Everyday helpers: scan iterators, an optimistic transaction, a script
-- with the EVALSHA fallback, and redis.map. From the repository root:
--   make build && REDIS_ADDR=127.0.0.1:6379 lua5.4 tools/run-lua.lua examples/helpers.lua
-- It writes keys under "example:helpers:" only, and deletes them at the end.
local lev = require("lev")
local redis = require("redis")

local P = "example:helpers:"

lev.run(function()
  local c = assert(redis.connect(os.getenv("REDIS_ADDR")))

  -- Some data: 300 users (hashes), a leaderboard, a set of tags.
  local cmds = {}
  for i = 1, 300 do
    cmds[#cmds + 1] = { "HSET", P .. "user:" .. i, "name", "user" .. i,
                        "visits", i }
    cmds[#cmds + 1] = { "ZADD", P .. "board", i * 1.5, "user" .. i }
  end
  cmds[#cmds + 1] = { "SADD", P .. "tags", "red", "green", "blue" }
  assert(c:pipeline(cmds))

  -- SCAN: one round trip per batch, until the cursor comes back "0".
  local users = 0
  for _ in c:scan_iter{ match = P .. "user:*", count = 100, type = "hash" } do
    users = users + 1
  end
  print("users found by scan_iter:", users)
  assert(users == 300)

  for field, value in c:hscan_iter(P .. "user:7") do
    print("user:7", field, value)
  end
  local tags = {}
  for tag in c:sscan_iter(P .. "tags") do tags[#tags + 1] = tag end
  table.sort(tags)
  print("tags:", table.concat(tags, " "))
  local best, best_score = nil, -math.huge
  for member, score in c:zscan_iter(P .. "board", { match = "user2*" }) do
    if score > best_score then best, best_score = member, score end
  end
  print("best user2*:", best, best_score)
  assert(best == "user299" and best_score == 448.5)

  -- redis.map: HGETALL's flat list as a table.
  local user = redis.map(assert(c:cmd("HGETALL", P .. "user:7")))
  print("user:7 as a table:", user.name, user.visits)

  -- An optimistic transaction: 20 tasks move visits from user:1 to
  -- user:2 at the same time; WATCH makes each read-modify-write whole.
  local tasks, retries = {}, 0
  for t = 1, 20 do
    tasks[t] = lev.spawn(function()
      local runs = 0
      local res, err = c:transaction(
        { watch = { P .. "user:1", P .. "user:2" }, retries = 50 },
        function(tx)
          runs = runs + 1
          local a = tonumber(tx:hget(P .. "user:1", "visits"))
          local b = tonumber(tx:hget(P .. "user:2", "visits"))
          return { { "HSET", P .. "user:1", "visits", a + 1 },
                   { "HSET", P .. "user:2", "visits", b - 1 } }
        end)
      assert(res, err)
      retries = retries + runs - 1
      return t
    end)
  end
  for _, t in ipairs(tasks) do assert(t:join()) end
  local a = c:hget(P .. "user:1", "visits")
  local b = c:hget(P .. "user:2", "visits")
  print(("after 20 transactions: user:1 visits %s, user:2 visits %s, %d "
    .. "retries after conflicts"):format(a, b, retries))
  assert(a == "21" and b == "-18")

  -- A script: EVALSHA by its SHA1; loaded on NOSCRIPT, e.g. after a
  -- SCRIPT FLUSH or on a fresh server.
  local add = redis.script([[
    local v = tonumber(redis.call('HGET', KEYS[1], 'visits')) + ARGV[1]
    if v < 0 then return redis.error_reply('NEGATIVE visits would be ' .. v) end
    return redis.call('HSET', KEYS[1], 'visits', v) and v
  ]])
  print("script sha:", add.sha)
  print("add 10 to user:3:", add:run(c, { P .. "user:3" }, { 10 }))
  print("add -100 to user:3:", add:run(c, { P .. "user:3" }, { -100 }))

  -- Clean up, with the iterator again.
  local del = {}
  for key in c:scan_iter{ match = P .. "*", count = 500 } do
    del[#del + 1] = { "DEL", key }
  end
  assert(c:pipeline(del))
  print("deleted", #del, "keys")
  c:close()
end)
