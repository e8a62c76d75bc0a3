#!/bin/sh
# Starts or stops a throw-away redis-server on 127.0.0.1.
#
#   tools/redis-server.sh start DIR [extra redis-server args...]
#       Picks a free port (retrying on collisions), starts redis-server with
#       no persistence, its files in DIR, and prints the port. The PID is in
#       DIR/redis.pid. Fails loudly when redis-server cannot start.
#   tools/redis-server.sh stop DIR
#       Stops the server by its own PID and waits for it to exit.
#
# Extra args may contain the word PORT2, replaced by a second free port
# (for --tls-port PORT2 --port 0, say); that port is printed as well.
set -u
# Called from specs on the ASan build with the sanitizer runtime in
# LD_PRELOAD: the servers and tools started here must not inherit it.
unset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
cmd=$1 dir=$2; shift 2
case $cmd in
start)
  command -v redis-server >/dev/null || { echo "redis-server not installed" >&2; exit 1; }
  mkdir -p "$dir"
  tries=0
  while [ $tries -lt 20 ]; do
    tries=$((tries + 1))
    port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
    port2=$(( port + 1 ))
    args=""
    for a in "$@"; do
      [ "$a" = PORT2 ] && a=$port2
      args="$args $a"
    done
    rm -f "$dir/redis.pid" "$dir/redis.log"
    # shellcheck disable=SC2086
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
      --dir "$dir" $args >/dev/null 2>&1
    i=0
    while [ $i -lt 50 ]; do
      if grep -q "Ready to accept connections" "$dir/redis.log" 2>/dev/null; then
        echo "$port" > "$dir/port"
        case " $* " in *" PORT2 "*) echo "$port $port2";; *) echo "$port";; esac
        exit 0
      fi
      if grep -qi "address already in use\|Could not create server" "$dir/redis.log" 2>/dev/null; then
        break
      fi
      i=$((i + 1)); sleep 0.1
    done
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
    grep -qi "address already in use" "$dir/redis.log" 2>/dev/null && continue
    echo "redis-server failed to start:" >&2; cat "$dir/redis.log" >&2; exit 1
  done
  echo "redis-server: no free port after $tries tries" >&2; exit 1 ;;
stop)
  [ -f "$dir/redis.pid" ] || exit 0
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.05; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$dir/redis.pid"; exit 0 ;;
*) echo "usage: $0 start|stop DIR [args]" >&2; exit 2 ;;
esac
