#!/bin/sh
# Runs units of Redis's own TCL test suite, on its unmodified harness,
# against redis.mock and against a real redis-server, and prints per unit
# how many tests the real server passes and how many of those the mock
# passes too.
#
#   tools/redis-suite.sh REDIS_SOURCE_TREE [unit ...]
#
# REDIS_SOURCE_TREE is a Redis 7.0.x checkout (its tests/ and runtest are
# used; nothing in it is changed except the harness's own tests/tmp).
# Units default to the ones issue 18 measures; others are named as
# arguments (the stream units: unit/type/stream-cgroups unit/type/stream). Needs tclsh, redis-server
# and a built tree (make build: build/ or $LEVR_BUILD). Each unit runs
# against both servers at the same time, each under a time limit
# ($SUITE_TIMEOUT seconds, default 900): a unit cut off by it is marked
# "cut". Each unit gets a fresh mock and a fresh redis-server. Logs stay in $SUITE_OUT (default a fresh directory under /tmp).
# Not part of make test: it needs the source tree and takes minutes.
set -u
tree=${1:?usage: tools/redis-suite.sh REDIS_SOURCE_TREE [unit ...]}
shift
[ -x "$tree/runtest" ] || { echo "no runtest in $tree" >&2; exit 2; }
command -v tclsh >/dev/null || { echo "tclsh not installed" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "$tree" && pwd)
units=${*:-"unit/type/string unit/type/incr unit/type/list unit/type/hash
unit/type/set unit/type/zset unit/keyspace unit/expire unit/pubsub
unit/multi unit/scan unit/protocol unit/info-command"}
out=${SUITE_OUT:-$(mktemp -d /tmp/redis-suite.XXXXXX)}
mkdir -p "$out"
limit=${SUITE_TIMEOUT:-900}
tags="-slow -needs:debug -needs:repl -needs:save -needs:config-maxmemory \
-needs:config-resetstat -needs:reset -needs:pfdebug -needs:latency \
-needs:local-process"

mock_pid="" real_dir="$out/real-server"
cleanup() {
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
  mock_pid=""
  "$here/tools/redis-server.sh" stop "$real_dir" >/dev/null 2>&1
}
trap cleanup EXIT
# A signal (also SIGPIPE, when the output goes to a closed pipe such as
# `| head`) stops the servers too, then ends the run.
trap 'cleanup; trap - EXIT; exit 1' INT TERM HUP PIPE

# A fresh mock and a fresh redis-server for every unit: a test that
# changes the configuration without restoring it (proto-max-bulk-len, say)
# must not decide the next unit's results.
start_servers() {
  real_port=$("$here/tools/redis-server.sh" start "$real_dir") \
    || { echo "cannot start redis-server" >&2; exit 1; }
  mock=$("$here/tools/mock-server.sh" "$out") || exit 1
  mock_pid=${mock% *} mock_port=${mock#* }
}

# --baseport only moves the harness's own test-server port, so the two
# concurrent harnesses do not race for the same one.
run_unit() { # server port unit baseport
  ( cd "$tree" && timeout "$limit" ./runtest --host 127.0.0.1 --port "$2" \
      --baseport "$4" --single "$3" --durable --clients 1 --tags "$tags" \
      --ignore-encoding --ignore-digest ) > "$out/$1-$(echo "$3" | tr / _).log" 2>&1
  echo $? > "$out/$1-$(echo "$3" | tr / _).rc"
}

# Names of passed tests, one a line ("[ok]: NAME (12 ms)" -> NAME).
passed() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | sed -n 's/^\[ok\]: \(.*\) ([0-9]* ms)$/\1/p' | sort
}

printf '%-20s %6s %6s %7s  %s\n' unit real mock "%" notes
tr=0 tm=0
for u in $units; do
  start_servers
  run_unit real "$real_port" "$u" 21111 &
  rp=$!
  run_unit mock "$mock_port" "$u" 21311
  wait $rp
  cleanup
  f=$(echo "$u" | tr / _)
  passed "$out/real-$f.log" > "$out/real-$f.ok"
  passed "$out/mock-$f.log" > "$out/mock-$f.ok"
  r=$(wc -l < "$out/real-$f.ok")
  # Of the names the real server passes, those the mock passes as often.
  m=$(comm -12 "$out/real-$f.ok" "$out/mock-$f.ok" | wc -l)
  notes=""
  grep -q "All tests passed\|tests failed" "$out/mock-$f.log" || notes="mock run did not end"
  [ "$(cat "$out/mock-$f.rc")" = 124 ] && notes="mock run cut at ${limit}s"
  grep -q "All tests passed\|tests failed" "$out/real-$f.log" \
    || notes="$notes real run did not end"
  pct=0
  [ "$r" -gt 0 ] && pct=$(awk "BEGIN { printf \"%.1f\", 100 * $m / $r }")
  printf '%-20s %6d %6d %6s%%  %s\n' "${u#unit/}" "$r" "$m" "$pct" "$notes"
  tr=$((tr + r)) tm=$((tm + m))
done
pct=0
[ "$tr" -gt 0 ] && pct=$(awk "BEGIN { printf \"%.1f\", 100 * $tm / $tr }")
printf '%-20s %6d %6d %6s%%\n' total "$tr" "$tm" "$pct"
echo "logs: $out"
