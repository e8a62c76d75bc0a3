/* conn: a Redis session over a stream. See conn.h. */
#include "conn.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdinfo.h"

/* Output buffers larger than this are released after use, so one huge
 * pipeline does not pin its memory for the connection's life. */
#define OUT_KEEP (256 * 1024)
#define IN_KEEP (256 * 1024)
#define READ_HINT 16384
/* The first slot ring: most connections have one or two commands out. */
#define SLOTS_MIN 2
/* One read into the shared scratch: libuv's suggestion, and big enough
 * that a pipeline's replies rarely end mid-reply. */
#define SHARED_READ 65536

enum conn_flags {
  CONN_CONNECTED = 1 << 0,
  CONN_BROKEN = 1 << 1,     /* failed: never pooled, commands refused */
  CONN_CLOSING = 1 << 2,
  CONN_DIRTY = 1 << 3,      /* session state changed for good */
  CONN_MULTI = 1 << 4,      /* the server accepted MULTI */
  CONN_WATCH = 1 << 5,
  CONN_SUBSCRIBED = 1 << 6, /* the server confirmed a subscription */
  CONN_PAUSED = 1 << 8,     /* reading paused: read() queue is full */
  /* Pub/sub bookkeeping from the server's confirmations (route): RESP3
   * pushes seen (then only pushes are out of band), channels or patterns
   * subscribed, shard channels subscribed. */
  CONN_PUSHES = 1 << 9,
  CONN_SUB_CHANNELS = 1 << 10,
  CONN_SUB_SHARDS = 1 << 11,
  CONN_WAITING = 1 << 12,   /* a read wait is timed (conn_read_wait) */
  CONN_UNREF = 1 << 13      /* conn_ref(c, 0): a timer made later follows */
};

struct conn {
  stream s;
  uv_timer_t *timer;       /* deadlines; exists while a timeout is set
                              (timer_need), so most idle connections
                              carry none */
  uv_loop_t *loop;
  const conn_callbacks *cb;
  void *data;
  int flags;
  int closes_pending;
  double timeout;          /* seconds; 0: none */
  size_t max_pending;      /* slots */
  resp_reader rd;
  buf out[2];
  int out_cur;             /* out[out_cur] collects; the other may be in
                              flight */
  size_t mark;             /* out[out_cur].len at conn_begin */
  conn_slot *slots;        /* a ring: head, count, cap */
  size_t head, count, cap;
  uint32_t sub_extra;      /* confirmations owed to read() */
  uint64_t head_due;       /* loop ms when the head's wait ends; 0: none */
  uint64_t wait_due;       /* the same for a read wait */
  int errcode;             /* the err.h code that broke it, or 0 */
  char *errmsg;            /* why it broke (heap), or NULL */
  /* conn_set_ext: what travels with the connection (the cache). */
  void *ext;
  void (*ext_free)(void *ext);
  int (*ext_push)(void *ext, const resp_reply *r);
  resp_scratch *scratch;   /* conn_share_reads: the thread's read buffer */
};

static void schedule(conn *c);
static int timer_need(conn *c, int on);
static void arm_head(conn *c);

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
  resp_reader_init(&c->rd, lim, 0);
  if (!lim)
    c->rd.lim.max_reply = CONN_MAX_REPLY;
  buf_init(&c->out[0]);
  buf_init(&c->out[1]);
  return c;
}

void conn_set_owner(conn *c, const conn_callbacks *cb, void *data) {
  c->cb = cb;
  c->data = data;
}

void *conn_data(const conn *c) { return c->data; }

void conn_set_ext(conn *c, void *ext, void (*ext_free)(void *),
                  int (*ext_push)(void *, const resp_reply *)) {
  if (c->ext_free && c->ext != ext)
    c->ext_free(c->ext);
  c->ext = ext;
  c->ext_free = ext_free;
  c->ext_push = ext_push;
}

void *conn_ext(const conn *c) { return c->ext; }

void conn_share_reads(conn *c, resp_scratch *s) { c->scratch = s; }

int conn_owned_by(const conn *c, const conn_callbacks *cb) {
  return c->cb == cb;
}
const char *conn_error(const conn *c) { return c->errmsg ? c->errmsg : ""; }
int conn_errcode(const conn *c) { return c->errcode; }
int conn_usable(const conn *c) {
  return !(c->flags & (CONN_BROKEN | CONN_CLOSING));
}
size_t conn_pending(const conn *c) { return c->count; }
int conn_paused(const conn *c) { return (c->flags & CONN_PAUSED) != 0; }
int conn_set_timeout(conn *c, double secs) {
  if (!(c->flags & CONN_CLOSING) && timer_need(c, secs > 0) != 0)
    return LEVR_ENOMEM;
  c->timeout = secs;
  if (secs <= 0) {
    c->head_due = 0;
    c->wait_due = 0;
    c->flags &= ~CONN_WAITING;
  }
  if (c->count)
    arm_head(c); /* the head's wait starts again under the new limit */
  else
    schedule(c);
  return 0;
}
void conn_set_max_pending(conn *c, size_t n) { c->max_pending = n; }
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

static conn_slot *slot_head(conn *c) {
  return c->count ? &c->slots[c->head] : NULL;
}

static void slot_pop(conn *c) {
  c->head = (c->head + 1) % c->cap;
  c->count--;
}

buf *conn_begin(conn *c) {
  if (c->flags & (CONN_BROKEN | CONN_CLOSING))
    return NULL;
  c->mark = c->out[c->out_cur].len;
  return &c->out[c->out_cur];
}

void conn_cancel(conn *c) { c->out[c->out_cur].len = c->mark; }

static int grow(conn *c) {
  size_t cap = c->cap ? c->cap * 2 : SLOTS_MIN, i;
  conn_slot *ns = (conn_slot *)malloc(cap * sizeof(*ns));
  if (!ns)
    return LEVR_ENOMEM;
  for (i = 0; i < c->count; i++)
    ns[i] = c->slots[(c->head + i) % c->cap];
  free(c->slots);
  c->slots = ns;
  c->cap = cap;
  c->head = 0;
  return 0;
}

int conn_commit(conn *c, const conn_cmd *cmd) {
  conn_slot *s;
  int err = 0;
  if (c->flags & (CONN_BROKEN | CONN_CLOSING))
    err = LEVR_ECLOSED;
  else if (c->count >= c->max_pending)
    err = LEVR_ELIMIT;
  else if (c->count == c->cap)
    err = grow(c);
  if (err) {
    conn_cancel(c);
    free(cmd->effects);
    return err;
  }
  s = &c->slots[(c->head + c->count) % c->cap];
  s->waiter = cmd->waiter;
  s->aux = cmd->aux;
  s->remaining = cmd->replies ? cmd->replies : 1;
  s->received = 0;
  s->kind = cmd->kind;
  s->subscribe = cmd->subscribe;
  s->effect = cmd->effect;
  s->sub_count = cmd->sub_count;
  s->block = cmd->block;
  s->effects = cmd->effects;
  c->count++;
  if (cmd->marks & MARK_DIRTY)
    c->flags |= CONN_DIRTY;
  if (cmd->marks & MARK_WATCH)
    c->flags |= CONN_WATCH;
  if (c->count == 1 && (c->timeout > 0 || (c->flags & CONN_WAITING)))
    arm_head(c); /* its deadline depends on its blocking time */
  if (c->cb->want_flush)
    c->cb->want_flush(c);
  else
    conn_flush(c);
  return 0;
}

void conn_forget(conn *c, void *waiter) {
  size_t i;
  for (i = 0; i < c->count; i++) {
    conn_slot *s = &c->slots[(c->head + i) % c->cap];
    if (s->waiter == waiter) {
      s->waiter = NULL;
      return;
    }
  }
}

/* ---- failure and close ------------------------------------------------ */

static void fail_slots(conn *c, int err, const char *msg) {
  /* on_fail may not commit (the conn is broken), so the loop ends. */
  while (c->count) {
    conn_slot s = *slot_head(c);
    slot_pop(c);
    free(s.effects);
    s.effects = NULL;
    c->cb->on_fail(c, &s, err, msg);
  }
}

static void maybe_release(conn *c) {
  if (--c->closes_pending > 0)
    return;
  if (c->ext_free)
    c->ext_free(c->ext);
  resp_reader_free(&c->rd);
  buf_free(&c->out[0]);
  buf_free(&c->out[1]);
  free(c->slots);
  c->cb->on_close(c);
  text_clear(&c->errmsg);
  stream_dispose(&c->s);
  free(c);
}

static void on_stream_closed(stream *s) { maybe_release((conn *)s->data); }
static void on_timer_closed(uv_handle_t *h) {
  conn *c = (conn *)h->data;
  free(h);
  maybe_release(c);
}

static void on_spare_timer_closed(uv_handle_t *h) { free(h); }

/* The timer exists while a timeout is set (every deadline needs one), so
 * it is made or let go here, where a failure can still be reported. */
static int timer_need(conn *c, int on) {
  if (on && !c->timer) {
    uv_timer_t *t = (uv_timer_t *)malloc(sizeof(*t));
    if (!t)
      return LEVR_ENOMEM;
    uv_timer_init(c->loop, t);
    t->data = c;
    if (c->flags & CONN_UNREF)
      uv_unref((uv_handle_t *)t);
    c->timer = t;
  } else if (!on && c->timer) {
    uv_close((uv_handle_t *)c->timer, on_spare_timer_closed);
    c->timer = NULL;
  }
  return 0;
}

static void start_close(conn *c) {
  c->flags |= CONN_CLOSING;
  c->closes_pending = 1;
  if (c->timer) {
    c->closes_pending++;
    uv_close((uv_handle_t *)c->timer, on_timer_closed);
    c->timer = NULL;
  }
  stream_close(&c->s, on_stream_closed);
}

void conn_close(conn *c) {
  if (c->flags & CONN_CLOSING)
    return;
  c->flags |= CONN_CLOSING;
  fail_slots(c, LEVR_ECLOSED, "closed");
  start_close(c);
}

void conn_fail(conn *c, int err, const char *msg) {
  if (c->flags & CONN_CLOSING)
    return;
  if (!(c->flags & CONN_BROKEN)) {
    c->flags |= CONN_BROKEN;
    c->errcode = err;
    text_set(&c->errmsg, 256, "%s", msg);
  }
  fail_slots(c, err, msg);
  conn_close(c);
}

void conn_abandon(conn *c, void *waiter, int err, const char *msg) {
  size_t i;
  int may_block = 0;
  for (i = 0; i < c->count; i++) {
    conn_slot *s = &c->slots[(c->head + i) % c->cap];
    if (s->waiter == waiter) {
      s->waiter = NULL;
      may_block |= s->block != 0;
    }
  }
  /* Alone and not blocking: its reply will come and is dropped, the
   * connection stays. Otherwise nothing may wait behind it. */
  if (!(c->flags & CONN_CLOSING) && (c->count > 1 || may_block))
    conn_fail(c, err, msg);
}

int conn_clean(const conn *c) {
  return (c->flags & CONN_CONNECTED) && c->count == 0 &&
         !(c->flags & (CONN_BROKEN | CONN_CLOSING | CONN_DIRTY | CONN_MULTI |
                       CONN_WATCH | CONN_SUBSCRIBED | CONN_PAUSED)) &&
         resp_reader_pending(&c->rd) == 0 && c->out[0].len == 0 &&
         c->out[1].len == 0 && !stream_writing(&c->s);
}

/* ---- deadlines -------------------------------------------------------- */

/* One timer serves two deadlines: the head command's (restarted as each
 * reply arrives, extended by its own blocking time) and a read wait's. */
static void on_deadline(uv_timer_t *t) {
  conn *c = (conn *)t->data;
  uint64_t now = uv_now(c->loop);
  if ((c->flags & CONN_WAITING) && c->wait_due <= now) {
    /* A read() wait: nothing can arrive late for a command, so the
     * connection stays usable. */
    c->flags &= ~CONN_WAITING;
    c->wait_due = 0;
    c->cb->on_fail(c, NULL, LEVR_ETIMEOUT, "timeout");
    if (c->flags & CONN_CLOSING)
      return;
  }
  if (c->count && c->head_due && c->head_due <= now) {
    conn_fail(c, LEVR_ETIMEOUT, "timeout");
    return;
  }
  schedule(c);
}

/* Starts the timer for the nearer of the two deadlines, or stops it. */
static void schedule(conn *c) {
  uint64_t due = 0, now;
  if (c->flags & CONN_CLOSING)
    return;
  if (c->count && c->head_due)
    due = c->head_due;
  if ((c->flags & CONN_WAITING) && (!due || c->wait_due < due))
    due = c->wait_due;
  if (!due || !c->timer) { /* a due time implies a timeout, hence a timer */
    if (c->timer)
      uv_timer_stop(c->timer);
    return;
  }
  now = uv_now(c->loop);
  uv_timer_start(c->timer, on_deadline, due > now ? due - now : 0, 0);
}

/* The head changed (or got a reply): its wait starts now. */
static void arm_head(conn *c) {
  conn_slot *h = slot_head(c);
  if (c->timeout <= 0 && !(c->flags & CONN_WAITING))
    return; /* no deadline can be due */
  c->head_due = 0;
  if (h && c->timeout > 0 && h->block >= 0) {
    /* The loop's cached time is as old as the last poll: a task that ran
     * for a while before this command would otherwise get less than its
     * timeout. */
    uv_update_time(c->loop);
    c->head_due = uv_now(c->loop) +
                  (uint64_t)((c->timeout + h->block) * 1000 + 0.5);
  }
  schedule(c);
}

void conn_read_wait(conn *c, int on) {
  if (c->flags & CONN_CLOSING)
    return;
  if (on && c->timeout > 0) {
    uv_update_time(c->loop);
    c->wait_due = uv_now(c->loop) + (uint64_t)(c->timeout * 1000 + 0.5);
    c->flags |= CONN_WAITING;
  } else {
    c->flags &= ~CONN_WAITING;
    c->wait_due = 0;
  }
  schedule(c);
}

/* ---- reading ---------------------------------------------------------- */

enum { KIND_OTHER, KIND_CONFIRM, KIND_MESSAGE };

/* Pub/sub replies are arrays (RESP2) or pushes (RESP3) whose first element
 * names the kind. */
static int pubsub_kind(const resp_reply *r) {
  const resp_node *n = r->nodes, *k;
  const char *p;
  const cmdinfo *ci;
  if ((n->type != RESP_ARRAY && n->type != RESP_PUSH) || n->len < 1)
    return KIND_OTHER;
  k = &r->nodes[1];
  if (k->type != RESP_BULK && k->type != RESP_SIMPLE)
    return KIND_OTHER;
  p = r->base + k->off;
  if (cmdinfo_name_is(p, (size_t)k->len, "MESSAGE") ||
      cmdinfo_name_is(p, (size_t)k->len, "PMESSAGE") ||
      cmdinfo_name_is(p, (size_t)k->len, "SMESSAGE"))
    return KIND_MESSAGE;
  /* A confirmation is named after its command. */
  ci = cmdinfo_special(p, (size_t)k->len);
  return ci && (ci->flags & CMD_PUBSUB) ? KIND_CONFIRM : KIND_OTHER;
}

/* A confirmation's third element is how many subscriptions of its family
 * (channels and patterns, or shard channels) are left. The connection is
 * in pub/sub mode while either is non-zero; once both are zero, replies
 * that look like pub/sub (an LRANGE giving "message", ...) are ordinary
 * replies again. CONN_DIRTY stays: such a connection is never pooled. */
static void track_subscriptions(conn *c, const resp_reply *r) {
  const resp_node *k = &r->nodes[1];
  const cmdinfo *ci = cmdinfo_special(r->base + k->off, (size_t)k->len);
  int bit;
  if (r->nodes->len < 3 || r->nodes[3].type != RESP_INTEGER)
    return;
  bit = ci && (ci->flags & CMD_SHARD) ? CONN_SUB_SHARDS : CONN_SUB_CHANNELS;
  if (r->nodes[3].v.i > 0)
    c->flags |= bit | CONN_SUBSCRIBED | CONN_DIRTY;
  else
    c->flags &= ~bit;
  if (!(c->flags & (CONN_SUB_CHANNELS | CONN_SUB_SHARDS)))
    c->flags &= ~CONN_SUBSCRIBED;
}

/* Decides who a reply belongs to: the head slot, or read(). Until the
 * server confirms a subscription, replies go by position in the FIFO,
 * never by their shape. */
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
  kind = pubsub_kind(r);
  if (kind == KIND_MESSAGE)
    return NULL;
  if (kind == KIND_CONFIRM) {
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

/* Session state follows what the server accepted, not what was sent: a
 * rejected EXEC leaves the connection in MULTI. */
static void apply_effect(conn *c, const conn_slot *s, const resp_reply *r) {
  int fx = s->kind == SLOT_CMD ? s->effect
                               : s->effects ? s->effects[s->received] : 0;
  int err = r->nodes->type == RESP_ERROR || r->nodes->type == RESP_BLOB_ERROR;
  switch (fx) {
  case FX_MULTI:
    if (!err)
      c->flags |= CONN_MULTI;
    break;
  case FX_ENDTX:
    if (err)
      c->flags |= CONN_DIRTY; /* state unknown: never pooled */
    else
      c->flags &= ~(CONN_MULTI | CONN_WATCH);
    break;
  case FX_UNWATCH:
    if (!err)
      c->flags &= ~CONN_WATCH;
    break;
  }
}

static void deliver(conn *c) {
  resp_reply r;
  int st = RESP_AGAIN, partial = 0;
  while (!(c->flags & (CONN_CLOSING | CONN_PAUSED)) &&
         (st = resp_reader_next(&c->rd, &r)) == RESP_OK) {
    conn_slot *s = route(c, &r);
    if (!s) {
      if (!(c->flags & CONN_SUBSCRIBED) && r.nodes->type != RESP_PUSH)
        c->flags |= CONN_DIRTY; /* a reply nobody asked for */
      if (c->ext_push && r.nodes->type == RESP_PUSH &&
          c->ext_push(c->ext, &r))
        continue; /* consumed (a cache invalidation), also when pooled */
      c->cb->on_reply(c, NULL, &r);
      continue;
    }
    apply_effect(c, s, &r);
    s->remaining--;
    if (s->remaining == 0) {
      conn_slot done = *s;
      slot_pop(c);
      if (done.effects) {
        free(done.effects);
        done.effects = NULL;
      }
      arm_head(c);
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
    arm_head(c);
  if (!(c->flags & (CONN_CLOSING | CONN_PAUSED)) && st < 0) {
    conn_fail(c, LEVR_EPROTO, resp_reader_error(&c->rd));
    return;
  }
  if (!(c->flags & CONN_CLOSING) && c->rd.cap > IN_KEEP &&
      resp_reader_pending(&c->rd) == 0)
    resp_reader_shrink(&c->rd, IN_KEEP); /* after a large reply */
}

/* A connection between replies reads into the shared scratch and holds no
 * read buffer of its own; only a reply split across reads (or replies
 * left unread while paused) is moved into its own memory by on_read. The
 * scratch stays with the last reader until another one needs it, so one
 * busy connection pays nothing for the sharing. */
static char *on_alloc(stream *s, size_t suggested, size_t *cap) {
  conn *c = (conn *)s->data;
  size_t want = resp_reader_want(&c->rd), hint = READ_HINT;
  (void)suggested;
  if (c->scratch && resp_reader_borrow(&c->rd, c->scratch) == 0)
    hint = SHARED_READ;
  return resp_reader_space(&c->rd, want > hint ? want : hint, cap);
}

static void on_read(stream *s, ssize_t n) {
  conn *c = (conn *)s->data;
  if (n > 0) {
    resp_reader_commit(&c->rd, (size_t)n);
    deliver(c);
  }
  if (resp_reader_release(&c->rd) != 0 && !(c->flags & CONN_CLOSING)) {
    conn_fail(c, LEVR_ENOMEM, "out of memory");
    return;
  }
  if (n >= 0)
    return;
  if (n == UV_EOF)
    conn_fail(c, LEVR_EEOF, "connection closed by server");
  else
    conn_fail(c, LEVR_EIO, stream_strerror(s, (int)n));
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
      conn_fail(c, LEVR_EIO, "cannot read");
    else if (resp_reader_pending(&c->rd))
      deliver(c);
  }
}

void conn_ref(conn *c, int on) {
  if (c->flags & CONN_CLOSING)
    return;
  stream_ref(&c->s, on);
  if (on)
    c->flags &= ~CONN_UNREF;
  else
    c->flags |= CONN_UNREF;
  if (c->timer && on)
    uv_ref((uv_handle_t *)c->timer);
  else if (c->timer)
    uv_unref((uv_handle_t *)c->timer);
}

/* ---- writing ---------------------------------------------------------- */

static void on_written(stream *s, int status) {
  conn *c = (conn *)s->data;
  buf *done = &c->out[c->out_cur ^ 1];
  buf_reset(done, OUT_KEEP);
  if (status != 0) {
    conn_fail(c, LEVR_EIO, stream_strerror(s, status));
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
    conn_fail(c, LEVR_EIO, stream_strerror(&c->s, r));
  }
}

/* ---- connect ---------------------------------------------------------- */

static void connect_failed(conn *c, int code, const char *msg) {
  char text[256];
  snprintf(text, sizeof(text), "%s", msg);
  c->flags |= CONN_BROKEN;
  c->cb->on_connect(c, code, text);
  conn_close(c);
}

static void on_connected(stream *s, int status) {
  conn *c = (conn *)s->data;
  if (c->timer)
    uv_timer_stop(c->timer);
  if (status != 0) {
    if (c->flags & CONN_BROKEN) /* the connect deadline (errmsg set) */
      connect_failed(c, c->errcode, conn_error(c));
    else
      connect_failed(c, status == UV_ETIMEDOUT ? LEVR_ETIMEOUT : LEVR_EIO,
                     stream_strerror(s, status));
    return;
  }
  if (stream_read_start(&c->s, on_alloc, on_read) != 0) {
    connect_failed(c, LEVR_EIO, "cannot read");
    return;
  }
  if (c->flags & (CONN_BROKEN | CONN_CLOSING)) {
    /* A TLS stream may deliver (and fail) inside stream_read_start. */
    char text[256];
    snprintf(text, sizeof(text), "%s", c->errmsg ? c->errmsg : "closed");
    c->cb->on_connect(c, c->errcode ? c->errcode : LEVR_EIO, text);
    return;
  }
  c->flags |= CONN_CONNECTED;
  c->cb->on_connect(c, 0, NULL);
  conn_flush(c);
}

static void on_connect_deadline(uv_timer_t *t) {
  conn *c = (conn *)t->data;
  c->flags |= CONN_BROKEN;
  c->errcode = LEVR_ETIMEOUT;
  text_set(&c->errmsg, 256, "timeout");
  /* Closing makes the pending connect report UV_ECANCELED, which
   * on_connected turns into the "timeout" above. */
  start_close(c);
}

int conn_connect(conn *c, const char *host, int port, const stream_tls *tls,
                 double timeout) {
  int r = stream_connect(&c->s, host, port, tls, on_connected);
  if (r != 0) {
    text_set(&c->errmsg, 256, "%s", stream_strerror(&c->s, r));
    c->errcode = LEVR_EIO;
    return LEVR_EIO;
  }
  c->timeout = timeout;
  if (timeout > 0) {
    if (timer_need(c, 1) != 0) {
      text_set(&c->errmsg, 256, "out of memory");
      c->errcode = LEVR_ENOMEM;
      return LEVR_ENOMEM; /* the caller closes c, which ends the connect */
    }
    uv_update_time(c->loop);
    uv_timer_start(c->timer, on_connect_deadline,
                   (uint64_t)(timeout * 1000 + 0.5), 0);
  }
  return 0;
}

int conn_open_fd(conn *c, uv_os_sock_t fd) {
  if (uv_tcp_open(&c->s.tcp, fd) != 0)
    return LEVR_EIO;
  c->s.tcp.data = &c->s;
  if (stream_read_start(&c->s, on_alloc, on_read) != 0)
    return LEVR_EIO;
  c->flags |= CONN_CONNECTED;
  return 0;
}
