/* cache: the client-side cache of one connection. See cache.h.
 *
 * Two chained hash tables (entries by db + command bytes; key nodes by
 * key bytes), one LRU list of entries, and a FIFO of fills (misses sent,
 * replies awaited). A key node lives while it has entries or fills; it
 * carries the sequence number of its key's last invalidation, which is
 * how a fill learns that its key changed while its reply was on the way.
 */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

typedef struct keynode keynode;
typedef struct entry entry;
typedef struct fill fill;

struct entry {
  entry *hnext;            /* hash chain */
  entry *lprev, *lnext;    /* LRU list: head most recently used */
  entry *kprev, *knext;    /* the entries of its key */
  keynode *key;
  uint64_t hash;
  uint64_t born;           /* ms */
  size_t charge;           /* bytes accounted */
  size_t wire;             /* reply bytes */
  uint32_t cmdlen;
  uint32_t nnodes;
  int db;
  /* One allocation: this struct, the reply's nodes, its wire bytes (the
   * nodes' offsets point into them), then the command bytes. */
  resp_node *nodes;
  char *base;
  char *cmd;
};

struct keynode {
  keynode *hnext;
  entry *entries;
  uint64_t hash;
  uint64_t inval_seq;      /* sequence of its last invalidation, or 0 */
  size_t charge;
  uint32_t nentries;
  uint32_t fills;
  size_t len;
  char name[1];
};

struct fill {
  fill *next;
  keynode *key;
  uint64_t hash;
  uint64_t sent_seq;
  int db;
  uint32_t cmdlen;
  char cmd[1];
};

struct cache {
  entry **buckets;
  size_t nbuckets;         /* power of 2 */
  keynode **kbuckets;
  size_t nkbuckets;
  size_t nkeys;
  entry *lru_head, *lru_tail;
  fill *fhead, *ftail;
  size_t max_entries, max_bytes;
  uint64_t ttl_ms;
  uint64_t seq;            /* invalidation events so far */
  uint64_t flush_seq;      /* the last one that dropped everything */
  int db;                  /* current database; -1 while a SELECT is on
                              its way */
  int last_db;             /* the database of the last SELECT answered */
  uint32_t selects;        /* SELECTs on their way */
  int tx;                  /* a MULTI was sent, its EXEC/DISCARD not yet */
  int off;                 /* the session left what the cache can follow */
  int pass;                /* invalidations go on to the owner too */
  cache_stats st;
};

/* ---- hashing ---------------------------------------------------------- */

static uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

/* Eight bytes at a time: commands are short, and this runs per hit. */
static uint64_t hash_bytes(const char *p, size_t n, uint64_t seed) {
  uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), w;
  while (n >= 8) {
    memcpy(&w, p, 8);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  w = 0;
  memcpy(&w, p, n);
  h = (h ^ w) * 0x100000001b3ULL;
  return mix(h);
}

/* ---- the list of cached commands ------------------------------------- */

/* The listed commands (contract 17), as their length and their bytes
 * packed little end first into two words (generated from the names; see
 * the comment of each group). cache_listed runs per command of a cached
 * client: the name is packed the same way with bit 5 of each byte cleared
 * and compared with the candidates of its length. Clearing bit 5 folds
 * exactly for names made of letters (only 'x' and 'X' become 'X'), and
 * every listed name is letters only. */
static const struct listed {
  uint8_t len;
  uint64_t w[2];
} listed[] = {
  /* GET */
  { 3, { 0x0000000000544547ULL, 0x0ULL } },
  /* TYPE HGET HLEN LLEN */
  { 4, { 0x0000000045505954ULL, 0x0ULL } },
  { 4, { 0x0000000054454748ULL, 0x0ULL } },
  { 4, { 0x000000004e454c48ULL, 0x0ULL } },
  { 4, { 0x000000004e454c4cULL, 0x0ULL } },
  /* HMGET SCARD ZCARD ZRANK */
  { 5, { 0x0000005445474d48ULL, 0x0ULL } },
  { 5, { 0x0000004452414353ULL, 0x0ULL } },
  { 5, { 0x000000445241435aULL, 0x0ULL } },
  { 5, { 0x0000004b4e41525aULL, 0x0ULL } },
  /* STRLEN EXISTS LRANGE LINDEX ZSCORE ZRANGE */
  { 6, { 0x00004e454c525453ULL, 0x0ULL } },
  { 6, { 0x0000535453495845ULL, 0x0ULL } },
  { 6, { 0x000045474e41524cULL, 0x0ULL } },
  { 6, { 0x00005845444e494cULL, 0x0ULL } },
  { 6, { 0x000045524f43535aULL, 0x0ULL } },
  { 6, { 0x000045474e41525aULL, 0x0ULL } },
  /* HGETALL HEXISTS HSTRLEN ZMSCORE */
  { 7, { 0x004c4c4154454748ULL, 0x0ULL } },
  { 7, { 0x0053545349584548ULL, 0x0ULL } },
  { 7, { 0x004e454c52545348ULL, 0x0ULL } },
  { 7, { 0x0045524f43534d5aULL, 0x0ULL } },
  /* GETRANGE SMEMBERS */
  { 8, { 0x45474e4152544547ULL, 0x0ULL } },
  { 8, { 0x535245424d454d53ULL, 0x0ULL } },
  /* SISMEMBER */
  { 9, { 0x45424d454d534953ULL, 0x52ULL } },
  /* SMISMEMBER */
  { 10, { 0x424d454d53494d53ULL, 0x5245ULL } },
};
/* Where each length's group starts in listed[] (group[n + 1] ends it). */
static const uint8_t group[12] = { 0, 0, 0, 0, 1, 5, 9, 15, 19, 21, 22, 23 };
#define EXISTS_W0 0x535453495845ULL /* "EXISTS" */

int cache_listed(const char *name, size_t n, int nargs) {
  uint64_t w[2] = { 0, 0 };
  size_t i;
  /* group[] must match listed[] */
  (void)sizeof(char[sizeof(listed) / sizeof(listed[0]) == 23 ? 1 : -1]);
  if (n < 3 || n > 10 || nargs < 1)
    return 0;
  for (i = 0; i < n; i++)
    w[i >> 3] |= (uint64_t)((unsigned char)name[i] & 0xDF) << (8 * (i & 7));
  for (i = group[n]; i < group[n + 1]; i++)
    if (listed[i].w[0] == w[0] && listed[i].w[1] == w[1])
      return w[0] == EXISTS_W0 && n == 6 ? nargs == 1 : 1;
  return 0;
}

/* Argument 1 (the key) of an encoded command: *N\r\n$L\r\nNAME\r\n$K\r\n */
static int cmd_key(const char *p, size_t len, const char **key,
                   size_t *klen) {
  const char *end = p + len, *q = p;
  size_t n;
  int field;
  while (q < end && *q != '\n') /* past the *N line */
    q++;
  q++;
  for (field = 0; field < 2; field++) {
    if (q >= end || *q != '$')
      return -1;
    n = 0;
    for (q++; q < end && *q >= '0' && *q <= '9'; q++)
      n = n * 10 + (size_t)(*q - '0');
    q += 2; /* \r\n */
    if (q > end || (size_t)(end - q) < n)
      return -1;
    if (field == 1) {
      *key = q;
      *klen = n;
      return 0;
    }
    q += n + 2;
  }
  return -1;
}

/* ---- tables ----------------------------------------------------------- */

cache *cache_new(size_t max_entries, size_t max_bytes, uint64_t ttl_ms,
                 int db) {
  cache *k = (cache *)calloc(1, sizeof(*k));
  if (!k)
    return NULL;
  k->nbuckets = 64;
  k->nkbuckets = 64;
  k->buckets = (entry **)calloc(k->nbuckets, sizeof(entry *));
  k->kbuckets = (keynode **)calloc(k->nkbuckets, sizeof(keynode *));
  if (!k->buckets || !k->kbuckets) {
    free(k->buckets);
    free(k->kbuckets);
    free(k);
    return NULL;
  }
  k->max_entries = max_entries;
  k->max_bytes = max_bytes;
  k->ttl_ms = ttl_ms;
  k->db = k->last_db = db;
  return k;
}

/* Doubles a bucket array (chains re-linked); on no memory it stays. */
static void grow_entries(cache *k) {
  size_t n = k->nbuckets * 2, i;
  entry **nb = (entry **)calloc(n, sizeof(entry *));
  if (!nb)
    return;
  for (i = 0; i < k->nbuckets; i++) {
    entry *e = k->buckets[i], *next;
    for (; e; e = next) {
      next = e->hnext;
      e->hnext = nb[e->hash & (n - 1)];
      nb[e->hash & (n - 1)] = e;
    }
  }
  free(k->buckets);
  k->buckets = nb;
  k->nbuckets = n;
}

static void grow_keys(cache *k) {
  size_t n = k->nkbuckets * 2, i;
  keynode **nb = (keynode **)calloc(n, sizeof(keynode *));
  if (!nb)
    return;
  for (i = 0; i < k->nkbuckets; i++) {
    keynode *x = k->kbuckets[i], *next;
    for (; x; x = next) {
      next = x->hnext;
      x->hnext = nb[x->hash & (n - 1)];
      nb[x->hash & (n - 1)] = x;
    }
  }
  free(k->kbuckets);
  k->kbuckets = nb;
  k->nkbuckets = n;
}

static keynode *key_find(cache *k, const char *p, size_t n, uint64_t h) {
  keynode *x = k->kbuckets[h & (k->nkbuckets - 1)];
  for (; x; x = x->hnext)
    if (x->hash == h && x->len == n && memcmp(x->name, p, n) == 0)
      return x;
  return NULL;
}

static keynode *key_get(cache *k, const char *p, size_t n) {
  uint64_t h = hash_bytes(p, n, 0x6b6579);
  keynode *x = key_find(k, p, n, h);
  if (x)
    return x;
  x = (keynode *)malloc(sizeof(*x) + n);
  if (!x)
    return NULL;
  memset(x, 0, sizeof(*x));
  x->hash = h;
  x->len = n;
  memcpy(x->name, p, n);
  x->charge = sizeof(*x) + n;
  x->hnext = k->kbuckets[h & (k->nkbuckets - 1)];
  k->kbuckets[h & (k->nkbuckets - 1)] = x;
  k->st.bytes += x->charge;
  if (++k->nkeys > k->nkbuckets)
    grow_keys(k);
  return x;
}

/* Frees a key node that has neither entries nor fills. */
static void key_maybe_free(cache *k, keynode *x) {
  keynode **pp;
  if (x->nentries || x->fills)
    return;
  for (pp = &k->kbuckets[x->hash & (k->nkbuckets - 1)]; *pp;
       pp = &(*pp)->hnext)
    if (*pp == x) {
      *pp = x->hnext;
      break;
    }
  k->nkeys--;
  k->st.bytes -= x->charge;
  free(x);
}

static void lru_unlink(cache *k, entry *e) {
  if (e->lprev)
    e->lprev->lnext = e->lnext;
  else
    k->lru_head = e->lnext;
  if (e->lnext)
    e->lnext->lprev = e->lprev;
  else
    k->lru_tail = e->lprev;
}

static void lru_push(cache *k, entry *e) {
  e->lprev = NULL;
  e->lnext = k->lru_head;
  if (k->lru_head)
    k->lru_head->lprev = e;
  else
    k->lru_tail = e;
  k->lru_head = e;
}

/* Unlinks e from every structure and frees it (its key node too when
 * that was its last use). */
static void entry_drop(cache *k, entry *e) {
  entry **pp = &k->buckets[e->hash & (k->nbuckets - 1)];
  keynode *x = e->key;
  for (; *pp; pp = &(*pp)->hnext)
    if (*pp == e) {
      *pp = e->hnext;
      break;
    }
  lru_unlink(k, e);
  if (e->kprev)
    e->kprev->knext = e->knext;
  else
    x->entries = e->knext;
  if (e->knext)
    e->knext->kprev = e->kprev;
  x->nentries--;
  k->st.entries--;
  k->st.bytes -= e->charge;
  free(e);
  key_maybe_free(k, x);
}

static void drop_all(cache *k) {
  while (k->lru_head)
    entry_drop(k, k->lru_head);
}

void cache_free(cache *k) {
  fill *f, *next;
  if (!k)
    return;
  drop_all(k);
  for (f = k->fhead; f; f = next) {
    next = f->next;
    free(f);
  }
  /* Key nodes left are those of fills: free them all. */
  {
    size_t i;
    for (i = 0; i < k->nkbuckets; i++) {
      keynode *x = k->kbuckets[i], *xn;
      for (; x; x = xn) {
        xn = x->hnext;
        free(x);
      }
    }
  }
  free(k->buckets);
  free(k->kbuckets);
  free(k);
}

void cache_free_ext(void *k) { cache_free((cache *)k); }

/* ---- lookup and fill -------------------------------------------------- */

int cache_lookup(cache *k, const char *cmd, size_t len, uint64_t now_ms,
                 resp_reply *out) {
  uint64_t h;
  entry *e;
  fill *f;
  const char *key;
  size_t klen;
  if (k->off || k->tx || k->db < 0 || len > UINT32_MAX)
    return CACHE_BYPASS;
  h = hash_bytes(cmd, len, (uint64_t)k->db);
  for (e = k->buckets[h & (k->nbuckets - 1)]; e; e = e->hnext) {
    if (e->hash != h || e->cmdlen != len || e->db != k->db ||
        memcmp(e->cmd, cmd, len) != 0)
      continue;
    if (now_ms - e->born >= k->ttl_ms) {
      entry_drop(k, e); /* too old: asked again */
      break;
    }
    if (k->lru_head != e) {
      lru_unlink(k, e);
      lru_push(k, e);
    }
    out->nodes = e->nodes;
    out->count = e->nnodes;
    out->base = e->base;
    out->bytes = e->wire;
    k->st.hits++;
    return CACHE_HIT;
  }
  if (cmd_key(cmd, len, &key, &klen) != 0)
    return CACHE_BYPASS;
  f = (fill *)malloc(sizeof(*f) + len);
  if (!f)
    return CACHE_BYPASS;
  f->key = key_get(k, key, klen);
  if (!f->key) {
    free(f);
    return CACHE_BYPASS;
  }
  f->key->fills++;
  f->next = NULL;
  f->hash = h;
  f->sent_seq = k->seq;
  f->db = k->db;
  f->cmdlen = (uint32_t)len;
  memcpy(f->cmd, cmd, len);
  if (k->ftail)
    k->ftail->next = f;
  else
    k->fhead = f;
  k->ftail = f;
  k->st.misses++;
  return CACHE_MISS;
}

static void fill_release(cache *k, fill *f) {
  f->key->fills--;
  key_maybe_free(k, f->key);
  free(f);
}

void cache_fill_cancel(cache *k) {
  fill *f = k->ftail, *p;
  if (!f)
    return;
  if (k->fhead == f) {
    k->fhead = k->ftail = NULL;
  } else {
    for (p = k->fhead; p->next != f; p = p->next)
      ;
    p->next = NULL;
    k->ftail = p;
  }
  k->st.misses--;
  fill_release(k, f);
}

/* Drops least recently used entries until there is room for need bytes
 * and one more entry. */
static void make_room(cache *k, size_t need) {
  while (k->lru_tail && (k->st.entries + 1 > k->max_entries ||
                         k->st.bytes + need > k->max_bytes)) {
    entry_drop(k, k->lru_tail);
    k->st.evictions++;
  }
}

void cache_fill_end(cache *k, const resp_reply *r, uint64_t now_ms) {
  fill *f = k->fhead;
  entry *e, *old;
  size_t nodes_sz, charge;
  int t;
  if (!f)
    return;
  k->fhead = f->next;
  if (!k->fhead)
    k->ftail = NULL;
  t = r->nodes->type;
  if (k->off || t == RESP_ERROR || t == RESP_BLOB_ERROR ||
      t == RESP_PUSH || f->key->inval_seq > f->sent_seq ||
      k->flush_seq > f->sent_seq || r->count > UINT32_MAX)
    goto done; /* not kept: see the race rule in cache.h */
  nodes_sz = r->count * sizeof(resp_node);
  charge = sizeof(entry) + f->cmdlen + nodes_sz + r->bytes;
  if (charge > k->max_bytes)
    goto done;
  /* The same command may have been filled twice (two tasks missed at
   * once): the later reply replaces the earlier entry. */
  for (old = k->buckets[f->hash & (k->nbuckets - 1)]; old;
       old = old->hnext)
    if (old->hash == f->hash && old->cmdlen == f->cmdlen &&
        old->db == f->db && memcmp(old->cmd, f->cmd, f->cmdlen) == 0) {
      entry_drop(k, old);
      break;
    }
  /* The key node must outlive make_room: the fill still holds it. */
  make_room(k, charge);
  if (k->st.bytes + charge > k->max_bytes)
    goto done; /* key nodes of reads in flight fill what is left */
  e = (entry *)malloc(sizeof(entry) + f->cmdlen + nodes_sz + r->bytes);
  if (!e)
    goto done;
  memset(e, 0, sizeof(*e));
  e->hash = f->hash;
  e->born = now_ms;
  e->charge = charge;
  e->wire = r->bytes;
  e->cmdlen = f->cmdlen;
  e->nnodes = (uint32_t)r->count;
  e->db = f->db;
  e->nodes = (resp_node *)(void *)(e + 1);
  e->base = (char *)(e->nodes + r->count);
  e->cmd = e->base + r->bytes;
  memcpy(e->nodes, r->nodes, nodes_sz);
  memcpy(e->base, r->base, r->bytes);
  memcpy(e->cmd, f->cmd, f->cmdlen);
  e->key = f->key;
  e->hnext = k->buckets[e->hash & (k->nbuckets - 1)];
  k->buckets[e->hash & (k->nbuckets - 1)] = e;
  lru_push(k, e);
  e->kprev = NULL;
  e->knext = f->key->entries;
  if (e->knext)
    e->knext->kprev = e;
  f->key->entries = e;
  f->key->nentries++;
  k->st.entries++;
  k->st.bytes += charge;
  if (k->st.entries > k->nbuckets)
    grow_entries(k);
done:
  fill_release(k, f);
}

/* ---- invalidation ----------------------------------------------------- */

static void invalidate_key(cache *k, const char *p, size_t n) {
  keynode *x = key_find(k, p, n, hash_bytes(p, n, 0x6b6579));
  k->st.invalidations++;
  k->seq++;
  if (!x)
    return;
  x->inval_seq = k->seq;
  x->fills++; /* hold it while its entries go */
  while (x->entries)
    entry_drop(k, x->entries);
  x->fills--;
  key_maybe_free(k, x);
}

static void flush(cache *k) {
  k->flush_seq = ++k->seq;
  drop_all(k);
}

int cache_push(void *ext, const resp_reply *r) {
  cache *k = (cache *)ext;
  const resp_node *n = r->nodes, *name, *list;
  size_t i, idx;
  if (n->type != RESP_PUSH || n->len != 2)
    return 0;
  name = &r->nodes[1];
  if ((name->type != RESP_BULK && name->type != RESP_SIMPLE) ||
      name->len != 10 || memcmp(r->base + name->off, "invalidate", 10) != 0)
    return 0;
  list = &r->nodes[2];
  if (list->type == RESP_NULL) {
    k->st.invalidations++;
    flush(k);
  } else if (list->type == RESP_ARRAY || list->type == RESP_SET) {
    idx = 3;
    for (i = 0; i < (size_t)list->len; i++) {
      const resp_node *x = &r->nodes[idx];
      if (x->type == RESP_BULK || x->type == RESP_SIMPLE)
        invalidate_key(k, r->base + x->off, (size_t)x->len);
      else
        flush(k); /* a key we cannot name: everything goes */
      idx += x->size;
    }
  } else {
    k->st.invalidations++;
    flush(k);
  }
  return !k->pass;
}

void cache_set_pass(cache *k, int on) { k->pass = on != 0; }

/* ---- session ---------------------------------------------------------- */

void cache_tx(cache *k, int open) { k->tx = open != 0; }

void cache_select_sent(cache *k) {
  k->selects++;
  k->db = -1;
}

void cache_select_done(cache *k, int db) {
  if (db == -2) {
    cache_off(k);
    return;
  }
  if (db >= 0)
    k->last_db = db;
  if (k->selects > 0 && --k->selects == 0)
    k->db = k->last_db;
}

void cache_off(cache *k) {
  k->off = 1;
  flush(k);
}

void cache_clear(cache *k) { flush(k); }

void cache_get_stats(const cache *k, cache_stats *st) { *st = k->st; }
