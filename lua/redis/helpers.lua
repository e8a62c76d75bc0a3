-- redis.helpers: everyday helpers on top of the public client API
-- (contract section 14): SCAN-family iterators, optimistic transactions,
-- scripts with an EVALSHA fallback, and redis.map.
--
-- Everything here uses only obj:cmd and obj:pipeline (and, for
-- transaction, a connect function and obj.cfg), so any object with those
-- methods (a cluster client, a transaction's tx) can reuse the functions:
--   helpers.scan_iter(obj, opts), helpers.transaction(obj, opts, fn), ...
-- helpers.install(redis, methods) adds them to the client method table
-- and to the redis module.

local M = {}

-- The redis module, set by install (transaction connects through it).
local redis_mod

-- ---- SCAN-family iterators --------------------------------------------

local function check_opts(opts, name, allow_type)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(name .. ": options must be a table", 3)
  end
  if opts.match ~= nil and type(opts.match) ~= "string" then
    error(name .. ": match must be a string", 3)
  end
  if opts.count ~= nil and (math.type(opts.count) ~= "integer"
                            or opts.count < 1) then
    error(name .. ": count must be an integer >= 1", 3)
  end
  if opts.type ~= nil then
    if not allow_type then error(name .. ": type is for scan_iter only", 3) end
    if type(opts.type) ~= "string" then
      error(name .. ": type must be a string", 3)
    end
  end
  return opts
end

-- Scores come back as bulk strings; Redis spells the infinities inf/-inf,
-- which tonumber does not read.
local INF = { inf = math.huge, ["+inf"] = math.huge, ["-inf"] = -math.huge }

local function score(s)
  if type(s) == "number" then return s end
  local n = tonumber(s)
  if n then return n end
  n = INF[type(s) == "string" and s:lower() or s]
  if n then return n end
  error("protocol error: score is not a number: " .. tostring(s), 0)
end

-- The iterator: one command per batch; the cursor is argv[cpos]. It ends
-- only when the server hands back cursor "0": a batch may be empty (MATCH
-- or TYPE filtered all of it) while the cursor is not yet done.
local function iterate(obj, argv, cpos, pairs_of, convert)
  local batch, i, cursor, done = nil, 0, "0", false
  local step = pairs_of and 2 or 1
  return function()
    while true do
      if batch and i + step <= #batch then
        local a, b = batch[i + 1], batch[i + 2]
        i = i + step
        if pairs_of then
          if convert then b = convert(b) end
          return a, b
        end
        return a
      end
      if done then return nil end
      argv[cpos] = cursor
      local res, err = obj:cmd(table.unpack(argv, 1, argv.n))
      if not res then error(tostring(err), 0) end
      if type(res) ~= "table" or res[1] == nil
         or type(res[2]) ~= "table" then
        error("protocol error: unexpected " .. argv[1] .. " reply", 0)
      end
      cursor = tostring(res[1])
      done = cursor == "0"
      batch, i = res[2], 0
    end
  end
end

local function build_argv(cmd, key, opts)
  local argv = { cmd }
  if key ~= nil then argv[#argv + 1] = key end
  argv[#argv + 1] = "0"
  local cpos = #argv
  if opts.match then
    argv[#argv + 1] = "MATCH"; argv[#argv + 1] = opts.match
  end
  if opts.count then
    argv[#argv + 1] = "COUNT"; argv[#argv + 1] = opts.count
  end
  if opts.type then
    argv[#argv + 1] = "TYPE"; argv[#argv + 1] = opts.type
  end
  argv.n = #argv
  return argv, cpos
end

local function check_key(key, name)
  if type(key) ~= "string" and type(key) ~= "number" then
    error(name .. ": key must be a string", 3)
  end
end

-- for key in c:scan_iter{ match = "user:*", count = 500, type = "hash" }
function M.scan_iter(obj, opts)
  opts = check_opts(opts, "scan_iter", true)
  local argv, cpos = build_argv("SCAN", nil, opts)
  return iterate(obj, argv, cpos, false)
end

-- for field, value in c:hscan_iter(key, opts)
function M.hscan_iter(obj, key, opts)
  check_key(key, "hscan_iter")
  opts = check_opts(opts, "hscan_iter")
  local argv, cpos = build_argv("HSCAN", key, opts)
  return iterate(obj, argv, cpos, true)
end

-- for member in c:sscan_iter(key, opts)
function M.sscan_iter(obj, key, opts)
  check_key(key, "sscan_iter")
  opts = check_opts(opts, "sscan_iter")
  local argv, cpos = build_argv("SSCAN", key, opts)
  return iterate(obj, argv, cpos, false)
end

-- for member, score in c:zscan_iter(key, opts) (score a number)
function M.zscan_iter(obj, key, opts)
  check_key(key, "zscan_iter")
  opts = check_opts(opts, "zscan_iter")
  local argv, cpos = build_argv("ZSCAN", key, opts)
  return iterate(obj, argv, cpos, true, score)
end

-- ---- redis.map ----------------------------------------------------------

-- Is every element a { k, v } pair (RESP3's shape for ZRANGE WITHSCORES,
-- HRANDFIELD WITHVALUES)? A flat RESP2 list never has a table as a key.
local function all_pairs(list, n)
  for i = 1, n do
    local e = list[i]
    if type(e) ~= "table" or #e ~= 2 then return false end
  end
  return true
end

-- { k1, v1, k2, v2 } -> { k1 = v1, k2 = v2 }. A table that is already a
-- map (RESP3 HGETALL, CONFIG GET, ...) comes back as it is, and a list of
-- { k, v } pairs (RESP3 ZRANGE WITHSCORES) is read pair by pair, so code
-- using map works under both protocols.
function M.map(list)
  if type(list) ~= "table" then
    error("redis.map: table expected, got " .. type(list), 2)
  end
  local n = #list
  if n == 0 then return list end
  local out = {}
  if all_pairs(list, n) then
    for i = 1, n do out[list[i][1]] = list[i][2] end
    return out
  end
  if n % 2 ~= 0 then
    error("redis.map: odd number of elements (" .. n .. ")", 2)
  end
  for i = 1, n, 2 do out[list[i]] = list[i + 1] end
  return out
end

-- ---- transactions -------------------------------------------------------

local CONFLICT = "transaction aborted: a watched key changed"

-- EXEC's array in a pipeline's shape: { value }, { nil } for NULL,
-- { nil, text } for a command that failed inside EXEC ({ err = text }).
local function shape_exec(arr, null)
  local out = {}
  for i = 1, #arr do
    local v = arr[i]
    if v == null then
      out[i] = { nil }
    elseif type(v) == "table" and type(v.err) == "string"
           and next(v, next(v)) == nil and next(v) == "err" then
      out[i] = { nil, v.err }
    else
      out[i] = { v }
    end
  end
  return out
end


-- MULTI belongs to transaction itself: one opened by fn would take in the
-- commands fn returns, and EXEC would run them outside its control.
local OWN = { MULTI = true, EXEC = true, DISCARD = true }

local function refuse_own(name)
  if type(name) == "string" and OWN[name:upper()] then
    error("transaction: tx cannot run " .. name:upper()
      .. "; return the commands from fn instead", 4)
  end
end

-- fn's result: an array of non-empty command arrays, none of them
-- MULTI, EXEC or DISCARD; nil otherwise.
local function check_commands(cmds)
  if cmds == nil then return {} end
  if type(cmds) ~= "table" then return nil end
  for i = 1, #cmds do
    local command = cmds[i]
    if type(command) ~= "table" or #command == 0 then return nil end
    if type(command[1]) == "string" and OWN[command[1]:upper()] then
      return nil
    end
  end
  return cmds
end

-- The tx handed to fn: commands on the transaction's own connection, run
-- at once. It records the first failure that is not a Redis error reply
-- (the connection is then gone), and it stops working when fn returns:
-- its connection goes back to the pool, to other users.
local function make_tx(conn)
  local state = { conn = conn }
  local tx = {}
  local function run(method, ...)
    local c = state.conn
    if not c then
      error("transaction: tx used after its function returned", 3)
    end
    if method == "cmd" then
      refuse_own((...))
    elseif type((...)) == "table" then
      for _, command in ipairs((...)) do
        if type(command) == "table" then refuse_own(command[1]) end
      end
    end
    local r = table.pack(c[method](c, ...))
    if r[1] == nil and r[3] ~= nil and r[3] ~= "redis"
       and not state.err then
      state.err, state.cat = r[2], r[3]
    end
    return table.unpack(r, 1, r.n)
  end
  function tx.cmd(_, ...) return run("cmd", ...) end
  function tx.pipeline(_, cmds) return run("pipeline", cmds) end
  for _, name in ipairs{ "scan_iter", "hscan_iter", "sscan_iter",
                         "zscan_iter" } do
    tx[name] = M[name]
  end
  setmetatable(tx, { __index = function(t, name)
    if type(name) ~= "string" or name:sub(1, 1) == "_"
       or name == "close" or name == "read" or name == "transaction" then
      return nil
    end
    local upper = name:upper()
    local f = function(_, ...) return run("cmd", upper, ...) end
    rawset(t, name, f)
    return f
  end })
  return tx, state
end

-- Leaves the connection with no MULTI and no WATCH: DISCARD ends a MULTI
-- that fn may have opened (and answers an error when there is none),
-- UNWATCH drops the watch. True when the connection is clean.
local function abandon(conn)
  local r = conn:pipeline{ { "DISCARD" }, { "UNWATCH" } }
  return r ~= nil and r[2][1] == "OK"
end

-- The whole run on conn, a connection that only this run uses. Returns
-- the pipeline-shaped results, or nil, err, category; raises what fn
-- raises. Sets how.clean when the connection may be pooled afterwards.
function M.transaction_on(conn, opts, fn, how)
  local watch = opts.watch or {}
  local retries = opts.retries or 5
  local null = redis_mod and redis_mod.null
  for _ = 0, retries do
    if #watch > 0 then
      local ok, err, cat = conn:cmd("WATCH", table.unpack(watch))
      if not ok then return nil, err, cat end
    end
    local tx, state = make_tx(conn)
    local okf, cmds = pcall(fn, tx)
    state.conn = nil
    if not okf then
      how.clean = abandon(conn)
      error(cmds, 0)
    end
    if state.err then return nil, state.err, state.cat end
    local list = check_commands(cmds)
    if not list then
      how.clean = abandon(conn)
      error("transaction: fn must return an array of command arrays "
        .. "(without MULTI, EXEC, DISCARD)", 0)
    end
    local p = { { "MULTI" } }
    table.move(list, 1, #list, 2, p)
    p[#p + 1] = { "EXEC" }
    local res, err, cat = conn:pipeline(p)
    if not res then return nil, err, cat end
    local exec = res[#res]
    if res[1][1] ~= "OK" then
      -- MULTI refused (an ACL without MULTI): the commands after it ran
      -- on their own, and EXEC failed; say so with the server's text.
      return nil, res[1][2] or "transaction: MULTI failed", "redis"
    end
    if exec[2] then
      -- EXECABORT: a command was refused while queueing; name it.
      for i = 2, #res - 1 do
        if res[i][2] then
          how.clean = true
          return nil, exec[2] .. " (command " .. (i - 1) .. ": "
            .. res[i][2] .. ")", "redis"
        end
      end
      how.clean = true
      return nil, exec[2], "redis"
    end
    if exec[1] ~= nil then
      how.clean = true
      return shape_exec(exec[1], null)
    end
    -- NULL EXEC: a watched key changed; EXEC has dropped the watch.
  end
  how.clean = true
  return nil, CONFLICT, "conflict"
end

-- c:transaction(opts, fn): fn(tx) reads under WATCH and returns the
-- commands to run in MULTI/EXEC. connect(cfg) (default redis.connect)
-- gives the connection of its own.
function M.transaction(obj, opts, fn, connect)
  if type(opts) == "function" and fn == nil then opts, fn = {}, opts end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("transaction: options must be a table", 2)
  end
  if type(fn) ~= "function" then
    error("transaction: fn must be a function", 2)
  end
  local watch = opts.watch
  if watch ~= nil then
    if type(watch) ~= "table" then
      error("transaction: watch must be an array of keys", 2)
    end
    for i = 1, #watch do
      if type(watch[i]) ~= "string" and type(watch[i]) ~= "number" then
        error("transaction: watch must be an array of keys", 2)
      end
    end
  end
  local retries = opts.retries
  if retries ~= nil and (math.type(retries) ~= "integer" or retries < 0) then
    error("transaction: retries must be an integer >= 0", 2)
  end
  connect = connect or redis_mod.connect
  local conn, err, cat = connect(obj.cfg)
  if not conn then return nil, err, cat end
  local how = {}
  local r = table.pack(pcall(M.transaction_on, conn, opts, fn, how))
  -- Pooled only when nothing went wrong on it; otherwise closed, so a
  -- WATCH or MULTI can never reach the next user of the pool.
  conn:close(not how.clean)
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

-- ---- scripts ------------------------------------------------------------

-- SHA1 (FIPS 180-4) of a string, as 40 hex digits: what Redis names a
-- script by. Pure Lua on 64-bit integers; it runs once per script object.
local function sha1(msg)
  local M32 = 0xffffffff
  local function rol(x, n) return ((x << n) | (x >> (32 - n))) & M32 end
  local h0, h1, h2, h3, h4 =
    0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0
  local len = #msg
  msg = msg .. "\128" .. string.rep("\0", (55 - len) % 64)
    .. string.pack(">I8", len * 8)
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do w[i] = string.unpack(">I4", msg, chunk + i * 4) end
    for i = 16, 79 do
      w[i] = rol(w[i - 3] ~ w[i - 8] ~ w[i - 14] ~ w[i - 16], 1)
    end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for i = 0, 79 do
      local f, k
      if i < 20 then
        f, k = (b & c) | ((~b) & d), 0x5a827999
      elseif i < 40 then
        f, k = b ~ c ~ d, 0x6ed9eba1
      elseif i < 60 then
        f, k = (b & c) | (b & d) | (c & d), 0x8f1bbcdc
      else
        f, k = b ~ c ~ d, 0xca62c1d6
      end
      local t = (rol(a, 5) + (f & M32) + e + k + w[i]) & M32
      a, b, c, d, e = t, a, rol(b, 30), c, d
    end
    h0 = (h0 + a) & M32; h1 = (h1 + b) & M32; h2 = (h2 + c) & M32
    h3 = (h3 + d) & M32; h4 = (h4 + e) & M32
  end
  return string.format("%08x%08x%08x%08x%08x", h0, h1, h2, h3, h4)
end
M.sha1 = sha1

-- Redis's own text; a script's error_reply("NOSCRIPT ...") is not it, and
-- must not make the script run twice.
local NOSCRIPT = "NOSCRIPT No matching script"

local Script = {}
Script.__index = Script

local function check_list(t, what)
  if t == nil then return {} end
  if type(t) ~= "table" then
    error("script:run: " .. what .. " must be an array", 3)
  end
  return t
end

-- script:run(obj, keys, args): EVALSHA; on NOSCRIPT (the server never
-- saw the script, or SCRIPT FLUSH dropped it) SCRIPT LOAD and EVALSHA
-- once more. Results are cmd's.
function Script:run(obj, keys, args)
  keys, args = check_list(keys, "keys"), check_list(args, "args")
  local argv = { "EVALSHA", self.sha, #keys }
  table.move(keys, 1, #keys, 4, argv)
  table.move(args, 1, #args, #argv + 1, argv)
  local n = #argv
  local r = table.pack(obj:cmd(table.unpack(argv, 1, n)))
  if r[1] == nil and type(r[2]) == "string"
     and r[2]:find(NOSCRIPT, 1, true) == 1 then
    local sha, err, cat = obj:cmd("SCRIPT", "LOAD", self.source)
    if not sha then return nil, err, cat end
    r = table.pack(obj:cmd(table.unpack(argv, 1, n)))
  end
  return table.unpack(r, 1, r.n)
end

function Script:__tostring()
  return "redis.script (" .. self.sha .. ")"
end

-- redis.script(source) -> script object with .source, .sha and :run.
function M.script(source)
  if type(source) ~= "string" then
    error("redis.script: source must be a string", 2)
  end
  return setmetatable({ source = source, sha = sha1(source) }, Script)
end

-- ---- installation -------------------------------------------------------

-- Adds the helpers to the client method table and to the redis module.
function M.install(redis, methods)
  redis_mod = redis
  for _, name in ipairs{ "scan_iter", "hscan_iter", "sscan_iter",
                         "zscan_iter", "transaction" } do
    methods[name] = M[name]
  end
  redis.script = M.script
  redis.map = M.map
end

return M
