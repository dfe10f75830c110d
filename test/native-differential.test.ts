// The native backend against the real glibc (the oracle), event for event with --stats: the same allocator
// core on real memory gives the same where, chunk, heap offset (from the emulated break) and mallinfo2 as
// glibc, on one seeded trace of each shape, the examples and the real programs' traces. Each trace gets a
// fresh NativeSystem, released afterwards.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { differential } from '../dist/check/differential.js';
import { NativeSystem } from '../dist/system/native.js';
import { SHAPES, generateTrace } from '../dist/trace/generate.js';
import { TraceWriter } from '../dist/trace/writer.js';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-native-differential-'));
const root = fileURLToPath(new URL('..', import.meta.url));

function agrees(path: string, label: string): void {
  const system = new NativeSystem();
  try {
    const result = differential(path, { stats: true, system });
    if (result.difference) {
      const d = result.difference;
      assert.unreachable(`${label}: event ${d.seq} (line ${d.line}) differs\n  oracle: ${d.oracle}\n  native: ${d.model}\n  trace: ${path}`);
    }
    assert.ok(result.events > 0, `${label}: no events`);
    assert.is(result.agreed, result.events);
  } finally {
    system.release();
  }
}

for (const [index, shape] of SHAPES.entries()) {
  test(`native: random trace, shape ${shape.name}`, () => {
    const path = join(dir, `${shape.name}.trace`);
    const writer = new TraceWriter({ path });
    for (const call of generateTrace(shape, 7000 + index, 1500)) writer.write(call);
    writer.close();
    agrees(path, shape.name);
  });
}

for (const name of readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.trace'))) {
  test(`native: example ${name}`, () => agrees(join(root, 'examples', name), name));
}

const real = join(root, 'test/fixtures/real');
const realTraces = existsSync(real) ? readdirSync(real).filter((f) => f.endsWith('.trace')) : [];
test('native: there are traces of at least three real programs', () => {
  assert.ok(realTraces.length >= 3, `found ${realTraces.length} in test/fixtures/real`);
});
for (const name of realTraces) {
  test(`native: real program trace ${name}`, () => agrees(join(real, name), name));
}

test.run();
