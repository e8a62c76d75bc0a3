#!/bin/sh
# Leak and memory-error check: runs spec/support/valgrind_workload.lua under
# valgrind --leak-check=full against the given Redis port. Fails on any
# memory error or definite/indirect leak.
#   tools/valgrind-check.sh BUILD_DIR REDIS_PORT
set -u
BUILD=${1:-build}
PORT=${2:?redis port}
cd "$(dirname "$0")/.."
LEVR_BUILD=$BUILD LEVR_REDIS_PORT=$PORT valgrind -q --leak-check=full \
  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
  --error-exitcode=3 lua5.4 tools/run-lua.lua spec/support/valgrind_workload.lua
rc=$?
[ $rc -eq 0 ] && echo "valgrind: no errors, no definite or indirect leaks"
exit $rc
