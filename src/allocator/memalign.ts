// memalign and aligned_alloc (docs/glibc.md §7.7): ask _int_malloc for room to spare, then give back the
// misaligned lead and the spare tail through _int_free, or since 2.39 by merging them (for an mmapped chunk,
// keep the lead as a gap). Since 2.38 an aligned tcache entry of the exact size comes first.
import type { MallocState } from './arena.ts';
import { ChunkState, NIL, isBinned } from './chunks.ts';
import { CHUNK_HDR_SZ, MALLOC_ALIGNMENT, MINSIZE, TWO_POW_64, alignUp, checkedRequest2size, csize2tidx } from './constants.ts';
import { intFree, mergeChunk } from './int-free.ts';
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
  const note: MemalignNote | null = notes.detail ? memalignNote(alignment, nb) : null;
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
    giveBack(av, p);
    p = rest;
  }

  if (c.state[p] !== ChunkState.Mmapped && hasTail(av, p, nb)) {
    if (note) note.tail = c.size[p] - nb;
    const tail = c.split(p, nb, ChunkState.InUse, av.m.seq);
    giveBack(av, tail);
  }
  return p;
}

/** The note of a memalign of `nb` (a chunk size) at `alignment`, before its lead and tail are known. */
export function memalignNote(alignment: number, nb: number): MemalignNote {
  return {
    plain: false,
    mallocAlignment: MALLOC_ALIGNMENT,
    alignment,
    nb,
    inner: nb + alignment + MINSIZE,
    minsize: MINSIZE,
    lead: 0,
    tail: 0,
    gap: 0,
    fromTcache: false,
  };
}

/**
 * Whether chunk `p` has a tail beyond `nb` to give back: more than MINSIZE spare (2.36); since 2.39 at least
 * MINSIZE, or any spare beside the top or a free chunk, which it merges into.
 */
function hasTail(av: MallocState, p: number, nb: number): boolean {
  const c = av.chunks;
  const spare = c.size[p] - nb;
  if (!av.m.glibc.memalignMergesRemainders) return spare > MINSIZE;
  if (spare <= 0) return false;
  const next = c.nextPhys[p];
  return spare >= MINSIZE || next === av.top || (next !== NIL && isBinned(c.state[next]));
}

/** A lead or tail given back: _int_free (the tcache and fastbins first) until 2.38, a merge since 2.39. */
function giveBack(av: MallocState, p: number): void {
  if (av.m.glibc.memalignMergesRemainders) mergeChunk(av, p);
  else intFree(av, p);
}

/**
 * Since 2.38, _mid_memalign's first try: the exact size's tcache bin (when the tcache exists), searched from
 * its newest entry for one whose user pointer is `alignment`-aligned, taken from wherever it sits. NIL when
 * none is (or the rule is not this version's); `nb` is the request's chunk size, 0 for one refused.
 */
export function memalignFromTcache(av: MallocState, alignment: number, nb: number): number {
  const tcache = av.m.tcache;
  if (!av.m.glibc.memalignSearchesTcache || !tcache.ready || nb === 0) return NIL;
  const tidx = csize2tidx(nb);
  if (tidx >= av.mp.tcacheBins || tcache.counts[tidx] === 0) return NIL;
  const c = av.chunks;
  let before = NIL;
  for (let p = tcache.head[tidx]; p !== NIL; p = c.fd[p]) {
    if ((c.address[p] + CHUNK_HDR_SZ) % alignment === 0) return tcache.take(tidx, p, before);
    before = p;
  }
  return NIL;
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
