// What one call did inside the allocator and why, beyond its result: the path that found the chunk, and each
// decision with its numbers (tcache set-up, where each freed chunk went, the trim verdict, memalign's pieces,
// refusals, threshold comparisons). The core records them where it decides; explain, the report and compare
// only read them. The cheap counters are always kept; the decisions only when `detail` is set.
import type { SizeT } from './size-t.ts';

/** A move of the thresholds, for the event stream ("threshold 131072 → 200704"). */
export interface ThresholdMove {
  /** mmap_threshold before and after. */
  mmapThreshold: { from: SizeT; to: SizeT };
  /** trim_threshold before and after. */
  trimThreshold: { from: SizeT; to: SizeT };
}

/** Where a block came from, in glibc's terms. */
export type AllocPath =
  | ''
  | 'tcache'
  | 'fastbin'
  | 'smallbin'
  | 'unsorted' // an exact fit met in the unsorted scan
  | 'last-remainder'
  | 'largebin'
  | 'binmap' // the next larger non-empty bin
  | 'top'
  | 'sysmalloc' // the heap grew (brk, or the mmap fallback)
  | 'mmap' // its own mapping
  | 'mremap' // realloc of an mmapped block
  | 'in-place'; // realloc kept the block where it was

export interface CallNotes {
  /** How the returned block was found ('' when nothing was returned). */
  path: AllocPath;
  /** malloc_consolidate runs. */
  consolidations: number;
  /** systrim calls that released memory, and how much. */
  trims: number;
  trimmedBytes: number;
  /** The threshold move this call caused (free of an mmapped chunk, or mallopt), if any. */
  thresholdMove: ThresholdMove | null;
  /** What sysmalloc saw when the bins and the top could not serve a request: null if it did not run. */
  sysmalloc: SysmallocNote | null;
  /** What the last heap free merged into: null if no chunk was coalesced. */
  merge: MergeNote | null;
  /** The object `merge` points at when set, reused call after call so that a free allocates nothing. */
  readonly mergeSlot: MergeNote;

  /** Record the decisions below (explain and the report set it; a plain replay does not pay for them). */
  detail: boolean;
  /** Chunks malloc_consolidate took out of the fastbins. */
  consolidatedChunks: number;
  /** The request refused at the entry point, before any search: why, and the value refused. */
  refused: RefusalNote | null;
  /** tcache_init, when this call ran it. */
  tcacheInit: TcacheInitNote | null;
  /** The last search for a chunk (the tcache or _int_malloc): the request's, since tcache_init runs first. */
  search: SearchNote | null;
  /** Each chunk _int_free handled, in order (a free, realloc's tail or old chunk, memalign's lead and tail). */
  freed: FreeNote[];
  /** The trim check of the last free in the call that reached it (a merged chunk of 64 KiB or more). */
  trim: TrimNote | null;
  /** free of an mmapped chunk: the sliding threshold's comparison. */
  mmappedFree: MmappedFreeNote | null;
  /** _int_memalign's pieces. */
  memalign: MemalignNote | null;
  /** _int_realloc's or the mmapped branch's decision. */
  realloc: ReallocNote | null;
  /** mallopt's verdict. */
  mallopt: MalloptNote | null;
  /** malloc_trim's work before systrim. */
  mtrim: MtrimNote | null;
  /** malloc_trim's note on main_arena (mtrim is the last arena's). */
  mainTrim: MtrimNote | null;

  /** The arena the running thread was given in this call (arena_get2, arena_get_retry), if one was. */
  arena: ArenaNote | null;
  /** A thread arena's heap that sysmalloc grew or made, or heap_trim unmapped or shrank, in order. */
  heaps: HeapNote[];
  /** What a spawn or an exit did through malloc. */
  thread: ThreadNote | null;
}

/** How a thread got its arena (arena_get2, or arena_get_retry after a failed allocation). */
export interface ArenaNote {
  /** The thread (1 is the main thread). */
  thread: number;
  /** free-list: an exited thread's arena; new: _int_new_arena; reused: reused_arena's next in line; main: the retry of a thread arena's failure. */
  how: 'free-list' | 'new' | 'reused' | 'main';
  /** The arena's number (0: main_arena). */
  arena: number;
  /** Arenas in the process after the choice, and narenas_limit (0 while not worked out). */
  narenas: number;
  limit: number;
  /** Where the limit came from: M_ARENA_MAX, or 8 × the CPUs glibc sees; what arena_test is. */
  arenaMax: number;
  cores: number;
  arenaTest: number;
}

/** A thread arena's heap changing. */
export interface HeapNote {
  arena: number;
  /** The heap's place in its arena (heapIndex). */
  heap: number;
  /** new (new_heap), grow (grow_heap), unmapped (heap_trim: a whole heap), shrunk (heap_trim: its top's pages). */
  how: 'new' | 'grow' | 'unmapped' | 'shrunk';
  /** The bytes added or given back. */
  bytes: number;
}

/** What pthread_create or a thread's end did through malloc. */
export interface ThreadNote {
  /** spawn: the new thread; exit: the thread that ended. */
  thread: number;
  /** spawn: the DTV came with a cached stack (nothing allocated), or was calloc'd (its chunk). */
  dtv: 'cached' | 'calloc' | null;
  dtvChunk: number;
  /** exit: tcache chunks given back to their arenas; the tcache struct's chunk (0 if it had none). */
  flushed: number;
  structChunk: number;
  /** exit: the arena that went on the free list (no thread left on it), or -1. */
  freedArena: number;
  /** exit: the DTV of the oldest cached stack, freed by the joining main thread when the cache was full. */
  dtvFreed: boolean;
  /** Stacks cached after the call, and how many the cache keeps. */
  cached: number;
  cacheLimit: number;
}

/** sysmalloc's decision, for explanations. */
export interface SysmallocNote {
  /** The padded chunk size asked for (exact: a request near 2^63 reaches sysmalloc as itself). */
  nb: SizeT;
  /** The top's size when sysmalloc began. */
  topSize: number;
  /** mp_.mmap_threshold at the decision. */
  mmapThreshold: SizeT;
  /** nb >= mp_.mmap_threshold, the first half of the mmap test. */
  aboveThreshold: boolean;
  /** Whether mmap was tried (nb >= mp_.mmap_threshold and n_mmaps < n_mmaps_max). */
  triedMmap: boolean;
  /** Whether the chunk got its own mapping. */
  mmapped: boolean;
  /** Whether n_mmaps had reached n_mmaps_max (then mmap is not tried, whatever the size). */
  mmapMaxReached: boolean;
  /** mp_.n_mmaps_max and mp_.top_pad (as a size_t) at the decision. */
  nMmapsMax: number;
  topPad: SizeT;
}

/** A free that coalesced: the size after merging, and whether it joined the top. */
export interface MergeNote {
  size: number;
  intoTop: boolean;
}

export interface RefusalNote {
  /** ptrdiff: above PTRDIFF_MAX; overflow: calloc's product past 2^64; einval: memalign's alignment above 2^63. */
  why: 'ptrdiff' | 'overflow' | 'einval';
  value: SizeT;
}

export interface TcacheInitNote {
  /** The struct's chunk size (request 640). */
  chunk: number;
  /** The top's size before, and after the struct was made. */
  topBefore: number;
  topAfter: number;
  /** How it was found (top, sysmalloc, mmap), or '' when the main arena could not hold it. */
  path: AllocPath;
  /** How many of the call's system calls it made (the first ones). */
  syscalls: number;
  /** mp_.mmap_threshold and top_pad (as a size_t) then, and MINSIZE (sysmalloc's growth adds it). */
  mmapThreshold: SizeT;
  topPad: SizeT;
  minsize: number;
}

export interface SearchNote {
  /** The chunk size searched for (exact past 2^53). */
  nb: SizeT;
  /** What the tcache held for nb (0 when nb has no tcache bin, or no tcache). */
  tcacheHeld: number;
  /** The bin the chunk came from: fastbin, small bin or large bin index (-1 otherwise). */
  bin: number;
  /** The last remainder's size when it was split (0 otherwise). */
  remainder: number;
  /** The top's size when the search reached it. */
  top: number;
  /** nb >= mp_.mmap_threshold at the call, and the threshold. */
  aboveThreshold: boolean;
  mmapThreshold: SizeT;
  /** The chunk was taken whole (its rest would be under MINSIZE). */
  whole: boolean;
  /** MINSIZE, the smallest rest worth splitting off. */
  minsize: number;
}

/** Where _int_free put a chunk, and why. */
export interface FreeNote {
  size: number;
  /** small: since 2.41, a chunk small after merging goes to its small bin. */
  to: 'tcache' | 'fastbin' | 'unsorted' | 'small' | 'top';
  /** tcache: the bin's count after; fastbin: its index. */
  count: number;
  /** mp_.tcache_count, and whether the size has a tcache bin at all. */
  fill: number;
  tcacheable: boolean;
  /** global_max_fast. */
  maxFast: number;
  /** unsorted or top: the merged size. */
  merged: number;
}

/** free's check after merging: consolidation, then systrim when the top reached the trim threshold. */
export interface TrimNote {
  /** The merged chunk, and whether it is the top. */
  merged: number;
  intoTop: boolean;
  /** FASTBIN_CONSOLIDATION_THRESHOLD. */
  consolidationThreshold: number;
  /** Whether the check ran (merged >= the consolidation threshold), and consolidated fastbins. */
  checked: boolean;
  consolidated: boolean;
  /** The top then, mp_.trim_threshold and mp_.top_pad (the C int, and as a size_t). */
  top: number;
  trimThreshold: SizeT;
  topPad: number;
  topPadT: SizeT;
  /** MINSIZE + 1: what systrim keeps below the pad. */
  reserve: number;
  /** below: top < trim_threshold; no-excess: top - MINSIZE - 1 <= pad; under-page: the excess is under a page;
   * not-at-break: the top does not end at the break; released; wrapped: size_t arithmetic grew the heap. */
  verdict: 'unchecked' | 'below' | 'no-excess' | 'under-page' | 'not-at-break' | 'released' | 'wrapped';
  /** top - MINSIZE - 1 - pad (what could go), and the page size. */
  excess: number;
  page: number;
}

export interface MmappedFreeNote {
  size: number;
  /** The raw size word compared (size + 2, the IS_MMAPPED bit), the threshold, and the ceiling. */
  sizeWord: number;
  threshold: SizeT;
  max: number;
  verdict: 'rise' | 'same' | 'sliding-off' | 'above-max' | 'not-above';
}

export interface MemalignNote {
  /** The alignment is at most MALLOC_ALIGNMENT (given): plain malloc (the rest of this note is unset). */
  plain: boolean;
  mallocAlignment: number;
  /** The adjusted alignment, nb, and what _int_malloc was asked for (nb + alignment + MINSIZE). */
  alignment: number;
  nb: SizeT;
  inner: SizeT;
  minsize: number;
  /** Heap chunks: the misaligned lead and the spare tail given back (0 when none). */
  lead: number;
  tail: number;
  /** mmapped chunks: the front gap kept in the mapping. */
  gap: number;
  /** Since 2.38: an aligned entry of the exact size was taken from the tcache (nothing else was done). */
  fromTcache: boolean;
}

export interface ReallocNote {
  /** The old chunk's size and the new nb. */
  old: number;
  nb: SizeT;
  /** fits: nb <= old, the chunk kept; top: grown into the top; next: grown into the free chunk above;
   * merged: the new chunk lay right above; moved: malloc, copy, free; failed; usable (since 2.37): the
   * request (`nb` holds the bytes) is within the usable size, the block returned as it is. */
  how: 'fits' | 'top' | 'next' | 'merged' | 'moved' | 'failed' | 'usable';
  /** The spare tail split off and freed (0 when under MINSIZE; for usable, the usable bytes left over), the
   * top's size at the call, MINSIZE. */
  tail: number;
  top: number;
  minsize: number;
  /** Bytes copied (moved), glibc's oldsize - SIZE_SZ. */
  copied: number;
}

export interface MalloptNote {
  accepted: boolean;
  /** M_MXFAST: the largest value taken, and global_max_fast after. */
  limit: number;
  maxFast: number;
  /** M_TOP_PAD: the new pad as a size_t. */
  topPad: SizeT;
  /** M_MXFAST: no chunk fits a fastbin any more (global_max_fast under MINSIZE). */
  fastbinsTakeNone: boolean;
  /** M_MMAP_THRESHOLD: the largest threshold taken (2.34: HEAP_MAX_SIZE / 2), or null for no limit. */
  thresholdLimit: number | null;
  /** M_MMAP_MAX: n_mmaps has reached the new limit, so no new mmap is tried. */
  mmapsBlocked: boolean;
}

export interface MtrimNote {
  /** Fastbin chunks consolidated first; chunks and bytes of whole pages madvised; the top and pad then. */
  consolidated: number;
  advisedChunks: number;
  advisedBytes: number;
  top: number;
  /** MINSIZE + 1: what systrim keeps below the pad. */
  reserve: number;
  /** main_arena only: systrim's verdict on its top (not-at-break: the top is not where the break is). */
  topVerdict: TrimNote['verdict'] | null;
}

export function newNotes(): CallNotes {
  return {
    path: '',
    consolidations: 0,
    trims: 0,
    trimmedBytes: 0,
    thresholdMove: null,
    sysmalloc: null,
    merge: null,
    mergeSlot: { size: 0, intoTop: false },
    detail: false,
    consolidatedChunks: 0,
    refused: null,
    tcacheInit: null,
    search: null,
    freed: [],
    trim: null,
    mmappedFree: null,
    memalign: null,
    realloc: null,
    mallopt: null,
    mtrim: null,
    mainTrim: null,
    arena: null,
    heaps: [],
    thread: null,
  };
}

/** Clears notes for the next call, in place (the replay's hot path makes no new object per event). */
export function resetNotes(notes: CallNotes): void {
  notes.path = '';
  notes.consolidations = 0;
  notes.trims = 0;
  notes.trimmedBytes = 0;
  notes.thresholdMove = null;
  notes.sysmalloc = null;
  notes.merge = null;
  notes.arena = null;
  notes.thread = null;
  if (notes.heaps.length) notes.heaps = [];
  if (notes.detail) {
    notes.consolidatedChunks = 0;
    notes.refused = null;
    notes.tcacheInit = null;
    notes.search = null;
    notes.freed = [];
    notes.trim = null;
    notes.mmappedFree = null;
    notes.memalign = null;
    notes.realloc = null;
    notes.mallopt = null;
    notes.mtrim = null;
    notes.mainTrim = null;
  }
}
