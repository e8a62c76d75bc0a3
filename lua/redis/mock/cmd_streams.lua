-- Streams in the mock, the basics: XADD XLEN XRANGE XREVRANGE XDEL XTRIM
-- XREAD (BLOCK too) XGROUP CREATE|CREATECONSUMER|DELCONSUMER|DESTROY|SETID
-- XREADGROUP (BLOCK too) XACK XPENDING.
--
-- A stream: { type = "stream", list = { id, ... } ascending, fields =
-- { [idtext] = { f, v, ... } }, last = id, groups = { name = group } },
-- an id being { ms, seq } (ms within Lua's signed 64-bit integers).
-- A group: { last = id, pel = { [idtext] = { consumer =, delivered =,
-- count = } }, consumers = { name = { pending = { [idtext] = true },
-- seen = ms } } }. XTRIM's "~" trims exactly (Redis may keep more).
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

  local function idtext(id) return id[1] .. "-" .. id[2] end
  local function less(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end
  local MAXID = { math.maxinteger, math.maxinteger }

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
             groups = {}, group_order = {} }
  end

  local function entry(st, id)
    local t = idtext(id)
    local f = st.fields[t]
    local out = {}
    for i, v in ipairs(f) do out[i] = v end
    return { t, out }
  end

  local function trim(st, maxlen, minid)
    local removed = 0
    while #st.list > 0 do
      local first = st.list[1]
      if (maxlen and #st.list > maxlen) or (minid and less(first, minid)) then
        table.remove(st.list, 1)
        st.fields[idtext(first)] = nil
        removed = removed + 1
      else
        break
      end
    end
    return removed
  end

  -- MAXLEN|MINID [=|~] threshold [LIMIT n] at argv[i]; returns the
  -- options and the next index, or nil and an error.
  local function trim_args(argv, i)
    local o = {}
    local kind = lower(argv[i])
    local j = i + 1
    if argv[j] == "=" or argv[j] == "~" then j = j + 1 end
    local th = argv[j]
    if not th then return nil, util.SYNTAX end
    if kind == "maxlen" then
      local n = util.int(th)
      if not n then return nil, util.NOT_INTEGER end
      if n < 0 then return nil, err("ERR The MAXLEN argument must be >= 0.") end
      o.maxlen = n
    else
      local id = parse_id(th, 0, true)
      if not id then return nil, INVALID_ID end
      o.minid = id
    end
    j = j + 1
    if argv[j] and lower(argv[j]) == "limit" then
      if not util.int(argv[j + 1] or "") then return nil, util.NOT_INTEGER end
      j = j + 2
    end
    return o, j
  end

  def{ "xadd", -5, function(s, argv)
    local nomk, topts = false, nil
    local i = 3
    while i <= #argv do
      local opt = lower(argv[i])
      if opt == "nomkstream" then
        nomk = true
        i = i + 1
      elseif opt == "maxlen" or opt == "minid" then
        local o, j = trim_args(argv, i)
        if not o then return j end
        topts, i = o, j
      else
        break
      end
    end
    local idarg = argv[i]
    if not idarg then return util.arity_error("xadd") end
    local nf = #argv - i
    if nf < 2 or nf % 2 ~= 0 then return util.arity_error("xadd") end
    local explicit, seq_auto
    if idarg ~= "*" then
      local ms, star = idarg:match("^(%d+)%-(%*)$")
      if star then
        explicit = parse_id(ms .. "-0", 0, true)
        seq_auto = true
      else
        explicit = parse_id(idarg, 0, true)
      end
      if not explicit then return INVALID_ID end
      if not seq_auto and explicit[1] == 0 and explicit[2] == 0 then
        return err("ERR The ID specified in XADD must be greater than 0-0")
      end
    end
    local st, e = typed(s, argv[2])
    if st == false then return e end
    if not st then
      if nomk then return reply.null end
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
    st.last = id
    st.ever = (st.ever or 0) + 1
    E.notify(s, "t", "xadd", argv[2])
    if topts and trim(st, topts.maxlen, topts.minid) > 0 then
      E.notify(s, "t", "xtrim", argv[2])
    end
    s.db:touch(argv[2])
    return idtext(id)
  end }

  -- COPY of a stream: entries and groups duplicated.
  E.copy_other = function(obj)
    if obj.type ~= "stream" then return obj end
    local c = new_stream()
    c.last, c.ever = obj.last, obj.ever
    for i, id in ipairs(obj.list) do c.list[i] = id end
    for t, f in pairs(obj.fields) do c.fields[t] = f end
    for name, g in pairs(obj.groups) do
      local ng = { last = g.last, pel = {}, consumers = {} }
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

  def{ "xdel", -3, function(s, argv)
    local ids = {}
    for i = 3, #argv do
      local id = parse_id(argv[i], 0, true)
      if not id then return INVALID_ID end
      ids[#ids + 1] = id
    end
    local st, e = typed(s, argv[2])
    if st == false then return e end
    if not st then return 0 end
    local n = 0
    for _, id in ipairs(ids) do
      local t = idtext(id)
      if st.fields[t] then
        st.fields[t] = nil
        for k, x in ipairs(st.list) do
          if x[1] == id[1] and x[2] == id[2] then table.remove(st.list, k); break end
        end
        n = n + 1
      end
    end
    if n > 0 then
      s.db:touch(argv[2])
      E.notify(s, "t", "xdel", argv[2])
    end
    return n
  end }

  def{ "xtrim", -4, function(s, argv)
    local kind = lower(argv[3])
    if kind ~= "maxlen" and kind ~= "minid" then return util.SYNTAX end
    local o, j = trim_args(argv, 3)
    if not o then return j end
    if j <= #argv then return util.SYNTAX end
    local st, e = typed(s, argv[2])
    if st == false then return e end
    if not st then return 0 end
    local n = trim(st, o.maxlen, o.minid)
    if n > 0 then
      s.db:touch(argv[2])
      E.notify(s, "t", "xtrim", argv[2])
    end
    return n
  end }

  ------------------------------------------------------------- groups
  local function group_of(s, key, name)
    local st = s.db:lookup(key)
    if not st or st.type ~= "stream" then return nil, st end
    return st.groups[name], st
  end

  local function consumer(g, name, now)
    local c = g.consumers[name]
    if not c then
      c = { pending = {}, seen = now }
      g.consumers[name] = c
      return c, true
    end
    return c, false
  end

  def{ "xgroup", -2, nil, container = true }

  def{ "xgroup|create", -5, function(s, argv)
    local mk = false
    local i = 6
    while i <= #argv do
      local opt = lower(argv[i])
      if opt == "mkstream" then mk = true; i = i + 1
      elseif opt == "entriesread" and argv[i + 1] then i = i + 2
      else return util.SYNTAX end
    end
    local st, e = typed(s, argv[3])
    if st == false then return e end
    if not st then
      if not mk then
        return err("ERR The XGROUP subcommand requires the key to exist. Note "
          .. "that for CREATE you may want to use the MKSTREAM option to "
          .. "create an empty stream automatically.")
      end
      st = new_stream()
      s.db:put(argv[3], st)
    end
    local last
    if argv[5] == "$" then last = st.last else
      last = parse_id(argv[5], 0, true)
      if not last then return INVALID_ID end
    end
    if st.groups[argv[4]] then
      return err("BUSYGROUP Consumer Group name already exists")
    end
    st.groups[argv[4]] = { last = last, pel = {}, consumers = {} }
    E.notify(s, "t", "xgroup-create", argv[3])
    return ok
  end }

  local function nogroup(key, g)
    return err("NOGROUP No such key '" .. key .. "' or consumer group '" .. g .. "'")
  end

  def{ "xgroup|createconsumer", 5, function(s, argv)
    local g, st = group_of(s, argv[3], argv[4])
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    if not g then return nogroup(argv[3], argv[4]) end
    local _, created = consumer(g, argv[5], s.engine.clock())
    if created then E.notify(s, "t", "xgroup-createconsumer", argv[3]) end
    return created and 1 or 0
  end }

  def{ "xgroup|delconsumer", 5, function(s, argv)
    local g, st = group_of(s, argv[3], argv[4])
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    if not g then return nogroup(argv[3], argv[4]) end
    local c = g.consumers[argv[5]]
    if not c then return 0 end
    local n = 0
    for t in pairs(c.pending) do g.pel[t] = nil; n = n + 1 end
    g.consumers[argv[5]] = nil
    E.notify(s, "t", "xgroup-delconsumer", argv[3])
    return n
  end }

  def{ "xgroup|destroy", 4, function(s, argv)
    local g, st = group_of(s, argv[3], argv[4])
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    if not st then
      return err("ERR The XGROUP subcommand requires the key to exist. Note "
        .. "that for CREATE you may want to use the MKSTREAM option to create "
        .. "an empty stream automatically.")
    end
    if not g then return 0 end
    st.groups[argv[4]] = nil
    E.notify(s, "t", "xgroup-destroy", argv[3])
    return 1
  end }

  def{ "xgroup|setid", -5, function(s, argv)
    local g, st = group_of(s, argv[3], argv[4])
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    if not g then return nogroup(argv[3], argv[4]) end
    local id
    if argv[5] == "$" then id = st.last else
      id = parse_id(argv[5], 0, true)
      if not id then return INVALID_ID end
    end
    g.last = id
    E.notify(s, "t", "xgroup-setid", argv[3])
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
      elseif a.ids[k] == "+" then
        from[k] = st and st.list[#st.list] and
          { st.list[#st.list][1], st.list[#st.list][2] - 1 } or { 0, 0 }
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

  local function deliver(s, st, g, cname, c, list, noack, now)
    local entries = {}
    for _, id in ipairs(list) do
      local t = idtext(id)
      if less(g.last, id) then g.last = id end
      if not noack then
        local p = g.pel[t]
        if p then g.consumers[p.consumer].pending[t] = nil end
        g.pel[t] = { consumer = cname, delivered = now, count = 1, id = id }
        c.pending[t] = true
      end
      entries[#entries + 1] = entry(st, id)
    end
    return entries
  end

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
      if a.ids[k] ~= ">" and not parse_id(a.ids[k], 0, true) then return INVALID_ID end
    end
    local function try(sess, retrying)
      local out = {}
      local now = sess.engine.clock()
      for k, key in ipairs(a.keys) do
        local st = typed(sess, key)
        local g = st and st.groups[gname]
        if g then
          local c, created = consumer(g, cname, now)
          if created then E.notify(sess, "t", "xgroup-createconsumer", key) end
          if a.ids[k] == ">" then
            local list = after(st, g.last, a.count)
            if #list > 0 then
              out[#out + 1] = { key, deliver(sess, st, g, cname, c, list, a.noack, now) }
            end
          elseif not retrying then
            -- This consumer's history: its pending entries after the id.
            local from = parse_id(a.ids[k], 0, true)
            local ids = {}
            for t, p in pairs(g.pel) do
              if p.consumer == cname and less(from, p.id) then ids[#ids + 1] = p.id end
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
    return E.block(a.keys, deadline, function(sess) return try(sess, true) end)
  end }

  def{ "xack", -4, function(s, argv)
    local ids = {}
    for i = 4, #argv do
      local id = parse_id(argv[i], 0, true)
      if not id then return INVALID_ID end
      ids[#ids + 1] = id
    end
    local g, st = group_of(s, argv[2], argv[3])
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    if not g then return 0 end
    local n = 0
    for _, id in ipairs(ids) do
      local t = idtext(id)
      local p = g.pel[t]
      if p then
        g.pel[t] = nil
        local c = g.consumers[p.consumer]
        if c then c.pending[t] = nil end
        n = n + 1
      end
    end
    return n
  end }

  def{ "xpending", -3, function(s, argv)
    local g, st = group_of(s, argv[2], argv[3])
    if st and st.type ~= "stream" then return util.WRONGTYPE end
    if not g then return nogroup(argv[2], argv[3]) end
    local ids = {}
    for _, p in pairs(g.pel) do ids[#ids + 1] = p end
    table.sort(ids, function(x, y) return less(x.id, y.id) end)
    if #argv == 3 then
      if #ids == 0 then return { 0, reply.null, reply.null, reply.null_array } end
      local per, names = {}, {}
      for _, p in ipairs(ids) do
        if not per[p.consumer] then names[#names + 1] = p.consumer end
        per[p.consumer] = (per[p.consumer] or 0) + 1
      end
      table.sort(names)
      local list = {}
      for _, n in ipairs(names) do list[#list + 1] = { n, tostring(per[n]) } end
      return { #ids, idtext(ids[1].id), idtext(ids[#ids].id), list }
    end
    local i = 4
    local min_idle = 0
    if argv[i] and lower(argv[i]) == "idle" then
      min_idle = util.int(argv[i + 1] or "")
      if not min_idle then return util.NOT_INTEGER end
      i = i + 2
    end
    if #argv < i + 2 then return util.SYNTAX end
    local lo, hi = bound(argv[i], 0), bound(argv[i + 1], math.maxinteger)
    if not lo or not hi then return INVALID_ID end
    local count = util.int(argv[i + 2])
    if not count then return util.NOT_INTEGER end
    local who = argv[i + 3]
    local now = s.engine.clock()
    local out = {}
    for _, p in ipairs(ids) do
      if #out >= count then break end
      local idle = now - p.delivered
      if not less(p.id, lo) and not less(hi, p.id) and (not who or p.consumer == who)
        and idle >= min_idle then
        out[#out + 1] = { idtext(p.id), p.consumer, idle, p.count }
      end
    end
    return out
  end }

  -- XINFO STREAM key [FULL [COUNT n]], XINFO GROUPS key, XINFO CONSUMERS
  -- key group: Redis 7.0's fields; the radix-tree figures are estimates
  -- and entries-read/lag are not tracked (nil).
  def{ "xinfo", -2, nil, container = true }

  local function stream_arg(s, key)
    local st = s.db:lookup(key)
    if not st then return nil, err("ERR no such key") end
    if st.type ~= "stream" then return nil, util.WRONGTYPE end
    return st
  end

  local function group_names(st)
    local names = {}
    for name in pairs(st.groups) do names[#names + 1] = name end
    table.sort(names)
    return names
  end

  local function pel_list(g, filter)
    local list = {}
    for _, p in pairs(g.pel) do
      if not filter or p.consumer == filter then list[#list + 1] = p end
    end
    table.sort(list, function(a, b) return less(a.id, b.id) end)
    return list
  end

  local function consumer_names(g)
    local names = {}
    for name in pairs(g.consumers) do names[#names + 1] = name end
    table.sort(names)
    return names
  end

  def{ "xinfo|stream", -3, function(s, argv)
    local full, count = false, 10
    local i = 4
    while i <= #argv do
      local opt = lower(argv[i])
      if opt == "full" then full = true; i = i + 1
      elseif opt == "count" and full and argv[i + 1] then
        count = util.int(argv[i + 1])
        if not count then return util.NOT_INTEGER end
        i = i + 2
      else
        return util.SYNTAX
      end
    end
    local st, e = stream_arg(s, argv[3])
    if not st then return e end
    local n = #st.list
    local head = {
      "length", n,
      "radix-tree-keys", n > 0 and 1 or 0,
      "radix-tree-nodes", 2,
      "last-generated-id", idtext(st.last),
      "max-deleted-entry-id", "0-0",
      "entries-added", st.ever or 0,
      "recorded-first-entry-id", n > 0 and idtext(st.list[1]) or "0-0",
    }
    if not full then
      head[#head + 1] = "groups"
      local ng = 0
      for _ in pairs(st.groups) do ng = ng + 1 end
      head[#head + 1] = ng
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
    for _, name in ipairs(group_names(st)) do
      local g = st.groups[name]
      local pel = {}
      for _, p in ipairs(pel_list(g)) do
        pel[#pel + 1] = { idtext(p.id), p.consumer, p.delivered, p.count }
      end
      local consumers = {}
      for _, cname in ipairs(consumer_names(g)) do
        local c = g.consumers[cname]
        local cp = {}
        for _, p in ipairs(pel_list(g, cname)) do
          cp[#cp + 1] = { idtext(p.id), p.delivered, p.count }
        end
        consumers[#consumers + 1] = reply.map{ "name", cname, "seen-time", c.seen,
          "pel-count", #cp, "pending", cp }
      end
      groups[#groups + 1] = reply.map{ "name", name, "last-delivered-id", idtext(g.last),
        "entries-read", reply.null, "lag", reply.null, "pel-count", #pel,
        "pending", pel, "consumers", consumers }
    end
    head[#head + 1] = "groups"
    head[#head + 1] = groups
    return reply.map(head)
  end }

  def{ "xinfo|groups", 3, function(s, argv)
    local st, e = stream_arg(s, argv[3])
    if not st then return e end
    local out = {}
    for _, name in ipairs(group_names(st)) do
      local g = st.groups[name]
      local nc = 0
      for _ in pairs(g.consumers) do nc = nc + 1 end
      out[#out + 1] = reply.map{ "name", name, "consumers", nc,
        "pending", #pel_list(g), "last-delivered-id", idtext(g.last),
        "entries-read", reply.null, "lag", reply.null }
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
    for _, cname in ipairs(consumer_names(g)) do
      local c = g.consumers[cname]
      out[#out + 1] = reply.map{ "name", cname, "pending", #pel_list(g, cname),
        "idle", now - c.seen }
    end
    return out
  end }
end
