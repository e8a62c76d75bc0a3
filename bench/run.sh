#!/usr/bin/env bash
# The lev-redis benchmark: our client against two hiredis peers built from
# Debian's libhiredis-dev and three Node peers (ioredis with and without
# enableAutoPipelining, node-redis; bench/node, pinned by its lockfile),
# with redis-benchmark as a reference for the server, all against one
# throw-away redis-server started here. The workloads are the rows of
# bench/workloads.txt; memory (RSS) and latency (histograms) follow.
#
#   bench/run.sh [--peers-only] [BUILD_DIR]      (make bench: bench/run.sh build)
#
# BUILD_DIR holds lev.so and redis/core.so (default: build). When they or
# lua/redis.lua cannot be loaded, our client is skipped with a message and
# only the peers run, as with --peers-only.
#
# Environment:
#   REPS=3            interleaved repetitions (median reported)
#   BENCH_CPU=0       CPU that server, clients and redis-benchmark share
#   BENCH_NOPIN=1     do not pin (expect round-trip figures to swing ~3x:
#                     on small VMs cross-CPU wake-ups dominate a round trip)
#   BENCH_SCALE=1     multiplies every timed op count (0.1 for a smoke run)
#   BENCH_CALLGRIND=0 skip the callgrind instruction counts
#   BENCH_TIMEOUT=120 seconds one measurement may take before it is killed
#                     and the run fails (callgrind runs get 3x as long)
#   BENCH_NODE=0      leave the Node peers out (default: they run, and a
#                     failing `npm ci` in bench/node stops the run)
#   NODE_SCALE=0.15   multiplies the Node peers' op counts (they are 3-15x
#                     slower; rates do not depend on the count)
#   BENCH_TLS=1       also run W5 (W1 over TLS) for our client; needs
#                     tools/make-test-certs.sh (hiredis 0.14 has no TLS)
#   BENCH_LUA_PATH, BENCH_LUA_CPATH   benchmark another copy of our client
#                     (results then stay in bench/out, never copied)
#
# Writes bench/out/results.md and bench/out/chart.png; when our client ran,
# also copies them to bench/results.md and bench/chart.png (committed, shown
# by the README).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=$here/out
HOST=127.0.0.1

peers_only=0
build=
for a in "$@"; do
  case $a in
    --peers-only) peers_only=1 ;;
    -h|--help) sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $a" >&2; exit 2 ;;
    *) build=$a ;;
  esac
done
build=${build:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac

REPS=${REPS:-3}
CPU=${BENCH_CPU:-0}
NOPIN=${BENCH_NOPIN:-0}
SCALE=${BENCH_SCALE:-1}
CALLGRIND=${BENCH_CALLGRIND:-1}
TLS=${BENCH_TLS:-0}
TMO=${BENCH_TIMEOUT:-120}
NODE=${BENCH_NODE:-1}
NODE_SCALE=${NODE_SCALE:-0.15}

t_start=$(date +%s)
say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

# Timed op counts (bench/workloads.txt for W1-W4) are chosen so that each
# measurement takes about 1-2 s on a 2-core VM with client and server
# sharing one CPU; the whole run stays under the 15 minutes `make bench`
# is allowed.
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s); if (v < 2) v = 2; print v }'; }
OPS_W5=$(scaled 40000)
# Latency runs (W3 with a histogram) and memory runs.
OPS_LAT_16=$(scaled 300000)
OPS_LAT_128=$(scaled 900000)
MEM_IDLE=1000
MEM_PARK=10000

# The workload table: arrays indexed by row. Callgrind uses two run
# lengths per workload (CG column); start-up and warm-up are the same in
# both, so (Ir2 - Ir1) / (ops2 - ops1) is the cost of one op.
W_LABEL=() W_WORK=() W_DEPTH=() W_OPS=() W_CG=() W_CLIENTS=()
while read -r label work depth ops cg clients _; do
  case $label in ''|'#'*) continue ;; esac
  W_LABEL+=("$label"); W_WORK+=("$work"); W_DEPTH+=("$depth")
  W_OPS+=("$ops"); W_CG+=("$cg"); W_CLIENTS+=("${clients//,/ }")
done <"$here/workloads.txt"
[ "${#W_LABEL[@]}" -gt 0 ] || die "no workloads in bench/workloads.txt"

# ---- tools --------------------------------------------------------------
for t in cc pkg-config redis-server lua5.4; do
  command -v "$t" >/dev/null || die "$t is not installed (make bench-deps)"
done
[ -f /usr/include/hiredis/adapters/libuv.h ] ||
  die "hiredis headers missing: install libhiredis-dev"
pkg-config --exists libuv || die "libuv not found by pkg-config (libuv1-dev)"
if [ "$NOPIN" != 1 ] && ! command -v taskset >/dev/null; then
  die "taskset missing (util-linux); or set BENCH_NOPIN=1"
fi
have_rb=1; command -v redis-benchmark >/dev/null || { have_rb=0; say "redis-benchmark not installed: no reference lines"; }
if [ "$CALLGRIND" = 1 ] && ! command -v valgrind >/dev/null; then
  say "valgrind not installed: skipping instruction counts"; CALLGRIND=0
fi
have_gp=1; command -v gnuplot >/dev/null || { have_gp=0; say "gnuplot not installed: no chart"; }

PIN=()
[ "$NOPIN" = 1 ] || PIN=(taskset -c "$CPU")
pin() { "${PIN[@]}" "$@"; }
# A client that hangs (a lost reply, say) must fail the run, not stall it.
limit() { local t=$1; shift; timeout -k 5 "$t" "${PIN[@]}" "$@"; }

# ---- build the peers -----------------------------------------------------
mkdir -p "$out"
rm -f "$out"/raw.txt "$out"/ceil.txt "$out"/cg.txt "$out"/meta.txt \
  "$out"/lat.txt "$out"/mem.txt "$out"/results.md "$out"/summary.md \
  "$out"/chart.dat "$out"/chart.png
# -O2 as a distribution builds; the peers must compile without a warning.
CFLAGS=(-std=c99 -O2 -Wall -Wextra -Werror)
cc "${CFLAGS[@]}" -o "$out/hiredis_sync" "$here/hiredis_sync.c" -lhiredis
# pkg-config's output is a list of flags: word splitting is wanted here.
# shellcheck disable=SC2046
cc "${CFLAGS[@]}" $(pkg-config --cflags libuv) -o "$out/hiredis_async" \
  "$here/hiredis_async.c" -lhiredis $(pkg-config --libs libuv)
# shellcheck disable=SC2046
cc "${CFLAGS[@]}" $(pkg-config --cflags libuv) -o "$out/hiredis_mem" \
  "$here/hiredis_mem.c" -lhiredis $(pkg-config --libs libuv)

# ---- the Node peers -----------------------------------------------------
# npm ci installs exactly what bench/node/package-lock.json pins.
node_ver=
if [ "$NODE" = 1 ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    die "node/npm not installed (make bench-deps), or set BENCH_NODE=0"
  fi
  node_ver=$(node --version)
  say "installing the Node peers (npm ci in bench/node, node $node_ver)"
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
    die "npm ci failed in bench/node; BENCH_NODE=0 runs without the Node peers"
fi

# ---- our client ------------------------------------------------------------
# Only the tree's own Lua files and build outputs: an installed copy must
# never be benchmarked by mistake.
export LUA_PATH_5_4=${BENCH_LUA_PATH:-"$root/lua/?.lua;$root/lua/?/init.lua"}
export LUA_CPATH_5_4=${BENCH_LUA_CPATH:-"$build/?.so"}
custom=0
[ -n "${BENCH_LUA_PATH:-}${BENCH_LUA_CPATH:-}" ] && custom=1
if [ "$peers_only" = 0 ]; then
  if why=$(lua5.4 "$here/bench.lua" probe 2>&1); then
    :
  else
    say "run.sh: our client cannot be loaded from $build and $root/lua:"
    say "  $why"
    say "run.sh: running the hiredis peers and redis-benchmark only."
    peers_only=1
  fi
fi

# client_cmd CLIENT: the client's command line, in the array CMDV (an
# array, so that paths with spaces survive).
client_cmd() {
  case $1 in
    lev-redis) CMDV=(lua5.4 "$here/bench.lua") ;;
    hiredis-sync) CMDV=("$out/hiredis_sync") ;;
    hiredis-async) CMDV=("$out/hiredis_async") ;;
    ioredis|ioredis-auto|node-redis) CMDV=(node "$here/node/peer.js" "$1") ;;
  esac
}
is_node() { case $1 in ioredis|ioredis-auto|node-redis) return 0 ;; esac; return 1; }
# The clients of a workload row that run in this invocation.
row_clients() {
  local c picked=()
  for c in ${W_CLIENTS[$1]}; do
    [ "$c" = lev-redis ] && [ "$peers_only" = 1 ] && continue
    is_node "$c" && [ "$NODE" != 1 ] && continue
    picked+=("$c")
  done
  echo "${picked[*]}"
}

# ---- redis-server ----------------------------------------------------------
servers=()
cleanup() {
  for d in "${servers[@]}"; do "$root/tools/redis-server.sh" stop "$d"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() { # DIR [args] -> ports on stdout
  local dir=$1 ports pid; shift
  ports=$(pin "$root/tools/redis-server.sh" start "$dir" "$@") ||
    die "cannot start redis-server"
  servers+=("$dir")
  # Affinity is inherited through the daemon's fork; set it again on every
  # thread so the server's helper threads cannot drift to the other CPU.
  if [ "$NOPIN" != 1 ]; then
    pid=$(cat "$dir/redis.pid")
    taskset -a -p -c "$CPU" "$pid" >/dev/null
  fi
  echo "$ports"
}

rm -rf "$out/redis"
start_server "$out/redis" >"$out/port.txt"
PORT=$(cat "$out/port.txt")
"$out/hiredis_sync" "$HOST" "$PORT" load

tls_port=
if [ "$TLS" = 1 ]; then
  if [ "$peers_only" = 1 ]; then
    say "BENCH_TLS: our client is not running, nothing to measure over TLS"
  elif [ ! -x "$root/tools/make-test-certs.sh" ]; then
    say "BENCH_TLS: tools/make-test-certs.sh not found, skipping W5"
  else
    certs=$out/certs
    "$root/tools/make-test-certs.sh" "$certs"
    rm -rf "$out/redis-tls"
    start_server "$out/redis-tls" --port 0 --tls-port PORT2 \
      --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" \
      --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no >"$out/port-tls.txt"
    tls_port=$(awk '{ print $2 }' "$out/port-tls.txt")
  fi
fi

# ---- measurements ----------------------------------------------------------
# measure REP CLIENT WORK OPS [DEPTH...]: one run of one client; its line
# "LABEL ops=N secs=S cpu=C" goes to raw.txt. A client that fails (a wrong
# reply included) stops the benchmark: a fast wrong answer must not win.
measure() {
  local rep=$1 client=$2 port=$PORT line label ops secs cpu sys; shift 2
  if [ "$client" = lev-redis-tls ]; then
    client=lev-redis; port=$tls_port
    set -- "$@" --tls "$certs/ca.crt"
  fi
  client_cmd "$client"
  line=$(limit "$TMO" "${CMDV[@]}" "$HOST" "$port" "$@") ||
    die "$client $* failed or timed out after $TMO s (see above)"
  read -r label ops secs cpu sys _ <<<"$line"
  ops=${ops#ops=}; secs=${secs#secs=}; cpu=${cpu#cpu=}; sys=${sys#sys=}
  echo "$rep $client $label $ops $secs $cpu $sys" >>"$out/raw.txt"
  printf '  %-8s %-14s %12.0f ops/s  %6.2f CPU s/M ops\n' "$label" "$client" \
    "$(awk -v o="$ops" -v s="$secs" 'BEGIN { print o / s }')" \
    "$(awk -v o="$ops" -v c="$cpu" 'BEGIN { print c / o * 1e6 }')" >&2
}

# redis-benchmark: rb REP LABEL TEST-TO-KEEP ARGS... keeps the rps of one
# test (or, for "both", the harmonic mean of SET and GET: W1 alternates
# them, so its rate is ops over the summed times).
rb() {
  local rep=$1 label=$2 keep=$3 csv rate; shift 3
  [ "$have_rb" = 1 ] || return 0
  if ! csv=$(limit "$TMO" redis-benchmark -h "$HOST" -c 1 --csv "$@" 2>/dev/null); then
    say "  redis-benchmark $* failed; no reference line for $label"; return 0
  fi
  rate=$(printf '%s\n' "$csv" | awk -F'"' -v keep="$keep" '
    $2 == "SET" { s = $4 } $2 == "GET" { g = $4 }
    END {
      if (keep == "both" && s > 0 && g > 0) printf "%.1f", 2 / (1 / s + 1 / g)
      else if (keep == "GET" && g > 0) printf "%.1f", g
    }')
  [ -n "$rate" ] || { say "  redis-benchmark gave no figure for $label"; return 0; }
  echo "$rep $label $rate" >>"$out/ceil.txt"
  printf '  %-8s %-14s %12.0f ops/s\n' "$label" redis-benchmark "$rate" >&2
}

# Clients in a rotating order, so no client always runs first or last.
rotate() { # REP client...
  local r=$1; shift
  local n=$# i
  local a=("$@")
  for ((i = 0; i < n; i++)); do printf '%s ' "${a[$(((i + r) % n))]}"; done
}

# lat REP CLIENT DEPTH OPS: W3 with a latency histogram; the line (with
# its hist=... field) goes to lat.txt.
lat() {
  local rep=$1 client=$2 depth=$3 ops=$4 line
  client_cmd "$client"
  line=$(limit "$TMO" "${CMDV[@]}" "$HOST" "$PORT" lat "$ops" "$depth") ||
    die "$client lat $depth failed or timed out after $TMO s (see above)"
  echo "$rep $client $line" >>"$out/lat.txt"
  say "  $(printf '%-8s %-14s latency histogram of %s GETs' "W3/$depth" "$client" "$ops")"
}

# mem REP CLIENT KIND N: one memory run; "MEM KIND n=.. rss0=.. rss1=.."
# goes to mem.txt. Our pool keeps at most REDIS_CLIENT_POOL_SIZE idle
# connections per key: the run raises it above N.
mem() {
  local rep=$1 client=$2 kind=$3 n=$4 line
  if [ "$client" = lev-redis ]; then
    line=$(REDIS_CLIENT_POOL_SIZE=$((2 * n)) limit "$TMO" lua5.4 \
      "$here/bench.lua" "$HOST" "$PORT" "mem-$kind" "$n") ||
      die "lev-redis mem-$kind failed (see above)"
  else
    line=$(limit "$TMO" "$out/hiredis_mem" "$HOST" "$PORT" "$kind" "$n") ||
      die "hiredis_mem $kind failed (see above)"
  fi
  echo "$rep $client $line" >>"$out/mem.txt"
  say "  $(printf '%-8s %-14s %s' "mem" "$client" "${line#MEM }")"
}

# redis-benchmark's reference line for a workload row, where there is one.
rb_row() { # REP LABEL
  case $2 in
    W1) rb "$1" W1 both -p "$PORT" -P 1 -n $((OPS_W1 / 2)) -d 16 -t set,get ;;
    # SET first so the GETs read a 16-byte value, whatever ran before.
    W2/*) rb "$1" "$2" GET -p "$PORT" -P "${2#W2/}" -n $((OPS_W2 / 2)) -d 16 -t set,get ;;
    # -r 1 gives the key key:000000000000, apart from the 16-byte ones above.
    W4) rb "$1" W4 GET -p "$PORT" -r 1 -n $((OPS_W4 / 2)) -d 102400 -t set,get ;;
  esac
}
for i in "${!W_LABEL[@]}"; do
  case ${W_LABEL[$i]} in
    W1) OPS_W1=$(scaled "${W_OPS[$i]}") ;;
    W2/100) OPS_W2=$(scaled "${W_OPS[$i]}") ;;
    W4) OPS_W4=$(scaled "${W_OPS[$i]}") ;;
  esac
done

# Our client first so an unloadable tree is noticed at once.
ours=; [ "$peers_only" = 0 ] && ours=lev-redis
# 1000 idle connections in one process need more than the usual 1024 fds.
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096
for ((rep = 1; rep <= REPS; rep++)); do
  say "repetition $rep/$REPS ($(( $(date +%s) - t_start )) s so far)"
  for i in "${!W_LABEL[@]}"; do
    label=${W_LABEL[$i]}
    dargs=(); [ "${W_DEPTH[$i]}" = - ] || dargs=("${W_DEPTH[$i]}")
    # shellcheck disable=SC2046
    for c in $(rotate "$rep" $(row_clients "$i")); do
      n=$(scaled "${W_OPS[$i]}")
      is_node "$c" && n=$(awk -v n="$n" -v s="$NODE_SCALE" \
        'BEGIN { v = int(n * s); if (v < 2) v = 2; print v }')
      measure "$rep" "$c" "${W_WORK[$i]}" "$n" "${dargs[@]}"
    done
    rb_row "$rep" "$label"
  done
  if [ -n "$tls_port" ]; then
    measure "$rep" lev-redis-tls w1 "$OPS_W5"
    rb "$rep" W5 both -p "$tls_port" --tls --cacert "$certs/ca.crt" -P 1 \
      -n $((OPS_W5 / 2)) -d 16 -t set,get
  fi
  for c in $(rotate "$rep" $ours hiredis-async); do
    lat "$rep" "$c" 16 "$OPS_LAT_16"
    lat "$rep" "$c" 128 "$OPS_LAT_128"
  done
  for c in $(rotate "$rep" $ours hiredis-mem); do
    mem "$rep" "$c" idle "$MEM_IDLE"
    mem "$rep" "$c" park "$MEM_PARK"
    # The same commands as one pipeline of one task (no hiredis analogue).
    [ "$c" = lev-redis ] && mem "$rep" "$c" pipe "$MEM_PARK"
  done
done

# ---- callgrind ---------------------------------------------------------------
# Ir totals of the client process for two run lengths. Under callgrind the
# figures repeat to within a few instructions, so one pair suffices.
cg_pair() { # CLIENT LABEL "N1 N2" WORK [DEPTH]
  local client=$1 label=$2 ns=$3 res=() n f line; shift 3
  for n in $ns; do
    f=$out/cg/$client-${label//\//_}-$n.out
    client_cmd "$client"
    line=$(limit $((3 * TMO)) valgrind -q --tool=callgrind \
      --callgrind-out-file="$f" "${CMDV[@]}" "$HOST" "$PORT" "$1" "$n" \
      "${@:2}") || die "callgrind run of $client $label failed or timed out"
    line=${line#* ops=}
    res+=("${line%% *}" "$(awk '/^totals:/ { print $2; exit }' "$f")")
  done
  echo "$client $label ${res[*]}" >>"$out/cg.txt"
  printf '  %-8s %-14s %8.0f instr/op\n' "$label" "$client" \
    "$(awk -v o1="${res[0]}" -v i1="${res[1]}" -v o2="${res[2]}" -v i2="${res[3]}" \
      'BEGIN { print (i2 - i1) / (o2 - o1) }')" >&2
}
if [ "$CALLGRIND" = 1 ]; then
  say "callgrind (instructions per op)"
  rm -rf "$out/cg"; mkdir -p "$out/cg"
  for i in "${!W_LABEL[@]}"; do
    [ "${W_CG[$i]}" = - ] && continue
    dargs=(); [ "${W_DEPTH[$i]}" = - ] || dargs=("${W_DEPTH[$i]}")
    for c in $(row_clients "$i"); do
      # V8's JIT makes a Node process's instruction count meaningless here.
      is_node "$c" && continue
      cg_pair "$c" "${W_LABEL[$i]}" "${W_CG[$i]/:/ }" "${W_WORK[$i]}" "${dargs[@]}"
    done
  done
fi

# ---- report --------------------------------------------------------------------
t_end=$(date +%s)
{
  echo "run: $(date -u '+%Y-%m-%d %H:%M UTC'), $REPS interleaved repetitions, $((t_end - t_start)) s in all"
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, Linux $(uname -r)"
  if [ "$NOPIN" = 1 ]; then echo "pinning: none (BENCH_NOPIN=1)"
  else echo "pinning: server, client and redis-benchmark all on CPU $CPU (taskset)"; fi
  echo "versions: redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), hiredis $(dpkg-query -W -f '${Version}' libhiredis-dev 2>/dev/null || echo '?'), libuv $(pkg-config --modversion libuv), $(lua5.4 -v 2>&1 | awk '{ print $1, $2 }')"
  ocs=; cgs=
  for i in "${!W_LABEL[@]}"; do
    ocs="$ocs${ocs:+, }${W_LABEL[$i]} $(scaled "${W_OPS[$i]}")"
    [ "${W_CG[$i]}" = - ] || cgs="$cgs${cgs:+, }${W_LABEL[$i]} ${W_CG[$i]/:/ vs }"
  done
  echo "op counts per measurement: $ocs$([ -n "$tls_port" ] && echo ", W5 $OPS_W5")$([ "$NODE" = 1 ] && echo "; Node peers x $NODE_SCALE")"
  echo "latency runs: W3/16 $OPS_LAT_16 and W3/128 $OPS_LAT_128 GETs; memory runs: $MEM_IDLE idle connections, $MEM_PARK parked commands"
  [ "$CALLGRIND" = 1 ] && echo "callgrind runs: $cgs ops"
  [ "$NODE" = 1 ] && echo "node: $node_ver, ioredis $(cd "$here/node" && node -p 'require("ioredis/package.json").version'), node-redis $(cd "$here/node" && node -p 'require("redis/package.json").version')"
  [ "$NODE" = 1 ] || echo "**Node peers not measured (BENCH_NODE=0)**"
  [ "$peers_only" = 1 ] && echo "**peers only: lev-redis was not measured**"
  echo "redis-benchmark (-c 1) is the server's reference: it is itself a client, so at one request in flight a lean client can beat it"
} >"$out/meta.txt"

lua5.4 "$here/report.lua" "$out"

if [ "$have_gp" = 1 ]; then
  title="lev-redis vs hiredis, ioredis and node-redis: one connection each, server and client pinned to one CPU"
  [ "$NOPIN" = 1 ] && title="lev-redis vs hiredis, ioredis and node-redis: one connection each, unpinned"
  gnuplot -e "dat='$out/chart.dat'; out='$out/chart.png'; ours=$((1 - peers_only)); title='$title'" \
    "$here/chart.gp"
fi

if [ "$peers_only" = 0 ] && [ "$custom" = 0 ]; then
  cp "$out/results.md" "$here/results.md"
  [ -f "$out/chart.png" ] && cp "$out/chart.png" "$here/chart.png"
  say "results: bench/results.md, bench/chart.png"
else
  say "results (not copied to bench/): $out/results.md, $out/chart.png"
fi
say "total $(( $(date +%s) - t_start )) s"
