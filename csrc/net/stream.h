/* stream: a byte stream over uv_tcp_t, optionally TLS (tls.h on memory
 * BIOs), with asynchronous DNS (uv_getaddrinfo) and connect that tries each
 * resolved address in turn. No Lua.
 *
 * A stream is embedded in its owner's struct (stream.data points back); the
 * owner frees that struct in the close callback, never earlier. Every call
 * that takes a callback either fails and undoes its setup (the callback never
 * fires) or the callback fires exactly once, also when the stream is closed
 * meanwhile (with UV_ECANCELED).
 *
 * Reads go straight into memory the owner provides (alloc callback), so a
 * RESP reader's buffer can be the destination of recv() (or of SSL_read).
 */
#ifndef LEVR_STREAM_H
#define LEVR_STREAM_H

#include <stddef.h>
#include <uv.h>

#include "buf.h"
#include "tls.h"

/* Our own error codes, beside libuv's (which are negative errno values). */
#define STREAM_ETLS (-30001)      /* TLS failure; stream_strerror says why */
#define STREAM_ETIMEDOUT UV_ETIMEDOUT

typedef struct stream stream;

typedef void (*stream_connect_cb)(stream *s, int status);
/* Returns where up to *cap bytes may be written (NULL: out of memory). */
typedef char *(*stream_alloc_cb)(stream *s, size_t suggested, size_t *cap);
/* n > 0: that many bytes were written into the last allocation; n == 0:
 * nothing was, the allocation comes back unused (every allocation is
 * answered by one read_cb); n < 0: an error or UV_EOF; reading has
 * stopped then. */
typedef void (*stream_read_cb)(stream *s, ssize_t n);
typedef void (*stream_write_cb)(stream *s, int status);
typedef void (*stream_close_cb)(stream *s);

typedef struct stream_tls {
  tls_ctx *ctx;             /* referenced for the session's life */
  const char *server_name;  /* SNI and name check; NULL: the host */
} stream_tls;

struct stream {
  uv_tcp_t tcp;
  void *data;               /* the owner */
  /* private */
  uv_loop_t *loop;
  int flags;
  struct stream_cx *cx;     /* while connecting: the DNS and connect
                               requests, the addresses (heap; freed by
                               connect_done) */
  stream_connect_cb connect_cb;
  stream_alloc_cb alloc_cb;
  stream_read_cb read_cb;
  stream_write_cb write_cb;
  stream_close_cb close_cb;
  uv_write_t *wreq;         /* made by the first write that had to wait */
  tls_conn *tls;
  char *server_name;
  char *cipher_in;          /* TLS: ciphertext read buffer */
  buf cipher_out;           /* TLS: ciphertext being written */
  int last_err;
  char *errmsg;             /* TLS and DNS failures (heap), or NULL */
};

/* Initialises the handle; 0 or a uv error. After success the stream must
 * be closed with stream_close. */
int stream_init(uv_loop_t *loop, stream *s);
/* Resolves host, connects, and runs the TLS handshake when tls is not NULL.
 * cb(s, 0) when ready, cb(s, err) on failure (then close the stream). */
int stream_connect(stream *s, const char *host, int port,
                   const stream_tls *tls, stream_connect_cb cb);
/* Accepts a pending connection of server into s (initialised). */
int stream_accept(uv_stream_t *server, stream *s);

int stream_read_start(stream *s, stream_alloc_cb alloc_cb,
                      stream_read_cb read_cb);
int stream_read_stop(stream *s);

/* Writes n bytes. Returns 1 when all of them were written at once (cb is not
 * called), 0 when the write is in flight (cb fires later; p must stay valid
 * until then), or a negative error (cb is not called). One write at a time. */
int stream_write(stream *s, const char *p, size_t n, stream_write_cb cb);
int stream_writing(const stream *s);

/* Frees what the stream keeps after closing (its error text); call it
 * when freeing the memory of a closed stream. */
void stream_dispose(stream *s);

/* Closes; cb fires once after libuv has released the handle. Pending
 * connect and write callbacks fire first with UV_ECANCELED. Idempotent. */
void stream_close(stream *s, stream_close_cb cb);
int stream_closing(const stream *s);

/* Keeps the loop alive or not (an idle pooled connection does not). */
void stream_ref(stream *s, int on);

/* A short lower-case text for err: "connection refused", "timeout",
 * "dns: unknown node or service", "ssl: certificate verify failed: ...". */
const char *stream_strerror(const stream *s, int err);

#endif
