// `mallocscope replay` as a user runs it: JSON Lines with the spec's numbers, the lines before a bad line
// kept, the summary, --stats, and usage errors; expected values from GLIBC-2.36.md (§6 probe H, §11).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-replay-'));

function run(args: string[]) {
  return spawnSync(process.execPath, [join(root, 'bin/mallocscope.js'), ...args], { cwd: root, encoding: 'utf8' });
}

test('replay --jsonl: §11 — 0x2a0/0x70, mmap 200704, then the heap at +0x310', () => {
  const r = run(['replay', 'examples/threshold-slides.trace', '--jsonl']);
  assert.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
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

test('replay --jsonl prints the lines before a bad line, then one error line, exit 1', () => {
  const path = join(dir, 'bad.trace');
  writeFileSync(path, 'malloc a 10\nmalloc b 20\nfree zz\n');
  const r = run(['replay', path, '--jsonl']);
  assert.is(r.status, 1);
  assert.is(r.stdout.trim().split('\n').length, 2);
  assert.is(r.stderr, `mallocscope: ${path}:3: free of ID 'zz', which is not live [TRACE_ID_NOT_LIVE]\n`);
});

test('replay summary: §11 figures; --stats adds mallinfo2 at the end (§6 probe H)', () => {
  const summary = run(['replay', 'examples/threshold-slides.trace']);
  assert.is(summary.status, 0, summary.stderr);
  assert.match(summary.stdout, /^events\s+4$/m);
  assert.match(summary.stdout, /^peak heap\s+335872 /m);
  assert.match(summary.stdout, /^peak mmapped\s+200704 /m);
  assert.match(summary.stdout, /^mmap threshold\s+200704 \(moved 1 time\)$/m);
  const stats = run(['replay', 'examples/trim.trace', '--stats']);
  assert.match(stats.stdout, /^mallinfo2 at end\s+arena 102400, hblks 0, hblkhd 0, uordblks 100704, fordblks 1696, keepcost 1696$/m);
});

test('replay usage errors exit 2 with one line', () => {
  for (const args of [['--policy', 'nope'], ['--policy', 'fixed:0x'], ['--backend', 'gpu'], ['--brk-limit', 'lots']]) {
    const r = run(['replay', 'examples/trim.trace', ...args]);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^mallocscope: [^\n]*\[USAGE\]\n$/);
  }
});

test.run();
