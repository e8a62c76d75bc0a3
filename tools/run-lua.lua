-- Runs a Lua program with the in-tree modules: lua/ and $LEVR_BUILD (build/).
-- Used by make test for the examples, and handy by hand:
--   lua5.4 tools/run-lua.lua examples/quickstart.lua
local build = os.getenv("LEVR_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local script = assert(arg[1], "usage: lua5.4 tools/run-lua.lua FILE [args]")
local args = table.pack(table.unpack(arg, 2))
arg = { [0] = script, table.unpack(args, 1, args.n) }
dofile(script)
