/* pool: keyed idle lists. See pool.h.
 *
 * Keys are few (one per server/db/identity a program uses), so a linked list
 * of keys searched with strcmp costs nothing next to a connect; each key
 * holds a LIFO list, so the warmest connection is reused first.
 */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

struct pool_key {
  pool_key *next;
  conn *head;      /* most recently pooled */
  size_t count;
  char name[1];
};

void pool_init(pool *p) { memset(p, 0, sizeof(*p)); }

static pool_key *find_key(const pool *p, const char *key) {
  pool_key *k;
  for (k = p->keys; k; k = k->next)
    if (strcmp(k->name, key) == 0)
      return k;
  return NULL;
}

void pool_unlink(conn *c) {
  pool_key *k = (pool_key *)c->pool_key;
  if (!(c->flags & CONN_POOLED))
    return;
  if (c->pool_prev)
    c->pool_prev->pool_next = c->pool_next;
  else
    k->head = c->pool_next;
  if (c->pool_next)
    c->pool_next->pool_prev = c->pool_prev;
  k->count--;
  c->pool->idle--;
  c->pool_prev = c->pool_next = NULL;
  c->flags &= ~CONN_POOLED;
  c->pool_key = NULL;
  c->pool = NULL;
}

int pool_put(pool *p, conn *c, const char *key, size_t max) {
  pool_key *k = find_key(p, key);
  if (max == 0 || (k && k->count >= max))
    return -1;
  if (!k) {
    size_t n = strlen(key);
    k = (pool_key *)calloc(1, sizeof(*k) + n);
    if (!k)
      return -1;
    memcpy(k->name, key, n + 1);
    k->next = p->keys;
    p->keys = k;
  }
  c->pool = p;
  c->pool_key = k;
  c->pool_prev = NULL;
  c->pool_next = k->head;
  if (k->head)
    k->head->pool_prev = c;
  k->head = c;
  k->count++;
  p->idle++;
  c->flags |= CONN_POOLED;
  c->idle_since = uv_now(c->loop);
  conn_ref(c, 0);
  return 0;
}

conn *pool_take(pool *p, const char *key, uint64_t now, uint64_t *idle_ms) {
  pool_key *k = find_key(p, key);
  conn *c;
  if (!k || !k->head)
    return NULL;
  c = k->head;
  pool_unlink(c);
  conn_ref(c, 1);
  *idle_ms = now > c->idle_since ? now - c->idle_since : 0;
  return c;
}

size_t pool_count(const pool *p, const char *key) {
  pool_key *k = find_key(p, key);
  return k ? k->count : 0;
}

void pool_close_all(pool *p) {
  pool_key *k = p->keys, *next;
  for (; k; k = next) {
    next = k->next;
    while (k->head)
      conn_close(k->head); /* unlinks it */
    free(k);
  }
  p->keys = NULL;
  p->idle = 0;
}
