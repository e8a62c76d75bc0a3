/*
 * Benchmark peer: hiredis (Debian's libhiredis-dev) with its async API on
 * the libuv adapter it ships (hiredis/adapters/libuv.h), the closest C
 * analogue of our client: one libuv loop, replies delivered to callbacks.
 *
 *   hiredis_async HOST PORT w1 OPS          SET then GET, one at a time
 *   hiredis_async HOST PORT w3 OPS DEPTH    GETs with DEPTH kept in flight
 *   hiredis_async HOST PORT w4 OPS          GET of the 100 KB value
 *   hiredis_async HOST PORT lat OPS DEPTH   w3, each GET's latency (from the
 *                                           call to its callback) counted
 *                                           in a histogram: the line gets
 *                                           " hist=BUCKET:COUNT,..."
 *
 * OPS counts commands. A fixed warm-up of the same workload runs first
 * (independent of OPS, so callgrind differences cancel it); the measured
 * phase starts from the callback that ends the warm-up. Every reply is
 * checked against the value its request must return.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include "common.h"

enum { WORK_W1, WORK_W3, WORK_W4, WORK_LAT };

/* Latency buckets: as lat_bucket in bench.lua, 64 per power of two of
 * the latency in ns; 64 * 58 covers any 64-bit value. */
#define LAT_BUCKETS (64 * 58)

typedef struct run_state {
  redisAsyncContext *ac;
  int work;
  long depth;
  long ops;      /* measured phase size, from the command line */
  long target;   /* size of the phase now running */
  long issued;
  long done;
  int measuring; /* 0 during warm-up */
  int finished;
  double t0, c0, s0;
  long *hist;      /* WORK_LAT: counts per bucket */
  uint64_t *sent;  /* WORK_LAT: issue time of request k at k % depth */
} run_state;

static bench_data data;
static const char w1_key[] = "bench:w1:hiredis-async";

static void phase_start(run_state *s, long target);

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long lat_bucket(uint64_t ns) {
  int m = 6;
  if (ns < 64) return (long)ns;
  while ((ns >> (m + 1)) != 0) m++;
  return (long)(m - 5) * 64 + (long)((ns >> (m - 6)) - 64);
}

static void send_or_die(run_state *s, redisCallbackFn *fn, void *priv,
                        int argc, const char **argv, const size_t *lens) {
  if (redisAsyncCommandArgv(s->ac, fn, priv, argc, argv, lens) != REDIS_OK)
    bench_die("command rejected: %s", s->ac->errstr);
}

static void check_string(const redisAsyncContext *ac, redisReply *r,
                         const char *want, size_t len) {
  if (r == NULL) bench_die("GET failed: %s", ac->errstr);
  if (r->type != REDIS_REPLY_STRING || (size_t)r->len != len ||
      memcmp(r->str, want, len) != 0)
    bench_die("GET: wrong reply (type %d, len %lld)", r->type,
              (long long)r->len);
}

/* Called from the reply callback that completes a phase: the warm-up
 * leads straight into the measured phase, which ends the connection. */
static void phase_end(run_state *s) {
  double t1, c1, s1;
  char label[32];
  if (!s->measuring) {
    s->measuring = 1;
    s->t0 = bench_wall();
    s->c0 = bench_cpu();
    s->s0 = bench_sys();
    phase_start(s, s->ops);
    return;
  }
  t1 = bench_wall();
  c1 = bench_cpu();
  s1 = bench_sys();
  if (s->work == WORK_W3 || s->work == WORK_LAT)
    snprintf(label, sizeof label, "W3/%ld", s->depth);
  else
    snprintf(label, sizeof label, "%s", s->work == WORK_W1 ? "W1" : "W4");
  if (s->work == WORK_LAT) {
    long i;
    const char *sep = "";
    printf("%s ops=%ld secs=%.6f cpu=%.6f sys=%.6f hist=", label, s->done,
           t1 - s->t0, c1 - s->c0, s1 - s->s0);
    for (i = 0; i < LAT_BUCKETS; i++)
      if (s->hist[i] != 0) {
        printf("%s%ld:%ld", sep, i, s->hist[i]);
        sep = ",";
      }
    printf("\n");
    fflush(stdout);
  } else {
    bench_report(label, s->done, t1 - s->t0, c1 - s->c0, s1 - s->s0);
  }
  s->finished = 1;
  redisAsyncDisconnect(s->ac);
}

/* ---- W1: SET, and from its callback the GET, then the next SET. ---- */

static void w1_get_cb(redisAsyncContext *ac, void *reply, void *priv);

static void w1_set_cb(redisAsyncContext *ac, void *reply, void *priv) {
  run_state *s = ac->data;
  redisReply *r = reply;
  const char *argv[2] = {"GET", w1_key};
  size_t lens[2] = {3, sizeof w1_key - 1};
  if (r == NULL) bench_die("SET failed: %s", ac->errstr);
  if (r->type != REDIS_REPLY_STATUS || r->len != 2 ||
      memcmp(r->str, "OK", 2) != 0)
    bench_die("SET: unexpected reply type %d", r->type);
  s->done++;
  /* The GET goes out only now, so exactly one command is in flight. */
  send_or_die(s, w1_get_cb, priv, 2, argv, lens);
}

static void w1_issue(run_state *s) {
  intptr_t idx = (intptr_t)((s->done / 2) & (BENCH_NKEYS - 1));
  const char *argv[3] = {"SET", w1_key, data.vals[idx]};
  size_t lens[3] = {3, sizeof w1_key - 1, BENCH_VAL_LEN};
  send_or_die(s, w1_set_cb, (void *)idx, 3, argv, lens);
}

static void w1_get_cb(redisAsyncContext *ac, void *reply, void *priv) {
  run_state *s = ac->data;
  check_string(ac, reply, data.vals[(intptr_t)priv], BENCH_VAL_LEN);
  s->done++;
  if (s->done < s->target)
    w1_issue(s);
  else
    phase_end(s);
}

/* ---- W3 and W4: GETs with DEPTH callbacks outstanding. ---- */

static void get_cb(redisAsyncContext *ac, void *reply, void *priv);

static void get_issue(run_state *s) {
  const char *argv[2] = {"GET", NULL};
  size_t lens[2] = {3, 0};
  intptr_t idx;
  if (s->work == WORK_W4) {
    idx = -1;
    argv[1] = "bench:big";
    lens[1] = 9;
  } else {
    idx = (intptr_t)(s->issued & (BENCH_NKEYS - 1));
    argv[1] = data.keys[idx];
    lens[1] = data.key_lens[idx];
  }
  /* Replies come back in request order, so request k's issue time can
   * live at k % depth until reply k reads it. */
  if (s->sent != NULL) s->sent[s->issued % s->depth] = now_ns();
  s->issued++;
  send_or_die(s, get_cb, (void *)idx, 2, argv, lens);
}

static void get_cb(redisAsyncContext *ac, void *reply, void *priv) {
  run_state *s = ac->data;
  intptr_t idx = (intptr_t)priv;
  if (idx < 0)
    check_string(ac, reply, data.big, BENCH_BIG_LEN);
  else
    check_string(ac, reply, data.vals[idx], BENCH_VAL_LEN);
  if (s->sent != NULL && s->measuring)
    s->hist[lat_bucket(now_ns() - s->sent[s->done % s->depth])]++;
  s->done++;
  /* Refill from inside the callback: the slot just freed is reused at
   * once, so DEPTH requests stay in flight until the tail of the run. */
  if (s->issued < s->target) get_issue(s);
  if (s->done == s->target) phase_end(s);
}

static void phase_start(run_state *s, long target) {
  long i;
  s->target = target;
  s->issued = 0;
  s->done = 0;
  if (s->work == WORK_W1) {
    w1_issue(s);
    return;
  }
  for (i = 0; i < s->depth && i < target; i++) get_issue(s);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  if (status != REDIS_OK) bench_die("connect: %s", ac->errstr);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  run_state *s = ac->data;
  if (status != REDIS_OK || !s->finished)
    bench_die("disconnected early: %s", ac->errstr);
}

int main(int argc, char **argv) {
  run_state s;
  uv_loop_t *loop = uv_default_loop();
  long warm;

  if (argc < 5) {
    fprintf(stderr,
            "usage: %s HOST PORT w1 OPS|w3 OPS DEPTH|w4 OPS|lat OPS DEPTH\n",
            argv[0]);
    return 2;
  }
  memset(&s, 0, sizeof s);
  bench_data_init(&data);
  s.ops = bench_count(argv[4], "OPS");
  s.depth = 1;
  if (strcmp(argv[3], "w1") == 0) {
    s.work = WORK_W1;
    s.ops += s.ops % 2; /* a SET and its GET are two operations */
    warm = 200;
  } else if (strcmp(argv[3], "w3") == 0) {
    s.work = WORK_W3;
    if (argc < 6) bench_die("w3 needs DEPTH");
    s.depth = bench_count(argv[5], "DEPTH");
    if (s.depth > BENCH_MAX_DEPTH) bench_die("DEPTH too large");
    warm = 10 * s.depth > 200 ? 10 * s.depth : 200;
  } else if (strcmp(argv[3], "lat") == 0) {
    s.work = WORK_LAT;
    if (argc < 6) bench_die("lat needs DEPTH");
    s.depth = bench_count(argv[5], "DEPTH");
    if (s.depth > BENCH_MAX_DEPTH) bench_die("DEPTH too large");
    warm = 10 * s.depth > 200 ? 10 * s.depth : 200;
    s.hist = calloc(LAT_BUCKETS, sizeof *s.hist);
    s.sent = calloc((size_t)s.depth, sizeof *s.sent);
    if (s.hist == NULL || s.sent == NULL) bench_die("out of memory");
  } else if (strcmp(argv[3], "w4") == 0) {
    s.work = WORK_W4;
    warm = 20;
  } else {
    bench_die("unknown workload '%s' (the async peer has no w2)", argv[3]);
    return 2;
  }

  s.ac = redisAsyncConnect(argv[1], (int)bench_count(argv[2], "PORT"));
  if (s.ac == NULL || s.ac->err)
    bench_die("connect: %s", s.ac ? s.ac->errstr : "out of memory");
  s.ac->data = &s;
  if (redisLibuvAttach(s.ac, loop) != REDIS_OK)
    bench_die("cannot attach to libuv");
  redisAsyncSetConnectCallback(s.ac, on_connect);
  redisAsyncSetDisconnectCallback(s.ac, on_disconnect);

  /* Commands issued before the connect completes are buffered by hiredis
   * and written once the socket is writable. */
  phase_start(&s, warm);
  uv_run(loop, UV_RUN_DEFAULT);
  if (!s.finished) bench_die("loop ended before the run finished");
  uv_loop_close(loop);
  free(s.hist);
  free(s.sent);
  free(data.big);
  return 0;
}
