/* cluster_glue: redis.core's functions for redis.cluster (slot.h in Lua). */
#ifndef LEVR_CLUSTER_GLUE_H
#define LEVR_CLUSTER_GLUE_H

#include <lua.h>

/* Adds cluster_spec, cluster_slot, cluster_slot_argv and keyslot to the
 * table on top of the stack. */
void cluster_glue_register(lua_State *L);

#endif
