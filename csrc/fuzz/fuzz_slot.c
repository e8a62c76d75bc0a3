/* libFuzzer target for slot.c: key specs and arguments from the input.
 *
 * The first bytes describe up to four key specs (each 8 bytes: begin-search
 * type and index, keyword length, find-keys type, last, step, limit, flags);
 * the rest, split at '\n', is the command line (the keyword of a keyword
 * spec is taken from it too). slot_route must read only arguments
 * 0..argc-1 (the callback aborts otherwise) and return a slot, SLOT_NONE or
 * SLOT_CROSS; a slot it returns must be the slot of one of the arguments.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slot.h"

#define MAX_ARGS 64

typedef struct args {
  int argc;
  const char *p[MAX_ARGS];
  size_t n[MAX_ARGS];
} args;

static const char *arg(void *ud, int i, size_t *n) {
  args *a = (args *)ud;
  if (i < 0 || i >= a->argc)
    abort(); /* read outside the command */
  if (a->n[a->argc - 1 - i] == 7 && i % 5 == 3)
    return NULL; /* now and then an argument that is not a string */
  *n = a->n[i];
  return a->p[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  slot_cmd *cmd;
  args a;
  size_t off, start;
  int nspecs, i, slot;
  if (size < 1)
    return 0;
  nspecs = data[0] % 5;
  off = 1;
  if (size < off + (size_t)nspecs * 8)
    return 0;
  cmd = calloc(1, sizeof(slot_cmd) + 4 * sizeof(slot_spec));
  if (!cmd)
    return 0;
  cmd->nspecs = nspecs;
  for (i = 0; i < nspecs; i++) {
    const uint8_t *d = data + off + (size_t)i * 8;
    slot_spec *sp = &cmd->spec[i];
    sp->bs_type = d[0] % 3;
    sp->bs_index = (int8_t)d[1];
    sp->kwlen = d[2] % (SLOT_KEYWORD_MAX + 1);
    memset(sp->kw, 'k', sp->kwlen);
    sp->fk_type = d[3] % 3;
    sp->fk_last = (int8_t)d[4];
    sp->fk_step = 1 + d[5] % 4;
    sp->fk_limit = (int8_t)d[6];
    sp->not_key = d[7] & 1;
  }
  off += (size_t)nspecs * 8;
  a.argc = 0;
  start = off;
  for (; off <= size && a.argc < MAX_ARGS; off++) {
    if (off == size || data[off] == '\n') {
      a.p[a.argc] = (const char *)data + start;
      a.n[a.argc] = off - start;
      a.argc++;
      start = off + 1;
    }
  }
  if (a.argc == 0) {
    free(cmd);
    return 0;
  }
  slot = slot_route(cmd, a.argc, arg, &a);
  free(cmd);
  if (slot < SLOT_CROSS || slot >= SLOT_COUNT)
    abort();
  if (slot >= 0) {
    int found = 0;
    for (i = 0; i < a.argc && !found; i++)
      found = slot_of(a.p[i], a.n[i]) == slot;
    if (!found)
      abort();
  }
  /* the tag rule: a key and its tag agree */
  for (i = 0; i < a.argc; i++) {
    const char *o = memchr(a.p[i], '{', a.n[i]), *c;
    if (!o)
      continue;
    c = memchr(o + 1, '}', a.n[i] - (size_t)(o - a.p[i]) - 1);
    if (c && c > o + 1 &&
        slot_of(a.p[i], a.n[i]) != slot_of(o + 1, (size_t)(c - o - 1)))
      abort();
  }
  return 0;
}
