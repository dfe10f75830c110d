// The decisions the core records for each call (CallNotes with `decisions: true`), with their numbers. Every
// expected number is computed by hand from docs/glibc.md's rules (the computation is written beside it), and
// the places they lead to are the oracle's: the same traces agree with glibc in test/differential.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CallNotes } from '../dist/allocator/notes.js';
import { Replayer } from '../dist/replay/replayer.js';
import { parseTrace } from '../dist/trace/reader.js';

/** Replays `trace` recording decisions; the notes of each event (copied, as the replayer reuses them). */
/** The decisions of each call of `trace` under glibc `glibc` (2.36: the version these numbers were worked out for). */
function decisions(trace: string, glibc = '2.36'): CallNotes[] {
  const replayer = new Replayer({ decisions: true, glibc });
  return parseTrace(trace).map((event) => structuredClone(replayer.apply(event).notes));
}

test('§7.2 tcache set-up: the struct (request 640, chunk 656) comes first, by the brk that makes the heap', () => {
  const [first] = decisions('malloc a 100\n');
  // brk: 656 + top_pad 131072 + MINSIZE 32 = 131760, page-rounded to 135168; the top keeps 135168 - 656.
  assert.equal(first.tcacheInit, {
    chunk: 656,
    topBefore: 0,
    topAfter: 134512,
    path: 'sysmalloc',
    syscalls: 1,
    mmapThreshold: 131072,
    topPad: 131072,
    minsize: 32,
  });
  // The request's own search, after it: request2size(100) = 112, from the top.
  assert.is(first.path, 'top');
  assert.is(first.search?.nb, 112);
  assert.is(first.search?.top, 134512);
  assert.is(first.search?.aboveThreshold, false);
});

test('§7.3 where a freed chunk goes: the tcache while its bin has room, with the count', () => {
  const notes = decisions('malloc a 100\nfree a\n');
  assert.equal(notes[1].freed, [{ size: 112, to: 'tcache', count: 1, fill: 7, tcacheable: true, maxFast: 128, merged: 0 }]);
});

test('§6 the trim verdict and its arithmetic: merged into the top, above the trim threshold, but less than a page above the pad', () => {
  const notes = decisions('malloc a 70000\nfree a\n');
  // malloc(70000): nb 70016 from the top (134512 after the tcache struct). free: too large for the tcache and
  // the fastbins, it merges with the top back to 134512 >= 65536, so the trim check runs: 134512 >= trim
  // threshold 131072, and 134512 - (32 + 1) - top pad 131072 = 3407 is under a page: nothing to release.
  const free = notes[1];
  assert.equal(free.freed, [{ size: 70016, to: 'top', count: 0, fill: 7, tcacheable: false, maxFast: 128, merged: 134512 }]);
  assert.equal(free.trim, {
    merged: 134512,
    intoTop: true,
    consolidationThreshold: 65536,
    checked: true,
    consolidated: false,
    top: 134512,
    trimThreshold: 131072,
    topPad: 131072,
    topPadT: 131072,
    reserve: 33,
    verdict: 'under-page',
    excess: 3407,
    page: 4096,
  });
});

test('§3 the sliding threshold: the comparison of the size word, a rise, and the 32 MiB ceiling', () => {
  const notes = decisions('malloc big 200000\nfree big\nmalloc huge 40000000\nfree huge\n');
  // mmap(200000 + 8, page-rounded) = 200704; its size word 200706 > 131072: the threshold rises to 200704.
  assert.equal(notes[1].mmappedFree, { size: 200704, sizeWord: 200706, threshold: 131072, max: 33554432, verdict: 'rise' });
  assert.equal(notes[1].thresholdMove, { mmapThreshold: { from: 131072, to: 200704 }, trimThreshold: { from: 131072, to: 401408 } });
  // 40000000 + 8 page-rounded is 40001536: its size word is above 32 MiB, so the threshold stays.
  assert.equal(notes[3].mmappedFree, { size: 40001536, sizeWord: 40001538, threshold: 200704, max: 33554432, verdict: 'above-max' });
  assert.is(notes[3].thresholdMove, null);
});

test("§7.7 memalign's pieces: the misaligned lead and the spare tail, each to its own place", () => {
  const notes = decisions('malloc a 1\nmemalign b 128 100\n');
  // nb = request2size(100) = 112; _int_malloc(112 + 128 + 32 = 272) carves chunk 288 at heap +0x2b0 (after
  // the struct's 0x290 and a's 0x20). Its user pointer +0x2c0 is not 128-aligned: the chunk moves to +0x2f0
  // (user pointer +0x300), a lead of 0x40 = 64 bytes; of the 224 left, 112 are kept and a tail of 112 goes.
  const m = notes[1];
  assert.equal(m.memalign, {
    plain: false,
    mallocAlignment: 16,
    alignment: 128,
    nb: 112,
    inner: 272,
    minsize: 32,
    lead: 64,
    tail: 112,
    gap: 0,
    fromTcache: false,
  });
  assert.equal(
    m.freed.map((f) => [f.size, f.to]),
    [
      [64, 'tcache'],
      [112, 'tcache'],
    ],
  );
});

test('§7.5 realloc that shrinks in place records the tail it frees', () => {
  const [, r] = decisions('malloc a 100\nrealloc a 50\n');
  // chunk 112 holds request2size(50) = 64; the spare 48 >= MINSIZE is split off and freed.
  assert.equal(r.realloc, { old: 112, nb: 64, how: 'fits', tail: 48, top: 134400, minsize: 32, copied: 0 });
  assert.equal(
    r.freed.map((f) => [f.size, f.to]),
    [[48, 'tcache']],
  );
});

test('§1 refusals at the entry point name the limit and the value, exactly', () => {
  const notes = decisions('malloc a 0x8000000000000000\ncalloc b 0x100000000 0x100000000\nmemalign c 0x8000000000000001 1\n');
  assert.equal(notes[0].refused, { why: 'ptrdiff', value: 2n ** 63n });
  // 2^32 * 2^32 = 2^64: past SIZE_MAX, an overflow rather than a large request.
  assert.equal(notes[1].refused, { why: 'overflow', value: 2n ** 64n });
  // An alignment above 2^63 is EINVAL.
  assert.equal(notes[2].refused, { why: 'einval', value: 2n ** 63n + 1n });
});

test('without `decisions` the core keeps only the counters a summary needs', () => {
  const replayer = new Replayer();
  const notes = parseTrace('malloc a 100\nfree a\n').map((event) => structuredClone(replayer.apply(event).notes));
  assert.is(notes[0].tcacheInit, null);
  assert.equal(notes[1].freed, []);
  assert.is(notes[0].path, 'top');
});

test.run();
