// sysmalloc, systrim and malloc_trim's mtrim (docs/glibc.md §2, §4, §5, §6): where the allocator asks the
// kernel for memory, the one place the brk-or-mmap decision is made, and where it gives memory back.
import type { MallocState } from './arena.ts';
import { UNSORTED } from './arena.ts';
import { ChunkState, NIL } from './chunks.ts';
import {
  CHUNK_HDR_SZ,
  MALLOC_ALIGNMENT,
  MALLOC_CHUNK_STRUCT_SIZE,
  MINSIZE,
  MMAP_AS_MORECORE_SIZE,
  NBINS,
  SIZE_SZ,
  alignDown,
  alignUp,
  largebinIndex,
} from './constants.ts';
import { intFree, mallocConsolidate } from './int-free.ts';
import type { Heap } from './arena.ts';
import { closeHeap, growHeap, newHeap, noteHeap } from './heap.ts';
import type { MtrimNote, TrimNote } from './notes.ts';

import { alignUpExact, big, exactNb, sizeT, sizeTFromInt, wrap, type SizeT } from './size-t.ts';

const TWO_63 = 1n << 63n;
const TWO_64 = 1n << 64n;

/** sysmalloc(nb, av): mmap the chunk, or grow the heap and carve it from the new top. NIL on failure. */
export function sysmalloc(av: MallocState, standInNb: number): number {
  const c = av.chunks;
  const system = av.system;
  const page = system.pageSize;
  // A request above 2^53 runs with a stand-in size up to here; from here on its exact size decides the calls.
  // (A number above 2^53 from the API is an integer already; it too is taken exactly from here.)
  // (The stand-in's own chunk only: the tcache struct, allocated first on the way, is what it is.)
  const nb = exactNb(av.m.hugeRequest, standInNb);

  // The brk-or-mmap decision (docs/glibc.md §2): a chunk of at least mp_.mmap_threshold gets its own mapping
  // while fewer than mp_.n_mmaps_max exist.
  const mp = av.mp;
  const triedMmap = nb >= mp.mmapThreshold && mp.nMmaps < mp.nMmapsMax;
  const note = {
    nb,
    topSize: c.size[av.top],
    mmapThreshold: mp.mmapThreshold,
    triedMmap,
    mmapped: false,
    aboveThreshold: nb >= mp.mmapThreshold,
    mmapMaxReached: mp.nMmaps >= mp.nMmapsMax,
    nMmapsMax: mp.nMmapsMax,
    topPad: sizeTFromInt(mp.topPad),
  };
  av.m.notes.sysmalloc = note;
  if (triedMmap) {
    const mapped = sysmallocMmap(av, nb);
    if (mapped !== NIL) {
      note.mmapped = true;
      return mapped;
    }
  }

  if (!av.isMain) return sysmallocThreadArena(av, nb, triedMmap);

  const oldTop = av.top;
  const oldSize = c.size[oldTop];
  const oldEnd = c.address[oldTop] + oldSize;

  // size = nb + top_pad + MINSIZE, less the old top when contiguous, in whole pages (size_t arithmetic).
  const grow = growthSize(av, nb, oldSize);
  // glibc holds this size in a signed long and calls MORECORE only when it is positive: from 2^63 up, never.
  let brk = grow === 0 || grow >= TWO_63 ? -1 : morecore(av, grow);
  // What the break moved by, as a number: a size_t near 2^64 that shrank the break adds as its negative.
  let size = typeof grow === 'number' ? grow : Number(grow - TWO_64);
  let sndBrk = -1;

  if (brk === -1) {
    // sbrk failed: the mmap fallback (fallbackSize: its size depends on the version).
    const fallback = fallbackSize(av, grow, oldSize);
    if (fallback > nb) {
      const mapped = system.mmap(fallback);
      if (mapped !== -1) {
        // A mapping was granted, so its length is a number (below 2^47).
        const length = fallback as number;
        av.contiguous = false;
        brk = mapped;
        sndBrk = mapped + length;
        size = length;
      }
    }
  }

  if (brk !== -1) {
    av.addSystemMem(size);
    if (brk === oldEnd && sndBrk === -1) {
      // The break moved up right after the top: the top simply grows.
      c.size[oldTop] = oldSize + size;
    } else if (av.contiguous && oldSize !== 0 && brk < oldEnd) {
      throw new AllocatorAbort('break adjusted to free malloc space');
    } else {
      let alignedBrk = brk;
      let correction = 0;
      if (av.contiguous) {
        // A foreign sbrk (or the first call): count the gap, align the start, ask again for the old top's
        // size and for the padding to a page end.
        if (oldSize !== 0) av.addSystemMem(brk - oldEnd);
        const frontMisalign = (brk + CHUNK_HDR_SZ) % MALLOC_ALIGNMENT;
        if (frontMisalign > 0) {
          correction = MALLOC_ALIGNMENT - frontMisalign;
          alignedBrk += correction;
        }
        correction += oldSize;
        const endMisalign = brk + size + correction;
        correction += alignUp(endMisalign, page) - endMisalign;
        sndBrk = system.sbrk(correction);
        if (sndBrk === -1) {
          correction = 0;
          sndBrk = system.sbrk(0);
        }
      } else if (sndBrk === -1) {
        sndBrk = system.sbrk(0);
      }
      if (sndBrk !== -1) {
        const newTop = c.create(alignedBrk, sndBrk - alignedBrk + correction, ChunkState.Top, av.m.seq);
        av.top = newTop;
        av.addSystemMem(correction);
        if (oldSize !== 0) fencepostOldTop(av, oldTop, oldSize);
        else c.release(oldTop);
      }
    }
  }
  av.noteMaxSystemMem();

  if (typeof nb === 'number' && c.size[av.top] >= nb + MINSIZE) {
    av.m.notes.path = 'sysmalloc';
    return av.carveFromTop(nb);
  }
  return NIL;
}

/**
 * sysmalloc for a thread arena: grow the top's heap by what the request lacks (no pad), else a new heap after
 * it for the request (with the pad), the old heap closed by fenceposts and its top freed; else an mmap, when
 * none was tried yet. Then the chunk comes from the top, as in main_arena.
 */
function sysmallocThreadArena(av: MallocState, nb: SizeT, triedMmap: boolean): number {
  const c = av.chunks;
  const m = av.m;
  const oldTop = av.top;
  const oldSize = c.size[oldTop];
  const oldHeap = av.heap as Heap;
  const oldHeapSize = oldHeap.size;
  // (A request past 2^53 lacks more than any heap holds: grow_heap refuses it.)
  const lacking = typeof nb === 'number' ? MINSIZE + nb - oldSize : Number.POSITIVE_INFINITY;
  if (lacking > 0 && growHeap(m, oldHeap, lacking)) {
    av.addSystemMem(oldHeap.size - oldHeapSize);
    c.size[oldTop] = oldHeap.base + oldHeap.size - c.address[oldTop];
    noteHeap(av, oldHeap, 'grow', oldHeap.size - oldHeapSize);
  } else {
    const heap = typeof nb === 'number' ? newHeap(m, nb + MINSIZE + m.glibc.heapInfoSize) : null;
    if (heap !== null) {
      heap.arena = av;
      heap.prev = oldHeap;
      av.heap = heap;
      av.addSystemMem(heap.size);
      noteHeap(av, heap, 'new', heap.size);
      av.top = c.create(heap.base + m.glibc.heapInfoSize, heap.size - m.glibc.heapInfoSize, ChunkState.Top, m.seq);
      closeHeap(av, oldHeap, oldTop, (p) => intFree(av, p, true));
    } else if (!triedMmap) {
      const mapped = sysmallocMmap(av, nb);
      if (mapped !== NIL) {
        if (m.notes.sysmalloc) m.notes.sysmalloc.mmapped = true;
        return mapped;
      }
    }
  }
  av.noteMaxSystemMem();
  if (typeof nb === 'number' && c.size[av.top] >= nb + MINSIZE) {
    m.notes.path = 'sysmalloc';
    return av.carveFromTop(nb);
  }
  return NIL;
}

/**
 * MORECORE(size): sbrk takes the size_t as a ptrdiff_t, so from 2^63 up it is a negative increment, which
 * sbrk refuses without a system call when it would take the break below address 0; otherwise the kernel
 * decides. -1 when the break did not move.
 */
function morecore(av: MallocState, size: SizeT): number {
  if (typeof size === 'number' || size < TWO_63) return av.system.sbrk(size);
  const increment = size - TWO_64;
  if (-increment > BigInt(av.system.sbrk(0))) return -1;
  return av.system.sbrk(Number(increment));
}

/**
 * The mmap fallback's length: the growth plus the old top (when contiguous), rounded to `unit`, at least
 * `least`. 2.35–2.37 round to whole MiB with a page as the least; 2.34 and 2.38 on, to pages with 1 MiB.
 */
function fallbackSize(av: MallocState, grow: SizeT, oldSize: number): SizeT {
  const page = av.system.pageSize;
  const inPages = av.m.glibc.mmapFallbackInPages;
  const unit = inPages ? page : MMAP_AS_MORECORE_SIZE;
  const least = inPages ? MMAP_AS_MORECORE_SIZE : page;
  if (typeof grow === 'number' && grow + oldSize + MMAP_AS_MORECORE_SIZE <= Number.MAX_SAFE_INTEGER) {
    let fallback = grow;
    if (av.contiguous) fallback = alignUp(fallback + oldSize, unit);
    return Math.max(fallback, least);
  }
  let fallback = big(grow);
  if (av.contiguous) fallback = alignUpExact(fallback + BigInt(oldSize), unit);
  return fallback < BigInt(least) ? least : sizeT(fallback);
}

/**
 * The old top cannot be merged with the new one: shrink it by two 16-byte fenceposts that close its region,
 * and free what is left (as _int_free does: since 2.42 past the tcache).
 */
function fencepostOldTop(av: MallocState, oldTop: number, oldSize: number): void {
  const c = av.chunks;
  // alignDown, not `& ~15`: JavaScript's bit operators cut to 32 bits, and an old top can pass 4 GiB
  const keep = alignDown(oldSize - 2 * CHUNK_HDR_SZ, MALLOC_ALIGNMENT);
  c.state[oldTop] = ChunkState.InUse;
  let last = oldTop;
  if (keep === 0) {
    // Nothing left of the old top: the fenceposts take its place.
    c.size[oldTop] = CHUNK_HDR_SZ;
    c.state[oldTop] = ChunkState.Fencepost;
  } else {
    c.size[oldTop] = keep;
    if (keep < MINSIZE) c.state[oldTop] = ChunkState.Fencepost;
    last = c.create(c.address[oldTop] + keep, CHUNK_HDR_SZ, ChunkState.Fencepost, av.m.seq);
    c.linkAfter(oldTop, last);
  }
  const second = c.create(c.address[last] + CHUNK_HDR_SZ, CHUNK_HDR_SZ, ChunkState.Fencepost, av.m.seq);
  c.linkAfter(last, second);
  if (keep >= MINSIZE) intFree(av, oldTop, true);
}

/** sysmalloc's mmap path: the chunk gets a mapping of its own. NIL when the mmap fails. */
function sysmallocMmap(av: MallocState, nb: SizeT): number {
  if (typeof nb === 'bigint') {
    // Exact size_t arithmetic; the test catches the wrap past 2^64. No kernel grants such a length.
    const length = alignUpExact(nb + BigInt(SIZE_SZ), av.system.pageSize);
    if (length > nb) av.system.mmap(length);
    return NIL;
  }
  const size = alignUp(nb + SIZE_SZ, av.system.pageSize);
  const mapped = av.system.mmap(size);
  if (mapped === -1) return NIL;
  const p = av.chunks.create(mapped, size, ChunkState.Mmapped, av.m.seq);
  av.mp.nMmaps++;
  if (av.mp.nMmaps > av.mp.maxNMmaps) av.mp.maxNMmaps = av.mp.nMmaps;
  av.mp.mmappedMem += size;
  if (av.mp.mmappedMem > av.mp.maxMmappedMem) av.mp.maxMmappedMem = av.mp.mmappedMem;
  av.m.notes.path = 'mmap';
  return p;
}

/** munmap_chunk: unmaps an mmapped chunk (with its memalign front gap) and forgets it. */
export function munmapChunk(av: MallocState, p: number): void {
  const c = av.chunks;
  const total = c.lead[p] + c.size[p];
  av.mp.nMmaps--;
  av.mp.mmappedMem -= total;
  av.system.munmap(c.address[p] - c.lead[p], total);
  c.release(p);
}

/**
 * systrim(pad): gives the top's whole free pages above `pad` back with a negative sbrk, when the top ends
 * at the break. Returns whether the break moved.
 *
 * glibc computes in size_t: with a 32-byte top, top_size - MINSIZE - 1 wraps around, the "extra" to release
 * is nearly 2^64, and sbrk(-extra) grows the heap by a page or more instead (seen with M_TRIM_THRESHOLD 0).
 * `pad` may be negative here: a negative M_TOP_PAD, which glibc holds as a huge size_t; or a bigint, a
 * malloc_trim pad above 2^53 taken exactly.
 */
export function systrim(av: MallocState, pad: number | bigint, note: Pick<TrimNote, 'excess' | 'verdict'> | null = null): boolean {
  const c = av.chunks;
  const page = av.system.pageSize;
  const top = av.top;
  const topSize = c.size[top];
  const extra = trimExtra(topSize, pad, page);
  if (note) {
    note.excess = typeof pad === 'number' ? topSize - MINSIZE - 1 - pad : 0;
    note.verdict = note.excess <= 0 ? 'no-excess' : 'under-page';
  }
  if (extra === 0) return false;
  const currentBrk = av.system.sbrk(0);
  if (note) note.verdict = 'not-at-break';
  if (currentBrk !== c.address[top] + topSize) return false;
  // MORECORE(-extra): the size_t -extra, which sbrk takes as a ptrdiff_t.
  morecore(av, sizeT(wrap(-big(extra))));
  const newBrk = av.system.sbrk(0);
  const released = currentBrk - newBrk;
  if (released === 0) return false;
  if (newBrk <= c.address[top] + SIZE_SZ) {
    // A huge pad with a top under 33 bytes wraps extra to a small positive size: the break drops below the
    // top chunk, and glibc's write of the top's new size faults.
    throw new AllocatorAbort(`systrim moved the break ${released} bytes down, below the top chunk's header, and writes there`, 'SIGSEGV');
  }
  av.systemMem -= released;
  c.size[top] = topSize - released;
  av.m.notes.trims++;
  av.m.notes.trimmedBytes += released;
  if (note) note.verdict = released > 0 ? 'released' : 'wrapped';
  return true;
}

/** systrim's extra: top_area less pad in whole pages, as size_t; 0 when top_area is not above pad. */
function trimExtra(topSize: number, pad: number | bigint, page: number): SizeT {
  // The common case, a non-negative number pad and a top of more than 32 bytes, wraps nowhere: doubles do.
  if (typeof pad === 'number' && pad >= 0 && topSize > MINSIZE) {
    const topArea = topSize - MINSIZE - 1;
    return topArea <= pad ? 0 : alignDown(topArea - pad, page);
  }
  // Otherwise top_area and pad are compared, and extra computed, as size_t: exact, wrapped to 64 bits.
  const topArea = wrap(BigInt(topSize - MINSIZE - 1));
  const padT = wrap(BigInt(pad));
  return topArea <= padT ? 0 : sizeT(wrap(topArea - padT) & ~BigInt(page - 1));
}

/**
 * mtrim (malloc_trim's work on the main arena): consolidate, madvise the whole pages inside free chunks of
 * the unsorted bin and of bins for sizes of a page or more, then systrim(pad).
 */
export function mtrim(av: MallocState, pad: number | bigint): boolean {
  const c = av.chunks;
  const page = av.system.pageSize;
  const notes = av.m.notes;
  const fastCount = av.fastCount;
  mallocConsolidate(av);
  const note: MtrimNote | null = notes.detail
    ? { consolidated: fastCount, advisedChunks: 0, advisedBytes: 0, top: av.topSize, reserve: MINSIZE + 1, topVerdict: null }
    : null;
  if (note) notes.mtrim = note;
  let result = false;
  const firstPageBin = largebinIndex(page);
  for (let bin = 1; bin < NBINS; bin++) {
    if (bin !== UNSORTED && bin < firstPageBin) continue;
    const head = av.binBase + bin;
    for (let p = c.bk[head]; p !== head; p = c.bk[p]) {
      let size = c.size[p];
      if (size > page - 1 + MALLOC_CHUNK_STRUCT_SIZE) {
        const alignedMem = alignUp(c.address[p] + MALLOC_CHUNK_STRUCT_SIZE, page);
        size -= alignedMem - c.address[p];
        if (size > page - 1) {
          av.system.madvise(alignedMem, alignDown(size, page));
          if (note) {
            note.advisedChunks++;
            note.advisedBytes += alignDown(size, page);
          }
          result = true;
        }
      }
    }
  }
  // Only main_arena's top goes back here; a thread arena's heaps shrink in heap_trim, after frees.
  if (!av.isMain) return result;
  const verdict = note ? { excess: 0, verdict: 'unchecked' as TrimNote['verdict'] } : null;
  const trimmed = systrim(av, pad, verdict);
  if (note && verdict) {
    note.topVerdict = verdict.verdict;
    notes.mainTrim = note;
  }
  return trimmed || result;
}

/**
 * sysmalloc's growth request. top_pad is mallopt's C int and may be negative; glibc then computes in
 * wrapping size_t arithmetic, which only exact integers reproduce.
 */
function growthSize(av: MallocState, nb: SizeT, oldSize: number): SizeT {
  const page = av.system.pageSize;
  if (typeof nb === 'number' && av.mp.topPad >= 0) return alignUp(nb + av.mp.topPad + MINSIZE - (av.contiguous ? oldSize : 0), page);
  let size = wrap(big(nb) + big(sizeTFromInt(av.mp.topPad)) + BigInt(MINSIZE));
  if (av.contiguous) size = wrap(size - BigInt(oldSize));
  return sizeT(alignUpExact(size, page));
}

/**
 * The real process dies here: glibc aborts it (malloc_printerr, SIGABRT) or faults in its own arithmetic
 * (SIGSEGV). The model stops the replay instead, saying which.
 */
export class AllocatorAbort extends Error {
  constructor(
    reason: string,
    readonly signal: 'SIGABRT' | 'SIGSEGV' = 'SIGABRT',
  ) {
    super(`${signal === 'SIGABRT' ? 'glibc aborts the process here (SIGABRT)' : 'glibc crashes here (SIGSEGV)'}: ${reason}`);
    this.name = 'AllocatorAbort';
  }
}
