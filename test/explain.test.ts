// explain's sentences, rule by rule, on small traces whose numbers come from the probes of docs/glibc.md §2, §3, §5, §6,
// §7 and §11, written by hand; and the `explain` command through the CLI (plain when piped, exit codes).
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Replayer, type ReplayOptions } from '../dist/replay/replayer.js';
import { Explainer, captureBefore, explainStep } from '../dist/report/explain.js';
import { parseTrace } from '../dist/trace/reader.js';
import { mallocscope } from './support/cli.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-explain-'));

/** The sentence of every event of `text`, under glibc 2.36 (the version these sentences were worked out for) unless said. */
function explain(text: string, options: ReplayOptions = {}): string[] {
  const explainer = new Explainer(new Replayer({ glibc: '2.36', ...options }));
  return parseTrace(text).map((event) => explainer.apply(event).sentence);
}

const FIRST_HEAP = 'no heap yet → brk +135168 for the tcache struct (chunk 656) + top pad 131072 + 32, page-rounded; ';

test('§11: the threshold slides (mmap, rise, then from the heap)', () => {
  const s = explain('malloc small 100\nmalloc big 200000\nfree big\nmalloc again 200000\n');
  assert.is(s[0], `small = malloc(100): ${FIRST_HEAP}chunk 112 carved from the top (134512 ≥ 112 + 32) → heap +0x2a0`);
  assert.is(s[1], 'big = malloc(200000): chunk 200016 ≥ mmap threshold 131072 and the top (134400) is too small → mmap 200704 bytes');
  assert.is(s[2], 'free(big): mmapped chunk 200704 > threshold 131072 → threshold 200704, trim threshold 401408; munmap 200704');
  assert.is(s[3], 'again = malloc(200000): chunk 200016 < mmap threshold 200704 and the top (134400) is too small → the heap grows: brk +200704, heap +0x310');
});

test('explainStep is a plain function of the state before, the event and the outcome', () => {
  const replayer = new Replayer({ decisions: true, glibc: '2.36' });
  const [a, b] = parseTrace('malloc small 100\nmalloc big 200000\n');
  replayer.apply(a);
  const before = captureBefore(replayer, b);
  assert.is(before.topSize, 134400);
  assert.is(before.mmapThreshold, 131072);
  assert.is(
    explainStep(before, b, replayer.apply(b)),
    'big = malloc(200000): chunk 200016 ≥ mmap threshold 131072 and the top (134400) is too small → mmap 200704 bytes',
  );
});

test('§2 scenario A: above the threshold but the top can hold it', () => {
  const s = explain('malloc one 1\nmalloc first 132000\nmalloc second 132000\n');
  assert.is(s[1], 'first = malloc(132000): chunk 132016 ≥ mmap threshold 131072, but the top (134480) can hold it → from the top, heap +0x2c0');
  assert.is(s[2], 'second = malloc(132000): chunk 132016 ≥ mmap threshold 131072 and the top (2464) is too small → mmap 135168 bytes');
});

test('§3 probes E1/E2: the 32 MiB ceiling', () => {
  const s = explain('malloc a 33550336\nfree a\nmalloc c 33546240\nfree c\nmalloc d 33546240\n');
  assert.is(s[1], 'free(a): mmapped chunk 33554432: size word 33554434 > 32 MiB (33554432) → no rise, threshold stays 131072; munmap 33554432');
  assert.is(s[3], 'free(c): mmapped chunk 33550336 > threshold 131072 → threshold 33550336, trim threshold 67100672; munmap 33550336');
  // growth: 33546256 + 131072 + 32 - 134512 = 33542848, page-rounded 33546240
  assert.is(
    s[4],
    'd = malloc(33546240): chunk 33546256 < mmap threshold 33550336 and the top (134512) is too small → the heap grows: brk +33546240, heap +0x2a0',
  );
});

test('§3 probe F: mallopt switches the sliding off; an mmapped chunk at or below the threshold never raises it', () => {
  const s = explain('mallopt M_MMAP_THRESHOLD 131072\nmalloc a 1048576\nfree a\nmalloc b 1048576\nmalloc c 4000\nrealloc b 5000\nfree b\n');
  assert.is(s[0], 'mallopt(M_MMAP_THRESHOLD, 131072): mmap threshold 131072 → 131072 and the sliding is switched off for good (no_dyn_threshold = 1)');
  assert.is(s[2], 'free(a): mmapped chunk 1052672, but mallopt switched the sliding off → no rise, threshold stays 131072; munmap 1052672');
  assert.is(s[3], 'b = malloc(1048576): chunk 1048592 ≥ mmap threshold 131072 and the top (134512) is too small → mmap 1052672 bytes');
  const t = explain('malloc a 1048576\nrealloc a 5000\nfree a\nmallopt M_TOP_PAD 0\nmallopt M_MMAP_MAX 0\n');
  assert.is(t[1], 'a = realloc(a, 5000): mmapped chunk 1052672: an mmapped block stays mmapped, whatever the threshold → mremap 1052672 → 8192 bytes');
  assert.is(t[2], 'free(a): mmapped chunk 8192 ≤ threshold 131072 → no rise; munmap 8192');
  assert.is(t[3], 'mallopt(M_TOP_PAD, 0): top pad 131072 → 0 and the sliding is switched off for good (no_dyn_threshold = 1)');
  assert.is(t[4], 'mallopt(M_MMAP_MAX, 0): n_mmaps_max 65536 → 0 (no new mmaps: large requests grow the heap) (the sliding was already off)');
});

test('M_MMAP_MAX 0: a chunk above the threshold grows the heap', () => {
  const s = explain('mallopt M_MMAP_MAX 0\nmalloc a 200000\n');
  // 200016 + 131072 + 32 - 134512 = 196608, already whole pages
  assert.is(
    s[1],
    `a = malloc(200000): ${FIRST_HEAP}chunk 200016 ≥ mmap threshold 131072, but n_mmaps has reached M_MMAP_MAX (0) and the top (134512) is too small → the heap grows: brk +196608, heap +0x2a0`,
  );
});

test('§6 probe H: trimming on free and malloc_trim', () => {
  // Probe H had a 32-byte chunk before its three blocks: then the top is 35136 after c.
  const s = explain('malloc x 1\nmalloc a 100000\nmalloc b 100000\nmalloc c 100000\nfree c\nfree b\ntrim 0\n');
  assert.is(s[4], 'free(c): merged into the top (135152 ≥ trim threshold 131072, but 135152 − 33 − top pad 131072 = 4047 is under a page) → no trim');
  assert.is(s[5], 'free(b): merged into the top (235168 ≥ trim threshold 131072) → brk −102400');
  assert.is(s[6], 'malloc_trim(0): the top (132768) gives back its whole pages above pad 0 → brk −131072');
  const t = explain('malloc a 100\nmalloc b 1000\nfree b\n');
  assert.is(t[2], 'free(b): chunk 1008 → tcache (1 of 7 in its bin)');
});

test('M_TRIM_THRESHOLD 0 with a 32-byte top: systrim wraps and the heap grows (brk +N)', () => {
  const s = explain('mallopt M_TRIM_THRESHOLD 0\nmalloc a 70000\nmalloc g 10\nmalloc f 64424\nfree a\n');
  // top: 134512 - 70016 - 32 - 64432 = 32; systrim: 32 - 33 wraps; -(−1 − 131072) rounded up to a page = 135168
  assert.is(
    s[4],
    "free(a): chunk 70016 → unsorted bin (merged 70016 ≥ 65536, top 32 ≥ trim threshold 0) → brk +135168: the top is under 33 bytes, so systrim's size_t arithmetic wraps and the heap grows instead",
  );
});

test('§7: tcache, calloc skipping it, fastbin', () => {
  const s = explain('malloc a 100\nfree a\nmalloc b 100\n');
  assert.is(s[1], 'free(a): chunk 112 → tcache (1 of 7 in its bin)');
  assert.is(s[2], 'b = malloc(100): chunk 112 reused from the tcache → heap +0x2a0');
  const c = explain('malloc a 24\nfree a\ncalloc b 1 24\n');
  assert.is(c[2], 'b = calloc(1, 24): calloc skips the tcache (it holds 1 chunk of 32); chunk 32 carved from the top (134480 ≥ 32 + 32) → heap +0x2c0');
  const ids = [0, 1, 2, 3, 4, 5, 6, 7];
  const f = explain(ids.map((i) => `malloc x${i} 24\n`).join('') + ids.map((i) => `free x${i}\n`).join('') + ids.map((i) => `malloc y${i} 24\n`).join(''));
  assert.is(f[14], 'free(x6): chunk 32 → tcache (7 of 7 in its bin)');
  assert.is(f[15], 'free(x7): chunk 32 → fastbin 0 (≤ 128, its tcache bin is full); it stays unmerged');
  assert.is(f[16], 'y0 = malloc(24): chunk 32 reused from the tcache → heap +0x360');
  assert.is(f[23], 'y7 = malloc(24): chunk 32 taken from fastbin 0 (its tcache bin is empty) → heap +0x380');
});

test('§7.2: small bin, unsorted exact fit, last remainder, large bin best fit, next larger bin', () => {
  const ids = [0, 1, 2, 3, 4, 5, 6, 7];
  const eight = `${ids.map((i) => `malloc x${i} 200\n`).join('')}malloc guard 10\n${ids.map((i) => `free x${i}\n`).join('')}`;
  const seven = [1, 2, 3, 4, 5, 6, 7].map((i) => `malloc t${i} 200\n`).join('');
  // x7 (chunk 208) went to unsorted: the tcache bin was full. x0..x7 sit at 0x2a0 + 208 i.
  const exact = explain(`${eight}${seven}malloc e 200\n`);
  assert.is(exact[17], 't1 = malloc(200): chunk 208 reused from the tcache → heap +0x780');
  assert.is(exact.at(-1), 'e = malloc(200): exact fit 208 found in the unsorted bin → heap +0x850');
  // A malloc(300) first sorts x7 into small bin 13 on its way to the top.
  const small = explain(`${eight}malloc m 300\n${seven}malloc e 200\n`);
  assert.is(small.at(-1), 'e = malloc(200): chunk 208 taken from small bin 13 → heap +0x850');

  const rem = explain('malloc big 2000\nmalloc guard 10\nfree big\nmalloc a 100\nmalloc b 100\n');
  assert.is(rem[3], 'a = malloc(100): no free chunk of 112; the next larger non-empty bin gave one, split (the rest goes to unsorted) → heap +0x2a0');
  assert.is(
    rem[4],
    'b = malloc(100): chunk 112 split off the last remainder (1904, alone in unsorted); the rest (1792) stays as the new last remainder → heap +0x310',
  );

  const large = explain('malloc a 60000\nmalloc g1 10\nmalloc b 50000\nmalloc g2 10\nfree a\nfree b\nmalloc c 45000\n');
  assert.is(large[6], 'c = malloc(45000): the smallest chunk ≥ 45008 in large bin 120 fits (best fit), split (the rest goes to unsorted) → heap +0xed30');
});

test('§5: brk fails, glibc falls back to mmap for the heap; everything fails → NULL', () => {
  // Probe 'sbrk fail': the old top is 34384; ALIGN_UP(200704 + 34384, 1 MiB) = 1 MiB.
  const s = explain('malloc a 100\nmalloc b 100000\nmalloc c 100000\n', { system: { brkLimit: 135168 } });
  assert.match(
    s[2],
    /^c = malloc\(100000\): chunk 100016 < mmap threshold 131072 and the top \(34384\) is too small → the heap grows: brk \+200704 \(failed\), so glibc maps 1048576 bytes as heap instead \(the sbrk fallback; the heap is non-contiguous from now on\), heap \+0x[0-9a-f]+$/,
  );
  // mmap(ALIGN_UP(250024, 4096) = 253952) is refused; brk +ALIGN_UP(250016 + 131072 + 32 - 134400 = 246720) = 249856 is not
  const f = explain('malloc a 100\nmalloc b 250000\n', { system: { commitLimit: 250000 } });
  assert.is(
    f[1],
    'b = malloc(250000): chunk 250016 ≥ mmap threshold 131072 and the top (134400) is too small, but mmap failed → the heap grows instead: brk +249856, heap +0x310',
  );
  const n = explain('malloc a 100\nmalloc huge 0x4000000000000\n', { system: { commitLimit: 1 << 30 } });
  assert.match(
    n[1],
    /^huge = malloc\(1125899906842624\): chunk 1125899906842640: the top \(134400\) is too small; mmap \d+ \(failed\), brk \+\d+ \(failed\), mmap \d+ \(failed\) → NULL \(ENOMEM\)$/,
  );
  const p = explain('malloc a 0x8000000000000000\nfree a\n');
  assert.match(p[0], /is above PTRDIFF_MAX → NULL \(ENOMEM\)$/);
  assert.is(p[1], 'free(a): a is NULL (its allocation failed) → nothing to do');
});

test('§7.5 realloc: shrink in place, grow into the top, move and copy; realloc(p, 0)', () => {
  const s = explain('malloc a 5000\nrealloc a 100\nrealloc a 5000\nmalloc g 10\nrealloc a 6000\nrealloc g 0\n');
  assert.is(s[1], 'a = realloc(a, 100): chunk 5008 shrinks in place to 112; the tail 4896 is freed (→ the top) → stays at heap +0x2a0');
  assert.is(s[2], 'a = realloc(a, 5000): chunk 112 grows into the top (112 + 134400 ≥ 5008 + 32) → stays at heap +0x2a0');
  // g sits right after a (0x2a0 + 5008 = 0x1630); a moves to the top after g.
  assert.is(
    s[4],
    'a = realloc(a, 6000): chunk 5008 cannot grow in place, so _int_malloc (no tcache): chunk 6016 carved from the top (129472 ≥ 6016 + 32) → heap +0x1650; 5000 bytes copied, the old chunk freed (→ unsorted)',
  );
  assert.is(s[5], 'realloc(g, 0): frees g: chunk 32 → tcache (1 of 7 in its bin) → NULL');
});

test('§7.7 memalign: lead and tail given back; mmapped front gap', () => {
  const s = explain('malloc x 24\nmemalign m 256 100\nmemalign big 4096 300000\nmemalign p 16 100\n');
  assert.is(
    s[1],
    'm = memalign(256, 100): _int_malloc(112 + alignment 256 + 32), no tcache: chunk 416 carved from the top (134480 ≥ 416 + 32); lead 64 (→ tcache) and tail 240 (→ tcache) given back → heap +0x300',
  );
  assert.is(
    s[2],
    'big = memalign(4096, 300000): _int_malloc(300016 + alignment 4096 + 32), no tcache: chunk 304160 ≥ mmap threshold 131072 and the top (134064) is too small; the 4080-byte front gap stays in the mapping (prev_size) → mmap 307200 bytes, chunk 303120',
  );
  assert.is(s[3], 'p = memalign(16, 100): alignment ≤ 16 is plain malloc: chunk 112 carved from the top (134064 ≥ 112 + 32) → heap +0x460');
});

test('mallopt M_MXFAST; malloc_trim with nothing to give', () => {
  const s = explain('malloc a 100\nmallopt M_MXFAST 0\nmallopt M_MXFAST 200\ntrim 200000\n');
  assert.is(s[1], 'mallopt(M_MXFAST, 0): fastbins take no chunk now; the sliding threshold is not affected');
  assert.is(s[2], 'mallopt(M_MXFAST, 200): refused (M_MXFAST takes 0…160) → returns 0');
  assert.is(s[3], 'malloc_trim(200000): nothing to give back (top 134400, pad 200000) → returns 0');
});

// ---- through the command line ----------------------------------------------------------------------

/** The command, in-process (test/support/cli.ts). */
const run = (args: string[]) => mallocscope(args);

test('mallocscope explain: plain sentences when piped, --from/--to, exit 0', async () => {
  const r = await run(['explain', 'examples/threshold-slides.trace', '--from', '1', '--to', '2']);
  assert.is(r.status, 0);
  assert.is(r.stderr, '');
  assert.is(
    r.stdout,
    '#1 big = malloc(200000): chunk 200016 ≥ mmap threshold 131072 and the top (134400) is too small → mmap 200704 bytes\n' +
      '#2 free(big): mmapped chunk 200704 > threshold 131072 → threshold 200704, trim threshold 401408; munmap 200704\n',
  );
  assert.not.match(r.stdout, /\x1b\[/);
  const all = await run(['explain', 'examples/trim.trace']);
  assert.is(all.stdout.split('\n').filter(Boolean).length, 7); // one sentence per call
});

test('mallocscope explain: usage errors exit 2 with one line; a bad trace exits 1', async () => {
  for (const args of [
    ['--from', 'x'],
    ['--to', '-1'],
    ['--from', '3', '--to', '1'],
    ['--policy', 'nope'],
    ['--brk-limit', 'lots'],
  ]) {
    const r = await run(['explain', 'examples/trim.trace', ...args]);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^mallocscope: .*\[USAGE\]\n$/);
  }
  const bad = join(dir, 'bad.trace');
  writeFileSync(bad, 'malloc a 1\nfree b\n');
  const r = await run(['explain', bad]);
  assert.is(r.status, 1);
  assert.is(r.stderr, `mallocscope: ${bad}:2: free of ID 'b', which is not live [TRACE_ID_NOT_LIVE]\n`);
});

test('a rule of another glibc version is said where it decides, with the version that brought it', () => {
  const probe = (name: string) => readFileSync(join(root, 'test/fixtures/versions', name), 'utf8');
  // The offsets are the real builds' (test/fixtures/versions/oracle.json).
  const realloc = explain(probe('2.39-realloc-fits-no-tcache-init.trace'), { glibc: '2.39' });
  assert.match(
    realloc[1],
    /^a = realloc\(a, 104\): 104 bytes fit the 104 usable bytes of a's block with 0 to spare \(since 2\.37 realloc returns such a block at once/,
  );
  const scan = explain(probe('2.39-memalign-tcache-scan.trace'), { glibc: '2.39' });
  assert.match(scan[6], /already 64-aligned \(since 2\.38 memalign looks there first\) → taken from the tcache, heap \+0x380$/);
  const small = explain(probe('2.41-free-small-to-smallbin.trace'), { glibc: '2.41' });
  assert.ok(
    small.some((s) => /→ its small bin \(since 2\.41 a freed small chunk skips the unsorted bin\)/.test(s)),
    small.join('\n'),
  );
  const cap = explain(probe('2.34-mmap-threshold-cap.trace'), { glibc: '2.34' });
  assert.match(cap[0], /refused: this glibc takes a threshold of at most 33554432 .* nothing changes, the sliding included$/);
  const memalign = explain(probe('2.42-memalign-inits-tcache.trace'), { glibc: '2.42' });
  assert.match(memalign[0], /^a = memalign\(64, 100\): no heap yet → brk \+135168 for the tcache struct \(chunk 768\)/);
});

// The threads probe (test/fixtures/oracle/threads-probe.trace, its lines in oracle-threads.test.ts): the oracle
// put b2 in arena 1 at heap offset 2928 (0xb70) after a 288-byte spawn, and b8 in arena 6, b9 in arena 5 at
// 3040 (0xbe0) after spawns that allocated nothing; each exit gave back 656 bytes.
test('threads: the arena a thread gets and why, the DTV of a spawn, what an exit gives back', () => {
  const s = explain(readFileSync(join(root, 'test/fixtures/oracle/threads-probe.trace'), 'utf8'), { cores: 2 });
  assert.is(s[1], "pthread_create(thread 2): thread 2 starts: its DTV (chunk 288) is calloc'd by the creating thread, in its arena");
  assert.match(
    s[2],
    /^@2 b2 = malloc\(100\): thread 2 gets a new arena 1 \(2 arenas now; no limit yet: one is worked out once more than 8 \(M_ARENA_TEST\) exist\); /,
  );
  assert.match(s[2], / → arena 1 heap 0 \+0xb70; arena 1 heap 0 mapped \(64 MiB reserved, 135168 bytes usable\)$/);
  assert.is(
    s[13],
    '@2 exit: thread 2 ends: its tcache struct (chunk 656) is freed; arena 1 joins the free list (no thread left on it); its stack is cached with its DTV (1 of 4)',
  );
  assert.match(s[17], /the cache keeps 4, so the oldest goes and the main thread frees its DTV$/);
  assert.is(s[19], 'pthread_create(thread 8): thread 8 starts on a cached stack with its DTV: nothing allocated (3 of 4 stacks left in the cache)');
  assert.match(s[20], /^@8 b8 = malloc\(100\): thread 8 takes arena 6 back from the free list \(its threads have ended\); .* → arena 6 heap 0 \+0xbe0$/);
  assert.match(s[22], /thread 9 takes arena 5 back from the free list .* → arena 5 heap 0 \+0xbe0$/);
});

test.run();
