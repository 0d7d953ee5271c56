#!/usr/bin/env bash
# Installs the Debian 12 packages pevledger builds with, when any is missing. Idempotent.
set -euo pipefail
packages=(
  build-essential cmake ccache pkg-config tzdata openssl util-linux
  libcaf-dev librocksdb-dev libflatbuffers-dev flatbuffers-compiler liburing-dev
  librapidcheck-dev libgtest-dev libbenchmark-dev libhowardhinnant-date-dev libssl-dev
  nlohmann-json3-dev libcli11-dev libsimdjson-dev clang libclang-rt-14-dev libboost-dev
  chromium
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
