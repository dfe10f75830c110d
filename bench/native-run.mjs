// One suite of bench/native.ts in this process: malloc+free pairs of one size, by one of three routes.
// bench/native.ts starts one process per suite and size, so that no suite warms or pollutes another's JIT,
// heap or glibc arena. It runs the compiled library (dist/, what users import), so no TypeScript loader sits
// in the process. Prints one JSON line on stdout.
//
//   node bench/native-run.mjs SIZE backend|metadata|metadata-held|glibc-once|glibc-loop [MAX_TIME_S]
//
// backend     Allocator.malloc(SIZE) + Allocator.free(p) on `new Allocator({ system: new NativeSystem() })`:
//             the public API as a user calls it, from JavaScript. benchmark.js; each sample is a JavaScript
//             loop of BATCH pairs, so benchmark.js's own per-call cost is spread over BATCH pairs.
// metadata    as backend, with { metadata: true }: glibc's live metadata words written into the real heap
//             after every call (O(chunks) per call: here a tcache struct, one chunk and the top).
// metadata-held  as metadata, with HELD blocks of 64 B held live before the loop (HELD more chunks per call).
// glibc-once  the addon's glibcMallocFreeOnce(SIZE): one N-API call per pair (argument check, glibc malloc,
//             free, return). The same benchmark.js set-up and JavaScript loop as `backend`.
// glibc-loop  the addon's glibcMallocFree(SIZE, COUNT): COUNT pairs in one N-API call, timed in C++ with
//             CLOCK_MONOTONIC around the loop only; glibc's malloc+free pair itself. Not benchmark.js (the
//             figure times itself); SAMPLES calls, and their median.
import Benchmark from 'benchmark';
import { Allocator } from '../dist/replay/allocator.js';
import { loadAddon } from '../dist/native.js';
import { NativeSystem } from '../dist/system/native.js';

const [sizeArg, suite, maxTimeArg = '1'] = process.argv.slice(2);
const size = Number(sizeArg);
const maxTime = Number(maxTimeArg);
if (!Number.isSafeInteger(size) || size <= 0 || !['backend', 'metadata', 'metadata-held', 'glibc-once', 'glibc-loop'].includes(suite) || !(maxTime > 0)) {
  process.stderr.write('usage: node bench/native-run.mjs SIZE backend|metadata|metadata-held|glibc-once|glibc-loop [MAX_TIME_S]\n');
  process.exit(2);
}

/** Pairs per benchmark.js call: enough that its per-call overhead (a few ns) is negligible per pair. */
const BATCH = 100;
/** glibc-loop: pairs per N-API call, and calls. */
const COUNT = 100_000;
const SAMPLES = 31;
/** metadata-held: live blocks held while the pairs run. */
const HELD = 1000;

const addon = loadAddon();

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function runBenchmark(name, fn) {
  const bench = new Benchmark(name, fn, { minSamples: 20, maxTime });
  bench.on('error', (event) => {
    process.stderr.write(`benchmark.js: ${event.target.error?.stack ?? event.target.error}\n`);
    process.exit(1);
  });
  bench.run();
  if (bench.error) {
    process.stderr.write(`benchmark.js: ${bench.error.stack ?? bench.error}\n`);
    process.exit(1);
  }
  const perPair = (seconds) => (seconds * 1e9) / BATCH;
  return {
    median_ns: perPair(median(bench.stats.sample)),
    mean_ns: perPair(bench.stats.mean),
    rme_percent: bench.stats.rme,
    samples: bench.stats.sample.length,
    calls_per_sample: bench.count,
  };
}

let result;
// Folded into the output so that no work can be optimised away.
let check = 0;

if (suite === 'backend' || suite === 'metadata' || suite === 'metadata-held') {
  const allocator = new Allocator({ system: new NativeSystem(), metadata: suite !== 'backend' });
  if (suite === 'metadata-held') for (let i = 0; i < HELD; i++) allocator.malloc(64);
  // The same loop as glibc-once's: one pair per iteration and nothing else (malloc and free change the
  // allocator's state, so nothing can be optimised away); a modulo of the 47-bit pointer here would cost an
  // fmod per pair that the other side does not pay.
  const batch = () => {
    for (let i = 0; i < BATCH; i++) allocator.free(allocator.malloc(size));
    check++;
  };
  // What the steady state does (after the first pairs have slid glibc's threshold, as in the real glibc):
  // the path of malloc and the system calls of either call, so the table can show that both sides do the same.
  for (let i = 0; i < 10; i++) batch();
  const p = allocator.malloc(size);
  const steady = { where: allocator.block(p).where, path: allocator.lastCall.path, syscalls: allocator.lastCall.syscalls.length };
  allocator.free(p);
  steady.syscalls += allocator.lastCall.syscalls.length;
  result = { ...runBenchmark(`${suite} ${size}`, batch), steady, mmap_threshold: allocator.mmapThreshold };
  allocator.check();
} else if (suite === 'glibc-once') {
  const once = addon.glibcMallocFreeOnce;
  if (typeof once !== 'function') {
    process.stderr.write('the addon has no glibcMallocFreeOnce: rebuild it with `npx cmake-js compile`\n');
    process.exit(1);
  }
  const batch = () => {
    for (let i = 0; i < BATCH; i++) addon.glibcMallocFreeOnce(size);
    check++;
  };
  result = runBenchmark(`glibc-once ${size}`, batch);
} else {
  addon.glibcMallocFree(size, COUNT); // warm: the first pairs may slide glibc's threshold
  const perPair = [];
  const began = process.hrtime.bigint();
  for (let i = 0; i < SAMPLES; i++) perPair.push(addon.glibcMallocFree(size, COUNT) / COUNT);
  const wall = Number(process.hrtime.bigint() - began) / (SAMPLES * COUNT);
  result = { median_ns: median(perPair), min_ns: Math.min(...perPair), max_ns: Math.max(...perPair), samples: SAMPLES, pairs_per_sample: COUNT, wall_ns: wall };
  check = perPair.length;
}

process.stdout.write(`${JSON.stringify({ suite, size, ...result, check })}\n`);
