// _int_free and malloc_consolidate (docs/glibc.md §7.3, §7.4): tcache first, then a fastbin, else coalesce
// with free neighbours into the unsorted bin or the top, and past 64 KiB consolidate and maybe trim.
import type { MallocState } from './arena.ts';
import { ChunkState, NIL, isBinned } from './chunks.ts';
import { FASTBIN_CONSOLIDATION_THRESHOLD, MINSIZE, NFASTBINS, csize2tidx, fastbinIndex, inSmallbinRange, smallbinIndex } from './constants.ts';
import { sizeTFromInt } from './size-t.ts';
import { systrim } from './sysmalloc.ts';
import { heapTrim } from './heap.ts';
import type { FreeNote, TrimNote } from './notes.ts';

/**
 * _int_free(av, p) for a heap chunk `p` that is in use; `internal` for the chunks glibc frees itself
 * (realloc's tail and moved-from chunk, sysmalloc's old top), which skip the tcache since 2.42.
 */
export function intFree(av: MallocState, p: number, internal = false): void {
  const c = av.chunks;
  const size = c.size[p];

  const tidx = csize2tidx(size);
  const notes = av.m.notes;
  const tcacheable = av.m.tcache.ready && tidx < av.mp.tcacheBins && !(internal && av.m.glibc.internalFreesSkipTcache);
  if (tcacheable && av.m.tcache.counts[tidx] < av.mp.tcacheCount) {
    av.m.tcache.put(p, tidx);
    if (notes.detail) noteFree(av, size, 'tcache', av.m.tcache.counts[tidx], tcacheable, 0);
    return;
  }

  if (size <= av.mp.maxFast) {
    av.fastbinPush(p, fastbinIndex(size));
    if (notes.detail) noteFree(av, size, 'fastbin', fastbinIndex(size), tcacheable, 0);
    return;
  }

  mergeChunk(av, p, tcacheable);
}

/**
 * The part of _int_free after the tcache and the fastbins: merge with free neighbours into unsorted or the
 * top, then, from 64 KiB, consolidate and maybe trim. Since 2.39 memalign gives its lead and tail back
 * through this alone (_int_free_merge_chunk and _int_free_maybe_consolidate).
 */
export function mergeChunk(av: MallocState, p: number, tcacheable = false): void {
  const notes = av.m.notes;
  const size = av.chunks.size[p];
  // Since 2.41 a chunk freed here goes to its small bin when small (malloc_consolidate's still go to unsorted).
  const toSmallBin = av.m.glibc.freeSmallToSmallbin;
  const merged = coalesce(av, p, toSmallBin);
  // coalesce noted where this chunk went (consolidation below notes its own merges after it)
  const intoTop = notes.merge?.intoTop === true;
  if (notes.detail) noteFree(av, size, intoTop ? 'top' : toSmallBin && inSmallbinRange(merged) ? 'small' : 'unsorted', 0, tcacheable, merged);
  if (merged >= FASTBIN_CONSOLIDATION_THRESHOLD) {
    // Only a free that reaches the check replaces the call's trim note.
    const trim = notes.detail ? trimNote(av, merged, intoTop) : null;
    const consolidated = av.haveFastchunks;
    if (consolidated) mallocConsolidate(av);
    if (trim) {
      trim.checked = true;
      trim.consolidated = consolidated;
      trim.top = av.topSize;
    }
    if (!av.isMain) {
      // A thread arena: heap_trim (it checks the trim threshold itself, after unmapping whole heaps).
      if (heapTrim(av) && trim) trim.verdict = 'released';
      else if (trim) trim.verdict = av.topSize >= av.mp.trimThreshold ? 'no-excess' : 'below';
    } else if (av.topSize >= av.mp.trimThreshold) systrim(av, av.mp.topPad, trim);
    else if (trim) trim.verdict = 'below';
  }
}

function noteFree(av: MallocState, size: number, to: FreeNote['to'], count: number, tcacheable: boolean, merged: number): void {
  av.m.notes.freed.push({ size, to, count, fill: av.mp.tcacheCount, tcacheable, maxFast: av.mp.maxFast, merged });
}

/** A fresh trim note for a free whose chunk merged into `merged` bytes (the top's when `intoTop`). */
function trimNote(av: MallocState, merged: number, intoTop: boolean): TrimNote {
  const note: TrimNote = {
    merged,
    intoTop,
    consolidationThreshold: FASTBIN_CONSOLIDATION_THRESHOLD,
    checked: false,
    consolidated: false,
    top: av.topSize,
    trimThreshold: av.mp.trimThreshold,
    topPad: av.mp.topPad,
    topPadT: sizeTFromInt(av.mp.topPad),
    reserve: MINSIZE + 1,
    verdict: 'unchecked',
    excess: 0,
    page: av.system.pageSize,
  };
  av.m.notes.trim = note;
  return note;
}

/**
 * Merges free chunk `p` with free neighbours, then files it at the head of unsorted (of its small bin when
 * `toSmallBin` and it is small), or makes it part of the top. Returns the merged size (the new top size when
 * it joined the top).
 */
function coalesce(av: MallocState, p: number, toSmallBin: boolean): number {
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
  const size = c.size[p];
  if (toSmallBin && inSmallbinRange(size)) {
    // Since 2.41 (e2436d6f5a): at the head of its own small bin, marked in the binmap.
    const bin = smallbinIndex(size);
    const head = av.binBase + bin;
    av.linkBetween(p, head, c.fd[head], ChunkState.Small);
    av.markBin(bin);
  } else av.toUnsortedHead(p);
  noteMerge(av, size, false);
  return size;
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
    while (av.fastbins[index] !== NIL) {
      coalesce(av, av.fastbinPop(index), false);
      av.m.notes.consolidatedChunks++;
    }
  }
}
