#!/usr/bin/env bash
# bench/peer_sql: the approach a utility would otherwise take, measured on the same fleet month as
# bench/ingest and bench/bill_run (same seed and size): a PostgreSQL table of intervals loaded with
# batched INSERTs (1,000 rows a statement, each statement committed with synchronous_commit=on and
# fsync=on), then the month's bills computed in one SQL query. Debian's PostgreSQL is installed if
# missing, started on loopback in a temporary directory and stopped afterwards. Reference rows
# (tariffs, PEVs, bindings) are sent in transactions of 1,000 statements. The load runs over one
# connection per core, as a loader on this machine would (pevledger uses every core too): on the
# 2-core VM the 1,500-premise month loaded in 48 and 41 s over one connection, 15 and 16 s over two
# (interleaved runs, the same bills). Prints JSON.
#
#   bench/peer_sql.sh BUILD_DIR [PREMISES_PER_UTILITY [FLEET_FILE [CONNECTIONS]]]
#
# With FLEET_FILE (bench/ingest --keep leaves one, DIR/month.jsonl), that month is loaded instead of
# generating it; pass "" for it to name CONNECTIONS alone.
set -euo pipefail
build=$1
premises=${2:-1500}
fleet=${3:-}
connections=${4:-$(nproc 2>/dev/null || echo 2)}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y postgresql >&2 || (apt-get update >&2 && apt-get install -y postgresql >&2)
  else sudo apt-get install -y postgresql >&2; fi
fi
pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
work=$(mktemp -d /tmp/pevledger-peer-sql.XXXXXX)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$work"
  as_pg=(runuser -u postgres --)
fi
port=54329
stop() { "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap stop EXIT

if [ -z "$fleet" ]; then
  fleet="$work/fleet.jsonl"
  "$build/bench/fleet_gen" --seed 11 --premises-per-utility "$premises" >"$fleet"
fi
intervals=$("$build/bench/peer_sql_gen" "$work" --connections "$connections" <"$fleet")
chmod a+r "$work"/*.sql
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -A trust -U bench >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c synchronous_commit=on -c fsync=on" start >/dev/null
psql=(psql -X -q -h 127.0.0.1 -p "$port" -U bench -d postgres)

t0=$(date +%s.%N)
"${psql[@]}" -f "$work/schema.sql" >/dev/null
loaders=()
for ((k = 0; k < connections; k++)); do
  "${psql[@]}" -f "$work/load-$k.sql" >/dev/null &
  loaders+=($!)
done
for pid in "${loaders[@]}"; do wait "$pid"; done  # set -e: a failed loader fails the benchmark
"${psql[@]}" -f "$work/finish.sql" >/dev/null
t1=$(date +%s.%N)
bills=$("${psql[@]}" -A -t -f "$work/bill.sql" | wc -l)
t2=$(date +%s.%N)

load_s=$(awk "BEGIN { print $t1 - $t0 }")
bill_s=$(awk "BEGIN { print $t2 - $t1 }")
version=$("$pgbin/postgres" --version)
cat <<EOF
{
  "bench": "peer_sql",
  "commit": "$(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo unknown)",
  "peer": "$version",
  "settings": {"premises_per_utility": $premises, "rows_per_insert": 1000, "connections": $connections, "synchronous_commit": "on", "fsync": "on"},
  "intervals": $intervals,
  "load_s": $(printf '%.2f' "$load_s"),
  "intervals_per_s": $(awk "BEGIN { printf \"%.0f\", $intervals / $load_s }"),
  "bills": $bills,
  "bill_query_s": $(printf '%.3f' "$bill_s")
}
EOF
