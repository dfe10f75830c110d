// The glibc versions the model knows: each is a frozen set of rule switches, chosen once when a process's
// malloc is made and read only where its rule lives (docs/glibc.md §10 lists each rule with its commit and
// the probe that shows it on a real build). 2.36 is the model as it has always been.

/** What differs between the versions the model knows; each switch names the version that brought it. */
export interface GlibcRules {
  /** The version, as gnu_get_libc_version() prints it ("2.39"). */
  readonly version: string;
  /**
   * sysmalloc's mmap stand-in heap when sbrk fails: rounded to pages with a 1 MiB minimum (2.34, and again
   * from 2.38, commit 6a734e62f1), or, in 2.35–2.37, to whole MiB with a one-page minimum (the two sizes were
   * passed the wrong way round).
   */
  readonly mmapFallbackInPages: boolean;
  /** mallopt(M_MMAP_THRESHOLD) refuses a value above HEAP_MAX_SIZE / 2 (32 MiB): 2.34 only. */
  readonly mmapThresholdCapped: boolean;
  /** sizeof(heap_info), which places a new arena's first chunk: 32 in 2.34, 48 from 2.35 (its pagesize field). */
  readonly heapInfoSize: number;
  /**
   * realloc returns the block as it is when the request fits its usable size with less than 16 bytes spare
   * (or at most a page, for an mmapped block), before anything else, the tcache set-up included: from 2.37
   * (f4f2ca1509, narrowed in 2.38 by 2fb12bbd09, bug 30579).
   */
  readonly reallocKeepsWhatFits: boolean;
  /** memalign first takes an aligned entry of the exact size from the tcache, anywhere in its list: from 2.38 (24cdd6c71d). */
  readonly memalignSearchesTcache: boolean;
  /**
   * memalign gives its lead and tail back by merging them (never to the tcache or a fastbin), and splits
   * off a tail of MINSIZE, or smaller beside the top or a free chunk: from 2.38.x/2.39 (542b110585, bug 30723).
   */
  readonly memalignMergesRemainders: boolean;
  /**
   * A chunk freed past the tcache and fastbins that is small after merging goes to the head of its small bin
   * rather than the unsorted bin (malloc_consolidate's chunks still go to unsorted): from 2.41 (e2436d6f5a).
   */
  readonly freeSmallToSmallbin: boolean;
  /** calloc takes a tcache entry first, as malloc does: from 2.41 (226e3b0a41). */
  readonly callocUsesTcache: boolean;
  /**
   * The tcache struct's request: 640 bytes (64 bins; chunk 0x290), 760 from 2.42 (76 bins, the last twelve for
   * large chunks; chunk 0x300), which moves every later heap block by 112 bytes (cbfd798810).
   */
  readonly tcacheStructRequest: number;
  /**
   * Who sets the tcache up. Until 2.41: the first malloc or calloc, a realloc or free of a heap block. From
   * 2.42: only a malloc, calloc or memalign (alignment above 16) of a chunk the tcache can hold (1c9ac027a5,
   * 855561a1fb); free and realloc never do.
   */
  readonly tcacheSetUpBySmallRequests: boolean;
  /**
   * When the main arena cannot hold the tcache struct: until 2.41 tcache_init retries in a new arena, even in
   * one thread; from 2.42 the tcache stays absent and the next small request tries again (1061b75412).
   */
  readonly tcacheInitRetriesInNewArena: boolean;
  /**
   * The chunks glibc frees itself (realloc's cut-off tail and its moved-from chunk, sysmalloc's old top) skip
   * the tcache: from 2.42 (cd33535002). The program's own free still goes to the tcache first.
   */
  readonly internalFreesSkipTcache: boolean;
  /**
   * How ld.so reads GLIBC_TUNABLES (src/allocator/tunables.ts). Until 2.38 leniently: a value is the number
   * its leading digits make (none: 0), a malformed entry ends the string there, every occurrence of a name is
   * set in turn. From 2.39 strictly (b4cf6cac73, 680c597e9c, f94446c38f): a malformed string (a trailing
   * name without `=`, a second `=` in a value, a trailing `:`) is ignored whole, a value must be a whole
   * number, and an INT_32 value keeps its low 32 bits.
   */
  readonly tunablesStrict: boolean;
  /** From 2.40 (bcae44ea85, bug 31686): of a name given twice, only the last occurrence is tried. */
  readonly tunablesLastOccurrence: boolean;
  /**
   * 2.34's ld.so copies GLIBC_TUNABLES into memory it takes with sbrk (2.35 moved it to its own allocator),
   * so the program break malloc starts from is moved, not page-aligned: the model does not follow that.
   */
  readonly tunablesMoveTheBreak: boolean;
  /**
   * glibc.malloc.tcache_max above 1032 bytes opens 2.42's large tcache bins (up to 4 MiB chunks;
   * cbfd798810), which the model does not follow.
   */
  readonly tcacheLargeBins: boolean;
}

const V2_36: GlibcRules = {
  version: '2.36',
  mmapFallbackInPages: false,
  mmapThresholdCapped: false,
  heapInfoSize: 48,
  reallocKeepsWhatFits: false,
  memalignSearchesTcache: false,
  memalignMergesRemainders: false,
  freeSmallToSmallbin: false,
  callocUsesTcache: false,
  tcacheStructRequest: 640,
  tcacheSetUpBySmallRequests: false,
  tcacheInitRetriesInNewArena: true,
  internalFreesSkipTcache: false,
  tunablesStrict: false,
  tunablesLastOccurrence: false,
  tunablesMoveTheBreak: false,
  tcacheLargeBins: false,
};

/** 2.38's and 2.39's rules, which every later version keeps. */
const SINCE_2_39 = {
  mmapFallbackInPages: true,
  reallocKeepsWhatFits: true,
  memalignSearchesTcache: true,
  memalignMergesRemainders: true,
  tunablesStrict: true,
};
/** 2.41's (2.40's tunables rule among them), kept since. */
const SINCE_2_41 = { freeSmallToSmallbin: true, callocUsesTcache: true, tunablesLastOccurrence: true };

/** The versions the model knows, oldest first, and the distributions that ship them. */
export const GLIBC_VERSIONS: readonly { rules: GlibcRules; shippedBy: string }[] = [
  {
    rules: { ...V2_36, version: '2.34', mmapFallbackInPages: true, mmapThresholdCapped: true, heapInfoSize: 32, tunablesMoveTheBreak: true },
    shippedBy: 'RHEL 9, Rocky and Alma Linux 9, Amazon Linux 2023',
  },
  { rules: { ...V2_36, version: '2.35' }, shippedBy: 'Ubuntu 22.04' },
  { rules: V2_36, shippedBy: 'Debian 12' },
  { rules: { ...V2_36, ...SINCE_2_39, version: '2.39' }, shippedBy: 'Ubuntu 24.04' },
  { rules: { ...V2_36, ...SINCE_2_39, ...SINCE_2_41, version: '2.41' }, shippedBy: 'Debian 13' },
  {
    rules: {
      ...V2_36,
      ...SINCE_2_39,
      ...SINCE_2_41,
      version: '2.42',
      tcacheStructRequest: 760,
      tcacheSetUpBySmallRequests: true,
      tcacheInitRetriesInNewArena: false,
      internalFreesSkipTcache: true,
      tcacheLargeBins: true,
    },
    shippedBy: 'Fedora 43',
  },
];

/** The rules of 2.36, the version the model was first made for (and the default of a Malloc made without one). */
export const GLIBC_2_36: GlibcRules = V2_36;

/** The rules of `version` ("2.39"), or undefined when the model does not know it. */
export function glibcRules(version: string): GlibcRules | undefined {
  return GLIBC_VERSIONS.find((v) => v.rules.version === version)?.rules;
}
