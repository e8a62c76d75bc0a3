/* Unit tests of cache.c: lookups, fills, the race rule, invalidations,
 * ttl, both bounds and their byte accounting, session states. Replies
 * and pushes are parsed from RESP bytes by the real reader. One case per
 * run:  test_cache CASE  (cache.cmake registers each TEST(name)). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "resp.h"

static int failures;
#define CHECK(c)                                                              \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);   \
      failures++;                                                             \
    }                                                                         \
  } while (0)
#define REQUIRE(c)                                                            \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #c); \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

/* ---- helpers ---------------------------------------------------------- */

/* One parsed reply; valid until the next parse. */
static resp_reader rd;
static const resp_reply *parse(const char *bytes) {
  static resp_reply r;
  resp_reader_reset(&rd);
  REQUIRE(resp_reader_feed(&rd, bytes, strlen(bytes)) == 0);
  REQUIRE(resp_reader_next(&rd, &r) == RESP_OK);
  return &r;
}

/* An encoded command of up to 4 words. */
static buf cmdbuf;
static const char *cmd(const char *a, const char *b, const char *c2,
                       size_t *len) {
  const char *argv[3] = { a, b, c2 };
  size_t lens[3];
  int n = c2 ? 3 : b ? 2 : 1, i;
  for (i = 0; i < n; i++)
    lens[i] = strlen(argv[i]);
  cmdbuf.len = 0;
  REQUIRE(resp_encode_command(&cmdbuf, n, argv, lens) == 0);
  *len = cmdbuf.len;
  return cmdbuf.data;
}

static int lookup(cache *k, const char *a, const char *b, const char *c2,
                  uint64_t now, resp_reply *out) {
  size_t len;
  const char *p = cmd(a, b, c2, &len);
  return cache_lookup(k, p, len, now, out);
}

/* A miss then its reply: the entry is made (or not). */
static void fill(cache *k, const char *a, const char *b, const char *reply,
                 uint64_t now) {
  resp_reply out;
  REQUIRE(lookup(k, a, b, NULL, now, &out) == CACHE_MISS);
  cache_fill_end(k, parse(reply), now);
}

static int hit_is(cache *k, const char *a, const char *b, const char *want,
                  uint64_t now) {
  resp_reply out;
  if (lookup(k, a, b, NULL, now, &out) != CACHE_HIT)
    return 0;
  return out.nodes[0].type == RESP_BULK &&
         (size_t)out.nodes[0].len == strlen(want) &&
         memcmp(out.base + out.nodes[0].off, want, strlen(want)) == 0;
}

static cache_stats stats(cache *k) {
  cache_stats st;
  cache_get_stats(k, &st);
  return st;
}

static int inval(cache *k, const char *key) {
  char b[256];
  snprintf(b, sizeof(b), ">2\r\n$10\r\ninvalidate\r\n*1\r\n$%zu\r\n%s\r\n",
           strlen(key), key);
  return cache_push(k, parse(b));
}

/* ---- cases ------------------------------------------------------------ */

#define TEST(name) static void test_##name(void)

TEST(listed) {
  CHECK(cache_listed("GET", 3, 1));
  CHECK(cache_listed("get", 3, 1));
  CHECK(cache_listed("zRange", 6, 5));
  CHECK(cache_listed("SMISMEMBER", 10, 3));
  CHECK(cache_listed("EXISTS", 6, 1));
  CHECK(!cache_listed("EXISTS", 6, 2)); /* one key only */
  CHECK(!cache_listed("GET", 3, 0));
  CHECK(!cache_listed("SET", 3, 2));
  CHECK(!cache_listed("MGET", 4, 1));
  CHECK(!cache_listed("ZRANGESTORE", 11, 4));
  CHECK(!cache_listed("GETDEL", 6, 1));
  CHECK(!cache_listed("HGETX", 5, 1));
  CHECK(!cache_listed("G\x05T", 3, 1)); /* folds to no letter */
  CHECK(!cache_listed("ZRANGEBYSCORE", 13, 4));
  {
    static const char *const all[] = {
      "get", "strlen", "getrange", "exists", "type", "hget", "hmget",
      "hgetall", "hlen", "hexists", "hstrlen", "lrange", "llen", "lindex",
      "smembers", "sismember", "smismember", "scard", "zscore", "zmscore",
      "zcard", "zrank", "zrange", NULL
    };
    int i;
    for (i = 0; all[i]; i++) {
      CHECK(cache_listed(all[i], strlen(all[i]), 1));
      /* one letter changed: not listed */
      {
        char x[16];
        strcpy(x, all[i]);
        x[strlen(x) - 1] = 'q';
        CHECK(!cache_listed(x, strlen(x), 1));
      }
    }
  }
}

TEST(hit_after_fill) {
  cache *k = cache_new(10, 1 << 20, 60000, 0);
  resp_reply out;
  REQUIRE(k);
  CHECK(lookup(k, "GET", "a", NULL, 0, &out) == CACHE_MISS);
  cache_fill_end(k, parse("$5\r\nhello\r\n"), 0);
  CHECK(hit_is(k, "GET", "a", "hello", 1));
  CHECK(hit_is(k, "GET", "a", "hello", 2));
  CHECK(stats(k).hits == 2 && stats(k).misses == 1 &&
        stats(k).entries == 1);
  /* A NULL is kept; an error is not. */
  fill(k, "GET", "nil", "_\r\n", 3);
  CHECK(lookup(k, "GET", "nil", NULL, 4, &out) == CACHE_HIT &&
        out.nodes[0].type == RESP_NULL);
  fill(k, "HGET", "a", "-WRONGTYPE x\r\n", 5);
  CHECK(lookup(k, "HGET", "a", NULL, 6, &out) == CACHE_MISS);
  cache_fill_end(k, parse("-WRONGTYPE x\r\n"), 6);
  /* Aggregates come back whole. */
  fill(k, "HGETALL", "h", "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*1\r\n#t\r\n", 7);
  CHECK(lookup(k, "HGETALL", "h", NULL, 8, &out) == CACHE_HIT);
  CHECK(out.count == 6 && out.nodes[0].type == RESP_MAP &&
        out.nodes[2].v.i == 1 && out.nodes[5].v.b == 1 &&
        memcmp(out.base + out.nodes[3].off, "b", 1) == 0);
  cache_free(k);
}

TEST(db_is_part_of_the_key) {
  cache *k = cache_new(10, 1 << 20, 60000, 0);
  resp_reply out;
  fill(k, "GET", "a", "$2\r\nv0\r\n", 0);
  cache_select_sent(k);
  CHECK(lookup(k, "GET", "a", NULL, 0, &out) == CACHE_BYPASS);
  cache_select_done(k, 1);
  CHECK(lookup(k, "GET", "a", NULL, 0, &out) == CACHE_MISS);
  cache_fill_end(k, parse("$2\r\nv1\r\n"), 0);
  CHECK(hit_is(k, "GET", "a", "v1", 0));
  cache_select_sent(k);
  cache_select_done(k, -1); /* rejected: still db 1 */
  CHECK(hit_is(k, "GET", "a", "v1", 0));
  cache_select_sent(k);
  cache_select_done(k, 0);
  CHECK(hit_is(k, "GET", "a", "v0", 0));
  /* One invalidation drops the key in every database. */
  CHECK(inval(k, "a") == 1);
  CHECK(stats(k).entries == 0);
  /* A SELECT queued in a transaction: the cache turns off. */
  cache_select_sent(k);
  cache_select_done(k, -2);
  CHECK(lookup(k, "GET", "a", NULL, 0, &out) == CACHE_BYPASS);
  cache_free(k);
}

TEST(invalidation_and_flush) {
  cache *k = cache_new(10, 1 << 20, 60000, 0);
  fill(k, "GET", "a", "$1\r\n1\r\n", 0);
  fill(k, "STRLEN", "a", ":1\r\n", 0);
  fill(k, "GET", "b", "$1\r\n2\r\n", 0);
  CHECK(stats(k).entries == 3);
  CHECK(inval(k, "a") == 1);
  CHECK(stats(k).entries == 1 && stats(k).invalidations == 1);
  CHECK(hit_is(k, "GET", "b", "2", 0));
  /* Several keys in one push; an unknown key counts too. */
  fill(k, "GET", "a", "$1\r\n1\r\n", 0);
  CHECK(cache_push(k, parse(">2\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n"
                            "$1\r\nz\r\n")) == 1);
  CHECK(stats(k).entries == 1 && stats(k).invalidations == 3);
  /* A null list drops all, counting one. */
  CHECK(cache_push(k, parse(">2\r\n$10\r\ninvalidate\r\n_\r\n")) == 1);
  CHECK(stats(k).entries == 0 && stats(k).invalidations == 4);
  CHECK(stats(k).bytes == 0);
  /* Other pushes are not the cache's. */
  CHECK(cache_push(k, parse(">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"))
        == 0);
  /* With push handlers, invalidations go on to them too. */
  cache_set_pass(k, 1);
  CHECK(inval(k, "a") == 0);
  cache_free(k);
}

TEST(race_rule) {
  cache *k = cache_new(10, 1 << 20, 60000, 0);
  resp_reply out;
  /* Sent, then its key invalidated, then its reply: returned, not kept. */
  CHECK(lookup(k, "GET", "a", NULL, 0, &out) == CACHE_MISS);
  CHECK(lookup(k, "GET", "b", NULL, 0, &out) == CACHE_MISS);
  inval(k, "a");
  cache_fill_end(k, parse("$3\r\nold\r\n"), 0);
  cache_fill_end(k, parse("$1\r\nb\r\n"), 0);
  CHECK(lookup(k, "GET", "a", NULL, 0, &out) == CACHE_MISS);
  cache_fill_end(k, parse("$3\r\nnew\r\n"), 0);
  CHECK(hit_is(k, "GET", "a", "new", 0));
  CHECK(hit_is(k, "GET", "b", "b", 0)); /* another key: kept */
  /* A flush between send and reply: not kept either. */
  CHECK(lookup(k, "GET", "c", NULL, 0, &out) == CACHE_MISS);
  cache_push(k, parse(">2\r\n$10\r\ninvalidate\r\n_\r\n"));
  cache_fill_end(k, parse("$1\r\nc\r\n"), 0);
  CHECK(stats(k).entries == 0);
  /* cache_clear counts as a flush for fills on their way. */
  CHECK(lookup(k, "GET", "d", NULL, 0, &out) == CACHE_MISS);
  cache_clear(k);
  cache_fill_end(k, parse("$1\r\nd\r\n"), 0);
  CHECK(stats(k).entries == 0 && stats(k).bytes == 0);
  /* The same command missed twice: one entry, the later reply. */
  CHECK(lookup(k, "GET", "e", NULL, 0, &out) == CACHE_MISS);
  CHECK(lookup(k, "GET", "e", NULL, 0, &out) == CACHE_MISS);
  cache_fill_end(k, parse("$2\r\ne1\r\n"), 0);
  cache_fill_end(k, parse("$2\r\ne2\r\n"), 0);
  CHECK(stats(k).entries == 1 && hit_is(k, "GET", "e", "e2", 0));
  /* A fill not sent after all. */
  CHECK(lookup(k, "GET", "f", NULL, 0, &out) == CACHE_MISS);
  cache_fill_cancel(k);
  CHECK(stats(k).misses == 7);
  cache_free(k);
}

TEST(ttl) {
  cache *k = cache_new(10, 1 << 20, 100, 0);
  resp_reply out;
  fill(k, "GET", "a", "$1\r\n1\r\n", 1000);
  CHECK(hit_is(k, "GET", "a", "1", 1099));
  CHECK(lookup(k, "GET", "a", NULL, 1100, &out) == CACHE_MISS);
  CHECK(stats(k).entries == 0);
  cache_free(k);
}

TEST(max_entries_lru) {
  cache *k = cache_new(2, 1 << 20, 60000, 0);
  resp_reply out;
  fill(k, "GET", "a", "$1\r\na\r\n", 0);
  fill(k, "GET", "b", "$1\r\nb\r\n", 0);
  CHECK(hit_is(k, "GET", "a", "a", 0)); /* a is now the most recent */
  fill(k, "GET", "c", "$1\r\nc\r\n", 0);
  CHECK(stats(k).entries == 2 && stats(k).evictions == 1);
  CHECK(hit_is(k, "GET", "a", "a", 0));
  CHECK(hit_is(k, "GET", "c", "c", 0));
  CHECK(lookup(k, "GET", "b", NULL, 0, &out) == CACHE_MISS);
  cache_fill_cancel(k);
  cache_free(k);
}

TEST(max_bytes_accounting) {
  cache *k = cache_new(1000, 2000, 60000, 0);
  char big[3000], reply[3100];
  uint64_t b1;
  int i;
  fill(k, "GET", "a", "$1\r\na\r\n", 0);
  b1 = stats(k).bytes;
  /* Key, command and reply are all in it. */
  CHECK(b1 >= strlen("a") + strlen("*2\r\n$3\r\nGET\r\n$1\r\na\r\n") +
                 strlen("$1\r\na\r\n"));
  memset(big, 'x', 1500);
  big[1500] = 0;
  snprintf(reply, sizeof(reply), "$1500\r\n%s\r\n", big);
  fill(k, "GET", "big", reply, 0);
  CHECK(stats(k).bytes <= 2000);
  CHECK(stats(k).bytes >= 1500);
  CHECK(stats(k).entries == 1 && stats(k).evictions == 1); /* a went */
  /* Larger than max_bytes on its own: never kept. */
  memset(big, 'y', 2500);
  big[2500] = 0;
  snprintf(reply, sizeof(reply), "$2500\r\n%s\r\n", big);
  fill(k, "GET", "huge", reply, 0);
  CHECK(stats(k).bytes <= 2000);
  for (i = 0; i < 200; i++) {
    char key[16];
    snprintf(key, sizeof(key), "k%d", i);
    fill(k, "GET", key, "$3\r\nabc\r\n", 0);
    CHECK(stats(k).bytes <= 2000);
  }
  cache_clear(k);
  CHECK(stats(k).bytes == 0 && stats(k).entries == 0);
  cache_free(k);
}

TEST(transactions_and_off) {
  cache *k = cache_new(10, 1 << 20, 60000, 0);
  resp_reply out;
  fill(k, "GET", "a", "$1\r\na\r\n", 0);
  cache_tx(k, 1);
  CHECK(lookup(k, "GET", "a", NULL, 0, &out) == CACHE_BYPASS);
  cache_tx(k, 0);
  CHECK(hit_is(k, "GET", "a", "a", 0));
  /* A fill on its way when the cache goes off is not kept. */
  CHECK(lookup(k, "GET", "b", NULL, 0, &out) == CACHE_MISS);
  cache_off(k);
  cache_fill_end(k, parse("$1\r\nb\r\n"), 0);
  CHECK(stats(k).entries == 0);
  CHECK(lookup(k, "GET", "a", NULL, 0, &out) == CACHE_BYPASS);
  cache_free(k);
}

TEST(free_with_fills_pending) {
  cache *k = cache_new(10, 1 << 20, 60000, 0);
  resp_reply out;
  int i;
  for (i = 0; i < 100; i++) {
    char key[16];
    snprintf(key, sizeof(key), "k%d", i);
    CHECK(lookup(k, "GET", key, NULL, 0, &out) == CACHE_MISS);
  }
  cache_free(k); /* ASan/valgrind: nothing leaks */
}

/* A model check: random reads, fills, writes and invalidations against a
 * model of the server; a hit must always give the server's value as of
 * the last invalidation read for that key. */
TEST(model) {
  cache *k = cache_new(8, 4000, 1000000, 0);
  int server[16], seen[16]; /* value now; value as of the last inval read */
  int pending[64], npend = 0, i, step;
  unsigned seed = 12345;
  for (i = 0; i < 16; i++)
    server[i] = seen[i] = 0;
  for (step = 0; step < 200000; step++) {
    int op, key;
    char ks[8], rep[32];
    resp_reply out;
    seed = seed * 1103515245u + 12345u;
    op = (int)((seed >> 16) % 10);
    key = (int)((seed >> 8) % 16);
    snprintf(ks, sizeof(ks), "k%d", key);
    if (op < 5) { /* a read */
      int st = lookup(k, "GET", ks, NULL, 0, &out);
      if (st == CACHE_HIT) {
        int v = atoi(out.base + out.nodes[0].off);
        CHECK(v == seen[key] && v == server[key]);
      } else if (st == CACHE_MISS) {
        if (npend < 64)
          pending[npend++] = key;
        else
          cache_fill_cancel(k);
      }
    } else if (op < 8 && npend > 0) { /* the oldest reply arrives */
      int kk = pending[0];
      snprintf(rep, sizeof(rep), "$%d\r\n%d\r\n",
               server[kk] < 10 ? 1 : server[kk] < 100 ? 2 : server[kk] < 1000
               ? 3 : server[kk] < 10000 ? 4 : server[kk] < 100000 ? 5 : 6,
               server[kk]);
      memmove(pending, pending + 1, (size_t)--npend * sizeof(int));
      cache_fill_end(k, parse(rep), 0);
    } else if (op == 8) { /* a write, and its invalidation read */
      server[key]++;
      seen[key] = server[key];
      inval(k, ks);
    } else if (((seed >> 4) & 63) == 0) {
      for (i = 0; i < 16; i++)
        seen[i] = server[i];
      cache_push(k, parse(">2\r\n$10\r\ninvalidate\r\n_\r\n"));
    }
    CHECK(stats(k).entries <= 8 && stats(k).bytes <= 4000);
  }
  cache_free(k);
}

/* ---- main ------------------------------------------------------------- */

static const struct {
  const char *name;
  void (*fn)(void);
} cases[] = {
  { "listed", test_listed },
  { "hit_after_fill", test_hit_after_fill },
  { "db_is_part_of_the_key", test_db_is_part_of_the_key },
  { "invalidation_and_flush", test_invalidation_and_flush },
  { "race_rule", test_race_rule },
  { "ttl", test_ttl },
  { "max_entries_lru", test_max_entries_lru },
  { "max_bytes_accounting", test_max_bytes_accounting },
  { "transactions_and_off", test_transactions_and_off },
  { "free_with_fills_pending", test_free_with_fills_pending },
  { "model", test_model },
};

int main(int argc, char **argv) {
  size_t i;
  int ran = 0;
  resp_reader_init(&rd, NULL, 0);
  buf_init(&cmdbuf);
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    if (argc < 2 || strcmp(argv[1], cases[i].name) == 0) {
      cases[i].fn();
      ran++;
    }
  resp_reader_free(&rd);
  buf_free(&cmdbuf);
  if (!ran) {
    fprintf(stderr, "no such case: %s\n", argv[1]);
    return 2;
  }
  if (failures)
    fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
