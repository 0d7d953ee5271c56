#!/usr/bin/env bash
# The main job: a month of charging for a fleet of three utilities (600 premises, about 750 PEVs
# on 120 V outlets and 240 V chargers, time-of-use ones waiting for the night)
# run live. `pevledger serve` is the device gateway on the embedded default database
# ./pevledger.db; `pevledger simulate` is the fleet's ESCIs and EUMDs and the utilities' back
# office, sending the month over TCP as frames (with resends, dropped connections, EUMD restarts),
# the bill and settlement runs included. Then it prints the month's bills and roaming settlement,
# how sessions were decided (fallbacks) and what was flagged (anomalies), one customer's bill, and
# verifies the database by replaying its log.
# Running it again sends the same month again: every frame is a duplicate, nothing changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" >&2
bin="$root/build/cli/pevledger"
db="${PEVLEDGER_DB:-pevledger.db}"
work="$root/build/main-job"
mkdir -p "$work"
key="$work/operator.key"
# The back office's key: 32 random bytes in hex, made once.
[ -s "$key" ] || (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$key")

serve_out="$work/serve.out"
"$bin" serve --db "$db" --listen 127.0.0.1:0 --operator-key "$key" --clock back-office >"$serve_out" &
serve_pid=$!
trap 'kill -TERM "$serve_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q listening "$serve_out" 2>/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || { wait "$serve_pid"; exit 2; }
  sleep 0.1
done
address=$(sed -n 's/.*"listening":"\([^"]*\)".*/\1/p' "$serve_out")
[ -n "$address" ] || { echo "pevledger serve did not start" >&2; exit 2; }

echo "== the gateway on $address (database $db); the fleet's devices and back office connect"
"$bin" simulate --connect "$address" --operator-key "$key" --premises 600 --seed 7 --month 2024-03 \
  --record "$work/simulated-2024-03.jsonl"
kill -TERM "$serve_pid"
wait "$serve_pid"
trap - EXIT
echo "   the gateway served: $(tail -n 1 "$serve_out")"
echo
echo "== the month's bills and settlement"
"$bin" report --db "$db" --period 2024-03
echo
echo "== sessions by how their payer was decided, and anomalies flagged"
"$bin" export --db "$db" --quiet >"$work/events.jsonl"
grep '"type":"SessionDecided"' "$work/events.jsonl" | grep -o '"reason":"[a-z_]*"' | cut -d'"' -f4 |
  sort | uniq -c | sed 's/none$/none (the PEV'"'"'s own account)/'
grep '"type":"AnomalyRecorded"' "$work/events.jsonl" | grep -o '"kind":"[a-z_]*"' | cut -d'"' -f4 |
  sort | uniq -c | sed 's/$/ anomalies/'
rm -f "$work/events.jsonl"
echo
echo "== one customer's bill"
"$bin" bill --db "$db" --account u_west-a3 --period 2024-03
echo
echo "== replay from the log alone"
"$bin" replay --db "$db" --verify
echo
echo "== the customer's view: a token for u_west-a3 and the self-care page"
"$bin" token --db "$db" --account u_west-a3
echo "   serve the page: $bin serve --db $db --http 127.0.0.1:8080"
echo "   and open http://127.0.0.1:8080/#token=TOKEN (the token above) in a browser"
