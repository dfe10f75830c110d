// The model against the real glibc (the oracle), event for event: where, chunk, offset and mallinfo2 after
// every call, on one seeded random trace of each of the 63 shapes (some also with a program break that cannot
// grow), short traces of edge values (src/trace/edges.ts), the examples, and the traces of real programs in
// test/fixtures/real; the heap's invariants are checked after every event on the way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { differential } from '../dist/check/differential.js';
import { generateEdgeTrace } from '../dist/trace/edges.js';
import { SHAPES, generateTrace } from '../dist/trace/generate.js';
import { TraceWriter } from '../dist/trace/writer.js';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-differential-'));
const root = new URL('..', import.meta.url).pathname;

function agrees(path: string, label: string, brkLimit?: number): void {
  const result = differential(path, { stats: true, checkInvariants: true, brkLimit });
  if (result.difference) {
    const d = result.difference;
    assert.unreachable(`${label}: event ${d.seq} (line ${d.line}) differs\n  oracle: ${d.oracle}\n  model:  ${d.model}\n  trace: ${path}`);
  }
  assert.ok(result.events > 0, `${label}: no events`);
  assert.is(result.agreed, result.events);
}

assert.ok(SHAPES.length >= 60, `only ${SHAPES.length} shapes`);
for (const [index, shape] of SHAPES.entries()) {
  test(`random trace, shape ${shape.name}`, () => {
    const path = join(dir, `${shape.name}.trace`);
    const writer = new TraceWriter({ path });
    for (const call of generateTrace(shape, 7000 + index, 1500)) writer.write(call);
    writer.close();
    agrees(path, shape.name);
  });
}

// A program break that cannot grow (far enough): glibc falls back to mmap'ed heap memory (GLIBC-2.36.md §5).
const limited = ['everything', 'threshold-and-small-many', 'realloc-mixed', 'trim-mix-few', 'medium-many'];
for (const [index, name] of limited.entries()) {
  for (const brkLimit of [0, 65536, 1 << 20]) {
    test(`random trace, shape ${name}, brk limit ${brkLimit}`, () => {
      const shape = SHAPES.find((s) => s.name === name)!;
      const path = join(dir, `${name}-brk${brkLimit}.trace`);
      const writer = new TraceWriter({ path });
      for (const call of generateTrace(shape, 9100 + index, 1500)) writer.write(call);
      writer.close();
      agrees(path, `${name} with brk limit ${brkLimit}`, brkLimit);
    });
  }
}

// Edge values (boundary sizes, requests past PTRDIFF_MAX and 2^64, odd and huge alignments, every mallopt
// parameter at its limits), short traces as in `npm run differential -- --shape edges --events 20-200`. Each
// seed below once found a rule the model missed: calloc's ptrdiff_t product (14), tcache_init's retry in a
// new arena (1771), a negative M_TOP_PAD's mmap fallback heap (52), an old top past 4 GiB (629).
const edgeSeeds = [14, 52, 629, 1771, 2557, 4001, 4002, 4003, 4004, 4005, 4006, 4007];
for (const seed of edgeSeeds) {
  test(`random trace, shape edges, seed ${seed}`, () => {
    const path = join(dir, `edges-${seed}.trace`);
    const writer = new TraceWriter({ path });
    for (const line of generateEdgeTrace(seed, 200)) writer.line(line);
    writer.close();
    agrees(path, `edges seed ${seed}`);
  });
}
for (const brkLimit of [0, 65536]) {
  test(`random trace, shape edges, brk limit ${brkLimit}`, () => {
    const path = join(dir, `edges-brk${brkLimit}.trace`);
    const writer = new TraceWriter({ path });
    for (const line of generateEdgeTrace(9300 + brkLimit, 400)) writer.line(line);
    writer.close();
    agrees(path, `edges with brk limit ${brkLimit}`, brkLimit);
  });
}

for (const name of readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.trace'))) {
  test(`example ${name}`, () => agrees(join(root, 'examples', name), name));
}

const real = join(root, 'test/fixtures/real');
const realTraces = existsSync(real) ? readdirSync(real).filter((f) => f.endsWith('.trace')) : [];
test('there are traces of at least three real programs', () => {
  assert.ok(realTraces.length >= 3, `found ${realTraces.length} in test/fixtures/real`);
});
for (const name of realTraces) {
  test(`real program trace ${name}`, () => agrees(join(real, name), name));
}

test.run();
