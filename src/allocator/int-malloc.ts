// _int_malloc: find a chunk of nb bytes in the order glibc 2.36 searches (docs/glibc.md §7.2): fastbin,
// small bin, the unsorted scan (last remainder, exact fits, binning), the request's own large bin, the next
// non-empty bin, the top, and at last sysmalloc.
import type { MallocState } from './arena.ts';
import { UNSORTED } from './arena.ts';
import { ChunkState, NIL } from './chunks.ts';
import { MAX_ITERS, MINSIZE, checkedRequest2size, csize2tidx, fastbinIndex, inSmallbinRange, largebinIndex, smallbinIndex } from './constants.ts';
import { mallocConsolidate } from './int-free.ts';
import type { SearchNote } from './notes.ts';
import { exactNb } from './size-t.ts';
import { sysmalloc } from './sysmalloc.ts';

/** _int_malloc(av, bytes): a chunk id in use, or NIL when glibc would return NULL. */
export function intMalloc(av: MallocState, bytes: number): number {
  const nb = checkedRequest2size(bytes);
  if (nb === 0) return NIL;
  const c = av.chunks;
  const note = av.m.notes.detail ? searchNote(av, nb) : null;
  if (note) av.m.notes.search = note;
  // The tcache bin of nb, when there is one: fastbin and small-bin hits stash into it, exact fits go to it.
  const tidx = csize2tidx(nb);
  const tcacheable = av.m.tcache.ready && tidx < av.mp.tcacheBins;

  // a. fastbin: pop the newest; stash more of the same size into tcache.
  if (nb <= av.mp.maxFast) {
    const index = fastbinIndex(nb);
    if (av.fastbins[index] !== NIL) {
      const victim = av.fastbinPop(index);
      if (tcacheable) {
        while (av.m.tcache.counts[tidx] < av.mp.tcacheCount && av.fastbins[index] !== NIL) {
          av.m.tcache.put(av.fastbinPop(index), tidx);
        }
      }
      av.m.notes.path = 'fastbin';
      if (note) note.bin = index;
      return victim;
    }
  }

  const idx = inSmallbinRange(nb) ? smallbinIndex(nb) : largebinIndex(nb);
  // Bin headers are records: bin i's is av.binBase + i.
  const idxHead = av.binBase + idx;
  const unsorted = av.binBase + UNSORTED;
  if (inSmallbinRange(nb)) {
    // b. small bin: take the oldest; stash more into tcache.
    const victim = c.bk[idxHead];
    if (victim !== idxHead) {
      av.unlinkChunk(victim);
      if (tcacheable) {
        while (av.m.tcache.counts[tidx] < av.mp.tcacheCount && c.bk[idxHead] !== idxHead) {
          const more = c.bk[idxHead];
          av.unlinkChunk(more);
          av.m.tcache.put(more, tidx);
        }
      }
      av.m.notes.path = 'smallbin';
      if (note) note.bin = idx;
      return victim;
    }
  } else if (av.haveFastchunks) {
    // c. a large request first consolidates pending fastbin chunks.
    mallocConsolidate(av);
  }

  // d. an exact fit found in the unsorted scan may go to tcache first, while it has room.
  let returnCached = false;
  // Chunks the scans of this call have filed in bins (tcache_unsorted_count), against tcache_unsorted_limit.
  let tcacheUnsortedCount = 0;

  for (;;) {
    // e. the unsorted scan, oldest first.
    let iterations = 0;
    while (c.bk[unsorted] !== unsorted) {
      const victim = c.bk[unsorted];
      const size = c.size[victim];

      // i. a small request and the last remainder alone in unsorted: split it.
      if (inSmallbinRange(nb) && c.bk[victim] === unsorted && c.address[victim] === av.lastRemainder && size > nb + MINSIZE) {
        av.unlinkChunk(victim);
        const remainder = c.split(victim, nb, ChunkState.InUse, av.m.seq);
        av.lastRemainder = c.address[remainder];
        av.toUnsortedHead(remainder);
        c.madeBy[victim] = av.m.seq;
        av.m.notes.path = 'last-remainder';
        if (note) note.remainder = size;
        return victim;
      }

      // ii. take it out of unsorted.
      av.unlinkChunk(victim);

      // iii. an exact fit: to tcache if it has room (and keep scanning), else return it.
      if (size === nb) {
        if (tcacheable && av.m.tcache.counts[tidx] < av.mp.tcacheCount) {
          av.m.tcache.put(victim, tidx);
          returnCached = true;
          continue;
        }
        av.m.notes.path = 'unsorted';
        return victim;
      }

      // iv. file it in its bin.
      if (inSmallbinRange(size)) {
        const bin = smallbinIndex(size);
        const head = av.binBase + bin;
        av.linkBetween(victim, head, c.fd[head], ChunkState.Small);
        av.markBin(bin);
      } else {
        placeInLargeBin(av, victim, size);
      }

      // With tcache_unsorted_limit set, once that many chunks are filed, a cached exact fit is handed out.
      tcacheUnsortedCount++;
      if (returnCached && av.mp.tcacheUnsortedLimit > 0 && tcacheUnsortedCount > av.mp.tcacheUnsortedLimit) {
        av.m.notes.path = 'unsorted';
        return av.m.tcache.get(tidx);
      }

      if (++iterations >= MAX_ITERS) break;
    }

    // f. exact fits went to tcache: hand out the newest of them.
    if (returnCached) {
      av.m.notes.path = 'unsorted';
      return av.m.tcache.get(tidx);
    }

    // g. a large request: the smallest chunk in its own bin that fits.
    if (!inSmallbinRange(nb)) {
      const first = c.fd[idxHead];
      if (first !== idxHead && c.size[first] >= nb) {
        let victim = c.bkNextsize[first];
        while (c.size[victim] < nb) victim = c.bkNextsize[victim];
        // Take the group's second member, when there is one, so the nextsize ring need not change.
        if (victim !== c.bk[idxHead] && c.size[c.fd[victim]] === c.size[victim]) victim = c.fd[victim];
        av.m.notes.path = 'largebin';
        if (note) note.bin = idx;
        return carve(av, victim, nb, false, note);
      }
    }

    // h. the next larger non-empty bin, taking its last (oldest or smallest) chunk.
    const bin = av.firstNonEmptyBinFrom(idx + 1);
    if (bin !== 0) {
      const victim = c.bk[av.binBase + bin];
      av.m.notes.path = 'binmap';
      if (note) note.bin = bin;
      return carve(av, victim, nb, inSmallbinRange(nb), note);
    }

    // i. use_top.
    if (note) note.top = c.size[av.top];
    if (c.size[av.top] >= nb + MINSIZE) {
      av.m.notes.path = 'top';
      return av.carveFromTop(nb);
    }
    if (av.haveFastchunks) {
      // Consolidate and search again (glibc recomputes idx here only because its binmap search moved it).
      mallocConsolidate(av);
      continue;
    }
    return sysmalloc(av, nb);
  }
}

/** A fresh note of a search for chunk size nb: what the tcache held for it, and the threshold comparison. */
export function searchNote(av: MallocState, nb: number): SearchNote {
  // A request past 2^53 runs with a stand-in nb: the note keeps the exact one.
  const exact = exactNb(av.m.hugeRequest, nb);
  const tidx = csize2tidx(nb);
  const tcache = av.m.tcache;
  const mp = av.mp;
  return {
    nb: exact,
    tcacheHeld: tcache.ready && tidx < mp.tcacheBins ? tcache.counts[tidx] : 0,
    bin: -1,
    remainder: 0,
    top: av.topSize,
    aboveThreshold: exact >= mp.mmapThreshold,
    mmapThreshold: mp.mmapThreshold,
    whole: false,
    minsize: MINSIZE,
  };
}

/**
 * Unlinks `victim` from its bin and cuts nb bytes from its start; a remainder of at least MINSIZE goes to
 * the head of unsorted (and becomes last_remainder when `setLastRemainder`), a smaller one stays attached.
 */
function carve(av: MallocState, victim: number, nb: number, setLastRemainder: boolean, note: SearchNote | null): number {
  const c = av.chunks;
  av.unlinkChunk(victim);
  c.madeBy[victim] = av.m.seq;
  if (note) note.whole = c.size[victim] - nb < MINSIZE;
  if (c.size[victim] - nb >= MINSIZE) {
    const remainder = c.split(victim, nb, ChunkState.InUse, av.m.seq);
    av.toUnsortedHead(remainder);
    if (setLastRemainder) av.lastRemainder = c.address[remainder];
  }
  return victim;
}

/** Files a chunk in its large bin, which is sorted by decreasing size with one nextsize ring of group heads. */
function placeInLargeBin(av: MallocState, victim: number, size: number): void {
  const c = av.chunks;
  const bin = largebinIndex(size);
  let bck = av.binBase + bin;
  let fwd = c.fd[bck];
  if (fwd !== bck) {
    if (size < c.size[c.bk[bck]]) {
      // Smaller than everything: append at the tail, a new group between the smallest and the largest heads.
      fwd = bck;
      bck = c.bk[bck];
      const largestHead = c.fd[fwd];
      c.fdNextsize[victim] = largestHead;
      c.bkNextsize[victim] = c.bkNextsize[largestHead];
      c.fdNextsize[c.bkNextsize[victim]] = victim;
      c.bkNextsize[largestHead] = victim;
    } else {
      while (size < c.size[fwd]) fwd = c.fdNextsize[fwd];
      if (size === c.size[fwd]) {
        // Same size as a group: always the second position, no nextsize links.
        fwd = c.fd[fwd];
      } else {
        c.fdNextsize[victim] = fwd;
        c.bkNextsize[victim] = c.bkNextsize[fwd];
        c.bkNextsize[fwd] = victim;
        c.fdNextsize[c.bkNextsize[victim]] = victim;
      }
      bck = c.bk[fwd];
    }
  } else {
    c.fdNextsize[victim] = victim;
    c.bkNextsize[victim] = victim;
  }
  av.linkBetween(victim, bck, fwd, ChunkState.Large);
  av.markBin(bin);
}
