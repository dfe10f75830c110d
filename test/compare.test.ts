// compare's figures against hand-checked traces (docs/glibc.md §3, §6, §11), through the module and through
// the command line (table, --json, column order, exit codes), and the progress bar's drawing rules.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mallocscope } from './support/cli.ts';
import { Progress } from '../dist/cli/progress.js';
import { compareTrace, parsePolicyColumn, parseSetColumn, parseSetting } from '../dist/report/compare.js';
import { parseTrace } from '../dist/trace/reader.js';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-compare-'));

/** A policy column under glibc 2.36, the version these figures were worked out for. */
const at236 = (text: string) => ({ ...parsePolicyColumn(text), glibc: '2.36' });

test('threshold-slides.trace under glibc, fixed:131072 and heap, by hand', () => {
  const [glibc, fixed, heap] = compareTrace('examples/threshold-slides.trace', ['glibc', 'fixed:131072', 'heap'].map(at236));
  // glibc (§11): arena 135168, then 335872 after the heap grows by 200704; big was mmapped (200704) meanwhile.
  // Live: 100, 100 + 200000, 100, 100 + 200000. Footprint: 135168, 335872, 135168, 335872.
  const { metrics, ...figures } = glibc;
  assert.equal(
    { ...figures, fragmentationAtPeakFootprint: 0, fragmentationAtPeakLive: 0 },
    {
      label: 'glibc',
      policy: 'glibc',
      settings: [],
      glibc: '2.36',
      events: 4,
      peakHeap: 335872,
      peakMmapped: 200704,
      peakFootprint: 335872,
      peakFootprintSeq: 1,
      liveAtPeakFootprint: 200100,
      fragmentationAtPeakFootprint: 0,
      peakLive: 200100,
      peakLiveSeq: 1,
      footprintAtPeakLive: 335872,
      fragmentationAtPeakLive: 0,
      arenas: 1,
      threads: 1,
      endHeap: 335872,
      endMmapped: 0,
      endFootprint: 335872,
      endLive: 200100,
      syscalls: { brk: 2, mmap: 1, munmap: 1, mremap: 0, madvise: 0, mprotect: 0, failed: 0 },
      thresholdMoves: 1,
      finalMmapThreshold: 200704,
      finalTrimThreshold: 401408,
      slidingOff: false,
    },
  );
  assert.ok(Math.abs(glibc.fragmentationAtPeakFootprint! - (335872 / 200100 - 1)) < 1e-12);
  assert.ok(Math.abs(glibc.fragmentationAtPeakLive! - (335872 / 200100 - 1)) < 1e-12);
  // Johnstone and Wilson's four (docs/anatomy.md): the footprints and live bytes above, averaged over the 4
  // events for #1; both peaks are first reached at seq 1. At the end the heap holds the tcache struct (656),
  // small (112) and again (200016): the rest of 335872, 135088, is the top, all of the free share.
  const near = (a: number | null, b: number) => a !== null && Math.abs(a - b) < 1e-12;
  assert.ok(near(metrics.averageFootprintOverAverageLive, (135168 + 335872 + 135168 + 335872) / (100 + 200100 + 100 + 200100)));
  assert.ok(near(metrics.footprintOverLiveAtPeakLive, 335872 / 200100));
  assert.ok(near(metrics.peakFootprintOverLiveAtPeakFootprint, 335872 / 200100));
  assert.ok(near(metrics.peakFootprintOverPeakLive, 335872 / 200100));
  assert.ok(near(metrics.freeShareAtEnd, (335872 - 656 - 112 - 200016) / 335872));
  // fixed: the threshold never moves, so 'again' is mmapped too: the heap stays 135168.
  assert.is(fixed.peakHeap, 135168);
  assert.is(fixed.peakMmapped, 200704);
  assert.is(fixed.peakFootprint, 335872);
  assert.is(fixed.endFootprint, 135168 + 200704);
  assert.equal(fixed.syscalls, { brk: 1, mmap: 2, munmap: 1, mremap: 0, madvise: 0, mprotect: 0, failed: 0 });
  assert.is(fixed.thresholdMoves, 0);
  // heap: big grows the heap by 200016 + 131072 + 32 - 134400 -> 200704; freeing it merges into the top
  // (335104 - 33 - 131072 -> brk -200704), and 'again' grows it once more.
  assert.is(heap.peakHeap, 335872);
  assert.is(heap.peakMmapped, 0);
  assert.equal(heap.syscalls, { brk: 4, mmap: 0, munmap: 0, mremap: 0, madvise: 0, mprotect: 0, failed: 0 });
});

test('trim.trace with M_TRIM_THRESHOLD settings; fragmentation at both peaks', () => {
  const [glibc, never] = compareTrace('examples/trim.trace', [at236('glibc'), { ...parseSetColumn('M_TRIM_THRESHOLD=2147483647'), glibc: '2.36' }]);
  // The trace starts with malloc(1) as probe H did (§6). Live peaks at 300001 (seq 3) with the arena at
  // 335872; the footprint peaks first at seq 2 (live 200001).
  assert.is(glibc.peakFootprint, 335872);
  assert.is(glibc.peakFootprintSeq, 2);
  assert.is(glibc.liveAtPeakFootprint, 200001);
  assert.ok(Math.abs(glibc.fragmentationAtPeakFootprint! - (335872 / 200001 - 1)) < 1e-12);
  assert.is(glibc.peakLive, 300001);
  assert.ok(Math.abs(glibc.fragmentationAtPeakLive! - (335872 / 300001 - 1)) < 1e-12);
  // free(b) trims 102400 and malloc_trim(0) 131072 (§6, probe H): 335872 - 233472 = 102400 left.
  assert.is(glibc.endFootprint, 102400);
  assert.is(glibc.endLive, 100001);
  // A trim threshold nobody reaches: free never trims; malloc_trim(0) still does (it ignores the threshold).
  assert.is(never.label, 'M_TRIM_THRESHOLD=2147483647');
  assert.is(never.slidingOff, true);
  assert.is(never.finalTrimThreshold, 2147483647);
  assert.is(never.syscalls.brk, 3);
  assert.is(never.endFootprint, 102400);
});

test('no live bytes: fragmentation is null', () => {
  const [f] = compareTrace(parseTrace('malloc a 100\nfree a\n'), [parsePolicyColumn('glibc')]);
  assert.is(f.peakFootprint, 135168);
  assert.is(f.liveAtPeakFootprint, 100);
  const [g] = compareTrace(parseTrace('trim 0\n'), [parsePolicyColumn('glibc')]);
  assert.is(g.fragmentationAtPeakFootprint, null);
  assert.is(g.fragmentationAtPeakLive, null);
  // Nothing live, no footprint: every measure is null. With a block freed, #1 still averages both events.
  assert.equal(g.metrics, {
    averageFootprintOverAverageLive: null,
    footprintOverLiveAtPeakLive: null,
    peakFootprintOverLiveAtPeakFootprint: null,
    peakFootprintOverPeakLive: null,
    freeShareAtEnd: null,
  });
  assert.is(f.metrics.averageFootprintOverAverageLive, (135168 + 135168) / (100 + 0));
});

test('settings and columns parse, and refuse what mallopt cannot take', () => {
  assert.equal(parseSetting('M_TOP_PAD=0x1000'), { param: 'M_TOP_PAD', value: 4096 });
  assert.equal(parseSetting('M_MMAP_MAX=-1'), { param: 'M_MMAP_MAX', value: -1 });
  assert.equal(parsePolicyColumn('heap,M_TOP_PAD=0'), { label: 'heap,M_TOP_PAD=0', policy: 'heap', settings: [{ param: 'M_TOP_PAD', value: 0 }] });
  assert.equal(parseSetColumn('M_TOP_PAD=0,M_MXFAST=0').settings.length, 2);
  for (const bad of ['M_TOP_PAD', 'M_FOO=1', 'M_TOP_PAD=2147483648', 'M_TOP_PAD=1k']) assert.throws(() => parseSetting(bad), /./);
  assert.throws(() => parsePolicyColumn('nope'), /unknown policy/);
});

// ---- through the command line ----------------------------------------------------------------------

const run = (args: string[]) => mallocscope(args);

test('mallocscope compare: the table, columns in command-line order, glibc baseline before --set alone', async () => {
  const r = await run(['compare', 'examples/threshold-slides.trace', '--policy', 'glibc', '--policy', 'fixed:131072', '--policy', 'heap']);
  assert.is(r.status, 0);
  assert.is(r.stderr, '');
  const lines = r.stdout.split('\n');
  assert.match(lines[0], /^examples\/threshold-slides\.trace: 4 events, glibc \d+\.\d+$/);
  assert.match(lines[1], /^\s+glibc\s+fixed:131072\s+heap$/);
  assert.match(r.stdout, /\npeak heap\s+335872\s+135168\s+335872\n/);
  assert.match(r.stdout, /\npeak mmapped\s+200704\s+200704\s+0\n/);
  assert.match(r.stdout, /\n {2}fragmentation\s+67\.9%\s+67\.9%\s+67\.9%\n/);
  assert.match(r.stdout, /\nfinal threshold\s+200704\s+131072 \(fixed\)\s+131072 \(fixed\)\n/);
  // Johnstone and Wilson's #4 in every column: the peak footprint 335872 over the peak live 200100.
  assert.match(r.stdout, /\nJ&W #4 peak F \/ peak L\s+1\.679\s+1\.679\s+1\.679\n/);
  const s = await run(['compare', 'examples/trim.trace', '--set', 'M_TRIM_THRESHOLD=0', '--set', 'M_TOP_PAD=0,M_TRIM_THRESHOLD=0']);
  assert.match(s.stdout.split('\n')[1], /^\s+glibc\s+M_TRIM_THRESHOLD=0\s+M_TOP_PAD=0,M_TRIM_THRESHOLD=0$/);
});

test('mallocscope compare --json', async () => {
  const r = await run(['compare', 'examples/threshold-slides.trace', '--set', 'M_MMAP_THRESHOLD=262144', '--policy', 'mmap', '--json']);
  assert.is(r.status, 0);
  const json = JSON.parse(r.stdout);
  assert.is(json.trace, 'examples/threshold-slides.trace');
  assert.equal(
    json.columns.map((c: { label: string }) => c.label),
    ['M_MMAP_THRESHOLD=262144', 'mmap'],
  );
  // A threshold of 262144: big (200016) comes from the heap, which grows to 335872; nothing is mmapped.
  assert.is(json.columns[0].peakHeap, 335872);
  assert.is(json.columns[0].peakMmapped, 0);
});

test('mallocscope compare: usage errors exit 2 with one line; a bad trace exits 1', async () => {
  for (const args of [['--policy', 'nope'], ['--set', 'M_FOO=1'], ['--set', 'M_TOP_PAD'], ['--brk-limit', 'x'], ['--set']]) {
    const r = await run(['compare', 'examples/trim.trace', ...args]);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^mallocscope: [^\n]*\[USAGE\]\n$/);
  }
  const bad = join(dir, 'bad.trace');
  writeFileSync(bad, 'malloc a 1\nmalloc a 2\n');
  const r = await run(['compare', bad]);
  assert.is(r.status, 1);
  assert.match(r.stderr, new RegExp(`^mallocscope: ${bad}:2: .*\\[TRACE_[A-Z_]+\\]\\n$`));
});

// ---- the progress bar ------------------------------------------------------------------------------

test('progress: silent off a terminal and for short traces; draws and erases on one', async () => {
  const written: string[] = [];
  const stream = { isTTY: true, columns: 100, write: (text: string) => written.push(text) > 0 };
  assert.is(Progress.forTrace('examples/trim.trace', 'replay', { stream }).active, false); // 7 events
  assert.is(Progress.forTrace('examples/trim.trace', 'replay', { stream: { ...stream, isTTY: false }, minEvents: 0 }).active, false);
  assert.is(Progress.forTrace('-', 'replay', { stream, minEvents: 0 }).active, false);
  const big = join(dir, 'big.trace');
  writeFileSync(big, 'malloc a 1\nfree a\n'.repeat(60000));
  let now = 1000;
  const progress = Progress.forTrace(big, 'replay', { stream, clock: () => now, env: { NO_COLOR: '1' } });
  assert.is(progress.active, true);
  progress.tick({ seq: 0, line: 1 }); // within the first 100 ms: nothing yet
  assert.is(written.length, 0);
  now += 150;
  progress.tick({ seq: 0, line: 1 });
  progress.tick({ seq: 1, line: 2 }); // not a multiple of 4096: no clock read, no drawing
  assert.is(written.length, 1);
  assert.match(written[0], /^\r\x1b\[2Kreplay [█░]+ +0% {2}0 events/);
  progress.done();
  assert.is(written[1], '\r\x1b[2K');
  // Piped (the tests' stderr): the command prints nothing but its errors.
  const r = await run(['replay', big]);
  assert.is(r.status, 0);
  assert.is(r.stderr, '');
});

test.run();
