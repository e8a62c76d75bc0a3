/*
 * Shared by the two hiredis peers of the benchmark (hiredis_sync.c and
 * hiredis_async.c). It defines the data set every client reads, so that
 * bench.lua, the peers and the loader agree byte for byte, and the one
 * output line the driver (run.sh) parses.
 *
 * Data set (loaded once by `hiredis_sync HOST PORT load`):
 *   bench:k0 .. bench:k15   16-byte values "value-00-xxxxxxx" .. "-15-"
 *   bench:big               BENCH_BIG_LEN bytes, byte j = 33 + (j % 251) % 94
 * Sixteen distinct small values rather than one, so a client that hands a
 * reply to the wrong request (off by one in its FIFO) fails the check.
 * The big value has a prime period so a shifted or truncated copy fails too.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#define BENCH_NKEYS 16
#define BENCH_VAL_LEN 16
#define BENCH_BIG_LEN 102400
#define BENCH_MAX_DEPTH 100000

typedef struct bench_data {
  char keys[BENCH_NKEYS][16];
  size_t key_lens[BENCH_NKEYS];
  char vals[BENCH_NKEYS][BENCH_VAL_LEN + 1];
  char *big;
} bench_data;

static inline void bench_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench peer: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static inline void bench_data_init(bench_data *d) {
  int i;
  size_t j;
  for (i = 0; i < BENCH_NKEYS; i++) {
    d->key_lens[i] = (size_t)snprintf(d->keys[i], sizeof d->keys[i],
                                      "bench:k%d", i);
    snprintf(d->vals[i], sizeof d->vals[i], "value-%02d-xxxxxxx", i);
  }
  d->big = malloc(BENCH_BIG_LEN);
  if (d->big == NULL) bench_die("out of memory");
  for (j = 0; j < BENCH_BIG_LEN; j++)
    d->big[j] = (char)(33 + (j % 251) % 94);
}

/* Wall time from a monotonic clock: immune to NTP steps during a run. */
static inline double bench_wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The client's own CPU time, user + system, as the issue asks: what the
 * client costs the machine, kernel work for its socket calls included. */
static inline double bench_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* The system (kernel) part of bench_cpu(): how much of the client's cost
 * is its socket calls. */
static inline double bench_sys(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* The one line run.sh reads; bench.lua prints the same shape. */
static inline void bench_report(const char *label, long ops, double secs,
                                double cpu, double sys) {
  printf("%s ops=%ld secs=%.6f cpu=%.6f sys=%.6f\n", label, ops, secs, cpu,
         sys);
  fflush(stdout);
}

/* Parses a positive count; the driver passes them, a typo must not turn
 * into a silent zero-length measurement. */
static inline long bench_count(const char *s, const char *what) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v <= 0)
    bench_die("%s must be a positive integer, got '%s'", what, s);
  return v;
}

#endif
