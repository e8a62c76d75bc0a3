/* cache: the client-side cache of one connection (contract section 17).
 * No Lua, no uv: the glue gives it the encoded command bytes, the loop's
 * time in ms and the replies; conn gives it the RESP3 pushes.
 *
 * Entries are keyed by the database and the command's encoded bytes (the
 * name upper-cased by the caller, numbers already text), kept in an LRU
 * list bounded by max_entries and max_bytes, and indexed by the Redis key
 * (argument 1) so that an invalidation drops every entry of that key in
 * every database. The stored form is the reply itself: its nodes and its
 * wire bytes, converted again to Lua values per hit (no parsing, no
 * syscall), so every hit hands out a fresh value and the bytes accounted
 * are the bytes held.
 *
 * A miss begins a fill (cache_lookup returns CACHE_MISS); the reply ends
 * it (cache_fill_end), in the order the commands were sent. A fill whose
 * key was invalidated (or everything flushed) between its send and its
 * reply is not kept: each key node carries the sequence number of its last
 * invalidation, each fill the sequence number current when it was sent.
 *
 * The cache is owned by the connection (conn_set_ext): it goes with it into
 * the pool and is freed with it, so a failed or replaced connection takes
 * its entries along.
 */
#ifndef LEVR_CACHE_H
#define LEVR_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "resp.h"

typedef struct cache cache;

typedef struct cache_stats {
  uint64_t hits;          /* lookups answered from memory */
  uint64_t misses;        /* listed commands sent to the server */
  uint64_t entries;
  uint64_t bytes;         /* entries and key nodes, all they hold */
  uint64_t invalidations; /* keys named by invalidation pushes (a null
                             list counts one) */
  uint64_t evictions;     /* entries dropped for max_entries/max_bytes */
} cache_stats;

enum { CACHE_BYPASS = 0, CACHE_HIT, CACHE_MISS };

/* ttl_ms > 0; db: the database the connection is on. NULL: no memory. */
cache *cache_new(size_t max_entries, size_t max_bytes, uint64_t ttl_ms,
                 int db);
void cache_free(cache *k);
/* For conn_set_ext. */
void cache_free_ext(void *k);

/* Is name[0..n) (any case) with nargs arguments after it one of the
 * listed read commands (EXISTS: one key only)? */
int cache_listed(const char *name, size_t n, int nargs);

/* cmd[0..len): a listed command, encoded. CACHE_HIT: *out is the stored
 * reply (valid until the next call on k). CACHE_MISS: a fill was begun;
 * the command must be sent and its reply given to cache_fill_end (or
 * cache_fill_cancel if it is not sent after all). CACHE_BYPASS: send it
 * as usual (a transaction is open, the database is not known, the cache
 * is off, or no memory). */
int cache_lookup(cache *k, const char *cmd, size_t len, uint64_t now_ms,
                 resp_reply *out);
/* The last fill begun was not sent. */
void cache_fill_cancel(cache *k);
/* The reply of the oldest fill: kept unless it is an error, its key was
 * invalidated since it was sent, or the cache went off. */
void cache_fill_end(cache *k, const resp_reply *r, uint64_t now_ms);

/* A RESP3 push (conn's push hook): an invalidation drops entries. 1 when
 * it was an invalidation and nobody else wants it (cache_set_pass off). */
int cache_push(void *k, const resp_reply *r);
/* Also hand invalidations on to the owner (push handlers exist). */
void cache_set_pass(cache *k, int on);

/* Session changes seen as commands are sent. */
void cache_tx(cache *k, int open);      /* MULTI sent (1), EXEC/DISCARD (0) */
void cache_select_sent(cache *k);       /* a SELECT n is on its way */
/* Its reply: db when the server said OK, -1 when it did not, -2 when it
 * was queued in a transaction (the database is then unknown for good). */
void cache_select_done(cache *k, int db);
/* The session changed in a way the cache cannot follow (RESET, HELLO,
 * AUTH, CLIENT TRACKING ...): every entry goes, and no more are made. */
void cache_off(cache *k);

void cache_clear(cache *k);
void cache_get_stats(const cache *k, cache_stats *st);

#endif
