/* libFuzzer target for the RESP reader.
 *
 * Input layout: two configuration bytes (limits), then the bytes to parse.
 * The bytes are parsed in reply mode and in request mode, each three ways:
 * in one feed, in pieces whose sizes are taken from the input (read from
 * its end backwards; each size byte also picks feed or space/commit, a
 * small or a large space request, and a shrink), and one byte at a
 * time. All three must give the same replies and end the same way (same
 * error text too): the reader keeps state across feeds, and a bug there
 * shows up as a difference. Every reply is walked and its shape checked;
 * every payload byte is read, so ASan sees any offset outside the buffer.
 * Request replies are also encoded again and read back.
 */
#include "resp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ENSURE(c)                                                             \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,    \
              #c);                                                            \
      abort();                                                                \
    }                                                                         \
  } while (0)

typedef struct outcome {
  uint64_t hash;    /* of every reply, in order */
  size_t replies;
  int rc;           /* how it ended: RESP_AGAIN or RESP_EPROTO */
  int oom;          /* RESP_ENOMEM seen: results are not comparable */
  char err[128];
} outcome;

static void mix(uint64_t *h, const void *p, size_t n) {
  const unsigned char *s = p;
  size_t i;

  for (i = 0; i < n; i++) {
    *h ^= s[i];
    *h *= UINT64_C(1099511628211);
  }
}

static void mix_u64(uint64_t *h, uint64_t v) { mix(h, &v, sizeof v); }

/* Checks the subtree at i and returns the index after it. */
static size_t walk(const resp_reply *rep, size_t i, uint64_t *h, int depth,
                   const resp_limits *lim, int req) {
  const resp_node *nd;
  size_t j;
  int64_t k, kids;

  ENSURE(i < rep->count);
  ENSURE(depth <= lim->max_depth + 1);
  nd = &rep->nodes[i];
  ENSURE(nd->size >= 1 && nd->size <= rep->count - i);
  mix_u64(h, nd->type);
  mix_u64(h, (uint64_t)nd->len);
  mix_u64(h, nd->size);
  ENSURE(nd->null_of == 0 || nd->type == RESP_NULL);
  switch (nd->type) {
  case RESP_ARRAY: case RESP_MAP: case RESP_SET: case RESP_PUSH:
    ENSURE(nd->len >= 0 && nd->len <= lim->max_elements);
    kids = nd->type == RESP_MAP ? 2 * nd->len : nd->len;
    ENSURE((uint64_t)kids < nd->size);
    for (k = 0, j = i + 1; k < kids; k++)
      j = walk(rep, j, h, depth + 1, lim, req);
    ENSURE(j == i + nd->size);
    return j;
  case RESP_SIMPLE: case RESP_ERROR: case RESP_BULK: case RESP_BIGNUM:
  case RESP_VERBATIM: case RESP_BLOB_ERROR:
    ENSURE(nd->size == 1);
    ENSURE(nd->len >= 0 && (uint64_t)nd->len <= rep->bytes);
    ENSURE(nd->off <= rep->bytes - (size_t)nd->len);
    if (nd->type == RESP_VERBATIM) {
      ENSURE(nd->fmt[3] == '\0');
      mix(h, nd->fmt, 3);
    }
    /* A request word is an inline word (bounded by the line limit) or a
     * bulk argument (bounded by the bulk cap); a status, an error or a big
     * number by the bulk cap (never below the line's). */
    if (req || nd->type == RESP_SIMPLE || nd->type == RESP_ERROR ||
        nd->type == RESP_BIGNUM)
      ENSURE((size_t)nd->len <= lim->max_line ||
             nd->len <= lim->max_bulk);
    else
      ENSURE(nd->len <= lim->max_bulk);
    mix(h, rep->base + nd->off, (size_t)nd->len);
    return i + 1;
  case RESP_INTEGER:
    ENSURE(nd->size == 1);
    mix_u64(h, (uint64_t)nd->v.i);
    return i + 1;
  case RESP_DOUBLE: {
    uint64_t bits;
    ENSURE(nd->size == 1);
    memcpy(&bits, &nd->v.d, sizeof bits);
    mix_u64(h, bits);
    return i + 1;
  }
  case RESP_BOOLEAN:
    ENSURE(nd->size == 1 && (nd->v.b == 0 || nd->v.b == 1));
    mix_u64(h, (uint64_t)nd->v.b);
    return i + 1;
  case RESP_NULL:
    ENSURE(nd->size == 1);
    ENSURE(nd->null_of == '$' || nd->null_of == '*' || nd->null_of == '_');
    mix_u64(h, (uint64_t)nd->null_of);
    return i + 1;
  default:
    ENSURE(!"unknown node type");
    return 0;
  }
}

/* A request comes out as an array of bulk strings; encoding it again and
 * reading that back must give the same strings. */
static void roundtrip(const resp_reply *rep) {
  const char **argv;
  size_t *lens, i, n = rep->count - 1;
  resp_reader r;
  resp_reply back;
  buf b;

  ENSURE(n >= 1 && n < 1000000);
  argv = malloc(n * sizeof *argv);
  lens = malloc(n * sizeof *lens);
  ENSURE(argv != NULL && lens != NULL);
  for (i = 0; i < n; i++) {
    argv[i] = rep->base + rep->nodes[i + 1].off;
    lens[i] = (size_t)rep->nodes[i + 1].len;
  }
  buf_init(&b);
  ENSURE(resp_encode_command(&b, (int)n, argv, lens) == 0);
  resp_reader_init(&r, NULL, RESP_READER_REQUEST);
  ENSURE(resp_reader_feed(&r, b.data, b.len) == 0);
  ENSURE(resp_reader_next(&r, &back) == RESP_OK);
  ENSURE(back.count == n + 1 && back.bytes == b.len);
  for (i = 0; i < n; i++) {
    ENSURE((size_t)back.nodes[i + 1].len == lens[i]);
    ENSURE(lens[i] == 0 ||
           memcmp(back.base + back.nodes[i + 1].off, argv[i], lens[i]) == 0);
  }
  ENSURE(resp_reader_next(&r, &back) == RESP_AGAIN);
  resp_reader_free(&r);
  buf_free(&b);
  free(argv);
  free(lens);
}

/* Takes every reply available. Returns 1 when the parse has ended. */
static int drain(resp_reader *r, int flags, const resp_limits *lim,
                 size_t fed, int check_roundtrip, outcome *o) {
  resp_reply rep;
  int rc;

  while ((rc = resp_reader_next(r, &rep)) == RESP_OK) {
    ENSURE(rep.count >= 1 && rep.nodes[0].size == rep.count);
    ENSURE(rep.bytes > 0 && rep.bytes <= fed);
    ENSURE(rep.base >= r->buf && rep.base + rep.bytes <= r->buf + r->len);
    /* max_reply charges the wire bytes and RESP_NODE_COST per value. */
    if (lim->max_reply > 0)
      ENSURE(rep.bytes + rep.count * RESP_NODE_COST <= lim->max_reply);
    ENSURE(walk(&rep, 0, &o->hash, 1, lim, flags) == rep.count);
    mix_u64(&o->hash, rep.bytes);
    if (flags & RESP_READER_REQUEST) {
      size_t i;
      ENSURE(rep.nodes[0].type == RESP_ARRAY);
      ENSURE((size_t)rep.nodes[0].len + 1 == rep.count);
      for (i = 1; i < rep.count; i++)
        ENSURE(rep.nodes[i].type == RESP_BULK);
      if (check_roundtrip)
        roundtrip(&rep);
    }
    o->replies++;
  }
  ENSURE(resp_reader_pending(r) <= fed);
  if (rc == RESP_AGAIN) {
    ENSURE(resp_reader_want(r) <= (size_t)lim->max_bulk + 2);
    return 0;
  }
  if (rc == RESP_ENOMEM) {
    o->oom = 1;
    return 1;
  }
  ENSURE(rc == RESP_EPROTO);
  ENSURE(strncmp(resp_reader_error(r), "protocol error: ", 16) == 0);
  snprintf(o->err, sizeof o->err, "%s", resp_reader_error(r));
  /* Sticky, whatever comes next. */
  ENSURE(resp_reader_next(r, &rep) == RESP_EPROTO);
  ENSURE(resp_reader_feed(r, "+OK\r\n", 5) == 0);
  ENSURE(resp_reader_next(r, &rep) == RESP_EPROTO);
  ENSURE(strcmp(resp_reader_error(r), o->err) == 0);
  o->rc = RESP_EPROTO;
  return 1;
}

enum { WHOLE, PIECES, BYTES };

static void run(const uint8_t *in, size_t n, const uint8_t *sizes,
                size_t nsizes, int flags, const resp_limits *lim, int how,
                outcome *o) {
  resp_reader r;
  resp_reply rep;
  size_t at = 0, k, si = 0, avail;
  int done = 0, rc;

  memset(o, 0, sizeof *o);
  o->hash = UINT64_C(14695981039346656037);
  o->rc = RESP_AGAIN;
  resp_reader_init(&r, lim, flags);
  while (at < n && !done) {
    uint8_t c = nsizes > 0 ? sizes[nsizes - 1 - si % nsizes] : 0;
    si++;
    k = how == WHOLE ? n : how == BYTES ? 1 : 1 + (size_t)(c & 0x3f);
    if (k > n - at)
      k = n - at;
    if (how == PIECES && (c & 0x80)) {
      /* Asking for much more than is written makes the buffer fill up
       * after a few calls even with short inputs, so that compaction and
       * growth with a half-parsed reply inside get exercised. */
      size_t want = c & 0x40 ? 16384 - (size_t)(c & 0x3f) * 64 : k;
      char *p = resp_reader_space(&r, want, &avail);
      if (p == NULL) {
        o->oom = 1;
        break;
      }
      ENSURE(avail >= want && want >= k);
      memcpy(p, in + at, k);
      resp_reader_commit(&r, k);
    } else if (resp_reader_feed(&r, in + at, k) != 0) {
      o->oom = 1;
      break;
    }
    at += k;
    done = drain(&r, flags, lim, at, how == WHOLE, o);
    if (!done && how == PIECES && (c & 0xc0) == 0x40 &&
        resp_reader_pending(&r) == 0)
      resp_reader_shrink(&r, 0);
  }
  if (n == 0)
    drain(&r, flags, lim, 0, 0, o);
  /* After a reset the reader works again. */
  resp_reader_reset(&r);
  ENSURE(resp_reader_pending(&r) == 0 && resp_reader_want(&r) == 0);
  if (flags & RESP_READER_REQUEST)
    ENSURE(resp_reader_feed(&r, "PING\r\n", 6) == 0);
  else
    ENSURE(resp_reader_feed(&r, "+OK\r\n", 5) == 0);
  rc = resp_reader_next(&r, &rep);
  ENSURE(rc == RESP_OK && rep.count == (flags ? 2u : 1u));
  resp_reader_free(&r);
}

static void same(const outcome *a, const outcome *b) {
  if (a->oom || b->oom)
    return;
  ENSURE(a->replies == b->replies);
  ENSURE(a->hash == b->hash);
  ENSURE(a->rc == b->rc);
  ENSURE(strcmp(a->err, b->err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int depths[4] = {128, 1, 3, 8};
  static const size_t lines[4] = {65536, 4, 16, 100};
  static const int64_t bulks[4] = {65536, 3, 16, 1000};
  static const size_t replies[4] = {0, 150, 600, 8192};
  static const int64_t elements[4] = {INT64_C(4294967295), 1, 4, 100};
  resp_limits lim;
  outcome whole, pieces, bytes;
  const uint8_t *in;
  size_t n;
  int mode;

  if (size < 2)
    return 0;
  resp_limits_default(&lim);
  lim.max_depth = depths[data[0] & 3];
  lim.max_line = lines[(data[0] >> 2) & 3];
  lim.max_bulk = bulks[(data[0] >> 4) & 3];
  lim.max_reply = replies[(data[0] >> 6) & 3];
  lim.max_elements = elements[data[1] & 3];
  in = data + 2;
  n = size - 2;
  for (mode = 0; mode < 2; mode++) {
    int flags = mode ? RESP_READER_REQUEST : 0;
    run(in, n, in, n, flags, &lim, WHOLE, &whole);
    run(in, n, in, n, flags, &lim, PIECES, &pieces);
    same(&whole, &pieces);
    /* One byte at a time costs a call per byte; short inputs suffice. */
    if (n <= 4096) {
      run(in, n, in, n, flags, &lim, BYTES, &bytes);
      same(&whole, &bytes);
    }
  }
  return 0;
}
