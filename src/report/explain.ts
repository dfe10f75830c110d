// One plain sentence per event, in glibc's terms and with its numbers: what the call did and why
// (GLIBC-2.36.md §2–§7). An observer of the replay: it reads a snapshot of the state taken before the event
// (captureBefore), the event and its outcome, and never changes the allocator.
import { request2sizeExact as exactRequest2size, sizeTFromInt, type SizeT } from '../allocator/size-t.ts';
import { UNSORTED } from '../allocator/arena.ts';
import { ChunkState, NIL } from '../allocator/chunks.ts';
import {
  CHUNK_HDR_SZ,
  DEFAULT_MMAP_THRESHOLD_MAX,
  FASTBIN_CONSOLIDATION_THRESHOLD,
  MAX_FAST_SIZE,
  MINSIZE,
  SIZE_SZ,
  TCACHE_STRUCT_REQUEST,
  TWO_POW_64,
  checkedRequest2size,
  csize2tidx,
  largebinIndex,
  maxFastFor,
  request2size,
  smallbinIndex,
} from '../allocator/constants.ts';
import { memalignAlignment } from '../allocator/memalign.ts';
import type { Replayer, ReplayOutcome } from '../replay/replayer.ts';
import type { Syscall } from '../system/api.ts';
import type { TraceEvent } from '../trace/api.ts';

/** The chunk of glibc's tcache_perthread_struct (request 640). */
const TCACHE_STRUCT_CHUNK = request2size(TCACHE_STRUCT_REQUEST);
const PAGE = 4096;

/** What an explanation needs of the allocator's state just before an event (a snapshot; cheap to take). */
export interface StateBefore {
  /** The policy's --policy name (glibc, fixed:BYTES, heap, mmap). */
  policy: string;
  mmapThreshold: SizeT;
  trimThreshold: SizeT;
  noDynThreshold: boolean;
  /** The top chunk's size and address (size 0 before the first heap exists). */
  topSize: number;
  topAddress: number;
  topPad: number;
  nMmaps: number;
  nMmapsMax: number;
  /** global_max_fast. */
  maxFast: number;
  /** Chunks waiting in fastbins. */
  fastCount: number;
  /** Whether the tcache struct exists yet; its bins' limits; the count of each tcache bin. */
  tcacheReady: boolean;
  tcacheBins: number;
  tcacheFill: number;
  tcacheCounts: Int32Array;
  /** Size of the last remainder when it sits in the unsorted bin (found among its first 1000 chunks); else 0. */
  lastRemainderSize: number;
  /** The block the event's ID names when it is live (free, realloc): its chunk size and whether it is mmapped. */
  block: { size: number; mmapped: boolean; lead: number; pointer: number } | null;
  /** The ID named a block whose allocation returned NULL. */
  blockIsNull: boolean;
  /** Requested bytes of the program's live blocks. */
  liveBytes: number;
}

/** Takes what explainStep needs from `replayer` before it applies `event`. */
export function captureBefore(replayer: Replayer, event: TraceEvent): StateBefore {
  const model = replayer.model;
  const av = model.main;
  const mp = model.mp;
  const c = av.chunks;
  let block: StateBefore['block'] = null;
  let blockIsNull = false;
  const named = event.op === 'free' || (event.op === 'realloc' && event.wasLive);
  if (named) {
    const p = replayer.chunkOfSlot(event.slot);
    if (p === NIL) blockIsNull = true;
    else block = { size: c.size[p], mmapped: c.state[p] === ChunkState.Mmapped, lead: c.lead[p], pointer: c.address[p] + CHUNK_HDR_SZ };
  }
  let lastRemainderSize = 0;
  if (av.lastRemainder !== 0) {
    let p = c.fd[UNSORTED];
    for (let n = 0; p !== UNSORTED && n < 1000; n++, p = c.fd[p]) {
      if (c.address[p] === av.lastRemainder) {
        lastRemainderSize = c.size[p];
        break;
      }
    }
  }
  return {
    policy: replayer.policyName,
    mmapThreshold: mp.mmapThreshold,
    trimThreshold: mp.trimThreshold,
    noDynThreshold: mp.noDynThreshold,
    topSize: av.topSize,
    topAddress: c.address[av.top],
    topPad: mp.topPad,
    nMmaps: mp.nMmaps,
    nMmapsMax: mp.nMmapsMax,
    maxFast: mp.maxFast,
    fastCount: av.fastCount,
    tcacheReady: model.tcache.ready,
    tcacheBins: mp.tcacheBins,
    tcacheFill: mp.tcacheCount,
    tcacheCounts: model.tcache.counts.slice(),
    lastRemainderSize,
    block,
    blockIsNull,
    liveBytes: replayer.liveBytes,
  };
}

/** Replays events and explains each: `apply(event)` gives the outcome and its sentence. */
export class Explainer {
  constructor(readonly replayer: Replayer) {}

  apply(event: TraceEvent): { outcome: ReplayOutcome; sentence: string } {
    const before = captureBefore(this.replayer, event);
    const outcome = this.replayer.apply(event);
    return { outcome, sentence: explainStep(before, event, outcome) };
  }
}

// ---- helpers --------------------------------------------------------------------------------------------

const hex = (n: number) => `0x${n.toString(16)}`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** A brk increment with its sign, exact whether a number or a bigint. */
const signed = (bytes: number | bigint) => (bytes < 0 ? `−${-bytes}` : `+${bytes}`);

function brkText(calls: Syscall[]): string {
  return calls
    .filter((s) => s.call === 'brk')
    .map((s) => `brk ${signed(s.bytes)}${s.failed ? ' (failed)' : ''}`)
    .join(', ');
}

function syscallText(s: Syscall): string {
  switch (s.call) {
    case 'brk':
      return `brk ${signed(s.bytes)}${s.failed ? ' failed' : ''}`;
    case 'mremap':
      return `mremap ${s.from} → ${s.bytes}${s.failed ? ' failed' : ''}`;
    default:
      return `${s.call} ${s.bytes}${s.failed ? ' failed' : ''}`;
  }
}

/** The call as a program writes it, with the trace's IDs. */
export function callText(event: TraceEvent): string {
  // Sizes above 2^53 are written from their exact values, not from the doubles that approximate them.
  const exact = event.exact;
  const size = exact?.size ?? ('size' in event ? event.size : 0);
  switch (event.op) {
    case 'malloc':
      return `${event.id} = malloc(${size})`;
    case 'calloc':
      return `${event.id} = calloc(${exact?.nmemb ?? event.nmemb}, ${size})`;
    case 'realloc':
      if (!event.wasLive) return `${event.id} = realloc(NULL, ${size})`;
      if (event.size === 0) return `realloc(${event.id}, 0)`;
      return `${event.id} = realloc(${event.id}, ${size})`;
    case 'memalign':
      return `${event.id} = memalign(${exact?.alignment ?? event.alignment}, ${size})`;
    case 'free':
      return `free(${event.id})`;
    case 'mallopt':
      return `mallopt(${event.param}, ${event.value})`;
    case 'trim':
      return `malloc_trim(${event.exact?.pad ?? event.pad})`;
  }
}

/** Where the block went: "heap +0x2a0", or "mmap 200704 bytes". */
function placeText(outcome: ReplayOutcome, mapping?: number): string {
  if (outcome.where === 'mmap') return `mmap ${mapping ?? outcome.chunk} bytes`;
  return `heap +${hex(outcome.offset)}`;
}

/** The tcache bin's count before the event for chunk size `size` (0 without a tcache or out of range). */
function tcacheCount(before: StateBefore, size: number): number {
  const tidx = csize2tidx(size);
  return before.tcacheReady && tidx < before.tcacheBins ? before.tcacheCounts[tidx] : 0;
}

/**
 * The event runs MAYBE_INIT_TCACHE and the tcache does not exist yet: the tcache struct (chunk 656) is
 * allocated first, from the top, or by the syscall that creates the heap (which it then consumes).
 */
function tcacheInit(before: StateBefore, event: TraceEvent): boolean {
  if (before.tcacheReady) return false;
  switch (event.op) {
    case 'malloc':
    case 'calloc':
      return true;
    case 'realloc':
      return !event.wasLive || before.blockIsNull || (before.block !== null && !before.block.mmapped);
    case 'free':
      return before.block !== null && !before.block.mmapped;
    default:
      return false;
  }
}

/** Explains the tcache struct's creation and returns the syscalls left for the request itself. */
function initClause(before: StateBefore, syscalls: Syscall[]): { text: string; rest: Syscall[]; topAfter: number } {
  if (before.topSize >= TCACHE_STRUCT_CHUNK + MINSIZE) {
    return {
      text: `the tcache struct (chunk ${TCACHE_STRUCT_CHUNK}) is carved from the top first; `,
      rest: syscalls,
      topAfter: before.topSize - TCACHE_STRUCT_CHUNK,
    };
  }
  const first = syscalls[0];
  if (!first) return { text: '', rest: syscalls, topAfter: before.topSize };
  if (first.call === 'brk' && !first.failed) {
    const heap = before.topSize === 0 ? 'no heap yet' : `the top (${before.topSize}) is too small`;
    return {
      text: `${heap} → brk +${first.bytes} for the tcache struct (chunk ${TCACHE_STRUCT_CHUNK}) + top pad ${sizeTFromInt(before.topPad)} + 32, page-rounded; `,
      rest: syscalls.slice(1),
      // A brk that succeeded moved the break by a number of bytes below 2^47.
      topAfter: before.topSize + (first.bytes as number) - TCACHE_STRUCT_CHUNK,
    };
  }
  if (first.call === 'mmap' && !first.failed && before.mmapThreshold <= TCACHE_STRUCT_CHUNK) {
    return {
      text: `the tcache struct (chunk ${TCACHE_STRUCT_CHUNK} ≥ mmap threshold ${before.mmapThreshold}) gets its own mmap ${first.bytes}; `,
      rest: syscalls.slice(1),
      topAfter: before.topSize,
    };
  }
  return { text: '', rest: syscalls, topAfter: before.topSize };
}

interface AllocContext {
  /** The chunk size the search looked for. */
  nb: number;
  /** nb exactly, where it is beyond 2^53 and sysmalloc did not note it. */
  exactNb?: bigint;
  /** calloc (which skips the tcache) or an internal _int_malloc (realloc, memalign): no tcache. */
  noTcache: 'calloc' | 'internal' | null;
  /** The top's size when the search began (after the tcache struct was made). */
  top: number;
  /** The syscalls this search made. */
  syscalls: Syscall[];
}

/** Why the search found what it found, up to and including "→ place". */
function allocReason(before: StateBefore, outcome: ReplayOutcome, ctx: AllocContext): string {
  const { nb } = ctx;
  const notes = outcome.notes;
  const thr = before.mmapThreshold;
  const place = placeText(outcome);
  const above = nb >= thr && before.policy !== 'mmap' ? `chunk ${nb} ≥ mmap threshold ${thr}, but the bins come first: ` : '';
  const cached = tcacheCount(before, nb);
  const skipped = ctx.noTcache === 'calloc' && cached > 0 ? `calloc skips the tcache (it holds ${plural(cached, 'chunk')} of ${nb}); ` : '';
  const consolidated = notes.consolidations > 0 ? 'after consolidating the fastbins, ' : '';
  switch (notes.path) {
    case 'tcache':
      return `chunk ${nb} reused from the tcache → ${place}`;
    case 'fastbin': {
      const why = ctx.noTcache === null ? ' (its tcache bin is empty)' : '';
      return `${skipped}chunk ${nb} taken from fastbin ${(nb >>> 4) - 2}${why} → ${place}`;
    }
    case 'smallbin':
      return `${skipped}chunk ${nb} taken from small bin ${smallbinIndex(nb)} → ${place}`;
    case 'unsorted':
      return `${skipped}${consolidated}exact fit ${nb} found in the unsorted bin → ${place}`;
    case 'last-remainder': {
      const s = before.lastRemainderSize;
      if (s <= nb) return `${skipped}chunk ${nb} split off the last remainder (alone in unsorted), which stays as the new last remainder → ${place}`;
      return `${skipped}chunk ${nb} split off the last remainder (${s}, alone in unsorted); the rest (${s - nb}) stays as the new last remainder → ${place}`;
    }
    case 'largebin': {
      const whole = outcome.chunk > nb ? ` (taken whole: the rest would be under ${MINSIZE})` : ', split (the rest goes to unsorted)';
      return `${above}${consolidated}the smallest chunk ≥ ${nb} in large bin ${largebinIndex(nb)} fits (best fit)${whole} → ${place}`;
    }
    case 'binmap': {
      const whole = outcome.chunk > nb ? ` (taken whole: the rest would be under ${MINSIZE})` : ', split (the rest goes to unsorted)';
      return `${above}${skipped}${consolidated}no free chunk of ${nb}; the next larger non-empty bin gave one${whole} → ${place}`;
    }
    case 'top':
      if (notes.consolidations > 0) return `${above}${skipped}after consolidating the fastbins, chunk ${nb} carved from the top → ${place}`;
      if (above) return `chunk ${nb} ≥ mmap threshold ${thr}, but the top (${ctx.top}) can hold it → from the top, ${place}`;
      return `${skipped}chunk ${nb} carved from the top (${ctx.top} ≥ ${nb} + ${MINSIZE}) → ${place}`;
    case 'mmap':
    case 'sysmalloc':
      return skipped + sysmallocReason(before, outcome, ctx);
    default:
      return `${skipped}${failureReason(before, outcome, ctx)}`;
  }
}

/** Why sysmalloc mmapped the chunk or grew the heap. */
function sysmallocReason(before: StateBefore, outcome: ReplayOutcome, ctx: AllocContext): string {
  const s = outcome.notes.sysmalloc;
  const nb = s?.nb ?? ctx.nb;
  const top = s?.topSize ?? ctx.top;
  const thr = s?.mmapThreshold ?? before.mmapThreshold;
  const topText = top === 0 ? 'there is no heap yet' : `the top (${top}) is too small`;
  if (outcome.notes.path === 'mmap') {
    const mapping = ctx.syscalls.filter((c) => c.call === 'mmap' && !c.failed).pop()?.bytes as number | undefined;
    return `chunk ${nb} ≥ mmap threshold ${thr} and ${topText} → ${placeText(outcome, mapping)}`;
  }
  // The heap grew: by brk, or by glibc's mmap fallback when brk failed.
  const brkFailed = ctx.syscalls.some((c) => c.call === 'brk' && c.failed);
  const fallback = ctx.syscalls.filter((c) => c.call === 'mmap' && !c.failed).pop();
  const mmapFailed = ctx.syscalls.some((c) => c.call === 'mmap' && c.failed);
  let why: string;
  if (s && s.triedMmap) why = `chunk ${nb} ≥ mmap threshold ${thr} and ${topText}, but mmap failed${mmapFailed ? '' : ''} → the heap grows instead`;
  else if (s && s.mmapMaxReached && nb >= thr) why = `chunk ${nb} ≥ mmap threshold ${thr}, but n_mmaps has reached M_MMAP_MAX (${before.nMmapsMax}) and ${topText} → the heap grows`;
  else if (nb >= thr && before.policy === 'heap') why = `chunk ${nb} ≥ mmap threshold ${thr}, but the heap policy never mmaps and ${topText} → the heap grows`;
  else why = `chunk ${nb} < mmap threshold ${thr} and ${topText} → the heap grows`;
  let growth: string;
  if (brkFailed && fallback) {
    growth = `${brkText(ctx.syscalls)}, so glibc maps ${fallback.bytes} bytes as heap instead (the sbrk fallback; the heap is non-contiguous from now on)`;
  } else {
    growth = brkText(ctx.syscalls) || 'without a system call';
  }
  return `${why}: ${growth}, ${placeText(outcome)}`;
}

/** Why the call returned NULL. */
function failureReason(before: StateBefore, outcome: ReplayOutcome, ctx: AllocContext): string {
  const failed = ctx.syscalls.filter((c) => c.failed).map(syscallText);
  const s = outcome.notes.sysmalloc;
  const topText = s ? (s.topSize === 0 ? 'there is no heap yet' : `the top (${s.topSize}) is too small`) : 'nothing free fits';
  const tried = failed.length ? `; ${failed.join(', ')}` : '';
  // sysmalloc noted the exact chunk size (a request near 2^63 reaches it as itself).
  return `chunk ${s?.nb ?? ctx.exactNb ?? digits(ctx.nb)}: ${topText}${tried} → NULL (ENOMEM)`;
}

/** Where a chunk that _int_free handles goes: tcache, fastbin, or coalesced (then `merge` tells where). */
function freedChunkFate(before: StateBefore, size: number, tcacheReady: boolean): 'tcache' | 'fastbin' | 'coalesce' {
  const tidx = csize2tidx(size);
  if (tcacheReady && tidx < before.tcacheBins && (before.tcacheReady ? before.tcacheCounts[tidx] : 0) < before.tcacheFill) return 'tcache';
  if (size <= before.maxFast) return 'fastbin';
  return 'coalesce';
}

/** What happened after a chunk was merged (into unsorted or the top): consolidation and the trim check. */
function mergeText(before: StateBefore, outcome: ReplayOutcome, size: number): string {
  const notes = outcome.notes;
  const m = notes.merge;
  if (!m) return `chunk ${size} → unsorted bin`;
  const tt = before.trimThreshold;
  let text: string;
  if (m.intoTop) text = 'merged into the top';
  else text = m.size > size ? `merged with its free neighbours into ${m.size} → unsorted bin` : `chunk ${size} → unsorted bin`;
  if (m.size < FASTBIN_CONSOLIDATION_THRESHOLD) return m.intoTop ? `${text} (now ${m.size})` : text;
  const consolidated = notes.consolidations > 0 ? '; the fastbins are consolidated' : '';
  const top = m.intoTop ? m.size : before.topSize;
  const topLabel = m.intoTop ? `${top}` : `merged ${m.size} ≥ ${FASTBIN_CONSOLIDATION_THRESHOLD}, top ${top}`;
  if (notes.trims > 0 && notes.trimmedBytes > 0) {
    return `${m.intoTop ? 'merged into the top' : text} (${topLabel} ≥ trim threshold ${tt})${consolidated} → brk −${notes.trimmedBytes}`;
  }
  if (notes.trims > 0 && notes.trimmedBytes < 0) {
    return `${m.intoTop ? 'merged into the top' : text} (${topLabel} ≥ trim threshold ${tt})${consolidated} → brk +${-notes.trimmedBytes}: the top is under 33 bytes, so systrim's size_t arithmetic wraps and the heap grows instead`;
  }
  if (notes.consolidations > 0 && !m.intoTop) {
    // Consolidation may have changed the top: say only what is certain.
    return `${text} (merged ${m.size} ≥ ${FASTBIN_CONSOLIDATION_THRESHOLD})${consolidated} → no trim`;
  }
  if (top < tt) return `${m.intoTop ? 'merged into the top' : text} (${topLabel} < trim threshold ${tt}) → no trim`;
  const area = top - MINSIZE - 1 - before.topPad;
  if (area < PAGE) {
    const above = area <= 0 ? `not above top pad ${sizeTFromInt(before.topPad)}` : `${top} − 33 − top pad ${before.topPad} = ${area} is under a page`;
    return `${m.intoTop ? 'merged into the top' : text} (${topLabel} ≥ trim threshold ${tt}, but ${above}) → no trim`;
  }
  return `${m.intoTop ? 'merged into the top' : text} (${topLabel} ≥ trim threshold ${tt}, but the top does not end at the break) → no trim`;
}

/** The body of free(id) (also realloc(id, 0)). */
function freeBody(before: StateBefore, event: TraceEvent, outcome: ReplayOutcome): string {
  const id = 'id' in event ? event.id : '';
  if (before.blockIsNull || !before.block) return `${id} is NULL (its allocation failed) → nothing to do`;
  const { size, mmapped, lead } = before.block;
  if (mmapped) {
    const total = size + lead;
    const unmap = `; munmap ${total}`;
    const thr = before.mmapThreshold;
    const move = outcome.notes.thresholdMove;
    if (move) {
      if (move.mmapThreshold.from === move.mmapThreshold.to && move.trimThreshold.from === move.trimThreshold.to) {
        return `mmapped chunk ${size} = threshold ${thr} → no change${unmap}`;
      }
      return `mmapped chunk ${size} > threshold ${move.mmapThreshold.from} → threshold ${move.mmapThreshold.to}, trim threshold ${move.trimThreshold.to}${unmap}`;
    }
    if (before.noDynThreshold) {
      const why = before.policy === 'glibc' ? 'mallopt switched the sliding off' : `the ${before.policy} policy does not slide`;
      return `mmapped chunk ${size}, but ${why} → no rise, threshold stays ${thr}${unmap}`;
    }
    if (size + 2 > DEFAULT_MMAP_THRESHOLD_MAX) {
      return `mmapped chunk ${size}: size word ${size + 2} > 32 MiB (${DEFAULT_MMAP_THRESHOLD_MAX}) → no rise, threshold stays ${thr}${unmap}`;
    }
    return `mmapped chunk ${size} ≤ threshold ${thr} → no rise${unmap}`;
  }
  const fate = freedChunkFate(before, size, true);
  if (fate === 'tcache') return `chunk ${size} → tcache (${tcacheCount(before, size) + 1} of ${before.tcacheFill} in its bin)`;
  if (fate === 'fastbin') {
    const full = csize2tidx(size) < before.tcacheBins ? ', its tcache bin is full' : '';
    return `chunk ${size} → fastbin ${(size >>> 4) - 2} (≤ ${before.maxFast}${full}); it stays unmerged`;
  }
  return mergeText(before, outcome, size);
}

/** ", and the top is trimmed: brk −N" when a freed piece made systrim give memory back (or wrap and grow). */
function trimmed(outcome: ReplayOutcome): string {
  const bytes = outcome.notes.trimmedBytes;
  if (bytes > 0) return `, and the top is trimmed: brk −${bytes}`;
  if (bytes < 0) return `, and systrim's size_t arithmetic wraps: brk +${-bytes}`;
  return '';
}

/** Where a piece that _int_free got (realloc's tail, memalign's lead or tail) went, in a few words. */
function pieceFate(before: StateBefore, outcome: ReplayOutcome, size: number): string {
  const fate = freedChunkFate(before, size, before.tcacheReady);
  if (fate !== 'coalesce') return fate;
  const m = outcome.notes.merge;
  if (m?.intoTop) return 'the top';
  return 'unsorted';
}

// ---- the sentence --------------------------------------------------------------------------------------

/**
 * One sentence on what `event` did and why, e.g. `big = malloc(200000): chunk 200016 ≥ mmap threshold 131072
 * and the top (134400) is too small → mmap 200704 bytes`. `before` is captureBefore's snapshot, taken just
 * before the replayer applied the event; `outcome` is what apply returned.
 */
export function explainStep(before: StateBefore, event: TraceEvent, outcome: ReplayOutcome): string {
  return `${callText(event)}: ${explainBody(before, event, outcome)}`;
}

function explainBody(before: StateBefore, event: TraceEvent, outcome: ReplayOutcome): string {
  const syscalls = outcome.syscalls;
  switch (event.op) {
    case 'malloc':
      return allocation(before, event, outcome, event.size, null);
    case 'calloc': {
      const bytes = event.nmemb * event.size;
      if (BigInt(event.nmemb) * BigInt(event.size) >= BigInt(TWO_POW_64)) return `${event.exact?.nmemb ?? event.nmemb} × ${event.exact?.size ?? event.size} overflows size_t → NULL (ENOMEM)`;
      return allocation(before, event, outcome, bytes, 'calloc');
    }
    case 'memalign':
      return memalign(before, event, outcome);
    case 'realloc':
      return realloc(before, event, outcome);
    case 'free':
      return freeBody(before, event, outcome);
    case 'mallopt':
      return mallopt(before, event, outcome);
    case 'trim': {
      const parts: string[] = [];
      if (before.fastCount > 0) parts.push(`consolidates ${plural(before.fastCount, 'fastbin chunk')}`);
      const advised = syscalls.filter((s) => s.call === 'madvise');
      if (advised.length) {
        const bytes = advised.reduce((sum, s) => sum + (s.bytes as number), 0);
        parts.push(`madvise(MADV_DONTNEED) on ${plural(advised.length, 'free chunk')} (${bytes} bytes of whole pages)`);
      }
      const trimmed = outcome.notes.trimmedBytes;
      const topText = before.fastCount === 0 ? ` (${before.topSize})` : '';
      if (trimmed > 0) parts.push(`the top${topText} gives back its whole pages above pad ${event.exact?.pad ?? event.pad} → brk −${trimmed}`);
      else if (trimmed < 0) parts.push(`the top is under 33 bytes, so systrim's size_t arithmetic wraps → brk +${-trimmed}`);
      if (!parts.length) return `nothing to give back (top ${before.topSize}, pad ${event.exact?.pad ?? event.pad}) → returns 0`;
      if (trimmed === 0) parts.push(`the top keeps its pages (top ${before.topSize}, pad ${event.exact?.pad ?? event.pad})`);
      return parts.join('; ');
    }
  }
}

/** A request's byte count as the trace wrote it: exact above 2^53, where the number only approximates it. */
function requestText(event: TraceEvent, bytes: number): string {
  return bytes > Number.MAX_SAFE_INTEGER || event.exact ? String(exactRequest(event)) : String(bytes);
}

/** The request's bytes as an exact integer (calloc: the product). */
function exactRequest(event: TraceEvent): bigint {
  const exact = event.exact;
  const size = exact?.size ?? BigInt('size' in event ? event.size : 0);
  return event.op === 'calloc' ? (exact?.nmemb ?? BigInt(event.nmemb)) * size : size;
}

/** A chunk size computed from the request, written exactly: beyond 2^53 the double only approximates it. */
function nbText(event: TraceEvent, nb: number): string {
  return nb > Number.MAX_SAFE_INTEGER ? String(exactRequest2size(exactRequest(event))) : String(nb);
}

/** A value that is an exact double (a power of two), written with every digit rather than the shortest form. */
const digits = (n: number) => (Number.isSafeInteger(n) ? String(n) : BigInt(n).toString());

/** malloc, calloc, realloc(NULL, n) and small-alignment memalign. */
function allocation(before: StateBefore, event: TraceEvent, outcome: ReplayOutcome, bytes: number, noTcache: AllocContext['noTcache']): string {
  const nb = checkedRequest2size(bytes);
  if (nb === 0) return `request ${requestText(event, bytes)} is above PTRDIFF_MAX → NULL (ENOMEM)`;
  let prefix = '';
  let syscalls = outcome.syscalls;
  let top = before.topSize;
  if (tcacheInit(before, event)) {
    const init = initClause(before, syscalls);
    prefix = init.text;
    syscalls = init.rest;
    top = init.topAfter;
  }
  return prefix + allocReason(before, outcome, { nb, noTcache, top, syscalls });
}

function memalign(before: StateBefore, event: TraceEvent & { op: 'memalign' }, outcome: ReplayOutcome): string {
  const alignment = memalignAlignment(event.alignment);
  if (alignment === 0) return `alignment ≤ 16 is plain malloc: ${allocation(before, event, outcome, event.size, null)}`;
  if (alignment < 0) return `alignment ${event.alignment} is too large → NULL (EINVAL)`;
  const nb = checkedRequest2size(event.size);
  if (nb === 0) return `request ${requestText(event, event.size)} is above PTRDIFF_MAX → NULL (ENOMEM)`;
  const inner = request2size(nb + alignment + MINSIZE);
  const asked = `_int_malloc(${nbText(event, nb)} + alignment ${digits(alignment)} + ${MINSIZE}), no tcache: `;
  if (!outcome.where) {
    const exactInner = inner > Number.MAX_SAFE_INTEGER ? exactRequest2size(BigInt(nbText(event, nb)) + BigInt(alignment) + BigInt(MINSIZE)) : undefined;
    return asked + failureReason(before, outcome, { nb: inner, exactNb: exactInner, noTcache: 'internal', top: before.topSize, syscalls: outcome.syscalls });
  }
  const reason = allocReason(before, outcome, { nb: inner, noTcache: 'internal', top: before.topSize, syscalls: outcome.syscalls });
  // Cut "→ place" off the reason to say what became of the lead and the tail first.
  const arrow = reason.lastIndexOf(' → ');
  const head = reason.slice(0, arrow);
  const tail = reason.slice(arrow);
  if (outcome.where === 'mmap') {
    const mapping = (outcome.syscalls.filter((c) => c.call === 'mmap' && !c.failed).pop()?.bytes as number | undefined) ?? outcome.chunk;
    const gap = mapping - outcome.chunk;
    const gapText = gap > 0 ? `; the ${gap}-byte front gap stays in the mapping (prev_size)` : '';
    return `${asked}${head}${gapText} → mmap ${mapping} bytes, chunk ${outcome.chunk}`;
  }
  // The lead is certain when the chunk came from the old top's start (the top path, or contiguous growth).
  const path = outcome.notes.path;
  let start = -1;
  if (path === 'top' && outcome.notes.consolidations === 0) start = before.topAddress;
  else if (path === 'sysmalloc') start = before.topSize === 0 ? outcome.pointer - outcome.offset : before.topAddress;
  const lead = start < 0 ? -1 : outcome.pointer - CHUNK_HDR_SZ - start;
  const tailSize = inner - lead - outcome.chunk;
  let pieces: string;
  if (lead >= 0 && lead < alignment + MINSIZE + MINSIZE && tailSize >= 0) {
    const parts: string[] = [];
    if (lead > 0) parts.push(`lead ${lead} (→ ${pieceFate(before, outcome, lead)})`);
    if (tailSize > 0) parts.push(`tail ${tailSize} (→ ${pieceFate(before, outcome, tailSize)})`);
    pieces = parts.length ? `; ${parts.join(' and ')} given back` : '; already aligned, nothing given back';
  } else {
    pieces = '; the misaligned lead and the spare tail are given back';
  }
  return `${asked}${head}${pieces}${tail}`;
}

function realloc(before: StateBefore, event: TraceEvent & { op: 'realloc' }, outcome: ReplayOutcome): string {
  const id = event.id;
  if (!event.wasLive) return allocation(before, event, outcome, event.size, null);
  if (event.size === 0) return `frees ${id}: ${freeBody(before, event, outcome)} → NULL`;
  if (before.blockIsNull || !before.block) return `${id} is NULL, so this is malloc: ${allocation(before, event, outcome, event.size, null)}`;
  const nb = checkedRequest2size(event.size);
  if (nb === 0) return `request ${requestText(event, event.size)} is above PTRDIFF_MAX → NULL (ENOMEM); ${id} keeps its block`;
  const old = before.block.size;
  const path = outcome.notes.path;
  const syscalls = outcome.syscalls;
  if (before.block.mmapped) {
    const total = old + before.block.lead;
    const remap = syscalls.find((s) => s.call === 'mremap');
    if (path === 'mremap' && remap) {
      return `mmapped chunk ${total}: an mmapped block stays mmapped, whatever the threshold → mremap ${remap.from} → ${remap.bytes} bytes`;
    }
    if (path === 'in-place' && !remap) return `mmapped chunk ${total} already has the pages chunk ${nb} needs → unchanged, mmap ${total} bytes`;
    if (path === 'in-place') return `mremap failed, but chunk ${old} still holds ${nb} → unchanged`;
    if (!outcome.where) return `mremap failed and so did malloc → NULL; ${id} keeps its block`;
    const rest = syscalls.slice(syscalls.findIndex((s) => s.call === 'mremap') + 1);
    const inner = allocReason(before, outcome, { nb, noTcache: null, top: before.topSize, syscalls: rest });
    return `mremap failed → malloc, copy ${old - CHUNK_HDR_SZ} bytes, munmap ${total} (no threshold update): ${inner}`;
  }
  let prefix = '';
  let calls = syscalls;
  let top = before.topSize;
  if (!before.tcacheReady) {
    const init = initClause(before, syscalls);
    prefix = init.text;
    calls = init.rest;
    top = init.topAfter;
  }
  const place = placeText(outcome);
  if (!outcome.where) return `${prefix}chunk ${old} cannot grow to ${nbText(event, nb)}; ${failureReason(before, outcome, { nb, noTcache: 'internal', top, syscalls: calls })}; ${id} keeps its block`;
  const moved = outcome.pointer !== before.block.pointer;
  if (path === 'top' && !moved) return `${prefix}chunk ${old} grows into the top (${old} + ${top} ≥ ${nb} + ${MINSIZE}) → stays at ${place}`;
  if (path === 'in-place' && !moved) {
    const split = (size: number) => {
      const tail = size - nb;
      return tail >= MINSIZE ? `; the tail ${tail} is freed (→ ${pieceFate(before, outcome, tail)})${trimmed(outcome)}` : '';
    };
    if (nb <= old) {
      if (old - nb < MINSIZE) return `${prefix}chunk ${old} already holds ${nb} (the spare ${old - nb} is under ${MINSIZE}) → stays at ${place}`;
      return `${prefix}chunk ${old} shrinks in place to ${nb}${split(old)} → stays at ${place}`;
    }
    if (outcome.notes.sysmalloc) {
      // The new chunk (nb) lies right above: merged, the chunk is old + nb, and its tail (old bytes) is freed.
      const grown = brkText(calls.filter((c) => c.call === 'brk' && c.bytes > 0));
      return `${prefix}the top (${top}) is too small, so the heap grows (${grown}) and the new chunk lies right above ${id}'s → merged in place; the tail ${old} is freed (→ ${pieceFate(before, outcome, old)})${trimmed(outcome)} → stays at ${place}`;
    }
    return `${prefix}chunk ${old} grows into the free chunk above it → stays at ${place}`;
  }
  const inner = allocReason(before, outcome, { nb, noTcache: 'internal', top, syscalls: calls });
  const fate = pieceFate(before, outcome, old);
  return `${prefix}chunk ${old} cannot grow in place, so _int_malloc (no tcache): ${inner}; ${old - SIZE_SZ} bytes copied, the old chunk freed (→ ${fate})${trimmed(outcome)}`;
}

function mallopt(before: StateBefore, event: TraceEvent & { op: 'mallopt' }, outcome: ReplayOutcome): string {
  const consolidate = before.fastCount > 0 ? `consolidates ${plural(before.fastCount, 'fastbin chunk')} first; ` : '';
  const off = before.noDynThreshold ? ' (the sliding was already off)' : ' and the sliding is switched off for good (no_dyn_threshold = 1)';
  const v = event.value;
  switch (event.param) {
    case 'M_MMAP_THRESHOLD':
      return `${consolidate}mmap threshold ${before.mmapThreshold} → ${outcome.mmapThreshold}${off}`;
    case 'M_TRIM_THRESHOLD':
      return `${consolidate}trim threshold ${before.trimThreshold} → ${outcome.trimThreshold}${off}`;
    case 'M_TOP_PAD':
      return `${consolidate}top pad ${sizeTFromInt(before.topPad)} → ${sizeTFromInt(v)}${v < 0 ? ` (the int ${v} as a size_t)` : ''}${off}`;
    case 'M_MMAP_MAX':
      return `${consolidate}n_mmaps_max ${before.nMmapsMax} → ${v}${v <= before.nMmaps ? ' (no new mmaps: large requests grow the heap)' : ''}${off}`;
    case 'M_MXFAST': {
      if (v < 0 || v > MAX_FAST_SIZE) return `${consolidate}refused (M_MXFAST takes 0…${MAX_FAST_SIZE}) → returns 0`;
      const max = maxFastFor(v);
      const fast = max < MINSIZE ? 'fastbins take no chunk now' : `fastbins now take chunks up to ${max}`;
      return `${consolidate}${fast}; the sliding threshold is not affected`;
    }
  }
}

// ---- colour (whether to colour is decided in src/cli/colour.ts) ----------------------------------------------------------------------------------------------

/** ANSI colour for a terminal: the call in bold, each result after → in green (red for NULL). */
export function colourSentence(sentence: string): string {
  const colon = sentence.indexOf(': ');
  const call = colon < 0 ? sentence : sentence.slice(0, colon);
  let rest = colon < 0 ? '' : sentence.slice(colon);
  rest = rest.replace(/→ ([^;→]*)/g, (_m, result: string) => (/NULL/.test(result) ? `\x1b[31m→ ${result}\x1b[0m` : `\x1b[32m→ ${result}\x1b[0m`));
  return `\x1b[1m${call}\x1b[0m${rest}`;
}
