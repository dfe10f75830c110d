// realloc (docs/glibc.md §4 and §7.5): mremap for mmapped blocks whatever their size; for heap blocks, keep
// the chunk and split, grow into the top or a free neighbour, or allocate elsewhere, copy and free.
import type { MallocState } from './arena.ts';
import { ChunkState, NIL, isBinned } from './chunks.ts';
import { CHUNK_HDR_SZ, MALLOC_ALIGN_MASK, MINSIZE, SIZE_SZ, alignUp } from './constants.ts';
import { intFree } from './int-free.ts';
import { intMalloc } from './int-malloc.ts';
import type { ReallocNote } from './notes.ts';
import { munmapChunk } from './sysmalloc.ts';

import { alignUpExact, exactNb } from './size-t.ts';

/** realloc's memcpy of `length` bytes from chunk `from`'s user area to chunk `to`'s, where real bytes exist. */
export function copyUserBytes(av: MallocState, to: number, from: number, length: number): void {
  const c = av.chunks;
  av.system.memory?.copy(c.address[to] + CHUNK_HDR_SZ, c.address[from] + CHUNK_HDR_SZ, length);
}

/**
 * mremap_chunk: resizes an mmapped chunk's mapping to hold nb bytes. Returns p (same id, possibly moved), or
 * NIL when mremap failed.
 */
export function mremapChunk(av: MallocState, p: number, nb: number): number {
  const c = av.chunks;
  const offset = c.lead[p];
  const size = c.size[p];
  const total = offset + size;
  const exact = exactNb(av.m.hugeRequest, nb);
  if (typeof exact === 'bigint') {
    // No kernel grants 2^53 bytes: the call fails, with glibc's exact length.
    av.system.mremap(c.address[p] - offset, total, alignUpExact(exact + BigInt(offset + SIZE_SZ), av.system.pageSize));
    return NIL;
  }
  const newTotal = alignUp(nb + offset + SIZE_SZ, av.system.pageSize);
  if (newTotal === total) {
    av.m.notes.path = 'in-place';
    return p;
  }
  const moved = av.system.mremap(c.address[p] - offset, total, newTotal);
  if (moved === -1) return NIL;
  c.address[p] = moved + offset;
  c.size[p] = newTotal - offset;
  av.mp.mmappedMem += newTotal - total;
  if (av.mp.mmappedMem > av.mp.maxMmappedMem) av.mp.maxMmappedMem = av.mp.mmappedMem;
  av.m.notes.path = 'mremap';
  return p;
}

/** The mmapped branch of __libc_realloc, for nb = request2size(bytes). `malloc` is __libc_malloc. */
export function reallocMmapped(av: MallocState, p: number, bytes: number, nb: number, malloc: (bytes: number) => number): number {
  const c = av.chunks;
  if (av.m.notes.detail)
    av.m.notes.realloc = {
      old: c.size[p],
      nb: exactNb(av.m.hugeRequest, nb),
      how: 'fits',
      tail: 0,
      top: av.topSize,
      minsize: MINSIZE,
      copied: c.size[p] - CHUNK_HDR_SZ,
    };
  const remapped = mremapChunk(av, p, nb);
  if (remapped !== NIL) return remapped;
  const oldSize = c.size[p];
  if (oldSize - SIZE_SZ >= nb) {
    av.m.notes.path = 'in-place';
    return p;
  }
  const fresh = malloc(bytes);
  if (fresh === NIL) return NIL;
  copyUserBytes(av, fresh, p, oldSize - CHUNK_HDR_SZ);
  // The copy's source is unmapped without a threshold update (munmap_chunk, not free).
  munmapChunk(av, p);
  return fresh;
}

/** _int_realloc(av, oldp, oldsize, nb) for a heap chunk. */
export function intRealloc(av: MallocState, oldp: number, nb: number): number {
  const c = av.chunks;
  const oldSize = c.size[oldp];
  const next = c.nextPhys[oldp];
  const newp = oldp;
  const note: ReallocNote | null = av.m.notes.detail
    ? { old: oldSize, nb: exactNb(av.m.hugeRequest, nb), how: 'fits', tail: 0, top: av.topSize, minsize: MINSIZE, copied: 0 }
    : null;
  if (note) av.m.notes.realloc = note;

  if (oldSize < nb) {
    const nextSize = next === NIL ? 0 : c.size[next];
    if (next === av.top && oldSize + nextSize >= nb + MINSIZE) {
      // Grow into the top.
      c.absorbNext(oldp);
      av.top = c.split(oldp, nb, ChunkState.Top, av.m.seq);
      av.m.notes.path = 'top';
      if (note) note.how = 'top';
      return oldp;
    }
    if (next !== av.top && next !== NIL && isBinned(c.state[next]) && oldSize + nextSize >= nb) {
      // Grow into the free chunk above, then split below.
      av.unlinkChunk(next);
      c.absorbNext(oldp);
      av.m.notes.path = 'in-place';
      if (note) note.how = 'next';
    } else {
      const fresh = intMalloc(av, nb - MALLOC_ALIGN_MASK);
      if (fresh === NIL) {
        if (note) note.how = 'failed';
        return NIL;
      }
      if (fresh === c.nextPhys[oldp] && c.state[fresh] === ChunkState.InUse && c.address[fresh] === c.address[oldp] + oldSize) {
        // The new chunk is the one right above (the heap grew from the old top): merge instead of copying.
        c.absorbNext(oldp);
        av.m.notes.path = 'in-place';
        if (note) note.how = 'merged';
      } else {
        // glibc copies oldsize - SIZE_SZ bytes: the user area, which runs into the next chunk's prev_size.
        copyUserBytes(av, fresh, oldp, oldSize - SIZE_SZ);
        if (note) {
          note.how = 'moved';
          note.copied = oldSize - SIZE_SZ;
        }
        intFree(av, oldp, true);
        return fresh;
      }
    }
  } else {
    av.m.notes.path = 'in-place';
  }

  const newSize = c.size[newp];
  if (note && newSize - nb >= MINSIZE) note.tail = newSize - nb;
  if (newSize - nb >= MINSIZE) {
    const remainder = c.split(newp, nb, ChunkState.InUse, av.m.seq);
    intFree(av, remainder, true);
  }
  return newp;
}
