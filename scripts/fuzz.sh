#!/usr/bin/env bash
# Coverage-guided fuzzing with clang's libFuzzer, under AddressSanitizer and UndefinedBehaviorSanitizer:
# the JSON-lines command parser (fuzz/parse_line_fuzzer.cpp), the interval batch reader
# (fuzz/interval_batch_fuzzer.cpp), the record decoder with the event printer
# (fuzz/record_fuzzer.cpp) and the device gateway's frames (fuzz/frame_fuzzer.cpp).
#
#   scripts/fuzz.sh [SECONDS]     each fuzzer runs SECONDS (default 60)
#
# Builds build-fuzz/ (clang, PEVLEDGER_LIBFUZZER=ON: base, schema, gateway and storage/record.cpp only) and
# runs each fuzzer from its seed corpus fuzz/corpus/TARGET/, copied first to
# build-fuzz/fuzz-runs/TARGET/corpus (the repository's corpus is never written). Prints each run's
# executions and coverage. Exits non-zero when a fuzzer finds a crash, a hang (10 s on one input),
# an assertion, a leak or more than 2 GB of memory: the input is printed as hex, the sanitizer's
# report with it, and the input stays in build-fuzz/fuzz-artifacts/TARGET/ (replay it with
# `build-fuzz/fuzz/TARGET_fuzzer FILE`). A crash found is fixed where it happens, and its input
# added to fuzz/corpus/TARGET/ as a regression seed.
set -euo pipefail
seconds=${1:-60}
case "$seconds" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-fuzz"
"$root/scripts/setup.sh"

started=$(date +%s)
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DPEVLEDGER_LIBFUZZER=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j 2 --target parse_line_fuzzer interval_batch_fuzzer record_fuzzer frame_fuzzer >/dev/null
echo "fuzz: built in $(($(date +%s) - started)) s"

export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=0
for target in parse_line interval_batch record frame; do
  run="$build/fuzz-runs/$target"
  artifacts="$build/fuzz-artifacts/$target"
  rm -rf "$run"
  mkdir -p "$run/corpus" "$artifacts"
  cp -R "$root/fuzz/corpus/$target/." "$run/corpus/"
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
           -artifact_prefix="$artifacts/")
  [ "$target" = parse_line ] && options+=(-dict="$root/fuzz/dict/json.dict")
  before=$(ls "$artifacts")
  status=0
  "$build/fuzz/${target}_fuzzer" "${options[@]}" "$run/corpus" >"$run/log" 2>&1 || status=$?

  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -n 1)
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run/log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$run/log" | tail -n 1)
  coverage=$(grep -E ' cov: [0-9]+' "$run/log" | tail -n 1 | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/' || true)
  echo "fuzz: ${target}_fuzzer: ${seconds} s, ${executions:-?} executions (${per_second:-?}/s), ${coverage:-no coverage line}, peak RSS ${rss:-?} MB"
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "fuzz: ${target}_fuzzer FAILED (exit $status); its log: $run/log" >&2
    # The report: from the first line a sanitizer, an assertion or libFuzzer wrote about it.
    first=$(grep -n -m 1 -E 'ERROR: |runtime error|check failed|invariant violated|deadly signal|ALARM|out-of-memory' "$run/log" | cut -d: -f1 || true)
    sed -n "${first:-1},+60p" "$run/log" >&2
    for artifact in $(comm -13 <(echo "$before") <(ls "$artifacts")); do
      echo "fuzz: input $artifacts/$artifact ($(stat -c %s "$artifacts/$artifact") bytes), as hex:" >&2
      od -An -tx1 -v "$artifacts/$artifact" | head -n 256 >&2
    done
  fi
done
exit "$failed"
