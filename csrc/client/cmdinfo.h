/* cmdinfo: what the library knows about Redis commands, in one table
 * (cmdinfo.c). No Lua, no uv. conn, the pool rules and the Lua glue ask it;
 * reconnect and cluster routing will too.
 *
 * Names are compared ASCII case-insensitively. A command with subcommands
 * that matter (CLIENT REPLY, CLIENT SETNAME, ...) has CMD_SUBCOMMANDS set;
 * cmdinfo_sub looks the subcommand up.
 */
#ifndef LEVR_CMDINFO_H
#define LEVR_CMDINFO_H

#include <stddef.h>
#include <stdint.h>

enum cmdinfo_flags {
  CMD_READONLY = 1 << 0,    /* reads keys only (replicas may serve it) */
  CMD_BLOCKING = 1 << 1,    /* may wait at the server: see block_arg */
  CMD_PUBSUB = 1 << 2,      /* (un)subscribe family: its confirmations are
                               routed by count, never in a pipeline */
  CMD_SUBSCRIBE = 1 << 3,   /* enters pub/sub mode */
  CMD_SHARD = 1 << 4,       /* the shard-channel family (SSUBSCRIBE...) */
  CMD_SESSION = 1 << 5,     /* changes the session for good: the
                               connection is never pooled afterwards */
  CMD_HANDSHAKE = 1 << 6,   /* session-changing, except in the connect
                               handshake (AUTH, SELECT) */
  CMD_MULTI = 1 << 7,       /* MULTI */
  CMD_ENDTX = 1 << 8,       /* EXEC, DISCARD: end MULTI and WATCH */
  CMD_WATCH = 1 << 9,       /* WATCH */
  CMD_UNWATCH = 1 << 10,    /* UNWATCH */
  CMD_NOREPLY = 1 << 11,    /* breaks one reply per command (MONITOR, and
                               CLIENT REPLY OFF|SKIP): refused */
  CMD_SUBCOMMANDS = 1 << 12 /* look at the first argument: cmdinfo_sub */
};

/* Where a blocking command's timeout is. */
enum cmdinfo_block {
  BLOCK_NONE = 0,
  BLOCK_LAST,          /* the last argument, seconds (BLPOP ... timeout) */
  BLOCK_FIRST,         /* the first argument, seconds (BLMPOP timeout ...) */
  BLOCK_LAST_MS,       /* the last argument, milliseconds (WAIT n ms) */
  BLOCK_OPTION_MS      /* after a BLOCK option, milliseconds (XREAD) */
};

typedef struct cmdinfo {
  const char *name;     /* upper case */
  uint32_t flags;
  uint8_t block;        /* enum cmdinfo_block */
} cmdinfo;

/* The entry for name[0..n), or NULL for a command without one (most
 * commands: NULL means "nothing special"). */
const cmdinfo *cmdinfo_lookup(const char *name, size_t n);
/* Like cmdinfo_lookup, but only for names that change the session, block,
 * or belong to pub/sub (everything but CMD_READONLY alone): a first-letter
 * and length filter answers NULL for GET, SET, ... in a few instructions.
 * The hot path of every command asks this. */
const cmdinfo *cmdinfo_special(const char *name, size_t n);
/* The entry of a subcommand (parent has CMD_SUBCOMMANDS), or NULL. */
const cmdinfo *cmdinfo_sub(const cmdinfo *parent, const char *sub, size_t n);
/* Case-insensitive equality of p[0..n) and the upper-case literal upper. */
int cmdinfo_name_is(const char *p, size_t n, const char *upper);
/* Seconds from a blocking command's timeout argument v (already a number;
 * ok = 0 when it was not one): 0 for none (the server rejects what is not
 * a number >= 0), -1 for forever (0, or more than ~30 years). ms: the
 * argument is in milliseconds. */
double cmdinfo_block_seconds(double v, int ok, int ms);

#endif
