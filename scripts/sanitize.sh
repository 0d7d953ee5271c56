#!/usr/bin/env bash
# Builds the whole suite with AddressSanitizer and UndefinedBehaviorSanitizer into build-sanitize/
# (or $PEVLEDGER_SANITIZE_BUILD_DIR) and runs every test; any sanitizer report fails the run, also
# one from a pevledger child process whose output or exit status a test does not look at.
# Exit status: ctest's, or 1 when ctest passed but some process wrote a sanitizer report.
#
# Under the sanitizers every case costs several times more, and the normal build's run covers the
# full counts: the crash test kills 40 times instead of 200 (PEVLEDGER_CRASH_KILLS) and each
# rapidcheck property tries 25 cases instead of 100 (RC_PARAMS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PEVLEDGER_SANITIZE_BUILD_DIR:-$root/build-sanitize}
"$root/scripts/setup.sh"
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Sanitize \
  -DPEVLEDGER_BUILD_TESTS=ON -DPEVLEDGER_BUILD_FUZZ=ON -DPEVLEDGER_BUILD_BENCH=OFF -DPEVLEDGER_INSTALL=OFF >/dev/null
cmake --build "$build" -j "$jobs"
cd "$build"
# Many tests run pevledger as a child with its standard error in a file they may never show, or
# accept any failure (a refused command, a SIGKILLed ingest). So every AddressSanitizer and
# LeakSanitizer report, of every process, is written to a file under $reports, which must stay
# empty (world-writable: one test runs its child as `nobody`). UBSan cannot log to a file when it
# runs inside ASan (GCC's runtime ignores its log_path then): it aborts instead of exiting 1, a
# status no test accepts from a child that was not killed.
reports="$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
chmod 1777 "$reports"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0:log_path=$reports/asan:log_exe_name=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export PEVLEDGER_CRASH_KILLS=40
export RC_PARAMS="max_success=25"
status=0
ctest --output-on-failure -j "$jobs" || status=$?
if [ -n "$(ls -A "$reports")" ]; then
  for f in "$reports"/*; do
    echo "=== sanitizer report $f" >&2
    cat "$f" >&2
  done
  echo "sanitize: $(ls "$reports" | wc -l) process(es) wrote a sanitizer report (above)" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
