// Runs many seeded random traces through model and oracle and prints the agreement:
//   node --import tsx scripts/differential.ts [--traces 1000] [--events 2000|MIN-MAX] [--shape NAME|threads] [--seed N]
//     [--brk-limit BYTES] [--keep] [--invariants | --invariants-every N]
// The shapes are SHAPES, THREAD_SHAPES and "edges" (src/trace/edges.ts); --events 20-200 draws each trace's
// length. A trace the model refuses (MODEL_THREADS: it does not replay threads yet) is counted apart from the
// disagreements, after the oracle has shown that glibc replays it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { differential } from '../src/check/differential.ts';
import { MallocscopeError } from '../src/errors.ts';
import { exitError, runOracleSync } from '../src/oracle/oracle.ts';
import { EDGES, generateEdgeTrace } from '../src/trace/edges.ts';
import { SHAPES, THREAD_SHAPES, generateTrace, seededRandom } from '../src/trace/generate.ts';
import { TraceWriter, formatCall } from '../src/trace/writer.ts';

const { values } = parseArgs({
  options: {
    traces: { type: 'string', default: '1000' },
    events: { type: 'string', default: '2000' },
    shape: { type: 'string' },
    seed: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    invariants: { type: 'boolean', default: false },
    'invariants-every': { type: 'string' },
    'brk-limit': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    'usage: npm run differential -- [--traces N] [--events N|MIN-MAX] [--shape NAME|threads] [--seed N] [--brk-limit BYTES] [--keep] [--invariants | --invariants-every N]',
  );
  console.log(`shapes: ${[...SHAPES.map((s) => s.name), EDGES].join(', ')}`);
  console.log(`threaded shapes (not in the default run): ${THREAD_SHAPES.map((s) => s.name).join(', ')}, or "threads" for all of them`);
  process.exit(0);
}

/** A shape's lines for one seed. */
type Lines = (seed: number, events: number) => Iterable<string>;
const shapeLines = (shape: (typeof SHAPES)[number]) => ({
  name: shape.name,
  lines: function* (seed: number, events: number) {
    for (const call of generateTrace(shape, seed, events)) yield formatCall(call);
  },
});
const all: { name: string; lines: Lines }[] = [...SHAPES.map(shapeLines), { name: EDGES, lines: generateEdgeTrace }];
const threaded = THREAD_SHAPES.map(shapeLines);
// The default run keeps to the shapes of one thread, so that its figures stay comparable with earlier runs.
const shapes = values.shape === 'threads' ? threaded : values.shape ? [...all, ...threaded].filter((s) => s.name === values.shape) : all;
if (shapes.length === 0) {
  console.error(`unknown shape '${values.shape}' (see --help)`);
  process.exit(2);
}
const eventRange = /^(\d+)(?:-(\d+))?$/.exec(values.events);
if (!eventRange) {
  console.error(`--events takes N or MIN-MAX, not '${values.events}'`);
  process.exit(2);
}
const brkLimit = values['brk-limit'] === undefined ? undefined : Number(values['brk-limit']);
if (brkLimit !== undefined && !(Number.isSafeInteger(brkLimit) && brkLimit >= 0)) {
  console.error(`--brk-limit takes a number of bytes, not '${values['brk-limit']}'`);
  process.exit(2);
}
const every = values['invariants-every'] === undefined ? undefined : Number(values['invariants-every']);
if (every !== undefined && !(Number.isSafeInteger(every) && every > 0)) {
  console.error(`--invariants-every takes a number of events, not '${values['invariants-every']}'`);
  process.exit(2);
}
// The heap's invariants after every event (--invariants), or after every Nth and the last one.
const invariants = every ?? values.invariants;
const [minEvents, maxEvents] = [Number(eventRange[1]), Number(eventRange[2] ?? eventRange[1])];
const lengths = seededRandom(Number(values.seed));
const traces = Number(values.traces);
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-differential-'));
let agreedEvents = 0;
let totalEvents = 0;
let agreedTraces = 0;
const failures: string[] = [];
let crashes = 0;
/** Traces the model refused (MODEL_THREADS), each replayed by the oracle instead, and their events. */
let refusedTraces = 0;
let refusedEvents = 0;
const started = Date.now();

for (let n = 0; n < traces; n++) {
  const shape = shapes[n % shapes.length];
  const seed = Number(values.seed) + Math.floor(n / shapes.length);
  const events = minEvents + Math.floor(lengths() * (maxEvents - minEvents + 1));
  const path = join(dir, `${shape.name}-${seed}.trace`);
  const writer = new TraceWriter({ path });
  for (const line of shape.lines(seed, events)) writer.line(line);
  writer.close();
  let result: ReturnType<typeof differential>;
  try {
    result = differential(path, { stats: true, checkInvariants: invariants, brkLimit });
  } catch (error) {
    if (error instanceof MallocscopeError && error.code === 'MODEL_THREADS') {
      // Not a disagreement: the model cannot answer yet. glibc must still replay the trace without an error.
      const oracle = runOracleSync(path, { stats: true, brkLimit });
      const failed = exitError(oracle.exit, path);
      if (failed) failures.push(`${shape.name} seed ${seed}: the oracle failed on a trace the model refuses: ${failed.message}\n  trace:  ${path}`);
      else {
        refusedTraces++;
        refusedEvents += oracle.lines.length;
        if (!values.keep) rmSync(path);
      }
      continue;
    }
    failures.push(`${shape.name} seed ${seed}: ${(error as Error).message}\n  trace:  ${path}`);
    continue;
  }
  // Model and glibc may agree up to a call where glibc crashes and the model stops, by the same signal.
  if (result.diesAt) crashes++;
  totalEvents += result.events;
  agreedEvents += result.agreed;
  if (result.difference) {
    const d = result.difference;
    failures.push(
      `${shape.name} seed ${seed}: first difference (${d.kind}) at seq ${d.seq} (line ${d.line})\n  model:  ${d.model}\n  oracle: ${d.oracle}\n  trace:  ${path}`,
    );
  } else {
    agreedTraces++;
    if (!values.keep) rmSync(path);
  }
}
for (const f of failures.slice(0, 10)) console.log(f);
if (failures.length > 10) console.log(`… and ${failures.length - 10} more`);
const compared = traces - refusedTraces;
if (compared > 0 || refusedTraces === 0)
  console.log(
    `${agreedTraces}/${compared} traces agree${crashes ? ` (${crashes} of them up to a call where glibc crashes and the model stops)` : ''}; ` +
      `${agreedEvents}/${totalEvents} events agree before the first difference (${((100 * agreedEvents) / Math.max(1, totalEvents)).toFixed(3)}%); ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
if (refusedTraces > 0)
  console.log(
    `${refusedTraces}/${traces} traces refused by the model (MODEL_THREADS: it does not replay threads yet); the oracle replayed all ${refusedEvents} of their events; ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
if (failures.length === 0) rmSync(dir, { recursive: true, force: true });
process.exit(failures.length ? 1 : 0);
