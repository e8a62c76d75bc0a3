# Chart of bench/out/chart.dat (written by report.lua).
#   gnuplot -e "dat='chart.dat'; out='chart.png'; ours=1; title='...'" chart.gp
# Top: ops/s per workload per client, log scale because the workloads span
# three orders of magnitude. Bottom (when our client ran): our ops/s
# divided by each peer's (log scale: the Node peers are 2-15x behind),
# with the 1.0 line to read it against. Columns of chart.dat: 1 workload,
# 2-8 lev-redis, hiredis-sync, hiredis-async, ioredis, ioredis-auto,
# node-redis, redis-benchmark; 9-13 lev-redis ÷ each of the five peers.

set terminal pngcairo size 1200, (ours ? 900 : 500) font "sans,10"
set output out
set datafile missing "-"
# chart.dat's first line names the columns; never read it as a data row.
set key autotitle columnhead
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
# Outside the plot, so that no bar can ever hide under the legend.
set key outside top center horizontal
set xtics nomirror
set ytics nomirror

# Both panels get the same x range, one slot per workload, so that their
# bars line up whatever the number of series in each.
stats dat using 0 nooutput
set xrange [-0.5:STATS_records - 0.5]

if (ours) { set multiplot layout 2, 1 title title } else { set title title }

set logscale y
set format y "%.0s%c"
set ylabel "ops/s (log)"
# W4 in Node runs at a few hundred ops/s: the axis starts below it.
set yrange [200:*]
# Line types 2..8 colour the columns 2..8 of chart.dat; without our
# client its column is all "-" and is left out rather than plotted empty.
set linetype 2 lc rgb "#d95f02"
set linetype 3 lc rgb "#1b9e77"
set linetype 4 lc rgb "#7570b3"
set linetype 5 lc rgb "#e7298a"
set linetype 6 lc rgb "#66a61e"
set linetype 7 lc rgb "#e6ab02"
set linetype 8 lc rgb "#bbbbbb"
plot for [i=(ours ? 2 : 3):8] dat using i:xtic(1) title columnheader(i) lt i

if (ours) {
  set ylabel "lev-redis ÷ peer (ops/s, log)"
  set yrange [0.25:32]
  set ytics ("0.25" 0.25, "0.5" 0.5, "1" 1, "2" 2, "4" 4, "8" 8, "16" 16, "32" 32)
  set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 1.5 dt 2
  plot for [i=9:13] dat using i:xtic(1) title "÷ ".columnheader(i - 6) lt (i - 6)
  unset multiplot
}
