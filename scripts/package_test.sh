#!/usr/bin/env bash
# The embedding path as a utility's developer takes it (ctest runs it as the `packaging` test):
# install a build to a temporary prefix; check that each public header compiles on its own; build
# examples/ against the installed tree with find_package and with pkg-config and run both (each
# must print the expected bill); make the Debian package and run `pevledger --version` from it.
#
#   scripts/package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/pevledger-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")

prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
for header in "$prefix"/include/pevledger/*.hpp; do
  echo "#include <pevledger/$(basename "$header")>" |
    g++ -std=c++20 -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" -x c++ - ||
    { echo "FAIL: $(basename "$header") does not compile on its own"; exit 1; }
done

check_run() {  # label, program
  local out="$work/$1.out"
  "$2" "$work/$1.db" >"$out"
  [ "$(head -1 "$out")" = "pevledger $version" ] || { echo "FAIL ($1): version line: $(head -1 "$out")"; exit 1; }
  diff -u "$root/examples/embed_day.expected" <(tail -n +2 "$out") || { echo "FAIL ($1): unexpected bill"; exit 1; }
  echo "ok: $1"
}

cmake -S "$root/examples" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
check_run find_package "$work/cmake-build/embed_day"

pc=$(dirname "$(find "$prefix" -name pevledger.pc | head -1)")
# shellcheck disable=SC2046  # pkg-config's flags are words
g++ -std=c++20 "$root/examples/embed_day.cpp" -o "$work/embed_day_pc" \
  $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs pevledger) -Wl,-rpath,"$(dirname "$pc")"
check_run pkg_config "$work/embed_day_pc"

# A parent project that adds the source tree gets the library alone: configuring it must not need
# GoogleTest, rapidcheck or Google Benchmark, and must offer pevledger::pevledger.
mkdir -p "$work/parent"
cat >"$work/parent/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(parent LANGUAGES CXX)
add_subdirectory("$root" pevledger)
add_executable(embed_day "$root/examples/embed_day.cpp")
target_link_libraries(embed_day PRIVATE pevledger::pevledger)
CMAKE
cmake -S "$work/parent" -B "$work/parent/build" -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_rapidcheck=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON >"$work/parent.log" 2>&1 ||
  { cat "$work/parent.log"; echo "FAIL: add_subdirectory needs more than the library's dependencies"; exit 1; }
grep -q "pevledger_shared" "$work/parent/build/Makefile" || { echo "FAIL: no library target under add_subdirectory"; exit 1; }
echo "ok: add_subdirectory configures the library alone"

(cd "$build" && cpack -G DEB -B "$work/deb" >/dev/null)
deb=$(find "$work/deb" -maxdepth 1 -name "pevledger_${version}_*.deb" | head -1)
[ -n "$deb" ] || { echo "FAIL: cpack made no .deb"; exit 1; }
dpkg-deb -x "$deb" "$work/deb-root"
for f in usr/bin/pevledger usr/include/pevledger/engine.hpp; do
  [ -e "$work/deb-root/$f" ] || { echo "FAIL: the .deb lacks $f"; exit 1; }
done
ls "$work"/deb-root/usr/lib*/libpevledger.so* "$work"/deb-root/usr/lib*/*/libpevledger.so* >/dev/null 2>&1 ||
  find "$work/deb-root" -name 'libpevledger.so*' | grep -q . || { echo "FAIL: the .deb lacks libpevledger.so"; exit 1; }
"$work/deb-root/usr/bin/pevledger" --version | grep -q "pevledger $version" || { echo "FAIL: --version from the .deb"; exit 1; }
# On CI (a throwaway machine, as root) the package is really installed, run from PATH and removed.
if [ "${CI:-}" = "true" ] && [ "$(id -u)" -eq 0 ] &&
   ! dpkg-query -W -f='${Status}' pevledger 2>/dev/null | grep -q "install ok installed"; then
  dpkg -i "$deb" >/dev/null
  /usr/bin/pevledger --version | grep -q "pevledger $version" || { dpkg -P pevledger >/dev/null; echo "FAIL: installed --version"; exit 1; }
  dpkg -P pevledger >/dev/null
  echo "ok: dpkg -i, pevledger --version, dpkg -P"
fi
echo "ok: deb $(basename "$deb")"
