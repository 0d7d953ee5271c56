#!/usr/bin/env bash
# Runs every benchmark and writes their JSON, a summary table and two pictures (gnuplot) under
# bench/results/<UTC time>/. Each JSON records the machine, the commit and its settings; each
# figure sits beside the limit or peer it is compared with, measured in the same run.
#
#   scripts/bench.sh [PREMISES_PER_UTILITY]
#
# The default, 15,500 premises per utility, makes a month of 10.1 million intervals (the fleet
# generator needs about 6 GB of memory for it, the run about 8 GB of disk under /tmp); the memory
# benchmark enrols 1,000,000 PEVs. The month is generated and ingested once: bench/bill_run, the
# PostgreSQL peer and bench/replay reuse it. Pass a smaller size for a quick look (1500: about a million intervals).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
premises=${1:-15500}
started=$(date +%s)
"$root/scripts/build.sh" >&2
if ! command -v gnuplot >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y gnuplot-nox >&2 || (apt-get update >&2 && apt-get install -y gnuplot-nox >&2)
  else sudo apt-get install -y gnuplot-nox >&2; fi
fi
bench="$root/build/bench"
out="$root/bench/results/$(date -u +%Y-%m-%dT%H%M%SZ)"
mkdir -p "$out"

run() {  # name, then the program and its arguments
  local name=$1; shift
  echo "== $name" >&2
  "$@" >"$out/$name.json"
}
month=$(mktemp -d /tmp/pevledger-bench-month.XXXXXX)
trap 'rm -rf "$month"' EXIT
run log_append "$bench/log_append"
run ingest "$bench/ingest" --premises-per-utility "$premises" --dir "$month" --keep
run bill_run "$bench/bill_run" --db "$month/db" --runs "$month/bill_runs.jsonl" --premises-per-utility "$premises"
run peer_sql "$root/bench/peer_sql.sh" "$root/build" "$premises" "$month/fleet.jsonl"
rm -f "$month/fleet.jsonl"
run replay "$bench/replay" --dir "$month" --keep --premises-per-utility "$premises"  # replays the month's log
rm -rf "$month"
run latency "$bench/latency"
run memory "$bench/memory" --pevs 1000000

field() {  # file, key: the first number stored under that key
  sed -n "s/^ *\"$2\": \(-\?[0-9.]*\),\?$/\1/p" "$out/$1.json" | head -1
}
{
  printf 'figure\tvalue\tcompared with\tratio\tgoal\n'
  printf 'durable ingest, intervals/s\t%s\traw synced WriteBatch %s records/s\t%s\t>= 1.2\n' \
    "$(field ingest intervals_per_s)" "$(field ingest raw_synced_writebatch_records_per_s)" "$(field ingest ratio)"
  printf 'durable ingest vs PostgreSQL batched INSERT, intervals/s\t%s\tPostgreSQL %s intervals/s\t%s\t>= 10\n' \
    "$(field ingest intervals_per_s)" "$(field peer_sql intervals_per_s)" \
    "$(awk "BEGIN { printf \"%.2f\", $(field ingest intervals_per_s) / $(field peer_sql intervals_per_s) }")"
  printf 'bill run vs SQL bill query, s\t%s\tPostgreSQL %s s\t%s\t>= 5\n' \
    "$(field bill_run bill_run_s)" "$(field peer_sql bill_query_s)" \
    "$(awk "BEGIN { printf \"%.2f\", $(field peer_sql bill_query_s) / $(field bill_run bill_run_s) }")"
  printf 'log append, records/s\t%s\traw WriteBatch, same bytes %s records/s\t%s\t>= 0.7\n' \
    "$(field log_append log_records_per_s)" "$(field log_append raw_records_per_s)" \
    "$(field log_append ratio)"
  printf 'replay --verify, events/s\t%s\traw iteration %s events/s\t%s\t>= 0.5\n' \
    "$(field replay replay_events_per_s)" "$(field replay raw_iteration_events_per_s)" "$(field replay ratio)"
  printf 'bill run, bills/s\t%s\t(%s s for %s accounts)\t\t\n' \
    "$(field bill_run bills_per_s)" "$(field bill_run bill_run_s)" "$(field bill_run accounts)"
  printf 'memory per idle PEV (marginal), bytes\t%s\t(total RSS / PEVs: %s)\t\t<= 256\n' \
    "$(field memory marginal_bytes_per_idle_pev)" "$(field memory resident_bytes_per_enrolled_pev)"
  printf 'peak resident memory, bytes\t%s\t\t\t\n' "$(field memory peak_resident_bytes)"
  printf 'binding p99, ms (default groups)\t%s\t\t\t<= 5\n' "$(sed -n 's/^ *"p99_ms": \([0-9.]*\),\?$/\1/p' "$out/latency.json" | sed -n 1p)"
  printf 'binding p99, ms (2 ms groups)\t%s\t\t\t<= 5\n' "$(sed -n 's/^ *"p99_ms": \([0-9.]*\),\?$/\1/p' "$out/latency.json" | sed -n 2p)"
} >"$out/summary.tsv"

# Throughput beside its limit, and binding latency percentiles.
printf '"durable ingest\\n(intervals/s)" %s %s\n"replay --verify\\n(events/s)" %s %s\n' \
  "$(field ingest intervals_per_s)" "$(field ingest raw_synced_writebatch_records_per_s)" \
  "$(field replay replay_events_per_s)" "$(field replay raw_iteration_events_per_s)" >"$out/throughput.dat"
sed -n 's/^ *"p\(50\|99\|999\)_ms": \([0-9.]*\),\?$/p\1 \2/p' "$out/latency.json" >"$out/latency.raw"
paste -d' ' <(sed -n 1,3p "$out/latency.raw") <(sed -n 4,6p "$out/latency.raw" | cut -d' ' -f2) >"$out/latency.dat"
gnuplot <<EOF
set terminal pngcairo size 900,500
set output "$out/throughput.png"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "per second (log scale)"
set title "pevledger beside the machine's limit, same run ($(git -C "$root" rev-parse --short HEAD))"
plot "$out/throughput.dat" using 2:xtic(1) title "pevledger", "" using 3 title "raw RocksDB"
set output "$out/latency.png"
unset logscale y
set ylabel "ms"
set title "binding latency (plug to durable grant) under interval load"
plot "$out/latency.dat" using 2:xtic(1) title "default groups", "" using 3 title "2 ms groups"
EOF
elapsed=$(( $(date +%s) - started ))
printf 'bench run, s\t%s\t(%s premises per utility)\t\t< 1200\n' "$elapsed" "$premises" >>"$out/summary.tsv"
column -t -s $'\t' "$out/summary.tsv"
echo "results in $out" >&2
