// The uvu test the README shows, run exactly as written: 'mallocscope' resolves to this package itself (its
// "exports", so the built dist/), so the README stays true.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Allocator, replayTrace } from 'mallocscope';

test('freeing an mmapped block lets the next one come from the heap', () => {
  const steps = [...replayTrace('examples/threshold-slides.trace')];
  assert.is(steps[1].where, 'mmap');
  assert.equal(steps[2].thresholdMoved, { from: 131072, to: 200704 });
  assert.is(steps[3].where, 'heap');
  assert.is(steps[3].offset, 0x310);
});

test('malloc(100) in a fresh process', () => {
  const heap = new Allocator();
  const p = heap.malloc(100);
  assert.equal(heap.block(p), { where: 'heap', chunk: 0x70, offset: 0x2a0 });
  assert.is(heap.mallinfo2().keepcost, 134400);
  heap.check(); // chunks tile the heap, every free chunk is in exactly one list, mallinfo2 matches a walk
});

test('the README shows this file', async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  // This file's source (the runner may run a compiled copy of it).
  const body = readFileSync(new URL('../test/readme-example.test.ts', import.meta.url), 'utf8');
  const shown = readme.slice(readme.indexOf("import { test } from 'uvu';"), readme.indexOf('test.run();', readme.indexOf("import { test } from 'uvu';")));
  const ours = body.slice(body.indexOf("import { test } from 'uvu';"), body.indexOf("test('the README shows this file'"));
  assert.is(ours.trim(), shown.trim());
});

test.run();
