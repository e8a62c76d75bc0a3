/* conn: a Redis session over a stream. See conn.h. */
#include "conn.h"

#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

/* Output buffers larger than this are released after use, so one huge
 * pipeline does not pin its memory for the connection's life. */
#define OUT_KEEP (256 * 1024)
#define IN_KEEP (256 * 1024)
#define READ_HINT 16384

static void conn_arm_timer(conn *c);

void conn_arm(conn *c) { conn_arm_timer(c); }

conn *conn_new(uv_loop_t *loop, const conn_callbacks *cb, void *data,
               const resp_limits *lim) {
  conn *c = (conn *)calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->loop = loop;
  c->cb = cb;
  c->data = data;
  c->max_pending = CONN_MAX_PENDING;
  c->s.data = c;
  if (stream_init(loop, &c->s) != 0) {
    free(c);
    return NULL;
  }
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  resp_reader_init(&c->rd, lim, 0);
  if (!lim)
    c->rd.lim.max_reply = CONN_MAX_REPLY;
  buf_init(&c->out[0]);
  buf_init(&c->out[1]);
  return c;
}

const char *conn_error(const conn *c) { return c->errmsg; }

void conn_set_max_reply(conn *c, size_t bytes) {
  c->rd.lim.max_reply = bytes;
}

int conn_idle_usable(conn *c) {
  uv_os_fd_t fd;
  struct pollfd p;
  if (c->flags & (CONN_BROKEN | CONN_CLOSING) ||
      uv_fileno((const uv_handle_t *)&c->s.tcp, &fd) != 0)
    return 0;
  p.fd = fd;
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, 0) == 0;
}

/* ---- slots ------------------------------------------------------------ */

buf *conn_outbuf(conn *c) { return &c->out[c->out_cur]; }

conn_slot *conn_push_slot(conn *c) {
  conn_slot *s;
  if (c->flags & (CONN_BROKEN | CONN_CLOSING) || c->count >= c->max_pending)
    return NULL;
  if (c->count == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16, i;
    conn_slot *ns = (conn_slot *)malloc(cap * sizeof(*ns));
    if (!ns)
      return NULL;
    for (i = 0; i < c->count; i++)
      ns[i] = c->slots[(c->head + i) % c->cap];
    free(c->slots);
    c->slots = ns;
    c->cap = cap;
    c->head = 0;
  }
  s = &c->slots[(c->head + c->count) % c->cap];
  memset(s, 0, sizeof(*s));
  s->remaining = 1;
  c->count++;
  return s;
}

static conn_slot *slot_head(conn *c) {
  return c->count ? &c->slots[c->head] : NULL;
}

static void slot_pop(conn *c) {
  c->head = (c->head + 1) % c->cap;
  c->count--;
}

void conn_abandon(conn *c, void *waiter) {
  size_t i;
  for (i = 0; i < c->count; i++) {
    conn_slot *s = &c->slots[(c->head + i) % c->cap];
    if (s->waiter == waiter)
      s->waiter = NULL;
  }
}

/* ---- failure and close ------------------------------------------------ */

static void fail_slots(conn *c, int err, const char *msg) {
  /* on_fail may not push slots (the conn is broken), so the loop ends. */
  while (c->count) {
    conn_slot s = *slot_head(c);
    slot_pop(c);
    c->cb->on_fail(c, &s, err, msg);
  }
}

static void maybe_release(conn *c) {
  if (--c->closes_pending > 0)
    return;
  resp_reader_free(&c->rd);
  buf_free(&c->out[0]);
  buf_free(&c->out[1]);
  free(c->slots);
  c->cb->on_close(c);
  free(c);
}

static void on_stream_closed(stream *s) { maybe_release((conn *)s->data); }
static void on_timer_closed(uv_handle_t *h) { maybe_release((conn *)h->data); }

void conn_close(conn *c) {
  if (c->flags & CONN_CLOSING)
    return;
  c->flags |= CONN_CLOSING;
  if (c->flags & CONN_POOLED)
    pool_unlink(c);
  fail_slots(c, CONN_ECLOSED, "closed");
  c->closes_pending = 2;
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
  stream_close(&c->s, on_stream_closed);
}

void conn_fail(conn *c, int err, const char *msg) {
  if (c->flags & CONN_CLOSING)
    return;
  if (!(c->flags & CONN_BROKEN)) {
    c->flags |= CONN_BROKEN;
    c->errcode = err;
    snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
  }
  fail_slots(c, err, msg);
  conn_close(c);
}

int conn_clean(const conn *c) {
  return (c->flags & CONN_CONNECTED) && c->count == 0 &&
         !(c->flags & (CONN_BROKEN | CONN_CLOSING | CONN_DIRTY | CONN_MULTI |
                       CONN_WATCH | CONN_SUBSCRIBED | CONN_PAUSED)) &&
         resp_reader_pending(&c->rd) == 0 && c->out[0].len == 0 &&
         c->out[1].len == 0 && !stream_writing(&c->s);
}

/* ---- deadlines -------------------------------------------------------- */

static void on_deadline(uv_timer_t *t) {
  conn *c = (conn *)t->data;
  if (c->count == 0) {
    /* A read() wait, with no command pending: nothing can arrive late for
     * a command, so the connection stays usable. */
    c->cb->on_fail(c, NULL, CONN_ETIMEOUT, "timeout");
    return;
  }
  conn_fail(c, CONN_ETIMEOUT, "timeout");
}

void conn_wait_timer(conn *c, int on) {
  if (c->timeout <= 0 || c->count > 0 || (c->flags & CONN_CLOSING))
    return;
  if (on) {
    uv_update_time(c->loop);
    uv_timer_start(&c->timer, on_deadline,
                   (uint64_t)(c->timeout * 1000 + 0.5), 0);
  } else
    uv_timer_stop(&c->timer);
}

/* The timer bounds each wait: for the connect, and for the reply at the
 * head of the FIFO (re-armed as each reply arrives), extended by that
 * command's own blocking time. */
static void conn_arm_timer(conn *c) {
  conn_slot *h = slot_head(c);
  double secs;
  if (c->timeout <= 0 || (c->flags & CONN_CLOSING))
    return;
  if (!h) {
    uv_timer_stop(&c->timer);
    return;
  }
  if (h->block < 0) {
    uv_timer_stop(&c->timer);
    return;
  }
  secs = c->timeout + h->block;
  /* The loop's cached time is as old as the last poll: a task that ran
   * for a while before this command would otherwise get less than its
   * timeout. */
  uv_update_time(c->loop);
  uv_timer_start(&c->timer, on_deadline, (uint64_t)(secs * 1000 + 0.5), 0);
}

/* ---- reading ---------------------------------------------------------- */

static int str_ieq(const char *p, size_t n, const char *lit) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!lit[i] || tolower((unsigned char)p[i]) != lit[i])
      return 0;
  return lit[n] == 0;
}

/* Pub/sub replies are arrays (RESP2) or pushes (RESP3) whose first element
 * names the kind. */
int conn_pubsub_kind(const resp_reply *r) {
  const resp_node *n = r->nodes, *k;
  const char *p;
  if ((n->type != RESP_ARRAY && n->type != RESP_PUSH) || n->len < 1)
    return CONN_REPLY_OTHER;
  k = &r->nodes[1];
  if (k->type != RESP_BULK && k->type != RESP_SIMPLE)
    return CONN_REPLY_OTHER;
  p = r->base + k->off;
  if (str_ieq(p, (size_t)k->len, "message") ||
      str_ieq(p, (size_t)k->len, "pmessage") ||
      str_ieq(p, (size_t)k->len, "smessage"))
    return CONN_REPLY_MESSAGE;
  if (str_ieq(p, (size_t)k->len, "subscribe") ||
      str_ieq(p, (size_t)k->len, "psubscribe") ||
      str_ieq(p, (size_t)k->len, "ssubscribe") ||
      str_ieq(p, (size_t)k->len, "unsubscribe") ||
      str_ieq(p, (size_t)k->len, "punsubscribe") ||
      str_ieq(p, (size_t)k->len, "sunsubscribe"))
    return CONN_REPLY_CONFIRM;
  return CONN_REPLY_OTHER;
}

/* A confirmation's third element is how many subscriptions of its family
 * (channels and patterns, or shard channels) are left. The connection is
 * in pub/sub mode while either is non-zero; once both are zero, replies
 * that look like pub/sub (an LRANGE giving "message", ...) are ordinary
 * replies again. CONN_DIRTY stays: such a connection is never pooled. */
static void track_subscriptions(conn *c, const resp_reply *r) {
  const resp_node *k = &r->nodes[1];
  const char *p = r->base + k->off;
  int bit;
  if (r->nodes->len < 3 || r->nodes[3].type != RESP_INTEGER)
    return;
  bit = str_ieq(p, (size_t)k->len, "ssubscribe") ||
                str_ieq(p, (size_t)k->len, "sunsubscribe")
            ? CONN_SUB_SHARDS : CONN_SUB_CHANNELS;
  if (r->nodes[3].v.i > 0)
    c->flags |= bit | CONN_SUBSCRIBED;
  else
    c->flags &= ~bit;
  if (!(c->flags & (CONN_SUB_CHANNELS | CONN_SUB_SHARDS)))
    c->flags &= ~CONN_SUBSCRIBED;
}

/* Decides who a reply belongs to: the head slot, or read(). */
static conn_slot *route(conn *c, const resp_reply *r) {
  conn_slot *h = slot_head(c);
  int kind;
  if (r->nodes->type == RESP_PUSH)
    c->flags |= CONN_PUSHES;
  else if (c->flags & CONN_PUSHES)
    return h; /* RESP3: pub/sub data comes as pushes only */
  if (!(c->flags & CONN_SUBSCRIBED) && r->nodes->type != RESP_PUSH &&
      !(h && h->subscribe) && c->sub_extra == 0)
    return h;
  kind = conn_pubsub_kind(r);
  if (kind == CONN_REPLY_MESSAGE)
    return NULL;
  if (kind == CONN_REPLY_CONFIRM) {
    track_subscriptions(c, r);
    if (c->sub_extra > 0) {
      c->sub_extra--;
      return NULL;
    }
    if (h && h->subscribe) {
      if (h->sub_count > 1)
        c->sub_extra += h->sub_count - 1;
      return h;
    }
    return NULL;
  }
  if (r->nodes->type == RESP_PUSH)
    return NULL; /* RESP3 out-of-band data, e.g. invalidations */
  return h;
}

static void deliver(conn *c) {
  resp_reply r;
  int st = RESP_AGAIN, partial = 0;
  while (!(c->flags & (CONN_CLOSING | CONN_PAUSED)) &&
         (st = resp_reader_next(&c->rd, &r)) == RESP_OK) {
    conn_slot *s = route(c, &r);
    if (!s) {
      if (c->flags & CONN_POOLED) {
        conn_fail(c, CONN_EPROTO, "protocol error: unexpected reply on an "
                  "idle connection");
        return;
      }
      if (!(c->flags & CONN_SUBSCRIBED))
        c->flags |= CONN_DIRTY; /* e.g. MONITOR output */
      c->cb->on_reply(c, NULL, &r);
      continue;
    }
    s->remaining--;
    if (s->remaining == 0) {
      conn_slot done = *s;
      slot_pop(c);
      conn_arm_timer(c);
      c->cb->on_reply(c, &done, &r);
    } else {
      /* The callback may queue or fail commands, which moves or pops the
       * slots: it gets a copy, and the slot is updated first. */
      conn_slot cur = *s;
      s->received++;
      partial = 1;
      c->cb->on_reply(c, &cur, &r);
    }
  }
  /* Each reply restarts the clock, also one of the many a pipeline waits
   * for: the timeout bounds every wait, not the whole pipeline. */
  if (partial && !(c->flags & CONN_CLOSING))
    conn_arm_timer(c);
  if (!(c->flags & (CONN_CLOSING | CONN_PAUSED)) && st < 0) {
    conn_fail(c, CONN_EPROTO, resp_reader_error(&c->rd));
    return;
  }
  if (c->rd.cap > IN_KEEP && resp_reader_pending(&c->rd) == 0)
    resp_reader_shrink(&c->rd, IN_KEEP); /* after a large reply */
}

static char *on_alloc(stream *s, size_t suggested, size_t *cap) {
  conn *c = (conn *)s->data;
  size_t want = resp_reader_want(&c->rd);
  return resp_reader_space(&c->rd, want > READ_HINT ? want : READ_HINT, cap);
}

static void on_read(stream *s, ssize_t n) {
  conn *c = (conn *)s->data;
  if (n > 0) {
    resp_reader_commit(&c->rd, (size_t)n);
    deliver(c);
    return;
  }
  if (n == UV_EOF)
    conn_fail(c, CONN_EEOF, "connection closed by server");
  else
    conn_fail(c, CONN_EIO, stream_strerror(s, (int)n));
}

void conn_pause(conn *c, int on) {
  if (c->flags & (CONN_CLOSING | CONN_BROKEN))
    return;
  if (on && !(c->flags & CONN_PAUSED)) {
    c->flags |= CONN_PAUSED;
    stream_read_stop(&c->s);
  } else if (!on && (c->flags & CONN_PAUSED)) {
    c->flags &= ~CONN_PAUSED;
    if (stream_read_start(&c->s, on_alloc, on_read) != 0)
      conn_fail(c, CONN_EIO, "cannot read");
    else
      deliver(c);
  }
}

void conn_ref(conn *c, int on) {
  if (c->flags & CONN_CLOSING)
    return;
  stream_ref(&c->s, on);
  if (on)
    uv_ref((uv_handle_t *)&c->timer);
  else
    uv_unref((uv_handle_t *)&c->timer);
}

/* ---- writing ---------------------------------------------------------- */

static void on_written(stream *s, int status) {
  conn *c = (conn *)s->data;
  buf *done = &c->out[c->out_cur ^ 1];
  buf_reset(done, OUT_KEEP);
  if (status != 0) {
    conn_fail(c, CONN_EIO, stream_strerror(s, status));
    return;
  }
  if (c->out[c->out_cur].len)
    conn_flush(c);
}

void conn_flush(conn *c) {
  buf *b = &c->out[c->out_cur];
  int r;
  if (b->len == 0 || stream_writing(&c->s) ||
      (c->flags & (CONN_CLOSING | CONN_BROKEN)) ||
      !(c->flags & CONN_CONNECTED))
    return;
  r = stream_write(&c->s, b->data, b->len, on_written);
  if (r == 1) {
    buf_reset(b, OUT_KEEP);
  } else if (r == 0) {
    c->out_cur ^= 1; /* new commands collect in the other buffer */
  } else {
    conn_fail(c, CONN_EIO, stream_strerror(&c->s, r));
  }
}

/* ---- connect ---------------------------------------------------------- */

static void on_connected(stream *s, int status) {
  conn *c = (conn *)s->data;
  uv_timer_stop(&c->timer);
  if (status != 0) {
    const char *msg = (c->flags & CONN_BROKEN) ? c->errmsg
                                               : stream_strerror(s, status);
    char text[256];
    snprintf(text, sizeof(text), "%s", msg);
    c->flags |= CONN_BROKEN;
    c->cb->on_connect(c, status, text);
    conn_close(c);
    return;
  }
  if (stream_read_start(&c->s, on_alloc, on_read) != 0) {
    c->flags |= CONN_BROKEN;
    c->cb->on_connect(c, UV_EIO, "cannot read");
    conn_close(c);
    return;
  }
  if (c->flags & (CONN_BROKEN | CONN_CLOSING)) {
    /* A TLS stream may deliver (and fail) inside stream_read_start. */
    char text[256];
    snprintf(text, sizeof(text), "%s", c->errmsg[0] ? c->errmsg : "closed");
    c->cb->on_connect(c, UV_EIO, text);
    return;
  }
  c->flags |= CONN_CONNECTED;
  c->cb->on_connect(c, 0, NULL);
  conn_flush(c);
}

static void on_connect_deadline(uv_timer_t *t) {
  conn *c = (conn *)t->data;
  c->flags |= CONN_BROKEN;
  snprintf(c->errmsg, sizeof(c->errmsg), "timeout");
  /* Closing makes the pending connect report UV_ECANCELED, which
   * on_connected turns into the "timeout" text above. */
  c->flags |= CONN_CLOSING;
  c->closes_pending = 2;
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
  stream_close(&c->s, on_stream_closed);
}

int conn_connect(conn *c, const char *host, int port, const stream_tls *tls,
                 double timeout) {
  int r = stream_connect(&c->s, host, port, tls, on_connected);
  if (r != 0) {
    snprintf(c->errmsg, sizeof(c->errmsg), "%s", stream_strerror(&c->s, r));
    return r;
  }
  c->timeout = timeout;
  if (timeout > 0) {
    uv_update_time(c->loop);
    uv_timer_start(&c->timer, on_connect_deadline,
                   (uint64_t)(timeout * 1000 + 0.5), 0);
  }
  return 0;
}
