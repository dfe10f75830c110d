// Measures how far the resident-pages model (docs/resident.md) is from the real glibc's resident memory: each
// trace runs through the oracle with --touch --rss and through the model with resident: true, and the two are
// compared event by event as differences from their first event (the oracle's rss includes the process's own
// stack and static data, which those differences cancel).
//   node --import tsx scripts/resident-gap.ts [--events 2000] [--seed 1] [--shape NAME|all|threads] [--fixtures]
// Without --shape: every one-thread family's plain shape; --fixtures adds the real programs and the examples.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runOracleSync, type OracleEvent } from '../src/oracle/oracle.ts';
import { Replayer } from '../src/replay/replayer.ts';
import { SHAPES, THREAD_SHAPES, generateTrace } from '../src/trace/generate.ts';
import { readTrace, traceHasThreads } from '../src/trace/reader.ts';
import { formatCall } from '../src/trace/writer.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '2000' },
    seed: { type: 'string', default: '1' },
    shape: { type: 'string' },
    fixtures: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('usage: node --import tsx scripts/resident-gap.ts [--events N] [--seed N] [--shape NAME|all|threads] [--fixtures]');
  process.exit(0);
}
const events = Number(values.events);
const seed = Number(values.seed);
if (!Number.isSafeInteger(events) || events < 1 || !Number.isSafeInteger(seed)) {
  console.error('--events and --seed take whole numbers');
  process.exit(2);
}

// The plain shape of each family (no suffix) unless asked otherwise: the variations repeat the same calls.
const plain = SHAPES.filter((s) => !SHAPES.some((t) => t !== s && s.name.startsWith(`${t.name}-`)));
const shapes =
  values.shape === 'all'
    ? SHAPES
    : values.shape === 'threads'
      ? THREAD_SHAPES
      : values.shape
        ? [...SHAPES, ...THREAD_SHAPES].filter((s) => s.name === values.shape)
        : plain;
if (values.shape && shapes.length === 0) {
  console.error(`unknown shape '${values.shape}'`);
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-resident-'));
const traces: { name: string; path: string }[] = [];
for (const [index, shape] of shapes.entries()) {
  const path = join(dir, `${shape.name}.trace`);
  writeFileSync(path, `${[...generateTrace(shape, seed + index, events)].map((c) => formatCall(c)).join('\n')}\n`);
  traces.push({ name: shape.name, path });
}
if (values.fixtures) {
  for (const folder of ['test/fixtures/real', 'test/fixtures/real-threads', 'examples']) {
    for (const file of readdirSync(folder).sort())
      if (file.endsWith('.trace')) traces.push({ name: `${folder.split('/').pop()}/${file}`, path: join(folder, file) });
  }
}

const kib = (n: number) => (n / 1024).toFixed(0);
console.log(`resident memory, model against the real glibc (oracle --touch --rss): differences from each trace's first event, in KiB`);
console.log(
  `${'trace'.padEnd(34)}${'events'.padStart(7)}${'real peak'.padStart(11)}${'model peak'.padStart(11)}${'real end'.padStart(10)}${'model end'.padStart(10)}${'max |gap|'.padStart(11)}${'mean |gap|'.padStart(12)}${'gap/peak'.padStart(10)}`,
);
let worst = 0;
try {
  for (const trace of traces) {
    const { lines, exit } = runOracleSync(trace.path, { touch: true, rss: true });
    if (exit.status !== 0 && !exit.signal) {
      console.log(`${trace.name.padEnd(34)} the oracle failed: ${exit.stderr.trim()}`);
      continue;
    }
    const real = lines.map((line) => (JSON.parse(line) as OracleEvent).rss ?? 0);
    const replayer = new Replayer({ resident: true, threads: traceHasThreads(trace.path) });
    const model: number[] = [];
    try {
      for (const event of readTrace(trace.path)) {
        if (model.length === real.length) break; // glibc died here: compare what both ran
        replayer.apply(event);
        model.push(replayer.resident?.total ?? 0);
      }
    } catch (error) {
      // The model stops where glibc dies (MODEL_ABORT); compare up to there.
      if ((error as { code?: string }).code !== 'MODEL_ABORT') throw error;
    }
    const n = Math.min(real.length, model.length);
    let realPeak = 0;
    let modelPeak = 0;
    let maxGap = 0;
    let sumGap = 0;
    for (let i = 0; i < n; i++) {
      const r = real[i] - real[0];
      const m = model[i] - model[0];
      realPeak = Math.max(realPeak, r);
      modelPeak = Math.max(modelPeak, m);
      const gap = Math.abs(r - m);
      maxGap = Math.max(maxGap, gap);
      sumGap += gap;
    }
    const ratio = realPeak > 0 ? maxGap / realPeak : 0;
    worst = Math.max(worst, ratio);
    console.log(
      `${trace.name.padEnd(34)}${String(n).padStart(7)}${kib(realPeak).padStart(11)}${kib(modelPeak).padStart(11)}${kib(real[n - 1] - real[0]).padStart(10)}${kib(model[n - 1] - model[0]).padStart(10)}${kib(maxGap).padStart(11)}${(sumGap / n / 1024).toFixed(1).padStart(12)}${`${(ratio * 100).toFixed(1)}%`.padStart(10)}`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`largest max |gap| against the real peak: ${(worst * 100).toFixed(1)}%`);
