// Numbers beyond 2^53 printed exactly: thresholds that mallopt sets from negative ints, the chunk sizes
// `explain` reasons with, and the system calls of huge requests, whose sizes strace sees the real glibc pass.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oracleCommand } from '../dist/oracle/oracle.js';
import { exactJson } from '../dist/report/json.js';
import { unless } from './support/skip.ts';
import { mallocscope } from './support/cli.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-exact-'));
const oracle = join(root, 'build/Release/mallocscope-oracle');
const haveStrace = spawnSync('strace', ['-V']).status === 0;
const straceTest = unless(test, !haveStrace ? 'needs strace (Debian package strace)' : !existsSync(oracle) ? 'the oracle is not built' : undefined);

/** The command, in-process (test/support/cli.ts). */
const run = (args: string[]) => mallocscope(args);

function traceFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test('exactJson writes bigints as exact integer literals, and everything else as JSON.stringify does', () => {
  const value = { a: 1, b: [2n ** 64n - 16n, 'x"y', null, true, -0.5, undefined], c: {}, d: [], e: undefined };
  assert.is(exactJson(value), '{"a":1,"b":[18446744073709551600,"x\\"y",null,true,-0.5,null],"c":{},"d":[]}');
  const plain = { a: [1, { b: 'c' }], d: {} };
  assert.is(exactJson(plain, 2), JSON.stringify(plain, null, 2));
});

test('replay --jsonl: mallopt of a negative int moves a threshold to that int as a size_t, every digit', async () => {
  const path = traceFile('mallopt.trace', 'mallopt M_MMAP_THRESHOLD -0x10\nmalloc a 100\nmallopt M_TRIM_THRESHOLD -1\n');
  const r = await run(['replay', path, '--jsonl']);
  assert.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  // 2^64 - 16 and 2^64 - 1, as C converts the ints -16 and -1 to size_t.
  assert.match(lines[0], /"threshold":\{"from":131072,"to":18446744073709551600\}/);
  assert.match(lines[2], /"trimThreshold":\{"from":131072,"to":18446744073709551615\}/);
  const explained = await run(['explain', path]);
  assert.is(explained.status, 0, explained.stderr);
  assert.match(explained.stdout, /mmap threshold 131072 → 18446744073709551600/);
  const compared = await run(['compare', path, '--json']);
  assert.is(compared.status, 0, compared.stderr);
  assert.match(compared.stdout, /"finalMmapThreshold": 18446744073709551600,/);
  assert.match(compared.stdout, /"finalTrimThreshold": 18446744073709551615,/);
  const summary = await run(['replay', path, '--json']);
  assert.is(summary.status, 0, summary.stderr);
  assert.match(summary.stdout, /"mmapThreshold": 18446744073709551600,/);
  assert.match(summary.stdout, /"trimThreshold": 18446744073709551615,/);
  const text = await run(['replay', path]);
  assert.match(text.stdout, /18446744073709551600/);
});

test('explain: malloc(PTRDIFF_MAX) reasons with chunk 2^63 + 16, exactly', async () => {
  const path = traceFile('ptrdiff.trace', 'malloc a 0x7fffffffffffffff\n');
  const r = await run(['explain', path]);
  assert.is(r.status, 0, r.stderr);
  // request2size(2^63 - 1) = (2^63 - 1 + 8 + 15) & ~15.
  assert.match(r.stdout, /chunk 9223372036854775824:/);
  assert.not.match(r.stdout, /9223372036854775000|4611686018427388000/);
});

test('explain: calloc products, memalign sizes and alignments, realloc sizes, all exact', async () => {
  const path = traceFile(
    'explain-huge.trace',
    'malloc x 100\ncalloc q 0x80000000 0x100000001\nmemalign b 4096 0x4000000000000000\nrealloc x 0x3000000000000000\n',
  );
  const r = await run(['explain', path]);
  assert.is(r.status, 0, r.stderr);
  // 2^31 × (2^32 + 1), which passes PTRDIFF_MAX; request2size(2^62) = 2^62 + 16; request2size(3 × 2^60) = 3 × 2^60 + 16.
  assert.match(r.stdout, /request 9223372039002259456 is above PTRDIFF_MAX/);
  assert.match(r.stdout, /_int_malloc\(4611686018427387920 \+ alignment 4096 \+ 32\)/);
  assert.match(r.stdout, /cannot grow to 3458764513820540944;/);
  const trims = await run(['explain', traceFile('trim-huge.trace', 'malloc a 100\ntrim 0xfffffffffffffff0\n')]);
  assert.is(trims.status, 0, trims.stderr);
  assert.match(trims.stdout, /malloc_trim\(18446744073709551600\): .*pad 18446744073709551600\)/);
});

/** The brk increments and mmap/mremap lengths of 2^40 bytes and more that a run made, in order, as strace shows them. */
function hugeCallsUnderStrace(trace: string): string[] {
  // The oracle as every command runs it: under the glibc build MALLOCSCOPE_LIBC names, if any.
  const command = oracleCommand(trace);
  const r = spawnSync('strace', ['-e', 'trace=brk,mmap,mremap', '-e', 'signal=none', command.file, ...command.args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH },
  });
  assert.is(r.status, 0, r.stderr);
  const calls: string[] = [];
  let brk = 0n;
  for (const line of r.stderr.split('\n')) {
    const b = /^brk\((0x[0-9a-f]+|NULL)\)\s+= (0x[0-9a-f]+)/.exec(line);
    if (b) {
      // The break before the call is the previous result; a failed brk returns the unchanged break.
      const result = BigInt(b[2]);
      if (b[1] !== 'NULL') {
        const increment = BigInt(b[1]) - brk;
        if (increment >= 1n << 40n || -increment >= 1n << 40n)
          calls.push(`brk ${increment > 0n ? '+' : ''}${increment}${result !== BigInt(b[1]) ? ' failed' : ''}`);
      }
      brk = result;
      continue;
    }
    const m = /^mmap\(NULL, (\d+),.*= (-1 E\w+|0x[0-9a-f]+)/.exec(line);
    if (m && BigInt(m[1]) >= 1n << 40n) calls.push(`mmap ${m[1]}${m[2].startsWith('-1') ? ' failed' : ''}`);
    const r2 = /^mremap\(0x[0-9a-f]+, (\d+), (\d+),.*= (-1 E\w+|0x[0-9a-f]+)/.exec(line);
    if (r2 && BigInt(r2[2]) >= 1n << 40n) calls.push(`mremap ${r2[1]}->${r2[2]}${r2[3].startsWith('-1') ? ' failed' : ''}`);
  }
  return calls;
}

/** The same, from the model's `sys` strings. */
async function hugeCallsOfModel(trace: string): Promise<string[]> {
  const r = await run(['replay', trace, '--jsonl']);
  assert.is(r.status, 0, r.stderr);
  const calls: string[] = [];
  for (const line of r.stdout.trim().split('\n')) {
    for (const call of (JSON.parse(line).sys ?? []) as string[]) {
      const size = BigInt(/(-?\d+)(?: failed)?$/.exec(call)![1]);
      if (size >= 1n << 40n || -size >= 1n << 40n) calls.push(call);
    }
  }
  return calls;
}

const HUGE_TRACES: Record<string, string> = {
  'malloc near PTRDIFF_MAX and below': 'malloc a 0x7fffffffffffffff\nmalloc b 0x1000000000000000\nmalloc c 0x20000000000001\nmalloc d 100\n',
  'calloc, memalign and realloc of huge sizes': `${[
    'malloc x 100',
    'calloc a 0x100000 0x100000000',
    'memalign b 4096 0x4000000000000000',
    'memalign c 64 0x7ffffffffffff000',
    'realloc x 0x3000000000000000',
    'realloc y 0x123456789abcdef0',
    'malloc z 200000',
    'realloc z 0x100000000000000',
    'malloc w 300000',
    'realloc w 0x7fffffffffffffff',
  ].join('\n')}\n`,
  'a negative top pad wraps the growth in size_t': 'mallopt M_TOP_PAD -0x10000\nmalloc a 0x40000000000\nmalloc b 100\nmalloc c 0x7ff000000000000\n',
  'a growth that wraps past 2^63 is never passed to sbrk, only to the mmap fallback':
    'mallopt M_MMAP_MAX 0\nmalloc big 0x80000000\nmallopt M_TOP_PAD -2147483648\nmalloc x 200000\n',
  'no mmap allowed: the huge request goes to brk and the fallback': 'mallopt M_MMAP_MAX 0\nmalloc a 0x7000000000000000\nmalloc b 0x123456789abcd\n',
  // A review found the model's lengths off here: only the alignment is past 2^53, and glibc rounds it up.
  'memalign with an alignment past 2^53 and a small size': 'memalign m 0x4000000000000000 4000\nmemalign n 0x1000000000000001 100\nmalloc k 10\n',
};

for (const [name, text] of Object.entries(HUGE_TRACES)) {
  straceTest(`huge requests (${name}): the model's brk and mmap sizes are the real glibc's, to the byte`, async () => {
    const path = traceFile(`${name.replace(/\W+/g, '-')}.trace`, text);
    const real = hugeCallsUnderStrace(path);
    assert.ok(real.length > 0, 'the trace makes huge system calls');
    assert.equal(await hugeCallsOfModel(path), real);
  });
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
