// _int_free and malloc_consolidate (GLIBC-2.36.md §7.3, §7.4): tcache first, then a fastbin, else coalesce
// with free neighbours into the unsorted bin or the top, and past 64 KiB consolidate and maybe trim.
import type { MallocState } from './arena.ts';
import { ChunkState, NIL, isBinned } from './chunks.ts';
import { FASTBIN_CONSOLIDATION_THRESHOLD, NFASTBINS, csize2tidx, fastbinIndex } from './constants.ts';
import { systrim } from './sysmalloc.ts';

/** _int_free(av, p) for a heap chunk `p` that is in use. */
export function intFree(av: MallocState, p: number): void {
  const c = av.chunks;
  const size = c.size[p];

  const tidx = csize2tidx(size);
  if (av.m.tcache.ready && tidx < av.mp.tcacheBins && av.m.tcache.counts[tidx] < av.mp.tcacheCount) {
    av.m.tcache.put(p, tidx);
    return;
  }

  if (size <= av.mp.maxFast) {
    av.fastbinPush(p, fastbinIndex(size));
    return;
  }

  const merged = coalesce(av, p);
  if (merged >= FASTBIN_CONSOLIDATION_THRESHOLD) {
    if (av.haveFastchunks) mallocConsolidate(av);
    if (av.topSize >= av.mp.trimThreshold) systrim(av, av.mp.topPad);
  }
}

/**
 * Merges free chunk `p` with free neighbours, then files it at the head of unsorted, or makes it part of the
 * top. Returns the merged size (the new top size when it joined the top).
 */
function coalesce(av: MallocState, p: number): number {
  const c = av.chunks;
  const prev = c.prevPhys[p];
  if (prev !== NIL && isBinned(c.state[prev])) {
    av.unlinkChunk(prev);
    c.absorbNext(prev);
    p = prev;
  }
  const next = c.nextPhys[p];
  if (next === av.top) {
    c.absorbNext(p);
    // absorbNext released the top's record: p is the top now.
    c.state[p] = ChunkState.Top;
    av.top = p;
    noteMerge(av, c.size[p], true);
    return c.size[p];
  }
  if (next !== NIL && isBinned(c.state[next])) {
    av.unlinkChunk(next);
    c.absorbNext(p);
  }
  av.toUnsortedHead(p);
  noteMerge(av, c.size[p], false);
  return c.size[p];
}

function noteMerge(av: MallocState, size: number, intoTop: boolean): void {
  const note = av.m.notes.mergeSlot;
  note.size = size;
  note.intoTop = intoTop;
  av.m.notes.merge = note;
}

/** malloc_consolidate: empties every fastbin, coalescing each chunk into unsorted or the top. */
export function mallocConsolidate(av: MallocState): void {
  av.haveFastchunks = false;
  av.m.notes.consolidations++;
  // Each list in order, newest first; coalescing never touches a fastbin, so popping one at a time is the
  // same as glibc detaching the whole list first.
  for (let index = 0; index < NFASTBINS; index++) {
    while (av.fastbins[index] !== NIL) coalesce(av, av.fastbinPop(index));
  }
}
