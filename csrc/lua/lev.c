/* lev: coroutine tasks on a libuv loop.
 *
 * Scheduling: libuv callbacks never run Lua. They push result values onto a
 * parked task's thread and queue the task (lev_task_wake). lev.run drives
 * the loop one iteration at a time (uv_run UV_RUN_ONCE, or NOWAIT while
 * tasks are ready), and between iterations resumes every queued task, then
 * runs the deferred flushes (so the commands that many tasks queued in one
 * batch leave in one write). A reply read in an iteration's poll phase is
 * thus handed to its task as soon as that iteration's callbacks are done,
 * with no extra loop turn.
 */
#include "lev_core.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define LEV_EXPORT __attribute__((visibility("default")))

static const char ctx_key = 'c';   /* registry: the ctx userdata */
#define TASK_MT "lev.task"

/* ---- context ---------------------------------------------------------- */

lev_ctx *lev_ctx_get(lua_State *L) {
  lev_ctx **box;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ctx_key);
  box = (lev_ctx **)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!box || !*box)
    luaL_error(L, "lev: runtime not initialised (require \"lev\" first)");
  return *box;
}

static lev_ctx *upctx(lua_State *L) {
  return (lev_ctx *)lua_touserdata(L, lua_upvalueindex(1));
}

/* ctx->running is 2 while lev.run is inside uv_run, 3 while lev.run drops
 * the tasks left at its end: __close handlers of those tasks run then, and
 * must find lev.run still busy (no nested run, no new task, no task freed
 * under the abandon loop). */
enum { RUN_IDLE = 0, RUN_TASKS = 1, RUN_POLLING = 2, RUN_ENDING = 3 };

static void ready_push(lev_ctx *ctx, lev_task *t) {
  t->next_ready = NULL;
  if (ctx->ready_tail)
    ctx->ready_tail->next_ready = t;
  else
    ctx->ready_head = t;
  ctx->ready_tail = t;
  /* A callback made a task ready: the current uv_run must not block in
   * poll any more. (libuv 1.44 runs due timers at the top of a
   * UV_RUN_ONCE iteration and then still polls with the next timer's
   * timeout, which would hold the woken task until an unrelated event.) */
  if (ctx->running == RUN_POLLING)
    uv_stop(&ctx->loop);
}

/* uv_run from lev.run. Never outside it: a uv_stop() left over from a
 * ready_push outside uv_run would turn the next iteration into a no-op. */
static int loop_run(lev_ctx *ctx, uv_run_mode mode) {
  int r;
  ctx->running = RUN_POLLING;
  r = uv_run(&ctx->loop, mode);
  ctx->running = RUN_TASKS;
  return r;
}

static void ready_remove(lev_ctx *ctx, lev_task *t) {
  lev_task **pp = &ctx->ready_head, *prev = NULL;
  while (*pp) {
    if (*pp == t) {
      *pp = t->next_ready;
      if (ctx->ready_tail == t)
        ctx->ready_tail = prev;
      t->next_ready = NULL;
      return;
    }
    prev = *pp;
    pp = &(*pp)->next_ready;
  }
}

/* ---- tasks ------------------------------------------------------------ */

static void on_timer_closed(uv_handle_t *h) { free(h); }

static void task_close_timer(lev_task *t) {
  if (t->timer) {
    t->timer->data = NULL;
    uv_close((uv_handle_t *)t->timer, on_timer_closed);
    t->timer = NULL;
  }
}

/* L is any live thread of the state (for the registry). */
static void task_free(lev_task *t, lua_State *L) {
  lev_ctx *ctx = t->ctx;
  if (t->prev)
    t->prev->next = t->next;
  else
    ctx->tasks = t->next;
  if (t->next)
    t->next->prev = t->prev;
  task_close_timer(t);
  if (!ctx->closing)
    luaL_unref(L, LUA_REGISTRYINDEX, t->thread_ref);
  free(t);
}

/* Whether nothing needs the task struct any more. */
static int task_releasable(const lev_task *t) {
  return !t->has_ud &&
         (t->state == TASK_DONE || (t->state == TASK_FAILED && t->joined));
}

static int task_finished(const lev_task *t) {
  return t->state == TASK_DONE || t->state == TASK_FAILED;
}

/* Pushes a finished task's outcome onto L: true, results... or false, err.
 * Returns the number of values. Never raises: L may be a parked thread
 * (a joiner being woken), where an error would have nowhere to go. */
static int task_push_outcome(lev_task *t, lua_State *L) {
  int i, n = t->state == TASK_DONE ? t->nres : 1;
  if (!lua_checkstack(L, n + 1) || !lua_checkstack(t->co, 1)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "lev: too many results to pass on");
    return 2;
  }
  lua_pushboolean(L, t->state == TASK_DONE);
  for (i = 0; i < n; i++) {
    lua_pushvalue(t->co, -n + i);
    lua_xmove(t->co, L, 1);
  }
  return n + 1;
}

static void task_finish(lev_ctx *ctx, lev_task *t, int state) {
  lev_task *j = t->joiners;
  t->state = state;
  if (!t->daemon)
    ctx->live--;
  /* A finished task never sleeps again: its timer goes now, not when its
   * handle (which may be kept for a long time) is collected. */
  task_close_timer(t);
  t->joiners = NULL;
  while (j) {
    lev_task *next = j->next_joiner;
    int n;
    j->next_joiner = NULL;
    j->join_target = NULL;
    n = task_push_outcome(t, j->co);
    t->joined = 1;
    lev_task_wake(j, n);
    j = next;
  }
  if (!t->has_ud && (state == TASK_DONE || t->joined))
    task_free(t, ctx->L);
}

static void task_unjoin(lev_task *j) {
  lev_task *target = j->join_target, **pp;
  if (!target)
    return;
  for (pp = &target->joiners; *pp; pp = &(*pp)->next_joiner) {
    if (*pp == j) {
      *pp = j->next_joiner;
      break;
    }
  }
  j->join_target = NULL;
  j->next_joiner = NULL;
}

/* Drops a task that has not finished: its wait is cancelled and its stack
 * closed. Nobody is told of an error (the caller decided to drop it). */
static void task_abandon(lev_ctx *ctx, lev_task *t) {
  if (task_finished(t))
    return;
  if (t->state == TASK_PARKED && t->cancel) {
    lev_cancel_fn cancel = t->cancel;
    t->cancel = NULL;
    cancel(t, t->cancel_data);
  }
  if (t->state == TASK_READY)
    ready_remove(ctx, t);
  task_unjoin(t);
  if (t->timer)
    uv_timer_stop(t->timer);
  if (!ctx->closing) {
#if LUA_VERSION_RELEASE_NUM >= 50406
    lua_closethread(t->co, ctx->L);
#else
    lua_resetthread(t->co);
#endif
    lua_settop(t->co, 0);
    lua_pushliteral(t->co, "abandoned");
  }
  t->nres = 1;
  t->joined = 1;
  task_finish(ctx, t, TASK_FAILED);
}

lev_task *lev_task_spawn(lev_ctx *ctx, lua_State *L, int nargs, int daemon) {
  lev_task *t = (lev_task *)calloc(1, sizeof(*t));
  lua_State *co;
  if (!t)
    luaL_error(L, "lev: out of memory");
  co = lua_newthread(L);
  t->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_xmove(L, co, nargs + 1);
  t->ctx = ctx;
  t->co = co;
  t->daemon = daemon;
  t->nargs = nargs;
  t->next = ctx->tasks;
  if (ctx->tasks)
    ctx->tasks->prev = t;
  ctx->tasks = t;
  if (!daemon)
    ctx->live++;
  t->state = TASK_READY;
  ready_push(ctx, t);
  return t;
}

void lev_task_park(lev_task *t, lev_cancel_fn cancel, void *data) {
  t->state = TASK_PARKED;
  t->cancel = cancel;
  t->cancel_data = data;
}

void lev_task_wake(lev_task *t, int nvalues) {
  if (t->state != TASK_PARKED) {
    /* Defensive: a second wake would corrupt the resume protocol. */
    lua_pop(t->co, nvalues);
    return;
  }
  t->cancel = NULL;
  t->cancel_data = NULL;
  t->nargs = nvalues;
  t->state = TASK_READY;
  ready_push(t->ctx, t);
}

lev_task *lev_task_check(lev_ctx *ctx, lua_State *L, const char *what) {
  lev_task *t = ctx->current;
  if (t && t->co != L && t->state == TASK_RUNNING) {
    /* Inside lev.run, but in a coroutine the task resumed itself (a
     * coroutine.wrap generator): the scheduler could not resume it. */
    luaL_error(L, "%s: called from a plain coroutine (coroutine.wrap or "
               "coroutine.create) inside a lev task, which cannot wait; "
               "call it from the task's own function, or run that code as "
               "a task of its own with lev.spawn", what);
    return NULL;
  }
  if (!t || t->co != L || t->state != TASK_RUNNING) {
    luaL_error(L, "%s: must be called inside a lev task (lev.run)", what);
    return NULL;
  }
  if (!lua_isyieldable(L))
    luaL_error(L, "%s: cannot suspend here (inside a C call boundary, such "
               "as a metamethod or a table.sort comparator)", what);
  return t;
}

static lev_task *api_current(lev_ctx *ctx, lua_State *L) {
  lev_task *t = ctx->current;
  return t && t->co == L && t->state == TASK_RUNNING ? t : NULL;
}

/* Replaces the string error on top of co by the message followed by the
 * task's frames. Their header is "lev task traceback:", not Lua's "stack
 * traceback:": the standalone interpreter appends its own traceback to a
 * string error, which then continues the task's (from lev.run outwards)
 * instead of reading as a second one. An error that already carries a
 * task's frames (re-raised by lev.timeout, or by a joiner) gets this
 * task's frames under the same header, as the outer part of one
 * traceback. L is a free thread. */
static void task_add_traceback(lua_State *L, lua_State *co) {
  static const char lua_head[] = "stack traceback:";
  static const char lev_head[] = "\nlev task traceback:";
  const char *msg = lua_isnil(co, -1) ? "nil" : lua_tostring(co, -1);
  const char *tb;
  luaL_traceback(L, co, NULL, 0);
  tb = lua_tostring(L, -1);
  if (strncmp(tb, lua_head, sizeof(lua_head) - 1) == 0)
    tb += sizeof(lua_head) - 1;
  lua_pushfstring(L, "%s%s%s", msg, strstr(msg, lev_head) ? "" : lev_head,
                  tb);
  lua_remove(L, -2);
  lua_xmove(L, co, 1);
  lua_remove(co, -2);
}

static void task_resume(lev_ctx *ctx, lev_task *t) {
  lua_State *co = t->co;
  lev_task *prev = ctx->current;
  int nres = 0, st, nargs = t->nargs;
  t->nargs = 0;
  t->state = TASK_RUNNING;
  ctx->current = t;
  st = lua_resume(co, ctx->L, nargs, &nres);
  ctx->current = prev;
  if (st == LUA_YIELD) {
    if (t->state == TASK_RUNNING) {
      /* A plain coroutine.yield() in a task: let the others run. */
      lua_pop(co, nres);
      t->state = TASK_READY;
      ready_push(ctx, t);
    }
    return;
  }
  if (st == LUA_OK) {
    t->nres = nres;
    task_finish(ctx, t, TASK_DONE);
    return;
  }
  if (lua_type(co, -1) == LUA_TSTRING || lua_type(co, -1) == LUA_TNUMBER ||
      lua_type(co, -1) == LUA_TNIL)
    task_add_traceback(ctx->L, co);
  /* A failed coroutine does not unwind its stack: close it now, so that the
   * task's to-be-closed variables (a `local s <close> = stream`) are closed
   * as they would be on a normal return. The error value is kept aside; an
   * error raised by a __close handler does not replace it. */
  lua_pushvalue(co, -1);
  lua_xmove(co, ctx->L, 1);
#if LUA_VERSION_RELEASE_NUM >= 50406
  lua_closethread(co, ctx->L);
#else
  lua_resetthread(co);
#endif
  lua_settop(co, 0);
  lua_xmove(ctx->L, co, 1);
  t->nres = 1;
  task_finish(ctx, t, TASK_FAILED);
}

/* ---- deferred flushes ------------------------------------------------- */

static void api_defer(lev_ctx *ctx, lev_flush_fn fn, void *data, int *armed) {
  if (*armed)
    return;
  if (ctx->ndefer == ctx->capdefer) {
    int cap = ctx->capdefer ? ctx->capdefer * 2 : 16;
    lev_deferred *d = (lev_deferred *)realloc(ctx->defer, cap * sizeof(*d));
    if (!d) {
      fn(data); /* cannot queue: flush now, correctness over batching */
      return;
    }
    ctx->defer = d;
    ctx->capdefer = cap;
  }
  ctx->defer[ctx->ndefer].fn = fn;
  ctx->defer[ctx->ndefer].data = data;
  ctx->defer[ctx->ndefer].armed = armed;
  ctx->ndefer++;
  *armed = 1;
  if (ctx->running == RUN_POLLING) /* asked from a callback: see ready_push */
    uv_stop(&ctx->loop);
}

static void api_undefer(lev_ctx *ctx, void *data, int *armed) {
  int i;
  if (!*armed)
    return;
  for (i = 0; i < ctx->ndefer; i++)
    if (ctx->defer[i].data == data && ctx->defer[i].armed == armed)
      ctx->defer[i].fn = NULL;
  *armed = 0;
}

static void run_deferred(lev_ctx *ctx) {
  int i;
  for (i = 0; i < ctx->ndefer; i++) {
    lev_deferred d = ctx->defer[i];
    if (!d.fn)
      continue;
    *d.armed = 0;
    d.fn(d.data);
  }
  ctx->ndefer = 0;
}

static void run_ready(lev_ctx *ctx) {
  lev_task *last = ctx->ready_tail, *t;
  /* Only the tasks queued now: a task that keeps waking others must not
   * starve the loop's I/O. */
  while ((t = ctx->ready_head) != NULL) {
    int stop = t == last;
    ctx->ready_head = t->next_ready;
    if (!ctx->ready_head)
      ctx->ready_tail = NULL;
    t->next_ready = NULL;
    task_resume(ctx, t);
    if (stop)
      break;
  }
}

/* ---- the API table for other C modules -------------------------------- */

static uv_loop_t *api_loop(lev_ctx *ctx) { return &ctx->loop; }
static lua_State *api_thread(lev_task *t) { return t->co; }
static double api_now(lev_ctx *ctx) { return (double)uv_hrtime() / 1e9; }

static int api_unpark(lev_task *t) {
  if (t->state != TASK_PARKED)
    return 0;
  t->state = TASK_RUNNING;
  t->cancel = NULL;
  t->cancel_data = NULL;
  return 1;
}
static int api_closing(lev_ctx *ctx) { return ctx->closing; }
static lua_State *api_state(lev_ctx *ctx) { return ctx->L; }

static void api_stall_probe(lev_ctx *ctx, lev_stall_fn fn, void *data) {
  int i, free_slot = -1;
  for (i = 0; i < 4; i++) {
    if (ctx->probes[i].fn && ctx->probes[i].data == data) {
      ctx->probes[i].fn = fn; /* replaced, or removed with NULL */
      return;
    }
    if (!ctx->probes[i].fn && free_slot < 0)
      free_slot = i;
  }
  if (fn && free_slot >= 0) {
    ctx->probes[free_slot].fn = fn;
    ctx->probes[free_slot].data = data;
  }
}

/* Does any registered probe say the loop can never make progress? */
static int stalled(lev_ctx *ctx) {
  int i;
  for (i = 0; i < 4; i++)
    if (ctx->probes[i].fn && ctx->probes[i].fn(ctx->probes[i].data))
      return 1;
  return 0;
}

static const lev_api the_api = {
  LEV_API_VERSION, lev_ctx_get, api_loop, api_current, lev_task_check,
  lev_task_park, api_thread, lev_task_wake, api_defer, api_undefer, api_now,
  lev_task_spawn, api_unpark, api_closing, api_state, api_stall_probe
};

/* ---- lev.run ---------------------------------------------------------- */

/* Collects the failures nobody joined: marks them joined (so they are
 * reported once), frees the tasks no handle holds, and pushes the error
 * value of the first of them (the oldest task) onto L. Returns how many
 * there were; pushes nothing when none. */
static int take_unjoined(lev_ctx *ctx, lua_State *L) {
  lev_task *t, *next, *first = NULL;
  int n = 0;
  for (t = ctx->tasks; t; t = t->next) {
    if (t->state == TASK_FAILED && !t->joined) {
      first = t; /* the list is newest first: keep the last match */
      n++;
    }
  }
  if (n == 0)
    return 0;
  lua_pushvalue(first->co, -1);
  lua_xmove(first->co, L, 1);
  for (t = ctx->tasks; t; t = next) {
    next = t->next;
    if (t->state != TASK_FAILED || t->joined)
      continue;
    t->joined = 1;
    if (!t->has_ud)
      task_free(t, L);
  }
  return n;
}

/* Replaces the error value on top of L by the unjoined-failure report. */
static void format_unjoined(lua_State *L, int n, const char *prefix) {
  const char *err = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                   : luaL_typename(L, -1);
  lua_pushfstring(L, "%s%d spawned task%s failed and %s not joined; the "
                  "first: %s", prefix, n, n > 1 ? "s" : "",
                  n > 1 ? "were" : "was", err);
  lua_remove(L, -2);
}

/* Called when the loop would block. When the only things the loop waits
 * for are reads between two lev.tcp streams of this very process (neither
 * side has anything in flight), nothing can ever arrive: a deadlock. A
 * short grace poll lets bytes still in the kernel's loopback path land
 * first. Returns 1 for a confirmed deadlock. */
static void on_grace_timer(uv_timer_t *h) { (void)h; }

static int stall_confirmed(lev_ctx *ctx) {
  uv_timer_t *grace;
  /* Loopback bytes are usually in the peer's socket by the time write()
   * returns: a poll that does not block sees them. */
  loop_run(ctx, UV_RUN_NOWAIT);
  if (ctx->ready_head || ctx->ndefer || !stalled(ctx))
    return 0;
  grace = (uv_timer_t *)malloc(sizeof(*grace));
  if (!grace)
    return 0;
  uv_timer_init(&ctx->loop, grace);
  uv_timer_start(grace, on_grace_timer, 50, 0);
  loop_run(ctx, UV_RUN_ONCE);
  uv_close((uv_handle_t *)grace, on_timer_closed);
  return !ctx->ready_head && ctx->ndefer == 0 && stalled(ctx);
}

enum { RUN_OK, RUN_DEADLOCK, RUN_STALLED };

static int l_run(lua_State *L) {
  lev_ctx *ctx = upctx(L);
  lua_State *prevL = ctx->L;
  lev_task *main_task, *t, *next;
  int nargs, how = RUN_OK, n, waiting = 0;
  if (ctx->running == RUN_ENDING)
    return luaL_error(L, "lev.run: already running (lev.run is ending and "
                      "dropping its tasks; it cannot be nested from their "
                      "__close handlers or finalizers)");
  if (ctx->running)
    return luaL_error(L, "lev.run: already running (lev.run cannot be "
                      "nested; use lev.spawn)");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  nargs = lua_gettop(L) - 1;
  ctx->L = L;
  main_task = lev_task_spawn(ctx, L, nargs, 0);
  main_task->has_ud = 1; /* pinned until we have its results */
  ctx->running = RUN_TASKS;
  for (;;) {
    /* Timers count from the loop's clock, which uv_run only reads when it
     * starts an iteration: at the start of a run it may be from the last
     * run, long ago, and lev.sleep(5) would return at once. Read it before
     * every batch, so that a timer started in a batch counts from the
     * batch's start (the same base for all its tasks: deadlines keep the
     * order of the durations). */
    uv_update_time(&ctx->loop);
    run_ready(ctx);
    run_deferred(ctx);
    if (main_task->state == TASK_FAILED)
      break;
    if (main_task->state == TASK_DONE && ctx->live == 0)
      break;
    if (ctx->ready_head) {
      loop_run(ctx, UV_RUN_NOWAIT);
      continue;
    }
    if (stalled(ctx)) {
      if (stall_confirmed(ctx)) {
        how = RUN_STALLED;
        break;
      }
      continue; /* the grace poll ran an iteration */
    }
    if (!loop_run(ctx, UV_RUN_ONCE) && !ctx->ready_head &&
        ctx->ndefer == 0) {
      how = RUN_DEADLOCK;
      break;
    }
  }
  /* Whatever is left (after a failure or a deadlock) is dropped, except
   * daemon tasks (servers' connection handlers), which wait for their
   * sockets across lev.run calls. The list is newest first, so a child
   * that lev.timeout waits for is dropped before its parent. Dropping a
   * task closes its stack, which runs its __close handlers: RUN_ENDING
   * keeps them from nesting lev.run or spawning, and holds back task_gc's
   * frees (a handler may collect a task handle), so that `next` stays
   * valid; the sweep after the loop frees what they released. */
  ctx->running = RUN_ENDING;
  for (t = ctx->tasks; t; t = next) {
    next = t->next;
    if (t != main_task && !t->daemon && !task_finished(t)) {
      waiting++;
      task_abandon(ctx, t);
    }
  }
  ctx->running = RUN_IDLE;
  for (t = ctx->tasks; t; t = next) {
    next = t->next;
    if (t != main_task && task_releasable(t))
      task_free(t, L);
  }
  lua_settop(L, 0);
  if (main_task->state == TASK_FAILED) {
    /* The main task's error wins; failures nobody joined are dropped. */
    if (take_unjoined(ctx, L))
      lua_pop(L, 1);
    lua_pushvalue(main_task->co, -1);
    lua_xmove(main_task->co, L, 1);
    main_task->has_ud = 0;
    task_free(main_task, L);
    ctx->L = prevL;
    return lua_error(L);
  }
  if (how != RUN_OK) {
    if (!task_finished(main_task)) {
      waiting++;
      main_task->joined = 1;
      task_abandon(ctx, main_task);
    }
    main_task->has_ud = 0;
    task_free(main_task, L);
    lua_pushfstring(L, "lev.run: deadlock: %d task%s waiting and nothing "
                    "can wake %s%s", waiting, waiting > 1 ? "s are" : " is",
                    waiting > 1 ? "them" : "it", how == RUN_STALLED
                    ? " (the only I/O left is reads between lev.tcp streams "
                      "of this process)" : "");
    n = take_unjoined(ctx, L);
    if (n) {
      format_unjoined(L, n, "; meanwhile ");
      lua_concat(L, 2);
    }
    ctx->L = prevL;
    return lua_error(L);
  }
  n = take_unjoined(ctx, L);
  if (n) {
    if (lua_type(L, -1) == LUA_TSTRING)
      format_unjoined(L, n, "lev.run: ");
    main_task->has_ud = 0;
    task_free(main_task, L);
    ctx->L = prevL;
    return lua_error(L);
  }
  n = main_task->nres;
  if (!lua_checkstack(L, n)) {
    main_task->has_ud = 0;
    task_free(main_task, L);
    ctx->L = prevL;
    return luaL_error(L, "lev.run: too many results");
  }
  lua_xmove(main_task->co, L, n);
  main_task->has_ud = 0;
  task_free(main_task, L);
  ctx->L = prevL;
  return n;
}

/* ---- lev.spawn, task:join --------------------------------------------- */

static lev_task *check_task(lua_State *L, int idx) {
  lev_task **box = (lev_task **)luaL_checkudata(L, idx, TASK_MT);
  if (!*box)
    luaL_argerror(L, idx, "task already released");
  return *box;
}

static int spawn(lua_State *L, int daemon) {
  lev_ctx *ctx = upctx(L);
  lev_task *t, **box;
  int nargs;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!ctx->running)
    return luaL_error(L, "lev.spawn: must be called while lev.run is "
                      "running");
  if (ctx->running == RUN_ENDING)
    return luaL_error(L, "lev.spawn: lev.run is ending (called from a "
                      "__close handler or finalizer of a dropped task)");
  nargs = lua_gettop(L) - 1;
  box = (lev_task **)lua_newuserdatauv(L, sizeof(*box), 0);
  *box = NULL;
  luaL_setmetatable(L, TASK_MT);
  lua_insert(L, 1);
  t = lev_task_spawn(ctx, L, nargs, daemon);
  t->has_ud = 1;
  *box = t;
  return 1;
}

static int l_spawn(lua_State *L) { return spawn(L, 0); }

/* lev._daemon(fn, ...): lev.spawn for a daemon task, which does not keep
 * lev.run alive and survives to the next run (as servers' connection
 * handlers do). Undocumented; for library tasks that watch a connection
 * for as long as it lives (redis reconnect). */
static int l_daemon(lua_State *L) { return spawn(L, 1); }

static void cancel_join(lev_task *t, void *data) { task_unjoin(t); }

static int task_join(lua_State *L) {
  lev_task *target = check_task(L, 1);
  lev_task *cur = lev_task_check(target->ctx, L, "task:join");
  if (target == cur)
    return luaL_error(L, "task:join: a task cannot join itself");
  if (task_finished(target)) {
    target->joined = 1;
    return task_push_outcome(target, L);
  }
  cur->join_target = target;
  cur->next_joiner = target->joiners;
  target->joiners = cur;
  lev_task_park(cur, cancel_join, target);
  return lua_yield(L, 0);
}

static const char *state_name(const lev_task *t) {
  switch (t->state) {
  case TASK_READY: return "ready";
  case TASK_RUNNING: return "running";
  case TASK_PARKED: return "waiting";
  case TASK_DONE: return "done";
  default: return "failed";
  }
}

static int task_status(lua_State *L) {
  lua_pushstring(L, state_name(check_task(L, 1)));
  return 1;
}

static int task_tostring(lua_State *L) {
  lev_task *t = check_task(L, 1);
  lua_pushfstring(L, "lev.task (%s): %p", state_name(t), (void *)t);
  return 1;
}

static int task_gc(lua_State *L) {
  lev_task **box = (lev_task **)luaL_checkudata(L, 1, TASK_MT);
  lev_task *t = *box;
  *box = NULL;
  if (!t || t->ctx->closing)
    return 0;
  t->has_ud = 0;
  /* While lev.run ends, its abandon loop holds pointers into the list:
   * it frees the task itself afterwards. */
  if (t->ctx->running != RUN_ENDING && task_releasable(t))
    task_free(t, L);
  return 0;
}

/* ---- sleep, now, timeout ---------------------------------------------- */

static uv_timer_t *task_timer(lev_task *t, lua_State *L) {
  if (!t->timer) {
    t->timer = (uv_timer_t *)malloc(sizeof(uv_timer_t));
    if (!t->timer)
      luaL_error(L, "lev: out of memory");
    uv_timer_init(&t->ctx->loop, t->timer);
  }
  t->timer->data = t;
  return t->timer;
}

static void on_sleep_done(uv_timer_t *h) {
  lev_task *t = (lev_task *)h->data;
  if (t && t->state == TASK_PARKED)
    lev_task_wake(t, 0);
}

static void cancel_sleep(lev_task *t, void *data) {
  if (t->timer)
    uv_timer_stop(t->timer);
}

static uint64_t check_ms(lua_State *L, int idx) {
  double s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s >= 0 && s < 1e12, idx, "seconds must be a number >= 0");
  return (uint64_t)(s * 1000.0 + 0.5);
}

static int l_sleep(lua_State *L) {
  lev_ctx *ctx = upctx(L);
  uint64_t ms = check_ms(L, 1);
  lev_task *t = lev_task_check(ctx, L, "lev.sleep");
  /* The task may have run for a while since the batch began: the sleep
   * counts from now. */
  uv_update_time(&ctx->loop);
  uv_timer_start(task_timer(t, L), on_sleep_done, ms, 0);
  lev_task_park(t, cancel_sleep, NULL);
  return lua_yield(L, 0);
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (double)uv_hrtime() / 1e9);
  return 1;
}

/* The wall clock (gettimeofday), for what must agree with other processes
 * (redis.mock's EXPIREAT, TIME): lev.now() is monotonic and has no
 * epoch, and os.time() has whole seconds only. */
static int l_time(lua_State *L) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0)
    return luaL_error(L, "lev.time: cannot read the clock");
  lua_pushnumber(L, (double)tv.tv_sec + (double)tv.tv_usec / 1e6);
  return 1;
}

/* lev.timeout(seconds, fn, ...): fn runs as a child task that the caller
 * joins with a deadline; at the deadline the child is abandoned. The child
 * has no handle: it is freed as soon as it has finished and its outcome
 * was handed over (or it was abandoned), so timeout_k never touches it. */
static void on_timeout_fired(uv_timer_t *h) {
  lev_task *t = (lev_task *)h->data;
  lev_task *child;
  if (!t || t->state != TASK_PARKED || !t->join_target)
    return;
  child = t->join_target;
  task_unjoin(t);
  task_abandon(t->ctx, child);
  lua_pushnil(t->co);
  lua_pushliteral(t->co, "timeout");
  lev_task_wake(t, 2);
}

static void cancel_timeout(lev_task *t, void *data) {
  lev_task *child = t->join_target;
  (void)data;
  if (t->timer)
    uv_timer_stop(t->timer);
  task_unjoin(t);
  if (child)
    task_abandon(t->ctx, child);
}

/* The stack holds what the wake passed: true, results... or false, err
 * (the child finished) or nil, "timeout". */
static int timeout_k(lua_State *L, int status, lua_KContext kctx) {
  lev_ctx *ctx = upctx(L);
  lev_task *t = ctx->current;
  int n = lua_gettop(L);
  (void)status;
  (void)kctx;
  if (t && t->timer)
    uv_timer_stop(t->timer);
  if (n >= 1 && lua_isboolean(L, 1)) {
    if (!lua_toboolean(L, 1)) {
      lua_settop(L, 2);
      return lua_error(L);
    }
    return n - 1;
  }
  return n;
}

static int l_timeout(lua_State *L) {
  lev_ctx *ctx = upctx(L);
  uint64_t ms = check_ms(L, 1);
  lev_task *t, *child;
  int nargs;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  t = lev_task_check(ctx, L, "lev.timeout");
  nargs = lua_gettop(L) - 2;
  child = lev_task_spawn(ctx, L, nargs, 0);
  lua_settop(L, 0);
  child->joiners = t;
  t->next_joiner = NULL;
  t->join_target = child;
  uv_update_time(&ctx->loop);
  uv_timer_start(task_timer(t, L), on_timeout_fired, ms, 0);
  lev_task_park(t, cancel_timeout, NULL);
  return lua_yieldk(L, 0, 0, timeout_k);
}

/* ---- module ----------------------------------------------------------- */

static void walk_close(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static int ctx_gc(lua_State *L) {
  lev_ctx **box = (lev_ctx **)lua_touserdata(L, 1);
  lev_ctx *ctx = *box;
  lev_task *t, *next;
  if (!ctx)
    return 0;
  *box = NULL;
  ctx->closing = 1; /* no Lua code from here: stacks are not unwound */
  for (t = ctx->tasks; t; t = next) {
    next = t->next;
    if (!task_finished(t)) {
      t->has_ud = 1; /* keep the struct for the loop below */
      task_abandon(ctx, t);
    }
  }
  ctx->L = L;
  run_deferred(ctx);
  for (t = ctx->tasks; t; t = next) {
    next = t->next;
    task_free(t, L);
  }
  /* Owners closed their handles in their own __gc; let the close callbacks
   * run, then close anything left so the loop can be released. */
  uv_run(&ctx->loop, UV_RUN_NOWAIT);
  uv_walk(&ctx->loop, walk_close, NULL);
  uv_run(&ctx->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&ctx->loop) == 0) {
    free(ctx->defer);
    free(ctx);
  }
  return 0;
}

/* lev._handles() -> handles, tasks: the loop's handles that are not
 * closing, and the task structs not yet freed. Undocumented; for specs
 * that check nothing is left behind. */
static void walk_count(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h))
    ++*(int *)arg;
}

static int l_handles(lua_State *L) {
  lev_ctx *ctx = upctx(L);
  lev_task *t;
  int nh = 0, nt = 0;
  uv_walk(&ctx->loop, walk_count, &nh);
  for (t = ctx->tasks; t; t = t->next)
    nt++;
  lua_pushinteger(L, nh);
  lua_pushinteger(L, nt);
  return 2;
}

static const luaL_Reg task_methods[] = {
  {"join", task_join},
  {"status", task_status},
  {NULL, NULL}
};

static const luaL_Reg lev_funcs[] = {
  {"run", l_run},
  {"spawn", l_spawn},
  {"_daemon", l_daemon},
  {"sleep", l_sleep},
  {"now", l_now},
  {"time", l_time},
  {"timeout", l_timeout},
  {"_handles", l_handles},
  {NULL, NULL}
};

LEV_EXPORT int luaopen_lev(lua_State *L);

/* A write to a connection the peer has reset raises SIGPIPE, whose default
 * action ends the process; libuv writes with write(2), which has no
 * MSG_NOSIGNAL. Ignore it, as luasocket does, unless the host program has
 * installed a handler of its own: the write then fails with EPIPE. */
static void ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

int luaopen_lev(lua_State *L) {
  lev_ctx *ctx;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ctx_key);
  if (lua_isnil(L, -1)) {
    lev_ctx **box;
    lua_pop(L, 1);
    ignore_sigpipe();
    ctx = (lev_ctx *)calloc(1, sizeof(*ctx));
    if (!ctx)
      return luaL_error(L, "lev: out of memory");
    if (uv_loop_init(&ctx->loop) != 0) {
      free(ctx);
      return luaL_error(L, "lev: cannot initialise the libuv loop");
    }
    /* Outside lev.run, ctx->L is the main thread: the thread that happens
     * to require "lev" may be a coroutine that is later collected. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    ctx->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    box = (lev_ctx **)lua_newuserdatauv(L, sizeof(*box), 0);
    *box = ctx;
    lua_newtable(L);
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
    lua_pushlightuserdata(L, (void *)&the_api);
    lua_setfield(L, LUA_REGISTRYINDEX, LEV_API_KEY);

    luaL_newmetatable(L, TASK_MT);
    lua_pushcfunction(L, task_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, task_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
  }
  ctx = lev_ctx_get(L);
  luaL_newlibtable(L, lev_funcs);
  lua_pushlightuserdata(L, ctx);
  luaL_setfuncs(L, lev_funcs, 1);
  luaopen_lev_tcp(L, &the_api, ctx);
  lua_setfield(L, -2, "tcp");
  return 1;
}
