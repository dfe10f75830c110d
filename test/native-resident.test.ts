// The resident-pages model (docs/resident.md) against real memory: replayed on the native backend with the
// program's writes made for real, the model's estimate equals what mincore counts, part by part (heap,
// mappings, thread heaps), at points all along each trace; and the estimate is the same on the simulated kernel.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Replayer } from '../dist/replay/replayer.js';
import { NativeSystem } from '../dist/system/native.js';
import type { ResidentPages } from '../dist/system/resident.js';
import { SHAPES, THREAD_SHAPES, generateTrace } from '../dist/trace/generate.js';
import { parseTrace } from '../dist/trace/reader.js';
import { formatCall } from '../dist/trace/writer.js';
import type { TraceEvent } from '../dist/trace/api.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Compares the estimate with mincore after every `every`-th event and after the last. */
function holds(name: string, events: TraceEvent[], every: number): number {
  const threads = events.some((e) => e.thread !== undefined || e.op === 'spawn');
  const native = new NativeSystem();
  let checked = 0;
  try {
    const real = new Replayer({ system: native, resident: true, threads });
    const simulated = new Replayer({ resident: true, threads });
    for (const [i, event] of events.entries()) {
      real.apply(event);
      simulated.apply(event);
      if (i % every !== every - 1 && i !== events.length - 1) continue;
      const estimate = (real.resident as ResidentPages).now();
      const kernel = native.resident();
      const where = `${name}, event ${event.seq} (${event.op})`;
      assert.is(estimate.heap, kernel.heap, `${where}: heap`);
      assert.is(estimate.mmapped, kernel.mmapped, `${where}: mappings`);
      assert.is(estimate.threadHeaps, kernel.threadHeaps, `${where}: thread heaps`);
      assert.is((simulated.resident as ResidentPages).total, estimate.total, `${where}: the simulated kernel's estimate`);
      checked++;
    }
  } finally {
    native.release();
  }
  return checked;
}

const generated = (shapes: readonly { name: string }[], name: string, seed: number, count: number): TraceEvent[] => {
  const shape = shapes.find((s) => s.name === name);
  if (!shape) throw new Error(`no shape ${name}`);
  return parseTrace(`${[...generateTrace(shape as (typeof SHAPES)[number], seed, count)].map((c) => formatCall(c)).join('\n')}\n`);
};

test('random shapes: trimming, madvise, mremap, calloc, memalign, mmap and the threshold', () => {
  // trim-mix: malloc_trim's madvise and brk shrinking; realloc-mixed and realloc-shrink: mremap growing,
  // moving and shrinking; calloc-mix: calloc's clearing; memalign-large: aligned mappings; around-threshold:
  // mmap and munmap as the threshold slides; everything: all of them.
  const names = ['trim-mix', 'realloc-mixed', 'realloc-shrink', 'calloc-mix', 'memalign-large', 'around-threshold', 'everything'];
  for (const [i, name] of names.entries()) assert.ok(holds(name, generated(SHAPES, name, 40 + i, 500), 25) >= 20);
});

test('threaded shapes: thread arenas grow (mprotect), shrink (madvise) and go (munmap)', () => {
  for (const [i, name] of ['threads-trim', 'threads-workers', 'threads-cross'].entries()) {
    assert.ok(holds(name, generated(THREAD_SHAPES, name, 60 + i, 500), 25) >= 20);
  }
});

test('a real program and an example', () => {
  // python-json: a real program's 11,000 calls (its mappings included), sampled.
  const python = parseTrace(readFileSync(join(root, 'test/fixtures/real/python-json.trace'), 'utf8'));
  assert.ok(holds('python-json', python, 500) >= 20);
  // realloc-mmapped: mremap up, down to a page, up again, and the munmap, after every event.
  const example = parseTrace(readFileSync(join(root, 'examples/realloc-mmapped.trace'), 'utf8'));
  assert.is(holds('realloc-mmapped', example, 1), example.length);
});

test.run();
