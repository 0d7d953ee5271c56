#!/usr/bin/env bash
# The main job: simulates a month of charging for a fleet of three utilities (about 750 PEVs,
# 185,000 command lines) into the embedded default database ./pevledger.db, then prints the
# month's bills and roaming settlement and verifies the database by replaying its log.
# Running it again ingests the same lines again: every one is a duplicate, nothing changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" >&2
bin="$root/build/cli/pevledger"
db="${PEVLEDGER_DB:-pevledger.db}"
scenario="$root/build/fleet-2024-03.jsonl"
"$root/build/bench/fleet_gen" --seed 7 --premises-per-utility 200 --month 2024-03 >"$scenario"
echo "== ingest $(wc -l <"$scenario") command lines into $db"
status=0
"$bin" ingest --db "$db" "$scenario" 2>"$root/build/refusals.jsonl" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
echo
echo "== the month's bills and settlement"
"$bin" report --db "$db" --period 2024-03
echo
echo "== one customer's bill"
"$bin" bill --db "$db" --account u_west-a3 --period 2024-03
echo
echo "== replay from the log alone"
"$bin" replay --db "$db" --verify
