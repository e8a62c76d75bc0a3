/* slot: Redis Cluster key slots and key positions. No Lua, no uv.
 *
 * slot_of() is CRC16-XMODEM of a key (or of its hash tag, the part between
 * the first '{' and the next '}', when that part is not empty) mod 16384.
 *
 * A slot_cmd describes where a command's keys are, as the server's own
 * COMMAND reply states it in its key specifications (Redis 7): each spec
 * has a begin-search step (a fixed index, or a keyword searched from an
 * index forwards or backwards) and a find-keys step (a range up to a last
 * index, or a count read from an argument, "numkeys"). slot_route() walks
 * the specs over one command's arguments, as Redis's getKeysUsingKeySpecs
 * does with partial results allowed, and gives the one slot of all keys.
 *
 * Arguments are read through a callback so that the caller (the Lua glue)
 * needs no array per command: only the arguments a spec names are read.
 */
#ifndef LEVR_SLOT_H
#define LEVR_SLOT_H

#include <stddef.h>

#define SLOT_COUNT 16384
#define SLOT_NONE (-1)      /* the command has no keys: any master */
#define SLOT_CROSS (-2)     /* keys in different slots */
#define SLOT_KEYWORD_MAX 31 /* longer keywords make the spec unknown */

enum { SLOT_BS_UNKNOWN = 0, SLOT_BS_INDEX, SLOT_BS_KEYWORD };
enum { SLOT_FK_UNKNOWN = 0, SLOT_FK_RANGE, SLOT_FK_KEYNUM };

/* slot_cmd.flags */
#define SLOT_CMD_READONLY 1u  /* the server flags it readonly */
#define SLOT_CMD_SUBCMDS 2u   /* a container: look up "name|sub" first */
#define SLOT_CMD_FIRSTKEY 4u  /* one key, argument 1 (a shortcut for GET) */

typedef struct slot_spec {
  int bs_type;
  int bs_index;             /* INDEX: position; KEYWORD: startfrom */
  int not_key;              /* flagged not_key: not a key for routing */
  int fk_type;
  int fk_last;              /* RANGE: lastkey; KEYNUM: keynumidx */
  int fk_step;              /* keystep (>= 1) */
  int fk_limit;             /* RANGE: limit; KEYNUM: firstkey */
  size_t kwlen;
  char kw[SLOT_KEYWORD_MAX + 1];
} slot_spec;

typedef struct slot_cmd {
  unsigned flags;
  int nspecs;
  slot_spec spec[];          /* nspecs entries */
} slot_cmd;

/* Argument i (0 is the command name) of the command being routed, with
 * its length in *n, or NULL when it is not a string or number. */
typedef const char *(*slot_arg_fn)(void *ud, int i, size_t *n);

/* CRC16-XMODEM of len bytes. */
unsigned slot_crc16(const char *p, size_t len);
/* The cluster slot of a key (hash tags honoured). */
int slot_of(const char *key, size_t len);
/* The slot all of the command's keys map to, SLOT_NONE when it has none,
 * SLOT_CROSS when they map to several. argc counts the name. A spec whose
 * search is unknown routes by argument 1 (the usual first key) when no
 * spec found a key. Never reads outside 0..argc-1. */
int slot_route(const slot_cmd *cmd, int argc, slot_arg_fn arg, void *ud);

#endif
