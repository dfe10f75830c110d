// Heap images of the real glibc (docs/image.md): the oracle writes the main arena's heap after chosen events,
// and the walker decodes each image from its bytes and sidecar alone. What they are checked against comes from
// glibc itself (the oracle's own JSON Lines: which blocks are live, where and how big) or from arithmetic done
// by hand (the fixed base and arena addresses); each glibc build this machine has runs at least one trace.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MallocscopeError } from '../dist/errors.js';
import { readImage, sidecarPath, walkImageFile } from '../dist/image/files.js';
import { DEFAULT_BASE, KEY_MARKER, formatSidecar, parseSidecar } from '../dist/image/format.js';
import { type ChunkState, type HeapWalk, type LinkTarget, walkImage } from '../dist/image/walk.js';
import type { OracleEvent } from '../dist/oracle/oracle.js';
import { oracleImages } from '../dist/oracle/images.js';
import { oracleCommand } from '../dist/oracle/oracle.js';
import { type GeneratedCall, SHAPES, THREAD_SHAPES, generateTrace } from '../dist/trace/generate.js';
import { formatCall } from '../dist/trace/writer.js';
import { type GlibcBuild, glibcBuilds, knownVersions, missingBuild } from './support/glibc-builds.ts';
import { unless } from './support/skip.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-images-'));
const builds = glibcBuilds();
const machine = [...builds.values()].find((b) => b.libc === '') as GlibcBuild;

/** A seeded random trace of a shape of src/trace/generate.ts, written to a file, with its calls. */
function shapeTrace(name: string, seed: number, events: number): { path: string; calls: GeneratedCall[] } {
  const shape = [...SHAPES, ...THREAD_SHAPES].find((s) => s.name === name);
  if (!shape) throw new Error(`no shape ${name}`);
  const calls = [...generateTrace(shape, seed, events)];
  const path = join(dir, `${name}-${seed}.trace`);
  writeFileSync(path, `${calls.map((call) => formatCall(call)).join('\n')}\n`);
  return { path, calls };
}

let runs = 0;
/** The oracle under `build`, writing images after the events `at` names: its events and its images by seq. */
function images(build: GlibcBuild, trace: string, at: string, base?: bigint) {
  const out = join(dir, `run-${runs++}`);
  const lines = oracleImages(trace, { at, dir: out, libc: build.libc, base });
  const bySeq = new Map<number, string>();
  for (const name of readdirSync(out)) {
    const m = /^heap-(\d+)\.img$/.exec(name);
    if (m) bySeq.set(Number(m[1]), join(out, name));
  }
  return { events: lines.map((line) => JSON.parse(line) as OracleEvent), bySeq };
}

/**
 * The heap blocks live after each event, by glibc's own answers (the oracle's `where`, `chunk` and `offset`):
 * chunk offset (the user pointer less 16) to chunk size, for the events in `wanted`.
 */
function liveBlocks(calls: GeneratedCall[], events: OracleEvent[], wanted: Set<number>): Map<number, Map<number, number>> {
  const live = new Map<string, { chunk: number; size: number } | null>();
  const leaked: { chunk: number; size: number }[] = [];
  const found = new Map<number, Map<number, number>>();
  events.forEach((event, seq) => {
    const call = calls[seq];
    const block = event.where === 'heap' ? { chunk: (event.offset as number) - 16, size: event.chunk as number } : null;
    if (call.op === 'free') live.delete(call.id);
    else if (call.op === 'realloc' && call.size === 0 && live.has(call.id)) {
      // realloc(p, 0) frees; realloc(NULL, 0) of an ID whose call failed is malloc(0), whose block leaks.
      if (block) leaked.push(block);
      live.delete(call.id);
    } else if (call.op === 'malloc' || call.op === 'calloc' || call.op === 'memalign' || call.op === 'realloc') {
      if (event.where !== undefined || call.op !== 'realloc' || !live.has(call.id)) live.set(call.id, block);
    }
    if (wanted.has(seq)) {
      const blocks = new Map<number, number>();
      for (const b of [...live.values(), ...leaked]) if (b) blocks.set(b.chunk, b.size);
      found.set(seq, blocks);
    }
  });
  return found;
}

const targetText = (t: LinkTarget | undefined) => JSON.stringify(t);

/** What every image must satisfy, whatever the trace: tiling, sound lists, counts, the sidecar's text. */
function checkWalk(walk: HeapWalk, path: string, threaded: boolean): void {
  const where = `${path} (glibc ${walk.sidecar.glibc}, after event ${walk.sidecar.seq})`;
  assert.equal(walk.problems, [], where);
  // The chunks tile the heap exactly, the top last and reaching the image's end.
  let at = 0;
  for (const chunk of walk.chunks) {
    assert.is(chunk.offset, at, `${where}: chunk order`);
    at += chunk.size;
  }
  assert.is(at, walk.sidecar.size, `${where}: the chunks end at the image's end`);
  if (walk.chunks.length > 0) assert.is(walk.chunks[walk.chunks.length - 1].state, 'top', where);
  const byOffset = new Map(walk.chunks.map((c) => [c.offset, c]));
  for (const list of walk.lists) {
    const members = list.chunks.map((offset) => byOffset.get(offset));
    members.forEach((chunk, i) => {
      assert.ok(chunk, `${where}: ${list.kind} ${list.index} holds ${list.chunks[i]}, no chunk`);
      if (!chunk) return;
      const link = (field: string) => chunk.links.find((l) => l.field === field)?.target;
      const next: LinkTarget =
        i + 1 < members.length ? { kind: 'chunk', offset: list.chunks[i + 1] } : list.kind === 'bin' ? { kind: 'bin', bin: list.index } : { kind: 'null' };
      if (list.kind === 'tcache') {
        assert.is(chunk.size, 32 + 16 * list.index, `${where}: tcache bin ${list.index} size`);
        if (!list.leavesHeap || i + 1 < members.length) assert.is(targetText(link('next')), targetText(next), `${where}: tcache next`);
        assert.is(chunk.key, KEY_MARKER, `${where}: tcache key`);
      } else if (list.kind === 'fastbin') {
        assert.is(chunk.size, 32 + 16 * list.index, `${where}: fastbin ${list.index} size`);
        assert.is(targetText(link('fd')), targetText(next), `${where}: fastbin fd`);
      } else {
        const previous: LinkTarget = i > 0 ? { kind: 'chunk', offset: list.chunks[i - 1] } : { kind: 'bin', bin: list.index };
        assert.is(targetText(link('fd')), targetText(next), `${where}: bin ${list.index} fd`);
        assert.is(targetText(link('bk')), targetText(previous), `${where}: bin ${list.index} bk`);
        if (list.index >= 2 && list.index < 64) assert.is(chunk.size, 16 * list.index, `${where}: small bin size`);
      }
    });
    if (list.kind === 'tcache' && !threaded) assert.is(list.chunks.length, list.count, `${where}: tcache bin ${list.index} count`);
  }
  const text = readFileSync(sidecarPath(path), 'utf8');
  assert.is(formatSidecar(parseSidecar(text, path)), text, `${where}: the sidecar's text round trip`);
}

/** Walks every image of a run and checks it; the in-use chunks against glibc's live blocks (one thread). */
function checkRun(run: ReturnType<typeof images>, calls: GeneratedCall[], threaded: boolean, seen?: Set<ChunkState>): number {
  const live = threaded ? null : liveBlocks(calls, run.events, new Set(run.bySeq.keys()));
  for (const [seq, path] of run.bySeq) {
    const { bytes, sidecar } = readImage(path);
    const walk = walkImage(bytes, sidecar, path);
    assert.is(walk.sidecar.seq, seq);
    checkWalk(walk, path, threaded);
    for (const chunk of walk.chunks) seen?.add(chunk.state);
    if (live) {
      const inUse = walk.chunks.filter((c) => c.state === 'in-use' && !c.tcacheStruct).map((c) => `${c.offset}:${c.size}`);
      const expected = [...(live.get(seq) as Map<number, number>)].map(([chunk, size]) => `${chunk}:${size}`);
      assert.equal(inUse.sort(), expected.sort(), `${path}: the in-use chunks are glibc's live heap blocks`);
    }
  }
  return run.bySeq.size;
}

let walked = 0;

test("this machine's glibc: images of traces with every state walk cleanly, their in-use chunks glibc's live blocks", () => {
  const seen = new Set<ChunkState>();
  for (const [shape, seed] of [
    ['size-classes', 1],
    ['fastbin-fifo', 2],
    ['small-and-large', 3],
    ['memalign-mix', 4],
    ['realloc-mixed', 5],
  ] as const) {
    const { path, calls } = shapeTrace(shape, seed, 300);
    const run = images(machine, path, 'every:25,end');
    assert.ok(run.bySeq.has(299) && run.bySeq.has(0), `${shape}: the first and the end image`);
    walked += checkRun(run, calls, false, seen);
  }
  assert.equal([...seen].sort(), ['fastbin', 'in-use', 'large', 'small', 'tcache', 'top', 'unsorted']);
});

test('the images are the same bytes in two runs (ASLR on): everything is rebased', () => {
  const { path } = shapeTrace('small-and-large', 3, 300);
  const first = images(machine, path, '40,120,299');
  const second = images(machine, path, '40,120,299');
  assert.equal(
    [...first.bySeq.keys()].sort((x, y) => x - y),
    [40, 120, 299],
  );
  for (const [seq, file] of first.bySeq) {
    const again = second.bySeq.get(seq) as string;
    assert.ok(readFileSync(file).equals(readFileSync(again)), `image after event ${seq}`);
    assert.is(readFileSync(sidecarPath(file), 'utf8'), readFileSync(sidecarPath(again), 'utf8'));
  }
});

test('pointers follow --image-base: the same chunks and lists, every heap pointer moved by the same amount', () => {
  const { path } = shapeTrace('small-and-large', 3, 300);
  const base = 0x10000000n;
  const a = walkImageFile(images(machine, path, '120').bySeq.get(120) as string);
  const b = walkImageFile(images(machine, path, '120', base).bySeq.get(120) as string);
  assert.is(a.sidecar.base, DEFAULT_BASE);
  assert.is(b.sidecar.base, base);
  assert.equal(b.problems, []);
  assert.equal(
    b.chunks.map((c) => `${c.offset} ${c.size} ${c.state}`),
    a.chunks.map((c) => `${c.offset} ${c.size} ${c.state}`),
  );
  let moved = 0;
  a.chunks.forEach((chunk, k) => {
    chunk.links.forEach((link, i) => {
      const other = b.chunks[k].links[i];
      if (link.target.kind === 'chunk') {
        assert.is(link.pointer - DEFAULT_BASE, other.pointer - base);
        moved++;
      }
      if (link.target.kind === 'bin') assert.is(other.pointer, link.pointer);
    });
  });
  assert.ok(moved > 0, `${moved} heap pointers`);
});

test("an image's raw words, worked out by hand: safe-linked next, tcache head and count, bin links, at two bases and arenas", () => {
  // docs/image.md's example: the tcache 0x290 at 0; a and b (100 bytes) 0x70 each at 0x290 and 0x300; c
  // (1200) 0x4c0 at 0x370; the guard 0x20 at 0x830. a then b go to tcache bin 5 (b the head), c to the
  // unsorted bin.
  const trace = join(dir, 'example.trace');
  writeFileSync(trace, 'malloc a 100\nmalloc b 100\nmalloc c 1200\nmalloc guard 16\nfree a\nfree b\nfree c\n');
  const raw = (base?: bigint, arena?: bigint) => {
    const out = join(dir, `run-${runs++}`);
    oracleImages(trace, { at: 'end', dir: out, libc: machine.libc, base, arena });
    const bytes = readFileSync(join(out, 'heap-6.img'));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return { word: (at: number) => view.getBigUint64(at, true), half: (at: number) => view.getUint16(at, true) };
  };
  const usual = raw();
  // b's next, at 0x555555559310: (0x555555559310 >> 12) ^ a's user bytes = 0x555555559 ^ 0x5555555592a0.
  assert.is(usual.word(0x310), 0x55500000c7f9n);
  // a's next is NULL, mangled with its own address: 0x5555555592a0 >> 12.
  assert.is(usual.word(0x2a0), 0x555555559n);
  assert.is(usual.word(0x318), 0x59454b4843414354n, 'the key marker');
  // counts[5] at 0x10 + 2 * 5, entries[5] at 0x10 + 0x80 + 8 * 5: b's user bytes, 0x555555559000 + 0x310.
  assert.is(usual.half(0x1a), 2);
  assert.is(usual.word(0xb8), 0x555555559310n);
  // c alone in the unsorted bin: fd and bk are its header, 0x7ffff7fa7c60 + 0x60.
  assert.is(usual.word(0x380), 0x7ffff7fa7cc0n);
  assert.is(usual.word(0x388), 0x7ffff7fa7cc0n);
  assert.is(usual.word(0x830), 0x4c0n, "the guard's prev_size");

  const moved = raw(0x10000000n, 0x7f0000001000n);
  // (0x10000310 >> 12) ^ 0x100002a0 = 0x10000 ^ 0x100002a0; a's NULL: 0x100002a0 >> 12.
  assert.is(moved.word(0x310), 0x100102a0n);
  assert.is(moved.word(0x2a0), 0x10000n);
  assert.is(moved.word(0xb8), 0x10000310n);
  // 0x7f0000001000 + 0x60.
  assert.is(moved.word(0x380), 0x7f0000001060n);
  assert.is(moved.word(0x388), 0x7f0000001060n);
});

test('a trace with threads: the main arena is imaged, its walk sound, other arenas left out', () => {
  const { path, calls } = shapeTrace('threads-cross', 6, 300);
  const run = images(machine, path, 'every:30,end');
  assert.ok(run.bySeq.size >= 10);
  walked += checkRun(run, calls, true);
});

test('the walker refuses an image that does not match its sidecar, and names what is broken', () => {
  const { path } = shapeTrace('small-and-large', 3, 300);
  const file = images(machine, path, '120').bySeq.get(120) as string;
  const { bytes, sidecar } = readImage(file);
  assert.throws(
    () => walkImage(bytes.subarray(8), sidecar, file),
    (e: unknown) => e instanceof MallocscopeError && e.code === 'IMAGE_SIZE',
  );
  const walk = walkImage(bytes, sidecar);
  const binned = walk.chunks.find((c) => c.state === 'small' || c.state === 'large' || c.state === 'unsorted');
  assert.ok(binned, 'a chunk in a bin');
  if (!binned) return;
  // Its size word made 0: the chunks no longer tile the heap.
  const zeroed = bytes.slice();
  zeroed.fill(0, binned.offset + 8, binned.offset + 16);
  assert.throws(
    () => walkImage(zeroed, sidecar, file),
    (e: unknown) => e instanceof MallocscopeError && e.code === 'IMAGE_CHUNKS' && e.message.includes(`offset ${binned.offset} `),
  );
  // Its bk pointed elsewhere: the list is reported broken.
  const bent = bytes.slice();
  new DataView(bent.buffer).setBigUint64(binned.offset + 24, DEFAULT_BASE, true);
  assert.ok(walkImage(bent, sidecar).problems.some((p) => p.includes('does not point back')));
  const text = readFileSync(sidecarPath(file), 'utf8');
  assert.throws(
    () => parseSidecar(text.replace('"version":1', '"version":2'), 'x.json'),
    (e: unknown) => e instanceof MallocscopeError && e.code === 'IMAGE_SIDECAR' && e.message.startsWith('x.json: "version" 2'),
  );
  assert.throws(() => parseSidecar(text.replace('"base":"0x', '"base":"'), 'x.json'), /"base" must be a 0x-hexadecimal address/);
});

test('a sidecar whose list heads do not match the bytes is reported, not taken for in-use chunks', () => {
  // By hand (glibc 2.36, 2.41): the tcache 0x290; a to j, 24 bytes, 0x20 each from 0x290; k and l, 2000
  // bytes, 0x7e0 each at 0x3d0 and 0xbb0; m 0x20 at 0x1390; the top at 0x13b0. a to g fill tcache bin 0,
  // h and i go to fastbin 0 (i, at 0x390, its head), k to the unsorted bin (l keeps it off the top).
  const ids = 'abcdefghij'.split('');
  const trace = join(dir, 'fastbin-heads.trace');
  const lines = [
    ...ids.map((id) => `malloc ${id} 24`),
    'malloc k 2000',
    'malloc l 2000',
    'malloc m 24',
    ...ids.slice(0, 9).map((id) => `free ${id}`),
    'free k',
  ];
  writeFileSync(trace, `${lines.join('\n')}\n`);
  const file = images(machine, trace, 'end').bySeq.get(lines.length - 1) as string;
  const { bytes, sidecar } = readImage(file);
  assert.equal(walkImage(bytes, sidecar).problems, []);
  assert.is(sidecar.top, 0x13b0);
  assert.equal(sidecar.fastbins[0], 0x390);
  assert.equal(walkImage(bytes, sidecar).chunks.find((c) => c.offset === 0xbb0)?.state, 'in-use');
  const tcache = sidecar.tcache as NonNullable<typeof sidecar.tcache>;
  const variants: [string, typeof sidecar][] = [
    ['no tcache', { ...sidecar, tcache: null }],
    ['the tcache at the top', { ...sidecar, tcache: { ...tcache, chunk: 0x13b0 } }],
    ['the tcache at l, in use, 0x7e0 bytes', { ...sidecar, tcache: { ...tcache, chunk: 0xbb0 } }],
    ['no fastbins', { ...sidecar, fastbins: sidecar.fastbins.map(() => null) }],
  ];
  for (const [what, wrong] of variants) assert.ok(walkImage(bytes, wrong).problems.length > 0, what);
  // A word in an in-use chunk at 16 or 24 (an image has none there: not the program's bytes, not another
  // thread's tcache) is a free list nobody names.
  const written = bytes.slice();
  new DataView(written.buffer).setBigUint64(0xbb0 + 16, 1n, true);
  assert.ok(walkImage(written, sidecar).problems.some((p) => p.includes('offset 2992 (0xbb0)')));
});

test("the oracle's image options: a small RLIMIT_DATA, an arena or base past 2^64, a SEQ past the trace's end", () => {
  const trace = join(dir, 'two.trace');
  writeFileSync(trace, 'malloc a 24\nfree a\n');
  const command = oracleCommand(trace, { libc: machine.libc });
  const run = (imageArgs: string[], prefix: string[] = []) => {
    const args = [...command.args];
    args.splice(args.lastIndexOf('--'), 0, ...imageArgs);
    const [file, ...rest] = [...prefix, command.file, ...args];
    return spawnSync(file, rest, { env: command.env, encoding: 'utf8' });
  };
  // 8 MB of data segment is plenty for a trace of one small block: the probe must fit in it too.
  const small = join(dir, 'small-data');
  const limited = run(['--image-at', 'end', '--image-dir', small], ['prlimit', '--data=8000000', '--']);
  assert.is(limited.stderr, '');
  assert.is(limited.status, 0);
  assert.ok(readdirSync(small).includes('heap-1.img'));
  // 0xfffffffffffffff0 + 2200 (main_arena's size) passes 2^64; a heap of 0x21000 bytes at 2^64 - 4096 does too.
  const arena = run(['--image-at', 'end', '--image-dir', join(dir, 'wrap'), '--image-arena', '0xfffffffffffffff0']);
  assert.is(arena.status, 2);
  assert.match(arena.stderr, /--image-arena .*'0xfffffffffffffff0'.*\[USAGE\]\n$/);
  const base = run(['--image-at', 'end', '--image-dir', join(dir, 'wrap'), '--image-base', '0xfffffffffffff000']);
  assert.is(base.status, 2);
  assert.match(base.stderr, /--image-base .*'0xfffffffffffff000'.*\[USAGE\]\n$/);
  // The image after event 1 is written; 99 and 150 are past the end of a trace of 2 events.
  const past = join(dir, 'past');
  const late = run(['--image-at', '1,99,150', '--image-dir', past]);
  assert.is(late.status, 1);
  assert.is(late.stderr, "mallocscope: oracle: heap image: --image-at 99 is past the trace's end: it has 2 events (seq 0 to 1) [IMAGE_PAST_END]\n");
  assert.is(late.stdout.split('\n').length, 3, 'the JSON Lines, in full');
  assert.equal(readdirSync(past).sort(), ['heap-1.img', 'heap-1.img.json']);
});

for (const version of knownVersions) {
  const build = builds.get(version);
  if (build === machine) continue;
  const run = unless(test, missingBuild(version, builds));
  run(`glibc ${version}: images walk cleanly, their in-use chunks glibc's live blocks`, () => {
    if (!build) return;
    const { path, calls } = shapeTrace('everything', 7, 300);
    const result = images(build, path, 'every:30,end');
    assert.is(walkImageFile(result.bySeq.get(299) as string).sidecar.glibc, version);
    walked += checkRun(result, calls, false);
  });
}

test('the images walked', () => {
  assert.ok(walked > 30, `${walked} images`);
});

test.run();
