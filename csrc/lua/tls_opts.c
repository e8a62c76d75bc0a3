/* tls_opts: see tls_opts.h. */
#include "tls_opts.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* ---- the context cache ------------------------------------------------ */

/* Each module (lev, redis.core) has its own copy of this file and so its
 * own cache: a context is only ever freed by the code that made it. */
static const char cache_key = 'k';

typedef struct cache_entry {
  char *key;
  size_t keylen;
  tls_ctx *ctx;         /* the cache's reference */
  struct cache_entry *next;
} cache_entry;

typedef struct ctx_cache {
  cache_entry *head;    /* most recently used first */
  int n;
} ctx_cache;

static void entry_free(cache_entry *e) {
  tls_ctx_unref(e->ctx);
  free(e->key);
  free(e);
}

static int cache_gc(lua_State *L) {
  ctx_cache *c = (ctx_cache *)lua_touserdata(L, 1);
  cache_entry *e, *next;
  for (e = c->head; e; e = next) {
    next = e->next;
    entry_free(e);
  }
  c->head = NULL;
  c->n = 0;
  return 0;
}

static ctx_cache *cache_get(lua_State *L) {
  ctx_cache *c;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
  c = (ctx_cache *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (c)
    return c;
  c = (ctx_cache *)lua_newuserdatauv(L, sizeof(*c), 0);
  c->head = NULL;
  c->n = 0;
  lua_newtable(L);
  lua_pushcfunction(L, cache_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
  return c;
}

/* One length-delimited part of the key: "<len>:<bytes>;" or "-;". */
static void key_part(luaL_Buffer *b, const char *s) {
  if (!s) {
    luaL_addstring(b, "-;");
    return;
  }
  lua_pushfstring(b->L, "%d:", (int)strlen(s));
  luaL_addvalue(b);
  luaL_addstring(b, s);
  luaL_addchar(b, ';');
}

/* A file's path and what identifies its content: device, inode, size and
 * modification time, so that a file replaced under the same name is a
 * different key. A file that cannot be read gets none; loading then
 * fails, and failures are not cached. */
static void key_file(luaL_Buffer *b, const char *path) {
  struct stat st;
  key_part(b, path);
  if (path && stat(path, &st) == 0) {
    char id[160];
    snprintf(id, sizeof id, "%lu/%lu/%lld/%lld.%09ld;",
             (unsigned long)st.st_dev, (unsigned long)st.st_ino,
             (long long)st.st_size, (long long)st.st_mtim.tv_sec,
             (long)st.st_mtim.tv_nsec);
    luaL_addstring(b, id);
  }
}

int tls_opts_context(lua_State *L, const tls_config *cfg, tls_ctx **out,
                     char *err, size_t errlen) {
  ctx_cache *c = cache_get(L);
  cache_entry *e, **pp;
  luaL_Buffer b;
  const char *key;
  size_t keylen;
  int rc;

  luaL_buffinit(L, &b);
  luaL_addstring(&b, cfg->verify ? "v1;" : "v0;");
  key_file(&b, cfg->ca_file);
  key_file(&b, cfg->cert_file);
  key_file(&b, cfg->key_file);
  if (!cfg->ca_file && cfg->verify) {
    /* The system store: OpenSSL reads these when it loads it. */
    key_part(&b, getenv("SSL_CERT_FILE"));
    key_part(&b, getenv("SSL_CERT_DIR"));
  }
  luaL_pushresult(&b);
  key = lua_tolstring(L, -1, &keylen);
  for (pp = &c->head; (e = *pp) != NULL; pp = &e->next) {
    if (e->keylen == keylen && memcmp(e->key, key, keylen) == 0) {
      *pp = e->next; /* to the front */
      e->next = c->head;
      c->head = e;
      lua_pop(L, 1);
      tls_ctx_ref(e->ctx);
      *out = e->ctx;
      return TLS_OK;
    }
  }
  rc = tls_ctx_new(out, cfg, err, errlen);
  if (rc != TLS_OK) {
    lua_pop(L, 1);
    return rc;
  }
  e = (cache_entry *)malloc(sizeof(*e));
  if (e)
    e->key = (char *)malloc(keylen);
  if (!e || !e->key) {
    /* Uncached but usable: the caller's reference is the only one. */
    free(e);
    lua_pop(L, 1);
    return TLS_OK;
  }
  memcpy(e->key, key, keylen);
  lua_pop(L, 1);
  e->keylen = keylen;
  e->ctx = *out;
  tls_ctx_ref(e->ctx);
  e->next = c->head;
  c->head = e;
  if (++c->n > TLS_OPTS_CACHE) {
    /* Drop the least recently used; its sessions keep their references. */
    for (pp = &c->head; (*pp)->next; pp = &(*pp)->next)
      ;
    entry_free(*pp);
    *pp = NULL;
    c->n--;
  }
  return TLS_OK;
}
