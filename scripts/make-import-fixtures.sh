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
gcc -O0 -fno-builtin -pthread -o thread-exits "$src/thread-exits.c"
gcc -O0 -fno-builtin -o fork-free "$src/fork-free.c"
gcc -O0 -fno-builtin -o stdio-demo "$src/stdio-demo.c"
gcc -O0 -fno-builtin -o ifunc-demo "$src/ifunc-demo.c"

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
# A run of ltrace -f that ends cleanly: no thread lost ("unexpected breakpoint"; the program then dies) and
# every pid exited with status 0 (the expected number of them).
clean_run() { ! grep -q 'unexpected breakpoint\|killed by' "$1" && [[ $(grep -c 'exited (status 0)' "$1") == "$2" ]]; }
# A malloc cut by `<no return ...>` (another pid's end came before its return) that resumes later.
malloc_cut_by_an_end() {
  awk '/^[0-9]+ .*->malloc\(.* <no return \.\.\.>$/ { cut[$1] = 1; next }
       cut[$1] && $2 == "<..." && $3 == "malloc" && $4 == "resumed>" { found = 1 }
       { if ($2 != "<...") delete cut[$1] }
       END { exit !found }' "$1"
}
# ltrace -f on threads: pids, and calls cut into unfinished and resumed halves. ltrace 0.7.3 sometimes loses
# track of a thread and the program dies: such a run is made again.
for attempt in $(seq 1 10); do
  ltrace -f -o "$work/threads.ltrace" -e malloc+free ./threads-demo || true
  if clean_run "$work/threads.ltrace" 3; then
    cp "$work/threads.ltrace" "$out/threads-demo.ltrace"
    break
  fi
  [[ $attempt == 10 ]] && { echo "$0: ltrace failed on threads-demo ten times" >&2; exit 1; }
done
# ltrace -f on threads that end while the main thread is inside a call. Where an end cuts a call is up to
# the scheduler: thread-exits makes calls all the time its 8 threads end (most runs have a malloc cut), and a
# run without a malloc cut by an end and resumed is made again, so the fixture always has one.
for attempt in $(seq 1 20); do
  ltrace -f -o "$work/thread-exits.ltrace" -e malloc+free ./thread-exits || true
  if clean_run "$work/thread-exits.ltrace" 9 && malloc_cut_by_an_end "$work/thread-exits.ltrace"; then
    cp "$work/thread-exits.ltrace" "$out/thread-exits.ltrace"
    break
  fi
  [[ $attempt == 20 ]] && { echo "$0: no run of thread-exits in twenty had a malloc cut by a thread's end" >&2; exit 1; }
done
# ltrace -f on a fork that --threads must refuse: with its SIGCHLD line, and without it (SIGCHLD ignored).
ltrace -f -o "$out/fork-free.ltrace" -e malloc+free ./fork-free
ltrace -f -o "$out/fork-free-quiet.ltrace" -e malloc+free ./fork-free quiet
# ltrace -e on a program whose libc calls through libc's own PLT (printf, getline), which ltrace misnames.
ltrace -o "$out/stdio-demo.ltrace" -e malloc+calloc+realloc+free ./stdio-demo >/dev/null
# ltrace with no -e (the program's own PLT) on a program with an ifunc, whose PLT ltrace misnames.
ltrace -o "$out/ifunc-demo.ltrace" ./ifunc-demo
# ltrace -f on a fork, written to stderr ([pid N] prefixes) with times (-tt), durations (-T) and callers (-i).
ltrace -f -tt -T -i -e malloc+free ./fork-demo 2>"$out/fork-demo.ltrace"

# glibc's mtrace, started by mallocscope's starter library (docs/mtrace.md).
LD_PRELOAD="$debug_lib $starter" MALLOC_TRACE="$out/alloc-demo.mtrace" ./alloc-demo

ls -l "$out"
