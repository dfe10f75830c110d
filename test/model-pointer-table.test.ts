// The Allocator's table of live pointers (a typed-array hash table since bench/native.ts showed the Map and
// the per-call record were most of a malloc+free pair): many live blocks at once, freed in random order,
// reallocated, with every freed pointer refused afterwards and every live one still found. Also what
// lastCall reports stays a snapshot of its own call. No timing here: bench/native.ts measures.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Allocator, MallocscopeError } from '../dist/index.js';

/** A small deterministic generator (xorshift32). */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

function isBadPointer(run: () => unknown): boolean {
  try {
    run();
  } catch (error) {
    return error instanceof MallocscopeError && error.code === 'BAD_POINTER';
  }
  return false;
}

test('thousands of live pointers, freed and reallocated in random order, are each found exactly while live', () => {
  const a = new Allocator();
  const next = random(42);
  const live = new Map<number, number>(); // pointer -> size
  // The live pointers again, to draw one by index: copying the map's keys at every draw cost more than the calls.
  const order: number[] = [];
  const freed: number[] = [];
  for (let step = 0; step < 40000; step++) {
    const r = next();
    if (live.size < 5000 && (r < 0.55 || live.size === 0)) {
      const size = next() < 0.9 ? 1 + Math.floor(next() * 600) : 1 + Math.floor(next() * 300000);
      const p = a.malloc(size);
      assert.ok(p !== 0);
      assert.not.ok(live.has(p), 'a live pointer handed out twice');
      live.set(p, size);
      order.push(p);
    } else {
      // A random live pointer, taken out of `order` (the last one moved into its place).
      const i = Math.floor(next() * order.length);
      const p = order[i];
      order[i] = order[order.length - 1];
      order.pop();
      live.delete(p);
      if (r < 0.85) {
        a.free(p);
        freed.push(p);
      } else {
        const q = a.realloc(p, 1 + Math.floor(next() * 2000));
        assert.ok(q !== 0);
        if (q !== p) freed.push(p);
        live.set(q, 1);
        order.push(q);
      }
    }
    if (step % 5000 === 0) {
      for (const p of live.keys()) assert.ok(a.block(p).chunk > 0);
      a.check();
    }
  }
  for (const p of live.keys()) assert.ok(a.block(p).chunk > 0);
  for (const p of freed)
    if (!live.has(p))
      assert.ok(
        isBadPointer(() => a.free(p)),
        `0x${p.toString(16)} was freed`,
      );
  for (const p of live.keys()) a.free(p);
  for (const p of live.keys()) assert.ok(isBadPointer(() => a.block(p)));
  a.check();
});

test('lastCall is a snapshot of its own call, whether or not it was read in between', () => {
  const a = new Allocator();
  const x = a.malloc(2000);
  const y = a.malloc(2000);
  const guard = a.malloc(2000);
  const top = a.lastCall;
  assert.is(top.path, 'top');
  assert.is(a.lastCall, top, 'the same object until the next call');
  a.free(x);
  a.free(y); // too big for the tcache and fastbins: merges backward with x
  const merged = a.lastCall;
  assert.ok(merged.merge !== null && !merged.merge.intoTop);
  const size = merged.merge!.size;
  for (let i = 0; i < 5; i++) a.free(a.malloc(50)); // calls whose notes nobody reads
  a.free(guard); // merges with x+y and into the top, unread
  a.malloc(10);
  assert.is(top.path, 'top');
  assert.equal(top.merge, null);
  assert.is(merged.merge!.size, size);
  assert.is(merged.merge!.intoTop, false);
  assert.is(merged.path, '');
});

test.run();
