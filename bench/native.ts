// The native backend's benchmark (issue 4): malloc+free pairs of 64 B, 4 KiB, 256 KiB and 1 MiB through
// the public API over real memory, against glibc's own malloc+free called through the same addon, in the
// same run.
//
//   node --import tsx bench/native.ts [--runs N] [--max-time SECONDS] [--sizes 64,4096,...]
//
// Three suites per size, each in its own fresh process (bench/native-run.mjs, which imports the compiled
// library from dist/, so no TypeScript loader is in the measured process), interleaved round by round so
// that the load of a shared machine falls on all alike; the table gives the median over rounds of each
// process's median, in nanoseconds per malloc+free pair:
//   backend     new Allocator({ system: new NativeSystem() }), then allocator.malloc(size) +
//               allocator.free(p) from JavaScript: argument checks, the model of glibc (tcache, bins, top,
//               the sliding threshold), the pointer table, the record of the call (lastCall), and any system
//               call through the addon (none in the steady state of these four sizes: the table shows it).
//               benchmark.js, a JavaScript loop of 100 pairs per test call.
//   glibc once  the addon's glibcMallocFreeOnce(size) from JavaScript: one N-API call per pair (argument
//               check, glibc malloc + free, return). The same benchmark.js set-up as `backend`.
//   glibc loop  the addon's glibcMallocFree(size, 100000): the pairs looped in C++ and timed there, no
//               N-API crossing per pair; glibc's malloc+free itself. 31 calls, their median.
//   metadata    backend with { metadata: true } (glibc's live metadata words written into the real heap after
//               every call); metadata-held the same with 1000 blocks of 64 B held live (1000 more chunks a call).
// Ratios: backend / glibc once (what a JavaScript caller could at best pay for real malloc: the aim of
// at most 1.5x for 64 B is read against this) and backend / glibc loop (against C calling malloc).
// No figure is asserted; the exit status says only whether the benchmark ran.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { ensureDist, fail, root, run, say } from './support.ts';

const cacheDir = join(root, 'bench', '.cache');
const addonPath = join(root, 'build', 'Release', 'mallocscope.node');
const SUITES = ['backend', 'metadata', 'metadata-held', 'glibc-once', 'glibc-loop'] as const;
type Suite = (typeof SUITES)[number];
const AIM_64 = 1.5;

// ---- arguments ------------------------------------------------------------------------------------------

let runs = 3;
// Four seconds of sampling per suite: with one, the backend's figure swung by half from run to run while V8
// settled on how to compile it; with four, runs agree within a few percent.
let maxTime = 4;
let sizes = [64, 4096, 256 * 1024, 1024 * 1024];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--runs' && /^[1-9][0-9]*$/.test(argv[i + 1] ?? '')) runs = Number(argv[++i]);
  else if (a === '--max-time' && Number(argv[i + 1]) > 0) maxTime = Number(argv[++i]);
  else if (a === '--sizes' && /^[1-9][0-9]*(,[1-9][0-9]*)*$/.test(argv[i + 1] ?? '')) sizes = argv[++i].split(',').map(Number);
  else {
    process.stderr.write('usage: node --import tsx bench/native.ts [--runs N] [--max-time SECONDS] [--sizes 64,4096,...]\n');
    process.exit(2);
  }
}

// ---- prerequisites --------------------------------------------------------------------------------------

/** The addon must be built, and new enough to have glibcMallocFreeOnce. */
function ensureAddon(): void {
  if (!existsSync(addonPath)) fail('build/Release/mallocscope.node is missing: run `npm install` (or `npx cmake-js compile`) first');
  const probe = run(process.execPath, ['-e', `process.stdout.write(typeof require(${JSON.stringify(addonPath)}).glibcMallocFreeOnce)`]);
  if (probe.stdout !== 'function') fail('the addon has no glibcMallocFreeOnce: rebuild it with `npx cmake-js compile`');
}

// ---- measurements ---------------------------------------------------------------------------------------

interface SuiteRun {
  suite: Suite;
  size: number;
  median_ns: number;
  rme_percent?: number;
  samples: number;
  steady?: { where: string; path: string; syscalls: number };
}

function suiteRun(size: number, suite: Suite): SuiteRun {
  const result = run(process.execPath, [join(root, 'bench', 'native-run.mjs'), String(size), suite, String(maxTime)]);
  return JSON.parse(result.stdout) as SuiteRun;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const pad = (text: string, width: number) => text.padEnd(width);
const lpad = (text: string, width: number) => text.padStart(width);
const ns = (value: number) => (value >= 100 ? value.toFixed(0) : value.toFixed(1));
const sizeName = (size: number) => (size % (1024 * 1024) === 0 ? `${size / (1024 * 1024)} MiB` : size % 1024 === 0 ? `${size / 1024} KiB` : `${size} B`);

// ---- main -----------------------------------------------------------------------------------------------

ensureAddon();
ensureDist();

const loadBefore = loadavg();
say(`${runs} rounds x ${sizes.length} sizes x ${SUITES.length} suites, one fresh process each (benchmark.js maxTime ${maxTime} s)`);
const results = new Map<string, SuiteRun[]>();
for (let round = 0; round < runs; round++) {
  for (const size of sizes) {
    for (const suite of SUITES) {
      const key = `${size} ${suite}`;
      if (!results.has(key)) results.set(key, []);
      results.get(key)!.push(suiteRun(size, suite));
    }
  }
  say(`round ${round + 1} of ${runs} done`);
}
const loadAfter = loadavg();

const lines: string[] = [];
lines.push(
  `native backend benchmark: malloc+free pairs, ns per pair (median of ${runs} fresh processes per suite); ${cpus().length} CPUs, Node ${process.version}`,
);
lines.push(
  `load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before, ${loadAfter.map((l) => l.toFixed(2)).join(' ')} after (a shared machine: compare ratios, not times)`,
);
lines.push('');
lines.push(
  `${pad('size', 9)}${lpad('backend', 10)}${lpad('glibc once', 12)}${lpad('glibc loop', 12)}${lpad('vs once', 10)}${lpad('vs loop', 10)}   backend steady state (rme of its runs)`,
);
const summary: Record<string, unknown>[] = [];
const metadataLines = ['', `${pad('size', 9)}${lpad('metadata', 10)}${lpad('vs backend', 12)}${lpad('1000 held', 16)}${lpad('vs backend', 12)}`];
let ratio64: number | undefined;
for (const size of sizes) {
  const of = (suite: Suite) => results.get(`${size} ${suite}`)!;
  const backend = median(of('backend').map((r) => r.median_ns));
  const once = median(of('glibc-once').map((r) => r.median_ns));
  const loop = median(of('glibc-loop').map((r) => r.median_ns));
  const metadata = median(of('metadata').map((r) => r.median_ns));
  const held = median(of('metadata-held').map((r) => r.median_ns));
  const steady = of('backend')[0].steady;
  const rme = of('backend').map((r) => r.rme_percent ?? 0);
  if (size === 64) ratio64 = backend / once;
  lines.push(
    `${pad(sizeName(size), 9)}${lpad(ns(backend), 10)}${lpad(ns(once), 12)}${lpad(ns(loop), 12)}${lpad(`${(backend / once).toFixed(2)}x`, 10)}${lpad(`${(backend / loop).toFixed(1)}x`, 10)}` +
      `   ${steady ? `${steady.where}, ${steady.path}, ${steady.syscalls} syscalls` : '?'} (±${Math.min(...rme).toFixed(1)}..${Math.max(...rme).toFixed(1)}%)`,
  );
  metadataLines.push(
    `${pad(sizeName(size), 9)}${lpad(ns(metadata), 10)}${lpad(`${(metadata / backend).toFixed(2)}x`, 12)}${lpad(ns(held), 16)}${lpad(`${(held / backend).toFixed(1)}x`, 12)}`,
  );
  summary.push({
    size,
    backend_ns: backend,
    metadata_ns: metadata,
    metadata_held_ns: held,
    glibc_once_ns: once,
    glibc_loop_ns: loop,
    vs_once: backend / once,
    vs_loop: backend / loop,
    metadata_vs_backend: metadata / backend,
    metadata_held_vs_backend: held / backend,
    steady,
  });
}
lines.push(...metadataLines);
lines.push('');
lines.push('backend     Allocator.malloc + Allocator.free from JavaScript (public API, native backend), benchmark.js');
lines.push('metadata    backend with { metadata: true }: the live metadata words written into the real heap after every call');
lines.push('1000 held   metadata with 1000 blocks of 64 B live while the pairs run (the rewrite is O(chunks) per call)');
lines.push('glibc once  glibcMallocFreeOnce(size): one N-API call per pair, from the same JavaScript loop, benchmark.js');
lines.push('glibc loop  glibcMallocFree(size, 100000): the pairs looped and timed in C++ (no N-API crossing per pair)');
if (ratio64 !== undefined) {
  lines.push('');
  lines.push(`aim: 64 B backend at most ${AIM_64}x glibc called per pair from JavaScript: ${ratio64.toFixed(2)}x (${ratio64 <= AIM_64 ? 'met' : 'not met'})`);
}
process.stdout.write(`${lines.join('\n')}\n`);

mkdirSync(cacheDir, { recursive: true });
writeFileSync(
  join(cacheDir, 'native-last-result.json'),
  `${JSON.stringify({ date: new Date().toISOString(), runs, maxTime, loadBefore, loadAfter, summary, raw: Object.fromEntries(results) }, null, 1)}\n`,
);
say(`raw figures in ${relative(root, join(cacheDir, 'native-last-result.json'))}`);
