/* cmdinfo: the command table. See cmdinfo.h.
 *
 * One sorted array, searched by binary search on the upper-cased name.
 * Only commands the library treats specially, and the read-only ones (for
 * replica routing later), are listed; everything else is "nothing
 * special". */
#include "cmdinfo.h"

#include <stdlib.h>
#include <string.h>

#define RO CMD_READONLY
#define BL CMD_BLOCKING
#define PS CMD_PUBSUB
#define SE CMD_SESSION

static cmdinfo table[] = {
  /* blocking commands, by where their timeout is */
  {"BLPOP", BL, BLOCK_LAST}, {"BRPOP", BL, BLOCK_LAST},
  {"BRPOPLPUSH", BL, BLOCK_LAST}, {"BLMOVE", BL, BLOCK_LAST},
  {"BZPOPMIN", BL, BLOCK_LAST}, {"BZPOPMAX", BL, BLOCK_LAST},
  {"BLMPOP", BL, BLOCK_FIRST}, {"BZMPOP", BL, BLOCK_FIRST},
  {"WAIT", BL, BLOCK_LAST_MS}, {"WAITAOF", BL, BLOCK_LAST_MS},
  {"XREAD", BL | RO, BLOCK_OPTION_MS}, {"XREADGROUP", BL, BLOCK_OPTION_MS},
  /* pub/sub */
  {"SUBSCRIBE", PS | CMD_SUBSCRIBE | SE, 0},
  {"PSUBSCRIBE", PS | CMD_SUBSCRIBE | SE, 0},
  {"SSUBSCRIBE", PS | CMD_SUBSCRIBE | CMD_SHARD | SE, 0},
  {"UNSUBSCRIBE", PS, 0}, {"PUNSUBSCRIBE", PS, 0},
  {"SUNSUBSCRIBE", PS | CMD_SHARD, 0},
  /* session state */
  {"MULTI", CMD_MULTI, 0}, {"EXEC", CMD_ENDTX, 0}, {"DISCARD", CMD_ENDTX, 0},
  {"WATCH", CMD_WATCH, 0}, {"UNWATCH", CMD_UNWATCH, 0},
  {"AUTH", CMD_HANDSHAKE, 0}, {"SELECT", CMD_HANDSHAKE, 0},
  {"HELLO", CMD_HANDSHAKE, 0}, {"RESET", SE, 0}, {"QUIT", SE, 0},
  {"READONLY", SE, 0}, {"READWRITE", SE, 0},
  {"MONITOR", SE | CMD_NOREPLY, 0},
  {"CLIENT", CMD_SUBCOMMANDS, 0},
  /* read-only */
  {"GET", RO, 0}, {"MGET", RO, 0}, {"STRLEN", RO, 0}, {"GETRANGE", RO, 0},
  {"SUBSTR", RO, 0}, {"LCS", RO, 0}, {"EXISTS", RO, 0}, {"TYPE", RO, 0},
  {"TTL", RO, 0}, {"PTTL", RO, 0}, {"EXPIRETIME", RO, 0},
  {"PEXPIRETIME", RO, 0}, {"TOUCH", RO, 0}, {"DUMP", RO, 0},
  {"KEYS", RO, 0}, {"SCAN", RO, 0}, {"RANDOMKEY", RO, 0}, {"DBSIZE", RO, 0},
  {"HGET", RO, 0}, {"HMGET", RO, 0}, {"HGETALL", RO, 0}, {"HKEYS", RO, 0},
  {"HVALS", RO, 0}, {"HLEN", RO, 0}, {"HEXISTS", RO, 0},
  {"HSTRLEN", RO, 0}, {"HSCAN", RO, 0}, {"HRANDFIELD", RO, 0},
  {"LRANGE", RO, 0}, {"LINDEX", RO, 0}, {"LLEN", RO, 0}, {"LPOS", RO, 0},
  {"SMEMBERS", RO, 0}, {"SISMEMBER", RO, 0}, {"SMISMEMBER", RO, 0},
  {"SCARD", RO, 0}, {"SRANDMEMBER", RO, 0}, {"SSCAN", RO, 0},
  {"SINTER", RO, 0}, {"SUNION", RO, 0}, {"SDIFF", RO, 0},
  {"SINTERCARD", RO, 0},
  {"ZRANGE", RO, 0}, {"ZRANGEBYSCORE", RO, 0}, {"ZREVRANGE", RO, 0},
  {"ZREVRANGEBYSCORE", RO, 0}, {"ZRANGEBYLEX", RO, 0},
  {"ZREVRANGEBYLEX", RO, 0}, {"ZSCORE", RO, 0}, {"ZMSCORE", RO, 0},
  {"ZRANK", RO, 0}, {"ZREVRANK", RO, 0}, {"ZCARD", RO, 0},
  {"ZCOUNT", RO, 0}, {"ZLEXCOUNT", RO, 0}, {"ZSCAN", RO, 0},
  {"ZRANDMEMBER", RO, 0}, {"ZINTER", RO, 0}, {"ZUNION", RO, 0},
  {"ZDIFF", RO, 0}, {"ZINTERCARD", RO, 0},
  {"GETBIT", RO, 0}, {"BITCOUNT", RO, 0}, {"BITPOS", RO, 0},
  {"BITFIELD_RO", RO, 0}, {"PFCOUNT", RO, 0},
  {"GEOPOS", RO, 0}, {"GEODIST", RO, 0}, {"GEOHASH", RO, 0},
  {"GEOSEARCH", RO, 0}, {"GEORADIUS_RO", RO, 0},
  {"GEORADIUSBYMEMBER_RO", RO, 0},
  {"XRANGE", RO, 0}, {"XREVRANGE", RO, 0}, {"XLEN", RO, 0},
  {"XPENDING", RO, 0},
  {"SORT_RO", RO, 0}, {"EVAL_RO", RO, 0}, {"EVALSHA_RO", RO, 0},
  {"FCALL_RO", RO, 0},
};

/* CLIENT's subcommands that change the session. REPLY is CMD_NOREPLY
 * unless its argument is ON (the caller checks: cmdinfo_name_is). */
static cmdinfo client_sub[] = {
  {"CACHING", SE, 0}, {"NO-EVICT", SE, 0}, {"NO-TOUCH", SE, 0},
  {"REPLY", SE | CMD_NOREPLY, 0}, {"SETINFO", SE, 0}, {"SETNAME", CMD_HANDSHAKE, 0},
  /* TRACKING: the connect handshake of a cache (contract 17) turns it
   * on; the pool key holds the cache settings. */
  {"TRACKING", CMD_HANDSHAKE, 0},
};

#define NTABLE (sizeof(table) / sizeof(table[0]))
#define NSUB (sizeof(client_sub) / sizeof(client_sub[0]))
#define MAXNAME 32

static int ready;
/* The filter of cmdinfo_special: lengths and first letters of the names
 * that are more than read-only. */
static size_t special_min = (size_t)-1, special_max;
static uint32_t special_letters;

static int by_name(const void *a, const void *b) {
  return strcmp(((const cmdinfo *)a)->name, ((const cmdinfo *)b)->name);
}

static void init(void) {
  size_t i;
  qsort(table, NTABLE, sizeof(table[0]), by_name);
  qsort(client_sub, NSUB, sizeof(client_sub[0]), by_name);
  for (i = 0; i < NTABLE; i++) {
    size_t n = strlen(table[i].name);
    if ((table[i].flags & ~(uint32_t)CMD_READONLY) == 0)
      continue;
    if (n < special_min)
      special_min = n;
    if (n > special_max)
      special_max = n;
    special_letters |= 1u << (table[i].name[0] - 'A');
  }
  ready = 1;
}

static int upper_ascii(int c) { return c >= 'a' && c <= 'z' ? c - 32 : c; }

int cmdinfo_name_is(const char *p, size_t n, const char *upper) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!upper[i] || upper_ascii((unsigned char)p[i]) != upper[i])
      return 0;
  return upper[n] == 0;
}

static const cmdinfo *search(const cmdinfo *t, size_t count, const char *p,
                             size_t n) {
  char key[MAXNAME + 1];
  size_t lo = 0, hi = count, i;
  if (n == 0 || n > MAXNAME)
    return NULL;
  for (i = 0; i < n; i++)
    key[i] = (char)upper_ascii((unsigned char)p[i]);
  key[n] = 0;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int d = strcmp(key, t[mid].name);
    if (d == 0)
      return &t[mid];
    if (d < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

const cmdinfo *cmdinfo_lookup(const char *name, size_t n) {
  if (!ready)
    init();
  return search(table, NTABLE, name, n);
}

const cmdinfo *cmdinfo_special(const char *name, size_t n) {
  const cmdinfo *ci;
  int first;
  if (!ready)
    init();
  if (n < special_min || n > special_max)
    return NULL;
  first = upper_ascii((unsigned char)name[0]) - 'A';
  if (first < 0 || first > 25 || !(special_letters & (1u << first)))
    return NULL;
  ci = search(table, NTABLE, name, n);
  return ci && (ci->flags & ~(uint32_t)CMD_READONLY) ? ci : NULL;
}

const cmdinfo *cmdinfo_sub(const cmdinfo *parent, const char *sub,
                           size_t n) {
  if (!ready)
    init();
  if (!parent || !(parent->flags & CMD_SUBCOMMANDS))
    return NULL;
  return search(client_sub, NSUB, sub, n); /* CLIENT is the only parent */
}

double cmdinfo_block_seconds(double v, int ok, int ms) {
  double scale = ms ? 0.001 : 1;
  if (!ok || !(v >= 0))
    return 0;
  if (v == 0 || v * scale > 1e9)
    return -1;
  return v * scale;
}
