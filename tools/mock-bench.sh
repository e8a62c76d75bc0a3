#!/bin/sh
# Pipelined throughput of redis.mock beside a real redis-server, in the
# same run: starts both on free loopback ports, runs redis-benchmark
# against each (one after the other, so they do not share the CPU), prints
# requests/s per command, the mock's share of the real figure and the
# mock's CPU time per request, and stops both by PID.
#
#   tools/mock-bench.sh [runs]
#
# runs (default 1): each server is measured that many times, alternating,
# and the median per command is printed. Environment: BENCH_N (requests
# per command, default 300000), BENCH_P (pipeline depth, default 16),
# BENCH_TESTS (default set,get,lpush,lpop,incr,hset,sadd,zadd), LEVR_BUILD
# (default build/). Wall-clock figures: quote them with the load
# (printed first) and compare medians.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-1}
n=${BENCH_N:-300000}
pipe=${BENCH_P:-16}
tests=${BENCH_TESTS:-set,get,lpush,lpop,incr,hset,sadd,zadd}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark not installed" >&2; exit 2; }
out=$(mktemp -d /tmp/mock-bench.XXXXXX)
mock_pid=""
cleanup() {
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
  "$here/tools/redis-server.sh" stop "$out/real" >/dev/null 2>&1
  rm -rf "$out"
}
trap cleanup EXIT
# A signal (also SIGPIPE, when the output goes to a closed pipe such as
# `| head`) stops the servers too, then ends the run.
trap 'cleanup; trap - EXIT; exit 1' INT TERM HUP PIPE

real_port=$("$here/tools/redis-server.sh" start "$out/real") \
  || { echo "cannot start redis-server" >&2; exit 1; }
mock=$("$here/tools/mock-server.sh" "$out") || exit 1
mock_pid=${mock% *} mock_port=${mock#* }

# "SET: 123456.78 requests per second, p50=..." -> "SET 123456"
bench() { # port tests
  redis-benchmark -p "$1" -P "$pipe" -q -n "$n" -t "$2" 2>/dev/null \
    | tr '\r' '\n' | sed -n 's/^\([A-Z_]*\)[^:]*: \([0-9]*\)[.0-9]* requests per second.*/\1 \2/p'
}

# CPU time (user + system, clock ticks) the mock process has used.
ticks() { awk '{ print $14 + $15 }' "/proc/$mock_pid/stat"; }
hz=$(getconf CLK_TCK)

# The mock one command at a time, so its CPU time per request can be
# taken as well (a figure that other load on the machine moves less than
# requests/s): lines "SET 123456 2.41".
bench_mock() {
  for t in $(echo "$tests" | tr , ' '); do
    t0=$(ticks)
    line=$(bench "$mock_port" "$t")
    t1=$(ticks)
    [ -n "$line" ] && echo "$line $(awk "BEGIN { printf \"%.2f\", ($t1 - $t0) * 1e6 / $hz / $n }")"
  done
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); redis-benchmark -P $pipe -n $n -t $tests; $runs run(s)"
r=1
while [ "$r" -le "$runs" ]; do
  bench_mock > "$out/mock.$r"
  bench "$real_port" "$tests" > "$out/real.$r"
  r=$((r + 1))
done

# Median per command over the runs (the middle value, the lower of two)
# of column col.
median() { # kind command [col]
  cat "$out/$1".* | awk -v c="$2" -v k="${3:-2}" '$1 == c { print $k }' | sort -n \
    | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'
}

printf '%-8s %10s %10s %9s %14s\n' command mock real mock/real "mock cpu us/req"
for c in $(awk '{ print $1 }' "$out/mock.1"); do
  m=$(median mock "$c")
  rl=$(median real "$c")
  printf '%-8s %10d %10d %8s%% %14s\n' "$c" "$m" "$rl" \
    "$(awk "BEGIN { if ($rl > 0) printf \"%.0f\", 100 * $m / $rl; else print 0 }")" \
    "$(median mock "$c" 3)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
