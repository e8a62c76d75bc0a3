/*
 * W6 peers: a pub/sub subscriber on hiredis async (Debian's libhiredis-dev)
 * with its libuv adapter, and the publisher both subscribers are fed by.
 *
 *   hiredis_sub HOST PORT sub WARM N   subscribe to "w6", print "ready";
 *                                      after WARM messages, time the next
 *                                      N; print "W6 ops=N secs=S cpu=C"
 *   hiredis_sub HOST PORT pub TOTAL    PUBLISH w6 <16-byte payload>, TOTAL
 *                                      times, pipelined 100 at a time
 *
 * Every message is checked as bench/w6_sub.lua checks it: an array of
 * three, "message", channel "w6", a 16-byte payload.
 */
#define _POSIX_C_SOURCE 200809L
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include "common.h"

#define W6_BATCH 100

typedef struct sub_state {
  long warm, n, seen;
  double t0, c0, s0;
} sub_state;

static void on_message(redisAsyncContext *ac, void *reply, void *priv) {
  redisReply *r = (redisReply *)reply;
  sub_state *s = (sub_state *)priv;
  if (r == NULL)
    return; /* the disconnect at the end */
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
    bench_die("unexpected reply type %d", r->type);
  if (strcmp(r->element[0]->str, "subscribe") == 0) {
    printf("ready\n");
    fflush(stdout);
    return;
  }
  if (strcmp(r->element[0]->str, "message") != 0 ||
      strcmp(r->element[1]->str, "w6") != 0 || r->element[2]->len != 16)
    bench_die("bad message");
  if (++s->seen == s->warm) {
    s->t0 = bench_wall();
    s->c0 = bench_cpu();
    s->s0 = bench_sys();
  }
  if (s->seen == s->warm + s->n) {
    bench_report("W6", s->n, bench_wall() - s->t0, bench_cpu() - s->c0,
                 bench_sys() - s->s0);
    redisAsyncDisconnect(ac);
  }
}

static int run_sub(const char *host, int port, long warm, long n) {
  uv_loop_t *loop = uv_default_loop();
  sub_state s = { warm, n, 0, 0, 0, 0 };
  redisAsyncContext *ac = redisAsyncConnect(host, port);
  if (ac == NULL || ac->err)
    bench_die("connect: %s", ac ? ac->errstr : "out of memory");
  redisLibuvAttach(ac, loop);
  if (redisAsyncCommand(ac, on_message, &s, "SUBSCRIBE w6") != REDIS_OK)
    bench_die("SUBSCRIBE rejected");
  uv_run(loop, UV_RUN_DEFAULT);
  return s.seen == warm + n ? 0 : 1;
}

static int run_pub(const char *host, int port, long total) {
  redisContext *c = redisConnect(host, port);
  long i = 0, k;
  char payload[24]; /* 16 digits used; room for any long */
  if (c == NULL || c->err)
    bench_die("connect: %s", c ? c->errstr : "out of memory");
  while (i < total) {
    long batch = total - i < W6_BATCH ? total - i : W6_BATCH;
    for (k = 0; k < batch; k++, i++) {
      snprintf(payload, sizeof payload, "%016ld", i % 10000000000000000L);
      redisAppendCommand(c, "PUBLISH w6 %b", payload, (size_t)16);
    }
    for (k = 0; k < batch; k++) {
      redisReply *r;
      if (redisGetReply(c, (void **)&r) != REDIS_OK)
        bench_die("PUBLISH: %s", c->errstr);
      if (r->type != REDIS_REPLY_INTEGER)
        bench_die("PUBLISH: unexpected reply type %d", r->type);
      freeReplyObject(r);
    }
  }
  redisFree(c);
  return 0;
}

int main(int argc, char **argv) {
  int port;
  if (argc < 5)
    bench_die("usage: hiredis_sub HOST PORT sub WARM N | pub TOTAL");
  port = (int)bench_count(argv[2], "PORT");
  if (strcmp(argv[3], "sub") == 0 && argc == 6)
    return run_sub(argv[1], port, bench_count(argv[4], "WARM"),
                   bench_count(argv[5], "N"));
  if (strcmp(argv[3], "pub") == 0)
    return run_pub(argv[1], port, bench_count(argv[4], "TOTAL"));
  bench_die("unknown mode %s", argv[3]);
  return 2;
}
