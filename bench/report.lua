-- Turns the raw measurements written by run.sh into the results table
-- (markdown), the target check and the chart's data file.
--
--   lua5.4 bench/report.lua OUTDIR
--
-- Reads, from OUTDIR:
--   raw.txt   "REP CLIENT LABEL OPS SECS CPU"  one line per measurement
--   ceil.txt  "REP LABEL OPS_PER_S"            redis-benchmark figures
--   cg.txt    "CLIENT LABEL OPS1 IR1 OPS2 IR2" callgrind totals of 2 runs
--   meta.txt  "key: value" lines for the header
-- Writes OUTDIR/results.md and OUTDIR/chart.dat, and prints the tables.
--
-- Statistics: the median over repetitions, of ops/s and of CPU per
-- operation. A ratio to a peer is the median of the per-repetition
-- ratios: each repetition runs the clients back to back, so pairing them
-- cancels slow drift of the machine better than a ratio of medians.

local dir = assert(arg[1], "usage: report.lua OUTDIR")

local OURS, SYNC, ASYNC, RB = "lev-redis", "hiredis-sync", "hiredis-async",
  "redis-benchmark"
local CLIENTS = { OURS, SYNC, ASYNC }
local LABELS = { "W1", "W2/100", "W2/1000", "W3/1", "W3/16", "W3/128", "W4",
  "W5" }
local DESCR = {
  ["W1"] = "SET+GET 16 B, 1 at a time",
  ["W2/100"] = "pipeline of 100 GET",
  ["W2/1000"] = "pipeline of 1000 GET",
  ["W3/1"] = "1 GET in flight",
  ["W3/16"] = "16 GET in flight",
  ["W3/128"] = "128 GET in flight",
  ["W4"] = "GET 100 KB",
  ["W5"] = "W1 over TLS",
}
local BIG_LEN = 102400

local function lines(name)
  local f = io.open(dir .. "/" .. name)
  if not f then return function() return nil end end
  local it = f:lines()
  return function()
    local l = it()
    if l == nil then f:close() end
    return l
  end
end

local function words(l)
  local w = {}
  for x in l:gmatch("%S+") do w[#w + 1] = x end
  return w
end

local function median(t)
  if #t == 0 then return nil end
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- m[client][label] = { rate = {by rep}, cpu = {by rep} }
local m = {}
local reps = {}
for l in lines("raw.txt") do
  local w = words(l)
  local rep, client, label = tonumber(w[1]), w[2], w[3]
  local ops, secs, cpu = tonumber(w[4]), tonumber(w[5]), tonumber(w[6])
  m[client] = m[client] or {}
  local e = m[client][label] or { rate = {}, cpu = {} }
  m[client][label] = e
  e.rate[rep] = ops / secs
  e.cpu[rep] = cpu / ops * 1e6
  reps[rep] = true
end

local ceil = {}
for l in lines("ceil.txt") do
  local w = words(l)
  ceil[w[2]] = ceil[w[2]] or {}
  table.insert(ceil[w[2]], tonumber(w[3]))
end

local cg = {}
for l in lines("cg.txt") do
  local w = words(l)
  local o1, i1, o2, i2 = tonumber(w[3]), tonumber(w[4]), tonumber(w[5]),
    tonumber(w[6])
  cg[w[1]] = cg[w[1]] or {}
  cg[w[1]][w[2]] = (i2 - i1) / (o2 - o1)
end

local meta = {}
for l in lines("meta.txt") do meta[#meta + 1] = l end

local function vals(t)
  local v = {}
  for _, x in pairs(t) do v[#v + 1] = x end
  return v
end

local function stat(client, label)
  local e = m[client] and m[client][label]
  if not e then return nil end
  local r = vals(e.rate)
  local lo, hi = math.huge, 0
  for _, x in ipairs(r) do lo, hi = math.min(lo, x), math.max(hi, x) end
  local med = median(r)
  return { rate = med, cpu = median(vals(e.cpu)),
    spread = (hi - lo) / med * 100, n = #r }
end

-- Median over repetitions of ours / peer for one field ("rate" or "cpu").
local function ratio(peer, label, field)
  local a = m[OURS] and m[OURS][label]
  local b = m[peer] and m[peer][label]
  if not (a and b) then return nil end
  local r = {}
  for rep in pairs(a[field]) do
    if b[field][rep] then r[#r + 1] = a[field][rep] / b[field][rep] end
  end
  return median(r)
end

local function cgratio(peer, label)
  local a = cg[OURS] and cg[OURS][label]
  local b = cg[peer] and cg[peer][label]
  if a and b then return a / b end
end

-- Thousands separated by a thin space would not survive every terminal;
-- a plain comma grouping keeps the table readable in both places.
local function int(x)
  if not x then return "-" end
  local s = string.format("%d", math.floor(x + 0.5))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

local function fmt(x, f)
  if not x then return "-" end
  return string.format(f, x)
end

local out = {}
local function p(s) out[#out + 1] = s or "" end

p("# lev-redis benchmark")
p()
for _, l in ipairs(meta) do p("* " .. l) end
p()
p("ops/s is the median of the repetitions (an op is one command; W1's SET")
p("and GET count as two). CPU is the client process's own user+system")
p("time per million ops. \"lev-redis ÷ peer\" is the median of the")
p("per-repetition ratios of our figure to that peer's (ops/s: higher is")
p("better for us; CPU and instructions: lower is better for us).")
p("Instructions per op come from callgrind (user-space instructions of")
p("the whole client process, Lua interpreter included; kernel work is not")
p("counted), as the difference of two runs of different length.")
p()
p("| Workload | Client | ops/s | spread | CPU s / M ops | instr/op |"
  .. " lev-redis ÷ peer: ops/s | CPU | instr |")
p("|---|---|---:|---:|---:|---:|---:|---:|---:|")

local chart = {}
for _, label in ipairs(LABELS) do
  local row = { label = label }
  local any = false
  for _, client in ipairs(CLIENTS) do
    local s = stat(client, label)
    if s then
      any = true
      row[client] = s.rate
      local rate = int(s.rate)
      if label == "W4" then
        rate = rate .. string.format(" (%.0f MB/s)", s.rate * BIG_LEN / 1e6)
      end
      local ir = cg[client] and cg[client][label]
      local rr, rc, ri = "", "", ""
      if client ~= OURS then
        rr = fmt(ratio(client, label, "rate"), "%.2fx")
        rc = fmt(ratio(client, label, "cpu"), "%.2fx")
        ri = ir and fmt(cgratio(client, label), "%.2fx") or ""
        if not (m[OURS] and m[OURS][label]) then rr, rc, ri = "", "", "" end
      end
      p(string.format("| %s %s | %s | %s | ±%.1f%% | %.2f | %s | %s | %s | %s |",
        label, DESCR[label], client, rate, s.spread / 2, s.cpu,
        ir and int(ir) or "", rr, rc, ri))
    end
  end
  local c = ceil[label]
  if c then
    row[RB] = median(c)
    local rate = int(row[RB])
    if label == "W4" then
      rate = rate .. string.format(" (%.0f MB/s)", row[RB] * BIG_LEN / 1e6)
    end
    p(string.format("| %s %s | %s | %s | | | | | | |", label, DESCR[label],
      RB, rate))
    any = true
  end
  if any then chart[#chart + 1] = row end
end

-- The issue's targets, as ratios ours / peer measured in the same run.
local TARGETS = {
  { "W1", "rate", ASYNC, 1.0, "W1 ops/s vs hiredis async" },
  { "W1", "rate", SYNC, 0.95, "W1 ops/s vs hiredis blocking" },
  { "W1", "instr", ASYNC, 1.0, "W1 instr/op vs hiredis async" },
  { "W2/100", "rate", SYNC, 0.9, "W2/100 ops/s vs hiredis blocking" },
  { "W2/1000", "rate", SYNC, 0.9, "W2/1000 ops/s vs hiredis blocking" },
  { "W2/100", "instr", SYNC, 1.5, "W2/100 instr/op vs hiredis blocking" },
  { "W3/128", "rate", ASYNC, 1.0, "W3/128 ops/s vs hiredis async" },
  { "W3/128", "instr", ASYNC, 1.0, "W3/128 instr/op vs hiredis async" },
  { "W4", "rate", SYNC, 1.5, "W4 ops/s vs hiredis blocking" },
}
local pass, fail = 0, 0
if m[OURS] then
  p()
  p("## Targets")
  p()
  p("| Target | lev-redis ÷ peer | required | result |")
  p("|---|---:|---:|---|")
  for _, t in ipairs(TARGETS) do
    local label, field, peer, want, name = t[1], t[2], t[3], t[4], t[5]
    local r, ok
    if field == "instr" then
      r = cgratio(peer, label)
      ok = r and r <= want
    else
      r = ratio(peer, label, field)
      ok = r and r >= want
    end
    local res = r == nil and "not measured" or ok and "pass" or "**FAIL**"
    if r then
      if ok then pass = pass + 1 else fail = fail + 1 end
    end
    p(string.format("| %s | %s | %s %.2fx | %s |", name, fmt(r, "%.2fx"),
      field == "instr" and "<=" or ">=", want, res))
  end
  p()
  p(string.format("%d of %d targets met.", pass, pass + fail))
end

local text = table.concat(out, "\n") .. "\n"
local f = assert(io.open(dir .. "/results.md", "w"))
f:write(text)
f:close()
io.stdout:write(text)

-- chart.dat: one row per workload, one column per client, "-" = not run.
local cf = assert(io.open(dir .. "/chart.dat", "w"))
local cols = { OURS, SYNC, ASYNC, RB }
cf:write("workload")
for _, c in ipairs(cols) do cf:write(" ", c) end
cf:write(" vs_sync vs_async\n")
for _, row in ipairs(chart) do
  cf:write(row.label)
  for _, c in ipairs(cols) do
    cf:write(" ", row[c] and string.format("%.1f", row[c]) or "-")
  end
  -- ours / each peer, for the chart's second panel
  for _, peer in ipairs({ SYNC, ASYNC }) do
    local r = ratio(peer, row.label, "rate")
    cf:write(" ", r and string.format("%.3f", r) or "-")
  end
  cf:write("\n")
end
cf:close()
os.exit(0)
