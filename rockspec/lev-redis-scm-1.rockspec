rockspec_format = "3.0"
package = "lev-redis"
version = "scm-1"
-- The development rockspec, for `luarocks make` run in a checkout (make
-- ignores source.url: it builds the files in the current directory). To
-- install where there is no checkout, `make pack` writes a release rockspec
-- (from lev-redis-release.rockspec.in) and a .src.rock that carries the
-- sources. The repository is not published yet: the .invalid host is a
-- placeholder for its address, so `luarocks install` of this file fails
-- plainly instead of fetching something else.
source = {
  url = "git+https://lev-redis.invalid/lev-redis.git",
}
description = {
  summary = "Asynchronous Redis client for Lua 5.4 with a C core on libuv",
  detailed = [[
lev-redis: RESP2/RESP3 codec, connections and a keyed connection pool in C
on libuv, coroutine tasks (the lev runtime), TLS through OpenSSL, and a
scriptable mock Redis server (redis.mock) for tests.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    LUA_INCLUDE_DIR = "$(LUA_INCDIR)",
    LUA_LIBDIR = "$(LIBDIR)",
    LUADIR = "$(LUADIR)",
    LEVR_TESTS = "OFF",
  },
}
