-- The chaos driver (spec/chaos/chaos.lua) as a spec: it runs in a child
-- process for LEVR_CHAOS_SECONDS (default 30), so that a crash or a
-- sanitizer report still shows the seed; make test runs it on the ASan
-- build as a suite of its own. Replay a failure with LEVR_CHAOS_SEED.

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

describe("chaos", function()
  it("mixes commands, pipelines, read(), abandonment, closes from "
     .. "finalizers and <close> handlers and a hostile server, and every "
     .. "reply matches its command", function()
    assert(os.getenv("LEVR_REDIS_PORT"), "chaos: LEVR_REDIS_PORT is not set "
      .. "(start tools/redis-server.sh and pass it, as for spec/integration)")
    local seconds = tonumber(os.getenv("LEVR_CHAOS_SECONDS") or "30")
    local cmd = ("{ timeout -k 5 %d lua5.4 tools/run-lua.lua "
      .. "spec/chaos/chaos.lua 2>&1; echo \"rc=$?\"; } 2>&1")
      :format(math.floor(seconds) + 120)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    -- The summary goes to the suite's log either way.
    io.stdout:write("\n", (out:gsub("\n    #%d+ [^\n]*", "")), "\n")
    local rc = tonumber(out:match("rc=(%d+)%s*$"))
    assert(out:find("chaos: seed %d+"), "no seed printed:\n" .. out)
    assert(not out:find("AddressSanitizer", 1, true)
           and not out:find("runtime error:", 1, true),
           "sanitizer report:\n" .. out)
    assert(rc == 0 and out:find("chaos: no problem", 1, true),
           "chaos found problems (rc " .. tostring(rc) .. "):\n" .. out)
  end)
end)
