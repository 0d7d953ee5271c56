#!/usr/bin/env bash
# Runs every benchmark and writes their JSON, a summary table and two pictures (gnuplot) under
# bench/results/<UTC time>/. Each JSON records the machine, the commit and its settings; each
# figure sits beside the limit or peer it is compared with, measured in the same run.
#
#   scripts/bench.sh [PREMISES_PER_UTILITY]
#
# The default, 15,500 premises per utility, makes a month of 10.1 million intervals (the fleet
# generator needs about 3 GB of memory for it, the run about 8 GB of disk under /tmp); the memory
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
run peer_sql "$root/bench/peer_sql.sh" "$root/build" "$premises" "$month/month.jsonl"
rm -f "$month/month.jsonl"
run replay "$bench/replay" --dir "$month" --keep --premises-per-utility "$premises"  # replays the month's log
rm -rf "$month"
run latency "$bench/latency"
run batch_path "$bench/batch_path"
run gateway_load "$bench/gateway_load"
run http_load "$bench/http_load"
run memory "$bench/memory" --pevs 1000000

"$root/scripts/bench_summary.sh" "$out" "$(( $(date +%s) - started ))" "$premises" >/dev/null
column -t -s $'\t' "$out/summary.tsv"
echo "results in $out" >&2
