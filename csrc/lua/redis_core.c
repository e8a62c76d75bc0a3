/* redis.core: the client as Lua sees it, on conn/pool and lev's tasks.
 *
 * The hot path: cmd() encodes its arguments straight into the connection's
 * output buffer, queues a slot naming the running task, parks the task and
 * asks lev for one flush after the current batch of ready tasks. The reply
 * is converted onto the parked task's stack in the read callback
 * (reply.c) and the task is queued to resume. No Lua code runs in libuv
 * callbacks, and nothing is allocated per command but the Lua values.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "lev.h"
#include "pool.h"
#include "reply.h"
#include "tls_opts.h"

#define EXPORT __attribute__((visibility("default")))
#define CLIENT_MT "redis.client"
#define READER_MT "redis.reader"
#define QUEUE_PAUSE 10000   /* read() backlog that pauses the socket */
/* Method sugar closures kept in the shared method table. Redis has a few
 * hundred command names; past this, a new name gets a closure that is not
 * cached (it works, and is collected), so reading a million distinct
 * fields does not grow memory. */
#define SUGAR_MAX 1024

static const char rctx_key = 'r';

typedef struct lclient lclient;

typedef struct rctx {
  const lev_api *api;
  lev_ctx *lctx;
  uv_loop_t *loop;
  lua_State *L;            /* the main thread: a stack for read() queues */
  pool pool;
  size_t sugar;            /* sugar closures cached in the method table */
} rctx;

/* A client's C state. The Lua side is a plain table (the client object);
 * the clients table (a weak-keyed registry table, upvalue 1 of every
 * method) maps it to a light userdata of this struct, or to false once the
 * table was finalized. This struct lives exactly as long as the table:
 * allocated in new_client, freed by the table's __gc. */
struct lclient {
  conn *c;
  rctx *rc;
  int ready;               /* handshake done: AUTH/SELECT now mark dirty */
  char *key;               /* pool key */
  size_t keylen;
  void *connector;         /* task waiting in connect */
  int ud_idx;              /* the client's stack index in that task */
  void *reader;            /* task waiting in read() */
  void *closewaiter;       /* task waiting in core.wait_closed */
  int queue_ref;           /* read() backlog: table in the registry */
  lua_Integer qhead, qtail;
  int fallback_ref;        /* core.set_fallback's function, or LUA_NOREF */
  char lasterr[128];       /* why the last connection ended */
  const char *lastcat;
  /* Session facts kept across connections, for reconnect (issue 13). */
  lua_Integer db;          /* database of the last SELECT that succeeded,
                              or -1 (none since the handshake) */
  int subs_ref;            /* subscriptions by name: registry table, or
                              LUA_NOREF */
  int closed;              /* close() was called */
  int push_on;             /* non-pub/sub pushes go to core.next_push */
  void *pushwaiter;        /* task waiting in core.next_push */
  int push_ref;            /* pushes not yet taken: registry table */
  lua_Integer phead, ptail;
  /* redis.subscriber (lua/redis/subscriber.lua; core.sub_*): messages go
   * to the read() queue as message tables, bounded by sub_max. */
  lua_Integer sub_max;     /* 0: not a subscriber */
  int sub_hold;            /* subscribe commands in flight: keep reading */
};

/* ---- helpers ---------------------------------------------------------- */

/* Every function of the module and every client method has two upvalues:
 * the clients table and the rctx. */
static rctx *up_rctx(lua_State *L) {
  return (rctx *)lua_touserdata(L, lua_upvalueindex(2));
}

/* The client at stack index 1, from the clients table (upvalue 1): its
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

static int push_fail(lua_State *L, const char *msg, const char *category) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, category);
  return 3;
}

static const char *category_name(int err) {
  switch (err) {
  case CONN_ETIMEOUT: return "timeout";
  case CONN_EEOF: return "eof";
  case CONN_EPROTO: return "protocol";
  case CONN_ECLOSED: return "closed";
  case CONN_ELIMIT: return "limit";
  default: return "io";
  }
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

/* ---- conn callbacks --------------------------------------------------- */

static void wake_reader(lclient *lc, const char *msg, const char *cat) {
  void *t = lc->reader;
  lua_State *co;
  if (!t)
    return;
  lc->reader = NULL;
  co = lc->rc->api->thread((lev_task *)t);
  lua_pushnil(co);
  lua_pushstring(co, msg);
  lua_pushstring(co, cat);
  lc->rc->api->wake((lev_task *)t, 3);
}

/* ---- session facts for reconnect ------------------------------------- */

/* A confirmation (subscribe, psubscribe, ssubscribe or an un- form) adds
 * or removes its name in the client's subscriptions: subs_ref is
 * { [1] = channels, [2] = patterns, [3] = shard channels }, each a set. */
static void track_subscription(lclient *lc, const resp_reply *r) {
  const resp_node *k = &r->nodes[1], *name = &r->nodes[2];
  const char *p = r->base + k->off;
  lua_State *L = lc->rc->L;
  int family, add;
  size_t n = (size_t)k->len;
  if (r->nodes->len < 2 || (name->type != RESP_BULK &&
                            name->type != RESP_SIMPLE))
    return; /* an unsubscribe with nothing subscribed names nothing */
  /* subscribe 9, unsubscribe 11: channels; psubscribe 10, punsubscribe
   * 12: patterns; ssubscribe 10, sunsubscribe 12: shard channels. */
  add = n == 9 || n == 10;
  family = n == 9 || n == 11 ? 1 : (p[0] | 32) == 'p' ? 2 : 3;
  if (lc->subs_ref == LUA_NOREF) {
    lua_createtable(L, 3, 0);
    lua_newtable(L);
    lua_rawseti(L, -2, 1);
    lua_newtable(L);
    lua_rawseti(L, -2, 2);
    lua_newtable(L);
    lua_rawseti(L, -2, 3);
    lc->subs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->subs_ref);
  lua_rawgeti(L, -1, family);
  lua_pushlstring(L, r->base + name->off, (size_t)name->len);
  if (add)
    lua_pushboolean(L, 1);
  else
    lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

static void wake_pushwaiter(lclient *lc) {
  lev_task *t = (lev_task *)lc->pushwaiter;
  if (!t)
    return;
  lc->pushwaiter = NULL;
  lua_pushnil(lc->rc->api->thread(t));
  lc->rc->api->wake(t, 1);
}

/* A push that is not pub/sub traffic, with push handlers registered: to
 * the task in core.next_push, or queued for it (the socket pauses when
 * QUEUE_PAUSE pushes wait, as for read()). */
static void deliver_push(lclient *lc, conn *c, const resp_reply *r) {
  lev_task *t = (lev_task *)lc->pushwaiter;
  lua_State *L;
  if (t) {
    lc->pushwaiter = NULL;
    L = lc->rc->api->thread(t);
    lua_checkstack(L, 4);
    reply_push_result(L, r);
    lc->rc->api->wake(t, 1);
    return;
  }
  L = lc->rc->L;
  if (lc->push_ref == LUA_NOREF) {
    lua_newtable(L);
    lc->push_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->push_ref);
  reply_push_result(L, r);
  lua_rawseti(L, -2, ++lc->ptail);
  lua_pop(L, 1);
  if (lc->ptail - lc->phead >= QUEUE_PAUSE)
    conn_pause(c, 1);
}

static void sub_adopt(lclient *dst, lclient *src);

/* Connection facts the subscriber path needs. */
static int conn_paused(const conn *c) { return (c->flags & CONN_PAUSED) != 0; }
static int conn_failed(const conn *c) {
  return (c->flags & (CONN_BROKEN | CONN_CLOSING)) != 0;
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
 * ("message", "smessage"), one of four ("pmessage"), or 0: anything else,
 * for conn_pubsub_kind to sort out. Redis writes the kinds in lower case;
 * exact compares keep this cheap. */
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
static void sub_push_channel(lua_State *L, int q, const char *p, size_t n) {
  size_t k;
  const char *s;
  if (lua_rawgeti(L, q, 0) == LUA_TSTRING) {
    s = lua_tolstring(L, -1, &k);
    if (k == n && memcmp(s, p, n) == 0)
      return;
  }
  lua_pop(L, 1);
  lua_pushlstring(L, p, n);
  if (n <= 64) {
    lua_pushvalue(L, -1);
    lua_rawseti(L, q, 0);
  }
}

/* Pushes the message table for kind (sub_kind's) onto L, whose top is the
 * queue table. */
static void sub_push_message(lua_State *L, const resp_reply *r,
                             const char *kind) {
  const resp_node *n = r->nodes;
  int q = lua_gettop(L);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind); /* a literal: lua's string cache finds it */
  lua_setfield(L, -2, "kind");
  if (n->len == 4) {
    lua_pushlstring(L, r->base + n[2].off, (size_t)n[2].len);
    lua_setfield(L, -2, "pattern");
    n++;
  }
  sub_push_channel(L, q, r->base + n[2].off, (size_t)n[2].len);
  lua_setfield(L, -2, "channel");
  lua_pushlstring(L, r->base + n[3].off, (size_t)n[3].len);
  lua_setfield(L, -2, "payload");
}

static void sub_push_queue(lclient *lc, lua_State *L) {
  if (lc->queue_ref == LUA_NOREF) {
    lua_newtable(lc->rc->L);
    lc->queue_ref = luaL_ref(lc->rc->L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->queue_ref);
}

/* A reply for nobody on a subscriber: 1 when it was taken care of.
 * Messages go to the parked task or the queue; confirmations the server
 * sends by itself (unsubscribing a shard channel whose slot moved, say)
 * update the subscriptions; anything else is dropped, but for pushes
 * that push handlers take. */
static int sub_deliver(lclient *lc, conn *c, const resp_reply *r) {
  const char *kind = sub_kind(r);
  lua_State *L;
  if (!kind) {
    int k = conn_pubsub_kind(r);
    if (k == CONN_REPLY_CONFIRM)
      track_subscription(lc, r);
    return k == CONN_REPLY_OTHER && lc->push_on &&
           r->nodes->type == RESP_PUSH ? 0 : 1;
  }
  if (lc->reader) {
    lev_task *t = (lev_task *)lc->reader;
    lc->reader = NULL;
    L = lc->rc->api->thread(t);
    lua_checkstack(L, 6);
    sub_push_queue(lc, L);
    sub_push_message(L, r, kind);
    lua_remove(L, -2);
    lc->rc->api->wake(t, 1);
    return 1;
  }
  L = lc->rc->L;
  sub_push_queue(lc, L);
  sub_push_message(L, r, kind);
  lua_rawseti(L, -2, ++lc->qtail);
  lua_pop(L, 1);
  if (lc->qtail - lc->qhead >= lc->sub_max && !lc->sub_hold)
    conn_pause(c, 1);
  return 1;
}

static void cb_connect(conn *c, int status, const char *msg) {
  lclient *lc = (lclient *)c->data;
  lev_task *t;
  lua_State *co;
  if (!lc)
    return;
  t = (lev_task *)lc->connector;
  lc->connector = NULL;
  if (!t) { /* the task was abandoned */
    c->data = NULL;
    lc->c = NULL;
    conn_close(c);
    return;
  }
  co = lc->rc->api->thread(t);
  if (status != 0) {
    c->data = NULL;
    lc->c = NULL;
    lua_pushnil(co);
    lua_pushstring(co, msg);
    lua_pushstring(co, strcmp(msg, "timeout") == 0 ? "timeout" : "io");
    lc->rc->api->wake(t, 3);
    return;
  }
  lua_pushvalue(co, lc->ud_idx);
  lc->rc->api->wake(t, 1);
}

static void cb_reply(conn *c, conn_slot *s, const resp_reply *r) {
  lclient *lc = (lclient *)c->data;
  lev_task *t;
  lua_State *co;
  if (!s) {
    if (!lc)
      return;
    if (lc->sub_max && sub_deliver(lc, c, r))
      return;
    {
      int kind = conn_pubsub_kind(r);
      if (kind == CONN_REPLY_CONFIRM)
        track_subscription(lc, r);
      else if (kind == CONN_REPLY_OTHER && lc->push_on &&
               r->nodes->type == RESP_PUSH) {
        deliver_push(lc, c, r);
        return;
      }
    }
    if (lc->reader) {
      t = (lev_task *)lc->reader;
      lc->reader = NULL;
      conn_wait_timer(c, 0);
      co = lc->rc->api->thread(t);
      reply_push_tagged(co, r);
      lc->rc->api->wake(t, 1);
      return;
    }
    {
      lua_State *L = lc->rc->L;
      if (lc->queue_ref == LUA_NOREF) {
        lua_newtable(L);
        lc->queue_ref = luaL_ref(L, LUA_REGISTRYINDEX);
      }
      lua_rawgeti(L, LUA_REGISTRYINDEX, lc->queue_ref);
      reply_push_tagged(L, r);
      lua_rawseti(L, -2, ++lc->qtail);
      lua_pop(L, 1);
      if (lc->qtail - lc->qhead >= QUEUE_PAUSE)
        conn_pause(c, 1);
    }
    return;
  }
  /* What the session became, even when nobody waits for the reply. */
  if (lc && (s->select | s->subscribe)) {
    if (s->subscribe && conn_pubsub_kind(r) == CONN_REPLY_CONFIRM)
      track_subscription(lc, r);
    else if (s->select && r->nodes->type == RESP_SIMPLE &&
             (s->kind == SLOT_CMD || s->received + 1 == s->sub_count))
      lc->db = s->select_db;
  }
  t = (lev_task *)s->waiter;
  if (!t)
    return; /* abandoned: the reply is dropped, the FIFO stays in step */
  co = lc ? lc->rc->api->thread(t) : NULL;
  if (!co)
    return;
  if (s->kind == SLOT_CMD) {
    int n;
    lua_checkstack(co, 4);
    n = reply_push_result(co, r);
    lc->rc->api->wake(t, n);
    return;
  }
  lua_checkstack(co, 4);
  reply_push_entry(co, r);
  lua_rawseti(co, s->aux, (lua_Integer)s->received + 1);
  if (s->remaining == 0) {
    lua_pushvalue(co, s->aux);
    lc->rc->api->wake(t, 1);
  }
}

static void cb_fail(conn *c, conn_slot *s, int err, const char *msg) {
  lclient *lc = (lclient *)c->data;
  lev_task *t;
  lua_State *co;
  if (!lc)
    return;
  if (!s) { /* read() timed out; the connection stays usable */
    wake_reader(lc, msg, category_name(err));
    return;
  }
  t = (lev_task *)s->waiter;
  if (!t)
    return;
  co = lc->rc->api->thread(t);
  lua_checkstack(co, 3);
  lua_pushnil(co);
  lua_pushstring(co, msg);
  lua_pushstring(co, category_name(err));
  lc->rc->api->wake(t, 3);
}

/* Wakes a task parked in core.wait_closed with text, category. */
static void wake_closewaiter(lclient *lc, const char *msg, const char *cat) {
  lev_task *t = (lev_task *)lc->closewaiter;
  lua_State *co;
  snprintf(lc->lasterr, sizeof(lc->lasterr), "%s", msg);
  lc->lastcat = cat;
  if (!t)
    return;
  lc->closewaiter = NULL;
  co = lc->rc->api->thread(t);
  lua_pushstring(co, msg);
  lua_pushstring(co, cat);
  lc->rc->api->wake(t, 2);
}

static void cb_close(conn *c) {
  lclient *lc = (lclient *)c->data;
  const char *msg, *cat;
  if (!lc || lc->c != c)
    return;
  lc->c = NULL;
  msg = c->errmsg[0] ? c->errmsg : "closed";
  cat = c->errmsg[0] ? category_name(c->errcode) : "closed";
  wake_reader(lc, msg, cat);
  wake_closewaiter(lc, msg, cat);
}

static const conn_callbacks callbacks = {
  cb_connect, cb_reply, cb_fail, cb_close
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

static int name_eq(const char *p, const char *upper, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (upper_ascii((unsigned char)p[i]) != upper[i])
      return 0;
  return 1;
}

/* Case-insensitive p[0..n) == upper, the length compared first. */
#define name_is(p, n, upper) \
  ((n) == sizeof(upper) - 1 && name_eq((p), (upper), sizeof(upper) - 1))

/* Seconds a blocking command may wait: 0 for none (the server rejects
 * what is not a number >= 0), -1 for forever (0, or more than ~30 years,
 * which also keeps the deadline within the timer's range; the server
 * rejects the huge ones). */
static double arg_seconds(lua_State *L, int idx, double scale) {
  int ok = 0;
  double v = (double)lua_tonumberx(L, idx, &ok);
  if (!ok || !(v >= 0))
    return 0;
  if (v == 0 || v * scale > 1e9)
    return -1;
  return v * scale;
}

/* Tracks what a command does to the session (for pooling and pub/sub
 * routing) and how long it may block. args are stack indexes first..last
 * after the name. Only names that matter are compared. */
static void classify(lclient *lc, conn_slot *s, const char *name, size_t n,
                     lua_State *L, int first, int last) {
  conn *c = lc->c;
  int nargs = last - first + 1, i;
  if (n < 4 || n > 12)
    return;
  switch (toupper((unsigned char)name[0])) {
  case 'B':
    if (name_is(name, n, "BLPOP") || name_is(name, n, "BRPOP") ||
        name_is(name, n, "BZPOPMIN") || name_is(name, n, "BZPOPMAX") ||
        name_is(name, n, "BRPOPLPUSH") || name_is(name, n, "BLMOVE"))
      s->block = nargs > 0 ? arg_seconds(L, last, 1) : 0;
    else if (name_is(name, n, "BLMPOP") || name_is(name, n, "BZMPOP"))
      s->block = nargs > 0 ? arg_seconds(L, first, 1) : 0;
    break;
  case 'X':
    if (name_is(name, n, "XREAD") || name_is(name, n, "XREADGROUP"))
      for (i = first; i < last; i++) {
        size_t k;
        const char *a = lua_type(L, i) == LUA_TSTRING
                            ? lua_tolstring(L, i, &k) : NULL;
        if (a && name_is(a, k, "BLOCK")) {
          s->block = arg_seconds(L, i + 1, 0.001);
          break;
        }
      }
    break;
  case 'W':
    if (name_is(name, n, "WAIT") || name_is(name, n, "WAITAOF"))
      s->block = nargs > 0 ? arg_seconds(L, last, 0.001) : 0;
    else if (name_is(name, n, "WATCH"))
      c->flags |= CONN_WATCH;
    break;
  case 'M':
    if (name_is(name, n, "MULTI"))
      c->flags |= CONN_MULTI;
    else if (name_is(name, n, "MONITOR"))
      c->flags |= CONN_DIRTY;
    break;
  case 'E':
    if (name_is(name, n, "EXEC"))
      c->flags &= ~(CONN_MULTI | CONN_WATCH);
    break;
  case 'D':
    if (name_is(name, n, "DISCARD"))
      c->flags &= ~(CONN_MULTI | CONN_WATCH);
    break;
  case 'U':
    if (name_is(name, n, "UNWATCH"))
      c->flags &= ~CONN_WATCH;
    else if (name_is(name, n, "UNSUBSCRIBE"))
      s->subscribe = 1, s->sub_count = (uint32_t)nargs;
    break;
  case 'S':
    if (name_is(name, n, "SELECT")) {
      lua_Integer db;
      int isnum = 0;
      if (lc->ready)
        c->flags |= CONN_DIRTY;
      db = nargs == 1 ? lua_tointegerx(L, first, &isnum) : 0;
      if (isnum && db >= 0 && db <= INT32_MAX) {
        s->select = 1; /* tracked once the server says OK */
        s->select_db = (int32_t)db;
      }
    } else if (name_is(name, n, "SUBSCRIBE") ||
               name_is(name, n, "SSUBSCRIBE")) {
      c->flags |= CONN_SUBSCRIBED | CONN_DIRTY;
      s->subscribe = 1;
      s->sub_count = (uint32_t)nargs;
    } else if (name_is(name, n, "SUNSUBSCRIBE")) {
      s->subscribe = 1, s->sub_count = (uint32_t)nargs;
    }
    break;
  case 'P':
    if (name_is(name, n, "PSUBSCRIBE")) {
      c->flags |= CONN_SUBSCRIBED | CONN_DIRTY;
      s->subscribe = 1;
      s->sub_count = (uint32_t)nargs;
    } else if (name_is(name, n, "PUNSUBSCRIBE")) {
      s->subscribe = 1, s->sub_count = (uint32_t)nargs;
    }
    break;
  case 'H':
    if (name_is(name, n, "HELLO") && lc->ready)
      c->flags |= CONN_DIRTY;
    break;
  case 'A':
    if (name_is(name, n, "AUTH") && lc->ready)
      c->flags |= CONN_DIRTY;
    break;
  case 'R':
    if (name_is(name, n, "RESET"))
      c->flags |= CONN_DIRTY;
    break;
  case 'C':
    if (name_is(name, n, "CLIENT") && nargs > 0) {
      size_t k;
      const char *a = lua_type(L, first) == LUA_TSTRING
                          ? lua_tolstring(L, first, &k) : NULL;
      /* SETNAME in the handshake is part of the pool key. */
      if (a && (name_is(a, k, "REPLY") || name_is(a, k, "TRACKING") ||
                (name_is(a, k, "SETNAME") && lc->ready)))
        c->flags |= CONN_DIRTY;
    }
    break;
  case 'Q':
    if (name_is(name, n, "QUIT"))
      c->flags |= CONN_DIRTY;
    break;
  }
}

/* Could classify() do anything for this name? Cheap enough to run on
 * every command of a pipeline. */
static int classify_relevant(const char *name, size_t n) {
  if (n < 4 || n > 12)
    return 0;
  switch (toupper((unsigned char)name[0])) {
  case 'A': case 'B': case 'C': case 'D': case 'E': case 'H': case 'M':
  case 'P': case 'Q': case 'R': case 'S': case 'U': case 'W': case 'X':
    return 1;
  default:
    return 0;
  }
}

/* Does classify() read the arguments themselves (not just count them)? */
static int classify_needs_args(const char *name, size_t n) {
  switch (toupper((unsigned char)name[0])) {
  case 'B': case 'C': case 'W': case 'X':
    return 1;
  case 'S':
    return name_is(name, n, "SELECT");
  default:
    return 0;
  }
}

static void flush_cb(void *data) { conn_flush((conn *)data); }

static void cancel_slot(lev_task *t, void *data) {
  conn_abandon((conn *)data, t);
}

/* argn counts the command name as argument #1; idx is the stack slot. */
static int bad_arg(lua_State *L, buf *b, size_t mark, int argn, int idx,
                   const char *what) {
  b->len = mark;
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
    return push_fail(L, "closed", "closed");
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

/* cmd(self, name, ...) and the method sugar (name in upvalue 3). */
static int do_cmd(lua_State *L, int sugar) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  int top = lua_gettop(L), first = sugar ? 2 : 3, i;
  conn *c = lc ? lc->c : NULL;
  const char *name;
  size_t namelen, mark;
  lev_task *t;
  conn_slot *s;
  buf *b;
  t = rc->api->check(rc->lctx, L, "redis: cmd");
  if (sugar) {
    name = lua_tolstring(L, lua_upvalueindex(3), &namelen);
  } else {
    if (top < 2 || lua_type(L, 2) != LUA_TSTRING)
      return luaL_error(L, "redis: cmd: the command name must be a string");
    name = lua_tolstring(L, 2, &namelen);
  }
  if (!c || (c->flags & (CONN_BROKEN | CONN_CLOSING)))
    return no_connection(L, lc, "cmd", sugar);
  b = conn_outbuf(c);
  mark = b->len;
  if (resp_encode_array_header(b, top - first + 2) ||
      resp_encode_bulk(b, name, namelen))
    goto nomem;
  for (i = first; i <= top; i++) {
    int r = encode_arg(L, b, i);
    if (r > 0)
      return bad_arg(L, b, mark, i - first + 2, i, "redis: cmd");
    if (r < 0)
      goto nomem;
  }
  s = conn_push_slot(c);
  if (!s) {
    b->len = mark;
    return push_fail(L, "too many pending commands on this connection",
                     "limit");
  }
  s->waiter = t;
  s->kind = SLOT_CMD;
  classify(lc, s, name, namelen, L, first, top);
  if (c->count == 1)
    conn_arm(c); /* the deadline depends on the blocking time */
  rc->api->park(t, cancel_slot, c);
  rc->api->defer(rc->lctx, flush_cb, c, &c->flush_armed);
  return lua_yield(L, 0);
nomem:
  b->len = mark;
  return luaL_error(L, "redis: cmd: out of memory");
}

static int l_cmd(lua_State *L) { return do_cmd(L, 0); }
static int l_sugar(lua_State *L) { return do_cmd(L, 1); }

/* The pub/sub commands whose confirmations are routed by count: they
 * cannot share a pipeline slot with other replies. */
static int is_pubsub(const char *p, size_t n) {
  return name_is(p, n, "SUBSCRIBE") || name_is(p, n, "PSUBSCRIBE") ||
         name_is(p, n, "SSUBSCRIBE") || name_is(p, n, "UNSUBSCRIBE") ||
         name_is(p, n, "PUNSUBSCRIBE") || name_is(p, n, "SUNSUBSCRIBE");
}

/* Raises the message on top of the stack after undoing what the pipeline
 * did so far: its encoded bytes and the session flags its commands set
 * (an EXEC before a bad argument must not clear MULTI). */
static int pipe_raise(lua_State *L, conn *c, size_t mark, int flags) {
  conn_outbuf(c)->len = mark;
  c->flags = flags;
  luaL_where(L, 1);
  lua_insert(L, -2);
  lua_concat(L, 2);
  return lua_error(L);
}

static int l_pipeline(lua_State *L) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  conn *c = lc ? lc->c : NULL;
  lua_Integer n, i;
  size_t mark;
  lev_task *t;
  conn_slot *s;
  buf *b;
  double block = 0;
  uint32_t sel_at = 0;     /* the pipeline's last SELECT, 1-based */
  int32_t sel_db = 0;
  int flags;
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
  if (!c || (c->flags & (CONN_BROKEN | CONN_CLOSING)))
    return no_connection(L, lc, "pipeline", 0);
  if (n > 0x7fffffff)
    return luaL_error(L, "redis: pipeline: too many commands");
  lua_settop(L, 2);
  b = conn_outbuf(c);
  mark = b->len;
  flags = c->flags;
  for (i = 1; i <= n; i++) {
    lua_Integer argc, k;
    conn_slot probe;
    size_t namelen;
    const char *name;
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE) {
      lua_pushfstring(L, "redis: pipeline: command #%d must be a table of "
                      "arguments, got %s", (int)i, luaL_typename(L, -1));
      return pipe_raise(L, c, mark, flags);
    }
    argc = (lua_Integer)lua_rawlen(L, 3);
    if (argc == 0 || lua_rawgeti(L, 3, 1) != LUA_TSTRING) {
      lua_pushfstring(L, "redis: pipeline: command #%d has no command name",
                      (int)i);
      return pipe_raise(L, c, mark, flags);
    }
    name = lua_tolstring(L, 4, &namelen);
    if (is_pubsub(name, namelen)) {
      lua_pushfstring(L, "redis: pipeline: command #%d: %s cannot be "
                      "pipelined (use cmd, then read for the rest)", (int)i,
                      name);
      return pipe_raise(L, c, mark, flags);
    }
    if (resp_encode_array_header(b, argc) ||
        resp_encode_bulk(b, name, namelen))
      goto nomem;
    for (k = 2; k <= argc; k++) {
      int r;
      lua_rawgeti(L, 3, k);
      r = encode_arg(L, b, 5);
      if (r > 0) {
        lua_pushfstring(L, "redis: pipeline: command #%d: argument #%d "
                        "must be a string or a number, got %s", (int)i,
                        (int)k, luaL_typename(L, 5));
        return pipe_raise(L, c, mark, flags);
      }
      if (r < 0)
        goto nomem;
      lua_pop(L, 1);
    }
    /* Session tracking for every command of the pipeline, whatever its
     * length (WATCH k1 .. k9 must still keep the connection out of the
     * pool). A command too long for the stack is not tracked, so the
     * connection is never pooled. */
    /* The name is still at index 4. Most commands (GET, SET, ...) cannot
     * change the session and are skipped at once; only the few whose
     * arguments matter (blocking times, CLIENT subcommands) get them
     * pushed. */
    memset(&probe, 0, sizeof(probe));
    if (classify_relevant(name, namelen)) {
      if (!classify_needs_args(name, namelen)) {
        classify(lc, &probe, name, namelen, L, 5, 5 + (int)argc - 2);
      } else if (argc > 0x7fffff || !lua_checkstack(L, (int)argc)) {
        c->flags |= CONN_DIRTY; /* too long to check: never pooled */
      } else {
        for (k = 2; k <= argc; k++)
          lua_rawgeti(L, 3, k);
        classify(lc, &probe, name, namelen, L, 5, 5 + (int)argc - 2);
      }
    }
    if (probe.select) {
      sel_at = (uint32_t)i;
      sel_db = probe.select_db;
    }
    if (probe.block < 0 || block < 0)
      block = -1;
    else if (probe.block > block)
      block = probe.block;
    lua_settop(L, 2);
  }
  s = conn_push_slot(c);
  if (!s) {
    b->len = mark;
    c->flags = flags;
    return push_fail(L, "too many pending commands on this connection",
                     "limit");
  }
  lua_createtable(L, (int)n, 0); /* results, at index 3 of this frame */
  s->waiter = t;
  s->kind = SLOT_PIPELINE;
  s->remaining = (uint32_t)n;
  s->aux = 3;
  s->block = block;
  if (sel_at) {
    s->select = 1;
    s->sub_count = sel_at;
    s->select_db = sel_db;
  }
  if (c->count == 1)
    conn_arm(c);
  rc->api->park(t, cancel_slot, c);
  rc->api->defer(rc->lctx, flush_cb, c, &c->flush_armed);
  return lua_yield(L, 0);
nomem:
  b->len = mark;
  c->flags = flags;
  return luaL_error(L, "redis: pipeline: out of memory");
}

/* ---- read ------------------------------------------------------------- */

static void cancel_read(lev_task *t, void *data) {
  lclient *lc = (lclient *)data;
  if (lc->reader == t) {
    lc->reader = NULL;
    if (lc->c)
      conn_wait_timer(lc->c, 0);
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
    if (lc->c && (lc->c->flags & CONN_PAUSED) &&
        lc->qtail - lc->qhead < QUEUE_PAUSE / 2 &&
        lc->ptail - lc->phead < QUEUE_PAUSE / 2)
      conn_pause(lc->c, 0);
    return 1;
  }
  if (!lc->c || (lc->c->flags & (CONN_BROKEN | CONN_CLOSING)))
    return no_connection(L, lc, "read", 0);
  if (lc->c->count > 0)
    return luaL_error(L, "redis: read: commands are pending on this client "
                      "(read() is for replies nobody asked for, such as "
                      "pub/sub messages)");
  if (lc->reader)
    return luaL_error(L, "redis: read: another task is already reading");
  lc->reader = t;
  conn_wait_timer(lc->c, 1);
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

static void cancel_connect(lev_task *t, void *data) {
  ((lclient *)data)->connector = NULL; /* cb_connect closes the conn */
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
      if (tls_ctx_new(&tls.ctx, &cfg, err, sizeof(err)) != TLS_OK)
        return push_fail(L, err, "io");
      tlsp = &tls;
    }
  }
  lua_settop(L, 4);
  lc = new_client(L, rc); /* index 5 */
  c = conn_new(rc->loop, &callbacks, lc, NULL);
  if (!c) {
    if (tlsp)
      tls_ctx_unref(tls.ctx);
    return luaL_error(L, "redis.connect: out of memory");
  }
  r = conn_connect(c, host, (int)port, tlsp, timeout);
  if (tlsp)
    tls_ctx_unref(tls.ctx); /* the session holds its own reference */
  if (r != 0) {
    push_fail(L, conn_error(c), "io");
    c->data = NULL;
    conn_close(c);
    return 3;
  }
  lc->c = c;
  lc->connector = t;
  lc->ud_idx = 5;
  rc->api->park(t, cancel_connect, lc);
  return lua_yield(L, 0);
}

/* core.take(key) -> client, idle_seconds | nil */
static int l_take(lua_State *L) {
  rctx *rc = up_rctx(L);
  const char *key = luaL_checkstring(L, 1);
  uint64_t idle = 0;
  lclient *lc;
  conn *c;
  rc->api->check(rc->lctx, L, "redis.connect");
  uv_update_time(rc->loop);
  /* A connection whose socket is readable was closed by the server (or
   * got what nobody asked for) after the loop last looked: drop it. */
  while ((c = pool_take(&rc->pool, key, uv_now(rc->loop), &idle)) &&
         !conn_idle_usable(c))
    conn_close(c);
  if (!c)
    return 0;
  lc = new_client(L, rc);
  lc->c = c;
  c->data = lc;
  lc->ready = 1;
  set_key(lc, key, strlen(key));
  lua_pushnumber(L, (double)idle / 1000.0);
  return 2;
}

static int l_pool_count(lua_State *L) {
  rctx *rc = up_rctx(L);
  lua_pushinteger(L, (lua_Integer)pool_count(&rc->pool,
                                             luaL_checkstring(L, 1)));
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
    c->timeout = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
    lua_getfield(L, 3, "max_pending");
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0)
      c->max_pending = (size_t)lua_tointeger(L, -1);
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

/* keep: pool the connection if it is clean. wake: commands that other
 * tasks still have pending fail with "closed" now (close() from a task);
 * __gc passes 0, as no task can be waiting on a client it cannot reach. */
static void client_release(lclient *lc, int keep, int wake) {
  conn *c = lc->c;
  rctx *rc = lc->rc;
  lc->closed = 1;
  wake_pushwaiter(lc);
  if (!c)
    return;
  lc->c = NULL;
  wake_reader(lc, "closed", "closed");
  wake_closewaiter(lc, "closed", "closed");
  queue_release(lc);
  if (keep && lc->ready && lc->key && conn_clean(c)) {
    c->data = NULL;
    if (pool_put(&rc->pool, c, lc->key, pool_max()) == 0)
      return;
  }
  if (!wake)
    c->data = NULL;
  conn_close(c); /* fails the pending slots through cb_fail */
  c->data = NULL;
}

static int l_close(lua_State *L) {
  lclient *lc = check_client(L);
  if (lc)
    client_release(lc, !lua_toboolean(L, 2), 1);
  lua_pushboolean(L, 1);
  return 1;
}

static void client_free(lclient *lc) {
  client_release(lc, 0, 0);
  queue_release(lc);
  if (lc->fallback_ref != LUA_NOREF)
    luaL_unref(lc->rc->L, LUA_REGISTRYINDEX, lc->fallback_ref);
  if (lc->subs_ref != LUA_NOREF)
    luaL_unref(lc->rc->L, LUA_REGISTRYINDEX, lc->subs_ref);
  if (lc->push_ref != LUA_NOREF)
    luaL_unref(lc->rc->L, LUA_REGISTRYINDEX, lc->push_ref);
  free(lc->key);
  free(lc);
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
  client_free(lc);
  return 0;
}

/* __close (a `local c <close>` leaving scope, in a task): like close(true),
 * so other tasks' pending commands fail with "closed" instead of hanging. */
static int client_tbc_close(lua_State *L) {
  lclient *lc = check_client(L);
  if (lc)
    client_release(lc, 0, 1);
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

/* core.attach(client, fresh): client takes over fresh's connection (with
 * its pool key and handshake state); fresh is left without one. A
 * connection client still had is closed first, failing what is pending
 * on it with "closed". */
static int l_attach(lua_State *L) {
  lclient *dst = check_client(L), *src = check_client_at(L, 2);
  conn *c, *old;
  luaL_argcheck(L, dst && src, 1, "a closed client");
  if (dst == src)
    return 0;
  c = src->c;
  if (!c)
    return luaL_error(L, "redis.core.attach: the fresh client has no "
                      "connection");
  old = dst->c;
  if (old) {
    dst->c = NULL;
    wake_reader(dst, "closed", "closed");
    conn_close(old); /* fails its pending slots through cb_fail */
    old->data = NULL;
  }
  src->c = NULL;
  c->data = dst;
  dst->c = c;
  sub_adopt(dst, src);
  dst->ready = src->ready;
  free(dst->key);
  dst->key = src->key;
  dst->keylen = src->keylen;
  src->key = NULL;
  src->keylen = 0;
  return 0;
}

/* ---- subscriber: core.sub_mode, core.sub_next, core.sub_hold ---------- */

/* What reached the fresh connection of a reconnect before the attach (as
 * message tables when subscriber.lua's restore hook made it a
 * subscriber's, else in read()'s tagged form) is appended to the
 * subscriber's queue as messages, so none is lost on the way. */
static void sub_adopt(lclient *dst, lclient *src) {
  static const char *const fields3[] = { "kind", "channel", "payload" };
  static const char *const fields4[] = { "kind", "pattern", "channel",
                                         "payload" };
  lua_State *L = dst->rc->L;
  int q, from;
  if (!dst->sub_max || src->qtail <= src->qhead)
    return;
  sub_push_queue(dst, L);
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

static void sub_resume(lclient *lc) {
  if (lc->c && conn_paused(lc->c))
    conn_pause(lc->c, 0);
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
  if (lc->c && conn_paused(lc->c) && lc->qtail - lc->qhead <= lc->sub_max / 2)
    conn_pause(lc->c, 0);
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
  if (!lc || !lc->c || conn_failed(lc->c))
    return push_fail(L, lc && lc->lasterr[0] ? lc->lasterr : "closed",
                     lc && lc->lastcat ? lc->lastcat : "closed");
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
  if (lua_isnil(L, 2) && lc && lc->c && !conn_failed(lc->c) && !lc->reader) {
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
    lua_pushstring(L, lc && lc->lasterr[0] ? lc->lasterr : "closed");
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

/* core.is_open(client) -> boolean: it has a connection that has not
 * failed (commands would be sent, not handed to the fallback). */
static int l_is_open(lua_State *L) {
  lclient *lc = check_client(L);
  lua_pushboolean(L, lc && lc->c &&
                     !(lc->c->flags & (CONN_BROKEN | CONN_CLOSING)));
  return 1;
}

/* core.is_closed(client) -> boolean: close() (or __close) was called. */
static int l_is_closed(lua_State *L) {
  lclient *lc = check_client(L);
  lua_pushboolean(L, !lc || lc->closed);
  return 1;
}

/* core.selected_db(client) -> db | nil: the database of the last SELECT
 * the server accepted on this client (across its connections), nil when
 * there was none since connect (then cfg.db holds). A SELECT queued
 * inside MULTI is not seen. */
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
 * traffic go to core.next_push instead of read(). */
static int l_set_push(lua_State *L) {
  lclient *lc = check_client(L);
  if (lc)
    lc->push_on = lua_toboolean(L, 2);
  return 0;
}

static void cancel_nextpush(lev_task *t, void *data) {
  lclient *lc = (lclient *)data;
  if (lc->pushwaiter == t)
    lc->pushwaiter = NULL;
}

/* core.next_push(client) -> push (an array) | nil once the client was
 * closed. Parks until one arrives; one task at a time. */
static int l_next_push(lua_State *L) {
  lclient *lc = check_client(L);
  rctx *rc = up_rctx(L);
  lev_task *t = rc->api->check(rc->lctx, L, "redis.core.next_push");
  if (!lc)
    return 0;
  if (lc->ptail > lc->phead) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->push_ref);
    lua_rawgeti(L, -1, ++lc->phead);
    lua_pushnil(L);
    lua_rawseti(L, -3, lc->phead);
    if (lc->phead == lc->ptail)
      lc->phead = lc->ptail = 0;
    if (lc->c && (lc->c->flags & CONN_PAUSED) &&
        lc->qtail - lc->qhead < QUEUE_PAUSE / 2 &&
        lc->ptail - lc->phead < QUEUE_PAUSE / 2)
      conn_pause(lc->c, 0);
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

static int reader_next(lua_State *L) {
  lreader *r = (lreader *)luaL_checkudata(L, 1, READER_MT);
  resp_reply rep;
  int st = resp_reader_next(&r->rd, &rep);
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
  if (*box) {
    pool_close_all(&(*box)->pool);
    free(*box);
    *box = NULL;
  }
  return 0;
}

static const luaL_Reg client_methods[] = {
  {"cmd", l_cmd}, {"pipeline", l_pipeline}, {"read", l_read},
  {"close", l_close}, {NULL, NULL}
};

static const luaL_Reg client_meta[] = {
  {"__gc", client_gc}, {"__close", client_tbc_close},
  {"__tostring", client_tostring}, {NULL, NULL}
};

static const luaL_Reg core_funcs[] = {
  {"connect", l_connect}, {"take", l_take}, {"pool_count", l_pool_count},
  {"ready", l_ready}, {"attach", l_attach}, {"wait_closed", l_wait_closed},
  {"set_fallback", l_set_fallback}, {"is_client", l_is_client},
  {"is_open", l_is_open}, {"is_closed", l_is_closed},
  {"selected_db", l_selected_db},
  {"subscriptions", l_subscriptions}, {"set_push", l_set_push},
  {"next_push", l_next_push},
  {"sub_mode", l_sub_mode}, {"sub_next", l_sub_next},
  {"sub_hold", l_sub_hold}, {"sub_method", l_sub_method},
  {NULL, NULL}
};

static const char clients_key = 'c';

EXPORT int luaopen_redis_core(lua_State *L);

int luaopen_redis_core(lua_State *L) {
  const lev_api *api = lev_api_get(L);
  rctx *rc;
  rctx **box;
  int clients, methods;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &rctx_key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    rc = (rctx *)calloc(1, sizeof(*rc));
    if (!rc)
      return luaL_error(L, "redis.core: out of memory");
    rc->api = api;
    rc->lctx = api->ctx(L);
    rc->loop = api->loop(rc->lctx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    rc->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    pool_init(&rc->pool);
    box = (rctx **)lua_newuserdatauv(L, sizeof(*box), 0);
    *box = rc;
    lua_newtable(L);
    lua_pushcfunction(L, rctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
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
    lua_pushcfunction(L, reader_next);
    lua_setfield(L, -2, "next");
    lua_pushcfunction(L, reader_pending);
    lua_setfield(L, -2, "pending");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, reader_gc);
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
  lua_pushcfunction(L, l_encode);
  lua_setfield(L, -2, "encode");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, RESP_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
