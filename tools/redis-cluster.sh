#!/bin/bash
# Starts or stops a throw-away Redis Cluster on 127.0.0.1: three masters and
# three replicas, each a redis-server with --cluster-enabled yes
# --cluster-node-timeout 1000, created with redis-cli --cluster create.
#
#   tools/redis-cluster.sh start DIR
#       Picks six free ports (port and port+10000, the bus, both free),
#       starts the nodes with their files in DIR/<port>/, creates the
#       cluster, waits for cluster_state:ok on every node and for every
#       replica's link to its master, and prints the six ports. DIR/ports
#       holds them too. Fails loudly (exit 1, logs on stderr) when the
#       cluster does not come up.
#   tools/redis-cluster.sh stop DIR
#       Stops every node of DIR by its own PID (also nodes the specs
#       restarted) and waits for them to exit.
#   tools/redis-cluster.sh restart-node DIR PORT
#       Starts the node of PORT again with its old config (after a spec
#       killed it); it rejoins the cluster from its nodes.conf. A node that
#       is still running is left as it is.
#
# Every node has the ACL user alice (password s3cret, all rights), the
# default user's password is "defaultpw" (requirepass), and replicas log in
# to their masters as alice, so specs can check AUTH through the cluster.
set -u
# Specs run on the ASan build call this with the sanitizer runtime in
# LD_PRELOAD: the servers and tools it starts must not inherit it (ps, for
# one, hangs for good under it).
unset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
cmd=$1 dir=$2

node_start() { # port
  nd="$dir/$1"
  mkdir -p "$nd"
  rm -f "$nd/redis.pid"
  [ -f "$nd/redis.log" ] && mv "$nd/redis.log" "$nd/redis.log.old"
  redis-server --bind 127.0.0.1 --port "$1" --save "" --appendonly no \
    --cluster-enabled yes --cluster-node-timeout 1000 \
    --cluster-config-file "$nd/nodes.conf" \
    --user alice on '>s3cret' '~*' '&*' '+@all' --requirepass defaultpw \
    --masteruser alice --masterauth s3cret --repl-diskless-sync-delay 0 \
    --daemonize yes --pidfile "$nd/redis.pid" --logfile "$nd/redis.log" \
    --dir "$nd" >/dev/null 2>&1
}

# The state field of /proc/PID/stat (after the ")" that ends the command
# name) is Z for a zombie; read with builtins only, no ps.
is_zombie() { # pid
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" = Z ]
}

node_ready() { # port: 0 once it accepts connections, 1 on failure, 2 waiting
  log="$dir/$1/redis.log"
  grep -q "Ready to accept connections" "$log" 2>/dev/null && return 0
  grep -qi "address already in use\|Could not create server" "$log" \
    2>/dev/null && return 1
  grep -qi "Exiting\|aborting" "$log" 2>/dev/null && return 3
  return 2
}

node_stop() { # port [signal]: a throw-away node needs no clean shutdown
  pf="$dir/$1/redis.pid"
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf")
  kill -CONT "$pid" 2>/dev/null # a spec may have stopped it
  kill "-${2:-KILL}" "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
    i=$((i + 1)); sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null
  rm -f "$pf"
}

cli() { # port args...
  p=$1; shift
  redis-cli -h 127.0.0.1 -p "$p" --user alice --pass s3cret \
    --no-auth-warning "$@"
}

port_free() { # port: 0 when nothing listens on it
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

case $cmd in
start)
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "redis-cluster: redis-server and redis-cli must be installed" >&2
    exit 1; }
  mkdir -p "$dir"
  tries=0
  ports=""
  while [ $tries -lt 20 ] && [ -z "$ports" ]; do
    tries=$((tries + 1))
    base=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 35000 ))
    cand=""
    for i in 0 1 2 3 4 5; do cand="$cand $((base + i))"; done
    ok=1
    for p in $cand; do
      port_free "$p" && port_free $((p + 10000)) || ok=0
    done
    [ $ok = 1 ] || continue
    for p in $cand; do rm -rf "${dir:?}/$p"; node_start "$p"; done
    waited=0 bad=0
    for p in $cand; do
      while :; do
        node_ready "$p"; r=$?
        [ $r = 0 ] && break
        [ $r = 1 ] && { bad=1; break; }
        [ $r = 3 ] && { bad=3; break; }
        waited=$((waited + 1))
        [ $waited -gt 100 ] && { bad=2; break; }
        sleep 0.1
      done
    done
    if [ $bad != 0 ]; then
      for p in $cand; do node_stop "$p"; done
      # a port taken in the meantime (by another test run): other ports
      if [ $bad = 1 ] || grep -qi "already in use" "$dir"/*/redis.log 2>/dev/null; then
        continue
      fi
      echo "redis-cluster: nodes did not start:" >&2
      for p in $cand; do tail -5 "$dir/$p/redis.log" >&2; done
      exit 1
    fi
    ports=$cand
  done
  [ -n "$ports" ] || { echo "redis-cluster: no free ports after $tries tries" >&2; exit 1; }
  echo $ports > "$dir/ports"
  addrs=""
  for p in $ports; do addrs="$addrs 127.0.0.1:$p"; done
  first=${ports%% *}
  # shellcheck disable=SC2086
  if ! cli "$first" --cluster create $addrs --cluster-replicas 1 \
       --cluster-yes >"$dir/create.log" 2>&1; then
    echo "redis-cluster: redis-cli --cluster create failed:" >&2
    cat "$dir/create.log" >&2
    for p in $ports; do node_stop "$p"; done
    exit 1
  fi
  # Every node sees the cluster ok, and every replica is in sync.
  i=0
  while :; do
    ready=1
    for p in $ports; do
      info=$(cli "$p" cluster info 2>/dev/null)
      case $info in *cluster_state:ok*) ;; *) ready=0 ;; esac
      repl=$(cli "$p" info replication 2>/dev/null)
      case $repl in
        *role:slave*) case $repl in *master_link_status:up*) ;; *) ready=0 ;; esac ;;
        *role:master*) ;;
        *) ready=0 ;;
      esac
    done
    [ $ready = 1 ] && break
    i=$((i + 1))
    if [ $i -gt 300 ]; then
      echo "redis-cluster: not ready after 30 s:" >&2
      for p in $ports; do echo "== $p" >&2; cli "$p" cluster info >&2; tail -5 "$dir/$p/redis.log" >&2; done
      for p in $ports; do node_stop "$p"; done
      exit 1
    fi
    sleep 0.1
  done
  echo $ports ;;
stop)
  for nd in "$dir"/*/; do
    [ -f "$nd/redis.pid" ] || continue
    node_stop "$(basename "$nd")"
  done
  exit 0 ;;
restart-node)
  p=$3
  # Already running (a spec's clean-up may ask again): starting a second
  # one would fail on the port after node_start dropped the pid file, and
  # the running node could then no longer be stopped by PID.
  # A killed node may linger as a zombie until whoever adopted it reaps
  # it (kill -0 still succeeds then): only a live, non-zombie one counts.
  pid=$(cat "$dir/$p/redis.pid" 2>/dev/null)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && ! is_zombie "$pid"; then
    exit 0
  fi
  node_start "$p"
  i=0
  while :; do
    node_ready "$p"; r=$?
    [ $r = 0 ] && exit 0
    [ $r = 2 ] && [ $i -le 100 ] || { echo "redis-cluster: node $p did not restart" >&2; tail -5 "$dir/$p/redis.log" >&2; exit 1; }
    i=$((i + 1)); sleep 0.1
  done ;;
*) echo "usage: $0 start|stop DIR | restart-node DIR PORT" >&2; exit 2 ;;
esac
