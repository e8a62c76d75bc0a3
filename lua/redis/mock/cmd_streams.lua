-- Streams in the mock: XADD XLEN XRANGE XREVRANGE XDEL XTRIM XSETID
-- XREAD (BLOCK too) XGROUP CREATE|CREATECONSUMER|DELCONSUMER|DESTROY|SETID
-- XREADGROUP (BLOCK too) XACK XPENDING XCLAIM XAUTOCLAIM XINFO, with
-- Redis 7.0's checks in its order and its texts.
--
-- A stream: { type = "stream", list = { id, ... } ascending, fields =
-- { [idtext] = { f, v, ... } }, last = id, ever = entries ever added,
-- first = first entry's id (0-0 when empty), maxdel = highest id XDEL
-- removed, groups = { name = group } }, an id being { ms, seq } (ms
-- within Lua's signed 64-bit integers).
-- A group: { last = id, read = entries-read or nil (unknown), pel =
-- { [idtext] = { consumer =, delivered =, count =, id = } }, consumers =
-- { name = { pending = { [idtext] = true }, seen = ms } } }. Entries are
-- grouped into nodes as Redis groups them (see node_put), so "~" trims
-- whole nodes as Redis does.
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")

local err, ok = reply.error, reply.ok
local lower = util.lower

local INVALID_ID = err("ERR Invalid stream ID specified as stream command argument")

return function(E)
  local def = E.def

  local function typed(s, key)
    local obj = s.db:lookup(key)
    if not obj then return nil end
    if obj.type ~= "stream" then return false, util.WRONGTYPE end
    return obj
  end

  local MAXID = { math.maxinteger, math.maxinteger }
  -- "+" is Redis's largest id (both halves 2^64-1); the mock's ids are
  -- signed, so that sentinel is written the way Redis writes it.
  local U64_MAX = "18446744073709551615"
  local function idtext(id)
    if id[1] == MAXID[1] and id[2] == MAXID[2] then return U64_MAX .. "-" .. U64_MAX end
    return id[1] .. "-" .. id[2]
  end
  local function less(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end

  -- "ms-seq", "ms" (seq = missing_seq), "-" and "+"; nil when invalid.
  local function parse_id(text, missing_seq, strict)
    if not strict then
      if text == "-" then return { 0, 0 } end
      if text == "+" then return MAXID end
    end
    local ms, seq = text:match("^(%d+)%-(%d+)$")
    if not ms then
      ms = text:match("^(%d+)$")
      if not ms then return nil end
      seq = missing_seq
    end
    ms, seq = math.tointeger(tonumber(ms)), math.tointeger(tonumber(seq))
    if not ms or not seq then return nil end
    return { ms, seq }
  end

  local function new_stream()
    return { type = "stream", list = {}, fields = {}, last = { 0, 0 },
             first = { 0, 0 }, maxdel = { 0, 0 }, ever = 0,
             nodes = {}, node_of = {}, groups = {} }
  end

  -- Redis keeps entries in radix-tree nodes (listpacks) of at most
  -- stream-node-max-entries entries (deleted ones included) and about
  -- stream-node-max-bytes bytes; "~" trimming removes whole nodes only.
  -- The mock keeps the same grouping: st.nodes in order, each { live =,
  -- count = entries ever put in, bytes = an estimate }, st.node_of[idtext].
  local function node_limits(s)
    local cfg = s.engine:config()
    return math.tointeger(tonumber(cfg["stream-node-max-entries"])) or 100,
      math.tointeger(tonumber(cfg["stream-node-max-bytes"])) or 4096
  end

  local function node_put(s, st, t, fields)
    local max_entries, max_bytes = node_limits(s)
    local size = 0
    for _, v in ipairs(fields) do size = size + #v end
    local tail = st.nodes[#st.nodes]
    if not tail or (max_bytes > 0 and tail.bytes + size >= max_bytes)
      or (max_entries > 0 and tail.count >= max_entries) then
      -- A new listpack starts with its header and master entry.
      tail = { live = 0, count = 0, bytes = 16 + size }
      st.nodes[#st.nodes + 1] = tail
    end
    -- Per entry: flags, id deltas, a length per element, lp-count.
    tail.bytes = tail.bytes + size + #fields + 6
    tail.live, tail.count = tail.live + 1, tail.count + 1
    st.node_of[t] = tail
  end

  -- Takes entry t out of its node; an emptied node goes.
  local function node_drop(st, t)
    local node = st.node_of[t]
    st.node_of[t] = nil
    node.live = node.live - 1
    if node.live == 0 then
      for i, n in ipairs(st.nodes) do
        if n == node then table.remove(st.nodes, i); break end
      end
    end
  end

  -- Redis's recorded first entry id: the first entry's, 0-0 when empty.
  local function refirst(st)
    st.first = st.list[1] or { 0, 0 }
  end

  local function entry(st, id)
    local t = idtext(id)
    local f = st.fields[t]
    local out = {}
    for i, v in ipairs(f) do out[i] = v end
    return { t, out }
  end

  -- Removes the first entry of st.
  local function drop_first(st)
    local first = table.remove(st.list, 1)
    local t = idtext(first)
    st.fields[t] = nil
    node_drop(st, t)
  end

  -- Redis's streamTrim: from the first node on, a whole node goes while
  -- the stream stays at least maxlen long (or the node's entries are all
  -- below minid); with "~" that is all, otherwise entries are then taken
  -- one by one from the next node. LIMIT bounds the entries removed in
  -- whole nodes. Returns the count removed.
  local function trim(st, o)
    local removed = 0
    while #st.list > 0 do
      if o.maxlen and #st.list <= o.maxlen then break end
      local node = st.node_of[idtext(st.list[1])]
      local n = node.live
      if o.limit > 0 and removed + n > o.limit then break end
      local whole
      if o.maxlen then
        whole = #st.list - n >= o.maxlen
      else
        whole = less(st.list[n], o.minid)
      end
      if whole then
        for _ = 1, n do drop_first(st) end
        removed = removed + n
      else
        if o.approx then break end
        while #st.list > 0 and ((o.maxlen and #st.list > o.maxlen)
          or (o.minid and less(st.list[1], o.minid))) do
          drop_first(st)
          removed = removed + 1
        end
        break
      end
    end
    if removed > 0 then refirst(st) end
    return removed
  end

  -- Redis's option parsing for XADD (xadd = true) and XTRIM: MAXLEN|MINID
  -- [=|~] threshold, LIMIT n, NOMKSTREAM (XADD), in any order, up to the
  -- ID for XADD. Returns the options and the ID's index, or nil and the
  -- error.
  local function add_trim_args(s, argv, xadd)
    local o = { limit = 0 }
    local limit_given = false
    local i = 3
    while i <= #argv do
      local more = #argv - i
      local opt = lower(argv[i])
      if xadd and argv[i] == "*" then
        break
      elseif (opt == "maxlen" or opt == "minid") and more > 0 then
        if o.maxlen or o.minid then
          return nil, err("ERR syntax error, MAXLEN and MINID options at the same "
            .. "time are not compatible")
        end
        o.approx = false
        local nxt = argv[i + 1]
        if more >= 2 and (nxt == "~" or nxt == "=") then
          o.approx = nxt == "~"
          i = i + 1
        end
        if opt == "maxlen" then
          local n = util.int(argv[i + 1])
          if not n then return nil, util.NOT_INTEGER end
          if n < 0 then return nil, err("ERR The MAXLEN argument must be >= 0.") end
          o.maxlen = n
        else
          o.minid = parse_id(argv[i + 1], 0, true)
          if not o.minid then return nil, INVALID_ID end
        end
        i = i + 1
      elseif opt == "limit" and more > 0 then
        local n = util.int(argv[i + 1])
        if not n then return nil, util.NOT_INTEGER end
        if n < 0 then return nil, err("ERR The LIMIT argument must be >= 0.") end
        o.limit = n
        limit_given = true
        i = i + 1
      elseif xadd and opt == "nomkstream" then
        o.nomkstream = true
      elseif xadd then
        break
      else
        return nil, util.SYNTAX
      end
      i = i + 1
    end
    local strategy = o.maxlen or o.minid
    if o.limit > 0 and not strategy then
      return nil, err("ERR syntax error, LIMIT cannot be used without specifying a "
        .. "trimming strategy")
    end
    if not xadd and not strategy then
      return nil, err("ERR syntax error, XTRIM must be called with a trimming strategy")
    end
    if limit_given then
      if not o.approx then
        return nil, err("ERR syntax error, LIMIT cannot be used without the special ~ option")
      end
    elseif o.approx then
      -- At most 100 nodes' worth of work, as Redis bounds it.
      local per_node = node_limits(s)
      o.limit = 100 * per_node
      if o.limit <= 0 then o.limit = 10000 end
      if o.limit > 1000000 then o.limit = 1000000 end
    end
    return o, i
  end

  def{ "xadd", -5, function(s, argv)
    local o, i = add_trim_args(s, argv, true)
    if not o then return i end
    local idarg = argv[i]
    local explicit, seq_auto
    if idarg and idarg ~= "*" then
      local ms, star = idarg:match("^(%d+)%-(%*)$")
      if star then
        explicit = parse_id(ms .. "-0", 0, true)
        seq_auto = true
      else
        explicit = parse_id(idarg, 0, true)
      end
      if not explicit then return INVALID_ID end
    end
    -- The ID is checked before the field count, as Redis does.
    local nf = #argv - i
    if not idarg or nf < 2 or nf % 2 ~= 0 then return util.arity_error("xadd") end
    if explicit and not seq_auto and explicit[1] == 0 and explicit[2] == 0 then
      return err("ERR The ID specified in XADD must be greater than 0-0")
    end
    local st, e = typed(s, argv[2])
    if st == false then return e end
    if not st then
      if o.nomkstream then return reply.null end
      st = new_stream()
    end
    local id
    if not explicit then
      local now = s.engine.clock()
      if now > st.last[1] then id = { now, 0 } else id = { st.last[1], st.last[2] + 1 } end
    elseif seq_auto then
      if explicit[1] == st.last[1] then id = { explicit[1], st.last[2] + 1 }
      else id = { explicit[1], 0 } end
    else
      id = explicit
    end
    if not less(st.last, id) then
      return err("ERR The ID specified in XADD is equal or smaller than the target stream top item")
    end
    if not s.db:lookup(argv[2]) then s.db:put(argv[2], st) end
    local fields = {}
    for k = i + 1, #argv do fields[#fields + 1] = argv[k] end
    st.list[#st.list + 1] = id
    st.fields[idtext(id)] = fields
    node_put(s, st, idtext(id), fields)
    st.last = id
    st.ever = (st.ever or 0) + 1
    if #st.list == 1 then st.first = id end
    E.notify(s, "t", "xadd", argv[2])
    if (o.maxlen or o.minid) and trim(st, o) > 0 then
      E.notify(s, "t", "xtrim", argv[2])
    end
    s.db:touch(argv[2])
    return idtext(id)
  end }

  -- COPY of a stream: entries and groups duplicated.
  E.copy_other = function(obj)
    if obj.type ~= "stream" then return obj end
    local c = new_stream()
    c.last, c.ever, c.first, c.maxdel = obj.last, obj.ever, obj.first, obj.maxdel
    for i, id in ipairs(obj.list) do c.list[i] = id end
    for t, f in pairs(obj.fields) do c.fields[t] = f end
    local node_copy = {}
    for i, n in ipairs(obj.nodes) do
      node_copy[n] = { live = n.live, count = n.count, bytes = n.bytes }
      c.nodes[i] = node_copy[n]
    end
    for t, n in pairs(obj.node_of) do c.node_of[t] = node_copy[n] end
    for name, g in pairs(obj.groups) do
      local ng = { last = g.last, read = g.read, pel = {}, consumers = {} }
      for t, p in pairs(g.pel) do
        ng.pel[t] = { consumer = p.consumer, delivered = p.delivered, count = p.count, id = p.id }
      end
      for cn, cons in pairs(g.consumers) do
        local nc = { pending = {}, seen = cons.seen }
        for t in pairs(cons.pending) do nc.pending[t] = true end
        ng.consumers[cn] = nc
      end
      c.groups[name] = ng
    end
    return c
  end

  def{ "xlen", 2, function(s, argv)
    local st, e = typed(s, argv[2])
    if st == false then return e end
    return st and #st.list or 0
  end }

  -- A range bound: "(" makes it exclusive.
  local function bound(text, missing_seq)
    local excl = text:sub(1, 1) == "("
    if excl then text = text:sub(2) end
    local id = parse_id(text, missing_seq, excl)
    if not id then return nil end
    if excl then
      if missing_seq == 0 then
        if id[2] == math.maxinteger then id = { id[1] + 1, 0 } else id = { id[1], id[2] + 1 } end
      else
        if id[2] == 0 then id = { id[1] - 1, math.maxinteger } else id = { id[1], id[2] - 1 } end
      end
    end
    return id
  end

  local function range(s, argv, rev)
    local a, b = argv[3], argv[4]
    if rev then a, b = b, a end
    local lo, hi = bound(a, 0), bound(b, math.maxinteger)
    if not lo or not hi then return INVALID_ID end
    local count
    if argv[5] then
      if lower(argv[5]) ~= "count" or not argv[6] or argv[7] then return util.SYNTAX end
      count = util.int(argv[6])
      if not count then return util.NOT_INTEGER end
      if count < 0 then count = 0 end
    end
    local st, e = typed(s, argv[2])
    if st == false then return e end
    if not st or count == 0 then return {} end
    local out = {}
    local from, to, step = 1, #st.list, 1
    if rev then from, to, step = #st.list, 1, -1 end
    for k = from, to, step do
      local id = st.list[k]
      if not less(id, lo) and not less(hi, id) then
        out[#out + 1] = entry(st, id)
        if count and #out >= count then break end
      end
    end
    return out
  end
  def{ "xrange", -4, function(s, argv) return range(s, argv, false) end }
  def{ "xrevrange", -4, function(s, argv) return range(s, argv, true) end }

  -- The key is looked up before the IDs are parsed, as Redis does: a
  -- missing key answers 0 whatever the IDs.
  def{ "xdel", -3, function(s, argv)
    local st, e = typed(s, argv[2])
    if st == false then return e end
    if not st then return 0 end
    local ids = {}
    for i = 3, #argv do
      local id = parse_id(argv[i], 0, true)
      if not id then return INVALID_ID end
      ids[#ids + 1] = id
    end
    local n = 0
    for _, id in ipairs(ids) do
      local t = idtext(id)
      if st.fields[t] then
        st.fields[t] = nil
        node_drop(st, t)
        for k, x in ipairs(st.list) do
          if x[1] == id[1] and x[2] == id[2] then table.remove(st.list, k); break end
        end
        -- The highest deleted id: XINFO's max-deleted-entry-id, and what
        -- makes a group's entries-read unknowable (see lag below).
        if less(st.maxdel, id) then st.maxdel = id end
        n = n + 1
      end
    end
    if n > 0 then
      refirst(st)
      s.db:touch(argv[2])
      E.notify(s, "t", "xdel", argv[2])
    end
    return n
  end }

  def{ "xtrim", -4, function(s, argv)
    local o, e0 = add_trim_args(s, argv, false)
    if not o then return e0 end
    local st, e = typed(s, argv[2])
    if st == false then return e end
    if not st then return 0 end
    local n = trim(st, o)
    if n > 0 then
      s.db:touch(argv[2])
      E.notify(s, "t", "xtrim", argv[2])
    end
    return n
  end }

  ------------------------------------------------------------- groups
  -- A group's entries-read (g.read, nil when unknown: Redis's -1) and lag
  -- follow Redis 7.0's bookkeeping: st.ever counts entries ever added,
  -- st.maxdel is the highest id XDEL removed, st.first the first entry's.
  local function is_zero(id) return id[1] == 0 and id[2] == 0 end
  local function same(a, b) return a[1] == b[1] and a[2] == b[2] end

  -- Whether a deleted entry may lie at or after start (up to the end).
  local function tombstones_from(st, start)
    if #st.list == 0 or is_zero(st.maxdel) then return false end
    if less(st.maxdel, st.first) then return false end
    return not less(st.maxdel, start)
  end

  -- How many entries were added up to id, when that can be known; nil
  -- otherwise (an id inside a stream with deletions, or in the future).
  local function entries_upto(st, id)
    local added = st.ever or 0
    if added == 0 then return 0 end
    if #st.list == 0 and not less(st.last, id) then return added end
    if same(id, st.last) then return added end
    if less(st.last, id) then return nil end
    if is_zero(st.maxdel) or less(st.maxdel, st.first) then
      if less(id, st.first) then return added - #st.list end
      if same(id, st.first) then return added - #st.list + 1 end
    end
    return nil
  end

  local function group_lag(st, g)
    local added = st.ever or 0
    if added == 0 then return 0 end
    if g.read and not tombstones_from(st, g.last) then return added - g.read end
    local n = entries_upto(st, g.last)
    if n then return added - n end
    return reply.null
  end

  -- The group moves past id (delivered by XREADGROUP ">").
  local function advance_group(st, g, id)
    if not less(g.last, id) then return end
    if g.read and not tombstones_from(st, id) then
      g.read = g.read + 1
    elseif (st.ever or 0) > 0 then
      g.read = entries_upto(st, id)
    end
    g.last = id
  end

  -- The consumer called name, its seen-time refreshed; created (with the
  -- xgroup-createconsumer event) when missing.
  local function consumer_for(s, key, g, name)
    local now = s.engine.clock()
    local c = g.consumers[name]
    if c then
      c.seen = now
      return c
    end
    c = { pending = {}, seen = now }
    g.consumers[name] = c
    E.notify(s, "t", "xgroup-createconsumer", key)
    return c
  end

  -- Drops a pending entry from the group and its consumer.
  local function unpend(g, t)
    local p = g.pel[t]
    if not p then return end
    g.pel[t] = nil
    local c = p.consumer and g.consumers[p.consumer]
    if c then c.pending[t] = nil end
  end

  local function subcommand_error(argv)
    return err("ERR unknown subcommand or wrong number of arguments for '"
      .. argv[2]:sub(1, 128) .. "'. Try " .. argv[1]:upper() .. " HELP.")
  end

  local NO_KEY = err("ERR The XGROUP subcommand requires the key to exist. Note "
    .. "that for CREATE you may want to use the MKSTREAM option to create an "
    .. "empty stream automatically.")

  def{ "xgroup", -2, nil, container = true }

  -- Redis's addReplyHelp: a header naming the command as typed, the
  -- lines, the HELP footer, all status replies.
  local function help(argv, lines)
    local out = { reply.status(argv[1]:upper()
      .. " <subcommand> [<arg> [value] [opt] ...]. Subcommands are:") }
    for _, l in ipairs(lines) do out[#out + 1] = reply.status(l) end
    out[#out + 1] = reply.status("HELP")
    out[#out + 1] = reply.status("    Prints this help.")
    return out
  end

  def{ "xgroup|help", 2, function(_, argv)
    return help(argv, {
      "CREATE <key> <groupname> <id|$> [option]",
      "    Create a new consumer group. Options are:",
      "    * MKSTREAM",
      "      Create the empty stream if it does not exist.",
      "    * ENTRIESREAD entries_read",
      "      Set the group's entries_read counter (internal use).",
      "CREATECONSUMER <key> <groupname> <consumer>",
      "    Create a new consumer in the specified group.",
      "DELCONSUMER <key> <groupname> <consumer>",
      "    Remove the specified consumer.",
      "DESTROY <key> <groupname>",
      "    Remove the specified group.",
      "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
      "    Set the current group ID and entries_read counter.",
    })
  end }

  -- Marks key ready for its blocked clients (store.lua's Db:touch without
  -- the WATCH side).
  local function signal_ready(db, key)
    local st = db.store
    local waiting = st.waiting[db.index]
    if not (waiting and waiting[key]) then return end
    local id = db.index .. ":" .. key
    if st.ready_set[id] then return end
    st.ready_set[id] = true
    st.ready_n = st.ready_n + 1
    st.ready[st.ready_n] = { dbi = db.index, key = key }
  end

  -- The checks every XGROUP subcommand shares, in Redis's order: options
  -- (CREATE, SETID), the key's type, the key, the group. Returns the
  -- stream (nil with MKSTREAM and no key), the group, the options; or
  -- nil, the error.
  local function xgroup_common(s, argv, needs_group)
    local sub = lower(argv[2])
    local o = {}
    local i = 6
    while i <= #argv do
      local opt = lower(argv[i])
      if sub == "create" and opt == "mkstream" then
        o.mkstream = true
        i = i + 1
      elseif (sub == "create" or sub == "setid") and opt == "entriesread" and argv[i + 1] then
        local n = util.int(argv[i + 1])
        if not n then return nil, util.NOT_INTEGER end
        if n < 0 and n ~= -1 then
          return nil, err("ERR value for ENTRIESREAD must be positive or -1")
        end
        if n >= 0 then o.read = n end
        i = i + 2
      else
        return nil, subcommand_error(argv)
      end
    end
    local st = s.db:lookup(argv[3])
    if st and st.type ~= "stream" then return nil, util.WRONGTYPE end
    local g = st and st.groups[argv[4]]
    if not o.mkstream then
      if not st then return nil, NO_KEY end
      if not g and needs_group then
        return nil, err("NOGROUP No such consumer group '" .. argv[4]
          .. "' for key name '" .. argv[3] .. "'")
      end
    end
    return st, g, o
  end

  def{ "xgroup|create", -5, function(s, argv)
    local st, g, o = xgroup_common(s, argv, false)
    if o == nil then return g end
    if #argv > 8 then return subcommand_error(argv) end
    local last
    if argv[5] == "$" then last = st and st.last or { 0, 0 } else
      last = parse_id(argv[5], 0, true)
      if not last then return INVALID_ID end
    end
    if not st then
      st = new_stream()
      s.db:put(argv[3], st)
      s.db:touch(argv[3])
    end
    if g then return err("BUSYGROUP Consumer Group name already exists") end
    st.groups[argv[4]] = { last = last, read = o.read, pel = {}, consumers = {} }
    E.notify(s, "t", "xgroup-create", argv[3])
    return ok
  end }

  def{ "xgroup|createconsumer", 5, function(s, argv)
    local _, g, o = xgroup_common(s, argv, true)
    if o == nil then return g end
    if g.consumers[argv[5]] then return 0 end
    g.consumers[argv[5]] = { pending = {}, seen = s.engine.clock() }
    E.notify(s, "t", "xgroup-createconsumer", argv[3])
    return 1
  end }

  def{ "xgroup|delconsumer", 5, function(s, argv)
    local _, g, o = xgroup_common(s, argv, true)
    if o == nil then return g end
    local c = g.consumers[argv[5]]
    if not c then return 0 end
    local n = 0
    for t in pairs(c.pending) do g.pel[t] = nil; n = n + 1 end
    g.consumers[argv[5]] = nil
    E.notify(s, "t", "xgroup-delconsumer", argv[3])
    return n
  end }

  def{ "xgroup|destroy", 4, function(s, argv)
    local st, g, o = xgroup_common(s, argv, false)
    if o == nil then return g end
    if not g then return 0 end
    st.groups[argv[4]] = nil
    E.notify(s, "t", "xgroup-destroy", argv[3])
    -- Readers blocked on the group wake up to a NOGROUP error (Redis
    -- signals the key ready without touching WATCHers).
    signal_ready(s.db, argv[3])
    return 1
  end }

  def{ "xgroup|setid", -5, function(s, argv)
    local st, g, o = xgroup_common(s, argv, true)
    if o == nil then return g end
    if #argv ~= 5 and #argv ~= 7 then return subcommand_error(argv) end
    local id
    if argv[5] == "$" then id = st.last else
      id = parse_id(argv[5], 0, false)
      if not id then return INVALID_ID end
    end
    g.last = id
    g.read = o.read
    E.notify(s, "t", "xgroup-setid", argv[3])
    return ok
  end }

  -- XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]
  def{ "xsetid", -3, function(s, argv)
    local id = parse_id(argv[3], 0, true)
    if not id then return INVALID_ID end
    local added, maxdel
    local i = 4
    while i <= #argv do
      local opt = lower(argv[i])
      local more = i < #argv
      if opt == "entriesadded" and more then
        added = util.int(argv[i + 1])
        if not added then return util.NOT_INTEGER end
        if added < 0 then return err("ERR entries_added must be positive") end
      elseif opt == "maxdeletedid" and more then
        maxdel = parse_id(argv[i + 1], 0, true)
        if not maxdel then return INVALID_ID end
        if less(id, maxdel) then
          return err("ERR The ID specified in XSETID is smaller than the provided "
            .. "max_deleted_entry_id")
        end
      else
        return util.SYNTAX
      end
      i = i + 2
    end
    local st, e = typed(s, argv[2])
    if st == false then return e end
    if not st then return util.NO_SUCH_KEY end
    local n = #st.list
    if n > 0 then
      if less(id, st.list[n]) then
        return err("ERR The ID specified in XSETID is smaller than the target stream top item")
      end
      if added and n > added then
        return err("ERR The entries_added specified in XSETID is smaller than the "
          .. "target stream length")
      end
    end
    st.last = id
    if added then st.ever = added end
    if maxdel and not is_zero(maxdel) then st.maxdel = maxdel end
    E.notify(s, "t", "xsetid", argv[2])
    return ok
  end }

  -- Entries of st after id (exclusive), at most count.
  local function after(st, id, count)
    local out = {}
    for _, x in ipairs(st.list) do
      if less(id, x) then
        out[#out + 1] = x
        if count and #out >= count then break end
      end
    end
    return out
  end

  local function streams_reply(s, pairs_list)
    if s.proto == 3 then
      local flat = {}
      for _, p in ipairs(pairs_list) do flat[#flat + 1] = p[1]; flat[#flat + 1] = p[2] end
      return reply.map(flat)
    end
    return pairs_list
  end

  -- XREAD / XREADGROUP option parsing: count, block ms, noack, keys, ids.
  local function read_args(argv, first, group)
    local count, block, noack
    local i = first
    while i <= #argv do
      local opt = lower(argv[i])
      if opt == "count" and argv[i + 1] then
        count = util.int(argv[i + 1])
        if not count then return nil, util.NOT_INTEGER end
        if count <= 0 then count = nil end
        i = i + 2
      elseif opt == "block" and argv[i + 1] then
        block = util.int(argv[i + 1])
        if not block then return nil, err("ERR timeout is not an integer or out of range") end
        if block < 0 then return nil, err("ERR timeout is negative") end
        i = i + 2
      elseif opt == "noack" and group then
        noack = true
        i = i + 1
      elseif opt == "streams" then
        i = i + 1
        break
      else
        return nil, util.SYNTAX
      end
    end
    local rest = #argv - i + 1
    if rest <= 0 or rest % 2 ~= 0 then
      return nil, err("ERR Unbalanced '" .. (group and "xreadgroup" or "xread")
        .. "' list of streams: for each stream key an ID or '$' must be specified.")
    end
    local n = rest // 2
    local keys, ids = {}, {}
    for k = 0, n - 1 do
      keys[#keys + 1] = argv[i + k]
      ids[#ids + 1] = argv[i + n + k]
    end
    return { count = count, block = block, noack = noack, keys = keys, ids = ids }
  end

  def{ "xread", -4, function(s, argv)
    local a, e = read_args(argv, 2, false)
    if not a then return e end
    local from = {}
    for k, key in ipairs(a.keys) do
      local st, e2 = typed(s, key)
      if st == false then return e2 end
      if a.ids[k] == "$" then
        from[k] = st and st.last or { 0, 0 }
      elseif a.ids[k] == ">" then
        return err("ERR The > ID can be specified only when calling XREADGROUP "
          .. "using the GROUP <group> <consumer> option.")
      else
        from[k] = parse_id(a.ids[k], 0, true)
        if not from[k] then return INVALID_ID end
      end
    end
    local function try(sess)
      local out = {}
      for k, key in ipairs(a.keys) do
        local st = typed(sess, key)
        if st then
          local list = after(st, from[k], a.count)
          if #list > 0 then
            local entries = {}
            for _, id in ipairs(list) do entries[#entries + 1] = entry(st, id) end
            out[#out + 1] = { key, entries }
          end
        end
      end
      if #out == 0 then return nil end
      return streams_reply(sess, out)
    end
    local r = try(s)
    if r then return r end
    if not a.block or s.deny_blocking then return reply.null_array end
    local deadline = a.block > 0 and s.engine.clock() + a.block or 0
    return E.block(a.keys, deadline, try)
  end }

  -- Hands the entries of list to consumer c (name cname) of group g:
  -- the group moves past them, and each is pending for c (delivered now,
  -- once) unless noack.
  local function deliver(s, st, g, cname, c, list, noack)
    local now = s.engine.clock()
    local entries = {}
    for _, id in ipairs(list) do
      local t = idtext(id)
      advance_group(st, g, id)
      if not noack then
        unpend(g, t)
        g.pel[t] = { consumer = cname, delivered = now, count = 1, id = id }
        c.pending[t] = true
      end
      entries[#entries + 1] = entry(st, id)
    end
    return entries
  end

  -- A blocked XREADGROUP without COUNT is served at most this many.
  local BLOCKED_COUNT = 1000

  def{ "xreadgroup", -7, function(s, argv)
    if lower(argv[2]) ~= "group" then return util.SYNTAX end
    local gname, cname = argv[3], argv[4]
    local a, e = read_args(argv, 5, true)
    if not a then return e end
    for k, key in ipairs(a.keys) do
      local st = s.db:lookup(key)
      if st and st.type ~= "stream" then return util.WRONGTYPE end
      if not st or not st.groups[gname] then
        return err("NOGROUP No such key '" .. key .. "' or consumer group '"
          .. gname .. "' in XREADGROUP with GROUP option")
      end
      if a.ids[k] == "$" then
        return err("ERR The $ ID is meaningless in the context of XREADGROUP: you "
          .. "want to read the history of this consumer by specifying a proper ID, "
          .. "or use the > ID to get new messages. The $ ID would just return an "
          .. "empty result set.")
      end
      if a.ids[k] ~= ">" and not parse_id(a.ids[k], 0, true) then return INVALID_ID end
    end
    local function try(sess)
      local out = {}
      for k, key in ipairs(a.keys) do
        local st = typed(sess, key)
        local g = st and st.groups[gname]
        if g then
          if a.ids[k] == ">" then
            local list = after(st, g.last, a.count)
            if #list > 0 then
              local c = consumer_for(sess, key, g, cname)
              out[#out + 1] = { key, deliver(sess, st, g, cname, c, list, a.noack) }
            end
          else
            -- This consumer's history: its pending entries after the id.
            local c = consumer_for(sess, key, g, cname)
            local from = parse_id(a.ids[k], 0, true)
            local ids = {}
            for t in pairs(c.pending) do
              local p = g.pel[t]
              if less(from, p.id) then ids[#ids + 1] = p.id end
            end
            table.sort(ids, less)
            local entries = {}
            for _, id in ipairs(ids) do
              if a.count and #entries >= a.count then break end
              local f = st.fields[idtext(id)]
              if f then entries[#entries + 1] = entry(st, id)
              else entries[#entries + 1] = { idtext(id), reply.null_array } end
            end
            out[#out + 1] = { key, entries }
          end
        end
      end
      if #out == 0 then return nil end
      return streams_reply(sess, out)
    end
    local r = try(s)
    if r then return r end
    if not a.block or s.deny_blocking then return reply.null_array end
    local deadline = a.block > 0 and s.engine.clock() + a.block or 0
    -- Woken on a key (Redis serves one key per wake-up): the key gone or
    -- no longer a stream, or the group gone, end the wait with an error.
    return E.block(a.keys, deadline, function(sess)
      local key = sess.ready_key
      local st = sess.db:lookup(key)
      if not st or st.type ~= "stream" then
        return err("UNBLOCKED the stream key no longer exists")
      end
      local g = st.groups[gname]
      if not g then
        return err("NOGROUP the consumer group this client was blocked on no longer exists")
      end
      if not less(g.last, st.last) then return nil end
      local c = consumer_for(sess, key, g, cname)
      local list = after(st, g.last, a.count or BLOCKED_COUNT)
      return streams_reply(sess, { { key, deliver(sess, st, g, cname, c, list, a.noack) } })
    end)
  end }

  -- A key with no such group acknowledges nothing; the IDs are parsed
  -- after that check, as Redis does.
  def{ "xack", -4, function(s, argv)
    local st = s.db:lookup(argv[2])
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    local g = st and st.groups[argv[3]]
    if not g then return 0 end
    local ids = {}
    for i = 4, #argv do
      local id = parse_id(argv[i], 0, true)
      if not id then return INVALID_ID end
      ids[#ids + 1] = id
    end
    local n = 0
    for _, id in ipairs(ids) do
      local t = idtext(id)
      if g.pel[t] then
        unpend(g, t)
        n = n + 1
      end
    end
    return n
  end }

  local function nogroup(key, g)
    return err("NOGROUP No such key '" .. key .. "' or consumer group '" .. g .. "'")
  end

  -- An interval bound as XPENDING and XAUTOCLAIM take it: "(" excludes
  -- (then "-" and "+" are refused). Returns id, excluded; nil if invalid.
  local function interval(text, missing_seq)
    if #text > 1 and text:sub(1, 1) == "(" then
      local id = parse_id(text:sub(2), missing_seq, true)
      if not id then return nil end
      return id, true
    end
    return parse_id(text, missing_seq, false), false
  end

  local function incr(id)
    if id[2] == MAXID[2] then
      if id[1] == MAXID[1] then return nil end
      return { id[1] + 1, 0 }
    end
    return { id[1], id[2] + 1 }
  end

  local function decr(id)
    if id[2] == 0 then
      if id[1] == 0 then return nil end
      return { id[1] - 1, MAXID[2] }
    end
    return { id[1], id[2] - 1 }
  end

  local function pel_list(g, filter)
    local list = {}
    if filter then
      for t in pairs(filter.pending) do list[#list + 1] = g.pel[t] end
    else
      for _, p in pairs(g.pel) do list[#list + 1] = p end
    end
    table.sort(list, function(a, b) return less(a.id, b.id) end)
    return list
  end

  local function count_of(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n
  end

  -- XPENDING key group [[IDLE ms] start end count [consumer]]
  def{ "xpending", -3, function(s, argv)
    local n = #argv
    if n ~= 3 and (n < 6 or n > 9) then return util.SYNTAX end
    local lo, hi, count, who, min_idle = nil, nil, 0, nil, 0
    if n >= 6 then
      local i = 4
      if lower(argv[4]) == "idle" then
        min_idle = util.int(argv[5])
        if not min_idle then return util.NOT_INTEGER end
        if n < 8 then return util.SYNTAX end
        i = 6
      end
      count = util.int(argv[i + 2])
      if not count then return util.NOT_INTEGER end
      if count < 0 then count = 0 end
      local excl
      lo, excl = interval(argv[i], 0)
      if not lo then return INVALID_ID end
      if excl then
        lo = incr(lo)
        if not lo then return err("ERR invalid start ID for the interval") end
      end
      hi, excl = interval(argv[i + 1], MAXID[2])
      if not hi then return INVALID_ID end
      if excl then
        hi = decr(hi)
        if not hi then return err("ERR invalid end ID for the interval") end
      end
      who = argv[i + 3]
    end
    local st = s.db:lookup(argv[2])
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    local g = st and st.groups[argv[3]]
    if not g then return nogroup(argv[2], argv[3]) end
    if n == 3 then
      local ids = pel_list(g)
      if #ids == 0 then return { 0, reply.null, reply.null, reply.null_array } end
      local names = {}
      for name, c in pairs(g.consumers) do
        if next(c.pending) then names[#names + 1] = name end
      end
      table.sort(names)
      local list = {}
      for _, name in ipairs(names) do
        list[#list + 1] = { name, tostring(count_of(g.consumers[name].pending)) }
      end
      return { #ids, idtext(ids[1].id), idtext(ids[#ids].id), list }
    end
    local filter
    if who then
      filter = g.consumers[who]
      if not filter then return {} end
    end
    local now = s.engine.clock()
    local out = {}
    for _, p in ipairs(pel_list(g, filter)) do
      if count == 0 or less(hi, p.id) then break end
      if not less(p.id, lo) then
        local idle = now - p.delivered
        if min_idle == 0 or idle >= min_idle then
          count = count - 1
          out[#out + 1] = { idtext(p.id), p.consumer, idle < 0 and 0 or idle, p.count }
        end
      end
    end
    return out
  end }

  -- Takes pending entry p (id text t) over for consumer c (name cname):
  -- delivered at `delivered`, its count set to retry or, unless justid,
  -- one up. Returns its reply item.
  local function claim(st, g, t, p, cname, c, delivered, retry, justid)
    if p.consumer ~= cname then
      local old = p.consumer and g.consumers[p.consumer]
      if old then old.pending[t] = nil end
    end
    p.delivered = delivered
    if retry and retry >= 0 then
      p.count = retry
    elseif not justid then
      p.count = p.count + 1
    end
    p.consumer = cname
    c.pending[t] = true
    if justid then return t end
    return entry(st, p.id)
  end

  -- XCLAIM key group consumer min-idle-time id... [IDLE ms] [TIME ms]
  -- [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]. The first argument that
  -- is not an ID starts the options. An ID whose entry was deleted leaves
  -- the PEL and is not answered. No keyspace event of its own (Redis
  -- emits none), only xgroup-createconsumer for a new consumer.
  def{ "xclaim", -6, function(s, argv)
    local key, cname = argv[2], argv[4]
    local st = s.db:lookup(key)
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    local g = st and st.groups[argv[3]]
    if not g then return nogroup(key, argv[3]) end
    local min_idle = util.int(argv[5])
    if not min_idle then return err("ERR Invalid min-idle-time argument for XCLAIM") end
    if min_idle < 0 then min_idle = 0 end
    local ids = {}
    local j = 6
    while j <= #argv do
      local id = parse_id(argv[j], 0, true)
      if not id then break end
      ids[#ids + 1] = id
      j = j + 1
    end
    local now = s.engine.clock()
    local delivered, retry, force, justid, lastid
    while j <= #argv do
      local opt = lower(argv[j])
      local more = j < #argv
      if opt == "force" then
        force = true
      elseif opt == "justid" then
        justid = true
      elseif (opt == "idle" or opt == "time" or opt == "retrycount") and more then
        j = j + 1
        local v = util.int(argv[j])
        if not v then
          return err("ERR Invalid " .. opt:upper() .. " option argument for XCLAIM")
        end
        if opt == "idle" then delivered = now - v
        elseif opt == "time" then delivered = v
        else retry = v end
      elseif opt == "lastid" and more then
        j = j + 1
        lastid = parse_id(argv[j], 0, true)
        if not lastid then return INVALID_ID end
      else
        return err("ERR Unrecognized XCLAIM option '" .. argv[j] .. "'")
      end
      j = j + 1
    end
    -- LASTID moves the group on (entries-read is left as it is).
    if lastid and less(g.last, lastid) then g.last = lastid end
    -- A delivery time in the future or before 1970 means now.
    if not delivered or delivered < 0 or delivered > now then delivered = now end
    local out = {}
    local c
    for _, id in ipairs(ids) do
      local t = idtext(id)
      local p = g.pel[t]
      if not st.fields[t] then
        unpend(g, t)
      else
        if force and not p then
          p = { delivered = now, count = 1, id = id }
          g.pel[t] = p
        end
        -- A FORCE-made entry has no owner yet: claimed whatever its idle.
        if p and not (p.consumer and min_idle > 0 and now - p.delivered < min_idle) then
          c = c or consumer_for(s, key, g, cname)
          out[#out + 1] = claim(st, g, t, p, cname, c, delivered, retry, justid)
        end
      end
    end
    return out
  end }

  -- Redis caps COUNT so that COUNT * 16 bytes stays within a long.
  local AUTOCLAIM_MAX_COUNT = math.maxinteger // 16

  -- XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]
  -- -> { next cursor, claimed, deleted IDs }. It looks at most COUNT * 10
  -- pending entries; entries found deleted leave the PEL and count
  -- towards COUNT.
  def{ "xautoclaim", -6, function(s, argv)
    local key, cname = argv[2], argv[4]
    local min_idle = util.int(argv[5])
    if not min_idle then return err("ERR Invalid min-idle-time argument for XAUTOCLAIM") end
    if min_idle < 0 then min_idle = 0 end
    local start, excl = interval(argv[6], 0)
    if not start then return INVALID_ID end
    if excl then
      start = incr(start)
      if not start then return err("ERR invalid start ID for the interval") end
    end
    local count, justid = 100, false
    local j = 7
    while j <= #argv do
      local opt = lower(argv[j])
      if opt == "count" and j < #argv then
        local v = util.int(argv[j + 1])
        if not v or v < 1 or v > AUTOCLAIM_MAX_COUNT then
          return err("ERR COUNT must be > 0")
        end
        count = v
        j = j + 1
      elseif opt == "justid" then
        justid = true
      else
        return util.SYNTAX
      end
      j = j + 1
    end
    local st = s.db:lookup(key)
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    local g = st and st.groups[argv[3]]
    if not g then return nogroup(key, argv[3]) end
    local pending = {}
    for _, p in pairs(g.pel) do
      if not less(p.id, start) then pending[#pending + 1] = p end
    end
    table.sort(pending, function(a, b) return less(a.id, b.id) end)
    local now = s.engine.clock()
    local attempts = count * 10
    local claimed, deleted = {}, {}
    local c
    local k = 1
    while attempts > 0 and count > 0 and pending[k] do
      attempts = attempts - 1
      local p = pending[k]
      local t = idtext(p.id)
      k = k + 1
      if not st.fields[t] then
        unpend(g, t)
        deleted[#deleted + 1] = t
        count = count - 1
      elseif min_idle == 0 or now - p.delivered >= min_idle then
        c = c or consumer_for(s, key, g, cname)
        claimed[#claimed + 1] = claim(st, g, t, p, cname, c, now, nil, justid)
        count = count - 1
      end
    end
    local cursor = pending[k] and idtext(pending[k].id) or "0-0"
    return { cursor, claimed, deleted }
  end }

  -- XINFO STREAM key [FULL [COUNT n]], XINFO GROUPS key, XINFO CONSUMERS
  -- key group: Redis 7.0's fields; the radix-tree figures are estimates.
  def{ "xinfo", -2, nil, container = true }

  def{ "xinfo|help", 2, function(_, argv)
    return help(argv, {
      "CONSUMERS <key> <groupname>",
      "    Show consumers of <groupname>.",
      "GROUPS <key>",
      "    Show the stream consumer groups.",
      "STREAM <key> [FULL [COUNT <count>]",
      "    Show information about the stream.",
    })
  end }

  local function stream_arg(s, key)
    local st = s.db:lookup(key)
    if not st then return nil, err("ERR no such key") end
    if st.type ~= "stream" then return nil, util.WRONGTYPE end
    return st
  end

  local function sorted_keys(t)
    local names = {}
    for name in pairs(t) do names[#names + 1] = name end
    table.sort(names)
    return names
  end

  def{ "xinfo|stream", -3, function(s, argv)
    local st, e = stream_arg(s, argv[3])
    if not st then return e end
    local full, count = false, 10
    local optc = #argv - 3
    if optc > 0 then
      if (optc ~= 1 and optc ~= 3) or lower(argv[4]) ~= "full" then
        return subcommand_error(argv)
      end
      full = true
      if optc == 3 then
        if lower(argv[5]) ~= "count" then return subcommand_error(argv) end
        count = util.int(argv[6])
        if not count then return util.NOT_INTEGER end
        if count < 0 then count = 10 end
      end
    end
    local n = #st.list
    -- The nodes as the mock groups them (see node_put); the radix tree's
    -- inner node count is made up.
    local keys = #st.nodes
    local head = {
      "length", n,
      "radix-tree-keys", keys,
      "radix-tree-nodes", keys + 1,
      "last-generated-id", idtext(st.last),
      "max-deleted-entry-id", idtext(st.maxdel),
      "entries-added", st.ever or 0,
      "recorded-first-entry-id", idtext(st.first),
    }
    if not full then
      head[#head + 1] = "groups"
      head[#head + 1] = count_of(st.groups)
      head[#head + 1] = "first-entry"
      head[#head + 1] = n > 0 and entry(st, st.list[1]) or reply.null
      head[#head + 1] = "last-entry"
      head[#head + 1] = n > 0 and entry(st, st.list[n]) or reply.null
      return reply.map(head)
    end
    local entries = {}
    for k, id in ipairs(st.list) do
      if count > 0 and k > count then break end
      entries[#entries + 1] = entry(st, id)
    end
    head[#head + 1] = "entries"
    head[#head + 1] = entries
    local groups = {}
    for _, name in ipairs(sorted_keys(st.groups)) do
      local g = st.groups[name]
      local pel = {}
      for _, p in ipairs(pel_list(g)) do
        if count > 0 and #pel >= count then break end
        pel[#pel + 1] = { idtext(p.id), p.consumer, p.delivered, p.count }
      end
      local consumers = {}
      for _, cname in ipairs(sorted_keys(g.consumers)) do
        local c = g.consumers[cname]
        local cp = {}
        for _, p in ipairs(pel_list(g, c)) do
          if count > 0 and #cp >= count then break end
          cp[#cp + 1] = { idtext(p.id), p.delivered, p.count }
        end
        consumers[#consumers + 1] = reply.map{ "name", cname, "seen-time", c.seen,
          "pel-count", count_of(c.pending), "pending", cp }
      end
      groups[#groups + 1] = reply.map{ "name", name, "last-delivered-id", idtext(g.last),
        "entries-read", g.read or reply.null, "lag", group_lag(st, g),
        "pel-count", count_of(g.pel), "pending", pel, "consumers", consumers }
    end
    head[#head + 1] = "groups"
    head[#head + 1] = groups
    return reply.map(head)
  end }

  def{ "xinfo|groups", 3, function(s, argv)
    local st, e = stream_arg(s, argv[3])
    if not st then return e end
    local out = {}
    for _, name in ipairs(sorted_keys(st.groups)) do
      local g = st.groups[name]
      out[#out + 1] = reply.map{ "name", name, "consumers", count_of(g.consumers),
        "pending", count_of(g.pel), "last-delivered-id", idtext(g.last),
        "entries-read", g.read or reply.null, "lag", group_lag(st, g) }
    end
    return out
  end }

  def{ "xinfo|consumers", 4, function(s, argv)
    local st, e = stream_arg(s, argv[3])
    if not st then return e end
    local g = st.groups[argv[4]]
    if not g then
      return err("NOGROUP No such consumer group '" .. argv[4] .. "' for key name '"
        .. argv[3] .. "'")
    end
    local now = s.engine.clock()
    local out = {}
    for _, cname in ipairs(sorted_keys(g.consumers)) do
      local c = g.consumers[cname]
      local idle = now - c.seen
      out[#out + 1] = reply.map{ "name", cname, "pending", count_of(c.pending),
        "idle", idle < 0 and 0 or idle }
    end
    return out
  end }
end
