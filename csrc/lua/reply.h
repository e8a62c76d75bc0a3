/* reply: RESP replies to Lua values (see reply.c). Each function pushes onto
 * L; the reply must still be valid (see resp.h). */
#ifndef LEVR_REPLY_H
#define LEVR_REPLY_H

#include <lua.h>
#include <lauxlib.h>

#include "resp.h"

/* cmd's results: value | nil, "not found" | nil, text, "redis".
 * Returns how many values it pushed. */
int reply_push_result(lua_State *L, const resp_reply *r);
/* A pipeline entry: { value } | { nil } | { nil, text }. */
void reply_push_entry(lua_State *L, const resp_reply *r);
/* read()'s { type = name, value = v }. */
void reply_push_tagged(lua_State *L, const resp_reply *r);
/* A request (array of bulk strings) as an array of strings. */
void reply_push_argv(lua_State *L, const resp_reply *r);

#endif
