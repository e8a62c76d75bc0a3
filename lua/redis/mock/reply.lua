-- redis.mock.reply: reply values with explicit RESP kinds, and the encoder
-- that turns them into the exact bytes Redis 7.0 writes for RESP2 or RESP3.
--
-- A reply value is one of:
--   Lua string            bulk string
--   Lua integer           integer
--   Lua float             double (RESP3 ",3.5"; RESP2 the bulk "3.5")
--   true / false          RESP3 boolean; RESP2 the integer 1 / 0
--   plain table           array of reply values (use null, not nil, inside)
--   a tagged value made by the constructors below.
-- Tags are metatables, so a user's plain array can never be mistaken for a
-- tagged value whatever fields it has.
local M = {}

-- Globals the per-request path uses, as locals (a global is a table look-up).
local type, getmetatable, math_type = type, getmetatable, math.type

local KIND = {}      -- metatable -> kind name
local MT = {}        -- kind name -> metatable

local function kind_mt(name)
  local mt = { __name = "redis.mock." .. name }
  KIND[mt] = name
  MT[name] = mt
  return mt
end

for _, k in ipairs({ "status", "error", "null", "null_array", "map", "set",
                     "push", "double", "verbatim", "bignum", "raw", "many",
                     "noreply", "array", "block" }) do
  kind_mt(k)
end

local function tagged(name, t)
  return setmetatable(t, MT[name])
end

-- The kind of a reply value ("bulk", "integer", "array", "status", ...).
function M.kind(v)
  local ty = type(v)
  if ty == "string" then return "bulk" end
  if ty == "number" then
    return math.type(v) == "integer" and "integer" or "double"
  end
  if ty == "boolean" then return "boolean" end
  if ty == "table" then
    local mt = getmetatable(v)
    if mt == nil then return "array" end
    return KIND[mt]
  end
  return nil
end

-- Newlines inside a status or error line would break the protocol; Redis
-- replaces them with spaces for the same reason.
local function line(s)
  return (s:gsub("[\r\n]", " "))
end

function M.status(text) return tagged("status", { line(tostring(text)) }) end
-- text is the whole error line after '-', code included ("ERR ...").
function M.error(text) return tagged("error", { line(tostring(text)) }) end
function M.double(n) return tagged("double", { n }) end
-- Keys and values alternate: map{ k1, v1, k2, v2 }. A table with string
-- keys is accepted too, its keys sorted so the bytes are predictable.
function M.map(t)
  local flat = {}
  if #t == 0 and next(t) ~= nil then
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      flat[#flat + 1] = k
      flat[#flat + 1] = t[k]
    end
  else
    for i = 1, #t do flat[i] = t[i] end
  end
  return tagged("map", flat)
end
function M.set(t) return tagged("set", t) end
function M.push(t) return tagged("push", t) end
function M.array(t) return tagged("array", t) end
function M.verbatim(text, fmt) return tagged("verbatim", { text, fmt or "txt" }) end
function M.bignum(digits) return tagged("bignum", { tostring(digits) }) end
-- Bytes written exactly as given, whatever the protocol.
function M.raw(bytes) return tagged("raw", { bytes }) end
-- A blocking command's request to wait (redis.mock.blocking); the engine
-- turns it into a parked session, it is never encoded.
function M.block(spec) return tagged("block", spec) end
M.BLOCK_MT = MT.block
-- Several replies for one command (SUBSCRIBE a b answers twice).
function M.many(list) return tagged("many", list) end

M.null = setmetatable({}, MT.null)              -- $-1 / _
M.null_array = setmetatable({}, MT.null_array)  -- *-1 / _
M.noreply = setmetatable({}, MT.noreply)        -- nothing at all
M.ok = M.status("OK")
local OK, NULL = M.ok, M.null

-- Redis 7.0 formats doubles with "%.17g"; infinities are spelled out
-- because libc spellings vary, and NaN has one spelling.
local function double_text(d)
  if d ~= d then return "nan" end
  if d == math.huge then return "inf" end
  if d == -math.huge then return "-inf" end
  return string.format("%.17g", d)
end
M.double_text = double_text

local encode

local function encode_list(out, list, n, proto)
  for i = 1, n do encode(out, list[i], proto) end
end

local function seq_len(t)
  return t.n or #t
end

encode = function(out, v, proto)
  local ty = type(v)
  if ty == "string" then
    out[#out + 1] = "$" .. #v .. "\r\n" .. v .. "\r\n"
  elseif ty == "number" then
    if math_type(v) == "integer" then
      out[#out + 1] = ":" .. v .. "\r\n"
    else
      encode(out, M.double(v), proto)
    end
  elseif ty == "boolean" then
    if proto == 3 then
      out[#out + 1] = v and "#t\r\n" or "#f\r\n"
    else
      out[#out + 1] = v and ":1\r\n" or ":0\r\n"
    end
  elseif ty == "table" then
    local mt = getmetatable(v)
    local kind = mt == nil and "array" or KIND[mt]
    if kind == "array" then
      local n = seq_len(v)
      out[#out + 1] = "*" .. n .. "\r\n"
      encode_list(out, v, n, proto)
    elseif kind == "status" then
      out[#out + 1] = "+" .. v[1] .. "\r\n"
    elseif kind == "error" then
      out[#out + 1] = "-" .. v[1] .. "\r\n"
    elseif kind == "null" then
      out[#out + 1] = proto == 3 and "_\r\n" or "$-1\r\n"
    elseif kind == "null_array" then
      out[#out + 1] = proto == 3 and "_\r\n" or "*-1\r\n"
    elseif kind == "map" then
      local n = seq_len(v)
      if proto == 3 then
        out[#out + 1] = "%" .. (n // 2) .. "\r\n"
      else
        out[#out + 1] = "*" .. n .. "\r\n"
      end
      encode_list(out, v, n, proto)
    elseif kind == "set" or kind == "push" then
      local n = seq_len(v)
      local head = proto == 3 and (kind == "set" and "~" or ">") or "*"
      out[#out + 1] = head .. n .. "\r\n"
      encode_list(out, v, n, proto)
    elseif kind == "double" then
      local text = double_text(v[1])
      if proto == 3 then
        out[#out + 1] = "," .. text .. "\r\n"
      else
        out[#out + 1] = "$" .. #text .. "\r\n" .. text .. "\r\n"
      end
    elseif kind == "verbatim" then
      if proto == 3 then
        local body = v[2] .. ":" .. v[1]
        out[#out + 1] = "=" .. #body .. "\r\n" .. body .. "\r\n"
      else
        out[#out + 1] = "$" .. #v[1] .. "\r\n" .. v[1] .. "\r\n"
      end
    elseif kind == "bignum" then
      if proto == 3 then
        out[#out + 1] = "(" .. v[1] .. "\r\n"
      else
        out[#out + 1] = "$" .. #v[1] .. "\r\n" .. v[1] .. "\r\n"
      end
    elseif kind == "raw" then
      out[#out + 1] = v[1]
    elseif kind == "many" then
      encode_list(out, v, seq_len(v), proto)
    elseif kind == "noreply" then
      -- nothing
    else
      error("redis.mock: not a reply value: " .. tostring(v), 0)
    end
  else
    error("redis.mock: not a reply value: " .. tostring(v), 0)
  end
end

-- The headers of short bulk strings and the bytes of small integers,
-- made once: turning a number into text goes through snprintf, which
-- was a visible share of every reply's cost.
local BULK_HEAD, INT_BYTES, CACHED = {}, {}, 1024
for i = 0, CACHED - 1 do
  BULK_HEAD[i] = "$" .. i .. "\r\n"
  INT_BYTES[i] = ":" .. i .. "\r\n"
end
local STATUS_MT = MT.status

-- The bytes of reply value v for protocol 2 (default) or 3.
function M.encode(v, proto)
  local ty = type(v)
  if ty == "string" then
    local n = #v
    if n < CACHED then return BULK_HEAD[n] .. v .. "\r\n" end
    return "$" .. n .. "\r\n" .. v .. "\r\n"
  end
  if ty == "number" and math_type(v) == "integer" then
    if v >= 0 and v < CACHED then return INT_BYTES[v] end
    return ":" .. v .. "\r\n"
  end
  if v == OK then return "+OK\r\n" end
  if v == NULL then return proto == 3 and "_\r\n" or "$-1\r\n" end
  if ty == "table" and getmetatable(v) == STATUS_MT then
    return "+" .. v[1] .. "\r\n"
  end
  local out = {}
  encode(out, v, proto == 3 and 3 or 2)
  return table.concat(out)
end

return M
