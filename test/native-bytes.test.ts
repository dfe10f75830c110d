// Real bytes through the public API on the native backend: a block's memory as a Uint8Array, data that
// survives realloc whether it is copied (heap) or moved by mremap, calloc's zeroes on recycled memory, views
// detached by free (a late access is a TypeError, never a crash), and bad arguments refused with their codes
// before any system call.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Allocator } from '../dist/replay/allocator.js';
import { NativeSystem } from '../dist/system/native.js';

function fill(view: Uint8Array, seed: number): void {
  for (let i = 0; i < view.length; i++) view[i] = (i * 31 + seed) & 0xff;
}

function same(view: Uint8Array, seed: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (view[i] !== ((i * 31 + seed) & 0xff)) return false;
  return true;
}

test('a heap block is real memory of malloc_usable_size bytes', () => {
  const system = new NativeSystem();
  const heap = new Allocator({ system });
  const p = heap.malloc(100);
  const view = heap.bytes(p);
  assert.is(view.length, 0x70 - 8);
  fill(view, 1);
  assert.ok(same(heap.bytes(p), 1, view.length), 'a second view sees the same bytes');
  assert.is(heap.block(p).offset, p - system.heapStart);
  system.release();
});

test('data survives realloc that copies (heap) and realloc that mremaps (mmapped)', () => {
  const system = new NativeSystem();
  const heap = new Allocator({ system });
  // Heap: a block boxed in by a neighbour must move, so realloc copies.
  const a = heap.malloc(1000);
  const fence = heap.malloc(16);
  fill(heap.bytes(a), 2);
  const b = heap.realloc(a, 5000);
  assert.is.not(b, a, 'the block moved');
  assert.equal(
    heap.lastCall.syscalls.filter((s) => s.call === 'mremap'),
    [],
  );
  assert.ok(same(heap.bytes(b), 2, 1000), 'copied bytes');
  // mmapped: realloc grows the mapping with mremap (it may move it).
  const m = heap.malloc(1 << 20);
  assert.is(heap.block(m).where, 'mmap');
  const before = heap.bytes(m);
  assert.is(before.length, heap.block(m).chunk - 16);
  fill(before, 3);
  const grown = heap.realloc(m, 64 << 20);
  assert.is(heap.lastCall.path, 'mremap');
  assert.is(before.byteLength, 0, 'realloc detached the old view');
  assert.ok(same(heap.bytes(grown), 3, (1 << 20) - 16), 'mremapped bytes');
  const shrunk = heap.realloc(grown, 200000);
  assert.ok(same(heap.bytes(shrunk), 3, 200000), 'bytes kept by a shrinking mremap');
  heap.free(fence);
  heap.free(b);
  heap.free(shrunk);
  system.release();
});

test('calloc of recycled heap memory reads as zeroes', () => {
  const system = new NativeSystem();
  const heap = new Allocator({ system });
  const p = heap.malloc(2000);
  heap.malloc(16);
  fill(heap.bytes(p), 4);
  heap.free(p);
  // Too big for the tcache (which calloc skips anyway): the chunk waits in the unsorted bin and comes back.
  const q = heap.calloc(1, 2000);
  assert.is(q, p);
  assert.ok(heap.bytes(q).every((byte) => byte === 0));
  system.release();
});

test('after free the view is detached: access is a TypeError or undefined, never a crash', () => {
  const system = new NativeSystem();
  const heap = new Allocator({ system });
  for (const size of [64, 300000]) {
    const p = heap.malloc(size);
    const view = heap.bytes(p);
    view[0] = 1;
    heap.free(p);
    assert.is(view.byteLength, 0);
    assert.is(view[0], undefined, 'reads of a detached view find nothing');
    assert.throws(() => view.fill(1), TypeError);
    assert.throws(() => new Uint8Array(view.buffer), TypeError);
    assert.throws(
      () => heap.bytes(p),
      (error: Error & { code: string }) => error.code === 'BAD_POINTER',
    );
  }
  system.release();
});

test('views over memory that goes away are detached by the layer itself', () => {
  const system = new NativeSystem();
  const m = system.mmap(1 << 20);
  const mapped = system.bytes(m, 4096);
  system.sbrk(3 * 4096);
  const heapView = system.bytes(system.heapStart + 4096, 8192);
  heapView[100] = 9;
  system.sbrk(-2 * 4096); // the break shrinks below the view's end
  assert.is(heapView.byteLength, 0);
  system.munmap(m, 1 << 20);
  assert.is(mapped.byteLength, 0);
  const kept = system.bytes(system.heapStart, 4096);
  system.release();
  assert.is(kept.byteLength, 0, 'release detaches everything');
});

function refused(run: () => unknown, name: string, code: string): void {
  assert.throws(run, (error: Error & { code: string }) => error.name === name && error.code === code, `${name} ${code}`);
}

test('bad arguments are refused with codes, and nothing changed', () => {
  const system = new NativeSystem();
  const m = system.mmap(8192);
  system.sbrk(4096);
  const regions = JSON.stringify(system.regions());
  system.takeSyscalls();
  refused(() => system.mmap(NaN), 'RangeError', 'ERR_OUT_OF_RANGE');
  refused(() => system.mmap(4097), 'RangeError', 'ERR_UNALIGNED');
  refused(() => system.munmap(m, -4096), 'RangeError', 'ERR_OUT_OF_RANGE');
  refused(() => system.munmap(m + 1, 4096), 'RangeError', 'ERR_UNALIGNED');
  refused(() => system.munmap(m + 4096, 8192), 'RangeError', 'ERR_NOT_MAPPED');
  refused(() => system.munmap(0x10000, 8192), 'RangeError', 'ERR_NOT_MAPPED');
  refused(() => system.mremap(m, 8192, 1.5), 'RangeError', 'ERR_OUT_OF_RANGE');
  refused(() => system.mremap(m + 4096, 4096, 8192), 'RangeError', 'ERR_NOT_MAPPED');
  refused(() => system.madvise(system.heapStart + 8192, 4096), 'RangeError', 'ERR_NOT_MAPPED');
  refused(() => system.bytes(m, 8193), 'RangeError', 'ERR_NOT_MAPPED');
  refused(() => system.bytes(NaN, 1), 'RangeError', 'ERR_OUT_OF_RANGE');
  refused(() => system.bytes('12' as unknown as number, 1), 'TypeError', 'ERR_INVALID_ARG_TYPE');
  refused(() => system.copy(system.heapStart, 0x1000, 16), 'RangeError', 'ERR_NOT_MAPPED');
  refused(() => system.zero(system.heapStart - 16, 32), 'RangeError', 'ERR_NOT_MAPPED');
  refused(() => system.protect(m + 8, 4096, 'read'), 'RangeError', 'ERR_UNALIGNED');
  refused(() => system.protect(m, 4096, 'write' as 'read'), 'RangeError', 'ERR_OUT_OF_RANGE');
  refused(() => system.protect(m, 3 * 4096, 'read'), 'RangeError', 'ERR_NOT_MAPPED');
  refused(() => system.lock(m, -1), 'RangeError', 'ERR_OUT_OF_RANGE');
  refused(() => system.lock(0x7000, 4096), 'RangeError', 'ERR_NOT_MAPPED');
  refused(() => system.sbrk(NaN), 'RangeError', 'ERR_OUT_OF_RANGE');
  refused(() => system.detach(new Uint8Array(4)), 'RangeError', 'ERR_NOT_MAPPED');
  assert.is(JSON.stringify(system.regions()), regions, 'the layer is as it was');
  assert.equal(system.takeSyscalls(), [], 'no system call was logged');
  system.release();
  refused(() => system.regions() && system.mmap(4096), 'Error', 'ERR_RELEASED');
});

test('the Allocator refuses protect on blocks that do not start on a page, and bytes on the simulated kernel', () => {
  const system = new NativeSystem();
  const heap = new Allocator({ system });
  const p = heap.malloc(10000);
  assert.throws(
    () => heap.protect(p, 'read'),
    (error: Error & { code: string }) => error.code === 'UNALIGNED_BLOCK',
  );
  const simulated = new Allocator();
  const q = simulated.malloc(10);
  assert.throws(
    () => simulated.bytes(q),
    (error: Error & { code: string }) => error.code === 'NO_BYTES',
  );
  system.release();
});

test("the sbrk failure past the reservation is glibc's MORECORE failure: the mmap fallback takes over", () => {
  const system = new NativeSystem({ reserve: 1 << 20 });
  const heap = new Allocator({ system, policy: 'heap' });
  const p = heap.malloc(4 << 20);
  assert.ok(p !== 0);
  assert.ok(
    heap.lastCall.syscalls.some((s) => s.call === 'brk' && s.failed),
    'brk failed',
  );
  assert.ok(
    heap.lastCall.syscalls.some((s) => s.call === 'mmap' && !s.failed),
    'mmap fallback',
  );
  heap.bytes(p).fill(7);
  system.release();
});

test('guard pages: a PROT_NONE page before and after each mapping, kept through mremap', () => {
  const system = new NativeSystem({ guardPages: true });
  const heap = new Allocator({ system });
  const m = heap.malloc(1 << 20);
  fill(heap.bytes(m), 5);
  const [[address, length, front, back]] = system.regions().mappings;
  assert.is(address, m - 16);
  assert.is(front, 4096);
  assert.is(back, 4096);
  assert.is(length, heap.block(m).chunk);
  const grown = heap.realloc(m, 3 << 20);
  assert.ok(same(heap.bytes(grown), 5, (1 << 20) - 16));
  const shrunk = heap.realloc(grown, 500000);
  assert.ok(same(heap.bytes(shrunk), 5, 500000));
  const [[, , , backAfter]] = system.regions().mappings;
  assert.ok(backAfter > 4096, 'the pages given up joined the trailing guard');
  heap.free(shrunk);
  assert.equal(system.regions().mappings, []);
  system.release();
});

test.run();
