/* reply: RESP replies to Lua values, straight from the reader's buffer.
 *
 * Strings go from the bytes the socket wrote into lua_pushlstring: one copy,
 * no intermediate reply objects. NULL inside an aggregate is redis.null
 * (a NULL light userdata, like cjson.null); an error inside an aggregate is
 * { err = text }, as in Redis's own Lua scripting.
 */
#include "reply.h"

#include <string.h>

/* Pushes the value of node i; returns the index after its subtree. */
static size_t push_node(lua_State *L, const resp_reply *r, size_t i) {
  const resp_node *n = &r->nodes[i];
  size_t next = i + 1;
  lua_Integer k, count;
  switch (n->type) {
  case RESP_BULK:
  case RESP_SIMPLE:
  case RESP_BIGNUM:
  case RESP_VERBATIM:
    lua_pushlstring(L, r->base + n->off, (size_t)n->len);
    break;
  case RESP_INTEGER:
    lua_pushinteger(L, (lua_Integer)n->v.i);
    break;
  case RESP_DOUBLE:
    lua_pushnumber(L, n->v.d);
    break;
  case RESP_BOOLEAN:
    lua_pushboolean(L, n->v.b);
    break;
  case RESP_NULL:
    lua_pushlightuserdata(L, NULL);
    break;
  case RESP_ERROR:
  case RESP_BLOB_ERROR:
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, r->base + n->off, (size_t)n->len);
    lua_setfield(L, -2, "err");
    break;
  case RESP_MAP:
    luaL_checkstack(L, 4, "redis: reply nested too deep");
    lua_createtable(L, 0, n->len > 1 << 20 ? 1 << 20 : (int)n->len);
    for (k = 0; k < n->len; k++) {
      next = push_node(L, r, next);
      next = push_node(L, r, next);
      lua_rawset(L, -3);
    }
    break;
  default: /* ARRAY, SET, PUSH */
    luaL_checkstack(L, 3, "redis: reply nested too deep");
    count = n->len;
    lua_createtable(L, count > 1 << 24 ? 1 << 24 : (int)count, 0);
    for (k = 1; k <= count; k++) {
      next = push_node(L, r, next);
      lua_rawseti(L, -2, k);
    }
    break;
  }
  return next;
}

int reply_push_result(lua_State *L, const resp_reply *r) {
  const resp_node *n = r->nodes;
  switch (n->type) {
  case RESP_BULK:
    lua_pushlstring(L, r->base + n->off, (size_t)n->len);
    return 1;
  case RESP_NULL:
    lua_pushnil(L);
    lua_pushliteral(L, "not found");
    return 2;
  case RESP_ERROR:
  case RESP_BLOB_ERROR:
    lua_pushnil(L);
    lua_pushlstring(L, r->base + n->off, (size_t)n->len);
    lua_pushliteral(L, "redis");
    return 3;
  default:
    push_node(L, r, 0);
    return 1;
  }
}

void reply_push_entry(lua_State *L, const resp_reply *r) {
  const resp_node *n = r->nodes;
  /* { value } needs one array slot, { nil, text } two. */
  lua_createtable(L, n->type == RESP_ERROR || n->type == RESP_BLOB_ERROR
                         ? 2 : n->type == RESP_NULL ? 0 : 1, 0);
  switch (n->type) {
  case RESP_NULL:
    break;
  case RESP_ERROR:
  case RESP_BLOB_ERROR:
    lua_pushlstring(L, r->base + n->off, (size_t)n->len);
    lua_rawseti(L, -2, 2);
    break;
  default:
    push_node(L, r, 0);
    lua_rawseti(L, -2, 1);
  }
}

void reply_push_tagged(lua_State *L, const resp_reply *r) {
  const resp_node *n = r->nodes;
  lua_createtable(L, 0, 2);
  lua_pushstring(L, resp_type_name(n->type));
  lua_setfield(L, -2, "type");
  if (n->type == RESP_NULL)
    return;
  if (n->type == RESP_ERROR || n->type == RESP_BLOB_ERROR)
    lua_pushlstring(L, r->base + n->off, (size_t)n->len);
  else
    push_node(L, r, 0);
  lua_setfield(L, -2, "value");
}

/* For request readers (the mock server): argv as an array of strings. */
void reply_push_argv(lua_State *L, const resp_reply *r) {
  const resp_node *n = r->nodes;
  lua_Integer k;
  size_t i = 1;
  lua_createtable(L, (int)n->len, 0);
  for (k = 1; k <= n->len; k++, i++) {
    lua_pushlstring(L, r->base + r->nodes[i].off, (size_t)r->nodes[i].len);
    lua_rawseti(L, -2, k);
  }
}
