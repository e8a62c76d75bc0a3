-- Turns the raw measurements written by run.sh into the results table
-- (markdown), the target check and the chart's data file.
--
--   lua5.4 bench/report.lua OUTDIR
--
-- Reads, from OUTDIR:
--   raw.txt   "REP CLIENT LABEL OPS SECS CPU [SYS]"  one line per measurement
--   ceil.txt  "REP LABEL OPS_PER_S"            redis-benchmark figures
--   cg.txt    "CLIENT LABEL OPS1 IR1 OPS2 IR2" callgrind totals of 2 runs
--   lat.txt   "REP CLIENT LABEL ops=.. secs=.. cpu=.. hist=B:C,..."
--   mem.txt   "REP CLIENT MEM KIND n=N rss0=B rss1=B lua=B"
--   meta.txt  "key: value" lines for the header
-- and the workload order from bench/workloads.txt (next to this file).
-- Writes OUTDIR/results.md and OUTDIR/chart.dat, and prints the tables.
--
-- Statistics: the median over repetitions, of ops/s and of CPU per
-- operation. A ratio to a peer is the median of the per-repetition
-- ratios: each repetition runs the clients back to back, so pairing them
-- cancels slow drift of the machine better than a ratio of medians.

local dir = assert(arg[1], "usage: report.lua OUTDIR")

local OURS, SYNC, ASYNC, RB = "lev-redis", "hiredis-sync", "hiredis-async",
  "redis-benchmark"
local IOR, IORA, NRED = "ioredis", "ioredis-auto", "node-redis"
local CLIENTS = { OURS, SYNC, ASYNC, IOR, IORA, NRED }
local NODE_PEERS = { IOR, IORA, NRED }
local NAME = {
  [SYNC] = "hiredis blocking", [ASYNC] = "hiredis async", [IOR] = "ioredis",
  [IORA] = "ioredis auto-pipelining", [NRED] = "node-redis",
}

-- Workload order: the rows of workloads.txt, then W5 (TLS, run.sh only).
local LABELS = {}
do
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  local f = io.open(here .. "/workloads.txt")
  if f then
    for l in f:lines() do
      local label = l:match("^(%S+)")
      if label and label:sub(1, 1) ~= "#" then LABELS[#LABELS + 1] = label end
    end
    f:close()
  end
  LABELS[#LABELS + 1] = "W5"
end
-- A new workload row may add its description here.
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
  local sys = tonumber(w[7])
  m[client] = m[client] or {}
  local e = m[client][label] or { rate = {}, cpu = {}, sys = {} }
  m[client][label] = e
  e.rate[rep] = ops / secs
  e.cpu[rep] = cpu / ops * 1e6
  if sys and cpu > 0 then e.sys[rep] = sys / cpu end
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
  return { rate = med, cpu = median(vals(e.cpu)), sys = median(vals(e.sys)),
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

-- Latency: the histogram bucket scheme of bench.lua's lat_bucket, 64
-- buckets per power of two of the latency in ns. A percentile is the
-- upper edge of the bucket holding it (at most 1.6% above the truth).
local function bucket_high(b)
  if b < 64 then return b end
  local m = b // 64 + 5
  local top = b % 64 + 64
  return ((top + 1) << (m - 6)) - 1
end

local function percentiles(hist, ps)
  local bs, total = {}, 0
  for b, n in pairs(hist) do bs[#bs + 1] = b; total = total + n end
  table.sort(bs)
  local res = {}
  for i, q in ipairs(ps) do
    local want, acc = math.ceil(q * total), 0
    for _, b in ipairs(bs) do
      acc = acc + hist[b]
      if acc >= want then res[i] = bucket_high(b) / 1000; break end
    end
  end
  res.max = bs[#bs] and bucket_high(bs[#bs]) / 1000
  return res
end

local PS = { 0.5, 0.99, 0.999 }
-- lat[client][label][rep] = { p50, p99, p999 (µs), max = µs }
local lat = {}
for l in lines("lat.txt") do
  local w = words(l)
  local rep, client, label = tonumber(w[1]), w[2], w[3]
  local h = {}
  local hs = l:match("hist=(%S+)")
  for b, n in (hs or ""):gmatch("(%d+):(%d+)") do h[tonumber(b)] = tonumber(n) end
  lat[client] = lat[client] or {}
  lat[client][label] = lat[client][label] or {}
  lat[client][label][rep] = percentiles(h, PS)
end

-- Memory: mem[client][kind] = { per rep: { n, rss0, rss1, lua } }
local mem = {}
for l in lines("mem.txt") do
  local w = words(l)
  local rep, client, kind = tonumber(w[1]), w[2], w[4]
  local e = { n = tonumber(l:match(" n=(%d+)")), rss0 = tonumber(l:match("rss0=(%d+)")),
    rss1 = tonumber(l:match("rss1=(%d+)")), lua = tonumber(l:match("lua=(%-?%d+)")) }
  if client == "hiredis-mem" then client = ASYNC end
  mem[client] = mem[client] or {}
  mem[client][kind] = mem[client][kind] or {}
  mem[client][kind][rep] = e
end

-- Median over repetitions of f(entry) for one memory run kind.
local function memstat(client, kind, f)
  local e = mem[client] and mem[client][kind]
  if not e then return nil end
  local v = {}
  for _, x in pairs(e) do v[#v + 1] = f(x) end
  return median(v)
end
local function per_item(x) return (x.rss1 - x.rss0) / x.n end

local function latstat(client, label, i)
  local e = lat[client] and lat[client][label]
  if not e then return nil end
  local v = {}
  for _, x in pairs(e) do v[#v + 1] = i == "max" and x.max or x[i] end
  return median(v)
end
-- Median of per-repetition ratios ours / peer of percentile i.
local function latratio(peer, label, i)
  local a = lat[OURS] and lat[OURS][label]
  local b = lat[peer] and lat[peer][label]
  if not (a and b) then return nil end
  local r = {}
  for rep, x in pairs(a) do
    if b[rep] and b[rep][i] and x[i] then r[#r + 1] = x[i] / b[rep][i] end
  end
  return median(r)
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
p("time per million ops (= µs per op); \"kernel\" is the system part of")
p("it (socket calls, wake-ups). \"lev-redis ÷ peer\" is the median of the")
p("per-repetition ratios of our figure to that peer's (ops/s: higher is")
p("better for us; CPU and instructions: lower is better for us).")
p("Instructions per op come from callgrind (user-space instructions of")
p("the whole client process, Lua interpreter included; kernel work is not")
p("counted), as the difference of two runs of different length.")
p()
p("| Workload | Client | ops/s | spread | CPU s / M ops | kernel | instr/op |"
  .. " lev-redis ÷ peer: ops/s | CPU | instr |")
p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")

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
      p(string.format("| %s %s | %s | %s | ±%.1f%% | %.2f | %s | %s | %s | %s | %s |",
        label, DESCR[label] or "", client, rate, s.spread / 2, s.cpu,
        s.sys and string.format("%.0f%%", s.sys * 100) or "",
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
    p(string.format("| %s %s | %s | %s | | | | | | | |", label, DESCR[label] or "",
      RB, rate))
    any = true
  end
  if any then chart[#chart + 1] = row end
end

-- Latency and memory tables.
if next(lat) then
  p()
  p("## Latency")
  p()
  p("Each GET timed from the call to its reply (for us, to the calling")
  p("task's return from `cmd`), with N kept in flight on one connection;")
  p("HDR-style histogram (64 buckets per power of two, so a figure is at")
  p("most 1.6% high); median over the repetitions, in µs.")
  p()
  p("| Workload | Client | p50 µs | p99 µs | p99.9 µs | max µs | lev-redis ÷ hiredis async: p50 | p99 | p99.9 |")
  p("|---|---|---:|---:|---:|---:|---:|---:|---:|")
  for _, label in ipairs({ "W3/16", "W3/128" }) do
    for _, client in ipairs({ OURS, ASYNC }) do
      if lat[client] and lat[client][label] then
        local r = { "", "", "" }
        if client == ASYNC and lat[OURS] then
          for i = 1, 3 do r[i] = fmt(latratio(ASYNC, label, i), "%.2fx") end
        end
        p(string.format("| %s %s | %s | %s | %s | %s | %s | %s | %s | %s |",
          label, DESCR[label] or "", client, fmt(latstat(client, label, 1), "%.1f"),
          fmt(latstat(client, label, 2), "%.1f"), fmt(latstat(client, label, 3), "%.1f"),
          fmt(latstat(client, label, "max"), "%.0f"), r[1], r[2], r[3]))
      end
    end
  end
end

local function kb(x) return x and int(x / 1024) .. " KB" or "-" end
if next(mem) then
  p()
  p("## Memory")
  p()
  p("RSS (`VmRSS` of `/proc/self/status`) of the client process, grown")
  p("from a start state of one connection, connected and used; median of")
  p("the repetitions. \"idle\": that many more connections, each having")
  p("answered a PING, then idle (ours: closed into the pool, which holds")
  p("them; hiredis has no pool: contexts kept open). \"parked\": that many")
  p("BLPOPs on an empty list in flight on one connection (ours: one task")
  p("each, blocked in `cmd`; hiredis: one callback each); then one LPUSH")
  p("releases them and every reply is checked; \"one pipeline\": the same")
  p("BLPOPs as one `client:pipeline` call of one task (its list holds one")
  p("command table N times, 16 B an entry). Lua heap: growth of")
  p("`collectgarbage(\"count\")` after a full collection.")
  p()
  p("| Measure | lev-redis | hiredis async | lev-redis ÷ hiredis async |")
  p("|---|---:|---:|---:|")
  local ni = memstat(OURS, "idle", function(x) return x.n end)
    or memstat(ASYNC, "idle", function(x) return x.n end)
  local np = memstat(OURS, "park", function(x) return x.n end)
    or memstat(ASYNC, "park", function(x) return x.n end)
  local function row(name, f, kind, fm)
    local a, b = memstat(OURS, kind, f), memstat(ASYNC, kind, f)
    p(string.format("| %s | %s | %s | %s |", name, a and fm(a) or "-",
      b and fm(b) or "-", (a and b and b > 0) and string.format("%.2fx", a / b) or ""))
  end
  if ni then
    row(string.format("RSS growth for %s idle connections", int(ni)),
      function(x) return x.rss1 - x.rss0 end, "idle", kb)
    row("RSS per idle connection", per_item, "idle",
      function(v) return int(v) .. " B" end)
  end
  if np then
    row(string.format("RSS with %s commands parked (whole process)", int(np)),
      function(x) return x.rss1 end, "park", kb)
    row(string.format("RSS growth for %s parked commands", int(np)),
      function(x) return x.rss1 - x.rss0 end, "park", kb)
    row("bytes per pending command, one task each (task included for us)",
      per_item, "park", function(v) return int(v) .. " B" end)
    local lh = memstat(OURS, "park", function(x) return x.lua / x.n end)
    if lh then
      p(string.format("| of which Lua heap per parked task | %s B | | |", int(lh)))
    end
    local pp, hp = memstat(OURS, "pipe", per_item), memstat(ASYNC, "park", per_item)
    if pp then
      p(string.format("| bytes per pending command, all %s in one pipeline (ours; hiredis: callbacks as above) | %s B | %s | %s |",
        int(np), int(pp), hp and int(hp) .. " B" or "-",
        hp and hp > 0 and string.format("%.2fx", pp / hp) or ""))
    end
  end
end

-- Client CPU per op, ours / peer, for each workload both ran: the
-- largest (worst for us) and where.
local function worst_cpu(peer)
  local w, at
  for _, label in ipairs(LABELS) do
    local r = ratio(peer, label, "cpu")
    if r and (not w or r > w) then w, at = r, label end
  end
  return w, at
end

-- The targets, as ratios ours / peer measured in the same run: issue 19
-- (the Node peers, memory, latency) and round 1's (hiredis).
local mem_ratio = (function()
  local a, b = memstat(OURS, "idle", per_item), memstat(ASYNC, "idle", per_item)
  if a and b and b > 0 then return a / b end
end)()
local TARGETS = {
  { "W2/100", "rate", IORA, ">=", 4.0, "W2/100 ops/s vs ioredis auto-pipelining" },
  { "W3/128", "rate", IORA, ">=", 4.0, "W3/128 ops/s vs ioredis auto-pipelining" },
  { "W2/100", "rate", NRED, ">=", 3.0, "W2/100 ops/s vs node-redis" },
  { "W3/128", "rate", NRED, ">=", 3.0, "W3/128 ops/s vs node-redis" },
  { "W1", "rate", IOR, ">=", 1.5, "W1 ops/s vs ioredis" },
  { "W1", "rate", IORA, ">=", 1.5, "W1 ops/s vs ioredis auto-pipelining" },
  { nil, "cpu", IOR, "<=", 0.33, "client CPU per op vs ioredis (worst workload)" },
  { nil, "cpu", IORA, "<=", 0.33, "client CPU per op vs ioredis auto-pipelining (worst)" },
  { nil, "cpu", NRED, "<=", 0.33, "client CPU per op vs node-redis (worst workload)" },
  { "W1", "rate", ASYNC, ">=", 1.0, "W1 ops/s vs hiredis async" },
  { "W3/1", "rate", ASYNC, ">=", 1.0, "W3/1 ops/s vs hiredis async" },
  { "W3/16", "rate", ASYNC, ">=", 1.0, "W3/16 ops/s vs hiredis async" },
  { "W3/128", "rate", ASYNC, ">=", 1.0, "W3/128 ops/s vs hiredis async" },
  { "W1", "instr", ASYNC, "<=", 1.0, "W1 instr/op vs hiredis async" },
  { "W3/128", "instr", ASYNC, "<=", 1.0, "W3/128 instr/op vs hiredis async" },
  { nil, "mem", ASYNC, "<=", 1.5, "RSS per idle pooled connection vs hiredis async" },
  { "W3/16", "p99", ASYNC, "<=", 1.0, "p99 latency at W3/16 vs hiredis async" },
  { "W1", "rate", SYNC, ">=", 0.95, "W1 ops/s vs hiredis blocking" },
  { "W2/100", "rate", SYNC, ">=", 0.9, "W2/100 ops/s vs hiredis blocking" },
  { "W2/1000", "rate", SYNC, ">=", 0.9, "W2/1000 ops/s vs hiredis blocking" },
  { "W2/100", "instr", SYNC, "<=", 1.5, "W2/100 instr/op vs hiredis blocking" },
  { "W4", "rate", SYNC, ">=", 1.5, "W4 ops/s vs hiredis blocking" },
}
local ROUND1_FROM = 18
local pass, fail = 0, 0
if m[OURS] then
  p()
  p("## Targets")
  p()
  p("Issue 19 (rows 1-17) and round 1 (the rest). A ratio is lev-redis ÷")
  p("peer from this run: ops/s higher is better for us; CPU, instructions,")
  p("memory and latency lower is better.")
  p()
  p("| Target | lev-redis ÷ peer | required | result |")
  p("|---|---:|---:|---|")
  for i, t in ipairs(TARGETS) do
    local label, field, peer, op, want, name = t[1], t[2], t[3], t[4], t[5], t[6]
    local r, where
    if field == "instr" then r = cgratio(peer, label)
    elseif field == "cpu" then r, where = worst_cpu(peer)
    elseif field == "mem" then r = mem_ratio
    elseif field == "p99" then r = latratio(peer, label, 2)
    else r = ratio(peer, label, field) end
    local ok = r and (op == ">=" and r >= want or op == "<=" and r <= want)
    local res = r == nil and "not measured" or ok and "met" or "**missed**"
    if r then
      if ok then pass = pass + 1 else fail = fail + 1 end
    end
    if i == ROUND1_FROM then p("| *round 1* | | | |") end
    p(string.format("| %s | %s%s | %s %.2fx | %s |", name, fmt(r, "%.2fx"),
      where and " (" .. where .. ")" or "", op, want, res))
  end
  p()
  p(string.format("%d of %d targets met.", pass, pass + fail))
end

-- summary.md: the compact tables the README's benchmark section shows
-- (ours per workload and our ratio to every peer), from the same figures.
do
  local sm = {}
  local function q(x) sm[#sm + 1] = x or "" end
  local PEERS = { SYNC, ASYNC, IOR, IORA, NRED }
  local function hdr(first)
    local h, sep = "| workload | " .. first, "|---|---:"
    for _, c in ipairs(PEERS) do
      h = h .. " | ÷ " .. NAME[c]
      sep = sep .. "|---:"
    end
    q(h .. " |")
    q(sep .. "|")
  end
  q("ops/s (lev-redis, and lev-redis ÷ peer; higher is better for us):")
  q()
  hdr("lev-redis ops/s")
  for _, label in ipairs(LABELS) do
    local s0 = stat(OURS, label)
    if s0 then
      local row = string.format("| %s %s | %s", label, DESCR[label] or "", int(s0.rate))
      for _, c in ipairs(PEERS) do row = row .. " | " .. fmt(ratio(c, label, "rate"), "%.2fx") end
      q(row .. " |")
    end
  end
  q()
  q("Client CPU per op (lev-redis µs, and lev-redis ÷ peer; lower is better for us):")
  q()
  hdr("lev-redis µs/op (kernel share)")
  for _, label in ipairs(LABELS) do
    local s0 = stat(OURS, label)
    if s0 then
      local row = string.format("| %s %s | %.2f%s", label, DESCR[label] or "", s0.cpu,
        s0.sys and string.format(" (%.0f%%)", s0.sys * 100) or "")
      for _, c in ipairs(PEERS) do row = row .. " | " .. fmt(ratio(c, label, "cpu"), "%.2fx") end
      q(row .. " |")
    end
  end
  local sf = assert(io.open(dir .. "/summary.md", "w"))
  sf:write(table.concat(sm, "\n"), "\n")
  sf:close()
end

local text = table.concat(out, "\n") .. "\n"
local f = assert(io.open(dir .. "/results.md", "w"))
f:write(text)
f:close()
io.stdout:write(text)

-- chart.dat: one row per workload, one column per client, "-" = not run.
local cf = assert(io.open(dir .. "/chart.dat", "w"))
local cols = { OURS, SYNC, ASYNC, IOR, IORA, NRED, RB }
local peers = { SYNC, ASYNC, IOR, IORA, NRED }
cf:write("workload")
for _, c in ipairs(cols) do cf:write(" ", c) end
for _, c in ipairs(peers) do cf:write(" vs_", c) end
cf:write("\n")
for _, row in ipairs(chart) do
  cf:write(row.label)
  for _, c in ipairs(cols) do
    cf:write(" ", row[c] and string.format("%.1f", row[c]) or "-")
  end
  -- ours / each peer, for the chart's second panel
  for _, peer in ipairs(peers) do
    local r = ratio(peer, row.label, "rate")
    cf:write(" ", r and string.format("%.3f", r) or "-")
  end
  cf:write("\n")
end
cf:close()
os.exit(0)
