/*
 * Benchmark peer for the memory figures: hiredis's async API on its libuv
 * adapter, as in hiredis_async.c, doing what bench.lua's mem-idle and
 * mem-park do, so the RSS growth can be set side by side.
 *
 *   hiredis_mem HOST PORT idle N   N more connected contexts, each having
 *                                  answered a PING, then idle
 *   hiredis_mem HOST PORT park N   N BLPOPs on an empty list in flight on
 *                                  one context (N callbacks pending); a
 *                                  second context then LPUSHes N distinct
 *                                  values and every callback must get one
 *
 * Prints "MEM idle|park n=N rss0=B rss1=B lua=0": RSS (VmRSS of
 * /proc/self/status) before and with the N connections or commands, the
 * start state being one context connected and used, as in bench.lua.
 * hiredis has no pool: an idle connection is simply a context kept open.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include "common.h"

static uv_loop_t *loop;
static long replies; /* callbacks that got their expected reply */
static char *popped; /* popped[i]: value "p<i+1>" was received */
static long npark;

static long rss_bytes(void) {
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) bench_die("cannot read /proc/self/status");
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  fclose(f);
  if (kb < 0) bench_die("no VmRSS in /proc/self/status");
  return kb * 1024;
}

static void on_connect(const redisAsyncContext *ac, int status) {
  if (status != REDIS_OK) bench_die("connect: %s", ac->errstr);
}

static redisAsyncContext *open_ctx(const char *host, int port) {
  redisAsyncContext *ac = redisAsyncConnect(host, port);
  if (ac == NULL || ac->err)
    bench_die("connect: %s", ac ? ac->errstr : "out of memory");
  if (redisLibuvAttach(ac, loop) != REDIS_OK)
    bench_die("cannot attach to libuv");
  redisAsyncSetConnectCallback(ac, on_connect);
  return ac;
}

static void pong_cb(redisAsyncContext *ac, void *reply, void *priv) {
  redisReply *r = reply;
  (void)priv;
  if (r == NULL) bench_die("PING failed: %s", ac->errstr);
  if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
    bench_die("PING: wrong reply (type %d)", r->type);
  replies++;
}

static void ping(redisAsyncContext *ac) {
  if (redisAsyncCommand(ac, pong_cb, NULL, "PING") != REDIS_OK)
    bench_die("PING rejected: %s", ac->errstr);
}

/* Runs the loop until `want` replies have been counted. */
static void run_until(long want) {
  while (replies < want)
    if (uv_run(loop, UV_RUN_ONCE) == 0) bench_die("loop ran dry");
}

static void int_cb(redisAsyncContext *ac, void *reply, void *priv) {
  redisReply *r = reply;
  if (r == NULL) bench_die("command failed: %s", ac->errstr);
  if (r->type != REDIS_REPLY_INTEGER || r->integer != (long long)(intptr_t)priv)
    bench_die("wrong integer reply (type %d)", r->type);
  replies++;
}

static void blpop_cb(redisAsyncContext *ac, void *reply, void *priv) {
  redisReply *r = reply;
  long i;
  char *end;
  (void)priv;
  if (r == NULL) bench_die("BLPOP failed: %s", ac->errstr);
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
      r->element[1]->type != REDIS_REPLY_STRING ||
      strcmp(r->element[0]->str, "bench:park") != 0 ||
      r->element[1]->str[0] != 'p')
    bench_die("BLPOP: wrong reply (type %d)", r->type);
  i = strtol(r->element[1]->str + 1, &end, 10);
  if (*end != '\0' || i < 1 || i > npark || popped[i - 1])
    bench_die("BLPOP: value %s unknown or popped twice", r->element[1]->str);
  popped[i - 1] = 1;
  replies++;
}

static void info_cb(redisAsyncContext *ac, void *reply, void *priv) {
  redisReply *r = reply;
  if (r == NULL || r->type != REDIS_REPLY_STRING)
    bench_die("INFO failed: %s", ac->errstr);
  *(int *)priv = strstr(r->str, "blocked_clients:1") != NULL;
  replies++;
}

int main(int argc, char **argv) {
  redisAsyncContext *base, *ctl, **many;
  const char *host;
  int port;
  long n, i, rss0, rss1, want = 0;

  if (argc != 5) {
    fprintf(stderr, "usage: %s HOST PORT idle|park N\n", argv[0]);
    return 2;
  }
  host = argv[1];
  port = (int)bench_count(argv[2], "PORT");
  n = bench_count(argv[4], "N");
  loop = uv_default_loop();

  base = open_ctx(host, port);
  ping(base);
  run_until(++want);
  rss0 = rss_bytes();

  if (strcmp(argv[3], "idle") == 0) {
    many = malloc((size_t)n * sizeof *many);
    if (many == NULL) bench_die("out of memory");
    for (i = 0; i < n; i++) {
      many[i] = open_ctx(host, port);
      ping(many[i]);
    }
    want += n;
    run_until(want);
    rss1 = rss_bytes();
    for (i = 0; i < n; i++) redisAsyncDisconnect(many[i]);
    free(many);
  } else if (strcmp(argv[3], "park") == 0) {
    int blocked = 0;
    const char **av;
    size_t *lens;
    char (*vals)[24];
    npark = n;
    popped = calloc((size_t)n, 1);
    if (popped == NULL) bench_die("out of memory");
    ctl = open_ctx(host, port);
    if (redisAsyncCommand(ctl, int_cb, NULL, "DEL bench:park") != REDIS_OK)
      bench_die("DEL rejected");
    run_until(++want);
    for (i = 0; i < n; i++)
      if (redisAsyncCommand(base, blpop_cb, NULL, "BLPOP bench:park 0") !=
          REDIS_OK)
        bench_die("BLPOP rejected: %s", base->errstr);
    /* As bench.lua: wait until the server holds the first BLPOP blocked. */
    for (i = 0; i < 200 && !blocked; i++) {
      uv_sleep(50);
      if (redisAsyncCommand(ctl, info_cb, &blocked, "INFO clients") != REDIS_OK)
        bench_die("INFO rejected");
      run_until(++want);
    }
    if (!blocked) bench_die("the BLPOPs never reached the server");
    uv_sleep(200);
    uv_run(loop, UV_RUN_NOWAIT);
    rss1 = rss_bytes();
    /* One LPUSH of n values: argv built outside the measured state. */
    av = malloc((size_t)(n + 2) * sizeof *av);
    lens = malloc((size_t)(n + 2) * sizeof *lens);
    vals = malloc((size_t)n * sizeof *vals);
    if (av == NULL || lens == NULL || vals == NULL) bench_die("out of memory");
    av[0] = "LPUSH";
    lens[0] = 5;
    av[1] = "bench:park";
    lens[1] = 10;
    for (i = 0; i < n; i++) {
      lens[i + 2] = (size_t)snprintf(vals[i], sizeof vals[i], "p%ld", i + 1);
      av[i + 2] = vals[i];
    }
    if (redisAsyncCommandArgv(ctl, int_cb, (void *)(intptr_t)n, (int)n + 2, av,
                              lens) != REDIS_OK)
      bench_die("LPUSH rejected");
    want += n + 1;
    run_until(want);
    for (i = 0; i < n; i++)
      if (!popped[i]) bench_die("value p%ld never popped", i + 1);
    free(av);
    free(lens);
    free(vals);
    free(popped);
    redisAsyncDisconnect(ctl);
  } else {
    bench_die("unknown measurement '%s'", argv[3]);
    return 2;
  }
  printf("MEM %s n=%ld rss0=%ld rss1=%ld lua=0\n", argv[3], n, rss0, rss1);
  fflush(stdout);
  redisAsyncDisconnect(base);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
