/* cluster_glue: the routing half of redis.cluster, in C so that routing a
 * command costs no Lua frame: the command's compiled key specs are looked
 * up by name in a table the cluster object keeps, the slot is computed from
 * the arguments (slot.c) and the route table indexed, all in cl:cmd.
 *
 *   core.cluster_spec{ flags = f, specs = { {bs=, index=, keyword=,
 *       not_key=, fk=, last=, step=, limit=}, ... } } -> compiled command
 *   core.cluster_slot_argv(specs, argv)  -> slot, readonly
 *   core.cluster_cmd(specs, route, rroute, client_cmd, slow) -> cl:cmd
 *       cmd(cl, name, ...) routes, calls the connection's cmd (client_cmd) on
 *       the routed connection and returns its results, unless there is no
 *       connection or the reply is a failure with a category: then it
 *       returns slow(err, cat, slot, ro, conn, name, ...), a Lua function
 *       (redirections, retries). The hot path: no Lua frame of ours.
 *   core.keyslot(key)                    -> slot
 *
 * slot is 0..16383, -1 (no keys) or -2 (CROSSSLOT).
 */
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cluster_glue.h"
#include "slot.h"

#define CMD_MT "redis.cluster_cmd"
#define NAME_MAX_LEN 64     /* longer command names are not looked up */
#define SPECS_MAX 64        /* key specs per command we keep */
#define SPEC_VALUE_MAX 1000000

typedef struct argsrc {
  lua_State *L;
  int base;                 /* stack index of the name, or of the argv table */
  int table;                /* arguments are argv[i + 1] of that table */
  char num[48];             /* a number argument, formatted as cmd sends it */
} argsrc;

/* Numbers as the client encodes them: integral values as integers. */
static const char *format_number(argsrc *a, int idx, size_t *n) {
  lua_State *L = a->L;
  int len;
  if (lua_isinteger(L, idx)) {
    len = snprintf(a->num, sizeof a->num, LUA_INTEGER_FMT,
                   (LUAI_UACINT)lua_tointeger(L, idx));
  } else {
    lua_Number d = lua_tonumber(L, idx);
    lua_Integer i;
    if (lua_numbertointeger(d, &i))
      len = snprintf(a->num, sizeof a->num, LUA_INTEGER_FMT, (LUAI_UACINT)i);
    else
      len = snprintf(a->num, sizeof a->num, "%.17g", (double)d);
  }
  *n = len > 0 ? (size_t)len : 0;
  return a->num;
}

static const char *arg_at(void *ud, int i, size_t *n) {
  argsrc *a = (argsrc *)ud;
  lua_State *L = a->L;
  const char *p = NULL;
  if (!a->table) {
    int idx = a->base + i, t = lua_type(L, idx);
    if (t == LUA_TSTRING)
      return lua_tolstring(L, idx, n);
    if (t == LUA_TNUMBER)
      return format_number(a, idx, n);
    return NULL;
  }
  switch (lua_geti(L, a->base, i + 1)) {
  case LUA_TSTRING:
    p = lua_tolstring(L, -1, n); /* anchored by the argv table */
    break;
  case LUA_TNUMBER:
    p = format_number(a, -1, n);
    break;
  default:
    break;
  }
  lua_pop(L, 1);
  return p;
}

/* The compiled command at the top of the stack (popped), or NULL. The
 * specs table is private to redis.cluster and holds only values made by
 * cluster_spec; the size check keeps a stray value from being read. */
static const slot_cmd *pop_cmd(lua_State *L) {
  const slot_cmd *cmd = NULL;
  if (lua_type(L, -1) == LUA_TUSERDATA) {
    const slot_cmd *c = (const slot_cmd *)lua_touserdata(L, -1);
    size_t len = lua_rawlen(L, -1);
    if (len >= sizeof(slot_cmd) && c->nspecs >= 0 && c->nspecs <= SPECS_MAX &&
        len == sizeof(slot_cmd) + (size_t)c->nspecs * sizeof(slot_spec))
      cmd = c;
  }
  lua_pop(L, 1);
  return cmd;
}

/* specs[name], or specs[lower(name)]; NULL when unknown. name_idx, when
 * not 0, is a stack index holding name as a string (no new string is
 * made on the hot path). Leaves the stack as it was. */
static const slot_cmd *find_cmd(lua_State *L, int specs, int name_idx,
                                const char *name, size_t n) {
  char low[NAME_MAX_LEN * 2 + 2];
  size_t i;
  if (name_idx)
    lua_pushvalue(L, name_idx);
  else
    lua_pushlstring(L, name, n);
  if (lua_rawget(L, specs) == LUA_TNIL && n <= NAME_MAX_LEN * 2 + 1) {
    lua_pop(L, 1);
    for (i = 0; i < n; i++)
      low[i] = (name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i];
    lua_pushlstring(L, low, n);
    lua_rawget(L, specs);
  }
  return pop_cmd(L);
}

/* The slot of the command in a; *ro when the server flags it readonly. */
/* The slot of a command whose top-level record is cmd (NULL: unknown). */
static int slot_of_cmd(lua_State *L, int specs, argsrc *a, int argc,
                       const char *name, size_t n, const slot_cmd *cmd,
                       int *ro) {
  if (cmd && (cmd->flags & SLOT_CMD_SUBCMDS) && argc > 1) {
    char full[NAME_MAX_LEN * 2 + 2];
    size_t sn;
    const char *sub = arg_at(a, 1, &sn);
    if (sub && sn <= NAME_MAX_LEN) {
      const slot_cmd *subcmd;
      memcpy(full, name, n);
      full[n] = '|';
      memcpy(full + n + 1, sub, sn);
      subcmd = find_cmd(L, specs, 0, full, n + 1 + sn);
      if (subcmd)
        cmd = subcmd;
    }
  }
  if (!cmd) {
    *ro = 0;
    return SLOT_NONE;
  }
  *ro = (cmd->flags & SLOT_CMD_READONLY) != 0;
  /* single-key commands (GET, SET, HGET, ...): the key is argument 1 */
  if ((cmd->flags & SLOT_CMD_FIRSTKEY) && !a->table && argc > 1 &&
      lua_type(L, a->base + 1) == LUA_TSTRING) {
    size_t kn;
    const char *k = lua_tolstring(L, a->base + 1, &kn);
    return slot_of(k, kn);
  }
  return slot_route(cmd, argc, arg_at, a);
}

/* The slot of the command in a; *ro when the server flags it readonly. */
static int route_slot(lua_State *L, int specs, argsrc *a, int argc, int *ro) {
  const char *name;
  size_t n;
  const slot_cmd *cmd;
  *ro = 0;
  if (argc < 1 || !(name = arg_at(a, 0, &n)) || n > NAME_MAX_LEN)
    return SLOT_NONE;
  cmd = find_cmd(L, specs, a->table ? 0 : a->base, name, n);
  return slot_of_cmd(L, specs, a, argc, name, n, cmd, ro);
}

static int route(lua_State *L, int specs, argsrc *a, int argc) {
  int ro, slot = route_slot(L, specs, a, argc, &ro);
  lua_pushinteger(L, slot);
  lua_pushboolean(L, ro);
  return 2;
}

/* cluster_slot_argv(specs, argv) */
static int l_cluster_slot_argv(lua_State *L) {
  argsrc a;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  a.L = L;
  a.base = 2;
  a.table = 1;
  return route(L, 1, &a, (int)luaL_len(L, 2));
}

/* cmd(cl, name, ...), a closure with the upvalues
 *   1 specs, 2 route, 3 rroute (a table, or false), 4 the client's cmd,
 *   5 slow.
 * route and rroute are filled in place by redis.cluster, so the closure
 * always sees the current map. Stack on entry: [cl, name, args...] (top
 * values); they stay below the call, with the routed connection above
 * them, so that the continuation can hand them to the slow path. The
 * slot and the readonly flag travel in the continuation context. */
#define UV_SPECS lua_upvalueindex(1)
#define UV_ROUTE lua_upvalueindex(2)
#define UV_RROUTE lua_upvalueindex(3)
#define UV_CMD lua_upvalueindex(4)
#define UV_SLOW lua_upvalueindex(5)
#define UV_CACHE lua_upvalueindex(6)
#define UV_ANCHOR lua_upvalueindex(7)
#define NAME_CACHE 16

/* Command names seen lately -> their records. Lua interns short strings,
 * so the same name is the same pointer; each cached name is anchored in
 * the UV_ANCHOR table so its address cannot be reused while cached. */
typedef struct name_cache {
  const char *name[NAME_CACHE];
  const slot_cmd *cmd[NAME_CACHE];
  int has_rroute;          /* UV_RROUTE is a table */
} name_cache;

static lua_KContext ctx_pack(int top, int slot, int ro) {
  return (lua_KContext)(((intptr_t)top << 16) | ((intptr_t)(slot + 2) << 1) |
                        (ro ? 1 : 0));
}

static int cmd_done(lua_State *L, int status, lua_KContext ctx);

/* Results of slow(): everything above the height saved in ctx. */
static int cmd_slow_ret(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return lua_gettop(L) - (int)ctx;
}

/* slow(err, cat, slot, ro, conn, name, args...); the connection (or nil)
 * is at top + 1; err_idx 0: there was no reply. */
static int call_slow(lua_State *L, int top, int slot, int ro, int err_idx) {
  int base = lua_gettop(L), i;
  lua_pushvalue(L, UV_SLOW);
  if (err_idx) {
    lua_pushvalue(L, err_idx);
    lua_pushvalue(L, err_idx + 1);
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  lua_pushinteger(L, slot);
  lua_pushboolean(L, ro);
  lua_pushvalue(L, top + 1);
  for (i = 2; i <= top; i++)
    lua_pushvalue(L, i);
  lua_callk(L, 5 + top - 1, LUA_MULTRET, (lua_KContext)base, cmd_slow_ret);
  return cmd_slow_ret(L, LUA_OK, (lua_KContext)base);
}

static int l_cmd_fn(lua_State *L) {
  argsrc a;
  int ro, slot, top = lua_gettop(L), i, h;
  const char *name;
  size_t n;
  const slot_cmd *cmd;
  name_cache *nc;
  if (top < 2 || !(name = lua_tolstring(L, 2, &n)))
    return luaL_error(L, "redis.cluster: cmd: the command name must be a "
                         "string");
  /* a C function starts with LUA_MINSTACK free slots; we push top + 5 */
  if (top + 6 > LUA_MINSTACK)
    luaL_checkstack(L, top + 6, "redis.cluster: cmd: too many arguments");
  a.L = L;
  a.base = 2;
  a.table = 0;
  nc = (name_cache *)lua_touserdata(L, UV_CACHE);
  h = (int)(((uintptr_t)name >> 4) & (NAME_CACHE - 1));
  if (nc->name[h] == name) {
    cmd = nc->cmd[h];
  } else {
    cmd = n <= NAME_MAX_LEN ? find_cmd(L, UV_SPECS, 2, name, n) : NULL;
    if (cmd && n <= 40) { /* short strings only: those are interned */
      lua_pushvalue(L, 2);
      lua_rawseti(L, UV_ANCHOR, h + 1);
      nc->name[h] = name;
      nc->cmd[h] = cmd;
    }
  }
  if (cmd && (cmd->flags & SLOT_CMD_FIRSTKEY) && top > 2 &&
      lua_type(L, 3) == LUA_TSTRING) {
    size_t kn;
    const char *k = lua_tolstring(L, 3, &kn);
    slot = slot_of(k, kn); /* GET key and the like: the shortest way */
    ro = (cmd->flags & SLOT_CMD_READONLY) != 0;
  } else {
    slot = slot_of_cmd(L, UV_SPECS, &a, top - 1, name, n, cmd, &ro);
  }
  /* [cl, name, args..., conn] */
  if (slot == SLOT_CROSS) {
    lua_pushnil(L);
    return call_slow(L, top, slot, ro, 0);
  }
  if (lua_rawgeti(L, ro && nc->has_rroute ? UV_RROUTE : UV_ROUTE, slot) ==
      LUA_TNIL)
    return call_slow(L, top, slot, ro, 0);
  lua_pushvalue(L, UV_CMD);
  lua_pushvalue(L, top + 1);
  for (i = 2; i <= top; i++)
    lua_pushvalue(L, i);
  lua_callk(L, top, LUA_MULTRET, ctx_pack(top, slot, ro), cmd_done);
  return cmd_done(L, LUA_OK, ctx_pack(top, slot, ro));
}

static int cmd_done(lua_State *L, int status, lua_KContext ctx) {
  int top = (int)(ctx >> 16), nres = lua_gettop(L) - top - 1;
  (void)status;
  if (nres < 1 || lua_type(L, top + 2) != LUA_TNIL)
    return nres; /* a value */
  if (nres < 3 || lua_type(L, top + 4) == LUA_TNIL)
    return nres; /* NULL: nil, "not found" */
  /* a failure with a category: the slow path decides */
  lua_settop(L, top + 4);
  return call_slow(L, top, (int)((ctx >> 1) & 0x7fff) - 2, (int)(ctx & 1),
                   top + 3);
}

/* cluster_cmd(specs, route, rroute, client_cmd, slow) -> cmd */
static int l_cluster_cmd(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  lua_settop(L, 5);
  {
    name_cache *nc = (name_cache *)lua_newuserdatauv(L, sizeof *nc, 0);
    memset(nc, 0, sizeof *nc);
    nc->has_rroute = lua_istable(L, 3);
  }
  lua_createtable(L, NAME_CACHE, 0);
  lua_pushcclosure(L, l_cmd_fn, 7);
  return 1;
}

static int l_keyslot(lua_State *L) {
  size_t n;
  const char *k = luaL_checklstring(L, 1, &n);
  lua_pushinteger(L, slot_of(k, n));
  return 1;
}

/* An integer field within +-SPEC_VALUE_MAX, else *ok = 0. */
static int int_field(lua_State *L, int t, const char *f, int def, int *ok) {
  lua_Integer v;
  int isnum;
  lua_getfield(L, t, f);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  v = lua_tointegerx(L, -1, &isnum);
  lua_pop(L, 1);
  if (!isnum || v < -SPEC_VALUE_MAX || v > SPEC_VALUE_MAX) {
    *ok = 0;
    return def;
  }
  return (int)v;
}

static void read_spec(lua_State *L, int t, slot_spec *sp) {
  int ok = 1;
  memset(sp, 0, sizeof *sp);
  sp->bs_type = int_field(L, t, "bs", SLOT_BS_UNKNOWN, &ok);
  sp->fk_type = int_field(L, t, "fk", SLOT_FK_UNKNOWN, &ok);
  sp->bs_index = int_field(L, t, "index", 0, &ok);
  sp->fk_last = int_field(L, t, "last", 0, &ok);
  sp->fk_step = int_field(L, t, "step", 1, &ok);
  sp->fk_limit = int_field(L, t, "limit", 0, &ok);
  lua_getfield(L, t, "not_key");
  sp->not_key = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (sp->bs_type == SLOT_BS_KEYWORD) {
    size_t n = 0;
    const char *kw;
    lua_getfield(L, t, "keyword");
    kw = lua_tolstring(L, -1, &n);
    if (kw && n > 0 && n <= SLOT_KEYWORD_MAX) {
      memcpy(sp->kw, kw, n);
      sp->kwlen = n;
    } else {
      ok = 0;
    }
    lua_pop(L, 1);
  }
  if (sp->bs_type < SLOT_BS_UNKNOWN || sp->bs_type > SLOT_BS_KEYWORD ||
      sp->fk_type < SLOT_FK_UNKNOWN || sp->fk_type > SLOT_FK_KEYNUM ||
      sp->fk_step < 1)
    ok = 0;
  if (!ok) /* a spec we cannot read routes like an unknown one */
    sp->bs_type = sp->fk_type = SLOT_BS_UNKNOWN;
}

/* cluster_spec{ flags = f, specs = {...} } */
static int l_cluster_spec(lua_State *L) {
  int n, i, ok = 1;
  slot_cmd *cmd;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "specs");
  n = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
  if (n < 0)
    n = 0;
  if (n > SPECS_MAX)
    n = SPECS_MAX;
  cmd = (slot_cmd *)lua_newuserdatauv(
      L, sizeof(slot_cmd) + (size_t)n * sizeof(slot_spec), 0);
  cmd->flags = (unsigned)int_field(L, 1, "flags", 0, &ok) &
               (SLOT_CMD_READONLY | SLOT_CMD_SUBCMDS);
  cmd->nspecs = n;
  for (i = 0; i < n; i++) {
    if (lua_geti(L, -2, i + 1) == LUA_TTABLE)
      read_spec(L, lua_gettop(L), &cmd->spec[i]);
    else
      memset(&cmd->spec[i], 0, sizeof cmd->spec[i]);
    lua_pop(L, 1);
  }
  if (n == 1 && !(cmd->flags & SLOT_CMD_SUBCMDS) && !cmd->spec[0].not_key &&
      cmd->spec[0].bs_type == SLOT_BS_INDEX && cmd->spec[0].bs_index == 1 &&
      cmd->spec[0].fk_type == SLOT_FK_RANGE && cmd->spec[0].fk_last == 0)
    cmd->flags |= SLOT_CMD_FIRSTKEY;
  luaL_setmetatable(L, CMD_MT);
  return 1;
}

void cluster_glue_register(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"cluster_spec", l_cluster_spec},
    {"cluster_slot_argv", l_cluster_slot_argv},
    {"cluster_cmd", l_cluster_cmd},
    {"keyslot", l_keyslot},
    {NULL, NULL}
  };
  luaL_newmetatable(L, CMD_MT);
  lua_pushliteral(L, "redis.cluster command");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
