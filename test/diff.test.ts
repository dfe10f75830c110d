// diff against the real glibc builds (a probe and a real program between 2.36 and 2.41, whose offsets and
// counts come from the oracle under each build) and against traces worked out by hand (glibc against the
// heap policy, a --set on one side); the text, --json and the exit statuses 0, 3, 1 and 2.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mallocscope } from './support/cli.ts';
import { parsePolicyColumn } from '../dist/report/compare.js';
import { diffTrace } from '../dist/report/diff.js';
import { readTrace } from '../dist/trace/reader.js';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-diff-'));
const PROBE = 'test/fixtures/diff/free-small-to-smallbin.trace';
const SLIDES = 'examples/threshold-slides.trace';
const CC1 = 'test/fixtures/real/cc1-points.trace';

const column = (text: string, glibc: string) => ({ ...parsePolicyColumn(text), glibc });
const diff = (trace: string, a: ReturnType<typeof column>, b: ReturnType<typeof column>) => {
  const reader = readTrace(trace);
  try {
    return diffTrace(reader, a, b);
  } finally {
    reader.close();
  }
};

test('2.36 against 2.41 on the small-bin probe: a is placed differently first, after x went to another bin', () => {
  const r = diff(PROBE, column('glibc', '2.36'), column('glibc', '2.41'));
  assert.is(r.events, 36);
  // The real builds (mallocscope oracle, and oracle --libc with the 2.41 build): a at 2592 under 2.36 and at
  // 2352 under 2.41, b the other way round; every block before them alike.
  assert.is(r.first?.seq, 34);
  assert.is(r.first?.line, 36);
  assert.is(r.first?.call, 'a = malloc(200)');
  assert.equal([r.first?.a.where, r.first?.a.chunk, r.first?.a.offset], ['heap', 208, 2592]);
  assert.equal([r.first?.b.where, r.first?.b.chunk, r.first?.b.offset], ['heap', 208, 2352]);
  assert.is(r.differing, 2);
  // By hand: the tcache bin of 208 is full (t1…t7) when x and y are freed; 2.36 puts x in the unsorted bin,
  // 2.41 in its small bin, and that is where the heaps part. mallinfo2 counts free bytes, not bins: alike.
  assert.is(r.firstDivergence?.seq, 25);
  assert.is(r.firstDivergence?.call, 'free(x)');
  assert.match(r.firstDivergence?.a.explanation ?? '', /→ unsorted bin/);
  assert.match(r.firstDivergence?.b.explanation ?? '', /→ its small bin/);
  assert.match(r.first?.a.explanation ?? '', /^a = malloc\(200\): .*unsorted bin → heap \+0xa20$/);
  assert.match(r.first?.b.explanation ?? '', /^a = malloc\(200\): .*small bin 13 → heap \+0x930$/);
  assert.is(r.firstMallinfo, null);
  assert.is(r.mallinfoDiffering, 0);
  assert.is(r.same, false);
});

test('diff --glibc 2.36 --glibc 2.41 prints both explanations and exits 3', async () => {
  const r = await mallocscope(['diff', PROBE, '--glibc', '2.36', '--glibc', '2.41']);
  assert.is(r.status, 3);
  assert.is(r.stderr, '');
  const lines = r.stdout.split('\n');
  assert.equal(lines.slice(0, 10), [
    `${PROBE}: 36 events`,
    'A  glibc 2.36',
    'B  glibc 2.41',
    '',
    'first placed differently: #34 (line 36) a = malloc(200)',
    '  A  exact fit 208 found in the unsorted bin → heap +0xa20',
    '  B  chunk 208 taken from small bin 13 → heap +0x930',
    'the heaps first part, earlier: #25 (line 27) free(x)',
    '  A  chunk 208 → unsorted bin',
    '  B  chunk 208 → its small bin (since 2.41 a freed small chunk skips the unsorted bin)',
  ]);
  assert.ok(lines.includes('events placed differently: 2 of 36; events after which mallinfo2 differs: 0'), r.stdout);
});

test('a real program between 2.36 and 2.41: the first difference and the counts of the real builds', () => {
  const r = diff(CC1, column('glibc', '2.36'), column('glibc', '2.41'));
  // From the oracle under this machine's 2.36 and under the 2.41 build (--stats): 1933 events place their
  // block differently, the first at seq 7357 (b4692 = malloc(48): 1155344 against 1366624); mallinfo2
  // differs after 5128, the first at seq 7360.
  assert.is(r.events, 12488);
  assert.is(r.differing, 1933);
  assert.is(r.first?.seq, 7357);
  assert.is(r.first?.call, 'b4692 = malloc(48)');
  assert.equal([r.first?.a.where, r.first?.a.chunk, r.first?.a.offset], ['heap', 64, 1155344]);
  assert.equal([r.first?.b.where, r.first?.b.chunk, r.first?.b.offset], ['heap', 64, 1366624]);
  assert.is(r.mallinfoDiffering, 5128);
  assert.is(r.firstMallinfo?.seq, 7360);
  assert.equal(r.firstMallinfo?.a.mallinfo2, { arena: 1900544, hblks: 1, hblkhd: 135168, uordblks: 1760736, fordblks: 139808, keepcost: 131616 });
  assert.equal(r.firstMallinfo?.b.mallinfo2, { arena: 1900544, hblks: 1, hblkhd: 135168, uordblks: 1760720, fordblks: 139824, keepcost: 131616 });
  // The heaps parted earlier, where a freed small chunk took the 2.41 road.
  assert.ok(r.firstDivergence !== null && r.firstDivergence.seq < 7357);
  assert.match(r.firstDivergence?.b.explanation ?? '', /small bin/);
});

test('a real program the real 2.36 and 2.41 replay alike (perl-hash, mallinfo2 included): exit 0', async () => {
  const r = await mallocscope(['diff', 'test/fixtures/real/perl-hash.trace', '--glibc', '2.36', '--glibc', '2.41']);
  assert.is(r.status, 0);
  assert.match(r.stdout, /\nevery event places its block alike\n/);
  assert.match(r.stdout, /\nevents placed differently: 0 of 11297; events after which mallinfo2 differs: 0\n/);
});

test('glibc against the heap policy on threshold-slides.trace, by hand', () => {
  const r = diff(SLIDES, column('glibc', '2.36'), column('heap', '2.36'));
  // #0 small: both carve chunk 112 at +0x2a0 from the first 135168 bytes of brk.
  // #1 big = malloc(200000), chunk 200016 ≥ 131072 and the top (134400) too small: glibc maps 200704 bytes;
  //    heap (M_MMAP_MAX 0) grows the heap by 200016 + 131072 + 32 − 134400 → 200704 and carves it at 0x300
  //    (offset 0x310 = 784). mallinfo2 differs: arena 135168 against 335872.
  // #2 free(big): glibc unmaps it; heap merges it into the top and trims 335104 − 131072 − 33 → 200704 back:
  //    both heaps are 135168 with 768 in use again, so mallinfo2 agrees.
  // #3 again = malloc(200000): both grow the heap by 200704 and carve it at +0x310: alike.
  assert.is(r.differing, 1);
  assert.is(r.first?.seq, 1);
  assert.is(r.first?.line, 8);
  assert.equal([r.first?.a.where, r.first?.a.chunk, r.first?.a.offset], ['mmap', 200704, null]);
  assert.equal([r.first?.b.where, r.first?.b.chunk, r.first?.b.offset], ['heap', 200016, 784]);
  assert.is(r.firstDivergence?.seq, 1);
  assert.is(r.mallinfoDiffering, 1);
  assert.is(r.firstMallinfo?.seq, 1);
  assert.is(r.firstMallinfo?.a.mallinfo2.arena, 135168);
  assert.is(r.firstMallinfo?.b.mallinfo2.arena, 335872);
  // Peaks: glibc 135168 + 200704 mapped at #1; heap 135168 + 200704 of brk at #1: the same footprint.
  assert.equal([r.a.peakFootprint, r.b.peakFootprint, r.difference.peakFootprint], [335872, 335872, 0]);
  assert.equal([r.a.peakMmapped, r.b.peakMmapped, r.difference.peakMmapped], [200704, 0, -200704]);
  // glibc: brk (#0), mmap (#1), munmap (#2), brk (#3); heap: brk at #0, #1, #2 (the trim) and #3.
  assert.equal(r.a.syscalls, { brk: 2, mmap: 1, munmap: 1, mremap: 0, madvise: 0, mprotect: 0, failed: 0 });
  assert.equal(r.b.syscalls, { brk: 4, mmap: 0, munmap: 0, mremap: 0, madvise: 0, mprotect: 0, failed: 0 });
  assert.equal(r.difference.syscalls, { brk: 2, mmap: -1, munmap: -1, mremap: 0, madvise: 0, mprotect: 0, failed: 0 });
});

test('a lone --set is B against plain glibc: M_TOP_PAD=0 parts at the first brk, places differently at #3', async () => {
  const r = await mallocscope(['diff', SLIDES, '--glibc', '2.36', '--set', 'M_TOP_PAD=0', '--json']);
  assert.is(r.status, 3);
  const json = JSON.parse(r.stdout);
  assert.is(json.a.label, 'glibc 2.36');
  assert.is(json.b.label, 'glibc 2.36, M_TOP_PAD=0');
  assert.equal(json.b.settings, [{ param: 'M_TOP_PAD', value: 0 }]);
  // By hand: #0 grows the heap by 656 + 112 + 131072 + 32 → 135168 in A, by 656 + 112 + 0 + 32 → 4096 in B.
  // mallopt stops the sliding in B, so after free(big) its threshold stays 131072: #3 is mmapped in B, from
  // the heap in A (threshold 200704). #1 is mmapped on both sides (the top is too small in both).
  assert.is(json.firstDivergence.seq, 0);
  assert.is(json.firstMallinfo.seq, 0);
  assert.equal([json.firstMallinfo.a.mallinfo2.arena, json.firstMallinfo.b.mallinfo2.arena], [135168, 4096]);
  assert.is(json.first.seq, 3);
  assert.equal([json.first.a.where, json.first.a.offset, json.first.b.where, json.first.b.chunk], ['heap', 784, 'mmap', 200704]);
  assert.is(json.differing, 1);
});

test('the same configuration twice: every event alike, exit 0', async () => {
  for (const args of [
    ['--glibc', '2.36', '--glibc', '2.36'],
    ['--policy', 'heap', '--policy', 'heap', '--glibc', '2.41'],
  ]) {
    const r = await mallocscope(['diff', PROBE, ...args]);
    assert.is(r.status, 0, args.join(' '));
    assert.is(r.stderr, '');
    assert.match(r.stdout, /\nevery event places its block alike\nthe two heaps stay alike after every event\nmallinfo2 is the same after every event\n/);
    assert.match(r.stdout, /\nevents placed differently: 0 of 36; events after which mallinfo2 differs: 0\n/);
  }
  const r = await mallocscope(['diff', SLIDES, '--policy', 'glibc', '--policy', 'glibc', '--json']);
  assert.is(r.status, 0);
  const json = JSON.parse(r.stdout);
  assert.equal([json.first, json.firstDivergence, json.firstMallinfo, json.same], [null, null, null, true]);
});

test('--json: the documented keys', async () => {
  const r = await mallocscope(['diff', SLIDES, '--policy', 'glibc', '--policy', 'heap', '--glibc', '2.36', '--json']);
  assert.is(r.status, 3);
  const json = JSON.parse(r.stdout);
  assert.equal(Object.keys(json), [
    'trace',
    'a',
    'b',
    'events',
    'differing',
    'first',
    'firstDivergence',
    'mallinfoDiffering',
    'firstMallinfo',
    'difference',
    'same',
  ]);
  assert.is(json.trace, SLIDES);
  assert.equal([json.a.label, json.a.policy, json.a.glibc, json.b.label, json.b.policy], ['glibc 2.36', 'glibc', '2.36', 'glibc 2.36, heap', 'heap']);
  assert.equal(Object.keys(json.first), ['seq', 'line', 'op', 'id', 'call', 'a', 'b']);
  assert.equal(Object.keys(json.first.a), ['where', 'chunk', 'offset', 'mallinfo2', 'explanation']);
  assert.equal(Object.keys(json.first.a.mallinfo2), ['arena', 'hblks', 'hblkhd', 'uordblks', 'fordblks', 'keepcost']);
  assert.equal([json.first.op, json.first.id, json.first.call], ['malloc', 'big', 'big = malloc(200000)']);
  assert.match(json.first.a.explanation, /^big = malloc\(200000\): .*→ mmap 200704 bytes$/);
  assert.equal(Object.keys(json.difference), ['peakFootprint', 'peakHeap', 'peakMmapped', 'endFootprint', 'syscalls']);
  assert.is(json.events, 4);
  assert.is(json.a.events, 4);
});

test('usage mistakes exit 2 with one line; a trace that cannot be read exits 1', async () => {
  for (const args of [
    ['diff', SLIDES],
    ['diff', SLIDES, '--glibc', '2.36'],
    ['diff', SLIDES, '--glibc', '9.99', '--glibc', '2.36'],
    ['diff', SLIDES, '--glibc', '2.35', '--glibc', '2.36', '--glibc', '2.41'],
    ['diff', SLIDES, '--policy', 'glibc', '--policy', 'heap', '--set', 'M_TOP_PAD=0'],
    ['diff', SLIDES, '--policy', 'nonsense'],
    ['diff', SLIDES, '--set', 'M_TOP_PAD'],
    ['diff', '--glibc', '2.36', '--glibc', '2.41'],
  ]) {
    const r = await mallocscope(args);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^mallocscope: [^\n]*\[USAGE\]\n$/, args.join(' '));
    assert.is(r.stdout, '', args.join(' '));
  }
  const bad = join(dir, 'bad.trace');
  writeFileSync(bad, 'malloc a 10\nfree b\n');
  const r = await mallocscope(['diff', bad, '--glibc', '2.36', '--glibc', '2.41']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /^mallocscope: [^\n]*:2: [^\n]*\[TRACE_[A-Z_]+\]\n$/);
});

test('diff --help says how the sides are given and what the exit statuses mean', async () => {
  const r = await mallocscope(['diff', '--help']);
  assert.is(r.status, 0);
  assert.match(r.stdout, /given once apply to both sides; given twice, the first\s+is A and the second B/);
  assert.match(r.stdout, /Exit status: 0 when every event places its block alike and leaves the same mallinfo2; 3 when the two\s+differ/);
});

test.run();
