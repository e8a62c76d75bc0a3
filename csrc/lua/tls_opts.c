/* tls_opts: see tls_opts.h. */
#include "tls_opts.h"

#include <lauxlib.h>
#include <string.h>

/* One string field of the ssl table at idx: NULL when absent, else a
 * non-empty string. */
static const char *field_string(lua_State *L, int idx, int arg,
                                const char *field) {
  const char *v = NULL;
  lua_getfield(L, idx, field);
  if (!lua_isnil(L, -1)) {
    size_t len = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      v = lua_tolstring(L, -1, &len);
    if (!v || len == 0) {
      lua_pushfstring(L, "ssl.%s must be a non-empty string", field);
      luaL_argerror(L, arg, lua_tostring(L, -1));
    }
  }
  lua_pop(L, 1); /* the table still anchors the string */
  return v;
}

int tls_opts_read(lua_State *L, int idx, int arg, tls_config *cfg,
                  const char **server_name) {
  int type = lua_type(L, idx);
  idx = lua_absindex(L, idx);
  memset(cfg, 0, sizeof(*cfg));
  cfg->verify = 1;
  *server_name = NULL;
  if (type == LUA_TNIL || type == LUA_TNONE ||
      (type == LUA_TBOOLEAN && !lua_toboolean(L, idx)))
    return 0;
  if (type == LUA_TBOOLEAN)
    return 1;
  if (type != LUA_TTABLE)
    luaL_argerror(L, arg, "ssl must be true, false or a table");
  lua_getfield(L, idx, "verify");
  if (!lua_isnil(L, -1)) {
    luaL_argcheck(L, lua_type(L, -1) == LUA_TBOOLEAN, arg,
                  "ssl.verify must be a boolean");
    cfg->verify = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  cfg->ca_file = field_string(L, idx, arg, "ca");
  cfg->cert_file = field_string(L, idx, arg, "cert");
  cfg->key_file = field_string(L, idx, arg, "key");
  *server_name = field_string(L, idx, arg, "server_name");
  luaL_argcheck(L, cfg->key_file == NULL || cfg->cert_file != NULL, arg,
                "ssl.key needs ssl.cert");
  return 1;
}
