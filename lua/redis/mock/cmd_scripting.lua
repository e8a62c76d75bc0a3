-- Lua scripting of the mock: EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT
-- LOAD|EXISTS|FLUSH, with redis.call, redis.pcall, redis.error_reply,
-- redis.status_reply, redis.setresp, redis.sha1hex, redis.log.
--
-- The mock is Lua, so a script is compiled with load() into a sandbox of
-- its own (a fresh environment per run: the safe parts of the standard
-- library, KEYS, ARGV and redis) and runs to its end inside the EVAL
-- command, so nothing else runs meanwhile: atomic, as in Redis. Replies
-- convert both ways by Redis's rules (RESP2 by default, RESP3 after
-- redis.setresp(3)). Differences: the interpreter is Lua 5.4, not 5.1
-- (integers and floats are distinct; no cjson/cmsgpack/bit/struct), and
-- a script has no time limit (SCRIPT KILL does not exist).
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")

local err, ok = reply.error, reply.ok
local lower = util.lower

-- SHA-1 (FIPS 180-4), for script ids.
local function sha1(msg)
  local function rol(x, n) return ((x << n) | (x >> (32 - n))) & 0xffffffff end
  local h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
  local ml = #msg * 8
  msg = msg .. "\128" .. string.rep("\0", (55 - #msg) % 64) .. string.pack(">I8", ml)
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do w[i] = string.unpack(">I4", msg, chunk + i * 4) end
    for i = 16, 79 do w[i] = rol(w[i - 3] ~ w[i - 8] ~ w[i - 14] ~ w[i - 16], 1) end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for i = 0, 79 do
      local f, k
      if i < 20 then f, k = (b & c) | ((~b) & d), 0x5A827999
      elseif i < 40 then f, k = b ~ c ~ d, 0x6ED9EBA1
      elseif i < 60 then f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
      else f, k = b ~ c ~ d, 0xCA62C1D6 end
      local t = (rol(a, 5) + (f & 0xffffffff) + e + k + w[i]) & 0xffffffff
      e, d, c, b, a = d, c, rol(b, 30), a, t
    end
    h0 = (h0 + a) & 0xffffffff
    h1 = (h1 + b) & 0xffffffff
    h2 = (h2 + c) & 0xffffffff
    h3 = (h3 + d) & 0xffffffff
    h4 = (h4 + e) & 0xffffffff
  end
  return string.format("%08x%08x%08x%08x%08x", h0, h1, h2, h3, h4)
end

-- Commands a script may not call (Redis's noscript flag).
local NOSCRIPT = {}
for _, n in ipairs({ "multi", "exec", "discard", "watch", "unwatch",
  "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ssubscribe",
  "sunsubscribe", "eval", "evalsha", "eval_ro", "evalsha_ro", "script",
  "function", "auth", "hello", "reset", "quit", "monitor", "client",
  "debug", "save", "bgsave", "blpop", "brpop", "brpoplpush", "blmove",
  "blmpop", "bzpopmin", "bzpopmax", "bzmpop" }) do
  NOSCRIPT[n] = true
end

local SAFE = { "assert", "error", "ipairs", "next", "pairs", "pcall",
  "rawequal", "rawget", "rawset", "rawlen", "select", "tonumber",
  "tostring", "type", "xpcall", "setmetatable", "getmetatable" }

local function copy_lib(lib)
  local t = {}
  for k, v in pairs(lib) do t[k] = v end
  return t
end

return function(E)
  local def = E.def
  local ERROR_MT = getmetatable(reply.error("x"))

  -- A mock reply value -> the Lua value a script sees.
  local function to_lua(v, resp)
    local ty = type(v)
    if ty == "string" then return v end
    if ty == "number" then
      if math.type(v) == "integer" then return v end
      if resp == 3 then return { double = v } end
      return reply.double_text(v)
    end
    if ty == "boolean" then
      if resp == 3 then return v end
      return v and 1 or 0
    end
    local kind = reply.kind(v)
    if kind == "status" then return { ok = v[1] } end
    if kind == "error" then return { err = v[1] } end
    if kind == "null" or kind == "null_array" then
      if resp == 3 then return nil end
      return false
    end
    if kind == "double" then
      if resp == 3 then return { double = v[1] } end
      return reply.double_text(v[1])
    end
    if kind == "verbatim" then
      if resp == 3 then return { verbatim_string = { format = v[2], string = v[1] } } end
      return v[1]
    end
    if kind == "bignum" then
      if resp == 3 then return { big_number = v[1] } end
      return v[1]
    end
    if kind == "map" then
      local n = v.n or #v
      if resp == 3 then
        local m = {}
        for i = 1, n, 2 do m[to_lua(v[i], resp)] = to_lua(v[i + 1], resp) end
        return { map = m }
      end
      local t = {}
      for i = 1, n do t[i] = to_lua(v[i], resp) end
      return t
    end
    if kind == "set" and resp == 3 then
      local m = {}
      for i = 1, v.n or #v do m[to_lua(v[i], resp)] = true end
      return { set = m }
    end
    if kind == "many" then
      return to_lua(v[#v], resp)
    end
    local t = {}
    for i = 1, v.n or #v do t[i] = to_lua(v[i], resp) end
    return t
  end

  -- A Lua value a script returned -> a mock reply value
  -- (luaReplyToRedisReply).
  local function from_lua(v, proto, depth)
    depth = depth or 0
    local ty = type(v)
    if ty == "string" then return v end
    if ty == "number" then
      if math.type(v) == "integer" then return v end
      if v ~= v or v == math.huge or v == -math.huge then return math.mininteger end
      return math.tointeger(v < 0 and math.ceil(v) or math.floor(v)) or 0
    end
    if ty == "boolean" then
      if proto == 3 then return v end
      return v and 1 or reply.null
    end
    if ty ~= "table" then return reply.null end
    if type(v.err) == "string" then
      local e = v.err
      return err(e)
    end
    if type(v.ok) == "string" then return reply.status(v.ok) end
    if type(v.double) == "number" then return reply.double(v.double) end
    if type(v.big_number) == "string" then return reply.bignum(v.big_number) end
    if type(v.map) == "table" then
      local flat = {}
      for k, x in pairs(v.map) do
        flat[#flat + 1] = from_lua(k, proto, depth + 1)
        flat[#flat + 1] = from_lua(x, proto, depth + 1)
      end
      return reply.map(flat)
    end
    if type(v.set) == "table" then
      local list = {}
      for k in pairs(v.set) do list[#list + 1] = from_lua(k, proto, depth + 1) end
      return reply.set(list)
    end
    local out = {}
    local i = 1
    while v[i] ~= nil do
      out[i] = from_lua(v[i], proto, depth + 1)
      i = i + 1
    end
    return out
  end

  -- The error table redis.call raises / redis.pcall returns, from a
  -- reply error "CODE msg" or a plain message (luaPushErrorBuff).
  local function err_table(text)
    text = text:gsub("[\r\n]+$", "")
    return { err = text }
  end

  local function script_name(sha) return sha end

  -- Runs one redis.call/pcall: the command as the script's client.
  local function run_call(ctx, raise, ...)
    local n = select("#", ...)
    if n == 0 then
      local e = err_table("ERR Please specify at least one argument for this redis lib call")
      if raise then error(e, 0) end
      return e
    end
    local argv = {}
    for i = 1, n do
      local a = select(i, ...)
      if type(a) == "number" then
        if math.type(a) == "integer" then a = tostring(a)
        else a = string.format("%.17g", a) end
      elseif type(a) ~= "string" then
        local e = err_table("ERR Lua redis lib command arguments must be strings or integers")
        if raise then error(e, 0) end
        return e
      end
      argv[i] = a
    end
    local s, e = ctx.session, ctx.engine
    local name = lower(argv[1])
    local cmd = E.commands[name]
    local r
    if cmd and cmd.sub and argv[2] then cmd = cmd.sub[lower(argv[2])] or cmd end
    if not cmd then
      r = err("ERR Unknown Redis command called from script")
    elseif (cmd.arity > 0 and cmd.arity ~= n) or n < -cmd.arity then
      r = err("ERR Wrong number of args calling Redis command from script")
    elseif NOSCRIPT[name] then
      r = err("ERR This Redis command is not allowed from script")
    else
      e:count(argv)
      r = e:call(s, cmd, argv)
    end
    if getmetatable(r) == ERROR_MT then
      local t = err_table(r[1])
      if raise then error(t, 0) end
      return t
    end
    return to_lua(r, ctx.resp)
  end

  local function sandbox(ctx, keys, args)
    local env = {}
    for _, name in ipairs(SAFE) do env[name] = _G[name] end
    env.unpack = table.unpack
    env.string = copy_lib(string)
    env.table = copy_lib(table)
    env.math = copy_lib(math)
    env.os = { time = os.time, clock = os.clock }
    env.KEYS, env.ARGV = keys, args
    local redis = {}
    redis.call = function(...) return run_call(ctx, true, ...) end
    redis.pcall = function(...) return run_call(ctx, false, ...) end
    redis.error_reply = function(msg)
      if type(msg) ~= "string" then error(err_table("ERR wrong number or type of arguments"), 0) end
      if msg:sub(1, 1) == "-" then msg = msg:sub(2) end
      if not msg:find(" ") then msg = "ERR " .. msg end
      return { err = msg }
    end
    redis.status_reply = function(msg)
      if type(msg) ~= "string" then error(err_table("ERR wrong number or type of arguments"), 0) end
      return { ok = msg }
    end
    redis.setresp = function(v)
      if v ~= 2 and v ~= 3 then
        error(err_table("ERR RESP version must be 2 or 3."), 0)
      end
      ctx.resp = v
    end
    redis.sha1hex = function(x) return sha1(tostring(x)) end
    redis.log = function() end
    redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
    redis.set_repl = function() end
    redis.replicate_commands = function() return true end
    redis.REPL_ALL, redis.REPL_NONE, redis.REPL_AOF, redis.REPL_REPLICA = 3, 0, 1, 2
    redis.REDIS_VERSION = ctx.engine.version
    env.redis = redis
    return env
  end

  function E.Engine:scripts()
    self.script_cache = self.script_cache or {}
    return self.script_cache
  end

  local function compile(body, env)
    local fn, msg = load(body, "@user_script", "t", env)
    if not fn then
      return nil, err("ERR Error compiling script (new function): "
        .. tostring(msg):gsub("^@", ""):gsub("near <eof>$", "near '<eof>'"))
    end
    return fn
  end

  local function run(s, body, sha, argv, first)
    local numkeys = util.int(argv[first])
    if not numkeys then return util.NOT_INTEGER end
    if numkeys > #argv - first then
      return err("ERR Number of keys can't be greater than number of args")
    end
    if numkeys < 0 then return err("ERR Number of keys can't be negative") end
    local keys, args = {}, {}
    for i = first + 1, first + numkeys do keys[#keys + 1] = argv[i] end
    for i = first + numkeys + 1, #argv do args[#args + 1] = argv[i] end
    local e = s.engine
    -- The script's client: the caller's database, its own SELECT, never
    -- blocking.
    local proxy = setmetatable({ deny_blocking = true, in_script = true },
                               { __index = s })
    local ctx = { session = proxy, engine = e, resp = 2 }
    local env = sandbox(ctx, keys, args)
    local fn, cerr = compile(body, env)
    if not fn then return cerr end
    e:scripts()[sha] = body
    -- The mock cannot serve others while a script runs. Past
    -- busy-reply-threshold (lua-time-limit) of CPU a script that has not
    -- written is stopped and the server acts as Redis does with a busy
    -- script: BUSY to others until SCRIPT KILL, which answers the
    -- script's client "killed". A script that wrote is stopped with an
    -- error (Redis would leave it running, unkillable).
    local limit = tonumber(e:config()["busy-reply-threshold"]) or 5000
    local started = os.clock() * 1000   -- CPU time: a busy loop spends it
    local dirty0 = e.store.dirty
    debug.sethook(function()
      if os.clock() * 1000 - started > limit then
        debug.sethook()
        local line = debug.getinfo(2, "l")
        if e.store.dirty == dirty0 then
          error({ busy = true, line = line and line.currentline }, 0)
        end
        error({ err = "ERR Error running script: the mock stops scripts running "
          .. "longer than busy-reply-threshold (" .. limit .. " ms)" }, 0)
      end
    end, "", 100000)
    local okr, r = xpcall(fn, function(x)
      -- The script's line that raised (past redis.call and error).
      local info
      for level = 2, 30 do
        local i = debug.getinfo(level, "Sl")
        if not i then break end
        if i.source == "@user_script" then info = i; break end
      end
      if type(x) == "table" and x.busy then return x end
      if type(x) ~= "table" then
        x = { err = "ERR " .. tostring(x) }
      end
      -- "return redis.call(...)" is a tail call in Lua 5.4, which drops
      -- the script's frame: then the line is taken to be 1.
      x.source, x.line = "@user_script", info and info.currentline or 1
      return x
    end)
    debug.sethook()
    if not okr and type(r) == "table" and r.busy then
      -- Park the script's client until SCRIPT KILL (see above).
      e.busy = { session = s, sha = sha, line = r.line or 1 }
      s.blocked = { keys = {}, dbi = s.dbi, busy = true }
      return reply.noreply
    end
    if not okr then
      local msg = type(r) == "table" and tostring(r.err) or tostring(r)
      if type(r) == "table" and r.source then
        msg = msg .. " script: " .. script_name(sha) .. ", on "
          .. r.source .. ":" .. tostring(r.line) .. "."
      end
      return err(msg)
    end
    return from_lua(r, ctx.resp)
  end

  local function eval(s, argv)
    local body = argv[2]
    return run(s, body, sha1(body), argv, 3)
  end

  local NOSCRIPT_ERR = err("NOSCRIPT No matching script. Please use EVAL.")

  local function evalsha(s, argv)
    local sha = lower(argv[2])
    local body = s.engine:scripts()[sha]
    if not body then return NOSCRIPT_ERR end
    return run(s, body, sha, argv, 3)
  end

  def{ "eval", -3, eval }
  def{ "eval_ro", -3, eval }
  def{ "evalsha", -3, evalsha }
  def{ "evalsha_ro", -3, evalsha }

  def{ "script", -2, nil, container = true }
  def{ "script|load", 3, function(s, argv)
    local body = argv[3]
    local fn, cerr = compile(body, {})
    if not fn then return cerr end
    local sha = sha1(body)
    s.engine:scripts()[sha] = body
    return sha
  end }
  def{ "script|exists", -3, function(s, argv)
    local out = {}
    local cache = s.engine:scripts()
    for i = 3, #argv do out[#out + 1] = cache[lower(argv[i])] and 1 or 0 end
    return out
  end }
  def{ "script|flush", -2, function(s, argv)
    if #argv > 3 or (argv[3] and lower(argv[3]) ~= "sync" and lower(argv[3]) ~= "async") then
      return err("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    end
    s.engine.script_cache = {}
    return ok
  end }
  def{ "script|kill", 2, function(s)
    local e = s.engine
    local busy = e.busy
    if not busy then return err("NOTBUSY No scripts in execution right now.") end
    e.busy = nil
    local victim = busy.session
    victim.blocked = nil
    victim:wake(err("ERR Script killed by user with SCRIPT KILL... script: "
      .. busy.sha .. ", on @user_script:" .. busy.line .. "."))
    return ok
  end }

  E.sha1 = sha1
end
