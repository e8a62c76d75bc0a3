/* libFuzzer target for the connection layer (conn.c over stream.c).
 *
 * Each input is one session: a fresh uv loop and an AF_UNIX socketpair. The
 * conn's stream is opened on one end; the harness plays the server on the
 * other with plain non-blocking send/recv. The input is a script of
 * operations that queue commands (plain, pipelined, SUBSCRIBE), flush, send
 * reply bytes taken from the input in one write or split at chosen points,
 * run the loop, drain what the client wrote, abandon waiters, pause and
 * resume reading, fire the deadline, close or half-close the server end,
 * close or fail the conn. Callbacks may react by re-entering the conn
 * (queue a command, close, fail, pause, resume, abandon the next slot);
 * every reaction is allowed from intermediate replies too.
 * At the end the conn is closed and the loop run until it is empty.
 *
 * Checked, with abort() on any violation:
 *  - every slot gets exactly one final callback (the last reply, or
 *    on_fail), in FIFO order, after exactly remaining - 1 intermediate
 *    replies; conn_close and conn_fail fail every slot before returning;
 *  - every reply handed out (to a slot or to nobody) equals the next reply
 *    a separate reader makes of the bytes the server sent, and a protocol
 *    failure carries the error that reader reports at the same point;
 *  - failure categories have a cause (EOF only after the server shut its
 *    side, timeouts only with a deadline set, EIO only after the server
 *    closed or the harness failed the conn); a read() wait timeout only
 *    with no command pending; a deadline of 0 ms on a pending command
 *    fails it on the next loop turn;
 *  - the bytes the server reads are a prefix of the commands queued, and
 *    on a healthy conn all of them arrive after a flush;
 *  - on_close fires exactly once, with nothing pending; the loop closes
 *    cleanly (no handle left), and LeakSanitizer sees nothing left.
 *
 * Input layout: two configuration bytes, then operations. An operation is
 * one byte: the low nibble picks it, the high nibble (h) is its argument;
 * some read further bytes (see the OP_ list).
 *   config[0]: bits 0-1 reader limits, 2-3 max_pending, 4-5 timeout
 *              (none, 100 s, 100 s, 0.1 ms), 6 small socket buffers,
 *              7 start with a SUBSCRIBE queued.
 *   config[1]: bits 0-3 what an unrouted reply's callback does (a R_
 *              reaction); bit 4: reads go through a shared scratch
 *              (conn_share_reads), as in the Lua glue.
 *
 * The harness drives conn only through conn.h (conn_open_fd, conn_begin,
 * conn_commit, ...) and describes commands with what cmdinfo.h says about
 * them, as any owner of a conn would; it knows nothing of the Lua glue.
 */
#include "cmdinfo.h"
#include "conn.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define ENSURE(c)                                                             \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,    \
              #c);                                                            \
      abort();                                                                \
    }                                                                         \
  } while (0)

#define MAX_SLOTS 256
#define MAX_OUT (1024 * 1024) /* bytes of commands per session */
#define MAX_ARG 20000
#define TINY 0.0001           /* a deadline that rounds to 0 ms */

enum {
  OP_PUSH,    /* + 2 bytes: queue a command or pipeline (push_cmd) */
  OP_FLUSH,   /* conn_flush */
  OP_SEND,    /* + 1 byte n: server sends the next n + 256 * h bytes */
  OP_SPLIT,   /* + 1 byte n: sends the next n bytes in pieces of h + 1,
                 running the loop after each */
  OP_RUN,     /* h + 1 turns of the loop (UV_RUN_NOWAIT) */
  OP_DRAIN,   /* server reads what the client wrote */
  OP_ABANDON, /* abandons the waiter of pending slot h (mod pending) */
  OP_PAUSE,   /* conn_pause(c, h & 1) */
  OP_TIMEOUT, /* deadline of 0 ms for the head (or a read() wait), 1 turn */
  OP_WAIT,    /* conn_read_wait(c, h & 1) */
  OP_FORGET,  /* conn_forget on the waiter of pending slot h */
  OP_SHUT,    /* server: h & 1 ? close : shutdown(SHUT_WR) */
  OP_CLOSE,   /* conn_close; the script ends */
  OP_FAIL,    /* conn_fail(LEVR_EIO) */
  OP_REF,     /* conn_ref(c, h & 1) */
  OP_ARM      /* conn_set_timeout with the configured timeout again */
};

/* What a slot's first callback does (and an unrouted reply's callback). */
enum {
  R_NONE, R_PUSH, R_CLOSE, R_PAUSE, R_RESUME, R_ABANDON, R_FAIL, R_FLUSH,
  R_WAITSTOP, R_COUNT
};

enum { PENDING, DONE_REPLY, DONE_FAIL };

typedef struct track {
  uint32_t n;       /* replies expected */
  uint32_t inter;   /* intermediate replies seen */
  uint8_t kind, subscribe, react, reacted, abandoned, done;
  uint32_t sub_count;
  int fail_err;
  double block;
} track;

typedef struct session {
  uv_loop_t loop;
  uv_prepare_t keep;  /* the rest of the program: keeps the loop alive */
  conn *c;            /* NULL once on_close ran */
  int srv;            /* server end; -1 once closed */
  int srv_shut;       /* the server shut or closed its sending side */
  int eio_ok;         /* an EIO failure has a cause */
  int timeout_set;    /* a deadline was ever set */
  int closes;
  int closing;        /* conn_close was called */
  size_t max_pending;
  int abandons;       /* conn_abandon was called */
  double timeout;     /* the configured one */
  int null_react;
  track trk[MAX_SLOTS];
  size_t ntrk, next_done;
  size_t wait_timeouts, unrouted;
  buf expect;         /* every command queued, in order */
  size_t seen;        /* bytes of it the server has read */
  resp_reader shadow; /* parses what the server sent */
  char proto_err[128];
  resp_scratch scratch; /* config[1] bit 4: reads go through it */
} session;

static const char zeros[MAX_ARG];

/* ---- checks ----------------------------------------------------------- */

static int is_string(int type) {
  return type == RESP_SIMPLE || type == RESP_ERROR || type == RESP_BULK ||
         type == RESP_BIGNUM || type == RESP_VERBATIM ||
         type == RESP_BLOB_ERROR;
}

static void same_reply(const resp_reply *a, const resp_reply *b) {
  size_t i;
  ENSURE(a->count >= 1 && a->count == b->count && a->bytes == b->bytes);
  ENSURE(a->nodes[0].size == a->count);
  for (i = 0; i < a->count; i++) {
    const resp_node *p = &a->nodes[i], *q = &b->nodes[i];
    ENSURE(p->type == q->type && p->null_of == q->null_of);
    ENSURE(p->size == q->size && p->len == q->len);
    if (is_string(p->type)) {
      ENSURE(p->len >= 0 && (uint64_t)p->len <= a->bytes);
      ENSURE(memcmp(a->base + p->off, b->base + q->off, (size_t)p->len) ==
             0);
      if (p->type == RESP_VERBATIM)
        ENSURE(memcmp(p->fmt, q->fmt, sizeof(p->fmt)) == 0);
    } else if (p->type == RESP_INTEGER) {
      ENSURE(p->v.i == q->v.i);
    } else if (p->type == RESP_DOUBLE) {
      ENSURE(memcmp(&p->v.d, &q->v.d, sizeof(double)) == 0);
    } else if (p->type == RESP_BOOLEAN) {
      ENSURE(p->v.b == q->v.b);
    }
  }
}

/* The reply the conn handed out must be the next one the server sent. */
static void check_reply(session *x, const resp_reply *r) {
  resp_reply w;
  ENSURE(resp_reader_next(&x->shadow, &w) == RESP_OK);
  same_reply(r, &w);
}

/* A protocol failure must be where the reference reader fails too. */
static void check_proto(session *x, const char *msg) {
  resp_reply w;
  if (x->proto_err[0]) {
    ENSURE(strcmp(msg, x->proto_err) == 0);
    return;
  }
  ENSURE(resp_reader_next(&x->shadow, &w) == RESP_EPROTO);
  ENSURE(strcmp(msg, resp_reader_error(&x->shadow)) == 0);
  snprintf(x->proto_err, sizeof(x->proto_err), "%s", msg);
}

/* Outside callbacks, the conn's FIFO holds exactly the unfinished slots
 * (their order is checked as each one finishes: slot_track). */
static void check_fifo(session *x) {
  if (!x->c)
    return;
  ENSURE(conn_pending(x->c) == x->ntrk - x->next_done);
}

static void all_done(session *x) {
  size_t i;
  ENSURE(x->next_done == x->ntrk);
  for (i = 0; i < x->ntrk; i++)
    ENSURE(x->trk[i].done != PENDING);
}

/* ---- commands --------------------------------------------------------- */

/* p1: bit 0 pipeline, bits 1-3 its length - 1, bit 4 SUBSCRIBE (plain
 *     commands only), bits 5-6 channels.
 * p2: bits 0-1 argument size, bits 2-3 blocking time, bits 4-7 reaction. */
static void push_cmd(session *x, uint8_t p1, uint8_t p2) {
  static const size_t sizes[4] = {1, 300, 5000, MAX_ARG};
  static const double blocks[4] = {0, 0, -1, 1000};
  static const char *const chans[4] = {"a", "b", "c", "d"};
  conn *c = x->c;
  const char *argv[5];
  size_t lens[5], mark, i, encoded, pending;
  int argc, pipe = p1 & 1, sub = !pipe && (p1 & 0x10), err;
  uint32_t n = pipe ? 1 + ((p1 >> 1) & 7) : 1;
  const cmdinfo *ci;
  conn_cmd cmd;
  track *t;
  buf *b;

  if (!c || x->ntrk >= MAX_SLOTS || x->expect.len > MAX_OUT)
    return;
  if (sub) {
    argc = 1 + ((p1 >> 5) & 3);
    argv[0] = "SUBSCRIBE";
    lens[0] = 9;
    for (i = 1; i < (size_t)argc; i++) {
      argv[i] = chans[i - 1];
      lens[i] = 1;
    }
  } else {
    argc = 3;
    argv[0] = "SET";
    lens[0] = 3;
    argv[1] = "k";
    lens[1] = 1;
    argv[2] = zeros;
    lens[2] = sizes[p2 & 3];
  }
  b = conn_begin(c);
  if (!b) {
    ENSURE(!conn_usable(c));
    return;
  }
  mark = b->len;
  for (i = 0; i < n; i++)
    ENSURE(resp_encode_command(b, argc, argv, lens) == 0);
  t = &x->trk[x->ntrk];
  memset(t, 0, sizeof(*t));
  t->n = n;
  t->kind = pipe ? SLOT_PIPELINE : SLOT_CMD;
  t->subscribe = (uint8_t)sub;
  t->sub_count = sub ? (uint32_t)argc - 1 : 0;
  t->block = blocks[(p2 >> 2) & 3];
  t->react = (uint8_t)((p2 >> 4) % R_COUNT);
  memset(&cmd, 0, sizeof(cmd));
  cmd.waiter = t;
  cmd.aux = (int)x->ntrk;
  cmd.kind = t->kind;
  cmd.replies = n;
  cmd.block = t->block;
  ci = cmdinfo_special(argv[0], lens[0]);
  if (ci && (ci->flags & CMD_PUBSUB)) {
    cmd.subscribe = 1;
    cmd.sub_count = t->sub_count;
  }
  if (ci && (ci->flags & CMD_SESSION))
    cmd.marks |= MARK_DIRTY;
  encoded = b->len - mark;
  ENSURE(buf_append(&x->expect, b->data + mark, encoded) == 0);
  pending = conn_pending(c);
  x->ntrk++; /* callbacks of the commit may already see it */
  err = conn_commit(c, &cmd);
  if (err) {
    x->ntrk--;
    /* Refused (broken, closing, or max_pending): what was encoded is
     * dropped. */
    ENSURE(err == LEVR_ECLOSED || err == LEVR_ELIMIT);
    ENSURE(err == LEVR_ECLOSED ? !conn_usable(c)
                               : pending >= x->max_pending);
    x->expect.len -= encoded;
    return;
  }
}

/* conn_abandon either forgets the waiter (alone and not blocking) or
 * fails the whole conn, every slot before it returns. */
static void abandon(session *x, size_t id) {
  int busy, alone;
  if (!x->c || id >= x->ntrk || x->trk[id].done != PENDING ||
      x->trk[id].abandoned)
    return;
  busy = !conn_usable(x->c);
  alone = conn_pending(x->c) == 1 && x->trk[id].block == 0;
  x->trk[id].abandoned = 1;
  x->abandons = 1;
  conn_abandon(x->c, &x->trk[id], LEVR_ECLOSED, "fuzz: abandoned");
  if (!busy && !alone)
    all_done(x);
}

static void forget(session *x, size_t id) {
  if (!x->c || id >= x->ntrk || x->trk[id].done != PENDING ||
      x->trk[id].abandoned)
    return;
  x->trk[id].abandoned = 1;
  conn_forget(x->c, &x->trk[id]);
}

/* conn_fail and conn_close fail every slot before they return, unless a
 * failure is already under way (then a callback of it is running). */
static void fail_conn(session *x, const char *msg) {
  int busy = !conn_usable(x->c);
  x->eio_ok = 1;
  conn_fail(x->c, LEVR_EIO, msg);
  if (!busy)
    all_done(x);
}

static void close_conn(session *x) {
  int busy = !conn_usable(x->c);
  x->closing = 1;
  conn_close(x->c);
  if (!busy)
    all_done(x);
}

/* Runs inside a callback: the conn is alive until on_close. */
static void react(session *x, conn *c, int what, size_t id) {
  switch (what) {
  case R_PUSH: push_cmd(x, 0, 0); break;
  case R_CLOSE: close_conn(x); break;
  case R_PAUSE: conn_pause(c, 1); break;
  case R_RESUME: conn_pause(c, 0); break;
  case R_ABANDON: abandon(x, id + 1); break;
  case R_FAIL: fail_conn(x, "fuzz: failed in a callback"); break;
  case R_FLUSH: conn_flush(c); break;
  case R_WAITSTOP: conn_read_wait(c, 0); break;
  default: break;
  }
}

/* Reactions that re-enter the FIFO (queue, close, fail, resume reading)
 * are fuzzed from intermediate pipeline replies too: that is where this
 * target found deliver() using its slot pointer after the callback. */
static int reenters(int what) {
  (void)what;
  return 0;
}

/* ---- callbacks -------------------------------------------------------- */

static track *slot_track(session *x, conn *c, const conn_slot *s) {
  track *t;
  ENSURE(x->c == c);
  ENSURE(s->aux >= 0 && (size_t)s->aux < x->ntrk);
  /* FIFO: whatever a slot receives, it is the oldest unfinished one. */
  ENSURE((size_t)s->aux == x->next_done);
  t = &x->trk[s->aux];
  ENSURE(t->done == PENDING);
  ENSURE(s->waiter == (t->abandoned ? NULL : (void *)t));
  ENSURE(s->kind == t->kind && s->subscribe == t->subscribe &&
         s->sub_count == t->sub_count && s->block == t->block);
  ENSURE(s->received == t->inter);
  return t;
}

static void on_connect(conn *c, int status, const char *msg) {
  ENSURE(!"on_connect fired without a connect");
}

static void on_reply(conn *c, const conn_slot *s, const resp_reply *r) {
  session *x = (session *)conn_data(c);
  track *t;
  size_t id;
  ENSURE(x->c == c && conn_usable(c));
  check_reply(x, r);
  if (!s) {
    x->unrouted++;
    react(x, c, x->null_react, x->next_done);
    return;
  }
  t = slot_track(x, c, s);
  id = (size_t)s->aux;
  if (s->remaining > 0) {
    ENSURE(t->kind == SLOT_PIPELINE);
    ENSURE(t->inter + 1 + s->remaining == t->n);
    t->inter++;
  } else {
    ENSURE(t->inter + 1 == t->n);
    t->done = DONE_REPLY;
    x->next_done++;
  }
  if (!t->reacted && (s->remaining == 0 || !reenters(t->react))) {
    t->reacted = 1;
    react(x, c, t->react, id);
  }
}

static void on_fail(conn *c, const conn_slot *s, int err, const char *msg) {
  session *x = (session *)conn_data(c);
  track *t;
  ENSURE(msg != NULL);
  if (!s) {
    /* A read() wait ran out; the conn stays usable. */
    ENSURE(x->c == c && err == LEVR_ETIMEOUT && x->timeout_set);
    ENSURE(conn_usable(c));
    x->wait_timeouts++;
    return;
  }
  t = slot_track(x, c, s);
  ENSURE(!conn_usable(c));
  ENSURE(s->remaining + t->inter == t->n);
  switch (err) {
  case LEVR_ETIMEOUT: ENSURE(x->timeout_set); break;
  case LEVR_EIO: ENSURE(x->eio_ok); break;
  case LEVR_EEOF: ENSURE(x->srv_shut); break;
  case LEVR_EPROTO: check_proto(x, msg); break;
  case LEVR_ECLOSED: ENSURE(x->closing || x->abandons); break;
  default: ENSURE(!"unexpected failure category");
  }
  t->done = DONE_FAIL;
  t->fail_err = err;
  x->next_done++;
  if (!t->reacted) {
    t->reacted = 1;
    react(x, c, t->react, (size_t)s->aux);
  }
}

static void on_close(conn *c) {
  session *x = (session *)conn_data(c);
  const char *e = conn_error(c);
  ENSURE(x->c == c && x->closes == 0);
  ENSURE(conn_pending(c) == 0);
  all_done(x);
  if (strncmp(e, "protocol error", 14) == 0)
    check_proto(x, e);
  x->closes++;
  x->c = NULL;
}

/* Flushes are the script's (OP_FLUSH), as a scheduler would batch them. */
static void want_flush(conn *c) { (void)c; }

static const conn_callbacks callbacks = {on_connect, on_reply, on_fail,
                                         on_close, want_flush};

/* ---- the server end --------------------------------------------------- */

/* Between loop turns no read is in progress: the shared read buffer is
 * not busy (every allocation is answered by one read callback), and only
 * an idle reader may keep it. */
static void run_once(session *x) {
  uv_run(&x->loop, UV_RUN_NOWAIT);
  ENSURE(!x->scratch.busy);
  ENSURE(!x->scratch.holder || resp_reader_idle(x->scratch.holder));
}

static void srv_send(session *x, const uint8_t *p, size_t n) {
  ssize_t w;
  if (x->srv < 0 || x->srv_shut || n == 0)
    return;
  w = send(x->srv, p, n, MSG_NOSIGNAL);
  if (w > 0)
    ENSURE(resp_reader_feed(&x->shadow, p, (size_t)w) == 0);
}

/* Reads what the client wrote; it must be the commands, in order. */
static size_t srv_drain(session *x) {
  char tmp[16384];
  size_t got = 0;
  ssize_t r;
  if (x->srv < 0)
    return 0;
  while ((r = recv(x->srv, tmp, sizeof(tmp), 0)) > 0) {
    ENSURE(x->seen + (size_t)r <= x->expect.len);
    ENSURE(memcmp(x->expect.data + x->seen, tmp, (size_t)r) == 0);
    x->seen += (size_t)r;
    got += (size_t)r;
  }
  return got;
}

static void srv_close(session *x, int full) {
  if (x->srv < 0)
    return;
  x->srv_shut = 1;
  if (full) {
    x->eio_ok = 1; /* writes to a closed peer fail, reads may be reset */
    close(x->srv);
    x->srv = -1;
  } else {
    shutdown(x->srv, SHUT_WR);
  }
}

/* ---- the session ------------------------------------------------------ */

/* A deadline of 0 ms: on the next turn it fails every pending slot with
 * a timeout (unless the head blocks), or reports a read() timeout. */
static void fire_timeout(session *x) {
  conn *c = x->c;
  size_t pending, head = x->next_done, waits = x->wait_timeouts;
  if (!c || !conn_usable(c))
    return;
  x->timeout_set = 1;
  pending = conn_pending(c);
  conn_set_timeout(c, TINY); /* restarts the head's wait */
  if (!pending)
    conn_read_wait(c, 1);
  run_once(x);
  if (x->c)
    conn_set_timeout(x->c, x->timeout);
  if (pending && x->trk[head].block == 0) {
    ENSURE(x->trk[head].done == DONE_FAIL &&
           x->trk[head].fail_err == LEVR_ETIMEOUT);
    ENSURE(!x->c || !conn_usable(x->c));
    all_done(x);
  } else if (!pending) {
    ENSURE(x->wait_timeouts == waits + 1);
  }
}

static void set_limits(resp_limits *lim, int which) {
  static const int depths[4] = {128, 1, 3, 8};
  static const size_t lines[4] = {65536, 4, 16, 100};
  static const int64_t bulks[4] = {512 * 1024 * 1024, 3, 16, 1000};
  static const size_t replies[4] = {0, 16, 64, 4096};
  static const int64_t elements[4] = {INT64_C(4294967295), 1, 4, 100};
  resp_limits_default(lim);
  lim->max_depth = depths[which];
  lim->max_line = lines[which];
  lim->max_bulk = bulks[which];
  lim->max_reply = replies[which];
  lim->max_elements = elements[which];
}

static void script(session *x, const uint8_t *p, size_t n) {
  size_t at = 0;
  while (at < n && x->c) {
    uint8_t op = p[at] & 15, h = p[at] >> 4;
    size_t len, k;
    at++;
    switch (op) {
    case OP_PUSH:
      if (n - at < 2)
        return;
      push_cmd(x, p[at], p[at + 1]);
      at += 2;
      break;
    case OP_FLUSH: conn_flush(x->c); break;
    case OP_SEND:
      if (at >= n)
        return;
      len = (size_t)p[at++] + 256 * (size_t)h;
      if (len > n - at)
        len = n - at;
      srv_send(x, p + at, len);
      at += len;
      run_once(x);
      break;
    case OP_SPLIT:
      if (at >= n)
        return;
      len = p[at++];
      if (len > n - at)
        len = n - at;
      for (k = 0; k < len; k += (size_t)h + 1) {
        size_t piece = len - k < (size_t)h + 1 ? len - k : (size_t)h + 1;
        srv_send(x, p + at + k, piece);
        run_once(x);
      }
      at += len;
      break;
    case OP_RUN:
      for (k = 0; k <= h; k++)
        run_once(x);
      break;
    case OP_DRAIN: srv_drain(x); break;
    case OP_ABANDON:
      if (x->ntrk > x->next_done)
        abandon(x, x->next_done + h % (x->ntrk - x->next_done));
      break;
    case OP_PAUSE: conn_pause(x->c, h & 1); break;
    case OP_TIMEOUT: fire_timeout(x); break;
    case OP_WAIT: conn_read_wait(x->c, h & 1); break;
    case OP_FORGET:
      if (x->ntrk > x->next_done)
        forget(x, x->next_done + h % (x->ntrk - x->next_done));
      break;
    case OP_SHUT: srv_close(x, h & 1); run_once(x); break;
    case OP_CLOSE:
      close_conn(x);
      return;
    case OP_FAIL: fail_conn(x, "fuzz: failed"); break;
    case OP_REF: conn_ref(x->c, h & 1); break;
    case OP_ARM: conn_set_timeout(x->c, x->timeout); break;
    }
    check_fifo(x);
  }
}

/* On a healthy conn everything queued reaches the server after a flush.
 * A reply read while draining may queue a command from its callback
 * (R_PUSH): each turn flushes again, as a scheduler flushes after every
 * batch. */
static void finish_writes(session *x) {
  int idle = 0;
  if (!x->c || !conn_usable(x->c) || x->srv < 0)
    return;
  while (x->c && conn_usable(x->c) && idle < 3 &&
         x->seen < x->expect.len) {
    conn_flush(x->c);
    run_once(x);
    idle = srv_drain(x) ? 0 : idle + 1;
  }
  if (x->c && conn_usable(x->c))
    ENSURE(x->seen == x->expect.len);
}

static void on_keep(uv_prepare_t *h) {}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  /* The server end may be closed under a pending write. */
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t max_pending[4] = {1000000, 1, 3, 17};
  static const double timeouts[4] = {0, 100, 100, TINY};
  session *x;
  resp_limits lim;
  int sv[2];

  if (size < 2)
    return 0;
  x = (session *)calloc(1, sizeof(*x));
  ENSURE(x != NULL);
  ENSURE(uv_loop_init(&x->loop) == 0);
  /* A pooled conn is unreferenced (conn_ref) yet still reads; the loop
   * turns because other handles keep it alive, as in a real program. */
  ENSURE(uv_prepare_init(&x->loop, &x->keep) == 0);
  ENSURE(uv_prepare_start(&x->keep, on_keep) == 0);
  ENSURE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  ENSURE(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK) == 0);
  if (data[0] & 0x40) {
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  }
  x->srv = sv[1];
  x->null_react = (data[1] & 15) % R_COUNT;
  set_limits(&lim, data[0] & 3);
  resp_reader_init(&x->shadow, &lim, 0);
  buf_init(&x->expect);

  x->c = conn_new(&x->loop, &callbacks, x, &lim);
  ENSURE(x->c != NULL);
  if (data[1] & 0x10)
    conn_share_reads(x->c, &x->scratch);
  x->max_pending = max_pending[(data[0] >> 2) & 3];
  x->timeout = timeouts[(data[0] >> 4) & 3];
  conn_set_max_pending(x->c, x->max_pending);
  conn_set_timeout(x->c, x->timeout);
  x->timeout_set = x->timeout > 0;
  if (conn_open_fd(x->c, sv[0]) != 0) {
    close(sv[0]);
    ENSURE(!"cannot open the conn on a socketpair");
  }
  if (data[0] & 0x80)
    push_cmd(x, 0x10, 0); /* a SUBSCRIBE first */

  script(x, data + 2, size - 2);
  check_fifo(x);
  finish_writes(x);
  if (x->c)
    close_conn(x);
  uv_close((uv_handle_t *)&x->keep, NULL);
  uv_run(&x->loop, UV_RUN_DEFAULT);
  ENSURE(x->closes == 1 && x->c == NULL);
  all_done(x);
  ENSURE(uv_loop_close(&x->loop) == 0);

  if (x->srv >= 0)
    close(x->srv);
  ENSURE(!x->scratch.busy && !x->scratch.holder); /* freed conns return it */
  resp_scratch_free(&x->scratch);
  resp_reader_free(&x->shadow);
  buf_free(&x->expect);
  free(x);
  return 0;
}
