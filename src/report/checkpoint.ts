// Checkpoints of a replay: the whole model state (Replayer, Malloc, mp_, MallocState, Tcache, ChunkTable, simulated kernel) as
// bytes, and a Replayer rebuilt from them that goes on exactly as the original would. The report stores one
// every K events, and the page restores the nearest one and replays forward to the event picked.
//
// The state is read field by field from the objects' own properties, not from a list kept here: numbers,
// booleans, strings, typed arrays, arrays of numbers and plain objects are copied, and the object-valued
// fields named in SKIP (the links between the parts, the per-call notes) are rebuilt. A field the allocator
// adds later is carried along without a change here. This reads and writes some fields that TypeScript marks
// private (ChunkTable's free list, MallocState's binmap, the Replayer's slot tables, the kernel's mappings): the
// layout is theirs, and the round-trip test in test/report.test.ts catches a field this cannot copy.
// Plain TypeScript with no Node API: the page bundles it.
import { MallocscopeError } from '../errors.ts';
import { Replayer } from '../replay/replayer.ts';
import type { SimulatedSystemOptions } from '../system/simulated.ts';
import { ByteReader, ByteWriter } from './html/codec.ts';

/** How to build the Replayer a checkpoint is restored into (the same options as the replay that made it). */
export interface CheckpointSetup {
  policy: string;
  /** The glibc version the model follows ("2.39"). */
  glibc: string;
  system: SimulatedSystemOptions;
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

/** Object-valued fields that are structure or per-call scratch, not state between events. */
// `log` is the kernel's SyscallLog, empty between events: a restored kernel starts with its own empty one.
// The objects a part points at (other parts, or the arena ring and the threads, which a checkpoint of one
// thread and one arena does not hold: takeCheckpoint refuses a model with more).
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
]);

interface ArrayEntry {
  part: string;
  key: string;
  type: string;
  length: number;
}

interface Header {
  v: 1;
  /** part -> scalar fields (numbers, booleans, strings, arrays of numbers, plain objects). */
  scalars: Record<string, Bag>;
  arrays: ArrayEntry[];
}

function parts(replayer: Replayer): Record<string, Bag> {
  const model = replayer.model;
  return {
    replayer: replayer as unknown as Bag,
    model: model as unknown as Bag,
    arena: model.main as unknown as Bag,
    mp: model.mp as unknown as Bag,
    tcache: model.tcache as unknown as Bag,
    chunks: model.chunks as unknown as Bag,
    system: model.system as unknown as Bag,
  };
}

function isPlain(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === Array.prototype;
}

/** The replayer's state as bytes. Take it between events (the kernel's syscall log must be empty). */
export function takeCheckpoint(replayer: Replayer): Uint8Array {
  if (replayer.model.arenas.length > 1 || replayer.model.threads.size > 1) {
    throw new MallocscopeError('MODEL_THREADS', 'the report keeps one arena and one thread; this replay made a second arena, which it cannot show yet');
  }
  const header: Header = { v: 1, scalars: {}, arrays: [] };
  const blobs: Uint8Array[] = [];
  const limit = replayer.model.chunks.highWater;
  for (const [part, object] of Object.entries(parts(replayer))) {
    const scalars: Bag = {};
    for (const key of Object.keys(object)) {
      if (SKIP.has(key)) continue;
      const value = object[key];
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

/** A fresh Replayer in the state a checkpoint holds. */
export function restoreCheckpoint(bytes: Uint8Array, setup: CheckpointSetup): Replayer {
  const replayer = new Replayer({ policy: setup.policy, glibc: setup.glibc, system: setup.system });
  const reader = new ByteReader(bytes);
  const jsonLength = reader.varint();
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(reader.offset, reader.offset + jsonLength))) as Header;
  let offset = reader.offset + jsonLength;
  const target = parts(replayer);
  for (const [part, scalars] of Object.entries(header.scalars)) {
    const object = target[part];
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
