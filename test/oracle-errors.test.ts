// The oracle's bad-trace errors against docs/trace-format.md: every code, word for word with file and line,
// exit status 1, one line and no stack trace; the order of the checks; what was printed before the bad line;
// and the lexical corners (line length, CRLF, comments, number forms). These are the oracle program's own
// behaviour, so the oracle binary is asked directly (a process start of a few milliseconds); what the command
// line adds (its own TRACE_OPEN check, usage errors, passing the oracle's output and status on) is checked
// end to end through `mallocscope oracle`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TraceError } from '../dist/errors.js';
import { ORACLE_BINARY, oracleEnv, runOracle, spawnWithoutFork } from '../dist/oracle/oracle.js';
import { parseTrace } from '../dist/trace/reader.js';
import { builtFile } from '../dist/native.js';
import { mallocscope } from './support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-oracle-errors-'));
const oracleBinary = builtFile(ORACLE_BINARY);
let files = 0;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The oracle binary itself on `args`, in the environment the runner gives it (stdin /dev/null), started as
 * runOracleSync starts it (spawnWithoutFork: spawnSync's fork costs twice as much a run, and this file makes
 * a hundred).
 */
function oracle(args: string[]): Run {
  const run = spawnWithoutFork(oracleBinary, args, oracleEnv());
  if (run.error) throw run.error;
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** `mallocscope oracle ARGS…` as a user runs it. */
function cli(args: string[], env: NodeJS.ProcessEnv = oracleEnv()): Promise<Run> {
  return mallocscope(['oracle', ...args], { environment: env });
}

/** Writes `text` (a string, or bytes for binary and invalid UTF-8) to a trace file. */
function traceFile(text: string | Uint8Array): string {
  const path = join(dir, `t${files++}.trace`);
  writeFileSync(path, text);
  return path;
}

/** Writes `text` to a trace file and runs the oracle binary on it. */
function runTrace(text: string | Uint8Array, args: string[] = []): Run & { path: string } {
  const path = traceFile(text);
  return { ...oracle([...args, path]), path };
}

/** Asserts the documented error of `run` on the trace at `path`: exit 1 and exactly one line. */
function assertError(run: Run, path: string, line: number, message: string, code: string): void {
  assert.is(run.stderr, `mallocscope: ${path}:${line}: ${message} [${code}]\n`);
  assert.is(run.status, 1);
  assert.not.match(run.stderr, /\n\s+at /); // no stack trace
}

/** Asserts the documented error: exit 1 and exactly the one line `mallocscope: FILE:LINE: MESSAGE [CODE]`. */
function expectError(text: string | Uint8Array, line: number, message: string, code: string): Run {
  const run = runTrace(text);
  assertError(run, run.path, line, message, code);
  // The TypeScript reader gives the same error, word for word (docs/trace-format.md).
  try {
    parseTrace(text, { name: run.path });
    assert.unreachable(`the reader accepted what the oracle refused: ${message}`);
  } catch (error) {
    assert.instance(error, TraceError);
    assert.is((error as TraceError).describe(), `${run.path}:${line}: ${message} [${code}]`);
  }
  return run;
}

/** The parsed events of a good trace. */
function good(text: string | Uint8Array): Record<string, unknown>[] {
  const run = runTrace(text);
  assert.is(run.stderr, '');
  assert.is(run.status, 0);
  return run.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

// ---- every code ------------------------------------------------------------------------------------------

test('TRACE_BINARY', () => {
  expectError(bytes('malloc a 1', [0x01], '\n'), 1, 'binary data (byte 0x01 at column 11); a trace is text', 'TRACE_BINARY');
  expectError(bytes('malloc a 1 # ', [0x7f], '\n'), 1, 'binary data (byte 0x7f at column 14); a trace is text', 'TRACE_BINARY');
  expectError(bytes('malloc a 1\n', [0x00]), 2, 'binary data (byte 0x00 at column 1); a trace is text', 'TRACE_BINARY');
  expectError(bytes('free', [0x0b], ' a\n'), 1, 'binary data (byte 0x0b at column 5); a trace is text', 'TRACE_BINARY');
});

test('TRACE_LINE_TOO_LONG', () => {
  expectError(`malloc a 1\n#${'x'.repeat(4096)}\n`, 2, 'line is longer than 4096 characters', 'TRACE_LINE_TOO_LONG');
  // A line far longer than the oracle's read chunk (1 MiB), with no newline at the end of the file.
  expectError(`# ${'y'.repeat(3 * 1024 * 1024)}`, 1, 'line is longer than 4096 characters', 'TRACE_LINE_TOO_LONG');
});

test('TRACE_UNKNOWN_VERB', () => {
  const expected = "unknown verb 'MALLOC' (expected malloc, calloc, realloc, memalign, free, mallopt, trim, spawn or exit)";
  expectError('MALLOC a 1\n', 1, expected, 'TRACE_UNKNOWN_VERB');
  expectError(
    '  posix_memalign a 16 1 # x\n',
    1,
    "unknown verb 'posix_memalign' (expected malloc, calloc, realloc, memalign, free, mallopt, trim, spawn or exit)",
    'TRACE_UNKNOWN_VERB',
  );
});

test('TRACE_FIELD_COUNT, for every verb', () => {
  expectError('malloc a\n', 1, 'malloc takes 2 fields (ID SIZE), found 1', 'TRACE_FIELD_COUNT');
  expectError('calloc a 1\n', 1, 'calloc takes 3 fields (ID NMEMB SIZE), found 2', 'TRACE_FIELD_COUNT');
  expectError('realloc a 1 2\n', 1, 'realloc takes 2 fields (ID SIZE), found 3', 'TRACE_FIELD_COUNT');
  expectError('memalign a 16 1 9 9\n', 1, 'memalign takes 3 fields (ID ALIGN SIZE), found 5', 'TRACE_FIELD_COUNT');
  expectError('free a b\n', 1, 'free takes 1 field (ID), found 2', 'TRACE_FIELD_COUNT');
  expectError('mallopt M_TOP_PAD\n', 1, 'mallopt takes 2 fields (PARAM VALUE), found 1', 'TRACE_FIELD_COUNT');
  expectError('trim\n', 1, 'trim takes 1 field (PAD), found 0', 'TRACE_FIELD_COUNT');
  expectError('malloc a#1\n', 1, 'malloc takes 2 fields (ID SIZE), found 1', 'TRACE_FIELD_COUNT');
});

test('TRACE_BAD_NUMBER', () => {
  const notANumber = (field: string, x: string) => `${field} is not a number: '${x}' (decimal or 0x-hexadecimal)`;
  expectError('malloc a 12k\n', 1, notANumber('SIZE', '12k'), 'TRACE_BAD_NUMBER');
  expectError('malloc a 0x\n', 1, notANumber('SIZE', '0x'), 'TRACE_BAD_NUMBER');
  expectError('malloc a +5\n', 1, notANumber('SIZE', '+5'), 'TRACE_BAD_NUMBER');
  expectError('malloc a 1_000\n', 1, notANumber('SIZE', '1_000'), 'TRACE_BAD_NUMBER');
  expectError('calloc a x 1\n', 1, notANumber('NMEMB', 'x'), 'TRACE_BAD_NUMBER');
  expectError('memalign a 0x1g 1\n', 1, notANumber('ALIGN', '0x1g'), 'TRACE_BAD_NUMBER');
  expectError('trim 1.5\n', 1, notANumber('PAD', '1.5'), 'TRACE_BAD_NUMBER');
  expectError('mallopt M_TOP_PAD --1\n', 1, notANumber('VALUE', '--1'), 'TRACE_BAD_NUMBER');
  expectError('mallopt M_TOP_PAD -\n', 1, notANumber('VALUE', '-'), 'TRACE_BAD_NUMBER');
});

test('TRACE_NEGATIVE', () => {
  expectError('malloc a -1\n', 1, "SIZE is negative: '-1'", 'TRACE_NEGATIVE');
  expectError('calloc a 1 -abc\n', 1, "SIZE is negative: '-abc'", 'TRACE_NEGATIVE');
  expectError('trim -0\n', 1, "PAD is negative: '-0'", 'TRACE_NEGATIVE');
  expectError('memalign a - 1\n', 1, "ALIGN is negative: '-'", 'TRACE_NEGATIVE');
});

test('TRACE_RANGE', () => {
  expectError('malloc a 18446744073709551616\n', 1, "SIZE is out of range: '18446744073709551616' (at most 2^64-1)", 'TRACE_RANGE');
  expectError('malloc a 0x10000000000000000\n', 1, "SIZE is out of range: '0x10000000000000000' (at most 2^64-1)", 'TRACE_RANGE');
  expectError('calloc a 99999999999999999999 1\n', 1, "NMEMB is out of range: '99999999999999999999' (at most 2^64-1)", 'TRACE_RANGE');
  const value = (x: string) => `VALUE is out of range: '${x}' (mallopt takes a C int, -2147483648 to 2147483647)`;
  expectError('mallopt M_MXFAST 2147483648\n', 1, value('2147483648'), 'TRACE_RANGE');
  expectError('mallopt M_MXFAST -2147483649\n', 1, value('-2147483649'), 'TRACE_RANGE');
  expectError('mallopt M_MXFAST 0xffffffff\n', 1, value('0xffffffff'), 'TRACE_RANGE');
  expectError('mallopt M_MXFAST -99999999999999999999999\n', 1, value('-99999999999999999999999'), 'TRACE_RANGE');
});

test('TRACE_UNKNOWN_PARAM', () => {
  const expected = (x: string) =>
    `unknown mallopt parameter '${x}' (expected M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_MXFAST, M_ARENA_MAX or M_ARENA_TEST)`;
  expectError('mallopt M_ARENA_MAXIMUM 1\n', 1, expected('M_ARENA_MAXIMUM'), 'TRACE_UNKNOWN_PARAM');
  expectError('mallopt m_top_pad 1\n', 1, expected('m_top_pad'), 'TRACE_UNKNOWN_PARAM');
  expectError('mallopt -3 1\n', 1, expected('-3'), 'TRACE_UNKNOWN_PARAM');
});

test('TRACE_ENCODING', () => {
  expectError(bytes('malloc ', [0xff], ' 1\n'), 1, 'ID is not valid UTF-8', 'TRACE_ENCODING');
  expectError(bytes('malloc a', [0xc0, 0x80], ' 1\n'), 1, 'ID is not valid UTF-8', 'TRACE_ENCODING'); // overlong
  expectError(bytes('free ', [0xed, 0xa0, 0x80], '\n'), 1, 'ID is not valid UTF-8', 'TRACE_ENCODING'); // surrogate
  expectError(bytes('malloc ', [0xe2, 0x82], ' 1\n'), 1, 'ID is not valid UTF-8', 'TRACE_ENCODING'); // truncated
  // Valid UTF-8 is fine and comes back as written.
  assert.equal(
    good('malloc été→😀 1\nfree été→😀\n').map((e) => e.id),
    ['été→😀', 'été→😀'],
  );
});

test('TRACE_ID_LIVE', () => {
  expectError('malloc a 1\nmalloc a 2\n', 2, "ID 'a' is already live (created at line 1)", 'TRACE_ID_LIVE');
  expectError('# c\nrealloc r 10\nrealloc r 20\ncalloc r 1 1\n', 4, "ID 'r' is already live (created at line 2)", 'TRACE_ID_LIVE');
  expectError('malloc m 1\n\nmemalign m 64 1\n', 3, "ID 'm' is already live (created at line 1)", 'TRACE_ID_LIVE');
});

test('TRACE_ID_NOT_LIVE', () => {
  expectError('free a\n', 1, "free of ID 'a', which is not live", 'TRACE_ID_NOT_LIVE');
  expectError('malloc a 1\nfree a\nfree a\n', 3, "free of ID 'a', which is not live", 'TRACE_ID_NOT_LIVE');
  expectError('realloc a 5\nrealloc a 0\nfree a\n', 3, "free of ID 'a', which is not live", 'TRACE_ID_NOT_LIVE');
});

// ---- threads: @T tags, spawn, exit ----------------------------------------------------------------------

test('M_ARENA_MAX and M_ARENA_TEST are mallopt parameters', () => {
  assert.equal(
    good('mallopt M_ARENA_MAX 1\nmallopt M_ARENA_TEST 2\n').map((e) => e.op),
    ['mallopt', 'mallopt'],
  );
});

test('TRACE_THREAD_TAG: a tag that is not @ and a thread number, or has no call after it', () => {
  const tag = (x: string) => `thread tag is not a thread number: '${x}' (expected @ and a decimal number from 1 to 2147483647)`;
  for (const x of ['@x', '@0', '@', '@0x2', '@-1', '@+1', '@2147483648', '@2malloc']) expectError(`${x} malloc a 1\n`, 1, tag(x), 'TRACE_THREAD_TAG');
  expectError('malloc a 1\n@2\n', 2, "thread tag '@2' has no call after it", 'TRACE_THREAD_TAG');
  expectError('@3 # a comment\n', 1, "thread tag '@3' has no call after it", 'TRACE_THREAD_TAG');
});

test('TRACE_THREAD_NUMBER: spawn of something that is not a thread number', () => {
  const number = (x: string) => `THREAD is not a thread number: '${x}' (expected a decimal number from 1 to 2147483647)`;
  for (const x of ['x', '0', '-2', '0x2', '2147483648']) expectError(`spawn ${x}\n`, 1, number(x), 'TRACE_THREAD_NUMBER');
});

test('TRACE_FIELD_COUNT for spawn and exit; TRACE_UNKNOWN_VERB after a tag', () => {
  expectError('spawn\n', 1, 'spawn takes 1 field (THREAD), found 0', 'TRACE_FIELD_COUNT');
  expectError('@1 spawn 2 3\n', 1, 'spawn takes 1 field (THREAD), found 2', 'TRACE_FIELD_COUNT');
  expectError('spawn 2\n@2 exit now\n', 2, 'exit takes no fields, found 1', 'TRACE_FIELD_COUNT');
  expectError(
    '@1 mallok a 1\n',
    1,
    "unknown verb 'mallok' (expected malloc, calloc, realloc, memalign, free, mallopt, trim, spawn or exit)",
    'TRACE_UNKNOWN_VERB',
  );
});

test('TRACE_THREAD_UNKNOWN, TRACE_THREAD_EXITED: a line of a thread that was never spawned, or has exited', () => {
  expectError('malloc a 1\n@2 free a\n', 2, 'thread 2 was never spawned', 'TRACE_THREAD_UNKNOWN');
  expectError('spawn 2\n@3 spawn 4\n', 2, 'thread 3 was never spawned', 'TRACE_THREAD_UNKNOWN');
  expectError('spawn 2\n\n@2 exit\n@2 malloc a 1\n', 4, 'thread 2 has exited (at line 3)', 'TRACE_THREAD_EXITED');
  expectError('spawn 2\n@2 exit\n@2 exit\n', 3, 'thread 2 has exited (at line 2)', 'TRACE_THREAD_EXITED');
});

test('TRACE_THREAD_NOT_NEW: spawn of a thread that exists or existed; TRACE_EXIT_MAIN: thread 1 cannot exit', () => {
  expectError('spawn 2\n@2 spawn 2\n', 2, 'spawn of thread 2, which is not new (spawned at line 1)', 'TRACE_THREAD_NOT_NEW');
  expectError('spawn 2\n@2 spawn 3\n@2 exit\nspawn 2\n', 4, 'spawn of thread 2, which is not new (spawned at line 1)', 'TRACE_THREAD_NOT_NEW');
  expectError('spawn 1\n', 1, 'spawn of thread 1, which is not new (the main thread)', 'TRACE_THREAD_NOT_NEW');
  expectError('exit\n', 1, 'thread 1, the main thread, cannot exit', 'TRACE_EXIT_MAIN');
  expectError('@1 exit\n', 1, 'thread 1, the main thread, cannot exit', 'TRACE_EXIT_MAIN');
});

test('thread checks come after the fields and before liveness; the lines before a bad one come out first', () => {
  // fields first: a bad SIZE on a line of an unknown thread
  expectError('@2 malloc a x\n', 1, "SIZE is not a number: 'x' (decimal or 0x-hexadecimal)", 'TRACE_BAD_NUMBER');
  // the line's thread before the ID's liveness
  expectError('@2 free a\n', 1, 'thread 2 was never spawned', 'TRACE_THREAD_UNKNOWN');
  // the tag before the verb
  expectError('@x bogus\n', 1, "thread tag is not a thread number: '@x' (expected @ and a decimal number from 1 to 2147483647)", 'TRACE_THREAD_TAG');
  // an error met by a spawned thread: the lines before it, then the error, exit 1
  const run = expectError('spawn 2\n@2 malloc a 100\n@2 free b\n', 3, "free of ID 'b', which is not live", 'TRACE_ID_NOT_LIVE');
  assert.equal(
    run.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).op),
    ['spawn', 'malloc'],
  );
});

test('TRACE_OPEN: a missing file, a directory (the oracle, the runner, and the command line)', async () => {
  const missing = join(dir, 'nope.trace');
  for (const run of [oracle([missing]), await cli([missing])]) {
    assert.is(run.stderr, `mallocscope: ${missing}: cannot read: no such file or directory [TRACE_OPEN]\n`);
    assert.is(run.status, 1);
  }
  const directory = oracle([dir]);
  assert.is(directory.stderr, `mallocscope: ${dir}: cannot read: is a directory [TRACE_OPEN]\n`);
  assert.is(directory.status, 1);
  // The runner (and so the command line) checks the file itself before it starts the oracle: the same words.
  try {
    await runOracle(dir);
    assert.unreachable('expected an error');
  } catch (error) {
    assert.instance(error, TraceError);
    assert.is((error as TraceError).describe(), `${dir}: cannot read: is a directory [TRACE_OPEN]`);
  }
});

test('usage mistakes exit 2 with one line', async () => {
  for (const run of [await cli(['--bogus', 'x'], process.env), oracle(['--bogus', 'x'])]) {
    assert.is(run.status, 2);
    assert.is(run.stderr.split('\n').length, 2);
    assert.match(run.stderr, /^mallocscope: .*\[USAGE\]\n$/);
  }
});

// ---- the order of the checks -----------------------------------------------------------------------------

test('check order: binary first, then length, verb, count, fields left to right, liveness', () => {
  // binary beats an unknown verb, and beats length even far into a long line
  expectError(bytes('bogus', [0x02], ' a\n'), 1, 'binary data (byte 0x02 at column 6); a trace is text', 'TRACE_BINARY');
  expectError(bytes(`# ${'z'.repeat(4498)}`, [0x1f], '\n'), 1, 'binary data (byte 0x1f at column 4501); a trace is text', 'TRACE_BINARY');
  expectError(bytes(`# ${'z'.repeat(2_000_000)}`, [0x1b]), 1, 'binary data (byte 0x1b at column 2000003); a trace is text', 'TRACE_BINARY');
  // length beats verb
  expectError(`bogus ${'x'.repeat(5000)}\n`, 1, 'line is longer than 4096 characters', 'TRACE_LINE_TOO_LONG');
  // verb beats field count; field count beats the fields
  expectError('mallocx\n', 1, "unknown verb 'mallocx' (expected malloc, calloc, realloc, memalign, free, mallopt, trim, spawn or exit)", 'TRACE_UNKNOWN_VERB');
  expectError('malloc -1\n', 1, 'malloc takes 2 fields (ID SIZE), found 1', 'TRACE_FIELD_COUNT');
  // fields left to right
  expectError(bytes('calloc ', [0xff], ' -1 x\n'), 1, 'ID is not valid UTF-8', 'TRACE_ENCODING');
  expectError('calloc a x -1\n', 1, "NMEMB is not a number: 'x' (decimal or 0x-hexadecimal)", 'TRACE_BAD_NUMBER');
  expectError('memalign a -1 x\n', 1, "ALIGN is negative: '-1'", 'TRACE_NEGATIVE');
  expectError(
    'mallopt M_BAD x\n',
    1,
    "unknown mallopt parameter 'M_BAD' (expected M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_MXFAST, M_ARENA_MAX or M_ARENA_TEST)",
    'TRACE_UNKNOWN_PARAM',
  );
  // within a number: negative, then malformed, then range
  expectError('malloc a -99999999999999999999999x\n', 1, "SIZE is negative: '-99999999999999999999999x'", 'TRACE_NEGATIVE');
  expectError('malloc a 99999999999999999999999x\n', 1, "SIZE is not a number: '99999999999999999999999x' (decimal or 0x-hexadecimal)", 'TRACE_BAD_NUMBER');
  // liveness last
  expectError('malloc a 1\nmalloc a -1\n', 2, "SIZE is negative: '-1'", 'TRACE_NEGATIVE');
});

test('an error on line 3 after two good lines prints those two JSON lines first (the oracle, the command line)', async () => {
  const text = 'malloc a 100\nfree a\nfree a\n';
  const direct = expectError(text, 3, "free of ID 'a', which is not live", 'TRACE_ID_NOT_LIVE');
  // Through the command line: the oracle's lines, its one error line and its status, passed on as they are.
  const path = traceFile(text);
  const viaCli = await cli([path]);
  assertError(viaCli, path, 3, "free of ID 'a', which is not live", 'TRACE_ID_NOT_LIVE');
  for (const run of [direct, viaCli]) {
    assert.equal(
      run.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
      [
        { seq: 0, op: 'malloc', id: 'a', where: 'heap', chunk: 112, offset: 672 },
        { seq: 1, op: 'free', id: 'a' },
      ],
    );
  }
});

// ---- lexical corners -------------------------------------------------------------------------------------

test('a line of exactly 4096 characters is fine, 4097 is not; a CR before the LF does not count', () => {
  const line = (n: number) => `malloc a 1 #${'x'.repeat(n - 12)}`;
  assert.is(line(4096).length, 4096);
  assert.equal(good(`${line(4096)}\n`).length, 1);
  assert.equal(good(`${line(4096)}\r\n`).length, 1);
  assert.equal(good(line(4096)).length, 1);
  expectError(`${line(4097)}\n`, 1, 'line is longer than 4096 characters', 'TRACE_LINE_TOO_LONG');
  expectError(`free b\n${line(4097)}\r\n`, 1, "free of ID 'b', which is not live", 'TRACE_ID_NOT_LIVE');
  expectError(`malloc b 1\n${line(4097)}\r\n`, 2, 'line is longer than 4096 characters', 'TRACE_LINE_TOO_LONG');
});

test('CRLF files read like LF files; the last line needs no newline; an empty file is valid', () => {
  const lf = good('malloc a 100\ncalloc b 2 50\nfree a\n');
  assert.equal(good('malloc a 100\r\ncalloc b 2 50\r\nfree a\r\n'), lf);
  assert.equal(good('malloc a 100\r\ncalloc b 2 50\r\nfree a'), lf);
  assert.equal(good('malloc\ta\t100\t\r\n calloc  b 2  50\nfree a # done\n'), lf);
  assert.equal(good(''), []);
  assert.equal(good('# only a comment\n\n   \t\n'), []);
});

test('comments and blank lines do not count in seq, but do in line numbers', () => {
  const out = good('# header\n\nmalloc a 1 # first\n   \n# more\nfree a\n');
  assert.equal(
    out.map((e) => [e.seq, e.op]),
    [
      [0, 'malloc'],
      [1, 'free'],
    ],
  );
  expectError('# header\n\nmalloc a 1\n\nfree b\n', 5, "free of ID 'b', which is not live", 'TRACE_ID_NOT_LIVE');
});

test('numbers: decimal, hex, upper-case hex, leading zeros are the same number', () => {
  const expected = { op: 'malloc', id: 'a', where: 'heap', chunk: 112, offset: 672 };
  for (const n of ['100', '0x64', '0X64', '000100', '0x0064', '0x00000000000000000000064']) {
    assert.equal(good(`malloc a ${n}\n`)[0], { seq: 0, ...expected }, n);
  }
});

test('2^64-1 is accepted (the call fails and prints no where); 2^64 is out of range', () => {
  assert.equal(good('malloc a 18446744073709551615\nmalloc b 0xFFFFFFFFFFFFFFFF\ntrim 18446744073709551615\n'), [
    { seq: 0, op: 'malloc', id: 'a' },
    { seq: 1, op: 'malloc', id: 'b' },
    { seq: 2, op: 'trim', id: '' },
  ]);
  expectError('malloc a 18446744073709551616\n', 1, "SIZE is out of range: '18446744073709551616' (at most 2^64-1)", 'TRACE_RANGE');
});

test('mallopt VALUE: -2147483648 and -0x80000000 are fine, 2147483648 is out of range', () => {
  assert.equal(good('mallopt M_MXFAST -2147483648\nmallopt M_MXFAST -0x80000000\nmallopt M_MXFAST 2147483647\nmallopt M_MXFAST -0\n').length, 4);
  expectError('mallopt M_MXFAST 2147483648\n', 1, "VALUE is out of range: '2147483648' (mallopt takes a C int, -2147483648 to 2147483647)", 'TRACE_RANGE');
});

test('IDs with " and \\ are escaped in the JSON', () => {
  const out = good('malloc a"b\\c 1\nfree a"b\\c\n');
  assert.equal(
    out.map((e) => e.id),
    ['a"b\\c', 'a"b\\c'],
  );
});

test.run();
