// The trace reader against docs/trace-format.md: grammar, liveness rules, every error word for word, the
// order of the checks, chunk boundaries, and memory that does not grow with the trace's length.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { TraceError } from '../dist/errors.js';
import { parseTrace, readTrace, traceHasThreads } from '../dist/trace/reader.js';
import { formatCall, formatTrace, TraceWriter } from '../dist/trace/writer.js';
import { LineBuffer } from '../dist/line-buffer.js';
import type { TraceEvent } from '../dist/trace/api.js';
import { formatNumber, parseNumber, parseSafeNumber } from '../dist/number.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// A gc() for the memory test (runInNewContext sees the flag once it is set).
setFlagsFromString('--expose-gc');

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-reader-'));

/** The error the reader raises for `text`, as `CODE message`. */
function errorOf(text: string | Uint8Array, name = 'bad.trace'): string {
  try {
    parseTrace(text, { name });
  } catch (error) {
    assert.instance(error, TraceError);
    const e = error as TraceError;
    return `${e.code} ${e.message}`;
  }
  throw new Error('expected an error');
}

test('reads every verb with its fields, and skips comments and blank lines', () => {
  const events = parseTrace(
    [
      '# a trace',
      '',
      'malloc a 100',
      'calloc b 4 25   # a comment after fields',
      '\trealloc a 0x1388',
      'memalign c 64 200',
      'free b',
      'mallopt M_MMAP_THRESHOLD 131072',
      'trim 0',
      '   ',
    ].join('\n'),
  );
  assert.equal(
    events.map(({ slot, ...call }) => call),
    [
      { op: 'malloc', id: 'a', size: 100, seq: 0, line: 3, wasLive: false },
      { op: 'calloc', id: 'b', nmemb: 4, size: 25, seq: 1, line: 4, wasLive: false },
      { op: 'realloc', id: 'a', size: 5000, seq: 2, line: 5, wasLive: true },
      { op: 'memalign', id: 'c', alignment: 64, size: 200, seq: 3, line: 6, wasLive: false },
      { op: 'free', id: 'b', seq: 4, line: 7, wasLive: true },
      { op: 'mallopt', param: 'M_MMAP_THRESHOLD', value: 131072, seq: 5, line: 8, wasLive: false },
      { op: 'trim', pad: 0, seq: 6, line: 9, wasLive: false },
    ],
  );
});

test('an empty file is a trace of no calls; the last line needs no newline', () => {
  assert.equal(parseTrace(''), []);
  assert.equal(parseTrace('malloc a 1').length, 1);
});

test('CRLF lines read the same as LF lines', () => {
  const crlf = parseTrace('malloc a 1\r\nfree a\r\n');
  const lf = parseTrace('malloc a 1\nfree a\n');
  assert.equal(crlf, lf);
});

test('numbers: decimal, 0x and 0X hexadecimal, leading zeros, the size_t limits', () => {
  const [a, b, c, d, e] = parseTrace('malloc a 0x10\nmalloc b 0XfF\nmalloc c 0007\nmalloc d 0x0\nmalloc e 9007199254740991');
  assert.equal(
    [a, b, c, d, e].map((x) => (x as { size: number }).size),
    [16, 255, 7, 0, 2 ** 53 - 1],
  );
  const [max] = parseTrace('malloc m 18446744073709551615');
  assert.equal((max as { size: number }).size, 2 ** 64);
});

test('sizes above 2^53 keep their side of PTRDIFF_MAX (2^63-1)', () => {
  const sizes = parseTrace('malloc a 0x7fffffffffffffff\nmalloc b 0x8000000000000000\nmalloc c 0x7ffffffffffffe00').map((x) => (x as { size: number }).size);
  assert.ok(sizes[0] < 2 ** 63, 'PTRDIFF_MAX itself stays below 2^63');
  assert.ok(sizes[1] >= 2 ** 63, '2^63 is above PTRDIFF_MAX');
  assert.ok(sizes[2] < 2 ** 63);
});

test('mallopt VALUE is a C int and may be negative', () => {
  const values = parseTrace('mallopt M_TRIM_THRESHOLD -1\nmallopt M_TOP_PAD -2147483648\nmallopt M_MMAP_MAX 2147483647\nmallopt M_MXFAST -0x10').map(
    (x) => (x as { value: number }).value,
  );
  assert.equal(values, [-1, -2147483648, 2147483647, -16]);
});

test('liveness: realloc of a non-live ID is realloc(NULL) and makes it live; realloc to 0 ends it', () => {
  const events = parseTrace('realloc a 10\nrealloc a 0\nrealloc a 0\nfree a\nmalloc a 5');
  assert.equal(
    events.map((e) => [e.op, e.wasLive]),
    [
      ['realloc', false],
      ['realloc', true],
      ['realloc', false], // realloc(NULL, 0) is malloc(0): the ID is live again
      ['free', true],
      ['malloc', false],
    ],
  );
});

test('slots are dense and reused after an ID ends', () => {
  const events = parseTrace('malloc a 1\nmalloc b 1\nfree a\nmalloc c 1\nmalloc d 1\nfree b\nfree c\nfree d');
  const slotOf = (id: string, op: string) => events.find((e) => 'id' in e && e.id === id && e.op === op)!.slot;
  assert.is(slotOf('a', 'malloc'), 0);
  assert.is(slotOf('b', 'malloc'), 1);
  assert.is(slotOf('c', 'malloc'), 0, 'c takes the slot a gave back');
  assert.is(slotOf('d', 'malloc'), 2);
  assert.is(slotOf('d', 'free'), 2);
});

test('IDs are any token without white space or #, UTF-8 included', () => {
  const events = parseTrace('malloc 0x55aa:b/"q"\\ 1\nmalloc ünïcødé 2\nfree 0x55aa:b/"q"\\');
  assert.equal(
    events.map((e) => ('id' in e ? e.id : '')),
    ['0x55aa:b/"q"\\', 'ünïcødé', '0x55aa:b/"q"\\'],
  );
});

// Each error of docs/trace-format.md, with the message the document gives.
const errors: [string, string | Uint8Array, string][] = [
  [
    'TRACE_UNKNOWN_VERB',
    'malloc a 1\nmallok b 1',
    "bad.trace:2: unknown verb 'mallok' (expected malloc, calloc, realloc, memalign, free, mallopt, trim, spawn or exit)",
  ],
  [
    'TRACE_UNKNOWN_VERB (case)',
    'MALLOC a 1',
    "bad.trace:1: unknown verb 'MALLOC' (expected malloc, calloc, realloc, memalign, free, mallopt, trim, spawn or exit)",
  ],
  ['TRACE_FIELD_COUNT (missing)', 'malloc a', 'bad.trace:1: malloc takes 2 fields (ID SIZE), found 1'],
  ['TRACE_FIELD_COUNT (extra)', 'free a b', 'bad.trace:1: free takes 1 field (ID), found 2'],
  ['TRACE_FIELD_COUNT (calloc)', 'calloc a 1', 'bad.trace:1: calloc takes 3 fields (ID NMEMB SIZE), found 2'],
  ['TRACE_FIELD_COUNT (trim)', 'trim', 'bad.trace:1: trim takes 1 field (PAD), found 0'],
  ['TRACE_BAD_NUMBER', 'malloc a 12k', "bad.trace:1: SIZE is not a number: '12k' (decimal or 0x-hexadecimal)"],
  ['TRACE_BAD_NUMBER (bare 0x)', 'memalign a 0x 5', "bad.trace:1: ALIGN is not a number: '0x' (decimal or 0x-hexadecimal)"],
  ['TRACE_BAD_NUMBER (plus)', 'calloc a +1 5', "bad.trace:1: NMEMB is not a number: '+1' (decimal or 0x-hexadecimal)"],
  ['TRACE_BAD_NUMBER (VALUE)', 'mallopt M_TOP_PAD -', "bad.trace:1: VALUE is not a number: '-' (decimal or 0x-hexadecimal)"],
  ['TRACE_NEGATIVE', 'malloc a -5', "bad.trace:1: SIZE is negative: '-5'"],
  ['TRACE_NEGATIVE (not even a number)', 'trim -abc', "bad.trace:1: PAD is negative: '-abc'"],
  ['TRACE_RANGE', 'malloc a 18446744073709551616', "bad.trace:1: SIZE is out of range: '18446744073709551616' (at most 2^64-1)"],
  ['TRACE_RANGE (hex)', 'malloc a 0x10000000000000000', "bad.trace:1: SIZE is out of range: '0x10000000000000000' (at most 2^64-1)"],
  [
    'TRACE_RANGE (VALUE)',
    'mallopt M_TOP_PAD 2147483648',
    "bad.trace:1: VALUE is out of range: '2147483648' (mallopt takes a C int, -2147483648 to 2147483647)",
  ],
  [
    'TRACE_RANGE (VALUE low)',
    'mallopt M_TOP_PAD -2147483649',
    "bad.trace:1: VALUE is out of range: '-2147483649' (mallopt takes a C int, -2147483648 to 2147483647)",
  ],
  [
    'TRACE_UNKNOWN_PARAM',
    'mallopt M_CHECK_ACTION 1',
    "bad.trace:1: unknown mallopt parameter 'M_CHECK_ACTION' (expected M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_MXFAST, M_ARENA_MAX or M_ARENA_TEST)",
  ],
  ['TRACE_ENCODING', Buffer.from('malloc a\xff 1', 'latin1'), 'bad.trace:1: ID is not valid UTF-8'],
  ['TRACE_ID_LIVE', 'malloc a 1\n\nmalloc b 2\ncalloc a 1 1', "bad.trace:4: ID 'a' is already live (created at line 1)"],
  ['TRACE_ID_LIVE (memalign)', 'realloc a 5\nmemalign a 64 1', "bad.trace:2: ID 'a' is already live (created at line 1)"],
  ['TRACE_ID_NOT_LIVE', 'malloc a 1\nfree b', "bad.trace:2: free of ID 'b', which is not live"],
  ['TRACE_ID_NOT_LIVE (double free)', 'malloc a 1\nfree a\nfree a', "bad.trace:3: free of ID 'a', which is not live"],
  ['TRACE_ID_NOT_LIVE (after realloc 0)', 'malloc a 1\nrealloc a 0\nfree a', "bad.trace:3: free of ID 'a', which is not live"],
  ['TRACE_BINARY', 'malloc a 1\nfree\u0000a', 'bad.trace:2: binary data (byte 0x00 at column 5); a trace is text'],
  ['TRACE_BINARY (in a comment)', '# \u001b[31m colour', 'bad.trace:1: binary data (byte 0x1b at column 3); a trace is text'],
  ['TRACE_BINARY (DEL)', 'malloc a\u007f 1', 'bad.trace:1: binary data (byte 0x7f at column 9); a trace is text'],
  ['TRACE_LINE_TOO_LONG', `malloc a 1 #${'x'.repeat(4085)}`, 'bad.trace:1: line is longer than 4096 characters'],
  // Threads (docs/trace-format.md, threads); test/oracle-errors.test.ts holds the oracle to the same words.
  ['TRACE_THREAD_UNKNOWN', 'malloc a 1\n@2 malloc b 1', 'bad.trace:2: thread 2 was never spawned'],
  ['TRACE_THREAD_EXITED', 'spawn 2\n@2 exit\n@2 free a', 'bad.trace:3: thread 2 has exited (at line 2)'],
  ['TRACE_THREAD_EXITED (spawn)', 'spawn 2\n@2 exit\n@2 spawn 3', 'bad.trace:3: thread 2 has exited (at line 2)'],
  ['TRACE_THREAD_NOT_NEW', 'spawn 2\n@2 exit\nspawn 2', 'bad.trace:3: spawn of thread 2, which is not new (spawned at line 1)'],
  ['TRACE_THREAD_NOT_NEW (main)', 'spawn 1', 'bad.trace:1: spawn of thread 1, which is not new (the main thread)'],
  ['TRACE_EXIT_MAIN', 'malloc a 1\nexit', 'bad.trace:2: thread 1, the main thread, cannot exit'],
  ['TRACE_EXIT_MAIN (tagged)', '@1 exit', 'bad.trace:1: thread 1, the main thread, cannot exit'],
  ['TRACE_THREAD_TAG', 'spawn 2\n@2   # a tag alone', "bad.trace:2: thread tag '@2' has no call after it"],
  ['TRACE_THREAD_TAG (0)', '@0 malloc a 1', "bad.trace:1: thread tag is not a thread number: '@0' (expected @ and a decimal number from 1 to 2147483647)"],
  ['TRACE_THREAD_TAG (empty)', '@ malloc a 1', "bad.trace:1: thread tag is not a thread number: '@' (expected @ and a decimal number from 1 to 2147483647)"],
  [
    'TRACE_THREAD_TAG (hex)',
    '@0x2 malloc a 1',
    "bad.trace:1: thread tag is not a thread number: '@0x2' (expected @ and a decimal number from 1 to 2147483647)",
  ],
  [
    'TRACE_THREAD_NUMBER (too big)',
    'spawn 2147483648',
    "bad.trace:1: THREAD is not a thread number: '2147483648' (expected a decimal number from 1 to 2147483647)",
  ],
  ['TRACE_THREAD_NUMBER (negative)', 'spawn -2', "bad.trace:1: THREAD is not a thread number: '-2' (expected a decimal number from 1 to 2147483647)"],
  ['TRACE_FIELD_COUNT (spawn)', 'spawn', 'bad.trace:1: spawn takes 1 field (THREAD), found 0'],
  ['TRACE_FIELD_COUNT (exit)', 'spawn 2\n@2 exit now', 'bad.trace:2: exit takes no fields, found 1'],
  ['TRACE_FIELD_COUNT (tagged calloc)', 'spawn 2\n@2 calloc a 1 2 3', 'bad.trace:2: calloc takes 3 fields (ID NMEMB SIZE), found 4'],
];
for (const [name, text, message] of errors) {
  test(`error ${name}`, () => {
    const code = name.split(' ')[0];
    assert.is(errorOf(text), `${code} ${message}`);
  });
}

test('traceHasThreads looks at first fields only, as the oracle decides whether a trace has threads', () => {
  const has = (text: string | Uint8Array) => {
    const path = join(dir, 'has-threads.trace');
    writeFileSync(path, text);
    return traceHasThreads(path);
  };
  assert.is(has('malloc a 1\nfree a\n'), false);
  assert.is(has('malloc spawn 1\nmalloc exit 2\n# spawn 2\nmalloc b 1 # @2\n'), false, 'IDs and comments do not count');
  assert.is(has('malloc a 1\n  spawn 2\n'), true);
  assert.is(has('malloc a 1\r\nexit\r\n'), true);
  assert.is(has('malloc a 1\n@2 malloc b 1'), true, 'the last line needs no newline');
  assert.is(has('spawner 2\nexits\n@'), true, 'a tag is a tag before its number is checked');
  assert.is(has(Buffer.from('malloc a\u0001 1\nspawn 2\n')), false, 'the look ends at a binary byte');
  assert.is(traceHasThreads(join(dir, 'no-such.trace')), false);
});

test('a thread number may have leading zeros: @02 is thread 2', () => {
  assert.is(parseTrace('spawn 02\n@002 malloc a 1')[1].thread, 2);
});

test('thread lines: tags, spawn and exit; IDs shared by all threads; events carry thread from the first thread line', () => {
  const events = parseTrace(
    [
      'malloc a 100',
      'spawn 2',
      '@2 malloc b 200',
      '@2\tcalloc c 4 25',
      '@2 spawn 7',
      "@7 free a      # another thread frees the main thread's block",
      '@7 memalign d 64 10',
      '@7 exit',
      'realloc b 300',
      'mallopt M_ARENA_MAX 2',
      '@2 mallopt M_ARENA_TEST 1',
      '@2 exit',
    ].join('\n'),
  );
  assert.equal(
    events.map(({ slot, ...call }) => call),
    [
      { op: 'malloc', id: 'a', size: 100, seq: 0, line: 1, wasLive: false },
      { op: 'spawn', spawned: 2, seq: 1, line: 2, wasLive: false, thread: 1 },
      { op: 'malloc', id: 'b', size: 200, seq: 2, line: 3, wasLive: false, thread: 2 },
      { op: 'calloc', id: 'c', nmemb: 4, size: 25, seq: 3, line: 4, wasLive: false, thread: 2 },
      { op: 'spawn', spawned: 7, seq: 4, line: 5, wasLive: false, thread: 2 },
      { op: 'free', id: 'a', seq: 5, line: 6, wasLive: true, thread: 7 },
      { op: 'memalign', id: 'd', alignment: 64, size: 10, seq: 6, line: 7, wasLive: false, thread: 7 },
      { op: 'exit', seq: 7, line: 8, wasLive: false, thread: 7 },
      { op: 'realloc', id: 'b', size: 300, seq: 8, line: 9, wasLive: true, thread: 1 },
      { op: 'mallopt', param: 'M_ARENA_MAX', value: 2, seq: 9, line: 10, wasLive: false, thread: 1 },
      { op: 'mallopt', param: 'M_ARENA_TEST', value: 1, seq: 10, line: 11, wasLive: false, thread: 2 },
      { op: 'exit', seq: 11, line: 12, wasLive: false, thread: 2 },
    ],
  );
  // The slot of a tagged line's ID is found as an untagged line's is: b, made by thread 2, reallocated by 1.
  assert.is(events[8].slot, events[2].slot);
});

test('thread lines are written back as they are read; exit needs its thread', () => {
  const text = 'malloc a 100\nspawn 2\n@2 malloc b 200\n@2 free a\n@2 exit\n';
  assert.is(
    `${parseTrace(text)
      .map((event) => formatCall(event, event.thread ?? 1))
      .join('\n')}\n`,
    text,
  );
  // The events' own thread is the default, for formatTrace too.
  assert.is(formatTrace(parseTrace(text)), text);
  assert.throws(() => formatCall({ op: 'exit' }), /TRACE_WRITE_NUMBER|main thread never exits/);
  assert.is(formatCall({ op: 'exit' }, 3), '@3 exit');
});

test('a line of exactly 4096 characters is fine, also with CRLF; 4097 is not', () => {
  const line4096 = `malloc a 1 #${'x'.repeat(4084)}`;
  assert.is(line4096.length, 4096);
  assert.is(parseTrace(line4096).length, 1);
  assert.is(parseTrace(`${line4096}\r\n`).length, 1);
  assert.is(errorOf(`${line4096}x`), 'TRACE_LINE_TOO_LONG bad.trace:1: line is longer than 4096 characters');
});

test('the checks run in the documented order', () => {
  // binary before everything, length before verb, verb before field count, count before fields,
  // fields left to right (negative before malformed before range), fields before liveness
  assert.match(errorOf(`mallok\u0001 ${'x'.repeat(5000)}`), /^TRACE_BINARY/);
  assert.match(errorOf(`mallok ${'x'.repeat(5000)}`), /^TRACE_LINE_TOO_LONG/);
  assert.match(errorOf('mallok a'), /^TRACE_UNKNOWN_VERB/);
  assert.match(errorOf('malloc a 1x 2'), /^TRACE_FIELD_COUNT/);
  assert.match(errorOf('calloc a 1x -2'), /^TRACE_BAD_NUMBER bad.trace:1: NMEMB/);
  assert.match(errorOf('calloc a 99999999999999999999 1x'), /^TRACE_RANGE bad.trace:1: NMEMB/);
  assert.match(errorOf('malloc a 1\nmalloc a -1'), /^TRACE_NEGATIVE/);
  assert.match(errorOf(Buffer.from('malloc a 1\nmalloc a\xff 1x', 'latin1')), /^TRACE_ENCODING/);
  assert.match(errorOf('mallopt M_NOPE 1x'), /^TRACE_UNKNOWN_PARAM/);
});

test('a long binary line spanning several chunks reports the binary byte, not the length', () => {
  const path = join(dir, 'long-binary.trace');
  writeFileSync(path, `malloc a 1\n${'y'.repeat(30000)}\u0002${'y'.repeat(100)}\nmalloc b 2\n`);
  try {
    for (const _ of readTrace(path, { chunkSize: 8192 }));
    assert.unreachable('no error');
  } catch (error) {
    assert.is((error as TraceError).message, `${path}:2: binary data (byte 0x02 at column 30001); a trace is text`);
  }
});

test('lines that cross chunk boundaries are read whole', () => {
  const lines: string[] = [];
  for (let i = 0; i < 5000; i++) lines.push(i % 7 === 0 ? `# comment ${'z'.repeat(i % 300)}` : `malloc id${i}_${'q'.repeat(i % 50)} ${i}`);
  const path = join(dir, 'chunks.trace');
  writeFileSync(path, lines.join('\n'));
  const small = [...readTrace(path, { chunkSize: 8192 })];
  const whole = parseTrace(lines.join('\n'), { name: path });
  assert.equal(small, whole);
  assert.is(small.length, 5000 - Math.ceil(5000 / 7));
});

test('a file that cannot be read: TRACE_OPEN naming it, no line', () => {
  const missing = join(dir, 'missing.trace');
  try {
    readTrace(missing);
    assert.unreachable('no error');
  } catch (error) {
    assert.is((error as TraceError).code, 'TRACE_OPEN');
    assert.is((error as TraceError).message, `${missing}: cannot read: no such file or directory`);
  }
  try {
    for (const _ of readTrace(dir));
    assert.unreachable('no error');
  } catch (error) {
    assert.is((error as TraceError).message, `${dir}: cannot read: is a directory`);
  }
});

test('reads standard input when the path is -', () => {
  const script = `import { readTrace } from ${JSON.stringify(new URL('../dist/trace/reader.js', import.meta.url).pathname)};
let n = 0; for (const e of readTrace('-')) n++; process.stdout.write(String(n));`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    input: 'malloc a 1\nfree a\n# end\n',
    encoding: 'utf8',
  });
  assert.is(run.stdout, '2', run.stderr);
});

test('memory stays flat over a long trace: it grows with live IDs, not with lines', () => {
  // 2 million calls with at most 64 blocks live: about 30 MB of text.
  const path = join(dir, 'long.trace');
  // Call pair i is `malloc b(i & 63) (i & 4095)` and its free: the text repeats every 4096 pairs, so it is
  // written a period at a time.
  const pair = (i: number) => `malloc b${i & 63} ${i & 4095}\nfree b${i & 63}\n`;
  const period = Buffer.from(Array.from({ length: 4096 }, (_, i) => pair(i)).join(''));
  const fd = openSync(path, 'w');
  for (let done = 0; done < 1_000_000; done += 4096) {
    const pairs = Math.min(4096, 1_000_000 - done);
    writeSync(fd, pairs === 4096 ? period : Buffer.from(Array.from({ length: pairs }, (_, i) => pair(i)).join('')));
  }
  closeSync(fd);
  // What the reader keeps, not the garbage it leaves for the collector: the heap after a full collection,
  // every 100,000 calls (how much garbage piles up before V8 collects depends on what ran earlier in the
  // process, and light test files share one).
  const gc = runInNewContext('gc') as () => void;
  gc();
  const before = process.memoryUsage();
  const reader = readTrace(path);
  let events = 0;
  let peakHeap = 0;
  for (const _ of reader) {
    if (++events % 100_000 === 0) {
      gc();
      // The JavaScript heap and the memory of Buffers and typed arrays: raw bytes kept would show in the second.
      const used = process.memoryUsage();
      peakHeap = Math.max(peakHeap, used.heapUsed + used.arrayBuffers);
    }
  }
  assert.is(events, 2_000_000);
  assert.ok(reader.slotLimit <= 64, `slots ${reader.slotLimit}`);
  // The file is 30 MB; holding it (or its lines) would add far more than this.
  const grown = peakHeap - (before.heapUsed + before.arrayBuffers);
  assert.ok(grown < 16 * 1024 * 1024, `heap grew by ${grown} bytes`);
});

test('the one number parser (src/number.ts): decimal or 0x, a number below 2^53 and a bigint from there, exact', () => {
  assert.is(parseNumber('0'), 0);
  assert.is(parseNumber('4096'), 4096);
  assert.is(parseNumber('0x1000'), 4096);
  assert.is(parseNumber('0X1f'), 31);
  assert.is(parseNumber('00000000000000000000000012'), 12, 'leading zeros are not digits that count');
  assert.is(parseNumber('9007199254740991'), 9007199254740991, '2^53 - 1: still a number');
  assert.is(parseNumber('0x1fffffffffffff'), 9007199254740991);
  assert.is(parseNumber('9007199254740992'), 9007199254740992n, '2^53: a bigint');
  assert.is(parseNumber('9007199254740993'), 9007199254740993n, 'exact where a double would round');
  assert.is(parseNumber('0xffffffffffffffff'), 18446744073709551615n);
  assert.is(parseNumber('18446744073709551616'), 18446744073709551616n, 'no range here: callers check theirs');
  for (const bad of ['', '0x', '-1', '+1', ' 1', '1 ', '1e3', '1.0', '0b101', '0o17', 'x10', '12a', '0xg', '١٢', '１']) {
    assert.is(parseNumber(bad), undefined, JSON.stringify(bad));
  }
  assert.is(parseSafeNumber('0x20000000000000'), undefined, '2^53 is not a safe number');
  assert.is(parseSafeNumber('135168'), 135168);
  assert.is(formatNumber(9007199254740991), '9007199254740991');
  assert.is(formatNumber(2 ** 63), '0x8000000000000000');
  assert.is(formatNumber(18446744073709551615n), '0xffffffffffffffff');
  assert.is(formatNumber(100n), '100');
});

test('the writer writes what the reader reads', () => {
  const text = 'malloc a 100\ncalloc b 4 25\nrealloc a 5000\nmemalign c 64 200\nfree b\nmallopt M_TOP_PAD -1\ntrim 4096\n';
  const events = parseTrace(text);
  assert.is(formatTrace(events), text);
  assert.is(formatCall({ op: 'malloc', id: 'x', size: 2 ** 63 }), 'malloc x 0x8000000000000000');
});

test('the writer refuses what the format cannot hold', () => {
  assert.throws(() => formatCall({ op: 'malloc', id: 'two words', size: 1 }), /TRACE_WRITE_ID|cannot write ID/);
  assert.throws(() => formatCall({ op: 'malloc', id: 'a#b', size: 1 }), /cannot write ID/);
  assert.throws(() => formatCall({ op: 'malloc', id: 'a', size: -1 }), /cannot write SIZE -1/);
  assert.throws(() => formatCall({ op: 'free', id: '' }), /cannot write ID/);
  assert.throws(() => formatCall({ op: 'mallopt', param: 'M_TOP_PAD', value: 2 ** 31 }), /C int/);
});

test('the writer streams to a file in pieces', () => {
  const path = join(dir, 'written.trace');
  const writer = new TraceWriter({ path });
  writer.comment('made by a test\nsecond line');
  for (let i = 0; i < 20000; i++) writer.write({ op: 'malloc', id: `b${i}`, size: i });
  writer.close();
  const events: TraceEvent[] = [...readTrace(path)];
  assert.is(events.length, 20000);
  assert.equal(events[19999], { op: 'malloc', id: 'b19999', size: 19999, seq: 19999, line: 20002, slot: 19999, wasLive: false });
});

test("the one line buffer (src/line-buffer.ts, the trace writer's, the command output's, massif's): whole lines in pieces of 64 KiB", () => {
  const pieces: string[] = [];
  const buffer = new LineBuffer((text) => pieces.push(text));
  // Lines of 1000 bytes with their newline: the 66th reaches 66,000 ≥ 65,536 and hands on a piece.
  for (let i = 0; i < 200; i++) buffer.line(`${i}`.padEnd(999, '.'));
  assert.equal(
    pieces.map((p) => p.length),
    [66000, 66000, 66000],
  );
  buffer.flush();
  buffer.flush();
  assert.equal(
    pieces.map((p) => p.length),
    [66000, 66000, 66000, 2000],
  );
  assert.is(pieces.join('').split('\n').length, 201);
  assert.ok(pieces.every((p) => p.endsWith('.\n')) && pieces[3].startsWith('198.'));
  // A write that throws (a closed pipe) leaves nothing to write again.
  let calls = 0;
  const failing = new LineBuffer(() => {
    calls++;
    throw new Error('EPIPE');
  });
  failing.line('a');
  assert.throws(() => failing.flush(), /EPIPE/);
  failing.flush();
  assert.is(calls, 1);
});

test.run();
