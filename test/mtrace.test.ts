// Tests of the mtrace import (src/trace/mtrace.ts) and of `mallocscope import-mtrace` / `record`: hand-written
// logs of every record type, every error through the CLI, real recordings, and the committed fixtures.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unless } from './support/skip.ts';
import { bin, mallocscope } from './support/cli.ts';
import { testProgram } from './support/programs.ts';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TraceError } from '../dist/errors.js';
import { convertMtrace, MtraceConverter, MTRACE_PREAMBLE } from '../dist/trace/mtrace.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(root, 'test/fixtures/mtrace');
const realFixtures = join(root, 'test/fixtures/real');
const scratch = mkdtempSync(join(tmpdir(), 'mallocscope-mtrace-test-'));
const starterBuilt = existsSync(join(root, 'build/Release/libmallocscope-mtrace.so'));
const haveDash = spawnSync('dash', ['-c', 'exit 0']).status === 0;
const oracleBuilt = existsSync(join(root, 'build/Release/mallocscope-oracle'));
// The starter library, the oracle and the test programs (test/support/programs.ts) are built by npm install.
const recordTest = unless(test, starterBuilt ? undefined : 'build/Release/libmallocscope-mtrace.so is not built');
const oracleRecordTest = unless(test, starterBuilt && oracleBuilt ? undefined : 'needs the starter library and the oracle');
const oracleTest = unless(test, oracleBuilt ? undefined : 'the oracle is not built');
const dashTest = unless(test, starterBuilt && haveDash ? undefined : 'needs the starter library and dash');

/** Runs the CLI in `cwd` (default: the scratch folder), in-process when it can be (test/support/cli.ts). */
function cli(args: string[], options: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}) {
  return mallocscope(args, { cwd: options.cwd ?? scratch, input: options.input, env: { MALLOCSCOPE_DEBUG: '', ...options.env } });
}

function fixture(name: string): string {
  return readFileSync(join(fixtures, name), 'utf8');
}

/**
 * Checks a trace against docs/trace-format.md as the importer uses it: every line a comment, blank, or one
 * call of the grammar; IDs created only when not live; free only of live IDs. Returns the number of calls.
 */
function validateTrace(text: string, name: string): number {
  const live = new Set<string>();
  let calls = 0;
  const number = /^(?:[0-9]+|0[xX][0-9a-fA-F]+)$/;
  text.split('\n').forEach((raw, index) => {
    const where = `${name}:${index + 1}`;
    assert.ok(raw.length <= 4096, `${where}: line too long`);
    assert.not.ok(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(raw), `${where}: control byte`);
    const fields = raw
      .replace(/#.*/, '')
      .trim()
      .split(/[ \t\r]+/)
      .filter(Boolean);
    if (fields.length === 0) return;
    calls++;
    const [verb, id, size] = fields;
    switch (verb) {
      case 'malloc':
        assert.is(fields.length, 3, `${where}: malloc takes ID SIZE`);
        assert.ok(number.test(size), `${where}: size`);
        assert.not.ok(live.has(id), `${where}: ID ${id} is already live`);
        live.add(id);
        break;
      case 'realloc':
        assert.is(fields.length, 3, `${where}: realloc takes ID SIZE`);
        assert.ok(number.test(size), `${where}: size`);
        if (live.has(id) && Number(size) === 0) live.delete(id);
        else live.add(id);
        break;
      case 'free':
        assert.is(fields.length, 2, `${where}: free takes ID`);
        assert.ok(live.has(id), `${where}: free of ${id}, which is not live`);
        live.delete(id);
        break;
      default:
        assert.unreachable(`${where}: the importer writes malloc, realloc and free only, found '${verb}'`);
    }
  });
  return calls;
}

/** The lead's trace reader, when it is there: a second, independent check of the grammar. */
async function readerCheck(text: string, name: string): Promise<number | undefined> {
  try {
    const { parseTrace } = await import('../dist/trace/reader.js');
    return parseTrace(text, { name }).length;
  } catch (error) {
    if (error instanceof TraceError) throw error;
    return undefined; // the reader is not written yet
  }
}

// ---- hand-written logs, expected traces written by hand from docs/glibc.md §9 ----------------------------

for (const name of ['section9-probe', 'section9-probe2', 'every-record']) {
  test(`imports ${name}.log as the hand-written ${name}.trace`, async () => {
    const trace = convertMtrace(readFileSync(join(fixtures, `${name}.log`)), `${name}.log`);
    assert.fixture(trace, fixture(`${name}.trace`));
    validateTrace(trace, name);
    const read = await readerCheck(trace, name);
    if (read !== undefined) assert.is(read, validateTrace(trace, name));
  });
}

test('the same trace whatever the chunking of the log (byte by byte)', () => {
  const log = readFileSync(join(fixtures, 'every-record.log'));
  const converter = new MtraceConverter('every-record.log');
  let trace = '';
  for (let i = 0; i < log.length; i++) trace += converter.feed(log.subarray(i, i + 1));
  trace += converter.finish().text;
  assert.fixture(trace, fixture('every-record.trace'));
});

test('--preamble and header lines come first; the summary counts the preamble', () => {
  const trace = convertMtrace('= Start\n@ ./p:[0x1] + 0x5600000004a0 0x10\n', 'x.log', { preamble: true, header: ['hello'] });
  assert.fixture(trace, ['# hello', ...MTRACE_PREAMBLE, 'malloc b1 16', '# end of mtrace log: 4 calls from 2 log lines; 1 block still live', ''].join('\n'));
  const calls = trace
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean);
  assert.equal(calls, ['malloc mtrace-hook-init 0', 'free mtrace-hook-init', 'malloc mtrace-log-FILE 472', 'malloc b1 16']);
  validateTrace(trace, 'preamble');
});

test('a realloc to 0 frees; sizes and pointers beyond 2^53 stay exact', () => {
  const trace = convertMtrace(
    '= Start\n+ 0x10 0x20\n@ ./p:[0x1] - 0x10\n+ 0x10 0xffffffffffffffff\n+ 0xffffffffffffff00 0x1fffffffffffff\n- 0xffffffffffffff00\n',
  );
  assert.is(
    trace,
    'malloc b1 32\nfree b1\nmalloc b2 18446744073709551615\nmalloc b3 9007199254740991\nfree b3\n# end of mtrace log: 5 calls from 6 log lines; 1 block still live\n',
  );
});

test('acceptTruncated: a log cut short ends with a comment instead of an error', () => {
  assert.is(
    convertMtrace('= Start\n+ 0x10 0x20\n+ 0x5', 'cut.log', { acceptTruncated: true }),
    'malloc b1 32\n# the log ends in the middle of line 3: the program ended before its log was flushed\n# end of mtrace log: 1 call from 3 log lines; 1 block still live\n',
  );
  assert.match(convertMtrace('= Start\n+ 0x10 0x20\n< 0x10\n', 'cut.log', { acceptTruncated: true }), /\n# the log ends after a realloc's '<' line \(line 3\)/);
});

// ---- errors: one line on stderr naming file and line, exit status 1, no stack -----------------------------

const badLogs: [string, string, string, RegExp][] = [
  ['bad-record.log', '= Start\n@ ./p:[0x1] + 0x10 0x20\n@ ./p:[0x1] ? 0x10\n', 'MTRACE_BAD_LINE', /^bad-record\.log:3: unknown mtrace record '\?'/],
  ['bad-prefix.log', '= Start\n@ ./p:[0x1 + 0x10 0x20\n', 'MTRACE_BAD_LINE', /^bad-prefix\.log:2: caller prefix/],
  ['bad-fields.log', '= Start\n- 0x10 0x20\n', 'MTRACE_BAD_LINE', /^bad-fields\.log:2: one pointer expected/],
  ['bad-eq.log', '= Start\n= Stop\n', 'MTRACE_BAD_LINE', /^bad-eq\.log:2: not an mtrace line: '= Stop'/],
  ['bad-size.log', '= Start\n@ ./p:[0x1] + 0x10 zz\n', 'MTRACE_BAD_NUMBER', /^bad-size\.log:2: size is not 0x-hexadecimal or 0: 'zz'/],
  ['bad-ptr.log', '= Start\n@ ./p:[0x1] + 12 0x20\n', 'MTRACE_BAD_NUMBER', /^bad-ptr\.log:2: pointer is not 0x-hexadecimal or \(nil\): '12'/],
  ['lone-lt.log', '= Start\n< 0x10\n+ 0x10 0x20\n', 'MTRACE_UNPAIRED', /^lone-lt\.log:3: a realloc's '<' line \(line 2\) is not followed/],
  ['lone-gt.log', '= Start\n> 0x10 0x20\n', 'MTRACE_UNPAIRED', /^lone-gt\.log:2: a realloc's '>' line without/],
  ['twice.log', '= Start\n+ 0x10 0x20\n+ 0x10 0x8\n', 'MTRACE_PTR_LIVE', /^twice\.log:3: 0x10 is returned again while still allocated \(since line 2\)/],
  ['no-start.log', 'malloc a 10\n', 'MTRACE_NO_START', /^no-start\.log:1: the log does not begin with '= Start'/],
  ['restart.log', '= Start\n+ 0x10 0x20\n= Start\n', 'MTRACE_RESTART', /^restart\.log:3: a second '= Start'/],
  ['cut.log', '= Start\n+ 0x10 0x20\n+ 0x5', 'MTRACE_TRUNCATED', /^cut\.log:3: the log ends in the middle of a line \('\+ 0x5', no newline\)/],
  ['cut-whole.log', '= Start\n+ 0x10 0x20\n+ 0x50 0x6', 'MTRACE_TRUNCATED', /^cut-whole\.log:3: the log ends in the middle of a line/],
  ['cut-realloc.log', '= Start\n+ 0x10 0x20\n< 0x10\n', 'MTRACE_TRUNCATED', /^cut-realloc\.log:3: the log ends after a realloc's '<' line/],
  ['empty.log', '', 'MTRACE_EMPTY', /^empty\.log: the log is empty/],
];

for (const [file, log, code, message] of badLogs) {
  test(`import-mtrace: ${code} (${file})`, async () => {
    writeFileSync(join(scratch, file), log);
    const run = await cli(['import-mtrace', file, '-o', `${file}.trace`]);
    assert.is(run.status, 1, run.stderr);
    assert.is(run.stderr.split('\n').length, 2, `one line only: ${run.stderr}`);
    const line = run.stderr.trimEnd();
    assert.ok(line.startsWith('mallocscope: '), line);
    assert.ok(message.test(line.slice('mallocscope: '.length)), line);
    assert.ok(line.endsWith(` [${code}]`), line);
    assert.not.ok(existsSync(join(scratch, `${file}.trace`)), 'a half-written trace is removed');
  });
}

test('import-mtrace: an unreadable log is MTRACE_OPEN; standard input reads as <stdin>', async () => {
  const missing = await cli(['import-mtrace', 'no-such.log']);
  assert.is(missing.status, 1);
  assert.is(missing.stderr, 'mallocscope: no-such.log: cannot read: no such file or directory [MTRACE_OPEN]\n');
  const stdin = await cli(['import-mtrace', '-'], { input: '= Start\n+ 0x10 0x20\n- 0x10\n< 0x99\n' });
  assert.is(stdin.status, 1);
  assert.is(
    stdin.stderr,
    "mallocscope: <stdin>:4: the log ends after a realloc's '<' line without its '>' line: the program died before its log was flushed [MTRACE_TRUNCATED]\n",
  );
  const good = await cli(['import-mtrace', '-'], { input: fixture('section9-probe.log') });
  assert.is(good.status, 0, good.stderr);
  assert.fixture(good.stdout, fixture('section9-probe.trace'));
});

test('an over-long line is MTRACE_LINE_TOO_LONG, without holding it all', () => {
  const converter = new MtraceConverter('long.log');
  converter.feed(Buffer.from('= Start\n@ '));
  const chunk = Buffer.alloc(1 << 16, 0x61);
  try {
    for (let i = 0; i < 40; i++) converter.feed(chunk);
    assert.unreachable('no error');
  } catch (error) {
    assert.instance(error, TraceError);
    assert.is((error as TraceError).code, 'MTRACE_LINE_TOO_LONG');
    assert.is((error as TraceError).line, 2);
  }
});

test('usage mistakes exit 2 with one line', async () => {
  for (const args of [
    ['import-mtrace'],
    ['record'],
    ['record', '--via', 'mtrace', '--', join(scratch, 'no-such-program')],
    ['record', '--via', 'ltrace', '--', 'perl'],
  ]) {
    const run = await cli(args);
    assert.is(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.is(run.stderr.split('\n').length, 2, run.stderr);
    assert.ok(run.stderr.endsWith(' [USAGE]\n'), run.stderr);
  }
});

// ---- record: real programs ----------------------------------------------------------------------------------

recordTest('record: a Perl one-liner gives a valid trace with its header', async () => {
  const run = await cli(['record', '--via', 'mtrace', '-o', 'perl.trace', '--', 'perl', '-e', 'my @a = map { "x" x $_ } 1..300; print scalar(@a), "\\n"']);
  assert.is(run.status, 0, run.stderr);
  assert.is(run.stdout, '300\n', "with -o, the program's standard output is its own");
  const trace = readFileSync(join(scratch, 'perl.trace'), 'utf8');
  assert.match(trace, /^# recorded by mallocscope record on \d{4}-\d\d-\d\dT/);
  assert.match(trace, /\n# program: \/\S*perl\S*\n# command: perl -e 'my @a/);
  assert.match(trace, /\n# glibc: \d+\.\d+\n# exit: status 0\n/);
  const calls = validateTrace(trace, 'perl.trace');
  assert.ok(calls > 1000, `${calls} calls`);
  const read = await readerCheck(trace, 'perl.trace');
  if (read !== undefined) assert.is(read, calls);
});

recordTest("record: trace on stdout, the program's stdout on stderr", async () => {
  const run = await cli(['record', '--via', 'mtrace', '--', 'perl', '-e', 'print "from perl\\n"']);
  assert.is(run.status, 0, run.stderr);
  assert.ok(run.stderr.includes('from perl'), run.stderr);
  assert.match(run.stdout, /^# recorded by mallocscope record/);
  validateTrace(run.stdout, 'stdout');
});

recordTest('record: a program killed by a signal is imported up to where its log was flushed, with a note', async () => {
  const run = await cli(['record', '--via', 'mtrace', '-o', 'killed.trace', '--', 'perl', '-e', 'my @a = map { "y" x $_ } 1..2000; kill 9, $$']);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stderr, /^mallocscope: note: perl was killed by SIGKILL; the end of its log may be missing/);
  const trace = readFileSync(join(scratch, 'killed.trace'), 'utf8');
  assert.match(trace, /\n# exit: killed by SIGKILL\n/);
  assert.ok(validateTrace(trace, 'killed.trace') > 100);
});

recordTest('record: a program that forks or execs children is refused, naming the processes', async () => {
  const run = await cli(['record', '--via', 'mtrace', '-o', 'sh.trace', '--', 'sh', '-c', 'ls / > /dev/null; ls / > /dev/null']);
  assert.is(run.status, 1, run.stderr);
  assert.match(
    run.stderr,
    /^mallocscope: 3 processes wrote the same mtrace log \(\w+ \d+, ls \d+, ls \d+\), so it mixes their calls: mtrace follows one process; .* \[RECORD_SEVERAL_PROCESSES\]\n$/,
  );
  const forked = await cli(['record', '--via', 'mtrace', '--', 'perl', '-e', 'if (fork) { wait } else { my @a = (1..100) }']);
  assert.is(forked.status, 1);
  assert.match(forked.stderr, /a forked child \d+.*\[RECORD_SEVERAL_PROCESSES\]\n$/);
});

recordTest('record checks -o and --log before it runs the program, and leaves an existing file alone when it fails', async () => {
  const missing = await cli(['record', '--via', 'mtrace', '-o', 'no-such-folder/p.trace', '--', 'perl', '-e', 'print "ran\\n"']);
  assert.is(missing.status, 1);
  assert.is(missing.stdout, '', 'the program did not run');
  assert.is(missing.stderr, 'mallocscope: cannot write no-such-folder/p.trace: no such file or directory [OUTPUT_OPEN]\n');
  writeFileSync(join(scratch, 'kept.trace'), 'malloc a 1\n');
  const failed = await cli(['record', '--via', 'mtrace', '-o', 'kept.trace', '--', join(scratch, 'no-such-program')]);
  assert.is(failed.status, 2);
  assert.is(readFileSync(join(scratch, 'kept.trace'), 'utf8'), 'malloc a 1\n');
});

recordTest('record leaves no temporary folder behind: on success, on failure, and when its stdout is closed early', async () => {
  const tmp = mkdtempSync(join(scratch, 'tmp-'));
  const env = { TMPDIR: tmp };
  // record's own folders only.
  const left = () => readdirSync(tmp).filter((name) => name.startsWith('mallocscope-'));
  const ok = await cli(['record', '--via', 'mtrace', '-o', 'ok.trace', '--', 'perl', '-e', '1'], { env });
  assert.is(ok.status, 0, ok.stderr);
  assert.equal(left(), [], 'after a success');
  const failed = await cli(['record', '--via', 'mtrace', '--', 'perl', '-e', 'if (fork) { wait } else { my @a = (1..100) }'], { env });
  assert.is(failed.status, 1);
  assert.equal(left(), [], 'after a failure');
  // A trace far larger than a pipe's buffer, read by a `head` that goes away after 10 bytes: the next write
  // fails with EPIPE and the command ends at once.
  const piped = spawnSync('sh', ['-c', `"${process.execPath}" "${bin}" record --via mtrace -- perl -e 'my @a = map { "x" x $_ } 1..5000' | head -c 10`], {
    cwd: scratch,
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  assert.is(piped.stdout, '# recorded');
  assert.equal(left(), [], 'after its stdout was closed');
});

recordTest('record accepts a program that exits normally without flushing its log: /bin/sh -c "exit 0"', async () => {
  const run = await cli(['record', '--via', 'mtrace', '--', '/bin/sh', '-c', 'exit 0']);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stdout, /\n# exit: status 0\n/);
  assert.match(run.stdout, /\n# the log ends in the middle of line \d+: the program ended before its log was flushed\n/);
  validateTrace(run.stdout, 'sh.trace');
  assert.is(
    run.stderr,
    'mallocscope: note: /bin/sh ended without flushing its mtrace log (it left through _exit() or a signal): the trace ends at the last call logged\n',
  );
});

dashTest('record accepts dash -c "echo hi": its output on stderr, its calls up to the last flushed one', async () => {
  const run = await cli(['record', '--via', 'mtrace', '--', 'dash', '-c', 'echo hi']);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stderr, /^hi\nmallocscope: note: dash ended without flushing its mtrace log/);
  assert.ok(validateTrace(run.stdout, 'dash.trace') > 0);
});

recordTest('record of a program whose log stays empty (_exit before mtrace flushes anything): an empty trace', async () => {
  const dir = mkdtempSync(join(scratch, 'exit-'));
  const run = await cli(['record', '--via', 'mtrace', '-o', 'quiet.trace', '--', testProgram('quiet')], { cwd: dir });
  assert.is(run.status, 0, run.stderr);
  const trace = readFileSync(join(dir, 'quiet.trace'), 'utf8');
  assert.match(trace, /\n# exit: status 0\n# the mtrace log is empty: quiet ended before mtrace flushed its first record, so no call was logged\n$/);
  assert.is(validateTrace(trace, 'quiet.trace'), 0);
});

recordTest('record of a threaded program: RECORD_THREADS and no trace; --ignore-threads writes it with the note', async () => {
  const dir = mkdtempSync(join(scratch, 'threads-'));
  // test/fixtures/programs/threads.c: three threads, each a malloc and a free.
  const threads = testProgram('threads');
  const note =
    'threads created 3 threads: mtrace does not record which thread made each call, so this trace replays as if one thread made them all (one arena), which is not what its glibc did';
  const refused = await cli(['record', '--via', 'mtrace', '-o', 'threads.trace', '--', threads], { cwd: dir });
  assert.is(refused.status, 1);
  assert.is(
    refused.stderr,
    `mallocscope: ${note}; no trace written (--ignore-threads writes it anyway, with this note in it; threads are issue 11) [RECORD_THREADS]\n`,
  );
  assert.not.ok(existsSync(join(dir, 'threads.trace')));
  const kept = await cli(['record', '--via', 'mtrace', '--ignore-threads', '-o', 'threads.trace', '--', threads], { cwd: dir });
  assert.is(kept.status, 0, kept.stderr);
  assert.is(kept.stderr, `mallocscope: warning: ${note} [RECORD_THREADS]\n`);
  const trace = readFileSync(join(dir, 'threads.trace'), 'utf8');
  assert.ok(trace.includes(`\n# threads: ${note}\n`));
  assert.ok(validateTrace(trace, 'threads.trace') >= 6);
  // C11 threads (test/fixtures/programs/c11.c): glibc's thrd_create does not go through the pthread_create a
  // preload can replace.
  const c11 = await cli(['record', '--via', 'mtrace', '-o', 'c11.trace', '--', testProgram('c11')], { cwd: dir });
  assert.is(c11.status, 1);
  assert.match(c11.stderr, /^mallocscope: c11 created a thread: .*\[RECORD_THREADS\]\n$/);
});

/**
 * The calls of a trace as test/fixtures/programs/replay.c reads them, a line each: "m SLOT SIZE" (malloc),
 * "r SLOT SIZE" (realloc; a non-live ID gets a slot of its own, whose NULL makes it realloc(NULL, n)), "f SLOT".
 */
function replayCalls(trace: string): string {
  const slots = new Map<string, number>();
  let count = 0;
  const calls: string[] = [];
  for (const raw of trace.split('\n')) {
    const [op, id, size] = raw.replace(/#.*/, '').trim().split(/\s+/);
    if (op === 'malloc') {
      slots.set(id, count);
      calls.push(`m ${count++} ${size}`);
    } else if (op === 'realloc') {
      if (!slots.has(id)) slots.set(id, count++);
      calls.push(`r ${slots.get(id)} ${size}`);
    } else if (op === 'free') {
      calls.push(`f ${slots.get(id)}`);
    }
  }
  return `${calls.join('\n')}\n`;
}

/** The recorded blocks' offsets from the recorded heap start: the first heap pointer less 0x4a0 (§9). */
function recordedOffsets(log: string): string[] {
  let heap = -1;
  const offsets: string[] = [];
  for (const line of log.split('\n')) {
    const m = /(?:^|\] )([+>!]) (\S+) \S+$/.exec(line);
    if (!m) continue;
    if (m[1] === '!' || m[2] === '(nil)') {
      offsets.push('N');
      continue;
    }
    const pointer = Number(m[2]);
    if (heap < 0) heap = pointer - 0x4a0;
    const offset = pointer - heap;
    offsets.push(offset < 0 || offset > 2 ** 32 ? 'M' : String(offset));
  }
  return offsets;
}

recordTest('record --preamble: replaying the trace through the real glibc puts every block at its recorded offset', async () => {
  // test/fixtures/programs/recorded.c: malloc, calloc, realloc (growing, in place, to 0, from NULL), strdup,
  // frees, failing calls and an mmapped block (no memalign: the log cannot tell it from malloc, and its alignment
  // would move the replay's blocks).
  const dir = mkdtempSync(join(scratch, 'replay-'));
  const run = await cli(['record', '--via', 'mtrace', '--preamble', '--log', 'recorded.log', '-o', 'recorded.trace', '--', testProgram('recorded')], {
    cwd: dir,
  });
  assert.is(run.status, 0, run.stderr);
  const trace = readFileSync(join(dir, 'recorded.trace'), 'utf8');
  validateTrace(trace, 'recorded.trace');
  // The trace's calls through the real malloc, in a program that allocates nothing else (replay.c).
  writeFileSync(join(dir, 'replay.calls'), replayCalls(trace));
  const replay = spawnSync(testProgram('replay'), ['replay.calls'], { cwd: dir, encoding: 'utf8', env: {} });
  assert.is(replay.status, 0, replay.stderr);
  const replayed = replay.stdout.trimEnd().split('\n');
  // The preamble's two blocks come first: the hook's malloc(0) at 0x2a0, mtrace's FILE at 0x2c0.
  assert.equal(replayed.slice(0, 2), ['672', '704']);
  const recorded = recordedOffsets(readFileSync(join(dir, 'recorded.log'), 'latin1'));
  assert.ok(recorded.length > 80, `${recorded.length} recorded allocations`);
  assert.equal(replayed.slice(2), recorded);
  assert.is(recorded[0], String(0x4a0));
});

oracleRecordTest('record --preamble of a real program (perl): the oracle replays every block at its recorded offset', async () => {
  const dir = mkdtempSync(join(scratch, 'oracle-'));
  const script = 'my %h; $h{$_} = "x" x ($_ % 70) for 1..1500; my @k = sort keys %h; print scalar(@k), "\\n"';
  const run = await cli(['record', '--via', 'mtrace', '--preamble', '--log', 'perl.log', '-o', 'perl.trace', '--', 'perl', '-e', script], { cwd: dir });
  assert.is(run.status, 0, run.stderr);
  const oracle = await cli(['oracle', 'perl.trace'], { cwd: dir });
  assert.is(oracle.status, 0, oracle.stderr);
  const replayed: string[] = [];
  for (const line of oracle.stdout.trimEnd().split('\n')) {
    const event = JSON.parse(line) as { op: string; where?: string; offset?: number };
    if (event.op === 'free') continue;
    replayed.push(event.where === undefined ? 'N' : event.where === 'mmap' ? 'M' : String(event.offset));
  }
  assert.equal(replayed.slice(0, 2), ['672', '704'], 'the preamble');
  const recorded = recordedOffsets(readFileSync(join(dir, 'perl.log'), 'latin1'));
  assert.ok(recorded.length > 1000, `${recorded.length} recorded allocations`);
  assert.equal(replayed.slice(2), recorded);
});

// ---- the committed fixtures ----------------------------------------------------------------------------------

test('test/fixtures/real: at least three recordings, each a valid trace with its header', async () => {
  const traces = readdirSync(realFixtures).filter((f) => f.endsWith('.trace'));
  assert.ok(traces.length >= 3, traces.join(' '));
  for (const file of traces) {
    const trace = readFileSync(join(realFixtures, file), 'utf8');
    assert.match(trace, /^# recorded by mallocscope record on .*\n# program: .*\n# command: .*\n# glibc: .*\n# exit: .*\n# calls: \d+\n/, file);
    const calls = validateTrace(trace, file);
    assert.is(calls, Number(/\n# calls: (\d+)\n/.exec(trace)?.[1]), `${file}: the header's count`);
    assert.ok(calls > 1000, `${file}: ${calls} calls`);
    const read = await readerCheck(trace, file);
    if (read !== undefined) assert.is(read, calls, file);
  }
});

oracleTest('test/fixtures/real: each recording replays through the oracle', async () => {
  for (const file of readdirSync(realFixtures).filter((f) => f.endsWith('.trace'))) {
    const run = await cli(['oracle', join(realFixtures, file)]);
    assert.is(run.status, 0, `${file}: ${run.stderr}`);
    const calls = Number(/\n# calls: (\d+)\n/.exec(readFileSync(join(realFixtures, file), 'utf8'))?.[1]);
    assert.is(run.stdout.trimEnd().split('\n').length, calls, file);
  }
});

test.after(() => rmSync(scratch, { recursive: true, force: true }));

test.run();
