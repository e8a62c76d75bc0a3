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

#include "cluster_glue.h"
#include "conn.h"
#include "lev.h"
#include "pool.h"
#include "reply.h"
#include "tls_opts.h"

#define EXPORT __attribute__((visibility("default")))
#define CLIENT_MT "redis.client"
#define READER_MT "redis.reader"
#define QUEUE_PAUSE 10000   /* read() backlog that pauses the socket */

static const char rctx_key = 'r';

typedef struct rctx {
  const lev_api *api;
  lev_ctx *lctx;
  uv_loop_t *loop;
  lua_State *L;            /* the main thread: a stack for read() queues */
  pool pool;
} rctx;

typedef struct lclient {
  conn *c;
  rctx *rc;
  int ready;               /* handshake done: AUTH/SELECT now mark dirty */
  char *key;               /* pool key */
  void *connector;         /* task waiting in connect */
  int ud_idx;              /* the client's stack index in that task */
  void *reader;            /* task waiting in read() */
  int queue_ref;           /* read() backlog: table in the registry */
  lua_Integer qhead, qtail;
} lclient;

/* ---- helpers ---------------------------------------------------------- */

static rctx *up_rctx(lua_State *L) {
  return (rctx *)lua_touserdata(L, lua_upvalueindex(1));
}

static lclient *check_client(lua_State *L) {
  return (lclient *)luaL_checkudata(L, 1, CLIENT_MT);
}

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

static void cb_close(conn *c) {
  lclient *lc = (lclient *)c->data;
  if (!lc)
    return;
  lc->c = NULL;
  wake_reader(lc, c->errmsg[0] ? c->errmsg : "closed",
              c->errmsg[0] ? category_name(c->errcode) : "closed");
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
      if (lc->ready)
        c->flags |= CONN_DIRTY;
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
    if (name_is(name, n, "HELLO"))
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
      if (a && (name_is(a, k, "REPLY") || name_is(a, k, "TRACKING") ||
                name_is(a, k, "SETNAME")))
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
static int classify_needs_args(const char *name) {
  switch (toupper((unsigned char)name[0])) {
  case 'B': case 'C': case 'W': case 'X':
    return 1;
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

/* cmd(self, name, ...) and the method sugar (name in upvalue 2). */
static int do_cmd(lua_State *L, int sugar) {
  lclient *lc = check_client(L);
  rctx *rc = lc->rc;
  int top = lua_gettop(L), first = sugar ? 2 : 3, i;
  conn *c = lc->c;
  const char *name;
  size_t namelen, mark;
  lev_task *t;
  conn_slot *s;
  buf *b;
  t = rc->api->check(rc->lctx, L, "redis: cmd");
  if (sugar) {
    name = lua_tolstring(L, lua_upvalueindex(2), &namelen);
  } else {
    if (top < 2 || lua_type(L, 2) != LUA_TSTRING)
      return luaL_error(L, "redis: cmd: the command name must be a string");
    name = lua_tolstring(L, 2, &namelen);
  }
  if (!c || (c->flags & (CONN_BROKEN | CONN_CLOSING)))
    return push_fail(L, "closed", "closed");
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
  rctx *rc = lc->rc;
  conn *c = lc->c;
  lua_Integer n, i;
  size_t mark;
  lev_task *t;
  conn_slot *s;
  buf *b;
  double block = 0;
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
    return push_fail(L, "closed", "closed");
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
      if (!classify_needs_args(name)) {
        classify(lc, &probe, name, namelen, L, 5, 5 + (int)argc - 2);
      } else if (argc > 0x7fffff || !lua_checkstack(L, (int)argc)) {
        c->flags |= CONN_DIRTY; /* too long to check: never pooled */
      } else {
        for (k = 2; k <= argc; k++)
          lua_rawgeti(L, 3, k);
        classify(lc, &probe, name, namelen, L, 5, 5 + (int)argc - 2);
      }
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
  rctx *rc = lc->rc;
  lev_task *t = rc->api->check(rc->lctx, L, "redis: read");
  if (lc->qtail > lc->qhead) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->queue_ref);
    lua_rawgeti(L, -1, ++lc->qhead);
    lua_pushnil(L);
    lua_rawseti(L, -3, lc->qhead);
    if (lc->qhead == lc->qtail)
      lc->qhead = lc->qtail = 0;
    if (lc->c && (lc->c->flags & CONN_PAUSED) &&
        lc->qtail - lc->qhead < QUEUE_PAUSE / 2)
      conn_pause(lc->c, 0);
    return 1;
  }
  if (!lc->c || (lc->c->flags & (CONN_BROKEN | CONN_CLOSING)))
    return push_fail(L, "closed", "closed");
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

static lclient *new_client(lua_State *L, rctx *rc) {
  lclient *lc = (lclient *)lua_newuserdatauv(L, sizeof(*lc), 1);
  memset(lc, 0, sizeof(*lc));
  lc->rc = rc;
  lc->queue_ref = LUA_NOREF;
  luaL_setmetatable(L, CLIENT_MT);
  return lc;
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
  lc->key = strdup(key);
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
  const char *key = luaL_checkstring(L, 2);
  free(lc->key);
  lc->key = strdup(key);
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
  lua_setiuservalue(L, 1, 1);
  return 0;
}

/* keep: pool the connection if it is clean. wake: commands that other
 * tasks still have pending fail with "closed" now (close() from a task);
 * __gc passes 0, as no task can be waiting on a client it cannot reach. */
static void client_release(lclient *lc, int keep, int wake) {
  conn *c = lc->c;
  rctx *rc = lc->rc;
  if (!c)
    return;
  lc->c = NULL;
  wake_reader(lc, "closed", "closed");
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
  client_release(lc, !lua_toboolean(L, 2), 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int client_gc(lua_State *L) {
  lclient *lc = check_client(L);
  client_release(lc, 0, 0);
  free(lc->key);
  lc->key = NULL;
  return 0;
}

/* __close (a `local c <close>` leaving scope, in a task): like close(true),
 * so other tasks' pending commands fail with "closed" instead of hanging. */
static int client_tbc_close(lua_State *L) {
  client_release(check_client(L), 0, 1);
  return 0;
}

static int client_tostring(lua_State *L) {
  lclient *lc = check_client(L);
  lua_getiuservalue(L, 1, 1);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "host");
    lua_getfield(L, -2, "port");
    lua_pushfstring(L, "redis.client (%s:%s%s): %p", lua_tostring(L, -2),
                    lua_tostring(L, -1), lc->c ? "" : ", closed",
                    (void *)lc);
  } else {
    lua_pushfstring(L, "redis.client (%s): %p", lc->c ? "open" : "closed",
                    (void *)lc);
  }
  return 1;
}

/* __index: methods, then cfg, then method sugar made on first use. */
static int client_index(lua_State *L) {
  size_t n, i;
  const char *k;
  char upper[64];
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  if (lua_type(L, 2) != LUA_TSTRING)
    return 1;
  k = lua_tolstring(L, 2, &n);
  if (n == 3 && memcmp(k, "cfg", 3) == 0) {
    lua_getiuservalue(L, 1, 1);
    return 1;
  }
  if (n == 0 || n >= sizeof(upper) || k[0] == '_')
    return 1;
  for (i = 0; i < n; i++)
    upper[i] = (char)toupper((unsigned char)k[i]);
  lua_pushvalue(L, lua_upvalueindex(2)); /* rctx */
  lua_pushlstring(L, upper, n);
  lua_pushcclosure(L, l_sugar, 2);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, lua_upvalueindex(1));
  return 1;
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

static const luaL_Reg core_funcs[] = {
  {"connect", l_connect}, {"take", l_take}, {"pool_count", l_pool_count},
  {"ready", l_ready},
  {NULL, NULL}
};

EXPORT int luaopen_redis_core(lua_State *L);

int luaopen_redis_core(lua_State *L) {
  const lev_api *api = lev_api_get(L);
  rctx *rc;
  rctx **box;
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

  /* The client class: methods first, sugar generated and cached there. */
  if (luaL_newmetatable(L, CLIENT_MT)) {
    int mt = lua_gettop(L);
    lua_newtable(L); /* methods */
    lua_pushlightuserdata(L, rc);
    luaL_setfuncs(L, client_methods, 1);
    lua_pushvalue(L, -1);
    lua_pushlightuserdata(L, rc);
    lua_pushcclosure(L, client_index, 2);
    lua_setfield(L, mt, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, client_gc);
    lua_setfield(L, mt, "__gc");
    lua_pushcfunction(L, client_tbc_close);
    lua_setfield(L, mt, "__close");
    lua_pushcfunction(L, client_tostring);
    lua_setfield(L, mt, "__tostring");
  }
  lua_pop(L, 1);
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
  lua_pushlightuserdata(L, rc);
  luaL_setfuncs(L, core_funcs, 1);
  lua_pushcfunction(L, l_reader);
  lua_setfield(L, -2, "reader");
  lua_pushcfunction(L, l_encode);
  lua_setfield(L, -2, "encode");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, RESP_VERSION);
  lua_setfield(L, -2, "version");
  /* The shared client methods, so Lua modules can add methods to them. */
  luaL_getmetatable(L, CLIENT_MT);
  lua_getfield(L, -1, "__index");
  lua_getupvalue(L, -1, 1);
  lua_setfield(L, -4, "methods");
  lua_pop(L, 2);
  cluster_glue_register(L);
  return 1;
}
