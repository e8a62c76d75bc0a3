/* buf: a growable byte buffer (see buf.h for the contract). */
#include "buf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation: small enough not to matter for a connection that sends
 * one short command, large enough to skip the first few doublings. */
#define BUF_MIN_CAP 64

void buf_init(buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void buf_free(buf *b) {
  free(b->data);
  buf_init(b);
}

int buf_reserve(buf *b, size_t extra) {
  size_t need, cap;
  char *p;

  if (extra <= b->cap - b->len)
    return 0;
  /* Size arithmetic is checked so that a huge request fails cleanly
   * instead of wrapping around to a small allocation. */
  if (extra > SIZE_MAX - b->len)
    return BUF_ENOMEM;
  need = b->len + extra;
  cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
  /* Geometric growth keeps appends amortised O(1). */
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  /* No object may be larger than PTRDIFF_MAX; asking would only fail. */
  if (cap > PTRDIFF_MAX) {
    if (need > PTRDIFF_MAX)
      return BUF_ENOMEM;
    cap = PTRDIFF_MAX;
  }
  p = realloc(b->data, cap);
  if (p == NULL)
    return BUF_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int buf_append(buf *b, const void *p, size_t n) {
  if (n == 0)
    return 0;
  if (buf_reserve(b, n) != 0)
    return BUF_ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int buf_append_char(buf *b, char c) {
  if (buf_reserve(b, 1) != 0)
    return BUF_ENOMEM;
  b->data[b->len++] = c;
  return 0;
}

int buf_append_int(buf *b, int64_t v) {
  char tmp[21];
  return buf_append(b, tmp, buf_fmt_int(tmp, v));
}

void buf_consume(buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void buf_reset(buf *b, size_t keep_cap) {
  b->len = 0;
  if (b->cap > keep_cap) {
    free(b->data);
    b->data = NULL;
    b->cap = 0;
  }
}

static size_t u64_digits(uint64_t u) {
  size_t n = 1;
  /* Four digits per step: most values sent to Redis are short. */
  while (u >= 10000) {
    u /= 10000;
    n += 4;
  }
  if (u >= 1000)
    return n + 3;
  if (u >= 100)
    return n + 2;
  if (u >= 10)
    return n + 1;
  return n;
}

size_t buf_fmt_int(char *out, int64_t v) {
  /* Two digits per division halves the number of divisions. */
  static const char pairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233"
      "34353637383940414243444546474849505152535455565758596061626364656667"
      "6869707172737475767778798081828384858687888990919293949596979899";
  /* Negating in unsigned arithmetic is defined for INT64_MIN as well. */
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  size_t n;
  if (u < 10 && v >= 0) { /* array and bulk headers are mostly this */
    out[0] = (char)('0' + u);
    return 1;
  }
  n = u64_digits(u) + (v < 0);
  char *p = out + n;

  while (u >= 100) {
    unsigned i = (unsigned)(u % 100) * 2;
    u /= 100;
    *--p = pairs[i + 1];
    *--p = pairs[i];
  }
  if (u >= 10) {
    unsigned i = (unsigned)u * 2;
    *--p = pairs[i + 1];
    *--p = pairs[i];
  } else {
    *--p = (char)('0' + u);
  }
  if (v < 0)
    *--p = '-';
  return n;
}

void text_set(char **text, size_t max, const char *fmt, ...) {
  va_list ap;
  char *t = NULL;
  int n;

  /* The arguments may point into *text: it is freed last. */
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n >= 0 && max > 0) {
    if ((size_t)n >= max)
      n = (int)(max - 1);
    t = (char *)malloc((size_t)n + 1);
    if (t != NULL) {
      va_start(ap, fmt);
      vsnprintf(t, (size_t)n + 1, fmt, ap);
      va_end(ap);
    }
  }
  free(*text);
  *text = t;
}

void text_clear(char **text) {
  free(*text);
  *text = NULL;
}
