-- lev.tcp: streams and servers on the lev runtime.
local lev = require("lev")
local helper = require("lev_helper")

local error_of, has = helper.error_of, helper.has

-- Handlers are daemons: a run that ends right after its client closed
-- leaves them parked; a few more turns let them see EOF and finish.
local assert_clean = helper.assert_clean_drained

-- Reads exactly n bytes (or fewer at end of stream).
local function read_n(s, n)
  local parts, got = {}, 0
  while got < n do
    local chunk, err = s:read()
    if not chunk then
      assert(err == nil, err)
      break
    end
    parts[#parts + 1] = chunk
    got = got + #chunk
  end
  return table.concat(parts)
end

-- An echo server: each connection sends back what it reads until EOF.
local function echo_server(host)
  return assert(lev.tcp.listen(host or "127.0.0.1", 0, function(s)
    while true do
      local chunk = s:read()
      if not chunk then break end
      assert(s:write(chunk))
    end
  end))
end

describe("lev.tcp streams", function()
  after_each(assert_clean)

  it("ping-pongs a 1-byte payload between a listener task and a client", function()
    local rounds = lev.run(function()
      local srv = echo_server()
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local n = 0
      for i = 1, 200 do
        local b = string.char(i % 256)
        assert(c:write(b))
        assert.are.equal(b, c:read())
        n = n + 1
      end
      c:close()
      srv:close()
      return n
    end)
    assert.are.equal(200, rounds)
  end)

  it("ping-pongs a 1 MB payload between a listener task and a client", function()
    local size = 1024 * 1024
    local payload = {}
    for i = 1, size / 256 do
      payload[i] = string.char(i % 251) .. string.rep("x", 255)
    end
    payload = table.concat(payload)
    local back = lev.run(function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        local got = read_n(s, size)
        assert(s:write(got))
      end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local reader = lev.spawn(function() return read_n(c, size) end)
      assert.is_true(c:write(payload))
      local ok, data = reader:join()
      assert(ok, data)
      assert.is_nil(c:read()) -- the handler returned: its stream closed
      c:close()
      srv:close()
      return data
    end)
    assert.are.equal(size, #back)
    assert.is_true(back == payload, "the payload came back altered")
  end)

  it("returns nil at the end of the stream, and again after it", function()
    local r = lev.run(function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        s:write("last words")
        s:close()
      end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local out = { read_n(c, 10) }
      out[2] = select("#", c:read())
      out[3] = c:read()
      out[4] = c:read()
      c:close()
      srv:close()
      return out
    end)
    assert.are.equal("last words", r[1])
    assert.are.equal(1, r[2]) -- nil alone: no error text
    assert.is_nil(r[3])
    assert.is_nil(r[4])
  end)

  it("returns nil, closed, closed for a stream used after close", function()
    local r = lev.run(function()
      local srv = echo_server()
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      assert.is_true(c:close())
      local out = { { c:read() }, { c:write("x") }, { c:peer() }, c:close() }
      srv:close()
      return out
    end)
    assert.are.same({ { nil, "closed", "closed" }, { nil, "closed", "closed" },
      { nil, "closed", "closed" }, true }, r)
  end)

  it("wakes a reader with nil, closed, closed when another task closes the stream", function()
    local r = lev.run(function()
      local srv = echo_server()
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local reader = lev.spawn(function() return c:read() end)
      lev.sleep(0.005)
      c:close()
      local out = { reader:join() }
      srv:close()
      return out
    end)
    assert.are.same({ true, nil, "closed", "closed" }, r)
  end)

  it("closes a stream held in a to-be-closed variable and wakes its reader", function()
    local r, c = lev.run(function()
      local srv = echo_server()
      local reader, c
      do
        local s <close> = assert(lev.tcp.connect("127.0.0.1", srv:port()))
        c = s
        reader = lev.spawn(function() return s:read() end)
        lev.sleep(0.005)
      end
      local out = { reader:join() }
      srv:close()
      return out, c
    end)
    assert.are.same({ true, nil, "closed", "closed" }, r)
    assert.is_true(has(tostring(c), "lev.tcp.stream (closed)"))
  end)

  it("returns an error text when another task already reads", function()
    local err = lev.run(function()
      local srv = echo_server()
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local first = lev.spawn(function() return c:read() end)
      lev.sleep(0)
      local ok, e = pcall(c.read, c)
      assert(not ok)
      c:close()
      first:join()
      srv:close()
      return e
    end)
    assert.is_true(has(err, "another task is already reading"))
  end)

  it("keeps a stream usable after a read abandoned by lev.timeout", function()
    local r = lev.run(function()
      local srv = echo_server()
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local a, b = lev.timeout(0.01, function() return c:read() end)
      assert(c:write("after"))
      local again = c:read()
      c:close()
      srv:close()
      return { a, b, again }
    end)
    assert.are.same({ nil, "timeout", "after" }, r)
  end)

  it("delivers a write whose task was abandoned by lev.timeout", function()
    local size = 16 * 1024 * 1024 -- more than the kernel buffers
    local got = lev.run(function()
      local received = lev.spawn(function() end)
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        lev.sleep(0.05) -- let the writer time out first
        received = #read_n(s, size)
      end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local a, b = lev.timeout(0.01, function()
        return c:write(string.rep("z", size))
      end)
      assert(a == nil and b == "timeout", "the write did not block")
      while type(received) ~= "number" do lev.sleep(0.005) end
      c:close()
      srv:close()
      return received
    end)
    assert.are.equal(size, got)
  end)

  it("raises when a second task writes while a write is in flight", function()
    local size = 16 * 1024 * 1024
    local err = lev.run(function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        read_n(s, size)
      end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local w = lev.spawn(function() return c:write(string.rep("a", size)) end)
      lev.sleep(0)
      local ok, e = pcall(c.write, c, "b")
      assert(not ok)
      assert(w:join())
      c:close()
      srv:close()
      return e
    end)
    assert.is_true(has(err, "stream:write: a write is already in progress"))
  end)

  it("returns nil and a text from writes once the peer has gone", function()
    local r = lev.run(function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s) end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      assert.is_nil(c:read()) -- the handler returned: closed
      local chunk = string.rep("p", 65536)
      for _ = 1, 200 do
        local ok, err = c:write(chunk)
        if not ok then
          c:close()
          srv:close()
          return { ok, err }
        end
        lev.sleep(0.001)
      end
      c:close()
      srv:close()
      return { "every write succeeded" }
    end)
    assert.is_nil(r[1])
    assert.are.equal("string", type(r[2]))
  end)

  it("tells the peer address of a stream", function()
    local peer, port = lev.run(function()
      local srv = echo_server()
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local p = c:peer()
      local n = srv:port()
      c:close()
      srv:close()
      return p, n
    end)
    assert.are.equal("127.0.0.1:" .. port, peer)
  end)
end)

describe("lev.tcp.connect", function()
  after_each(assert_clean)

  it("connects over IPv6 to ::1", function()
    local r = lev.run(function()
      local srv = echo_server("::1")
      local c = assert(lev.tcp.connect("::1", srv:port()))
      assert(c:write("six"))
      local out = { c:read(), c:peer() }
      c:close()
      srv:close()
      return out
    end)
    assert.are.equal("six", r[1])
    assert.is_truthy(r[2]:match("^%[::1%]:%d+$"))
  end)

  it("resolves a host name such as localhost", function()
    local r = lev.run(function()
      local srv = echo_server("localhost")
      local c = assert(lev.tcp.connect("localhost", srv:port()))
      assert(c:write("name"))
      local out = c:read()
      c:close()
      srv:close()
      return out
    end)
    assert.are.equal("name", r)
  end)

  it("returns nil and a text when nobody listens", function()
    local s, err = lev.run(function()
      local srv = echo_server()
      local port = srv:port()
      srv:close()
      lev.sleep(0)
      return lev.tcp.connect("127.0.0.1", port)
    end)
    assert.is_nil(s)
    assert.are.equal("connection refused", err)
  end)

  it("returns nil and a dns text for a name that does not resolve", function()
    local s, err = lev.run(function()
      return lev.tcp.connect("no-such-host.invalid", 6379)
    end)
    assert.is_nil(s)
    assert.is_truthy(err:match("^dns: "), err)
  end)

  it("returns nil and timeout when opts.timeout passes first", function()
    local s, err = lev.run(function()
      local srv = echo_server()
      -- The deadline is counted from the loop's clock, which stands still
      -- while tasks run: after 20 ms of work a 1 ms deadline has passed
      -- before the lookup can complete.
      local t0 = lev.now()
      while lev.now() - t0 < 0.02 do end
      local a, b = lev.tcp.connect("127.0.0.1", srv:port(), { timeout = 0.001 })
      srv:close()
      return a, b
    end)
    assert.is_nil(s)
    assert.are.equal("timeout", err)
  end)

  it("connects normally within opts.timeout", function()
    local ok = lev.run(function()
      local srv = echo_server()
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port(),
        { timeout = 5 }))
      lev.sleep(0.01)
      assert(c:write("still here"))
      local r = c:read()
      c:close()
      srv:close()
      return r
    end)
    assert.are.equal("still here", ok)
  end)

  it("rejects arguments of the wrong type or range", function()
    local errs = lev.run(function()
      local out = {}
      local function try(...)
        out[#out + 1] = select(2, pcall(lev.tcp.connect, ...))
      end
      try({}, 1)
      try("127.0.0.1", "port")
      try("127.0.0.1", 0)
      try("127.0.0.1", 70000)
      try("127.0.0.1", 1, "opts")
      try("127.0.0.1", 1, { timeout = "soon" })
      try("127.0.0.1", 1, { timeout = -1 })
      return out
    end)
    assert.are.equal(7, #errs)
    assert.is_true(has(errs[1], "bad argument #1"))
    assert.is_true(has(errs[2], "bad argument #2"))
    assert.is_true(has(errs[3], "port must be in 1..65535"))
    assert.is_true(has(errs[4], "port must be in 1..65535"))
    assert.is_true(has(errs[5], "bad argument #3"))
    assert.is_true(has(errs[6], "timeout must be a number > 0"))
    assert.is_true(has(errs[7], "timeout must be a number > 0"))
  end)

  it("raises a clear error when called outside a task", function()
    assert.is_true(has(error_of(lev.tcp.connect, "127.0.0.1", 1),
      "lev.tcp.connect: must be called inside a lev task"))
  end)

  it("raises for stream reads and writes outside a task", function()
    local c, srv = lev.run(function()
      local srv = echo_server()
      return assert(lev.tcp.connect("127.0.0.1", srv:port())), srv
    end)
    local e1 = error_of(c.read, c)
    local e2 = error_of(c.write, c, "x")
    local e3 = lev.run(function()
      return coroutine.wrap(function() return select(2, pcall(c.read, c)) end)()
    end)
    c:close()
    srv:close()
    lev.run(function() end) -- lets the handler see EOF and finish
    assert.is_true(has(e1, "stream:read: must be called inside a lev task"))
    assert.is_true(has(e2, "stream:write: must be called inside a lev task"))
    assert.is_true(has(e3, "stream:read: called from a plain coroutine "
      .. "(coroutine.wrap or coroutine.create) inside a lev task"))
  end)

  it("raises for stream methods called on something else", function()
    local c, srv = lev.run(function()
      local srv = echo_server()
      return assert(lev.tcp.connect("127.0.0.1", srv:port())), srv
    end)
    assert.is_true(has(error_of(c.read, {}), "lev.tcp.stream expected"))
    assert.is_true(has(error_of(srv.port, c), "lev.tcp.server expected"))
    local e = lev.run(function() return select(2, pcall(c.write, c, nil)) end)
    assert.is_true(has(e, "bad argument #2"))
    c:close()
    srv:close()
    lev.run(function() end)
  end)
end)

describe("lev.tcp.listen", function()
  after_each(assert_clean)

  it("tells the port it picked for port 0 and closes", function()
    local r = lev.run(function()
      local srv = echo_server()
      local port = srv:port()
      local text = tostring(srv)
      assert.is_true(srv:close())
      return { port, text, tostring(srv), { srv:port() }, srv:close() }
    end)
    assert.are.equal("integer", math.type(r[1]))
    assert.is_true(r[1] > 0)
    assert.is_true(has(r[2], "lev.tcp.server (listening)"))
    assert.is_true(has(r[3], "lev.tcp.server (closed)"))
    assert.are.same({ nil, "closed" }, r[4])
    assert.is_true(r[5])
  end)

  it("does not keep lev.run alive, nor do its parked handlers", function()
    local t0 = lev.now()
    local srv, c = lev.run(function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        s:read()
      end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      lev.sleep(0.01) -- the handler is parked in read by now
      return srv, c
    end)
    assert.is_true(lev.now() - t0 < 1)
    local _, tasks = helper.leftovers()
    assert.are.equal(1, tasks) -- the parked handler
    srv:close()
    c:close()
    lev.run(function() lev.sleep(0.01) end) -- the handler sees EOF, ends
  end)

  it("runs the handler as a new task for every connection", function()
    local n = 50
    local replies = lev.run(function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        local req = s:read()
        lev.sleep(0.01) -- all handlers wait at once
        s:write("re:" .. req)
      end))
      local clients = {}
      for i = 1, n do
        clients[i] = lev.spawn(function()
          local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
          assert(c:write("c" .. i))
          local r = c:read()
          c:close()
          return r
        end)
      end
      local out = {}
      for i = 1, n do
        local ok, r = clients[i]:join()
        assert(ok, r)
        out[i] = r
      end
      srv:close()
      return out
    end)
    for i = 1, n do
      assert.are.equal("re:c" .. i, replies[i])
    end
  end)

  it("closes the handler's stream when the handler returns", function()
    local r = lev.run(function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        s:write("bye")
      end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      local out = { read_n(c, 3), c:read() }
      c:close()
      srv:close()
      return out
    end)
    assert.are.same({ "bye" }, r)
  end)

  it("reports a failed handler as an unjoined failure and closes its stream", function()
    local eof
    local err = error_of(lev.run, function()
      local srv = assert(lev.tcp.listen("127.0.0.1", 0, function(s)
        s:read()
        error("handler broke")
      end))
      local c = assert(lev.tcp.connect("127.0.0.1", srv:port()))
      assert(c:write("go"))
      eof = select("#", c:read()) == 1
      c:close()
      srv:close()
    end)
    assert.is_true(eof)
    assert.is_true(has(err, "1 spawned task failed and was not joined"))
    assert.is_true(has(err, "handler broke"))
  end)

  it("returns nil and a text when the address is taken", function()
    local r = lev.run(function()
      local a = echo_server()
      local b, err = lev.tcp.listen("127.0.0.1", a:port(), function() end)
      a:close()
      return { b, err }
    end)
    assert.is_nil(r[1])
    assert.is_true(has(r[2], "address already in use"))
  end)

  it("rejects a handler that is not a function and a bad port", function()
    assert.is_true(has(error_of(lev.tcp.listen, "127.0.0.1", 0, "h"),
      "bad argument #3"))
    assert.is_true(has(error_of(lev.tcp.listen, "127.0.0.1", -1, print),
      "port must be in 0..65535"))
  end)
end)
