// The entry points a program calls (__libc_malloc, __libc_free, __libc_calloc, __libc_realloc, memalign,
// mallopt, malloc_trim, mallinfo2), on chunk ids: NIL is NULL. The replay drives these directly.
import type { MallocState } from './arena.ts';
import { arenaForChunk, arenaGet, arenaGetRetry } from './arenas.ts';
import { MallocscopeError } from '../errors.ts';
import type { Malloc } from './malloc.ts';
import type { MalloptParam } from './constants.ts';
import { ChunkState, NIL } from './chunks.ts';
import type { MallocPar } from './params.ts';
import type { MmappedFreeNote, RefusalNote, ThresholdMove } from './notes.ts';
import { searchNote } from './int-malloc.ts';
import { HUGE_STAND_IN, big, request2sizeExact, sizeT, sizeTFromInt, type SizeT } from './size-t.ts';
import {
  DEFAULT_MMAP_THRESHOLD_MAX,
  CHUNK_HDR_SZ,
  HEAP_MAX_SIZE,
  MALLOC_ALIGN_MASK,
  MINSIZE,
  MAX_FAST_SIZE,
  PTRDIFF_MAX,
  SIZE_SZ,
  checkedRequest2size,
  csize2tidx,
  request2size,
} from './constants.ts';
import { doSetArenaMax, doSetArenaTest, doSetMmapThreshold, doSetMmapsMax, doSetMxfast, doSetTopPad, doSetTrimThreshold } from './do-set.ts';
import { intFree, mallocConsolidate } from './int-free.ts';
import { intMalloc } from './int-malloc.ts';
import { intMemalign, memalignAlignment, memalignFromTcache, memalignNote } from './memalign.ts';
import { copyUserBytes, intRealloc, reallocMmapped } from './realloc.ts';
import type { GlibcRules } from './versions.ts';
import { mtrim, munmapChunk } from './sysmalloc.ts';

const SIZE_MAX = (1n << 64n) - 1n;

/**
 * MAYBE_INIT_TCACHE: the first malloc, calloc or heap free of a thread allocates its tcache struct (chunk 0x290;
 * 0x300 from 2.42, and from 2.42 only small requests set it up: see wantsTcache) in the thread's arena
 * (arena_get: chosen now for a new thread). When that arena cannot hold it (sbrk and its mmap fallback both
 * failed), tcache_init retries (arena_get_retry: main_arena for a thread arena, a new arena for main_arena),
 * single thread or not: from a new arena the thread's later calls use that arena once the process has
 * threads. Since 2.42 it does not retry: the tcache stays absent until a later call succeeds. A thread that
 * is ending never makes one again.
 */
export function maybeInitTcache(m: Malloc): void {
  if (m.tcache.ready || m.tcache.shuttingDown) return;
  const notes = m.notes;
  const saved = notes.path;
  const request = m.glibc.tcacheStructRequest;
  let av = arenaGet(m, request);
  if (av === null) throw noArena(m, request);
  const topBefore = av.topSize;
  const syscallsBefore = m.system.syscallCount;
  let victim = intMalloc(av, request);
  const firstTry = victim;
  if (victim === NIL && m.glibc.tcacheInitRetriesInNewArena) {
    av = arenaGetRetry(m, av, request);
    if (av === null) throw noArena(m, request);
    victim = intMalloc(av, request);
  }
  if (notes.detail) {
    notes.tcacheInit = {
      chunk: request2size(request),
      topBefore,
      topAfter: av.topSize,
      path: firstTry === NIL ? '' : notes.path,
      syscalls: m.system.syscallCount - syscallsBefore,
      mmapThreshold: m.mp.mmapThreshold,
      topPad: sizeTFromInt(m.mp.topPad),
      minsize: MINSIZE,
    };
    // The struct's own search, and what it freed on the way (an old top's fenceposted rest), are not the
    // request's.
    notes.search = null;
    notes.sysmalloc = null;
    notes.freed = [];
    notes.trim = null;
  }
  notes.path = saved;
  if (victim !== NIL) {
    m.tcache.ready = true;
    m.tcache.structChunk = victim;
  }
}

/** When no arena can be had at all (glibc would then try a bare mmap): not followed by the model. */
function noArena(m: Malloc, bytes: number): MallocscopeError {
  return new MallocscopeError(
    'MODEL_UNSUPPORTED',
    `thread ${m.thread.id} needs an arena for ${bytes} bytes and no heap can be mapped for one; the model does not follow glibc's arena-less mmap`,
  );
}

/**
 * The allocation of a call: until the first pthread_create in main_arena with no retry (SINGLE_THREAD_P);
 * then in the running thread's arena (arena_get with `choiceBytes`), and once more after a failure in the
 * arena arena_get_retry gives for `retryBytes`.
 */
function inArena(m: Malloc, choiceBytes: number, retryBytes: number, allocate: (av: MallocState) => number): number {
  if (!m.multiThreaded) return allocate(m.main);
  const av = arenaGet(m, choiceBytes);
  if (av === null) throw noArena(m, choiceBytes);
  const p = allocate(av);
  if (p !== NIL) return p;
  const retry = arenaGetRetry(m, av, retryBytes);
  if (retry === null) throw noArena(m, retryBytes);
  return allocate(retry);
}

/**
 * Whether a call for chunk size `nb` sets the tcache up: any malloc or calloc until 2.41; from 2.42 only one
 * whose chunk the tcache could hold.
 */
function wantsTcache(m: Malloc, nb: number): boolean {
  return !m.tcache.ready && (!m.glibc.tcacheSetUpBySmallRequests || csize2tidx(nb) < m.mp.tcacheBins);
}

/**
 * __libc_malloc. A size above 2^53 (a bigint) is checked exactly here: above PTRDIFF_MAX glibc refuses it
 * before anything else; below, it is searched for with the stand-in size and fails in sysmalloc.
 */
export function libcMalloc(m: Malloc, bytes: SizeT): number {
  if (typeof bytes === 'bigint') {
    if (bytes > PTRDIFF_MAX) return refuse(m, 'ptrdiff', bytes);
    return withExactRequest(m, bytes, () => libcMalloc(m, HUGE_STAND_IN));
  }
  const nb = checkedRequest2size(bytes);
  if (nb === 0) return refuse(m, 'ptrdiff', bytes);
  if (wantsTcache(m, nb)) maybeInitTcache(m);
  const p = fromTcache(m, nb);
  if (p !== NIL) return p;
  return stamp(
    m.main,
    inArena(m, bytes, bytes, (av) => intMalloc(av, bytes)),
  );
}

/** The arena the running thread's call searches: main_arena until the first pthread_create, then the thread's. */
function callArena(m: Malloc): MallocState {
  return m.multiThreaded ? (m.thread.arena ?? m.main) : m.main;
}

/** The newest tcache entry for chunk size `nb`, taken (tcache_get), or NIL when its bin has none. */
function fromTcache(m: Malloc, nb: number): number {
  const tidx = csize2tidx(nb);
  if (tidx >= m.mp.tcacheBins || m.tcache.counts[tidx] === 0 || !m.tcache.ready) return NIL;
  m.notes.path = 'tcache';
  if (m.notes.detail) m.notes.search = searchNote(callArena(m), nb);
  const p = m.tcache.get(tidx);
  m.chunks.madeBy[p] = m.seq;
  return p;
}

/** Notes a request refused at the entry point (before any search); returns NULL. */
function refuse(m: Malloc, why: RefusalNote['why'], value: SizeT): number {
  if (m.notes.detail) m.notes.refused = { why, value };
  return NIL;
}

/** Runs `call` with the stand-in size for a request whose exact _int_malloc bytes are `exact` (above 2^53). */
function withExactRequest(m: Malloc, exact: bigint, call: () => number): number {
  m.hugeRequest = exact;
  try {
    return call();
  } finally {
    m.hugeRequest = null;
  }
}

/** __libc_free. An mmapped chunk first moves the sliding threshold, then is unmapped. */
export function libcFree(m: Malloc, p: number): void {
  if (p === NIL) return;
  const c = m.chunks;
  if (c.state[p] === ChunkState.Mmapped) {
    const size = c.size[p];
    m.notes.thresholdMove = slideThreshold(m, size + 2, size);
    munmapChunk(m.main, p);
    return;
  }
  // Since 2.42 free never sets the tcache up.
  if (!m.tcache.ready && !m.glibc.tcacheSetUpBySmallRequests) maybeInitTcache(m);
  intFree(arenaForChunk(m, p), p);
}

/**
 * The sliding watermark (docs/glibc.md §3): freeing an mmapped chunk whose size word (chunk size + 2, the
 * IS_MMAPPED bit) is above mp_.mmap_threshold and at most 32 MiB raises the threshold to the chunk size
 * and the trim threshold to twice that, unless mallopt switched the sliding off. The move, or null.
 */
function slideThreshold(m: Malloc, sizeWord: number, chunkSize: number): ThresholdMove | null {
  const mp = m.mp;
  let verdict: MmappedFreeNote['verdict'] = 'rise';
  if (mp.noDynThreshold) verdict = 'sliding-off';
  else if (!(sizeWord > mp.mmapThreshold)) verdict = 'not-above';
  else if (sizeWord > DEFAULT_MMAP_THRESHOLD_MAX) verdict = 'above-max';
  // A chunk exactly at the threshold passes the test (the size word carries +2) but rewrites the same values.
  else if (chunkSize === mp.mmapThreshold && 2 * chunkSize === mp.trimThreshold) verdict = 'same';
  if (m.notes.detail) m.notes.mmappedFree = { size: chunkSize, sizeWord, threshold: mp.mmapThreshold, max: DEFAULT_MMAP_THRESHOLD_MAX, verdict };
  if (verdict !== 'rise') return null;
  const move: ThresholdMove = {
    mmapThreshold: { from: mp.mmapThreshold, to: chunkSize },
    trimThreshold: { from: mp.trimThreshold, to: 2 * chunkSize },
  };
  mp.mmapThreshold = chunkSize;
  mp.trimThreshold = 2 * chunkSize;
  return move;
}

/**
 * __libc_calloc: nmemb * size is computed into a ptrdiff_t, so a product above PTRDIFF_MAX (not only one
 * past 2^64) fails at once, before the tcache set-up; then _int_malloc (until 2.41 never the tcache). A product above
 * 2^53 is taken exactly (it is searched for with the stand-in size, and fails in sysmalloc).
 */
export function libcCalloc(m: Malloc, nmemb: SizeT, size: SizeT): number {
  let bytes = typeof nmemb === 'number' && typeof size === 'number' ? nmemb * size : Infinity;
  if (bytes > Number.MAX_SAFE_INTEGER) {
    const product = big(nmemb) * big(size);
    if (product > PTRDIFF_MAX) return refuse(m, product > SIZE_MAX ? 'overflow' : 'ptrdiff', product);
    if (product > BigInt(Number.MAX_SAFE_INTEGER)) return withExactRequest(m, product, () => callocChunk(m, HUGE_STAND_IN));
    bytes = Number(product);
  }
  return callocChunk(m, bytes);
}

/**
 * calloc after its size check: the tcache set-up, then _int_malloc (the tcache first since 2.41), then the
 * clearing.
 */
function callocChunk(m: Malloc, bytes: number): number {
  const nb = checkedRequest2size(bytes);
  if (wantsTcache(m, nb)) maybeInitTcache(m);
  const cached = m.glibc.callocUsesTcache ? fromTcache(m, nb) : NIL;
  let p = cached;
  if (p === NIL) p = inArena(m, bytes, bytes, (av) => intMalloc(av, bytes));
  if (p !== NIL && m.system.memory !== null) zeroCalloc(m.main, p);
  return stamp(m.main, p);
}

/**
 * calloc's clearing, where the kernel holds real data: an mmapped chunk is fresh (zero) memory; a heap chunk
 * is cleared whole (glibc skips the part freshly obtained from sbrk, which is zero anyway).
 */
function zeroCalloc(av: MallocState, p: number): void {
  const c = av.chunks;
  if (c.state[p] === ChunkState.Mmapped) return;
  av.system.memory?.zero(c.address[p] + CHUNK_HDR_SZ, c.size[p] - SIZE_SZ);
}

/**
 * __libc_realloc. realloc(p, 0) frees; realloc(NULL, n) mallocs; a failure leaves p as it was. For a heap
 * block the tcache is set up before the size is checked, so even a refused size sets it up. A size above
 * 2^53 is checked exactly here, in glibc's order.
 */
export function libcRealloc(m: Malloc, p: number, bytes: SizeT): number {
  if (bytes === 0 && p !== NIL) {
    libcFree(m, p);
    return NIL;
  }
  if (p === NIL) return libcMalloc(m, bytes);
  const mmapped = m.chunks.state[p] === ChunkState.Mmapped;
  // The block's own arena: a heap block grows, shrinks or moves there, whichever thread asks.
  const av = mmapped ? m.main : arenaForChunk(m, p);
  if (m.glibc.reallocKeepsWhatFits && typeof bytes === 'number') {
    // Since 2.37: a request the block already holds, with less than two words to spare (at most a page,
    // mmapped), returns it before anything else is done; a bigint is never within a usable size.
    const usable = mallocUsableSize(m, p);
    const spare = usable - bytes;
    if (spare >= 0 && (spare < 2 * SIZE_SZ || (mmapped && spare <= av.system.pageSize))) {
      m.notes.path = 'in-place';
      if (m.notes.detail) m.notes.realloc = { old: av.chunks.size[p], nb: bytes, how: 'usable', tail: spare, top: av.topSize, minsize: MINSIZE, copied: 0 };
      return stamp(av, p);
    }
  }
  // Since 2.42 realloc never sets the tcache up.
  if (!mmapped && !m.glibc.tcacheSetUpBySmallRequests) maybeInitTcache(m);
  if (typeof bytes === 'bigint') {
    if (bytes > PTRDIFF_MAX) return refuse(m, 'ptrdiff', bytes);
    // A heap block that cannot grow in place asks _int_malloc for nb - MALLOC_ALIGN_MASK, refused at once
    // above PTRDIFF_MAX; an mmapped block asks mremap for the exact size, then malloc for the bytes.
    const exact = mmapped ? bytes : request2sizeExact(bytes) - BigInt(MALLOC_ALIGN_MASK);
    if (exact > PTRDIFF_MAX) {
      // _int_realloc found no room beside the chunk (none is that large); its _int_malloc refuses at once.
      if (m.notes.detail)
        m.notes.realloc = { old: av.chunks.size[p], nb: request2sizeExact(bytes), how: 'failed', tail: 0, top: av.topSize, minsize: MINSIZE, copied: 0 };
      return NIL;
    }
    return withExactRequest(m, exact, () => libcRealloc(m, p, HUGE_STAND_IN));
  }
  const nb = checkedRequest2size(bytes);
  if (nb === 0) return refuse(m, 'ptrdiff', bytes);
  if (mmapped)
    return stamp(
      av,
      reallocMmapped(av, p, bytes, nb, (n) => libcMalloc(m, n)),
    );
  const moved = intRealloc(av, p, nb);
  if (moved !== NIL || !m.multiThreaded) return stamp(av, moved);
  // With threads, a block that could not be resized in its arena is copied into a malloc'd one (the thread's
  // arena, and its retry), and freed from its own arena.
  const fresh = libcMalloc(m, bytes);
  if (fresh !== NIL) {
    copyUserBytes(av, fresh, p, m.chunks.size[p] - SIZE_SZ);
    intFree(av, p);
  }
  return stamp(av, fresh);
}

/**
 * memalign / aligned_alloc (_mid_memalign): small alignments are plain malloc; the rest never use tcache.
 * Exact values above 2^53 are checked here, in glibc's order: the alignment (EINVAL above 2^63), the size
 * against PTRDIFF_MAX, then the padded request _int_memalign makes.
 */
export function libcMemalign(m: Malloc, alignment: SizeT, bytes: SizeT): number {
  const adjusted = memalignAlignment(big(alignment));
  if (adjusted === 0n) {
    if (m.notes.detail) m.notes.memalign = { ...memalignNote(Number(alignment), 0), inner: 0, plain: true };
    return libcMalloc(m, bytes);
  }
  if (adjusted < 0n) return refuse(m, 'einval', alignment);
  // The chunk size of the request (0: above PTRDIFF_MAX, or past 2^53), for the tcache's two steps.
  const nb = typeof bytes === 'number' ? checkedRequest2size(bytes) : 0;
  // Since 2.42 memalign sets the tcache up too, for a chunk it could hold (the search below then finds
  // nothing), whatever the alignment: before _int_memalign's own checks.
  if (nb !== 0 && m.glibc.tcacheSetUpBySmallRequests && wantsTcache(m, nb)) maybeInitTcache(m);
  const av = callArena(m);
  if (typeof alignment === 'bigint' || typeof bytes === 'bigint') return memalignExact(m, adjusted, big(bytes));
  const fromTcache = memalignFromTcache(av, Number(adjusted), nb);
  if (fromTcache !== NIL) {
    if (m.notes.detail) m.notes.memalign = { ...memalignNote(Number(adjusted), av.chunks.size[fromTcache]), fromTcache: true };
    return stamp(av, fromTcache);
  }
  const aligned = Number(adjusted);
  return stamp(
    av,
    inArena(m, bytes + aligned + MINSIZE, bytes, (arena) => intMemalign(arena, aligned, bytes)),
  );
}

/** _mid_memalign past 2^53 (the alignment, already adjusted, or the size): exact checks, then a stand-in. */
function memalignExact(m: Malloc, aligned: bigint, req: bigint): number {
  if (req > PTRDIFF_MAX) return refuse(m, 'ptrdiff', req);
  const nb = request2sizeExact(req);
  if (nb > SIZE_MAX - aligned - BigInt(MINSIZE)) return refuse(m, 'overflow', nb + aligned + BigInt(MINSIZE));
  const inner = nb + aligned + BigInt(MINSIZE);
  if (inner > PTRDIFF_MAX) return refuse(m, 'ptrdiff', inner);
  // The alignment or the size is past 2^53, so the inner request is too: it is searched for and fails in
  // sysmalloc, which asks the kernel for its exact size. 64 and the stand-in size take that same path.
  const result = withExactRequest(m, inner, () => libcMemalign(m, 64, HUGE_STAND_IN));
  const note = m.notes.memalign;
  if (note) {
    // The stand-in's alignment and sizes were noted: the call's own are these.
    note.alignment = Number(aligned);
    note.nb = sizeT(nb);
    note.inner = sizeT(inner);
  }
  return result;
}

/** mallopt: always consolidates first; returns glibc's result (1, or 0 for a refused M_MXFAST). */
export function libcMallopt(m: Malloc, param: MalloptParam, value: number): number {
  const mp = m.mp;
  mallocConsolidate(m.main);
  const before = { mmap: mp.mmapThreshold, trim: mp.trimThreshold };
  const result = setParam(mp, param, value, m.glibc);
  if (m.notes.detail) {
    m.notes.mallopt = {
      accepted: result === 1,
      limit: MAX_FAST_SIZE,
      thresholdLimit: m.glibc.mmapThresholdCapped ? HEAP_MAX_SIZE / 2 : null,
      maxFast: mp.maxFast,
      topPad: sizeTFromInt(mp.topPad),
      fastbinsTakeNone: mp.maxFast < MINSIZE,
      mmapsBlocked: mp.nMmaps >= mp.nMmapsMax,
    };
  }
  if (mp.mmapThreshold !== before.mmap || mp.trimThreshold !== before.trim) {
    m.notes.thresholdMove = {
      mmapThreshold: { from: before.mmap, to: mp.mmapThreshold },
      trimThreshold: { from: before.trim, to: mp.trimThreshold },
    };
  }
  return result;
}

/**
 * mallopt's switch: each parameter through its do_set_* (do-set.ts), with the int converted as glibc converts
 * it (to size_t for the thresholds and M_MXFAST). The arena limits are set only for a positive value, yet
 * mallopt returns 1.
 */
function setParam(mp: MallocPar, param: MalloptParam, value: number, glibc: GlibcRules): number {
  switch (param) {
    case 'M_MXFAST':
      return doSetMxfast(mp, sizeTFromInt(value));
    case 'M_TOP_PAD':
      return doSetTopPad(mp, value);
    case 'M_MMAP_MAX':
      return doSetMmapsMax(mp, value);
    case 'M_TRIM_THRESHOLD':
      return doSetTrimThreshold(mp, sizeTFromInt(value));
    case 'M_MMAP_THRESHOLD':
      return doSetMmapThreshold(mp, sizeTFromInt(value), glibc);
    case 'M_ARENA_MAX':
      if (value > 0) doSetArenaMax(mp, value);
      return 1;
    case 'M_ARENA_TEST':
      if (value > 0) doSetArenaTest(mp, value);
      return 1;
  }
}

/** malloc_trim(pad): 1 when memory was released or advised away. `pad` is a bigint when above 2^53. */
export function libcTrim(m: Malloc, pad: number | bigint): number {
  // Every arena in the ring's order, main_arena first; only main_arena's top goes back (systrim).
  let result = false;
  let av = m.main;
  do {
    result = mtrim(av, pad) || result;
    av = av.next;
  } while (av !== m.main);
  return result ? 1 : 0;
}

/** mallinfo2's fields, with glibc's meanings (docs/glibc.md §8). */
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

/** mallinfo2, from counters kept as chunks move: summed over every arena; keepcost is main_arena's top. */
export function libcMallinfo2(m: Malloc): Mallinfo2 {
  const info = {
    arena: 0,
    ordblks: 0,
    smblks: 0,
    hblks: m.mp.nMmaps,
    hblkhd: m.mp.mmappedMem,
    usmblks: 0,
    fsmblks: 0,
    uordblks: 0,
    fordblks: 0,
    keepcost: m.main.topSize,
  };
  for (const av of m.arenas) {
    const free = av.topSize + av.fastBytes + av.binnedBytes;
    info.arena += av.systemMem;
    info.ordblks += av.binnedCount + 1;
    info.smblks += av.fastCount;
    info.fsmblks += av.fastBytes;
    info.uordblks += av.systemMem - free;
    info.fordblks += free;
  }
  return info;
}

/** malloc_usable_size of a live chunk: its size less the header words it cannot use. */
export function mallocUsableSize(m: Malloc, p: number): number {
  const c = m.chunks;
  return c.state[p] === ChunkState.Mmapped ? c.size[p] - CHUNK_HDR_SZ : c.size[p] - SIZE_SZ;
}

/** Marks a returned chunk as made by the current call. */
function stamp(av: MallocState, p: number): number {
  if (p !== NIL) av.chunks.madeBy[p] = av.m.seq;
  return p;
}

/** What malloc_stats() prints (docs/glibc.md §8), for the main arena of one thread. */
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
export function libcMallocStats(m: Malloc): MallocStats {
  const av = m.main;
  const inUse = av.systemMem - (av.topSize + av.fastBytes + av.binnedBytes);
  // The totals sum every arena; "Arena 0" is the main one.
  const all = libcMallinfo2(m);
  return {
    systemBytes: av.systemMem,
    inUseBytes: inUse,
    totalSystemBytes: m.mp.mmappedMem + all.arena,
    totalInUseBytes: m.mp.mmappedMem + all.uordblks,
    maxMmapRegions: m.mp.maxNMmaps,
    maxMmapBytes: m.mp.maxMmappedMem,
    maxSystemBytes: av.maxSystemMem,
  };
}
