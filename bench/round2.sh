#!/usr/bin/env bash
# The round-2 workloads of `make bench`, after run.sh's W1-W5: W6 pub/sub
# (bench/w6.sh), W7 cluster routing (bench/w7.sh), W8 client-side caching
# (bench/w8.sh). Each script starts its own servers and prints its figures;
# this one runs them in turn, collects what they print into
# bench/out/round2.md, draws bench/out/chart-round2.png (our figure over
# the reference's in the same run), and, unless ROUND2_NOCOPY=1, appends
# the section to bench/results.md and copies the chart next to it.
#
#   bench/round2.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
out=$here/out
mkdir -p "$out"
md=$out/round2.md
t0=$(date +%s)

run() { # label script
  local log=$out/round2-$1.log
  echo "== $1: bench/$2" >&2
  "$here/$2" "$build" 2>&1 | tee "$log" >&2
}
run w6 w6.sh
run w7 w7.sh
run w8 w8.sh

# The ratios for the chart, read from what each script printed.
cell() { # file row-label column
  awk -F'|' -v r="$2" -v c="$3" '$2 ~ r { gsub(/[ ,]/, "", $c); print $c; exit }' "$1"
}
w6_ours=$(cell "$out/w6/results.md" "lev-redis" 3)
w6_peer=$(cell "$out/w6/results.md" "hiredis-async" 3)
w7_plain=$(awk '$1 == "plain" && $3 == "ops/s" { print $2; exit }' "$out/round2-w7.log")
w7_cl=$(awk '$1 == "cluster" && $3 == "ops/s" { print $2; exit }' "$out/round2-w7.log")
w8_on=$(sed -n 's/^W8 cache *ops\/s=\([0-9]*\).*/\1/p' "$out/round2-w8.log" | head -1)
w8_off=$(sed -n 's/^W8 no-cache ops\/s=\([0-9]*\).*/\1/p' "$out/round2-w8.log" | head -1)

{
  echo
  echo "## Round 2: W6 pub/sub, W7 cluster, W8 client-side caching"
  echo
  echo "\`bench/round2.sh\` (run by \`make bench\` after the table above), $(date -u '+%Y-%m-%d %H:%M UTC'), $(( $(date +%s) - t0 )) s."
  for w in w6 w7 w8; do
    echo
    echo "### $(echo $w | tr a-z A-Z)"
    echo
    echo '```'
    grep -v '^==\|^\s*$' "$out/round2-$w.log" | tail -25
    echo '```'
  done
} >"$md"

dat=$out/chart-round2.dat
{
  echo "# workload ours reference label"
  [ -n "$w6_ours" ] && [ -n "$w6_peer" ] &&
    echo "\"W6 msgs/s\\nvs hiredis async\" $w6_ours $w6_peer"
  [ -n "$w7_cl" ] && [ -n "$w7_plain" ] &&
    echo "\"W7 ops/s cluster\\nvs plain client\" $w7_cl $w7_plain"
  [ -n "$w8_on" ] && [ -n "$w8_off" ] &&
    echo "\"W8 reads/s cache\\nvs no cache\" $w8_on $w8_off"
} >"$dat"
if command -v gnuplot >/dev/null && [ "$(grep -vc '^#' "$dat")" -gt 0 ]; then
  gnuplot <<EOF
set terminal pngcairo size 800,460 font ",10"
set bmargin 5
set output "$out/chart-round2.png"
set title "Round 2: ours / reference in the same run (1.0 = equal)"
set style data histograms
set style fill solid 0.8
set boxwidth 0.6
set yrange [0:*]
set grid ytics
unset key
plot "$dat" using (\$2/\$3):xtic(1) linecolor rgb "#3070b0", 1 with lines dashtype 2 linecolor rgb "#aa3333"
EOF
fi

if [ "${ROUND2_NOCOPY:-0}" != 1 ]; then
  cat "$md" >>"$here/results.md"
  [ -f "$out/chart-round2.png" ] && cp "$out/chart-round2.png" "$here/chart-round2.png"
  echo "round 2: appended to bench/results.md; chart bench/chart-round2.png" >&2
fi
