// The entry points a program calls (__libc_malloc, __libc_free, __libc_calloc, __libc_realloc, memalign,
// mallopt, malloc_trim, mallinfo2), on chunk ids: NIL is NULL. The replay drives these directly.
import type { MalloptParam } from '../trace/api.ts';
import type { Arena, SideArena } from './arena.ts';
import { ChunkState, NIL } from './chunks.ts';
import { big, sizeTFromInt, wrap } from './size-t.ts';
import {
  BELOW_2_63,
  CHUNK_HDR_SZ,
  HEAP_INFO_SIZE,
  HEAP_MAX_SIZE,
  HEAP_MIN_SIZE,
  MALLOC_ALIGNMENT,
  MALLOC_STATE_SIZE,
  MAX_FAST_SIZE,
  PTRDIFF_MAX,
  SIZE_SZ,
  TCACHE_STRUCT_REQUEST,
  TWO_POW_64,
  alignUp,
  checkedRequest2size,
  csize2tidx,
  maxFastFor,
  request2size,
} from './constants.ts';
import { intFree, mallocConsolidate } from './int-free.ts';
import { intMalloc } from './int-malloc.ts';
import { intMemalign, memalignAlignment } from './memalign.ts';
import { intRealloc, reallocMmapped } from './realloc.ts';
import { mtrim, munmapChunk } from './sysmalloc.ts';

/**
 * MAYBE_INIT_TCACHE: the first malloc, calloc or heap free allocates the tcache struct (chunk 0x290). When the
 * main arena cannot hold it (sbrk and its mmap fallback both failed), tcache_init retries in a new arena
 * (arena_get_retry), single thread or not: the tcache then lives there, and later calls use the main arena.
 */
export function maybeInitTcache(av: Arena): void {
  if (av.tcacheReady) return;
  const saved = av.notes.path;
  const victim = intMalloc(av, TCACHE_STRUCT_REQUEST);
  av.notes.path = saved;
  if (victim !== NIL) {
    av.tcacheReady = true;
    av.tcacheStruct = victim;
    return;
  }
  av.sideArena = newArenaFor(av, TCACHE_STRUCT_REQUEST);
  av.tcacheReady = true;
}

/**
 * _int_new_arena(bytes) followed by _int_malloc of `bytes` from its top: one heap (new_heap's size rule, with
 * mp_.top_pad wrapped as a size_t), then the arena's headers, then the chunk. The model keeps its figures
 * only: nothing but that chunk ever lives there, and its place is never reported.
 */
function newArenaFor(av: Arena, bytes: number): SideArena {
  const headers = HEAP_INFO_SIZE + MALLOC_STATE_SIZE;
  const wanted = bytes + headers + MALLOC_ALIGNMENT;
  const withPad = wrap(BigInt(wanted) + big(sizeTFromInt(av.topPad)));
  let size: number;
  if (withPad < BigInt(HEAP_MIN_SIZE)) size = HEAP_MIN_SIZE;
  else if (withPad <= BigInt(HEAP_MAX_SIZE)) size = Number(withPad);
  else size = HEAP_MAX_SIZE;
  size = alignUp(size, av.system.pageSize);
  // The top starts after the headers, moved up so that its user pointer is 16-byte aligned (the heap is).
  const top = alignUp(headers + CHUNK_HDR_SZ, MALLOC_ALIGNMENT) - CHUNK_HDR_SZ;
  return { systemMem: size, used: top + request2size(bytes) };
}

/** __libc_malloc. */
export function libcMalloc(av: Arena, bytes: number): number {
  const nb = checkedRequest2size(bytes);
  if (nb === 0) return NIL;
  if (!av.tcacheReady) maybeInitTcache(av);
  const tidx = csize2tidx(nb);
  if (tidx < av.tcacheBins && av.tcacheCount[tidx] > 0 && av.tcacheReady) {
    av.notes.path = 'tcache';
    const p = av.tcacheGet(tidx);
    av.chunks.madeBy[p] = av.seq;
    return p;
  }
  return stamp(av, intMalloc(av, bytes));
}

/** __libc_free. An mmapped chunk first moves the sliding threshold (the policy decides), then is unmapped. */
export function libcFree(av: Arena, p: number): void {
  if (p === NIL) return;
  const c = av.chunks;
  if (c.state[p] === ChunkState.Mmapped) {
    const size = c.size[p];
    av.notes.thresholdMove = av.policy.onMmappedFree(size + 2, size);
    munmapChunk(av, p);
    return;
  }
  if (!av.tcacheReady) maybeInitTcache(av);
  intFree(av, p);
}

/**
 * __libc_calloc: nmemb * size is computed into a ptrdiff_t, so a product above PTRDIFF_MAX (not only one
 * past 2^64) fails at once, before the tcache set-up; then _int_malloc, never the tcache.
 */
export function libcCalloc(av: Arena, nmemb: number, size: number): number {
  let bytes = nmemb * size;
  if (bytes > Number.MAX_SAFE_INTEGER) {
    const exact = BigInt(nmemb) * BigInt(size);
    if (exact > PTRDIFF_MAX) return NIL;
    // keep "at most PTRDIFF_MAX" below 2^63 as a double, as the trace reader does
    bytes = Math.min(Number(exact), BELOW_2_63);
  }
  maybeInitTcache(av);
  const p = intMalloc(av, bytes);
  if (p !== NIL && av.system.zero) zeroCalloc(av, p);
  return stamp(av, p);
}

/**
 * calloc's clearing, where the kernel holds real data: an mmapped chunk is fresh (zero) memory; a heap chunk
 * is cleared whole (glibc skips the part freshly obtained from sbrk, which is zero anyway).
 */
function zeroCalloc(av: Arena, p: number): void {
  const c = av.chunks;
  if (c.state[p] === ChunkState.Mmapped) return;
  av.system.zero!(c.address[p] + CHUNK_HDR_SZ, c.size[p] - SIZE_SZ);
}

/**
 * __libc_realloc. realloc(p, 0) frees; realloc(NULL, n) mallocs; a failure leaves p as it was. For a heap
 * block the tcache is set up before the size is checked, so even a refused size sets it up.
 */
export function libcRealloc(av: Arena, p: number, bytes: number): number {
  if (bytes === 0 && p !== NIL) {
    libcFree(av, p);
    return NIL;
  }
  if (p === NIL) return libcMalloc(av, bytes);
  const mmapped = av.chunks.state[p] === ChunkState.Mmapped;
  if (!mmapped) maybeInitTcache(av);
  const nb = checkedRequest2size(bytes);
  if (nb === 0) return NIL;
  if (mmapped) return stamp(av, reallocMmapped(av, p, bytes, nb, (n) => libcMalloc(av, n)));
  return stamp(av, intRealloc(av, p, nb));
}

/** memalign / aligned_alloc (_mid_memalign): small alignments are plain malloc; the rest never use tcache. */
export function libcMemalign(av: Arena, alignment: number, bytes: number): number {
  const adjusted = memalignAlignment(alignment);
  if (adjusted === 0) return libcMalloc(av, bytes);
  if (adjusted < 0) return NIL;
  return stamp(av, intMemalign(av, adjusted, bytes));
}

/** mallopt: always consolidates first; returns glibc's result (1, or 0 for a refused M_MXFAST). */
export function libcMallopt(av: Arena, param: MalloptParam, value: number): number {
  mallocConsolidate(av);
  const policy = av.policy;
  const before = { mmap: policy.mmapThreshold, trim: policy.trimThreshold };
  const result = setParam(av, param, value);
  if (policy.mmapThreshold !== before.mmap || policy.trimThreshold !== before.trim) {
    av.notes.thresholdMove = {
      mmapThreshold: { from: before.mmap, to: policy.mmapThreshold },
      trimThreshold: { from: before.trim, to: policy.trimThreshold },
    };
  }
  return result;
}

function setParam(av: Arena, param: MalloptParam, value: number): number {
  switch (param) {
    case 'M_MXFAST':
      if (value < 0 || value > MAX_FAST_SIZE) return 0;
      av.maxFast = maxFastFor(value);
      return 1;
    case 'M_TOP_PAD':
      av.topPad = value; // kept signed: sysmalloc wraps it as size_t
      av.policy.onMallopt(param, sizeTFromInt(value));
      return 1;
    case 'M_MMAP_MAX':
      av.nMmapsMax = value;
      av.policy.onMallopt(param, value);
      return 1;
    case 'M_TRIM_THRESHOLD':
    case 'M_MMAP_THRESHOLD':
      av.policy.onMallopt(param, sizeTFromInt(value));
      return 1;
  }
}

/** malloc_trim(pad): 1 when memory was released or advised away. `pad` is a bigint when above 2^53. */
export function libcTrim(av: Arena, pad: number | bigint): number {
  return mtrim(av, pad) ? 1 : 0;
}

/** mallinfo2's fields, with glibc's meanings (GLIBC-2.36.md §8). */
export interface Mallinfo2 {
  /** system_mem: bytes obtained through sbrk (and the mmap fallback, foreign gaps, corrections). */
  arena: number;
  /** Free chunks in the unsorted, small and large bins, plus 1 for the top. */
  ordblks: number;
  /** Chunks in fastbins. */
  smblks: number;
  /** Live mmapped chunks. */
  hblks: number;
  /** Bytes in live mmapped chunks (mapping lengths). */
  hblkhd: number;
  /** Always 0. */
  usmblks: number;
  /** Bytes in fastbins. */
  fsmblks: number;
  /** arena - fordblks: in use, tcache'd chunks and fenceposts included. */
  uordblks: number;
  /** Top + fastbins + regular bins. */
  fordblks: number;
  /** The top chunk's size. */
  keepcost: number;
}

/** mallinfo2, from counters kept as chunks move. */
export function libcMallinfo2(av: Arena): Mallinfo2 {
  const top = av.topSize;
  const fordblks = top + av.fastBytes + av.binnedBytes;
  const info = {
    arena: av.systemMem,
    ordblks: av.binnedCount + 1,
    smblks: av.fastCount,
    hblks: av.nMmaps,
    hblkhd: av.mmappedMem,
    usmblks: 0,
    fsmblks: av.fastBytes,
    uordblks: av.systemMem - fordblks,
    fordblks,
    keepcost: top,
  };
  // mallinfo2 sums every arena, except keepcost (the main arena's top); a side arena's free bytes are its top.
  const side = av.sideArena;
  if (side) {
    info.arena += side.systemMem;
    info.ordblks += 1;
    info.uordblks += side.used;
    info.fordblks += side.systemMem - side.used;
  }
  return info;
}

/** Marks a returned chunk as made by the current call. */
function stamp(av: Arena, p: number): number {
  if (p !== NIL) av.chunks.madeBy[p] = av.seq;
  return p;
}

/** What malloc_stats() prints (GLIBC-2.36.md §8), for the main arena of one thread. */
export interface MallocStats {
  /** Arena 0 "system bytes": system_mem. */
  systemBytes: number;
  /** Arena 0 "in use bytes": mallinfo2's uordblks. */
  inUseBytes: number;
  /** Total "system bytes": mmapped_mem + system_mem. */
  totalSystemBytes: number;
  /** Total "in use bytes": mmapped_mem + uordblks. */
  totalInUseBytes: number;
  /** "max mmap regions": max_n_mmaps. */
  maxMmapRegions: number;
  /** "max mmap bytes": max_mmapped_mem. */
  maxMmapBytes: number;
  /** max_system_mem (malloc_info's `<system type="max">`). */
  maxSystemBytes: number;
}

/** malloc_stats()'s figures, without its unsigned-int wrapping above 4 GiB. */
export function libcMallocStats(av: Arena): MallocStats {
  const inUse = av.systemMem - (av.topSize + av.fastBytes + av.binnedBytes);
  // The totals sum every arena (a side arena made for the tcache struct too); "Arena 0" is the main one.
  const side = av.sideArena;
  return {
    systemBytes: av.systemMem,
    inUseBytes: inUse,
    totalSystemBytes: av.mmappedMem + av.systemMem + (side?.systemMem ?? 0),
    totalInUseBytes: av.mmappedMem + inUse + (side?.used ?? 0),
    maxMmapRegions: av.maxNMmaps,
    maxMmapBytes: av.maxMmappedMem,
    maxSystemBytes: av.maxSystemMem,
  };
}
