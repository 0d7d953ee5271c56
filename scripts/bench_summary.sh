#!/usr/bin/env bash
# Writes summary.tsv, throughput.png and latency.png for one directory of benchmark JSON written by
# scripts/bench.sh, so a committed run can be summarised again without running it.
#
#   scripts/bench_summary.sh DIR [BENCH_RUN_SECONDS PREMISES_PER_UTILITY]
#
# Without the last two, the "bench run" line of an existing summary.tsv is kept.
set -euo pipefail
out=${1:?usage: bench_summary.sh DIR [BENCH_RUN_SECONDS PREMISES_PER_UTILITY]}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ge 3 ]; then
  run_line=$(printf 'bench run, s\t%s\t(%s premises per utility)\t\t< 1200' "$2" "$3")
else
  run_line=$(grep '^bench run, s' "$out/summary.tsv" 2>/dev/null || true)
fi

field() {  # file, key: the first number stored under that key
  sed -n "s/^ *\"$2\": \(-\?[0-9.]*\),\?$/\1/p" "$out/$1.json" | head -1
}
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
latency_p99() { sed -n 's/^ *"p99_ms": \([0-9.]*\),\?$/\1/p' "$out/latency.json" | sed -n "$1p"; }
{
  printf 'figure\tvalue\tcompared with\tratio\tgoal\n'
  printf 'durable ingest, intervals/s\t%s\traw synced WriteBatch %s records/s\t%s\t>= 1.2\n' \
    "$(field ingest intervals_per_s)" "$(field ingest raw_synced_writebatch_records_per_s)" "$(field ingest ratio)"
  printf 'durable ingest vs PostgreSQL batched INSERT, intervals/s\t%s\tPostgreSQL %s intervals/s\t%s\t>= 10\n' \
    "$(field ingest intervals_per_s)" "$(field peer_sql intervals_per_s)" \
    "$(ratio "$(field ingest intervals_per_s)" "$(field peer_sql intervals_per_s)")"
  printf 'bill run vs SQL bill query, s\t%s\tPostgreSQL %s s\t%s\t>= 5\n' \
    "$(field bill_run bill_run_s)" "$(field peer_sql bill_query_s)" \
    "$(ratio "$(field peer_sql bill_query_s)" "$(field bill_run bill_run_s)")"
  printf 'log append, records/s\t%s\traw WriteBatch, same bytes %s records/s\t%s\t>= 0.7\n' \
    "$(field log_append log_records_per_s)" "$(field log_append raw_records_per_s)" \
    "$(field log_append ratio)"
  if [ -f "$out/batch_path.json" ]; then
    printf 'binary batch path, intervals/s\t%s\traw synced WriteBatch %s records/s\t%s\t>= 1.2\n' \
      "$(field batch_path batch_path_intervals_per_s)" "$(field batch_path raw_synced_writebatch_records_per_s)" \
      "$(field batch_path ratio)"
    printf 'binary batch path vs JSON lines, same readings\t%s\tJSON lines %s intervals/s\t%s\t\n' \
      "$(field batch_path batch_path_intervals_per_s)" "$(field batch_path json_lines_intervals_per_s)" \
      "$(field batch_path batch_over_json_lines)"
  fi
  if [ -f "$out/gateway_load.json" ]; then
    printf 'gateway, intervals/s in batched frames\t%s\t(%s frames/s of %s readings)\t\t>= 1000000\n' \
      "$(field gateway_load intervals_per_s)" "$(field gateway_load frames_per_s)" "$(field gateway_load readings_per_frame)"
    printf 'gateway, plug and bind ack p99 under that load, ms\t%s / %s\t\t\t<= 5\n' \
      "$(sed -n '/"plug_ack_ms"/,/}/s/^ *"p99": \([0-9.]*\).*/\1/p' "$out/gateway_load.json")" \
      "$(sed -n '/"bind_ack_ms"/,/}/s/^ *"p99": \([0-9.]*\).*/\1/p' "$out/gateway_load.json")"
  fi
  if [ -f "$out/http_load.json" ]; then
    printf 'read API, bill endpoint requests/s on loopback\t%s\tin process %s/s (p99 %s ms)\t%s\t\n' \
      "$(field http_load requests_per_second)" "$(field http_load api_in_process_per_second)" \
      "$(field http_load latency_ms_p99)" "$(field http_load http_over_api_in_process)"
  fi
  printf 'replay --verify, events/s\t%s\traw iteration %s events/s\t%s\t>= 0.5\n' \
    "$(field replay replay_events_per_s)" "$(field replay raw_iteration_events_per_s)" "$(field replay ratio)"
  printf 'bill run, bills/s\t%s\t(%s s for %s accounts)\t\t\n' \
    "$(field bill_run bills_per_s)" "$(field bill_run bill_run_s)" "$(field bill_run accounts)"
  printf 'memory per idle PEV (marginal), bytes\t%s\t(total RSS / PEVs: %s)\t\t<= 256\n' \
    "$(field memory marginal_bytes_per_idle_pev)" "$(field memory resident_bytes_per_enrolled_pev)"
  printf 'peak resident memory of the month ingest, bytes\t%s\t\t\t\n' "$(field ingest peak_resident_bytes)"
  printf 'peak resident memory, 1M PEVs enrolled, bytes\t%s\t\t\t\n' "$(field memory peak_resident_bytes)"
  printf 'binding p99, ms (default groups)\t%s\t\t\t<= 5\n' "$(latency_p99 1)"
  printf 'binding p99, ms (2 ms groups)\t%s\t\t\t<= 5\n' "$(latency_p99 2)"
  if [ -n "$run_line" ]; then printf '%s\n' "$run_line"; fi
} >"$out/summary.tsv.new"
mv "$out/summary.tsv.new" "$out/summary.tsv"

# Throughput beside its limit, and binding latency percentiles.
printf '"durable ingest\\n(intervals/s)" %s %s\n"replay --verify\\n(events/s)" %s %s\n' \
  "$(field ingest intervals_per_s)" "$(field ingest raw_synced_writebatch_records_per_s)" \
  "$(field replay replay_events_per_s)" "$(field replay raw_iteration_events_per_s)" >"$out/throughput.dat"
sed -n 's/^ *"p\(50\|99\|999\)_ms": \([0-9.]*\),\?$/p\1 \2/p' "$out/latency.json" >"$out/latency.raw"
paste -d' ' <(sed -n 1,3p "$out/latency.raw") <(sed -n 4,6p "$out/latency.raw" | cut -d' ' -f2) >"$out/latency.dat"
commit=$(sed -n 's/^ *"commit": "\([^"]*\)",\?$/\1/p' "$out/ingest.json" | head -1)
gnuplot <<GNUPLOT
set terminal pngcairo size 900,500
set output "$out/throughput.png"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "per second (log scale)"
set title "pevledger beside the machine's limit, same run (${commit:-unknown commit})"
plot "$out/throughput.dat" using 2:xtic(1) title "pevledger", "" using 3 title "raw RocksDB"
set output "$out/latency.png"
unset logscale y
set ylabel "ms"
set title "binding latency (plug to durable grant) under interval load"
plot "$out/latency.dat" using 2:xtic(1) title "default groups", "" using 3 title "2 ms groups"
GNUPLOT
column -t -s $'\t' "$out/summary.tsv"
