/* conn: one Redis session over a stream. No Lua.
 *
 * Commands are encoded by the caller straight into conn_outbuf() and get a
 * pending slot (conn_push_slot); conn_flush() writes everything queued in
 * one write (the caller defers it to once per scheduler batch). Replies are
 * parsed in the stream's read callback from the reader's own buffer and
 * handed to on_reply for the slot at the head of the FIFO, so commands of
 * many callers pipeline on one connection and each gets its own reply.
 *
 * A timeout, a transport error or a protocol error fails every pending slot
 * (on_fail, once each) and breaks the connection for good; a broken
 * connection is closed and never pooled.
 *
 * Ownership: conn_new allocates; conn_close starts the close, and on_close
 * fires once after the stream and the timer are both released; the conn is
 * freed right after on_close returns.
 */
#ifndef LEVR_CONN_H
#define LEVR_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "resp.h"
#include "stream.h"

typedef struct conn conn;
typedef struct pool pool;

/* Default caps: pending slots (a command or a whole pipeline each) and the
 * wire size of one reply. Exceeding the first refuses the command with
 * "too many pending commands on this connection"; the second fails the
 * connection with "protocol error: reply too large". */
#define CONN_MAX_PENDING 100000
#define CONN_MAX_REPLY ((size_t)1 << 30)

enum conn_slot_kind { SLOT_CMD = 1, SLOT_PIPELINE };

typedef struct conn_slot {
  void *waiter;        /* the caller's (a lev task); NULL once abandoned */
  int aux;             /* the caller's (pipeline: result table index) */
  uint32_t remaining;  /* replies still expected */
  uint32_t received;
  uint8_t kind;
  uint8_t subscribe;   /* 1: a SUBSCRIBE-family command */
  uint8_t select;      /* 1: a SELECT (a pipeline: one of its commands) */
  uint32_t sub_count;  /* its channels: extra confirmations to route;
                          a pipeline (which carries no SUBSCRIBE): the
                          1-based index of its last SELECT */
  int32_t select_db;   /* the database that SELECT asks for */
  double block;        /* extra seconds to wait (blocking commands);
                          < 0: the command may wait forever */
} conn_slot;

typedef struct conn_callbacks {
  /* The connect finished: status 0, or an error and msg. */
  void (*on_connect)(conn *c, int status, const char *msg);
  /* A reply for slot, or for nobody (slot NULL: pub/sub messages, extra
   * confirmations, MONITOR output) which read() consumes. */
  void (*on_reply)(conn *c, conn_slot *slot, const resp_reply *r);
  /* The slot will get no reply: err is a category, msg the text. */
  void (*on_fail)(conn *c, conn_slot *slot, int err, const char *msg);
  /* The conn is released; it is freed after this returns. */
  void (*on_close)(conn *c);
} conn_callbacks;

/* Failure categories passed to on_fail. */
enum conn_err {
  CONN_ETIMEOUT = 1, CONN_EIO, CONN_EEOF, CONN_EPROTO, CONN_ECLOSED,
  CONN_ELIMIT
};

enum conn_flags {
  CONN_CONNECTED = 1 << 0,
  CONN_BROKEN = 1 << 1,     /* failed: never pooled, commands refused */
  CONN_CLOSING = 1 << 2,
  CONN_DIRTY = 1 << 3,      /* session state changed for good */
  CONN_MULTI = 1 << 4,
  CONN_WATCH = 1 << 5,
  CONN_SUBSCRIBED = 1 << 6,
  CONN_POOLED = 1 << 7,     /* idle in a pool */
  CONN_PAUSED = 1 << 8,     /* reading paused: read() queue is full */
  /* Pub/sub bookkeeping from the server's confirmations (conn.c route):
   * RESP3 pushes seen (then only pushes are out of band), channels or
   * patterns subscribed, shard channels subscribed. */
  CONN_PUSHES = 1 << 9,
  CONN_SUB_CHANNELS = 1 << 10,
  CONN_SUB_SHARDS = 1 << 11
};

struct conn {
  stream s;
  uv_timer_t timer;
  void *data;              /* the caller's */
  int flags;
  int flush_armed;         /* owned by the scheduler's defer() */
  double timeout;          /* seconds; 0: none */
  size_t max_pending;      /* slots */
  const conn_callbacks *cb;
  /* private */
  uv_loop_t *loop;
  int closes_pending;
  resp_reader rd;
  buf out[2];
  int out_cur;             /* out[out_cur] collects; the other may be in
                              flight */
  conn_slot *slots;
  size_t head, count, cap;
  uint32_t sub_extra;      /* confirmations owed to read() */
  char errmsg[256];
  int errcode;             /* the conn_err that broke it, or 0 */
  /* pool bookkeeping (pool.c) */
  pool *pool;
  struct conn *pool_prev, *pool_next;
  void *pool_key;
  uint64_t idle_since;     /* uv_now() when pooled */
};

conn *conn_new(uv_loop_t *loop, const conn_callbacks *cb, void *data,
               const resp_limits *lim);
/* Resolves, connects, runs TLS (tls may be NULL); on_connect fires once.
 * Returns 0 or an error (then on_connect does not fire). */
int conn_connect(conn *c, const char *host, int port, const stream_tls *tls,
                 double timeout);

/* Where to encode the next command; then conn_push_slot. */
buf *conn_outbuf(conn *c);
/* A new slot at the tail, zeroed, or NULL when the conn is broken or has
 * max_pending slots (the caller must then drop what it encoded). */
conn_slot *conn_push_slot(conn *c);
/* (Re)starts the deadline for the head slot; call after filling a slot
 * that became the head (its blocking time extends the deadline). */
void conn_arm(conn *c);
/* Writes what is queued. */
void conn_flush(conn *c);
/* Forgets a waiter (its task was abandoned): its reply is discarded. */
void conn_abandon(conn *c, void *waiter);

/* Fails every pending slot with err/msg, breaks and closes the conn. */
void conn_fail(conn *c, int err, const char *msg);
/* Closes; pending slots fail with "closed". Idempotent. */
void conn_close(conn *c);
/* Can this conn go back to a pool? */
int conn_clean(const conn *c);
/* Arms (on) or stops the timeout for a read() wait while no command is
 * pending; when it fires, on_fail gets slot NULL and CONN_ETIMEOUT. */
void conn_wait_timer(conn *c, int on);
/* Pauses/resumes reading (read() back-pressure). */
void conn_pause(conn *c, int on);
/* Idle (pooled) connections do not keep the loop alive. */
void conn_ref(conn *c, int on);
const char *conn_error(const conn *c);
/* What a reply is to pub/sub: CONN_REPLY_OTHER, _CONFIRM ((un)subscribe
 * confirmations) or _MESSAGE (message, pmessage, smessage). */
enum { CONN_REPLY_OTHER, CONN_REPLY_CONFIRM, CONN_REPLY_MESSAGE };
int conn_pubsub_kind(const resp_reply *r);
/* Caps the wire size of one reply (the reader's max_reply). */
void conn_set_max_reply(conn *c, size_t bytes);
/* For a connection leaving the pool: 0 when its socket already has
 * something to read (the server closed it, or sent what nobody asked for)
 * that the loop has not seen yet; then it must not be handed out. */
int conn_idle_usable(conn *c);

#endif
