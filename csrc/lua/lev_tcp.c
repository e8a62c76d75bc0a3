/* lev.tcp: TCP streams and servers for Lua tasks, on stream.c.
 *
 * connect(host, port, { ssl = ... }) makes a TLS client stream; ssl takes
 * what redis.connect's ssl takes (true, or { verify, ca, cert, key,
 * server_name }), each connect with a context of its own.
 *
 * A stream reads only while a task waits in read(): the kernel buffers the
 * rest, so a slow reader applies back-pressure instead of growing memory.
 * Connection handlers of a server run as daemon tasks: they do not keep
 * lev.run alive, and neither does the listening socket. A handler's stream
 * is closed when the handler returns or fails.
 *
 * Established streams are kept in a per-state list and paired with their
 * other end when that end is a stream of this process too, so that lev.run
 * can tell a wait that nothing can ever satisfy (both ends only reading)
 * from an ordinary network wait: tcp_stalled is registered as a stall
 * probe (lev.h).
 *
 * Like redis.core, this file uses lev only through lev.h's API (the api
 * pointer below), never the runtime's structs. Failures go through one
 * helper, tcp_fail, with an err.h code: nil, text, category as every
 * Lua-facing failure (docs/CONVENTIONS.md).
 */
#include "lev.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stream.h"
#include "tls_opts.h"

/* lev.so's API table: the same for every Lua state. */
static const lev_api *api;

int luaopen_lev_tcp(lua_State *L, const lev_api *a, lev_ctx *ctx);

#define STREAM_MT "lev.tcp.stream"
#define SERVER_MT "lev.tcp.server"
#define READ_CHUNK 65536

static const char state_key = 't';    /* registry: the tcp_state userdata */
static const char wrapper_key = 'w';  /* registry: the handler wrapper */

typedef struct lstream lstream;

/* Per lua_State; a userdata anchored in the registry (freed after every
 * finaliser has run, so streams may unlink themselves until the end). */
typedef struct tcp_state {
  lev_ctx *ctx;
  lstream *established;  /* open streams with known endpoints */
  int pairs;             /* in-process connections (both ends ours) */
} tcp_state;


struct lstream {
  stream s;
  lev_ctx *ctx;
  tcp_state *st;
  lstream *prev, *next;  /* st->established, while tracked */
  lstream *twin;         /* the other end, when it is ours too */
  int tracked;
  struct sockaddr_storage local, remote;
  lev_task *reader, *writer, *connector;
  int write_ref;         /* the string being written, anchored */
  int closed;            /* close() was called */
  int handle_closed;     /* the close callback ran */
  int has_ud;
  int eof;
  int err;
  int timed_out;
  uv_timer_t *timer;     /* connect deadline */
  char *rbuf;
};

typedef struct lserver {
  uv_tcp_t tcp;
  lev_ctx *ctx;
  tcp_state *st;
  int handler_ref;
  int closed;
  int has_ud;
  int handle_closed;
} lserver;

static lstream **check_box(lua_State *L) {
  return (lstream **)luaL_checkudata(L, 1, STREAM_MT);
}

/* ---- pairing the two ends of an in-process connection ------------------ */

static int same_addr(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a;
    const struct sockaddr_in *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return 0;
}

/* Called once a stream is connected (or accepted). */
static void ls_track(lstream *ls) {
  int n1 = sizeof(ls->local), n2 = sizeof(ls->remote);
  lstream *o;
  if (ls->tracked)
    return;
  if (uv_tcp_getsockname(&ls->s.tcp, (struct sockaddr *)&ls->local, &n1) ||
      uv_tcp_getpeername(&ls->s.tcp, (struct sockaddr *)&ls->remote, &n2))
    return;
  for (o = ls->st->established; o; o = o->next) {
    if (!o->twin && same_addr(&o->local, &ls->remote) &&
        same_addr(&o->remote, &ls->local)) {
      o->twin = ls;
      ls->twin = o;
      ls->st->pairs++;
      break;
    }
  }
  ls->tracked = 1;
  ls->prev = NULL;
  ls->next = ls->st->established;
  if (ls->next)
    ls->next->prev = ls;
  ls->st->established = ls;
}

static void ls_untrack(lstream *ls) {
  if (!ls->tracked)
    return;
  if (ls->twin) {
    ls->twin->twin = NULL;
    ls->st->pairs--;
  }
  ls->twin = NULL;
  if (ls->prev)
    ls->prev->next = ls->next;
  else
    ls->st->established = ls->next;
  if (ls->next)
    ls->next->prev = ls->prev;
  ls->tracked = 0;
}

static void count_live(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h) && uv_is_active(h) && uv_has_ref(h))
    ++*(unsigned *)arg;
}

/* 1 when every handle that keeps the loop alive is a stream reading from
 * another stream of this process and no request (a write, a connect, a
 * name lookup; of any module) is in flight: then no byte can ever arrive.
 * Free unless the process talks to itself over lev.tcp; then a walk over
 * the handles. */
static int tcp_stalled(void *data) {
  tcp_state *st = (tcp_state *)data; /* checked before every poll */
  uv_loop_t *loop;
  lstream *ls;
  unsigned live = 0, reading = 0;
  if (st->pairs == 0)
    return 0;
  loop = api->loop(st->ctx);
  if (loop->active_reqs.count != 0)
    return 0;
  uv_walk(loop, count_live, &live);
  for (ls = st->established; ls; ls = ls->next) {
    uv_handle_t *h = (uv_handle_t *)&ls->s.tcp;
    if (ls->twin && !ls->twin->closed && uv_is_active(h) && uv_has_ref(h))
      reading++;
  }
  return reading > 0 && reading == live;
}

/* ---- lifecycle -------------------------------------------------------- */

/* L: any live thread of the state, for the registry. */
static void ls_maybe_free(lstream *ls, lua_State *L) {
  if (ls->has_ud || !ls->handle_closed || ls->timer)
    return;
  ls_untrack(ls);
  if (ls->write_ref != LUA_NOREF && !api->closing(ls->ctx))
    luaL_unref(L, LUA_REGISTRYINDEX, ls->write_ref);
  free(ls->rbuf);
  stream_dispose(&ls->s);
  free(ls);
}

static void ls_on_closed(stream *s) {
  lstream *ls = (lstream *)s->data;
  ls->handle_closed = 1;
  ls_maybe_free(ls, api->state(ls->ctx));
}

static void ls_timer_closed(uv_handle_t *h) {
  lstream *ls = (lstream *)h->data;
  free(h);
  ls->timer = NULL;
  ls_maybe_free(ls, api->state(ls->ctx));
}

static void ls_stop_timer(lstream *ls) {
  if (ls->timer && !uv_is_closing((uv_handle_t *)ls->timer))
    uv_close((uv_handle_t *)ls->timer, ls_timer_closed);
}

static void push_stream(lua_State *L, lstream *ls) {
  lstream **box = (lstream **)lua_newuserdatauv(L, sizeof(*box), 0);
  *box = ls;
  ls->has_ud = 1;
  luaL_setmetatable(L, STREAM_MT);
}

static lstream *ls_new(lev_ctx *ctx, tcp_state *st) {
  lstream *ls = (lstream *)calloc(1, sizeof(*ls));
  if (!ls)
    return NULL;
  ls->ctx = ctx;
  ls->st = st;
  ls->write_ref = LUA_NOREF;
  ls->s.data = ls;
  if (stream_init(api->loop(ctx), &ls->s) != 0) {
    free(ls);
    return NULL;
  }
  return ls;
}

/* The one shape of a lev.tcp failure: nil, text. err (an err.h code) is
 * what the category will be once lev.tcp's results carry one. */
static int tcp_fail(lua_State *L, const char *text, int err) {
  return lev_push_fail(L, text, levr_category(err));
}

/* Wakes t with tcp_fail's values. */
static void wake_fail(lev_task *t, const char *text, int err) {
  api->wake(t, tcp_fail(api->thread(t), text, err));
}

/* The category of a stream error code. */
static int stream_err(int status) {
  return status == UV_ETIMEDOUT ? LEVR_ETIMEOUT
       : status == UV_ECANCELED ? LEVR_ECLOSED : LEVR_EIO;
}

/* Wakes whoever waits on the stream with nil, text. */
static void ls_fail_waiters(lstream *ls, const char *text) {
  lev_task *t;
  if ((t = ls->reader) != NULL) {
    ls->reader = NULL;
    wake_fail(t, text, LEVR_ECLOSED);
  }
}

static void ls_close(lstream *ls) {
  if (ls->closed)
    return;
  ls->closed = 1;
  ls_untrack(ls);
  ls_stop_timer(ls);
  ls_fail_waiters(ls, "closed");
  stream_close(&ls->s, ls_on_closed);
}

/* ---- connect ---------------------------------------------------------- */

static void ls_on_connected(stream *s, int status) {
  lstream *ls = (lstream *)s->data;
  lev_task *t = ls->connector;
  ls->connector = NULL;
  ls_stop_timer(ls);
  if (!t || status != 0) {
    if (t) {
      if (ls->timed_out)
        wake_fail(t, "timeout", LEVR_ETIMEOUT);
      else
        wake_fail(t, stream_strerror(s, status), stream_err(status));
    }
    ls->closed = 1;
    stream_close(s, ls_on_closed);
    return;
  }
  ls_track(ls);
  push_stream(api->thread(t), ls);
  api->wake(t, 1);
}

static void ls_on_connect_timeout(uv_timer_t *h) {
  lstream *ls = (lstream *)h->data;
  ls->timed_out = 1;
  ls->closed = 1;
  stream_close(&ls->s, ls_on_closed); /* connect cb fires: ECANCELED */
}

static void cancel_connect(lev_task *t, void *data) {
  lstream *ls = (lstream *)data;
  ls->connector = NULL;
  ls_stop_timer(ls);
  if (!ls->closed) {
    ls->closed = 1;
    stream_close(&ls->s, ls_on_closed);
  }
}

static int l_connect(lua_State *L) {
  lev_ctx *ctx = (lev_ctx *)lua_touserdata(L, lua_upvalueindex(1));
  tcp_state *st = (tcp_state *)lua_touserdata(L, lua_upvalueindex(2));
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  double timeout = 0;
  tls_config tcfg;
  stream_tls tls, *tlsp = NULL;
  int want_tls = 0;
  lev_task *t;
  lstream *ls;
  int r;
  luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port must be in 1..65535");
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    lua_getfield(L, 3, "timeout");
    if (!lua_isnil(L, -1)) {
      timeout = lua_tonumber(L, -1);
      luaL_argcheck(L, lua_type(L, -1) == LUA_TNUMBER && timeout > 0 &&
                    timeout < 1e9, 3, "timeout must be a number > 0");
    }
    lua_pop(L, 1);
    lua_getfield(L, 3, "ssl"); /* stays: it anchors the strings in tcfg */
    want_tls = tls_opts_read(L, -1, 3, &tcfg, &tls.server_name);
  }
  t = api->check(ctx, L, "lev.tcp.connect");
  if (want_tls) {
    char err[256];
    if (tls_opts_context(L, &tcfg, &tls.ctx, err, sizeof(err)) != TLS_OK)
      return tcp_fail(L, err[0] ? err : "ssl: cannot create a context",
                      LEVR_EIO);
    tlsp = &tls;
  }
  ls = ls_new(ctx, st);
  if (!ls) {
    if (tlsp)
      tls_ctx_unref(tls.ctx);
    return luaL_error(L, "lev.tcp.connect: out of memory");
  }
  r = stream_connect(&ls->s, host, (int)port, tlsp, ls_on_connected);
  if (tlsp)
    tls_ctx_unref(tls.ctx); /* the session holds its own reference */
  if (r != 0) {
    tcp_fail(L, stream_strerror(&ls->s, r), stream_err(r));
    ls->closed = 1;
    stream_close(&ls->s, ls_on_closed);
    return 3;
  }
  if (timeout > 0) {
    ls->timer = (uv_timer_t *)malloc(sizeof(uv_timer_t));
    if (ls->timer) {
      uv_timer_init(api->loop(ctx), ls->timer);
      ls->timer->data = ls;
      uv_timer_start(ls->timer, ls_on_connect_timeout,
                     (uint64_t)(timeout * 1000 + 0.5), 0);
    }
  }
  ls->connector = t;
  api->park(t, cancel_connect, ls);
  return lua_yield(L, 0);
}

/* ---- read / write ----------------------------------------------------- */

static char *ls_alloc(stream *s, size_t suggested, size_t *cap) {
  lstream *ls = (lstream *)s->data;
  if (!ls->rbuf)
    ls->rbuf = (char *)malloc(READ_CHUNK);
  *cap = ls->rbuf ? READ_CHUNK : 0;
  return ls->rbuf;
}

static void ls_on_read(stream *s, ssize_t n) {
  lstream *ls = (lstream *)s->data;
  lev_task *t = ls->reader;
  if (n == 0)
    return; /* nothing read; the buffer is ours anyway */
  stream_read_stop(s);
  ls->reader = NULL;
  if (n < 0) {
    if (n == UV_EOF)
      ls->eof = 1;
    else
      ls->err = (int)n;
  }
  if (!t)
    return;
  if (n > 0) {
    lua_pushlstring(api->thread(t), ls->rbuf, (size_t)n);
    api->wake(t, 1);
  } else if (n == UV_EOF) {
    lua_pushnil(api->thread(t));
    api->wake(t, 1);
  } else {
    wake_fail(t, stream_strerror(s, (int)n), stream_err((int)n));
  }
}

static void cancel_read(lev_task *t, void *data) {
  lstream *ls = (lstream *)data;
  ls->reader = NULL;
  if (!ls->closed)
    stream_read_stop(&ls->s);
}

static lstream *check_open(lua_State *L) {
  lstream *ls = *check_box(L);
  return ls && !ls->closed ? ls : NULL;
}

static int ls_read(lua_State *L) {
  lstream *ls = check_open(L);
  lev_task *t;
  int r;
  if (!ls)
    return tcp_fail(L, "closed", LEVR_ECLOSED);
  t = api->check(ls->ctx, L, "stream:read");
  if (ls->eof) {
    lua_pushnil(L);
    return 1;
  }
  if (ls->err)
    return tcp_fail(L, stream_strerror(&ls->s, ls->err),
                    stream_err(ls->err));
  if (ls->reader)
    return luaL_error(L, "stream:read: another task is already reading");
  /* The reader is registered and parked first: stream_read_start may hand
   * over bytes at once (plaintext a TLS session already decrypted), and
   * then ls_on_read wakes this task before it has yielded. lev queues it;
   * the values pushed for it are on this stack and become read()'s
   * results when the scheduler resumes it. */
  ls->reader = t;
  api->park(t, cancel_read, ls);
  r = stream_read_start(&ls->s, ls_alloc, ls_on_read);
  if (r != 0 && ls->reader == t && api->unpark(t)) {
    ls->reader = NULL;
    return tcp_fail(L, stream_strerror(&ls->s, r), stream_err(r));
  }
  return lua_yield(L, 0);
}

static void ls_on_written(stream *s, int status) {
  lstream *ls = (lstream *)s->data;
  lev_task *t = ls->writer;
  ls->writer = NULL;
  if (!api->closing(ls->ctx))
    luaL_unref(api->state(ls->ctx), LUA_REGISTRYINDEX, ls->write_ref);
  ls->write_ref = LUA_NOREF;
  if (!t)
    return;
  if (status == 0) {
    lua_pushboolean(api->thread(t), 1);
    api->wake(t, 1);
  } else {
    wake_fail(t, stream_strerror(s, status), stream_err(status));
  }
}

static void cancel_write(lev_task *t, void *data) {
  ((lstream *)data)->writer = NULL; /* the bytes still go out */
}

static int ls_write(lua_State *L) {
  lstream *ls = check_open(L);
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  lev_task *t;
  int r;
  if (!ls)
    return tcp_fail(L, "closed", LEVR_ECLOSED);
  t = api->check(ls->ctx, L, "stream:write");
  if (stream_writing(&ls->s))
    return luaL_error(L, "stream:write: a write is already in progress "
                      "(another task is writing, or a write was abandoned)");
  if (len == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  r = stream_write(&ls->s, p, len, ls_on_written);
  if (r == 1) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (r < 0)
    return tcp_fail(L, stream_strerror(&ls->s, r), stream_err(r));
  lua_pushvalue(L, 2);
  ls->write_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ls->writer = t;
  api->park(t, cancel_write, ls);
  return lua_yield(L, 0);
}

static int ls_close_m(lua_State *L) {
  lstream *ls = *check_box(L);
  if (ls)
    ls_close(ls);
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc and __close. As __close (a `local s <close>` going out of scope)
 * another task may be parked in read: it is woken with nil, "closed". */
static int ls_gc(lua_State *L) {
  lstream **box = check_box(L);
  lstream *ls = *box;
  *box = NULL;
  if (!ls)
    return 0;
  ls->has_ud = 0;
  ls_close(ls);
  ls_maybe_free(ls, L);
  return 0;
}

static void format_addr(const struct sockaddr_storage *ss, char *out,
                        size_t n) {
  char ip[64] = "?";
  int port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, sizeof(ip));
    port = ntohs(a->sin_port);
    snprintf(out, n, "%s:%d", ip, port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, sizeof(ip));
    port = ntohs(a->sin6_port);
    snprintf(out, n, "[%s]:%d", ip, port);
  } else {
    snprintf(out, n, "?");
  }
}

static int ls_peer(lua_State *L) {
  lstream *ls = check_open(L);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  char out[80];
  if (!ls || uv_tcp_getpeername(&ls->s.tcp, (struct sockaddr *)&ss, &len))
    return tcp_fail(L, "closed", LEVR_ECLOSED);
  format_addr(&ss, out, sizeof(out));
  lua_pushstring(L, out);
  return 1;
}

static int ls_tostring(lua_State *L) {
  lstream *ls = *check_box(L);
  lua_pushfstring(L, "lev.tcp.stream (%s): %p", ls && !ls->closed ? "open"
                  : "closed", (void *)ls);
  return 1;
}

/* ---- servers ---------------------------------------------------------- */

static void srv_maybe_free(lserver *srv) {
  if (srv->has_ud || !srv->handle_closed)
    return;
  free(srv);
}

static void srv_on_closed(uv_handle_t *h) {
  lserver *srv = (lserver *)h->data;
  srv->handle_closed = 1;
  srv_maybe_free(srv);
}

static void srv_close(lserver *srv, lua_State *L) {
  if (srv->closed)
    return;
  srv->closed = 1;
  if (!api->closing(srv->ctx))
    luaL_unref(L, LUA_REGISTRYINDEX, srv->handler_ref);
  srv->handler_ref = LUA_NOREF;
  uv_close((uv_handle_t *)&srv->tcp, srv_on_closed);
}

static void srv_on_connection(uv_stream_t *h, int status) {
  lserver *srv = (lserver *)h->data;
  lev_ctx *ctx = srv->ctx;
  lua_State *L = api->state(ctx);
  lstream *ls;
  if (status != 0 || srv->closed || api->closing(ctx))
    return;
  ls = ls_new(ctx, srv->st);
  if (!ls)
    return;
  if (stream_accept(h, &ls->s) != 0) {
    ls->closed = 1;
    stream_close(&ls->s, ls_on_closed);
    return;
  }
  ls_track(ls);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &wrapper_key);
  lua_rawgeti(L, LUA_REGISTRYINDEX, srv->handler_ref);
  push_stream(L, ls);
  api->spawn(ctx, L, 2, 1);
}

static int resolve_bind(lua_State *L, const char *host, int port,
                        struct sockaddr_storage *ss) {
  struct addrinfo hints, *res = NULL;
  uv_getaddrinfo_t req;
  char portstr[16];
  int r;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  snprintf(portstr, sizeof(portstr), "%d", port);
  /* A NULL callback makes uv_getaddrinfo synchronous: listen() is rare and
   * usually given a literal address. */
  r = uv_getaddrinfo(api->loop(api->ctx(L)), &req, NULL, host, portstr,
                     &hints);
  if (r != 0)
    return r;
  res = req.addrinfo;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  uv_freeaddrinfo(res);
  return 0;
}

static int l_listen(lua_State *L) {
  lev_ctx *ctx = (lev_ctx *)lua_touserdata(L, lua_upvalueindex(1));
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  struct sockaddr_storage ss;
  lserver *srv, **box;
  int r;
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port must be in 0..65535");
  luaL_checktype(L, 3, LUA_TFUNCTION);
  memset(&ss, 0, sizeof(ss));
  r = resolve_bind(L, host, (int)port, &ss);
  if (r != 0) {
    lua_pushfstring(L, "dns: %s", uv_strerror(r));
    return tcp_fail(L, lua_tostring(L, -1), LEVR_EIO);
  }
  srv = (lserver *)calloc(1, sizeof(*srv));
  if (!srv)
    return luaL_error(L, "lev.tcp.listen: out of memory");
  srv->ctx = ctx;
  srv->st = (tcp_state *)lua_touserdata(L, lua_upvalueindex(2));
  srv->handler_ref = LUA_NOREF;
  uv_tcp_init(api->loop(ctx), &srv->tcp);
  srv->tcp.data = srv;
  r = uv_tcp_bind(&srv->tcp, (const struct sockaddr *)&ss, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&srv->tcp, 511, srv_on_connection);
  if (r != 0) {
    srv->closed = 1;
    uv_close((uv_handle_t *)&srv->tcp, srv_on_closed);
    return tcp_fail(L, uv_strerror(r), LEVR_EIO);
  }
  uv_unref((uv_handle_t *)&srv->tcp);
  lua_pushvalue(L, 3);
  srv->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  box = (lserver **)lua_newuserdatauv(L, sizeof(*box), 0);
  *box = srv;
  srv->has_ud = 1;
  luaL_setmetatable(L, SERVER_MT);
  return 1;
}

static lserver **check_srv(lua_State *L) {
  return (lserver **)luaL_checkudata(L, 1, SERVER_MT);
}

static int srv_port(lua_State *L) {
  lserver *srv = *check_srv(L);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (!srv || srv->closed ||
      uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&ss, &len) != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  lua_pushinteger(L, ntohs(ss.ss_family == AF_INET6
                           ? ((struct sockaddr_in6 *)&ss)->sin6_port
                           : ((struct sockaddr_in *)&ss)->sin_port));
  return 1;
}

static int srv_close_m(lua_State *L) {
  lserver *srv = *check_srv(L);
  if (srv)
    srv_close(srv, L);
  lua_pushboolean(L, 1);
  return 1;
}

static int srv_gc(lua_State *L) {
  lserver **box = check_srv(L);
  lserver *srv = *box;
  *box = NULL;
  if (!srv)
    return 0;
  srv->has_ud = 0;
  srv_close(srv, L);
  srv_maybe_free(srv);
  return 0;
}

static int srv_tostring(lua_State *L) {
  lserver *srv = *check_srv(L);
  lua_pushfstring(L, "lev.tcp.server (%s): %p", srv && !srv->closed
                  ? "listening" : "closed", (void *)srv);
  return 1;
}

static const luaL_Reg stream_methods[] = {
  {"read", ls_read}, {"write", ls_write}, {"close", ls_close_m},
  {"peer", ls_peer}, {NULL, NULL}
};

static const luaL_Reg server_methods[] = {
  {"port", srv_port}, {"close", srv_close_m}, {NULL, NULL}
};

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction gc, lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

/* Runs a connection handler; the to-be-closed variable closes the stream
 * when the handler returns, fails (lev closes a failed task's stack) or is
 * abandoned. */
static const char wrapper_src[] =
  "local handler, stream = ...\n"
  "local guard <close> = stream\n"
  "return handler(stream)\n";

int luaopen_lev_tcp(lua_State *L, const lev_api *a, lev_ctx *ctx) {
  tcp_state *st;
  api = a;
  new_class(L, STREAM_MT, stream_methods, ls_gc, ls_tostring);
  new_class(L, SERVER_MT, server_methods, srv_gc, srv_tostring);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key);
  st = (tcp_state *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!st) {
    st = (tcp_state *)lua_newuserdatauv(L, sizeof(*st), 0);
    st->ctx = ctx;
    st->established = NULL;
    st->pairs = 0;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key); /* owns st */
    if (luaL_loadbuffer(L, wrapper_src, sizeof(wrapper_src) - 1,
                        "=lev.tcp.listen handler") != LUA_OK)
      return lua_error(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &wrapper_key);
  }
  api->stall_probe(ctx, tcp_stalled, st);
  lua_newtable(L);
  lua_pushlightuserdata(L, ctx);
  lua_pushlightuserdata(L, st);
  lua_pushcclosure(L, l_connect, 2);
  lua_setfield(L, -2, "connect");
  lua_pushlightuserdata(L, ctx);
  lua_pushlightuserdata(L, st);
  lua_pushcclosure(L, l_listen, 2);
  lua_setfield(L, -2, "listen");
  return 1;
}
