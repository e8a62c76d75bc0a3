/* buf: a growable byte buffer.
 *
 * Owns `data` (malloc'd). All functions return 0 on success or BUF_ENOMEM;
 * on failure the buffer is left as it was. No uv, no Lua.
 */
#ifndef LEVR_BUF_H
#define LEVR_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_ENOMEM (-12)

typedef struct buf {
  char *data;
  size_t len; /* bytes in use */
  size_t cap; /* bytes allocated */
} buf;

void buf_init(buf *b);
void buf_free(buf *b);

/* Makes room for `extra` more bytes after len; may move data. */
int buf_reserve(buf *b, size_t extra);
int buf_append(buf *b, const void *p, size_t n);
int buf_append_char(buf *b, char c);
/* Appends the decimal form of v (no NUL). */
int buf_append_int(buf *b, int64_t v);

/* Drops the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(buf *b, size_t n);
/* Sets len to 0; keeps the allocation unless it exceeds keep_cap bytes, in
 * which case it is released, so one huge write does not pin memory. */
void buf_reset(buf *b, size_t keep_cap);

/* Writes the decimal form of v into out (at least 21 bytes); returns its
 * length. No NUL is written. */
size_t buf_fmt_int(char *out, int64_t v);

/* Error texts live on the heap, made when an error happens, so an object
 * that never fails carries a pointer instead of a text buffer. Replaces
 * *text with the formatted string, cut to at most max - 1 bytes; NULL when
 * memory is short (readers then show a generic text). */
#if defined(__GNUC__)
void text_set(char **text, size_t max, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#else
void text_set(char **text, size_t max, const char *fmt, ...);
#endif
/* Frees *text and sets it to NULL. */
void text_clear(char **text);

#endif
