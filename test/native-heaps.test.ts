// Thread arenas' heaps on real memory: reserve (mmap PROT_NONE | MAP_NORESERVE at a hint, never over what is
// mapped), munmap of a part of a mapping (new_heap's cut to an aligned 64 MiB heap; the views over the part
// detached, the rest kept), mprotect to read-write (grow_heap), each checked in /proc/self/maps and refused
// with a code when asked of anything else; then a threaded replay whose heaps are real aligned mappings, down
// to heap_trim unmapping a whole heap.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Replayer } from '../dist/replay/replayer.js';
import { NativeSystem } from '../dist/system/native.js';
import { parseTrace } from '../dist/trace/reader.js';

const MiB = 1024 * 1024;
/** glibc's HEAP_MAX_SIZE on x86-64: 2 * DEFAULT_MMAP_THRESHOLD_MAX (2 * 32 MiB). */
const HEAP_MAX = 64 * MiB;
const PAGE = 4096;

/** The permissions of every maps line that overlaps [start, end), in order, e.g. ['rw-p', '---p']. */
function permsOver(start: number, end: number): string[] {
  const found: string[] = [];
  for (const line of readFileSync('/proc/self/maps', 'utf8').trim().split('\n')) {
    const [range, perms] = line.split(' ');
    const [from, to] = range.split('-').map((hex) => parseInt(hex, 16));
    if (from < end && start < to) found.push(perms);
  }
  return found;
}

/** Whether [start, end) is wholly mapped with `perms` (adjacent lines may merge or split). */
function mappedAs(start: number, end: number, perms: string): boolean {
  let at = start;
  for (const line of readFileSync('/proc/self/maps', 'utf8').trim().split('\n')) {
    const [range, mode] = line.split(' ');
    const [from, to] = range.split('-').map((hex) => parseInt(hex, 16));
    if (to <= at || from > at) continue;
    if (mode !== perms) return false;
    at = to;
    if (at >= end) return true;
  }
  return at >= end;
}

function refused(run: () => unknown, name: string, code: string, label = code): void {
  assert.throws(run, (error: Error & { code: string }) => error.name === name && error.code === code, `${label}: ${name} ${code}`);
}

test('reserve: a PROT_NONE mapping, logged as mmap; its pages reach no view, copy or protect until mprotect makes them read-write', () => {
  const system = new NativeSystem();
  try {
    const base = system.reserve(4 * PAGE);
    assert.ok(base > 0 && base % PAGE === 0, `at 0x${base.toString(16)}`);
    assert.ok(mappedAs(base, base + 4 * PAGE, '---p'), permsOver(base, base + 4 * PAGE).join(' '));
    assert.equal(system.regions().reservations, [[base, 4 * PAGE, 0]]);
    assert.equal(system.regions().mappings, [], 'a reservation is not an mmapped block');
    assert.equal(system.takeSyscalls(), [{ call: 'mmap', bytes: 4 * PAGE }]);
    refused(() => system.bytes(base, 16), 'RangeError', 'ERR_NOT_MAPPED', 'bytes of a PROT_NONE page');
    refused(() => system.zero(base, 16), 'RangeError', 'ERR_NOT_MAPPED', 'zero of a PROT_NONE page');
    refused(() => system.protect(base, PAGE, 'read'), 'RangeError', 'ERR_NOT_MAPPED', 'protect of a PROT_NONE page');

    // grow_heap: the first two pages read-write, the rest still PROT_NONE.
    assert.is(system.mprotect(base, 2 * PAGE), true);
    assert.equal(system.takeSyscalls(), [{ call: 'mprotect', bytes: 2 * PAGE }]);
    assert.ok(mappedAs(base, base + 2 * PAGE, 'rw-p') && mappedAs(base + 2 * PAGE, base + 4 * PAGE, '---p'), permsOver(base, base + 4 * PAGE).join(' '));
    assert.equal(system.regions().reservations, [[base, 4 * PAGE, 2 * PAGE]]);
    const view = system.bytes(base + 2 * PAGE - 8, 8);
    view.set([1, 2, 3, 4, 5, 6, 7, 8]);
    system.copy(base, base + 2 * PAGE - 8, 8);
    assert.equal([...system.bytes(base, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
    refused(() => system.bytes(base + 2 * PAGE - 8, 9), 'RangeError', 'ERR_NOT_MAPPED', 'a view one byte into the PROT_NONE part');
    assert.is(system.resident().threadHeapsCommitted, 2 * PAGE);
    assert.ok(system.resident().threadHeaps >= 2 * PAGE, 'both written pages are resident');
    assert.is(system.resident().mapped, 0, 'mapped counts mmapped blocks only');
    // A page made writable again, and the rest: mprotect is idempotent.
    assert.is(system.mprotect(base + PAGE, 3 * PAGE), true);
    assert.equal(system.regions().reservations, [[base, 4 * PAGE, 4 * PAGE]]);
    assert.equal([...view], [1, 2, 3, 4, 5, 6, 7, 8], 'the data stayed');
  } finally {
    system.release();
  }
});

test("new_heap's cut: twice HEAP_MAX_SIZE reserved, the misaligned ends unmapped; views over them detached, the heap's kept", () => {
  const system = new NativeSystem();
  try {
    const wide = system.reserve(2 * HEAP_MAX);
    const base = Math.ceil(wide / HEAP_MAX) * HEAP_MAX;
    // Views over both ends and over the heap, taken while all of it is writable.
    assert.is(system.mprotect(wide, 2 * HEAP_MAX), true);
    const lead = base > wide ? system.bytes(wide, 16) : null;
    const inHeap = system.bytes(base + HEAP_MAX - 16, 16);
    const tail = system.bytes(base + HEAP_MAX, 16);
    const straddling = system.bytes(base + HEAP_MAX - 8, 16);
    inHeap.fill(7);
    if (base > wide) system.munmap(wide, base - wide);
    system.munmap(base + HEAP_MAX, HEAP_MAX - (base - wide));
    assert.equal(system.regions().reservations, [[base, HEAP_MAX, HEAP_MAX]]);
    assert.equal(permsOver(wide, base), [], 'nothing left before the heap');
    assert.equal(permsOver(base + HEAP_MAX, wide + 2 * HEAP_MAX), [], 'nothing left after it');
    assert.ok(mappedAs(base, base + HEAP_MAX, 'rw-p'));
    if (lead) assert.is(lead.byteLength, 0, 'the view over the lead is detached');
    assert.is(tail.byteLength, 0, 'the view over the tail is detached');
    assert.is(straddling.byteLength, 0, 'a view that reaches into the unmapped tail is detached');
    assert.equal([...inHeap], new Array(16).fill(7), 'the view inside the heap lives');
    assert.equal(
      system.takeSyscalls().map((call) => call.call),
      ['mmap', 'mprotect', ...(lead ? ['munmap'] : []), 'munmap'],
    );

    // A part in the middle leaves two records, each unmapped on its own later.
    system.munmap(base + PAGE, PAGE);
    assert.equal(system.regions().reservations, [
      [base, PAGE, PAGE],
      [base + 2 * PAGE, HEAP_MAX - 2 * PAGE, HEAP_MAX - 2 * PAGE],
    ]);
    assert.is(inHeap.byteLength, 16, 'a view away from the hole lives');
    system.munmap(base + 2 * PAGE, HEAP_MAX - 2 * PAGE);
    assert.is(inHeap.byteLength, 0);
    system.munmap(base, PAGE);
    assert.equal(system.regions().reservations, []);
    assert.equal(permsOver(base, base + HEAP_MAX), []);
  } finally {
    system.release();
  }
});

test('the hint: taken when that range is free, never mapped over when it is not', () => {
  const system = new NativeSystem();
  try {
    // A range known to be free: reserved, then given back.
    const spot = system.reserve(HEAP_MAX);
    system.munmap(spot, HEAP_MAX);
    assert.is(system.reserve(HEAP_MAX, spot), spot, 'the free range at the hint');
    // The hint over a live reservation with data in it: the kernel puts the new one elsewhere.
    assert.is(system.mprotect(spot, PAGE), true);
    system.bytes(spot, 4).set([9, 8, 7, 6]);
    const other = system.reserve(HEAP_MAX, spot);
    assert.ok(other !== spot && (other + HEAP_MAX <= spot || other >= spot + HEAP_MAX), `0x${other.toString(16)} beside 0x${spot.toString(16)}`);
    assert.equal([...system.bytes(spot, 4)], [9, 8, 7, 6], 'the reservation at the hint is untouched');
    // Nor over the emulated break's reservation or an mmapped block.
    const block = system.mmap(PAGE);
    for (const hint of [system.heapStart, block]) {
      const placed = system.reserve(PAGE, hint);
      assert.ok(placed !== hint, `not at 0x${hint.toString(16)}`);
    }
    assert.equal(system.regions().mappings, [[block, PAGE, 0, 0]]);
  } finally {
    system.release();
  }
});

test('refused with codes, nothing changed and nothing logged: bad lengths and hints, mprotect outside a reservation, a part of a guarded mapping', () => {
  const system = new NativeSystem({ guardPages: true });
  try {
    const heap = system.reserve(4 * PAGE);
    const block = system.mmap(2 * PAGE);
    system.sbrk(PAGE);
    const regions = JSON.stringify(system.regions());
    system.takeSyscalls();
    refused(() => system.reserve(NaN), 'RangeError', 'ERR_OUT_OF_RANGE', 'reserve(NaN)');
    refused(() => system.reserve(0), 'RangeError', 'ERR_OUT_OF_RANGE', 'reserve(0)');
    refused(() => system.reserve(PAGE + 1), 'RangeError', 'ERR_UNALIGNED', 'reserve(an odd length)');
    refused(() => system.reserve(-PAGE), 'RangeError', 'ERR_OUT_OF_RANGE', 'reserve(negative)');
    refused(() => system.reserve(PAGE, heap + 8), 'RangeError', 'ERR_UNALIGNED', 'an unaligned hint');
    refused(() => system.reserve(PAGE, 2 ** 47), 'RangeError', 'ERR_OUT_OF_RANGE', 'a hint past user space');
    refused(() => system.reserve(PAGE, 'x' as unknown as number), 'TypeError', 'ERR_INVALID_ARG_TYPE', 'a hint that is no number');
    refused(() => system.mprotect(heap, 0), 'RangeError', 'ERR_OUT_OF_RANGE', 'mprotect of 0 bytes');
    refused(() => system.mprotect(heap + 1, PAGE), 'RangeError', 'ERR_UNALIGNED', 'mprotect at an odd address');
    refused(() => system.mprotect(heap, 5 * PAGE), 'RangeError', 'ERR_NOT_RESERVED', 'mprotect past the reservation');
    refused(() => system.mprotect(block, PAGE), 'RangeError', 'ERR_NOT_RESERVED', 'mprotect of an mmapped block');
    refused(() => system.mprotect(system.heapStart, PAGE), 'RangeError', 'ERR_NOT_RESERVED', 'mprotect of the break');
    refused(() => system.mprotect(NaN, PAGE), 'RangeError', 'ERR_OUT_OF_RANGE', 'mprotect(NaN)');
    refused(() => system.munmap(block, PAGE), 'RangeError', 'ERR_GUARDED_PART', 'a part of a guarded mapping');
    refused(() => system.munmap(heap + 2 * PAGE, 4 * PAGE), 'RangeError', 'ERR_NOT_MAPPED', 'munmap past a reservation');
    refused(() => system.mremap(heap, 4 * PAGE, 8 * PAGE), 'RangeError', 'ERR_NOT_MAPPED', 'mremap of a reservation');
    assert.is(JSON.stringify(system.regions()), regions, 'the layer is as it was');
    assert.equal(system.takeSyscalls(), [], 'no system call was logged');
    // A reservation has no guard pages (its own PROT_NONE tail is the heap's guard): a part of it may go.
    system.munmap(heap + 3 * PAGE, PAGE);
    assert.equal(system.regions().reservations, [[heap, 3 * PAGE, 0]]);
    // A reservation larger than user space fails as the kernel would, logged.
    assert.is(system.reserve(2 ** 48), -1);
    assert.equal(system.takeSyscalls().at(-1), { call: 'mmap', bytes: 2 ** 48, failed: true });
  } finally {
    system.release();
  }
  refused(() => system.reserve(PAGE), 'Error', 'ERR_RELEASED', 'reserve after release');
  refused(() => system.mprotect(PAGE, PAGE), 'Error', 'ERR_RELEASED', 'mprotect after release');
});

test('release() unmaps every reservation and detaches its views', () => {
  const system = new NativeSystem();
  const heap = system.reserve(2 * PAGE);
  system.mprotect(heap, PAGE);
  const view = system.bytes(heap, 64);
  system.release();
  assert.is(view.byteLength, 0);
  assert.equal(permsOver(heap, heap + 2 * PAGE), []);
});

test('a threaded replay: each thread arena in a real 64 MiB-aligned heap, grown by mprotect; heap_trim unmaps a whole heap and detaches its views', () => {
  // docs/glibc.md, threads and arenas (test/fixtures/oracle/threads-heaps.trace, with a small block first).
  const trace = [
    'mallopt M_MMAP_MAX 0',
    'spawn 2',
    '@2 malloc a 100',
    ...Array.from({ length: 10 }, (_, i) => `@2 malloc x${i + 1} 7000000`),
    '@2 malloc y 100',
    '@2 free x10',
  ];
  const events = parseTrace(trace.join('\n'));
  const system = new NativeSystem();
  try {
    const replayer = new Replayer({ system, threads: true });
    // Applied one at a time, so that the memory can be looked at between events.
    const apply = (index: number) => replayer.apply(events[index]);
    apply(0);
    apply(1);
    const first = apply(2);
    // tcache_init asks arena_get2 for 640 bytes (2.36's tcache_perthread_struct): new_heap(640 + 48 + 2200 + 16
    // + top_pad 131072 = 133976 bytes) makes 33 pages read-write: 135168.
    const calls = first.syscalls.map((call) => [call.call, call.bytes]);
    assert.equal(calls[0], ['mmap', 2 * HEAP_MAX], JSON.stringify(calls));
    assert.equal(calls.at(-1), ['mprotect', 135168], JSON.stringify(calls));
    assert.is(
      calls.filter(([call]) => call === 'munmap').reduce((sum, [, bytes]) => sum + Number(bytes), 0),
      HEAP_MAX,
      'the ends cut off sum to one heap',
    );
    const [[heapBase, heapLength, committed]] = system.regions().reservations;
    assert.is(heapBase % HEAP_MAX, 0, 'the heap is 64 MiB-aligned');
    assert.equal([heapLength, committed], [HEAP_MAX, 135168]);
    assert.ok(mappedAs(heapBase, heapBase + 135168, 'rw-p') && mappedAs(heapBase + 135168, heapBase + HEAP_MAX, '---p'));
    assert.equal([first.where, first.arenaIndex, first.heapIndex], ['heap', 1, 0]);
    assert.ok(first.pointer > heapBase && first.pointer < heapBase + 135168);
    const early = system.bytes(first.pointer, 100);
    early.fill(0x5a);

    // Nine blocks of 7,000,000 bytes grow the first heap (mprotect by what each lacks); the tenth cannot fit
    // in 64 MiB and gets a heap of its own: 7000016 + 32 + 48, page-rounded, plus top_pad: 7135232 bytes.
    for (let i = 3; i < 12; i++) assert.is(apply(i).heapIndex, 0);
    const x10 = apply(12);
    assert.equal([x10.heapIndex, x10.offset], [1, 64]);
    const secondBase = x10.pointer - 64;
    assert.is(secondBase % HEAP_MAX, 0);
    assert.equal(
      system.regions().reservations.find(([address]) => address === secondBase),
      [secondBase, HEAP_MAX, 7135232],
    );
    assert.ok(mappedAs(secondBase, secondBase + 7135232, 'rw-p'));
    const late = system.bytes(x10.pointer, 64);
    late.fill(1);
    assert.is(apply(13).heapIndex, 0, 'y comes from the first heap');
    // free x10: its heap is all top, and the first heap's unused reserve is more than top_pad + 32 + a page.
    const freed = apply(14);
    assert.equal(
      freed.syscalls.map((call) => [call.call, call.bytes]),
      [['munmap', HEAP_MAX]],
    );
    assert.equal(
      system.regions().reservations.map(([address]) => address),
      [heapBase],
    );
    assert.equal(permsOver(secondBase, secondBase + HEAP_MAX), [], 'the second heap is gone from maps');
    assert.is(late.byteLength, 0, 'the view into the second heap was detached when heap_trim unmapped it');
    assert.equal([...early], new Array(100).fill(0x5a), 'the first heap and its view live on');
  } finally {
    system.release();
  }
});

test.run();
