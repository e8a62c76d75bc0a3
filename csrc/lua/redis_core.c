/* redis.core: the client as Lua sees it, on conn/pool and lev's tasks.
 *
 * The path of one command is in docs/ARCHITECTURE.md. In short: cmd()
 * encodes its arguments straight into the connection's output buffer
 * (conn_begin), queues a slot naming the running task (conn_commit), parks
 * the task and asks for one flush after the current batch of ready tasks
 * (want_flush). The reply is converted in the read callback, under a
 * protected call on a thread of our own (rctx.T), moved onto the parked
 * task's stack, and the task is queued to resume. No Lua code of the user
 * runs in libuv callbacks but finalizers, and those cannot change C state
 * half-way (see busy below); nothing is allocated per command but the Lua
 * values.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cluster_glue.h"
#include "cmdinfo.h"
#include "conn.h"
#include "lev.h"
#include "pool.h"
#include "reply.h"
#include "tls_opts.h"

#define EXPORT __attribute__((visibility("default")))
#define CLIENT_MT "redis.client"
#define READER_MT "redis.reader"
#define OUTBUF_MT "redis.outbuf"
/* read() backlog (replies nobody asked for: pub/sub messages, RESP3
 * pushes) that pauses reading the socket; reading resumes below half.
 * Nothing is dropped. */
#define QUEUE_PAUSE 10000
/* Method sugar closures kept in the shared method table. Redis has a few
 * hundred command names; past this, a new name gets a closure that is not
 * cached (it works, and is collected), so reading a million distinct
 * fields does not grow memory. */
#define SUGAR_MAX 1024

static const char rctx_key = 'r';
static const char clients_key = 'c';

typedef struct lclient lclient;

typedef struct rctx {
  const lev_api *api;
  lev_ctx *lctx;
  uv_loop_t *loop;
  lua_State *L;            /* the main thread (registry references) */
  lua_State *T;            /* our own thread: replies are converted on it
                              under lua_pcall, then moved to the task */
  pool *pool;
  size_t sugar;            /* sugar closures cached in the method table */
  /* While > 0, C state may be half-updated (a callback is running, a
   * reply is being converted): close() and __gc from finalizers are
   * recorded on `deferred` and done when it drops to 0. */
  int busy;
  int draining;
  /* Connections with the orphan callbacks (their data is this rctx): the
   * rctx outlives them (freed by the last one after rctx_gc). */
  size_t orphans;
  int dead;
  lclient *deferred;
  /* Connections that want a flush after this batch (want_flush). */
  conn **flushq;
  size_t nflush, capflush;
  int flush_armed;
  unsigned cache_hits;     /* cache hits since one last went round the
                              loop (CACHE_YIELD_EVERY) */
  resp_scratch scratch;    /* the read buffer all our connections share
                              (conn_share_reads); freed with the rctx */
} rctx;

static void rctx_free(rctx *rc) {
  resp_scratch_free(&rc->scratch);
  free(rc);
}

enum { PEND_NONE, PEND_CLOSE, PEND_KEEP, PEND_FREE };

/* A client's C state. The Lua side is a plain table (the client object);
 * the clients table (a weak-keyed registry table, upvalue 1 of every
 * method) maps it to a light userdata of this struct, or to false once the
 * table was finalized. This struct lives exactly as long as the table:
 * allocated in new_client, freed by the table's __gc (or after it, see
 * rctx.busy). While lc->c is set, the conn's data pointer is lc; a conn
 * the client lets go of gets the orphan callbacks (data: the rctx). */
struct lclient {
  conn *c;
  rctx *rc;
  int ready;               /* handshake done: AUTH/SELECT now mark dirty */
  int monitor;             /* MONITOR sent: only read() and close() */
  char *key;               /* pool key (any bytes) */
  size_t keylen;
  lev_task *connector;     /* task waiting in connect */
  int ud_idx;              /* the client's stack index in that task */
  lev_task *reader;        /* task waiting in read() */
  lev_task *closewaiter;   /* task waiting in core.wait_closed */
  int queue_ref;           /* read() backlog: table in the registry */
  lua_Integer qhead, qtail;
  int fallback_ref;        /* core.set_fallback's function, or LUA_NOREF */
  int pending;             /* PEND_*: a deferred close or free */
  lclient *next_deferred;
  char *lasterr;           /* why the last connection ended (heap) */
  const char *lastcat;
  /* Session facts kept across connections, for reconnect (issue 13). */
  lua_Integer db;          /* database of the last SELECT the server
                              accepted, or -1 (none since connect) */
  int sel_watch;           /* a pipeline with a SELECT may be pending */
  int subs_ref;            /* subscriptions by name: registry table, or
                              LUA_NOREF */
  int closed;              /* close() (or __close) was called */
  int push_on;             /* non-pub/sub pushes go to core.next_push */
  lev_task *pushwaiter;    /* task waiting in core.next_push */
  int push_ref;            /* pushes not yet taken: registry table */
  lua_Integer phead, ptail;
  /* redis.subscriber (lua/redis/subscriber.lua; core.sub_*): messages go
   * to the read() queue as message tables, bounded by sub_max. */
  lua_Integer sub_max;     /* 0: not a subscriber */
  int sub_hold;            /* subscribe commands in flight: keep reading */
};

static const conn_callbacks callbacks, orphan_callbacks;

/* Client-side cache (see its section below). CACHE_FILL_AUX marks a slot
 * whose reply ends a cache fill (aux of a SLOT_CMD without effect;
 * FX_SELECT's aux is a database, >= 0). */
#define CACHE_FILL_AUX (-2)
/* A hit returns without a loop turn; every this many hits one goes round
 * the loop (its task is queued behind the ready ones, after an I/O poll),
 * so that a loop of hits lets other tasks run and the connection read its
 * invalidations. */
#define CACHE_YIELD_EVERY 64
static void cache_reply(rctx *rc, conn *c, const conn_slot *s,
                        const resp_reply *r);

/* ---- helpers ---------------------------------------------------------- */

/* Every function of the module and every client method has two upvalues:
 * the clients table and the rctx. */
static rctx *up_rctx(lua_State *L) {
  return (rctx *)lua_touserdata(L, lua_upvalueindex(2));
}

/* The client at stack index idx, from the clients table (upvalue 1): its
 * state, or NULL for a table that was finalized (a finalizer that kept a
 * reference to it); raises for anything that is not a client. */
static lclient *check_client_at(lua_State *L, int idx) {
  void *p;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TLIGHTUSERDATA) {
    p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return (lclient *)p;
  }
  p = lua_type(L, -1) == LUA_TBOOLEAN ? (void *)L : NULL;
  lua_pop(L, 1);
  if (p)
    return NULL; /* finalized */
  luaL_typeerror(L, idx, CLIENT_MT);
  return NULL;
}

#define check_client(L) check_client_at((L), 1)

static int push_fail(lua_State *L, const char *msg, int err) {
  return lev_push_fail(L, msg, levr_category(err));
}

static void queue_release(lclient *lc) {
  if (lc->queue_ref != LUA_NOREF) {
    luaL_unref(lc->rc->L, LUA_REGISTRYINDEX, lc->queue_ref);
    lc->queue_ref = LUA_NOREF;
  }
  lc->qhead = lc->qtail = 0;
}

static size_t pool_max(void) {
  const char *v = getenv("REDIS_CLIENT_POOL_SIZE");
  char *end;
  long n;
  if (!v || !*v)
    return 20;
  n = strtol(v, &end, 10);
  if (*end || n < 0)
    return 20; /* not a non-negative integer: ignored */
  return (size_t)n;
}

/* ---- waking tasks without raising --------------------------------------
 * A task parked in a C function gets its results pushed onto its thread.
 * Pushing can raise (out of memory) and a raise there would escape the
 * libuv callback, so values are made on rc->T under lua_pcall and moved
 * (lua_xmove does not allocate). */

static int push_texts(lua_State *T) {
  int nil = lua_toboolean(T, 1), n = 0;
  const char *a = (const char *)lua_touserdata(T, 2);
  const char *b = (const char *)lua_touserdata(T, 3);
  lua_settop(T, 0);
  if (nil)
    lua_pushnil(T), n++;
  lua_pushstring(T, a), n++;
  lua_pushstring(T, b), n++;
  return n;
}

/* Wakes t with [nil,] msg, cat (or with nothing if even that fails). */
static void wake_texts(rctx *rc, lev_task *t, int nil, const char *msg,
                       const char *cat) {
  lua_State *T = rc->T, *co = rc->api->thread(t);
  int n = 2 + (nil != 0), base = lua_gettop(T);
  lua_pushcfunction(T, push_texts);
  lua_pushboolean(T, nil);
  lua_pushlightuserdata(T, (void *)msg);
  lua_pushlightuserdata(T, (void *)cat);
  if (lua_pcall(T, 3, n, 0) == LUA_OK && lua_checkstack(co, n)) {
    lua_xmove(T, co, n);
    rc->api->wake(t, n);
  } else {
    lua_settop(T, base);
    rc->api->wake(t, 0);
  }
}

static void wake_reader(lclient *lc, const char *msg, const char *cat) {
  lev_task *t = lc->reader;
  if (!t)
    return;
  lc->reader = NULL;
  wake_texts(lc->rc, t, 1, msg, cat);
}

/* Wakes a task parked in core.wait_closed with text, category, and keeps
 * them for a later wait_closed. */
static void wake_closewaiter(lclient *lc, const char *msg, const char *cat) {
  lev_task *t = lc->closewaiter;
  text_set(&lc->lasterr, 128, "%s", msg);
  lc->lastcat = cat;
  if (!t)
    return;
  lc->closewaiter = NULL;
  wake_texts(lc->rc, t, 0, msg, cat);
}

/* ---- busy: finalizers wait for C state to be whole ---------------------- */

static void client_release_now(lclient *lc, int keep);
static void client_free_now(lclient *lc);

static void busy_enter(rctx *rc) { rc->busy++; }

static void busy_exit(rctx *rc) {
  if (--rc->busy > 0 || rc->draining)
    return;
  rc->draining = 1;
  while (rc->deferred) {
    lclient *lc = rc->deferred;
    int what = lc->pending;
    rc->deferred = lc->next_deferred;
    lc->next_deferred = NULL;
    lc->pending = PEND_NONE;
    if (what == PEND_FREE)
      client_free_now(lc);
    else
      client_release_now(lc, what == PEND_KEEP);
  }
  rc->draining = 0;
}

static void defer_release(lclient *lc, int what) {
  if (lc->pending == PEND_NONE) {
    lc->next_deferred = lc->rc->deferred;
    lc->rc->deferred = lc;
  }
  if (what > lc->pending)
    lc->pending = what;
}

/* ---- flushes: once per batch -------------------------------------------- */

static void flush_all(void *data) {
  rctx *rc = (rctx *)data;
  size_t i;
  busy_enter(rc);
  /* A flush can fail a connection, whose callbacks run; none commits. */
  for (i = 0; i < rc->nflush; i++)
    if (rc->flushq[i])
      conn_flush(rc->flushq[i]);
  rc->nflush = 0;
  busy_exit(rc);
}

static void want_flush(rctx *rc, conn *c) {
  if (rc->nflush && rc->flushq[rc->nflush - 1] == c)
    return; /* the same connection again (many tasks, one client) */
  if (rc->nflush == rc->capflush) {
    size_t cap = rc->capflush ? rc->capflush * 2 : 16;
    conn **q = (conn **)realloc(rc->flushq, cap * sizeof(*q));
    if (!q) {
      conn_flush(c); /* cannot queue: flush now, correctness first */
      return;
    }
    rc->flushq = q;
    rc->capflush = cap;
  }
  rc->flushq[rc->nflush++] = c;
  rc->api->defer(rc->lctx, flush_all, rc, &rc->flush_armed);
}

static void unflush(rctx *rc, conn *c) {
  size_t i;
  for (i = 0; i < rc->nflush; i++)
    if (rc->flushq[i] == c)
      rc->flushq[i] = NULL;
}

/* ---- conn callbacks --------------------------------------------------- */

static void orphan(rctx *rc, conn *c) {
  conn_set_owner(c, &orphan_callbacks, rc);
  rc->orphans++;
}

/* Lets go of the client's connection: it gets the orphan callbacks. */
static conn *detach(lclient *lc) {
  conn *c = lc->c;
  lc->c = NULL;
  if (c)
    orphan(lc->rc, c);
  return c;
}

static void cb_connect(conn *c, int status, const char *msg) {
  lclient *lc = (lclient *)conn_data(c);
  rctx *rc = lc->rc;
  lev_task *t = lc->connector;
  lc->connector = NULL;
  if (!t)
    return;
  busy_enter(rc);
  if (status != 0) {
    detach(lc); /* conn.c closes it */
    wake_texts(rc, t, 1, msg, levr_category(status));
  } else {
    lua_pushvalue(rc->api->thread(t), lc->ud_idx);
    rc->api->wake(t, 1);
  }
  busy_exit(rc);
}

/* ---- converting replies without raising ---------------------------------
 * Converting a reply can raise: out of memory, or a value Lua cannot hold
 * (a RESP3 map with a NaN key). A raise inside a libuv callback would
 * escape every task's pcall, so replies are converted under lua_pcall on
 * rc->T and moved to the task. Small scalar replies (the common case: one
 * string, number or status of at most SMALL_REPLY bytes) need one small
 * allocation; they are converted straight onto the task's thread, which
 * saves the protected call on the hot path. Such an allocation failing
 * after Lua's emergency collection is the host running out of memory, as
 * anywhere else in a Lua program. */
#define SMALL_REPLY 4096

static int small_reply(const resp_reply *r) {
  const resp_node *n = r->nodes;
  switch (n->type) {
  case RESP_BULK: case RESP_SIMPLE: case RESP_ERROR: case RESP_BLOB_ERROR:
  case RESP_VERBATIM: case RESP_BIGNUM:
    return n->len <= SMALL_REPLY;
  case RESP_INTEGER: case RESP_DOUBLE: case RESP_BOOLEAN: case RESP_NULL:
    return 1;
  default:
    return 0;
  }
}

enum { CONV_RESULT, CONV_ENTRY, CONV_TAGGED, CONV_QUEUE };

/* conv(reply, mode[, queue_ref, index]): the reply's Lua values on T. */
static int conv_fn(lua_State *T) {
  const resp_reply *r = (const resp_reply *)lua_touserdata(T, 1);
  int mode = (int)lua_tointeger(T, 2);
  switch (mode) {
  case CONV_RESULT:
    lua_settop(T, 0);
    return reply_push_result(T, r);
  case CONV_ENTRY:
    lua_settop(T, 0);
    reply_push_entry(T, r);
    return 1;
  case CONV_TAGGED:
    lua_settop(T, 0);
    reply_push_tagged(T, r);
    return 1;
  default: { /* CONV_QUEUE: append to the read() queue; its ref back */
    lua_Integer ref = lua_tointeger(T, 3);
    if (ref == LUA_NOREF) {
      lua_newtable(T);
      ref = luaL_ref(T, LUA_REGISTRYINDEX);
      if (ref == LUA_REFNIL || ref == LUA_NOREF)
        return luaL_error(T, "out of memory");
    }
    lua_rawgeti(T, LUA_REGISTRYINDEX, ref);
    reply_push_tagged(T, r);
    lua_rawseti(T, -2, lua_tointeger(T, 4));
    lua_pushinteger(T, ref);
    return 1;
  }
  }
}

/* Runs conv_fn; 0 and *n values on top of T, or a negative code and the
 * reason in text. */
static int convert(rctx *rc, const resp_reply *r, int mode, lua_Integer ref,
                   lua_Integer idx, int *n, char *text, size_t cap) {
  lua_State *T = rc->T;
  int base = lua_gettop(T), st;
  lua_pushcfunction(T, conv_fn);
  lua_pushlightuserdata(T, (void *)r);
  lua_pushinteger(T, mode);
  lua_pushinteger(T, ref);
  lua_pushinteger(T, idx);
  st = lua_pcall(T, 4, LUA_MULTRET, 0);
  if (st == LUA_OK) {
    *n = lua_gettop(T) - base;
    return 0;
  }
  snprintf(text, cap, "reply cannot be converted: %s",
           lua_type(T, -1) == LUA_TSTRING ? lua_tostring(T, -1) : "error");
  lua_settop(T, base);
  return st == LUA_ERRMEM ? LEVR_ENOMEM : LEVR_EPROTO;
}

/* ---- session facts for reconnect ------------------------------------- */

enum { PS_OTHER, PS_CONFIRM, PS_MESSAGE };

/* What a reply is to pub/sub (as conn.c routes it): a confirmation is an
 * array or push named after its (un)subscribe command. */
static int pubsub_kind(const resp_reply *r) {
  const resp_node *n = r->nodes, *k;
  const cmdinfo *ci;
  const char *p;
  if ((n->type != RESP_ARRAY && n->type != RESP_PUSH) || n->len < 1)
    return PS_OTHER;
  k = &r->nodes[1];
  if (k->type != RESP_BULK && k->type != RESP_SIMPLE)
    return PS_OTHER;
  p = r->base + k->off;
  if (cmdinfo_name_is(p, (size_t)k->len, "MESSAGE") ||
      cmdinfo_name_is(p, (size_t)k->len, "PMESSAGE") ||
      cmdinfo_name_is(p, (size_t)k->len, "SMESSAGE"))
    return PS_MESSAGE;
  ci = cmdinfo_special(p, (size_t)k->len);
  return ci && (ci->flags & CMD_PUBSUB) ? PS_CONFIRM : PS_OTHER;
}

static int track_fn(lua_State *T) {
  const resp_reply *r = (const resp_reply *)lua_touserdata(T, 1);
  lclient *lc = (lclient *)lua_touserdata(T, 2);
  const resp_node *k = &r->nodes[1], *name = &r->nodes[2];
  const cmdinfo *ci = cmdinfo_special(r->base + k->off, (size_t)k->len);
  int family, add;
  if (!ci || r->nodes->len < 2 || (name->type != RESP_BULK &&
                                   name->type != RESP_SIMPLE))
    return 0; /* an unsubscribe with nothing subscribed names nothing */
  add = (ci->flags & CMD_SUBSCRIBE) != 0;
  /* (UN)SUBSCRIBE: channels; P(UN)SUBSCRIBE: patterns; S(UN)SUBSCRIBE:
   * shard channels. */
  family = ci->flags & CMD_SHARD ? 3 : ci->name[0] == 'P' ? 2 : 1;
  if (lc->subs_ref == LUA_NOREF) {
    lua_createtable(T, 3, 0);
    lua_newtable(T);
    lua_rawseti(T, -2, 1);
    lua_newtable(T);
    lua_rawseti(T, -2, 2);
    lua_newtable(T);
    lua_rawseti(T, -2, 3);
    lc->subs_ref = luaL_ref(T, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(T, LUA_REGISTRYINDEX, lc->subs_ref);
  lua_rawgeti(T, -1, family);
  lua_pushlstring(T, r->base + name->off, (size_t)name->len);
  if (add)
    lua_pushboolean(T, 1);
  else
    lua_pushnil(T);
  lua_rawset(T, -3);
  return 0;
}

/* A confirmation adds or removes its name in the client's subscriptions:
 * subs_ref is { [1] = channels, [2] = patterns, [3] = shard channels },
 * each a set. Under lua_pcall: out of memory loses the name, not the
 * process. */
static void track_subscription(lclient *lc, const resp_reply *r) {
  lua_State *T = lc->rc->T;
  int base = lua_gettop(T);
  lua_pushcfunction(T, track_fn);
  lua_pushlightuserdata(T, (void *)r);
  lua_pushlightuserdata(T, lc);
  lua_pcall(T, 2, 0, 0);
  lua_settop(T, base);
}

/* A pipeline entry that was a SELECT the server accepted: the database,
 * read from the pipeline's own command table (index 2 of the parked
 * pipeline call). */
static void track_pipeline_select(lclient *lc, lua_State *co,
                                  const conn_slot *s, const resp_reply *r) {
  size_t k;
  const char *p;
  lua_Integer db;
  int isnum = 0;
  if (r->nodes->type != RESP_SIMPLE || !lua_checkstack(co, 3))
    return;
  if (lua_rawgeti(co, 2, (lua_Integer)s->received + 1) == LUA_TTABLE &&
      lua_rawgeti(co, -1, 1) == LUA_TSTRING) {
    p = lua_tolstring(co, -1, &k);
    if (cmdinfo_name_is(p, k, "SELECT")) {
      lua_rawgeti(co, -2, 2);
      db = lua_tointegerx(co, -1, &isnum);
      if (isnum && db >= 0)
        lc->db = db;
      lua_pop(co, 1);
    }
    lua_pop(co, 1);
  }
  lua_pop(co, 1);
}

static void wake_pushwaiter(lclient *lc) {
  lev_task *t = lc->pushwaiter;
  if (!t)
    return;
  lc->pushwaiter = NULL;
  lc->rc->api->wake(t, 0); /* next_push's nothing: closed */
}

/* Pops the oldest queued push onto L, tagged as read() gives it
 * ({ type = "push", value = ... }), or returns 0. Allocates nothing: it
 * runs in a callback too. */
static int pop_push(lclient *lc, lua_State *L) {
  if (lc->ptail <= lc->phead || !lua_checkstack(L, 3))
    return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->push_ref);
  lua_rawgeti(L, -1, ++lc->phead);
  lua_pushnil(L);
  lua_rawseti(L, -3, lc->phead);
  lua_replace(L, -2);
  if (lc->phead == lc->ptail)
    lc->phead = lc->ptail = 0;
  return 1;
}

/* A push that is not pub/sub traffic, with push handlers registered:
 * queued for core.next_push (the socket pauses when QUEUE_PAUSE wait, as
 * for read()), and the waiting task woken with it. */
static void deliver_push(lclient *lc, conn *c, const resp_reply *r) {
  rctx *rc = lc->rc;
  char text[200];
  int n;
  if (convert(rc, r, CONV_QUEUE, lc->push_ref, lc->ptail + 1, &n, text,
              sizeof(text)) == 0) {
    lc->push_ref = (int)lua_tointeger(rc->T, -1);
    lua_pop(rc->T, n);
    lc->ptail++;
  }
  if (lc->pushwaiter) {
    lev_task *t = lc->pushwaiter;
    if (pop_push(lc, rc->api->thread(t))) {
      lc->pushwaiter = NULL;
      rc->api->wake(t, 1);
    }
  }
  if (lc->ptail - lc->phead >= QUEUE_PAUSE)
    conn_pause(c, 1);
}

/* ---- subscriber: the per-message path (core.sub_*) -------------------
 * A subscriber's messages skip read()'s tagged form: each becomes one
 * table { kind, channel, pattern (pmessage), payload } as it is parsed,
 * queued in the read() queue (or handed to the task parked in
 * core.sub_next). Reading pauses at sub_max queued messages, except while
 * a subscribe command waits for its confirmation (sub_hold): that
 * confirmation is behind the messages Redis has already queued, which
 * Redis itself bounds (client-output-buffer-limit pubsub). */

static int sub_str(const resp_node *n) {
  return n->type == RESP_BULK || n->type == RESP_SIMPLE;
}

/* What a reply is to a subscriber: a message of three elements
 * ("message", "smessage"), one of four ("pmessage"), or NULL: anything
 * else, for pubsub_kind to sort out. Redis writes the kinds in lower
 * case; exact compares keep this cheap. */
static const char *sub_kind(const resp_reply *r) {
  const resp_node *n = r->nodes;
  const char *p;
  if ((n->type != RESP_ARRAY && n->type != RESP_PUSH) || n->len < 3 ||
      n->len > 4 || !sub_str(&n[1]) || !sub_str(&n[2]) || !sub_str(&n[3]) ||
      (n->len == 4 && !sub_str(&n[4])))
    return NULL;
  p = r->base + n[1].off;
  if (n->len == 3 && n[1].len == 7 && memcmp(p, "message", 7) == 0)
    return "message";
  if (n->len == 3 && n[1].len == 8 && memcmp(p, "smessage", 8) == 0)
    return "smessage";
  if (n->len == 4 && n[1].len == 8 && memcmp(p, "pmessage", 8) == 0)
    return "pmessage";
  return NULL;
}

/* Pushes a channel name. The queue table (at q) keeps the last one at
 * index 0: a subscriber mostly hears a few channels, and reusing the
 * string skips hashing and interning it per message. */
static void sub_push_channel(lua_State *T, int q, const char *p, size_t n) {
  size_t k;
  const char *s;
  if (lua_rawgeti(T, q, 0) == LUA_TSTRING) {
    s = lua_tolstring(T, -1, &k);
    if (k == n && memcmp(s, p, n) == 0)
      return;
  }
  lua_pop(T, 1);
  lua_pushlstring(T, p, n);
  if (n <= 64) {
    lua_pushvalue(T, -1);
    lua_rawseti(T, q, 0);
  }
}

/* The message table for kind (sub_kind's) on top of T; the read() queue
 * is made if there is none. */
static void sub_build(lua_State *T, lclient *lc, const resp_reply *r,
                      const char *kind) {
  const resp_node *n = r->nodes;
  int q;
  if (lc->queue_ref == LUA_NOREF) {
    lua_newtable(T);
    lc->queue_ref = luaL_ref(T, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(T, LUA_REGISTRYINDEX, lc->queue_ref);
  q = lua_gettop(T);
  lua_createtable(T, 0, 4);
  lua_pushstring(T, kind); /* a literal: Lua's string cache finds it */
  lua_setfield(T, -2, "kind");
  if (n->len == 4) {
    lua_pushlstring(T, r->base + n[2].off, (size_t)n[2].len);
    lua_setfield(T, -2, "pattern");
    n++;
  }
  sub_push_channel(T, q, r->base + n[2].off, (size_t)n[2].len);
  lua_setfield(T, -2, "channel");
  lua_pushlstring(T, r->base + n[3].off, (size_t)n[3].len);
  lua_setfield(T, -2, "payload");
  lua_remove(T, q);
}

/* sub_build under lua_pcall: (lc, r, kind, index) -> the message, or
 * (index > 0) nothing, the message stored at queue[index]. */
static int sub_build_fn(lua_State *T) {
  lclient *lc = (lclient *)lua_touserdata(T, 1);
  const resp_reply *r = (const resp_reply *)lua_touserdata(T, 2);
  const char *kind = (const char *)lua_touserdata(T, 3);
  lua_Integer idx = lua_tointeger(T, 4);
  lua_settop(T, 0);
  sub_build(T, lc, r, kind);
  if (idx == 0)
    return 1;
  lua_rawgeti(T, LUA_REGISTRYINDEX, lc->queue_ref);
  lua_insert(T, -2);
  lua_rawseti(T, -2, idx);
  return 0;
}

/* A reply for nobody on a subscriber: 1 when it was taken care of.
 * Messages go to the parked task or the queue; confirmations the server
 * sends by itself (unsubscribing a shard channel whose slot moved, say)
 * update the subscriptions; anything else is dropped, but for pushes
 * that push handlers take. The message is made under lua_pcall on rc->T
 * (docs/CONVENTIONS.md), and dropped if it cannot be: there is nobody to
 * tell. */
static int sub_deliver(lclient *lc, conn *c, const resp_reply *r) {
  const char *kind = sub_kind(r);
  rctx *rc = lc->rc;
  lua_State *T = rc->T, *co = NULL;
  int base = lua_gettop(T);
  if (!kind) {
    int k = pubsub_kind(r);
    if (k == PS_CONFIRM)
      track_subscription(lc, r);
    return k == PS_OTHER && lc->push_on && r->nodes->type == RESP_PUSH ? 0
                                                                       : 1;
  }
  if (lc->reader) {
    co = rc->api->thread(lc->reader);
    if (!lua_checkstack(co, 1))
      co = NULL;
  }
  lua_pushcfunction(T, sub_build_fn);
  lua_pushlightuserdata(T, lc);
  lua_pushlightuserdata(T, (void *)r);
  lua_pushlightuserdata(T, (void *)kind);
  lua_pushinteger(T, co ? 0 : lc->qtail + 1);
  if (lua_pcall(T, 4, co ? 1 : 0, 0) != LUA_OK) {
    lua_settop(T, base);
    return 1;
  }
  if (co) {
    lev_task *t = lc->reader;
    lc->reader = NULL;
    lua_xmove(T, co, 1);
    rc->api->wake(t, 1);
    return 1;
  }
  lc->qtail++;
  if (lc->qtail - lc->qhead >= lc->sub_max && !lc->sub_hold)
    conn_pause(c, 1);
  return 1;
}

/* A reply nobody asked for: to the reader, or to the read() queue. */
static void unsolicited(lclient *lc, conn *c, const resp_reply *r) {
  rctx *rc = lc->rc;
  char text[200];
  int n, err, kind;
  if (lc->sub_max && sub_deliver(lc, c, r))
    return;
  kind = pubsub_kind(r);
  if (kind == PS_CONFIRM) {
    track_subscription(lc, r);
  } else if (kind == PS_OTHER && lc->push_on &&
             r->nodes->type == RESP_PUSH) {
    deliver_push(lc, c, r);
    return;
  }
  if (lc->reader) {
    lev_task *t = lc->reader;
    lua_State *co = rc->api->thread(t);
    lc->reader = NULL;
    conn_read_wait(c, 0);
    err = convert(rc, r, CONV_TAGGED, 0, 0, &n, text, sizeof(text));
    if (err == 0 && !lua_checkstack(co, 1)) {
      lua_pop(rc->T, n);
      err = LEVR_ENOMEM;
      snprintf(text, sizeof(text), "reply cannot be converted: stack "
               "overflow");
    }
    if (err) {
      wake_texts(rc, t, 1, text, levr_category(err));
      return;
    }
    lua_xmove(rc->T, co, 1);
    rc->api->wake(t, 1);
    return;
  }
  /* A message that cannot be converted is dropped: there is nobody to
   * tell. */
  if (convert(rc, r, CONV_QUEUE, lc->queue_ref, lc->qtail + 1, &n, text,
              sizeof(text)) == 0) {
    lc->queue_ref = (int)lua_tointeger(rc->T, -1);
    lua_pop(rc->T, n);
    lc->qtail++;
  }
  if (lc->qtail - lc->qhead >= QUEUE_PAUSE)
    conn_pause(c, 1);
}

static void reply_failed(rctx *rc, conn *c, const conn_slot *s, int err,
                         const char *text) {
  if (s->remaining > 0)
    conn_forget(c, s->waiter); /* the rest of its pipeline is dropped */
  wake_texts(rc, (lev_task *)s->waiter, 1, text, levr_category(err));
}

static void cb_reply(conn *c, const conn_slot *s, const resp_reply *r) {
  lclient *lc = (lclient *)conn_data(c);
  rctx *rc = lc->rc;
  lev_task *t;
  lua_State *co;
  char text[200];
  int n, err;
  busy_enter(rc);
  if (!s) {
    unsolicited(lc, c, r);
    goto out;
  }
  if (s->kind == SLOT_CMD &&
      (s->aux == CACHE_FILL_AUX || s->effect == FX_SELECT))
    cache_reply(rc, c, s, r); /* also for a forgotten waiter */
  if (s->kind == SLOT_CMD) {
    /* What the session became (for reconnect), also when the waiter was
     * forgotten: the server did it all the same. */
    if (s->effect == FX_SELECT && r->nodes->type == RESP_SIMPLE)
      lc->db = s->aux;
    else if (s->subscribe && pubsub_kind(r) == PS_CONFIRM)
      track_subscription(lc, r);
  }
  t = (lev_task *)s->waiter;
  if (!t)
    goto out; /* forgotten: the reply is dropped, the FIFO stays in step */
  co = rc->api->thread(t);
  if (s->kind == SLOT_CMD) {
    if (small_reply(r) && lua_checkstack(co, 3)) {
      n = reply_push_result(co, r);
    } else {
      err = convert(rc, r, CONV_RESULT, 0, 0, &n, text, sizeof(text));
      if (err == 0 && !lua_checkstack(co, n)) {
        lua_pop(rc->T, n);
        err = LEVR_ENOMEM;
        snprintf(text, sizeof(text), "reply cannot be converted: stack "
                 "overflow");
      }
      if (err) {
        reply_failed(rc, c, s, err, text);
        goto out;
      }
      lua_xmove(rc->T, co, n);
    }
    rc->api->wake(t, n);
    goto out;
  }
  /* A pipeline entry goes into the results table at s->aux, made with
   * room for every entry (rawseti there does not allocate). */
  if (!lua_checkstack(co, 3)) {
    reply_failed(rc, c, s, LEVR_ENOMEM, "reply cannot be converted: "
                 "stack overflow");
    goto out;
  }
  if (lc->sel_watch) {
    track_pipeline_select(lc, co, s, r);
    if (s->remaining == 0 && conn_pending(c) == 0)
      lc->sel_watch = 0; /* no pipeline with a SELECT is left */
  }
  if (small_reply(r)) {
    reply_push_entry(co, r);
  } else {
    err = convert(rc, r, CONV_ENTRY, 0, 0, &n, text, sizeof(text));
    if (err) {
      reply_failed(rc, c, s, err, text);
      goto out;
    }
    lua_xmove(rc->T, co, 1);
  }
  lua_rawseti(co, s->aux, (lua_Integer)s->received + 1);
  if (s->remaining == 0) {
    lua_pushvalue(co, s->aux);
    rc->api->wake(t, 1);
  }
out:
  busy_exit(rc);
}

static void cb_fail(conn *c, const conn_slot *s, int err, const char *msg) {
  lclient *lc = (lclient *)conn_data(c);
  rctx *rc = lc->rc;
  busy_enter(rc);
  if (!s) /* read() timed out; the connection stays usable */
    wake_reader(lc, msg, levr_category(err));
  else if (s->waiter)
    wake_texts(rc, (lev_task *)s->waiter, 1, msg, levr_category(err));
  busy_exit(rc);
}

static void cb_close(conn *c) {
  lclient *lc = (lclient *)conn_data(c);
  rctx *rc = lc->rc;
  const char *msg, *cat;
  busy_enter(rc);
  unflush(rc, c);
  lc->c = NULL;
  msg = conn_error(c)[0] ? conn_error(c) : "closed";
  cat = conn_error(c)[0] ? levr_category(conn_errcode(c)) : "closed";
  wake_reader(lc, msg, cat);
  wake_closewaiter(lc, msg, cat);
  busy_exit(rc);
}

static void cb_want_flush(conn *c) {
  want_flush(((lclient *)conn_data(c))->rc, c);
}

static const conn_callbacks callbacks = {
  cb_connect, cb_reply, cb_fail, cb_close, cb_want_flush
};

/* A connection no client holds (closing, or failed while connecting):
 * pending commands still fail to their tasks. */
static void orphan_connect(conn *c, int status, const char *msg) {
  (void)c, (void)status, (void)msg;
}
static void orphan_reply(conn *c, const conn_slot *s, const resp_reply *r) {
  (void)c, (void)s, (void)r;
}
static void orphan_fail(conn *c, const conn_slot *s, int err,
                        const char *msg) {
  rctx *rc = (rctx *)conn_data(c);
  if (!s || !s->waiter)
    return;
  busy_enter(rc);
  wake_texts(rc, (lev_task *)s->waiter, 1, msg, levr_category(err));
  busy_exit(rc);
}
static void orphan_close(conn *c) {
  rctx *rc = (rctx *)conn_data(c);
  rc->orphans--;
  if (rc->dead) {
    if (rc->orphans == 0)
      rctx_free(rc);
    return;
  }
  unflush(rc, c);
}

static const conn_callbacks orphan_callbacks = {
  orphan_connect, orphan_reply, orphan_fail, orphan_close, NULL
};

/* ---- encoding --------------------------------------------------------- */

static int encode_arg(lua_State *L, buf *b, int idx) {
  size_t n;
  const char *p;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    p = lua_tolstring(L, idx, &n);
    return resp_encode_bulk(b, p, n);
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      return resp_encode_bulk_int(b, (int64_t)lua_tointeger(L, idx));
    return resp_encode_bulk_double(b, (double)lua_tonumber(L, idx));
  default:
    return 1;
  }
}

/* ASCII only: command names are ASCII, and the C library's toupper is a
 * locale lookup per character. */
static int upper_ascii(int c) { return c >= 'a' && c <= 'z' ? c - 32 : c; }

/* Where a command's arguments are: on the stack (cmd: indexes first..) or
 * in a table (pipeline: entries 2.. of the table at tbl). */
typedef struct argsrc {
  int first;   /* stack index of argument 1, or 0 */
  int tbl;     /* stack index of the command table, or 0 */
  int n;       /* arguments after the name */
} argsrc;

/* Pushes argument i (1-based, after the name); returns its type. */
static int push_arg(lua_State *L, const argsrc *a, int i) {
  if (i < 1 || i > a->n) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  if (a->tbl)
    return lua_rawgeti(L, a->tbl, i + 1);
  lua_pushvalue(L, a->first + i - 1);
  return lua_type(L, -1);
}

static double arg_seconds(lua_State *L, const argsrc *a, int i, int ms) {
  int ok = 0;
  double v;
  push_arg(L, a, i);
  v = (double)lua_tonumberx(L, -1, &ok);
  lua_pop(L, 1);
  return cmdinfo_block_seconds(v, ok, ms);
}

/* Is argument i a string equal (case-insensitively) to upper? */
static int arg_is(lua_State *L, const argsrc *a, int i, const char *upper) {
  size_t k;
  int r = 0;
  if (push_arg(L, a, i) == LUA_TSTRING) {
    const char *p = lua_tolstring(L, -1, &k);
    r = cmdinfo_name_is(p, k, upper);
  }
  lua_pop(L, 1);
  return r;
}

enum { CLASS_OK, CLASS_NOREPLY, CLASS_MONITOR };

/* What a command the table knows (ci) does: its blocking time, pub/sub
 * routing, session marks and effects, into cmd. Refuses what would break
 * one reply per command. */
static int classify(lclient *lc, const cmdinfo *ci, conn_cmd *cmd,
                    lua_State *L, const argsrc *a) {
  uint32_t f = ci->flags;
  int i;
  if (f & CMD_SUBCOMMANDS) {
    size_t k;
    const cmdinfo *sub = NULL;
    if (push_arg(L, a, 1) == LUA_TSTRING) {
      const char *p = lua_tolstring(L, -1, &k);
      sub = cmdinfo_sub(ci, p, k);
    }
    lua_pop(L, 1);
    if (!sub)
      return CLASS_OK;
    f = sub->flags;
    if ((f & CMD_NOREPLY) && arg_is(L, a, 2, "ON"))
      f &= ~(uint32_t)CMD_NOREPLY; /* CLIENT REPLY ON */
    if (f & CMD_NOREPLY)
      return CLASS_NOREPLY;
  } else if (f & CMD_NOREPLY) {
    return CLASS_MONITOR;
  }
  if (f & CMD_BLOCKING) {
    switch (ci->block) {
    case BLOCK_LAST: cmd->block = arg_seconds(L, a, a->n, 0); break;
    case BLOCK_FIRST: cmd->block = arg_seconds(L, a, 1, 0); break;
    case BLOCK_LAST_MS: cmd->block = arg_seconds(L, a, a->n, 1); break;
    case BLOCK_OPTION_MS:
      for (i = 1; i < a->n; i++)
        if (arg_is(L, a, i, "BLOCK")) {
          cmd->block = arg_seconds(L, a, i + 1, 1);
          break;
        }
      break;
    }
  }
  if (f & CMD_PUBSUB) {
    cmd->subscribe = 1;
    cmd->sub_count = (uint32_t)a->n;
  }
  if ((f & CMD_SESSION) || ((f & CMD_HANDSHAKE) && lc->ready))
    cmd->marks |= MARK_DIRTY;
  if (f & CMD_WATCH)
    cmd->marks |= MARK_WATCH;
  if ((f & CMD_HANDSHAKE) && a->n == 1 && cmdinfo_name_is(ci->name,
      strlen(ci->name), "SELECT")) {
    int isnum = 0;
    lua_Integer db;
    push_arg(L, a, 1);
    db = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (isnum && db >= 0 && db <= INT_MAX) {
      cmd->effect = FX_SELECT; /* recorded once the server says OK */
      cmd->aux = (int)db;
    }
  }
  if (f & CMD_MULTI)
    cmd->effect = FX_MULTI;
  else if (f & CMD_ENDTX)
    cmd->effect = FX_ENDTX;
  else if (f & CMD_UNWATCH)
    cmd->effect = FX_UNWATCH;
  return CLASS_OK;
}

#define ABANDONED "connection closed: a command pending on it was " \
                  "abandoned (lev.timeout)"

static void cancel_slot(lev_task *t, void *data) {
  conn *c = (conn *)data;
  rctx *rc;
  /* The reply it waits for may never come (BLPOP q 0) and, if it comes,
   * must not go to a later command: the connection goes, as on the
   * client's own timeout (conn_abandon says when). A connect abandoned in
   * its handshake (AUTH, SELECT: the client is not ready) is of no use to
   * anyone: closed at once, not left to the collector. */
  if (conn_owned_by(c, &callbacks)) {
    lclient *lc = (lclient *)conn_data(c);
    rc = lc->rc;
    busy_enter(rc);
    conn_abandon(c, t, LEVR_ECLOSED, ABANDONED);
    if (!lc->ready && lc->c == c)
      conn_fail(c, LEVR_ECLOSED, ABANDONED);
  } else if (conn_owned_by(c, &orphan_callbacks)) {
    rc = (rctx *)conn_data(c);
    busy_enter(rc);
    conn_abandon(c, t, LEVR_ECLOSED, ABANDONED);
  } else {
    conn_forget(c, t); /* not ours (cannot happen: pooled conns are idle) */
    return;
  }
  busy_exit(rc);
}

static const char *refusal(int class) {
  return class == CLASS_MONITOR
             ? "MONITOR needs a client of its own: it takes no command "
               "after it, its output goes to read()"
             : "CLIENT REPLY OFF|SKIP is not supported (replies would no "
               "longer come one per command)";
}

/* argn counts the command name as argument #1; idx is the stack slot. */
static int bad_arg(lua_State *L, conn *c, int argn, int idx,
                   const char *what) {
  conn_cancel(c);
  return luaL_error(L, "%s: argument #%d must be a string or a number, got "
                    "%s", what, argn, luaL_typename(L, idx));
}

static int fallback_k(lua_State *L, int status, lua_KContext base) {
  (void)status;
  return lua_gettop(L) - (int)base;
}

/* The client has no usable connection. With a fallback installed
 * (core.set_fallback), its result is the method's result:
 * fallback(client, op, ...) where op is "cmd", "pipeline" or "read" and
 * ... are the method's arguments (for method sugar: the command name,
 * upper-cased, then the arguments). Without one: nil, "closed", "closed". */
static int no_connection(lua_State *L, lclient *lc, const char *op,
                         int sugar) {
  int base = lua_gettop(L), i;
  if (!lc || lc->fallback_ref == LUA_NOREF)
    return push_fail(L, "closed", LEVR_ECLOSED);
  luaL_checkstack(L, base + 4, "redis: too many arguments");
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->fallback_ref);
  lua_pushvalue(L, 1);
  lua_pushstring(L, op);
  if (sugar)
    lua_pushvalue(L, lua_upvalueindex(3));
  for (i = 2; i <= base; i++)
    lua_pushvalue(L, i);
  lua_callk(L, base + 1 + sugar, LUA_MULTRET, base, fallback_k);
  return fallback_k(L, LUA_OK, base);
}

static int commit_failed(lua_State *L, int err) {
  if (err == LEVR_ELIMIT)
    return push_fail(L, "too many pending commands on this connection",
                     err);
  if (err == LEVR_ENOMEM)
    return luaL_error(L, "redis: out of memory");
  return push_fail(L, "closed", err);
}

/* ---- client-side cache (contract 17) ----------------------------------
 * The cache is the connection's (conn_set_ext, csrc/client/cache.c); the
 * glue only asks it. A client without one pays one conn_ext() per command
 * that cmdinfo does not know, and one compare per reply. */

/* Invalidation pushes go on to push handlers when there are any. */
static void cache_sync_pass(lclient *lc) {
  cache *k = lc->c ? (cache *)conn_ext(lc->c) : NULL;
  if (k)
    cache_set_pass(k, lc->push_on);
}

/* A listed read through cmd on a connection with a cache: -1 to send it
 * (cmd->aux marks a fill), or the number of results of a hit, pushed. The
 * command is already encoded at b->data + start; its name is upper-cased
 * there first, so "get" and "GET" are one entry. */
static int cache_try(lua_State *L, rctx *rc, lev_task *t, conn *c,
                     cache *k, const char *name, size_t namelen, int nargs,
                     buf *b, size_t start, conn_cmd *cmd) {
  resp_reply r;
  char *p, *end;
  int st;
  if (!cache_listed(name, namelen, nargs) || conn_paused(c))
    return -1; /* paused: invalidations may wait unread in the socket */
  p = b->data + start;
  end = b->data + b->len;
  while (p < end && *p != '\n') /* *N */
    p++;
  while (++p < end && *p != '\n') /* $L */
    ;
  for (p++; namelen > 0 && p < end; p++, namelen--)
    *p = (char)upper_ascii((unsigned char)*p);
  st = cache_lookup(k, b->data + start, b->len - start, uv_now(rc->loop),
                    &r);
  if (st == CACHE_HIT) {
    int n;
    conn_cancel(c);
    luaL_checkstack(L, 3, "redis: cmd");
    n = reply_push_result(L, &r);
    if (++rc->cache_hits < CACHE_YIELD_EVERY)
      return n;
    /* Round the loop with the values: woken at once, resumed in the next
     * batch, which comes after a poll of the sockets. */
    rc->cache_hits = 0;
    rc->api->park(t, NULL, NULL);
    rc->api->wake(t, n);
    return -2 - n; /* the caller yields */
  }
  if (st == CACHE_MISS)
    cmd->aux = CACHE_FILL_AUX;
  return -1;
}

/* A command the cache must know about is being sent (cmd or pipeline):
 * transactions bypass it, a SELECT makes the database unknown until its
 * reply, and what it cannot follow turns it off. */
static void cache_note(cache *k, const cmdinfo *ci, const conn_cmd *cmd,
                       lua_State *L, const argsrc *a, int pipelined) {
  if (cmd->effect == FX_MULTI)
    cache_tx(k, 1);
  else if (cmd->effect == FX_ENDTX)
    cache_tx(k, 0);
  else if (cmd->effect == FX_SELECT && !pipelined)
    cache_select_sent(k);
  else if (cmd->effect == FX_SELECT ||
           cmdinfo_name_is(ci->name, strlen(ci->name), "SELECT") ||
           cmdinfo_name_is(ci->name, strlen(ci->name), "RESET") ||
           cmdinfo_name_is(ci->name, strlen(ci->name), "HELLO") ||
           cmdinfo_name_is(ci->name, strlen(ci->name), "AUTH") ||
           ((ci->flags & CMD_SUBCOMMANDS) &&
            (arg_is(L, a, 1, "TRACKING") || arg_is(L, a, 1, "CACHING"))))
    cache_off(k);
}

/* The reply of a slot the cache asked to see. */
static void cache_reply(rctx *rc, conn *c, const conn_slot *s,
                        const resp_reply *r) {
  cache *k = (cache *)conn_ext(c);
  if (!k)
    return;
  if (s->effect == FX_SELECT) {
    const resp_node *n = r->nodes;
    int ok = n->type == RESP_SIMPLE && n->len == 2 &&
             memcmp(r->base + n->off, "OK", 2) == 0;
    cache_select_done(k, ok ? s->aux : n->type == RESP_SIMPLE ? -2 : -1);
  } else {
    cache_fill_end(k, r, uv_now(rc->loop));
  }
}

/* core.cache_enable(client, max_entries, max_bytes, ttl, db): the
 * connection (tracking on, handshake done) gets its cache. */
static int l_cache_enable(lua_State *L) {
  lclient *lc = check_client(L);
  lua_Integer me = luaL_checkinteger(L, 2), mb = luaL_checkinteger(L, 3);
  double ttl = luaL_checknumber(L, 4);
  lua_Integer db = luaL_checkinteger(L, 5);
  cache *k;
  if (!lc || !lc->c)
    return push_fail(L, "closed", LEVR_ECLOSED);
  luaL_argcheck(L, me >= 1 && mb >= 1 && ttl > 0 && db >= 0 &&
                db <= INT_MAX, 2, "bad cache settings");
  k = cache_new((size_t)me, (size_t)mb,
                ttl * 1000 > 1e15 ? (uint64_t)1e15 : (uint64_t)(ttl * 1000),
                (int)db);
  if (!k)
    return luaL_error(L, "redis: out of memory");
  conn_set_ext(lc->c, k, cache_free_ext, cache_push);
  cache_sync_pass(lc);
  lua_pushboolean(L, 1);
  return 1;
}

/* c:cache_stats() -> { hits, misses, entries, bytes, invalidations,
 * evictions } of the current connection (zeros without one or without a
 * cache). */
static int l_cache_stats(lua_State *L) {
  lclient *lc = check_client(L);
  cache *k = lc && lc->c ? (cache *)conn_ext(lc->c) : NULL;
  cache_stats st;
  memset(&st, 0, sizeof(st));
  if (k)
    cache_get_stats(k, &st);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)st.hits);
  lua_setfield(L, -2, "hits");
  lua_pushinteger(L, (lua_Integer)st.misses);
  lua_setfield(L, -2, "misses");
  lua_pushinteger(L, (lua_Integer)st.entries);
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, (lua_Integer)st.bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)st.invalidations);
  lua_setfield(L, -2, "invalidations");
  lua_pushinteger(L, (lua_Integer)st.evictions);
  lua_setfield(L, -2, "evictions");
  return 1;
}

/* c:cache_clear() -> true: every entry of the current connection goes. */
static int l_cache_clear(lua_State *L) {
  lclient *lc = check_client(L);
  cache *k = lc && lc->c ? (cache *)conn_ext(lc->c) : NULL;
  if (k)
    cache_clear(k);
  lua_pushboolean(L, 1);
  return 1;
}

/* cmd(self, name, ...) and the method sugar (name in upvalue 3). Nothing
 * between conn_begin and the yield allocates a Lua object, so no finalizer
 * can run while the command is half-queued. */
static int do_cmd(lua_State *L, int sugar) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  int top = lua_gettop(L), first = sugar ? 2 : 3, i, err;
  conn *c = lc ? lc->c : NULL;
  const char *name;
  size_t namelen;
  const cmdinfo *ci;
  lev_task *t;
  conn_cmd cmd;
  buf *b;
  size_t start;
  cache *k;
  t = rc->api->check(rc->lctx, L, "redis: cmd");
  if (sugar) {
    name = lua_tolstring(L, lua_upvalueindex(3), &namelen);
  } else {
    if (top < 2 || lua_type(L, 2) != LUA_TSTRING)
      return luaL_error(L, "redis: cmd: the command name must be a string");
    name = lua_tolstring(L, 2, &namelen);
  }
  if (!c || !conn_usable(c))
    return no_connection(L, lc, "cmd", sugar);
  if (lc->monitor)
    return luaL_error(L, "redis: cmd: this client is in MONITOR mode "
                      "(only read() and close() work on it)");
  b = conn_begin(c);
  start = b->len;
  if (resp_encode_array_header(b, top - first + 2) ||
      resp_encode_bulk(b, name, namelen))
    goto nomem;
  for (i = first; i <= top; i++) {
    int r = encode_arg(L, b, i);
    if (r > 0)
      return bad_arg(L, c, i - first + 2, i, "redis: cmd");
    if (r < 0)
      goto nomem;
  }
  memset(&cmd, 0, sizeof(cmd));
  cmd.waiter = t;
  cmd.kind = SLOT_CMD;
  ci = cmdinfo_special(name, namelen);
  if (ci) {
    argsrc a;
    int cls;
    a.first = first;
    a.tbl = 0;
    a.n = top - first + 1;
    cls = classify(lc, ci, &cmd, L, &a);
    if (cls == CLASS_OK && (k = (cache *)conn_ext(c)) != NULL)
      cache_note(k, ci, &cmd, L, &a, 0);
    if (cls != CLASS_OK) {
      conn_cancel(c);
      if (cls == CLASS_MONITOR && conn_pending(c) == 0) {
        lc->monitor = 1; /* alone on its connection: allowed */
        cmd.marks |= MARK_DIRTY;
        b = conn_begin(c);
        if (resp_encode_array_header(b, 1) ||
            resp_encode_bulk(b, name, namelen))
          goto nomem;
      } else {
        return luaL_error(L, "redis: cmd: %s", refusal(cls));
      }
    }
  } else if ((k = (cache *)conn_ext(c)) != NULL) {
    int n = cache_try(L, rc, t, c, k, name, namelen, top - first + 1, b,
                      start, &cmd);
    if (n >= 0)
      return n; /* a hit: no round trip */
    if (n < -1)
      return lua_yield(L, 0); /* a hit going round the loop */
  }
  err = conn_commit(c, &cmd);
  if (err) {
    if (cmd.aux == CACHE_FILL_AUX)
      cache_fill_cancel((cache *)conn_ext(c));
    return commit_failed(L, err);
  }
  rc->api->park(t, cancel_slot, c);
  return lua_yield(L, 0);
nomem:
  conn_cancel(c);
  return luaL_error(L, "redis: cmd: out of memory");
}

static int l_cmd(lua_State *L) { return do_cmd(L, 0); }
static int l_sugar(lua_State *L) { return do_cmd(L, 1); }

/* Raises the message on top of the stack (prefixed with the position, as
 * luaL_error does) after dropping what the pipeline encoded so far. */
static int pipe_raise(lua_State *L, conn *c, uint8_t *effects,
                      const char *fmt, ...) {
  va_list ap;
  conn_cancel(c);
  free(effects);
  luaL_where(L, 1);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

static int l_pipeline(lua_State *L) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  conn *c = lc ? lc->c : NULL;
  lua_Integer n, i;
  lev_task *t;
  conn_cmd cmd;
  uint8_t *effects = NULL;
  uint8_t marks = 0;
  double block = 0;
  buf *b;
  int err;
  if (lua_isnoneornil(L, 2)) {
    lua_newtable(L);
    return 1;
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  n = (lua_Integer)lua_rawlen(L, 2);
  if (n == 0) {
    lua_newtable(L);
    return 1;
  }
  t = rc->api->check(rc->lctx, L, "redis: pipeline");
  if (!c || !conn_usable(c))
    return no_connection(L, lc, "pipeline", 0);
  if (lc->monitor)
    return luaL_error(L, "redis: pipeline: this client is in MONITOR mode "
                      "(only read() and close() work on it)");
  if (n > 0x7fffffff)
    return luaL_error(L, "redis: pipeline: too many commands");
  lua_settop(L, 2);
  /* The results table first: the last allocation before the yield (a
   * finalizer it runs may even close this client). */
  lua_createtable(L, (int)n, 0); /* index 3 of this frame */
  c = lc->c;
  if (!c || !conn_usable(c)) {
    lua_settop(L, 2);
    return no_connection(L, lc, "pipeline", 0);
  }
  b = conn_begin(c);
  for (i = 1; i <= n; i++) {
    lua_Integer argc, k;
    size_t namelen;
    const char *name;
    const cmdinfo *ci;
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
      return pipe_raise(L, c, effects, "redis: pipeline: command #%d must "
                        "be a table of arguments, got %s", (int)i,
                        luaL_typename(L, -1));
    argc = (lua_Integer)lua_rawlen(L, 4);
    if (argc == 0 || lua_rawgeti(L, 4, 1) != LUA_TSTRING)
      return pipe_raise(L, c, effects, "redis: pipeline: command #%d has "
                        "no command name", (int)i);
    if (argc > 0x7fffffff)
      return pipe_raise(L, c, effects, "redis: pipeline: command #%d is "
                        "too long", (int)i);
    name = lua_tolstring(L, 5, &namelen);
    ci = cmdinfo_special(name, namelen);
    if (ci && (ci->flags & CMD_PUBSUB))
      return pipe_raise(L, c, effects, "redis: pipeline: command #%d: %s "
                        "cannot be pipelined (use cmd, then read for the "
                        "rest)", (int)i, name);
    if (resp_encode_array_header(b, (size_t)argc) ||
        resp_encode_bulk(b, name, namelen))
      goto nomem;
    for (k = 2; k <= argc; k++) {
      int r;
      lua_rawgeti(L, 4, k);
      r = encode_arg(L, b, 6);
      if (r > 0)
        return pipe_raise(L, c, effects, "redis: pipeline: command #%d: "
                          "argument #%d must be a string or a number, got "
                          "%s", (int)i, (int)k, luaL_typename(L, 6));
      if (r < 0)
        goto nomem;
      lua_pop(L, 1);
    }
    if (ci) {
      argsrc a;
      int cls;
      memset(&cmd, 0, sizeof(cmd));
      a.first = 0;
      a.tbl = 4;
      a.n = (int)argc - 1;
      cls = classify(lc, ci, &cmd, L, &a);
      if (cls != CLASS_OK)
        return pipe_raise(L, c, effects, "redis: pipeline: command #%d: %s",
                          (int)i, refusal(cls));
      if (conn_ext(c))
        cache_note((cache *)conn_ext(c), ci, &cmd, L, &a, 1);
      if (cmd.block < 0 || block < 0)
        block = -1;
      else if (cmd.block > block)
        block = cmd.block;
      marks |= cmd.marks;
      if (cmd.effect == FX_SELECT)
        lc->sel_watch = 1; /* the reply is matched in cb_reply */
      else if (cmd.effect) {
        if (!effects && !(effects = (uint8_t *)calloc((size_t)n, 1)))
          goto nomem;
        effects[i - 1] = cmd.effect;
      }
    }
    lua_settop(L, 3);
  }
  memset(&cmd, 0, sizeof(cmd));
  cmd.waiter = t;
  cmd.kind = SLOT_PIPELINE;
  cmd.replies = (uint32_t)n;
  cmd.aux = 3;
  cmd.block = block;
  cmd.marks = marks;
  cmd.effects = effects;
  err = conn_commit(c, &cmd); /* frees effects on failure */
  if (err)
    return commit_failed(L, err);
  rc->api->park(t, cancel_slot, c);
  return lua_yield(L, 0);
nomem:
  conn_cancel(c);
  free(effects);
  return luaL_error(L, "redis: pipeline: out of memory");
}

/* ---- read ------------------------------------------------------------- */

static void cancel_read(lev_task *t, void *data) {
  lclient *lc = (lclient *)data;
  if (lc->reader == t) {
    lc->reader = NULL;
    if (lc->c)
      conn_read_wait(lc->c, 0);
  }
}

static int l_read(lua_State *L) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  lev_task *t = rc->api->check(rc->lctx, L, "redis: read");
  if (!lc)
    return no_connection(L, lc, "read", 0);
  if (lc->qtail > lc->qhead) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->queue_ref);
    lua_rawgeti(L, -1, ++lc->qhead);
    lua_pushnil(L);
    lua_rawseti(L, -3, lc->qhead);
    if (lc->qhead == lc->qtail)
      lc->qhead = lc->qtail = 0;
    if (lc->c && conn_paused(lc->c) &&
        lc->qtail - lc->qhead < QUEUE_PAUSE / 2 &&
        lc->ptail - lc->phead < QUEUE_PAUSE / 2) {
      busy_enter(rc);
      conn_pause(lc->c, 0); /* may deliver what is buffered */
      busy_exit(rc);
    }
    return 1;
  }
  if (!lc->c || !conn_usable(lc->c))
    return no_connection(L, lc, "read", 0);
  if (conn_pending(lc->c) > 0)
    return luaL_error(L, "redis: read: commands are pending on this client "
                      "(read() is for replies nobody asked for, such as "
                      "pub/sub messages)");
  if (lc->reader)
    return luaL_error(L, "redis: read: another task is already reading");
  lc->reader = t;
  conn_read_wait(lc->c, 1);
  rc->api->park(t, cancel_read, lc);
  return lua_yield(L, 0);
}

/* ---- connect, pool, close --------------------------------------------- */

/* Pushes a new client table; its state is registered in the clients
 * table (upvalue 1 of the calling function). */
static lclient *new_client(lua_State *L, rctx *rc) {
  lclient *lc;
  lua_createtable(L, 0, 2);
  luaL_setmetatable(L, CLIENT_MT);
  lc = (lclient *)calloc(1, sizeof(*lc));
  if (!lc) {
    luaL_error(L, "redis.connect: out of memory");
    return NULL;
  }
  lc->rc = rc;
  lc->queue_ref = LUA_NOREF;
  lc->fallback_ref = LUA_NOREF;
  lc->db = -1;
  lc->subs_ref = LUA_NOREF;
  lc->push_ref = LUA_NOREF;
  lua_pushvalue(L, -1);
  lua_pushlightuserdata(L, lc);
  lua_rawset(L, lua_upvalueindex(1));
  return lc;
}

static void set_key(lclient *lc, const char *key, size_t n) {
  char *k = (char *)malloc(n + 1);
  free(lc->key);
  lc->key = k;
  lc->keylen = k ? n : 0;
  if (k) {
    memcpy(k, key, n);
    k[n] = 0;
  }
}

/* An abandoned connect closes its half-open socket at once. */
static void cancel_connect(lev_task *t, void *data) {
  lclient *lc = (lclient *)data;
  conn *c;
  (void)t;
  lc->connector = NULL;
  c = detach(lc);
  if (c) {
    busy_enter(lc->rc);
    conn_close(c);
    busy_exit(lc->rc);
  }
}

/* core.connect(host, port, timeout, ssl) -> client | nil, text, category
 * ssl: nil, or a table { verify, ca, cert, key, server_name }. */
static int l_connect(lua_State *L) {
  rctx *rc = up_rctx(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  double timeout = luaL_optnumber(L, 3, 0);
  lev_task *t = rc->api->check(rc->lctx, L, "redis.connect");
  stream_tls tls, *tlsp = NULL;
  lclient *lc;
  conn *c;
  int r;
  {
    tls_config cfg;
    char err[256];
    if (tls_opts_read(L, 4, 4, &cfg, &tls.server_name)) {
      if (tls_opts_context(L, &cfg, &tls.ctx, err, sizeof(err)) != TLS_OK)
        return push_fail(L, err, LEVR_EIO);
      tlsp = &tls;
    }
  }
  lua_settop(L, 4);
  lc = new_client(L, rc); /* index 5 */
  c = conn_new(rc->loop, &callbacks, lc, NULL);
  if (c)
    conn_share_reads(c, &rc->scratch);
  if (!c) {
    if (tlsp)
      tls_ctx_unref(tls.ctx);
    return luaL_error(L, "redis.connect: out of memory");
  }
  lc->c = c;
  r = conn_connect(c, host, (int)port, tlsp, timeout);
  if (tlsp)
    tls_ctx_unref(tls.ctx); /* the session holds its own reference */
  if (r != 0) {
    push_fail(L, conn_error(c), r);
    detach(lc);
    conn_close(c);
    return 3;
  }
  lc->connector = t;
  lc->ud_idx = 5;
  rc->api->park(t, cancel_connect, lc);
  return lua_yield(L, 0);
}

/* core.take(key) -> client, idle_seconds | nil */
static int l_take(lua_State *L) {
  rctx *rc = up_rctx(L);
  size_t keylen;
  const char *key = luaL_checklstring(L, 1, &keylen);
  uint64_t idle = 0;
  lclient *lc;
  conn *c;
  rc->api->check(rc->lctx, L, "redis.connect");
  uv_update_time(rc->loop);
  /* A connection whose socket is readable was closed by the server (or
   * got what nobody asked for) after the loop last looked: drop it. */
  while ((c = pool_take(rc->pool, key, keylen, uv_now(rc->loop), &idle)) &&
         !conn_idle_usable(c)) {
    orphan(rc, c);
    conn_close(c);
  }
  if (!c)
    return 0;
  lc = new_client(L, rc);
  lc->c = c;
  conn_set_owner(c, &callbacks, lc);
  lc->ready = 1;
  set_key(lc, key, keylen);
  cache_sync_pass(lc);
  lua_pushnumber(L, (double)idle / 1000.0);
  return 2;
}

static int l_pool_count(lua_State *L) {
  rctx *rc = up_rctx(L);
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  lua_pushinteger(L, (lua_Integer)pool_count(rc->pool, key, n));
  return 1;
}

/* core.ready(client, key, cfg): the handshake is done; key is the pool
 * key. Not a client method, so user code cannot re-key a connection. */
static int l_ready(lua_State *L) {
  lclient *lc = check_client(L);
  size_t keylen;
  const char *key = luaL_checklstring(L, 2, &keylen);
  if (!lc)
    return 0;
  set_key(lc, key, keylen);
  lc->ready = 1;
  if (lc->c && lua_istable(L, 3)) {
    /* This caller's limits, also on a connection taken from the pool. */
    conn *c = lc->c;
    lua_getfield(L, 3, "timeout");
    if (conn_set_timeout(c, lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0))
      return luaL_error(L, "redis.connect: out of memory");
    lua_getfield(L, 3, "max_pending");
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0)
      conn_set_max_pending(c, (size_t)lua_tointeger(L, -1));
    lua_getfield(L, 3, "max_reply");
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0)
      conn_set_max_reply(c, (size_t)lua_tointeger(L, -1));
    lua_pop(L, 3);
  }
  lua_settop(L, 3);
  lua_pushliteral(L, "cfg");
  lua_insert(L, 3);
  lua_rawset(L, 1); /* client.cfg = cfg */
  return 0;
}

/* Lets go of the connection: pooled if keep and clean, else closed (what
 * is pending on it fails with "closed"). */
static void client_release_now(lclient *lc, int keep) {
  rctx *rc = lc->rc;
  conn *c;
  lc->closed = 1;
  wake_pushwaiter(lc);
  if (!lc->c)
    return;
  busy_enter(rc);
  wake_reader(lc, "closed", "closed");
  wake_closewaiter(lc, "closed", "closed");
  queue_release(lc);
  lc->monitor = 0;
  c = lc->c;
  lc->c = NULL;
  if (conn_ext(c))
    cache_set_pass((cache *)conn_ext(c), 0); /* idle: the cache's alone */
  if (!(keep && lc->ready && lc->key && conn_clean(c) &&
        pool_put(rc->pool, c, lc->key, lc->keylen, pool_max(),
                 uv_now(rc->loop)) == 0)) {
    orphan(rc, c);
    conn_close(c);
  }
  busy_exit(rc);
}

static void client_release(lclient *lc, int keep) {
  lc->closed = 1;
  if (lc->rc->busy)
    defer_release(lc, keep ? PEND_KEEP : PEND_CLOSE);
  else
    client_release_now(lc, keep);
}

static void client_free_now(lclient *lc) {
  rctx *rc = lc->rc;
  client_release_now(lc, 0);
  queue_release(lc);
  if (lc->fallback_ref != LUA_NOREF)
    luaL_unref(rc->L, LUA_REGISTRYINDEX, lc->fallback_ref);
  if (lc->subs_ref != LUA_NOREF)
    luaL_unref(rc->L, LUA_REGISTRYINDEX, lc->subs_ref);
  if (lc->push_ref != LUA_NOREF)
    luaL_unref(rc->L, LUA_REGISTRYINDEX, lc->push_ref);
  free(lc->key);
  text_clear(&lc->lasterr);
  free(lc);
}

static int l_close(lua_State *L) {
  lclient *lc = check_client(L);
  if (lc)
    client_release(lc, !lua_toboolean(L, 2));
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc of the client table: its state goes with it. The entry in the
 * clients table becomes false, so a finalizer that still holds the table
 * sees a closed client. */
static int client_gc(lua_State *L) {
  lclient *lc;
  lua_pushvalue(L, 1);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TLIGHTUSERDATA)
    return 0;
  lc = (lclient *)lua_touserdata(L, -1);
  lua_pushvalue(L, 1);
  lua_pushboolean(L, 0);
  lua_rawset(L, lua_upvalueindex(1));
  if (lc->rc->busy)
    defer_release(lc, PEND_FREE);
  else
    client_free_now(lc);
  return 0;
}

/* __close (a `local c <close>` leaving scope, in a task): like close(true),
 * so other tasks' pending commands fail with "closed" instead of hanging. */
static int client_tbc_close(lua_State *L) {
  lclient *lc = check_client(L);
  if (lc)
    client_release(lc, 0);
  return 0;
}

static int client_tostring(lua_State *L) {
  lclient *lc = check_client(L);
  int open = lc && lc->c;
  lua_pushliteral(L, "cfg");
  lua_rawget(L, 1);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "host");
    lua_getfield(L, -2, "port");
    lua_pushfstring(L, "redis.client (%s:%s%s): %p", lua_tostring(L, -2),
                    lua_tostring(L, -1), open ? "" : ", closed",
                    lua_topointer(L, 1));
  } else {
    lua_pushfstring(L, "redis.client (%s): %p", open ? "open" : "closed",
                    lua_topointer(L, 1));
  }
  return 1;
}

/* __index of the method table (which is the clients' __index): method
 * sugar, made on first use. c:get(k) is c:cmd("GET", k). The first
 * SUGAR_MAX names are cached in the method table; later ones get a fresh
 * closure each time (see SUGAR_MAX). */
static int methods_index(lua_State *L) {
  rctx *rc = up_rctx(L);
  size_t n, i;
  const char *k;
  char upper[64];
  if (lua_type(L, 2) != LUA_TSTRING)
    return 0;
  k = lua_tolstring(L, 2, &n);
  if (n == 0 || n >= sizeof(upper) || k[0] == '_' ||
      (n == 3 && memcmp(k, "cfg", 3) == 0))
    return 0;
  for (i = 0; i < n; i++)
    upper[i] = (char)upper_ascii((unsigned char)k[i]);
  lua_pushvalue(L, lua_upvalueindex(1)); /* clients */
  lua_pushvalue(L, lua_upvalueindex(2)); /* rctx */
  lua_pushlstring(L, upper, n);
  lua_pushcclosure(L, l_sugar, 3);
  if (rc->sugar < SUGAR_MAX) {
    rc->sugar++;
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
  }
  return 1;
}

/* ---- seams for Lua modules (reconnect) -------------------------------- */

static void sub_adopt(lua_State *L, lclient *dst, lclient *src);

/* core.attach(client, fresh): client takes over fresh's connection (with
 * its pool key and handshake state); fresh is left without one. A
 * connection client still had is closed first, failing what is pending
 * on it with "closed". */
static int l_attach(lua_State *L) {
  lclient *dst = check_client(L), *src = check_client_at(L, 2);
  rctx *rc = up_rctx(L);
  conn *c, *old;
  luaL_argcheck(L, dst && src, 1, "a finalized client");
  if (dst == src)
    return 0;
  if (!src->c)
    return luaL_error(L, "redis.core.attach: the fresh client has no "
                      "connection");
  busy_enter(rc);
  old = detach(dst);
  if (old) {
    wake_reader(dst, "closed", "closed");
    dst->monitor = 0;
    conn_close(old); /* fails its pending slots */
  }
  c = src->c;
  src->c = NULL;
  conn_set_owner(c, &callbacks, dst);
  dst->c = c;
  dst->ready = src->ready;
  dst->monitor = src->monitor;
  cache_sync_pass(dst);
  free(dst->key);
  dst->key = src->key;
  dst->keylen = src->keylen;
  src->key = NULL;
  src->keylen = 0;
  busy_exit(rc);
  sub_adopt(L, dst, src);
  return 0;
}

/* ---- subscriber: core.sub_mode, core.sub_next, core.sub_hold ---------- */

/* What reached the fresh connection of a reconnect before the attach (as
 * message tables when subscriber.lua's restore hook made it a
 * subscriber's, else in read()'s tagged form) is appended to the
 * subscriber's queue as messages, so none is lost on the way. */
static void sub_adopt(lua_State *L, lclient *dst, lclient *src) {
  static const char *const fields3[] = { "kind", "channel", "payload" };
  static const char *const fields4[] = { "kind", "pattern", "channel",
                                         "payload" };
  int q, from;
  if (!dst->sub_max || src->qtail <= src->qhead)
    return;
  if (dst->queue_ref == LUA_NOREF) {
    lua_newtable(L);
    dst->queue_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, dst->queue_ref);
  q = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, src->queue_ref);
  from = lua_gettop(L);
  while (src->qtail > src->qhead) {
    const char *const *f;
    lua_Integer i, n;
    const char *kind;
    lua_rawgeti(L, from, ++src->qhead);
    if (lua_getfield(L, -1, "kind") != LUA_TNIL) { /* a message already */
      lua_pop(L, 1);
      lua_rawseti(L, q, ++dst->qtail);
      continue;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "value");
    n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
    lua_rawgeti(L, -1, 1);
    kind = lua_tostring(L, -1);
    lua_pop(L, 1);
    f = n == 3 && kind && (strcmp(kind, "message") == 0 ||
                           strcmp(kind, "smessage") == 0) ? fields3
        : n == 4 && kind && strcmp(kind, "pmessage") == 0 ? fields4 : NULL;
    if (f) {
      lua_createtable(L, 0, 4);
      for (i = 0; i < n; i++) {
        lua_rawgeti(L, -2, i + 1);
        lua_setfield(L, -2, f[i]);
      }
      lua_rawseti(L, q, ++dst->qtail);
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 2);
  queue_release(src);
}

/* core.sub_mode(client, max_queue): the client is a subscriber's. */
static int l_sub_mode(lua_State *L) {
  lclient *lc = check_client(L);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max >= 1, 2, "max_queue must be >= 1");
  if (lc)
    lc->sub_max = max;
  return 0;
}

/* Reading again; what is buffered may be delivered at once (busy: the
 * callbacks run from here). */
static void sub_resume(lclient *lc) {
  if (lc->c && conn_paused(lc->c)) {
    busy_enter(lc->rc);
    conn_pause(lc->c, 0);
    busy_exit(lc->rc);
  }
}

/* core.sub_hold(client, on): a subscribe command is (on) or is no longer
 * in flight; counted, for commands of many tasks. */
static int l_sub_hold(lua_State *L) {
  lclient *lc = check_client(L);
  if (!lc)
    return 0;
  if (lua_toboolean(L, 2)) {
    lc->sub_hold++;
    sub_resume(lc);
  } else if (lc->sub_hold > 0 && --lc->sub_hold == 0 && lc->c &&
             lc->qtail - lc->qhead >= lc->sub_max) {
    conn_pause(lc->c, 1);
  }
  return 0;
}

static void cancel_subnext(lev_task *t, void *data) {
  lclient *lc = (lclient *)data;
  if (lc->reader == t)
    lc->reader = NULL;
}

/* Pops the oldest queued message onto L's stack: 1, or 0 if none. */
static int sub_pop(lua_State *L, lclient *lc) {
  if (!lc || lc->qtail <= lc->qhead)
    return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->queue_ref);
  lua_rawgeti(L, -1, ++lc->qhead);
  lua_pushnil(L);
  lua_rawseti(L, -3, lc->qhead);
  lua_remove(L, -2);
  if (lc->qhead == lc->qtail)
    lc->qhead = lc->qtail = 0;
  /* Resume at half the bound: one pause per max_queue / 2 messages, not
   * one per message. */
  if (lc->qtail - lc->qhead <= lc->sub_max / 2)
    sub_resume(lc);
  return 1;
}

/* Parks t until a message comes (sub_deliver) or the connection ends
 * (wake_reader: nil, text, category). */
static void sub_park(lua_State *L, rctx *rc, lclient *lc, lev_task *t) {
  if (lc->reader)
    luaL_error(L, "redis: subscriber next: another task is already "
               "reading");
  sub_resume(lc); /* e.g. a queue adopted full at a reconnect */
  lc->reader = t;
  rc->api->park(t, cancel_subnext, lc);
}

/* core.sub_next(client, nowait) -> message | false (nothing queued; with
 * nowait) | nil, text, category (no usable connection: why the last one
 * ended). Without nowait it parks until a message comes. */
static int l_sub_next(lua_State *L) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  lev_task *t;
  if (sub_pop(L, lc))
    return 1;
  if (!lc || !lc->c || !conn_usable(lc->c)) {
    /* why the connection failed (it may still be closing), or why the
     * last one ended */
    lua_pushnil(L);
    if (lc && lc->c && conn_error(lc->c)[0]) {
      lua_pushstring(L, conn_error(lc->c));
      lua_pushstring(L, levr_category(conn_errcode(lc->c)));
    } else {
      lua_pushstring(L, lc && lc->lasterr ? lc->lasterr : "closed");
      lua_pushstring(L, lc && lc->lastcat ? lc->lastcat : "closed");
    }
    return 3;
  }
  if (lua_toboolean(L, 2)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  t = rc->api->check(rc->lctx, L, "redis: subscriber next");
  sub_park(L, rc, lc, t);
  return lua_yield(L, 0);
}

/* sub:next(timeout), the method: a queued message at once, or (no
 * timeout) a wait in C; everything else (a timeout, no connection, a
 * failure while waiting) goes to the Lua part, upvalue 3, as
 * slow(sub, timeout), which may park (hence lua_callk). Stack: 1 sub,
 * 2 timeout, 3 sub._c. */
static int sub_method_slow_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L);
}

static int sub_method_slow(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_insert(L, 1);
  lua_callk(L, 2, LUA_MULTRET, 0, sub_method_slow_k);
  return lua_gettop(L);
}

static int sub_method_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_gettop(L) == 4 && lua_istable(L, 4))
    return 1; /* the message sub_deliver handed over */
  return sub_method_slow(L);
}

static int sub_method_next(lua_State *L) {
  rctx *rc = up_rctx(L);
  lclient *lc;
  lua_settop(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushliteral(L, "_c");
  lua_rawget(L, 1);
  lc = check_client_at(L, 3);
  if (sub_pop(L, lc))
    return 1;
  if (lua_isnil(L, 2) && lc && lc->c && !!conn_usable(lc->c) && !lc->reader) {
    lev_task *t = rc->api->check(rc->lctx, L, "redis: subscriber next");
    sub_park(L, rc, lc, t);
    return lua_yieldk(L, 0, 0, sub_method_k);
  }
  return sub_method_slow(L);
}

/* core.sub_method(slow) -> the next method (sub_method_next). */
static int l_sub_method(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, sub_method_next, 3);
  return 1;
}

static void cancel_waitclosed(lev_task *t, void *data) {
  lclient *lc = (lclient *)data;
  if (lc->closewaiter == t)
    lc->closewaiter = NULL;
}

/* core.wait_closed(client) -> text, category: parks until the client's
 * connection has ended (at once when it has none); text and category say
 * why ("closed", "closed" after close()). One task at a time. */
static int l_wait_closed(lua_State *L) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  lev_task *t = rc->api->check(rc->lctx, L, "redis.core.wait_closed");
  if (!lc || !lc->c) {
    lua_pushstring(L, lc && lc->lasterr ? lc->lasterr : "closed");
    lua_pushstring(L, lc && lc->lastcat ? lc->lastcat : "closed");
    return 2;
  }
  if (lc->closewaiter)
    return luaL_error(L, "redis.core.wait_closed: another task is already "
                      "waiting on this client");
  lc->closewaiter = t;
  rc->api->park(t, cancel_waitclosed, lc);
  return lua_yield(L, 0);
}

/* core.set_fallback(client, fn | nil): see no_connection. */
static int l_set_fallback(lua_State *L) {
  lclient *lc = check_client(L);
  if (!lc)
    return 0;
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TFUNCTION);
  if (lc->fallback_ref != LUA_NOREF)
    luaL_unref(L, LUA_REGISTRYINDEX, lc->fallback_ref);
  lc->fallback_ref = LUA_NOREF;
  if (!lua_isnoneornil(L, 2)) {
    lua_settop(L, 2);
    lc->fallback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

/* core.is_client(v) -> boolean */
static int l_is_client(lua_State *L) {
  lua_settop(L, 1);
  lua_rawget(L, lua_upvalueindex(1));
  lua_pushboolean(L, !lua_isnil(L, -1));
  return 1;
}

/* core.fail(client, text): ends the client's connection as a failure
 * would (every command pending on it fails with text, category "closed"),
 * without closing the client: a client with reconnect then reconnects.
 * Sentinel uses it to leave a demoted master. */
static int l_fail(lua_State *L) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  const char *msg = luaL_checkstring(L, 2);
  if (!lc || !lc->c)
    return 0;
  busy_enter(rc);
  conn_fail(lc->c, LEVR_ECLOSED, msg);
  busy_exit(rc);
  return 0;
}

/* core.is_open(client) -> boolean: it has a connection that has not
 * failed (commands are sent, not handed to the fallback). */
static int l_is_open(lua_State *L) {
  lclient *lc = check_client(L);
  lua_pushboolean(L, lc && lc->c && conn_usable(lc->c));
  return 1;
}

/* core.is_closed(client) -> boolean: close() (or __close) was called. */
static int l_is_closed(lua_State *L) {
  lclient *lc = check_client(L);
  lua_pushboolean(L, !lc || lc->closed);
  return 1;
}

/* core.selected_db(client) -> db | nil: the database of the last SELECT
 * the server accepted on this client (across its connections); nil when
 * there was none since connect (cfg.db then holds). Not seen: a SELECT
 * queued inside MULTI, and a pipeline's SELECT whose task was abandoned. */
static int l_selected_db(lua_State *L) {
  lclient *lc = check_client(L);
  if (!lc || lc->db < 0)
    return 0;
  lua_pushinteger(L, lc->db);
  return 1;
}

/* core.subscriptions(client) -> { channels = {...}, patterns = {...},
 * shard_channels = {...} }, each sorted: what the server confirmed and
 * did not unsubscribe since, across the client's connections. */
static int l_subscriptions(lua_State *L) {
  static const char *const names[] = { "channels", "patterns",
                                       "shard_channels" };
  lclient *lc = check_client(L);
  int i;
  lua_settop(L, 1);
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort"); /* index 3 */
  lua_createtable(L, 0, 3);    /* index 4 */
  for (i = 0; i < 3; i++) {
    lua_Integer n = 0;
    lua_newtable(L);
    if (lc && lc->subs_ref != LUA_NOREF) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, lc->subs_ref);
      lua_rawgeti(L, -1, i + 1);
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -5, ++n);
      }
      lua_pop(L, 2);
    }
    if (n > 1 && lua_isfunction(L, 3)) {
      lua_pushvalue(L, 3);
      lua_pushvalue(L, -2);
      lua_call(L, 1, 0);
    }
    lua_setfield(L, 4, names[i]);
  }
  return 1;
}

/* core.set_push(client, on): with on, RESP3 pushes that are not pub/sub
 * traffic go to core.next_push instead of read(). Kept across
 * connections (core.attach). */
static int l_set_push(lua_State *L) {
  lclient *lc = check_client(L);
  if (lc) {
    lc->push_on = lua_toboolean(L, 2);
    cache_sync_pass(lc);
  }
  return 0;
}

static void cancel_nextpush(lev_task *t, void *data) {
  lclient *lc = (lclient *)data;
  if (lc->pushwaiter == t)
    lc->pushwaiter = NULL;
}

/* core.next_push(client) -> { type = "push", value = array }, or nothing
 * once the client was closed. Parks until one arrives; one task at a
 * time. */
static int l_next_push(lua_State *L) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  lev_task *t = rc->api->check(rc->lctx, L, "redis.core.next_push");
  if (!lc)
    return 0;
  if (pop_push(lc, L)) {
    if (lc->c && conn_paused(lc->c) &&
        lc->qtail - lc->qhead < QUEUE_PAUSE / 2 &&
        lc->ptail - lc->phead < QUEUE_PAUSE / 2) {
      busy_enter(rc);
      conn_pause(lc->c, 0);
      busy_exit(rc);
    }
    return 1;
  }
  if (lc->closed)
    return 0;
  if (lc->pushwaiter)
    return luaL_error(L, "redis.core.next_push: another task is already "
                      "waiting on this client");
  lc->pushwaiter = t;
  rc->api->park(t, cancel_nextpush, lc);
  return lua_yield(L, 0);
}

/* ---- request/reply readers for Lua (the mock server, tests) ----------- */

typedef struct lreader {
  resp_reader rd;
  int request;
} lreader;

static int l_reader(lua_State *L) {
  lreader *r;
  int request = 0;
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, "request");
    request = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  r = (lreader *)lua_newuserdatauv(L, sizeof(*r), 0);
  resp_reader_init(&r->rd, NULL, request ? RESP_READER_REQUEST : 0);
  r->request = request;
  luaL_setmetatable(L, READER_MT);
  return 1;
}

static int reader_feed(lua_State *L) {
  lreader *r = (lreader *)luaL_checkudata(L, 1, READER_MT);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (resp_reader_feed(&r->rd, p, n) != 0)
    return luaL_error(L, "reader: out of memory");
  return 0;
}

/* Requests of up to this many arguments are read the quick way. */
#define READER_QUICK_ARGS 16

/* The userdata at 1 if its metatable is the one in upvalue 1 (what
 * luaL_checkudata does, without looking the metatable up by name: these
 * run once per request). */
static void *check_self(lua_State *L, const char *tname) {
  void *p = lua_touserdata(L, 1);
  if (p == NULL || !lua_getmetatable(L, 1) ||
      !lua_rawequal(L, -1, lua_upvalueindex(1)))
    luaL_typeerror(L, 1, tname);
  lua_pop(L, 1);
  return p;
}

static int reader_next(lua_State *L) {
  lreader *r = (lreader *)check_self(L, READER_MT);
  resp_reply rep;
  int st;
  if (r->request) {
    resp_span args[READER_QUICK_ARGS];
    const char *base;
    int i, n = resp_reader_next_args(&r->rd, &base, args, READER_QUICK_ARGS);
    if (n > 0) {
      lua_createtable(L, n, 0);
      for (i = 0; i < n; i++) {
        lua_pushlstring(L, base + args[i].off, args[i].len);
        lua_rawseti(L, -2, i + 1);
      }
      return 1;
    }
  }
  st = resp_reader_next(&r->rd, &rep);
  if (st == RESP_OK) {
    if (r->request)
      reply_push_argv(L, &rep);
    else
      reply_push_tagged(L, &rep);
    return 1;
  }
  lua_pushnil(L);
  if (st == RESP_AGAIN)
    return 1;
  lua_pushstring(L, resp_reader_error(&r->rd));
  return 2;
}

static int reader_pending(lua_State *L) {
  lreader *r = (lreader *)luaL_checkudata(L, 1, READER_MT);
  lua_pushinteger(L, (lua_Integer)resp_reader_pending(&r->rd));
  return 1;
}

static int reader_gc(lua_State *L) {
  lreader *r = (lreader *)luaL_checkudata(L, 1, READER_MT);
  resp_reader_free(&r->rd);
  resp_reader_init(&r->rd, NULL, 0);
  return 0;
}

/* core.outbuf() -> a byte buffer collecting RESP replies (the mock
 * server's batch of replies): add(bytes), bulk(s) and int(n) append the
 * bytes of a reply without making a Lua string for it, take() returns
 * everything collected as one string and empties the buffer. */
typedef struct loutbuf {
  buf b;
} loutbuf;

static int l_outbuf(lua_State *L) {
  loutbuf *o = (loutbuf *)lua_newuserdatauv(L, sizeof(*o), 0);
  buf_init(&o->b);
  luaL_setmetatable(L, OUTBUF_MT);
  return 1;
}

static loutbuf *check_outbuf(lua_State *L) {
  return (loutbuf *)check_self(L, OUTBUF_MT);
}

static int outbuf_add(lua_State *L) {
  loutbuf *o = check_outbuf(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (buf_append(&o->b, p, n) != 0)
    return luaL_error(L, "outbuf: out of memory");
  return 0;
}

/* A bulk string: $<len>\r\n<bytes>\r\n. */
static int outbuf_bulk(lua_State *L) {
  loutbuf *o = check_outbuf(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (buf_reserve(&o->b, n + 32) != 0)
    return luaL_error(L, "outbuf: out of memory");
  buf_append_char(&o->b, '$');
  buf_append_int(&o->b, (int64_t)n);
  buf_append(&o->b, "\r\n", 2);
  buf_append(&o->b, p, n);
  buf_append(&o->b, "\r\n", 2);
  return 0;
}

/* An integer: :<n>\r\n. */
static int outbuf_int(lua_State *L) {
  loutbuf *o = check_outbuf(L);
  lua_Integer v = luaL_checkinteger(L, 2);
  if (buf_reserve(&o->b, 32) != 0)
    return luaL_error(L, "outbuf: out of memory");
  buf_append_char(&o->b, ':');
  buf_append_int(&o->b, (int64_t)v);
  buf_append(&o->b, "\r\n", 2);
  return 0;
}

/* The bytes collected (nil when none); the buffer is emptied, and its
 * memory released when one batch made it large. */
static int outbuf_take(lua_State *L) {
  loutbuf *o = check_outbuf(L);
  if (o->b.len == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, o->b.data, o->b.len);
  buf_reset(&o->b, 1 << 16);
  return 1;
}

static int outbuf_gc(lua_State *L) {
  loutbuf *o = check_outbuf(L);
  buf_free(&o->b);
  buf_init(&o->b);
  return 0;
}

/* core.encode(arg1, ...) -> the RESP bytes of a command. */
static int l_encode(lua_State *L) {
  int top = lua_gettop(L), i;
  buf b;
  buf_init(&b);
  if (resp_encode_array_header(&b, top))
    goto nomem;
  for (i = 1; i <= top; i++) {
    int r = encode_arg(L, &b, i);
    if (r > 0) {
      buf_free(&b);
      return luaL_argerror(L, i, "string or number expected");
    }
    if (r < 0)
      goto nomem;
  }
  lua_pushlstring(L, b.data, b.len);
  buf_free(&b);
  return 1;
nomem:
  buf_free(&b);
  return luaL_error(L, "encode: out of memory");
}

/* ---- module ----------------------------------------------------------- */

static int rctx_gc(lua_State *L) {
  rctx **box = (rctx **)lua_touserdata(L, 1);
  rctx *rc = *box;
  if (rc) {
    *box = NULL;
    rc->api->undefer(rc->lctx, rc, &rc->flush_armed);
    pool_free(rc->pool);
    free(rc->flushq);
    rc->flushq = NULL;
    rc->nflush = rc->capflush = 0;
    rc->dead = 1;
    if (rc->orphans == 0)
      rctx_free(rc);
  }
  return 0;
}

static const luaL_Reg client_methods[] = {
  {"cmd", l_cmd}, {"pipeline", l_pipeline}, {"read", l_read},
  {"close", l_close}, {"cache_stats", l_cache_stats},
  {"cache_clear", l_cache_clear}, {NULL, NULL}
};

static const luaL_Reg client_meta[] = {
  {"__gc", client_gc}, {"__close", client_tbc_close},
  {"__tostring", client_tostring}, {NULL, NULL}
};

static const luaL_Reg core_funcs[] = {
  {"connect", l_connect}, {"take", l_take}, {"pool_count", l_pool_count},
  {"ready", l_ready}, {"attach", l_attach}, {"wait_closed", l_wait_closed},
  {"set_fallback", l_set_fallback}, {"is_client", l_is_client},
  {"is_open", l_is_open}, {"is_closed", l_is_closed}, {"fail", l_fail},
  {"selected_db", l_selected_db}, {"subscriptions", l_subscriptions},
  {"set_push", l_set_push}, {"next_push", l_next_push},
  {"sub_mode", l_sub_mode}, {"sub_next", l_sub_next},
  {"sub_hold", l_sub_hold}, {"sub_method", l_sub_method},
  {"cache_enable", l_cache_enable},
  {NULL, NULL}
};

EXPORT int luaopen_redis_core(lua_State *L);

int luaopen_redis_core(lua_State *L) {
  const lev_api *api = lev_api_get(L);
  rctx *rc;
  rctx **box;
  int clients, methods;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &rctx_key) == LUA_TNIL) {
    lua_pop(L, 1);
    rc = (rctx *)calloc(1, sizeof(*rc));
    if (!rc || !(rc->pool = pool_new())) {
      free(rc);
      return luaL_error(L, "redis.core: out of memory");
    }
    rc->api = api;
    rc->lctx = api->ctx(L);
    rc->loop = api->loop(rc->lctx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    rc->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    box = (rctx **)lua_newuserdatauv(L, sizeof(*box), 1);
    *box = rc;
    lua_newtable(L);
    lua_pushcfunction(L, rctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    /* The conversion thread lives as long as the box. */
    rc->T = lua_newthread(L);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &rctx_key);
  }
  box = (rctx **)lua_touserdata(L, -1);
  rc = *box;
  lua_pop(L, 1);

  /* The clients table: client table -> light userdata of its lclient
   * (false once finalized). Weak keys: it does not keep clients alive. */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &clients_key) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &clients_key);
  }
  clients = lua_gettop(L);

  /* The client class: a shared metatable whose __index is the method
   * table; the method table's own __index makes method sugar. */
  if (luaL_newmetatable(L, CLIENT_MT)) {
    int mt = lua_gettop(L);
    lua_newtable(L); /* methods */
    lua_pushvalue(L, clients);
    lua_pushlightuserdata(L, rc);
    luaL_setfuncs(L, client_methods, 2);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, clients);
    lua_pushlightuserdata(L, rc);
    lua_pushcclosure(L, methods_index, 2);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, mt, "__index");
    lua_pushvalue(L, clients);
    lua_pushlightuserdata(L, rc);
    luaL_setfuncs(L, client_meta, 2);
  }
  lua_getfield(L, -1, "__index");
  methods = lua_gettop(L);
  if (luaL_newmetatable(L, READER_MT)) {
    lua_newtable(L);
    lua_pushcfunction(L, reader_feed);
    lua_setfield(L, -2, "feed");
    lua_pushvalue(L, -2); /* reader_next checks self against it */
    lua_pushcclosure(L, reader_next, 1);
    lua_setfield(L, -2, "next");
    lua_pushcfunction(L, reader_pending);
    lua_setfield(L, -2, "pending");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, reader_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, OUTBUF_MT)) {
    static const luaL_Reg outbuf_methods[] = {
        {"add", outbuf_add}, {"bulk", outbuf_bulk}, {"int", outbuf_int},
        {"take", outbuf_take}, {NULL, NULL}};
    lua_newtable(L);
    lua_pushvalue(L, -2); /* each method checks self against it */
    luaL_setfuncs(L, outbuf_methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, outbuf_gc, 1);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);

  lua_newtable(L);
  lua_pushvalue(L, clients);
  lua_pushlightuserdata(L, rc);
  luaL_setfuncs(L, core_funcs, 2);
  lua_pushvalue(L, methods);
  lua_setfield(L, -2, "methods");
  lua_pushcfunction(L, l_reader);
  lua_setfield(L, -2, "reader");
  lua_pushcfunction(L, l_outbuf);
  lua_setfield(L, -2, "outbuf");
  lua_pushcfunction(L, l_encode);
  lua_setfield(L, -2, "encode");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, RESP_VERSION);
  lua_setfield(L, -2, "version");
  cluster_glue_register(L);
  return 1;
}
