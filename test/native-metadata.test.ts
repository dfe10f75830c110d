// The native backend's metadata mode (Allocator option `metadata`): the real heap holds glibc's live metadata
// words at their real addresses after every call, the program's bytes untouched, and another process walks it.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { heapImage, heapImageWords } from '../dist/allocator/image.js';
import { readImage, sidecarPath, walkImageFile } from '../dist/image/files.js';
import { formatSidecar } from '../dist/image/format.js';
import { walkImage } from '../dist/image/walk.js';
import { oracleImages } from '../dist/oracle/images.js';
import { Allocator } from '../dist/replay/allocator.js';
import { NativeSystem } from '../dist/system/native.js';
import type { TraceCall } from '../dist/trace/api.js';
import { SHAPES, generateTrace } from '../dist/trace/generate.js';
import { parseTrace } from '../dist/trace/reader.js';
import { formatCall } from '../dist/trace/writer.js';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-native-metadata-'));
/** One glibc for the model and the oracle: this machine's. */
const FILL = 0xa5;
/** As many FILL bytes as the largest block of these traces (a shorter one would fail the comparison). */
const FILLED = Buffer.alloc(1 << 20, FILL);

/** Replays trace calls through an allocator, filling every live block with FILL; `after` runs after each. */
function drive(allocator: Allocator, calls: Iterable<TraceCall>, after: (seq: number, live: Map<string, number>) => void): void {
  const live = new Map<string, number>();
  const fill = (id: string, p: number) => {
    if (p === 0) return;
    live.set(id, p);
    allocator.bytes(p).fill(FILL);
  };
  let seq = 0;
  for (const call of calls) {
    if (call.op === 'malloc') fill(call.id, allocator.malloc(call.size));
    else if (call.op === 'calloc') fill(call.id, allocator.calloc(call.nmemb, call.size));
    else if (call.op === 'memalign') fill(call.id, allocator.memalign(call.alignment, call.size));
    else if (call.op === 'realloc') {
      const p = allocator.realloc(live.get(call.id) ?? 0, call.size);
      if (p !== 0 || call.size === 0) live.delete(call.id);
      fill(call.id, p);
    } else if (call.op === 'free') {
      allocator.free(live.get(call.id) ?? 0);
      live.delete(call.id);
    } else if (call.op === 'mallopt') allocator.mallopt(call.param, call.value);
    else if (call.op === 'trim') allocator.trim(call.pad);
    else throw new Error(`no threads here: ${call.op}`);
    after(++seq, live);
  }
}

/** The offsets and widths of the live words after the allocator's last call (the core's list of them). */
function liveWords(allocator: Allocator, base: bigint): [number, number][] {
  const words: [number, number][] = [];
  heapImageWords(
    allocator.model,
    0,
    { base },
    {
      begin() {},
      word: (at) => words.push([at, 8]),
      number: (at) => words.push([at, 8]),
      half: (at) => words.push([at, 2]),
    },
  );
  return words;
}

function shapeCalls(name: string, seed: number, events: number): TraceCall[] {
  const shape = SHAPES.find((s) => s.name === name);
  if (!shape) throw new Error(`no shape ${name}`);
  return [...generateTrace(shape, seed, events)];
}

test("after every call the real heap holds the model image's live words at the real addresses, the blocks keep their bytes, and a walk of the real bytes is the model's", () => {
  const traces: [string, TraceCall[]][] = [
    ['examples/heap-bytes.trace', parseTrace(readFileSync('examples/heap-bytes.trace', 'utf8'))],
    ['small-and-large 3', shapeCalls('small-and-large', 3, 200)],
    ['memalign-mix 4', shapeCalls('memalign-mix', 4, 120)],
    ['realloc-grow 2', shapeCalls('realloc-grow', 2, 100)],
    ['calloc-mix 9', shapeCalls('calloc-mix', 9, 100)],
  ];
  let checked = 0;
  for (const [name, calls] of traces) {
    const system = new NativeSystem();
    const allocator = new Allocator({ system, metadata: true });
    const base = BigInt(system.heapStart);
    try {
      drive(allocator, calls, (seq, live) => {
        const sidecar = allocator.imageSidecar();
        assert.is(sidecar.base, base);
        assert.is(sidecar.seq, seq);
        const model = heapImage(allocator.model, seq, { base, arena: sidecar.arena });
        assert.is(formatSidecar(sidecar), formatSidecar(model.sidecar), `${name} after call ${seq}: the sidecar`);
        if (sidecar.size === 0) return;
        const real = system.bytes(system.heapStart, sidecar.size);
        const got = new DataView(real.buffer, real.byteOffset, real.length);
        const want = new DataView(model.bytes.buffer, model.bytes.byteOffset, model.bytes.length);
        for (const [at, width] of liveWords(allocator, base)) {
          const [a, b] = width === 8 ? [got.getBigUint64(at, true), want.getBigUint64(at, true)] : [got.getUint16(at, true), want.getUint16(at, true)];
          if (a !== b)
            assert.unreachable(`${name} after call ${seq}: the word at offset ${at} is 0x${a.toString(16)}, the model's image has 0x${b.toString(16)}`);
          checked++;
        }
        for (const [id, p] of live) {
          const block = allocator.bytes(p);
          if (!Buffer.from(block.buffer, block.byteOffset, block.length).equals(FILLED.subarray(0, block.length)))
            assert.unreachable(`${name} after call ${seq}: block ${id}'s bytes were overwritten`);
        }
        const walked = walkImage(real, sidecar, name, { programBytes: true });
        const expected = walkImage(model.bytes, model.sidecar);
        assert.equal(walked.problems, [], `${name} after call ${seq}: the walk's problems`);
        assert.equal(
          walked.chunks.map((c) => [c.offset, c.size, c.state, c.bin]),
          expected.chunks.map((c) => [c.offset, c.size, c.state, c.bin]),
        );
        system.detach(real);
      });
    } finally {
      system.release();
    }
  }
  assert.ok(checked > 10000, `live words checked: ${checked}`);
});

test('a block malloc takes back from the tcache reads, before the program writes it, what glibc leaves: the stale next, the key zeroed', () => {
  // glibc's rule (malloc.c, tcache_put and tcache_get; the oracle cannot show a block's user bytes): tcache_put
  // stores at the block's bytes 0-7 its next, safe-linked: (the word's address >> 12) ^ next, and at 8-15 the
  // key; tcache_get sets the key to 0 and leaves next as it was. Here a is alone in its bin, so next is NULL
  // and its stored word is a >> 12; after malloc takes a back, bytes 0-7 still hold a >> 12, bytes 8-15 read 0,
  // and bytes 16-23 keep the program's 0x11.
  const system = new NativeSystem();
  try {
    const allocator = new Allocator({ system, metadata: true });
    const a = allocator.malloc(24);
    allocator.malloc(24);
    allocator.bytes(a).fill(0x11);
    allocator.free(a);
    const b = allocator.malloc(24);
    assert.is(b, a);
    const view = new DataView(allocator.bytes(b).buffer, allocator.bytes(b).byteOffset, 24);
    assert.is(view.getBigUint64(0, true), BigInt(a) >> 12n, 'the stale next');
    assert.is(view.getBigUint64(8, true), 0n, 'the key, zeroed');
    assert.is(view.getBigUint64(16, true), 0x1111111111111111n, "the program's bytes");
    // Freed again, the key is back (a walk of the real bytes finds it in the tcache, its key the marker).
    allocator.free(b);
    const sidecar = allocator.imageSidecar();
    const walked = walkImage(system.bytes(system.heapStart, sidecar.size), sidecar, 'reused', { programBytes: true });
    assert.equal(walked.problems, []);
    assert.is(walked.chunks.find((c) => c.offset === a - 16 - system.heapStart)?.state, 'tcache');
  } finally {
    system.release();
  }
});

test('without the option nothing is written; a heap no longer in one piece has no sidecar; metadata on a simulated heap is refused', () => {
  const system = new NativeSystem();
  try {
    const allocator = new Allocator({ system });
    const p = allocator.malloc(24);
    allocator.malloc(24);
    allocator.free(p);
    // The chunk's size word and the tcache next of the freed block stay zero: only the program writes here.
    assert.ok(system.bytes(p - 16, 32).every((b) => b === 0));
    assert.throws(
      () => allocator.imageSidecar(),
      (e: unknown) => (e as { code?: string }).code === 'NO_METADATA',
    );
  } finally {
    system.release();
  }
  // A break that cannot grow: glibc goes on in mmapped memory, the heap is no longer one piece, and no image
  // describes it; the allocator goes on, and the sidecar says why there is none.
  const small = new NativeSystem({ reserve: 64 * 4096 });
  try {
    const allocator = new Allocator({ system: small, metadata: true });
    for (let i = 0; i < 100; i++) assert.ok(allocator.malloc(4000) !== 0);
    assert.throws(
      () => allocator.imageSidecar(),
      (e: unknown) => (e as { code?: string }).code === 'IMAGE_NOT_CONTIGUOUS',
    );
    allocator.check();
  } finally {
    small.release();
  }
  assert.throws(
    () => new Allocator({ metadata: true }),
    (e: unknown) => (e as { code?: string }).code === 'NO_BYTES',
  );
});

/** The chunks a walk sees, as the child reports them. */
type Seen = [number, number, string][];

const CHILD = `
const { openHeapImage } = require(${JSON.stringify(resolve('dist/system/heap-image.js'))});
const { walkImage } = require(${JSON.stringify(resolve('dist/image/walk.js'))});
const { parseSidecar } = require(${JSON.stringify(resolve('dist/image/format.js'))});
let image = null;
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const { path, length, sidecar } = JSON.parse(line);
  if (image === null) image = openHeapImage(path, { length });
  const walk = walkImage(image.refresh(length), parseSidecar(sidecar, 'parent'), 'the shared heap', { programBytes: true });
  process.stdout.write(JSON.stringify({ problems: walk.problems.length, chunks: walk.chunks.map((c) => [c.offset, c.size, c.state]) }) + '\\n');
});
`;

test("a child process walks the shared heap from its bytes and the published sidecar while the parent allocates and frees; one round is the real glibc's", async () => {
  const calls = shapeCalls('small-and-large', 7, 240);
  const trace = join(dir, 'rounds.trace');
  writeFileSync(trace, `${calls.map((c) => formatCall(c)).join('\n')}\n`);
  // Events are counted from 0 in the oracle's images: event 119 is after the 120th call, a round.
  const ORACLE_ROUND = 119;
  let againstOracle = 0;
  const out = join(dir, 'oracle');
  oracleImages(trace, { at: String(ORACLE_ROUND), dir: out });
  assert.equal(readdirSync(out).sort(), [`heap-${ORACLE_ROUND}.img`, `heap-${ORACLE_ROUND}.img.json`]);
  const oracle = readImage(join(out, `heap-${ORACLE_ROUND}.img`));
  const oracleSeen: Seen = walkImage(oracle.bytes, oracle.sidecar).chunks.map((c) => [c.offset, c.size, c.state]);

  const live = new NativeSystem({ backing: 'shared' });
  const second = new Allocator({ system: live, metadata: true });
  // The child's module paths are the worktree's dist/: resolved from the test's working directory, the root.
  const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
  const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const rounds: number[] = [];
  try {
    const blocks = new Map<string, number>();
    let seq = 0;
    for (const call of calls) {
      if (call.op === 'malloc') blocks.set(call.id, second.malloc(call.size));
      else if (call.op === 'free') {
        second.free(blocks.get(call.id) ?? 0);
        blocks.delete(call.id);
      } else throw new Error(`small-and-large has only malloc and free, not ${call.op}`);
      seq++;
      if (seq % 40 !== 0) continue;
      const heap = live.sharedHeap();
      child.stdin.write(`${JSON.stringify({ path: heap.path, length: heap.length, sidecar: formatSidecar(second.imageSidecar()) })}\n`);
      const reply = await replies.next();
      if (reply.done) throw new Error('the child ended');
      const seen = JSON.parse(reply.value) as { problems: number; chunks: Seen };
      const model = heapImage(second.model, seq, { base: BigInt(heap.base), arena: second.imageSidecar().arena });
      const expected: Seen = walkImage(model.bytes, model.sidecar).chunks.map((c) => [c.offset, c.size, c.state]);
      assert.is(seen.problems, 0, `round ${seq}: the child's walk found problems`);
      assert.equal(seen.chunks, expected, `round ${seq}: the child's walk`);
      if (seq - 1 === ORACLE_ROUND) {
        assert.equal(seen.chunks, oracleSeen, `round ${seq}: the child's walk against the real glibc's image`);
        againstOracle++;
      }
      rounds.push(seq);
    }
  } finally {
    child.stdin.end();
    live.release();
  }
  assert.equal(rounds, [40, 80, 120, 160, 200, 240]);
  assert.is(againstOracle, 1);
});

test('a file-backed heap with metadata writes its image sidecar at release: the file is walked later with walkImageFile, no model', () => {
  const file = join(dir, 'heap.img');
  const system = new NativeSystem({ backing: { file } });
  const allocator = new Allocator({ system, metadata: true });
  const calls = shapeCalls('small-and-large', 5, 150);
  let sidecar = '';
  let expected: [number, number, string][] = [];
  try {
    drive(allocator, calls, () => {});
    const base = BigInt(system.heapStart);
    const model = heapImage(allocator.model, calls.length, { base, arena: allocator.imageSidecar().arena });
    expected = walkImage(model.bytes, model.sidecar).chunks.map((c) => [c.offset, c.size, c.state]);
    sidecar = formatSidecar(allocator.imageSidecar());
  } finally {
    system.release();
  }
  // The backing's own sidecar is FILE.backing.json; FILE.json is the image's, written by release().
  assert.is(readFileSync(sidecarPath(file), 'utf8'), sidecar);
  const walk = walkImageFile(file, { programBytes: true });
  assert.equal(walk.problems, []);
  assert.equal(
    walk.chunks.map((c) => [c.offset, c.size, c.state]),
    expected,
  );
});

test.run();
