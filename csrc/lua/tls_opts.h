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

/* A context for cfg, made once per distinct configuration and Lua state
 * (loading a trust store takes tens of milliseconds, on the loop) and kept
 * in a per-state cache in the registry; the cache holds TLS_OPTS_CACHE
 * contexts at most, the least recently used goes first. The key is the
 * configuration: verify, the paths of ca, cert and key with each file's
 * identity and modification time (a renewed file is loaded again), and,
 * for the system store, SSL_CERT_FILE and SSL_CERT_DIR. Returns TLS_OK
 * with *out holding a reference of the caller's (tls_ctx_unref it), or
 * TLS_ERR with the message in err; a failure is not cached. Leaves the
 * Lua stack as it was; raises only when memory is short. */
#define TLS_OPTS_CACHE 16
int tls_opts_context(lua_State *L, const tls_config *cfg, tls_ctx **out,
                     char *err, size_t errlen);

#endif
