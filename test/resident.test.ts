// The resident-pages model (docs/resident.md) on the simulated kernel, against the real glibc: the oracle's
// --touch and --rss, the model's estimate moving as the real RSS moves (from the oracle, event by event), the
// one documented gap, hand-worked page counts, and the options that show it (replay, compare, oracle).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadAddon } from '../dist/native.js';
import { oracleArgs, runOracleSync, type OracleEvent } from '../dist/oracle/oracle.js';
import { Replayer } from '../dist/replay/replayer.js';
import { ResidentPages } from '../dist/system/resident.js';
import { SimulatedSystem } from '../dist/system/simulated.js';
import { generateTrace, shapeByName, type TraceShape } from '../dist/trace/generate.js';
import { parseTrace } from '../dist/trace/reader.js';
import { formatCall } from '../dist/trace/writer.js';
import { mallocscope } from './support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-resident-'));
/** This machine's page size, the unit of the oracle's RSS. */
const page = loadAddon().pageSize();
const MiB = 1024 * 1024;

function traceFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The oracle's rss after each event, as pages more than after the first event (statm counts the process too). */
function realPages(path: string, touch = true): number[] {
  const { lines, exit } = runOracleSync(path, { touch, rss: true });
  assert.is(exit.status, 0, exit.stderr);
  const rss = lines.map((line) => (JSON.parse(line) as OracleEvent).rss as number);
  return rss.map((r) => (r - rss[0]) / page);
}

/** The model's estimate after each event, the same way. */
function modelPages(text: string): number[] {
  const replayer = new Replayer({ resident: true });
  const totals = parseTrace(text).map((event) => {
    replayer.apply(event);
    return replayer.resident?.total as number;
  });
  return totals.map((t) => (t - totals[0]) / replayer.model.system.pageSize);
}

// A mapped block of 1 MiB: its mapping is request + 16-byte header rounded up to pages (docs/glibc.md §4), and
// the program's 1 MiB from byte 16 on reaches into its last page: every page of the mapping is written.
const MAPPED = 'malloc w 16\nmalloc big 1048576\nfree big\n';
const mappedPages = Math.ceil((16 + MiB) / page);

test('oracle --touch --rss: a mapped block written whole raises rss by its pages; munmap drops them again', () => {
  // Measured here 20 times over: exactly these figures every time. One page either way is left for the
  // process's own stack or static data, which the oracle cannot tell from glibc's.
  const [first, mapped, freed] = realPages(traceFile('mapped.trace', MAPPED));
  assert.is(first, 0);
  assert.ok(Math.abs(mapped - mappedPages) <= 1, `rss rose by ${mapped} pages, not ${mappedPages}`);
  assert.ok(Math.abs(freed) <= 1, `rss is ${freed} pages from where it started after the munmap`);
});

test('oracle --rss without --touch: only the page glibc writes (the mapped chunk header) becomes resident', () => {
  const [, mapped, freed] = realPages(traceFile('mapped.trace', MAPPED), false);
  // Measured: 1 page, then 0. The header is one 16-byte write at the mapping's start.
  assert.ok(mapped >= 0 && mapped <= 2, `rss rose by ${mapped} pages without --touch`);
  assert.ok(Math.abs(freed) <= 1);
});

test('oracle --touch --rss: glibc decides exactly as without them (they allocate nothing)', () => {
  const path = traceFile('everything.trace', `${[...generateTrace(shapeByName('everything') as TraceShape, 3, 400)].map((c) => formatCall(c)).join('\n')}\n`);
  const plain = runOracleSync(path, { stats: true });
  const measured = runOracleSync(path, { stats: true, touch: true, rss: true });
  assert.is(measured.exit.status, 0, measured.exit.stderr);
  const withoutRss = measured.lines.map((line) => {
    const event = JSON.parse(line) as OracleEvent;
    assert.type(event.rss, 'number');
    delete event.rss;
    return event;
  });
  // Every placement and every mallinfo2 the same: the writes and the measuring go through no malloc.
  assert.equal(
    withoutRss,
    plain.lines.map((line) => JSON.parse(line)),
  );
});

test('the model moves as the real RSS does: munmap, mremap growing, shrinking and moving, brk shrinking, malloc_trim madvise', () => {
  const traces: Record<string, string> = {
    mapped: MAPPED,
    // realloc of a mapped block: mremap 1 MiB -> 2 MiB (the new pages untouched until written: the program
    // writes the whole new size), down to one page, up to two, then freed.
    mremap: 'malloc a 1048576\nrealloc a 2097152\nrealloc a 100\nrealloc a 5000\nrealloc a 0\n',
    // The break shrinks twice (a free into a top past the trim threshold, then malloc_trim).
    brk: 'malloc x 16\nmalloc a 100000\nmalloc b 100000\nmalloc c 100000\nfree c\nfree b\ntrim 0\n',
    // A free chunk pinned below the top: malloc_trim(0) madvises its interior pages away.
    madvise: 'mallopt M_MMAP_MAX 0\nmalloc a 16\nmalloc big 400000\nmalloc pin 16\nfree big\ntrim 0\n',
  };
  for (const [name, text] of Object.entries(traces)) {
    // Measured 15 times over each: the same figures every time, equal to the model's at every event.
    assert.equal(modelPages(text), realPages(traceFile(`${name}.trace`, text)), name);
  }
});

test('the documented gap: glibc writes the top chunk header on a page the program has not written', () => {
  // The heap block h ends exactly on a page boundary (chunk 200016 at heap +0x2b0 ends at 200704 = 49 pages):
  // glibc then writes the top's size field at 200712, on page 49, which the program never writes. The real
  // RSS has that page; the model, which leaves glibc's metadata out, has not.
  const text = 'malloc w 16\nmalloc big 1048576\nfree big\nmalloc h 200000\nfree h\n';
  const model = modelPages(text);
  const real = realPages(traceFile('top-header.trace', text));
  assert.is(model[3], 48);
  assert.is(real[3] - model[3], 1);
  assert.is(real[4] - model[4], 1);
});

test('page counts worked by hand: touched pages from the offsets, dropped as the break shrinks', () => {
  const replayer = new Replayer({ resident: true });
  const p = replayer.model.system.pageSize;
  const totals = parseTrace('malloc x 16\nmalloc a 100000\nmalloc b 100000\nmalloc c 100000\nfree c\nfree b\ntrim 0\n').map((event) => {
    replayer.apply(event);
    return replayer.resident?.total;
  });
  // The bytes of the pages that [from, to) of the heap covers.
  const pages = (from: number, to: number) => (Math.ceil(to / p) - Math.floor(from / p)) * p;
  assert.equal(totals, [
    pages(672, 688), // x at heap +672 (after the tcache's chunk), 16 bytes: page 0
    pages(672, 704 + 100000), // a at +704: pages 0 to 24
    pages(672, 100720 + 100000), // b at +100720: up to page 49
    pages(672, 200736 + 100000), // c at +200736: up to page 73
    pages(672, 300736), // free c: the top becomes 135152, less than a page above the 128 KiB pad: nothing goes
    pages(0, 335872 - 102400), // free b: brk -102400 from 335872, the pages above 233472 go
    pages(0, 233472 - 131072), // trim 0: brk -131072
  ]);
  const resident = replayer.resident as ResidentPages;
  assert.is(resident.peak, pages(672, 300736));
  assert.is(resident.peakSeq, 3);
  const now = resident.now();
  assert.equal(now, { heap: totals[6], mmapped: 0, threadHeaps: 0, total: totals[6] });
  assert.is(resident.bytesIn(resident.heapStart, p), p);
  assert.is(resident.bytesIn(resident.heapStart + 30 * p, p), 0);
});

test('the estimate splits by where the pages are: heap, mmapped, thread heaps', () => {
  const replayer = new Replayer({ resident: true, threads: true });
  const p = replayer.model.system.pageSize;
  for (const event of parseTrace('malloc a 16\nmalloc big 1048576\nspawn 2\n@2 malloc t 100\n')) replayer.apply(event);
  const now = (replayer.resident as ResidentPages).now();
  assert.is(now.heap, p);
  assert.is(now.mmapped, Math.ceil((16 + MiB) / p) * p);
  // The thread's block lies in its arena's first heap, past heap_info, malloc_state and its tcache: one page.
  assert.is(now.threadHeaps, p);
  assert.is(now.total, now.heap + now.mmapped + now.threadHeaps);
  // Per heap, as docs/resident.md says to ask: the one thread heap holds all of it.
  const resident = replayer.resident as ResidentPages;
  const heaps = [...replayer.model.heaps.values()];
  assert.is(heaps.length, 1);
  assert.is(resident.bytesIn(heaps[0].base, heaps[0].size), now.threadHeaps);
});

test('over the simulated kernel the writes are counted, and what needs real bytes is refused', () => {
  const resident = new ResidentPages(new SimulatedSystem());
  const p = resident.pageSize;
  resident.touch(resident.heapStart + p - 1, 2);
  assert.is(resident.total, 2 * p);
  assert.throws(
    () => resident.memory.bytes(resident.heapStart, 8),
    (error: { code?: string }) => error.code === 'NO_BYTES',
  );
});

test('replay --touch: the estimate in the summary, replay --json and --jsonl; compare --touch rows', async () => {
  const path = traceFile('brk.trace', 'malloc x 16\nmalloc a 100000\nfree a\n');
  const json = await mallocscope(['replay', path, '--touch', '--json']);
  assert.is(json.status, 0, json.stderr);
  const estimate = JSON.parse(json.stdout).residentEstimate;
  assert.is(estimate.total, estimate.heap);
  assert.is(estimate.peakEvent, 1);
  const lines = await mallocscope(['replay', path, '--touch', '--jsonl']);
  const resident = lines.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line).resident);
  assert.is(resident[1], estimate.peak);
  const summary = await mallocscope(['replay', path, '--touch']);
  assert.match(summary.stdout, /resident \(est\.\) +\d+/);
  assert.match(summary.stdout, new RegExp(`peak resident +${estimate.peak} .*after event 1`));
  const compare = await mallocscope(['compare', path, '--touch']);
  assert.match(compare.stdout, new RegExp(`peak RSS \\(est\\.\\) +${estimate.peak} +${estimate.peak} +${estimate.peak}`));
  assert.match(compare.stdout, /end RSS \(est\.\)/);
  const plain = await mallocscope(['compare', path]);
  assert.not.match(plain.stdout, /RSS/);
  assert.equal(oracleArgs('t', { touch: true, rss: true }), ['--touch', '--rss', '--', 't']);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
