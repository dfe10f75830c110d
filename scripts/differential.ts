// Runs many seeded random traces through model and oracle and prints the agreement:
//   node --import tsx scripts/differential.ts [--traces 1000] [--events 2000] [--shape NAME] [--seed N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { differential } from '../src/check/differential.ts';
import { SHAPES, generateTrace } from '../src/trace/generate.ts';
import { TraceWriter } from '../src/trace/writer.ts';

const { values } = parseArgs({
  options: {
    traces: { type: 'string', default: '1000' },
    events: { type: 'string', default: '2000' },
    shape: { type: 'string' },
    seed: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    invariants: { type: 'boolean', default: false },
  },
});
const shapes = values.shape ? SHAPES.filter((s) => s.name === values.shape) : SHAPES;
const traces = Number(values.traces);
const events = Number(values.events);
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-differential-'));
let agreedEvents = 0;
let totalEvents = 0;
let agreedTraces = 0;
const failures: string[] = [];
const started = Date.now();
for (let n = 0; n < traces; n++) {
  const shape = shapes[n % shapes.length];
  const seed = Number(values.seed) + Math.floor(n / shapes.length);
  const path = join(dir, `${shape.name}-${seed}.trace`);
  const writer = new TraceWriter({ path });
  for (const call of generateTrace(shape, seed, events)) writer.write(call);
  writer.close();
  let result;
  try {
    result = differential(path, { stats: true, checkInvariants: values.invariants });
  } catch (error) {
    failures.push(`${shape.name} seed ${seed}: ${(error as Error).message}\n  trace:  ${path}`);
    continue;
  }
  totalEvents += result.events;
  agreedEvents += result.agreed;
  if (result.difference) {
    const d = result.difference;
    failures.push(`${shape.name} seed ${seed}: first difference at seq ${d.seq} (line ${d.line})\n  model:  ${d.model}\n  oracle: ${d.oracle}\n  trace:  ${path}`);
  } else {
    agreedTraces++;
    if (!values.keep) rmSync(path);
  }
}
for (const f of failures.slice(0, 10)) console.log(f);
if (failures.length > 10) console.log(`… and ${failures.length - 10} more`);
console.log(`${agreedTraces}/${traces} traces agree; ${agreedEvents}/${totalEvents} events agree before the first difference (${((100 * agreedEvents) / Math.max(1, totalEvents)).toFixed(3)}%); ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failures.length ? 1 : 0);
