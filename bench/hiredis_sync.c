/*
 * Benchmark peer: hiredis (Debian's libhiredis-dev) with its blocking API.
 *
 *   hiredis_sync HOST PORT load            write the data set (common.h)
 *   hiredis_sync HOST PORT w1 OPS          SET then GET, one at a time
 *   hiredis_sync HOST PORT w2 OPS DEPTH    pipelines of DEPTH GETs
 *   hiredis_sync HOST PORT w4 OPS          GET of the 100 KB value
 *
 * OPS counts commands. Each run first does a fixed warm-up of the same
 * workload, independent of OPS, so that under callgrind the difference of
 * two runs of different OPS cancels start-up and warm-up exactly. Every
 * reply is checked against the value it must be.
 */
#define _POSIX_C_SOURCE 200809L
#include <hiredis/hiredis.h>

#include "common.h"

static bench_data data;

static void check_status_ok(redisReply *r, redisContext *c) {
  if (r == NULL) bench_die("SET failed: %s", c->errstr);
  if (r->type != REDIS_REPLY_STATUS || r->len != 2 ||
      memcmp(r->str, "OK", 2) != 0)
    bench_die("SET: unexpected reply type %d", r->type);
  freeReplyObject(r);
}

static void check_string(redisReply *r, redisContext *c, const char *want,
                         size_t len) {
  if (r == NULL) bench_die("GET failed: %s", c->errstr);
  if (r->type != REDIS_REPLY_STRING || (size_t)r->len != len ||
      memcmp(r->str, want, len) != 0)
    bench_die("GET: wrong reply (type %d, len %lld)", r->type,
              (long long)r->len);
  freeReplyObject(r);
}

static void load(redisContext *c) {
  const char *argv[3];
  size_t lens[3];
  int i;
  argv[0] = "SET";
  lens[0] = 3;
  for (i = 0; i < BENCH_NKEYS; i++) {
    argv[1] = data.keys[i];
    lens[1] = data.key_lens[i];
    argv[2] = data.vals[i];
    lens[2] = BENCH_VAL_LEN;
    check_status_ok(redisCommandArgv(c, 3, argv, lens), c);
  }
  argv[1] = "bench:big";
  lens[1] = strlen(argv[1]);
  argv[2] = data.big;
  lens[2] = BENCH_BIG_LEN;
  check_status_ok(redisCommandArgv(c, 3, argv, lens), c);
}

/* W1: the value cycles through the 16 known strings so each GET must
 * return what this very SET wrote, not merely some earlier value. */
static long w1(redisContext *c, long ops) {
  const char *argv[3] = {"SET", "bench:w1:hiredis-sync", NULL};
  size_t lens[3] = {3, 0, BENCH_VAL_LEN};
  long i, iters = ops / 2;
  lens[1] = strlen(argv[1]);
  for (i = 0; i < iters; i++) {
    const char *v = data.vals[i & (BENCH_NKEYS - 1)];
    argv[0] = "SET";
    argv[2] = v;
    check_status_ok(redisCommandArgv(c, 3, argv, lens), c);
    argv[0] = "GET";
    check_string(redisCommandArgv(c, 2, argv, lens), c, v, BENCH_VAL_LEN);
  }
  return iters * 2;
}

/* W2: the pipelined form hiredis documents: append DEPTH commands to the
 * output buffer, then read DEPTH replies (the first read flushes). */
static long w2(redisContext *c, long ops, long depth) {
  const char *argv[2] = {"GET", NULL};
  size_t lens[2] = {3, 0};
  long n, j, batches = ops / depth;
  for (n = 0; n < batches; n++) {
    for (j = 0; j < depth; j++) {
      argv[1] = data.keys[j & (BENCH_NKEYS - 1)];
      lens[1] = data.key_lens[j & (BENCH_NKEYS - 1)];
      if (redisAppendCommandArgv(c, 2, argv, lens) != REDIS_OK)
        bench_die("append failed: %s", c->errstr);
    }
    for (j = 0; j < depth; j++) {
      void *r = NULL;
      if (redisGetReply(c, &r) != REDIS_OK) r = NULL;
      check_string(r, c, data.vals[j & (BENCH_NKEYS - 1)], BENCH_VAL_LEN);
    }
  }
  return batches * depth;
}

static long w4(redisContext *c, long ops) {
  const char *argv[2] = {"GET", "bench:big"};
  size_t lens[2] = {3, 9};
  long i;
  for (i = 0; i < ops; i++)
    check_string(redisCommandArgv(c, 2, argv, lens), c, data.big,
                 BENCH_BIG_LEN);
  return ops;
}

static long run(redisContext *c, const char *work, long ops, long depth) {
  if (strcmp(work, "w1") == 0) return w1(c, ops);
  if (strcmp(work, "w2") == 0) return w2(c, ops, depth);
  return w4(c, ops);
}

int main(int argc, char **argv) {
  redisContext *c;
  const char *work;
  long ops = 0, depth = 0, done, warm;
  double t0, c0, s0, t1, c1, s1;
  char label[32];

  if (argc < 4) {
    fprintf(stderr, "usage: %s HOST PORT load|w1 OPS|w2 OPS DEPTH|w4 OPS\n",
            argv[0]);
    return 2;
  }
  work = argv[3];
  bench_data_init(&data);
  if (strcmp(work, "load") != 0) {
    if (argc < 5) bench_die("%s needs OPS", work);
    ops = bench_count(argv[4], "OPS");
    if (strcmp(work, "w2") == 0) {
      if (argc < 6) bench_die("w2 needs DEPTH");
      depth = bench_count(argv[5], "DEPTH");
      if (depth > BENCH_MAX_DEPTH) bench_die("DEPTH too large");
    } else if (strcmp(work, "w1") != 0 && strcmp(work, "w4") != 0) {
      bench_die("unknown workload '%s' (the blocking peer has no w3)", work);
    }
  }

  c = redisConnect(argv[1], (int)bench_count(argv[2], "PORT"));
  if (c == NULL || c->err)
    bench_die("connect: %s", c ? c->errstr : "out of memory");

  if (strcmp(work, "load") == 0) {
    load(c);
    redisFree(c);
    free(data.big);
    return 0;
  }

  /* Warm-up of a fixed size (see the header comment). */
  warm = strcmp(work, "w4") == 0 ? 20 : strcmp(work, "w2") == 0 ? 5 * depth
                                                                  : 200;
  run(c, work, warm, depth);

  t0 = bench_wall();
  c0 = bench_cpu();
  s0 = bench_sys();
  done = run(c, work, ops, depth);
  t1 = bench_wall();
  c1 = bench_cpu();
  s1 = bench_sys();

  if (strcmp(work, "w2") == 0)
    snprintf(label, sizeof label, "W2/%ld", depth);
  else
    snprintf(label, sizeof label, "%s", strcmp(work, "w1") == 0 ? "W1" : "W4");
  bench_report(label, done, t1 - t0, c1 - c0, s1 - s0);
  redisFree(c);
  free(data.big);
  return 0;
}
