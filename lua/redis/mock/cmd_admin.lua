-- Server administration commands of the mock, as far as test harnesses
-- (Redis's own among them) use them: CONFIG GET|SET|RESETSTAT|REWRITE,
-- FUNCTION FLUSH|LIST|STATS|DUMP|DELETE, MEMORY USAGE, DEBUG (LOG, SLEEP,
-- SET-ACTIVE-EXPIRE, OBJECT and harmless tuning switches), OBJECT,
-- LASTSAVE, SAVE/BGSAVE (accepted, nothing is written), SLOWLOG,
-- LATENCY, ROLE, READONLY-style no-ops.
--
-- CONFIG knows every parameter of Redis 7.0.15 (redis.mock.config_defaults)
-- and reports back what was set; the ones with a behaviour in the mock are
-- honoured (notify-keyspace-events, proto-max-bulk-len for requests).
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")
local store = require("redis.mock.store")

local err, status, ok = reply.error, reply.status, reply.ok
local lower = util.lower

-- Pairs of names for one parameter (Redis 7 renamed ziplist -> listpack).
local ALIASES = {
  ["hash-max-ziplist-entries"] = "hash-max-listpack-entries",
  ["hash-max-ziplist-value"] = "hash-max-listpack-value",
  ["zset-max-ziplist-entries"] = "zset-max-listpack-entries",
  ["zset-max-ziplist-value"] = "zset-max-listpack-value",
  ["list-max-ziplist-size"] = "list-max-listpack-size",
  ["slaveof"] = "replicaof",
  ["slave-read-only"] = "replica-read-only",
  ["slave-serve-stale-data"] = "replica-serve-stale-data",
  ["slave-priority"] = "replica-priority",
  ["lua-time-limit"] = "busy-reply-threshold",
}
do
  -- Both directions (collected first: no new keys during the traversal).
  local reverse = {}
  for a, b in pairs(ALIASES) do reverse[b] = a end
  for b, a in pairs(reverse) do ALIASES[b] = a end
end

-- notify-keyspace-events flag letters, as Redis reads and writes them.

-- The canonical text of a notify-keyspace-events value, or nil when it
-- has a letter Redis refuses (keyspaceEventsStringToFlags).
local function notify_canon(v)
  local set = {}
  for c in v:gmatch(".") do
    if c == "A" then
      for _, x in ipairs({ "g", "$", "l", "s", "h", "z", "x", "e", "t", "d" }) do
        set[x] = true
      end
    elseif c:match("^[g$lshzxeKEtmdn]$") then
      set[c] = true
    else
      return nil
    end
  end
  local all = true
  for _, x in ipairs({ "g", "$", "l", "s", "h", "z", "x", "e", "t", "d" }) do
    if not set[x] then all = false end
  end
  -- keyspaceEventsFlagsToString's order: classes (or A), n inside the
  -- classes, then K, E, m.
  local out = {}
  if all then
    out[1] = "A"
  else
    for _, x in ipairs({ "g", "$", "l", "s", "h", "z", "x", "e", "t", "d", "n" }) do
      if set[x] then out[#out + 1] = x end
    end
  end
  if set.K then out[#out + 1] = "K" end
  if set.E then out[#out + 1] = "E" end
  if set.m then out[#out + 1] = "m" end
  return table.concat(out), set
end

return function(E)
  local def = E.def
  local Engine = E.Engine

  -- The engine's configuration, made on first use from the defaults.
  function Engine:config()
    if not self.cfg then
      local cfg = {}
      for k, v in pairs(require("redis.mock.config_defaults")) do cfg[k] = v end
      cfg.port = tostring(self.port)
      self.cfg = cfg
      self.notify = {}
    end
    return self.cfg
  end

  -- A value of the default's kind (yes/no, integer, memory size), or nil
  -- and the reason CONFIG SET gives.
  local MEMORY = { maxmemory = true, ["proto-max-bulk-len"] = true,
    ["client-query-buffer-limit"] = true, ["repl-backlog-size"] = true,
    ["active-defrag-ignore-bytes"] = true }
  local function check_value(name, default, value)
    if default == "yes" or default == "no" then
      local v = lower(value)
      if v ~= "yes" and v ~= "no" then return nil, "argument must be 'yes' or 'no'" end
      return v
    end
    if MEMORY[name] then
      local num, unit = lower(value):match("^(%d+)([kmg]?b?)$")
      local mul = ({ [""] = 1, b = 1, k = 1000, kb = 1024, m = 1000000,
        mb = 1048576, g = 1000000000, gb = 1073741824 })[unit or "?"]
      if not num or not mul then return nil, "argument must be a memory value" end
      return tostring(math.tointeger(tonumber(num)) * mul)
    end
    if default:match("^%-?%d+$") and name ~= "save" then
      if not util.int(value) then return nil, "argument couldn't be parsed into an integer" end
      return value
    end
    return value
  end

  local function config_set_one(e, name, value)
    local cfg = e:config()
    if cfg[name] == nil then return false end
    local v, why = check_value(name, cfg[name], value)
    if not v then return nil, why end
    value = v
    if name == "notify-keyspace-events" then
      local canon, set = notify_canon(value)
      if not canon then return nil end
      value, e.notify = canon, set
    end
    cfg[name] = value
    if ALIASES[name] and cfg[ALIASES[name]] ~= nil then cfg[ALIASES[name]] = value end
    return true
  end

  -- Keyspace notifications (notify-keyspace-events): class is the flag
  -- letter of the event's type ("g" generic, "$" string, "l" list, ...).
  function E.notify(s, class, event, key, dbi)
    local e = s.engine
    local n = e.notify
    if not n or not (n[class] or (n.A and class ~= "m")) then return end
    if not (n.K or n.E) then return end
    dbi = dbi or s.dbi
    if n.K then e:publish("__keyspace@" .. dbi .. "__:" .. key, event) end
    if n.E then e:publish("__keyevent@" .. dbi .. "__:" .. event, key) end
  end

  def{ "config", -2, nil, container = true }

  def{ "config|get", -3, function(s, argv)
    local cfg = s.engine:config()
    local seen, flat = {}, {}
    for i = 3, #argv do
      local pat = lower(argv[i])
      if cfg[pat] ~= nil and not pat:find("[%*%?%[]") then
        if not seen[pat] then
          seen[pat] = true
          flat[#flat + 1] = pat
          flat[#flat + 1] = cfg[pat]
        end
      else
        local names = {}
        for k in pairs(cfg) do
          if not seen[k] and store.match(pat, k, true) then names[#names + 1] = k end
        end
        table.sort(names)
        for _, k in ipairs(names) do
          seen[k] = true
          flat[#flat + 1] = k
          flat[#flat + 1] = cfg[k]
        end
      end
    end
    return reply.map(flat)
  end }

  def{ "config|set", -4, function(s, argv)
    if #argv % 2 == 1 then return util.arity_error("config|set") end
    local e = s.engine
    local cfg = e:config()
    local seen = {}
    for i = 3, #argv, 2 do
      local name = lower(argv[i])
      if cfg[name] == nil then
        return err("ERR Unknown option or number of arguments for CONFIG SET - '"
          .. argv[i] .. "'")
      end
      if seen[name] or (ALIASES[name] and seen[ALIASES[name]]) then
        return err("ERR CONFIG SET failed (possibly related to argument '"
          .. argv[i] .. "') - duplicate parameter")
      end
      seen[name] = true
    end
    -- All or nothing, as Redis 7 applies a multi-parameter CONFIG SET.
    local saved = {}
    for k, v in pairs(cfg) do saved[k] = v end
    local saved_notify = e.notify
    for i = 3, #argv, 2 do
      local r, why = config_set_one(e, lower(argv[i]), argv[i + 1])
      if not r then
        e.cfg, e.notify = saved, saved_notify
        return err("ERR CONFIG SET failed (possibly related to argument '"
          .. argv[i] .. "') - " .. (why or "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."))
      end
    end
    return ok
  end }

  def{ "config|resetstat", 2, function(s)
    local st = s.engine.stats
    st.commands, st.total_commands = {}, 0
    s.engine.cmdstats, s.engine.errstats, st.error_replies = {}, {}, 0
    return ok
  end }
  def{ "config|rewrite", 2, function()
    return err("ERR The server is running without a config file")
  end }

  -- FUNCTION: the mock has no function libraries; FLUSH and the read-only
  -- subcommands answer as an empty registry does.
  def{ "function", -2, nil, container = true }
  local function flush_mode(argv)
    if #argv == 2 then return true end
    local m = lower(argv[3])
    return #argv == 3 and (m == "sync" or m == "async")
  end
  def{ "function|flush", -2, function(_, argv)
    if not flush_mode(argv) then
      return err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
    end
    return ok
  end }
  def{ "function|list", -2, function() return {} end }
  def{ "function|stats", 2, function()
    return reply.map{ "running_script", reply.null, "engines",
      reply.map{ "LUA", reply.map{ "libraries_count", 0, "functions_count", 0 } } }
  end }
  def{ "function|delete", 3, function()
    return err("ERR Library not found")
  end }
  def{ "function|dump", 2, function()
    return "\245\n\0\25\0\0\0\0\0\0\0\0"
  end }

  -- MEMORY USAGE: an estimate in the spirit of Redis's (object header plus
  -- the bytes held), never 0 for a live key.
  local function mem_usage(obj, key)
    local n = 16 + #key + 40
    if obj.type == "string" then
      n = n + #obj.value
    elseif obj.type == "hash" then
      for _, f in ipairs(obj.fields) do n = n + #f + #obj.values[f] + 16 end
    elseif obj.type == "list" then
      for i = obj.head, obj.tail do n = n + #obj[i] + 11 end
    elseif obj.type == "set" then
      for m in pairs(obj.members) do n = n + #m + 16 end
    elseif obj.type == "zset" then
      for m in pairs(obj.scores) do n = n + #m + 24 end
    elseif obj.type == "stream" then
      n = n + 64 * (obj.length or 0)
    end
    return n
  end
  E.mem_usage = mem_usage

  def{ "memory", -2, nil, container = true }
  def{ "memory|usage", -3, function(s, argv)
    if #argv ~= 3 and not (#argv == 5 and lower(argv[4]) == "samples") then
      return util.SYNTAX
    end
    local obj = s.db:lookup(argv[3])
    if not obj then return reply.null end
    return mem_usage(obj, argv[3])
  end }
  def{ "memory|doctor", 2, function() return "Hi Sam, I can't find any memory issue in your instance." end }

  -- OBJECT: encodings the way Redis 7.0 names them for small values.
  local function encoding(obj)
    local t = obj.type
    if t == "string" then
      local v = obj.value
      if util.int(v) then return "int" end
      return #v <= 44 and "embstr" or "raw"
    elseif t == "list" then return "quicklist"
    elseif t == "set" then return obj.intset and "intset" or "hashtable"
    elseif t == "hash" then return #obj.fields <= 128 and "listpack" or "hashtable"
    elseif t == "zset" then return #obj.sorted <= 128 and "listpack" or "skiplist"
    elseif t == "stream" then return "stream"
    end
    return "raw"
  end

  def{ "object", -2, nil, container = true }
  def{ "object|encoding", 3, function(s, argv)
    local obj = s.db:lookup(argv[3])
    if not obj then return reply.null end
    return encoding(obj)
  end }
  def{ "object|refcount", 3, function(s, argv)
    if not s.db:lookup(argv[3]) then return reply.null end
    return 1
  end }
  def{ "object|idletime", 3, function(s, argv)
    if not s.db:lookup(argv[3]) then return reply.null end
    return 0
  end }
  def{ "object|freq", 3, function(s, argv)
    if not s.db:lookup(argv[3]) then return reply.null end
    return err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
  end }

  -- DEBUG: the parts a test harness leans on; the rest is refused.
  def{ "debug", -2, function(s, argv)
    local sub = lower(argv[2])
    if sub == "log" or sub == "set-active-expire" or sub == "quicklist-packed-threshold"
      or sub == "set-disable-deny-scripts" or sub == "stringmatch-len"
      or sub == "change-repl-id" or sub == "replybuffer" then
      return ok
    elseif sub == "sleep" then
      -- The network layer sleeps the connection's task; the pure engine
      -- answers at once.
      local secs = tonumber(argv[3] or "0") or 0
      if s.sleep then s:sleep(secs) end
      return ok
    elseif sub == "object" and argv[3] then
      local obj = s.db:lookup(argv[3])
      if not obj then return err("ERR no such key") end
      return status(string.format("Value at:0x0 refcount:1 encoding:%s "
        .. "serializedlength:%d lru:0 lru_seconds_idle:0", encoding(obj),
        mem_usage(obj, argv[3])))
    elseif sub == "jmap" or sub == "digest" then
      return string.rep("0", 40)
    end
    return err("ERR unknown subcommand '" .. argv[2] .. "'. Try DEBUG HELP.")
  end }

  def{ "lastsave", 1, function(s) return s.engine.started // 1000 end }
  def{ "save", 1, function() return ok end, flags = { nomulti = true } }
  def{ "bgsave", -1, function() return status("Background saving started") end }
  def{ "bgrewriteaof", 1, function()
    return status("Background append only file rewriting started")
  end }

  def{ "slowlog", -2, function(_, argv)
    local sub = lower(argv[2])
    if sub == "get" then return {} end
    if sub == "len" then return 0 end
    if sub == "reset" then return ok end
    return err("ERR unknown subcommand '" .. argv[2] .. "'. Try SLOWLOG HELP.")
  end }

  def{ "latency", -2, function(_, argv)
    local sub = lower(argv[2])
    if sub == "reset" then return 0 end
    if sub == "latest" or sub == "history" then return {} end
    return err("ERR unknown subcommand '" .. argv[2] .. "'. Try LATENCY HELP.")
  end }

  def{ "role", 1, function() return { "master", 0, {} } end }
  def{ "readonly", 1, function() return err("ERR This instance has cluster support disabled") end }
  def{ "readwrite", 1, function() return err("ERR This instance has cluster support disabled") end }
  def{ "lolwut", -1, function(s) return "Redis ver. " .. s.engine.version .. "\n" end }
end
