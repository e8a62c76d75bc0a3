/* resp_reader: the incremental RESP2/RESP3 parser (see resp.h).
 *
 * State kept between calls, so that no byte is parsed twice:
 *   start  first byte of the reply being built (node offsets are relative
 *          to it, so moving the bytes to the front of the buffer does not
 *          invalidate nodes already made);
 *   pos    first byte not yet consumed: everything in [start, pos) has
 *          become nodes;
 *   scan   where the search for the '\n' of the line at pos resumes;
 *   stack  the open aggregates with the number of children still due;
 *   pending_bulk  the last node is a string whose payload has not fully
 *          arrived; its off and len say where it will end.
 *
 * Memory follows the bytes that actually arrived: a node is added per
 * value parsed, never reserved from a declared count, so a header that
 * announces four billion elements costs nothing until they are sent.
 *
 * Every allocation is made before the state changes, so RESP_ENOMEM leaves
 * the reader as it was and the call may simply be repeated. Protocol errors
 * are sticky.
 */
#include "resp.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct resp_frame {
  size_t node;  /* aggregate: index of its node; attribute: nnodes when it
                   began, restored when it ends so its nodes vanish */
  int64_t left; /* child values still due */
  int attr;     /* 1 for an attribute (|): dropped when complete */
};

/* Results of one parsing step, besides RESP_AGAIN and the errors. */
#define STEP_VALUE 2 /* a whole value (leaf or empty aggregate) was added */
#define STEP_MORE 3  /* progress, but no value completed */

/* The first buffer: one typical socket read. */
#define READER_MIN_CAP 16384
/* Room kept behind a large bulk payload: one typical socket read. */
#define READER_READ_SLACK 65536
#define NODES_MIN_CAP 16
#define STACK_MIN_CAP 8

#define LINE_TOO_LONG "line too long"

#define IS_DIGIT(c) ((unsigned)((unsigned char)(c) - '0') <= 9)

#if defined(__GNUC__)
static int fail(resp_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#endif

/* Records a protocol error. It stays until resp_reader_reset. */
static int fail(resp_reader *r, const char *fmt, ...) {
  char detail[112];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  text_set(&r->errmsg, 128, "protocol error: %s", detail);
  r->err = RESP_EPROTO;
  return RESP_EPROTO;
}

void resp_limits_default(resp_limits *lim) {
  lim->max_depth = 128;
  lim->max_elements = INT64_C(4294967295);
  lim->max_bulk = INT64_C(512) * 1024 * 1024;
  lim->max_line = 64 * 1024;
  lim->max_reply = 0;
}

void resp_reader_init(resp_reader *r, const resp_limits *lim, int flags) {
  resp_limits def;

  memset(r, 0, sizeof *r);
  resp_limits_default(&def);
  if (lim != NULL) {
    /* Zero or negative means "the default": a table of limits filled in
     * only partly must not turn into a reader that accepts nothing. */
    r->lim = *lim;
    if (r->lim.max_depth <= 0)
      r->lim.max_depth = def.max_depth;
    if (r->lim.max_elements <= 0)
      r->lim.max_elements = def.max_elements;
    if (r->lim.max_bulk <= 0)
      r->lim.max_bulk = def.max_bulk;
    if (r->lim.max_line == 0)
      r->lim.max_line = def.max_line;
  } else {
    r->lim = def;
  }
  r->flags = flags;
  /* A string line can be as long as a bulk string, never shorter than a
   * number line. */
  r->str_line = (uint64_t)r->lim.max_bulk > (uint64_t)SIZE_MAX / 2
                    ? SIZE_MAX / 2
                    : (size_t)r->lim.max_bulk;
  if (r->str_line < r->lim.max_line)
    r->str_line = r->lim.max_line;
}

void resp_reader_free(resp_reader *r) {
  if (r->lender)
    resp_reader_return(r); /* the scratch's arrays are not ours to free */
  free(r->buf);
  free(r->nodes);
  free(r->stack);
  text_clear(&r->errmsg);
  r->buf = NULL;
  r->nodes = NULL;
  r->stack = NULL;
  r->len = r->cap = r->start = r->pos = r->scan = 0;
  r->nnodes = r->capnodes = 0;
  r->depth = r->capstack = 0;
  r->pending_bulk = 0;
}

void resp_reader_reset(resp_reader *r) {
  r->len = r->start = r->pos = r->scan = 0;
  r->nnodes = 0;
  r->depth = 0;
  r->pending_bulk = 0;
  r->err = 0;
  text_clear(&r->errmsg);
}

/* True when no reply is half built: the buffer may then be rewound. */
static int reader_idle(const resp_reader *r) {
  return r->start == r->len && r->depth == 0 && r->nnodes == 0 &&
         !r->pending_bulk;
}

/* Bytes still missing from the pending bulk payload and its CRLF. */
static size_t bulk_rest(const resp_reader *r) {
  const resp_node *nd;
  size_t end;

  if (!r->pending_bulk)
    return 0;
  nd = &r->nodes[r->nnodes - 1];
  end = r->start + nd->off + (size_t)nd->len + 2;
  return end > r->len ? end - r->len : 0;
}

/* Moves the live bytes [start, len) to the front. Node offsets are
 * relative to start and stay valid. */
static void compact(resp_reader *r) {
  size_t live = r->len - r->start;

  if (r->start == 0)
    return;
  if (live > 0)
    memmove(r->buf, r->buf + r->start, live);
  r->pos -= r->start;
  r->scan = r->scan > r->start ? r->scan - r->start : 0;
  r->len = live;
  r->start = 0;
}

char *resp_reader_space(resp_reader *r, size_t want, size_t *avail) {
  size_t live, need, rest, cap;
  char *p;

  if (reader_idle(r))
    r->len = r->start = r->pos = r->scan = 0;
  if (want == 0)
    want = 1;
  rest = bulk_rest(r);
  need = want > rest ? want : rest;
  if (need <= r->cap - r->len)
    goto done;
  live = r->len - r->start;
  /* Moving the live bytes costs no more than the copy a growth would make,
   * and each byte moves at most once per reply completed before it. */
  if (r->start > 0 && need <= r->cap - live) {
    compact(r);
    goto done;
  }
  if (rest > 0) {
    /* A pending bulk payload is made to fit in one step (doubling towards
     * a 100 MB payload would copy it many times over), with room for one
     * more socket read behind it: the read that brings its last bytes
     * then needs no second growth, whether the caller asks for the
     * payload's size or for its usual read size. */
    size_t extra = rest > SIZE_MAX - READER_READ_SLACK
                       ? SIZE_MAX
                       : rest + READER_READ_SLACK;
    if (want > extra)
      extra = want;
    if (extra > SIZE_MAX - live)
      return NULL;
    cap = live + extra;
    /* Still at least double, or an aggregate of many medium strings
     * would grow by small steps and be copied over and over. */
    if (r->cap <= SIZE_MAX / 2 && cap < 2 * r->cap)
      cap = 2 * r->cap;
  } else {
    if (need > SIZE_MAX - live)
      return NULL;
    cap = r->cap < READER_MIN_CAP ? READER_MIN_CAP : r->cap;
    while (cap < live + need) {
      if (cap > SIZE_MAX / 2) {
        cap = live + need;
        break;
      }
      cap *= 2;
    }
  }
  /* No object may be larger than PTRDIFF_MAX; asking would only fail. */
  if (cap > PTRDIFF_MAX)
    return NULL;
  if (r->start > 0) {
    /* Growing and compacting at once: copy only the live bytes. */
    p = malloc(cap);
    if (p == NULL)
      return NULL;
    if (live > 0)
      memcpy(p, r->buf + r->start, live);
    free(r->buf);
    r->buf = p;
    r->cap = cap;
    r->pos -= r->start;
    r->scan = r->scan > r->start ? r->scan - r->start : 0;
    r->len = live;
    r->start = 0;
  } else {
    p = realloc(r->buf, cap);
    if (p == NULL)
      return NULL;
    r->buf = p;
    r->cap = cap;
  }
done:
  if (avail != NULL)
    *avail = r->cap - r->len;
  return r->buf + r->len;
}

void resp_reader_commit(resp_reader *r, size_t n) {
  /* More than space() granted would be a caller bug; clamping keeps the
   * reader inside its own allocation. */
  if (n > r->cap - r->len)
    n = r->cap - r->len;
  r->len += n;
}

int resp_reader_feed(resp_reader *r, const void *data, size_t n) {
  char *p;

  if (n == 0)
    return 0;
  p = resp_reader_space(r, n, NULL);
  if (p == NULL)
    return RESP_ENOMEM;
  memcpy(p, data, n);
  r->len += n;
  return 0;
}

const char *resp_reader_error(const resp_reader *r) {
  if (r->errmsg)
    return r->errmsg;
  return r->err ? "protocol error" : "";
}

size_t resp_reader_pending(const resp_reader *r) { return r->len - r->start; }

int resp_reader_idle(const resp_reader *r) { return reader_idle(r); }

int resp_reader_borrow(resp_reader *r, resp_scratch *s) {
  if (s->holder == r) { /* kept from the last read: idle, nothing to do */
    s->busy = 1;
    return 0;
  }
  if (s->busy || r->lender != NULL || !reader_idle(r))
    return -1;
  if (s->holder != NULL)
    resp_reader_return(s->holder); /* idle between reads: allocates nothing */
  s->holder = r;
  s->busy = 1;
  r->lender = s;
  r->own_buf = r->buf;
  r->own_cap = r->cap;
  r->own_nodes = r->nodes;
  r->own_capnodes = r->capnodes;
  r->buf = s->buf;
  r->cap = s->cap;
  r->nodes = s->nodes;
  r->capnodes = s->capnodes;
  r->len = r->start = r->pos = r->scan = 0;
  return 0;
}

int resp_reader_release(resp_reader *r) {
  if (r->lender == NULL)
    return 0;
  r->lender->busy = 0;
  if (reader_idle(r)) {
    r->len = r->start = r->pos = r->scan = 0;
    return 0;
  }
  return resp_reader_return(r);
}

/* What is left after a return: the live bytes and nodes move from the
 * scratch's arrays (sbuf, snodes) into the reader's own. */
static int keep_rest(resp_reader *r, const char *sbuf, const resp_node *snodes) {
  size_t live = r->len - r->start, nn = r->nnodes;
  if (live > r->cap) {
    size_t cap = live < READER_MIN_CAP ? READER_MIN_CAP : live;
    char *p = malloc(cap);
    if (p == NULL)
      goto nomem;
    free(r->buf);
    r->buf = p;
    r->cap = cap;
  }
  if (nn > r->capnodes) {
    size_t cap = nn < NODES_MIN_CAP ? NODES_MIN_CAP : nn;
    resp_node *p = malloc(cap * sizeof(resp_node));
    if (p == NULL)
      goto nomem;
    free(r->nodes);
    r->nodes = p;
    r->capnodes = cap;
  }
  /* Node offsets are relative to start: rebasing the bytes to the front
   * keeps them valid. */
  if (live > 0)
    memcpy(r->buf, sbuf + r->start, live);
  if (nn > 0)
    memcpy(r->nodes, snodes, nn * sizeof(resp_node));
  r->pos -= r->start;
  r->scan = r->scan > r->start ? r->scan - r->start : 0;
  r->len = live;
  r->start = 0;
  return 0;
nomem:
  resp_reader_reset(r);
  return RESP_ENOMEM;
}

int resp_reader_return(resp_reader *r) {
  resp_scratch *s = r->lender;
  char *sbuf;
  resp_node *snodes;

  if (s == NULL)
    return 0;
  /* The scratch may have grown while lent: it gets the arrays back as
   * they are now. */
  sbuf = s->buf = r->buf;
  s->cap = r->cap;
  snodes = s->nodes = r->nodes;
  s->capnodes = r->capnodes;
  s->holder = NULL;
  s->busy = 0;
  r->lender = NULL;
  r->buf = r->own_buf;
  r->cap = r->own_cap;
  r->nodes = r->own_nodes;
  r->capnodes = r->own_capnodes;
  if (reader_idle(r)) { /* the usual case: every reply was taken */
    r->len = r->start = r->pos = r->scan = 0;
    return 0;
  }
  return keep_rest(r, sbuf, snodes);
}

void resp_scratch_free(resp_scratch *s) {
  if (s->holder != NULL)
    resp_reader_return(s->holder);
  free(s->buf);
  free(s->nodes);
  s->buf = NULL;
  s->nodes = NULL;
  s->cap = s->capnodes = 0;
  s->busy = 0;
}

size_t resp_reader_want(const resp_reader *r) { return bulk_rest(r); }

void resp_reader_shrink(resp_reader *r, size_t keep) {
  if (r->lender || r->len != r->start || r->depth != 0 || r->nnodes != 0 ||
      r->pending_bulk)
    return;
  r->len = r->start = r->pos = r->scan = 0;
  if (r->cap > keep) {
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
  }
  /* The node array of one huge reply would otherwise stay pinned too. */
  if (r->capnodes * sizeof(resp_node) > keep) {
    free(r->nodes);
    r->nodes = NULL;
    r->capnodes = 0;
  }
  if ((size_t)r->capstack * sizeof(resp_frame) > keep) {
    free(r->stack);
    r->stack = NULL;
    r->capstack = 0;
  }
}

/* Room for k more nodes. The subtree size is a uint32_t, which bounds the
 * nodes of one reply. */
static int reserve_nodes(resp_reader *r, size_t k) {
  size_t need, cap;
  resp_node *p;

  if (k > UINT32_MAX - r->nnodes)
    return fail(r, "reply too large");
  need = r->nnodes + k;
  if (need <= r->capnodes)
    return 0;
  cap = r->capnodes < NODES_MIN_CAP ? NODES_MIN_CAP : r->capnodes;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  if (cap > UINT32_MAX)
    cap = UINT32_MAX;
  if (cap > SIZE_MAX / sizeof(resp_node))
    return RESP_ENOMEM;
  p = realloc(r->nodes, cap * sizeof(resp_node));
  if (p == NULL)
    return RESP_ENOMEM;
  r->nodes = p;
  r->capnodes = cap;
  return 0;
}

/* Room for one more open aggregate (depth < max_depth is checked first). */
static int reserve_frame(resp_reader *r) {
  int cap;
  resp_frame *p;

  if (r->depth < r->capstack)
    return 0;
  cap = r->capstack < STACK_MIN_CAP ? STACK_MIN_CAP : r->capstack;
  while (cap <= r->depth)
    cap = cap > r->lim.max_depth / 2 ? r->lim.max_depth : cap * 2;
  p = realloc(r->stack, (size_t)cap * sizeof(resp_frame));
  if (p == NULL)
    return RESP_ENOMEM;
  r->stack = p;
  r->capstack = cap;
  return 0;
}

static resp_node *node_new(resp_reader *r, int type) {
  resp_node *nd = &r->nodes[r->nnodes];

  memset(nd, 0, sizeof *nd);
  nd->type = (uint8_t)type;
  nd->size = 1;
  return nd;
}

/* Whether the reply would still be within max_reply if it ended at the
 * absolute position end with k more nodes. A reply is charged its wire
 * bytes plus RESP_NODE_COST per value: a reply of many tiny values (a
 * million "_\r\n") costs far more parsed than on the wire. */
static int reply_fits(const resp_reader *r, size_t end, size_t k) {
  size_t wire = end - r->start;
  return r->lim.max_reply == 0 ||
         (wire <= r->lim.max_reply &&
          (uint64_t)(r->nnodes + k) * RESP_NODE_COST <=
              (uint64_t)(r->lim.max_reply - wire));
}

/* Finds the end of the line at pos whose content starts at pos + skip (skip
 * is 1 for the type byte). Returns 1 with *cend at the '\r' (or at a bare
 * '\n' when bare_lf, for inline commands) and *next after the '\n'; else
 * RESP_AGAIN or an error. The search resumes at scan and never looks past
 * the longest line allowed.
 *
 * An error is reported only once it is certain from the bytes seen, and
 * the checks run in the same order whether the line is whole or not, so
 * that however the input is split the same error comes out. */
static int find_line(resp_reader *r, size_t skip, int bare_lf, size_t max,
                     const char *toolong, size_t *cend, size_t *next) {
  size_t cs = r->pos + skip;
  size_t from = r->scan > cs ? r->scan : cs;
  size_t wend, i, content;
  const char *nl = NULL;
  int crlf;

  /* The '\n' of a line of max bytes is at cs + max + 1. */
  wend = r->len;
  if (max < SIZE_MAX - 2 - cs && cs + max + 2 < wend)
    wend = cs + max + 2;
  if (from < wend)
    nl = memchr(r->buf + from, '\n', wend - from);
  if (nl == NULL) {
    r->scan = wend > from ? wend : from;
    /* Whatever follows, the content is at least this long (a final '\r'
     * may be the start of the terminator). */
    content = wend - cs;
    if (content > 0 && r->buf[wend - 1] == '\r')
      content--;
    if (content > max)
      return fail(r, "%s", toolong);
    return RESP_AGAIN;
  }
  i = (size_t)(nl - r->buf);
  r->scan = i;
  crlf = i > cs && nl[-1] == '\r';
  *cend = crlf ? i - 1 : i;
  *next = i + 1;
  if (*cend - cs > max)
    return fail(r, "%s", toolong);
  if (!crlf && !bare_lf)
    return fail(r, "line not terminated by CRLF");
  if (!reply_fits(r, *next, 1))
    return fail(r, "reply too large");
  return 1;
}

/* Strict decimal int64: optional '-', at least one digit, nothing else.
 * Returns 0, -1 when malformed or -2 when out of range. */
static int parse_i64(const char *p, size_t n, int64_t *out) {
  size_t i = 0;
  int neg = 0;
  uint64_t v = 0, lim;

  if (n > 0 && p[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i == n)
    return -1;
  lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; i < n; i++) {
    unsigned d = (unsigned)((unsigned char)p[i] - '0');
    if (d > 9)
      return -1;
    if (v > (lim - d) / 10)
      return -2;
    v = v * 10 + d;
  }
  if (!neg)
    *out = (int64_t)v;
  else if (v == (uint64_t)INT64_MAX + 1)
    *out = INT64_MIN;
  else
    *out = -(int64_t)v;
  return 0;
}

static size_t skip_digits(const char *p, size_t i, size_t n) {
  while (i < n && IS_DIGIT(p[i]))
    i++;
  return i;
}

/* A RESP3 double: [+-]digits[.digits][(e|E)[+-]digits] (digits on at least
 * one side of the point), or inf, -inf, nan. p[n] must be writable (it is
 * the '\r' of the line). Returns 0, -1 when malformed or RESP_ENOMEM. */
static int parse_double(char *p, size_t n, double *out) {
  size_t i = 0, a, b;
  const char *dp;
  char *end, save, *tmp;

  if ((n == 3 && memcmp(p, "inf", 3) == 0) ||
      (n == 4 && memcmp(p, "+inf", 4) == 0)) {
    *out = HUGE_VAL;
    return 0;
  }
  if (n == 4 && memcmp(p, "-inf", 4) == 0) {
    *out = -HUGE_VAL;
    return 0;
  }
  if ((n == 3 && memcmp(p, "nan", 3) == 0) ||
      (n == 4 && memcmp(p, "-nan", 4) == 0)) {
    *out = NAN;
    return 0;
  }
  if (i < n && (p[i] == '+' || p[i] == '-'))
    i++;
  a = skip_digits(p, i, n) - i;
  i += a;
  b = 0;
  if (i < n && p[i] == '.') {
    i++;
    b = skip_digits(p, i, n) - i;
    i += b;
  }
  if (a + b == 0)
    return -1;
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    i++;
    if (i < n && (p[i] == '+' || p[i] == '-'))
      i++;
    a = skip_digits(p, i, n) - i;
    if (a == 0)
      return -1;
    i += a;
  }
  if (i != n)
    return -1;
  /* The grammar is checked; strtod only converts. It follows LC_NUMERIC,
   * which a Lua program may have changed, so a '.' is swapped for the
   * locale's decimal point in a copy when they differ. */
  dp = localeconv()->decimal_point;
  if (memchr(p, '.', n) == NULL || (dp[0] == '.' && dp[1] == '\0')) {
    save = p[n];
    p[n] = '\0';
    *out = strtod(p, &end);
    p[n] = save;
    return end == p + n ? 0 : -1;
  } else {
    size_t dl = strlen(dp), j, k = 0;
    int ok;
    tmp = malloc(n + dl + 1);
    if (tmp == NULL)
      return RESP_ENOMEM;
    for (j = 0; j < n; j++) {
      if (p[j] == '.') {
        memcpy(tmp + k, dp, dl);
        k += dl;
      } else {
        tmp[k++] = p[j];
      }
    }
    tmp[k] = '\0';
    *out = strtod(tmp, &end);
    ok = end == tmp + k;
    free(tmp);
    return ok ? 0 : -1;
  }
}

/* + - : , # ( _ : one line, one leaf node. */
static int parse_line_value(resp_reader *r, char t) {
  size_t cs = r->pos + 1, ce, next, n, max = r->lim.max_line;
  const char *toolong = LINE_TOO_LONG;
  char *p;
  resp_node *nd;
  int rc;

  /* A status, an error or a big number is a string: Redis sends one as
   * long as a bulk string (a script's status_reply), so it gets the bulk
   * cap, and max_reply when that is lower (an unterminated line is never
   * buffered past it); max_line guards the lines that hold a number. */
  if (t == '+' || t == '-' || t == '(') {
    max = r->str_line;
    if (r->lim.max_reply != 0 && r->lim.max_reply < max) {
      max = r->lim.max_reply;
      toolong = "reply too large";
    }
  }
  rc = find_line(r, 1, 0, max, toolong, &ce, &next);
  if (rc != 1)
    return rc;
  if ((rc = reserve_nodes(r, 1)) != 0)
    return rc;
  p = r->buf + cs;
  n = ce - cs;
  switch (t) {
  case '+':
  case '-':
    nd = node_new(r, t == '+' ? RESP_SIMPLE : RESP_ERROR);
    nd->off = cs - r->start;
    nd->len = (int64_t)n;
    break;
  case ':':
    nd = node_new(r, RESP_INTEGER);
    rc = parse_i64(p, n, &nd->v.i);
    if (rc == -2)
      return fail(r, "integer overflow");
    if (rc != 0)
      return fail(r, "invalid integer");
    break;
  case ',':
    nd = node_new(r, RESP_DOUBLE);
    rc = parse_double(p, n, &nd->v.d);
    if (rc == RESP_ENOMEM)
      return rc;
    if (rc != 0)
      return fail(r, "invalid double");
    break;
  case '#':
    if (n != 1 || (p[0] != 't' && p[0] != 'f'))
      return fail(r, "invalid boolean");
    nd = node_new(r, RESP_BOOLEAN);
    nd->v.b = p[0] == 't';
    break;
  case '(': {
    size_t i = n > 0 && p[0] == '-' ? 1 : 0;
    if (i == n || skip_digits(p, i, n) != n)
      return fail(r, "invalid big number");
    nd = node_new(r, RESP_BIGNUM);
    nd->off = cs - r->start;
    nd->len = (int64_t)n;
    break;
  }
  default: /* '_' */
    if (n != 0)
      return fail(r, "invalid null");
    nd = node_new(r, RESP_NULL);
    nd->null_of = '_';
    break;
  }
  r->nnodes++;
  r->pos = next;
  return STEP_VALUE;
}

/* Completes the pending string once its payload and CRLF are all in. */
static int bulk_finish(resp_reader *r) {
  resp_node *nd = &r->nodes[r->nnodes - 1];
  size_t s = r->start + nd->off;
  size_t end = s + (size_t)nd->len;

  if (r->len < end || r->len - end < 2)
    return RESP_AGAIN;
  if (r->buf[end] != '\r' || r->buf[end + 1] != '\n')
    return fail(r, "bulk string not terminated by CRLF");
  if (nd->type == RESP_VERBATIM) {
    if (r->buf[s + 3] != ':')
      return fail(r, "invalid verbatim string");
    memcpy(nd->fmt, r->buf + s, 3);
    nd->fmt[3] = '\0';
    nd->off += 4;
    nd->len -= 4;
  }
  r->pos = end + 2;
  r->pending_bulk = 0;
  return STEP_VALUE;
}

/* $ ! = : a length line, then the payload (possibly still to come). */
static int parse_bulk_header(resp_reader *r, char t) {
  size_t cs = r->pos + 1, ce, next;
  resp_node *nd;
  int64_t n;
  int rc;

  rc = find_line(r, 1, 0, r->lim.max_line, LINE_TOO_LONG, &ce,
                 &next);
  if (rc != 1)
    return rc;
  if (ce - cs == 1 && r->buf[cs] == '?')
    return fail(r, "streamed replies are not supported");
  if (parse_i64(r->buf + cs, ce - cs, &n) != 0)
    return fail(r, "invalid bulk length");
  if (n == -1 && t == '$' && !(r->flags & RESP_READER_REQUEST)) {
    if ((rc = reserve_nodes(r, 1)) != 0)
      return rc;
    nd = node_new(r, RESP_NULL);
    nd->null_of = '$';
    r->nnodes++;
    r->pos = next;
    return STEP_VALUE;
  }
  if (n < 0)
    return fail(r, "invalid bulk length");
  if (n > r->lim.max_bulk || (uint64_t)n > SIZE_MAX - 2 - next)
    return fail(r, "bulk string too long");
  if (!reply_fits(r, next + (size_t)n + 2, 1))
    return fail(r, "reply too large");
  if (t == '=' && n < 4)
    return fail(r, "invalid verbatim string");
  if ((rc = reserve_nodes(r, 1)) != 0)
    return rc;
  nd = node_new(r, t == '$' ? RESP_BULK
                            : t == '!' ? RESP_BLOB_ERROR : RESP_VERBATIM);
  nd->off = next - r->start;
  nd->len = n;
  r->nnodes++;
  r->pos = next;
  r->pending_bulk = 1;
  return bulk_finish(r);
}

/* * % ~ > | : a count line; the children follow as separate steps. */
static int parse_aggregate(resp_reader *r, char t) {
  size_t cs = r->pos + 1, ce, next;
  resp_frame *f;
  resp_node *nd;
  int64_t n;
  int rc, req = r->flags & RESP_READER_REQUEST;

  rc = find_line(r, 1, 0, r->lim.max_line, LINE_TOO_LONG, &ce,
                 &next);
  if (rc != 1)
    return rc;
  if (ce - cs == 1 && r->buf[cs] == '?')
    return fail(r, "streamed replies are not supported");
  if (req) {
    /* As Redis reads requests: any count <= 0 is skipped, a count above
     * INT_MAX is an error. */
    if (parse_i64(r->buf + cs, ce - cs, &n) != 0 || n > INT32_MAX)
      return fail(r, "invalid aggregate length");
    if (n <= 0) {
      r->pos = r->start = next;
      return STEP_MORE;
    }
  } else if (parse_i64(r->buf + cs, ce - cs, &n) != 0 || n < -1 ||
             (n == -1 && t != '*')) {
    return fail(r, "invalid aggregate length");
  }
  if (n == -1) {
    if ((rc = reserve_nodes(r, 1)) != 0)
      return rc;
    nd = node_new(r, RESP_NULL);
    nd->null_of = '*';
    r->nnodes++;
    r->pos = next;
    return STEP_VALUE;
  }
  if (n > r->lim.max_elements ||
      ((t == '%' || t == '|') && n > INT64_MAX / 2))
    return fail(r, "too many elements in aggregate");
  if (r->depth >= r->lim.max_depth)
    return fail(r, "nesting too deep");
  if (t == '|') {
    if (n == 0) {
      r->pos = next;
      return STEP_MORE;
    }
    if ((rc = reserve_frame(r)) != 0)
      return rc;
    f = &r->stack[r->depth++];
    f->node = r->nnodes;
    f->left = 2 * n;
    f->attr = 1;
    r->pos = next;
    return STEP_MORE;
  }
  if ((rc = reserve_nodes(r, 1)) != 0)
    return rc;
  if (n > 0 && (rc = reserve_frame(r)) != 0)
    return rc;
  nd = node_new(r, t == '*'   ? RESP_ARRAY
                   : t == '%' ? RESP_MAP
                   : t == '~' ? RESP_SET
                              : RESP_PUSH);
  nd->len = n;
  r->pos = next;
  if (n == 0) {
    r->nnodes++;
    return STEP_VALUE;
  }
  f = &r->stack[r->depth++];
  f->node = r->nnodes++;
  f->left = t == '%' ? 2 * n : n;
  f->attr = 0;
  return STEP_MORE;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Splits an inline command [p, e) into words the way redis-cli does.
 * With out == NULL it only counts and validates; otherwise it also
 * unescapes each word in place (a word never grows, and the write point
 * never passes the read point) and fills one bulk node per word, offsets
 * relative to base. Returns 0, or -1 on unbalanced quotes. */
static int inline_split(char *p, const char *e, resp_node *out,
                        const char *base, size_t *count) {
  char *w = p, *ws, c;
  size_t n = 0;

  for (;;) {
    while (p < e && is_blank(*p))
      p++;
    if (p == e)
      break;
    ws = w;
    while (p < e && !is_blank(*p)) {
      if (*p == '"') {
        for (p++;; w++) {
          if (p == e)
            return -1;
          c = *p;
          if (c == '"') {
            p++;
            break;
          }
          if (c == '\\' && e - p >= 4 && p[1] == 'x' &&
              hex_value(p[2]) >= 0 && hex_value(p[3]) >= 0) {
            c = (char)(hex_value(p[2]) * 16 + hex_value(p[3]));
            p += 4;
          } else if (c == '\\' && e - p >= 2) {
            switch (p[1]) {
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'b': c = '\b'; break;
            case 'a': c = '\a'; break;
            default: c = p[1]; break;
            }
            p += 2;
          } else {
            p++;
          }
          if (out != NULL)
            *w = c;
        }
        /* A closing quote ends the word; text glued to it is an error,
         * as in redis-cli. */
        if (p < e && !is_blank(*p))
          return -1;
        break;
      }
      if (*p == '\'') {
        for (p++;; w++) {
          if (p == e)
            return -1;
          c = *p;
          if (c == '\'') {
            p++;
            break;
          }
          if (c == '\\' && e - p >= 2 && p[1] == '\'') {
            c = '\'';
            p += 2;
          } else {
            p++;
          }
          if (out != NULL)
            *w = c;
        }
        if (p < e && !is_blank(*p))
          return -1;
        break;
      }
      if (out != NULL)
        *w = *p;
      w++;
      p++;
    }
    if (out != NULL) {
      resp_node *nd = &out[n];
      memset(nd, 0, sizeof *nd);
      nd->type = RESP_BULK;
      nd->size = 1;
      nd->off = (size_t)(ws - base);
      nd->len = (int64_t)(w - ws);
    }
    n++;
  }
  *count = n;
  return 0;
}

/* A request line that does not start with '*'. */
static int parse_inline(resp_reader *r) {
  size_t ce, next, n, i;
  resp_node *nd;
  int rc;

  rc = find_line(r, 0, 1, r->lim.max_line, LINE_TOO_LONG, &ce,
                 &next);
  if (rc != 1)
    return rc;
  /* Counting first means the only allocation happens before the bytes
   * are rewritten in place. */
  if (inline_split(r->buf + r->pos, r->buf + ce, NULL, NULL, &n) != 0)
    return fail(r, "unbalanced quotes in request");
  if (n == 0) {
    r->pos = r->start = next;
    return STEP_MORE;
  }
  if ((uint64_t)n > (uint64_t)r->lim.max_elements)
    return fail(r, "too many elements in aggregate");
  if (!reply_fits(r, next, n + 1))
    return fail(r, "reply too large");
  if ((rc = reserve_nodes(r, n + 1)) != 0)
    return rc;
  nd = node_new(r, RESP_ARRAY);
  nd->len = (int64_t)n;
  nd->size = (uint32_t)(n + 1);
  inline_split(r->buf + r->pos, r->buf + ce, nd + 1, r->buf + r->start, &i);
  r->nnodes += n + 1;
  r->pos = next;
  return STEP_VALUE;
}

static int parse_one(resp_reader *r) {
  unsigned char t;

  if (r->pos >= r->len)
    return RESP_AGAIN;
  t = (unsigned char)r->buf[r->pos];
  if (r->flags & RESP_READER_REQUEST) {
    if (r->depth == 0 && t != '*')
      return parse_inline(r);
    if (r->depth > 0 && t != '$') {
      if (t > 0x20 && t < 0x7f)
        return fail(r, "expected '$', got '%c'", t);
      return fail(r, "expected '$', got 0x%02x", t);
    }
  }
  switch (t) {
  case '+': case '-': case ':': case ',': case '#': case '(': case '_':
    return parse_line_value(r, (char)t);
  case '$': case '!': case '=':
    return parse_bulk_header(r, (char)t);
  case '*': case '%': case '~': case '>': case '|':
    return parse_aggregate(r, (char)t);
  default:
    return fail(r, "unexpected byte 0x%02x", t);
  }
}

/* A value has just been completed: count it against the open aggregates,
 * closing each that it fills. Returns 1 when the whole reply is done. */
static int value_done(resp_reader *r) {
  while (r->depth > 0) {
    resp_frame *f = &r->stack[r->depth - 1];
    if (--f->left > 0)
      return 0;
    r->depth--;
    if (f->attr) {
      /* The attribute and everything in it disappear, and it does not
       * count as an element: the value after it takes its place. */
      r->nnodes = f->node;
      return 0;
    }
    r->nodes[f->node].size = (uint32_t)(r->nnodes - f->node);
  }
  return 1;
}

/* Arguments longer than this take the general way. */
#define ARG_QUICK_MAX 65535

/* Reads "<digits>\r\n" at *pp (before end), the number at most cap; no
 * leading zeros (the general parser decides those). 1 on success. */
static int quick_count(const char **pp, const char *end, size_t cap,
                       size_t *out) {
  const char *p = *pp;
  size_t v = 0;
  if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end &&
                                           p[1] != '\r'))
    return 0;
  while (p < end && *p >= '0' && *p <= '9') {
    v = v * 10 + (size_t)(*p - '0');
    if (v > cap)
      return 0;
    p++;
  }
  if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
    return 0;
  *pp = p + 2;
  *out = v;
  return 1;
}

int resp_reader_next_args(resp_reader *r, const char **base, resp_span *args,
                          int max) {
  const char *p, *end;
  size_t n, i, len;

  if (r->err || !(r->flags & RESP_READER_REQUEST) || r->depth != 0 ||
      r->nnodes != 0 || r->pending_bulk || r->pos != r->start ||
      r->lim.max_reply != 0 || r->lim.max_bulk < ARG_QUICK_MAX ||
      r->lim.max_elements < max || r->lim.max_depth < 1)
    return 0;
  p = r->buf + r->start;
  end = r->buf + r->len;
  if (p >= end || *p != '*')
    return 0;
  p++;
  if (!quick_count(&p, end, (size_t)max, &n) || n == 0)
    return 0;
  for (i = 0; i < n; i++) {
    if (p >= end || *p != '$')
      return 0;
    p++;
    if (!quick_count(&p, end, ARG_QUICK_MAX, &len) ||
        (size_t)(end - p) < len + 2 || p[len] != '\r' || p[len + 1] != '\n')
      return 0;
    args[i].off = (size_t)(p - r->buf);
    args[i].len = len;
    p += len + 2;
  }
  *base = r->buf;
  r->start = r->pos = r->scan = (size_t)(p - r->buf);
  return (int)n;
}

int resp_reader_next(resp_reader *r, resp_reply *out) {
  int rc;

  if (r->err)
    return r->err;
  if (reader_idle(r))
    r->len = r->start = r->pos = r->scan = 0;
  for (;;) {
    rc = r->pending_bulk ? bulk_finish(r) : parse_one(r);
    if (rc == STEP_MORE)
      continue;
    if (rc != STEP_VALUE)
      return rc;
    if (value_done(r))
      break;
  }
  out->nodes = r->nodes;
  out->count = r->nnodes;
  out->base = r->buf + r->start;
  out->bytes = r->pos - r->start;
  r->start = r->pos;
  r->nnodes = 0;
  return RESP_OK;
}
