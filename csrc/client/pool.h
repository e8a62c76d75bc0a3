/* pool: idle connections kept per key (host:port/db, TLS identity, AUTH
 * identity). No Lua. A pooled conn keeps reading, so a server that closes it
 * is noticed (conn_fail unlinks it); it does not keep the loop alive.
 */
#ifndef LEVR_POOL_H
#define LEVR_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

typedef struct pool_key pool_key;

struct pool {
  pool_key *keys;
  size_t idle;           /* connections idle in all keys */
};

void pool_init(pool *p);
/* Closes every idle connection. */
void pool_close_all(pool *p);
/* Puts c (clean, connected) under key unless max idle conns are already
 * kept there. Returns 0 when pooled, -1 when not (the caller closes c). */
int pool_put(pool *p, conn *c, const char *key, size_t max);
/* The most recently pooled conn of key, unlinked, with its idle time in ms,
 * or NULL. */
conn *pool_take(pool *p, const char *key, uint64_t now, uint64_t *idle_ms);
/* Removes c from its pool (conn_close calls it). */
void pool_unlink(conn *c);
/* Idle connections under key. */
size_t pool_count(const pool *p, const char *key);

#endif
