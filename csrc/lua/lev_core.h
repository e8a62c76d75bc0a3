/* lev internals: the runtime's structs (lev.c only; lev_tcp.c, like
 * redis.core, uses lev.h's API). */
#ifndef LEVR_LEV_CORE_H
#define LEVR_LEV_CORE_H

#include "lev.h"

enum lev_task_state {
  TASK_READY = 1,   /* in the ready queue */
  TASK_RUNNING,
  TASK_PARKED,
  TASK_DONE,
  TASK_FAILED
};

struct lev_task {
  lev_ctx *ctx;
  lua_State *co;        /* valid while thread_ref holds the thread */
  int thread_ref;
  int state;
  int daemon;           /* does not keep lev.run alive */
  int nargs;            /* values to pass on the next resume */
  int nres;             /* DONE: results on co's stack; FAILED: 1 */
  int joined;           /* the outcome was collected (join or timeout) */
  int has_ud;           /* a Lua userdata still boxes this task */
  lev_task *next_ready;
  lev_task *prev, *next;        /* ctx->tasks list */
  lev_task *joiners;            /* tasks parked in join on this one */
  lev_task *next_joiner;
  lev_task *join_target;        /* while parked in join */
  lev_cancel_fn cancel;
  void *cancel_data;
  uv_timer_t *timer;            /* lazily made, for sleep */
};

typedef struct lev_deferred {
  lev_flush_fn fn;
  void *data;
  int *armed;
} lev_deferred;

struct lev_ctx {
  uv_loop_t loop;
  lua_State *L;          /* the thread running lev.run, or the main one */
  int running;
  lev_task *current;
  lev_task *ready_head, *ready_tail;
  lev_task *tasks;       /* every task not yet freed */
  int live;              /* unfinished non-daemon tasks */
  lev_deferred *defer;
  int ndefer, capdefer;
  int closing;
  /* Stall probes (lev.h lev_stall_fn), registered by modules. */
  struct { lev_stall_fn fn; void *data; } probes[4];
};

lev_ctx *lev_ctx_get(lua_State *L);
lev_task *lev_task_check(lev_ctx *ctx, lua_State *L, const char *what);
void lev_task_park(lev_task *t, lev_cancel_fn cancel, void *data);
void lev_task_wake(lev_task *t, int nvalues);
/* Makes a task running fn (at the top of L's stack, with nargs arguments
 * above it) and queues it; pops them. Returns the task; pushes nothing. */
lev_task *lev_task_spawn(lev_ctx *ctx, lua_State *L, int nargs, int daemon);

/* lev_tcp.c: pushes the lev.tcp table. */
int luaopen_lev_tcp(lua_State *L, const lev_api *api, lev_ctx *ctx);

#endif
