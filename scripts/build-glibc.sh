#!/usr/bin/env bash
# Builds a glibc from a source tree into a folder the version tests and --libc take (for a version no
# distribution package brings, such as 2.34, or an upstream release branch rather than a distribution's):
#   scripts/build-glibc.sh SRC_DIR OUT_DIR [--configure-only]
# configure --prefix=/usr --disable-werror in a build folder outside SRC_DIR (glibc refuses to build in
# its source tree), make -j2, then the loader, libc and the small libraries a program may also ask for into
# OUT_DIR, with a SOURCE note. Needs gcc, make, gawk, bison and python3 (Debian: apt-get install gawk bison).
# configure takes about 30 s here; the whole make over half an hour on two busy cores (about a quarter of the way
# after 12 minutes at low priority). MALLOCSCOPE_GLIBC_BUILD_DIR keeps the build folder.
set -euo pipefail

usage() {
  echo "usage: scripts/build-glibc.sh SRC_DIR OUT_DIR [--configure-only]" >&2
  exit 2
}
[ $# -ge 2 ] && [ $# -le 3 ] || usage
src=$(cd "$1" 2> /dev/null && pwd) || { echo "build-glibc: no source folder $1" >&2; exit 2; }
out=$2
configure_only=0
if [ $# -eq 3 ]; then
  [ "$3" = --configure-only ] || usage
  configure_only=1
fi
[ -x "$src/configure" ] && [ -f "$src/version.h" ] || { echo "build-glibc: $1 is not a glibc source tree (no configure and version.h)" >&2; exit 2; }
missing=()
for tool in gcc make gawk bison python3; do command -v "$tool" > /dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-glibc: glibc's build needs ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
  exit 2
fi

version=$(sed -n 's/^#define VERSION "\(.*\)"$/\1/p' "$src/version.h")
build=${MALLOCSCOPE_GLIBC_BUILD_DIR:-$(mktemp -d)}
mkdir -p "$build"
if [ -z "${MALLOCSCOPE_GLIBC_BUILD_DIR:-}" ]; then trap 'rm -rf "$build"' EXIT; fi
commit=$(git -C "$src" rev-parse HEAD 2> /dev/null || echo "not a git checkout")
started=$(date +%s)

echo "build-glibc: glibc $version from $src ($commit) in $build"
(cd "$build" && "$src/configure" --prefix=/usr --disable-werror > configure.log 2>&1) || {
  tail -n 20 "$build/configure.log" >&2
  echo "build-glibc: configure failed (the log's end above)" >&2
  exit 1
}
echo "build-glibc: configured in $(($(date +%s) - started)) s"
if [ $configure_only -eq 1 ]; then exit 0; fi

make -C "$build" -j2 > "$build/make.log" 2>&1 || {
  tail -n 30 "$build/make.log" >&2
  echo "build-glibc: make failed (the log's end above)" >&2
  exit 1
}
mkdir -p "$out"
cp "$build/elf/ld.so" "$out/ld-linux-x86-64.so.2"
cp "$build/libc.so" "$out/libc.so.6"
cp "$build/math/libm.so" "$out/libm.so.6"
cp "$build/nptl/libpthread.so" "$out/libpthread.so.0"
cp "$build/dlfcn/libdl.so" "$out/libdl.so.2"
cp "$build/rt/librt.so" "$out/librt.so.1"
reported=$("$out/ld-linux-x86-64.so.2" --version | head -n 1)
printf 'built from %s (glibc %s), commit %s, configure --prefix=/usr --disable-werror, %s, %s\nloader: %s\n' \
  "$src" "$version" "$commit" "$(gcc --version | head -n 1)" "$(uname -m)" "$reported" > "$out/SOURCE"
echo "build-glibc: glibc $version in $out after $(($(date +%s) - started)) s ($reported)"
