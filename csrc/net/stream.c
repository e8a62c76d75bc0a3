/* stream: TCP (and TLS) byte streams on libuv. See stream.h. */
#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum {
  S_CONNECTING = 1 << 0,  /* connect_cb not yet called */
  S_RESOLVING = 1 << 1,   /* uv_getaddrinfo in flight */
  S_REOPENING = 1 << 2,   /* tcp handle closing between two addresses */
  S_READING = 1 << 3,     /* owner wants bytes */
  S_WRITING = 1 << 4,     /* a uv_write is in flight */
  S_CLOSING = 1 << 5,
  S_HANDSHAKE = 1 << 6,   /* TLS handshake running */
  S_TLS_EOF = 1 << 7,
  S_CLOSED = 1 << 8,      /* tcp handle released */
  S_OWNER = 1 << 9,       /* the owner's write (write_cb) is not done */
  S_QUEUED = 1 << 10,     /* TLS: the owner's records wait in the session
                             behind an internal write (see stream_write) */
  S_STASH = 1 << 11       /* TLS: cipher_in carries a tls_stash */
};

#define CIPHER_BUF 65536
#define STASH_CAP 32768

/* After a failed write (tls_write_failed), cipher_in (CIPHER_BUF bytes for
 * the socket reads) grows a stash behind it: plaintext taken out of the
 * session early, handed to the owner before anything else. (Kept there so
 * that stream.h need not grow.) */
typedef struct tls_stash {
  size_t off, len;
  char data[STASH_CAP];
} tls_stash;

#define STASH(s) ((tls_stash *)(void *)((s)->cipher_in + CIPHER_BUF))

static void stream_try_finish_close(stream *s);

/* What only connecting needs lives apart, so a connected stream does not
 * carry it. */
struct stream_cx {
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  struct addrinfo *addrs, *next_addr; /* the resolved list; the next to try */
};
static int tls_flush(stream *s);

int stream_init(uv_loop_t *loop, stream *s) {
  void *data = s->data;
  memset(s, 0, sizeof(*s));
  s->data = data;
  s->loop = loop;
  buf_init(&s->cipher_out);
  return uv_tcp_init(loop, &s->tcp);
}

const char *stream_strerror(const stream *s, int err) {
  if (err == STREAM_ETLS || (s && s->errmsg && err == s->last_err))
    return s && s->errmsg ? s->errmsg : "ssl: error";
  switch (err) {
  case UV_ETIMEDOUT: return "timeout";
  case UV_EOF: return "connection closed by server";
  case UV_ECANCELED: return "closed";
  default: return uv_strerror(err);
  }
}

static int fail_msg(stream *s, int err, const char *prefix, const char *text) {
  text_set(&s->errmsg, 200, "%s%s", prefix, text);
  s->last_err = err;
  return err;
}

/* ---- connect ---------------------------------------------------------- */

static void connect_done(stream *s, int status) {
  stream_connect_cb cb = s->connect_cb;
  s->flags &= ~(S_CONNECTING | S_HANDSHAKE);
  /* Every request is done by now: this runs from the last one's callback
   * or after it (a DNS request being cancelled keeps S_RESOLVING, and its
   * callback is what calls this). */
  if (s->cx && s->cx->addrs)
    uv_freeaddrinfo(s->cx->addrs);
  free(s->cx);
  s->cx = NULL;
  if (status == 0 && (s->flags & S_CLOSING))
    status = UV_ECANCELED;
  s->connect_cb = NULL;
  if (cb)
    cb(s, status);
}

static void on_tcp_connected(uv_connect_t *req, int status);
static void try_next_address(stream *s);

static void on_reopened(uv_handle_t *h) {
  stream *s = (stream *)h->data;
  int r;
  s->flags &= ~S_REOPENING;
  if (s->flags & S_CLOSING) {
    s->flags |= S_CLOSED;
    connect_done(s, UV_ECANCELED);
    stream_try_finish_close(s);
    return;
  }
  r = uv_tcp_init(s->loop, &s->tcp);
  if (r != 0) {
    s->flags |= S_CLOSED;
    connect_done(s, r);
    return;
  }
  s->tcp.data = s;
  try_next_address(s);
}

static void try_next_address(stream *s) {
  if (s->cx->next_addr) {
    struct addrinfo *ai = s->cx->next_addr;
    int r;
    s->cx->next_addr = ai->ai_next;
    r = uv_tcp_connect(&s->cx->creq, &s->tcp, ai->ai_addr, on_tcp_connected);
    if (r == 0)
      return;
    s->last_err = r;
    if (s->cx->next_addr) {
      /* libuv keeps the socket it made for this address (of its family);
       * the next address needs a fresh one. */
      s->flags |= S_REOPENING;
      uv_close((uv_handle_t *)&s->tcp, on_reopened);
      return;
    }
  }
  connect_done(s, s->last_err ? s->last_err : UV_ECONNREFUSED);
}

static void tls_handshake_step(stream *s);

static char *tls_cipher_alloc(stream *s) {
  if (!s->cipher_in)
    s->cipher_in = malloc(CIPHER_BUF);
  return s->cipher_in;
}

/* The stash, made on first use; NULL when out of memory. cipher_in may
 * move: no socket read is in progress when this runs (libuv is done with
 * the buffer once the read callback fed it to the session). */
static tls_stash *tls_stash_get(stream *s) {
  char *p;
  if (s->flags & S_STASH)
    return STASH(s);
  p = realloc(s->cipher_in, CIPHER_BUF + sizeof(tls_stash));
  if (!p)
    return NULL;
  s->cipher_in = p;
  s->flags |= S_STASH;
  STASH(s)->off = STASH(s)->len = 0;
  return STASH(s);
}

static void on_hs_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  stream *s = (stream *)h->data;
  b->base = tls_cipher_alloc(s);
  b->len = b->base ? CIPHER_BUF : 0;
}

static void on_hs_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  stream *s = (stream *)h->data;
  if (n == 0)
    return;
  if (n < 0) {
    uv_read_stop(h);
    if (n == UV_EOF)
      fail_msg(s, STREAM_ETLS, "ssl: ", "connection closed during handshake");
    else
      fail_msg(s, (int)n, "ssl: ", uv_strerror((int)n));
    connect_done(s, s->last_err);
    return;
  }
  if (tls_conn_feed(s->tls, b->base, (size_t)n) != TLS_OK) {
    uv_read_stop(h);
    fail_msg(s, STREAM_ETLS, "", tls_conn_error(s->tls));
    connect_done(s, STREAM_ETLS);
    return;
  }
  tls_handshake_step(s);
}

static void tls_handshake_step(stream *s) {
  int r = tls_conn_handshake(s->tls);
  if (r == TLS_ERR) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    tls_flush(s);
    fail_msg(s, STREAM_ETLS, "", tls_conn_error(s->tls));
    connect_done(s, STREAM_ETLS);
    return;
  }
  if (tls_flush(s) < 0) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    connect_done(s, s->last_err);
    return;
  }
  if (r == TLS_OK) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    connect_done(s, 0);
    return;
  }
  if (!uv_is_active((uv_handle_t *)&s->tcp) || !(s->flags & S_HANDSHAKE)) {
    int e;
    s->flags |= S_HANDSHAKE;
    e = uv_read_start((uv_stream_t *)&s->tcp, on_hs_alloc, on_hs_read);
    if (e != 0)
      connect_done(s, e);
  }
}

static void on_tcp_connected(uv_connect_t *req, int status) {
  stream *s = (stream *)req->handle->data;
  if (s->flags & S_CLOSING) {
    connect_done(s, UV_ECANCELED);
    return;
  }
  if (status != 0) {
    s->last_err = status;
    if (s->cx->next_addr) {
      /* A socket whose connect failed cannot be reused: close it, open a
       * fresh one, try the next address. */
      s->flags |= S_REOPENING;
      uv_close((uv_handle_t *)&s->tcp, on_reopened);
      return;
    }
    connect_done(s, status);
    return;
  }
  uv_tcp_nodelay(&s->tcp, 1);
  if (s->tls) {
    tls_handshake_step(s);
    return;
  }
  connect_done(s, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  stream *s = (stream *)req->data;
  s->flags &= ~S_RESOLVING;
  if (s->flags & S_CLOSING) {
    if (res)
      uv_freeaddrinfo(res);
    connect_done(s, UV_ECANCELED);
    stream_try_finish_close(s);
    return;
  }
  if (status != 0) {
    fail_msg(s, status, "dns: ", uv_strerror(status));
    connect_done(s, status);
    return;
  }
  s->cx->addrs = s->cx->next_addr = res;
  try_next_address(s);
}

int stream_connect(stream *s, const char *host, int port,
                   const stream_tls *tls, stream_connect_cb cb) {
  struct addrinfo hints;
  char portstr[16];
  int r;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  snprintf(portstr, sizeof(portstr), "%d", port);
  s->tcp.data = s;
  s->cx = (struct stream_cx *)calloc(1, sizeof(*s->cx));
  if (!s->cx)
    return UV_ENOMEM;
  s->cx->gai.data = s;
  if (tls) {
    const char *name = tls->server_name ? tls->server_name : host;
    if (tls_conn_new(&s->tls, tls->ctx, name) != TLS_OK) {
      free(s->cx);
      s->cx = NULL;
      return fail_msg(s, STREAM_ETLS, "ssl: ", "cannot create a session");
    }
  }
  r = uv_getaddrinfo(s->loop, &s->cx->gai, on_resolved, host, portstr, &hints);
  if (r != 0) {
    free(s->cx);
    s->cx = NULL;
    if (s->tls) {
      tls_conn_free(s->tls);
      s->tls = NULL;
    }
    return fail_msg(s, r, "dns: ", uv_strerror(r));
  }
  s->connect_cb = cb;
  s->flags |= S_CONNECTING | S_RESOLVING;
  return 0;
}

int stream_accept(uv_stream_t *server, stream *s) {
  int r;
  s->tcp.data = s;
  r = uv_accept(server, (uv_stream_t *)&s->tcp);
  if (r == 0)
    uv_tcp_nodelay(&s->tcp, 1);
  return r;
}

/* ---- reading ---------------------------------------------------------- */

static void on_plain_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  stream *s = (stream *)h->data;
  size_t cap = 0;
  b->base = s->alloc_cb(s, sz, &cap);
  b->len = b->base ? cap : 0;
}

static void on_plain_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  stream *s = (stream *)h->data;
  if (n == 0) { /* EAGAIN: the allocation comes back unused */
    s->read_cb(s, 0);
    return;
  }
  if (n == UV_ENOBUFS)
    n = UV_ENOMEM;
  if (n < 0) {
    uv_read_stop(h);
    s->flags &= ~S_READING;
  }
  s->read_cb(s, n);
}

/* Decrypts what the session holds into the owner's memory, for as long as
 * the owner keeps reading. */
static void tls_deliver(stream *s) {
  while ((s->flags & S_READING) && !(s->flags & S_CLOSING)) {
    size_t cap = 0, n = 0;
    char *p = s->alloc_cb(s, CIPHER_BUF, &cap);
    int r;
    if (!p) {
      s->flags &= ~S_READING;
      uv_read_stop((uv_stream_t *)&s->tcp);
      s->read_cb(s, UV_ENOMEM);
      return;
    }
    if ((s->flags & S_STASH) && STASH(s)->off < STASH(s)->len) {
      tls_stash *st = STASH(s);
      n = st->len - st->off < cap ? st->len - st->off : cap;
      memcpy(p, st->data + st->off, n);
      st->off += n;
      s->read_cb(s, (ssize_t)n);
      continue;
    }
    r = tls_conn_read(s->tls, p, cap, &n);
    if (r == TLS_OK) {
      s->read_cb(s, (ssize_t)n);
      continue;
    }
    /* Sends what reading made (a key update answer, an alert). A socket
     * error here means the peer closed or reset: that is left to the read
     * side, which gets the peer's last records first, and those usually
     * say why (a TLS 1.3 server refusing a missing client certificate
     * sends an alert, then closes). So a failure is reported as the
     * alert, or as the socket's EOF or reset, not as "broken pipe". */
    if (tls_flush(s) == UV_ENOMEM && r == TLS_WANT) {
      s->flags &= ~S_READING;
      uv_read_stop((uv_stream_t *)&s->tcp);
      s->read_cb(s, UV_ENOMEM);
      return;
    }
    if (r == TLS_WANT) {
      s->read_cb(s, 0); /* the allocation comes back unused */
      return;
    }
    s->flags &= ~S_READING;
    uv_read_stop((uv_stream_t *)&s->tcp);
    if (r == TLS_EOF) {
      s->flags |= S_TLS_EOF;
      s->read_cb(s, UV_EOF);
    } else {
      fail_msg(s, STREAM_ETLS, "", tls_conn_error(s->tls));
      s->read_cb(s, STREAM_ETLS);
    }
    return;
  }
}

static void on_tls_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  stream *s = (stream *)h->data;
  if (n == 0)
    return;
  if (n < 0) {
    uv_read_stop(h);
    s->flags &= ~S_READING;
    s->read_cb(s, n);
    return;
  }
  if (tls_conn_feed(s->tls, b->base, (size_t)n) != TLS_OK) {
    uv_read_stop(h);
    s->flags &= ~S_READING;
    fail_msg(s, STREAM_ETLS, "", tls_conn_error(s->tls));
    s->read_cb(s, STREAM_ETLS);
    return;
  }
  tls_deliver(s);
}

int stream_read_start(stream *s, stream_alloc_cb alloc_cb,
                      stream_read_cb read_cb) {
  int r;
  if (s->flags & S_CLOSING)
    return UV_EINVAL;
  s->alloc_cb = alloc_cb;
  s->read_cb = read_cb;
  if (s->flags & S_READING)
    return 0;
  s->flags |= S_READING;
  if (s->tls) {
    r = uv_read_start((uv_stream_t *)&s->tcp, on_hs_alloc, on_tls_read);
  } else {
    r = uv_read_start((uv_stream_t *)&s->tcp, on_plain_alloc, on_plain_read);
  }
  if (r != 0) {
    s->flags &= ~S_READING;
    return r;
  }
  /* An owner that stopped reading inside read_cb left records in the
   * session that were already taken off the socket (a whole burst arrives
   * in one socket read, and is decrypted one record per call). No socket
   * event will announce them again: hand them over now. So read_cb may
   * fire before this returns (also with an error or UV_EOF), and the
   * owner may stop reading or close the stream from it. */
  if (s->tls)
    tls_deliver(s);
  return 0;
}

int stream_read_stop(stream *s) {
  s->flags &= ~S_READING;
  if (s->flags & S_CLOSING)
    return 0;
  return uv_read_stop((uv_stream_t *)&s->tcp);
}

/* ---- writing ---------------------------------------------------------- */

static int tls_write_failed(stream *s, int err);

static void on_written(uv_write_t *req, int status) {
  stream *s = (stream *)req->data;
  stream_write_cb cb = s->write_cb;
  int owner = (s->flags & S_OWNER) != 0;
  s->flags &= ~S_WRITING;
  if (s->tls) {
    s->cipher_out.len = 0;
    if (!(s->flags & S_CLOSING))
      status = tls_write_failed(s, status);
    if (s->flags & S_QUEUED) {
      /* That was an internal write; the owner's records come next. */
      s->flags &= ~S_QUEUED;
      if (status == 0 && !(s->flags & S_CLOSING)) {
        status = tls_flush(s);
        if (status == 0 && (s->flags & S_WRITING))
          return; /* cb fires when that write is done */
      }
    }
  }
  s->flags &= ~S_OWNER;
  s->write_cb = NULL;
  if (owner && cb)
    cb(s, status);
  /* Records the session made while this write was in flight. The owner
   * only frees the stream in its close callback, so s is still valid. */
  if (status == 0 && s->tls && !(s->flags & (S_WRITING | S_CLOSING)))
    tls_flush(s);
}

/* Hands ciphertext to the socket. Handshake and alert records are small and
 * written synchronously when possible; what does not fit waits in
 * cipher_out and goes with the next write.
 *
 * While a write is in flight, libuv is sending straight out of cipher_out:
 * appending there could move it (realloc) under libuv's feet, and
 * on_written empties it, which would drop what was appended. So the bytes
 * (a key update answer, an alert after a bad record) stay queued in the
 * session, in order, and leave with the next stream_write or flush. */
static int tls_flush(stream *s) {
  size_t len;
  const char *p;
  if (s->flags & S_WRITING)
    return 0;
  p = tls_conn_out(s->tls, &len);
  if (len == 0)
    return 0;
  if (s->cipher_out.len == 0) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    int w = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (w > 0) {
      tls_conn_out_consume(s->tls, (size_t)w);
      p = tls_conn_out(s->tls, &len);
      if (len == 0)
        return 0;
    } else if (w < 0 && w != UV_EAGAIN) {
      s->last_err = w;
      return w;
    }
  }
  if (buf_append(&s->cipher_out, p, len) != 0)
    return (s->last_err = UV_ENOMEM);
  tls_conn_out_consume(s->tls, len);
  {
    uv_buf_t b = uv_buf_init(s->cipher_out.data, (unsigned)s->cipher_out.len);
    int r;
    if (!s->wreq && !(s->wreq = (uv_write_t *)malloc(sizeof(*s->wreq))))
      return (s->last_err = UV_ENOMEM);
    s->wreq->data = s;
    r = uv_write(s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_written);
    if (r != 0)
      return (s->last_err = r);
    s->flags |= S_WRITING;
  }
  return 0;
}

/* The socket refused a write (err): the peer closed or reset. A TLS peer
 * usually said why just before, in an alert that is already in our socket
 * buffer: a TLS 1.3 server refusing a missing client certificate sends
 * "certificate required" and closes, and a write racing that close is
 * what fails first. So read what the socket holds into the session and
 * decrypt up to the alert; its text then replaces "connection reset by
 * peer". Plaintext met on the way is stashed for the owner's next read.
 * Returns STREAM_ETLS (errmsg says why) or err. */
static int tls_write_failed(stream *s, int err) {
  tls_stash *st;
  uv_os_fd_t fd;
  int i;
  /* During the handshake the read side reports alerts by itself. */
  if ((err != UV_EPIPE && err != UV_ECONNRESET) ||
      (s->flags & S_CONNECTING) || !(st = tls_stash_get(s)) ||
      uv_fileno((const uv_handle_t *)&s->tcp, &fd) != 0)
    return err;
  for (i = 0; i < 4; i++) {
    ssize_t n;
    do
      n = recv(fd, s->cipher_in, CIPHER_BUF, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n <= 0 || tls_conn_feed(s->tls, s->cipher_in, (size_t)n) != TLS_OK)
      break;
  }
  for (;;) {
    size_t got = 0;
    int r;
    if (st->off == st->len)
      st->off = st->len = 0;
    if (st->len == STASH_CAP)
      return err; /* no room to look further */
    r = tls_conn_read(s->tls, st->data + st->len, STASH_CAP - st->len, &got);
    if (r == TLS_OK) {
      st->len += got;
      continue;
    }
    if (r != TLS_ERR)
      return err;
    fail_msg(s, STREAM_ETLS, "", tls_conn_error(s->tls));
    return STREAM_ETLS;
  }
}

int stream_write(stream *s, const char *p, size_t n, stream_write_cb cb) {
  uv_buf_t b;
  int r;
  if (s->flags & S_CLOSING)
    return UV_ECANCELED;
  if (s->flags & S_OWNER)
    return UV_EBUSY;
  if (n > 0x7fffffffu)
    return UV_E2BIG; /* libuv buffers hold unsigned int lengths */
  if (s->tls) {
    size_t len;
    const char *c;
    if (tls_conn_write(s->tls, p, n) != TLS_OK) {
      fail_msg(s, STREAM_ETLS, "", tls_conn_error(s->tls));
      return STREAM_ETLS;
    }
    if (s->flags & S_WRITING) {
      /* An internal write (the end of the handshake, an alert, a key
       * update answer) is still in flight out of cipher_out. The records
       * just made wait in the session, in order, and follow it. */
      s->flags |= S_OWNER | S_QUEUED;
      s->write_cb = cb;
      return 0;
    }
    c = tls_conn_out(s->tls, &len);
    b = uv_buf_init((char *)c, (unsigned)len);
    r = len ? uv_try_write((uv_stream_t *)&s->tcp, &b, 1) : 0;
    if (r == UV_EAGAIN)
      r = 0;
    if (r < 0)
      return tls_write_failed(s, r);
    tls_conn_out_consume(s->tls, (size_t)r);
    c = tls_conn_out(s->tls, &len);
    if (len == 0)
      return 1;
    if (buf_append(&s->cipher_out, c, len) != 0)
      return UV_ENOMEM;
    tls_conn_out_consume(s->tls, len);
    b = uv_buf_init(s->cipher_out.data, (unsigned)s->cipher_out.len);
  } else {
    b = uv_buf_init((char *)p, (unsigned)n);
    r = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (r >= 0 && (size_t)r == n)
      return 1;
    if (r == UV_EAGAIN)
      r = 0;
    if (r < 0)
      return r;
    b = uv_buf_init((char *)p + r, (unsigned)(n - (size_t)r));
  }
  /* Most writes finish at once (uv_try_write): the request is made only
   * for a stream whose writes have had to wait, and kept. */
  if (!s->wreq && !(s->wreq = (uv_write_t *)malloc(sizeof(*s->wreq))))
    return UV_ENOMEM;
  s->wreq->data = s;
  r = uv_write(s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_written);
  if (r != 0)
    return r;
  s->flags |= S_WRITING | S_OWNER;
  s->write_cb = cb;
  return 0;
}

int stream_writing(const stream *s) { return (s->flags & S_OWNER) != 0; }

/* ---- closing ---------------------------------------------------------- */

static void stream_try_finish_close(stream *s) {
  stream_close_cb cb;
  if (!(s->flags & S_CLOSED) || (s->flags & (S_RESOLVING | S_REOPENING)))
    return;
  if (s->cx && s->cx->addrs) {
    uv_freeaddrinfo(s->cx->addrs);
    s->cx->addrs = NULL;
  }
  if (s->tls) {
    tls_conn_free(s->tls);
    s->tls = NULL;
  }
  free(s->cipher_in);
  s->cipher_in = NULL;
  buf_free(&s->cipher_out);
  cb = s->close_cb;
  s->close_cb = NULL;
  if (cb)
    cb(s);
}

static void on_closed(uv_handle_t *h) {
  stream *s = (stream *)h->data;
  s->flags |= S_CLOSED;
  if (s->flags & S_CONNECTING && !(s->flags & (S_RESOLVING | S_REOPENING)))
    connect_done(s, UV_ECANCELED);
  stream_try_finish_close(s);
}

void stream_close(stream *s, stream_close_cb cb) {
  if (s->flags & S_CLOSING)
    return;
  s->flags |= S_CLOSING;
  s->flags &= ~S_READING;
  s->close_cb = cb;
  s->tcp.data = s;
  if (s->flags & S_RESOLVING)
    uv_cancel((uv_req_t *)&s->cx->gai);
  if (s->tls && !(s->flags & (S_CONNECTING | S_WRITING))) {
    /* Best effort close_notify; the socket closes right after. */
    if (tls_conn_shutdown(s->tls) == TLS_OK) {
      size_t len;
      const char *p = tls_conn_out(s->tls, &len);
      if (len) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
        uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
      }
    }
  }
  if (s->flags & S_REOPENING)
    return; /* on_reopened finishes */
  if (s->flags & S_CLOSED) { /* the handle was never reopened */
    stream_try_finish_close(s);
    return;
  }
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

void stream_dispose(stream *s) {
  text_clear(&s->errmsg);
  free(s->wreq);
  s->wreq = NULL;
  free(s->cx); /* NULL unless the stream was dropped mid-connect */
  s->cx = NULL;
}

int stream_closing(const stream *s) { return (s->flags & S_CLOSING) != 0; }

void stream_ref(stream *s, int on) {
  if (s->flags & S_CLOSING)
    return;
  if (on)
    uv_ref((uv_handle_t *)&s->tcp);
  else
    uv_unref((uv_handle_t *)&s->tcp);
}
