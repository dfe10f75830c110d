// Tests of `mallocscope import FORMAT FILE` (src/trace/heaptrack.ts, ltrace.ts, rep.ts, mtrace.ts through
// log-lines.ts and pointer-ids.ts): the logs in test/fixtures/import/ that heaptrack, ltrace and mtrace wrote
// here of the C programs beside them (scripts/make-import-fixtures.sh), and hand-written malloc-lab traces.
// Each import replays with the model and the real glibc agreeing event for event; its calls are counted
// against the C program; bad input is one line naming the file and the line, with its code.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { differential } from '../dist/check/differential.js';
import { runOracleSync } from '../dist/oracle/oracle.js';
import { decompressed } from '../dist/trace/decompress.js';
import { HeaptrackConverter, convertHeaptrack, importHeaptrack } from '../dist/trace/heaptrack.js';
import { alignedRequest, glibcCouldReturn, reallocOutcome } from '../dist/trace/glibc-calls.js';
import { convertLtrace } from '../dist/trace/ltrace.js';
import { convertMtrace } from '../dist/trace/mtrace.js';
import { convertRep } from '../dist/trace/rep.js';
import { mallocscope } from './support/cli.ts';
import { unless } from './support/skip.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(root, 'test/fixtures/import');
const scratch = mkdtempSync(join(tmpdir(), 'mallocscope-import-test-'));
const oracleBuilt = existsSync(join(root, 'build/Release/mallocscope-oracle'));
const oracleTest = unless(test, oracleBuilt ? undefined : 'the oracle is not built');
// heaptrack compresses with zstd; Node 20 has no zstd decoder, so the import runs the zstd program.
const haveZstd = spawnSync('zstd', ['--version']).status === 0;
const zstdTest = unless(test, haveZstd ? undefined : 'needs the zstd program (apt-get install zstd) for heaptrack --raw output');

function fixture(name: string): string {
  return readFileSync(join(fixtures, name), 'latin1');
}

/** The trace's calls, comments and blank lines left out. */
function calls(trace: string): string[] {
  return trace
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean);
}

/** How many calls of each verb (the thread tag left out). */
function verbs(trace: string): Record<string, number> {
  const count: Record<string, number> = {};
  for (const call of calls(trace)) {
    const verb = call.replace(/^@\d+ /, '').split(' ')[0];
    count[verb] = (count[verb] ?? 0) + 1;
  }
  return count;
}

/** Writes the trace to the scratch folder and asserts that the model and the real glibc agree on every event. */
function agrees(trace: string, name: string): ReturnType<typeof runOracleSync> {
  const path = join(scratch, name);
  writeFileSync(path, trace);
  const oracle = runOracleSync(path, { stats: true });
  const result = differential(path, { stats: true, checkInvariants: true, oracle });
  if (result.difference) {
    const d = result.difference;
    assert.unreachable(`${name}: event ${d.seq} (line ${d.line}) differs\n  oracle: ${d.oracle}\n  model:  ${d.model}`);
  }
  assert.is(result.agreed, calls(trace).length, `${name}: every call compared`);
  return oracle;
}

// alloc-demo.c's allocations, in its order: the sizes the source asks for (hand-read from the source).
const SMALL = [16, 32, 48, 64, 80, 96, 112, 128, 144, 160];

// ---- heaptrack ---------------------------------------------------------------------------------------------

zstdTest('heaptrack --raw of alloc-demo: every allocation and free the program made, agreeing with glibc', async () => {
  let trace = '';
  const summary = await importHeaptrack(join(fixtures, 'alloc-demo.raw.zst'), (text) => {
    trace += text;
  });
  // heaptrack logs each call that returned a block as `+` (calloc as its product, realloc as a free and a
  // malloc, aligned_alloc as a malloc), and each free of a block as `-`; not free(NULL), not the failed malloc,
  // not realloc(gone, 0), which returns NULL. Its preload library loads libstdc++, whose emergency pool is one
  // more allocation, at the start.
  const sizes = calls(trace)
    .filter((call) => call.startsWith('malloc '))
    .map((call) => Number(call.split(' ')[2]));
  assert.equal(sizes.slice(1), [...SMALL, 8 * 100, 24, 4000, 100, 300000, 300000, 200, 50]);
  // 5 + 2 (realloc's moves) + 1 (big) + 4 + 5 frees of the program, and the pool's.
  assert.equal(verbs(trace), { malloc: 19, free: 18 });
  assert.is(summary.liveAtEnd, 1, 'the block realloc(gone, 0) freed, which heaptrack never saw freed');
  assert.is(summary.untracked, 0);
  assert.match(trace, /^# heaptrack: program \/\S+\/alloc-demo\n# heaptrack: command \.\/alloc-demo\n/);
  agrees(trace, 'heaptrack.trace');
});

zstdTest('heaptrack: the same trace from zstd, gzip (heaptrack without zstd) and plain text, and from a pipe', async () => {
  const raw = spawnSync('zstd', ['-dc', join(fixtures, 'alloc-demo.raw.zst')]).stdout;
  assert.match(raw.toString('latin1'), /^v [0-9a-f]+ 3\n/);
  const plain = convertHeaptrack(raw, 'alloc-demo.raw');
  writeFileSync(join(scratch, 'alloc-demo.raw.gz'), gzipSync(raw));
  writeFileSync(join(scratch, 'alloc-demo.raw'), raw);
  for (const file of ['alloc-demo.raw.gz', 'alloc-demo.raw']) {
    const run = await mallocscope(['import', 'heaptrack', file], { cwd: scratch });
    assert.is(run.status, 0, run.stderr);
    assert.is(run.stdout, plain, file);
  }
  // A pipe (standard input) may bring fewer bytes at a time than the compression's magic number.
  async function* drip(bytes: Buffer): AsyncGenerator<Buffer> {
    for (let i = 0; i < bytes.length; i += 3) yield bytes.subarray(i, i + 3);
  }
  const converter = new HeaptrackConverter('<stdin>');
  let piped = '';
  for await (const chunk of decompressed(drip(readFileSync(join(fixtures, 'alloc-demo.raw.zst'))), { file: '<stdin>', code: 'HEAPTRACK_DECOMPRESS' })) {
    piped += converter.feed(chunk);
  }
  assert.is(piped + converter.finish().text, plain);
});

zstdTest("heaptrack's interpreted output (its default) is refused: its frees do not name blocks", async () => {
  const run = await mallocscope(['import', 'heaptrack', 'alloc-demo.interpreted.zst', '-o', join(scratch, 'interpreted.trace')], { cwd: fixtures });
  assert.is(run.status, 1);
  assert.match(run.stderr, /^mallocscope: alloc-demo\.interpreted\.zst:\d+: this is heaptrack's interpreted output .* \[HEAPTRACK_INTERPRETED\]\n$/);
  assert.not.ok(existsSync(join(scratch, 'interpreted.trace')), 'no trace left behind');
});

test('heaptrack -p (attached, its A line): frees of blocks from before the attach are skipped and counted', () => {
  const trace = convertHeaptrack('v 10400 3\nx 4 prog\nA\n+ 10 1 55d0\n- 4a0\n- 55d0\n', 'attached.raw');
  assert.is(
    trace,
    [
      '# heaptrack: program prog',
      '# heaptrack attached to the running program (heaptrack -p): its blocks from before are not in the log',
      'malloc b1 16',
      '# free of 0x4a0, which the log never showed allocated: skipped',
      'free b1',
      '# end of heaptrack log: 2 calls from 6 log lines; 0 blocks still live; 1 free of a block the log never showed allocated skipped',
      '',
    ].join('\n'),
  );
});

// ---- ltrace ------------------------------------------------------------------------------------------------

/** The addresses an ltrace log shows returned, in order: `= 0x…` of the calls that made a block. */
function returned(log: string): bigint[] {
  return [...log.matchAll(/(?:^|\n)[^\n]*?(?:->)?(?:malloc|calloc|realloc|aligned_alloc)\((?:[^\n<]*)\) += (0x[0-9a-f]+)/g)].map((m) => BigInt(m[1]));
}

oracleTest('ltrace -e of alloc-demo: every call, and glibc puts every heap block at its recorded offset', () => {
  const log = fixture('alloc-demo.ltrace');
  const trace = convertLtrace(log, 'alloc-demo.ltrace');
  // 10 + big + big again + the failed one + gone; calloc; realloc(NULL, 24), to 4000, to 100, gone to 0;
  // aligned_alloc as memalign; 5 + big + 4 + 5 frees (free(NULL) does nothing and is not in the trace).
  assert.equal(verbs(trace), { malloc: 14, free: 15, calloc: 1, realloc: 4, memalign: 1 });
  assert.ok(trace.includes('\nrealloc b12 24\n'), 'realloc(NULL, 24) stays a realloc');
  assert.ok(trace.includes('\nrealloc b17 0\n'), 'realloc(gone, 0) frees');
  assert.match(trace, /\nmalloc b16 9223372036854775807 {4}# failed \(NULL\) in the recorded run\n/);
  const oracle = agrees(trace, 'ltrace.trace');
  // The program allocates nothing else (no stdio): its heap in the recorded run began 0x2a0 below its first
  // block, and every heap block the replay makes is where the recorded one was.
  const recorded = returned(log);
  const heapStart = recorded[0] - 0x2a0n;
  const placed = oracle.lines.map((line) => JSON.parse(line)).filter((event) => event.where !== undefined);
  assert.is(placed.length, recorded.length);
  placed.forEach((event, i) => {
    if (event.where === 'heap') assert.is(BigInt(event.offset), recorded[i] - heapStart, `seq ${event.seq}`);
  });
  assert.is(placed.filter((event) => event.where === 'heap').length, recorded.length - 1, 'all but the mmapped block');
});

test('ltrace -x (the libc functions inside the program calls, nested): the same calls as ltrace -e', () => {
  const plain = convertLtrace(fixture('alloc-demo.ltrace'), 'alloc-demo.ltrace');
  const nested = convertLtrace(fixture('alloc-demo-x.ltrace'), 'alloc-demo-x.ltrace');
  assert.equal(calls(nested), calls(plain));
  // 36 calls of the program (free(NULL) included), each seen again in libc, and realloc's own malloc and free.
  assert.match(nested, /; 38 calls of the family inside another \(the same call seen twice, or the allocator's own calls\) not counted again\n$/);
});

oracleTest('ltrace -f of threads-demo: --threads makes each pid a thread; glibc agrees', async () => {
  const log = fixture('threads-demo.ltrace');
  const pids = [...new Set([...log.matchAll(/^(\d+) /gm)].map((m) => m[1]))];
  assert.is(pids.length, 3);
  assert.ok(/<unfinished \.\.\.>/.test(log) && /<\.\.\. (malloc|free) resumed>/.test(log), 'the fixture has calls cut in two');
  const refused = await mallocscope(['import', 'ltrace', 'threads-demo.ltrace'], { cwd: fixtures });
  assert.is(refused.status, 1);
  const second = log.split('\n').findIndex((line) => !line.startsWith(`${pids[0]} `)) + 1;
  assert.match(refused.stderr, new RegExp(`^mallocscope: threads-demo\\.ltrace:${second}: a second pid, ${pids[1]} .*--threads \\[LTRACE_SEVERAL_PIDS\\]\\n$`));
  const run = await mallocscope(['import', 'ltrace', 'threads-demo.ltrace', '--threads'], { cwd: fixtures });
  assert.is(run.status, 0, run.stderr);
  const trace = run.stdout;
  // main: malloc(64), 6 × malloc(32) and free, free(kept); each thread: 4 mallocs, 4 frees, then it ends.
  assert.equal(verbs(trace), { malloc: 15, free: 15, spawn: 2, exit: 2 });
  for (const thread of ['2', '3']) {
    const own = calls(trace).filter((call) => call.startsWith(`@${thread} `));
    assert.equal(
      own.map((call) => call.split(' ')[1]),
      ['malloc', 'malloc', 'malloc', 'malloc', 'free', 'free', 'free', 'free', 'exit'],
      `thread ${thread}`,
    );
    assert.equal(
      own.filter((call) => call.includes(' malloc ')).map((call) => call.split(' ')[3]),
      ['100', '110', '120', '130'],
    );
  }
  agrees(trace, 'threads.trace');
});

test('ltrace -f of fork-demo ([pid N], -tt, -T, -i): one process at a time with --pid', async () => {
  const log = fixture('fork-demo.ltrace');
  const pids = [...new Set([...log.matchAll(/^\[pid (\d+)\] /gm)].map((m) => m[1]))];
  assert.is(pids.length, 2);
  const [parent, child] = pids;
  const whole = await mallocscope(['import', 'ltrace', 'fork-demo.ltrace'], { cwd: fixtures });
  assert.match(whole.stderr, /\[LTRACE_SEVERAL_PIDS\]\n$/);
  const first = convertLtrace(log, 'fork-demo.ltrace', { pid: parent });
  assert.equal(calls(first), ['malloc b1 200', 'malloc b2 400', 'free b2', 'free b1']);
  // The child frees its copy of `shared`, which it did not allocate: skipped, and said on stderr.
  const run = await mallocscope(['import', 'ltrace', 'fork-demo.ltrace', '--pid', child], { cwd: fixtures });
  assert.is(run.status, 0, run.stderr);
  assert.equal(calls(run.stdout), ['malloc b1 300', 'free b1']);
  assert.match(run.stdout, /\n# free of 0x[0-9a-f]+, which the log never showed allocated: skipped\n/);
  assert.is(run.stderr, 'mallocscope: note: 1 free or realloc of a block the log never showed allocated was skipped (each is a comment in the trace)\n');
  // Both processes as threads of one: the child's malloc(300) gets the address the parent's malloc(400) holds.
  const merged = await mallocscope(['import', 'ltrace', 'fork-demo.ltrace', '--threads'], { cwd: fixtures });
  assert.match(
    merged.stderr,
    /^mallocscope: fork-demo\.ltrace:5: 0x[0-9a-f]+ is returned again while still allocated \(since line 4\): with --threads, was one of the pids a process .*\[LTRACE_PTR_LIVE\]\n$/,
  );
});

oracleTest("ltrace -f of thread-exits: calls cut by another thread's end (<no return ...>) resume and are kept; glibc agrees", async () => {
  const log = fixture('thread-exits.ltrace');
  // ltrace 0.7.3 ends a call's first half with `<no return ...>` when the line after it is another pid's end,
  // and the call resumes later: the fixture has a malloc so cut (scripts/make-import-fixtures.sh makes sure).
  const cut = /^(\d+) thread-exits->malloc\(\d+ <no return \.\.\.>\n(?:(?!\1 ).*\n)*\1 <\.\.\. malloc resumed> \)/m;
  assert.ok(cut.test(log), 'the fixture has a malloc cut by <no return ...> that resumes');
  const run = await mallocscope(['import', 'ltrace', 'thread-exits.ltrace', '--threads'], { cwd: fixtures });
  assert.is(run.status, 0, run.stderr);
  const trace = run.stdout;
  // main: malloc(1000), then malloc(64) and its free until the 8 threads ended, then free(1000); each thread
  // a malloc(200) and its free, then it ends. Every call the log shows returning is in the trace, once.
  const loops = log.match(/^\d+ thread-exits->malloc\(64\b/gm)?.length ?? 0;
  assert.ok(loops > 0);
  assert.equal(verbs(trace), { malloc: 1 + loops + 8, free: 1 + loops + 8, spawn: 8, exit: 8 });
  assert.not.match(trace, /never returned/);
  for (let thread = 2; thread <= 9; thread++) {
    const own = calls(trace).filter((call) => call.startsWith(`@${thread} `));
    assert.equal(
      own.map((call) => call.split(' ').slice(1, 2).concat(call.split(' ').slice(3)).join(' ')),
      ['malloc 200', 'free', 'exit'],
      `thread ${thread}`,
    );
  }
  agrees(trace, 'thread-exits.trace');
});

test('ltrace: a call cut by <no return ...> is kept open; a free in it is recorded once; one never resumed is a comment', () => {
  // The forms of thread-exits.ltrace, with the pid's end before the return for the second call.
  const log = [
    '5 p->malloc(16 <no return ...>',
    '6 +++ exited (status 0) +++',
    '5 <... malloc resumed> )  = 0x55d0a0c012a0',
    '5 p->free(0x55d0a0c012a0 <no return ...>',
    '7 +++ exited (status 0) +++',
    '5 <... free resumed> )  = <void>',
    '5 p->malloc(32 <no return ...>',
    '5 +++ killed by SIGKILL +++',
  ].join('\n');
  assert.fixture(
    convertLtrace(log, 'cut.ltrace', { threads: true }),
    [
      'malloc b1 16',
      'free b1',
      '# malloc(32) at line 7 never returned: not in the trace',
      '# pid 5 was killed by SIGKILL (line 8)',
      '# end of ltrace log: 2 calls from 8 log lines; 0 blocks still live',
      '',
    ].join('\n'),
  );
});

test('ltrace --threads of a fork (fork-free): refused, at its SIGCHLD or at the second free of one address', async () => {
  for (const [file, reason] of [
    ['fork-free.ltrace', /got SIGCHLD, so a child process of it ended/],
    ['fork-free-quiet.ltrace', /frees 0x[0-9a-f]+, whose block pid \d+ freed at line 3, and nothing allocated it since/],
  ] as [string, RegExp][]) {
    const log = fixture(file);
    const [parent, child] = [...new Set([...log.matchAll(/^(\d+) /gm)].map((m) => m[1]))];
    const run = await mallocscope(['import', 'ltrace', file, '--threads'], { cwd: fixtures });
    assert.is(run.status, 1, run.stderr);
    assert.match(run.stderr, new RegExp(`^mallocscope: ${file.replace('.', '\\.')}:6: pid ${parent} `));
    assert.match(run.stderr, reason);
    assert.match(run.stderr, /the log's pids are processes \(forks, .*\), not threads; import one process with --pid PID \[LTRACE_FORK\]\n$/);
    // One process at a time is right: the parent allocates and frees its block, the child frees its copy.
    assert.equal(calls(convertLtrace(log, file, { pid: parent })), ['malloc b1 100', 'free b1']);
    assert.equal(calls(convertLtrace(log, file, { pid: child })), ['malloc b1 200', 'free b1']);
  }
});

oracleTest("ltrace -e of stdio-demo: libc's own calls, which ltrace misnames, are skipped; glibc agrees", async () => {
  const log = fixture('stdio-demo.ltrace');
  const libc = log.match(/^libc\.so\.6->/gm)?.length ?? 0;
  // printf's strnlen, once a line, shown as realloc; getline's growing realloc, shown as calloc.
  assert.ok(/^libc\.so\.6->realloc\(0x[0-9a-f]+, 40\) += 0x28$/m.test(log) && /^libc\.so\.6->calloc\(/m.test(log), 'the fixture has both');
  assert.is(libc, 4);
  const run = await mallocscope(['import', 'ltrace', 'stdio-demo.ltrace'], { cwd: fixtures });
  assert.is(run.status, 0, run.stderr);
  // The program's own calls: kept = malloc(100); each line, malloc(strlen + 1) and its free (13 + 1, 175 + 1,
  // 15 + 1 bytes: the lines of stdio-demo.c with their newline); free(kept). free(line) frees getline's buffer,
  // which libc allocated unseen.
  assert.equal(calls(run.stdout), ['malloc b1 100', 'malloc b2 14', 'free b2', 'malloc b3 176', 'free b3', 'malloc b4 16', 'free b4', 'free b1']);
  assert.is(run.stdout.match(/^# libc\.so\.6->\S+ .*a call libc made through its own PLT, whose slots ltrace 0\.7\.3 misnames: skipped$/gm)?.length, 4);
  assert.match(
    run.stdout,
    /; 1 free\/realloc of a block the log never showed allocated skipped; 4 lines naming a call of the family that was another function \(misnamed by ltrace\) skipped\n$/,
  );
  assert.is(
    run.stderr,
    'mallocscope: note: 1 free or realloc of a block the log never showed allocated was skipped (each is a comment in the trace)\n' +
      'mallocscope: note: 4 lines name a call of the malloc family that was another function, which ltrace misnamed, and were skipped (each is a comment in the trace)\n',
  );
  agrees(run.stdout, 'stdio-demo.trace');
});

test("ltrace of ifunc-demo: calls named malloc that return no glibc block (0x6) are skipped, not 'returned again'", async () => {
  const log = fixture('ifunc-demo.ltrace');
  assert.is(log.match(/^<\.\.\. malloc resumed> \) += 0x6$/gm)?.length, 2, 'the ifunc, called twice, shown as malloc');
  assert.is(log.match(/^\(\d+, /gm)?.length, 3, 'the real mallocs, which ltrace could not name');
  const run = await mallocscope(['import', 'ltrace', 'ifunc-demo.ltrace'], { cwd: fixtures });
  assert.is(run.status, 0, run.stderr);
  assert.equal(calls(run.stdout), []);
  assert.is(
    run.stdout.match(
      /^# malloc\(\d+\) = 0x6 at line \d+: glibc has no block at 0x6 \(its blocks are 16-byte aligned, above the first page\), so ltrace gave another function this name: skipped$/gm,
    )?.length,
    2,
  );
  assert.match(
    run.stderr,
    /^mallocscope: note: 3 frees or reallocs of blocks the log never showed allocated were skipped .*\nmallocscope: note: 2 lines name a call of the malloc family that was another function/,
  );
  // free of a pointer no glibc block has: skipped the same way.
  assert.match(convertLtrace('free(0x7fbffaac71b4) = <void>\n', 'free.ltrace'), /^# free\(0x7fbffaac71b4\) at line 1: glibc has no block at 0x7fbffaac71b4 /);
});

// ---- mtrace and malloc-lab -----------------------------------------------------------------------------------

oracleTest('import mtrace of alloc-demo: the same as import-mtrace; glibc agrees', async () => {
  const run = await mallocscope(['import', 'mtrace', 'alloc-demo.mtrace', '--preamble'], { cwd: fixtures });
  assert.is(run.status, 0, run.stderr);
  const alias = await mallocscope(['import-mtrace', 'alloc-demo.mtrace', '--preamble'], { cwd: fixtures });
  assert.is(alias.stdout, run.stdout);
  assert.is(convertMtrace(fixture('alloc-demo.mtrace'), 'alloc-demo.mtrace', { preamble: true }), run.stdout);
  // mtrace logs calloc, realloc(NULL, n) and aligned_alloc as `+`, realloc(p, 0) as `-`, not free(NULL): 35
  // calls, as ltrace's import has, with the preamble's 2 mallocs and 1 free.
  assert.equal(verbs(run.stdout), { malloc: 17 + 2, realloc: 2, free: 16 + 1 });
  agrees(run.stdout, 'mtrace.trace');
});

oracleTest('malloc-lab .rep files import as the traces written by hand; glibc agrees', () => {
  for (const name of ['short', 'realloc']) {
    const trace = convertRep(fixture(`${name}.rep`), `${name}.rep`);
    assert.fixture(trace, fixture(`${name}.trace`));
    agrees(trace, `${name}-rep.trace`);
  }
});

// ---- the glibc rules that ltrace.ts and recording.ts share (glibc-calls.ts) ------------------------------------

test('the aligned calls as memalign, and what realloc did, by the page size given', () => {
  // pvalloc(5000): 2 pages of 4096 (8192), 1 page of 16384; valloc aligns to the page.
  assert.equal(alignedRequest('pvalloc', 0n, 5000n, false, 4096n), { align: 4096n, size: 8192n });
  assert.equal(alignedRequest('pvalloc', 0n, 5000n, false, 16384n), { align: 16384n, size: 16384n });
  assert.equal(alignedRequest('pvalloc', 0n, 4096n, false, 4096n), { align: 4096n, size: 4096n });
  assert.equal(alignedRequest('valloc', 0n, 10n, false, 65536n), { align: 65536n, size: 10n });
  // 2^64 - 4095 rounded up to a page of 4096 is 2^64: it wraps, and glibc fails before allocating.
  assert.equal(alignedRequest('pvalloc', 0n, (1n << 64n) - 4095n, true, 4096n), { refused: 'wraps' });
  assert.equal(alignedRequest('pvalloc', 0n, (1n << 64n) - 4096n, true, 4096n), { align: 4096n, size: (1n << 64n) - 4096n });
  // aligned_alloc(3, 10): refused (glibc 2.38 on) when it failed, memalign's rounding (before) when it did not.
  assert.equal(alignedRequest('aligned_alloc', 3n, 10n, true, 4096n), { refused: 'alignment' });
  assert.equal(alignedRequest('aligned_alloc', 0n, 10n, true, 4096n), { refused: 'alignment' });
  assert.equal(alignedRequest('aligned_alloc', 3n, 10n, false, 4096n), { align: 3n, size: 10n });
  assert.equal(alignedRequest('aligned_alloc', 64n, 1n << 62n, true, 4096n), { align: 64n, size: 1n << 62n });
  assert.equal(alignedRequest('memalign', 3n, 10n, true, 4096n), { align: 3n, size: 10n });
  // realloc(old, size) -> result: NULL old is malloc; size 0 frees (NULL) or is not glibc; else failed or moved.
  assert.equal(
    [
      [true, 0n, true],
      [true, 8n, false],
      [false, 0n, true],
      [false, 0n, false],
      [false, 8n, true],
      [false, 8n, false],
    ].map(([oldNull, size, retNull]) => reallocOutcome(oldNull as boolean, size as bigint, retNull as boolean)),
    ['new', 'new', 'freed', 'not-glibc', 'failed', 'moved'],
  );
  // glibc's blocks: 16-byte aligned, above the first page.
  assert.equal([0x5n, 0x1000n, 0xff0, 0x55d0a0c012a0, 0x55d0a0c012a8, 2n ** 63n].map(glibcCouldReturn), [false, true, false, true, false, true]);
});

// ---- bad input: one line naming file and line, a code, exit 1, no trace left -------------------------------

const HT = 'v 10400 3\nx 4 prog\n';
const badLogs: [string, string, string, string, RegExp][] = [
  ['heaptrack', 'h-first.raw', '+ 10 1 55d0\n', 'HEAPTRACK_NOT_HEAPTRACK', /^h-first\.raw:1: not heaptrack output: the first line is not 'v VERSION FORMAT'/],
  ['heaptrack', 'h-record.raw', `${HT}A\nQ 1\n`, 'HEAPTRACK_BAD_LINE', /^h-record\.raw:4: unknown heaptrack record 'Q'/],
  ['heaptrack', 'h-fields.raw', `${HT}+ 10 1\n`, 'HEAPTRACK_BAD_LINE', /^h-fields\.raw:3: '\+' takes a size, a trace index and a pointer/],
  ['heaptrack', 'h-number.raw', `${HT}+ 10 1 55zz\n`, 'HEAPTRACK_BAD_NUMBER', /^h-number\.raw:3: pointer is not hexadecimal .*'55zz'/],
  [
    'heaptrack',
    'h-twice.raw',
    `${HT}+ 10 1 55d0\n+ 20 1 55d0\n`,
    'HEAPTRACK_PTR_LIVE',
    /^h-twice\.raw:4: 0x55d0 is returned again while still allocated \(since line 3\)/,
  ],
  ['heaptrack', 'h-exec.raw', `${HT}+ 10 1 55d0\nx 4 next\n`, 'HEAPTRACK_RESTART', /^h-exec\.raw:4: a second program in the log/],
  [
    'heaptrack',
    'h-cut.raw',
    `${HT}+ 10 1 55d0\n+ 20 1`,
    'HEAPTRACK_TRUNCATED',
    /^h-cut\.raw:4: the log ends in the middle of a line \('\+ 20 1', no newline\)/,
  ],
  ['heaptrack', 'h-format.raw', 'v 10400 4\n', 'HEAPTRACK_FORMAT', /^h-format\.raw:1: file format 4 is newer than the 3 this import knows/],
  ['heaptrack', 'h-empty.raw', '', 'HEAPTRACK_EMPTY', /^h-empty\.raw: the log is empty/],
  // 100 zero bytes, no newline: not heaptrack's, whether or not cut short.
  ['heaptrack', 'h-zeros.raw', '\0'.repeat(100), 'HEAPTRACK_NOT_HEAPTRACK', /^h-zeros\.raw:1: not heaptrack output: the first line is not 'v VERSION FORMAT'/],
  ['heaptrack', 'h-gzip.raw.gz', '\x1f\x8b\x08\x00garbage', 'HEAPTRACK_DECOMPRESS', /^h-gzip\.raw\.gz: cannot decompress \(gzip\)/],
  [
    'ltrace',
    'l-line.ltrace',
    'malloc(16) = 0x55d0a0c012a0\nhello from the program\n',
    'LTRACE_BAD_LINE',
    /^l-line\.ltrace:2: not an ltrace line: 'hello from the program'/,
  ],
  ['ltrace', 'l-result.ltrace', 'malloc(16\n', 'LTRACE_BAD_LINE', /^l-result\.ltrace:1: not an ltrace line \(a call without ' = ' and its result\)/],
  ['ltrace', 'l-args.ltrace', 'calloc(16) = 0x55d0a0c012a0\n', 'LTRACE_BAD_LINE', /^l-args\.ltrace:1: calloc takes 2 arguments, found 1/],
  ['ltrace', 'l-size.ltrace', 'malloc(-1) = 0x55d0a0c012a0\n', 'LTRACE_BAD_NUMBER', /^l-size\.ltrace:1: a size that is not a number from 0 to 2\^64-1: '-1'/],
  ['ltrace', 'l-ptr.ltrace', 'malloc(16) = <void>\n', 'LTRACE_BAD_NUMBER', /^l-ptr\.ltrace:1: the result is not an address/],
  [
    'ltrace',
    'l-resumed.ltrace',
    '<... malloc resumed> ) = 0x55d0a0c012a0\n',
    'LTRACE_UNPAIRED',
    /^l-resumed\.ltrace:1: '<\.\.\. malloc resumed>' without its '<unfinished \.\.\.>' line/,
  ],
  [
    'ltrace',
    'l-other.ltrace',
    'malloc(16 <unfinished ...>\n<... free resumed> ) = <void>\n',
    'LTRACE_UNPAIRED',
    /^l-other\.ltrace:2: '<\.\.\. free resumed>', but the unfinished call is malloc \(line 1\)/,
  ],
  [
    'ltrace',
    'l-mixed.ltrace',
    '7 malloc(16) = 0x55d0a0c012a0\nfree(0x55d0a0c012a0) = <void>\n',
    'LTRACE_BAD_LINE',
    /^l-mixed\.ltrace:2: a line without a pid after lines with one/,
  ],
  [
    'ltrace',
    'l-twice.ltrace',
    'malloc(16) = 0x55d0a0c012a0\nmalloc(16) = 0x55d0a0c012a0\n',
    'LTRACE_PTR_LIVE',
    /^l-twice\.ltrace:2: 0x55d0a0c012a0 is returned again while still allocated \(since line 1\): did ltrace miss the free/,
  ],
  [
    'ltrace',
    'l-exec.ltrace',
    'malloc(16) = 0x55d0a0c012a0\n--- Called exec() ---\n',
    'LTRACE_EXEC',
    /^l-exec\.ltrace:2: the process ran another program \(exec\)/,
  ],
  [
    'ltrace',
    'l-zero.ltrace',
    'malloc(16) = 0x55d0a0c012a0\nrealloc(0x55d0a0c012a0, 0) = 0x55d0a0c012c0\n',
    'LTRACE_NOT_GLIBC',
    /^l-zero\.ltrace:2: realloc\(0x55d0a0c012a0, 0\) returned a block: glibc's realloc frees the block and returns NULL/,
  ],
  ['ltrace', 'l-empty.ltrace', '\n', 'LTRACE_EMPTY', /^l-empty\.ltrace: the log is empty/],
  ['rep', 'r-header.rep', '20000\n2\nfour\n1\n', 'REP_BAD_HEADER', /^r-header\.rep:3: the header's number of operations is not a number/],
  ['rep', 'r-short.rep', '20000\n2\n', 'REP_BAD_HEADER', /^r-short\.rep: the header ends early: it has 2 of its 4 numbers/],
  ['rep', 'r-op.rep', '1\n1\n1\n1\nm 0 10\n', 'REP_BAD_LINE', /^r-op\.rep:5: unknown request 'm' \(expected a, r or f\)/],
  ['rep', 'r-fields.rep', '1\n1\n1\n1\na 0\n', 'REP_BAD_LINE', /^r-fields\.rep:5: 'a' takes an id and a size, found 1 field\(s\)/],
  ['rep', 'r-number.rep', '1\n1\n1\n1\na 0 1e3\n', 'REP_BAD_NUMBER', /^r-number\.rep:5: the size is not a decimal number/],
  ['rep', 'r-id.rep', '1\n1\n2\n1\na 0 8\na 1 8\n', 'REP_COUNT', /^r-id\.rep:6: id 1 is not below the header's number of ids, 1 \(line 2\)/],
  ['rep', 'r-more.rep', '1\n1\n1\n1\na 0 8\nf 0\n', 'REP_COUNT', /^r-more\.rep:6: more requests than the header's 1 \(line 3\)/],
  ['rep', 'r-fewer.rep', '1\n1\n3\n1\na 0 8\nf 0\n', 'REP_COUNT', /^r-fewer\.rep:3: the header says 3 requests, and the file has 2/],
  ['rep', 'r-ids.rep', '1\n3\n2\n1\na 0 8\nf 0\n', 'REP_COUNT', /^r-ids\.rep:2: the header says 3 ids, so the largest should be 2, and it is 0/],
  ['rep', 'r-live.rep', '1\n1\n2\n1\na 0 8\na 0 8\n', 'REP_ID_LIVE', /^r-live\.rep:6: id 0 is allocated again while still allocated \(since line 5\)/],
  ['rep', 'r-free.rep', '1\n1\n3\n1\na 0 8\nf 0\nf 0\n', 'REP_NOT_LIVE', /^r-free\.rep:7: free of id 0, which is not allocated/],
  ['rep', 'r-dead.rep', '1\n1\n3\n1\na 0 8\nf 0\nr 0 8\n', 'REP_NOT_LIVE', /^r-dead\.rep:7: realloc of id 0, which is not allocated/],
  ['mtrace', 'm-bad.log', '= Start\n? 0x10\n', 'MTRACE_BAD_LINE', /^m-bad\.log:2: unknown mtrace record '\?'/],
];

test('bad input: one line naming the file and the line, with its code; exit 1; no trace left', async () => {
  for (const [format, file, log, code, message] of badLogs) {
    writeFileSync(join(scratch, file), Buffer.from(log, 'latin1'));
    const output = `${file}.trace`;
    const run = await mallocscope(['import', format, file, '-o', output], { cwd: scratch });
    assert.is(run.status, 1, `${file}: ${run.stderr}`);
    assert.is(run.stderr.split('\n').length, 2, `${file}: one line only: ${run.stderr}`);
    const line = run.stderr.trimEnd();
    assert.ok(line.startsWith('mallocscope: ') && message.test(line.slice('mallocscope: '.length)), `${file}: ${line}`);
    assert.ok(line.endsWith(` [${code}]`), `${file}: ${line}`);
    assert.not.ok(existsSync(join(scratch, output)), `${file}: a half-written trace is removed`);
  }
});

test("ltrace: other functions and villoc's annotations are passed over", () => {
  const log = 'malloc(16) = 0x55d0a0c012a0\nstrlen("a, b") = 4\n@villoc(first, tag) = <void>\nfree(0x55d0a0c012a0) = <void>\n+++ exited (status 0) +++\n';
  assert.equal(calls(convertLtrace(log, 'other.ltrace')), ['malloc b1 16', 'free b1']);
});

test('ltrace --pid: a log without pids, or without that pid, is refused', async () => {
  writeFileSync(join(scratch, 'one.ltrace'), 'malloc(16) = 0x55d0a0c012a0\n+++ exited (status 0) +++\n');
  const none = await mallocscope(['import', 'ltrace', 'one.ltrace', '--pid', '7'], { cwd: scratch });
  assert.match(none.stderr, /^mallocscope: one\.ltrace:1: --pid picks one pid of a log with pids, and this one has none .*\[LTRACE_NO_PIDS\]\n$/);
  const other = await mallocscope(['import', 'ltrace', 'fork-demo.ltrace', '--pid', '1'], { cwd: fixtures });
  assert.is(other.stderr, 'mallocscope: fork-demo.ltrace: pid 1 is not in the log [LTRACE_NO_PID]\n');
  const missing = await mallocscope(['import', 'ltrace', 'no-such.ltrace'], { cwd: scratch });
  assert.is(missing.stderr, 'mallocscope: no-such.ltrace: cannot read: no such file or directory [LTRACE_OPEN]\n');
});

test('usage mistakes exit 2 with one line', async () => {
  for (const [args, message] of [
    [['import', 'valgrind', 'x'], "unknown format 'valgrind' (expected mtrace, heaptrack, ltrace, rep)"],
    [['import', 'heaptrack', 'x', '--pid', '3'], '--pid is for import ltrace, not heaptrack'],
    [['import', 'rep', 'x', '--preamble'], '--preamble is for import mtrace, not rep'],
    [['import', 'ltrace', 'x', '--pid', '3', '--threads'], '--pid and --threads exclude each other'],
    [['import', 'ltrace', 'x', '--pid', 'abc'], "--pid takes a process id, a positive whole number: 'abc'"],
    [['import', 'ltrace'], "missing required argument 'file'"],
  ] as [string[], string][]) {
    const run = await mallocscope(args, { cwd: scratch });
    assert.is(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.ok(run.stderr.startsWith(`mallocscope: ${message}`), run.stderr);
    assert.ok(run.stderr.endsWith(' [USAGE]\n') && run.stderr.split('\n').length === 2, run.stderr);
  }
});

test.run();
