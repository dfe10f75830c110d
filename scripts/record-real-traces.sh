#!/usr/bin/env bash
# Records real programs' allocations as traces with `mallocscope record` (glibc mtrace, docs/mtrace.md):
# the small fixtures in test/fixtures/real/, or, with --large, a ~1 million call cc1 trace for benchmarks.
#
#   scripts/record-real-traces.sh [OUTDIR]                 cc1, python3 and perl fixtures (default test/fixtures/real)
#   scripts/record-real-traces.sh --large OUTDIR [N]       cc1 -O2 on a generated C file of N functions (default 220,
#                                                          about 1 million calls, ~15 MB): not for committing
#
# The traces start with the --preamble calls, so a replay reproduces the recorded heap offsets. They are
# recorded through mtrace (--via mtrace), as the committed fixtures were, so that a new recording compares.
# Needs a built checkout (npm install), gcc, python3 and perl. Each trace starts with a comment header:
# program, command, date, glibc version and the number of calls.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mallocscope=(node "$root/bin/mallocscope.js")
large=0
if [[ ${1:-} == --large ]]; then
  large=1
  shift
  [[ $# -ge 1 ]] || { echo "usage: $0 --large OUTDIR [FUNCTIONS]" >&2; exit 2; }
fi
out=$(mkdir -p "${1:-$root/test/fixtures/real}" && cd "${1:-$root/test/fixtures/real}" && pwd)
functions=${2:-220}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# cc1 itself, not the gcc driver: the driver forks cc1 and as, and every process would truncate the log.
cc1=$(gcc -print-prog-name=cc1)
# The real interpreter binaries: a pyenv shim is a shell script that forks and execs, and would lose the log.
python=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
perl=$(command -v perl)
perl=$(readlink -f "$perl")

# record NAME PROGRAM ARGS...: records one trace and puts its number of calls in its header.
record() {
  local name=$1
  shift
  "${mallocscope[@]}" record --via mtrace --preamble -o "$out/$name.trace" -- "$@" >"$work/$name.stdout"
  local calls
  calls=$(grep -cv '^#' "$out/$name.trace" || true)
  sed -i "s|^# exit: .*|&\n# calls: $calls|" "$out/$name.trace"
  printf '%-12s %9d calls %10d bytes\n' "$name.trace" "$calls" "$(stat -c %s "$out/$name.trace")"
}

# A C file of N small functions with structs, loops and calls: work for every pass of cc1 -O2.
generate_c() {
  local n=$1 i
  echo '#include <stdio.h>'
  echo '#include <string.h>'
  for ((i = 1; i <= n; i++)); do
    echo "struct s$i { int a; double b; char name[16]; };"
    echo "static double f$i(struct s$i *p, int n) { double t = 0; for (int i = 0; i < n; i++) { t += p[i].a * p[i].b + strlen(p[i].name); if (t > $i.5) t /= 2; } return t; }"
  done
  # Callers of ten functions each: one huge main would make some -O2 passes quadratic.
  for ((i = 1; i <= n; i++)); do
    ((i % 10 == 1)) && echo "static double group$((i / 10))(void) { double t = 0;"
    echo "  { struct s$i v[2] = {{$i, 1.5, \"x\"}, {2, 2.5, \"yy\"}}; t += f$i(v, 2); }"
    ((i % 10 == 0 || i == n)) && echo '  return t; }'
  done
  echo 'int main(void) { double t = 0;'
  for ((g = 0; g <= n / 10; g++)); do
    ((g * 10 + 1 <= n)) && echo "  t += group$g();"
  done
  echo '  printf("%f\n", t); return 0; }'
}

if ((large)); then
  generate_c "$functions" >"$work/large.c"
  gcc -E -P "$work/large.c" -o "$work/cc1-large.i"
  (cd "$work" && record cc1-large "$cc1" -fpreprocessed -quiet -O2 cc1-large.i -o cc1-large.s)
  exit 0
fi

# 1. cc1 compiling a small C file, preprocessed first so that cc1 needs no include paths.
cat >"$work/points.c" <<'EOF'
#include <stdio.h>
struct point { int x, y; };
static int dist2(struct point a, struct point b) { int dx = a.x - b.x, dy = a.y - b.y; return dx * dx + dy * dy; }
int main(void) { struct point p = {1, 2}, q = {4, 6}; printf("%d\n", dist2(p, q)); return 0; }
EOF
gcc -E -P "$work/points.c" -o "$work/points.i"
(cd "$work" && record cc1-points "$cc1" -fpreprocessed -quiet -O2 points.i -o points.s)

# 2. A short Python script: dicts, JSON, a sort and strings of many sizes (objects above 512 bytes reach
#    malloc; smaller ones stay in pymalloc's arenas, which the log does not show). Hash seeds fixed so that a re-recording makes the same calls.
PYTHONHASHSEED=0 record python-json "$python" -I -S -c '
import json
rows = [{"id": i, "name": "row%d" % i, "tags": ["t%d" % (i % 7)] * (i % 40)} for i in range(300)]
text = json.dumps(rows)
back = json.loads(text)
words = sorted(set(text.split(",")))
blobs = [("%d," % i) * (i % 300) for i in range(6000)]
del blobs[::2]
print(len(text), len(back), len(words), sum(map(len, blobs)))'

# 3. A Perl one-liner: a hash of strings of many sizes, then its keys sorted.
PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 record perl-hash "$perl" -e \
  'my %h; $h{$_} = "x" x ($_ % 50) for 1..2000; my @k = sort keys %h; print scalar(@k), "\n"'
