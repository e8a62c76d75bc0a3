/* Unit tests of slot.c: CRC16, hash tags and key positions from key specs.
 *
 *   test_slot            runs every case and prints "N cases, F failed"
 *
 * Expected slots are the ones redis-server 7's CLUSTER KEYSLOT gives (the
 * integration specs check the same function against a live cluster).
 */
#include "slot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed, checks;

#define CHECK_INT(a, b)                                                       \
  do {                                                                        \
    long long a_ = (long long)(a), b_ = (long long)(b);                       \
    checks++;                                                                 \
    if (a_ != b_) {                                                           \
      fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,         \
              __LINE__, #a, a_, b_);                                          \
      failed++;                                                               \
    }                                                                         \
  } while (0)

/* A command line as an argument vector for slot_route. */
typedef struct argv_t {
  int argc;
  const char *argv[32];
} argv_t;

static const char *arg(void *ud, int i, size_t *n) {
  argv_t *a = (argv_t *)ud;
  if (i < 0 || i >= a->argc) {
    fprintf(stderr, "slot_route read argument %d of %d\n", i, a->argc);
    failed++;
    return NULL;
  }
  if (!a->argv[i])
    return NULL;
  *n = strlen(a->argv[i]);
  return a->argv[i];
}

static argv_t line(const char *s) {
  static char store[1024];
  argv_t a;
  char *p;
  a.argc = 0;
  strncpy(store, s, sizeof store - 1);
  store[sizeof store - 1] = 0;
  for (p = strtok(store, " "); p && a.argc < 32; p = strtok(NULL, " "))
    a.argv[a.argc++] = p;
  return a;
}

/* A command of one spec. */
static slot_cmd *cmd1(int bs, int index, const char *kw, int fk, int last,
                      int step, int limit) {
  slot_cmd *c = calloc(1, sizeof(slot_cmd) + sizeof(slot_spec));
  c->nspecs = 1;
  c->spec[0].bs_type = bs;
  c->spec[0].bs_index = index;
  if (kw) {
    c->spec[0].kwlen = strlen(kw);
    memcpy(c->spec[0].kw, kw, c->spec[0].kwlen);
  }
  c->spec[0].fk_type = fk;
  c->spec[0].fk_last = last;
  c->spec[0].fk_step = step;
  c->spec[0].fk_limit = limit;
  return c;
}

static int route(const slot_cmd *c, const char *s) {
  argv_t a = line(s);
  return slot_route(c, a.argc, arg, &a);
}

static void test_crc_and_tags(void) {
  CHECK_INT(slot_crc16("123456789", 9), 0x31c3);
  CHECK_INT(slot_crc16("", 0), 0);
  CHECK_INT(slot_of("foo", 3), 12182);
  CHECK_INT(slot_of("bar", 3), 5061);
  CHECK_INT(slot_of("{user1000}.following", 20),
            slot_of("{user1000}.followers", 20));
  CHECK_INT(slot_of("{user1000}.following", 20), slot_of("user1000", 8));
  /* an empty tag, or none closed: the whole key */
  CHECK_INT(slot_of("foo{}{bar}", 10),
            (int)(slot_crc16("foo{}{bar}", 10) & 16383));
  CHECK_INT(slot_of("foo{bar", 7), (int)(slot_crc16("foo{bar", 7) & 16383));
  /* the first '{' and the next '}' */
  CHECK_INT(slot_of("foo{{bar}}zap", 13), slot_of("{bar", 4));
  CHECK_INT(slot_of("foo{bar}{zap}", 13), slot_of("bar", 3));
  CHECK_INT(slot_of("a\0b", 3), (int)(slot_crc16("a\0b", 3) & 16383));
}

static void test_routes(void) {
  slot_cmd *get = cmd1(SLOT_BS_INDEX, 1, NULL, SLOT_FK_RANGE, 0, 1, 0);
  slot_cmd *mset = cmd1(SLOT_BS_INDEX, 1, NULL, SLOT_FK_RANGE, -1, 2, 0);
  slot_cmd *eval = cmd1(SLOT_BS_INDEX, 2, NULL, SLOT_FK_KEYNUM, 0, 1, 1);
  slot_cmd *xread = cmd1(SLOT_BS_KEYWORD, 1, "STREAMS", SLOT_FK_RANGE, -1,
                         1, 2);
  slot_cmd *migrate = cmd1(SLOT_BS_KEYWORD, -2, "KEYS", SLOT_FK_RANGE, -1,
                           1, 0);
  slot_cmd *unknown = cmd1(SLOT_BS_UNKNOWN, 0, NULL, SLOT_FK_UNKNOWN, 0, 1,
                           0);
  slot_cmd *none = calloc(1, sizeof(slot_cmd));
  int foo = slot_of("foo", 3);

  CHECK_INT(route(get, "GET foo"), foo);
  CHECK_INT(route(get, "GET"), SLOT_NONE); /* arity error: no key */
  CHECK_INT(route(none, "PING"), SLOT_NONE);
  CHECK_INT(route(mset, "MSET {a}1 x {a}2 y"), slot_of("a", 1));
  CHECK_INT(route(mset, "MSET {a}1 x {b}2 y"), SLOT_CROSS);
  CHECK_INT(route(mset, "MSET {a}1 {b}2"), slot_of("a", 1)); /* a value */
  CHECK_INT(route(eval, "EVAL s 1 foo arg"), foo);
  CHECK_INT(route(eval, "EVAL s 0 foo"), SLOT_NONE);
  CHECK_INT(route(eval, "EVAL s 2 {a}x {b}y"), SLOT_CROSS);
  CHECK_INT(route(eval, "EVAL s 2 {a}x {a}y"), slot_of("a", 1));
  CHECK_INT(route(eval, "EVAL s x foo"), SLOT_NONE);   /* bad numkeys */
  CHECK_INT(route(eval, "EVAL s -1 foo"), SLOT_NONE);
  CHECK_INT(route(eval, "EVAL s 2 foo"), foo);         /* keys that exist */
  CHECK_INT(route(eval, "EVAL s 9 foo"), SLOT_NONE); /* server errs */
  CHECK_INT(route(eval, "EVAL s"), SLOT_NONE);
  CHECK_INT(route(eval, "EVAL s 99999999999 foo"), SLOT_NONE);
  /* STREAMS k1 k2 id1 id2: half of what follows are keys */
  CHECK_INT(route(xread, "XREAD COUNT 1 streams {s}1 {s}2 0 0"),
            slot_of("s", 1));
  CHECK_INT(route(xread, "XREAD STREAMS {s}1 {t}2 0 0"), SLOT_CROSS);
  CHECK_INT(route(xread, "XREAD COUNT 1"), SLOT_NONE);
  CHECK_INT(route(xread, "XREAD STREAMS"), SLOT_NONE);
  /* backwards from argc-2 */
  CHECK_INT(route(migrate, "MIGRATE h p \"\" 0 5 KEYS foo"), foo);
  CHECK_INT(route(migrate, "MIGRATE h p foo 0 5"), SLOT_NONE);
  /* unknown positions: the first argument */
  CHECK_INT(route(unknown, "X foo bar"), foo);
  CHECK_INT(route(unknown, "X"), SLOT_NONE);
  /* not_key specs are skipped */
  get->spec[0].not_key = 1;
  CHECK_INT(route(get, "GET foo"), SLOT_NONE);
  free(get); free(mset); free(eval); free(xread); free(migrate);
  free(unknown); free(none);
}

/* Two specs, as LMOVE has (source, destination). */
static void test_two_specs(void) {
  slot_cmd *c = calloc(1, sizeof(slot_cmd) + 2 * sizeof(slot_spec));
  int i;
  c->nspecs = 2;
  for (i = 0; i < 2; i++) {
    c->spec[i].bs_type = SLOT_BS_INDEX;
    c->spec[i].bs_index = i + 1;
    c->spec[i].fk_type = SLOT_FK_RANGE;
    c->spec[i].fk_step = 1;
  }
  CHECK_INT(route(c, "LMOVE {l}a {l}b LEFT RIGHT"), slot_of("l", 1));
  CHECK_INT(route(c, "LMOVE {l}a {m}b LEFT RIGHT"), SLOT_CROSS);
  CHECK_INT(route(c, "LMOVE {l}a"), slot_of("l", 1));
  free(c);
}

int main(void) {
  test_crc_and_tags();
  test_routes();
  test_two_specs();
  printf("%d checks, %d failed\n", checks, failed);
  return failed ? 1 : 0;
}
