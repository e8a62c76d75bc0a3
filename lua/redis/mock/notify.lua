-- Keyspace notifications for the round-1 commands of the mock. Those
-- commands know nothing of notifications; when notify-keyspace-events is
-- set, the engine calls AFTER[name](s, argv, reply) once the command has
-- answered, and the entry emits the events Redis 7.0 emits for what the
-- reply says happened. (Commands added later call E.notify themselves.)
local reply = require("redis.mock.reply")

return function(E)
  local ERROR_MT = getmetatable(reply.error("x"))
  local notify = E.notify
  local AFTER = {}
  E.notify_after = AFTER

  local function gone(s, key)
    if not s.db.data[key] then notify(s, "g", "del", key) end
  end

  local function if_positive(class, event)
    return function(s, argv, r)
      if type(r) == "number" and r > 0 then notify(s, class, event, argv[2]) end
    end
  end

  local function always(class, event)
    return function(s, argv) notify(s, class, event, argv[2]) end
  end

  -- Strings.
  AFTER.set = function(s, argv, r)
    -- NX/XX said no (with GET the old value may answer: not caught).
    if r == reply.null then return end
    notify(s, "$", "set", argv[2])
    local when = s.db.expires[argv[2]]
    if when then notify(s, "g", "expire", argv[2]) end
  end
  AFTER.setnx = if_positive("$", "set")
  AFTER.setex = function(s, argv)
    notify(s, "$", "set", argv[2]); notify(s, "g", "expire", argv[2])
  end
  AFTER.psetex = AFTER.setex
  AFTER.getset = always("$", "set")
  AFTER.getdel = function(s, argv, r)
    if type(r) == "string" then notify(s, "g", "del", argv[2]) end
  end
  AFTER.mset = function(s, argv)
    for i = 2, #argv, 2 do notify(s, "$", "set", argv[i]) end
  end
  AFTER.msetnx = function(s, argv, r)
    if r == 1 then AFTER.mset(s, argv) end
  end
  AFTER.append = always("$", "append")
  AFTER.incr = always("$", "incrby")
  AFTER.decr = always("$", "decrby")
  AFTER.incrby = always("$", "incrby")
  AFTER.decrby = always("$", "decrby")
  AFTER.incrbyfloat = always("$", "incrbyfloat")

  -- Keys.
  local function expire_after(s, argv, r)
    if r ~= 1 then return end
    if s.db.data[argv[2]] then
      notify(s, "g", "expire", argv[2])
    else
      notify(s, "g", "del", argv[2])
    end
  end
  AFTER.expire, AFTER.pexpire = expire_after, expire_after
  AFTER.expireat, AFTER.pexpireat = expire_after, expire_after
  AFTER.persist = if_positive("g", "persist")
  local function rename_after(s, argv, r)
    if r == 0 then return end
    notify(s, "g", "rename_from", argv[2])
    notify(s, "g", "rename_to", argv[3])
  end
  AFTER.rename, AFTER.renamenx = rename_after, rename_after

  -- Hashes.
  AFTER.hset = always("h", "hset")
  AFTER.hmset = always("h", "hset")
  AFTER.hsetnx = if_positive("h", "hset")
  AFTER.hdel = function(s, argv, r)
    if r > 0 then notify(s, "h", "hdel", argv[2]); gone(s, argv[2]) end
  end
  AFTER.hincrby = always("h", "hincrby")

  -- Lists.
  AFTER.lpush = always("l", "lpush")
  AFTER.rpush = always("l", "rpush")
  local function pop_after(event)
    return function(s, argv, r)
      if r == reply.null or r == reply.null_array then return end
      if type(r) == "table" and getmetatable(r) == nil and #r == 0 then return end
      notify(s, "l", event, argv[2])
      gone(s, argv[2])
    end
  end
  AFTER.lpop, AFTER.rpop = pop_after("lpop"), pop_after("rpop")
  AFTER.lset = always("l", "lset")

  -- Sets.
  AFTER.sadd = if_positive("s", "sadd")
  AFTER.srem = function(s, argv, r)
    if r > 0 then notify(s, "s", "srem", argv[2]); gone(s, argv[2]) end
  end

  -- Sorted sets.
  AFTER.zrem = function(s, argv, r)
    if r > 0 then notify(s, "z", "zrem", argv[2]); gone(s, argv[2]) end
  end

  -- Runs the entry for cmd after the command answered r.
  function E.after_command(s, cmd, argv, r)
    local fn = AFTER[cmd.name]
    if fn and getmetatable(r) ~= ERROR_MT then fn(s, argv, r) end
  end
end
