/* resp_encode: argv -> RESP bytes, and type names (see resp.h).
 *
 * Every encoder computes the exact size first and reserves it in one step,
 * so a failed allocation leaves the buf exactly as it was and the writes
 * that follow cannot fail half way.
 */
#include "resp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static size_t dec_digits(uint64_t u) {
  size_t n = 1;
  while (u >= 10) {
    u /= 10;
    n++;
  }
  return n;
}

/* Bytes of "<c><n>\r\n" for a non-negative n. */
static size_t header_size(uint64_t n) { return 1 + dec_digits(n) + 2; }

static char *put_header(char *p, char c, int64_t n) {
  *p++ = c;
  p += buf_fmt_int(p, n);
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

static char *put_bulk(char *p, const char *s, size_t n) {
  p = put_header(p, '$', (int64_t)n);
  if (n > 0)
    memcpy(p, s, n);
  p += n;
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

/* Wire size of one bulk string of n bytes, or 0 when it does not fit in a
 * size_t (no real bulk string has size 0, so 0 can mean overflow). */
static size_t bulk_size(size_t n) {
  size_t h = header_size(n) + 2;
  return n > SIZE_MAX - h ? 0 : n + h;
}

int resp_encode_command(buf *b, int argc, const char *const *argv,
                        const size_t *lens) {
  size_t total, one;
  char *p;
  int i;

  /* A negative count is a caller bug; refusing it keeps the buf intact
   * rather than writing a header that no server would accept. */
  if (argc < 0)
    return BUF_ENOMEM;
  total = header_size((uint64_t)argc);
  for (i = 0; i < argc; i++) {
    one = bulk_size(lens != NULL ? lens[i] : strlen(argv[i]));
    if (one == 0 || one > SIZE_MAX - total)
      return BUF_ENOMEM;
    total += one;
  }
  if (buf_reserve(b, total) != 0)
    return BUF_ENOMEM;
  p = put_header(b->data + b->len, '*', argc);
  for (i = 0; i < argc; i++)
    p = put_bulk(p, argv[i], lens != NULL ? lens[i] : strlen(argv[i]));
  b->len += total;
  return 0;
}

int resp_encode_array_header(buf *b, int64_t n) {
  char tmp[24];
  char *end = put_header(tmp, '*', n);
  return buf_append(b, tmp, (size_t)(end - tmp));
}

int resp_encode_bulk(buf *b, const char *p, size_t n) {
  size_t total = bulk_size(n);

  if (total == 0 || buf_reserve(b, total) != 0)
    return BUF_ENOMEM;
  put_bulk(b->data + b->len, p, n);
  b->len += total;
  return 0;
}

int resp_encode_bulk_int(buf *b, int64_t v) {
  char tmp[21];
  return resp_encode_bulk(b, tmp, buf_fmt_int(tmp, v));
}

int resp_encode_bulk_double(buf *b, double d) {
  char tmp[40];
  size_t i, n;
  int k;

  if (isnan(d))
    return resp_encode_bulk(b, "nan", 3);
  if (isinf(d))
    return d > 0 ? resp_encode_bulk(b, "inf", 3)
                 : resp_encode_bulk(b, "-inf", 4);
  /* The range test comes first: converting an out-of-range double to an
   * integer is undefined. -0.0 compares equal to 0 and is sent as "0". */
  if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
      d == (double)(int64_t)d)
    return resp_encode_bulk_int(b, (int64_t)d);
  k = snprintf(tmp, sizeof tmp, "%.17g", d);
  if (k <= 0 || (size_t)k >= sizeof tmp)
    return BUF_ENOMEM; /* cannot happen for a finite double */
  /* printf follows LC_NUMERIC, and a Lua program may have changed it with
   * os.setlocale. Redis wants '.', so any decimal point (which may be
   * several bytes long) is rewritten; %g writes nothing else that is not a
   * digit, a sign or an exponent mark. */
  for (i = 0, n = 0; i < (size_t)k;) {
    char c = tmp[i];
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' ||
        c == 'E') {
      tmp[n++] = c;
      i++;
    } else {
      tmp[n++] = '.';
      while (i < (size_t)k && !((tmp[i] >= '0' && tmp[i] <= '9') ||
                                tmp[i] == 'e' || tmp[i] == 'E'))
        i++;
    }
  }
  return resp_encode_bulk(b, tmp, n);
}

const char *resp_type_name(int type) {
  static const char *const names[] = {
      "unknown",     "simple_string",   "error",      "integer",
      "bulk_string", "array",           "null",       "double",
      "boolean",     "big_number",      "verbatim_string", "blob_error",
      "map",         "set",             "push"};

  if (type < RESP_SIMPLE || type > RESP_PUSH)
    return "unknown";
  return names[type];
}
