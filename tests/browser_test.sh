#!/usr/bin/env bash
# The self-care page in a real browser: a fleet's month ingested, `pevledger serve --http` on a
# loopback port, the page opened in headless Chromium with a customer's token in the URL fragment.
# Checks what the page shows against the command line: the status hook says "ready", the bill shown
# (#bill-total: data-period, data-total-micro) is the one `pevledger bill` prints, and the session
# list is not empty. Then a phone-sized screenshot (390 px wide) goes to OUT_DIR/selfcare.png.
#
# Usage: tests/browser_test.sh PEVLEDGER FLEET_GEN OUT_DIR
# Needs Debian's chromium (apt-get install chromium); no curl, jq or python.
# Environment: PEVLEDGER_CHROMIUM (the browser binary, default: chromium or chromium-browser on the
# PATH), PEVLEDGER_BROWSER_WAIT_S (how long serve may take to listen, default 30).
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 PEVLEDGER FLEET_GEN OUT_DIR" >&2
  exit 2
fi
pevledger=$1
fleet_gen=$2
out_dir=$3
wait_s=${PEVLEDGER_BROWSER_WAIT_S:-30}
budget_ms=15000       # Chromium's virtual time: fetches pause it, so the page's requests all finish
chromium_timeout_s=120

log() { echo "browser_test: $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pevledger-browser.XXXXXX")
server_pid=""

# On failure: say why, show the tails of the logs, keep a copy of them beside the screenshot.
fail() {
  echo "browser_test: FAIL: $*" >&2
  for f in serve.out serve.err chromium-dom.err chromium-shot.err; do
    if [[ -s $work/$f ]]; then
      echo "--- last lines of $f" >&2
      grep -v -e 'dbus' -e 'DBus' "$work/$f" | tail -n 15 >&2 || true
      cp "$work/$f" "$out_dir/" 2>/dev/null || true
    fi
  done
  exit 1
}

cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)

[[ -x $pevledger ]] || fail "no pevledger binary at $pevledger"
[[ -x $fleet_gen ]] || fail "no fleet_gen binary at $fleet_gen"
chromium=${PEVLEDGER_CHROMIUM:-}
if [[ -z $chromium ]]; then
  chromium=$(command -v chromium || command -v chromium-browser || true)
fi
[[ -n $chromium && -x $chromium ]] || fail "no chromium found: apt-get install -y chromium (or set PEVLEDGER_CHROMIUM)"

# 1. A month of a small fleet, bill runs included.
"$fleet_gen" --seed 11 --premises-per-utility 2 --charging-profiles on > "$work/fleet.jsonl" \
  || fail "fleet_gen failed"
[[ -s $work/fleet.jsonl ]] || fail "fleet_gen printed nothing"
rc=0
"$pevledger" ingest --db "$work/db" --quiet "$work/fleet.jsonl" > "$work/ingest.out" 2> "$work/ingest.err" || rc=$?
[[ $rc -eq 0 || $rc -eq 3 ]] || fail "ingest exited $rc: $(tail -n 3 "$work/ingest.err")"
log "ingested: $(cat "$work/ingest.out")"

# 2. A residential customer: the account of the first PEV enrolment.
enroll=$(grep -m 1 '"type":"pev.enroll"' "$work/fleet.jsonl" || true)
account=$(sed -n 's/.*"account":"\([^"]*\)".*/\1/p' <<< "$enroll")
[[ -n $account ]] || fail "no pev.enroll line with an account in the fleet"

# 3. A token for that account.
token_json=$("$pevledger" token --db "$work/db" --account "$account" --format json) \
  || fail "pevledger token --account $account failed"
token=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<< "$token_json")
[[ -n $token ]] || fail "no token in: $token_json"
[[ $token =~ ^[A-Za-z0-9._~-]+$ ]] || fail "the token has characters that a URL fragment would need escaped: $token"
log "account $account, token issued"

# 4. The HTTP server on a free loopback port; it prints {"http":"127.0.0.1:PORT",...} once listening.
"$pevledger" serve --db "$work/db" --http 127.0.0.1:0 > "$work/serve.out" 2> "$work/serve.err" &
server_pid=$!
address=""
for ((i = 0; i < wait_s * 10; i++)); do
  address=$(grep -o '"http":"127\.0\.0\.1:[0-9][0-9]*"' "$work/serve.out" 2>/dev/null | head -n 1 | sed 's/"http":"\(.*\)"/\1/' || true)
  [[ -n $address ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    rc=0; wait "$server_pid" || rc=$?
    server_pid=""
    fail "serve exited (status $rc) before listening"
  fi
  sleep 0.1
done
[[ -n $address ]] || fail "serve printed no \"http\" address within ${wait_s} s"
url="http://$address/#token=$token"
log "serving on $address"

# 5. The page in headless Chromium (new headless mode). --virtual-time-budget makes --dump-dom
# and --screenshot wait until the page's timers and fetches have run for that much virtual time
# (virtual time stands still while a fetch is pending); without it the DOM is dumped at load.
browser=("$chromium" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
         --no-default-browser-check --disable-extensions --user-data-dir="$work/chromium-profile"
         "--virtual-time-budget=$budget_ms")
dom=$(timeout "$chromium_timeout_s" "${browser[@]}" --dump-dom "$url" 2> "$work/chromium-dom.err") \
  || fail "chromium --dump-dom failed or timed out"
printf '%s\n' "$dom" > "$out_dir/selfcare.dom.html"

# The start tag of the element with id ID, then one attribute of it (values hold no '"' or '>').
start_tag() { grep -o "<[a-z][a-z0-9]*[^>]* id=\"$1\"[^>]*>" <<< "$dom" | head -n 1 || true; }
# The text right after that start tag (up to the next tag).
text_after() { grep -o "<[a-z][a-z0-9]*[^>]* id=\"$1\"[^>]*>[^<]*" <<< "$dom" | head -n 1 | sed 's/^[^>]*>//' || true; }
attribute() { sed -n "s/.* $2=\"\\([^\"]*\\)\".*/\\1/p" <<< "$1"; }

status_tag=$(start_tag status)
[[ -n $status_tag ]] || fail "the page has no #status element (is / the self-care page?)"
state=$(attribute "$status_tag" data-state)
status_text=$(text_after status)
[[ $state == ready ]] || fail "#status data-state is \"$state\", not \"ready\": $status_text"

bill_tag=$(start_tag bill-total)
[[ -n $bill_tag ]] || fail "the page has no #bill-total element"
period=$(attribute "$bill_tag" data-period)
shown_micro=$(attribute "$bill_tag" data-total-micro)
shown_text=$(text_after bill-total)
[[ $period =~ ^[0-9]{4}-[0-9]{2}$ ]] || fail "#bill-total has no data-period (got \"$period\")"
[[ $shown_micro =~ ^-?[0-9]+$ ]] || fail "#bill-total has no data-total-micro (got \"$shown_micro\")"

bill_json=$("$pevledger" bill --db "$work/db" --account "$account" --period "$period" --format json) \
  || fail "pevledger bill --account $account --period $period failed"
expected_micro=$(sed -n 's/.*"total_micro":\(-\{0,1\}[0-9][0-9]*\).*/\1/p' <<< "$bill_json")
expected_period=$(sed -n 's/.*"period":"\([^"]*\)".*/\1/p' <<< "$bill_json")
[[ -n $expected_micro ]] || fail "no total_micro in pevledger bill's output: $bill_json"
[[ $expected_period == "$period" ]] || fail "pevledger bill answered period \"$expected_period\" for \"$period\""
[[ $shown_micro == "$expected_micro" ]] \
  || fail "the page shows total_micro $shown_micro for $period, pevledger bill says $expected_micro"

sessions_tag=$(start_tag sessions)
[[ -n $sessions_tag ]] || fail "the page has no #sessions element"
count=$(attribute "$sessions_tag" data-count)
first_session=$(grep -o '<[a-z][a-z0-9]*[^>]* id="sessions"[^>]*><li [^>]*data-session="[^"]*"' <<< "$dom" | head -n 1 \
                | sed 's/.*data-session="\([^"]*\)"/\1/' || true)
[[ $count =~ ^[0-9]+$ && $count -gt 0 && -n $first_session ]] \
  || fail "the session list is empty (data-count \"$count\")"
grep -q '<svg[^>]* id="usage-chart"' <<< "$dom" || fail "the page has no #usage-chart SVG"
log "page ready: bill $period total_micro $shown_micro (\"$shown_text\"), $count sessions, newest $first_session"

# A phone-sized screenshot (the window may be narrower than a desktop's minimum in this mode).
rm -f "$out_dir/selfcare.png"
timeout "$chromium_timeout_s" "${browser[@]}" --hide-scrollbars --window-size=390,1600 \
  --screenshot="$out_dir/selfcare.png" "$url" > /dev/null 2> "$work/chromium-shot.err" \
  || fail "chromium --screenshot failed or timed out"
[[ -s $out_dir/selfcare.png ]] || fail "no screenshot at $out_dir/selfcare.png"
magic=$(od -An -tx1 -N8 "$out_dir/selfcare.png" | tr -d ' \n')
[[ $magic == 89504e470d0a1a0a ]] || fail "$out_dir/selfcare.png is not a PNG"
log "screenshot: $out_dir/selfcare.png ($(wc -c < "$out_dir/selfcare.png") bytes)"

log "PASS"
