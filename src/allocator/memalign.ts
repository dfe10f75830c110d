// memalign and aligned_alloc (docs/glibc.md §7.7): ask _int_malloc for room to spare, then give back the
// misaligned lead and the spare tail through _int_free (or, for an mmapped chunk, keep the lead as a gap).
import type { MallocState } from './arena.ts';
import { ChunkState, NIL } from './chunks.ts';
import { CHUNK_HDR_SZ, MALLOC_ALIGNMENT, MINSIZE, TWO_POW_64, alignUp, checkedRequest2size } from './constants.ts';
import { intFree } from './int-free.ts';
import { intMalloc } from './int-malloc.ts';
import type { MemalignNote } from './notes.ts';

/** _int_memalign(av, alignment, bytes), alignment a power of two of at least MINSIZE. */
export function intMemalign(av: MallocState, alignment: number, bytes: number): number {
  const c = av.chunks;
  const notes = av.m.notes;
  const nb = checkedRequest2size(bytes);
  if (nb === 0) {
    if (notes.detail) notes.refused = { why: 'ptrdiff', value: bytes };
    return NIL;
  }
  if (nb > TWO_POW_64 - 1 - alignment - MINSIZE) {
    if (notes.detail) notes.refused = { why: 'overflow', value: nb + alignment + MINSIZE };
    return NIL;
  }
  const note: MemalignNote | null = notes.detail
    ? { plain: false, mallocAlignment: MALLOC_ALIGNMENT, alignment, nb, inner: nb + alignment + MINSIZE, minsize: MINSIZE, lead: 0, tail: 0, gap: 0 }
    : null;
  if (note) notes.memalign = note;
  let p = intMalloc(av, nb + alignment + MINSIZE);
  if (p === NIL) return NIL;
  const mem = c.address[p] + CHUNK_HDR_SZ;

  if (mem % alignment !== 0) {
    let aligned = alignUp(mem, alignment) - CHUNK_HDR_SZ;
    if (aligned - c.address[p] < MINSIZE) aligned += alignment;
    const lead = aligned - c.address[p];
    if (c.state[p] === ChunkState.Mmapped) {
      c.address[p] = aligned;
      c.lead[p] += lead;
      c.size[p] -= lead;
      if (note) note.gap = lead;
      return p;
    }
    if (note) note.lead = lead;
    const rest = c.split(p, lead, ChunkState.InUse, av.m.seq);
    intFree(av, p);
    p = rest;
  }

  if (c.state[p] !== ChunkState.Mmapped && c.size[p] > nb + MINSIZE) {
    if (note) note.tail = c.size[p] - nb;
    const tail = c.split(p, nb, ChunkState.InUse, av.m.seq);
    intFree(av, tail);
  }
  return p;
}

/**
 * _mid_memalign's adjustment of the alignment, in exact size_t arithmetic: at least MINSIZE, rounded up to a
 * power of two; -1 when it is too large (EINVAL); 0 when it is small enough for plain malloc.
 */
export function memalignAlignment(alignment: bigint): bigint {
  if (alignment <= BigInt(MALLOC_ALIGNMENT)) return 0n;
  if (alignment > 1n << 63n) return -1n;
  let power = BigInt(MINSIZE);
  while (power < alignment) power <<= 1n;
  return power;
}
