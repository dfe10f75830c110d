// Shared and file-backed heaps: a child process and a worker thread map the heap read-only while this process
// allocates and writes known patterns into blocks, and read them back at the blocks' offsets from the heap
// start as the heap grows, trims and shrinks; a file-backed heap's file holds the heap's bytes, live and after
// release, and reopens anywhere; and every hostile use (bad paths, a read-only file, a full disk, a file
// truncated under its readers, calls after release or close) is a coded error, never a dead process.
import { fileURLToPath } from 'node:url';
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Allocator } from '../dist/replay/allocator.js';
import { NativeSystem } from '../dist/system/native.js';
import { openHeapImage } from '../dist/system/heap-image.js';
import { walkImageFile } from '../dist/image/files.js';
import { loadAddon } from '../dist/native.js';
import { startChild } from './support/child.js';
import { unless } from './support/skip.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-native-backing-'));

/** The byte a block filled with `seed` holds at index i: a pattern no other block or page repeats. */
function expected(seed: number, i: number): number {
  return (i * 31 + seed * 7) & 0xff;
}

function fill(view: Uint8Array, seed: number): void {
  for (let i = 0; i < view.length; i++) view[i] = expected(seed, i);
}

function coded(run: () => unknown, code: string, text?: RegExp): void {
  assert.throws(
    run,
    (error: Error & { code: string }) => error.name === 'MallocscopeError' && error.code === code && (!text || text.test(error.message)),
    code,
  );
}

/** Lines of /proc/self/maps that are read-only shared mappings of the shared heap's memfd (readers' views). */
function readerMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.includes('r--s') && line.includes('memfd:mallocscope-heap')).length;
}

// The reader, one script for both: a worker thread (parentPort) and a child process (IPC). Each message maps
// `length` bytes of `source` (opened once) and answers with the bytes of `ranges`; `close` closes the image and
// answers with its read-only mappings of the memfd before and after, read from its own /proc/self/maps.
const READER = join(dir, 'reader.mjs');
writeFileSync(
  READER,
  `import { parentPort } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { openHeapImage } from '${root}dist/system/heap-image.js';
const send = (message) => (parentPort ? parentPort.postMessage(message) : process.send(message));
const mapped = () => readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('r--s') && l.includes('memfd:mallocscope-heap')).length;
let image;
(parentPort ?? process).on('message', (message) => {
  try {
    if (message.close) {
      const before = mapped();
      const view = image.bytes;
      image.close();
      send({ before, after: mapped(), detached: view.byteLength === 0 });
      if (!parentPort) process.disconnect();
      else parentPort.close();
      return;
    }
    image ??= openHeapImage(message.source, { length: message.length });
    image.refresh(message.length);
    send({ length: image.length, sealed: image.sealed, slices: message.ranges.map(([at, n]) => Array.from(image.bytes.subarray(at, at + n))) });
  } catch (error) {
    send({ error: error.code + ': ' + error.message });
  }
});
`,
);

interface Answer {
  length: number;
  sealed: boolean;
  slices: number[][];
  error?: string;
  before?: number;
  after?: number;
  detached?: boolean;
}

/** One reader: what to send it as its source (a path or a descriptor) and how to ask it. */
interface Reader {
  source: string | number;
  ask(message: object): Promise<Answer>;
  /** Ends it, if a failed test left it running (the test file would otherwise never end). */
  stop(): void;
}

function onceMessage(target: Worker | ChildProcess): Promise<Answer> {
  return new Promise((resolve, reject) => {
    target.once('message', (message) => resolve(message as Answer));
    target.once('error', reject);
  });
}

function childReader(path: string): Reader {
  const child = fork(READER, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return {
    source: path,
    ask(message) {
      const answer = onceMessage(child);
      child.send(message);
      return answer;
    },
    stop: () => child.connected && child.kill(),
  };
}

function workerReader(fd: number): Reader {
  const worker = new Worker(READER);
  return {
    source: fd,
    ask(message) {
      const answer = onceMessage(worker);
      worker.postMessage(message);
      return answer;
    },
    stop: () => void worker.terminate(),
  };
}

test('a child process and a worker thread map the shared heap read-only and read what this process writes, as the heap grows, trims and shrinks', async () => {
  const system = new NativeSystem({ backing: 'shared' });
  const heap = new Allocator({ system });
  const shared = system.sharedHeap();
  assert.is(shared.kind, 'shared');
  assert.is(shared.path, `/proc/${process.pid}/fd/${shared.fd}`);
  assert.is(shared.base, system.heapStart);
  assert.is(shared.length, 0, 'no break moved yet');
  const readers = [childReader(shared.path), workerReader(shared.fd)];
  try {
    const base = system.heapStart;
    // Every block by its seed: [pointer, usable bytes].
    const blocks = new Map<number, [number, number]>();
    const allocate = (seed: number, size: number): number => {
      const p = heap.malloc(size);
      const view = heap.bytes(p);
      fill(view, seed);
      blocks.set(seed, [p, view.length]);
      return p;
    };
    // The first 20 and the last 16 bytes of each block (all blocks have 24 or more), at its offset from the heap start.
    const rangesOf = (seeds: number[]): [number, number][] =>
      seeds.flatMap((seed) => {
        const [p, usable] = blocks.get(seed) as [number, number];
        return [
          [p - base, 20],
          [p - base + usable - 16, 16],
        ];
      });
    const patterns = (seeds: number[]): number[][] =>
      seeds.flatMap((seed) => {
        const usable = (blocks.get(seed) as [number, number])[1];
        return [Array.from({ length: 20 }, (_, i) => expected(seed, i)), Array.from({ length: 16 }, (_, i) => expected(seed, usable - 16 + i))];
      });
    const ask = (length: number, ranges: [number, number][]) => Promise.all(readers.map((reader) => reader.ask({ source: reader.source, length, ranges })));

    // 1. Small blocks in the first heap pages.
    const small = [1, 2, 3, 4];
    for (const [i, size] of [24, 100, 1000, 5000].entries()) allocate(small[i], size);
    const first = system.sharedHeap().length;
    assert.is(first, 135168, "glibc's first brk: 132 KiB + the tcache and the first request, page-rounded");
    for (const answer of await ask(first, rangesOf(small))) {
      assert.is(answer.error, undefined);
      assert.is(answer.length, first);
      assert.ok(answer.sealed, 'the memfd is sealed against shrinking');
      assert.equal(answer.slices, patterns(small));
    }

    // 2. Forty 20000-byte blocks: the break grows while the readers hold their first mapping.
    const big = Array.from({ length: 40 }, (_, i) => 10 + i);
    for (const seed of big) allocate(seed, 20000);
    const grown = system.sharedHeap().length;
    assert.ok(grown > 40 * 20016, `the break grew past the forty chunks of 20016 bytes (${first} -> ${grown})`);
    for (const answer of await ask(grown, rangesOf([...small, ...big]))) {
      assert.is(answer.error, undefined);
      assert.is(answer.length, grown);
      assert.equal(answer.slices, patterns([...small, ...big]));
    }

    // 3. Every other big block freed in the middle (their interiors go back by malloc_trim's madvise), the
    // last ten freed (they merge into the top, and the break shrinks). The readers keep mapping the grown
    // length: the pages given back read as zeros, the live blocks as they were.
    const freed = big.filter((_, i) => i % 2 === 0 && i < 30);
    const tail = big.slice(30);
    for (const seed of [...freed, ...tail]) heap.free((blocks.get(seed) as [number, number])[0]);
    assert.is(heap.trim(0), 1);
    const shrunk = system.sharedHeap().length;
    assert.ok(shrunk < grown - 9 * 20000, `the break shrank (${grown} -> ${shrunk})`);
    const live = [...small, ...big.filter((seed) => !freed.includes(seed) && !tail.includes(seed))];
    // A whole page inside each freed block (its chunk is 20016 bytes), and a page past the new break.
    const page = system.pageSize;
    const inside = freed.map((seed): [number, number] => {
      const p = (blocks.get(seed) as [number, number])[0];
      return [Math.ceil((p + page) / page) * page - base, page];
    });
    const past = [shrunk + page, page] as [number, number];
    for (const answer of await ask(grown, [...rangesOf(live), ...inside, past])) {
      assert.is(answer.error, undefined);
      assert.equal(answer.slices.slice(0, 2 * live.length), patterns(live), 'live blocks');
      for (const slice of answer.slices.slice(2 * live.length))
        assert.ok(slice.length === page && slice.every((byte) => byte === 0), 'pages given back read 0');
    }

    // 4. Closing unmaps: the child counts its own mappings, the worker's are this process's.
    const [child, worker] = readers;
    const inWorker = readerMappings();
    const closedChild = await child.ask({ close: true });
    assert.equal([closedChild.before, closedChild.after, closedChild.detached], [1, 0, true], 'the child unmapped its view');
    const closedWorker = await worker.ask({ close: true });
    assert.equal([inWorker, closedWorker.before, closedWorker.after, closedWorker.detached], [1, 1, 0, true], 'the worker unmapped its view');
    system.release();
  } finally {
    for (const reader of readers) reader.stop();
  }
});

test('a file-backed heap: the file holds the heap bytes, live and after release, and reopens after the system is gone', () => {
  const file = join(dir, 'heap.img');
  const system = new NativeSystem({ backing: { file } });
  assert.is(statSync(file).mode & 0o777, 0o600);
  assert.equal(
    JSON.parse(readFileSync(`${file}.backing.json`, 'utf8')),
    { base: system.heapStart, length: 0, pageSize: system.pageSize },
    'sidecar at creation',
  );
  const heap = new Allocator({ system });
  // Past the first 132 KiB (the file grows), then the last two blocks freed and trimmed (the break shrinks).
  const allocate = (size: number, seed: number) => {
    const p = heap.malloc(size);
    fill(heap.bytes(p), seed);
    return p;
  };
  const pointers = [100, 3000, 70000, 200, 9000].map((size, i) => allocate(size, 50 + i));
  heap.free(pointers[1]);
  heap.realloc(pointers[3], 5000);
  pointers.push(...[60000, 60000, 60000].map((size, i) => allocate(size, 60 + i)));
  const highest = system.sharedHeap().length;
  heap.free(pointers[7]);
  heap.free(pointers[6]);
  heap.trim(0);
  const shared = system.sharedHeap();
  assert.ok(highest > 262144 && shared.length < highest - 110000, `the break went ${highest} -> ${shared.length}`);
  assert.equal([shared.kind, shared.path, shared.base], ['file', file, system.heapStart]);
  const heapBytes = Uint8Array.from(system.bytes(system.heapStart, shared.length));
  assert.ok(Buffer.from(readFileSync(file).subarray(0, shared.length)).equals(heapBytes), 'the file reads as the heap, live');
  const p = pointers[2];
  assert.is(readFileSync(file)[p - system.heapStart + 69999], expected(52, 69999), 'a known byte at its offset');
  system.release();
  assert.equal(
    JSON.parse(readFileSync(`${file}.backing.json`, 'utf8')),
    { base: shared.base, length: shared.length, pageSize: shared.pageSize },
    'sidecar at release',
  );
  // Not a heap image (no glibc metadata in it yet): the image format's sidecar name stays free, and the image
  // reader says the image's sidecar is missing rather than misreading the backing's.
  assert.not.ok(existsSync(`${file}.json`), "the backing's sidecar is not named as an image's");
  coded(() => walkImageFile(file), 'IMAGE_OPEN', /heap\.img\.json/);
  const after = readFileSync(file);
  assert.ok(Buffer.from(after.subarray(0, shared.length)).equals(heapBytes), 'the file reads as the heap, after release');
  assert.is(after.length, highest, "the file never shrinks: its size is the break's high-water mark");
  assert.ok(
    after.subarray(shared.length).every((byte) => byte === 0),
    'past the break, zeros',
  );
  const image = openHeapImage(file, { length: shared.length });
  assert.ok(Buffer.from(image.bytes).equals(heapBytes), 'reopened, the same bytes');
  assert.is(image.bytes[p - shared.base + 12345], expected(52, 12345));
  assert.is(image.sealed, false);
  image.close();
});

test('a file truncated under its readers and its owner: zeros past its end and coded errors, never SIGBUS', () => {
  const file = join(dir, 'truncated.img');
  const system = new NativeSystem({ backing: { file } });
  const heap = new Allocator({ system });
  const pointers = Array.from({ length: 20 }, (_, i) => {
    const q = heap.malloc(10000);
    fill(heap.bytes(q), i);
    return q;
  });
  const { length, base } = system.sharedHeap();
  const image = openHeapImage(file, { length });
  const last = pointers[19] - base;
  assert.is(image.bytes[last], expected(19, 0));
  const view = heap.bytes(pointers[19]);
  truncateSync(file, 4096);
  assert.is(image.bytes[last], 0, 'a read past the new end is a zero, not a SIGBUS');
  coded(() => image.refresh(), 'HEAP_IMAGE_TRUNCATED', /shrank under this reader \(to 4096 bytes/);
  view[1] = 42;
  assert.is(view[1], 42, "the owner's write past the end lands in memory no file backs");
  // The loss happened in a write through a view, with no call of the layer: the allocator's next call is
  // refused anyway, and so is every call after it (the failure is kept).
  coded(() => heap.malloc(10), 'HEAP_BACKING_LOST', /vanished/);
  assert.is(system.failure?.code, 'HEAP_BACKING_LOST');
  assert.ok(system.released);
  coded(() => heap.malloc(1 << 20), 'HEAP_BACKING_LOST');
  coded(() => system.mmap(1 << 20), 'HEAP_BACKING_LOST');
  coded(() => system.sharedHeap(), 'HEAP_BACKING_LOST', /vanished/);
  coded(() => system.bytes(base, 16), 'HEAP_BACKING_LOST');
  image.close();
  system.release();
});

test("with glibc's metadata written (metadata: true), a truncation under the writes fails the call that wrote, as the loss says", () => {
  const file = join(dir, 'truncated-metadata.img');
  const system = new NativeSystem({ backing: { file } });
  const heap = new Allocator({ system, metadata: true });
  const pointers = Array.from({ length: 50 }, (_, i) => heap.malloc(100 + i * 40));
  for (let i = 0; i < 50; i += 2) heap.free(pointers[i]);
  truncateSync(file, 4096);
  // The free's metadata writes fall into the vanished pages: that very call is refused, naming the loss.
  coded(() => heap.free(pointers[1]), 'HEAP_BACKING_LOST', /backing can no longer be trusted.*vanished/);
  coded(() => heap.malloc(10), 'HEAP_BACKING_LOST', /backing can no longer be trusted/);
  system.release();
});

test('bad backings, bad readers, and calls after release or close are coded errors', () => {
  coded(() => new NativeSystem({ backing: { file: join(dir, 'missing', 'heap.img') } }), 'HEAP_BACKING_OPEN', /ENOENT/);
  coded(() => new NativeSystem({ backing: { file: dir } }), 'HEAP_BACKING_OPEN', /EISDIR/);
  coded(() => new NativeSystem({ backing: { file: '/dev/null' } }), 'HEAP_BACKING_OPEN', /must be a regular file/);
  coded(() => new NativeSystem({ backing: { file: '' } }), 'BAD_ARGUMENT');
  coded(() => new NativeSystem({ backing: 'private' as 'shared' }), 'BAD_ARGUMENT');
  const plain = new NativeSystem();
  coded(() => plain.sharedHeap(), 'NO_BACKING');
  plain.release();
  coded(() => openHeapImage(join(dir, 'none.img')), 'HEAP_IMAGE_OPEN', /ENOENT/);
  coded(() => openHeapImage(dir), 'HEAP_IMAGE_OPEN', /is a directory/);
  coded(() => openHeapImage('/dev/null'), 'HEAP_IMAGE_OPEN', /regular file/);
  coded(() => openHeapImage(1 << 20), 'HEAP_IMAGE_OPEN', /EBADF/);
  coded(() => openHeapImage(-1), 'BAD_ARGUMENT');

  // Reading after the owner released: the reader's mapping keeps the memfd's pages; the path is gone.
  const system = new NativeSystem({ backing: 'shared' });
  const heap = new Allocator({ system });
  const p = heap.malloc(1000);
  fill(heap.bytes(p), 9);
  const shared = system.sharedHeap();
  coded(() => openHeapImage(shared.path, { length: shared.length + 1 }), 'HEAP_IMAGE_SHORT', /holds 135168/);
  const before = readerMappings();
  const image = openHeapImage(shared.fd, { length: shared.length });
  assert.is(readerMappings(), before + 1);
  system.release();
  coded(() => system.sharedHeap(), 'SYSTEM_RELEASED');
  coded(() => heap.malloc(1), 'SYSTEM_RELEASED');
  assert.is(image.bytes[p - shared.base + 999], expected(9, 999), 'the bytes outlive their owner');
  assert.is(image.refresh().length, shared.length);
  coded(() => openHeapImage(shared.path), 'HEAP_IMAGE_OPEN');
  const view = image.bytes;
  image.close();
  image.close();
  assert.is(view.byteLength, 0, 'close detaches the view');
  assert.is(readerMappings(), before, 'and unmaps it');
  coded(() => image.bytes, 'HEAP_IMAGE_CLOSED');
  coded(() => image.refresh(), 'HEAP_IMAGE_CLOSED');
});

test("one heap per file: a second heap on a live heap's file is refused, and the first keeps its bytes", () => {
  const file = join(dir, 'two.img');
  const first = new NativeSystem({ backing: { file } });
  const heap = new Allocator({ system: first });
  const p = heap.malloc(100);
  heap.bytes(p).fill(0x41);
  coded(() => new NativeSystem({ backing: { file } }), 'HEAP_BACKING_OPEN', /two\.img: in use by another heap/);
  assert.is(heap.bytes(p)[99], 0x41, 'the refused heap truncated nothing');
  assert.is(readFileSync(file)[p - first.heapStart], 0x41);
  assert.is(first.failure, null);
  first.release();
  const second = new NativeSystem({ backing: { file } });
  assert.is(statSync(file).size, 0, 'once released, the file is free again (and truncated for the new heap)');
  second.release();
});

test('a view longer than Node allows: VIEW_TOO_LARGE before anything is mapped, and a failed refresh() keeps the image', () => {
  const file = join(dir, 'big.img');
  writeFileSync(file, 'x');
  truncateSync(file, 5 * 1024 ** 3);
  const mappings = () =>
    readFileSync('/proc/self/maps', 'utf8')
      .split('\n')
      .filter((line) => line.endsWith(file)).length;
  coded(() => openHeapImage(file), 'VIEW_TOO_LARGE', /big\.img|5368709120 bytes/);
  assert.is(mappings(), 0);
  const image = openHeapImage(file, { length: 4096 });
  const view = image.bytes;
  coded(() => image.refresh(), 'VIEW_TOO_LARGE', /holds 5368709120 bytes/);
  assert.ok(image.bytes === view && view.length === 4096 && view[0] === 0x78, 'the same view, still attached');
  assert.is(mappings(), 1, 'and only its mapping');
  image.close();
  // The addon checks too, before mmap: its own reader asked for the whole file.
  const native = new (loadAddon().HeapImage)(file, 4294967296);
  coded(() => native.map(5 * 1024 ** 3), 'VIEW_TOO_LARGE', /more than Node's largest ArrayBuffer/);
  assert.is(mappings(), 0);
  native.close();
  truncateSync(file, 0);
});

// A SIGBUS that no fault raised (kill -BUS) must kill as it would without the guard, and leave nothing
// behind for a survivor; a process.on('SIGBUS') listener made after a backing replaces the guard, and a write
// past a truncated file's end must then be refused rather than fault forever. The kill in a child of its own;
// the listener in the child of the limits below, after them.
const killed = startChild(
  dir,
  'kill-bus',
  `const system = new NativeSystem({ backing: { file: '${dir}/kill.img' } });
new Allocator({ system }).malloc(100);
process.kill(process.pid, 'SIGBUS');
console.log('survived kill -BUS');`,
);
test('kill -BUS kills the process with a backing alive, as it would without one', async () => {
  const { signal, stdout, stderr } = await killed;
  assert.is(stdout, '', 'nothing printed after the kill');
  assert.is(signal, 'SIGBUS', stderr);
});

test("a process.on('SIGBUS') listener over the guard: HEAP_BACKING_UNGUARDED, never a write faulting forever", async () => {
  const { status, stdout, stderr } = await limits;
  assert.is(status, 0, stderr);
  assert.equal(JSON.parse(stdout.split('\n')[1]), {
    reader: 'HEAP_IMAGE_UNGUARDED',
    write: 'HEAP_BACKING_UNGUARDED',
    later: 'HEAP_BACKING_UNGUARDED',
    bare: 'HEAP_BACKING_UNGUARDED',
    again: 'HEAP_BACKING_LOST',
    listener: true,
  });
});

// A full disk (a 256 KiB tmpfs, mounted in a mount namespace of the child's own), RLIMIT_FSIZE and a
// read-only file (without CAP_DAC_OVERRIDE, as an ordinary user is), all in one child; the SIGBUS listener's
// case above runs after them in the same child (one node start for both).
const asRoot = process.getuid?.() === 0;
const cannotMount =
  asRoot && spawnSync('unshare', ['-m', 'sh', '-c', `mount -t tmpfs -o size=256k none '${dir}'`]).status === 0
    ? undefined
    : 'needs root and unshare -m (a tmpfs of its own)';
const full = join(dir, 'full');
spawnSync('mkdir', [full]);
// Started now, so that it runs while the tests above run; awaited by the tests that read its report.
const limits = startChild(
  dir,
  'limits-then-listener',
  `// The limits first, then the SIGBUS listener (made last: it stays to the end), each a block of its own
// printing its report on a line; the listener's files stay far below RLIMIT_FSIZE, and it opens only its own.
{
const report = {};
const attempt = (name, file) => {
  const system = new NativeSystem({ backing: { file } });
  const heap = new Allocator({ system });
  try {
    for (let i = 0; i < 100; i++) heap.malloc(20000);
    report[name] = 'no error';
  } catch (error) {
    let later;
    try { heap.malloc(16); } catch (again) { later = again.code; }
    report[name] = [error.name, error.code, error.syscall, error.message, system.sharedHeap().length, later];
  }
  system.release();
};
writeFileSync('${dir}/read-only.img', '');
chmodSync('${dir}/read-only.img', 0o400);
try { new NativeSystem({ backing: { file: '${dir}/read-only.img' } }); report.readOnly = 'opened'; } catch (error) { report.readOnly = [error.code, error.message]; }
attempt('fsize', '${dir}/fsize.img');
if (${cannotMount === undefined}) attempt('full', '${full}/full.img');
console.log(JSON.stringify(report));
}
{
const report = {};
const system = new NativeSystem({ backing: { file: '${dir}/listened.img' } });
const heap = new Allocator({ system });
const p = heap.malloc(100);
const image = openHeapImage('${dir}/listened.img', { length: 4096 });
const bare = new NativeSystem({ backing: { file: '${dir}/bare.img' } });
bare.sbrk(4096);
process.on('SIGBUS', () => { report.listener = true; });
truncateSync('${dir}/listened.img', 0);
try { image.refresh(); report.reader = 'refreshed'; } catch (error) { report.reader = error.code; }
try { heap.bytes(p).fill(7); report.write = 'wrote'; } catch (error) { report.write = error.code; }
try { heap.malloc(10); report.later = 'allocated'; } catch (error) { report.later = error.code; }
// And a call of a system itself, without an allocator (a system of its own, made before the listener).
try { bare.bytes(bare.heapStart, 16); report.bare = 'viewed'; } catch (error) { report.bare = error.code; }
// A new backing installs the guard again, in front of the listener: its lost page is caught, and the
// listener still hears kill -BUS.
const again = new NativeSystem({ backing: { file: '${dir}/again.img' } });
const other = new Allocator({ system: again });
const q = other.malloc(100);
truncateSync('${dir}/again.img', 0);
other.bytes(q).fill(7);
try { other.malloc(10); report.again = 'allocated'; } catch (error) { report.again = error.code; }
process.kill(process.pid, 'SIGBUS');
setImmediate(() => setImmediate(() => console.log(JSON.stringify(report))));
}`,
  {
    prelude: `import { writeFileSync, chmodSync, truncateSync } from 'node:fs';\nimport { openHeapImage } from '${root}dist/system/heap-image.js';`,
    wrap: [
      ...(cannotMount === undefined ? ['unshare', '-m', 'sh', '-c', 'mount -t tmpfs -o size=256k none "$0" && exec "$@"', full] : []),
      'prlimit',
      '--fsize=300000',
      ...(asRoot ? ['setpriv', '--inh-caps=-dac_override,-dac_read_search', '--bounding-set=-dac_override,-dac_read_search'] : []),
      // A write that faulted forever would otherwise hang the test.
      'timeout',
      '20',
    ],
  },
);

test('a read-only file and a file past RLIMIT_FSIZE: coded errors in a child that lives on', async () => {
  const { status, stdout, stderr } = await limits;
  assert.is(status, 0, stderr);
  const report = JSON.parse(stdout.split('\n')[0]);
  assert.equal(report.readOnly[0], 'HEAP_BACKING_OPEN');
  assert.match(report.readOnly[1], /read-only\.img: cannot open the heap's backing file \(it must be writable\): EACCES/);
  const [name, code, syscall, message, length, later] = report.fsize;
  assert.equal([name, code, syscall], ['MallocscopeError', 'HEAP_BACKING_FULL', 'fallocate']);
  // The growth that failed is the first to pass 300000 bytes; the heap stays as the one before left it.
  const tried = Number(/to (\d+) bytes: EFBIG/.exec(message)?.[1]);
  assert.ok(tried > 300000 && length <= 300000 && length > 135168, `${length} <= 300000 < ${tried}`);
  assert.is(later, 'HEAP_BACKING_FULL', 'the allocator refuses every later call');
});

unless(test, cannotMount)('a full disk (a 256 KiB tmpfs): HEAP_BACKING_FULL at the growth, never a SIGBUS at a write', async () => {
  const { stdout } = await limits;
  const [name, code, syscall, message, length, later] = JSON.parse(stdout.split('\n')[0]).full;
  assert.equal([name, code, syscall], ['MallocscopeError', 'HEAP_BACKING_FULL', 'fallocate']);
  const tried = Number(/to (\d+) bytes: ENOSPC/.exec(message)?.[1]);
  assert.ok(tried > 256 * 1024 && length <= 256 * 1024, `${length} <= 262144 < ${tried}`);
  assert.is(later, 'HEAP_BACKING_FULL');
});

test("the README's example (examples/shared-heap.mjs): a child process reads what the parent wrote, at its offset", () => {
  const run = spawnSync(process.execPath, [join(root, 'examples/shared-heap.mjs')], { encoding: 'utf8', timeout: 60_000 });
  assert.is(run.status, 0, run.stderr);
  const [parent, child] = run.stdout.trim().split('\n');
  const shared = /^parent (\d+): heap at 0x[0-9a-f]+, 135168 bytes, block at offset (0x[0-9a-f]+), shared as \/proc\/\1\/fd\/\d+$/.exec(parent);
  assert.ok(shared, parent);
  assert.match(child, new RegExp(`^child \\d+: mapped read-only, offset ${shared![2]} reads "hello from the parent"$`));
});

test.run();
