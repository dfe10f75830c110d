// The tune benchmark: `mallocscope tune` on a million-event trace, with one worker thread and with one per
// core, timed from outside (a fresh process each, start-up included) and from inside (the search alone, as
// tune's JSON reports it); printed: the time per candidate and the speed-up of N workers over 1. The rounds
// alternate which goes first and the table gives medians, so that the load of a shared machine falls on both.
//
//   npm run bench:tune                     (node --import tsx bench/tune.ts)
//   node --import tsx bench/tune.ts [--trace FILE] [--workers N] [--rounds R]
//
// Without --trace the trace is generated once (src/trace/generate.ts, shape threshold-and-small-many, seed 1,
// a million calls) into bench/.cache/ (gitignored) and reused. Both runs must give the same answer; no figure
// is asserted, and the exit status says only whether the benchmark ran.
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { SHAPES, generateTrace } from '../src/trace/generate.ts';
import { TraceWriter } from '../src/trace/writer.ts';
import { ensureDist, fail, root, run, say } from './support.ts';

const cacheDir = join(root, 'bench', '.cache');
const SHAPE = 'threshold-and-small-many';
const EVENTS = 1_000_000;

let tracePath = join(cacheDir, `tune-${SHAPE}-1m.trace`);
let traceIsDefault = true;
let workers = availableParallelism();
let rounds = 3;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--trace' && argv[i + 1]) {
    tracePath = argv[++i];
    traceIsDefault = false;
  } else if (a === '--workers' && /^[1-9][0-9]*$/.test(argv[i + 1] ?? '')) workers = Number(argv[++i]);
  else if (a === '--rounds' && /^[1-9][0-9]*$/.test(argv[i + 1] ?? '')) rounds = Number(argv[++i]);
  else {
    process.stderr.write('usage: node --import tsx bench/tune.ts [--trace FILE] [--workers N] [--rounds R]\n');
    process.exit(2);
  }
}

/** Generates the default trace into the cache the first time (a few seconds), through a temporary file. */
function ensureTrace(): void {
  if (existsSync(tracePath)) return;
  if (!traceIsDefault) fail(`${tracePath}: no such trace`);
  mkdirSync(cacheDir, { recursive: true });
  const shape = SHAPES.find((s) => s.name === SHAPE);
  if (!shape) fail(`no shape ${SHAPE}`);
  say(`no cached trace: generating ${EVENTS} calls of shape ${SHAPE} into ${tracePath}`);
  const partial = `${tracePath}.partial`;
  const writer = new TraceWriter({ path: partial });
  for (const call of generateTrace(shape, 1, EVENTS)) writer.write(call);
  writer.close();
  renameSync(partial, tracePath);
}

interface TuneRun {
  wall: number;
  doc: {
    candidates: number;
    baseline: { events: number; peakFootprint: number };
    best: { peakFootprint: number; tunables: string };
    timing: { seconds: number; candidateSeconds: number };
  };
}

/** One `mallocscope tune` in a fresh process, without the oracle's verification (what is timed is the search). */
function tune(count: number): TuneRun {
  const started = performance.now();
  const result = run(process.execPath, [join(root, 'bin', 'mallocscope.js'), 'tune', tracePath, '--json', '--no-verify', '--workers', String(count)]);
  const wall = (performance.now() - started) / 1000;
  return { wall, doc: JSON.parse(result.stdout) };
}

ensureDist();
ensureTrace();
say(`${cpus().length} CPUs (${availableParallelism()} available to Node), load ${loadavg()[0].toFixed(2)}; trace ${tracePath}`);
const ones: TuneRun[] = [];
const manys: TuneRun[] = [];
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? [1, workers] : [workers, 1];
  for (const count of order) {
    say(`round ${r + 1} of ${rounds}: tune with ${count} worker${count === 1 ? '' : 's'} …`);
    (count === 1 ? ones : manys).push(tune(count));
  }
}

const strip = ({ timing: _timing, ...rest }: TuneRun['doc']) => JSON.stringify(rest);
if (![...ones, ...manys].every((run) => strip(run.doc) === strip(ones[0].doc))) fail('the runs with 1 and with N workers gave different answers');

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const n = ones[0].doc.candidates;
const events = ones[0].doc.baseline.events;
const figures = (runs: TuneRun[]) => ({
  wall: median(runs.map((r) => r.wall)),
  search: median(runs.map((r) => r.doc.timing.seconds)),
  candidate: median(runs.map((r) => r.doc.timing.candidateSeconds)),
});
const one = figures(ones);
const many = figures(manys);
const row = (label: string, f: ReturnType<typeof figures>) =>
  `${label.padEnd(12)} ${f.wall.toFixed(1).padStart(7)} s  ${f.search.toFixed(1).padStart(7)} s  ${((f.search / n) * 1000).toFixed(0).padStart(6)} ms  ${(f.candidate * 1000).toFixed(0).padStart(6)} ms  ${(events / f.candidate / 1e6).toFixed(2).padStart(5)} M/s`;
process.stdout.write(`tune on ${events} events, ${n} candidates; medians of ${rounds} rounds\n`);
process.stdout.write(
  `${''.padEnd(12)} ${'process'.padStart(9)}  ${'search'.padStart(9)}  ${'wall/cand'.padStart(9)}  ${'one cand'.padStart(9)}  ${'events'.padStart(7)}\n`,
);
process.stdout.write(`${row('1 worker', one)}\n`);
process.stdout.write(`${row(`${workers} workers`, many)}\n`);
process.stdout.write(
  `speed-up of ${workers} workers over 1: ${(one.search / many.search).toFixed(2)}x (search), ${(one.wall / many.wall).toFixed(2)}x (process)\n`,
);
const best = ones[0].doc.best;
const change = ((best.peakFootprint - ones[0].doc.baseline.peakFootprint) / ones[0].doc.baseline.peakFootprint) * 100;
process.stdout.write(
  `recommended: ${best.tunables ? `GLIBC_TUNABLES=${best.tunables}` : "glibc's defaults"} (peak footprint ${best.peakFootprint}, ${change.toFixed(1)}%)\n`,
);
