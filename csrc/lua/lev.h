/* lev: the coroutine runtime, as other C modules see it.
 *
 * lev.so owns one context per lua_State (the uv loop, the tasks, the ready
 * queue). Another C module (redis/core.so) is a separate shared object, so
 * it cannot link to lev's functions: luaopen_lev stores a lev_api table of
 * function pointers in the registry under LEV_API_KEY, and lev_api_get()
 * (below, header-only) requires "lev" and fetches it.
 *
 * A task is a coroutine run by the scheduler. A C function running inside a
 * task parks it with api->park() and then returns lua_yield(L, 0) in tail
 * position. Later, from a libuv callback, the waiter pushes the values that
 * the C function should return onto api->thread(task) and calls
 * api->wake(task, nvalues): the scheduler resumes the task after the
 * current loop iteration's callbacks, and the values become the C
 * function's results. Callbacks never run Lua code themselves.
 */
#ifndef LEVR_LEV_H
#define LEVR_LEV_H

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#define LEV_API_KEY "lev.api"
#define LEV_API_VERSION 1

typedef struct lev_ctx lev_ctx;
typedef struct lev_task lev_task;

/* Called when a parked task is abandoned (lua_close, or lev.timeout firing)
 * so that whoever holds it forgets it; `data` is the park() argument. */
typedef void (*lev_cancel_fn)(lev_task *task, void *data);
/* Runs after each batch of ready tasks, before the loop polls. */
typedef void (*lev_flush_fn)(void *data);
/* A stall probe: 1 when the I/O the loop still waits for can never
 * complete (say, reads between two streams of this very process, neither
 * of them writing), so lev.run reports a deadlock instead of hanging. */
typedef int (*lev_stall_fn)(void *data);

typedef struct lev_api {
  int version;
  /* The context of L's state (created on first use). */
  lev_ctx *(*ctx)(lua_State *L);
  uv_loop_t *(*loop)(lev_ctx *ctx);
  /* The task running on L, or NULL when L is not a lev task (the main
   * thread, or a plain coroutine created inside a task). */
  lev_task *(*current)(lev_ctx *ctx, lua_State *L);
  /* Raises "<what>: must be called inside a lev task (lev.run)" unless L
   * is a lev task; returns the task. */
  lev_task *(*check)(lev_ctx *ctx, lua_State *L, const char *what);
  /* Marks the running task parked; the caller must then return
   * lua_yield(L, 0). cancel (may be NULL) is called with data if the park
   * is abandoned before wake. */
  void (*park)(lev_task *task, lev_cancel_fn cancel, void *data);
  /* The task's thread, to push result values onto while it is parked. */
  lua_State *(*thread)(lev_task *task);
  /* Makes a parked task ready; the top nvalues of its thread become the
   * results of the C function that parked it. */
  void (*wake)(lev_task *task, int nvalues);
  /* Asks for fn(data) to run once after the current batch of ready tasks
   * (coalesces writes). *armed is a flag the caller owns: set while queued,
   * so a second request in the same batch is free. */
  void (*defer)(lev_ctx *ctx, lev_flush_fn fn, void *data, int *armed);
  /* Forgets a deferred request (the data is being freed). */
  void (*undefer)(lev_ctx *ctx, void *data, int *armed);
  /* Monotonic time in seconds (uv_hrtime: not the loop's cached time). */
  double (*now)(lev_ctx *ctx);
  /* Makes a task running the function at the top of L's stack below its
   * nargs arguments, and queues it; pops them. A daemon task does not keep
   * lev.run alive (connection handlers). */
  lev_task *(*spawn)(lev_ctx *ctx, lua_State *L, int nargs, int daemon);
  /* Undoes park() when the C function fails before it yields; returns 0
   * when the task was woken meanwhile (then it must yield after all). */
  int (*unpark)(lev_task *task);
  /* 1 while the Lua state is being closed: no Lua code may run then, and
   * registry references need not be released. */
  int (*closing)(lev_ctx *ctx);
  /* A thread of the state, usable at any time for the registry. */
  lua_State *(*state)(lev_ctx *ctx);
  /* Registers (fn non-NULL) or removes a stall probe for data; lev.run
   * asks every probe before it would poll forever. */
  void (*stall_probe)(lev_ctx *ctx, lev_stall_fn fn, void *data);
} lev_api;

/* The one shape of a failure returned to Lua: nil, text, category.
 * Categories come from err.h's levr_category (or "redis", "config"), never
 * from the text. Returns 3 (the values pushed). */
static inline int lev_push_fail(lua_State *L, const char *text,
                                const char *category) {
  lua_pushnil(L);
  lua_pushstring(L, text);
  lua_pushstring(L, category);
  return 3;
}

/* For C modules: require("lev") and return its API (raises on failure). */
static inline const lev_api *lev_api_get(lua_State *L) {
  const lev_api *api;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lev");
  lua_call(L, 1, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, LEV_API_KEY);
  api = (const lev_api *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (api == NULL || api->version != LEV_API_VERSION)
    luaL_error(L, "lev: C API not found or of another version");
  return api;
}

#endif
