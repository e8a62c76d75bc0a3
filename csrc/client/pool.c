/* pool: keyed idle lists. See pool.h.
 *
 * Keys are few (one per server/db/identity a program uses), so a linked
 * list of keys searched with memcmp costs nothing next to a connect; each
 * key holds a LIFO list, so the warmest connection is reused first. Each
 * pooled connection has an entry (its list links and idle time); the
 * connection's data pointer is the entry while it is pooled.
 */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

typedef struct pool_key pool_key;

typedef struct entry {
  struct entry *prev, *next;
  pool_key *key;
  conn *c;
  uint64_t since;        /* loop ms when pooled */
} entry;

struct pool_key {
  pool_key *next;
  pool *p;
  entry *head;           /* most recently pooled */
  size_t count;
  size_t len;
  char name[1];
};

struct pool {
  pool_key *keys;
  size_t idle;           /* connections idle in all keys */
};

pool *pool_new(void) { return (pool *)calloc(1, sizeof(pool)); }

static pool_key *find_key(const pool *p, const char *key, size_t n) {
  pool_key *k;
  for (k = p->keys; k; k = k->next)
    if (k->len == n && memcmp(k->name, key, n) == 0)
      return k;
  return NULL;
}

static void unlink_entry(entry *e) {
  pool_key *k = e->key;
  if (e->prev)
    e->prev->next = e->next;
  else
    k->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  k->count--;
  k->p->idle--;
}

/* ---- the callbacks of a pooled connection ----------------------------- */

static void idle_connect(conn *c, int status, const char *msg) {
  (void)c, (void)status, (void)msg;
}

static void idle_reply(conn *c, const conn_slot *s, const resp_reply *r) {
  (void)s, (void)r;
  conn_fail(c, LEVR_EPROTO,
            "protocol error: unexpected reply on an idle connection");
}

static void idle_fail(conn *c, const conn_slot *s, int err, const char *m) {
  (void)c, (void)s, (void)err, (void)m; /* no slots while idle */
}

/* Closed while idle (the server went away, or pool_free): the entry goes. */
static void idle_close(conn *c) {
  entry *e = (entry *)conn_data(c);
  unlink_entry(e);
  free(e);
}

static const conn_callbacks idle_callbacks = {
  idle_connect, idle_reply, idle_fail, idle_close, NULL
};

/* Between pool_take and the taker's conn_set_owner nothing can fire. */
static void taken_close(conn *c) { (void)c; }
static const conn_callbacks taken_callbacks = {
  idle_connect, idle_reply, idle_fail, taken_close, NULL
};

/* ---- the pool --------------------------------------------------------- */

int pool_put(pool *p, conn *c, const char *key, size_t keylen, size_t max,
             uint64_t now) {
  pool_key *k = find_key(p, key, keylen);
  entry *e;
  if (max == 0 || (k && k->count >= max))
    return LEVR_ELIMIT;
  e = (entry *)calloc(1, sizeof(*e));
  if (!e)
    return LEVR_ENOMEM;
  if (!k) {
    k = (pool_key *)calloc(1, sizeof(*k) + keylen);
    if (!k) {
      free(e);
      return LEVR_ENOMEM;
    }
    memcpy(k->name, key, keylen);
    k->len = keylen;
    k->p = p;
    k->next = p->keys;
    p->keys = k;
  }
  e->key = k;
  e->c = c;
  e->since = now;
  e->next = k->head;
  if (k->head)
    k->head->prev = e;
  k->head = e;
  k->count++;
  p->idle++;
  conn_set_owner(c, &idle_callbacks, e);
  conn_ref(c, 0);
  return 0;
}

conn *pool_take(pool *p, const char *key, size_t keylen, uint64_t now,
                uint64_t *idle_ms) {
  pool_key *k = find_key(p, key, keylen);
  entry *e;
  conn *c;
  if (!k || !k->head)
    return NULL;
  e = k->head;
  c = e->c;
  unlink_entry(e);
  *idle_ms = now > e->since ? now - e->since : 0;
  free(e);
  conn_set_owner(c, &taken_callbacks, NULL);
  conn_ref(c, 1);
  return c;
}

size_t pool_count(const pool *p, const char *key, size_t keylen) {
  pool_key *k = find_key(p, key, keylen);
  return k ? k->count : 0;
}

size_t pool_idle(const pool *p) { return p->idle; }

void pool_free(pool *p) {
  pool_key *k, *next;
  if (!p)
    return;
  /* Each close fails nothing (idle) and, once libuv has released the
   * handle, calls idle_close, which frees the entry: detach the entries
   * from the keys first, as the keys go now. */
  for (k = p->keys; k; k = next) {
    entry *e, *en;
    next = k->next;
    for (e = k->head; e; e = en) {
      en = e->next;
      conn_set_owner(e->c, &taken_callbacks, NULL);
      conn_close(e->c);
      free(e);
    }
    free(k);
  }
  free(p);
}
