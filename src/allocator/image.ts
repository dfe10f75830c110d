// The model's heap image (docs/image.md): main_arena's heap from its start to the end of the top, as glibc lays
// its live metadata out in memory, every other byte zero; computed on demand from the chunk table and the lists.
import { MallocscopeError } from '../errors.ts';
import {
  ARENA_BIN_HEADERS,
  DEFAULT_ARENA,
  DEFAULT_BASE,
  FOREIGN_MARKER,
  type ImageBytes,
  type ImageSidecar,
  KEY_MARKER,
  type TcacheLayout,
} from '../image/format.ts';
import { ChunkState, NIL } from './chunks.ts';
import { CHUNK_HDR_SZ, MALLOC_STATE_SIZE, MIN_LARGE_SIZE, NBINS, NFASTBINS, SIZE_SZ } from './constants.ts';
import type { Malloc } from './malloc.ts';

/** Where the image's pointers say the heap and main_arena are. */
export interface ImagePlacement {
  /** The heap start's address in the image (a multiple of 4096); 0x555555559000 by default. */
  base?: bigint;
  /** main_arena's notional address (a multiple of 16); 0x7ffff7fa7c60 by default. */
  arena?: bigint;
}

export type ModelHeapImage = ImageBytes;

/** Whether a main_arena at `arena` (sizeof(struct malloc_state) bytes) overlaps the addresses [from, to). */
export function arenaOverlaps(arena: bigint, from: bigint, to: bigint): boolean {
  return from < arena + BigInt(MALLOC_STATE_SIZE) && arena < to;
}

/** The size word's PREV_INUSE bit (A and M are never set in main_arena's heap). */
const PREV_INUSE = 1;
/** What the lists make of a chunk: nothing (0: in use to a reader), the main thread's tcache, a fastbin, a bin. */
const TCACHE = 1;
const FASTBIN = 2;
const BINNED = 3;

const TWO_32 = 2 ** 32;
/** heapImageWords' scratch: what each chunk id is to a reader (one call at a time: JavaScript runs one). */
let roles = new Uint8Array(256);

/**
 * The image of main_arena's heap after event `seq`, for the heap placed at `base` and main_arena at `arena`:
 * byte for byte what the oracle writes for the real glibc (docs/image.md), with its sidecar. Only the main
 * thread's tcache is in it; another thread's tcache struct and entries are in-use chunks with nothing in them,
 * and a main-thread tcache list stops at a chunk outside this heap (the foreign marker), as the oracle's does.
 */
export function heapImage(m: Malloc, seq: number, options: ImagePlacement = {}): ModelHeapImage {
  let bytes = new Uint8Array(0);
  let view = new DataView(bytes.buffer);
  const sidecar = heapImageWords(m, seq, options, {
    begin(size) {
      bytes = new Uint8Array(size);
      view = new DataView(bytes.buffer);
    },
    word: (at, value) => view.setBigUint64(at, value, true),
    number(at, value) {
      view.setUint32(at, value % TWO_32, true);
      view.setUint32(at + 4, Math.floor(value / TWO_32), true);
    },
    half: (at, value) => view.setUint16(at, value, true),
  });
  return { bytes, sidecar };
}

/**
 * Where heapImageWords puts the live words: `begin` once with the image's size (not called when the heap does
 * not exist yet), then every live word once, by its offset from the heap start, in no particular order.
 */
export interface ImageWordSink {
  begin(size: number): void;
  /** A 64-bit word. */
  word(at: number, value: bigint): void;
  /** A 64-bit word whose value is a safe integer (sizes, prev_size). */
  number(at: number, value: number): void;
  /** A 16-bit word (the tcache struct's counts). */
  half(at: number, value: number): void;
}

/**
 * heapImage's rules without its bytes: each of glibc's live metadata words after event `seq`, handed to `sink`
 * (heapImage writes them into a zero-filled image; the native backend's metadata mode into the real heap).
 * Returns the sidecar.
 */
export function heapImageWords(m: Malloc, seq: number, options: ImagePlacement, sink: ImageWordSink): ImageSidecar {
  const base = options.base ?? DEFAULT_BASE;
  const arena = options.arena ?? DEFAULT_ARENA;
  const av = m.main;
  const c = m.chunks;
  const start = m.system.heapStart;
  const brk = m.system.sbrk(0);
  const fail = (what: string, code: string): never => {
    throw new MallocscopeError(code, `heap image after event ${seq}: ${what}`);
  };
  const sidecar: ImageSidecar = {
    glibc: m.glibc.version,
    seq,
    base,
    size: 0,
    arena,
    key: KEY_MARKER,
    foreign: FOREIGN_MARKER,
    top: null,
    lastRemainder: null,
    tcache: null,
    fastbins: new Array<number | null>(NFASTBINS).fill(null),
    bins: [],
  };
  const top = av.top;
  // Before the heap exists, the top is the model's dummy of size 0 and the break has not moved.
  if (c.size[top] === 0 && brk === start) return sidecar;
  const topAt = c.address[top];
  if (c.state[top] !== ChunkState.Top || topAt < start || topAt >= brk) {
    fail(
      "the main arena's top chunk is not at the program break (the break could not grow, and glibc went on in mmapped memory): the heap is not one piece",
      'IMAGE_NOT_CONTIGUOUS',
    );
  }
  const end = topAt + c.size[top];
  if (end !== brk) fail(`the top chunk ends at offset ${end - start}, not at the program break (offset ${brk - start})`, 'IMAGE_INCONSISTENT');
  const size = end - start;
  const bigSize = BigInt(size);
  if (base + bigSize > 1n << 64n || arenaOverlaps(arena, base, base + bigSize)) {
    fail('the heap, placed at --image-base, would overlap --image-arena or pass 2^64', 'IMAGE_BASE');
  }

  // The heap's chunks in address order: from the top back to the region's first chunk, which must be the start.
  let first = top;
  while (c.prevPhys[first] !== NIL) first = c.prevPhys[first];
  if (c.address[first] !== start) fail(`the heap's first chunk is at offset ${c.address[first] - start}, not at its start`, 'IMAGE_INCONSISTENT');

  sink.begin(size);
  const inHeap = (id: number) => c.address[id] >= start && c.address[id] < end;
  const offsetOf = (id: number) => c.address[id] - start;
  const pointer = (id: number) => base + BigInt(offsetOf(id));
  const putNumber = (at: number, value: number) => sink.number(at, value);
  const putWord = (at: number, value: bigint) => sink.word(at, value);
  /** A safe-linked word at offset `at`: (its address >> 12) ^ the pointer. */
  const putMangled = (at: number, value: bigint) => putWord(at, ((base + BigInt(at)) >> 12n) ^ value);

  // What each chunk is to a reader: the lists followed from their heads, as the oracle follows glibc's.
  // A scratch array kept between calls: allocating a typed array each time cost more than the rest of a small
  // heap's words (the native backend's metadata mode calls this after every call).
  if (roles.length < c.highWater) roles = new Uint8Array(Math.max(c.highWater, 2 * roles.length));
  const role = roles;
  role.fill(0, 0, c.highWater);

  // The main thread's tcache: its struct (counts or free slots, then the entries), each list to its end or to
  // the first chunk that is not in this heap (another arena's: the foreign marker, and the list stops).
  const tcache = (m.threads.get(1) ?? m.thread).tcache;
  if (tcache.ready && tcache.structChunk !== NIL) {
    const holder = tcache.structChunk;
    if (!inHeap(holder)) fail("the main thread's tcache is not a chunk of this heap", 'IMAGE_INCONSISTENT');
    // Two bytes and one pointer a bin: 64 bins up to 2.41, 76 from 2.42, whose uint16 array counts free slots.
    const bins = m.glibc.tcacheStructRequest / 10;
    const layout: TcacheLayout =
      bins > tcache.head.length ? { chunk: offsetOf(holder), bins, slots: 'free', fill: m.mp.tcacheCount } : { chunk: offsetOf(holder), bins, slots: 'used' };
    sidecar.tcache = layout;
    const user = offsetOf(holder) + CHUNK_HDR_SZ;
    for (let i = 0; i < bins; i++) {
      const count = i < tcache.head.length ? tcache.counts[i] : 0;
      sink.half(user + 2 * i, layout.slots === 'free' ? layout.fill - count : count);
      const head = i < tcache.head.length ? tcache.head[i] : NIL;
      const entry = user + 2 * bins + 8 * i;
      // An empty bin's entry is live too (NULL): glibc stores the list's end there when it takes the last one.
      if (head === NIL) {
        putWord(entry, 0n);
        continue;
      }
      if (!inHeap(head)) {
        putWord(entry, FOREIGN_MARKER);
        continue;
      }
      putWord(entry, pointer(head) + BigInt(CHUNK_HDR_SZ));
      for (let p = head; p !== NIL; ) {
        role[p] = TCACHE;
        const next = c.fd[p];
        const at = offsetOf(p) + CHUNK_HDR_SZ;
        putMangled(at, next === NIL ? 0n : inHeap(next) ? pointer(next) + BigInt(CHUNK_HDR_SZ) : FOREIGN_MARKER);
        putWord(at + SIZE_SZ, KEY_MARKER);
        p = next !== NIL && inHeap(next) ? next : NIL;
      }
    }
  }

  // The fastbins: plain heads in the arena, safe-linked fd in the chunks.
  for (let i = 0; i < NFASTBINS; i++) {
    const head = av.fastbins[i];
    if (head === NIL) continue;
    sidecar.fastbins[i] = offsetOf(head);
    for (let p = head; p !== NIL; p = c.fd[p]) {
      role[p] = FASTBIN;
      const next = c.fd[p];
      putMangled(offsetOf(p) + CHUNK_HDR_SZ, next === NIL ? 0n : pointer(next));
    }
  }

  // The bins: fd and bk to chunks or to a bin's header in the arena; nextsize links for large chunks (NULL in
  // the unsorted bin, and for all but the first chunk of each size in a large bin).
  const binLink = (id: number): bigint =>
    id >= av.binBase && id < av.binBase + NBINS ? arena + BigInt(ARENA_BIN_HEADERS + 16 * (id - av.binBase - 1)) : pointer(id);
  for (let bin = 1; bin < NBINS; bin++) {
    const header = av.binBase + bin;
    if (c.fd[header] === header) continue;
    sidecar.bins.push({ bin, fd: offsetOf(c.fd[header]), bk: offsetOf(c.bk[header]) });
    for (let p = c.fd[header]; p !== header; p = c.fd[p]) {
      role[p] = BINNED;
      const at = offsetOf(p) + CHUNK_HDR_SZ;
      putWord(at, binLink(c.fd[p]));
      putWord(at + SIZE_SZ, binLink(c.bk[p]));
      if (c.size[p] >= MIN_LARGE_SIZE && (bin === 1 || bin >= 64)) {
        putWord(at + 2 * SIZE_SZ, c.fdNextsize[p] === NIL ? 0n : pointer(c.fdNextsize[p]));
        putWord(at + 3 * SIZE_SZ, c.bkNextsize[p] === NIL ? 0n : pointer(c.bkNextsize[p]));
      }
    }
  }

  // Every chunk's size word; prev_size where P is clear (the chunk before is free in a bin).
  for (let p = first, previous = NIL; p !== NIL; previous = p, p = c.nextPhys[p]) {
    const at = offsetOf(p);
    const prevFree = previous !== NIL && role[previous] === BINNED;
    putNumber(at + SIZE_SZ, c.size[p] + (prevFree ? 0 : PREV_INUSE));
    if (prevFree) putNumber(at, c.size[previous]);
  }

  sidecar.size = size;
  sidecar.top = topAt - start;
  sidecar.lastRemainder = av.lastRemainder === 0 ? null : av.lastRemainder - start;
  return sidecar;
}
