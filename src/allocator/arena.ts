// An arena's state (glibc's malloc_state): its bins with their nextsize rings, fastbins, the top, the last
// remainder, and mallinfo2's counters kept as chunks move, so that mallinfo2 never walks the heap. The
// parameters every arena shares are mp_ (params.ts); the tcache belongs to a thread (tcache.ts).
import type { SystemMemory } from '../system/api.ts';
import { ChunkState, type ChunkTable, NIL } from './chunks.ts';
import { NBINS, NFASTBINS, inSmallbinRange, largebinIndex, smallbinIndex } from './constants.ts';
import type { Malloc } from './malloc.ts';
import type { MallocPar } from './params.ts';

/**
 * One heap of a thread arena (glibc's heap_info): a HEAP_MAX_SIZE-aligned reservation of which the first
 * `size` bytes are in use, the first `mprotectSize` writable. Its header (heap_info, and in an arena's first
 * heap the malloc_state after it) is the start of the heap; chunks follow.
 */
export class Heap {
  constructor(
    /** The reservation's start: a multiple of HEAP_MAX_SIZE. */
    readonly base: number,
    /** h->size and h->mprotect_size. */
    public size: number,
    public mprotectSize: number,
    /** The arena's previous heap (h->prev), or null for its first. */
    public prev: Heap | null,
    /** h->ar_ptr (set as soon as the arena exists: _int_new_arena makes the heap first). */
    public arena: MallocState | null,
  ) {}

  /** The record of the fencepost that closes the heap once a next heap follows it (heap_trim looks for it). */
  closing = -1;

  /** The heap's place in its arena's chain, from 0 (the oracle's heapIndex). */
  get index(): number {
    return this.prev === null ? 0 : this.prev.index + 1;
  }
}

/** Bin 1 is the unsorted bin; its header is record binBase + 1 (record 1 in main_arena). */
export const UNSORTED = 1;

export class MallocState {
  /** The process this arena belongs to: mp_, the current thread's tcache, what the call records. */
  readonly m: Malloc;
  readonly mp: MallocPar;
  readonly chunks: ChunkTable;
  readonly system: SystemMemory;

  /** av->top: the top chunk (at first a dummy of size 0 outside any region). */
  top: number;
  /**
   * av->last_remainder, as an address: glibc compares the pointer, which may be stale (its chunk merged
   * away), and a chunk id would be reused for another chunk. 0 when unset.
   */
  lastRemainder = 0;
  /** av->have_fastchunks. */
  haveFastchunks = false;
  /** The arena's CONTIGUOUS flag; cleared for good when sysmalloc falls back to mmap; never set in a thread arena. */
  contiguous = true;
  /** The record of bin 0's header: bin i's header is record binBase + i (main_arena's are records 0..127). */
  readonly binBase: number;
  /** Fastbin heads (chunk ids, NIL when empty). */
  readonly fastbins = new Int32Array(NFASTBINS).fill(NIL);
  /** Non-empty regular bins, one bit each (the role of glibc's binmap, kept exact). */
  private readonly binBits = new Uint32Array(4);

  /** av->system_mem and max_system_mem. */
  systemMem = 0;
  maxSystemMem = 0;

  /** The arena's number in creation order: 0 for main_arena (the oracle's arenaIndex). */
  readonly index: number;
  /** For a thread arena: the heap its top is in (heap_for_ptr(top)); null for main_arena. */
  heap: Heap | null = null;
  /** av->next: the ring of arenas, main -> newest -> ... -> oldest -> main. */
  next: MallocState = this;
  /** av->next_free: the next arena on the free list. */
  nextFree: MallocState | null = null;
  /** av->attached_threads: the threads whose thread_arena this is. */
  attachedThreads = 1;

  /** Bytes and chunks in unsorted, small and large bins. */
  binnedBytes = 0;
  binnedCount = 0;
  /** Bytes and chunks in fastbins. */
  fastBytes = 0;
  fastCount = 0;

  constructor(m: Malloc, index = 0) {
    this.m = m;
    this.index = index;
    this.mp = m.mp;
    this.chunks = m.chunks;
    this.system = m.system;
    const chunks = this.chunks;
    this.binBase = chunks.createBlock(NBINS, ChunkState.BinHeader);
    for (let b = 0; b < NBINS; b++) {
      const header = this.binBase + b;
      chunks.fd[header] = header;
      chunks.bk[header] = header;
      // A header's fd_nextsize is never NULL in glibc (it overlaps the next bin's fd): unlink relies on it.
      chunks.fdNextsize[header] = header;
    }
    this.top = chunks.create(0, 0, ChunkState.Top);
  }

  /** Whether this is main_arena (the brk heap) rather than a thread arena (heaps of its own). */
  get isMain(): boolean {
    return this.index === 0;
  }

  /** chunksize(av->top). */
  get topSize(): number {
    return this.chunks.size[this.top];
  }

  // ---- regular bins --------------------------------------------------------------------------------

  /** Puts free chunk `p` between `bck` and `fwd` (adjacent in a bin list) and marks it with `state`. */
  linkBetween(p: number, bck: number, fwd: number, state: ChunkState): void {
    const c = this.chunks;
    c.fd[p] = fwd;
    c.bk[p] = bck;
    c.fd[bck] = p;
    c.bk[fwd] = p;
    c.state[p] = state;
    this.binnedBytes += c.size[p];
    this.binnedCount++;
  }

  /** Inserts `p` at the head of the unsorted bin (fd side), with NULL nextsize links as glibc sets them. */
  toUnsortedHead(p: number): void {
    const c = this.chunks;
    c.fdNextsize[p] = NIL;
    c.bkNextsize[p] = NIL;
    const head = this.binBase + UNSORTED;
    this.linkBetween(p, head, c.fd[head], ChunkState.Unsorted);
  }

  /** unlink_chunk: takes `p` out of its bin (unsorted, small or large), keeping the nextsize ring right. */
  unlinkChunk(p: number): void {
    const c = this.chunks;
    const fd = c.fd[p];
    const bk = c.bk[p];
    c.bk[fd] = bk;
    c.fd[bk] = fd;
    if (!inSmallbinRange(c.size[p]) && c.fdNextsize[p] !== NIL) {
      if (c.fdNextsize[fd] === NIL) {
        // The next chunk has p's size: it becomes its group's head and takes over p's nextsize links.
        if (c.fdNextsize[p] === p) {
          c.fdNextsize[fd] = fd;
          c.bkNextsize[fd] = fd;
        } else {
          c.fdNextsize[fd] = c.fdNextsize[p];
          c.bkNextsize[fd] = c.bkNextsize[p];
          c.bkNextsize[c.fdNextsize[p]] = fd;
          c.fdNextsize[c.bkNextsize[p]] = fd;
        }
      } else {
        c.bkNextsize[c.fdNextsize[p]] = c.bkNextsize[p];
        c.fdNextsize[c.bkNextsize[p]] = c.fdNextsize[p];
      }
    }
    const state = c.state[p];
    if (state !== ChunkState.Unsorted) {
      const bin = state === ChunkState.Small ? smallbinIndex(c.size[p]) : largebinIndex(c.size[p]);
      const head = this.binBase + bin;
      if (c.fd[head] === head) this.clearBinBit(bin);
    }
    c.state[p] = ChunkState.InUse;
    c.fd[p] = NIL;
    c.bk[p] = NIL;
    c.fdNextsize[p] = NIL;
    c.bkNextsize[p] = NIL;
    this.binnedBytes -= c.size[p];
    this.binnedCount--;
  }

  /** Marks bin `index` non-empty. */
  markBin(index: number): void {
    this.binBits[index >>> 5] |= 1 << (index & 31);
  }

  private clearBinBit(index: number): void {
    this.binBits[index >>> 5] &= ~(1 << (index & 31));
  }

  /** The lowest non-empty regular bin with index >= `from` (2..126), or 0 when there is none. */
  firstNonEmptyBinFrom(from: number): number {
    for (let word = from >>> 5; word < 4; word++) {
      let bits = this.binBits[word];
      if (word === from >>> 5) bits &= ~((1 << (from & 31)) - 1) >>> 0;
      if (bits !== 0) return word * 32 + (31 - Math.clz32(bits & -bits));
    }
    return 0;
  }

  // ---- fastbins -----------------------------------------------------------------------------

  /** Pushes `p` on its fastbin. */
  fastbinPush(p: number, index: number): void {
    const c = this.chunks;
    c.fd[p] = this.fastbins[index];
    this.fastbins[index] = p;
    c.state[p] = ChunkState.Fastbin;
    this.fastBytes += c.size[p];
    this.fastCount++;
    this.haveFastchunks = true;
  }

  /** Pops the head of fastbin `index`. */
  fastbinPop(index: number): number {
    const c = this.chunks;
    const p = this.fastbins[index];
    this.fastbins[index] = c.fd[p];
    c.fd[p] = NIL;
    c.state[p] = ChunkState.InUse;
    this.fastBytes -= c.size[p];
    this.fastCount--;
    return p;
  }

  // ---- the top ----------------------------------------------------------------------------------------

  /** Carves nb bytes from the start of the top (which must hold nb + MINSIZE): the chunk, now in use. */
  carveFromTop(nb: number): number {
    const c = this.chunks;
    const victim = this.top;
    this.top = c.split(victim, nb, ChunkState.Top, c.madeBy[victim]);
    c.state[victim] = ChunkState.InUse;
    c.madeBy[victim] = this.m.seq;
    return victim;
  }

  // ---- statistics ----------------------------------------------------------------------------------------

  /** Adds to system_mem (its maximum is noted where sysmalloc notes it, noteMaxSystemMem). */
  addSystemMem(bytes: number): void {
    this.systemMem += bytes;
  }

  /** max_system_mem, updated where sysmalloc updates it. */
  noteMaxSystemMem(): void {
    if (this.systemMem > this.maxSystemMem) this.maxSystemMem = this.systemMem;
  }
}
