#!/usr/bin/env bash
# Configures and builds pevledger into build/ (Release with debug info; ccache when present).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPEVLEDGER_BUILD_TESTS=ON -DPEVLEDGER_BUILD_FUZZ=ON -DPEVLEDGER_BUILD_BENCH=ON -DPEVLEDGER_INSTALL=ON >/dev/null
cmake --build "$root/build" -j "$jobs"
