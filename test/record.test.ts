// Tests of mallocscope's own recorder (native/recorder) and its converter (src/trace/recording.ts) through
// `mallocscope record` and `import-recording`: a threaded C program, a single-threaded one whose offsets the
// oracle reproduces, fork, C11 threads, hand-made logs (every record kind, every error), and --via mtrace.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unless } from './support/skip.ts';
import { mallocscope } from './support/cli.ts';
import { testProgram } from './support/programs.ts';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrace, readTrace } from '../dist/trace/reader.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'mallocscope-record-test-'));
const recorderBuilt = existsSync(join(root, 'build/Release/libmallocscope-recorder.so'));
const oracleBuilt = existsSync(join(root, 'build/Release/mallocscope-oracle'));

/**
 * One C program for every recorded test (test/fixtures/programs/program.c), its mode an argument: `threads`,
 * `single` (every call of the family, no thread), `fork`, `c11` (thrd_create), `killed` (more calls than the
 * recorder's ring holds, then SIGKILL). Its absence fails the tests that run it: the build is broken.
 */
let program = '';
/** `register`, each test failing first when the build has not made the program. */
function withProgram(register: (name: string, fn: () => Promise<void>) => void) {
  return (name: string, fn: () => Promise<void>) =>
    register(name, () => {
      program = testProgram('program');
      return fn();
    });
}
const recordTest = withProgram(unless(test, recorderBuilt ? undefined : 'the recorder is not built'));
const oracleRecordTest = withProgram(unless(test, !oracleBuilt ? 'the oracle is not built' : !recorderBuilt ? 'the recorder is not built' : undefined));

function cli(args: string[], cwd = scratch) {
  return mallocscope(args, { cwd, env: { MALLOCSCOPE_DEBUG: '' } });
}

/** The calls of a trace (comments and blank lines dropped). */
function calls(trace: string): string[] {
  return trace
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean);
}

// ---- real programs -------------------------------------------------------------------------------------

let threadedTrace = '';

recordTest('record of a 4-thread program: its spawns, @T tags and exits, a valid trace', async () => {
  const run = await cli(['record', '-o', 'threads.trace', '--', program, 'threads']);
  assert.is(run.status, 0, run.stderr);
  assert.is(run.stderr, '');
  threadedTrace = readFileSync(join(scratch, 'threads.trace'), 'utf8');
  assert.match(
    threadedTrace,
    /^# recorded by mallocscope record on .*\n# program: .*program\n# command: .*program threads\n# glibc: .*\n# exit: status 0\n# recorder: /,
  );
  const lines = calls(threadedTrace);
  assert.equal(
    lines.filter((line) => /^spawn /.test(line)),
    ['spawn 2', 'spawn 3', 'spawn 4', 'spawn 5'],
  );
  for (const t of [2, 3, 4, 5]) {
    const mine = lines.filter((line) => line.startsWith(`@${t} `));
    assert.ok(mine.length >= 81, `thread ${t}: ${mine.length} lines`); // 40 pairs, a realloc, a free, its exit
    assert.is(mine[mine.length - 1], `@${t} exit`, `thread ${t} ends with its exit`);
  }
  assert.ok(lines[0].startsWith('malloc '), 'the main thread is untagged');
  // The trace reader accepts it: every tag after its spawn, nothing after an exit, every free of a live ID.
  const events = parseTrace(threadedTrace, { name: 'threads.trace' });
  assert.is(events.length, lines.length);
});

oracleRecordTest('the oracle replays the recorded threaded trace, each line in its thread', async () => {
  assert.ok(threadedTrace, 'the test before recorded it');
  const run = await cli(['oracle', 'threads.trace']);
  assert.is(run.status, 0, run.stderr);
  const events = run.stdout
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as { op: string; thread: number; arenaIndex?: number });
  assert.is(events.length, calls(threadedTrace).length);
  assert.equal([...new Set(events.map((e) => e.thread))].sort(), [1, 2, 3, 4, 5]);
  // A thread's first allocation comes from an arena of its own, as in the recorded run.
  assert.ok(events.some((e) => e.thread > 1 && (e.arenaIndex ?? 0) > 0));
});

/** The offset of every block the log's calls returned, from the recorded heap start: 'N' for NULL, 'M' outside the heap. */
function recordedOffsets(log: Buffer): string[] {
  const heap = log.readBigUInt64LE(48);
  const count = Number(log.readBigUInt64LE(16));
  const written = Number(log.readBigUInt64LE(56));
  const offsets: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = recordAt(i, written);
    const kind = log[at];
    const how = log[at + 1];
    if (![1, 2, 4, 6].includes(kind)) continue;
    const ptr = log.readBigUInt64LE(at + 8);
    const align = log.readBigUInt64LE(at + 16);
    if (kind === 6 && (how === 3 || (how === 1 && ptr === 0n && (align & (align - 1n)) !== 0n))) continue; // refused: no call
    const offset = ptr - heap;
    offsets.push(ptr === 0n ? 'N' : offset < 0n || offset > 1n << 32n ? 'M' : String(offset));
  }
  return offsets;
}

oracleRecordTest('record of a single-threaded program: no tags; the oracle puts every block at its recorded offset, from the first', async () => {
  const run = await cli(['record', '--log', 'single.msrec', '-o', 'single.trace', '--', program, 'single']);
  assert.is(run.status, 0, run.stderr);
  const trace = readFileSync(join(scratch, 'single.trace'), 'utf8');
  const lines = calls(trace);
  assert.not.ok(
    lines.some((line) => /^(@|spawn|exit)/.test(line)),
    'exactly a trace without threads',
  );
  // aligned_alloc(3, 10) is memalign before glibc 2.38, and refused (EINVAL) from 2.38 on.
  assert.match(trace, /\n(# aligned_alloc\(3, 10\) refused its alignment \(EINVAL\) without allocating: skipped|memalign b\d+ 3 10)\n/);
  assert.ok(lines.includes('mallopt M_MMAP_THRESHOLD 300000') && lines.includes('trim 0'));
  assert.ok(
    lines.some((line) => /^memalign b\d+ 4096 4096$/.test(line)),
    'pvalloc(10): a page',
  );
  // The program ran under this machine's glibc: its replay must too, whatever MALLOCSCOPE_LIBC names.
  const oracle = await mallocscope(['oracle', 'single.trace'], { cwd: scratch, env: { MALLOCSCOPE_DEBUG: '', MALLOCSCOPE_LIBC: '' } });
  assert.is(oracle.status, 0, oracle.stderr);
  const replayed: string[] = [];
  for (const line of oracle.stdout.trimEnd().split('\n')) {
    const event = JSON.parse(line) as { op: string; where?: string; offset?: number };
    if (['free', 'mallopt', 'trim'].includes(event.op)) continue;
    replayed.push(event.where === undefined ? 'N' : event.where === 'mmap' ? 'M' : String(event.offset));
  }
  const recorded = recordedOffsets(readFileSync(join(scratch, 'single.msrec')));
  assert.ok(recorded.length > 60, `${recorded.length} blocks`);
  // Every block, from the process's first: nothing allocated before the recording started.
  assert.equal(replayed, recorded);
  assert.is(recorded[0], '672', 'the first block of a fresh heap, after the tcache');
  // The kept log converts to the same trace.
  const again = await cli(['import-recording', 'single.msrec']);
  assert.is(again.status, 0, again.stderr);
  assert.equal(calls(again.stdout), lines);
});

recordTest('record of C11 threads (thrd_create) keeps the thread', async () => {
  const run = await cli(['record', '--', program, 'c11']);
  assert.is(run.status, 0, run.stderr);
  const lines = calls(run.stdout);
  assert.ok(lines.includes('spawn 2'), run.stdout);
  assert.ok(lines.includes('@2 exit'));
  assert.ok(lines.some((line) => /^@2 malloc b\d+ 64$/.test(line)));
});

recordTest('fork: the child is recorded to a trace of its own (--children DIR), never into the parent’s', async () => {
  const noted = await cli(['record', '-o', 'fork.trace', '--', program, 'fork']);
  assert.is(noted.status, 0, noted.stderr);
  assert.match(
    noted.stderr,
    /^mallocscope: note: program started 1 other process \(program \d+\): recorded, but not in this trace; --children DIR writes a trace for each\n$/,
  );
  const parent = readFileSync(join(scratch, 'fork.trace'), 'utf8');
  assert.match(parent, /\n# children: 1 other process recorded \(program \d+\), not written/);
  assert.not.ok(
    calls(parent).some((line) => /^malloc b\d+ 300$/.test(line)),
    "the child's malloc(300) is not the parent's",
  );
  const kept = await cli(['record', '--children', 'kids', '-o', 'fork.trace', '--', program, 'fork']);
  assert.is(kept.status, 0, kept.stderr);
  assert.is(kept.stderr, '');
  const traces = readdirSync(join(scratch, 'kids'));
  assert.is(traces.length, 1);
  const child = readFileSync(join(scratch, 'kids', traces[0]), 'utf8');
  assert.match(child, /\n# pid: \d+, parent \d+ \(forked from the recorded process \d+: blocks it inherited are not in this trace\)\n/);
  // Its own block, and the parent's block it freed (a comment: this log never saw it allocated).
  assert.equal(calls(child), ['malloc b1 300', 'free b1']);
  assert.match(child, /\nmalloc b1 300\n# free of 0x[0-9a-f]+, a block this log never saw allocated: skipped\nfree b1\n/);
});

recordTest('a program killed after more calls than the ring holds: every call is in the trace, in order', async () => {
  const run = await cli(['record', '--log', 'killed.msrec', '-o', 'killed.trace', '--', program, 'killed']);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stderr, /was killed by SIGKILL; its trace ends at its last call/);
  const log = readFileSync(join(scratch, 'killed.msrec'));
  const cursor = Number(log.readBigUInt64LE(16));
  const written = Number(log.readBigUInt64LE(56));
  assert.ok(cursor > 240000 && written <= cursor && written > cursor - 32768, `${written} written of ${cursor}`);
  const trace = readFileSync(join(scratch, 'killed.trace'), 'utf8');
  // Each thread's mallocs and frees, counted in one pass over the text (splitting its 240,000 lines into
  // strings cost a quarter of a second), and the last 100 calls from its last 16 KiB.
  const counted = new Map<string, number>();
  for (const [, thread, verb] of trace.matchAll(/^@(\d+) (malloc|free) /gm)) {
    counted.set(`@${thread} ${verb}`, (counted.get(`@${thread} ${verb}`) ?? 0) + 1);
  }
  for (let t = 2; t <= 5; t++) {
    assert.ok((counted.get(`@${t} malloc`) ?? 0) >= 30000, `thread ${t}'s mallocs`);
    assert.ok((counted.get(`@${t} free`) ?? 0) >= 30000, `thread ${t}'s frees`);
  }
  const last = calls(trace.slice(trace.indexOf('\n', trace.length - 16384) + 1));
  assert.ok(last.length > 100, `${last.length} calls in the last 16 KiB`);
  assert.equal(
    last.slice(-100).map((line) => line.replace(/b\d+/, 'ID')),
    Array(100).fill('malloc ID 24'),
    'the main thread’s last 100 calls end the trace',
  );
  assert.not.match(trace, /never finished|stopped/);
  // The trace reader accepts it, read as replay reads a file (readRaw: no event objects for its 240,000 calls).
  const reader = readTrace(join(scratch, 'killed.trace'));
  while (reader.readRaw());
  assert.ok(reader.seq > 240000, `${reader.seq} calls`);
});

recordTest('--via mtrace keeps the old way: a threaded program is refused (RECORD_THREADS)', async () => {
  const run = await cli(['record', '--via', 'mtrace', '-o', 'mt.trace', '--', program, 'threads']);
  assert.is(run.status, 1);
  assert.match(run.stderr, /^mallocscope: program created 4 threads: mtrace does not record .*\[RECORD_THREADS\]\n$/);
  const children = await cli(['record', '--via', 'mtrace', '--children', 'kids', '--', program]);
  assert.is(children.status, 2);
  assert.match(children.stderr, /--children is for the recorder: mtrace follows one process/);
});

recordTest('--preamble and --ignore-threads are accepted by the recorder, which needs neither', async () => {
  const run = await cli(['record', '--preamble', '--ignore-threads', '--', program, 'c11']);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stdout, /\n# preamble: none is needed: the recorder starts at the process's first allocation/);
  assert.ok(calls(run.stdout).includes('spawn 2'));
});

// ---- hand-made logs ---------------------------------------------------------------------------------------

const RING = 32768;
/** Where the records written out start: after the header's fields and the ring. */
const START = 4096 + RING * 32;

/** Where record i is in a log that has written out `written` records: after the ring, or in it. */
function recordAt(i: number, written: number): number {
  return i < written ? START + i * 32 : 4096 + (i % RING) * 32;
}

type Record = [number, number, number, bigint | number, bigint | number, bigint | number];

/**
 * A log as the recorder writes it: the header, the ring, then one record per [kind, how, thread, a, b, c]; the
 * records from `written` on are left in the ring, as a process that ends leaves its last ones.
 */
function makeLog(records: Record[], patch: (log: Buffer) => void = () => {}, written = records.length): Buffer {
  const log = Buffer.alloc(START + written * 32);
  log.write('MSCOPREC', 0, 'latin1');
  log.writeUInt32LE(2, 8);
  log.writeUInt32LE(32, 12);
  log.writeBigUInt64LE(BigInt(records.length), 16);
  log.writeUInt32LE(4242, 28);
  log.writeUInt32LE(1, 32);
  log.writeUInt32LE(4096, 40);
  log.writeUInt32LE(RING, 44);
  log.writeBigUInt64LE(0x555555559000n, 48);
  log.writeBigUInt64LE(BigInt(written), 56);
  log.write('/usr/bin/made-up', 64, 'latin1');
  records.forEach(([kind, how, thread, a, b, c], i) => {
    const at = recordAt(i, written);
    log[at] = kind;
    log[at + 1] = how;
    log.writeUInt32LE(thread, at + 4);
    log.writeBigUInt64LE(BigInt(a), at + 8);
    log.writeBigUInt64LE(BigInt(b), at + 16);
    log.writeBigUInt64LE(BigInt(c), at + 24);
  });
  patch(log);
  return log;
}

const P = 0x555555559000n;
const T = 0x7ffff0000b70n;

const everyKind: Record[] = [
  [1, 0, 1, P + 0x2a0n, 100, 0], // 0 malloc
  [9, 0, 1, 7, 0, 0], // 1 spawn of recorder thread 7 → trace thread 2
  [10, 0, 1, 8, 0, 0], // 2 a failed pthread_create
  [9, 0, 7, 9, 0, 0], // 3 thread 7 spawns 9 → trace thread 3
  [1, 0, 9, T, 24, 0], // 4
  [11, 0, 7, 0, 0, 0], // 5 thread 7's start routine returns...
  [3, 0, 1, P + 0x2a0n, 200, 0], // 6 realloc begins
  [5, 0, 7, T, 0, 0], // 7 ...and its destructors free a block: the exit line follows this
  [4, 0, 1, P + 0x2a0n, 200, P + 0x2a0n], // 8 realloc ends in place
  [2, 0, 9, 0, 1n << 62n, 4], // 9 a failed calloc
  [5, 0, 9, 0x1234n, 0, 0], // 10 a free of a block never seen
  [6, 1, 9, 0, 3, 10], // 11 aligned_alloc(3, 10): EINVAL
  [6, 4, 9, P + 0x1000n, 0, 10], // 12 valloc(10)
  [6, 5, 1, P + 0x2000n, 0, 5000], // 13 pvalloc(5000)
  [0, 0, 0, 0, 0, 0], // 14 never finished
  [1, 0, 1, P + 0x1000n, 40, 0], // 15 the valloc block's address again: its free went unseen
  [8, 0, 1, -3n & 0xffffffffffffffffn, 65536, 0], // 16 mallopt(M_MMAP_THRESHOLD, 65536)
  [8, 0, 1, -6n & 0xffffffffffffffffn, 1, 0], // 17 mallopt(M_PERTURB, 1)
  [7, 0, 9, 128, 0, 0], // 18 malloc_trim(128)
  [3, 0, 1, P + 0x2a0n, 0, 0], // 19 realloc(p, 0)
  [4, 0, 1, 0, 0, P + 0x2a0n], // 20 frees p
  [9, 1, 1, 12, 0, 0], // 21 a thread no pthread_create of ours started
  [1, 0, 12, T + 0x100n, 8, 0], // 22
];

test('a hand-made log of every record kind converts to the trace written by hand', async () => {
  writeFileSync(join(scratch, 'every.msrec'), makeLog(everyKind));
  const run = await cli(['import-recording', 'every.msrec']);
  assert.is(run.status, 0, run.stderr);
  assert.fixture(
    run.stdout,
    [
      'malloc b1 100',
      'spawn 2',
      '# pthread_create failed: no thread',
      '@2 spawn 3',
      '@3 malloc b2 24',
      '@2 free b2',
      '@2 exit',
      'realloc b1 200',
      '@3 calloc b3 4611686018427387904 4    # failed (NULL) in the recorded run',
      '# free of 0x1234, a block this log never saw allocated: skipped',
      '# aligned_alloc(3, 10) refused its alignment (EINVAL) without allocating: skipped',
      '@3 memalign b4 4096 10',
      'memalign b5 4096 8192',
      '# record 14: a call the process never finished (it ended, or was killed, during the call)',
      'free b4    # 0x55555555a000 comes back while live: its free was not recorded (glibc freed it inside pthread_create), so it is freed here',
      'malloc b6 40',
      'mallopt M_MMAP_THRESHOLD 65536',
      '# mallopt(-6, 1): a parameter the trace format does not name (M_CHECK_ACTION, M_PERTURB): skipped',
      '@3 trim 128',
      'realloc b1 0',
      "spawn 4    # a thread that no pthread_create of the program started (one of glibc's own): spawned at its first call",
      '@4 malloc b7 8',
      '# end of recording: 17 calls from 23 records; 3 threads besides the main one; 3 blocks still live; 1 call failed in the recorded run; 1 free/realloc of a block the log never saw allocated skipped; 1 free not recorded, written where the address came back; 1 call unfinished when the process ended',
      '',
    ].join('\n'),
  );
  parseTrace(run.stdout, { name: 'every.trace' });
});

test('the records still in the ring (a process that ended, or was killed) follow those written out, across its end', async () => {
  // 32760 records written out (a malloc and a free, again and again), then the kinds above, the last 15 of
  // them past the ring's end: the same trace as when all were written out.
  const filler: Record[] = [];
  for (let i = 0; i < 16380; i++) filler.push([1, 0, 1, P + 0x10000n, 16, 0], [5, 0, 1, P + 0x10000n, 0, 0]);
  const records = [...filler, ...everyKind];
  writeFileSync(join(scratch, 'flat.msrec'), makeLog(records));
  writeFileSync(
    join(scratch, 'ring.msrec'),
    makeLog(records, () => {}, filler.length),
  );
  const flat = await cli(['import-recording', 'flat.msrec']);
  const ring = await cli(['import-recording', 'ring.msrec']);
  assert.is(flat.status, 0, flat.stderr);
  assert.is(ring.status, 0, ring.stderr);
  assert.ok(flat.stdout.includes('\n@4 malloc b16387 8\n'), 'the last record converted');
  assert.is(ring.stdout, flat.stdout);
  // An error in a record still in the ring names where it is.
  writeFileSync(
    join(scratch, 'ring-bad.msrec'),
    makeLog([...filler, [77, 0, 1, 0, 0, 0]], () => {}, filler.length),
  );
  const bad = await cli(['import-recording', 'ring-bad.msrec']);
  assert.is(bad.stderr, `mallocscope: ring-bad.msrec: record 32760 (byte ${4096 + 32760 * 32}): unknown record kind 77 [RECLOG_BAD_RECORD]\n`);
});

const badLogs: [string, Buffer, string, RegExp][] = [
  ['text.msrec', Buffer.from('malloc a 1\n'), 'RECLOG_NOT_A_LOG', /^text\.msrec: not a mallocscope recording \(it does not start with 'MSCOPREC'\)$/],
  ['short.msrec', makeLog([]).subarray(0, 100), 'RECLOG_TRUNCATED', /^short\.msrec: the header is cut short: 100 of its 4096 bytes$/],
  [
    'cut.msrec',
    makeLog([[1, 0, 1, P, 8, 0]], (log) => log.writeBigUInt64LE(5n, 56)),
    'RECLOG_TRUNCATED',
    /^cut\.msrec: the header counts 5 records written out, but the file holds 1: it was cut short$/,
  ],
  [
    'ring-cut.msrec',
    makeLog([]).subarray(0, 8192),
    'RECLOG_TRUNCATED',
    /^ring-cut\.msrec: the ring is cut short: the file ends at byte 8192, the ring at 1052672$/,
  ],
  [
    'v1.msrec',
    makeLog([], (log) => log.writeUInt32LE(1, 8)),
    'RECLOG_VERSION',
    /^v1\.msrec: a recording of format 1 with 32-byte records; this mallocscope reads format 2 with 32-byte records and a ring of 32768$/,
  ],
  [
    'beyond.msrec',
    makeLog([[1, 0, 1, P, 8, 0]], (log) => log.writeBigUInt64LE(40000n, 16)),
    'RECLOG_BAD_RECORD',
    /^beyond\.msrec: the header counts 40000 records, more than the 1 written out and the ring's 32768$/,
  ],
  ['kind.msrec', makeLog([[77, 0, 1, 0, 0, 0]]), 'RECLOG_BAD_RECORD', /^kind\.msrec: record 0 \(byte 1052672\): unknown record kind 77$/],
  [
    'thread.msrec',
    makeLog([
      [1, 0, 1, P, 8, 0],
      [1, 0, 5, P + 32n, 8, 0],
    ]),
    'RECLOG_THREAD',
    /^thread\.msrec: record 1 \(byte 1052704\): a record of thread 5, which was never spawned$/,
  ],
  [
    'unpaired.msrec',
    makeLog([[4, 0, 1, P, 8, P]]),
    'RECLOG_UNPAIRED',
    /^unpaired\.msrec: record 0 \(byte 1052672\): the end of a realloc in thread 1 without its beginning$/,
  ],
  [
    'realloc-zero.msrec',
    makeLog([
      [1, 0, 1, P + 0x2a0n, 100, 0],
      [3, 0, 1, P + 0x2a0n, 0, 0],
      [4, 0, 1, P + 0x310n, 0, 0], // realloc(p, 0) ends with a block
    ]),
    'RECLOG_NOT_GLIBC',
    /^realloc-zero\.msrec: record 2 \(byte 1052736\): realloc\(0x5555555592a0, 0\) returned a block \(0x555555559310\): glibc's realloc frees the block and returns NULL/,
  ],
  ['main-exit.msrec', makeLog([[11, 0, 1, 0, 0, 0]]), 'RECLOG_THREAD', /^main-exit\.msrec: record 0 \(byte 1052672\): thread 1, the main thread, cannot exit$/],
  [
    'page.msrec',
    makeLog([[1, 0, 1, P, 8, 0]], (log) => log.writeUInt32LE(0, 40)),
    'RECLOG_PAGE_SIZE',
    /^page\.msrec: the header's page size is 0, not a power of two of at least 4096$/,
  ],
];

for (const [file, log, code, message] of badLogs) {
  test(`import-recording: ${code} (${file})`, async () => {
    writeFileSync(join(scratch, file), log);
    const run = await cli(['import-recording', file, '-o', `${file}.trace`]);
    assert.is(run.status, 1, run.stderr);
    assert.is(run.stderr.split('\n').length, 2, `one line only: ${run.stderr}`);
    const line = run.stderr.trimEnd();
    assert.ok(message.test(line.slice('mallocscope: '.length, -` [${code}]`.length)), line);
    assert.ok(line.endsWith(` [${code}]`), line);
    assert.not.ok(existsSync(join(scratch, `${file}.trace`)), 'a half-written trace is removed');
  });
}

test('import-recording: a missing log is RECLOG_OPEN', async () => {
  const run = await cli(['import-recording', 'no-such.msrec']);
  assert.is(run.status, 1);
  assert.is(run.stderr, 'mallocscope: no-such.msrec: cannot read: no such file or directory [RECLOG_OPEN]\n');
});

test.after(() => rmSync(scratch, { recursive: true, force: true }));

test.run();
