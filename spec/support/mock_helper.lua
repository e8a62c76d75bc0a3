-- mock_helper: running a spec body against redis.mock, and the leak check
-- every such spec ends with.
local lev = require("lev")
local mock = require("redis.mock")
local lev_helper = require("lev_helper")

local M = {}

-- The leak check after each case (with the server handlers drained).
M.assert_clean = lev_helper.assert_clean_drained

-- Runs fn(srv) inside lev.run on a fresh mock (opts as mock.start's,
-- optional), and closes the mock afterwards, also when fn raises.
function M.with_mock(opts, fn)
  if type(opts) == "function" then opts, fn = {}, opts end
  opts.port = opts.port or 0
  return lev.run(function()
    local srv = assert(mock.start(opts))
    local ok, err = pcall(fn, srv)
    srv:close()
    if not ok then error(err, 0) end
  end)
end

-- The address of a mock, for redis.connect.
function M.addr(srv) return "127.0.0.1:" .. srv:port() end

-- The pure engine, no sockets: an engine on a fake clock (unix ms in
-- clock.now, 1700000000000 at first; opts as mock.engine's) and one
-- session.
function M.engine(opts)
  local clock = { now = 1700000000000 }
  opts = opts or {}
  opts.clock = function() return clock.now end
  local e = mock.engine(opts)
  return e, e:session{}, clock
end

function M.words(line)
  local argv = {}
  for w in line:gmatch("%S+") do argv[#argv + 1] = w end
  return argv
end

-- The bytes of the reply to a command given as a line or an argv table,
-- in the session's protocol.
function M.run(e, s, cmd)
  local argv = type(cmd) == "table" and cmd or M.words(cmd)
  return mock.encode(e:dispatch(s, argv), s.proto)
end

return M
