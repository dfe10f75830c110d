// glibc's sizes and tunable defaults on x86-64 (2.36's; what a version changes is in versions.ts), with the size-to-bin arithmetic built on them
// (docs/glibc.md §1, §2, §7.1). Names are glibc's, so a reader of malloc.c finds each one at once.

/** sizeof(size_t): the size and prev_size words. */
export const SIZE_SZ = 8;
/** Chunk header: prev_size + size. A user pointer is the chunk address + CHUNK_HDR_SZ. */
export const CHUNK_HDR_SZ = 16;
/** Every chunk and user pointer is 16-byte aligned. */
export const MALLOC_ALIGNMENT = 16;
export const MALLOC_ALIGN_MASK = MALLOC_ALIGNMENT - 1;
/** The smallest chunk: header plus fd and bk. */
export const MINSIZE = 32;
/** sizeof(struct malloc_chunk): header, fd, bk, fd_nextsize, bk_nextsize. malloc_trim keeps these words. */
export const MALLOC_CHUNK_STRUCT_SIZE = 48;
/** Chunks below this size go to small bins; at or above, large bins. */
export const MIN_LARGE_SIZE = 1024;
/** A freed (and merged) chunk at least this large triggers consolidation and the trim check. */
export const FASTBIN_CONSOLIDATION_THRESHOLD = 65536;
/** Largest chunk size the M_MXFAST setting can reach (80 * SIZE_SZ / 4). */
export const MAX_FAST_SIZE = 160;
/** Default M_MXFAST request (64 * SIZE_SZ / 4), which becomes a global_max_fast of 128. */
export const DEFAULT_MXFAST = 128;
/** Number of fastbins; index 9 is never used with the allowed M_MXFAST values. */
export const NFASTBINS = 10;
/** Number of bin headers: 1 unsorted, 2..63 small, 64..126 large (127 unused). */
export const NBINS = 128;
/** tcache: bins for chunk sizes 32..1040, each holding up to tcache_count chunks. */
export const TCACHE_MAX_BINS = 64;
export const TCACHE_FILL_COUNT = 7;
/** The unsorted scan gives up after this many chunks in one pass. */
export const MAX_ITERS = 10000;

/** Initial mmap threshold (DEFAULT_MMAP_THRESHOLD_MIN). */
export const DEFAULT_MMAP_THRESHOLD = 128 * 1024;
/** The dynamic threshold never rises from a chunk whose size word is above this (4 MiB * sizeof(long)). */
export const DEFAULT_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024;
export const DEFAULT_TRIM_THRESHOLD = 128 * 1024;
/** glibc's real top_pad default on Linux (malloc-machine.h), whatever malloc.c's comment says. */
export const DEFAULT_TOP_PAD = 128 * 1024;
export const DEFAULT_MMAP_MAX = 65536;
/** MMAP_AS_MORECORE_SIZE: the mmap fallback's rounding unit (2.35–2.37) or its least size (2.34, 2.38 on). */
export const MMAP_AS_MORECORE_SIZE = 1024 * 1024;

/** PTRDIFF_MAX (2^63 - 1), exactly. */
export const PTRDIFF_MAX = (1n << 63n) - 1n;
/** The largest double below 2^63: where a value at or below PTRDIFF_MAX is kept, so it stays on its side. */
export const BELOW_2_63 = 2 ** 63 - 1024;

/** A non-main arena's heap: at least HEAP_MIN_SIZE, at most HEAP_MAX_SIZE (2 * DEFAULT_MMAP_THRESHOLD_MAX). */
export const HEAP_MIN_SIZE = 32 * 1024;
export const HEAP_MAX_SIZE = 64 * 1024 * 1024;
/** sizeof(struct malloc_state) on x86-64 (sizeof(heap_info) changed with the version: versions.ts). */
export const MALLOC_STATE_SIZE = 2200;

/** 2^64: size_t arithmetic wraps here. */
export const TWO_POW_64 = 2 ** 64;

/** request2size: the chunk size glibc uses for a request of `req` bytes. */
export function request2size(req: number): number {
  if (req + SIZE_SZ + MALLOC_ALIGN_MASK < MINSIZE) return MINSIZE;
  // Integer bit operations while they are exact (below 2^31): the common case, and much cheaper than %.
  if (req < 0x7fff0000) return (req + SIZE_SZ + MALLOC_ALIGN_MASK) & ~MALLOC_ALIGN_MASK;
  return alignDown(req + SIZE_SZ + MALLOC_ALIGN_MASK, MALLOC_ALIGNMENT);
}

/**
 * checked_request2size: the chunk size, or 0 when the request is above PTRDIFF_MAX. PTRDIFF_MAX (2^63 - 1) is
 * 2^63 as a double, so the test is `>= 2^63`; the trace reader keeps values up to PTRDIFF_MAX below 2^63.
 */
export function checkedRequest2size(req: number): number {
  return req >= 2 ** 63 ? 0 : request2size(req);
}

/** Rounds down to a multiple of `unit` (a power of two), exact for every double we use. */
export function alignDown(value: number, unit: number): number {
  return value - (value % unit);
}

/** Rounds up to a multiple of `unit`. */
export function alignUp(value: number, unit: number): number {
  const rest = value % unit;
  return rest === 0 ? value : value + (unit - rest);
}

/** csize2tidx: the tcache bin of a chunk size. */
export function csize2tidx(size: number): number {
  if (size < 0x7fff0000) return (size - MINSIZE + MALLOC_ALIGNMENT - 1) >> 4;
  return Math.floor((size - MINSIZE + MALLOC_ALIGNMENT - 1) / MALLOC_ALIGNMENT);
}

/** fastbin_index: the fastbin of a chunk size. */
export function fastbinIndex(size: number): number {
  return (size >>> 4) - 2;
}

/** The chunk size of tcache bin `tidx` (the inverse of csize2tidx). */
export function tidx2usize(tidx: number): number {
  return MINSIZE + tidx * MALLOC_ALIGNMENT;
}

/** The chunk size fastbin `index` holds (the inverse of fastbinIndex). */
export function fastbinSize(index: number): number {
  return (index + 2) << 4;
}

/** The chunk size small bin `index` holds (the inverse of smallbinIndex). */
export function smallbinSize(index: number): number {
  return index << 4;
}

/** Bins below this index are small bins (one size each); from it on, large bins (a range each). */
export const NSMALLBINS = 64;

/** in_smallbin_range. */
export function inSmallbinRange(size: number): boolean {
  return size < MIN_LARGE_SIZE;
}

/** smallbin_index. */
export function smallbinIndex(size: number): number {
  return size >>> 4;
}

/** largebin_index_64: the large bin of a chunk size (docs/glibc.md §7.1's table). */
export function largebinIndex(size: number): number {
  // From 2^31 up every tier's quotient is far past its limit (and >> would not be exact): the last bin.
  if (size >= 0x7fff0000) return 126;
  if (size >> 6 <= 48) return 48 + (size >> 6);
  if (size >> 9 <= 20) return 91 + (size >> 9);
  if (size >> 12 <= 10) return 110 + (size >> 12);
  if (size >> 15 <= 4) return 119 + (size >> 15);
  if (size >> 18 <= 2) return 124 + (size >> 18);
  return 126;
}

/** set_max_fast: the global_max_fast that an M_MXFAST value gives. */
export function maxFastFor(value: number): number {
  return value <= SIZE_SZ - 1 ? MINSIZE / 2 : (value + SIZE_SZ) & ~MALLOC_ALIGN_MASK;
}

/** The mallopt parameters the model takes, glibc's names; a parameter's numeric code is its index. */
export type MalloptParam = 'M_MMAP_THRESHOLD' | 'M_TRIM_THRESHOLD' | 'M_TOP_PAD' | 'M_MMAP_MAX' | 'M_MXFAST' | 'M_ARENA_MAX' | 'M_ARENA_TEST';
export const MALLOPT_PARAMS: readonly MalloptParam[] = [
  'M_MMAP_THRESHOLD',
  'M_TRIM_THRESHOLD',
  'M_TOP_PAD',
  'M_MMAP_MAX',
  'M_MXFAST',
  'M_ARENA_MAX',
  'M_ARENA_TEST',
];
