/* tls_opts: the `ssl` option of redis.connect and lev.tcp.connect, read
 * from Lua into a tls_config. Compiled into both modules (they are separate
 * shared objects). */
#ifndef LEVR_TLS_OPTS_H
#define LEVR_TLS_OPTS_H

#include <lua.h>

#include "tls.h"

/* Reads the ssl value at stack index idx: nil or false (no TLS; returns 0),
 * true (verify against the system store), or a table { verify, ca, cert,
 * key, server_name } (returns 1). Anything else raises an argument error
 * for argument arg ("ssl must be true, false or a table", "ssl.ca must be a
 * non-empty string", ...). The strings in cfg and *server_name belong to
 * the table, which must stay on the stack while they are used. */
int tls_opts_read(lua_State *L, int idx, int arg, tls_config *cfg,
                  const char **server_name);

#endif
