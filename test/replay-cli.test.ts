// `mallocscope replay` as a user runs it: JSON Lines with the spec's numbers, the lines before a bad line
// kept, the summary, --stats, and usage errors; expected values from docs/glibc.md §6 (probe H) and §11.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mallocscope } from './support/cli.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-replay-'));

/** The command, in-process (test/support/cli.ts). */
const run = (args: string[]) => mallocscope(args);

test('replay --jsonl: §11 — 0x2a0/0x70, mmap 200704, then the heap at +0x310', async () => {
  const r = await run(['replay', 'examples/threshold-slides.trace', '--jsonl']);
  assert.is(r.status, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(
    lines.map(({ seq, op, id, where, chunk, offset }) => ({ seq, op, id, where, chunk, offset })),
    [
      { seq: 0, op: 'malloc', id: 'small', where: 'heap', chunk: 0x70, offset: 0x2a0 },
      { seq: 1, op: 'malloc', id: 'big', where: 'mmap', chunk: 200704, offset: undefined },
      { seq: 2, op: 'free', id: 'big', where: undefined, chunk: undefined, offset: undefined },
      { seq: 3, op: 'malloc', id: 'again', where: 'heap', chunk: 200016, offset: 0x310 },
    ],
  );
  // §3: the free moved the threshold to the chunk's size and the trim threshold to twice that.
  assert.equal(lines[2].threshold, { from: 131072, to: 200704 });
  assert.equal(lines[2].trimThreshold, { from: 131072, to: 401408 });
  // Contract keys come first, in their order.
  assert.match(r.stdout.split('\n')[0], /^\{"seq":0,"op":"malloc","id":"small","where":"heap","chunk":112,"offset":672[,}]/);
});

test('replay --jsonl prints the lines before a bad line, then one error line, exit 1', async () => {
  const path = join(dir, 'bad.trace');
  writeFileSync(path, 'malloc a 10\nmalloc b 20\nfree zz\n');
  const r = await run(['replay', path, '--jsonl']);
  assert.is(r.status, 1);
  assert.is(r.stdout.trim().split('\n').length, 2);
  assert.is(r.stderr, `mallocscope: ${path}:3: free of ID 'zz', which is not live [TRACE_ID_NOT_LIVE]\n`);
});

test('replay summary: §11 figures; --stats adds mallinfo2 at the end (§6 probe H)', async () => {
  const summary = await run(['replay', 'examples/threshold-slides.trace']);
  assert.is(summary.status, 0, summary.stderr);
  assert.match(summary.stdout, /^events\s+4$/m);
  assert.match(summary.stdout, /^peak heap\s+335872 /m);
  assert.match(summary.stdout, /^peak mmapped\s+200704 /m);
  assert.match(summary.stdout, /^mmap threshold\s+200704 \(moved 1 time\)$/m);
  const stats = await run(['replay', 'examples/trim.trace', '--stats']);
  assert.match(stats.stdout, /^mallinfo2 at end\s+arena 102400, hblks 0, hblkhd 0, uordblks 100704, fordblks 1696, keepcost 1696$/m);
});

test('replay usage errors exit 2 with one line', async () => {
  for (const args of [
    ['--policy', 'nope'],
    ['--policy', 'fixed:0x'],
    ['--backend', 'gpu'],
    ['--brk-limit', 'lots'],
  ]) {
    const r = await run(['replay', 'examples/trim.trace', ...args]);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^mallocscope: [^\n]*\[USAGE\]\n$/);
  }
});

test('docs/trace-format.md documents every key, via and sys string that replay --jsonl prints, and the oracle keys', async () => {
  const doc = readFileSync(join(root, 'docs/trace-format.md'), 'utf8');
  const contract = doc.slice(doc.indexOf('### The contract'), doc.indexOf("### The model's extra keys"));
  const extra = doc.slice(doc.indexOf("### The model's extra keys"));
  assert.ok(contract.length > 0 && extra.length > 0, 'both sections are there');
  // A real program's trace (every path of the allocator) and one made to reach the rest: mremap, a moved
  // threshold, a failed brk and its mmap fallback, malloc_trim's madvise.
  const crafted = join(dir, 'every-key.trace');
  writeFileSync(
    crafted,
    'malloc m 200000\nrealloc m 400000\nfree m\nmalloc a 100\nmalloc b 100000\nmalloc c 100000\nmalloc d 5000\nmalloc e 5000\nfree d\nfree c\ntrim 0\n',
  );
  const runs = [
    await run(['replay', 'test/fixtures/real/cc1-points.trace', '--jsonl']),
    await run(['replay', crafted, '--jsonl', '--stats', '--brk-limit', '0x30000']),
  ];
  const keys = new Set<string>();
  const vias = new Set<string>();
  const sys = new Set<string>();
  for (const r of runs) {
    assert.is(r.status, 0, r.stderr);
    for (const line of r.stdout.trimEnd().split('\n')) {
      const event = JSON.parse(line);
      for (const key of Object.keys(event)) keys.add(key);
      if (event.via) vias.add(event.via);
      for (const call of event.sys ?? []) sys.add(call);
    }
  }
  const oracle = await run(['oracle', crafted, '--stats', '--brk-limit', '0x30000']);
  const oracleKeys = new Set(
    oracle.stdout
      .trimEnd()
      .split('\n')
      .flatMap((line) => Object.keys(JSON.parse(line))),
  );
  for (const key of oracleKeys) assert.ok(contract.includes(`\`${key}\``), `the oracle's key ${key} is in the contract section`);
  for (const key of keys) {
    const section = oracleKeys.has(key) ? contract : extra;
    assert.ok(section.includes(`\`${key}\``), `key ${key} is documented`);
  }
  assert.ok(keys.has('trimmed') && keys.has('consolidations') && keys.has('threshold'), [...keys].join(' '));
  for (const via of vias) assert.ok(extra.includes(`| \`${via}\` |`), `via ${via} is documented`);
  assert.is(vias.size, 12, [...vias].join(' '));
  // Each system call's form, its numbers written as the table writes them.
  const forms = new Set(
    [...sys].map((call) =>
      call
        .replace(/ failed$/, '')
        .replace(/^mremap \d+->\d+$/, 'mremap A->B')
        .replace(/^(\w+) [+-]?\d+$/, (all, name: string) => (name === 'brk' ? `brk ${all.includes('-') ? '-' : '+'}N` : `${name} N`)),
    ),
  );
  assert.equal([...forms].sort(), ['brk +N', 'brk -N', 'madvise N', 'mmap N', 'mremap A->B', 'munmap N']);
  for (const form of forms) assert.ok(extra.includes(`\`${form}\``), `sys ${form} is documented`);
  assert.ok([...sys].some((call) => call.endsWith(' failed')) && extra.includes('` failed`'), 'failed calls are documented');
});

test.run();
