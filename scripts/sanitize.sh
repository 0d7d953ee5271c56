#!/usr/bin/env bash
# Builds the whole suite with AddressSanitizer and UndefinedBehaviorSanitizer into build-sanitize/
# and runs every test; any sanitizer report fails its test. Exit status is ctest's.
#
# Under the sanitizers every case costs several times more, and the normal build's run covers the
# full counts: the crash test kills 40 times instead of 200 (PEVLEDGER_CRASH_KILLS) and each
# rapidcheck property tries 25 cases instead of 100 (RC_PARAMS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$root/build-sanitize" -DCMAKE_BUILD_TYPE=Sanitize \
  -DPEVLEDGER_BUILD_TESTS=ON -DPEVLEDGER_BUILD_FUZZ=ON -DPEVLEDGER_BUILD_BENCH=OFF -DPEVLEDGER_INSTALL=OFF >/dev/null
cmake --build "$root/build-sanitize" -j "$jobs"
cd "$root/build-sanitize"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export PEVLEDGER_CRASH_KILLS=40
export RC_PARAMS="max_success=25"
ctest --output-on-failure -j "$jobs"
