#!/bin/bash
# Runs every test suite of `make test` and ends with one line
# "N passed, N failed" (all suites summed); exits non-zero on any failure.
#
#   tools/run-tests.sh BUILD_DIR ASAN_BUILD_DIR
#
# Suites: C unit tests (ctest) on the normal and the ASan+UBSan build; busted
# unit specs (mock server) on both builds; integration specs against a real
# redis-server (plain and TLS) started here on free loopback ports; the
# examples as smoke tests; the rock installed into a temporary tree; a
# valgrind leak check of a representative spec subset.
set -u
BUILD=${1:-build}
ASAN=${2:-build-asan}
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
WORK=$(mktemp -d /tmp/levr-test.XXXXXX)
PASSED=0
FAILED=0
SERVERS=""
SENTINEL_SETS=""

cleanup() {
  for d in $SERVERS; do tools/redis-server.sh stop "$d"; done
  for d in $SENTINEL_SETS; do tools/redis-sentinel.sh stop "$d"; done
  for d in ${CLUSTERS:-}; do tools/redis-cluster.sh stop "$d"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

count() { # name passed failed [seconds]
  PASSED=$((PASSED + $2)); FAILED=$((FAILED + $3))
  printf '== %-34s %4d passed, %d failed%s\n' "$1" "$2" "$3" \
    "${4:+ ($4 s)}"
}

# ctest: its summary line "N% tests passed, F tests failed out of T".
run_ctest() { # name dir
  local log="$WORK/$1.log" total fail
  ctest --test-dir "$2" --output-on-failure -j2 >"$log" 2>&1
  total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
  fail=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)
  if [ -z "$total" ]; then
    cat "$log"; count "$1" 0 1; return
  fi
  [ "$fail" != 0 ] && grep -v '^ *[0-9]*/[0-9]* Test' "$log" | tail -60
  count "$1" $((total - fail)) "$fail"
}

# A busted suite that runs longer than this is stopped (with the processes
# it started: timeout signals the whole process group) and counted as a
# failure naming the test it was in, so that a hang fails the run instead
# of holding it until CI's own limit. Each suite's line gives its time.
# RUN_LIMIT bounds them all together (CI stops a run at 90 min).
SUITE_LIMIT=${LEVR_SUITE_LIMIT:-1200}
RUN_LIMIT=${LEVR_RUN_LIMIT:-4800}

# busted with TAP output: count "ok" and "not ok" lines; a run that dies
# without reporting a failure counts as one.
run_busted() { # name [env...] -- busted args
  local name=$1 log="$WORK/$1.log" ok nok rc t0=$SECONDS; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  local limit=$SUITE_LIMIT left=$((RUN_LIMIT - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 0 ]; then
    echo "$name: not run: the whole run is past $RUN_LIMIT s (LEVR_RUN_LIMIT)"
    count "$name" 0 1; return
  fi
  env "${envs[@]}" timeout -k 10 "$limit" \
    busted --lua=lua5.4 -o TAP "$@" >"$log" 2>&1
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    # busted's TAP names each test ("# FILE @ LINE: NAME") before it runs
    echo "$name: stopped after $limit s (LEVR_SUITE_LIMIT, LEVR_RUN_LIMIT), in the test:"
    grep '^# .* @ [0-9]*: ' "$log" | tail -1
  fi
  ok=$(grep -c '^ok ' "$log")
  nok=$(grep -c '^not ok ' "$log")
  if [ "$nok" -gt 0 ] || [ "$rc" -ne 0 ]; then
    # The failures first (busted's TAP lists every test name as a comment,
    # which would push them out of view), then the rest of what is not ok.
    grep -A25 '^not ok ' "$log" | head -200
    grep -v '^ok \|^# spec/' "$log" | head -60
    [ "$nok" -eq 0 ] && nok=1
  fi
  if grep -q "ERROR: AddressSanitizer\|runtime error:" "$log"; then
    echo "sanitizer report in $name:"; grep -A20 "ERROR: AddressSanitizer\|runtime error:" "$log" | head -60
    nok=$((nok + 1))
  fi
  count "$name" "$ok" "$nok" $((SECONDS - t0))
}

# Starts a server and records it for cleanup; its port(s) in REDIS_OUT.
# Not called in $(...): a subshell would record it in its own SERVERS,
# and the server would outlive the run.
start_redis() { # dir args...
  REDIS_OUT=$(tools/redis-server.sh start "$@") || {
    echo "cannot start redis-server" >&2; return 1; }
  SERVERS="$SERVERS $1"
}

ASAN_LIB=$(gcc -print-file-name=libasan.so)
UBSAN_LIB=$(gcc -print-file-name=libubsan.so)
ASAN_ENV=("LD_PRELOAD=$ASAN_LIB $UBSAN_LIB"
  "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1" "LEVR_BUILD=$ASAN")

# 1. C unit tests.
run_ctest "ctest" "$BUILD"
run_ctest "ctest (asan+ubsan)" "$ASAN"

# 2. Real servers for the integration specs: plain (with an ACL user) and TLS.
REDIS_ARGS=(--user "alice on >s3cret ~* &* +@all")
if start_redis "$WORK/redis" "${REDIS_ARGS[@]}"; then
  PORT=$REDIS_OUT
  INT_ENV=("LEVR_REDIS_PORT=$PORT" "LEVR_REDIS_USER=alice" "LEVR_REDIS_PASS=s3cret")
else
  INT_ENV=()
  count "start redis-server" 0 1
fi
CERTS="$WORK/certs"
if tools/make-test-certs.sh "$CERTS" >/dev/null 2>&1 &&
   start_redis "$WORK/redis-tls" --port 0 --tls-port PORT2 \
     --tls-cert-file "$CERTS/server.crt" --tls-key-file "$CERTS/server.key" \
     --tls-ca-cert-file "$CERTS/ca.crt" --tls-auth-clients optional; then
  INT_ENV+=("LEVR_TLS_PORT=${REDIS_OUT#* }" "LEVR_TLS_CERTS=$CERTS")
else
  count "start TLS redis-server" 0 1
fi

# A Sentinel set for the sentinel specs: one master, two replicas, three
# sentinels (tools/redis-sentinel.sh), stopped by PID at the end.
SENTINEL_SETS="$WORK/sentinel"
if SENT_OUT=$(tools/redis-sentinel.sh start "$WORK/sentinel" 2>"$WORK/sentinel.err"); then
  INT_ENV+=("LEVR_SENTINEL_DIR=$WORK/sentinel" "LEVR_SENTINEL_PORTS=$SENT_OUT")
  SENTINEL_ADDRS=$(echo "$SENT_OUT" | awk '{ printf "127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s", $4, $5, $6 }')
else
  cat "$WORK/sentinel.err"; count "start sentinel set" 0 1
fi

# 3. busted specs: unit (mock server) and integration (real servers).
run_busted "specs unit" "LEVR_BUILD=$BUILD" -- spec/unit
run_busted "specs integration" "LEVR_BUILD=$BUILD" "${INT_ENV[@]}" -- --exclude-pattern=cluster_ spec/integration
# The soak's counts (ops, faults injected, failures reported, mismatches).
grep -A6 '^soak:' "$WORK/specs integration.log" | sed 's/^/   /'
run_busted "specs unit (asan+ubsan)" "${ASAN_ENV[@]}" -- spec/unit
run_busted "specs integration (asan+ubsan)" "${ASAN_ENV[@]}" "${INT_ENV[@]}" -- --exclude-pattern=cluster_ spec/integration

# 3b. Chaos (issue 12): random commands, pipelines, read(), abandonment,
# closes from finalizers and <close> handlers and a hostile server, every
# reply checked, on the ASan build for LEVR_CHAOS_SECONDS (default 30).
# The seed is printed; LEVR_CHAOS_SEED=N replays a run.
run_busted "chaos (asan+ubsan)" "${ASAN_ENV[@]}" "${INT_ENV[@]}" \
  "LEVR_CHAOS_SECONDS=${LEVR_CHAOS_SECONDS:-30}" -- spec/chaos
grep '^chaos: ' "$WORK/chaos (asan+ubsan).log" | grep -v PROBLEM | sed 's/^/   /'

# 4. Examples as smoke tests, each against the real server.
ex_ok=0; ex_fail=0
for ex in examples/*.lua; do
  case $ex in */mock-server.lua|*/cluster.lua) continue;; esac
  if REDIS_ADDR="127.0.0.1:${PORT:-6379}" SENTINELS="$SENTINEL_ADDRS" \
       SENTINEL_PASS=sentpass LEVR_BUILD=$BUILD timeout 60 \
       lua5.4 tools/run-lua.lua "$ex" >"$WORK/ex.log" 2>&1; then
    ex_ok=$((ex_ok + 1))
  else
    echo "example $ex failed:"; cat "$WORK/ex.log"; ex_fail=$((ex_fail + 1))
  fi
done
# The standalone mock server, with the quick-start against it.
mock_pid=""
if mock=$(LEVR_BUILD=$BUILD tools/mock-server.sh "$WORK/mock" 2>&1) &&
   mock_pid=${mock% *} &&
   REDIS_ADDR="127.0.0.1:${mock#* }" LEVR_BUILD=$BUILD \
     timeout 60 lua5.4 tools/run-lua.lua examples/quickstart.lua >"$WORK/ex.log" 2>&1; then
  ex_ok=$((ex_ok + 1))
else
  echo "example mock-server.lua + quickstart.lua failed:"; echo "$mock"
  cat "$WORK/mock/mock.out" "$WORK/mock/mock.err" "$WORK/ex.log" 2>/dev/null
  ex_fail=$((ex_fail + 1))
fi
[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
count "examples" "$ex_ok" "$ex_fail"

# 4b. Redis Cluster: a real 3+3 cluster (tools/redis-cluster.sh) per build,
# fresh each time, since the cluster specs stop, kill and move nodes; then
# examples/cluster.lua against the last one.
CLUSTERS=""
for b in normal asan; do
  cdir="$WORK/cluster-$b"
  if cports=$(tools/redis-cluster.sh start "$cdir" 2>"$WORK/cluster-$b.err"); then
    CLUSTERS="$CLUSTERS $cdir"
    CL_ENV=("LEVR_CLUSTER_DIR=$cdir" "LEVR_CLUSTER_PORTS=$cports")
    if [ $b = normal ]; then
      run_busted "specs cluster" "LEVR_BUILD=$BUILD" "${CL_ENV[@]}" -- spec/integration/cluster_spec.lua
      run_busted "specs cluster pubsub" "LEVR_BUILD=$BUILD" "${CL_ENV[@]}" -- spec/integration/cluster_pubsub_spec.lua
    else
      run_busted "specs cluster (asan+ubsan)" "${ASAN_ENV[@]}" "${CL_ENV[@]}" -- spec/integration/cluster_spec.lua
      run_busted "specs cluster pubsub (asan+ubsan)" "${ASAN_ENV[@]}" "${CL_ENV[@]}" -- spec/integration/cluster_pubsub_spec.lua
      if REDIS_CLUSTER="127.0.0.1:${cports%% *}" REDIS_USER=alice REDIS_PASS=s3cret \
           LEVR_BUILD=$BUILD timeout 60 lua5.4 tools/run-lua.lua examples/cluster.lua \
           >"$WORK/ex-cluster.log" 2>&1; then
        count "example cluster.lua" 1 0
      else
        cat "$WORK/ex-cluster.log"; count "example cluster.lua" 0 1
      fi
    fi
    tools/redis-cluster.sh stop "$cdir"
  else
    cat "$WORK/cluster-$b.err"; count "start redis cluster ($b)" 0 1
  fi
done

# 5. The rock: `luarocks make` into a fresh tree, and `make pack` with the
# .src.rock installed offline into another; each then used by a plain lua5.4.
if [ -f tools/test-rock.sh ]; then
  if tools/test-rock.sh "$WORK/rocks" >"$WORK/rock.log" 2>&1; then
    count "rock install (make, pack)" 2 0
  else
    cat "$WORK/rock.log"; count "rock install (make, pack)" 0 1
  fi
fi

# 6. Leaks: valgrind over a representative subset (our code must not leak).
if [ -f tools/valgrind-check.sh ]; then
  if tools/valgrind-check.sh "$BUILD" "${PORT:-}" >"$WORK/vg.log" 2>&1; then
    count "valgrind leak check" 1 0
  else
    tail -80 "$WORK/vg.log"; count "valgrind leak check" 0 1
  fi
fi

# 7. Fuzzing, briefly (make fuzz runs longer).
if [ "${LEVR_FUZZ_SECONDS:-20}" != 0 ] && command -v clang >/dev/null; then
  if make -s fuzz FUZZ_SECONDS="${LEVR_FUZZ_SECONDS:-20}" >"$WORK/fuzz.log" 2>&1; then
    grep '^fuzz ' "$WORK/fuzz.log"; count "fuzz (short)" 1 0
  else
    tail -40 "$WORK/fuzz.log"; count "fuzz (short)" 0 1
  fi
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
