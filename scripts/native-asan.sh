#!/bin/sh
# Builds the addon with AddressSanitizer (and UBSan) into build-asan/ and runs the addon's own tests
# (test/native-*.test.ts) against that build, with libasan preloaded into Node (Node itself is not
# instrumented). Any ASan report fails the run; leaks are reported when they come from the addon's code.
# ASan makes mlock/mlockall no-ops, so the locking tests skip themselves here (MALLOCSCOPE_ASAN=1).
# Usage: scripts/native-asan.sh [test-file-pattern]
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
# cmake-js sets CMAKE_CXX_FLAGS itself and splits --CD values at spaces, so the sanitizer flags go in through
# a compiler wrapper (the addon is the only C++ target; the oracle is C and stays as it is).
rm -rf build-asan
mkdir -p build-asan
printf '#!/bin/sh\nexec g++ -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined "$@"\n' >build-asan/cxx
chmod +x build-asan/cxx
npx cmake-js compile --out build-asan --CDCMAKE_CXX_COMPILER="$root/build-asan/cxx" >/dev/null
nm -D build-asan/Release/mallocscope.node | grep -q __asan_report || { echo "the addon in build-asan is not instrumented"; exit 1; }
libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
pattern=${1:-native-}
log=$(mktemp -d)/asan
status=0
for test in test/*.test.ts; do
  case "$test" in *"$pattern"*) ;; *) continue ;; esac
  # handle_segv=0, handle_sigbus=0: the tests that expect a child to die of SIGSEGV or SIGBUS must see the
  # signal, not ASan's report.
  # Node's own allocations at exit are not ours: leaks are checked below for frames in the addon only.
  if ! MALLOCSCOPE_ASAN=1 MALLOCSCOPE_BUILD_DIR="$root/build-asan/Release" LD_PRELOAD="$libasan $libubsan" \
      ASAN_OPTIONS="handle_segv=0:handle_sigbus=0:detect_leaks=1:log_path=$log:exitcode=0" \
      UBSAN_OPTIONS="print_stacktrace=1:log_path=$log" \
      node --import tsx "$test" >"$log.out" 2>&1; then
    echo "FAIL $test"; cat "$log.out"; status=1
  else
    echo "ok   $test: $(grep -E 'Passed:' "$log.out" | tr -s ' ')"
  fi
done
# Every report ASan/UBSan wrote: errors always count; leaks only where a frame is in native/addon.
reports=$(ls "$log".* 2>/dev/null | grep -v '\.out$' || true)
for report in $reports; do
  if grep -q 'ERROR: AddressSanitizer\|runtime error' "$report" && ! grep -q 'ERROR: LeakSanitizer' "$report"; then
    echo "ASan/UBSan error in $report:"; cat "$report"; status=1
  elif grep -q 'native/addon' "$report"; then
    echo "leak in the addon ($report):"; awk '/Direct leak|Indirect leak/{p=0} /native\/addon/{p=1} p' "$report" | head -40; status=1
  fi
done
echo "reports: $(echo "$reports" | grep -c . || true) file(s) in $(dirname "$log")"
[ "$status" -eq 0 ] && echo "AddressSanitizer: clean"
exit "$status"
