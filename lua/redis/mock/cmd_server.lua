-- Connection, server, transaction and pub/sub commands of the mock:
-- PING ECHO AUTH HELLO SELECT RESET CLIENT FLUSHDB FLUSHALL DBSIZE INFO
-- TIME COMMAND MULTI EXEC DISCARD WATCH UNWATCH SUBSCRIBE UNSUBSCRIBE
-- PSUBSCRIBE PUNSUBSCRIBE PUBLISH. Texts are Redis 7.0's.
local reply = require("redis.mock.reply")
local util = require("redis.mock.util")
local store = require("redis.mock.store")

local err, status, ok = reply.error, reply.status, reply.ok
local lower = util.lower

return function(E)
  local def = E.def

  def{ "ping", -1, function(s, argv)
    if #argv > 2 then return util.arity_error("ping") end
    if s:subscriptions() > 0 and s.proto == 2 then
      return { "pong", argv[2] or "" }
    end
    if #argv == 1 then return status("PONG") end
    return argv[2]
  end, flags = {} }

  def{ "echo", 2, function(_, argv) return argv[2] end }

  local WRONGPASS = err("WRONGPASS invalid username-password pair or user is disabled.")

  def{ "auth", -2, function(s, argv)
    if #argv > 3 then return util.SYNTAX end
    local user, pass
    if #argv == 2 then
      if s.engine.password == nil then
        return err("ERR AUTH <password> called without any password "
          .. "configured for the default user. Are you sure your "
          .. "configuration is correct?")
      end
      user, pass = "default", argv[2]
    else
      user, pass = argv[2], argv[3]
    end
    if not s.engine:check_user(user, pass) then return WRONGPASS end
    s.authenticated, s.user = true, user
    return ok
  end, flags = { noauth = true } }

  -- Redis's validateClientName: printable ASCII without spaces.
  local function bad_name(name)
    return name:find("[^\33-\126]") ~= nil
  end
  local BAD_NAME = err("ERR Client names cannot contain spaces, newlines or special characters.")

  local function hello_map(s)
    return reply.map{
      "server", "redis",
      "version", s.engine.version,
      "proto", s.proto,
      "id", s.id,
      "mode", "standalone",
      "role", "master",
      "modules", {},
    }
  end

  def{ "hello", -1, function(s, argv)
    local ver, i = nil, 2
    if #argv >= 2 then
      ver = util.int(argv[2])
      if not ver then
        return err("ERR Protocol version is not an integer or out of range")
      end
      if ver < 2 or ver > 3 then return err("NOPROTO unsupported protocol version") end
      i = 3
    end
    local user, pass, name
    while i <= #argv do
      local opt = lower(argv[i])
      local more = #argv - i
      if opt == "auth" and more >= 2 then
        user, pass = argv[i + 1], argv[i + 2]
        i = i + 3
      elseif opt == "setname" and more >= 1 then
        name = argv[i + 1]
        if bad_name(name) then return BAD_NAME end
        i = i + 2
      else
        return err("ERR Syntax error in HELLO option '" .. argv[i] .. "'")
      end
    end
    if user then
      if not s.engine:check_user(user, pass) then return WRONGPASS end
      s.authenticated, s.user = true, user
    end
    if not s.authenticated then
      return err("NOAUTH HELLO must be called with the client already "
        .. "authenticated, otherwise the HELLO AUTH <user> <pass> option can "
        .. "be used to authenticate the client and select the RESP protocol "
        .. "version at the same time")
    end
    if name then s.name = name ~= "" and name or nil end
    if ver then s.proto = ver end
    return hello_map(s)
  end, flags = { noauth = true } }

  def{ "select", 2, function(s, argv)
    local id = util.int(argv[2])
    if not id then return util.NOT_INTEGER end
    if id < -2147483648 or id > 2147483647 then
      return err("ERR value is out of range, value must between -2147483648 and 2147483647")
    end
    if id < 0 or id >= store.NDBS then return err("ERR DB index is out of range") end
    s:select(id)
    return ok
  end }

  -- RESET: the connection as if new (Redis's clearClientConnectionState).
  def{ "reset", 1, function(s)
    s:discard()
    for _, ch in ipairs(s.channels:items()) do s:unsubscribe(ch) end
    for _, p in ipairs(s.patterns:items()) do s:punsubscribe(p) end
    s:select(0)
    s.proto = 2
    s.name = nil
    s.user = "default"
    s.authenticated = not s.engine:auth_required()
    return status("RESET")
  end, flags = { noauth = true } }

  -- CLIENT and its subcommands.
  def{ "client", -2, nil, container = true }

  def{ "client|id", 2, function(s) return s.id end }

  def{ "client|setname", 3, function(s, argv)
    if bad_name(argv[3]) then return BAD_NAME end
    s.name = argv[3] ~= "" and argv[3] or nil
    return ok
  end }

  def{ "client|getname", 2, function(s)
    return s.name or reply.null
  end }

  local TYPES = { normal = "normal", slave = "replica", replica = "replica",
                  master = "master", pubsub = "pubsub" }

  local function session_type(s)
    if s:subscriptions() > 0 then return "pubsub" end
    return "normal"
  end

  local function client_line(s)
    local now = s.engine.clock()
    local flags = ""
    if s:subscriptions() > 0 then flags = flags .. "P" end
    if s.multi then flags = flags .. "x" end
    if flags == "" then flags = "N" end
    return string.format("id=%d addr=%s laddr=%s fd=%d name=%s age=%d idle=%d "
      .. "flags=%s db=%d sub=%d psub=%d ssub=0 multi=%d qbuf=0 qbuf-free=0 "
      .. "argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 "
      .. "events=r cmd=%s user=%s redir=-1 resp=%d\n",
      s.id, s.addr, s.laddr, s.id + 7, s.name or "",
      (now - s.created) // 1000, (now - s.last) // 1000, flags, s.dbi,
      s.channels:size(), s.patterns:size(), s.multi and #s.multi or -1,
      s.last_cmd, s.user, s.proto)
  end

  def{ "client|info", 2, function(s)
    return reply.verbatim(client_line(s))
  end }

  def{ "client|list", -2, function(s, argv)
    local want_type, ids
    local i = 3
    while i <= #argv do
      local opt = lower(argv[i])
      if opt == "type" and i + 1 <= #argv then
        want_type = TYPES[lower(argv[i + 1])]
        if not want_type then
          return err("ERR Unknown client type '" .. argv[i + 1] .. "'")
        end
        i = i + 2
      elseif opt == "id" and i + 1 <= #argv then
        ids = {}
        for j = i + 1, #argv do
          local id = util.int(argv[j])
          if not id or id < 1 then return err("ERR Invalid client ID") end
          ids[id] = true
        end
        i = #argv + 1
      else
        return util.SYNTAX
      end
    end
    local out = {}
    for _, other in ipairs(s.engine.session_list:items()) do
      if (not want_type or session_type(other) == want_type)
        and (not ids or ids[other.id]) then
        out[#out + 1] = client_line(other)
      end
    end
    return reply.verbatim(table.concat(out))
  end }

  def{ "client|kill", -3, function(s, argv)
    local e = s.engine
    local id, ctype, addr, laddr, user
    local skipme = true
    local old_style = #argv == 3
    if old_style then
      addr = argv[3]
      skipme = false
    else
      local i = 3
      while i <= #argv do
        local opt, val = lower(argv[i]), argv[i + 1]
        if val == nil then return util.SYNTAX end
        if opt == "id" then
          id = util.int(val)
          if not id or id < 1 then
            return err("ERR client-id should be greater than 0")
          end
        elseif opt == "type" then
          ctype = TYPES[lower(val)]
          if not ctype then
            return err("ERR Unknown client type '" .. val .. "'")
          end
        elseif opt == "addr" then
          addr = val
        elseif opt == "laddr" then
          laddr = val
        elseif opt == "user" then
          if val ~= "default" and e.users[val] == nil then
            return err("ERR No such user '" .. val .. "'")
          end
          user = val
        elseif opt == "skipme" then
          local yn = lower(val)
          if yn == "yes" then skipme = true
          elseif yn == "no" then skipme = false
          else return util.SYNTAX end
        else
          return util.SYNTAX
        end
        i = i + 2
      end
    end
    local killed, self_killed = 0, false
    for _, other in ipairs(e.session_list:items()) do
      if (not id or other.id == id)
        and (not ctype or session_type(other) == ctype)
        and (not addr or other.addr == addr)
        and (not laddr or other.laddr == laddr)
        and (not user or other.user == user)
        and not (skipme and other == s) then
        killed = killed + 1
        if other == s then
          self_killed = true
        else
          other:kill()
        end
      end
    end
    -- Killing oneself closes after the reply, as Redis does.
    if self_killed then s.closing = true end
    if old_style then
      if killed == 0 then return err("ERR No such client") end
      return ok
    end
    return killed
  end }

  def{ "client|unblock", -3, function(s, argv)
    local id = util.int(argv[3])
    if not id then return util.NOT_INTEGER end
    local how = argv[4] and lower(argv[4]) or "timeout"
    if #argv > 4 or (how ~= "timeout" and how ~= "error") then
      return err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    end
    local e = s.engine
    local target = e.sessions[id]
    if not target or not target.blocked or target.blocked.busy then return 0 end
    if how == "error" then
      e:unblock(target, err("UNBLOCKED client unblocked via CLIENT UNBLOCK"))
    else
      e:unblock(target, target.blocked.timeout_reply or reply.null_array)
    end
    return 1
  end }

  -- CLIENT REPLY ON|OFF|SKIP: the network layer drops replies while
  -- s.reply_off, and the next one after SKIP (s.reply_skip).
  def{ "client|reply", 3, function(s, argv)
    local mode = lower(argv[3])
    if mode == "on" then
      s.reply_off, s.reply_skip = false, false
      return ok
    elseif mode == "off" then
      s.reply_off = true
      return reply.noreply
    elseif mode == "skip" then
      if not s.reply_off then s.reply_skip = 2 end
      return reply.noreply
    end
    return util.SYNTAX
  end }

  def{ "client|no-evict", 3, function() return ok end }

  def{ "client|help", 2, function()
    return {
      status("CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"),
      status("GETNAME"), status("    Return the name of the current connection."),
      status("ID"), status("    Return the ID of the current connection."),
      status("INFO"), status("    Return information about the current client connection."),
      status("KILL <ip:port>"), status("    Kill connection made from <ip:port>."),
      status("LIST [options ...]"), status("    Return information about client connections."),
      status("SETNAME <name>"), status("    Assign the name <name> to the current connection."),
      status("HELP"), status("    Prints this help."),
    }
  end }

  -- FLUSHDB / FLUSHALL [ASYNC|SYNC]
  local function flush_flags(argv)
    if #argv == 1 then return true end
    if #argv == 2 then
      local m = lower(argv[2])
      return m == "sync" or m == "async"
    end
    return false
  end

  def{ "flushdb", -1, function(s, argv)
    if not flush_flags(argv) then return util.SYNTAX end
    s.db:flush()
    return ok
  end }

  def{ "flushall", -1, function(s, argv)
    if not flush_flags(argv) then return util.SYNTAX end
    for i = 0, store.NDBS - 1 do s.engine.store.dbs[i]:flush() end
    return ok
  end }

  def{ "dbsize", 1, function(s) return s.db:size() end }

  -- INFO: Redis 7.0's sections, with the fields tests read.
  local function human(n)
    if n < 1024 then return n .. "B" end
    if n < 1024 * 1024 then return string.format("%.2fK", n / 1024) end
    if n < 1024 ^ 3 then return string.format("%.2fM", n / 1024 ^ 2) end
    return string.format("%.2fG", n / 1024 ^ 3)
  end

  local function info_section(e, name)
    local now = e.clock()
    local lines
    if name == "server" then
      local up = (now - e.started) // 1000
      lines = { "# Server",
        "redis_version:" .. e.version,
        "redis_git_sha1:00000000",
        "redis_git_dirty:0",
        "redis_build_id:0",
        "redis_mode:standalone",
        "os:lev-redis mock",
        "arch_bits:64",
        "monotonic_clock:lev.now",
        "multiplexing_api:libuv",
        "process_id:0",
        "process_supervised:no",
        "run_id:0000000000000000000000000000000000000000",
        "tcp_port:" .. e.port,
        "server_time_usec:" .. math.floor(now * 1000),
        "uptime_in_seconds:" .. math.floor(up),
        "uptime_in_days:" .. math.floor(up // 86400),
        "hz:10",
        "configured_hz:10",
        "lru_clock:0",
        "executable:redis.mock",
        "config_file:",
        "io_threads_active:0" }
    elseif name == "clients" then
      lines = { "# Clients",
        "connected_clients:" .. e.session_list:size(),
        "cluster_connections:0",
        "maxclients:10000",
        "client_recent_max_input_buffer:0",
        "client_recent_max_output_buffer:0",
        "blocked_clients:" .. (e.blocked_count or 0),
        "tracking_clients:0",
        "clients_in_timeout_table:" .. (e.blocked_count or 0) }
    elseif name == "memory" then
      local used = math.floor(collectgarbage("count") * 1024)
      lines = { "# Memory",
        "used_memory:" .. used,
        "used_memory_human:" .. human(used),
        "used_memory_rss:" .. used,
        "used_memory_rss_human:" .. human(used),
        "used_memory_peak:" .. used,
        "used_memory_peak_human:" .. human(used),
        "used_memory_lua:32768",
        "used_memory_scripts:0",
        "number_of_cached_scripts:" .. (e.script_count or 0),
        "maxmemory:0",
        "maxmemory_human:0B",
        "maxmemory_policy:noeviction",
        "mem_fragmentation_ratio:1.00",
        "mem_allocator:jemalloc-5.3.0",
        "lazyfree_pending_objects:0",
        "lazyfreed_objects:0" }
    elseif name == "persistence" then
      lines = { "# Persistence", "loading:0", "async_loading:0",
        "rdb_changes_since_last_save:0", "rdb_bgsave_in_progress:0",
        "rdb_last_save_time:" .. math.floor(e.started // 1000),
        "rdb_last_bgsave_status:ok", "aof_enabled:0",
        "aof_rewrite_in_progress:0", "aof_rewrite_scheduled:0",
        "aof_last_bgrewrite_status:ok", "aof_last_write_status:ok" }
    elseif name == "stats" then
      local chans, pats, shards = 0, 0, 0
      for _ in pairs(e.channels) do chans = chans + 1 end
      for _ in pairs(e.patterns) do pats = pats + 1 end
      for _ in pairs(e.shard_channels or {}) do shards = shards + 1 end
      lines = { "# Stats",
        "total_connections_received:" .. e.stats.accepted,
        "total_commands_processed:" .. e.stats.total_commands,
        "instantaneous_ops_per_sec:0",
        "rejected_connections:" .. e.stats.refused,
        "expired_keys:" .. (e.store.expired_keys or 0),
        "evicted_keys:0",
        "keyspace_hits:0",
        "keyspace_misses:0",
        "pubsub_channels:" .. chans,
        "pubsub_patterns:" .. pats,
        "pubsubshard_channels:" .. shards,
        "unexpected_error_replies:0",
        "total_error_replies:" .. e.stats.error_replies }
    elseif name == "replication" then
      lines = { "# Replication", "role:master", "connected_slaves:0",
        "master_failover_state:no-failover",
        "master_replid:0000000000000000000000000000000000000000",
        "master_replid2:0000000000000000000000000000000000000000",
        "master_repl_offset:0", "second_repl_offset:-1",
        "repl_backlog_active:0", "repl_backlog_size:1048576",
        "repl_backlog_first_byte_offset:0", "repl_backlog_histlen:0" }
    elseif name == "cpu" then
      local cpu = string.format("%.6f", os.clock())
      lines = { "# CPU", "used_cpu_sys:0.000000", "used_cpu_user:" .. cpu,
        "used_cpu_sys_children:0.000000", "used_cpu_user_children:0.000000",
        "used_cpu_sys_main_thread:0.000000", "used_cpu_user_main_thread:" .. cpu }
    elseif name == "modules" then
      lines = { "# Modules" }
    elseif name == "commandstats" then
      lines = { "# Commandstats" }
      local names = {}
      for n in pairs(e.cmdstats) do names[#names + 1] = n end
      table.sort(names)
      for _, n in ipairs(names) do
        local st = e.cmdstats[n]
        lines[#lines + 1] = string.format("cmdstat_%s:calls=%d,usec=0,"
          .. "usec_per_call=0.00,rejected_calls=%d,failed_calls=%d", n,
          st[1], st[2], st[3])
      end
    elseif name == "errorstats" then
      lines = { "# Errorstats" }
      local codes = {}
      for c in pairs(e.errstats) do codes[#codes + 1] = c end
      table.sort(codes)
      for _, c in ipairs(codes) do
        lines[#lines + 1] = "errorstat_" .. c .. ":count=" .. e.errstats[c]
      end
    elseif name == "latencystats" then
      lines = { "# Latencystats" }
    elseif name == "cluster" then
      lines = { "# Cluster", "cluster_enabled:0" }
    elseif name == "keyspace" then
      lines = { "# Keyspace" }
      for i = 0, store.NDBS - 1 do
        local db = e.store.dbs[i]
        local n = db:size()
        if n > 0 then
          local total, m = 0, 0
          for _, when in pairs(db.expires) do
            total = total + (when - now)
            m = m + 1
          end
          local avg = m > 0 and math.floor(total // m) or 0
          lines[#lines + 1] = string.format("db%d:keys=%d,expires=%d,avg_ttl=%d",
            i, n, db.nexpires, avg)
        end
      end
    else
      return nil
    end
    return table.concat(lines, "\r\n") .. "\r\n"
  end

  local ORDER = { "server", "clients", "memory", "persistence", "stats",
    "replication", "cpu", "modules", "commandstats", "errorstats",
    "latencystats", "cluster", "keyspace" }
  local DEFAULT = { server = true, clients = true, memory = true,
    persistence = true, stats = true, replication = true, cpu = true,
    modules = true, errorstats = true, cluster = true, keyspace = true }

  def{ "info", -1, function(s, argv)
    local want, order = {}, {}
    if #argv == 1 then
      want = DEFAULT
    else
      for i = 2, #argv do
        local n = lower(argv[i])
        if n == "all" or n == "everything" then
          for _, a in ipairs(ORDER) do want[a] = true end
        elseif n == "default" then
          for a in pairs(DEFAULT) do want[a] = true end
        else
          want[n] = true
        end
      end
    end
    for _, n in ipairs(ORDER) do
      if want[n] then order[#order + 1] = info_section(s.engine, n) end
    end
    local text = table.concat(order, "\r\n")
    if s.proto == 3 then return reply.verbatim(text) end
    return text
  end }

  def{ "time", 1, function(s)
    local us = math.floor(s.engine.clock_us())
    return { tostring(us // 1000000), tostring(us % 1000000) }
  end }

  -- COMMAND: enough for redis-cli, which asks for COMMAND DOCS at startup
  -- and copes with an empty answer.
  def{ "command", -1, function(_, argv)
    local sub = argv[2] and lower(argv[2])
    if sub == "count" then
      local n = 0
      for _ in pairs(E.commands) do n = n + 1 end
      return n
    end
    if sub == "docs" then return reply.map{} end
    return {}
  end }

  -- Transactions.
  def{ "multi", 1, function(s)
    if s.multi then return err("ERR MULTI calls can not be nested") end
    s.multi = {}
    s.multi_error = nil
    return ok
  end }

  def{ "exec", 1, function(s)
    if not s.multi then return err("ERR EXEC without MULTI") end
    return s.engine:exec(s)
  end }

  def{ "discard", 1, function(s)
    if not s.multi then return err("ERR DISCARD without MULTI") end
    s:discard()
    return ok
  end }

  def{ "watch", -2, function(s, argv)
    if s.multi then return err("ERR WATCH inside MULTI is not allowed") end
    for i = 2, #argv do s:watch(argv[i]) end
    return ok
  end }

  def{ "unwatch", 1, function(s)
    s:unwatch()
    return ok
  end }

  -- Pub/sub. Confirmations are pushes: arrays in RESP2, '>' in RESP3.
  local Session = E.Session

  local function confirm(kind, name, count)
    return reply.push({ kind, name, count })
  end

  function Session:subscribe(ch)
    local e = self.engine
    if self.channels:add(ch) then
      e.channels[ch] = e.channels[ch] or E.oset()
      e.channels[ch]:add(self)
    end
  end

  function Session:unsubscribe(ch)
    local e = self.engine
    if self.channels:remove(ch) then
      local subs = e.channels[ch]
      subs:remove(self)
      if subs:size() == 0 then e.channels[ch] = nil end
    end
  end

  function Session:psubscribe(p)
    local e = self.engine
    if self.patterns:add(p) then
      if not e.patterns[p] then
        e.patterns[p] = E.oset()
        e.pattern_order:add(p)
      end
      e.patterns[p]:add(self)
    end
  end

  function Session:punsubscribe(p)
    local e = self.engine
    if self.patterns:remove(p) then
      local subs = e.patterns[p]
      subs:remove(self)
      if subs:size() == 0 then
        e.patterns[p] = nil
        e.pattern_order:remove(p)
      end
    end
  end

  def{ "subscribe", -2, function(s, argv)
    local out = {}
    for i = 2, #argv do
      s:subscribe(argv[i])
      out[#out + 1] = confirm("subscribe", argv[i], s:subscriptions())
    end
    return reply.many(out)
  end }

  def{ "psubscribe", -2, function(s, argv)
    local out = {}
    for i = 2, #argv do
      s:psubscribe(argv[i])
      out[#out + 1] = confirm("psubscribe", argv[i], s:subscriptions())
    end
    return reply.many(out)
  end }

  local function unsub(s, argv, set, method, kind)
    local out = {}
    local names = {}
    if #argv == 1 then
      names = set:items()
      if #names == 0 then
        return confirm(kind, reply.null, s:subscriptions())
      end
    else
      for i = 2, #argv do names[#names + 1] = argv[i] end
    end
    for _, name in ipairs(names) do
      s[method](s, name)
      out[#out + 1] = confirm(kind, name, s:subscriptions())
    end
    return reply.many(out)
  end

  def{ "unsubscribe", -1, function(s, argv)
    return unsub(s, argv, s.channels, "unsubscribe", "unsubscribe")
  end }

  def{ "punsubscribe", -1, function(s, argv)
    return unsub(s, argv, s.patterns, "punsubscribe", "punsubscribe")
  end }

  def{ "publish", 3, function(s, argv)
    return s.engine:publish(argv[2], argv[3])
  end }

  -- Sharded pub/sub: one shard here, so SPUBLISH reaches the channel's
  -- SSUBSCRIBErs; patterns do not apply.
  local function shard_subs(e, ch)
    e.shard_channels = e.shard_channels or {}
    return e.shard_channels
  end

  def{ "ssubscribe", -2, function(s, argv)
    if s.multi then return err("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client") end
    local e = s.engine
    local all = shard_subs(e)
    s.shard = s.shard or E.oset()
    local out = {}
    for i = 2, #argv do
      local ch = argv[i]
      if s.shard:add(ch) then
        all[ch] = all[ch] or E.oset()
        all[ch]:add(s)
      end
      out[#out + 1] = confirm("ssubscribe", ch, s.shard:size())
    end
    return reply.many(out)
  end }

  def{ "sunsubscribe", -1, function(s, argv)
    local e = s.engine
    local all = shard_subs(e)
    s.shard = s.shard or E.oset()
    local names = {}
    if #argv == 1 then
      names = s.shard:items()
      if #names == 0 then return confirm("sunsubscribe", reply.null, 0) end
    else
      for i = 2, #argv do names[#names + 1] = argv[i] end
    end
    local out = {}
    for _, ch in ipairs(names) do
      if s.shard:remove(ch) then
        all[ch]:remove(s)
        if all[ch]:size() == 0 then all[ch] = nil end
      end
      out[#out + 1] = confirm("sunsubscribe", ch, s.shard:size())
    end
    return reply.many(out)
  end }

  def{ "spublish", 3, function(s, argv)
    local subs = shard_subs(s.engine)[argv[2]]
    if not subs then return 0 end
    local n = 0
    for _, other in ipairs(subs:items()) do
      other:deliver(reply.push({ "smessage", argv[2], argv[3] }))
      n = n + 1
    end
    return n
  end }

  def{ "pubsub", -2, nil, container = true }

  local function sorted_names(t, pattern)
    local out = {}
    for ch in pairs(t or {}) do
      if not pattern or store.match(pattern, ch) then out[#out + 1] = ch end
    end
    table.sort(out)
    return out
  end

  def{ "pubsub|channels", -2, function(s, argv)
    return sorted_names(s.engine.channels, argv[3])
  end }
  def{ "pubsub|shardchannels", -2, function(s, argv)
    return sorted_names(s.engine.shard_channels, argv[3])
  end }
  def{ "pubsub|numpat", 2, function(s)
    local n = 0
    for _ in pairs(s.engine.patterns) do n = n + 1 end
    return n
  end }
  local function numsub(t, argv)
    local flat = {}
    for i = 3, #argv do
      local subs = t and t[argv[i]]
      flat[#flat + 1] = argv[i]
      flat[#flat + 1] = subs and subs:size() or 0
    end
    return reply.map(flat)
  end
  def{ "pubsub|numsub", -2, function(s, argv) return numsub(s.engine.channels, argv) end }
  def{ "pubsub|shardnumsub", -2, function(s, argv)
    return numsub(s.engine.shard_channels, argv)
  end }
end
