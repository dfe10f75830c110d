// The replay benchmark: the model against the real glibc (the oracle) on a ~1 million call trace of a real
// program (cc1 compiling a generated C file), summary only, start-up excluded on both sides.
//
//   npm run bench                       (node --import tsx bench/replay.ts)
//   node --import tsx bench/replay.ts [--runs N] [--no-benchmarkjs] [--trace FILE]
//
// The trace is recorded once with scripts/record-real-traces.sh --large into bench/.cache/ (gitignored) and
// reused. Every measurement is a fresh process, and the rounds interleave oracle and model, so that the load
// of a shared machine falls on both alike; the table gives medians and the ratio to the oracle of the same run.
//   - the oracle: mallocscope-oracle --time, which times its own replay (first read to last call);
//   - the model: bench/model-run.mjs, timed inside from the first event read to the last applied, in summary
//     mode (what `mallocscope replay TRACE` does) and with mallinfo2 after every event (--stats);
//   - benchmark.js: the model replayed again and again in one process (bench/model-benchmark.mjs, one
//     process per suite): the warm figure, which the issue names and the targets are judged on; the cold
//     fresh-process ratio (the JIT's warm-up included, as one `mallocscope replay` pays it) is printed beside;
//   - the model with the resident-pages model on (summary + `resident: true`, as `replay --touch`);
//   - peak RSS of the model's replay process, for the trace and for the trace three times over (each copy
//     ends by freeing what cc1 left live, so live blocks stay as they are while the length triples).
// No figure here is asserted: the targets (at most 3x the oracle, aim 2x; --stats at most +20%) are printed
// as met or not, and the exit status says only whether the benchmark ran.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { readTrace } from '../src/trace/reader.ts';
import { ensureDist, fail, root, run, say } from './support.ts';

const cacheDir = join(root, 'bench', '.cache');
const oracleBinary = join(root, 'build', 'Release', 'mallocscope-oracle');
const COPIES = 3;

// ---- arguments ------------------------------------------------------------------------------------------

let runs = 7;
let withBenchmarkJs = true;
let tracePath = join(cacheDir, 'cc1-large.trace');
let traceIsDefault = true;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--runs' && /^[1-9][0-9]*$/.test(argv[i + 1] ?? '')) runs = Number(argv[++i]);
  else if (a === '--no-benchmarkjs') withBenchmarkJs = false;
  else if (a === '--trace' && argv[i + 1]) {
    tracePath = argv[++i];
    traceIsDefault = false;
  } else {
    process.stderr.write('usage: node --import tsx bench/replay.ts [--runs N] [--no-benchmarkjs] [--trace FILE]\n');
    process.exit(2);
  }
}

// ---- prerequisites --------------------------------------------------------------------------------------

function ensureOracle(): void {
  if (!existsSync(oracleBinary)) fail('build/Release/mallocscope-oracle is missing: run `npm install` (or `npx cmake-js compile`) first');
  const probe = spawnSync(oracleBinary, ['--time', '-'], { input: '', encoding: 'utf8' });
  if (!/"replay_ns":\d+/.test(probe.stderr ?? '')) fail('the oracle does not know --time: rebuild it with `npx cmake-js compile`');
}

/** Records the cc1 trace into the cache the first time (a few minutes), through a temporary folder. */
function ensureTrace(): void {
  if (existsSync(tracePath)) return;
  if (!traceIsDefault) fail(`${tracePath}: no such trace`);
  mkdirSync(cacheDir, { recursive: true });
  const partial = join(cacheDir, 'recording');
  rmSync(partial, { recursive: true, force: true });
  say(`no cached trace: recording cc1 -O2 on a generated C file under mtrace into ${relative(root, tracePath)}`);
  say('(scripts/record-real-traces.sh --large; cc1 runs slowly under mtrace: about 3 minutes, once)');
  run('bash', [join(root, 'scripts', 'record-real-traces.sh'), '--large', partial], { stdout: 'inherit' });
  renameSync(join(partial, 'cc1-large.trace'), tracePath);
  rmSync(partial, { recursive: true, force: true });
}

/**
 * The trace COPIES times over. cc1 exits without freeing everything, so each copy ends with a `free` of
 * every ID still live; the next copy then starts from the same IDs, and the number of live blocks never
 * exceeds that of one copy while the trace grows COPIES-fold.
 */
function ensureRepeatedTrace(): string {
  const repeated = `${tracePath.replace(/\.trace$/, '')}-x${COPIES}.trace`;
  if (existsSync(repeated) && statSync(repeated).mtimeMs >= statSync(tracePath).mtimeMs) return repeated;
  say(`writing ${relative(root, repeated)}: the trace ${COPIES} times, each copy freeing what it left live`);
  const live = new Set<string>();
  for (const event of readTrace(tracePath)) {
    switch (event.op) {
      case 'malloc':
      case 'calloc':
      case 'memalign':
        live.add(event.id);
        break;
      case 'realloc':
        if (!event.wasLive) live.add(event.id);
        else if (event.size === 0) live.delete(event.id);
        break;
      case 'free':
        live.delete(event.id);
        break;
    }
  }
  const body = readFileSync(tracePath);
  const frees = `${[...live].map((id) => `free ${id}`).join('\n')}\n`;
  const partial = `${repeated}.partial`;
  const fd = openSync(partial, 'w');
  try {
    for (let copy = 1; copy <= COPIES; copy++) {
      writeSync(fd, `# ---- copy ${copy} of ${COPIES} of ${relative(root, tracePath)}\n`);
      writeSync(fd, body);
      if (body.length > 0 && body[body.length - 1] !== 10) writeSync(fd, '\n');
      writeSync(fd, `# copy ${copy} ends: free the ${live.size} blocks the program left live\n`);
      writeSync(fd, frees);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(partial, repeated);
  return repeated;
}

// ---- measurements ---------------------------------------------------------------------------------------

interface ModelRun {
  mode: string;
  events: number;
  replay_ns: number;
  maxrss_kib: number;
  rss_before_kib: number;
  heap_after_gc_kib: number;
  chunk_records: number;
  id_slots: number;
}

interface BenchmarkJsRun {
  mode: string;
  mean_ns: number;
  median_ns: number;
  rme_percent: number;
  samples: number;
}

function oracleRun(trace: string): number {
  const result = run(oracleBinary, ['--time', '--', trace], { stdout: 'ignore' });
  const match = /\{"replay_ns":(\d+)\}/.exec(result.stderr);
  if (!match) fail(`the oracle printed no replay time:\n${result.stderr}`);
  return Number(match[1]);
}

function modelRun(trace: string, mode: 'summary' | 'stats' | 'jsonl-stats' | 'resident'): ModelRun {
  const result = run(process.execPath, ['--expose-gc', join(root, 'bench', 'model-run.mjs'), trace, mode]);
  return JSON.parse(result.stdout) as ModelRun;
}

function benchmarkJsRun(trace: string, mode: 'summary' | 'stats'): BenchmarkJsRun {
  const result = run(process.execPath, [join(root, 'bench', 'model-benchmark.mjs'), trace, mode]);
  return JSON.parse(result.stdout) as BenchmarkJsRun;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const ms = (ns: number) => `${(ns / 1e6).toFixed(1)} ms`;
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
const pad = (text: string, width: number) => text.padEnd(width);
const lpad = (text: string, width: number) => text.padStart(width);

// ---- main -----------------------------------------------------------------------------------------------

ensureOracle();
ensureDist();
ensureTrace();
const repeatedTrace = ensureRepeatedTrace();

const loadBefore = loadavg();
say(`${runs} rounds of oracle, model summary, model --stats, model jsonl+stats, model with resident pages (fresh processes, interleaved)`);
const oracleNs: number[] = [];
const summaryRuns: ModelRun[] = [];
const statsRuns: ModelRun[] = [];
const jsonlRuns: ModelRun[] = [];
const residentRuns: ModelRun[] = [];
for (let round = 0; round < runs; round++) {
  oracleNs.push(oracleRun(tracePath));
  summaryRuns.push(modelRun(tracePath, 'summary'));
  statsRuns.push(modelRun(tracePath, 'stats'));
  jsonlRuns.push(modelRun(tracePath, 'jsonl-stats'));
  residentRuns.push(modelRun(tracePath, 'resident'));
}
const memoryRounds = Math.min(runs, 3);
say(`${memoryRounds} rounds of oracle and model summary on the trace ${COPIES} times over`);
const repeatedOracleNs: number[] = [];
const repeatedRuns: ModelRun[] = [];
for (let round = 0; round < memoryRounds; round++) {
  repeatedOracleNs.push(oracleRun(repeatedTrace));
  repeatedRuns.push(modelRun(repeatedTrace, 'summary'));
}
let warm: BenchmarkJsRun[] = [];
if (withBenchmarkJs) {
  say('benchmark.js, one process per suite: model summary, model --stats (warm: what the targets are judged on)');
  warm = [benchmarkJsRun(tracePath, 'summary'), benchmarkJsRun(tracePath, 'stats')];
}
const loadAfter = loadavg();

const events = summaryRuns[0].events;
const oracle = median(oracleNs);
const summary = median(summaryRuns.map((r) => r.replay_ns));
const stats = median(statsRuns.map((r) => r.replay_ns));
const spread = (values: number[]) => `${ms(Math.min(...values))} .. ${ms(Math.max(...values))}`;
const ratio = summary / oracle;
const statsOverhead = (stats / summary - 1) * 100;

const lines: string[] = [];
lines.push(`replay benchmark: ${relative(root, tracePath)}, ${events.toLocaleString('en-US')} events; ${cpus().length} CPUs, Node ${process.version}`);
lines.push(
  `load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before, ${loadAfter.map((l) => l.toFixed(2)).join(' ')} after (a shared machine: compare ratios, not times)`,
);
lines.push('');
lines.push(`${pad('replay (start-up excluded), fresh processes', 46)}${lpad('median', 11)}   ${pad('min .. max', 22)}${lpad('vs oracle', 10)}`);
const row = (name: string, values: number[], extra = '') =>
  lines.push(`${pad(name, 46)}${lpad(ms(median(values)), 11)}   ${pad(spread(values), 22)}${lpad(`${(median(values) / oracle).toFixed(2)}x`, 10)}${extra}`);
row(`oracle: real glibc, --time (${runs} runs)`, oracleNs);
row(
  `model: summary (${runs} runs)`,
  summaryRuns.map((r) => r.replay_ns),
);
row(
  `model: summary + mallinfo2 per event (--stats)`,
  statsRuns.map((r) => r.replay_ns),
  `   ${statsOverhead >= 0 ? '+' : ''}${statsOverhead.toFixed(1)}% over summary`,
);
row(
  `model: JSON Lines + stats built, not written`,
  jsonlRuns.map((r) => r.replay_ns),
  '   (for information)',
);
const residentOverhead = (median(residentRuns.map((r) => r.replay_ns)) / summary - 1) * 100;
row(
  `model: summary + resident pages (--touch)`,
  residentRuns.map((r) => r.replay_ns),
  `   ${residentOverhead >= 0 ? '+' : ''}${residentOverhead.toFixed(1)}% over summary (docs/resident.md: at most +50%)`,
);
if (warm.length) {
  lines.push('');
  lines.push("benchmark.js, warm (one process per suite, a whole replay per sample): the issue's measure");
  for (const w of warm) {
    lines.push(
      `  model ${pad(w.mode, 10)} median ${ms(w.median_ns)}, mean ${ms(w.mean_ns)} ±${w.rme_percent.toFixed(1)}% (${w.samples} samples)   ${(w.median_ns / oracle).toFixed(2)}x the oracle`,
    );
  }
}
lines.push('');
lines.push('memory of the model replay process (summary mode; medians)');
lines.push(
  `  ${pad('trace', 26)}${lpad('events', 11)}${lpad('peak RSS', 12)}${lpad('RSS before', 12)}${lpad('heap after GC', 15)}${lpad('chunk recs', 12)}${lpad('ID slots', 10)}${lpad('model', 11)}${lpad('oracle', 11)}`,
);
const memRow = (name: string, list: ModelRun[], oracleList: number[]) =>
  lines.push(
    `  ${pad(name, 26)}${lpad(list[0].events.toLocaleString('en-US'), 11)}${lpad(mib(median(list.map((r) => r.maxrss_kib))), 12)}` +
      `${lpad(mib(median(list.map((r) => r.rss_before_kib))), 12)}${lpad(mib(median(list.map((r) => r.heap_after_gc_kib))), 15)}` +
      `${lpad(String(list[0].chunk_records), 12)}${lpad(String(list[0].id_slots), 10)}${lpad(ms(median(list.map((r) => r.replay_ns))), 11)}${lpad(ms(median(oracleList)), 11)}`,
  );
memRow('the trace', summaryRuns, oracleNs);
memRow(`${COPIES} copies, live bounded`, repeatedRuns, repeatedOracleNs);
lines.push("  (peak RSS counts Node itself and the collector's slack; heap after GC is what the replay still holds)");
lines.push('');
// The issue measures with benchmark.js: its warm medians decide the targets when they were taken; the cold,
// fresh-process ratio (which includes the JIT's warm-up, as one `mallocscope replay` does) is shown beside.
const judged =
  warm.length === 2
    ? { ratio: warm[0].median_ns / oracle, stats: (warm[1].median_ns / warm[0].median_ns - 1) * 100, how: 'benchmark.js' }
    : { ratio, stats: statsOverhead, how: 'fresh processes' };
const verdict = (value: number, limit: number, met: string, missed: string) => (value <= limit ? met : missed);
lines.push(
  `targets (${judged.how}): model/oracle ${judged.ratio.toFixed(2)}x (at most 3x: ${verdict(judged.ratio, 3, 'met', 'NOT met')}; aim 2x: ${verdict(judged.ratio, 2, 'met', 'not yet')}); ` +
    `--stats ${judged.stats >= 0 ? '+' : ''}${judged.stats.toFixed(1)}% (at most +20%: ${verdict(judged.stats, 20, 'met', 'NOT met')})`,
);
if (warm.length === 2)
  lines.push(
    `cold, one fresh process per replay (JIT warm-up included): ${ratio.toFixed(2)}x the oracle, --stats ${statsOverhead >= 0 ? '+' : ''}${statsOverhead.toFixed(1)}%`,
  );
process.stdout.write(`${lines.join('\n')}\n`);

mkdirSync(cacheDir, { recursive: true });
writeFileSync(
  join(cacheDir, 'last-result.json'),
  `${JSON.stringify({ date: new Date().toISOString(), trace: relative(root, tracePath), events, runs, loadBefore, loadAfter, oracleNs, summaryRuns, statsRuns, jsonlRuns, residentRuns, repeatedOracleNs, repeatedRuns, warm }, null, 1)}\n`,
);
say(`raw figures in ${relative(root, join(cacheDir, 'last-result.json'))}`);
