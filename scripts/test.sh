#!/usr/bin/env bash
# Builds everything and runs every test (unit, property, crash, power loss, storage faults, CLI,
# packaging), then the whole suite again under AddressSanitizer and UndefinedBehaviorSanitizer
# (scripts/sanitize.sh), then each libFuzzer target for a minute from its seed corpus
# (scripts/fuzz.sh). Every step runs; exits non-zero when any of them failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" || exit 1
failed=0
(cd "$root/build" && ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)") || failed=1
"$root/scripts/sanitize.sh" || failed=1
"$root/scripts/fuzz.sh" "${PEVLEDGER_FUZZ_SECONDS:-60}" || failed=1
exit "$failed"
