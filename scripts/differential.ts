// Runs many seeded random traces through model and oracle and prints the agreement:
//   node --import tsx scripts/differential.ts [--traces 1000] [--events 2000|MIN-MAX] [--shape NAME|threads] [--seed N]
//     [--brk-limit BYTES] [--tunables STRING] [--keep] [--invariants | --invariants-every N] [--native]
// The shapes are SHAPES, THREAD_SHAPES and "edges" (src/trace/edges.ts); --events 20-200 draws each trace's
// length. --native also holds the native backend (real memory, a fresh NativeSystem per trace) against the
// same run of the oracle, and counts its agreement apart. --tunables runs both under that GLIBC_TUNABLES.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { differential } from '../src/check/differential.ts';
import { runOracleSync } from '../src/oracle/oracle.ts';
import { NativeSystem } from '../src/system/native.ts';
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
    tunables: { type: 'string' },
    native: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    'usage: npm run differential -- [--traces N] [--events N|MIN-MAX] [--shape NAME|threads] [--seed N] [--brk-limit BYTES] [--tunables STRING] [--keep] [--invariants | --invariants-every N] [--native]',
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
const tunables = values.tunables;
if (brkLimit !== undefined && !(Number.isSafeInteger(brkLimit) && brkLimit >= 0)) {
  console.error(`--brk-limit takes a number of bytes, not '${values['brk-limit']}'`);
  process.exit(2);
}
if (values.native && brkLimit !== undefined && brkLimit < 4096) {
  console.error('--native needs --brk-limit of at least one page (4096): its break lives in a reservation of that size');
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
/** The native backend's figures (--native). */
const native = { traces: 0, events: 0, agreedEvents: 0, agreedTraces: 0 };
const started = Date.now();

/** The native backend against the same oracle run; a difference or an error is a failure. */
function compareNative(path: string, oracle: ReturnType<typeof runOracleSync>, label: string): boolean {
  // The native break lives in a reservation of whole pages: --brk-limit is its size (as replay --backend native).
  const system = new NativeSystem(brkLimit === undefined ? {} : { reserve: Math.floor(brkLimit / 4096) * 4096 });
  try {
    const result = differential(path, { stats: true, brkLimit, oracle, system, tunables });
    native.traces++;
    native.events += result.events;
    native.agreedEvents += result.agreed;
    if (!result.difference) {
      native.agreedTraces++;
      return true;
    }
    const d = result.difference;
    failures.push(
      `${label}, native backend: first difference (${d.kind}) at seq ${d.seq} (line ${d.line})\n  native: ${d.model}\n  oracle: ${d.oracle}\n  trace:  ${path}`,
    );
  } catch (error) {
    native.traces++;
    failures.push(`${label}, native backend: ${(error as Error).message}\n  trace:  ${path}`);
  } finally {
    system.release();
  }
  return false;
}

for (let n = 0; n < traces; n++) {
  const shape = shapes[n % shapes.length];
  const seed = Number(values.seed) + Math.floor(n / shapes.length);
  const events = minEvents + Math.floor(lengths() * (maxEvents - minEvents + 1));
  const path = join(dir, `${shape.name}-${seed}.trace`);
  const writer = new TraceWriter({ path });
  for (const line of shape.lines(seed, events)) writer.line(line);
  writer.close();
  let result: ReturnType<typeof differential>;
  let nativeAgrees = true;
  try {
    const oracle = runOracleSync(path, { stats: true, brkLimit, tunables });
    result = differential(path, { stats: true, checkInvariants: invariants, brkLimit, oracle, tunables });
    if (values.native) nativeAgrees = compareNative(path, oracle, `${shape.name} seed ${seed}`);
  } catch (error) {
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
    if (!values.keep && nativeAgrees) rmSync(path);
  }
}
for (const f of failures.slice(0, 10)) console.log(f);
if (failures.length > 10) console.log(`… and ${failures.length - 10} more`);
console.log(
  `${agreedTraces}/${traces} traces agree${crashes ? ` (${crashes} of them up to a call where glibc crashes and the model stops)` : ''}; ` +
    `${agreedEvents}/${totalEvents} events agree before the first difference (${((100 * agreedEvents) / Math.max(1, totalEvents)).toFixed(3)}%); ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
if (values.native)
  console.log(
    `native backend: ${native.agreedTraces}/${native.traces} traces agree; ${native.agreedEvents}/${native.events} events agree before the first difference (${((100 * native.agreedEvents) / Math.max(1, native.events)).toFixed(3)}%)`,
  );
if (failures.length === 0) rmSync(dir, { recursive: true, force: true });
process.exit(failures.length ? 1 : 0);
