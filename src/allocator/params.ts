// mp_ (glibc's struct malloc_par): the one parameter block of a process, shared by every arena and thread:
// the thresholds and their sliding, the padding, the mmap limits, the tcache tunables, and the mmap figures
// mallinfo2 reports. Presets (src/policy), GLIBC_TUNABLES and mallopt change it (the last two through
// do-set.ts); nothing else does.
import {
  DEFAULT_MMAP_MAX,
  DEFAULT_MMAP_THRESHOLD,
  DEFAULT_MXFAST,
  DEFAULT_TOP_PAD,
  DEFAULT_TRIM_THRESHOLD,
  TCACHE_FILL_COUNT,
  TCACHE_MAX_BINS,
  maxFastFor,
} from './constants.ts';
import type { SizeT } from './size-t.ts';

/** glibc's arena limit defaults: arena_test (2 or 8 arenas before the core count is used) and no arena_max. */
const NARENAS_FROM_NCORES = 8;

export class MallocPar {
  /** mp_.mmap_threshold: a chunk at least this large is mmapped when the bins and the top cannot serve it. */
  mmapThreshold: SizeT = DEFAULT_MMAP_THRESHOLD;
  /** mp_.trim_threshold: free() trims the top when it reaches this size. */
  trimThreshold: SizeT = DEFAULT_TRIM_THRESHOLD;
  /** mp_.no_dyn_threshold: set for good by mallopt of a threshold, the pad or the mmap limit. */
  noDynThreshold = false;
  /** mp_.top_pad, as mallopt's C int (may be negative: sysmalloc then wraps it as a size_t). */
  topPad = DEFAULT_TOP_PAD;
  /** mp_.n_mmaps_max (a C int). */
  nMmapsMax = DEFAULT_MMAP_MAX;
  /** mp_.arena_test and mp_.arena_max (0: no limit but the core count's). */
  arenaTest = NARENAS_FROM_NCORES;
  arenaMax = 0;
  /** mp_.tcache_bins (2.42: tcache_small_bins), mp_.tcache_count, mp_.tcache_unsorted_limit (0: no limit). */
  tcacheBins = TCACHE_MAX_BINS;
  tcacheCount = TCACHE_FILL_COUNT;
  tcacheUnsortedLimit: SizeT = 0;
  /** global_max_fast (a global beside mp_ in glibc): the largest chunk that goes to a fastbin. */
  maxFast = maxFastFor(DEFAULT_MXFAST);

  /** mp_.n_mmaps and mp_.max_n_mmaps: mmapped chunks alive now, and the most at once. */
  nMmaps = 0;
  maxNMmaps = 0;
  /** mp_.mmapped_mem and mp_.max_mmapped_mem: their bytes (mapping lengths). */
  mmappedMem = 0;
  maxMmappedMem = 0;
}
