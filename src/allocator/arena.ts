// The main arena's state (glibc's malloc_state and malloc_par together, one thread) and the list
// operations every algorithm shares: bins with their nextsize rings, tcache, fastbins, and mallinfo2's
// counters kept as chunks move, so that mallinfo2 never walks the heap.
import type { MmapPolicy } from '../policy/api.ts';
import { policyByName } from '../policy/index.ts';
import { SimulatedSystem, type SimulatedSystemOptions } from '../system/simulated.ts';
import type { SystemMemory } from '../system/api.ts';
import { ChunkState, ChunkTable, NIL } from './chunks.ts';
import {
  DEFAULT_MMAP_MAX,
  DEFAULT_MXFAST,
  DEFAULT_TOP_PAD,
  NBINS,
  NFASTBINS,
  TCACHE_FILL_COUNT,
  TCACHE_MAX_BINS,
  inSmallbinRange,
  largebinIndex,
  maxFastFor,
  smallbinIndex,
} from './constants.ts';
import type { CallNotes } from './notes.ts';
import { newNotes } from './notes.ts';

/** The figures of an arena besides the main one that mallinfo2 sums: its heap size and the bytes in use. */
export interface SideArena {
  /** system_mem: the size of its one heap. */
  systemMem: number;
  /** Bytes not in its top: its heap_info and malloc_state headers and the tcache struct's chunk. */
  used: number;
}

/** Bin 1 is the unsorted bin; its header is record 1. */
export const UNSORTED = 1;

export class Arena {
  readonly chunks = new ChunkTable();
  readonly system: SystemMemory;
  readonly policy: MmapPolicy;

  /** av->top: the top chunk (at first a dummy of size 0 outside any region). */
  top: number;
  /**
   * av->last_remainder, as an address: glibc compares the pointer, which may be stale (its chunk merged
   * away), and a chunk id would be reused for another chunk. 0 when unset.
   */
  lastRemainder = 0;
  /** av->have_fastchunks. */
  haveFastchunks = false;
  /** The arena's CONTIGUOUS flag; cleared for good when sysmalloc falls back to mmap. */
  contiguous = true;
  /** global_max_fast. */
  maxFast = maxFastFor(DEFAULT_MXFAST);
  /** Fastbin heads (chunk ids, NIL when empty). */
  readonly fastbins = new Int32Array(NFASTBINS).fill(NIL);
  /** Non-empty regular bins, one bit each (the role of glibc's binmap, kept exact). */
  private readonly binBits = new Uint32Array(4);

  /** The tcache exists once tcache_init has run (the tcache_perthread_struct chunk is allocated). */
  tcacheReady = false;
  /** The chunk holding tcache_perthread_struct (the first heap chunk, 0x290), once made. */
  tcacheStruct = NIL;
  /**
   * A second arena, made when the main arena could not hold the tcache struct (tcache_init retries in a new
   * arena even in a single thread); it holds nothing else, but mallinfo2 counts it. Null until then.
   */
  sideArena: SideArena | null = null;
  readonly tcacheHead = new Int32Array(TCACHE_MAX_BINS).fill(NIL);
  readonly tcacheCount = new Int32Array(TCACHE_MAX_BINS);
  /** mp_.tcache_bins and mp_.tcache_count. */
  tcacheBins = TCACHE_MAX_BINS;
  tcacheFill = TCACHE_FILL_COUNT;

  /** mp_.top_pad. */
  topPad = DEFAULT_TOP_PAD;
  /** mp_.n_mmaps_max (a C int). */
  nMmapsMax = DEFAULT_MMAP_MAX;
  /** mp_.n_mmaps, mp_.max_n_mmaps. */
  nMmaps = 0;
  maxNMmaps = 0;
  /** mp_.mmapped_mem, mp_.max_mmapped_mem. */
  mmappedMem = 0;
  maxMmappedMem = 0;
  /** av->system_mem and max_system_mem. */
  systemMem = 0;
  maxSystemMem = 0;

  /** Bytes and chunks in unsorted, small and large bins. */
  binnedBytes = 0;
  binnedCount = 0;
  /** Bytes and chunks in fastbins. */
  fastBytes = 0;
  fastCount = 0;

  /**
   * For a request above 2^53, which the replay runs with a stand-in size (huge.ts): the exact bytes the call
   * passes to _int_malloc, so that sysmalloc asks the kernel for exactly what glibc asks. null otherwise.
   */
  hugeRequest: bigint | null = null;

  /** What the current call did, for the event stream. */
  notes: CallNotes = newNotes();
  /** The seq of the current call (stamped on the chunks it makes). */
  seq = -1;

  constructor(system: SystemMemory, policy: MmapPolicy) {
    this.system = system;
    this.policy = policy;
    const chunks = this.chunks;
    for (let b = 0; b < NBINS; b++) {
      const header = chunks.create(0, 0, ChunkState.BinHeader);
      chunks.fd[header] = header;
      chunks.bk[header] = header;
      // A header's fd_nextsize is never NULL in glibc (it overlaps the next bin's fd): unlink relies on it.
      chunks.fdNextsize[header] = header;
    }
    this.top = chunks.create(0, 0, ChunkState.Top);
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
    this.linkBetween(p, UNSORTED, c.fd[UNSORTED], ChunkState.Unsorted);
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
      if (c.fd[bin] === bin) this.clearBinBit(bin);
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

  // ---- tcache and fastbins -----------------------------------------------------------------------------

  /** tcache_put. */
  tcachePut(p: number, tidx: number): void {
    const c = this.chunks;
    c.fd[p] = this.tcacheHead[tidx];
    this.tcacheHead[tidx] = p;
    this.tcacheCount[tidx]++;
    c.state[p] = ChunkState.Tcache;
  }

  /** tcache_get: pops the most recent entry. */
  tcacheGet(tidx: number): number {
    const c = this.chunks;
    const p = this.tcacheHead[tidx];
    this.tcacheHead[tidx] = c.fd[p];
    this.tcacheCount[tidx]--;
    c.fd[p] = NIL;
    c.state[p] = ChunkState.InUse;
    return p;
  }

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
    c.madeBy[victim] = this.seq;
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

/** What an arena is built from: a policy (or its `--policy` name) and a kernel (or the simulated one's options). */
export interface ArenaOptions {
  /** glibc (default), fixed:BYTES, heap, mmap, or a policy object. */
  policy?: MmapPolicy | string;
  /** A system layer, or options for the simulated one (the default). */
  system?: SystemMemory | SimulatedSystemOptions;
}

/** A fresh main arena as the options say (the one place Allocator and Replayer make theirs). */
export function createArena(options: ArenaOptions = {}): Arena {
  const policy = typeof options.policy === 'object' ? options.policy : policyByName(options.policy ?? 'glibc');
  const system = options.system && 'sbrk' in options.system ? options.system : new SimulatedSystem(options.system);
  return new Arena(system, policy);
}
