/* Unit tests of the RESP codec: buf, encoder and reader.
 *
 *   test_resp            runs every case
 *   test_resp NAME       runs one case (ctest runs each as its own test)
 *   test_resp --list     prints the case names
 *
 * Most reader cases go through expect(), which parses the input whole, one
 * byte at a time, in random pieces (fixed seeds, through both feed and
 * space/commit) and split in two at every position, and requires the same
 * transcript from all of them, while checking the shape of every reply.
 */
#include "resp.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- harness ----------------------------------------------------------- */

static jmp_buf t_abort;
static int t_failed;

#define FAIL_AT(line, ...)                                                    \
  do {                                                                        \
    fprintf(stderr, "%s:%d: ", __FILE__, (line));                             \
    fprintf(stderr, __VA_ARGS__);                                             \
    fputc('\n', stderr);                                                      \
    t_failed++;                                                               \
  } while (0)

/* CHECK records a failure and goes on; REQUIRE ends the case. */
#define CHECK(c)                                                              \
  do {                                                                        \
    if (!(c))                                                                 \
      FAIL_AT(__LINE__, "CHECK(%s) failed", #c);                              \
  } while (0)
#define REQUIRE(c)                                                            \
  do {                                                                        \
    if (!(c)) {                                                               \
      FAIL_AT(__LINE__, "REQUIRE(%s) failed", #c);                            \
      longjmp(t_abort, 1);                                                    \
    }                                                                         \
  } while (0)
#define CHECK_INT(a, b)                                                       \
  do {                                                                        \
    long long a_ = (long long)(a), b_ = (long long)(b);                       \
    if (a_ != b_)                                                             \
      FAIL_AT(__LINE__, "%s == %lld, expected %lld", #a, a_, b_);             \
  } while (0)
#define CHECK_STR(a, b) check_str(__LINE__, (a), (b))
/* Compares n bytes of a buf with a string literal. */
#define CHECK_BUF(bf, lit)                                                    \
  check_mem(__LINE__, (bf)->data, (bf)->len, lit, sizeof(lit) - 1)

#define TEST(name) static void test_##name(void)

static void check_str(int line, const char *got, const char *want) {
  if (strcmp(got, want) != 0)
    FAIL_AT(line, "got\n    [%s]\n  expected\n    [%s]", got, want);
}

static void check_mem(int line, const char *got, size_t ng, const char *want,
                      size_t nw) {
  if (ng != nw || (nw > 0 && memcmp(got, want, nw) != 0))
    FAIL_AT(line, "bytes differ (%zu vs %zu): [%.*s] vs [%.*s]", ng, nw,
            (int)ng, got ? got : "", (int)nw, want);
}

/* xorshift32: a fixed seed makes every run the same. */
static uint32_t rnd(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

/* ---- allocation failures ----------------------------------------------- */

/* With LEVR_TEST_WRAP_MALLOC the binary is linked with --wrap=malloc and
 * --wrap=realloc (the names below are fixed by the linker), so a test can
 * make exactly one allocation of the codec fail and check the recovery. */
#ifdef LEVR_TEST_WRAP_MALLOC
void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_realloc(void *p, size_t n);

static int t_armed;          /* count allocations only while set */
static long t_calls;         /* allocations counted so far */
static long t_fail_at = -1;  /* the one that fails */

static int alloc_fails(void) {
  if (!t_armed)
    return 0;
  return t_calls++ == t_fail_at;
}

void *__wrap_malloc(size_t n) {
  return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_realloc(void *p, size_t n) {
  return alloc_fails() ? NULL : __real_realloc(p, n);
}
#endif

/* ---- reply dumps --------------------------------------------------------- */

/* One line of text per reply, e.g. *[$"foo" :1 _$]. Writing it also checks
 * the shape: subtree sizes, child counts, payloads inside the reply. */

static void out_s(buf *o, const char *s) { buf_append(o, s, strlen(s)); }

static void out_q(buf *o, const char *p, int64_t n) {
  char tmp[8];
  int64_t i;

  buf_append_char(o, '"');
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '"' || c == '\\') {
      buf_append_char(o, '\\');
      buf_append_char(o, (char)c);
    } else if (c == '\r') {
      out_s(o, "\\r");
    } else if (c == '\n') {
      out_s(o, "\\n");
    } else if (c < 0x20 || c >= 0x7f) {
      snprintf(tmp, sizeof tmp, "\\x%02x", c);
      out_s(o, tmp);
    } else {
      buf_append_char(o, (char)c);
    }
  }
  buf_append_char(o, '"');
}

static size_t dump_node(buf *o, const resp_reply *rp, size_t i) {
  const resp_node *nd;
  char tmp[64];
  const char *open = NULL, *close = NULL;
  size_t j;
  int64_t k, kids;

  REQUIRE(i < rp->count);
  nd = &rp->nodes[i];
  REQUIRE(nd->size >= 1 && i + nd->size <= rp->count);
  switch (nd->type) {
  case RESP_ARRAY: open = "*["; close = "]"; break;
  case RESP_SET: open = "~["; close = "]"; break;
  case RESP_PUSH: open = ">["; close = "]"; break;
  case RESP_MAP: open = "%{"; close = "}"; break;
  default: break;
  }
  if (open != NULL) {
    REQUIRE(nd->len >= 0);
    kids = nd->type == RESP_MAP ? 2 * nd->len : nd->len;
    out_s(o, open);
    for (k = 0, j = i + 1; k < kids; k++) {
      if (k > 0)
        buf_append_char(o, ' ');
      j = dump_node(o, rp, j);
    }
    REQUIRE(j == i + nd->size);
    out_s(o, close);
    return j;
  }
  REQUIRE(nd->size == 1);
  switch (nd->type) {
  case RESP_SIMPLE: case RESP_ERROR: case RESP_BULK: case RESP_BIGNUM:
  case RESP_VERBATIM: case RESP_BLOB_ERROR:
    REQUIRE(nd->len >= 0 && nd->off + (size_t)nd->len <= rp->bytes);
    break;
  default:
    break;
  }
  switch (nd->type) {
  case RESP_SIMPLE: buf_append_char(o, '+'); break;
  case RESP_ERROR: buf_append_char(o, '-'); break;
  case RESP_BULK: buf_append_char(o, '$'); break;
  case RESP_BIGNUM: buf_append_char(o, '('); break;
  case RESP_BLOB_ERROR: buf_append_char(o, '!'); break;
  case RESP_VERBATIM:
    buf_append_char(o, '=');
    REQUIRE(strlen(nd->fmt) <= 3);
    out_s(o, nd->fmt);
    break;
  case RESP_INTEGER:
    snprintf(tmp, sizeof tmp, ":%lld", (long long)nd->v.i);
    out_s(o, tmp);
    return i + 1;
  case RESP_DOUBLE:
    if (isnan(nd->v.d))
      out_s(o, ",nan");
    else if (isinf(nd->v.d))
      out_s(o, nd->v.d > 0 ? ",inf" : ",-inf");
    else {
      snprintf(tmp, sizeof tmp, ",%.17g", nd->v.d);
      out_s(o, tmp);
    }
    return i + 1;
  case RESP_BOOLEAN:
    REQUIRE(nd->v.b == 0 || nd->v.b == 1);
    out_s(o, nd->v.b ? "#t" : "#f");
    return i + 1;
  case RESP_NULL:
    REQUIRE(nd->null_of == '$' || nd->null_of == '*' || nd->null_of == '_');
    buf_append_char(o, '_');
    buf_append_char(o, nd->null_of);
    return i + 1;
  default:
    FAIL_AT(__LINE__, "bad node type %d", nd->type);
    longjmp(t_abort, 1);
  }
  out_q(o, rp->base + nd->off, nd->len);
  return i + 1;
}

static void dump_reply(buf *o, const resp_reader *r, const resp_reply *rp,
                       int flags) {
  size_t i;

  REQUIRE(rp->count >= 1 && rp->nodes[0].size == rp->count);
  REQUIRE(rp->bytes > 0);
  /* Zero copy: the payloads are in the reader's own buffer. */
  REQUIRE(rp->base >= r->buf && rp->base + rp->bytes <= r->buf + r->len);
  if (flags & RESP_READER_REQUEST) {
    REQUIRE(rp->nodes[0].type == RESP_ARRAY);
    REQUIRE((size_t)rp->nodes[0].len + 1 == rp->count);
    for (i = 1; i < rp->count; i++)
      REQUIRE(rp->nodes[i].type == RESP_BULK);
  }
  REQUIRE(dump_node(o, rp, 0) == rp->count);
  buf_append_char(o, '\n');
}

/* Takes every reply available; on an error appends "ERR <text>" and
 * checks that it sticks. Returns 1 once in error. */
/* Set while request readers are drained through resp_reader_next_args
 * first: the transcript must be the same either way. */
static int t_quick;

/* A request taken by resp_reader_next_args, dumped as dump_reply would. */
static int drain_quick(resp_reader *r, buf *o) {
  resp_span args[4];
  const char *base;
  int i, n = resp_reader_next_args(r, &base, args, 4);

  REQUIRE(n >= 0 && n <= 4);
  if (n == 0)
    return 0;
  out_s(o, "*[");
  for (i = 0; i < n; i++) {
    if (i > 0)
      buf_append_char(o, ' ');
    REQUIRE(base + args[i].off + args[i].len <= r->buf + r->len);
    buf_append_char(o, '$');
    out_q(o, base + args[i].off, args[i].len);
  }
  out_s(o, "]\n");
  return 1;
}

static int drain(resp_reader *r, buf *o, int flags) {
  resp_reply rep;
  int rc;

  for (;;) {
    if (t_quick && (flags & RESP_READER_REQUEST) && drain_quick(r, o))
      continue;
    if ((rc = resp_reader_next(r, &rep)) != RESP_OK)
      break;
    dump_reply(o, r, &rep, flags);
  }
  if (rc == RESP_AGAIN)
    return 0;
  REQUIRE(rc == RESP_EPROTO);
  REQUIRE(strncmp(resp_reader_error(r), "protocol error: ", 16) == 0);
  REQUIRE(resp_reader_next(r, &rep) == RESP_EPROTO);
  out_s(o, "ERR ");
  out_s(o, resp_reader_error(r));
  return 1;
}

/* Adds n bytes, through feed or through space + commit. */
static void put(resp_reader *r, const char *p, size_t n, int via_space) {
  if (via_space) {
    size_t avail = 0;
    char *dst = resp_reader_space(r, n, &avail);
    REQUIRE(dst != NULL && avail >= n);
    memcpy(dst, p, n);
    resp_reader_commit(r, n);
  } else {
    REQUIRE(resp_reader_feed(r, p, n) == 0);
  }
}

enum { WHOLE, BYTES, RANDOM, SPLIT };

/* The transcript of parsing in[0..n): mode WHOLE (one feed), BYTES (one
 * byte at a time), RANDOM (pieces of 1..max bytes from seed), SPLIT (two
 * pieces, cut at seed). Returns a malloc'd string. */
static char *transcript(const char *in, size_t n, int flags,
                        const resp_limits *lim, int mode, uint32_t seed,
                        size_t max) {
  resp_reader r;
  buf o;
  size_t at = 0, k;
  int stop = 0, i = 0;

  resp_reader_init(&r, lim, flags);
  buf_init(&o);
  while (at < n && !stop) {
    switch (mode) {
    case WHOLE: k = n; break;
    case BYTES: k = 1; break;
    case RANDOM: k = 1 + rnd(&seed) % max; break;
    default: k = at == 0 && seed > 0 ? seed : n - at; break;
    }
    if (k > n - at)
      k = n - at;
    put(&r, in + at, k, (mode == BYTES) || (mode == RANDOM && (i++ & 1)));
    at += k;
    stop = drain(&r, &o, flags);
  }
  if (n == 0)
    drain(&r, &o, flags);
  buf_append_char(&o, '\0');
  resp_reader_free(&r);
  return o.data;
}

static void expect_at(int line, const char *in, size_t n, int flags,
                      const resp_limits *lim, const char *want) {
  static const char *names[] = {"whole", "bytes", "random", "split"};
  char *got;
  uint32_t s;
  int mode;

  /* Request readers run twice, the second time taking requests through
   * resp_reader_next_args where it can. */
  for (t_quick = 0; t_quick <= ((flags & RESP_READER_REQUEST) ? 1 : 0);
       t_quick++)
  for (mode = WHOLE; mode <= SPLIT; mode++) {
    uint32_t runs = mode == RANDOM ? 6 : mode == SPLIT ? (uint32_t)n + 1 : 1;
    for (s = 0; s < runs; s++) {
      if (mode == SPLIT && n > 400 && s % 7 != 0 && s + 3 < runs)
        continue; /* long inputs: sample the cut points */
      got = transcript(in, n, flags, lim, mode, mode == RANDOM ? s + 1 : s,
                       s < 3 ? 7 : 64);
      if (strcmp(got, want) != 0) {
        FAIL_AT(line, "%s (%u)%s: got\n    [%s]\n  expected\n    [%s]",
                names[mode], (unsigned)s, t_quick ? " quick" : "", got,
                want);
        free(got);
        t_quick = 0;
        return;
      }
      free(got);
    }
  }
}

/* The start of every error transcript. */
#define PE "ERR protocol error: "

#define EXPECT(in, want)                                                      \
  expect_at(__LINE__, in, sizeof(in) - 1, 0, NULL, want)
#define EXPECT_REQ(in, want)                                                  \
  expect_at(__LINE__, in, sizeof(in) - 1, RESP_READER_REQUEST, NULL, want)
#define EXPECT_LIM(in, lim, want)                                             \
  expect_at(__LINE__, in, sizeof(in) - 1, 0, lim, want)

/* ---- buf ----------------------------------------------------------------- */

TEST(buf_basic) {
  buf b;
  size_t cap;

  buf_init(&b);
  CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
  REQUIRE(buf_append(&b, "hello", 5) == 0);
  REQUIRE(buf_append_char(&b, ' ') == 0);
  REQUIRE(buf_append_int(&b, -42) == 0);
  CHECK_BUF(&b, "hello -42");
  buf_consume(&b, 6);
  CHECK_BUF(&b, "-42");
  buf_consume(&b, 99);
  CHECK_INT(b.len, 0);
  /* Geometric growth: 10000 appends make few reallocations. */
  for (cap = 0; cap < 10000; cap++)
    REQUIRE(buf_append_char(&b, 'x') == 0);
  CHECK(b.cap >= 10000 && b.cap < 40000);
  cap = b.cap;
  /* An impossible size fails and leaves the buffer as it was. */
  CHECK_INT(buf_reserve(&b, SIZE_MAX), BUF_ENOMEM);
  CHECK_INT(buf_reserve(&b, SIZE_MAX - b.len + 1), BUF_ENOMEM);
  CHECK(b.cap == cap && b.len == 10000 && b.data[9999] == 'x');
  buf_reset(&b, 1 << 20);
  CHECK(b.len == 0 && b.cap == cap);
  buf_reset(&b, 100);
  CHECK(b.len == 0 && b.cap == 0 && b.data == NULL);
  buf_free(&b);
}

TEST(buf_fmt_int) {
  static const struct {
    int64_t v;
    const char *s;
  } cases[] = {
      {0, "0"}, {1, "1"}, {-1, "-1"}, {9, "9"}, {10, "10"}, {-10, "-10"},
      {99, "99"}, {100, "100"}, {12345, "12345"}, {-999999, "-999999"},
      {INT64_C(1000000000000), "1000000000000"},
      {INT64_MAX, "9223372036854775807"},
      {INT64_MIN, "-9223372036854775808"},
      {INT64_MIN + 1, "-9223372036854775807"},
  };
  char out[32];
  size_t i, n;
  int64_t p = 1;

  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(out, '#', sizeof out);
    n = buf_fmt_int(out, cases[i].v);
    check_mem(__LINE__, out, n, cases[i].s, strlen(cases[i].s));
    CHECK(out[n] == '#'); /* no NUL, nothing past the digits */
  }
  /* Every power of ten and its neighbours, against printf. */
  for (i = 0; i < 19; i++) {
    int64_t vs[4];
    if (i > 0)
      p *= 10;
    vs[0] = p;
    vs[1] = p - 1;
    vs[2] = -p;
    vs[3] = 1 - p;
    int j;
    for (j = 0; j < 4; j++) {
      char ref[32];
      n = buf_fmt_int(out, vs[j]);
      snprintf(ref, sizeof ref, "%lld", (long long)vs[j]);
      check_mem(__LINE__, out, n, ref, strlen(ref));
    }
  }
}

/* ---- encoder ------------------------------------------------------------- */

TEST(encode_command) {
  const char *argv[] = {"SET", "key", "value"};
  const size_t lens[] = {3, 3, 5};
  buf b;

  buf_init(&b);
  REQUIRE(resp_encode_command(&b, 3, argv, lens) == 0);
  CHECK_BUF(&b, "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
  b.len = 0;
  /* lens may be NULL for C strings. */
  REQUIRE(resp_encode_command(&b, 2, argv, NULL) == 0);
  CHECK_BUF(&b, "*2\r\n$3\r\nSET\r\n$3\r\nkey\r\n");
  /* Appends after what is there. */
  REQUIRE(resp_encode_command(&b, 0, argv, lens) == 0);
  CHECK_BUF(&b, "*2\r\n$3\r\nSET\r\n$3\r\nkey\r\n*0\r\n");
  buf_free(&b);
}

TEST(encode_binary) {
  const char *argv[] = {"a\0b\r\nc", "", "$3\r\n"};
  const size_t lens[] = {6, 0, 4};
  char big[1000];
  buf b;

  buf_init(&b);
  REQUIRE(resp_encode_command(&b, 3, argv, lens) == 0);
  CHECK_BUF(&b, "*3\r\n$6\r\na\0b\r\nc\r\n$0\r\n\r\n$4\r\n$3\r\n\r\n");
  b.len = 0;
  memset(big, 'z', sizeof big);
  REQUIRE(resp_encode_bulk(&b, big, sizeof big) == 0);
  CHECK_INT(b.len, 7 + 1000 + 2);
  CHECK(memcmp(b.data, "$1000\r\nzz", 9) == 0);
  CHECK(memcmp(b.data + b.len - 3, "z\r\n", 3) == 0);
  buf_free(&b);
}

TEST(encode_helpers) {
  buf b;

  buf_init(&b);
  REQUIRE(resp_encode_array_header(&b, 2) == 0);
  REQUIRE(resp_encode_bulk(&b, "GET", 3) == 0);
  REQUIRE(resp_encode_bulk_int(&b, 0) == 0);
  REQUIRE(resp_encode_bulk_int(&b, INT64_MIN) == 0);
  REQUIRE(resp_encode_bulk_int(&b, INT64_MAX) == 0);
  REQUIRE(resp_encode_bulk(&b, NULL, 0) == 0);
  CHECK_BUF(&b, "*2\r\n$3\r\nGET\r\n$1\r\n0\r\n"
                "$20\r\n-9223372036854775808\r\n"
                "$19\r\n9223372036854775807\r\n$0\r\n\r\n");
  buf_free(&b);
}

TEST(encode_enomem) {
  const char *argv[] = {"x", "y"};
  size_t lens[] = {1, SIZE_MAX - 3};
  buf b;

  buf_init(&b);
  REQUIRE(buf_append(&b, "keep", 4) == 0);
  /* Sizes that cannot be represented fail before anything is written. */
  CHECK_INT(resp_encode_bulk(&b, "", SIZE_MAX - 5), BUF_ENOMEM);
  CHECK_INT(resp_encode_command(&b, 2, argv, lens), BUF_ENOMEM);
  lens[1] = SIZE_MAX / 2;
  lens[0] = SIZE_MAX / 2;
  CHECK_INT(resp_encode_command(&b, 2, argv, lens), BUF_ENOMEM);
  CHECK_INT(resp_encode_command(&b, -1, argv, lens), BUF_ENOMEM);
  CHECK_BUF(&b, "keep");
  buf_free(&b);
}

static void check_double(int line, double d, const char *want) {
  buf b;
  char exp[64];
  int n;

  buf_init(&b);
  n = snprintf(exp, sizeof exp, "$%zu\r\n%s\r\n", strlen(want), want);
  if (resp_encode_bulk_double(&b, d) != 0)
    FAIL_AT(line, "encode failed");
  else
    check_mem(line, b.data, b.len, exp, (size_t)n);
  buf_free(&b);
}

TEST(encode_double) {
  check_double(__LINE__, 2.0, "2");
  check_double(__LINE__, -0.0, "0");
  check_double(__LINE__, 0.0, "0");
  check_double(__LINE__, -3.0, "-3");
  check_double(__LINE__, 1.5, "1.5");
  check_double(__LINE__, -0.25, "-0.25");
  check_double(__LINE__, 0.1, "0.10000000000000001");
  check_double(__LINE__, 1e15, "1000000000000000");
  check_double(__LINE__, 1e300, "1.0000000000000001e+300");
  check_double(__LINE__, 5e-324, "4.9406564584124654e-324");
  check_double(__LINE__, -9223372036854775808.0, "-9223372036854775808");
  check_double(__LINE__, 9223372036854775808.0, "9.2233720368547758e+18");
  check_double(__LINE__, 9007199254740993.0, "9007199254740992");
  check_double(__LINE__, HUGE_VAL, "inf");
  check_double(__LINE__, -HUGE_VAL, "-inf");
  check_double(__LINE__, NAN, "nan");
}

TEST(encode_roundtrip) {
  /* Random argv with the bytes that matter most to a framing bug. */
  static const char alphabet[] = "\r\n\0$*:+-ab \"'\\\x80\xff";
  uint32_t seed = 12345;
  int iter;

  for (iter = 0; iter < 300; iter++) {
    char *argv[8];
    const char *cargv[8];
    size_t lens[8];
    int argc = 1 + (int)(rnd(&seed) % 8), i;
    buf b, out;
    resp_reader r;
    resp_reply rep;
    size_t at = 0;
    int rc = RESP_AGAIN;

    for (i = 0; i < argc; i++) {
      size_t j;
      lens[i] = rnd(&seed) % 40;
      if (rnd(&seed) % 16 == 0)
        lens[i] = 5000 + rnd(&seed) % 5000;
      argv[i] = malloc(lens[i] + 1);
      REQUIRE(argv[i] != NULL);
      for (j = 0; j < lens[i]; j++)
        argv[i][j] = alphabet[rnd(&seed) % (sizeof alphabet - 1)];
      cargv[i] = argv[i];
    }
    buf_init(&b);
    buf_init(&out);
    REQUIRE(resp_encode_command(&b, argc, cargv, lens) == 0);
    /* Two commands back to back, read in random pieces. */
    REQUIRE(resp_encode_command(&b, argc, cargv, lens) == 0);
    resp_reader_init(&r, NULL, RESP_READER_REQUEST);
    for (i = 0; i < 2; i++) {
      while ((rc = resp_reader_next(&r, &rep)) == RESP_AGAIN) {
        size_t k = 1 + rnd(&seed) % 300;
        REQUIRE(at < b.len);
        if (k > b.len - at)
          k = b.len - at;
        put(&r, b.data + at, k, (int)(k & 1));
        at += k;
      }
      REQUIRE(rc == RESP_OK);
      REQUIRE(rep.count == (size_t)argc + 1);
      CHECK_INT(rep.nodes[0].len, argc);
      CHECK_INT(rep.bytes, b.len / 2);
      for (int j = 0; j < argc; j++) {
        const resp_node *nd = &rep.nodes[j + 1];
        REQUIRE(nd->type == RESP_BULK && (size_t)nd->len == lens[j]);
        CHECK(memcmp(rep.base + nd->off, argv[j], lens[j]) == 0);
      }
    }
    CHECK(at == b.len && resp_reader_pending(&r) == 0);
    resp_reader_free(&r);
    for (i = 0; i < argc; i++)
      free(argv[i]);
    buf_free(&b);
    buf_free(&out);
  }
}

TEST(encode_then_read_reply) {
  /* The helpers produce valid replies too (the mock server uses them). */
  buf b;
  char *got;

  buf_init(&b);
  REQUIRE(resp_encode_array_header(&b, 4) == 0);
  REQUIRE(resp_encode_bulk_double(&b, 0.5) == 0);
  REQUIRE(resp_encode_bulk_double(&b, -HUGE_VAL) == 0);
  REQUIRE(resp_encode_bulk_int(&b, -7) == 0);
  REQUIRE(resp_encode_bulk(&b, "a\r\n", 3) == 0);
  got = transcript(b.data, b.len, 0, NULL, BYTES, 0, 0);
  CHECK_STR(got, "*[$\"0.5\" $\"-inf\" $\"-7\" $\"a\\r\\n\"]\n");
  free(got);
  buf_free(&b);
}

TEST(type_names) {
  CHECK_STR(resp_type_name(RESP_SIMPLE), "simple_string");
  CHECK_STR(resp_type_name(RESP_ERROR), "error");
  CHECK_STR(resp_type_name(RESP_INTEGER), "integer");
  CHECK_STR(resp_type_name(RESP_BULK), "bulk_string");
  CHECK_STR(resp_type_name(RESP_ARRAY), "array");
  CHECK_STR(resp_type_name(RESP_NULL), "null");
  CHECK_STR(resp_type_name(RESP_DOUBLE), "double");
  CHECK_STR(resp_type_name(RESP_BOOLEAN), "boolean");
  CHECK_STR(resp_type_name(RESP_BIGNUM), "big_number");
  CHECK_STR(resp_type_name(RESP_VERBATIM), "verbatim_string");
  CHECK_STR(resp_type_name(RESP_BLOB_ERROR), "blob_error");
  CHECK_STR(resp_type_name(RESP_MAP), "map");
  CHECK_STR(resp_type_name(RESP_SET), "set");
  CHECK_STR(resp_type_name(RESP_PUSH), "push");
  CHECK_STR(resp_type_name(0), "unknown");
  CHECK_STR(resp_type_name(99), "unknown");
}

/* ---- reader: RESP2 ------------------------------------------------------- */

TEST(simple_string) {
  EXPECT("+OK\r\n", "+\"OK\"\n");
  EXPECT("+\r\n", "+\"\"\n");
  EXPECT("+hello world\r\n+PONG\r\n", "+\"hello world\"\n+\"PONG\"\n");
  /* A lone '\r' inside the line is content; only CRLF ends it. */
  EXPECT("+a\rb\r\n", "+\"a\\rb\"\n");
  EXPECT("+OK\r", "");
}

TEST(error_reply) {
  EXPECT("-ERR unknown command 'x'\r\n", "-\"ERR unknown command 'x'\"\n");
  EXPECT("-WRONGTYPE Operation\r\n:1\r\n", "-\"WRONGTYPE Operation\"\n:1\n");
}

TEST(integer) {
  EXPECT(":0\r\n:1\r\n:-1\r\n:1000\r\n", ":0\n:1\n:-1\n:1000\n");
  EXPECT(":-0\r\n:007\r\n", ":0\n:7\n");
}

TEST(integer_extremes) {
  EXPECT(":9223372036854775807\r\n", ":9223372036854775807\n");
  EXPECT(":-9223372036854775808\r\n", ":-9223372036854775808\n");
  EXPECT(":-9223372036854775807\r\n", ":-9223372036854775807\n");
  EXPECT(":9223372036854775808\r\n", PE "integer overflow");
  EXPECT(":-9223372036854775809\r\n", PE "integer overflow");
  EXPECT(":18446744073709551616\r\n", PE "integer overflow");
  EXPECT(":99999999999999999999999999\r\n",
         PE "integer overflow");
  EXPECT(":00000000000000000000009223372036854775807\r\n",
         ":9223372036854775807\n");
}

TEST(integer_malformed) {
  EXPECT(":+1\r\n", PE "invalid integer");
  EXPECT(":\r\n", PE "invalid integer");
  EXPECT(":-\r\n", PE "invalid integer");
  EXPECT(": 1\r\n", PE "invalid integer");
  EXPECT(":1 \r\n", PE "invalid integer");
  EXPECT(":1a\r\n", PE "invalid integer");
  EXPECT(":--1\r\n", PE "invalid integer");
  EXPECT(":1.0\r\n", PE "invalid integer");
  EXPECT(":0x10\r\n", PE "invalid integer");
}

TEST(bulk) {
  EXPECT("$3\r\nfoo\r\n", "$\"foo\"\n");
  EXPECT("$0\r\n\r\n", "$\"\"\n");
  /* Binary safe: CRLF and NUL inside the payload. */
  EXPECT("$8\r\na\r\nb\0c\r\n\r\n", "$\"a\\r\\nb\\x00c\\r\\n\"\n");
  EXPECT("$5\r\n$3\r\nx\r\n:2\r\n", "$\"$3\\r\\nx\"\n:2\n");
  EXPECT("$3\r\nfo", "");
  EXPECT("$3\r\nfoo\r", "");
}

TEST(bulk_malformed) {
  EXPECT("$-2\r\n", PE "invalid bulk length");
  EXPECT("$abc\r\n", PE "invalid bulk length");
  EXPECT("$\r\n", PE "invalid bulk length");
  EXPECT("$ 3\r\nfoo\r\n", PE "invalid bulk length");
  EXPECT("$+3\r\nfoo\r\n", PE "invalid bulk length");
  EXPECT("$3x\r\nfoo\r\n", PE "invalid bulk length");
  EXPECT("$-1x\r\n", PE "invalid bulk length");
  EXPECT("$3\r\nfooXY", PE "bulk string not terminated by CRLF");
  EXPECT("$3\r\nfoo\rX", PE "bulk string not terminated by CRLF");
  EXPECT("$3\r\nfoo\n\r", PE "bulk string not terminated by CRLF");
  EXPECT("$2\r\nfoo\r\n", PE "bulk string not terminated by CRLF");
  EXPECT("$9223372036854775807\r\n", PE "bulk string too long");
  EXPECT("$9223372036854775808\r\n", PE "invalid bulk length");
  EXPECT("$99999999999999999999\r\n", PE "invalid bulk length");
}

TEST(null_forms) {
  EXPECT("$-1\r\n", "_$\n");
  EXPECT("*-1\r\n", "_*\n");
  EXPECT("_\r\n", "__\n");
  EXPECT("*3\r\n$-1\r\n*-1\r\n_\r\n", "*[_$ _* __]\n");
  EXPECT("_x\r\n", PE "invalid null");
  EXPECT("_ \r\n", PE "invalid null");
  EXPECT("!-1\r\n", PE "invalid bulk length");
  EXPECT("=-1\r\n", PE "invalid bulk length");
}

TEST(array_nested) {
  EXPECT("*0\r\n", "*[]\n");
  EXPECT("*2\r\n$3\r\nfoo\r\n:5\r\n", "*[$\"foo\" :5]\n");
  EXPECT("*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*0\r\n", "*[*[:1 :2] *[*[]]]\n");
  EXPECT("*3\r\n*1\r\n*1\r\n:1\r\n*0\r\n+x\r\n:9\r\n",
         "*[*[*[:1]] *[] +\"x\"]\n:9\n");
  EXPECT("*2\r\n:1\r\n", "");
}

TEST(aggregate_malformed) {
  EXPECT("*-5\r\n", PE "invalid aggregate length");
  EXPECT("*-2\r\n", PE "invalid aggregate length");
  EXPECT("*x\r\n", PE "invalid aggregate length");
  EXPECT("*\r\n", PE "invalid aggregate length");
  EXPECT("*+1\r\n:1\r\n", PE "invalid aggregate length");
  EXPECT("%-1\r\n", PE "invalid aggregate length");
  EXPECT("~-1\r\n", PE "invalid aggregate length");
  EXPECT(">-1\r\n", PE "invalid aggregate length");
  EXPECT("|-1\r\n", PE "invalid aggregate length");
  EXPECT("*9223372036854775808\r\n",
         PE "invalid aggregate length");
  EXPECT("*9223372036854775807\r\n",
         PE "too many elements in aggregate");
  EXPECT("*4294967296\r\n",
         PE "too many elements in aggregate");
  EXPECT("*2\r\n:1\r\n?", PE "unexpected byte 0x3f");
}

TEST(garbage_type_bytes) {
  static const char bad[] = "?xX@0 \t\r\n;.\x01\x7f\x80\xff";
  size_t i;

  for (i = 0; i < sizeof bad - 1; i++) {
    char in[8], want[64];
    char *got;
    in[0] = bad[i];
    memcpy(in + 1, "OK\r\n", 4);
    snprintf(want, sizeof want, PE "unexpected byte 0x%02x",
             (unsigned char)bad[i]);
    got = transcript(in, 5, 0, NULL, BYTES, 0, 0);
    CHECK_STR(got, want);
    free(got);
  }
  /* Also in the middle of an aggregate, and the \0 byte. */
  EXPECT("*1\r\n\0", PE "unexpected byte 0x00");
  EXPECT("+OK\r\n+OK\r\nGET\r\n", "+\"OK\"\n+\"OK\"\nERR protocol error: "
                                  "unexpected byte 0x47");
}

TEST(bare_newline) {
  EXPECT("+OK\n", PE "line not terminated by CRLF");
  EXPECT(":1\n", PE "line not terminated by CRLF");
  EXPECT("$3\nabc\r\n", PE "line not terminated by CRLF");
  EXPECT("*1\n:1\r\n", PE "line not terminated by CRLF");
  EXPECT("+\n", PE "line not terminated by CRLF");
  EXPECT("+OK\r\r\n", "+\"OK\\r\"\n");
}

TEST(sticky_error) {
  resp_reader r;
  resp_reply rep;
  int i;

  resp_reader_init(&r, NULL, 0);
  REQUIRE(resp_reader_feed(&r, "+OK\r\n$-2\r\n+OK\r\n", 15) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK_STR(resp_reader_error(&r), "");
  for (i = 0; i < 3; i++) {
    CHECK_INT(resp_reader_next(&r, &rep), RESP_EPROTO);
    CHECK_STR(resp_reader_error(&r), "protocol error: invalid bulk length");
  }
  /* More bytes do not help. */
  REQUIRE(resp_reader_feed(&r, "+OK\r\n", 5) == 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_EPROTO);
  CHECK_STR(resp_reader_error(&r), "protocol error: invalid bulk length");
  /* reset clears the error and the bytes, keeps the allocation. */
  resp_reader_reset(&r);
  CHECK(r.buf != NULL && r.cap > 0);
  CHECK_STR(resp_reader_error(&r), "");
  CHECK_INT(resp_reader_pending(&r), 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  REQUIRE(resp_reader_feed(&r, ":7\r\n", 4) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK(rep.count == 1 && rep.nodes[0].v.i == 7);
  resp_reader_free(&r);
}

TEST(reset_midway) {
  resp_reader r;
  resp_reply rep;

  resp_reader_init(&r, NULL, 0);
  REQUIRE(resp_reader_feed(&r, "*3\r\n*1\r\n$10\r\nabc", 17) == 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  resp_reader_reset(&r);
  REQUIRE(resp_reader_feed(&r, "+OK\r\n", 5) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK(rep.count == 1 && rep.nodes[0].type == RESP_SIMPLE);
  CHECK_INT(resp_reader_want(&r), 0);
  resp_reader_free(&r);
}

/* ---- reader: RESP3 ------------------------------------------------------- */

TEST(double) {
  EXPECT(",1.5\r\n", ",1.5\n");
  EXPECT(",-2\r\n,10\r\n", ",-2\n,10\n");
  EXPECT(",1e10\r\n,1.5E-3\r\n,-1.25e+2\r\n", ",10000000000\n,0.0015\n,-125\n");
  EXPECT(",.5\r\n,5.\r\n,+1.5\r\n", ",0.5\n,5\n,1.5\n");
  EXPECT(",inf\r\n,-inf\r\n,+inf\r\n,nan\r\n", ",inf\n,-inf\n,inf\n,nan\n");
  EXPECT(",3.141592653589793\r\n", ",3.1415926535897931\n");
  EXPECT(",1e400\r\n", ",inf\n");
  EXPECT(",0.1\r\n", ",0.10000000000000001\n");
}

TEST(double_malformed) {
  EXPECT(",\r\n", PE "invalid double");
  EXPECT(",1.2.3\r\n", PE "invalid double");
  EXPECT(",abc\r\n", PE "invalid double");
  EXPECT(",1e\r\n", PE "invalid double");
  EXPECT(",1e+\r\n", PE "invalid double");
  EXPECT(",0x10\r\n", PE "invalid double");
  EXPECT(",infinity\r\n", PE "invalid double");
  EXPECT(",INF\r\n", PE "invalid double");
  EXPECT(", 1\r\n", PE "invalid double");
  EXPECT(",1 \r\n", PE "invalid double");
  EXPECT(",.\r\n", PE "invalid double");
  EXPECT(",e5\r\n", PE "invalid double");
  EXPECT(",-\r\n", PE "invalid double");
  EXPECT(",--1\r\n", PE "invalid double");
}

TEST(boolean) {
  EXPECT("#t\r\n#f\r\n", "#t\n#f\n");
  EXPECT("#x\r\n", PE "invalid boolean");
  EXPECT("#tt\r\n", PE "invalid boolean");
  EXPECT("#\r\n", PE "invalid boolean");
  EXPECT("#T\r\n", PE "invalid boolean");
}

TEST(big_number) {
  EXPECT("(3492890328409238509324850943850943825024385\r\n",
         "(\"3492890328409238509324850943850943825024385\"\n");
  EXPECT("(-123\r\n(0\r\n", "(\"-123\"\n(\"0\"\n");
  EXPECT("(\r\n", PE "invalid big number");
  EXPECT("(-\r\n", PE "invalid big number");
  EXPECT("(+1\r\n", PE "invalid big number");
  EXPECT("(1.5\r\n", PE "invalid big number");
  EXPECT("(12a\r\n", PE "invalid big number");
}

TEST(verbatim) {
  EXPECT("=15\r\ntxt:Some string\r\n", "=txt\"Some string\"\n");
  EXPECT("=4\r\nmkd:\r\n", "=mkd\"\"\n");
  EXPECT("=9\r\ntxt:a\r\nbc\r\n", "=txt\"a\\r\\nbc\"\n");
  EXPECT("=3\r\ntxt\r\n", PE "invalid verbatim string");
  EXPECT("=0\r\n\r\n", PE "invalid verbatim string");
  EXPECT("=5\r\ntxtxx\r\n", PE "invalid verbatim string");
}

TEST(blob_error) {
  EXPECT("!21\r\nSYNTAX invalid syntax\r\n", "!\"SYNTAX invalid syntax\"\n");
  EXPECT("!0\r\n\r\n", "!\"\"\n");
}

TEST(map_set_push) {
  EXPECT("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", "%{+\"a\" :1 +\"b\" :2}\n");
  EXPECT("%0\r\n", "%{}\n");
  EXPECT("%1\r\n%1\r\n:1\r\n:2\r\n*1\r\n~0\r\n", "%{%{:1 :2} *[~[]]}\n");
  EXPECT("~3\r\n:1\r\n#t\r\n,2.5\r\n", "~[:1 #t ,2.5]\n");
  EXPECT(">3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n",
         ">[+\"message\" +\"ch\" $\"hi\"]\n");
  EXPECT("%1\r\n+a\r\n", "");
  EXPECT("%2\r\n+a\r\n:1\r\n+b\r\n", "");
}

TEST(attributes) {
  /* Dropped at top level: the reply is the value after the attribute. */
  EXPECT("|1\r\n+key\r\n+val\r\n:5\r\n", ":5\n");
  EXPECT("|0\r\n:5\r\n", ":5\n");
  EXPECT("|1\r\n+a\r\n+b\r\n", "");
  /* Inside an aggregate it is not an element. */
  EXPECT("*2\r\n:1\r\n|1\r\n+a\r\n+b\r\n:2\r\n", "*[:1 :2]\n");
  EXPECT("*1\r\n|1\r\n+a\r\n+b\r\n*1\r\n|0\r\n:3\r\n", "*[*[:3]]\n");
  /* With aggregates and attributes inside it. */
  EXPECT("|2\r\n+a\r\n*2\r\n:1\r\n|1\r\n+x\r\n+y\r\n:2\r\n"
         "|1\r\n+k\r\n+v\r\n+b\r\n%1\r\n+c\r\n_\r\n:3\r\n",
         ":3\n");
  /* Before a map key and before a map value. */
  EXPECT("%1\r\n|1\r\n+a\r\n+b\r\n+k\r\n|1\r\n+a\r\n+b\r\n+v\r\n",
         "%{+\"k\" +\"v\"}\n");
  /* Several in a row, then a pipeline. */
  EXPECT("|1\r\n:1\r\n:2\r\n|1\r\n:3\r\n:4\r\n$1\r\nx\r\n+OK\r\n",
         "$\"x\"\n+\"OK\"\n");
  EXPECT("|1\r\n:1\r\n?", PE "unexpected byte 0x3f");
}

TEST(attribute_bytes) {
  resp_reader r;
  resp_reply rep;
  static const char in[] = "|1\r\n+a\r\n+b\r\n$3\r\nabc\r\n";

  resp_reader_init(&r, NULL, 0);
  REQUIRE(resp_reader_feed(&r, in, sizeof in - 1) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  /* The wire size counts the attribute; the payload offset skips it. */
  CHECK_INT(rep.bytes, sizeof in - 1);
  CHECK_INT(rep.count, 1);
  CHECK(memcmp(rep.base + rep.nodes[0].off, "abc", 3) == 0);
  resp_reader_free(&r);
}

TEST(streamed_types) {
  EXPECT("$?\r\n;4\r\nabcd\r\n;0\r\n",
         PE "streamed replies are not supported");
  EXPECT("*?\r\n", PE "streamed replies are not supported");
  EXPECT("%?\r\n", PE "streamed replies are not supported");
  EXPECT("~?\r\n", PE "streamed replies are not supported");
  EXPECT(";4\r\n", PE "unexpected byte 0x3b");
  EXPECT(".\r\n", PE "unexpected byte 0x2e");
}

/* ---- limits -------------------------------------------------------------- */

static char *nested(int depth, const char *leaf) {
  size_t n = (size_t)depth * 4 + strlen(leaf) + 1, i;
  char *s = malloc(n);

  REQUIRE(s != NULL);
  for (i = 0; i < (size_t)depth; i++)
    memcpy(s + 4 * i, "*1\r\n", 4);
  strcpy(s + 4 * (size_t)depth, leaf);
  return s;
}

TEST(depth_limit) {
  resp_limits lim;
  char *in, *got;
  size_t n;

  /* The default: 128 levels, not 129. */
  in = nested(128, ":1\r\n");
  n = strlen(in);
  got = transcript(in, n, 0, NULL, BYTES, 0, 0);
  CHECK(strncmp(got, "*[*[*[", 6) == 0 && strstr(got, ":1]]]") != NULL);
  free(got);
  free(in);
  in = nested(129, ":1\r\n");
  got = transcript(in, strlen(in), 0, NULL, WHOLE, 0, 0);
  CHECK_STR(got, PE "nesting too deep");
  free(got);
  free(in);
  /* An empty aggregate is a level too. */
  in = nested(128, "*0\r\n");
  got = transcript(in, strlen(in), 0, NULL, BYTES, 0, 0);
  CHECK_STR(got, PE "nesting too deep");
  free(got);
  free(in);
  /* A low custom limit, with maps and attributes counting. */
  resp_limits_default(&lim);
  lim.max_depth = 2;
  EXPECT_LIM("*1\r\n*1\r\n:1\r\n", &lim, "*[*[:1]]\n");
  EXPECT_LIM("*1\r\n*1\r\n*0\r\n", &lim, PE "nesting too deep");
  EXPECT_LIM("%1\r\n:1\r\n~1\r\n>0\r\n", &lim,
             PE "nesting too deep");
  EXPECT_LIM("*1\r\n|1\r\n*0\r\n:1\r\n:1\r\n", &lim,
             PE "nesting too deep");
  EXPECT_LIM("*1\r\n|1\r\n:0\r\n:1\r\n:2\r\n", &lim, "*[:2]\n");
  /* Siblings do not add up. */
  EXPECT_LIM("*3\r\n*1\r\n:1\r\n*1\r\n:2\r\n*0\r\n", &lim,
             "*[*[:1] *[:2] *[]]\n");
}

TEST(elements_limit) {
  resp_limits lim;

  resp_limits_default(&lim);
  lim.max_elements = 3;
  EXPECT_LIM("*3\r\n:1\r\n:2\r\n:3\r\n", &lim, "*[:1 :2 :3]\n");
  EXPECT_LIM("*4\r\n", &lim, PE "too many elements in aggregate");
  EXPECT_LIM("~4\r\n", &lim, PE "too many elements in aggregate");
  EXPECT_LIM(">4\r\n", &lim, PE "too many elements in aggregate");
  EXPECT_LIM("%3\r\n:1\r\n:1\r\n:2\r\n:2\r\n:3\r\n:3\r\n", &lim,
             "%{:1 :1 :2 :2 :3 :3}\n");
  EXPECT_LIM("%4\r\n", &lim, PE "too many elements in aggregate");
  EXPECT_LIM("|4\r\n", &lim, PE "too many elements in aggregate");
  expect_at(__LINE__, "a b c d\r\n", 9, RESP_READER_REQUEST, &lim,
            PE "too many elements in aggregate");
  expect_at(__LINE__, "a b c\r\n", 7, RESP_READER_REQUEST, &lim,
            "*[$\"a\" $\"b\" $\"c\"]\n");
}

TEST(huge_count_no_prealloc) {
  resp_reader r;
  resp_reply rep;
  int i;

  resp_reader_init(&r, NULL, 0);
  REQUIRE(resp_reader_feed(&r, "*4000000000\r\n", 13) == 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  for (i = 0; i < 100; i++) {
    REQUIRE(resp_reader_feed(&r, "%2147483647\r\n", 13) == 0);
    CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  }
  /* Nodes follow the bytes received, not the counts announced. */
  CHECK(r.capnodes <= 256);
  CHECK_STR(resp_reader_error(&r), "");
  resp_reader_free(&r);
}

TEST(bulk_limit) {
  resp_limits lim;

  resp_limits_default(&lim);
  lim.max_bulk = 10;
  EXPECT_LIM("$10\r\n0123456789\r\n", &lim, "$\"0123456789\"\n");
  /* Refused at the header, before any payload arrives. */
  EXPECT_LIM("$11\r\n", &lim, PE "bulk string too long");
  EXPECT_LIM("!11\r\n", &lim, PE "bulk string too long");
  EXPECT_LIM("=11\r\n", &lim, PE "bulk string too long");
  /* The default is 512 MB. */
  EXPECT("$536870912\r\n", "");
  EXPECT("$536870913\r\n", PE "bulk string too long");
}

TEST(line_limit) {
  resp_limits lim;
  char *in, *got;
  size_t n = 64 * 1024;

  resp_limits_default(&lim);
  lim.max_line = 8;
  lim.max_bulk = 10;
  /* Lines that hold a number get max_line. */
  EXPECT_LIM(":12345678\r\n", &lim, ":12345678\n");
  EXPECT_LIM(":123456789\r\n", &lim, PE "line too long");
  EXPECT_LIM(":123456789", &lim, PE "line too long");
  EXPECT_LIM(":12345678\r", &lim, "");
  EXPECT_LIM("$123456789\r\n", &lim, PE "line too long");
  EXPECT_LIM("*123456789\r\n", &lim, PE "line too long");
  EXPECT_LIM(",1.2345678\r\n", &lim, PE "line too long");
  /* A status, an error or a big number is a string: it gets the bulk cap
   * (Redis sends a script's status_reply as long as a bulk string). */
  EXPECT_LIM("+1234567890\r\n", &lim, "+\"1234567890\"\n");
  EXPECT_LIM("-1234567890\r\n", &lim, "-\"1234567890\"\n");
  EXPECT_LIM("(1234567890\r\n", &lim, "(\"1234567890\"\n");
  EXPECT_LIM("+12345678901\r\n", &lim, PE "line too long");
  EXPECT_LIM("+12345678901", &lim, PE "line too long");
  EXPECT_LIM("+1234567890\r", &lim, "");
  EXPECT_LIM("-12345678901x", &lim, PE "line too long");
  /* Bulk payloads are not lines. */
  EXPECT_LIM("$10\r\n1234567890\r\n", &lim, "$\"1234567890\"\n");
  expect_at(__LINE__, "12345678\n", 9, RESP_READER_REQUEST, &lim,
            "*[$\"12345678\"]\n");
  expect_at(__LINE__, "12345678\r\n", 10, RESP_READER_REQUEST, &lim,
            "*[$\"12345678\"]\n");
  expect_at(__LINE__, "123456789\n", 10, RESP_READER_REQUEST, &lim,
            PE "line too long");
  /* The defaults: a number line of 64 KB at most; a status line over
   * 64 KB (issue 12 item 12: a script's 70 KB status_reply) is a reply. */
  in = malloc(n + 4);
  REQUIRE(in != NULL);
  in[0] = '+';
  memset(in + 1, 'a', n + 1);
  memcpy(in + n + 2, "\r\n", 2);
  got = transcript(in, n + 4, 0, NULL, RANDOM, 7, 5000);
  CHECK(strlen(got) == n + 5 && got[n + 4] == '\n');
  free(got);
  in[0] = '-';
  got = transcript(in, n + 4, 0, NULL, RANDOM, 7, 5000);
  CHECK(strlen(got) == n + 5 && got[0] == '-');
  free(got);
  in[0] = ':';
  memset(in + 1, '0', n);
  in[n] = '7';
  memcpy(in + n + 1, "\r\n", 2);
  got = transcript(in, n + 3, 0, NULL, RANDOM, 7, 5000);
  CHECK_STR(got, ":7\n");
  free(got);
  in[n + 1] = '0';
  memcpy(in + n + 2, "\r\n", 2);
  got = transcript(in, n + 4, 0, NULL, RANDOM, 7, 5000);
  CHECK_STR(got, PE "line too long");
  free(got);
  free(in);
}

TEST(string_line_bounded_by_reply) {
  resp_limits lim;
  char in[300];

  /* Below the bulk cap, max_reply bounds an unterminated status line:
   * the reader never buffers more of it than the reply may cost. */
  resp_limits_default(&lim);
  lim.max_reply = 100;
  in[0] = '+';
  memset(in + 1, 'x', sizeof in - 1);
  expect_at(__LINE__, in, sizeof in, 0, &lim, PE "reply too large");
  expect_at(__LINE__, in, 101, 0, &lim, "");
  expect_at(__LINE__, in, 102, 0, &lim, PE "reply too large");
  /* One that fits (wire + RESP_NODE_COST) passes. */
  memcpy(in + 20, "\r\n", 2);
  lim.max_reply = 22 + RESP_NODE_COST;
  expect_at(__LINE__, in, 22, 0, &lim,
            "+\"xxxxxxxxxxxxxxxxxxx\"\n");
  lim.max_reply = 21 + RESP_NODE_COST;
  expect_at(__LINE__, in, 22, 0, &lim, PE "reply too large");
}

TEST(reply_limit) {
  resp_limits lim;
  enum { C = RESP_NODE_COST };

  resp_limits_default(&lim);
  /* 20 wire bytes, 3 values. */
  lim.max_reply = 20 + 3 * C;
  EXPECT_LIM("*2\r\n$2\r\nab\r\n$2\r\ncd\r\n", &lim, "*[$\"ab\" $\"cd\"]\n");
  /* Each reply on its own; a pipeline is not one reply. */
  EXPECT_LIM("*2\r\n$2\r\nab\r\n$2\r\ncd\r\n*2\r\n$2\r\nab\r\n$2\r\ncd\r\n",
             &lim, "*[$\"ab\" $\"cd\"]\n*[$\"ab\" $\"cd\"]\n");
  EXPECT_LIM("*2\r\n$3\r\nabc\r\n$3\r\nabc\r\n", &lim,
             PE "reply too large");
  /* Known from the bulk header already. */
  EXPECT_LIM("$200\r\n", &lim, PE "reply too large");
  /* Attributes count while they last. */
  lim.max_reply = 22 + C;
  EXPECT_LIM("+cc\r\n", &lim, "+\"cc\"\n");
  EXPECT_LIM("|1\r\n+aaaa\r\n+bbbb\r\n+cc\r\n", &lim,
             PE "reply too large");
  lim.max_reply = 20 + 3 * C;
  EXPECT_LIM("*9\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n", &lim,
             PE "reply too large");
}

/* Issue 12 item 9: 10 million "_\r\n" are 30 MB on the wire and 670 MB
 * parsed. Each value is charged RESP_NODE_COST on top of its bytes, so
 * max_reply bounds what a reply allocates, not only what it reads. */
TEST(reply_limit_charges_values) {
  resp_limits lim;
  resp_reader r;
  resp_reply rep;
  size_t n = 100, wire, i;
  char *in = malloc(8 + 3 * n), *p = in;

  REQUIRE(in != NULL);
  p += sprintf(p, "*%zu\r\n", n);
  for (i = 0; i < n; i++, p += 3)
    memcpy(p, "_\r\n", 3);
  wire = (size_t)(p - in);
  resp_limits_default(&lim);
  /* Exactly the cost fits; a byte less fails, however it is fed. */
  lim.max_reply = wire + (n + 1) * RESP_NODE_COST;
  resp_reader_init(&r, &lim, 0);
  CHECK_INT(resp_reader_feed(&r, in, wire), 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_OK);
  CHECK_INT(rep.count, n + 1);
  CHECK_INT(rep.bytes, wire);
  resp_reader_free(&r);
  lim.max_reply--;
  resp_reader_init(&r, &lim, 0);
  CHECK_INT(resp_reader_feed(&r, in, wire), 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_EPROTO);
  CHECK_STR(resp_reader_error(&r), "protocol error: reply too large");
  resp_reader_free(&r);
  /* Ten times the wire size is far from enough. */
  lim.max_reply = wire * 10;
  resp_reader_init(&r, &lim, 0);
  for (i = 0; i < wire; i++)
    CHECK_INT(resp_reader_feed(&r, in + i, 1), 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_EPROTO);
  resp_reader_free(&r);
  /* Without max_reply nothing is charged. */
  resp_reader_init(&r, NULL, 0);
  CHECK_INT(resp_reader_feed(&r, in, wire), 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_OK);
  resp_reader_free(&r);
  free(in);
}

/* ---- streaming ----------------------------------------------------------- */

/* Every type, nested, with attributes and nulls: the corpus fed in every
 * way must give the same node arrays. */
static const char corpus[] =
    "+OK\r\n-ERR bad\r\n:0\r\n:-9223372036854775808\r\n$5\r\nhel\r\n\r\n"
    "$0\r\n\r\n$-1\r\n*-1\r\n_\r\n*0\r\n%0\r\n~0\r\n"
    "*3\r\n$3\r\nfoo\r\n*2\r\n:1\r\n_\r\n%1\r\n+k\r\n$1\r\nv\r\n"
    ",3.25\r\n,-inf\r\n,nan\r\n,1e-5\r\n#t\r\n#f\r\n(-12345678901234567890\r\n"
    "=8\r\ntxt:a\r\nb\r\n!9\r\nERR \r\nbad\r\n"
    "|1\r\n+ttl\r\n:3600\r\n%2\r\n+a\r\n|1\r\n:1\r\n:2\r\n~2\r\n:1\r\n:2\r\n"
    "+b\r\n>2\r\n+x\r\n*1\r\n*1\r\n*1\r\n$2\r\nzz\r\n"
    ">3\r\n+message\r\n+chan\r\n$7\r\npayload\r\n"
    "*2\r\n$-1\r\n=4\r\nmkd:\r\n";

static const char corpus_dump[] =
    "+\"OK\"\n-\"ERR bad\"\n:0\n:-9223372036854775808\n$\"hel\\r\\n\"\n"
    "$\"\"\n_$\n_*\n__\n*[]\n%{}\n~[]\n"
    "*[$\"foo\" *[:1 __] %{+\"k\" $\"v\"}]\n"
    ",3.25\n,-inf\n,nan\n,1.0000000000000001e-05\n#t\n#f\n"
    "(\"-12345678901234567890\"\n"
    "=txt\"a\\r\\nb\"\n!\"ERR \\r\\nbad\"\n"
    "%{+\"a\" ~[:1 :2] +\"b\" >[+\"x\" *[*[*[$\"zz\"]]]]}\n"
    ">[+\"message\" +\"chan\" $\"payload\"]\n"
    "*[_$ =mkd\"\"]\n";

TEST(corpus_whole) {
  char *got = transcript(corpus, sizeof corpus - 1, 0, NULL, WHOLE, 0, 0);
  CHECK_STR(got, corpus_dump);
  free(got);
}

TEST(corpus_one_byte_at_a_time) {
  char *got = transcript(corpus, sizeof corpus - 1, 0, NULL, BYTES, 0, 0);
  CHECK_STR(got, corpus_dump);
  free(got);
}

TEST(corpus_random_chunks) {
  uint32_t seed;

  for (seed = 1; seed <= 50; seed++) {
    char *got = transcript(corpus, sizeof corpus - 1, 0, NULL, RANDOM, seed,
                           seed % 2 ? 5 : 40);
    CHECK_STR(got, corpus_dump);
    free(got);
  }
}

TEST(crlf_split_everywhere) {
  uint32_t cut;

  /* Two feeds, cut at every position: every CR|LF boundary is covered. */
  for (cut = 0; cut <= sizeof corpus - 1; cut++) {
    char *got = transcript(corpus, sizeof corpus - 1, 0, NULL, SPLIT, cut, 0);
    if (strcmp(got, corpus_dump) != 0)
      FAIL_AT(__LINE__, "cut at %u: [%s]", (unsigned)cut, got);
    free(got);
  }
}

TEST(pipeline) {
  buf in, want;
  char *got;
  int i;

  buf_init(&in);
  buf_init(&want);
  for (i = 0; i < 2000; i++) {
    char tmp[64];
    int n;
    switch (i % 4) {
    case 0:
      n = snprintf(tmp, sizeof tmp, ":%d\r\n", i);
      buf_append(&in, tmp, (size_t)n);
      n = snprintf(tmp, sizeof tmp, ":%d\n", i);
      break;
    case 1:
      buf_append(&in, "+OK\r\n", 5);
      n = snprintf(tmp, sizeof tmp, "+\"OK\"\n");
      break;
    case 2:
      n = snprintf(tmp, sizeof tmp, "$%d\r\nv%d\r\n", i < 10 ? 2 : i < 100
                   ? 3 : i < 1000 ? 4 : 5, i);
      buf_append(&in, tmp, (size_t)n);
      n = snprintf(tmp, sizeof tmp, "$\"v%d\"\n", i);
      break;
    default:
      buf_append(&in, "*2\r\n$-1\r\n:1\r\n", 13);
      n = snprintf(tmp, sizeof tmp, "*[_$ :1]\n");
      break;
    }
    buf_append(&want, tmp, (size_t)n);
  }
  buf_append_char(&want, '\0');
  got = transcript(in.data, in.len, 0, NULL, WHOLE, 0, 0);
  CHECK_STR(got, want.data);
  free(got);
  got = transcript(in.data, in.len, 0, NULL, RANDOM, 3, 700);
  CHECK_STR(got, want.data);
  free(got);
  buf_free(&in);
  buf_free(&want);
}

/* Reads one large bulk string through space/commit. conn_style asks for
 * max(want, 16 KB) and writes all it is offered, as the client does;
 * otherwise 4 KB at a time. */
static void large_bulk(size_t n, int conn_style) {
  resp_reader r;
  resp_reply rep;
  char hdr[32], *p;
  size_t hl, cap = 0, avail, sent, i, total, k;

  resp_reader_init(&r, NULL, 0);
  hl = (size_t)snprintf(hdr, sizeof hdr, "$%zu\r\n", n);
  total = hl + n + 2;
  p = resp_reader_space(&r, 4096, &avail);
  REQUIRE(p != NULL && avail >= 4096);
  memcpy(p, hdr, hl);
  for (i = 0; i < 100; i++)
    p[hl + i] = (char)('a' + i % 26);
  resp_reader_commit(&r, hl + 100);
  sent = hl + 100;
  CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  CHECK_INT(resp_reader_want(&r), n - 100 + 2);
  while (sent < total) {
    size_t want = resp_reader_want(&r);
    if (conn_style)
      want = want > 16384 ? want : 16384;
    else
      want = 4096;
    p = resp_reader_space(&r, want, &avail);
    REQUIRE(p != NULL && avail >= want);
    /* One growth to hold the whole payload, then never again. */
    if (cap == 0)
      cap = r.cap;
    CHECK_INT(r.cap, cap);
    k = conn_style ? avail : want;
    if (k > total - sent)
      k = total - sent;
    for (i = 0; i < k; i++) {
      size_t at = sent + i - hl;
      p[i] = at < n ? (char)('a' + at % 26) : at == n ? '\r' : '\n';
    }
    resp_reader_commit(&r, k);
    sent += k;
    if (sent < total) {
      CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
      CHECK_INT(resp_reader_want(&r), total - sent);
    }
  }
  CHECK(cap >= total && cap <= total + 65536);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  REQUIRE(rep.count == 1 && rep.nodes[0].type == RESP_BULK);
  CHECK_INT(rep.nodes[0].len, n);
  CHECK_INT(rep.bytes, total);
  for (i = 0; i < n; i++)
    if (rep.base[rep.nodes[0].off + i] != (char)('a' + i % 26))
      break;
  CHECK_INT(i, n);
  CHECK_INT(resp_reader_want(&r), 0);
  resp_reader_free(&r);
}

TEST(space_commit_large_bulk) {
  large_bulk(1000000, 0);
  large_bulk(1000000, 1);
  large_bulk(20000, 1);
}

TEST(space_compacts) {
  /* A long stream of small replies cut mid-reply: the buffer is reused
   * from the front instead of growing. */
  static const char rep3[] = ":12345\r\n+OK\r\n$3\r\nabc\r\n";
  resp_reader r;
  resp_reply rep;
  size_t total = 0, avail, off = 0;
  int got = 0, i;

  resp_reader_init(&r, NULL, 0);
  for (i = 0; i < 200000; i++) {
    size_t k = 7 + (size_t)(i % 5);
    char *p = resp_reader_space(&r, 1024, &avail);
    size_t j;
    REQUIRE(p != NULL && avail >= 1024);
    for (j = 0; j < k; j++)
      p[j] = rep3[(off + j) % (sizeof rep3 - 1)];
    off += k;
    resp_reader_commit(&r, k);
    total += k;
    while (resp_reader_next(&r, &rep) == RESP_OK)
      got++;
  }
  CHECK(r.cap <= 16384);
  CHECK_INT(got, total / (sizeof rep3 - 1) * 3 +
                     (total % (sizeof rep3 - 1) >= 8) +
                     (total % (sizeof rep3 - 1) >= 13));
  CHECK_STR(resp_reader_error(&r), "");
  resp_reader_free(&r);
}

TEST(reply_valid_until_next_call) {
  resp_reader r;
  resp_reply a;

  resp_reader_init(&r, NULL, 0);
  REQUIRE(resp_reader_feed(&r, "$3\r\nabc\r\n*1\r\n$2\r\nxy\r\n", 21) == 0);
  REQUIRE(resp_reader_next(&r, &a) == RESP_OK);
  CHECK(a.base >= r.buf && a.base < r.buf + r.len);
  CHECK(memcmp(a.base + a.nodes[0].off, "abc", 3) == 0);
  CHECK_INT(resp_reader_pending(&r), 12);
  REQUIRE(resp_reader_next(&r, &a) == RESP_OK);
  CHECK(a.count == 2 && a.nodes[0].size == 2 && a.nodes[1].len == 2);
  CHECK(memcmp(a.base + a.nodes[1].off, "xy", 2) == 0);
  CHECK_INT(a.bytes, 12);
  CHECK_INT(resp_reader_pending(&r), 0);
  CHECK_INT(resp_reader_next(&r, &a), RESP_AGAIN);
  resp_reader_free(&r);
}

TEST(want_and_pending) {
  resp_reader r;
  resp_reply rep;

  resp_reader_init(&r, NULL, 0);
  CHECK_INT(resp_reader_want(&r), 0);
  CHECK_INT(resp_reader_pending(&r), 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  REQUIRE(resp_reader_feed(&r, "$10\r\nab", 7) == 0);
  CHECK_INT(resp_reader_pending(&r), 7);
  CHECK_INT(resp_reader_want(&r), 0); /* header not parsed yet */
  CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  CHECK_INT(resp_reader_want(&r), 10);
  REQUIRE(resp_reader_feed(&r, "cdefghij\r", 9) == 0);
  CHECK_INT(resp_reader_want(&r), 1);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  REQUIRE(resp_reader_feed(&r, "\n+OK\r\n", 6) == 0);
  CHECK_INT(resp_reader_want(&r), 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK(rep.nodes[0].len == 10 && rep.bytes == 17);
  CHECK_INT(resp_reader_pending(&r), 5);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK_INT(resp_reader_pending(&r), 0);
  resp_reader_free(&r);
}

TEST(shrink) {
  resp_reader r;
  resp_reply rep;
  char *big;
  const size_t n = 200000;

  resp_reader_init(&r, NULL, 0);
  big = malloc(n + 20);
  REQUIRE(big != NULL);
  memcpy(big, "$200000\r\n", 9);
  memset(big + 9, 'q', n);
  memcpy(big + 9 + n, "\r\n:1\r\n", 6);
  REQUIRE(resp_reader_feed(&r, big, 9 + n + 6) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  /* Bytes still pending: nothing is released. */
  resp_reader_shrink(&r, 4096);
  CHECK(r.buf != NULL && resp_reader_pending(&r) == 4);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK(rep.nodes[0].v.i == 1);
  resp_reader_shrink(&r, 1 << 30); /* small enough to keep */
  CHECK(r.buf != NULL);
  resp_reader_shrink(&r, 4096);
  CHECK(r.buf == NULL && r.cap == 0);
  /* Still usable afterwards. */
  REQUIRE(resp_reader_feed(&r, "+OK\r\n", 5) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK(rep.nodes[0].type == RESP_SIMPLE);
  free(big);
  resp_reader_free(&r);
}

static int same_limits(const resp_limits *a, const resp_limits *b) {
  return a->max_depth == b->max_depth && a->max_elements == b->max_elements &&
         a->max_bulk == b->max_bulk && a->max_line == b->max_line &&
         a->max_reply == b->max_reply;
}

TEST(limits_defaults) {
  resp_limits lim, zero;
  resp_reader r;

  resp_limits_default(&lim);
  CHECK_INT(lim.max_depth, 128);
  CHECK(lim.max_elements == INT64_C(4294967295));
  CHECK(lim.max_bulk == INT64_C(512) * 1024 * 1024);
  CHECK_INT(lim.max_line, 64 * 1024);
  CHECK_INT(lim.max_reply, 0);
  /* Zeroes in a custom table mean the defaults, not "nothing allowed". */
  memset(&zero, 0, sizeof zero);
  resp_reader_init(&r, &zero, 0);
  CHECK(same_limits(&r.lim, &lim));
  resp_reader_free(&r);
  resp_reader_init(&r, NULL, 0);
  CHECK(same_limits(&r.lim, &lim));
  resp_reader_free(&r);
}

TEST(space_grows_and_compacts) {
  /* A consumed reply in front and a partial line behind it, whose '\n'
   * arrives right after the bytes move: the search must resume at the
   * moved position, both when compacting in place and when growing. */
  resp_reader r;
  resp_reply rep;
  char *big, *p;
  const size_t n = 40000;
  size_t i, avail;

  resp_reader_init(&r, NULL, 0);
  REQUIRE(resp_reader_feed(&r, "+OK\r\n+PAR\r", 10) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  CHECK_INT(r.start, 5);
  /* In place: the request fits once the 5 consumed bytes are gone. */
  p = resp_reader_space(&r, r.cap - 5, &avail);
  REQUIRE(p != NULL);
  CHECK_INT(r.start, 0);
  CHECK_INT(r.cap, 16384);
  memcpy(p, "\n+PAR\r", 6);
  resp_reader_commit(&r, 6);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK(rep.nodes[0].len == 3 && memcmp(rep.base + 1, "PAR", 3) == 0);
  CHECK_INT(resp_reader_next(&r, &rep), RESP_AGAIN);
  CHECK_INT(r.start, 6);
  /* Growing: only the live bytes are copied, to the front. */
  big = malloc(n + 5);
  REQUIRE(big != NULL);
  memcpy(big, "\n+", 2);
  for (i = 0; i < n; i++)
    big[2 + i] = (char)('A' + i % 26);
  memcpy(big + 2 + n, "\r\n", 2);
  REQUIRE(resp_reader_feed(&r, big, n + 4) == 0);
  CHECK_INT(r.start, 0);
  CHECK(r.cap >= n + 10);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK(rep.nodes[0].len == 3 && memcmp(rep.base + 1, "PAR", 3) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  REQUIRE(rep.nodes[0].type == RESP_SIMPLE && rep.nodes[0].len == (int64_t)n);
  CHECK(memcmp(rep.base + rep.nodes[0].off, big + 2, n) == 0);
  /* An impossible size fails and changes nothing. */
  CHECK(resp_reader_space(&r, SIZE_MAX, NULL) == NULL);
  CHECK_INT(resp_reader_feed(&r, big, SIZE_MAX - 1), RESP_ENOMEM);
  REQUIRE(resp_reader_feed(&r, ":5\r\n", 4) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK(rep.nodes[0].v.i == 5);
  free(big);
  resp_reader_free(&r);
}

TEST(shrink_nodes) {
  /* The node array of a huge reply is released too. */
  resp_reader r;
  resp_reply rep;
  buf in;
  int i;

  buf_init(&in);
  REQUIRE(buf_append(&in, "*10000\r\n", 8) == 0);
  for (i = 0; i < 10000; i++)
    REQUIRE(buf_append(&in, "*1\r\n:1\r\n", 8) == 0);
  resp_reader_init(&r, NULL, 0);
  REQUIRE(resp_reader_feed(&r, in.data, in.len) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK_INT(rep.count, 20001);
  CHECK(r.capnodes >= 20001);
  resp_reader_shrink(&r, 4096);
  CHECK(r.nodes == NULL && r.capnodes == 0 && r.buf == NULL);
  REQUIRE(resp_reader_feed(&r, "*1\r\n*1\r\n_\r\n", 11) == 0);
  REQUIRE(resp_reader_next(&r, &rep) == RESP_OK);
  CHECK(rep.count == 3 && rep.nodes[2].null_of == '_');
  resp_reader_free(&r);
  buf_free(&in);
}

#ifdef LEVR_TEST_WRAP_MALLOC
/* Like transcript (RANDOM, small pieces), but every RESP_ENOMEM is retried:
 * the reader must come out of it as if nothing had happened. */
static char *transcript_retry(const char *in, size_t n, int flags,
                              long *failures) {
  resp_reader r;
  resp_reply rep;
  buf o;
  size_t at = 0, k, avail;
  uint32_t seed = 99;
  int rc, i = 0;

  resp_reader_init(&r, NULL, flags);
  buf_init(&o);
  while (at < n) {
    k = 1 + rnd(&seed) % 50;
    if (k > n - at)
      k = n - at;
    if (i++ & 1) {
      char *dst;
      t_armed = 1;
      dst = resp_reader_space(&r, k, &avail);
      t_armed = 0;
      if (dst == NULL) {
        ++*failures;
        continue;
      }
      memcpy(dst, in + at, k);
      resp_reader_commit(&r, k);
    } else {
      t_armed = 1;
      rc = resp_reader_feed(&r, in + at, k);
      t_armed = 0;
      if (rc != 0) {
        REQUIRE(rc == RESP_ENOMEM);
        ++*failures;
        continue;
      }
    }
    at += k;
    for (;;) {
      t_armed = 1;
      rc = resp_reader_next(&r, &rep);
      t_armed = 0;
      if (rc == RESP_ENOMEM) {
        ++*failures;
        continue;
      }
      if (rc != RESP_OK)
        break;
      dump_reply(&o, &r, &rep, flags);
    }
    REQUIRE(rc == RESP_AGAIN);
  }
  buf_append_char(&o, '\0');
  resp_reader_free(&r);
  return o.data;
}
#endif

TEST(enomem_retry) {
#ifdef LEVR_TEST_WRAP_MALLOC
  static const char req[] =
      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nECHO \"a b\" c\r\n"
      "*1\r\n$4\r\nPING\r\n";
  static const char req_dump[] =
      "*[$\"SET\" $\"k\" $\"v\"]\n*[$\"ECHO\" $\"a b\" $\"c\"]\n"
      "*[$\"PING\"]\n";
  long fail_at, failures;
  char *got;
  int pass;

  /* Fail the first allocation, then the second, ... until a run makes no
   * more allocations than that. */
  for (pass = 0; pass < 2; pass++) {
    for (fail_at = 0;; fail_at++) {
      failures = 0;
      t_calls = 0;
      t_fail_at = fail_at;
      got = pass == 0
                ? transcript_retry(corpus, sizeof corpus - 1, 0, &failures)
                : transcript_retry(req, sizeof req - 1, RESP_READER_REQUEST,
                                   &failures);
      t_fail_at = -1;
      CHECK_STR(got, pass == 0 ? corpus_dump : req_dump);
      free(got);
      if (t_calls <= fail_at)
        break;
      CHECK_INT(failures, 1);
    }
    CHECK(fail_at >= 3);
  }
#endif
}

/* ---- requests ------------------------------------------------------------ */

TEST(request_multibulk) {
  EXPECT_REQ("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
             "*[$\"SET\" $\"k\" $\"v\"]\n");
  EXPECT_REQ("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
             "*[$\"PING\"]\n*[$\"ECHO\" $\"\"]\n");
  EXPECT_REQ("*2\r\n$3\r\nGET\r\n:1\r\n",
             PE "expected '$', got ':'");
  EXPECT_REQ("*1\r\n*1\r\n", PE "expected '$', got '*'");
  EXPECT_REQ("*1\r\n\x01", PE "expected '$', got 0x01");
  EXPECT_REQ("*1\r\n$-1\r\n", PE "invalid bulk length");
  /* As Redis: counts <= 0 are skipped, counts over INT_MAX refused. */
  EXPECT_REQ("*-2\r\n*1\r\n$4\r\nPING\r\n", "*[$\"PING\"]\n");
  EXPECT_REQ("*3000000000\r\n", PE "invalid aggregate length");
  EXPECT_REQ("*1\r\n$3\r\nabcd\r\n",
             PE "bulk string not terminated by CRLF");
}

TEST(request_quick_spellings) {
  /* What resp_reader_next_args leaves to the general parser must come out
   * the same: leading zeros, more arguments than its max (4 here), a
   * bulk without its CRLF, a request cut anywhere. */
  EXPECT_REQ("*1\r\n$04\r\nPING\r\n", "*[$\"PING\"]\n");
  EXPECT_REQ("*01\r\n$4\r\nPING\r\n", "*[$\"PING\"]\n");
  EXPECT_REQ("*5\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$0\r\n\r\n"
             "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n",
             "*[$\"a\" $\"b\" $\"c\" $\"d\" $\"\"]\n"
             "*[$\"a\" $\"b\" $\"c\" $\"d\"]\n");
  EXPECT_REQ("*2\r\n$1\r\na\r\n$2\r\nbcd\r\n",
             PE "bulk string not terminated by CRLF");
  EXPECT_REQ("*1\r\n$+1\r\na\r\n", PE "invalid bulk length");
  EXPECT_REQ("*1\r\n$1\na\r\n", PE "line not terminated by CRLF");
  EXPECT_REQ("*1\r\n$70000\r\n", "");
}

TEST(request_skips_empty) {
  /* Empty lines and *0 / *-1 give nothing, as in Redis. */
  EXPECT_REQ("\r\n\n   \r\n\t\n*0\r\n*-1\r\nPING\r\n*0\r\n",
             "*[$\"PING\"]\n");
  EXPECT_REQ("*0\r\n*1\r\n$1\r\nx\r\n", "*[$\"x\"]\n");
}

TEST(request_inline) {
  EXPECT_REQ("SET k v\r\n", "*[$\"SET\" $\"k\" $\"v\"]\n");
  EXPECT_REQ("PING\n", "*[$\"PING\"]\n");
  EXPECT_REQ("  GET \t key  \r\n", "*[$\"GET\" $\"key\"]\n");
  EXPECT_REQ("PING\r\nPING\nECHO x\r\n",
             "*[$\"PING\"]\n*[$\"PING\"]\n*[$\"ECHO\" $\"x\"]\n");
  EXPECT_REQ("ECHO a\rb\r\n", "*[$\"ECHO\" $\"a\\rb\"]\n");
  EXPECT_REQ("PING", "");
  /* Mixed with multibulk requests. */
  EXPECT_REQ("PING\r\n*1\r\n$4\r\nPING\r\nPING\r\n",
             "*[$\"PING\"]\n*[$\"PING\"]\n*[$\"PING\"]\n");
  /* A '$' at the start is just a word. */
  EXPECT_REQ("$3\r\n", "*[$\"$3\"]\n");
}

TEST(request_inline_quotes) {
  EXPECT_REQ("SET \"a b\" 'c d'\r\n", "*[$\"SET\" $\"a b\" $\"c d\"]\n");
  EXPECT_REQ("SET k \"\\x41\\x7a\\n\\r\\t\\b\\a\\\\\\\"q\"\r\n",
             "*[$\"SET\" $\"k\" $\"Az\\n\\r\\x09\\x08\\x07\\\\\\\"q\"]\n");
  EXPECT_REQ("ECHO \"\\x00\\xff\\xZZ\\q\\x4A\\x4b\"\n",
             "*[$\"ECHO\" $\"\\x00\\xffxZZqJK\"]\n");
  EXPECT_REQ("ECHO 'it\\'s' 'a\\nb'\r\n",
             "*[$\"ECHO\" $\"it's\" $\"a\\\\nb\"]\n");
  EXPECT_REQ("ECHO \"\" ''\r\n", "*[$\"ECHO\" $\"\" $\"\"]\n");
  EXPECT_REQ("ECHO foo\"bar baz\" x'y z'\r\n",
             "*[$\"ECHO\" $\"foobar baz\" $\"xy z\"]\n");
  EXPECT_REQ("ECHO \"a\tb\"\t'\"'\r\n",
             "*[$\"ECHO\" $\"a\\x09b\" $\"\\\"\"]\n");
}

TEST(request_inline_unbalanced) {
  EXPECT_REQ("SET \"abc\r\n",
             PE "unbalanced quotes in request");
  EXPECT_REQ("SET 'abc\r\n",
             PE "unbalanced quotes in request");
  EXPECT_REQ("SET \"abc\"def\r\n",
             PE "unbalanced quotes in request");
  EXPECT_REQ("SET 'abc'd\r\n",
             PE "unbalanced quotes in request");
  EXPECT_REQ("SET \"abc\\\"\r\n",
             PE "unbalanced quotes in request");
  EXPECT_REQ("SET \"abc\\\r\n",
             PE "unbalanced quotes in request");
  EXPECT_REQ("PING\r\nSET \"x\n",
             "*[$\"PING\"]\nERR protocol error: unbalanced quotes in request");
}

/* ---- runner -------------------------------------------------------------- */

static const struct {
  const char *name;
  void (*fn)(void);
} cases[] = {
#define CASE(n) {#n, test_##n}
    CASE(buf_basic),
    CASE(buf_fmt_int),
    CASE(encode_command),
    CASE(encode_binary),
    CASE(encode_helpers),
    CASE(encode_enomem),
    CASE(encode_double),
    CASE(encode_roundtrip),
    CASE(encode_then_read_reply),
    CASE(type_names),
    CASE(simple_string),
    CASE(error_reply),
    CASE(integer),
    CASE(integer_extremes),
    CASE(integer_malformed),
    CASE(bulk),
    CASE(bulk_malformed),
    CASE(null_forms),
    CASE(array_nested),
    CASE(aggregate_malformed),
    CASE(garbage_type_bytes),
    CASE(bare_newline),
    CASE(sticky_error),
    CASE(reset_midway),
    CASE(double),
    CASE(double_malformed),
    CASE(boolean),
    CASE(big_number),
    CASE(verbatim),
    CASE(blob_error),
    CASE(map_set_push),
    CASE(attributes),
    CASE(attribute_bytes),
    CASE(streamed_types),
    CASE(depth_limit),
    CASE(elements_limit),
    CASE(huge_count_no_prealloc),
    CASE(bulk_limit),
    CASE(line_limit),
    CASE(reply_limit),
    CASE(string_line_bounded_by_reply),
    CASE(reply_limit_charges_values),
    CASE(corpus_whole),
    CASE(corpus_one_byte_at_a_time),
    CASE(corpus_random_chunks),
    CASE(crlf_split_everywhere),
    CASE(pipeline),
    CASE(space_commit_large_bulk),
    CASE(space_compacts),
    CASE(reply_valid_until_next_call),
    CASE(want_and_pending),
    CASE(shrink),
    CASE(limits_defaults),
    CASE(space_grows_and_compacts),
    CASE(shrink_nodes),
    CASE(enomem_retry),
    CASE(request_multibulk),
    CASE(request_quick_spellings),
    CASE(request_skips_empty),
    CASE(request_inline),
    CASE(request_inline_quotes),
    CASE(request_inline_unbalanced),
#undef CASE
};

static int run_case(size_t i) {
  int before = t_failed;

  if (setjmp(t_abort) == 0)
    cases[i].fn();
  if (t_failed != before) {
    fprintf(stderr, "FAIL %s\n", cases[i].name);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  size_t i, n = sizeof cases / sizeof cases[0];
  int bad = 0, found = 0;

  if (argc > 1 && strcmp(argv[1], "--list") == 0) {
    for (i = 0; i < n; i++)
      printf("%s\n", cases[i].name);
    return 0;
  }
  for (i = 0; i < n; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
      continue;
    found = 1;
    bad += run_case(i);
  }
  if (!found) {
    fprintf(stderr, "no such case: %s\n", argv[1]);
    return 2;
  }
  if (argc <= 1)
    printf("%zu cases, %d failed\n", n, bad);
  return bad ? 1 : 0;
}
