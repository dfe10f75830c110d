#!/usr/bin/env bash
# Records real multi-threaded programs with mallocscope's recorder (`mallocscope record`, docs/record.md), which
# keeps their threads (`@T` tags, `spawn`, `exit`), into the fixtures of test/fixtures/real-threads/:
#
#   scripts/record-real-thread-traces.sh [OUTDIR]     (default test/fixtures/real-threads)
#
#   xz-t4.trace         xz -T4 -1 compressing 3.3 MB of text and random bytes, in 256 KiB blocks
#   sort-parallel.trace sort --parallel=4 -S 30M on 560,000 short lines (two buffers, then a merge)
#   python-pool.trace   python3 running pool.py: a ThreadPoolExecutor of 4 workers building JSON and strings
#   threads4.trace      threads4.c (built here with gcc): 4 workers, two rounds, blocks freed across arenas
#
# The inputs are generated with fixed seeds, so a re-recording makes the same calls, except for the order in
# which the threads interleave (and so where their blocks go), which differs from run to run: the recorder
# writes the calls in the order they happened, and the oracle and the model replay that order.
# Needs a built checkout (npm install), gcc, python3, xz (Debian: xz-utils) and GNU sort. Each trace starts with
# the recorder's comment header (program, command, date, glibc, exit) and the number of calls.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mallocscope=(node "$root/bin/mallocscope.js")
out=$(mkdir -p "${1:-$root/test/fixtures/real-threads}" && cd "${1:-$root/test/fixtures/real-threads}" && pwd)
src=$root/test/fixtures/real-threads
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The real interpreter binary: a pyenv shim is a shell script that forks and execs, and would lose the log.
python=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
xz=$(command -v xz) || { echo "$0: xz is missing (Debian: apt-get install xz-utils)" >&2; exit 1; }
sort=$(command -v sort)

# record NAME PROGRAM ARGS...: records one trace (the program's standard output is thrown away) and puts its
# number of calls in its header. A recording the converter refuses is made again, up to 5 times, saying so:
# when a thread other than the main one spawns (sort's do), the recorder can write a spawn with the wrong
# thread number (RECLOG_THREAD, about one recording of sort in four; test/fixtures/real-threads/README.md).
record() {
  local name=$1 try
  shift
  for try in 1 2 3 4 5; do
    "${mallocscope[@]}" record -o "$out/$name.trace" -- "$@" >/dev/null && break
    ((try < 5)) || return 1
    echo "$name: recording again" >&2
  done
  local calls threads
  calls=$(grep -cv '^#' "$out/$name.trace" || true)
  threads=$(grep -cE '^(@[0-9]+ )?spawn ' "$out/$name.trace" || true)
  sed -i "s|^# exit: .*|&\n# calls: $calls|" "$out/$name.trace"
  printf '%-20s %7d calls %3d threads spawned %9d bytes\n' "$name.trace" "$calls" "$threads" "$(stat -c %s "$out/$name.trace")"
}

# The inputs: lines of words with 1 MiB of random bytes after them (xz), short hexadecimal lines (sort).
"$python" -I -S -c '
import random
random.seed(1)
with open("'"$work"'/data.bin", "wb") as f:
    words = [("w%d" % i).encode() for i in range(500)]
    for i in range(60000):
        f.write(b" ".join(random.choice(words) for _ in range(8)) + b"\n")
    f.write(random.randbytes(1 << 20))
random.seed(3)
with open("'"$work"'/lines.txt", "w") as f:
    for i in range(560000):
        f.write("%x\n" % random.getrandbits(random.randint(8, 28)))'

cd "$work"

# 1. xz with 4 threads: -1 and 256 KiB blocks, so that the 3.3 MB make 13 blocks for the 4 workers.
record xz-t4 "$xz" -T4 -1 --block-size=262144 -k -c data.bin

# 2. sort with 4 threads. sort splits a buffer between threads only from 128 Ki lines a thread up
#    (SUBTHREAD_LINES_HEURISTIC), so -S must be large enough for a buffer of over 256 Ki lines, not small:
#    30M takes about 300,000 lines, sorted by 4 threads, then the rest by 2, then the two runs are merged.
LC_ALL=C.UTF-8 record sort-parallel "$sort" --parallel=4 -S 30M -T . lines.txt

# 3. A ThreadPoolExecutor of 4 workers (objects above 512 bytes reach malloc; smaller ones stay in pymalloc).
cp "$src/pool.py" .
PYTHONHASHSEED=0 record python-pool "$python" -I -S pool.py

# 4. Our own C program with 4 threads.
cp "$src/threads4.c" .
gcc -O2 -Wall -pthread -o threads4 threads4.c
record threads4 ./threads4
