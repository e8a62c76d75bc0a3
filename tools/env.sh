#!/bin/sh
# Prints the shell lines that put a luarocks tree on the paths of Lua 5.4
# only, for eval:
#
#   eval "$(/path/to/lev-redis/tools/env.sh /path/to/app/.rocks)"
#
# It sets LUA_PATH_5_4 and LUA_CPATH_5_4, not LUA_PATH and LUA_CPATH (what
# `luarocks path` exports): Lua 5.4 reads the _5_4 names first, and every
# other Lua leaves them alone, so a busted or luarocks that runs on another
# `lua` (5.1, 5.3) keeps its own modules. The trailing ";;" keeps the
# default paths. Without a checkout, the same in two lines:
#
#   export LUA_PATH_5_4="$(luarocks --lua-version 5.4 --tree .rocks path --lr-path);;"
#   export LUA_CPATH_5_4="$(luarocks --lua-version 5.4 --tree .rocks path --lr-cpath);;"
set -eu
TREE=${1:-.rocks}
lp=$(luarocks --lua-version 5.4 --tree "$TREE" path --lr-path)
lcp=$(luarocks --lua-version 5.4 --tree "$TREE" path --lr-cpath)
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
echo "export LUA_PATH_5_4=$(quote "$lp;;")"
echo "export LUA_CPATH_5_4=$(quote "$lcp;;")"
