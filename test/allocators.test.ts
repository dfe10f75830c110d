// compare --allocator (docs/allocators.md): a real program's trace replayed under glibc, jemalloc, tcmalloc and
// mimalloc, each in the oracle's --foreign mode; glibc's column held to the real glibc's own figures (oracle
// --stats --touch --rss) and to the model (its system calls, as strace counts them, failed ones too), threads,
// the errors, the oracle built without -pie, and the strace log's count worked by hand. Skipped, saying which package is missing, where a library is not installed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadAddon } from '../dist/native.js';
import { ALLOCATORS, allocatorLibrary, findAllocatorLibrary, runAllocator, type AllocatorName, type AllocatorSyscalls } from '../dist/oracle/allocators.js';
import { runOracleSync, type OracleEvent } from '../dist/oracle/oracle.js';
import { countStraceLog, findStrace } from '../dist/oracle/strace.js';
import { formatAllocatorTable, type AllocatorColumn } from '../dist/report/allocators.js';
import { compareTrace, parsePolicyColumn } from '../dist/report/compare.js';
import { renderRssChart } from '../dist/report/html/rss-chart.js';
import { mallocscope } from './support/cli.ts';
import { testProgram } from './support/programs.ts';
import { unless } from './support/skip.ts';

const PERL = 'test/fixtures/real/perl-hash.trace';
const FOREIGN: AllocatorName[] = ['jemalloc', 'tcmalloc', 'mimalloc'];
const missing = FOREIGN.filter((name) => findAllocatorLibrary(name) === null).map((name) => ALLOCATORS[name].package);
const needsAll = unless(test, missing.length > 0 ? `needs Debian's ${missing.join(', ')} (not installed here)` : undefined);
// The threads test needs one allocator besides glibc: the first installed.
const another = FOREIGN.find((name) => findAllocatorLibrary(name) !== null);
const needsOne = unless(test, another === undefined ? "needs one of Debian's libjemalloc2, libtcmalloc-minimal4, libmimalloc2.0" : undefined);
const haveStrace = findStrace() !== null;
const needsStrace = unless(test, haveStrace ? undefined : "needs strace (Debian's strace, not installed here)");
/** This machine's page size, the unit of resident memory. */
const page = loadAddon().pageSize();

/** The memory calls the model made, in the shape strace's count takes. */
function modelCalls(path: string): Record<string, number> {
  const { syscalls } = compareTrace(path, [parsePolicyColumn('glibc')])[0];
  return { brk: syscalls.brk, mmap: syscalls.mmap, munmap: syscalls.munmap, mremap: syscalls.mremap, madvise: syscalls.madvise, mprotect: syscalls.mprotect };
}

needsAll('perl-hash under four allocators: real, differing RSS; glibc as the oracle and the model see it', async () => {
  const r = await mallocscope(['compare', PERL, ...['glibc', 'jemalloc', 'tcmalloc', 'mimalloc'].flatMap((a) => ['--allocator', a]), '--json']);
  assert.is(r.status, 0, r.stderr);
  const { trace, columns } = JSON.parse(r.stdout) as { trace: string; columns: AllocatorColumn[] };
  assert.is(trace, PERL);
  assert.equal(
    columns.map((c) => c.label),
    ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc'],
  );

  // The real glibc replaying the same trace with a line per call: mallinfo2 and the resident bytes after each.
  const { lines, exit } = runOracleSync(PERL, { stats: true, touch: true, rss: true });
  assert.is(exit.status, 0, exit.stderr);
  const events = lines.map((line) => JSON.parse(line) as OracleEvent);
  const rss = events.map((e) => e.rss as number);

  for (const c of columns) {
    assert.is(c.events, events.length, c.label);
    // Each replay called the malloc it names: the preloaded library, or glibc's.
    const library = ALLOCATORS[c.allocator as AllocatorName].library;
    assert.is(basename(c.malloc).startsWith(library ?? 'libc.so'), true, `${c.label} ran ${c.malloc}`);
    assert.ok(c.startRss > 0 && c.peakRss > c.startRss && c.endRss > c.startRss, `${c.label}: ${c.startRss} ${c.peakRss} ${c.endRss}`);
    assert.ok(c.peakRss >= c.endRss);
    assert.is(c.peakRss % page, 0);
    // The samples: the highest of each bucket, so their highest is the peak, found in the peak's bucket.
    assert.is(Math.max(...c.rssSamples.max), c.peakRss);
    assert.is(c.rssSamples.max[Math.floor((c.peakRssSeq as number) / c.rssSamples.every)], c.peakRss);
    assert.is(c.rssSamples.max.length, Math.ceil(events.length / c.rssSamples.every));
    assert.ok(c.replayNs > 0);
    if (haveStrace) assert.ok(c.syscalls !== null, c.syscallsNotCounted);
    else assert.match(c.syscallsNotCounted ?? '', /strace/);
  }
  // Four allocators, four different peaks (the smallest glibc's here, tcmalloc's start-up alone 4 MiB).
  assert.is(new Set(columns.map((c) => c.peakRss)).size, 4, columns.map((c) => c.peakRss).join(' '));

  const [glibc] = columns;
  // glibc's column is what the oracle's own --touch --rss reports: the same peak, the same end, the same event.
  assert.is(glibc.peakRss, Math.max(...rss));
  assert.is(glibc.endRss, rss[rss.length - 1]);
  assert.is(glibc.peakRssSeq, rss.indexOf(glibc.peakRss));
  // The model's footprint beside it is the real glibc's (mallinfo2: arena + hblkhd), at its peak and at the end.
  const footprints = events.map((e) => (e.arena as number) + (e.hblkhd as number));
  assert.ok(glibc.model !== undefined);
  assert.is(glibc.model.peakFootprint, Math.max(...footprints));
  assert.is(glibc.model.endFootprint, footprints[footprints.length - 1]);
  // The model's resident estimate counts what the program's writes make resident, so it is the real growth over
  // what the process held before the first call, within the page docs/resident.md explains.
  assert.ok(Math.abs(glibc.model.peakResident - (glibc.peakRss - glibc.startRss)) <= page, `${glibc.model.peakResident} ${glibc.peakRss - glibc.startRss}`);
  // strace's count of the real glibc's calls is the model's.
  if (haveStrace && glibc.syscalls) {
    const { other, failed, threadStacks, ...calls } = glibc.syscalls;
    const { failed: modelFailed, ...modelSyscalls } = glibc.model.syscalls;
    assert.equal(calls, modelSyscalls);
    assert.is(modelFailed, 0);
    assert.equal({ other, failed, threadStacks }, { other: {}, failed: 0, threadStacks: 0 });
  }

  // The table shows the same figures, a column each.
  const table = formatAllocatorTable(columns).split('\n');
  assert.equal(table[0].trim().split(/\s+/), ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc']);
  const row = (name: string) =>
    table
      .find((line) => line.startsWith(name))
      ?.slice(name.length)
      .trim()
      .split(/\s{2,}/);
  assert.equal(
    row('peak RSS'),
    columns.map((c) => `${c.peakRss}`),
  );
  assert.equal(row('  peak footprint'), [`${glibc.model.peakFootprint}`, '—', '—', '—']);

  // The report's chart: a line per allocator, its highest point at the allocator's peak.
  const svg = renderRssChart(columns);
  const lines4 = [...svg.matchAll(/<polyline class="rss" data-allocator="(\w+)" stroke="[^"]+" points="([^"]+)"/g)];
  assert.equal(
    lines4.map((m) => m[1]),
    ['glibc', 'jemalloc', 'tcmalloc', 'mimalloc'],
  );
  const tops = lines4.map((m) => Math.min(...m[2].split(' ').map((p) => Number(p.split(',')[1]))));
  // Heights rank as the peaks do (y grows downwards).
  const byPeak = [...columns.keys()].sort((a, b) => columns[a].peakRss - columns[b].peakRss);
  const byTop = [...tops.keys()].sort((a, b) => tops[b] - tops[a]);
  assert.equal(byTop, byPeak);
});

needsOne("a trace with threads: glibc as the model counts it (the threads' stacks apart), and another allocator", () => {
  const path = 'test/fixtures/oracle/threads-trim.trace';
  const glibc = runAllocator(path, 'glibc', { timingRuns: 1 });
  const other = runAllocator(path, another as AllocatorName, { timingRuns: 1 });
  for (const run of [glibc, other]) {
    assert.is(run.events, 13);
    assert.ok(run.peakRss > run.startRss);
  }
  // The model's resident estimate leaves out the thread's stack, of which the thread touches two pages (its
  // descriptor and TLS, and the frames it runs in): the real growth is the estimate and those two pages.
  const [estimate] = compareTrace(path, [parsePolicyColumn('glibc')], { resident: true });
  assert.is(glibc.peakRss - glibc.startRss - (estimate.peakResident as number), 2 * page);
  if (haveStrace) {
    assert.ok(glibc.syscalls !== null, glibc.syscallsNotCounted);
    const { other: rest, failed, threadStacks, ...calls } = glibc.syscalls as AllocatorSyscalls;
    const model = modelCalls(path);
    // new_heap cuts its 128 MiB reservation down to an aligned 64 MiB: a munmap before and after, or only after
    // when the kernel placed it 64 MiB-aligned (where ASLR puts it, about one run in 16384; the model's kernel
    // never does here).
    assert.ok(calls.munmap === model.munmap || calls.munmap === model.munmap - 1, `munmap ${calls.munmap}, the model ${model.munmap}`);
    assert.equal({ ...calls, munmap: model.munmap }, model);
    // One spawn: pthread_create's stack mapping and its mprotect, counted apart.
    assert.equal({ rest, failed, threadStacks }, { rest: {}, failed: 0, threadStacks: 2 });
    assert.is(other.syscalls?.threadStacks, 2);
  }
});

needsStrace("failing calls: glibc's column counts them as the model does, each under its name and in `failed`", async () => {
  // brk-fail.trace's heap, whose growth for c the blocker at 0x30000 refuses (the kernel's brk returns the old
  // break: a brk, failed), then the mmap fallback of 1 MiB; malloc(PTRDIFF_MAX): its own mapping and the fallback
  // heap's, both refused (two mmaps, failed); calloc's product overflows, which glibc refuses with no call at all.
  const dir = mkdtempSync(join(tmpdir(), 'mallocscope-allocators-'));
  const path = join(dir, 'failing.trace');
  writeFileSync(path, 'malloc a 100\nmalloc b 100000\nmalloc c 100000\nmalloc huge 9223372036854775807\ncalloc over 4611686018427387904 4\n');
  const r = await mallocscope(['compare', path, '--allocator', 'glibc', '--brk-limit', '0x30000', '--json']);
  assert.is(r.status, 0, r.stderr);
  const [glibc] = (JSON.parse(r.stdout) as { columns: AllocatorColumn[] }).columns;
  assert.ok(glibc.syscalls !== null && glibc.model !== undefined, glibc.syscallsNotCounted);
  const { other, threadStacks, ...real } = glibc.syscalls;
  assert.equal(real, { brk: 2, mmap: 3, munmap: 0, mremap: 0, madvise: 0, mprotect: 0, failed: 3 });
  assert.equal(real, glibc.model.syscalls);
  assert.equal({ other, threadStacks }, { other: {}, threadStacks: 0 });
});

test("a build that is not position-independent names the malloc that ran too (not the oracle's own PLT entry)", () => {
  // The oracle's sources and -fno-builtin flags, but -fno-pie -no-pie and -O0 (CMakeLists.txt's oracle-no-pie):
  // there `malloc`'s address in the oracle's code is a PLT entry in the executable, whose object has no name.
  const oracle = testProgram('oracle-no-pie');
  const elfType = readFileSync(oracle).readUInt16LE(16);
  assert.is(elfType, 2, 'ET_EXEC: not position-independent');
  const runs: [string | undefined, string][] = [[undefined, 'libc.so.6']];
  if (another !== undefined) runs.push([findAllocatorLibrary(another) as string, ALLOCATORS[another].library as string]);
  for (const [preload, library] of runs) {
    const env = { ...process.env, ...(preload ? { LD_PRELOAD: preload } : {}) };
    const run = spawnSync(oracle, ['--foreign', 'examples/trim.trace'], { encoding: 'utf8', env });
    assert.is(run.status, 0, run.stderr);
    const summary = JSON.parse(run.stdout.trim().split('\n').pop() as string) as { events: number; malloc: string };
    assert.is(summary.events, 7);
    assert.ok(basename(summary.malloc).startsWith(library), `${library}: ${summary.malloc}`);
  }
});

test('a missing library names its Debian package, one the loader ignores is caught; the options that cannot go together are refused', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'mallocscope-allocators-'));
  for (const name of FOREIGN) {
    try {
      allocatorLibrary(name, [empty]);
      assert.unreachable(`${name} found in an empty folder`);
    } catch (error) {
      const e = error as { code: string; message: string };
      assert.is(e.code, 'ALLOCATOR_MISSING');
      assert.match(e.message, `apt-get install ${ALLOCATORS[name].package}`);
    }
  }
  assert.is(allocatorLibrary('glibc', [empty]), undefined);
  // A library the loader cannot preload: it says so and runs glibc's malloc, which the run must not take for jemalloc's.
  writeFileSync(join(empty, 'libjemalloc.so.2'), 'not a library\n');
  try {
    runAllocator('examples/threshold-slides.trace', 'jemalloc', { dirs: [empty] });
    assert.unreachable('a run on glibc taken for jemalloc');
  } catch (error) {
    const e = error as { code: string; message: string };
    assert.is(e.code, 'ALLOCATOR_NOT_LOADED');
    assert.match(e.message, /called the malloc of .*libc\.so\.6, not .*libjemalloc\.so\.2 \(ERROR: ld\.so: .* cannot be preloaded/);
  }
  const unknown = await mallocscope(['compare', PERL, '--allocator', 'hoard']);
  assert.is(unknown.status, 2);
  assert.match(unknown.stderr, /unknown allocator 'hoard' \(expected glibc, jemalloc, tcmalloc, mimalloc\) .*\[USAGE\]/);
  const mixed = await mallocscope(['compare', PERL, '--allocator', 'glibc', '--policy', 'heap']);
  assert.is(mixed.status, 2);
  assert.match(mixed.stderr, /cannot be mixed with --policy/);
  const twice = await mallocscope(['compare', PERL, '--allocator', 'glibc', '--allocator', 'glibc']);
  assert.is(twice.status, 2);
  assert.match(twice.stderr, /--allocator glibc is given twice/);
  // mallinfo2 is glibc's: --foreign does not read it.
  const { exit } = runOracleSync(PERL, { foreign: true, stats: true });
  assert.is(exit.status, 2);
  assert.match(exit.stderr, /--stats reads glibc's mallinfo2/);
});

test("strace's log counted by hand: between the markers, split calls joined, failures counted under their names too, thread stacks apart", () => {
  // Lines as strace -f -o writes them (the calls of a real run, cut down and put together).
  const log = [
    '100 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000',
    '100 write(-1, "mallocscope: replay begins\\n", 27) = -1 EBADF (Bad file descriptor)',
    '100 brk(0x55c8bfdde000)               = 0x55c8bfdde000',
    '100 mmap(NULL, 8392704, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, -1, 0) = 0x7fcbe3804000',
    '100 mprotect(0x7fcbe3805000, 8388608, PROT_READ|PROT_WRITE) = 0',
    '101 mmap(NULL, 134217728, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0 <unfinished ...>',
    '100 madvise(0x7fcbe3806000, 4096, MADV_DONTNEED) = 0',
    '101 <... mmap resumed>) = 0x7fcbda000000',
    '101 munmap(0x7fcbda000000, 33554432)  = 0',
    '100 brk(0x55c8bfdff000)               = 0x55c8bfdde000',
    '101 mmap(NULL, 1099511627776, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)',
    '100 munmap(0x7fcbe3804000, 8392704)   = 0',
    '100 mmap(0x7fcbe3804000, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7fcbe3804000',
    '100 write(-1, "mallocscope: replay ends\\n", 25) = -1 EBADF (Bad file descriptor)',
    '100 munmap(0x7f0000000000, 8192)      = 0',
    '',
  ].join('\n');
  // Counted: the brk that moved the break and the one that did not (the break stayed at 0x55c8bfdde000: failed);
  // the 128 MiB mmap (joined), its munmap, the 1 TiB mmap (failed) and the mmap at the address of an unmapped
  // stack. Stacks: their mmap, the mprotect and the madvise inside, the munmap that ends it. Outside the
  // markers: the first mmap and the last munmap.
  assert.equal(countStraceLog(log), { counts: { brk: 2, mmap: 3, munmap: 1 }, failed: 2, threadStacks: 4 });
});

test.run();
