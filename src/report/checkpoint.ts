// Checkpoints of a replay: the whole model state (Replayer, Malloc, mp_, every arena with its heaps, every
// thread with its tcache, ChunkTable, simulated kernel) as bytes, and a Replayer rebuilt from them that goes on
// exactly as the original would. The report stores one every K events, and the page restores the nearest one
// and replays forward to the event picked.
//
// The state is read field by field from the objects' own properties, not from a list kept here: numbers,
// booleans, strings, typed arrays, arrays of numbers and plain objects are copied. The object-valued fields
// named in SKIP are links between the parts (the arena ring, the free list, a heap's arena and previous heap,
// a thread's arena, the running thread) or per-call scratch: the links are written as arena indexes, heap keys
// and thread numbers, and remade. A field the allocator adds later is carried along without a change here.
// This reads and writes some fields that TypeScript marks private (ChunkTable's free list, MallocState's
// binmap, the Replayer's slot tables, the kernel's mappings): the layout is theirs, and the round-trip test in
// test/report.test.ts catches a field this cannot copy. Plain TypeScript with no Node API: the page bundles it.
import { Heap, MallocState } from '../allocator/arena.ts';
import { Thread } from '../allocator/malloc.ts';
import { Replayer } from '../replay/replayer.ts';
import { ResidentPages } from '../system/resident.ts';
import type { SimulatedSystemOptions } from '../system/simulated.ts';
import { ByteReader, ByteWriter } from './html/codec.ts';

/** How to build the Replayer a checkpoint is restored into (the same options as the replay that made it). */
export interface CheckpointSetup {
  policy: string;
  /** The glibc version the model follows ("2.39"). */
  glibc: string;
  system: SimulatedSystemOptions;
  /** The CPU count glibc sees (its arena limit); absent: this machine's (the page's: 1). */
  cores?: number;
}

type Bag = Record<string, unknown>;
type Typed = Float64Array | Int32Array | Uint8Array | Uint32Array | Int8Array | Uint16Array | Int16Array | Float32Array;

const TYPED: Record<string, new (n: number | ArrayBuffer) => Typed> = {
  Float64Array,
  Int32Array,
  Uint8Array,
  Uint32Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Float32Array,
};

/**
 * Object-valued fields that are structure or per-call scratch, not state copied as it is. `log` is the
 * kernel's SyscallLog, empty between events: a restored kernel starts with its own empty one. The links
 * (arenas, heaps, threads and what points at them) are written apart, in the header's `links`.
 */
const SKIP = new Set([
  'model',
  'm',
  'main',
  'mp',
  'tcache',
  'chunks',
  'system',
  'notes',
  'outcome',
  'idSource',
  'log',
  'arenas',
  'heaps',
  'threads',
  'thread',
  'next',
  'nextFree',
  'heap',
  'nextToUse',
  'freeList',
  'prev',
  'arena',
  // The resident-pages model (--touch) is the kernel's and the program's, not glibc's: a restored replay
  // starts with its own, which ResidentPages.adopt fills.
  'resident',
]);

interface ArrayEntry {
  part: string;
  key: string;
  type: string;
  length: number;
}

/** The links between the parts: arenas by index (-1: none), heaps by their key in Malloc.heaps, threads by number. */
interface Links {
  /** Per arena: av->next, av->next_free, the heap its top is in. */
  arenas: { next: number; nextFree: number; heap: number | null }[];
  /** Malloc.heaps in its order: the key, and the heap's base, previous heap and arena. */
  heaps: { key: number; base: number; prev: number | null; arena: number }[];
  /** Malloc.threads in its order: the thread's number and arena. */
  threads: { id: number; arena: number }[];
  /** The running thread. */
  thread: number;
  nextToUse: number;
  freeList: number;
}

interface Header {
  v: 2;
  /** part -> scalar fields (numbers, booleans, strings, arrays of numbers, plain objects). */
  scalars: Record<string, Bag>;
  arrays: ArrayEntry[];
  links: Links;
}

/** The parts of the state, by name: arena.I, heap.KEY, thread.N and tcache.N besides the process's own. */
function parts(replayer: Replayer): Record<string, Bag> {
  const model = replayer.model;
  const named: Record<string, Bag> = {
    replayer: replayer as unknown as Bag,
    model: model as unknown as Bag,
    mp: model.mp as unknown as Bag,
    chunks: model.chunks as unknown as Bag,
    // Under the resident model (--touch) the kernel is wrapped: the state is the kernel's within.
    system: (model.system instanceof ResidentPages ? model.system.inner : model.system) as unknown as Bag,
  };
  model.arenas.forEach((arena, i) => {
    named[`arena.${i}`] = arena as unknown as Bag;
  });
  for (const [key, heap] of model.heaps) named[`heap.${key}`] = heap as unknown as Bag;
  for (const [id, thread] of model.threads) {
    named[`thread.${id}`] = thread as unknown as Bag;
    named[`tcache.${id}`] = thread.tcache as unknown as Bag;
  }
  return named;
}

function links(replayer: Replayer): Links {
  const m = replayer.model;
  const keyOf = new Map<Heap, number>();
  for (const [key, heap] of m.heaps) keyOf.set(heap, key);
  const heapKey = (heap: Heap | null) => {
    if (heap === null) return null;
    const key = keyOf.get(heap);
    if (key === undefined) throw new Error(`checkpoint: a heap at ${heap.base} is not in Malloc.heaps`);
    return key;
  };
  const arenaIndex = (arena: MallocState | null) => (arena === null ? -1 : arena.index);
  return {
    arenas: m.arenas.map((a) => ({ next: a.next.index, nextFree: arenaIndex(a.nextFree), heap: heapKey(a.heap) })),
    heaps: [...m.heaps].map(([key, h]) => ({ key, base: h.base, prev: heapKey(h.prev), arena: arenaIndex(h.arena) })),
    threads: [...m.threads.values()].map((t) => ({ id: t.id, arena: arenaIndex(t.arena) })),
    thread: m.thread.id,
    nextToUse: arenaIndex(m.nextToUse),
    freeList: arenaIndex(m.freeList),
  };
}

function isPlain(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === Array.prototype;
}

/** The replayer's state as bytes. Take it between events (the kernel's syscall log must be empty). */
export function takeCheckpoint(replayer: Replayer): Uint8Array {
  const header: Header = { v: 2, scalars: {}, arrays: [], links: links(replayer) };
  const blobs: Uint8Array[] = [];
  const limit = replayer.model.chunks.highWater;
  for (const [part, object] of Object.entries(parts(replayer))) {
    const scalars: Bag = {};
    for (const key of Object.keys(object)) {
      const value = object[key];
      // A link or scratch object is skipped; a number or flag of the same name (Replayer.threads) is state.
      if (SKIP.has(key) && (value === null || typeof value === 'object')) continue;
      if (ArrayBuffer.isView(value)) {
        let array = value as Typed;
        // The chunk table's arrays hold records below highWater only; the rest is spare capacity.
        if (part === 'chunks') array = array.subarray(0, limit);
        header.arrays.push({ part, key, type: array.constructor.name, length: array.length });
        blobs.push(shuffle(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), array.BYTES_PER_ELEMENT));
      } else if (typeof value === 'number') {
        if (!Number.isFinite(value) && !Number.isNaN(value)) scalars[key] = { inf: value > 0 ? 1 : -1 };
        else scalars[key] = value;
      } else if (typeof value === 'bigint') {
        scalars[key] = { big: String(value) }; // an exact size_t above 2^53 (a threshold set by mallopt)
      } else if (typeof value === 'boolean' || typeof value === 'string' || isPlain(value)) {
        scalars[key] = value;
      } else if (value === null) {
        scalars[key] = null;
      } else if (value === undefined || typeof value === 'function') {
      } else {
        throw new Error(`checkpoint: ${part}.${key} holds a ${Object.prototype.toString.call(value)} it cannot copy`);
      }
    }
    header.scalars[part] = scalars;
  }
  const out = new ByteWriter();
  const json = new TextEncoder().encode(JSON.stringify(header));
  out.varint(json.length);
  out.raw(json);
  for (const blob of blobs) out.raw(blob);
  return out.take().slice();
}

/**
 * Makes the arenas, heaps and threads a checkpoint names in a fresh replayer's model, linked as they were, so
 * that the parts' fields can then be copied into them. A new arena takes records of the chunk table, which
 * is overwritten after this.
 */
function rebuild(replayer: Replayer, links: Links): void {
  const m = replayer.model;
  while (m.arenas.length < links.arenas.length) m.arenas.push(new MallocState(m, m.arenas.length));
  const arena = (index: number) => (index < 0 ? null : m.arenas[index]);
  const byKey = new Map<number, Heap>();
  for (const h of links.heaps) {
    const heap = new Heap(h.base, 0, 0, null, arena(h.arena));
    byKey.set(h.key, heap);
    m.heaps.set(h.key, heap);
  }
  const heap = (key: number | null) => (key === null ? null : (byKey.get(key) ?? null));
  for (const h of links.heaps) (byKey.get(h.key) as Heap).prev = heap(h.prev);
  links.arenas.forEach((a, i) => {
    const av = m.arenas[i];
    av.next = m.arenas[a.next];
    av.nextFree = arena(a.nextFree);
    av.heap = heap(a.heap);
  });
  m.nextToUse = arena(links.nextToUse);
  m.freeList = arena(links.freeList);
  for (const t of links.threads) {
    const thread = m.threads.get(t.id) ?? new Thread(t.id, m.chunks, null);
    thread.arena = arena(t.arena);
    m.threads.set(t.id, thread);
  }
  const running = m.threads.get(links.thread);
  if (!running) throw new Error(`checkpoint: the running thread ${links.thread} is not among the threads`);
  m.runAs(running);
}

/**
 * A fresh Replayer in the state a checkpoint holds; `decisions` has its core record each decision (what the
 * page's sentences narrate), as the Replayer's option of that name; `resident` models its resident pages,
 * which start empty (ResidentPages.adopt gives them those of another replay).
 */
export function restoreCheckpoint(bytes: Uint8Array, setup: CheckpointSetup, decisions = false, resident = false): Replayer {
  const replayer = new Replayer({ policy: setup.policy, glibc: setup.glibc, system: setup.system, cores: setup.cores, decisions, resident });
  const reader = new ByteReader(bytes);
  const jsonLength = reader.varint();
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(reader.offset, reader.offset + jsonLength))) as Header;
  let offset = reader.offset + jsonLength;
  rebuild(replayer, header.links);
  const target = parts(replayer);
  for (const [part, scalars] of Object.entries(header.scalars)) {
    const object = target[part];
    if (!object) throw new Error(`checkpoint: no part ${part} to restore into`);
    for (const [key, value] of Object.entries(scalars)) {
      if (value !== null && typeof value === 'object' && 'inf' in (value as Bag) && !Array.isArray(value)) {
        object[key] = (value as { inf: number }).inf * Infinity;
      } else if (value !== null && typeof value === 'object' && 'big' in (value as Bag) && !Array.isArray(value)) {
        object[key] = BigInt((value as { big: string }).big);
      } else if (value !== null && typeof value === 'object') {
        object[key] = structuredCloneJson(value);
      } else {
        object[key] = value;
      }
    }
  }
  for (const entry of header.arrays) {
    const Type = TYPED[entry.type];
    if (!Type) throw new Error(`checkpoint: unknown array type ${entry.type}`);
    const width = (Type as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    const byteLength = entry.length * width;
    const data = new Type(unshuffle(bytes.subarray(offset, offset + byteLength), width).buffer as ArrayBuffer);
    offset += byteLength;
    const object = target[entry.part];
    const current = object[entry.key] as Typed;
    if (entry.part === 'chunks') {
      // Room for at least the records the table had, as it grows (doubling from 1024).
      let capacity = current.length;
      while (capacity < entry.length) capacity *= 2;
      const array = new Type(capacity);
      array.set(data as never);
      object[entry.key] = array;
    } else if (current.length === entry.length) {
      current.set(data as never);
    } else {
      object[entry.key] = data;
    }
  }
  return replayer;
}

/**
 * Byte shuffling (as Blosc does): the first byte of every element, then every second byte, and so on. The
 * high bytes of addresses, sizes and ids repeat, so gzip packs the shuffled arrays about twice as tight.
 */
function shuffle(bytes: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  const count = bytes.length / width;
  for (let j = 0; j < width; j++) for (let i = 0; i < count; i++) out[j * count + i] = bytes[i * width + j];
  return out;
}

function unshuffle(bytes: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  const count = bytes.length / width;
  for (let j = 0; j < width; j++) for (let i = 0; i < count; i++) out[i * width + j] = bytes[j * count + i];
  return out;
}

function structuredCloneJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
