// `mallocscope export massif` (docs/export.md) read by Valgrind's own ms_print: on hand-made traces ms_print's
// table and trees show the figures worked out by hand below (the chunk sizes confirmed by the real glibc);
// on the examples and the real fixtures the peak is the replay's own (replay --json, compare --json) and the
// extra bytes are the anatomy's; every file keeps the grammar massif-visualizer's parser demands; bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { runOracleSync } from '../dist/oracle/oracle.js';
import { mallocscope } from './support/cli.ts';
import { unless } from './support/skip.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-massif-'));

/** ms_print on the PATH (Debian: the valgrind package), as a person would run it. */
function findMsPrint(): string | undefined {
  for (const folder of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(folder, 'ms_print');
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  return undefined;
}
const msPrintPath = findMsPrint();
const msTest = unless(test, msPrintPath ? undefined : 'needs ms_print (Debian package valgrind)');

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** `mallocscope export massif TRACE ARGS…` into a file; its text. */
async function exportMassif(trace: string, args: string[] = []): Promise<{ path: string; text: string }> {
  const path = join(dir, `out-${Math.random().toString(36).slice(2)}.massif`);
  const run = await mallocscope(['export', 'massif', trace, '-o', path, ...args]);
  assert.is(run.status, 0, run.stderr);
  assert.is(run.stdout, '');
  return { path, text: readFileSync(path, 'utf8') };
}

interface Row {
  n: number;
  time: number;
  total: number;
  heap: number;
  extra: number;
}

/** What ms_print printed: its snapshot table, the detailed snapshots (the peak's number), and the whole text. */
function msPrint(path: string, args: string[] = []): { rows: Row[]; detailed: number[]; peak: number | null; count: number; text: string } {
  const run = spawnSync(msPrintPath as string, [...args, path], { encoding: 'utf8' });
  assert.is(run.status, 0, run.stderr);
  const text = run.stdout;
  const rows: Row[] = [];
  const number = (s: string) => Number(s.replace(/,/g, ''));
  for (const m of text.matchAll(/^ *(\d+) +([\d,]+) +([\d,]+) +([\d,]+) +([\d,]+) +([\d,]+)$/gm)) {
    assert.is(number(m[6]), 0, 'a trace has no stacks');
    rows.push({ n: number(m[1]), time: number(m[2]), total: number(m[3]), heap: number(m[4]), extra: number(m[5]) });
  }
  const list = /^ Detailed snapshots: \[(.*)\]$/m.exec(text)?.[1];
  if (list === undefined) assert.unreachable('no list of detailed snapshots');
  const items = list === '' || list === undefined ? [] : list.split(', ');
  const peakItem = items.find((item) => item.endsWith(' (peak)'));
  return {
    rows,
    detailed: items.map((item) => Number.parseInt(item, 10)),
    peak: peakItem === undefined ? null : Number.parseInt(peakItem, 10),
    count: Number(/^Number of snapshots: (\d+)$/m.exec(text)?.[1]),
    text,
  };
}

interface Snapshot {
  number: number;
  time: number;
  heap: number;
  extra: number;
  kind: string;
  /** The tree's lines as written (empty for heap_tree=empty). */
  tree: string[];
}

/**
 * Reads a massif file by the rules of massif-visualizer's parser (KDE's massifdata/parserprivate.cpp), which
 * are stricter than ms_print's: one `desc: ` line, `cmd: `, `time_unit: `, then each snapshot's separator
 * lines exactly, its fields in order, and for a detailed one a tree whose node at depth d starts with d
 * spaces and `nK: BYTES LABEL` (a label always). Also massif's own invariants: snapshots numbered from 0,
 * times that never decrease, at most one peak, and a node's children summing to at most its bytes.
 */
function parseMassif(text: string): { desc: string; cmd: string; timeUnit: string; snapshots: Snapshot[] } {
  assert.ok(text.endsWith('\n') && !text.endsWith('\n\n'), 'the file ends with one newline');
  const lines = text.slice(0, -1).split('\n');
  let at = 0;
  const take = (pattern: RegExp, what: string): RegExpExecArray => {
    const line = lines[at];
    const m = line === undefined ? null : pattern.exec(line);
    if (m === null) assert.unreachable(`line ${at + 1}: expected ${what}, got ${JSON.stringify(line)}`);
    at++;
    return m as RegExpExecArray;
  };
  const desc = take(/^desc: (.*)$/, 'desc: ')[1];
  const cmd = take(/^cmd: (.*)$/, 'cmd: ')[1];
  const timeUnit = take(/^time_unit: (i|B)$/, 'time_unit: ')[1];
  const snapshots: Snapshot[] = [];
  const readNode = (depth: number, tree: string[]): number => {
    const m = take(new RegExp(`^ {${depth}}n(\\d+): (\\d+) (\\S.*)$`), `a tree node at depth ${depth}`);
    tree.push(lines[at - 1]);
    let sum = 0;
    for (let i = 0; i < Number(m[1]); i++) sum += readNode(depth + 1, tree);
    assert.ok(sum <= Number(m[2]), `line ${at}: the children hold ${sum} bytes, more than their parent's ${m[2]}`);
    return Number(m[2]);
  };
  while (at < lines.length) {
    take(/^#-----------$/, 'the separator');
    const number = Number(take(/^snapshot=(\d+)$/, 'snapshot=')[1]);
    assert.is(number, snapshots.length, 'snapshots are numbered from 0');
    take(/^#-----------$/, 'the separator');
    const time = Number(take(/^time=(\d+)$/, 'time=')[1]);
    const heap = Number(take(/^mem_heap_B=(\d+)$/, 'mem_heap_B=')[1]);
    const extra = Number(take(/^mem_heap_extra_B=(\d+)$/, 'mem_heap_extra_B=')[1]);
    take(/^mem_stacks_B=0$/, 'mem_stacks_B=0');
    const kind = take(/^heap_tree=(empty|detailed|peak)$/, 'heap_tree=')[1];
    const tree: string[] = [];
    if (kind !== 'empty') assert.is(readNode(0, tree), heap, `snapshot ${number}: the tree's root holds mem_heap_B`);
    if (snapshots.length > 0) assert.ok(time >= snapshots[snapshots.length - 1].time, `snapshot ${number}: time goes back`);
    snapshots.push({ number, time, heap, extra, kind, tree });
  }
  assert.ok(snapshots.filter((s) => s.kind === 'peak').length <= 1, 'at most one peak');
  return { desc, cmd, timeUnit, snapshots };
}

// A trace worked out by hand. glibc's chunk for a request of N bytes is N + 8 rounded up to 16 (at least 32);
// a block of its own mapping takes that + 8 rounded up to a page; the extra bytes are chunk - request.
const HAND = `malloc a 100          # chunk 112: extra 12
malloc b 200000       # 200000 + 8 -> 200016, + 8 = 200024 -> 49 pages, 200704: extra 704
calloc c 4 25         # 100 bytes, chunk 112: extra 12
free b
realloc a 5000        # chunk 5008: extra 8
memalign d 64 200     # chunk 208: extra 8
free c
`;
/** The chunks of the blocks the calls return, as worked out above. */
const HAND_CHUNKS = [112, 200704, 112, null, 5008, 208, null];
/** After each call: [time (calls made), mem_heap_B (live requested bytes), mem_heap_extra_B]. */
const HAND_ROWS: [number, number, number][] = [
  [0, 0, 0], // snapshot 0: before the first call
  [1, 100, 12],
  [2, 200100, 12 + 704],
  [3, 200200, 12 + 704 + 12], // the peak: 200928
  [4, 200, 24],
  [5, 5100, 8 + 12],
  [6, 5300, 8 + 12 + 8],
  [7, 5200, 8 + 8],
];

msTest('a hand-made trace: ms_print shows every call with the live bytes and the chunks’ overhead worked out by hand', async () => {
  const trace = write('hand.trace', HAND);
  // The chunk sizes worked out above are the real glibc's.
  const real = runOracleSync(trace, {});
  assert.is(real.exit.status, 0, real.exit.stderr);
  assert.equal(
    real.lines.map((line) => (JSON.parse(line) as { chunk?: number }).chunk ?? null),
    HAND_CHUNKS,
  );

  const { path, text } = await exportMassif(trace, ['--glibc', '2.36', '--detailed-freq', '2']);
  const file = parseMassif(text);
  assert.is(file.timeUnit, 'i');
  assert.is(file.desc, '--policy=glibc --glibc=2.36 --time-unit=i --extra=overhead --max-snapshots=100 --detailed-freq=2 --threshold=1');
  assert.is(file.cmd, `${trace} (replayed through mallocscope's model of glibc 2.36)`);
  const printed = msPrint(path);
  assert.equal(
    printed.rows.map((r) => [r.time, r.heap, r.extra]),
    HAND_ROWS,
  );
  for (const r of printed.rows) assert.is(r.total, r.heap + r.extra);
  // Every second snapshot has a tree (1, 3, 5, 7); 3 is the peak (200200 + 728 = 200928 bytes).
  assert.equal(printed.detailed, [1, 3, 5, 7]);
  assert.is(printed.peak, 3);
  assert.is(printed.count, 8);
  // The graph's top: 200928 B is 196.2 KB (ms_print divides by 1024), drawn with the peak's #.
  assert.match(printed.text, /^ +KB\n196\.2\^ +#+ *$/m);
  // The peak's tree, in ms_print's words: shares of the snapshot's 200928 bytes.
  assert.ok(
    printed.text.includes(
      [
        '99.64% (200,200B) (heap allocation functions) malloc/calloc/realloc/memalign', // 200200 / 200928
        '->99.54% (200,000B) malloc(200000)', // 200000 / 200928
        `| ->99.54% (200,000B) b (${trace}:2)`,
        '|   ',
        // The export's "in 2 places" (a and c, 100 bytes each, under 1% of 200928) is one node to ms_print.
        "->00.10% (200B) in 1+ places, all below ms_print's threshold (01.00%)",
      ].join('\n'),
    ),
    printed.text,
  );
  // The export's own node for them, in massif's words.
  assert.ok(file.snapshots[3].tree.includes(" n0: 200 in 2 places, all below massif's threshold (1.00%)"), file.snapshots[3].tree.join('\n'));
  // Snapshot 5: a's block is now realloc's, c still calloc's.
  assert.equal(file.snapshots[5].tree, [
    'n2: 5100 (heap allocation functions) malloc/calloc/realloc/memalign',
    ' n1: 5000 realloc(ptr, 5000)',
    `  n0: 5000 a (${trace}:5)`,
    ' n1: 100 calloc(4, 25)',
    `  n0: 100 c (${trace}:3)`,
  ]);
});

msTest('--time-unit B counts the bytes allocated and freed, --extra footprint gives the whole footprint', async () => {
  const trace = write('hand-b.trace', HAND);
  const { path } = await exportMassif(trace, ['--glibc', '2.36', '--time-unit', 'B', '--extra', 'footprint']);
  const printed = msPrint(path);
  // Each call adds the bytes of the chunks it made or freed (a realloc the difference), as massif counts:
  // 112, +200704, +112, +200704 (free b), +4896 (a: 112 -> 5008), +208, +112 (free c).
  assert.equal(
    printed.rows.map((r) => r.time),
    [0, 112, 200816, 200928, 401632, 406528, 406736, 406848],
  );
  // The footprint: the first call grows the heap by 135168 bytes (the tcache struct's 656 bytes, the top pad
  // 131072 and the chunk, rounded up to pages); b's mapping adds 200704 while it lives.
  assert.equal(
    printed.rows.map((r) => r.total),
    [0, 135168, 335872, 335872, 135168, 135168, 135168, 135168],
  );
  assert.equal(
    printed.rows.map((r) => r.heap),
    HAND_ROWS.map((r) => r[1]),
  );
  // The first call of the peak footprint.
  assert.is(printed.peak, 2);
  assert.match(printed.text, /^Massif arguments: +--policy=glibc --glibc=2\.36 --time-unit=B --extra=footprint /m);
  // The replay's own peak footprint says the same.
  const compare = await mallocscope(['compare', trace, '--glibc', '2.36', '--policy', 'glibc', '--json']);
  assert.is(compare.status, 0, compare.stderr);
  const column = (JSON.parse(compare.stdout) as { columns: { peakFootprint: number; peakFootprintSeq: number }[] }).columns[0];
  assert.is(column.peakFootprint, 335872);
  assert.is(column.peakFootprintSeq + 1, printed.rows[2].n);
});

msTest('a threaded trace: the trees group the live blocks by the thread that made them', async () => {
  const trace = write(
    'threads.trace',
    `malloc a 1000        # chunk 1008: extra 8
spawn 2
@2 malloc b 5000     # chunk 5008 in thread 2's arena: extra 8
@2 malloc c 5000
@2 free a            # freed by another thread
@2 exit
`,
  );
  const { path, text } = await exportMassif(trace, ['--glibc', '2.36', '--threshold', '0']);
  const file = parseMassif(text);
  const printed = msPrint(path);
  assert.equal(
    printed.rows.map((r) => [r.time, r.heap, r.extra]),
    [
      [0, 0, 0],
      [1, 1000, 8],
      [2, 1000, 8],
      [3, 6000, 16],
      [4, 11000, 24],
      [5, 10000, 16],
      [6, 10000, 16],
    ],
  );
  assert.is(printed.peak, 4);
  assert.equal(file.snapshots[4].tree, [
    'n2: 11000 (heap allocation functions) malloc/calloc/realloc/memalign',
    ' n1: 10000 thread 2',
    '  n2: 10000 malloc(5000)',
    `   n0: 5000 b (${trace}:3)`,
    `   n0: 5000 c (${trace}:4)`,
    ' n1: 1000 thread 1',
    '  n1: 1000 malloc(1000)',
    `   n0: 1000 a (${trace}:1)`,
  ]);
  // ms_print's shares of the 11024 bytes: 10000 is 90.71%, 1000 is 9.07%.
  assert.ok(printed.text.includes('->90.71% (10,000B) thread 2\n| ->90.71% (10,000B) malloc(5000)\n|   ->45.36% (5,000B) b ('), printed.text);
  assert.ok(printed.text.includes('->09.07% (1,000B) thread 1\n  ->09.07% (1,000B) malloc(1000)\n    ->09.07% (1,000B) a ('), printed.text);
});

msTest('a recorded threaded program, longer than --max-snapshots: the peak of --extra footprint is the replay’s peak footprint', async () => {
  const trace = 'test/fixtures/real-threads/xz-t4.trace';
  const compare = await mallocscope(['compare', trace, '--policy', 'glibc', '--json']);
  assert.is(compare.status, 0, compare.stderr);
  const column = (JSON.parse(compare.stdout) as { columns: { events: number; peakFootprint: number; peakFootprintSeq: number }[] }).columns[0];
  assert.ok(column.events > 100, `${column.events} events`);
  for (const extra of ['footprint', 'overhead']) {
    const { path, text } = await exportMassif(trace, ['--extra', extra, '--max-snapshots', '10', '--detailed-freq', '1']);
    const file = parseMassif(text);
    const printed = msPrint(path);
    // Snapshot 0, the highest call of each of at most 8 slices of time (the peak among them), the last call.
    assert.ok(printed.count <= 10 && printed.count >= 5, `${printed.count} snapshots`);
    assert.is(file.snapshots[file.snapshots.length - 1].time, column.events);
    assert.ok(printed.peak !== null);
    const totals = printed.rows.map((r) => r.total);
    assert.is(totals.indexOf(Math.max(...totals)), printed.peak);
    if (extra === 'footprint') {
      const peak = printed.rows[printed.peak as number];
      assert.is(peak.total, column.peakFootprint);
      assert.is(peak.time, column.peakFootprintSeq + 1);
    }
    // The trees name the program's threads.
    assert.ok(file.snapshots[printed.peak as number].tree.some((line) => /^ n\d+: \d+ thread \d+$/.test(line)));
  }
});

msTest('an example: every call is a snapshot, the peak’s live bytes are the replay’s peak and its extra the anatomy’s overhead', async () => {
  const trace = 'examples/growing-buffers.trace';
  const { path, text } = await exportMassif(trace);
  const file = parseMassif(text);
  const printed = msPrint(path);
  const replay = await mallocscope(['replay', trace, '--json']);
  assert.is(replay.status, 0, replay.stderr);
  const summary = JSON.parse(replay.stdout) as { events: number; peakLive: number };
  // Fewer calls than snapshots: one after each, its time the number of calls made.
  assert.is(printed.count, summary.events + 1);
  assert.equal(
    printed.rows.map((r) => r.time),
    Array.from({ length: summary.events + 1 }, (_, i) => i),
  );
  assert.is(Math.max(...printed.rows.map((r) => r.heap)), summary.peakLive);
  assert.ok(printed.peak !== null);
  const peak = printed.rows[printed.peak as number];
  assert.is(peak.heap, summary.peakLive);
  // The extra bytes are the anatomy's overhead of the live blocks (headers, rounding, page rounding).
  const anatomy = await mallocscope(['anatomy', trace, '--at', String(peak.time - 1), '--json']);
  assert.is(anatomy.status, 0, anatomy.stderr);
  const parts = (JSON.parse(anatomy.stdout) as { parts: { payload: number; overhead: number; mmapSlack: number } }).parts;
  assert.is(peak.heap, parts.payload);
  assert.is(peak.extra, parts.overhead + parts.mmapSlack);
  // Detailed every 10th, and the peak.
  assert.ok([9, 19, 29].every((n) => printed.detailed.includes(n)));
  assert.is(file.snapshots.filter((s) => s.kind !== 'empty').length, printed.detailed.length);
});

msTest('realloc of a NULL block is realloc(NULL, …) in the tree, and a name with # and parentheses survives ms_print', async () => {
  const trace = write(
    'odd #1 (copy).trace',
    `malloc x 0xffffffffffffffff   # fails: x stays live with a NULL block
realloc x 300                 # realloc(NULL, 300): chunk 320, extra 20
realloc y 40                  # y is not live: realloc(NULL, 40)
realloc y 50                  # realloc(ptr, 50): chunk 64, extra 14
`,
  );
  const { path, text } = await exportMassif(trace, ['--glibc', '2.36', '--detailed-freq', '1', '--threshold', '0']);
  const file = parseMassif(text);
  const name = join(dir, 'odd %231 %28copy%29.trace');
  assert.equal(file.snapshots[4].tree, [
    'n2: 350 (heap allocation functions) malloc/calloc/realloc/memalign',
    ' n1: 300 realloc(NULL, 300)',
    `  n0: 300 x (${name}:2)`,
    ' n1: 50 realloc(ptr, 50)',
    `  n0: 50 y (${name}:4)`,
  ]);
  const printed = msPrint(path);
  assert.equal(printed.rows[4], { n: 4, time: 4, total: 384, heap: 350, extra: 34 });
  // In cmd: only # is encoded (ms_print would drop the rest of the line).
  assert.ok(printed.text.includes(`Command:            ${join(dir, 'odd %231 (copy).trace')} (replayed through`), printed.text);
});

msTest('traces with nothing live: snapshot 0 alone, or snapshots of nothing, and no peak', async () => {
  const empty = await exportMassif(write('empty.trace', ''));
  let printed = msPrint(empty.path);
  assert.is(printed.count, 1);
  assert.equal(printed.detailed, []);
  assert.is(printed.peak, null);
  assert.equal(printed.rows, [{ n: 0, time: 0, total: 0, heap: 0, extra: 0 }]);

  const quiet = await exportMassif(write('quiet.trace', '# settings only\nmallopt M_TOP_PAD 0\ntrim 0\n'), ['--detailed-freq', '1']);
  const file = parseMassif(quiet.text);
  printed = msPrint(quiet.path);
  assert.is(printed.count, 3);
  assert.is(printed.peak, null);
  assert.equal(printed.detailed, [0, 1, 2]);
  assert.ok(printed.rows.every((r) => r.total === 0));
  assert.equal(file.snapshots[1].tree, ['n0: 0 (heap allocation functions) malloc/calloc/realloc/memalign']);
});

test('bad input: a bad trace names its file and line, and leaves no file; a bad format or option is a usage error', async () => {
  const bad = write('bad.trace', 'malloc a 10\nfree b\n');
  const out = join(dir, 'bad.massif');
  let run = await mallocscope(['export', 'massif', bad, '-o', out]);
  assert.is(run.status, 1);
  assert.is(run.stderr, `mallocscope: ${bad}:2: free of ID 'b', which is not live [TRACE_ID_NOT_LIVE]\n`);
  assert.not.ok(existsSync(out));

  run = await mallocscope(['export', 'heaptrack', bad]);
  assert.is(run.status, 2);
  assert.match(run.stderr, /^mallocscope: unknown format 'heaptrack' \(expected massif\) .*\[USAGE\]\n$/);
  for (const [option, value] of [
    ['--time-unit', 'ms'],
    ['--extra', 'free'],
    ['--max-snapshots', '9'],
    ['--max-snapshots', '1001'],
    ['--detailed-freq', '0'],
    ['--threshold', '100.5'],
    ['--threshold', '-1'],
  ]) {
    run = await mallocscope(['export', 'massif', bad, option, value]);
    assert.is(run.status, 2, `${option} ${value}`);
    assert.match(run.stderr, new RegExp(`^mallocscope: ${option} takes .*\\[USAGE\\]\\n$`));
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
