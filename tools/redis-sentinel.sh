#!/bin/bash
# Starts or stops a throw-away Sentinel set on 127.0.0.1: one master, two
# replicas and three sentinels watching the master as "mymaster".
#
#   tools/redis-sentinel.sh start DIR
#       Picks free ports, starts the six processes (files under DIR), waits
#       until every sentinel sees both replicas and the two other sentinels,
#       and prints one line: MASTER REPLICA1 REPLICA2 SENTINEL1 SENTINEL2
#       SENTINEL3 (ports). Fails loudly when anything does not come up.
#   tools/redis-sentinel.sh restart DIR NAME
#       Starts node NAME (master, replica1, replica2, sentinel1, ...) again
#       on its port with its config, after a spec killed it; the sentinels
#       then make it a replica of whatever is master now.
#   tools/redis-sentinel.sh stop DIR
#       Stops every process it started, by its own PID.
#
# The data nodes have the ACL user "alice" (password s3cret) besides the
# default user without a password; the sentinels require the password
# "sentpass" (requirepass), so clients need sentinel_auth. Failure detection
# is quick (down-after-milliseconds 1000, failover-timeout 3000) so that
# specs can watch failovers.
set -u
# Called from specs on the ASan build with the sanitizer runtime in
# LD_PRELOAD: the servers and tools started here must not inherit it.
unset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
cmd=${1:-} dir=${2:-}
[ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
SPASS=sentpass
USERLINE='alice on >s3cret ~* &* +@all'

cli() { redis-cli -h 127.0.0.1 "$@" 2>/dev/null; }

# start_node NAME ARGS... : starts redis-server on a free port with the
# config file DIR/NAME/node.conf plus ARGS (the word PORT replaced by the
# chosen port); prints the port.
start_node() {
  local name=$1 tries=0 port a args; shift
  mkdir -p "$dir/$name"
  while [ $tries -lt 20 ]; do
    tries=$((tries + 1))
    port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
    args=()
    for a in "$@"; do [ "$a" = PORT ] && a=$port; args+=("$a"); done
    rm -f "$dir/$name/pid" "$dir/$name/log"
    # A sentinel rewrites its config file, so each node gets its own copy.
    cp "$dir/$name/conf.in" "$dir/$name/node.conf"
    redis-server "$dir/$name/node.conf" --bind 127.0.0.1 --port "$port" \
      --daemonize yes --pidfile "$dir/$name/pid" --logfile "$dir/$name/log" \
      --dir "$dir/$name" "${args[@]}" >/dev/null 2>&1
    local i=0
    while [ $i -lt 50 ]; do
      if grep -q "Ready to accept connections\|Sentinel ID is" "$dir/$name/log" 2>/dev/null; then
        echo "$port" >"$dir/$name/port"; echo "$port"; return 0
      fi
      grep -qi "address already in use" "$dir/$name/log" 2>/dev/null && break
      i=$((i + 1)); sleep 0.1
    done
    [ -f "$dir/$name/pid" ] && kill "$(cat "$dir/$name/pid")" 2>/dev/null
    grep -qi "address already in use" "$dir/$name/log" 2>/dev/null && continue
    echo "$name failed to start:" >&2; cat "$dir/$name/log" >&2; return 1
  done
  echo "$name: no free port" >&2; return 1
}

stop_all() {
  local p pid
  for p in "$dir"/*/pid; do
    [ -f "$p" ] || continue
    pid=$(cat "$p")
    kill "$pid" 2>/dev/null
    local i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$p"
  done
}

case $cmd in
start)
  command -v redis-server >/dev/null || { echo "redis-server not installed" >&2; exit 1; }
  mkdir -p "$dir"
  trap 'stop_all' ERR
  set -E
  for n in master replica1 replica2; do
    mkdir -p "$dir/$n"
    printf 'save ""\nappendonly no\nuser %s\nmasteruser alice\nmasterauth s3cret\n' \
      "$USERLINE" >"$dir/$n/conf.in"
  done
  mp=$(start_node master) || { stop_all; exit 1; }
  r1=$(start_node replica1 --replicaof 127.0.0.1 "$mp") || { stop_all; exit 1; }
  r2=$(start_node replica2 --replicaof 127.0.0.1 "$mp") || { stop_all; exit 1; }
  sp=()
  for n in sentinel1 sentinel2 sentinel3; do
    mkdir -p "$dir/$n"
    cat >"$dir/$n/conf.in" <<EOF
sentinel monitor mymaster 127.0.0.1 $mp 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 3000
sentinel parallel-syncs mymaster 1
sentinel auth-user mymaster alice
sentinel auth-pass mymaster s3cret
requirepass $SPASS
sentinel sentinel-pass $SPASS
EOF
    p=$(start_node "$n" --sentinel) || { stop_all; exit 1; }
    sp+=("$p")
  done
  # Ready when every sentinel knows both replicas and both other sentinels,
  # and both replicas are in sync with the master.
  ok=0
  for _ in $(seq 300); do
    ok=1
    for p in "${sp[@]}"; do
      info=$(cli -p "$p" -a "$SPASS" --no-auth-warning SENTINEL master mymaster | tr '\n' ' ')
      case $info in *"num-slaves 2 "*"num-other-sentinels 2 "*) ;; *) ok=0;; esac
    done
    for p in "$r1" "$r2"; do
      cli -p "$p" INFO replication | grep -q "master_link_status:up" || ok=0
    done
    [ $ok = 1 ] && break
    sleep 0.1
  done
  if [ $ok != 1 ]; then
    echo "sentinel set did not come up in 30 s" >&2
    for p in "${sp[@]}"; do cli -p "$p" -a "$SPASS" --no-auth-warning SENTINEL master mymaster >&2; done
    stop_all; exit 1
  fi
  echo "$mp $r1 $r2 ${sp[*]}" | tee "$dir/ports" ;;
restart)
  name=${3:-}
  [ -f "$dir/$name/port" ] || { echo "no node $name in $dir" >&2; exit 2; }
  port=$(cat "$dir/$name/port")
  # node.conf as the node left it (a sentinel or a demoted master rewrote
  # it): it knows its role and, for a sentinel, the others.
  extra=()
  case $name in sentinel*) extra=(--sentinel);; esac
  rm -f "$dir/$name/pid"
  redis-server "$dir/$name/node.conf" --bind 127.0.0.1 --port "$port" \
    --daemonize yes --pidfile "$dir/$name/pid" --logfile "$dir/$name/log" \
    --dir "$dir/$name" "${extra[@]}" >/dev/null 2>&1
  for _ in $(seq 100); do
    cli -p "$port" PING >/dev/null && [ -f "$dir/$name/pid" ] && exit 0
    sleep 0.05
  done
  echo "$name did not come back on port $port" >&2; exit 1 ;;
stop)
  stop_all; exit 0 ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
