// malloc.c's do_set_* functions: the one way mp_ (and global_max_fast) change after a fresh process starts.
// mallopt (libc.ts) and the GLIBC_TUNABLES callbacks of ptmalloc_init (tunables.ts) both come through here.
import { HEAP_MAX_SIZE, MAX_FAST_SIZE, csize2tidx, maxFastFor, request2size } from './constants.ts';
import type { MallocPar } from './params.ts';
import type { SizeT } from './size-t.ts';
import type { GlibcRules } from './versions.ts';

/** MAX_TCACHE_SIZE (tidx2usize(63)): the largest request tcache_max takes, 1032 bytes. */
export const MAX_TCACHE_SIZE = 1032;
/** MAX_TCACHE_COUNT: a bin's count is a uint16_t. */
export const MAX_TCACHE_COUNT = 65535;

/** do_set_trim_threshold: any size_t; the sliding stops. */
export function doSetTrimThreshold(mp: MallocPar, value: SizeT): number {
  mp.trimThreshold = value;
  mp.noDynThreshold = true;
  return 1;
}

/**
 * do_set_top_pad. The model keeps top_pad as mallopt's C int (a negative one is the size_t near 2^64 it
 * converts to), so `value` is given that way: a size_t from 2^63 on as its negative difference from 2^64.
 */
export function doSetTopPad(mp: MallocPar, value: number): number {
  mp.topPad = value;
  mp.noDynThreshold = true;
  return 1;
}

/** do_set_mmap_threshold: 2.34 refuses a threshold above HEAP_MAX_SIZE / 2 and changes nothing then. */
export function doSetMmapThreshold(mp: MallocPar, value: SizeT, glibc: GlibcRules): number {
  if (glibc.mmapThresholdCapped && value > HEAP_MAX_SIZE / 2) return 0;
  mp.mmapThreshold = value;
  mp.noDynThreshold = true;
  return 1;
}

/** do_set_mmaps_max: a C int. */
export function doSetMmapsMax(mp: MallocPar, value: number): number {
  mp.nMmapsMax = value;
  mp.noDynThreshold = true;
  return 1;
}

/** do_set_arena_test and do_set_arena_max: the arena limits leave the sliding alone. */
export function doSetArenaTest(mp: MallocPar, value: number): number {
  mp.arenaTest = value;
  return 1;
}
export function doSetArenaMax(mp: MallocPar, value: number): number {
  mp.arenaMax = value;
  return 1;
}

/**
 * do_set_tcache_max (2.34–2.41, and 2.42 below its large bins): a request of at most MAX_TCACHE_SIZE sets how
 * many bins the tcache uses, up to that request's chunk; a larger one is refused (0) and changes nothing.
 */
export function doSetTcacheMax(mp: MallocPar, value: SizeT): number {
  if (value > MAX_TCACHE_SIZE) return 0;
  mp.tcacheBins = csize2tidx(request2size(Number(value))) + 1;
  return 1;
}

/** do_set_tcache_count: at most MAX_TCACHE_COUNT, else refused. */
export function doSetTcacheCount(mp: MallocPar, value: SizeT): number {
  if (value > MAX_TCACHE_COUNT) return 0;
  mp.tcacheCount = Number(value);
  return 1;
}

/** do_set_tcache_unsorted_limit: any size_t (0: no limit). */
export function doSetTcacheUnsortedLimit(mp: MallocPar, value: SizeT): number {
  mp.tcacheUnsortedLimit = value;
  return 1;
}

/** do_set_mxfast: at most MAX_FAST_SIZE (as a size_t: mallopt's negative ints are refused), else 0. */
export function doSetMxfast(mp: MallocPar, value: SizeT): number {
  if (value > MAX_FAST_SIZE) return 0;
  mp.maxFast = maxFastFor(Number(value));
  return 1;
}
