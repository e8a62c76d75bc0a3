/* pool: idle connections kept per key (host:port/db, TLS identity, AUTH
 * identity, protocol, name), for reuse by later connects. No Lua.
 *
 * Keys are byte strings with a length (they may hold any byte). While it
 * holds a connection the pool owns it: it installs its own conn callbacks
 * (a reply on an idle connection fails it; a failed or closed connection
 * leaves the pool by itself), so conn.c knows nothing of the pool. A
 * pooled conn keeps reading, so a server that closes it is noticed; it
 * does not keep the loop alive.
 */
#ifndef LEVR_POOL_H
#define LEVR_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

typedef struct pool pool;

pool *pool_new(void);
/* Closes every idle connection and frees the pool. */
void pool_free(pool *p);
/* Puts c (conn_clean, connected) under key unless max idle connections
 * are already kept there. 0 when pooled (the pool owns c), LEVR_ELIMIT or
 * LEVR_ENOMEM when not (the caller still owns c and closes it). */
int pool_put(pool *p, conn *c, const char *key, size_t keylen, size_t max,
             uint64_t now);
/* The most recently pooled conn of key, removed from the pool, with its
 * idle time in ms; or NULL. The caller owns it and must install its own
 * callbacks (conn_set_owner) at once. */
conn *pool_take(pool *p, const char *key, size_t keylen, uint64_t now,
                uint64_t *idle_ms);
/* Idle connections under key, and in all keys. */
size_t pool_count(const pool *p, const char *key, size_t keylen);
size_t pool_idle(const pool *p);

#endif
