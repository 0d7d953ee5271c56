#!/usr/bin/env bash
# Builds everything and runs every test (unit, property, crash, power loss, storage faults, CLI,
# packaging), then the whole suite again under AddressSanitizer and UndefinedBehaviorSanitizer
# (scripts/sanitize.sh). Exits non-zero when either run fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
(cd "$root/build" && ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)")
"$root/scripts/sanitize.sh"
