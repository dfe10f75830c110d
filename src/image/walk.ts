// Decodes a heap image from its bytes and sidecar alone (docs/image.md): every chunk from the heap start to
// the end of the top, and every free list followed from its head, links demangled; no model, no process.
import { MallocscopeError } from '../errors.ts';
import { ARENA_BIN_HEADERS, BIN_COUNT, FASTBIN_COUNT, type ImageSidecar } from './format.ts';

/** A chunk's state, decided by the lists that hold it: none (in use), a tcache bin, a fastbin, a bin, or the top. */
export type ChunkState = 'in-use' | 'tcache' | 'fastbin' | 'unsorted' | 'small' | 'large' | 'top';

/** The words of the image that are pointers: a chunk's links, and the tcache_perthread_struct's entries. */
export type LinkField = 'next' | 'fd' | 'bk' | 'fd_nextsize' | 'bk_nextsize' | 'entries';

/**
 * What a pointer points at: nothing (NULL), a chunk of this heap (for tcache pointers, which name the chunk's
 * user bytes, the chunk they belong to), a bin's header in the arena, another arena's chunk (the foreign
 * marker), or none of these (a broken link, which the walk's problems name).
 */
export type LinkTarget = { kind: 'null' } | { kind: 'chunk'; offset: number } | { kind: 'bin'; bin: number } | { kind: 'foreign' } | { kind: 'stray' };

export interface ImageLink {
  field: LinkField;
  /** The word's offset in the image. */
  at: number;
  /** The word as it is in memory. */
  stored: bigint;
  /** Safe-linked (a tcache next, a fastbin fd): `stored` is (address of the word >> 12) ^ `pointer`. */
  mangled: boolean;
  /** The pointer itself, demangled. */
  pointer: bigint;
  target: LinkTarget;
}

/** A safe-linked word's pointer (a tcache next, a fastbin fd): stored ^ (the word's address >> 12). */
export function demangle(stored: bigint, base: bigint, at: number): bigint {
  return stored ^ ((base + BigInt(at)) >> 12n);
}

export interface ImageChunk {
  /** The chunk's start, from the heap start. */
  offset: number;
  size: number;
  /** The size word's bits: A (NON_MAIN_ARENA), M (IS_MMAPPED), P (PREV_INUSE). */
  flags: { A: boolean; M: boolean; P: boolean };
  /** prev_size, which glibc keeps only while the previous chunk is free in a bin (P clear); else null. */
  prevSize: number | null;
  state: ChunkState;
  /** The tcache bin, fastbin index or bin (1 the unsorted bin) that holds it; null for in-use and top. */
  bin: number | null;
  links: ImageLink[];
  /** A tcache entry's key word. */
  key?: bigint;
  /** The main thread's tcache_perthread_struct (an in-use chunk of glibc's own). */
  tcacheStruct?: true;
}

export interface FreeList {
  kind: 'tcache' | 'fastbin' | 'bin';
  /** The tcache bin, the fastbin index, or the bin (1 the unsorted bin, 2 to 63 small, 64 on large). */
  index: number;
  /** Its chunks' offsets, from the head on. */
  chunks: number[];
  /** tcache: the number the struct gives (counts[i], or fill - num_slots[i]). */
  count?: number;
  /** tcache: the list went on into another arena's chunk, which the image does not hold. */
  leavesHeap?: boolean;
}

export interface HeapWalk {
  sidecar: ImageSidecar;
  chunks: ImageChunk[];
  /** Every list that holds a chunk (empty ones left out). */
  lists: FreeList[];
  /** What breaks glibc's invariants, one sentence each; empty for a sound heap. */
  problems: string[];
}

const SIZE_BITS = 7n;
const MINSIZE = 32;
const MIN_LARGE_SIZE = 0x400;
/** The largest chunk of a small tcache bin, and the number of those bins (2.42's large tcache bins follow them). */
const TCACHE_SMALL_BINS = 64;
const MAX_TCACHE_SMALL_SIZE = 0x410;

/**
 * The large bin of a chunk size on x86-64: bins of 64, 512, 4096, 32768 and 262144 bytes, then the rest. The
 * walker reads glibc's rule itself rather than the model's (allocator/constants.ts largebinIndex): it checks images
 * without the model.
 */
export function largeBinIndex(size: number): number {
  // From 2^31 up every tier's quotient is past its limit, and >>> would wrap sizes of 2^32 and more: the last bin.
  if (size >= 0x7fff0000) return 126;
  if (size >>> 6 <= 48) return 48 + (size >>> 6);
  if (size >>> 9 <= 20) return 91 + (size >>> 9);
  if (size >>> 12 <= 10) return 110 + (size >>> 12);
  if (size >>> 15 <= 4) return 119 + (size >>> 15);
  if (size >>> 18 <= 2) return 124 + (size >>> 18);
  return 126;
}

/** The chunk sizes a tcache bin holds: one size below 64, a range of sizes (2.42's large bins) from 64 on. */
function tcacheBinFits(bin: number, size: number): boolean {
  if (bin < TCACHE_SMALL_BINS) return size === MINSIZE + 16 * bin;
  const low = 2 ** (bin - TCACHE_SMALL_BINS + 10);
  return size > MAX_TCACHE_SMALL_SIZE && size >= low && size < 2 * low;
}

const hexOffset = (offset: number) => `offset ${offset} (0x${offset.toString(16)})`;

/** The chunk of the tcache_perthread_struct: two bytes and a pointer a bin, plus the size word, to 16 bytes. */
export function tcacheChunkSize(bins: number): number {
  return (10 * bins + 8 + 15) & ~15;
}

/**
 * Walks an image: `bytes` as the oracle (or the model) wrote them, with their sidecar. A heap whose chunks do
 * not tile it to the end of the top cannot be walked (IMAGE_CHUNKS); anything else found wrong is a problem
 * of the walk. `name` (the image's file) starts the errors.
 */
/** Options of walkImage. */
export interface WalkOptions {
  /**
   * The bytes are a live heap's memory, not an image with zeros beside the metadata (the native backend's
   * `metadata` mode): in-use chunks hold the program's bytes, so a word in one is no sign of an unnamed list.
   */
  programBytes?: boolean;
}

export function walkImage(bytes: Uint8Array, sidecar: ImageSidecar, name = 'the image', options: WalkOptions = {}): HeapWalk {
  if (bytes.length !== sidecar.size) {
    throw new MallocscopeError('IMAGE_SIZE', `${name}: the image holds ${bytes.length} bytes, its sidecar says ${sidecar.size}`);
  }
  const problems: string[] = [];
  const chunks: ImageChunk[] = [];
  const lists: FreeList[] = [];
  const walk: HeapWalk = { sidecar, chunks, lists, problems };
  const top = sidecar.top;
  if (top === null) return walk;

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const broken = (what: string): never => {
    throw new MallocscopeError('IMAGE_CHUNKS', `${name}: ${what}`);
  };
  const word = (at: number): bigint => (at + 8 <= bytes.length ? view.getBigUint64(at, true) : broken(`a word at ${hexOffset(at)} lies past the image's end`));
  const base = sidecar.base;
  const size = BigInt(sidecar.size);

  // The chunks, by their size words, to the top.
  const index = new Map<number, number>();
  const chunkAt = (offset: number, state: ChunkState): ImageChunk => {
    const sizeWord = word(offset + 8);
    const chunkSize = Number(sizeWord & ~SIZE_BITS);
    const P = (sizeWord & 1n) !== 0n;
    const chunk: ImageChunk = {
      offset,
      size: chunkSize,
      flags: { A: (sizeWord & 4n) !== 0n, M: (sizeWord & 2n) !== 0n, P },
      prevSize: P ? null : Number(word(offset)),
      state,
      bin: null,
      links: [],
    };
    index.set(offset, chunks.length);
    chunks.push(chunk);
    return chunk;
  };
  for (let at = 0; at < top; ) {
    const chunk = chunkAt(at, 'in-use');
    if (chunk.size < MINSIZE || chunk.size % 16 !== 0 || chunk.size > top - at) {
      broken(`the chunk at ${hexOffset(at)} has size ${chunk.size}, which does not lead to the top at ${hexOffset(top)}`);
    }
    at += chunk.size;
  }
  const topChunk = chunkAt(top, 'top');
  if (topChunk.size !== sidecar.size - top)
    broken(`the top chunk's size ${topChunk.size} does not reach the image's end (${sidecar.size - top} bytes after it)`);

  /** A pointer as a target; `user` for tcache pointers, which name a chunk's user bytes (chunk + 16). */
  const target = (pointer: bigint, user: boolean): LinkTarget => {
    if (pointer === 0n) return { kind: 'null' };
    if (pointer === sidecar.foreign) return { kind: 'foreign' };
    if (pointer >= base && pointer < base + size) {
      const offset = Number(pointer - base) - (user ? 16 : 0);
      return index.has(offset) ? { kind: 'chunk', offset } : { kind: 'stray' };
    }
    const fromHeaders = pointer - sidecar.arena - BigInt(ARENA_BIN_HEADERS);
    if (fromHeaders >= 0n && fromHeaders < BigInt(16 * BIN_COUNT) && fromHeaders % 16n === 0n) return { kind: 'bin', bin: Number(fromHeaders / 16n) + 1 };
    return { kind: 'stray' };
  };
  const link = (chunk: ImageChunk, field: LinkField, at: number, mangled: boolean, user: boolean): ImageLink => {
    const stored = word(at);
    const pointer = mangled ? demangle(stored, base, at) : stored;
    const made: ImageLink = { field, at, stored, mangled, pointer, target: target(pointer, user) };
    chunk.links.push(made);
    return made;
  };
  /** Claims the chunk at `offset` for a list; a problem (and null) when it is no free chunk it could be. */
  const claim = (offset: number, state: ChunkState, bin: number, list: string): ImageChunk | null => {
    const k = index.get(offset);
    const chunk = k === undefined ? undefined : chunks[k];
    if (chunk === undefined || chunk.state === 'top') {
      problems.push(`${list} holds ${hexOffset(offset)}, which is ${chunk ? 'the top' : 'not the start of a chunk'}`);
      return null;
    }
    if (chunk.state !== 'in-use' || chunk.tcacheStruct) {
      problems.push(
        `${list} holds the chunk at ${hexOffset(offset)}, which is ${chunk.tcacheStruct ? 'the tcache itself' : `in ${chunk.state} ${chunk.bin} already`}`,
      );
      return null;
    }
    chunk.state = state;
    chunk.bin = bin;
    return chunk;
  };

  // The main thread's tcache: the struct's counts and entries, each bin's entries through their `next`.
  const tcache = sidecar.tcache;
  const structIndex = tcache ? index.get(tcache.chunk) : undefined;
  if (tcache && structIndex === undefined) problems.push(`the tcache is said to be at ${hexOffset(tcache.chunk)}, which is not the start of a chunk`);
  else if (tcache && structIndex !== undefined) {
    const holder = chunks[structIndex];
    const user = tcache.chunk + 16;
    // glibc allocates the struct at its own size (0x290 for 64 bins, 0x300 for 2.42's 76), never from the top.
    if (holder.state === 'top') problems.push(`the tcache is said to be at ${hexOffset(tcache.chunk)}, which is the top`);
    else if (holder.size !== tcacheChunkSize(tcache.bins))
      problems.push(
        `the tcache's chunk at ${hexOffset(tcache.chunk)} has ${holder.size} bytes, not the ${tcacheChunkSize(tcache.bins)} of ${tcache.bins} bins`,
      );
    else {
      holder.tcacheStruct = true;
      for (let bin = 0; bin < tcache.bins; bin++) {
        const slots = view.getUint16(user + 2 * bin, true);
        const count = tcache.slots === 'used' ? slots : tcache.fill - slots;
        const list = `tcache bin ${bin}`;
        const head = link(holder, 'entries', user + 2 * tcache.bins + 8 * bin, false, true);
        if (head.target.kind === 'null') holder.links.pop();
        const found: number[] = [];
        let leavesHeap = false;
        for (let next = head; next.target.kind !== 'null'; ) {
          if (next.target.kind === 'foreign') {
            leavesHeap = true;
            break;
          }
          if (next.target.kind !== 'chunk') {
            problems.push(`${list} points at 0x${next.pointer.toString(16)}, which is no chunk's user bytes (at ${hexOffset(next.at)})`);
            break;
          }
          const chunk = claim(next.target.offset, 'tcache', bin, list);
          if (chunk === null) break;
          if (!tcacheBinFits(bin, chunk.size)) problems.push(`${list} holds a chunk of ${chunk.size} bytes at ${hexOffset(chunk.offset)}`);
          if (found.length > 0 && chunk.size < chunks[index.get(found[found.length - 1]) as number].size) {
            problems.push(`${list} is not in ascending sizes at ${hexOffset(chunk.offset)}`);
          }
          found.push(chunk.offset);
          next = link(chunk, 'next', chunk.offset + 16, true, true);
          chunk.key = word(chunk.offset + 24);
          if (chunk.key !== sidecar.key) problems.push(`the tcache entry at ${hexOffset(chunk.offset)} has key 0x${chunk.key.toString(16)}, not the marker`);
        }
        if (count < 0 || (leavesHeap ? found.length > count : found.length !== count)) {
          problems.push(`${list} counts ${count} entries but holds ${found.length}${leavesHeap ? ' before it leaves the heap' : ''}`);
        }
        if (found.length > 0 || count !== 0) lists.push({ kind: 'tcache', index: bin, chunks: found, count, ...(leavesHeap ? { leavesHeap } : {}) });
      }
    }
  }

  // The fastbins, from main_arena's heads, through their mangled fd.
  for (let bin = 0; bin < FASTBIN_COUNT; bin++) {
    const found: number[] = [];
    const list = `fastbin ${bin}`;
    for (let offset = sidecar.fastbins[bin]; offset !== null; ) {
      const chunk = claim(offset, 'fastbin', bin, list);
      if (chunk === null) break;
      if (chunk.size !== MINSIZE + 16 * bin) problems.push(`${list} holds a chunk of ${chunk.size} bytes at ${hexOffset(offset)}`);
      found.push(offset);
      const fd = link(chunk, 'fd', offset + 16, true, false);
      if (fd.target.kind !== 'chunk' && fd.target.kind !== 'null') {
        problems.push(`${list}: the fd at ${hexOffset(fd.at)} points at 0x${fd.pointer.toString(16)}, no chunk`);
        break;
      }
      offset = fd.target.kind === 'chunk' ? fd.target.offset : null;
    }
    if (found.length > 0) lists.push({ kind: 'fastbin', index: bin, chunks: found });
  }

  // The bins, from the heads the sidecar gives, through fd; every bk checked against the way back.
  for (const head of sidecar.bins) {
    const bin = head.bin;
    const state: ChunkState = bin === 1 ? 'unsorted' : bin < 64 ? 'small' : 'large';
    const list = bin === 1 ? 'the unsorted bin' : `${state} bin ${bin}`;
    const found: number[] = [];
    let previous: LinkTarget = { kind: 'bin', bin };
    for (let offset: number | null = head.fd; offset !== null; ) {
      const chunk = claim(offset, state, bin, list);
      if (chunk === null) break;
      const fits = state === 'small' ? chunk.size === 16 * bin : state === 'large' ? largeBinIndex(chunk.size) === bin : chunk.size >= MINSIZE;
      if (!fits) problems.push(`${list} holds a chunk of ${chunk.size} bytes at ${hexOffset(offset)}`);
      found.push(offset);
      const fd = link(chunk, 'fd', offset + 16, false, false);
      const bk = link(chunk, 'bk', offset + 24, false, false);
      if (!sameTarget(bk.target, previous)) problems.push(`${list}: the bk of the chunk at ${hexOffset(offset)} does not point back along the fd`);
      if (chunk.size >= MIN_LARGE_SIZE && state !== 'small') {
        link(chunk, 'fd_nextsize', offset + 32, false, false);
        link(chunk, 'bk_nextsize', offset + 40, false, false);
      }
      previous = { kind: 'chunk', offset };
      if (fd.target.kind === 'bin' && fd.target.bin === bin) offset = null;
      else if (fd.target.kind === 'chunk') offset = fd.target.offset;
      else {
        problems.push(`${list}: the fd at ${hexOffset(fd.at)} points at 0x${fd.pointer.toString(16)}, neither a chunk nor its header`);
        break;
      }
    }
    if (found.length > 0 && found[found.length - 1] !== head.bk) problems.push(`${list}: its header's bk is ${hexOffset(head.bk)}, not its last chunk`);
    if (state === 'large')
      checkNextsize(
        found.map((offset) => chunks[index.get(offset) as number]),
        list,
        problems,
      );
    if (state === 'unsorted') {
      for (const offset of found) {
        const chunk = chunks[index.get(offset) as number];
        if (chunk.links.some((l) => (l.field === 'fd_nextsize' || l.field === 'bk_nextsize') && l.target.kind !== 'null')) {
          problems.push(`the unsorted chunk at ${hexOffset(offset)} has nextsize links (glibc clears them)`);
        }
      }
    }
    lists.push({ kind: 'bin', index: bin, chunks: found });
  }

  // Images hold the metadata of the main arena's lists alone (docs/image.md; other threads' tcaches are left
  // out too): an in-use chunk has no word at 16 or 24, where every free list writes one (a safe-linked NULL is
  // not 0, a tcache entry has its key). One there is a list the sidecar does not name.
  for (const chunk of options.programBytes ? [] : chunks) {
    if (chunk.state !== 'in-use' || chunk.tcacheStruct) continue;
    for (const at of [chunk.offset + 16, chunk.offset + 24]) {
      if (word(at) !== 0n) {
        problems.push(
          `the in-use chunk at ${hexOffset(chunk.offset)} holds 0x${word(at).toString(16)} at ${hexOffset(at)}: a free list the sidecar does not name`,
        );
        break;
      }
    }
  }

  // The size words' bits against the states: a chunk free in a bin clears its successor's P and leaves its
  // size in the successor's prev_size; every other chunk keeps P set. glibc merges neighbours free in bins.
  for (let k = 0; k < chunks.length; k++) {
    const chunk = chunks[k];
    if (chunk.flags.A || chunk.flags.M)
      problems.push(`the chunk at ${hexOffset(chunk.offset)} has the ${chunk.flags.A ? 'A' : 'M'} bit, which no chunk of the main heap has`);
    if (k === 0 && !chunk.flags.P) problems.push('the first chunk has P clear: nothing comes before it');
    const next = chunks[k + 1];
    if (next === undefined) continue;
    const binned = isBinned(chunk.state);
    if (binned && (next.flags.P || next.prevSize !== chunk.size)) {
      problems.push(
        `the chunk after the free one at ${hexOffset(chunk.offset)} ${next.flags.P ? 'has P set' : `has prev_size ${next.prevSize}, not ${chunk.size}`}`,
      );
    }
    if (!binned && !next.flags.P) problems.push(`the chunk after the ${chunk.state} one at ${hexOffset(chunk.offset)} has P clear`);
    if (binned && (isBinned(next.state) || next.state === 'top'))
      problems.push(`the free chunk at ${hexOffset(chunk.offset)} is next to the ${next.state} one: glibc merges them`);
  }
  return walk;
}

function isBinned(state: ChunkState): boolean {
  return state === 'unsorted' || state === 'small' || state === 'large';
}

function sameTarget(a: LinkTarget, b: LinkTarget): boolean {
  if (a.kind === 'chunk' && b.kind === 'chunk') return a.offset === b.offset;
  if (a.kind === 'bin' && b.kind === 'bin') return a.bin === b.bin;
  return false;
}

/**
 * A large bin runs in descending sizes; the first chunk of each size is in the nextsize ring (fd_nextsize to
 * the next smaller size, bk_nextsize to the next larger, wrapping round), the others have both NULL.
 */
function checkNextsize(binChunks: ImageChunk[], list: string, problems: string[]): void {
  const leaders = binChunks.filter((c, i) => i === 0 || binChunks[i - 1].size !== c.size);
  binChunks.forEach((c, i) => {
    if (i > 0 && binChunks[i - 1].size < c.size) problems.push(`${list} is not in descending sizes at ${hexOffset(c.offset)}`);
  });
  for (const chunk of binChunks) {
    const fdNext = chunk.links.find((l) => l.field === 'fd_nextsize')?.target;
    const bkNext = chunk.links.find((l) => l.field === 'bk_nextsize')?.target;
    const at = leaders.indexOf(chunk);
    if (at < 0) {
      if (fdNext?.kind !== 'null' || bkNext?.kind !== 'null')
        problems.push(`${list}: the chunk at ${hexOffset(chunk.offset)} repeats a size but has nextsize links`);
      continue;
    }
    const down = leaders[(at + 1) % leaders.length];
    const up = leaders[(at + leaders.length - 1) % leaders.length];
    if (fdNext?.kind !== 'chunk' || fdNext.offset !== down.offset || bkNext?.kind !== 'chunk' || bkNext.offset !== up.offset) {
      problems.push(`${list}: the nextsize links of the chunk at ${hexOffset(chunk.offset)} are not the ring of sizes`);
    }
  }
}
