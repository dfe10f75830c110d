// The model against the rules of glibc 2.36, one rule a test, each title naming its section of the
// project's manual of glibc 2.36's rules, docs/glibc.md §N. Every expected number is quoted from that spec (a probe or a worked example) or computed by hand
// from its formulas (the computation is written next to it); none comes from running the model. After every
// allocator call the heap's invariants are checked (allocator.check()).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Allocator, MallocscopeError, parseTrace, replayTrace } from '../dist/index.js';
import { checkedAllocator } from './support/checked-allocator.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Every model here is glibc 2.36's, whatever glibc this machine has: the rules and numbers are 2.36's. */
const fresh = (options: Parameters<typeof checkedAllocator>[0] = {}) => checkedAllocator({ glibc: '2.36', ...options });
const replay236: typeof replayTrace = (source, options = {}) => replayTrace(source, { glibc: '2.36', ...options });

/** User pointer -> offset from the heap start (the break before the first call). */
const off = (a: Allocator, p: number) => p - a.heapStart;
/** The chunks (as offsets of chunk addresses from the heap start) of tcache bin `tidx`, most recent first. */
function tcacheBin(a: Allocator, tidx: number): number[] {
  return (a.bins().tcache.find((b) => b.index === tidx)?.chunks ?? []).map((c) => c.address - a.heapStart);
}
function fastbin(a: Allocator, index: number): number[] {
  return (a.bins().fastbins.find((b) => b.index === index)?.chunks ?? []).map((c) => c.address - a.heapStart);
}
/** A regular bin's chunks in fd order: [offset, size] pairs. */
function bin(a: Allocator, index: number): [number, number][] {
  return (a.bins().bins.find((b) => b.index === index)?.chunks ?? []).map((c) => [c.address - a.heapStart, c.size]);
}
function unsorted(a: Allocator): [number, number][] {
  return a.bins().unsorted.map((c) => [c.address - a.heapStart, c.size]);
}

// ---- §3 the dynamic threshold -----------------------------------------------------------------------------

test('§3 the threshold rises on free of a 200704-byte mmapped chunk (threshold 200704, trim threshold 401408)', () => {
  // §11 raw probe: malloc(100) brk+0x2a0; malloc(200000) mmapped hdr=0x31002; free → threshold 0x31000 (200704),
  // trim 401408; malloc(200000) again at brk+0x310 (heap, hdr 0x30d51), arena 335872, keepcost 135088.
  const a = fresh();
  assert.is(off(a, a.malloc(100)), 0x2a0);
  const p = a.malloc(200000);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x31000 });
  assert.is(a.mmapThreshold, 131072);
  a.free(p);
  assert.is(a.mmapThreshold, 200704);
  assert.is(a.trimThreshold, 401408);
  const q = a.malloc(200000);
  assert.equal(a.block(q), { where: 'heap', chunk: 0x30d50, offset: 0x310 });
  assert.is(a.mallinfo2().arena, 335872);
  assert.is(a.mallinfo2().keepcost, 135088);
});

test('§3 the 32 MiB ceiling: a 0x2000000 mapping does not raise the threshold (probe E1)', () => {
  // Probe E1: malloc(32 MiB − 4096) gives a 0x2000000 mapping; after free, malloc(200000) is still mmapped.
  const a = fresh();
  const p = a.malloc(32 * MiB - 4096);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x2000000 });
  a.free(p);
  assert.is(a.mmapThreshold, 131072);
  assert.is(a.trimThreshold, 131072);
  assert.is(a.block(a.malloc(200000)).where, 'mmap');
});

test('§3 the 32 MiB ceiling off by one: a 0x1fff000 mapping raises it to 0x1FFF000, the largest threshold (probe E2)', () => {
  // Probe E2: malloc(32 MiB − 8192) gives a 0x1fff000 mapping; after free, malloc(200000) and another
  // malloc(32 MiB − 8192) come from the brk heap. Largest threshold 0x1FFF000, largest trim threshold 0x3FFE000.
  const a = fresh();
  const p = a.malloc(32 * MiB - 8192);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x1fff000 });
  a.free(p);
  assert.is(a.mmapThreshold, 0x1fff000);
  assert.is(a.trimThreshold, 0x3ffe000);
  assert.is(a.block(a.malloc(200000)).where, 'heap');
  assert.is(a.block(a.malloc(32 * MiB - 8192)).where, 'heap');
});

test('§3 the largest request whose mmapped chunk can raise the threshold is malloc(33550312)', () => {
  // §3: malloc(33550312) → nb 33550320 → mapping ALIGN_UP(nb+8, 4096) = 0x1fff000, raises;
  // malloc(33550313) → nb 33550336 → mapping 0x2000000, does not.
  const a = fresh();
  const p = a.malloc(33550313);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x2000000 });
  a.free(p);
  assert.is(a.mmapThreshold, 131072);
  const q = a.malloc(33550312);
  assert.equal(a.block(q), { where: 'mmap', chunk: 0x1fff000 });
  a.free(q);
  assert.is(a.mmapThreshold, 0x1fff000);
});

test('§3 a chunk above 32 MiB (40 MB, 0x2801000) leaves the threshold alone (§11 step 5)', () => {
  const a = fresh();
  a.malloc(100);
  const p = a.malloc(40 * MiB);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x2801000 });
  a.free(p);
  assert.is(a.mmapThreshold, 131072);
  assert.is(a.block(a.malloc(40 * MiB)).where, 'mmap');
});

test("§3 freeing a memalign'ed mmapped chunk sets a threshold that is not a page multiple (chunk 0x4a010)", () => {
  // §7.7: memalign(4096,300000) is mmapped with prev_size 0xff0 and header 0x4a012 (chunksize 0x4a010).
  // §3: chunksize excludes the front offset, so the new threshold is 0x4a010 and the trim threshold twice it.
  const a = fresh();
  const p = a.memalign(4096, 300000);
  a.free(p);
  assert.is(a.mmapThreshold, 0x4a010);
  assert.is(a.trimThreshold, 2 * 0x4a010);
});

test('§3 realloc(p, 0) of an mmapped chunk frees it and so raises the threshold', () => {
  // §3: "It is updated only on free(), which includes realloc(p, 0)". malloc(1 MiB) is a 0x101000 mapping (§4).
  const a = fresh();
  const p = a.malloc(1 * MiB);
  assert.is(a.realloc(p, 0), 0);
  assert.is(a.mmapThreshold, 0x101000);
  assert.is(a.trimThreshold, 0x202000);
});

// ---- §2 where the mmap decision is made ------------------------------------------------------------------

test('§2 nb ≥ threshold with ≥: malloc(131048) heap, malloc(131049) mmapped when the top is too small (probe_edge)', () => {
  // After the tcache struct (0x290) the first heap (0x21000) has a top of 134512. malloc(131048) (nb 131056)
  // takes it, leaving 3456: now neither request fits the top. malloc(131049): nb 131072 = threshold → mmap,
  // mapping ALIGN_UP(131080, 4096) = 0x21000. malloc(131048): nb 131056 < threshold → heap, carved at the old
  // top start 0x290 + 131056 (+16 for the user pointer) = 0x202a0 − 0x10.
  const a = fresh();
  assert.equal(a.block(a.malloc(131048)), { where: 'heap', chunk: 131056, offset: 0x2a0 });
  assert.equal(a.block(a.malloc(131049)), { where: 'mmap', chunk: 0x21000 });
  assert.equal(a.block(a.malloc(131048)), { where: 'heap', chunk: 131056, offset: 0x2a0 + 131056 });
});

test('§2 nb ≥ threshold with ≥ after the threshold became 0x101000 (probe D)', () => {
  // Probe D: malloc(1) brk+0x2a0 hdr 0x21, arena 135168, keepcost 134480; malloc(1MB) mmapped 0x101002; free →
  // threshold 0x101000, trim 0x202000; malloc(1MB) brk+0x2c0 hdr 0x100011 arena 1183744 keepcost 134464;
  // malloc(0x101000−8) mmapped 0x102002; malloc(0x101000−24) brk+0x1002d0 hdr 0x100ff1.
  const a = fresh();
  assert.equal(a.block(a.malloc(1)), { where: 'heap', chunk: 0x20, offset: 0x2a0 });
  assert.is(a.mallinfo2().arena, 135168);
  assert.is(a.mallinfo2().keepcost, 134480);
  const p = a.malloc(1 * MiB);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x101000 });
  assert.is(a.mallinfo2().hblks, 1);
  assert.is(a.mallinfo2().hblkhd, 1052672);
  a.free(p);
  assert.is(a.mallinfo2().hblks, 0);
  assert.is(a.mallinfo2().hblkhd, 0);
  assert.is(a.mmapThreshold, 0x101000);
  assert.is(a.trimThreshold, 0x202000);
  assert.equal(a.block(a.malloc(1 * MiB)), { where: 'heap', chunk: 0x100010, offset: 0x2c0 });
  assert.is(a.mallinfo2().arena, 1183744);
  assert.is(a.mallinfo2().keepcost, 134464);
  assert.equal(a.block(a.malloc(0x101000 - 8)), { where: 'mmap', chunk: 0x102000 });
  assert.equal(a.block(a.malloc(0x101000 - 24)), { where: 'heap', chunk: 0x100ff0, offset: 0x1002d0 });
});

test('§2 scenario A: a request above the threshold is served from the top when it fits', () => {
  // Scenario A: after malloc(1) the top is 134480; malloc(132000) (nb 132016 ≥ 131072) comes from the top at
  // brk+0x2c0. A second malloc(132000), the top now too small, is mmapped (ALIGN_UP(132024, 4096) = 0x21000).
  const a = fresh();
  a.malloc(1);
  assert.is(a.mallinfo2().keepcost, 134480);
  assert.equal(a.block(a.malloc(132000)), { where: 'heap', chunk: 132016, offset: 0x2c0 });
  assert.equal(a.block(a.malloc(132000)), { where: 'mmap', chunk: 0x21000 });
});

test('§2 scenario B: a request above the threshold is served from a bin (500080-byte chunk, malloc(300000) at brk+0x2a0)', () => {
  // Scenario B: a 500080-byte free chunk sits in a bin; malloc(300000) is served from it at brk+0x2a0 and split.
  // Setting it up: with M_MMAP_MAX 0 malloc(500072) (nb 500080) comes from the heap at brk+0x2a0; a guard keeps
  // it off the top; M_MMAP_MAX 65536 allows mmap again with the threshold still 131072 (no mmapped chunk was freed).
  // Remainder 500080 − 300016 = 200064, to the head of unsorted (§7.2g).
  const a = fresh();
  a.mallopt('M_MMAP_MAX', 0);
  const big = a.malloc(500072);
  assert.equal(a.block(big), { where: 'heap', chunk: 500080, offset: 0x2a0 });
  a.malloc(100);
  a.free(big);
  a.mallopt('M_MMAP_MAX', 65536);
  assert.is(a.mmapThreshold, 131072);
  assert.equal(a.block(a.malloc(300000)), { where: 'heap', chunk: 300016, offset: 0x2a0 });
  assert.equal(unsorted(a), [[0x290 + 300016, 200064]]);
});

test('§2 M_MMAP_MAX 0: a request above the threshold grows the heap instead', () => {
  // §2: "If n_mmaps ≥ n_mmaps_max (for example after M_MMAP_MAX = 0) … the request is served by growing the heap".
  const a = fresh();
  a.mallopt('M_MMAP_MAX', 0);
  a.malloc(100);
  assert.equal(a.block(a.malloc(1 * MiB)), { where: 'heap', chunk: 0x100010, offset: 0x310 });
  assert.is(a.mallinfo2().hblks, 0);
});

// ---- §3 no_dyn_threshold ----------------------------------------------------------------------------------

for (const [param, value] of [
  ['M_MMAP_THRESHOLD', 131072],
  ['M_TRIM_THRESHOLD', 131072],
  ['M_TOP_PAD', 131072],
  ['M_MMAP_MAX', 65536],
] as const) {
  test(`§3 no_dyn_threshold is set by mallopt ${param} even with the default value ${value} (probe F)`, () => {
    // Probe F: with mallopt(M_MMAP_MAX, 65536), M_TOP_PAD, M_TRIM_THRESHOLD or M_MMAP_THRESHOLD the second
    // malloc(1 MB) is mmapped again.
    const a = fresh();
    assert.is(a.noDynThreshold, false);
    assert.is(a.mallopt(param, value), 1);
    assert.is(a.noDynThreshold, true);
    const p = a.malloc(1 * MiB);
    assert.is(a.block(p).where, 'mmap');
    a.free(p);
    assert.is(a.mmapThreshold, 131072);
    assert.is(a.block(a.malloc(1 * MiB)).where, 'mmap');
  });
}

test('§3 no_dyn_threshold is NOT set by mallopt M_MXFAST (probe F)', () => {
  // Probe F: with none of them, or with M_MXFAST, the second malloc(1 MB) comes from the heap.
  const a = fresh();
  assert.is(a.mallopt('M_MXFAST', 128), 1);
  assert.is(a.noDynThreshold, false);
  const p = a.malloc(1 * MiB);
  assert.is(a.block(p).where, 'mmap');
  a.free(p);
  assert.is(a.mmapThreshold, 0x101000);
  assert.is(a.block(a.malloc(1 * MiB)).where, 'heap');
});

// ---- §5 heap growth ---------------------------------------------------------------------------------------

test('§5 top_pad: the first heap is 0x21000 and the next growth 0x31000', () => {
  // §5 worked examples: tcache nb 0x290 + 0x20000 + 0x20 → 0x21000 (arena 135168, top 134400 after
  // malloc(100)); malloc(200000) from the heap: 200016 + 131072 + 32 − 134400 = 196720 → 0x31000 (arena 335872,
  // top 135088). The threshold is raised first (§11) so that malloc(200000) comes from the heap.
  const a = fresh();
  a.malloc(100);
  assert.is(a.mallinfo2().arena, 0x21000);
  assert.is(a.brk - a.heapStart, 0x21000);
  assert.is(a.mallinfo2().keepcost, 134400);
  a.free(a.malloc(200000));
  a.malloc(200000);
  assert.is(a.mallinfo2().arena, 0x21000 + 0x31000);
  assert.is(a.brk - a.heapStart, 0x52000);
  assert.is(a.mallinfo2().keepcost, 135088);
});

test('§5 top_pad: with mallopt M_TOP_PAD 0 the heap grows by the formula with top_pad 0', () => {
  // §5: size = nb + top_pad + MINSIZE − old_top, page-rounded. top_pad 0:
  // first heap: 0x290 + 0 + 32 = 0x2b0 → 0x1000; top 0x1000 − 0x290 = 3440; malloc(100) → brk+0x2a0, top 3328.
  // malloc(10000), nb 10016 > 3328: 10016 + 0 + 32 − 3328 = 6720 → 0x2000; arena 0x3000; it sits at the old
  // top start 0x300 (user pointer 0x310); top 3328 + 8192 − 10016 = 1504.
  const a = fresh();
  a.mallopt('M_TOP_PAD', 0);
  assert.equal(a.block(a.malloc(100)), { where: 'heap', chunk: 0x70, offset: 0x2a0 });
  assert.is(a.mallinfo2().arena, 0x1000);
  assert.is(a.mallinfo2().keepcost, 3328);
  assert.equal(a.block(a.malloc(10000)), { where: 'heap', chunk: 10016, offset: 0x310 });
  assert.is(a.mallinfo2().arena, 0x3000);
  assert.is(a.mallinfo2().keepcost, 1504);
});

test('§5 the tcache struct is the first chunk, at brk+0 with size 0x290; the first user chunk is at +0x2a0', () => {
  // §5 / §7.8: tcache chunk at brk+0 size 0x290; first user pointer brk+0x2a0; §11: word at brk+8 = 0x291.
  const a = fresh();
  const p = a.malloc(100);
  assert.is(off(a, p), 0x2a0);
  const [first, second] = a.heap();
  assert.is(first.address - a.heapStart, 0);
  assert.is(first.size, 0x290);
  assert.is(first.kind, 'in-use');
  assert.is(second.address - a.heapStart, 0x290);
  assert.is(second.size, 0x70);
});

test('§5 the first memalign before any malloc: lead and tail into fastbins at brk+0x40; tcache later at brk+0xe0 (probe_first_memalign)', () => {
  // probe_first_memalign: memalign(64,100) first put its 0x30 lead chunk and its 0x40 tail into fastbins and
  // returned brk+0x40; the tcache struct was created by the next malloc at brk+0xe0; malloc(24) returned brk+0x380.
  // (_int_malloc(112 + 64 + 32) → chunk 0xe0 at brk+0; lead 0x30 at brk+0; block 0x70 at 0x30; tail 0x40 at 0xa0.)
  const a = fresh();
  const p = a.memalign(64, 100);
  assert.is(off(a, p), 0x40);
  assert.equal(a.block(p), { where: 'heap', chunk: 0x70, offset: 0x40 });
  assert.equal(fastbin(a, 1), [0x0]); // 0x30 chunk
  assert.equal(fastbin(a, 2), [0xa0]); // 0x40 chunk
  assert.equal(a.bins().tcache, []);
  const q = a.malloc(24);
  assert.is(off(a, q), 0x380);
  const tcacheStruct = a.heap().find((c) => c.address - a.heapStart === 0xe0);
  assert.ok(tcacheStruct, 'a chunk at brk+0xe0');
  assert.is(tcacheStruct!.size, 0x290);
});

// ---- §6 trim --------------------------------------------------------------------------------------------

test('§6 trim on free and malloc_trim (probe H: arena 233472 then 102400, top 132768 then 1696)', () => {
  // Probe H: a,b,c = malloc(100000)×3 → arena 335872, top after c 35136; free(c): top 135152, extra 0;
  // free(b): top 235168 → extra ALIGN_DOWN(104063) = 102400 → arena 233472, top 132768, brk-off 0x39000;
  // malloc_trim(0): extra 131072 → arena 102400, top 1696, brk-off 0x19000.
  // The abridged probe's numbers imply one 0x20 chunk before a (top 134480 as after malloc(1), probe D):
  // 134480 − 100016 = 34464; growth 100016 + 131072 + 32 − 34464 → 0x31000; 34464 + 0x31000 − 2×100016 = 35136.
  const a = fresh();
  a.malloc(1);
  a.malloc(100000);
  const b = a.malloc(100000);
  const c = a.malloc(100000);
  assert.is(a.mallinfo2().arena, 335872);
  assert.is(a.mallinfo2().keepcost, 35136);
  a.free(c);
  assert.is(a.mallinfo2().keepcost, 135152);
  assert.is(a.mallinfo2().arena, 335872);
  a.free(b);
  assert.is(a.mallinfo2().arena, 233472);
  assert.is(a.mallinfo2().keepcost, 132768);
  assert.is(a.brk - a.heapStart, 0x39000);
  assert.is(a.trim(0), 1);
  assert.is(a.mallinfo2().arena, 102400);
  assert.is(a.mallinfo2().keepcost, 1696);
  assert.is(a.brk - a.heapStart, 0x19000);
});

// ---- §7 bins and their order --------------------------------------------------------------------------------

test('§7.1 tcache is LIFO and holds 7 entries; the rest go to a fastbin (smblks 2, fsmblks 64)', () => {
  // §7.1: up to tcache_count = 7 per bin, LIFO. §8: after 9 frees of 0x20 chunks (7 to tcache, 2 to a fastbin),
  // smblks = 2 and fsmblks = 64.
  const a = fresh();
  const p = Array.from({ length: 9 }, () => a.malloc(24));
  p.forEach((q, i) => {
    assert.is(off(a, q), 0x2a0 + 0x20 * i);
  });
  for (const q of p) a.free(q);
  const chunk = (q: number) => off(a, q) - 16;
  assert.equal(tcacheBin(a, 0), p.slice(0, 7).reverse().map(chunk));
  assert.equal(fastbin(a, 0), [p[8], p[7]].map(chunk));
  assert.is(a.mallinfo2().smblks, 2);
  assert.is(a.mallinfo2().fsmblks, 64);
  assert.is(a.malloc(24), p[6]);
  assert.is(a.malloc(24), p[5]);
});

test('§7.2a fastbin is LIFO, and the stash into tcache reverses the rest', () => {
  // §7.2a: pop the fastbin head (the last freed), then move the others to tcache one by one: their order in
  // tcache is reversed. Fastbin [p9, p8, p7] → returns p9, tcache [p7, p8] → next mallocs p7, p8.
  const a = fresh();
  const p = Array.from({ length: 10 }, () => a.malloc(24));
  for (const q of p) a.free(q); // p0..p6 to tcache, p7..p9 to fastbin 0
  const chunk = (q: number) => off(a, q) - 16;
  assert.equal(fastbin(a, 0), [p[9], p[8], p[7]].map(chunk));
  for (let i = 6; i >= 0; i--) assert.is(a.malloc(24), p[i]); // empty the tcache, LIFO
  assert.is(a.malloc(24), p[9]);
  assert.equal(tcacheBin(a, 0), [p[7], p[8]].map(chunk));
  assert.equal(fastbin(a, 0), []);
  assert.is(a.malloc(24), p[7]);
  assert.is(a.malloc(24), p[8]);
});

test('§7.2b small bins are FIFO: the oldest chunk is taken, the rest stashed into tcache', () => {
  // §7.2e.iv: the unsorted scan inserts small chunks at the head of their small bin; §7.2b takes last(bin), the
  // oldest, then moves last(bin) to the tcache while it has room. 0x90 chunks (malloc(128)), tcache full first.
  const a = fresh();
  const fill = Array.from({ length: 7 }, () => a.malloc(128));
  const x: number[] = [];
  for (let i = 0; i < 3; i++) {
    x.push(a.malloc(128));
    a.malloc(24); // guard: no coalescing
  }
  for (const q of fill) a.free(q);
  for (const q of x) a.free(q);
  const chunk = (q: number) => off(a, q) - 16;
  assert.equal(
    unsorted(a),
    [x[2], x[1], x[0]].map((q) => [chunk(q), 0x90]),
  );
  a.malloc(2000); // large: scans unsorted, bins the three into small bin 9, then from the top
  assert.equal(
    bin(a, 9),
    [x[2], x[1], x[0]].map((q) => [chunk(q), 0x90]),
  );
  for (let i = 6; i >= 0; i--) assert.is(a.malloc(128), fill[i]);
  assert.is(a.malloc(128), x[0]);
  assert.equal(tcacheBin(a, 7), [x[2], x[1]].map(chunk));
  assert.equal(bin(a, 9), []);
});

test('§7.2e the unsorted scan takes the oldest chunk first (an exact fit returns the oldest)', () => {
  // §7.2e: victim = last(unsorted), the oldest; §7.8 "Unsorted is FIFO". Chunks of 1120 are above tcache.
  const a = fresh();
  const x1 = a.malloc(1100);
  a.malloc(24);
  const x2 = a.malloc(1100);
  a.malloc(24);
  a.free(x1);
  a.free(x2);
  assert.equal(unsorted(a), [
    [off(a, x2) - 16, 1120],
    [off(a, x1) - 16, 1120],
  ]);
  assert.is(a.malloc(1100), x1);
  assert.equal(unsorted(a), [[off(a, x2) - 16, 1120]]);
});

test('§7.2e.iv large bins are sorted by decreasing size; an equal size goes second in its group', () => {
  // §7.2e.iv. Bin 100 holds 4608..5119. Freed in order A 4800, B 4656, C 4800, D 5000, scanned oldest first:
  // A alone; B smaller than all → tail; C equal to A → right after A; D larger → new head. fd order D, A, C, B.
  const a = fresh();
  const [A, B, C, D] = [4792, 4648, 4792, 4992].map((req) => {
    const p = a.malloc(req);
    a.malloc(24);
    return p;
  });
  for (const p of [A, B, C, D]) a.free(p);
  a.malloc(6000); // a large request in another bin: bins the four, then served from the top
  const chunk = (q: number) => off(a, q) - 16;
  assert.equal(bin(a, 100), [
    [chunk(D), 5008],
    [chunk(A), 4800],
    [chunk(C), 4800],
    [chunk(B), 4656],
  ]);
});

test('§7.2g large bins give the best fit, taking the second member of a same-size group', () => {
  // §7.2g: from the smallest group step up to the first size ≥ nb; if that head's fd has the same size, take
  // head->fd. Bin 100 fd order D 5008, A 4800, C 4800, B 4656: malloc(4792) (nb 4800) takes C, not A.
  // Then malloc(4690) (nb 4704): B 4656 too small, A 4800 (group of one) → A, split, remainder 96 to unsorted.
  const a = fresh();
  const [A, B, C, D] = [4792, 4648, 4792, 4992].map((req) => {
    const p = a.malloc(req);
    a.malloc(24);
    return p;
  });
  for (const p of [A, B, C, D]) a.free(p);
  a.malloc(6000);
  assert.is(a.malloc(4792), C);
  assert.is(a.malloc(4690), A);
  assert.equal(unsorted(a), [[off(a, A) - 16 + 4704, 96]]);
  assert.equal(bin(a, 100), [
    [off(a, D) - 16, 5008],
    [off(a, B) - 16, 4656],
  ]);
});

test('§7.2e.i last_remainder split: a small request splits the last remainder when size > nb + 32', () => {
  // §7.2h: malloc(248) (nb 256) splits the free 1120-byte chunk X through the binmap search; the remainder 864
  // goes to unsorted and becomes last_remainder. §7.2e.i: malloc(808) (nb 816): 864 > 816 + 32 → split it.
  const a = fresh();
  const x = a.malloc(1100);
  a.malloc(24);
  a.free(x);
  const base = off(a, x) - 16;
  assert.is(a.malloc(248), x);
  assert.is(a.lastCall.path, 'binmap');
  assert.equal(unsorted(a), [[base + 256, 864]]);
  assert.is(a.bins().lastRemainder - a.heapStart, base + 256);
  const q = a.malloc(808);
  assert.is(off(a, q) - 16, base + 256);
  assert.is(a.lastCall.path, 'last-remainder');
  assert.equal(unsorted(a), [[base + 256 + 816, 48]]);
  assert.is(a.bins().lastRemainder - a.heapStart, base + 256 + 816);
});

test('§7.2e.i last_remainder split needs size > nb + 32 strictly: size == nb + 32 goes through the bins', () => {
  // Same set-up; malloc(824) (nb 832): 864 == 832 + 32, not >, so the chunk is binned (small bin 54) and found by
  // the binmap search (§7.2h), which splits it the same way (remainder 32 ≥ MINSIZE) and sets last_remainder.
  const a = fresh();
  const x = a.malloc(1100);
  a.malloc(24);
  a.free(x);
  const base = off(a, x) - 16;
  a.malloc(248);
  const q = a.malloc(824);
  assert.is(off(a, q) - 16, base + 256);
  assert.is(a.lastCall.path, 'binmap');
  assert.equal(unsorted(a), [[base + 256 + 832, 32]]);
  assert.is(a.bins().lastRemainder - a.heapStart, base + 256 + 832);
});

/** Seven 0x70 chunks for the tcache, then three adjacent 0x70 chunks and a guard; all ten freed. */
function threeFastChunks(a: Allocator): number {
  const fill = Array.from({ length: 7 }, () => a.malloc(100));
  const trio = [a.malloc(100), a.malloc(100), a.malloc(100)];
  a.malloc(24); // guard against the top
  for (const p of fill) a.free(p);
  for (const p of trio) a.free(p);
  assert.is(fastbin(a, 5).length, 3);
  return off(a, trio[0]) - 16;
}

test('§7.4 malloc_consolidate on a large request: three 0x70 fastbin chunks become one 0x150 in small bin 21 (probe "consolidate")', () => {
  // Probe "consolidate": three 0x70 fastbin chunks merged into one 0x150 chunk, in smallbin 21 after malloc(0x500).
  const a = fresh();
  const first = threeFastChunks(a);
  a.malloc(0x500);
  assert.is(a.lastCall.consolidations, 1);
  assert.equal(a.bins().fastbins, []);
  assert.equal(bin(a, 21), [[first, 0x150]]);
  assert.is(a.mallinfo2().smblks, 0);
});

test('§7.4 malloc_consolidate on mallopt (even M_MXFAST): the merged chunk goes to unsorted', () => {
  // §3 "Side effect of any mallopt call: it first calls malloc_consolidate"; §7.4 inserts at the head of unsorted.
  const a = fresh();
  const first = threeFastChunks(a);
  a.mallopt('M_MXFAST', 128);
  assert.is(a.lastCall.consolidations, 1);
  assert.equal(a.bins().fastbins, []);
  assert.equal(unsorted(a), [[first, 0x150]]);
});

test('§7.4 malloc_consolidate on malloc_trim', () => {
  // §6 malloc_trim step 1: malloc_consolidate. 0x150 < 4096 + 48, so no madvise of it.
  const a = fresh();
  const first = threeFastChunks(a);
  a.trim(0);
  assert.is(a.lastCall.consolidations, 1);
  assert.equal(a.bins().fastbins, []);
  assert.equal(unsorted(a), [[first, 0x150]]);
});

test('§7.2c a small request with an empty exact bin does not consolidate', () => {
  // §7.2c: "A small request with an empty exact bin does not consolidate here" (it fits the top, so use_top
  // never needs to consolidate either).
  const a = fresh();
  threeFastChunks(a);
  a.malloc(200);
  assert.is(a.lastCall.consolidations, 0);
  assert.is(fastbin(a, 5).length, 3);
});

test('§7.6 calloc never takes from tcache', () => {
  // §7.6: "calloc(1,24) ignored a cached 0x20 chunk". p at +0x2a0 is cached; calloc carves +0x2c0 from the top.
  const a = fresh();
  const p = a.malloc(24);
  a.free(p);
  const q = a.calloc(1, 24);
  assert.is.not(q, p);
  assert.is(off(a, q), 0x2c0);
  assert.equal(tcacheBin(a, 0), [off(a, p) - 16]);
});

test('§7.7 memalign(256,100) after malloc(24) is at brk+0x300; its lead 0x40 and tail 0xf0 go to tcache', () => {
  // §7.7 verified: memalign(256,100) after malloc(24) returned brk+0x300; lead 0x40 and tail 0xf0 to tcache.
  // (_int_malloc(112+256+32) → 0x1a0 chunk at 0x2b0; lead 0x2b0..0x2f0; block 0x70 at 0x2f0; tail at 0x360.)
  const a = fresh();
  assert.is(off(a, a.malloc(24)), 0x2a0);
  const p = a.memalign(256, 100);
  assert.equal(a.block(p), { where: 'heap', chunk: 0x70, offset: 0x300 });
  assert.equal(tcacheBin(a, (0x40 - 32) / 16), [0x2b0]);
  assert.equal(tcacheBin(a, (0xf0 - 32) / 16), [0x360]);
});

test('§7.7 memalign(4096,300000) is mmapped with front gap 0xff0 (header 0x4a012, chunk 0x4a010)', () => {
  // §7.7 verified: memalign(4096,300000) was mmapped with prev_size 0xff0 and header 0x4a012.
  const a = fresh();
  a.malloc(24);
  a.memalign(256, 100);
  const p = a.memalign(4096, 300000);
  assert.is(p % 4096, 0);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x4a010 });
  const [m] = a.mmapped();
  assert.is(m.lead, 0xff0);
  assert.is(m.size, 0x4a010);
  assert.is(a.mallinfo2().hblkhd, 0x4b000); // the mapping: 0xff0 + 0x4a010
});

// ---- §7.5 realloc ----------------------------------------------------------------------------------------

test('§7.5 realloc shrink in place: the tail (0x90) goes to tcache', () => {
  // §7.5 split: newsize − nb ≥ 32 → the tail to _int_free; "a realloc shrink remainder of 0x90 went to tcache".
  // malloc(1000) (chunk 1008) → realloc 856 (nb 864): tail 144 = 0x90 at 0x290 + 864.
  const a = fresh();
  const p = a.malloc(1000);
  assert.is(a.realloc(p, 856), p);
  assert.equal(a.block(p), { where: 'heap', chunk: 864, offset: 0x2a0 });
  assert.equal(tcacheBin(a, (0x90 - 32) / 16), [0x290 + 864]);
});

test('§7.5 realloc grows in place into the top', () => {
  // §7.5: next chunk is top and oldsize + top ≥ nb + 32 → grow in place. malloc(100): top 134400 (§5);
  // realloc 5000 (nb 5008): top 134400 − (5008 − 112) = 129504.
  const a = fresh();
  const p = a.malloc(100);
  assert.is(a.realloc(p, 5000), p);
  assert.equal(a.block(p), { where: 'heap', chunk: 5008, offset: 0x2a0 });
  assert.is(a.mallinfo2().keepcost, 129504);
});

test('§7.5 realloc keeps its address when the heap grows from the old top (probe_realloc3)', () => {
  // probe_realloc3: realloc(b, 100000) kept b's address. b (0x70) is just below a top too small for 100016:
  // _int_malloc grows the heap (100016 + 131072 + 32 − 4384 → 0x38000), the new chunk is b's physical next, so
  // they merge (112 + 100016) and the 0x70 tail goes to _int_free → tcache.
  // Top before: 134512 − 130016 (malloc(130000)) − 112 = 4384.
  const a = fresh();
  a.malloc(130000);
  const b = a.malloc(100);
  assert.is(a.mallinfo2().keepcost, 4384);
  assert.is(a.realloc(b, 100000), b);
  assert.equal(a.block(b), { where: 'heap', chunk: 100016, offset: off(a, b) });
  assert.is(a.mallinfo2().arena, 0x21000 + 0x38000);
  assert.equal(tcacheBin(a, (0x70 - 32) / 16), [off(a, b) - 16 + 100016]);
});

test('§4 realloc of an mmapped block uses mremap whatever the size and threshold (probe G)', () => {
  // Probe G: realloc(1 MB → 2 MB) gives 0x201000; realloc(…, 100) gives a 0x1000 mmapped chunk; realloc(…, 5000)
  // gives 0x2000. n_mmaps is unchanged and the dynamic threshold is untouched.
  const a = fresh();
  let p = a.malloc(1 * MiB);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x101000 });
  p = a.realloc(p, 2 * MiB);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x201000 });
  p = a.realloc(p, 100);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x1000 });
  p = a.realloc(p, 5000);
  assert.equal(a.block(p), { where: 'mmap', chunk: 0x2000 });
  assert.is(a.mallinfo2().hblks, 1);
  assert.is(a.mallinfo2().hblkhd, 0x2000);
  assert.is(a.mmapThreshold, 131072);
  assert.is(a.trimThreshold, 131072);
});

test('§3 freeing a chunk exactly at the threshold rewrites the same values: no move is reported', () => {
  // §3: the test is raw > threshold with raw = chunksize + 2, so a chunk equal to the threshold passes it,
  // "for equal sizes the update rewrites the same values, so it has no effect".
  const a = fresh();
  a.free(a.malloc(200000)); // threshold 200704 (§11)
  assert.is(a.mmapThreshold, 200704);
  const b = a.realloc(a.malloc(300000), 200680); // mremap to ALIGN_UP(200696 + 8) = 200704 (§4)
  assert.equal(a.block(b), { where: 'mmap', chunk: 200704 });
  a.free(b);
  assert.is(a.lastCall.thresholdMove, null);
  assert.is(a.mmapThreshold, 200704);
  assert.is(a.trimThreshold, 401408);
});

test('§8 malloc_stats: system and in-use bytes, totals with mmapped_mem, and the peaks of mmaps (§11 numbers)', () => {
  // §11: after malloc(100) and malloc(200000) (mmapped), arena 135168, uordblks 768, hblkhd 200704.
  // §8: Total system bytes = mmapped_mem + arena, in use = mmapped_mem + uordblks; max mmap regions and
  // bytes are the peaks (max_n_mmaps, max_mmapped_mem), so they stay after the free.
  const a = fresh();
  a.malloc(100);
  const big = a.malloc(200000);
  assert.equal(a.mallocStats(), {
    systemBytes: 135168,
    inUseBytes: 768,
    totalSystemBytes: 135168 + 200704,
    totalInUseBytes: 768 + 200704,
    maxMmapRegions: 1,
    maxMmapBytes: 200704,
    maxSystemBytes: 135168,
  });
  a.free(big);
  const after = a.mallocStats();
  assert.is(after.totalSystemBytes, 135168);
  assert.is(after.maxMmapRegions, 1);
  assert.is(after.maxMmapBytes, 200704);
});

// ---- edge values: rules found by the "edges" shape, each expected value measured with the oracle ----------

/** mallinfo2's arena, uordblks and fordblks after each call of a trace replayed through the model. */
function statsAfter(text: string): [number, number, number][] {
  return [...replay236(parseTrace(text), { stats: true, checkInvariants: true })].map((s) => [s.stats!.arena, s.stats!.uordblks, s.stats!.fordblks]);
}

test('calloc refuses a product above PTRDIFF_MAX (not only past 2^64) before setting anything up', () => {
  // Oracle, `calloc a 2 0x4000000000000000` then `malloc b 24`: the calloc returns NULL with arena 0 (no
  // tcache struct, no heap); the malloc then sets up the heap: arena 135168, uordblks 688, fordblks 134480.
  assert.equal(statsAfter('calloc a 2 0x4000000000000000\nmalloc b 24\n'), [
    [0, 0, 0],
    [135168, 688, 134480],
  ]);
  // The same through the API, where 2 * 2^62 is an exact double.
  const a = fresh();
  assert.is(a.calloc(2, 2 ** 62), 0);
  assert.is(a.mallinfo2().arena, 0);
  assert.is(off(a, a.malloc(24)), 672);
});

test('realloc of a heap block sets up the tcache before it refuses a size above PTRDIFF_MAX', () => {
  // Oracle, `memalign a 64 100` (no tcache yet: chunk 112 at +64, uordblks 112), `realloc a 0x8000000000000000`
  // (NULL, but now uordblks 768: the 0x290 tcache struct), `malloc b 24` at +896, uordblks 800.
  assert.equal(statsAfter('memalign a 64 100\nrealloc a 0x8000000000000000\nmalloc b 24\n'), [
    [135168, 112, 135056],
    [135168, 768, 134400],
    [135168, 800, 134368],
  ]);
  const a = fresh();
  const p = a.memalign(64, 100);
  assert.is(off(a, p), 64);
  assert.is(a.realloc(p, 2 ** 63), 0);
  assert.is(a.mallinfo2().uordblks, 768);
  assert.is(off(a, a.malloc(24)), 896);
});

test('sysmalloc never calls sbrk with a growth of 2^63 or more, even where sbrk could shrink the break', () => {
  // Oracle, with a 2 GiB heap and M_TOP_PAD -2^31, malloc(200000) wraps glibc's growth to 2^64 minus about
  // 2 GiB: glibc holds it in a signed long and skips MORECORE (no brk call, though the break could go down
  // that far); only the mmap fallback is tried, and fails. arena stays 2147618816, fordblks 134496.
  const trace = 'mallopt M_MMAP_MAX 0\nmalloc big 0x80000000\nmallopt M_TOP_PAD -2147483648\nmalloc x 200000\n';
  assert.equal(statsAfter(trace).slice(1), [
    [2147618816, 2147484320, 134496],
    [2147618816, 2147484320, 134496],
    [2147618816, 2147484320, 134496],
  ]);
});

test('tcache_init retries in a new 64 MiB arena when the main arena cannot hold the tcache struct', () => {
  // Oracle, `mallopt M_TOP_PAD -2147483648` then `malloc a 24`: sbrk gets a negative increment and the mmap
  // fallback a size near 2^64, so the main arena fails; tcache_init makes a second arena (a 64 MiB heap:
  // arena 67108864, uordblks 2912 = its headers and the 0x290 chunk, keepcost 0 = the main arena's top) and
  // malloc(24) itself still fails. With `mallopt M_TOP_PAD 0`, `malloc b 24` is the first chunk of the brk
  // heap (offset 16: no tcache struct there): arena 67112960, uordblks 2944, fordblks 67110016, keepcost 4064.
  const steps = [
    ...replay236(parseTrace('mallopt M_TOP_PAD -2147483648\nmalloc a 24\nmallopt M_TOP_PAD 0\nmalloc b 24\n'), { stats: true, checkInvariants: true }),
  ];
  assert.is(steps[1].where, undefined);
  assert.equal(
    steps.map((s) => [s.stats!.arena, s.stats!.uordblks, s.stats!.fordblks, s.stats!.keepcost]),
    [
      [0, 0, 0, 0],
      [67108864, 2912, 67105952, 0],
      [67108864, 2912, 67105952, 0],
      [67112960, 2944, 67110016, 4064],
    ],
  );
  assert.is(steps[3].offset, 16);
});

test('an old top above 4 GiB left behind by the mmap fallback is freed whole (no 32-bit mask)', () => {
  // Oracle: threshold 2^64-1, malloc(24), M_TOP_PAD -4096, malloc(4295000000) grows the heap too little and
  // fails (top 4294999376); malloc(4294999360) then asks sbrk for 0 bytes, so the fallback maps 4 GiB + 1 MiB
  // and the old top, fenceposted, goes to the unsorted bin: arena 8591015936, uordblks 4295000096,
  // fordblks 4296015840, keepcost 1016496.
  const text = 'mallopt M_MMAP_THRESHOLD -1\nmalloc a 24\nmallopt M_TOP_PAD -4096\nmalloc b 4295000000\nmalloc c 4294999360\n';
  const steps = [...replay236(parseTrace(text), { stats: true, checkInvariants: true, system: { commitLimit: 2 ** 40 } })];
  const last = steps[4];
  assert.is(last.chunk, 4294999376);
  assert.equal([last.stats!.arena, last.stats!.uordblks, last.stats!.fordblks, last.stats!.keepcost], [8591015936, 4295000096, 4296015840, 1016496]);
});

test('malloc_trim with a pad just under 2^64 and a 32-byte top moves the break below the top: glibc crashes', () => {
  // Oracle: `mallopt M_MMAP_MAX 0`, `malloc a 134472` leaves a 32-byte top (keepcost 32); then
  // `trim 0xffffffffffffefff` kills it with SIGSEGV (exit 139): top_area wraps to 2^64 - 1, extra to 4096,
  // sbrk(-4096) succeeds, and the top's header is no longer mapped. The pad is only exact as a bigint (as a
  // double it is 2^64 - 4096, which would ask for an impossible growth instead). The model stops there.
  const run = () => [...replay236(parseTrace('mallopt M_MMAP_MAX 0\nmalloc a 134472\ntrim 0xffffffffffffefff\n'), { stats: true })];
  try {
    run();
    assert.unreachable('the replay went past the trim');
  } catch (error) {
    assert.instance(error, MallocscopeError);
    assert.is((error as MallocscopeError).code, 'MODEL_ABORT');
    assert.match((error as Error).message, /^event 2 \(line 3, trim\): .*SIGSEGV/);
  }
  // With the pad 2^64 - 1 extra is 0: nothing happens, and the next malloc grows the heap (oracle: b at
  // +135152, arena 270336).
  const steps = [
    ...replay236(parseTrace('mallopt M_MMAP_MAX 0\nmalloc a 134472\ntrim 0xffffffffffffffff\nmalloc b 24\n'), { stats: true, checkInvariants: true }),
  ];
  assert.is(steps[3].offset, 135152);
  assert.is(steps[3].stats!.arena, 270336);
});

test.run();
