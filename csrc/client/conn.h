/* conn: one Redis session over a stream. No Lua, no scheduler, no pool.
 *
 * Queueing a command: conn_begin gives the output buffer; the caller
 * encodes the command into it and either conn_commit()s it (a pending slot
 * at the tail of the FIFO, the deadline armed when it is the head, and a
 * flush asked of the owner through want_flush) or conn_cancel()s it (the
 * bytes are dropped). Replies are parsed from the reader's own buffer and
 * handed to on_reply for the slot at the head of the FIFO, so commands of
 * many callers pipeline on one connection and each gets its own reply.
 *
 * A timeout, a transport error or a protocol error fails every pending
 * slot (on_fail, once each) and breaks the connection for good; a broken
 * connection is closed and never pooled.
 *
 * Ownership: conn_new allocates; conn_close starts the close, and on_close
 * fires once after the stream and the timer are both released; the conn
 * is freed right after on_close returns. The conn knows its owner only as
 * the callbacks and data pointer installed (conn_new, conn_set_owner); the
 * pool swaps them while it holds a connection. The struct is private to
 * conn.c. Functions that can fail return 0 or a negative err.h code.
 */
#ifndef LEVR_CONN_H
#define LEVR_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "resp.h"
#include "stream.h"

typedef struct conn conn;

/* Default caps: pending slots (a command or a whole pipeline each) and the
 * wire size of one reply. Exceeding the first refuses the command
 * (LEVR_ELIMIT from conn_commit); the second fails the connection with
 * "protocol error: reply too large". */
#define CONN_MAX_PENDING 100000
#define CONN_MAX_REPLY ((size_t)1 << 30)

enum conn_slot_kind { SLOT_CMD = 1, SLOT_PIPELINE };

/* What a command does to the session once the server accepts it (a reply
 * that is not an error); per command of a pipeline in conn_cmd.effects. */
enum conn_effect {
  FX_NONE = 0,
  FX_MULTI,     /* MULTI: the connection is in a transaction */
  FX_ENDTX,     /* EXEC, DISCARD: out of MULTI, no WATCH; an error reply
                   leaves the state unknown: never pooled */
  FX_UNWATCH,   /* UNWATCH */
  FX_SELECT     /* SELECT: the owner records the database (conn ignores
                   it; SLOT_CMD: the database in aux) */
};

/* Marks a command sets when it is queued (conn_cmd.marks). */
enum conn_mark {
  MARK_DIRTY = 1 << 0,  /* the session changed for good: never pooled */
  MARK_WATCH = 1 << 1   /* WATCH: not pooled until EXEC/DISCARD/UNWATCH */
};

/* A command (or a pipeline) as the caller describes it to conn_commit. */
typedef struct conn_cmd {
  void *waiter;         /* the caller's (a lev task) */
  int aux;              /* the caller's (pipeline: result table index) */
  uint8_t kind;         /* SLOT_CMD or SLOT_PIPELINE */
  uint8_t effect;       /* SLOT_CMD: enum conn_effect */
  uint8_t subscribe;    /* a pub/sub-family command: routed by count */
  uint8_t marks;        /* enum conn_mark */
  uint32_t replies;     /* replies expected (SLOT_PIPELINE: commands) */
  uint32_t sub_count;   /* pub/sub: its channels */
  double block;         /* extra seconds the server may wait (blocking
                           commands); < 0: it may wait forever */
  uint8_t *effects;     /* SLOT_PIPELINE: an effect per command, or NULL;
                           malloc'd, the conn frees it */
} conn_cmd;

/* A pending command as callbacks see it (a copy: read-only). Callbacks
 * get forgotten slots too (waiter NULL), so every reply is seen. */
typedef struct conn_slot {
  void *waiter;        /* NULL once forgotten (conn_forget, conn_abandon) */
  int aux;
  uint32_t remaining;  /* replies still expected */
  uint32_t received;
  uint8_t kind;
  uint8_t subscribe;
  uint8_t effect;
  uint32_t sub_count;
  double block;
  uint8_t *effects;
} conn_slot;

typedef struct conn_callbacks {
  /* The connect finished: status 0, or a negative err.h code and msg. */
  void (*on_connect)(conn *c, int status, const char *msg);
  /* A reply for slot, or for nobody (slot NULL: pub/sub messages, extra
   * confirmations, RESP3 pushes) which read() consumes. */
  void (*on_reply)(conn *c, const conn_slot *slot, const resp_reply *r);
  /* The slot will get no reply: err (negative) and msg say why. slot NULL:
   * a read wait (conn_read_wait) timed out; the connection stays usable. */
  void (*on_fail)(conn *c, const conn_slot *slot, int err, const char *msg);
  /* The conn is released; it is freed after this returns. */
  void (*on_close)(conn *c);
  /* Optional. A committed command wants writing: the owner calls
   * conn_flush soon (once per batch). NULL: conn_commit flushes at once. */
  void (*want_flush)(conn *c);
} conn_callbacks;

conn *conn_new(uv_loop_t *loop, const conn_callbacks *cb, void *data,
               const resp_limits *lim);
/* Resolves, connects, runs TLS (tls may be NULL); on_connect fires once.
 * Returns 0 or a negative code (then on_connect does not fire; conn_error
 * says why and the caller closes c). */
int conn_connect(conn *c, const char *host, int port, const stream_tls *tls,
                 double timeout);
/* Adopts an open, connected socket (tests, the fuzzer: one end of a
 * socketpair). 0 or a negative code. */
int conn_open_fd(conn *c, uv_os_sock_t fd);

void conn_set_owner(conn *c, const conn_callbacks *cb, void *data);
/* Reads go into s (shared by the connections of one thread, which must
 * outlive them) whenever no reply is half received, so an idle connection
 * keeps no read buffer. NULL: the connection's own buffer only. */
void conn_share_reads(conn *c, resp_scratch *s);
void *conn_data(const conn *c);
/* Are cb the callbacks installed? (Whose conn is it.) */
int conn_owned_by(const conn *c, const conn_callbacks *cb);

/* What travels with the connection whoever owns it (the client-side
 * cache): ext is freed with ext_free when the conn is released (or
 * replaced by another conn_set_ext). ext_push, when set, sees every RESP3
 * push nobody asked for before the owner does, also while the conn is
 * pooled; returning 1 consumes it (the owner never sees it). */
void conn_set_ext(conn *c, void *ext, void (*ext_free)(void *),
                  int (*ext_push)(void *, const resp_reply *));
void *conn_ext(const conn *c);

/* Where to encode the next command, or NULL when the conn takes no more
 * (broken or closing). Then conn_commit or conn_cancel. */
buf *conn_begin(conn *c);
/* Drops what was encoded since conn_begin. */
void conn_cancel(conn *c);
/* Queues the encoded command. 0, or LEVR_ELIMIT (max_pending slots are
 * pending), LEVR_ECLOSED (the conn broke meanwhile) or LEVR_ENOMEM; on
 * failure the encoded bytes are dropped and cmd->effects is freed. */
int conn_commit(conn *c, const conn_cmd *cmd);
/* Writes what is queued. */
void conn_flush(conn *c);

/* A waiter was abandoned (lev.timeout). Its replies will be dropped. If
 * it may block at the server, or other commands are pending behind or
 * before it, the conn fails as on its own timeout: every other pending
 * slot fails with err/msg and the conn closes, so nothing waits on a
 * reply that may never come, and no late reply reaches a later command.
 * Alone and not blocking, it is only forgotten (its reply is on the way;
 * the connection stays). */
void conn_abandon(conn *c, void *waiter, int err, const char *msg);
/* Forgets a waiter without failing anything: its replies are dropped. */
void conn_forget(conn *c, void *waiter);

/* Fails every pending slot with err/msg, breaks and closes the conn. */
void conn_fail(conn *c, int err, const char *msg);
/* Closes; pending slots fail with "closed". Idempotent. */
void conn_close(conn *c);

/* State. */
int conn_usable(const conn *c);      /* not broken, not closing */
size_t conn_pending(const conn *c);  /* slots */
int conn_paused(const conn *c);
int conn_clean(const conn *c);       /* may go back to a pool */
/* Why it broke (text and code), or "" and 0. */
const char *conn_error(const conn *c);
int conn_errcode(const conn *c);

/* Limits: seconds per wait (0: none; a new value restarts the wait of the
 * command at the head), slots, wire bytes of one reply. conn_set_timeout
 * returns 0, or LEVR_ENOMEM (the timer a timeout needs; nothing changed). */
int conn_set_timeout(conn *c, double secs);
void conn_set_max_pending(conn *c, size_t n);
void conn_set_max_reply(conn *c, size_t bytes);

/* A read() wait with the timeout (on), or its end (off). It is bounded
 * also while other commands come and go; when it expires on_fail gets
 * slot NULL and LEVR_ETIMEOUT, and the connection stays usable. */
void conn_read_wait(conn *c, int on);
/* Pauses/resumes reading (read() back-pressure). */
void conn_pause(conn *c, int on);
/* Idle (pooled) connections do not keep the loop alive. */
void conn_ref(conn *c, int on);
/* For a connection leaving a pool: 0 when its socket already has
 * something to read (the server closed it, or sent what nobody asked for)
 * that the loop has not seen yet; then it must not be handed out. */
int conn_idle_usable(conn *c);

#endif
