// The footprint's anatomy against the real glibc (docs/anatomy.md): the parts sum to the footprint at every
// event (sampled on long traces) and the footprint is the oracle's arena + hblkhd there; what malloc_trim(0)
// would give back is what a real malloc_trim(0) inserted at that event gives back (the arena's drop, and the
// bytes of its madvise calls as strace sees them); the pin and the fragmentation measures on hand-made traces
// whose figures come from the oracle; and the command's output and errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FREE_PARTS, PART_NAMES, footprintAnatomy, freeBytes, sumParts } from '../dist/allocator/anatomy.js';
import { oracleCommand, runOracleSync } from '../dist/oracle/oracle.js';
import { anatomyOfTrace, formatAnatomy, trimEstimate } from '../dist/report/anatomy.js';
import { Replayer } from '../dist/replay/replayer.js';
import { SHAPES, THREAD_SHAPES, generateTrace } from '../dist/trace/generate.js';
import { readTrace } from '../dist/trace/reader.js';
import { TraceWriter } from '../dist/trace/writer.js';
import { mallocscope } from './support/cli.ts';
import { unless } from './support/skip.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-anatomy-'));
const haveStrace = spawnSync('strace', ['-V']).status === 0;
const straceTest = unless(test, haveStrace ? undefined : 'needs strace (Debian package strace)');

interface Stats {
  seq: number;
  id: string;
  offset?: number;
  chunk?: number;
  arena: number;
  hblkhd: number;
  fordblks: number;
  keepcost: number;
}

/** The real glibc's lines, with mallinfo2, for a trace file. */
function oracle(path: string): Stats[] {
  const run = runOracleSync(path, { stats: true });
  assert.is(run.exit.status, 0, run.exit.stderr);
  return run.lines.map((line) => JSON.parse(line) as Stats);
}

const footprintOf = (s: Stats) => s.arena + s.hblkhd;

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function generated(shape: (typeof SHAPES)[number], seed: number, events: number): string {
  const path = join(dir, `${shape.name}-${seed}.trace`);
  const writer = new TraceWriter({ path });
  for (const call of generateTrace(shape, seed, events)) writer.write(call);
  writer.close();
  return path;
}

/**
 * Replays `path` and, after every `every`th event and the last, checks the anatomy: its parts (and each
 * arena's, and the mappings') sum to the footprint, the footprint is glibc's arena + hblkhd, the payload is
 * the live bytes, and the free parts are the free bytes the counters give. Returns how many events it checked.
 */
function walkAgrees(path: string, every: number): number {
  const glibc = oracle(path);
  const replayer = new Replayer();
  const reader = readTrace(path);
  let checked = 0;
  for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
    const seq = outcome.seq;
    if (seq % every !== 0 && seq !== glibc.length - 1) continue;
    const m = replayer.model;
    const a = footprintAnatomy(m, (visit) => replayer.forEachLive(visit));
    const where = `${path} event ${seq}`;
    assert.is(a.footprint, footprintOf(glibc[seq]), `${where}: footprint against glibc's arena + hblkhd`);
    assert.is(a.heap, glibc[seq].arena, `${where}: heap`);
    assert.is(sumParts(a.parts), a.footprint, `${where}: parts sum`);
    for (const arena of a.arenas) assert.is(sumParts(arena.parts), arena.footprint, `${where}: arena ${arena.index}`);
    assert.is(sumParts(a.mappings), a.mmapped, `${where}: mappings`);
    assert.is(a.parts.payload, replayer.liveBytes, `${where}: payload`);
    assert.is(
      FREE_PARTS.reduce((sum, name) => sum + a.parts[name], 0),
      freeBytes(m),
      `${where}: free parts`,
    );
    for (const name of PART_NAMES) assert.ok(a.parts[name] >= 0, `${where}: ${name} is ${a.parts[name]}`);
    checked++;
  }
  return checked;
}

test('parts sum to the footprint, which is glibc arena + hblkhd: random shapes, threads, an example, a real program', () => {
  // One shape of each kind of workload (small churn, around the threshold, huge, realloc, memalign, mallopt).
  const shapes = [0, 13, 26, 39, 52, 62].map((i) => SHAPES[i % SHAPES.length]);
  let checked = 0;
  for (const [i, shape] of shapes.entries()) checked += walkAgrees(generated(shape, 100 + i, 250), 1);
  const threaded = ['threads-workers', 'threads-heaps', 'threads-huge', 'threads-tcache-exit'];
  for (const name of threaded) {
    const shape = THREAD_SHAPES.find((s) => s.name === name);
    assert.ok(shape, name);
    checked += walkAgrees(generated(shape, 7, 250), 1);
  }
  checked += walkAgrees('examples/growing-buffers.trace', 1);
  checked += walkAgrees('test/fixtures/real/perl-hash.trace', 400);
  assert.ok(checked > 2500, `only ${checked} events checked`);
});

test('a block no ID names (realloc ID 0 of a NULL block is malloc(0), and the ID ends) stays in the anatomy to the end', () => {
  // The first malloc fails (NULL), so `realloc a 0` is realloc(NULL, 0): a block the program keeps under no name.
  const path = write('unnamed.trace', 'malloc a 0xffffffffffffffff\nrealloc a 0\nmalloc b 10\nmalloc c 20\nfree b\n');
  assert.is(walkAgrees(path, 1), 5);
  const glibc = oracle(path);
  assert.ok(glibc[1].chunk, 'glibc returned a block for realloc(NULL, 0)');
  const end = anatomyOfTrace(() => readTrace(path), 'end');
  // The overhead is the unnamed chunk whole (0 bytes asked) and c's chunk beyond its 20 bytes.
  assert.is(end.parts.overhead, glibc[1].chunk! + glibc[3].chunk! - 20);
  assert.is(end.parts.payload, 20);
});

/** The trace's lines up to event `seq`'s line (the file's own text, comments kept), then `trim 0`. */
function withTrimAfter(path: string, line: number, name: string): { trimmed: string; prefix: string } {
  const lines = readFileSync(path, 'utf8').split('\n').slice(0, line);
  return { prefix: write(`${name}.prefix.trace`, `${lines.join('\n')}\n`), trimmed: write(`${name}.trim.trace`, `${lines.join('\n')}\ntrim 0\n`) };
}

/** The bytes a real run of `path` advised away (madvise), as strace sees every thread make the calls. */
function madvisedUnderStrace(path: string): number {
  const command = oracleCommand(path);
  const r = spawnSync('strace', ['-f', '-e', 'trace=madvise', '-e', 'signal=none', command.file, ...command.args], { encoding: 'utf8', env: command.env });
  assert.is(r.status, 0, r.stderr);
  let bytes = 0;
  for (const m of r.stderr.matchAll(/madvise\(0x[0-9a-f]+, (\d+), MADV_DONTNEED\) = 0/g)) bytes += Number(m[1]);
  return bytes;
}

/**
 * At each of `seqs`: the model's estimate against a real malloc_trim(0) inserted after that event (the
 * footprint's drop in glibc's mallinfo2); at those of `straced` too (when strace is here), the madvise bytes,
 * as the difference of two runs under strace: with the trim, and without.
 */
function trimAgrees(path: string, seqs: number[], straced: number[], name: string): { released: number; madvised: number } {
  const replayer = new Replayer();
  const reader = readTrace(path);
  const total = { released: 0, madvised: 0 };
  for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
    if (!seqs.includes(outcome.seq)) continue;
    const seq = outcome.seq;
    const estimate = trimEstimate(replayer);
    const { prefix, trimmed } = withTrimAfter(path, outcome.line, `${name}-${seq}`);
    const glibc = oracle(trimmed);
    assert.is(glibc.length, seq + 2, `${name}: the trimmed trace ends with the trim`);
    const where = `${name} event ${seq}`;
    assert.is(estimate.released, footprintOf(glibc[seq]) - footprintOf(glibc[seq + 1]), `${where}: released`);
    total.released += estimate.released;
    if (haveStrace && straced.includes(seq)) {
      assert.is(estimate.madvised, madvisedUnderStrace(trimmed) - madvisedUnderStrace(prefix), `${where}: madvised`);
      total.madvised += estimate.madvised;
    }
  }
  return total;
}

test('trimmable: a real malloc_trim(0) after the event gives back what the estimate says', () => {
  let released = 0;
  released += trimAgrees('test/fixtures/real/perl-hash.trace', [7085], [], 'perl').released;
  released += trimAgrees('examples/trim.trace', [2, 4, 5], [], 'trim-example').released;
  const churn = SHAPES.find((s) => s.freeOrder === 'random' && s.sizes.some(([, max]) => max >= 64 * 1024)) ?? SHAPES[0];
  released += trimAgrees(generated(churn, 11, 400), [99, 199, 299, 399], [], churn.name).released;
  const threads = THREAD_SHAPES.find((s) => s.name === 'threads-trim');
  assert.ok(threads);
  released += trimAgrees(generated(threads, 5, 400), [150, 399], [], threads.name).released;
  assert.ok(released > 0, 'no trim released anything');
});

test('trimmable: the resident bytes a real malloc_trim(0) takes out of RAM (oracle --touch --rss) are the estimate with --touch', () => {
  // The program writes every byte it asks for (the oracle's --touch, the model's resident option); the trim's
  // effect on RSS is the real process's resident bytes before the trim less after it.
  const cases: [string, number[], string][] = [
    ['test/fixtures/real/perl-hash.trace', [7085, 11296], 'perl-rss'],
    ['examples/trim.trace', [2, 4, 5], 'trim-example-rss'],
  ];
  const threads = THREAD_SHAPES.find((s) => s.name === 'threads-trim');
  assert.ok(threads);
  cases.push([generated(threads, 5, 400), [150, 399], `${threads.name}-rss`]);
  let resident = 0;
  for (const [path, seqs, name] of cases) {
    const replayer = new Replayer({ resident: true });
    const reader = readTrace(path);
    for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
      if (!seqs.includes(outcome.seq)) continue;
      const estimate = trimEstimate(replayer);
      assert.ok(estimate.resident !== undefined, 'a resident figure with the resident model');
      const { trimmed } = withTrimAfter(path, outcome.line, `${name}-${outcome.seq}`);
      const run = runOracleSync(trimmed, { stats: true, touch: true, rss: true });
      assert.is(run.exit.status, 0, run.exit.stderr);
      const rss = run.lines.map((line) => (JSON.parse(line) as { rss: number }).rss);
      assert.is(estimate.resident, rss[outcome.seq] - rss[outcome.seq + 1], `${name} event ${outcome.seq}: resident bytes the trim takes out of RAM`);
      resident += estimate.resident!;
    }
    reader.close();
  }
  assert.ok(resident > 0, 'no trim took resident bytes');
});

straceTest('trimmable: the bytes malloc_trim(0) would advise away are what strace sees a real one advise', () => {
  // perl-hash at its end holds 232672 bytes in its unsorted bin; a threaded trace's arenas advise too.
  let madvised = trimAgrees('test/fixtures/real/perl-hash.trace', [11296], [11296], 'perl-strace').madvised;
  const threads = THREAD_SHAPES.find((s) => s.name === 'threads-trim');
  assert.ok(threads);
  madvised += trimAgrees(generated(threads, 5, 400), [399], [399], `${threads.name}-strace`).madvised;
  assert.ok(madvised > 0, 'no trim advised anything away');
});

test('pinned: a live block above a freed big one keeps the heap; glibc gives the space back only once it is freed', () => {
  // small's chunk (2016) is past the tcache, so once freed it merges with big's and the top.
  const text = ['malloc big 100000', 'malloc small 2000', 'free big', ''].join('\n');
  const path = write('pin.trace', text);
  const report = anatomyOfTrace(() => readTrace(path), 'end');
  const glibc = oracle(path);
  // The pin is 'small', where glibc put it, made by line 2 (event 1); above it only the top (keepcost).
  assert.equal(report.pinned, {
    kind: 'live',
    id: 'small',
    offset: glibc[1].offset,
    chunk: glibc[1].chunk,
    madeBy: { seq: 1, line: 2 },
    freeAbove: glibc[2].keepcost,
  });
  const smallEnd = (glibc[1].offset as number) - 16 + (glibc[1].chunk as number);
  // malloc_trim(0) now: the heap still ends above the pin (the top's extra pages go, big's bytes stay).
  const kept = oracle(write('pin-trim.trace', `${text}trim 0\n`));
  assert.ok(kept[3].arena > smallEnd, `after trim the heap ends at ${kept[3].arena}, the pin at ${smallEnd}`);
  assert.is(report.trimmableParts.released, glibc[2].arena - kept[3].arena);
  // Once the pin is freed the same trim gives big's pages back too (the heap ends before big's end): nothing pins.
  const freedText = `${text}free small\n`;
  const freed = oracle(write('pin-freed.trace', `${freedText}trim 0\n`));
  const bigEnd = (glibc[0].offset as number) - 16 + (glibc[0].chunk as number);
  assert.ok(freed[4].arena < bigEnd, `with the pin freed the heap ends at ${freed[4].arena}, big ended at ${bigEnd}`);
  const after = anatomyOfTrace(() => readTrace(write('pin-freed-only.trace', freedText)), 'end');
  assert.is(after.pinned, null);
  assert.is(after.trimmableParts.released, glibc[2].arena - freed[4].arena);
});

test("nothing pins, yet nothing goes back: main_arena's top in a region mapped when the break could not grow (glibc gives none of it back)", () => {
  // The break may grow 150000 bytes: the third 100000-byte block comes from an mmap'ed heap region, where the
  // top then lies; malloc_trim gives back only a top that ends at the break.
  const text = ['malloc a 100', 'malloc b 100000', 'malloc c 100000', 'malloc d 100000', 'free c', 'malloc e 50', 'free d', ''].join('\n');
  const path = write('fallback-top.trace', text);
  const report = anatomyOfTrace(() => readTrace(path), 'end', { system: { brkLimit: 150000 } });
  const run = runOracleSync(write('fallback-top-trim.trace', `${text}trim 0\n`), { stats: true, brkLimit: 150000 });
  assert.is(run.exit.status, 0, run.exit.stderr);
  const glibc = run.lines.map((line) => JSON.parse(line) as Stats);
  const last = glibc.length - 1;
  assert.is(report.trimmableParts.released, footprintOf(glibc[last - 1]) - footprintOf(glibc[last]), 'what the real trim released');
  assert.is(report.trimmableParts.released, 0);
  assert.ok(report.parts.top > 0, 'a top that stays');
  assert.is(report.trimmableParts.topVerdict, 'not-at-break');
  assert.is(report.pinned, null);
  assert.match(formatAnatomy(report, path), "main_arena's top does not end at the program break");
});

test('pinned: a freed block the tcache keeps pins the heap as a live one does (glibc keeps the heap above it)', () => {
  // small's chunk (112) goes to the tcache when freed: to glibc it stays in use, and nothing merges past it.
  const text = ['malloc big 100000', 'malloc small 100', 'free big', 'free small', ''].join('\n');
  const path = write('pin-tcache.trace', text);
  const glibc = oracle(path);
  const report = anatomyOfTrace(() => readTrace(path), 'end');
  assert.equal(report.pinned, {
    kind: 'tcache',
    id: null,
    offset: glibc[1].offset,
    chunk: glibc[1].chunk,
    madeBy: { seq: 1, line: 2 },
    freeAbove: glibc[3].keepcost,
  });
  const trimmed = oracle(write('pin-tcache-trim.trace', `${text}trim 0\n`));
  const smallEnd = (glibc[1].offset as number) - 16 + (glibc[1].chunk as number);
  assert.ok(trimmed[4].arena > smallEnd, `after trim the heap ends at ${trimmed[4].arena}, the tcache'd block at ${smallEnd}`);
  assert.is(report.trimmableParts.released, glibc[3].arena - trimmed[4].arena);
});

test('metrics: the four of Johnstone and Wilson and the free share, from oracle footprints and the live bytes by hand', () => {
  const path = write(
    'metrics.trace',
    ['malloc a 2000', 'malloc b 200000', 'free a', 'malloc c 50000', 'free b', ''].join('\n'), // b is mmapped (above 128 KiB)
  );
  const glibc = oracle(path);
  const f = glibc.map(footprintOf);
  // Live bytes after each event, by hand: a; a + b; b; b + c; c.
  const live = [2000, 202000, 200000, 250000, 50000];
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  const peakF = Math.max(...f);
  const peakL = Math.max(...live);
  const report = anatomyOfTrace(() => readTrace(path), 'end');
  const close = (actual: number | null, expected: number, what: string) =>
    assert.ok(actual !== null && Math.abs(actual - expected) < 1e-12, `${what}: ${actual} vs ${expected}`);
  close(report.metrics.averageFootprintOverAverageLive, sum(f) / sum(live), '#1');
  close(report.metrics.footprintOverLiveAtPeakLive, f[live.indexOf(peakL)] / peakL, '#2');
  close(report.metrics.peakFootprintOverLiveAtPeakFootprint, peakF / live[f.indexOf(peakF)], '#3');
  close(report.metrics.peakFootprintOverPeakLive, peakF / peakL, '#4');
  // The peak footprint is first reached at event 1 (b mapped), with less live than at the peak of live.
  assert.is(f.indexOf(peakF), 1);
  // No tcache'd chunk here (a's 2016 is past the tcache), so the free bytes are mallinfo2's fordblks.
  close(report.metrics.freeShare, glibc[4].fordblks / f[4], 'free share');
  assert.is(report.footprint, f[4]);
  // --at peak is event 1; its footprint is glibc's there.
  const peak = anatomyOfTrace(() => readTrace(path), 'peak');
  assert.is(peak.event, 1);
  assert.is(peak.footprint, f[1]);
  assert.is(peak.parts.mmapSlack + peak.parts.payload + peak.parts.overhead >= 200000, true);
});

test('anatomy command: JSON, the table, --at, and its errors', async () => {
  const json = await mallocscope(['anatomy', 'examples/trim.trace', '--at', '5', '--json', '--glibc', '2.36']);
  assert.is(json.status, 0, json.stderr);
  const report = JSON.parse(json.stdout);
  assert.is(report.event, 5);
  assert.is(report.line, 10);
  // examples/trim.trace's own comments: arena 233472 after `free b`, 102400 after `trim 0`.
  assert.is(report.footprint, 233472);
  assert.is(report.trimmable, 233472 - 102400 + report.trimmableParts.madvised);
  assert.is(
    Object.values(report.parts as Record<string, number>).reduce((s, x) => s + x, 0),
    report.footprint,
  );
  const table = await mallocscope(['anatomy', 'examples/trim.trace', '--at', 'peak', '--glibc', '2.36']);
  assert.is(table.status, 0, table.stderr);
  assert.match(table.stdout, /after event 2 \(line 7, malloc\)/);
  assert.match(table.stdout, /total \(the footprint\)\s+335872\s+100\.0%/);
  const past = await mallocscope(['anatomy', 'examples/trim.trace', '--at', '7']);
  assert.is(past.status, 2);
  assert.match(past.stderr, /--at 7 is past the end: examples\/trim\.trace has 7 events \(0 to 6\)/);
  const bad = await mallocscope(['anatomy', 'examples/trim.trace', '--at', 'middle']);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /--at takes peak, end or an event's seq/);
  const broken = await mallocscope(['anatomy', write('broken.trace', 'malloc a 10\nfree b\n')]);
  assert.is(broken.status, 1);
  assert.match(broken.stderr, /broken\.trace:2: .*\[TRACE_/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
