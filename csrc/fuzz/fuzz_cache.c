/* libFuzzer target: the cache's state machine (cache.c) driven by the
 * input as a program of operations, against a model of the server.
 *
 * The first bytes pick the bounds and the ttl; then each byte is one
 * operation on one of 8 keys: a GET (lookup; a miss is queued as a reply
 * to come), the oldest reply arriving (the server's value of that moment),
 * a write by another client with its invalidation read, a flush, time
 * passing, a SELECT sent and answered, MULTI/EXEC, a fill cancelled, a
 * push of arbitrary bytes. Invariants checked after every step (abort on
 * failure): a hit is the server's current value; entries and bytes stay
 * within their bounds; once nothing is in flight and the cache is
 * cleared, it accounts zero bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "resp.h"

#define NKEYS 8
#define NDB 2
#define MAXPEND 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_cache: invariant broken: %s\n", what);
    abort();
  }
}

static int parse(resp_reader *rd, const char *bytes, size_t n,
                 resp_reply *out) {
  resp_reader_reset(rd);
  if (resp_reader_feed(rd, bytes, n) != 0)
    return 0;
  return resp_reader_next(rd, out) == RESP_OK;
}

static size_t encode_get(buf *b, int key) {
  char k[8];
  const char *argv[2];
  size_t lens[2];
  snprintf(k, sizeof(k), "k%d", key);
  argv[0] = "GET";
  argv[1] = k;
  lens[0] = 3;
  lens[1] = strlen(k);
  b->len = 0;
  if (resp_encode_command(b, 2, argv, lens) != 0)
    return 0;
  return b->len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  resp_reader rd;
  buf b;
  cache *k;
  int server[NDB][NKEYS];
  int pend_key[MAXPEND], pend_db[MAXPEND], npend = 0;
  int db = 0, next_db = 0, selecting = 0, tx = 0, off = 0;
  uint64_t now = 0;
  size_t max_entries, max_bytes, i;
  if (size < 3)
    return 0;
  max_entries = 1 + data[0] % 16;
  max_bytes = 200 + (size_t)data[1] * 16;
  k = cache_new(max_entries, max_bytes, 1 + data[2] % 64, 0);
  if (!k)
    return 0;
  memset(server, 0, sizeof(server));
  resp_reader_init(&rd, NULL, 0);
  buf_init(&b);
  for (i = 3; i < size; i++) {
    int op = data[i] & 15, key = (data[i] >> 4) % NKEYS;
    resp_reply r;
    char text[128];
    size_t n;
    switch (op) {
    case 0: case 1: case 2: case 3: { /* a GET */
      int st;
      n = encode_get(&b, key);
      if (!n)
        break;
      st = cache_lookup(k, b.data, n, now, &r);
      if (st == CACHE_HIT) {
        char want[16];
        int wl = snprintf(want, sizeof(want), "%d", server[db][key]);
        must(!off && !tx && !selecting, "a hit while bypassed");
        must(r.nodes[0].type == RESP_BULK && r.nodes[0].len == wl &&
             memcmp(r.base + r.nodes[0].off, want, (size_t)wl) == 0,
             "a hit is the server's value");
      } else if (st == CACHE_MISS) {
        must(!off && !tx && !selecting, "a fill while bypassed");
        if (npend == MAXPEND) {
          cache_fill_cancel(k);
        } else {
          pend_key[npend] = key;
          pend_db[npend++] = db;
        }
      }
      break;
    }
    case 4: case 5: /* the oldest reply */
      if (npend) {
        int kk = pend_key[0], dd = pend_db[0];
        int len = snprintf(text, sizeof(text), "%d", server[dd][kk]);
        int m = snprintf(text, sizeof(text), "$%d\r\n%d\r\n", len,
                         server[dd][kk]);
        memmove(pend_key, pend_key + 1, (size_t)(npend - 1) * sizeof(int));
        memmove(pend_db, pend_db + 1, (size_t)(npend - 1) * sizeof(int));
        npend--;
        if (parse(&rd, text, (size_t)m, &r))
          cache_fill_end(k, &r, now);
      }
      break;
    case 6: case 7: { /* another client writes; its invalidation is read */
      int dd = (data[i] >> 7) & 1;
      int m;
      server[dd][key]++;
      m = snprintf(text, sizeof(text),
                   ">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nk%d\r\n", key);
      if (parse(&rd, text, (size_t)m, &r))
        cache_push(k, &r);
      break;
    }
    case 8: /* FLUSHALL by someone: every value changes */
      for (n = 0; n < NKEYS; n++) {
        server[0][n]++;
        server[1][n]++;
      }
      if (parse(&rd, ">2\r\n$10\r\ninvalidate\r\n_\r\n", 25, &r))
        cache_push(k, &r);
      break;
    case 9: /* time passes */
      now += data[i] >> 4;
      break;
    case 10: /* SELECT sent, answered later (case 11) */
      if (!selecting && !tx && !off) {
        selecting = 1;
        next_db = (data[i] >> 4) & 1;
        cache_select_sent(k);
      }
      break;
    case 11:
      if (selecting) {
        /* a rejected SELECT leaves the database as it was */
        int ok = (data[i] >> 4) & 1;
        selecting = 0;
        if (ok)
          db = next_db;
        cache_select_done(k, ok ? next_db : -1);
      }
      break;
    case 12: /* MULTI / EXEC */
      tx = !tx;
      cache_tx(k, tx);
      break;
    case 13: /* a push of whatever bytes follow (at most 16) */
      n = size - i - 1 < 16 ? size - i - 1 : 16;
      if (n && parse(&rd, (const char *)data + i + 1, n, &r))
        cache_push(k, &r);
      i += n;
      break;
    case 14:
      if ((data[i] >> 4) == 15 && !selecting) {
        off = 1;
        cache_off(k);
      } else {
        cache_clear(k);
      }
      break;
    default: /* 15: a fill not sent after all */
      if (npend && !tx && !off && !selecting) {
        /* only the last one begun may be cancelled, as in the glue */
        cache_fill_cancel(k);
        npend--;
      }
      break;
    }
    {
      cache_stats st;
      cache_get_stats(k, &st);
      must(st.entries <= max_entries, "max_entries");
      must(st.bytes <= max_bytes + (uint64_t)(NKEYS + MAXPEND) * 256,
           "max_bytes (entries, plus key nodes of fills in flight)");
    }
  }
  /* Every reply arrives, then a clear: nothing is accounted. */
  while (npend) {
    resp_reply r;
    npend--;
    if (parse(&rd, "$1\r\n0\r\n", 7, &r))
      cache_fill_end(k, &r, now);
  }
  cache_clear(k);
  {
    cache_stats st;
    cache_get_stats(k, &st);
    must(st.entries == 0 && st.bytes == 0, "zero after the end");
  }
  cache_free(k);
  resp_reader_free(&rd);
  buf_free(&b);
  return 0;
}
