// The model's heap images against the real glibc's (docs/image.md): the same trace replayed by the model and
// by the oracle, images taken after the same events, compared byte for byte with their sidecars, on random
// shapes, a threaded trace and the real-program fixtures, under every glibc build this machine has.
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MallocscopeError } from '../dist/errors.js';
import { imageDifference } from '../dist/image/compare.js';
import { readImage, sidecarPath } from '../dist/image/files.js';
import { type ImageBytes, formatSidecar, parseSidecar } from '../dist/image/format.js';
import { type ChunkState, walkImage } from '../dist/image/walk.js';
import { oracleImages } from '../dist/oracle/images.js';
import { modelImages, parseImageAt } from '../dist/replay/images.js';
import { SHAPES, THREAD_SHAPES, generateTrace } from '../dist/trace/generate.js';
import { formatCall } from '../dist/trace/writer.js';
import { type GlibcBuild, glibcBuilds, knownVersions, missingBuild } from './support/glibc-builds.ts';
import { mallocscope } from './support/cli.ts';
import { unless } from './support/skip.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-model-images-'));
const builds = glibcBuilds();
const machine = [...builds.values()].find((b) => b.libc === '') as GlibcBuild;
const fixtures = 'test/fixtures/real';

function shapeTrace(name: string, seed: number, events: number): string {
  const shape = [...SHAPES, ...THREAD_SHAPES].find((s) => s.name === name);
  if (!shape) throw new Error(`no shape ${name}`);
  const path = join(dir, `${name}-${seed}.trace`);
  writeFileSync(path, `${[...generateTrace(shape, seed, events)].map((call) => formatCall(call)).join('\n')}\n`);
  return path;
}

/** One scratch buffer for sameAsFile's reads (an image file is read through it a piece at a time). */
const scratch = Buffer.alloc(1 << 20);

/**
 * Whether the image file at `path` (bytes and sidecar) is `image`: its bytes compared a piece at a time as they
 * are read, not read whole into a buffer of their own first (the real programs' images are tens of MiB).
 */
function sameAsFile(image: ImageBytes, path: string): boolean {
  const side = sidecarPath(path);
  if (formatSidecar(parseSidecar(readFileSync(side, 'utf8'), side)) !== formatSidecar(image.sidecar)) return false;
  const model = Buffer.from(image.bytes.buffer, image.bytes.byteOffset, image.bytes.length);
  const fd = openSync(path, 'r');
  try {
    if (fstatSync(fd).size !== model.length) return false;
    for (let at = 0; at < model.length; ) {
      const n = readSync(fd, scratch, 0, Math.min(scratch.length, model.length - at), at);
      if (n === 0 || !scratch.subarray(0, n).equals(model.subarray(at, at + n))) return false;
      at += n;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

let runs = 0;
let compared = 0;
const seen = new Set<ChunkState>();
let foreignHeads = 0;
let foreignNexts = 0;

/**
 * The oracle's images of `trace` under `build` after the events `at` names, and the model's after the same
 * events: the same set of events, and each pair the same bytes and sidecar. Returns the images compared.
 */
function compare(build: GlibcBuild, trace: string, at: string, walk = false): number {
  const out = join(dir, `run-${runs++}`);
  oracleImages(trace, { at, dir: out, libc: build.libc });
  const written = readdirSync(out)
    .filter((f) => f.endsWith('.img'))
    .map((f) => Number(/\d+/.exec(f)?.[0]))
    .sort((a, b) => a - b);
  const taken: number[] = [];
  modelImages(trace, parseImageAt(at), { glibc: build.version }, (seq, image) => {
    taken.push(seq);
    const file = join(out, `heap-${seq}.img`);
    // memcmp first (most of an image is zeros); the difference named only when there is one.
    if (!sameAsFile(image, file)) assert.unreachable(`${trace} (glibc ${build.version}), after event ${seq}: ${imageDifference(image, readImage(file))}`);
    if (!walk) return;
    for (const chunk of walkImage(image.bytes, image.sidecar).chunks) {
      seen.add(chunk.state);
      for (const link of chunk.links) {
        if (link.target.kind === 'foreign' && link.field === 'entries') foreignHeads++;
        if (link.target.kind === 'foreign' && link.field === 'next') foreignNexts++;
      }
    }
  });
  assert.equal(taken, written, `${trace} (glibc ${build.version}): the events imaged`);
  compared += taken.length;
  return taken.length;
}

test("this machine's glibc: the model's images of random shapes are glibc's, byte for byte, with every chunk state", () => {
  for (const [shape, seed] of [
    ['fastbin-fifo', 2],
    ['small-and-large', 3],
    ['memalign-mix', 4],
    ['trim-mix', 6],
    ['mxfast', 7],
    ['everything', 8],
  ] as const) {
    compare(machine, shapeTrace(shape, seed, 300), 'every:25,end', true);
  }
  assert.equal([...seen].sort(), ['fastbin', 'in-use', 'large', 'small', 'tcache', 'top', 'unsorted']);
});

test("threads: the main arena's image, other threads' tcache chunks in use, the main tcache's foreign entries marked", () => {
  for (const [shape, seed] of [
    ['threads-cross', 6],
    ['threads-workers', 1],
  ] as const) {
    compare(machine, shapeTrace(shape, seed, 300), 'every:50,end', true);
  }
  // A main-thread tcache list that starts, or goes on, in another arena's chunk: the marker at its head, or in
  // a heap chunk's next (mangled), and the list stops there.
  assert.ok(foreignHeads > 0 && foreignNexts > 0, `${foreignHeads} foreign heads, ${foreignNexts} foreign nexts`);
});

test('the real programs at every 1000th event and the end', () => {
  for (const file of readdirSync(fixtures).filter((f) => f.endsWith('.trace'))) assert.ok(compare(machine, join(fixtures, file), 'every:1000,end') >= 12);
});

test('a heap that is no longer one piece (the break could not grow): both refuse with IMAGE_NOT_CONTIGUOUS', () => {
  const trace = join(dir, 'past-the-limit.trace');
  writeFileSync(trace, `${Array.from({ length: 80 }, (_, i) => `malloc b${i} 3000`).join('\n')}\n`);
  const refused = (e: unknown) => e instanceof MallocscopeError && e.code === 'IMAGE_NOT_CONTIGUOUS';
  assert.is(compare(machine, trace, '5'), 1);
  assert.throws(() => oracleImages(trace, { at: 'end', dir: join(dir, 'refused'), brkLimit: 200000 }), refused);
  assert.throws(() => modelImages(trace, parseImageAt('end'), { system: { brkLimit: 200000 } }, () => {}), refused);
});

test('a difference names the event, the offset, the chunk and the field', () => {
  const trace = shapeTrace('small-and-large', 3, 300);
  const out = join(dir, 'bent');
  oracleImages(trace, { at: '120', dir: out });
  const oracle = readImage(join(out, 'heap-120.img'));
  modelImages(trace, parseImageAt('120'), {}, (_seq, image) => {
    const binned = walkImage(image.bytes, image.sidecar).chunks.find((c) => c.state === 'small' || c.state === 'large' || c.state === 'unsorted');
    assert.ok(binned);
    if (!binned) return;
    image.bytes[binned.offset + 24] ^= 0x10;
    const difference = imageDifference(image, oracle) ?? '';
    assert.ok(
      difference.startsWith(`offset 0x${(binned.offset + 24).toString(16)}, in the ${binned.state} chunk at 0x${binned.offset.toString(16)}`),
      difference,
    );
    assert.ok(difference.includes(': bk: model 0x'), difference);
    image.sidecar.top = (image.sidecar.top as number) + 16;
    assert.match(imageDifference(image, oracle) ?? '', /^sidecar "top": model \d+, glibc \d+$/);
  });
});

test("mallocscope image: -o writes the oracle's bytes and sidecar; --json is the walk of those bytes; errors coded", async () => {
  const trace = join(dir, 'teaching.trace');
  writeFileSync(trace, 'malloc a 100\nmalloc b 100\nmalloc c 1200\nmalloc guard 16\nfree a\nfree b\nfree c\n');
  const out = join(dir, 'cli');
  oracleImages(trace, { at: '3,end', dir: out });
  const file = join(dir, 'cli.img');
  for (const [at, seq] of [
    ['end', 6],
    ['3', 3],
  ] as const) {
    const run = await mallocscope(['image', trace, '--at', at, '-o', file]);
    assert.is(run.status, 0, run.stderr);
    assert.ok(readFileSync(file).equals(readFileSync(join(out, `heap-${seq}.img`))), `image after ${seq}`);
    assert.is(readFileSync(`${file}.json`, 'utf8'), readFileSync(join(out, `heap-${seq}.img.json`), 'utf8'));
  }
  const json = await mallocscope(['image', trace, '--json']);
  const walked = JSON.parse(json.stdout);
  assert.is(walked.base, '0x555555559000');
  assert.equal(
    walked.chunks.map((c: { offset: number; state: string }) => `${c.offset} ${c.state}`),
    ['0 in-use', '656 tcache', '768 tcache', '880 unsorted', '2096 in-use', '2128 top'],
  );
  // b's next, at 0x310, holds a's user bytes 0x5555555592a0 mangled with (0x555555559310 >> 12) = 0x555555559:
  // 0x5555555592a0 ^ 0x555555559 = 0x55500000c7f9, by hand.
  assert.equal(walked.chunks[2].links[0], {
    field: 'next',
    at: 0x310,
    stored: '0x55500000c7f9',
    mangled: true,
    pointer: '0x5555555592a0',
    target: { kind: 'chunk', offset: 656 },
  });
  assert.equal(walked.chunks[4].flags, { A: false, M: false, P: false });
  assert.is(walked.chunks[4].prevSize, 1216);
  const moved = JSON.parse((await mallocscope(['image', trace, '--json', '--base', '0x10000000'])).stdout);
  assert.is(moved.chunks[2].links[0].stored, `0x${(0x100002a0 ^ 0x10000).toString(16)}`);
  const bad = join(dir, 'bad.trace');
  writeFileSync(bad, 'malloc a 10\nfree b\n');
  const errors: [string[], RegExp, number][] = [
    [['image', bad, '--json'], /bad\.trace:2: .*\[TRACE_ID_NOT_LIVE\]$/, 1],
    [['image', trace, '--at', '7', '--json'], /--at 7: .* has 7 events \(seq 0 to 6\).*\[USAGE\]$/, 2],
    [['image', trace, '--base', '0x1001', '--json'], /--base takes a non-zero multiple of 4096.*\[USAGE\]$/, 2],
    [['image', trace], /image needs -o FILE/, 2],
    [
      ['image', join(dir, 'past-the-limit.trace'), '--brk-limit', '200000', '--json'],
      /heap image after event \d+: .*not one piece \[IMAGE_NOT_CONTIGUOUS\]$/,
      1,
    ],
  ];
  for (const [args, message, status] of errors) {
    const run = await mallocscope(args);
    assert.is(run.status, status, args.join(' '));
    assert.match(run.stderr.trim(), message);
  }
});

for (const version of knownVersions) {
  const build = builds.get(version);
  if (build === machine) continue;
  const run = unless(test, missingBuild(version, builds));
  run(`glibc ${version}: the model's images are glibc's on a random shape, a threaded one and a real program`, () => {
    if (!build) return;
    compare(build, shapeTrace('everything', 7, 300), 'every:30,end');
    compare(build, shapeTrace('threads-cross', 6, 200), 'every:50,end');
    compare(build, join(fixtures, 'perl-hash.trace'), 'every:1000,end');
  });
}

test('the images compared', () => {
  assert.ok(compared > 100, `${compared} images`);
});

test.run();
