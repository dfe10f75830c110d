#!/usr/bin/env bash
# Re-makes the logs in test/fixtures/import/ from real runs of the tools `mallocscope import` reads
# (docs/import.md): the C programs there, built here, run under heaptrack, ltrace and glibc's mtrace.
# The .rep files there are written by hand (the malloc-lab format has no tool to run) and are left alone.
#
#   scripts/make-import-fixtures.sh [OUTDIR]      default test/fixtures/import
#
# Needs gcc, heaptrack, ltrace and zstd (Debian: apt-get install heaptrack ltrace zstd), and a built checkout
# (npm install) for mtrace's starter library. Addresses differ from run to run (ASLR), so the logs do too;
# the tests read counts and agreement from them, never the addresses.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/test/fixtures/import
out=$(mkdir -p "${1:-$src}" && cd "${1:-$src}" && pwd)
for tool in gcc heaptrack ltrace zstd; do
  command -v "$tool" >/dev/null || { echo "$0: needs $tool" >&2; exit 1; }
done
starter=$root/build/Release/libmallocscope-mtrace.so
debug_lib=$(dirname "$(gcc -print-file-name=libc.so.6)")/libc_malloc_debug.so.0
[[ -f $starter ]] || { echo "$0: $starter is not built (npm install)" >&2; exit 1; }
[[ -f $debug_lib ]] || debug_lib=/lib/x86_64-linux-gnu/libc_malloc_debug.so.0
[[ -f $debug_lib ]] || { echo "$0: glibc's libc_malloc_debug.so.0 is not on this machine" >&2; exit 1; }

# The programs run from a temporary folder, so that the logs name it rather than the checkout.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# -O0 -fno-builtin: each call as the source writes it (see alloc-demo.c).
gcc -O0 -fno-builtin -o alloc-demo "$src/alloc-demo.c"
gcc -O0 -fno-builtin -pthread -o threads-demo "$src/threads-demo.c"
gcc -O0 -fno-builtin -o fork-demo "$src/fork-demo.c"

# heaptrack --raw: libheaptrack's own lines, with the addresses, compressed as heaptrack compresses them.
heaptrack --raw -o "$work/alloc-demo" ./alloc-demo >/dev/null
cp alloc-demo.raw.zst "$out/alloc-demo.raw.zst"
# heaptrack's default output, interpreted: the import refuses it, and a test checks that it does.
heaptrack -o "$work/alloc-demo" ./alloc-demo >/dev/null
cp alloc-demo.zst "$out/alloc-demo.interpreted.zst"

# ltrace -e: the program's own calls of the family (through its PLT), as villoc reads them.
ltrace -o "$out/alloc-demo.ltrace" -e malloc+calloc+realloc+free+aligned_alloc ./alloc-demo
# ltrace -x: the functions in libc themselves, each inside the program's call of it (nested, unfinished).
ltrace -o "$out/alloc-demo-x.ltrace" -x malloc+calloc+realloc+free+aligned_alloc ./alloc-demo
# ltrace -f on threads: pids, and calls cut into unfinished and resumed halves. ltrace 0.7.3 sometimes loses
# track of a thread ("unexpected breakpoint") and the program dies: such a run is made again.
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  ltrace -f -o "$work/threads.ltrace" -e malloc+free ./threads-demo || true
  if ! grep -q 'unexpected breakpoint\|killed by' "$work/threads.ltrace" && [[ $(grep -c 'exited (status 0)' "$work/threads.ltrace") == 3 ]]; then
    cp "$work/threads.ltrace" "$out/threads-demo.ltrace"
    break
  fi
  [[ $attempt == 10 ]] && { echo "$0: ltrace failed on threads-demo ten times" >&2; exit 1; }
done
# ltrace -f on a fork, written to stderr ([pid N] prefixes) with times (-tt), durations (-T) and callers (-i).
ltrace -f -tt -T -i -e malloc+free ./fork-demo 2>"$out/fork-demo.ltrace"

# glibc's mtrace, started by mallocscope's starter library (docs/mtrace.md).
LD_PRELOAD="$debug_lib $starter" MALLOC_TRACE="$out/alloc-demo.mtrace" ./alloc-demo

ls -l "$out"
