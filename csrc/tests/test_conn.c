/* Unit tests of conn.c and pool.c on a socketpair: the test plays the
 * server on the other end with plain send/recv. One case per run:
 *   test_conn CASE
 * (conn.cmake registers each TEST(name) as a ctest test). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cmdinfo.h"
#include "conn.h"
#include "pool.h"

static int failures;
#define CHECK(c)                                                              \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);   \
      failures++;                                                             \
    }                                                                         \
  } while (0)
#define REQUIRE(c)                                                            \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #c); \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

/* ---- the harness ------------------------------------------------------ */

typedef struct event {
  int kind;            /* 'r' reply, 'f' fail, 'c' close */
  void *waiter;
  uint32_t remaining;
  int err;
  char text[64];
} event;

static uv_loop_t loop;
static int srv = -1;
static event events[64];
static int nevents;
static int flushes;

static void on_connect(conn *c, int status, const char *msg) {
  (void)c, (void)status, (void)msg;
}

static int pause_on_first; /* on_reply pauses reading after one reply */

static void on_reply(conn *c, const conn_slot *s, const resp_reply *r) {
  event *e = &events[nevents++];
  const resp_node *n = r->nodes;
  if (pause_on_first && nevents == 1)
    conn_pause(c, 1);
  memset(e, 0, sizeof(*e));
  e->kind = 'r';
  e->waiter = s ? s->waiter : NULL;
  e->remaining = s ? s->remaining : 0;
  if (n->type == RESP_BULK || n->type == RESP_SIMPLE ||
      n->type == RESP_ERROR)
    snprintf(e->text, sizeof(e->text), "%.*s", (int)n->len,
             r->base + n->off);
  else if (n->type == RESP_INTEGER)
    snprintf(e->text, sizeof(e->text), "%lld", (long long)n->v.i);
}

static void on_fail(conn *c, const conn_slot *s, int err, const char *msg) {
  event *e = &events[nevents++];
  (void)c;
  memset(e, 0, sizeof(*e));
  e->kind = 'f';
  e->waiter = s ? s->waiter : NULL;
  e->err = err;
  snprintf(e->text, sizeof(e->text), "%s", msg);
}

static int closed;
static void on_close(conn *c) {
  (void)c;
  closed++;
}

static void want_flush(conn *c) {
  (void)c;
  flushes++;
}

static const conn_callbacks cbs = {on_connect, on_reply, on_fail, on_close,
                                   want_flush};

static conn *open_conn(void) {
  int sv[2];
  conn *c;
  REQUIRE(uv_loop_init(&loop) == 0);
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  REQUIRE(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK) == 0);
  srv = sv[1];
  c = conn_new(&loop, &cbs, NULL, NULL);
  REQUIRE(c != NULL);
  REQUIRE(conn_open_fd(c, sv[0]) == 0);
  return c;
}

/* Turns the loop until cond() holds or about a second passes. */
static int turn_until(int (*cond)(void)) {
  int i;
  struct timespec ms = {0, 1000000};
  for (i = 0; i < 1000; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    if (cond())
      return 1;
    nanosleep(&ms, NULL);
  }
  return cond();
}

static void turn_for_ms(int n) {
  struct timespec ms = {0, 1000000};
  while (n-- > 0) {
    uv_run(&loop, UV_RUN_NOWAIT);
    nanosleep(&ms, NULL);
  }
}

static int want_events;
static int have_events(void) { return nevents >= want_events; }
static int is_closed(void) { return closed > 0; }

static void wait_events(int n) {
  want_events = n;
  CHECK(turn_until(have_events));
}

static void finish(conn *c) {
  if (c && !closed)
    conn_close(c);
  CHECK(turn_until(is_closed));
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  if (srv >= 0)
    close(srv);
  srv = -1;
}

/* Queues name arg (one command) for waiter w; returns conn_commit's. */
static int queue(conn *c, const char *name, const char *arg, void *w,
                 uint32_t replies, double block, uint8_t *fx) {
  const char *argv[2] = {name, arg};
  size_t lens[2] = {strlen(name), arg ? strlen(arg) : 0};
  conn_cmd cmd;
  const cmdinfo *ci = cmdinfo_special(name, strlen(name));
  uint32_t i;
  buf *b = conn_begin(c);
  if (!b)
    return LEVR_ECLOSED;
  for (i = 0; i < (replies ? replies : 1); i++)
    REQUIRE(resp_encode_command(b, arg ? 2 : 1, argv, lens) == 0);
  memset(&cmd, 0, sizeof(cmd));
  cmd.waiter = w;
  cmd.kind = replies > 1 ? SLOT_PIPELINE : SLOT_CMD;
  cmd.replies = replies;
  cmd.block = block;
  cmd.effects = fx;
  if (ci && (ci->flags & CMD_MULTI))
    cmd.effect = FX_MULTI;
  if (ci && (ci->flags & CMD_ENDTX))
    cmd.effect = FX_ENDTX;
  return conn_commit(c, &cmd);
}

static void srv_send(const char *s) {
  REQUIRE(send(srv, s, strlen(s), MSG_NOSIGNAL) == (ssize_t)strlen(s));
}

/* What the client wrote so far (after a flush and a few turns). */
static char got[4096];
static size_t ngot;
static int srv_read(void) {
  ssize_t r;
  while ((r = recv(srv, got + ngot, sizeof(got) - 1 - ngot, 0)) > 0)
    ngot += (size_t)r;
  got[ngot] = 0;
  return ngot > 0;
}

static int w1, w2, w3;

#define TEST(name) static void test_##name(void)

/* ---- conn ------------------------------------------------------------- */

TEST(queue_fifo) {
  conn *c = open_conn();
  CHECK(queue(c, "ECHO", "a", &w1, 1, 0, NULL) == 0);
  CHECK(queue(c, "ECHO", "b", &w2, 1, 0, NULL) == 0);
  CHECK(queue(c, "PING", NULL, &w3, 1, 0, NULL) == 0);
  CHECK(flushes == 3);        /* asked; the owner batches */
  CHECK(conn_pending(c) == 3);
  conn_flush(c);
  CHECK(turn_until(srv_read));
  CHECK(strcmp(got, "*2\r\n$4\r\nECHO\r\n$1\r\na\r\n*2\r\n$4\r\nECHO\r\n"
                    "$1\r\nb\r\n*1\r\n$4\r\nPING\r\n") == 0);
  srv_send("$1\r\na\r\n$1\r\nb\r\n+PONG\r\n");
  wait_events(3);
  CHECK(events[0].waiter == &w1 && strcmp(events[0].text, "a") == 0);
  CHECK(events[1].waiter == &w2 && strcmp(events[1].text, "b") == 0);
  CHECK(events[2].waiter == &w3 && strcmp(events[2].text, "PONG") == 0);
  CHECK(conn_pending(c) == 0 && conn_clean(c));
  finish(c);
}

TEST(pipeline) {
  conn *c = open_conn();
  CHECK(queue(c, "INCR", "k", &w1, 3, 0, NULL) == 0);
  conn_flush(c);
  srv_send(":1\r\n:2\r\n");
  wait_events(2);
  CHECK(events[0].remaining == 2 && events[1].remaining == 1);
  CHECK(conn_pending(c) == 1);
  srv_send(":3\r\n");
  wait_events(3);
  CHECK(events[2].remaining == 0 && strcmp(events[2].text, "3") == 0);
  CHECK(conn_pending(c) == 0);
  finish(c);
}

TEST(deadline_fails_every_slot) {
  conn *c = open_conn();
  conn_set_timeout(c, 0.05);
  CHECK(queue(c, "GET", "a", &w1, 1, 0, NULL) == 0);
  CHECK(queue(c, "GET", "b", &w2, 1, 0, NULL) == 0);
  conn_flush(c);
  wait_events(2);
  CHECK(events[0].kind == 'f' && events[0].waiter == &w1 &&
        events[0].err == LEVR_ETIMEOUT);
  CHECK(events[1].kind == 'f' && events[1].waiter == &w2 &&
        events[1].err == LEVR_ETIMEOUT);
  CHECK(strcmp(events[1].text, "timeout") == 0);
  /* the conn is released in the same loop turn: no use of c after it */
  finish(NULL);
  CHECK(closed == 1 && nevents == 2);
}

TEST(blocking_extends_deadline) {
  conn *c = open_conn();
  conn_set_timeout(c, 0.02);
  CHECK(queue(c, "BLPOP", "q", &w1, 1, 30, NULL) == 0);
  conn_flush(c);
  {
    int i;
    struct timespec ms = {0, 1000000};
    for (i = 0; i < 60; i++) { /* past the timeout, within the block */
      uv_run(&loop, UV_RUN_NOWAIT);
      nanosleep(&ms, NULL);
    }
  }
  CHECK(nevents == 0 && conn_usable(c));
  srv_send("*-1\r\n");
  wait_events(1);
  CHECK(events[0].kind == 'r' && events[0].waiter == &w1);
  finish(c);
}

TEST(eof_fails_every_slot) {
  conn *c = open_conn();
  CHECK(queue(c, "GET", "a", &w1, 1, 0, NULL) == 0);
  CHECK(queue(c, "GET", "b", &w2, 3, 0, NULL) == 0);
  conn_flush(c);
  srv_send("$1\r\na\r\n:1\r\n");
  close(srv);
  srv = -1;
  wait_events(3);
  CHECK(events[0].kind == 'r' && events[1].kind == 'r');
  CHECK(events[2].kind == 'f' && events[2].waiter == &w2 &&
        events[2].err == LEVR_EEOF);
  CHECK(turn_until(is_closed));
  finish(NULL);
}

TEST(max_pending) {
  conn *c = open_conn();
  conn_set_max_pending(c, 2);
  CHECK(queue(c, "ECHO", "a", &w1, 1, 0, NULL) == 0);
  CHECK(queue(c, "ECHO", "b", &w2, 1, 0, NULL) == 0);
  CHECK(queue(c, "ECHO", "c", &w3, 1, 0, NULL) == LEVR_ELIMIT);
  conn_flush(c);
  CHECK(turn_until(srv_read));
  CHECK(strstr(got, "$1\r\nc\r\n") == NULL); /* dropped, never sent */
  CHECK(conn_pending(c) == 2 && conn_usable(c));
  finish(c);
}

TEST(read_wait_survives_commands) {
  conn *c = open_conn();
  conn_set_timeout(c, 0.05);
  conn_read_wait(c, 1);
  CHECK(queue(c, "PING", NULL, &w1, 1, 0, NULL) == 0);
  conn_flush(c);
  srv_send("+PONG\r\n");
  wait_events(2);
  CHECK(events[0].kind == 'r' && events[0].waiter == &w1);
  CHECK(events[1].kind == 'f' && events[1].waiter == NULL &&
        events[1].err == LEVR_ETIMEOUT);
  CHECK(conn_usable(c));
  finish(c);
}

TEST(abandon) {
  conn *c = open_conn();
  /* alone, not blocking: forgotten, its reply dropped, conn kept */
  CHECK(queue(c, "GET", "a", &w1, 1, 0, NULL) == 0);
  conn_abandon(c, &w1, LEVR_ECLOSED, "abandoned");
  CHECK(conn_usable(c) && conn_pending(c) == 1);
  conn_flush(c);
  srv_send("$1\r\na\r\n");
  wait_events(1);
  CHECK(events[0].kind == 'r' && events[0].waiter == NULL);
  /* with another command pending: the conn fails, the other too */
  CHECK(queue(c, "GET", "b", &w2, 1, 0, NULL) == 0);
  CHECK(queue(c, "GET", "c", &w3, 1, 0, NULL) == 0);
  conn_abandon(c, &w2, LEVR_ECLOSED, "abandoned");
  CHECK(nevents == 3);
  CHECK(events[1].kind == 'f' && events[1].waiter == NULL);
  CHECK(events[2].kind == 'f' && events[2].waiter == &w3 &&
        events[2].err == LEVR_ECLOSED &&
        strcmp(events[2].text, "abandoned") == 0);
  CHECK(!conn_usable(c));
  finish(c);
}

TEST(session_from_replies) {
  conn *c = open_conn();
  CHECK(queue(c, "MULTI", NULL, &w1, 1, 0, NULL) == 0);
  conn_flush(c);
  srv_send("+OK\r\n");
  wait_events(1);
  CHECK(!conn_clean(c)); /* in MULTI */
  CHECK(queue(c, "EXEC", "x", &w2, 1, 0, NULL) == 0);
  conn_flush(c);
  srv_send("-ERR wrong number of arguments\r\n");
  wait_events(2);
  CHECK(!conn_clean(c)); /* rejected EXEC: still in MULTI */
  finish(c);
  closed = 0, nevents = 0;
  c = open_conn();
  CHECK(queue(c, "MULTI", NULL, &w1, 1, 0, NULL) == 0);
  CHECK(queue(c, "EXEC", NULL, &w2, 1, 0, NULL) == 0);
  conn_flush(c);
  srv_send("+OK\r\n*0\r\n");
  wait_events(2);
  CHECK(conn_clean(c));
  finish(c);
}

/* ---- pool ------------------------------------------------------------- */

static void keep_cb(uv_prepare_t *h) { (void)h; }

TEST(pool_rules) {
  pool *p = pool_new();
  conn *a, *b;
  uint64_t idle = 0;
  const char k1[] = "h:1/0\0alice", k2[] = "h:1/0\0bob";
  REQUIRE(p != NULL);
  a = open_conn();
  CHECK(conn_clean(a));
  CHECK(pool_put(p, a, k1, sizeof(k1) - 1, 1, 100) == 0);
  CHECK(pool_count(p, k1, sizeof(k1) - 1) == 1);
  CHECK(pool_count(p, k2, sizeof(k2) - 1) == 0); /* bytes after the NUL */
  CHECK(pool_count(p, "h:1/0", 5) == 0);
  CHECK(pool_take(p, k2, sizeof(k2) - 1, 200, &idle) == NULL);
  b = pool_take(p, k1, sizeof(k1) - 1, 250, &idle);
  CHECK(b == a && idle == 150);
  CHECK(pool_idle(p) == 0);
  conn_set_owner(b, &cbs, NULL);
  /* max per key */
  CHECK(pool_put(p, b, k1, sizeof(k1) - 1, 0, 300) == LEVR_ELIMIT);
  CHECK(pool_put(p, b, k1, sizeof(k1) - 1, 1, 300) == 0);
  /* a reply nobody asked for on an idle conn: it leaves the pool (the
   * prepare handle keeps the loop turning, as a program's other handles
   * would: an idle conn does not) */
  srv_send("+SURPRISE\r\n");
  {
    int i;
    struct timespec ms = {0, 1000000};
    uv_prepare_t keep;
    uv_prepare_init(&loop, &keep);
    uv_prepare_start(&keep, keep_cb);
    for (i = 0; i < 500 && pool_idle(p) > 0; i++) {
      uv_run(&loop, UV_RUN_NOWAIT);
      nanosleep(&ms, NULL);
    }
    uv_close((uv_handle_t *)&keep, NULL);
  }
  CHECK(pool_idle(p) == 0 && pool_count(p, k1, sizeof(k1) - 1) == 0);
  CHECK(nevents == 0); /* the owner's callbacks were not called */
  pool_free(p);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  close(srv);
}

/* Reads go through a scratch shared by connections: a reply split across
 * reads, and replies left unread by a pause, move into the conn's own
 * memory, and the scratch is free again after every read. */
static resp_scratch scratch;

TEST(shared_reads_split_reply) {
  conn *c = open_conn();
  conn_share_reads(c, &scratch);
  CHECK(queue(c, "GET", "k", &w1, 1, 0, NULL) == 0);
  CHECK(queue(c, "PING", NULL, &w2, 1, 0, NULL) == 0);
  conn_flush(c);
  srv_send("$10\r\n01234");
  turn_for_ms(20); /* the first half is read: nothing whole yet */
  CHECK(nevents == 0 && !scratch.busy && !scratch.holder && scratch.buf);
  /* The scratch may serve others meanwhile: scribble over it. */
  memset(scratch.buf, 'x', scratch.cap);
  srv_send("56789\r\n+PONG\r\n");
  wait_events(2);
  CHECK(events[0].waiter == &w1 && strcmp(events[0].text, "0123456789") == 0);
  CHECK(events[1].waiter == &w2 && strcmp(events[1].text, "PONG") == 0);
  CHECK(!scratch.busy && conn_pending(c) == 0);
  finish(c);
  resp_scratch_free(&scratch);
}

TEST(shared_reads_pause) {
  conn *c = open_conn();
  conn_share_reads(c, &scratch);
  CHECK(queue(c, "INCR", "k", &w1, 3, 0, NULL) == 0);
  conn_flush(c);
  pause_on_first = 1;
  srv_send(":1\r\n:2\r\n:3\r\n"); /* one read, paused after the first */
  wait_events(1);
  CHECK(nevents == 1 && !scratch.busy && !scratch.holder);
  memset(scratch.buf, 'x', scratch.cap);
  pause_on_first = 0;
  conn_pause(c, 0); /* the two left come from the conn's own copy */
  wait_events(3);
  CHECK(nevents == 3 && strcmp(events[1].text, "2") == 0 &&
        strcmp(events[2].text, "3") == 0 && events[2].remaining == 0);
  finish(c);
  resp_scratch_free(&scratch);
}

/* The timer exists only while a timeout is set: turning the timeout off
 * and on again still bounds the wait. */
TEST(timeout_off_and_on) {
  conn *c = open_conn();
  CHECK(conn_set_timeout(c, 0.01) == 0);
  CHECK(conn_set_timeout(c, 0) == 0);
  CHECK(queue(c, "GET", "a", &w1, 1, 0, NULL) == 0);
  conn_flush(c);
  turn_for_ms(30);
  CHECK(nevents == 0 && conn_pending(c) == 1); /* no deadline: waits */
  CHECK(conn_set_timeout(c, 0.02) == 0);
  wait_events(1);
  CHECK(events[0].kind == 'f' && events[0].waiter == &w1 &&
        events[0].err == LEVR_ETIMEOUT);
  close(srv);
}

TEST(pool_free_closes_idle) {
  pool *p = pool_new();
  conn *a = open_conn();
  CHECK(pool_put(p, a, "k", 1, 5, 0) == 0);
  pool_free(p);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  close(srv);
}

/* ---- main ------------------------------------------------------------- */

static const struct {
  const char *name;
  void (*fn)(void);
} cases[] = {
#define CASE(n) {#n, test_##n}
  CASE(queue_fifo), CASE(pipeline), CASE(deadline_fails_every_slot),
  CASE(blocking_extends_deadline), CASE(eof_fails_every_slot),
  CASE(max_pending), CASE(read_wait_survives_commands), CASE(abandon),
  CASE(session_from_replies), CASE(pool_rules), CASE(pool_free_closes_idle),
  CASE(shared_reads_split_reply), CASE(shared_reads_pause),
  CASE(timeout_off_and_on),
};

int main(int argc, char **argv) {
  size_t i;
  signal(SIGPIPE, SIG_IGN);
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
      continue;
    nevents = 0, closed = 0, flushes = 0, ngot = 0;
    cases[i].fn();
  }
  if (failures)
    fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
