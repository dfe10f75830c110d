// One plain sentence per event, in glibc's terms and with its numbers: what the call did and why
// (docs/glibc.md §2–§7). An observer of the replay: it narrates the decisions the core recorded for the
// event (CallNotes), with a little state from just before it (captureBefore); it knows no glibc rule itself.
import type { CallNotes, FreeNote } from '../allocator/notes.ts';
import { sizeTFromInt, type SizeT } from '../allocator/size-t.ts';
import { ChunkState, NIL } from '../allocator/chunks.ts';
import type { Replayer, ReplayOutcome } from '../replay/replayer.ts';
import type { Syscall } from '../system/api.ts';
import { syscallProse } from './syscall-text.ts';
import type { TraceEvent } from '../trace/api.ts';
import { MallocscopeError } from '../errors.ts';
import { heapImage, type ModelHeapImage } from '../allocator/image.ts';
import { changedWords, changesText } from '../image/words.ts';

/** What an explanation needs of the replay just before an event, besides what the core records (cheap). */
export interface StateBefore {
  /** The policy preset's name (glibc, fixed:BYTES, heap, mmap). */
  policy: string;
  mmapThreshold: SizeT;
  trimThreshold: SizeT;
  noDynThreshold: boolean;
  /** The top chunk's size (0 before the first heap exists). */
  topSize: number;
  /** mp_.top_pad and n_mmaps_max, as they were (mallopt says what it changed). */
  topPad: number;
  nMmapsMax: number;
  /** The block the event's ID names when it is live (free, realloc): its chunk size and whether it is mmapped. */
  block: { size: number; mmapped: boolean; lead: number; address: number } | null;
  /** The ID named a block whose allocation returned NULL. */
  blockIsNull: boolean;
  /** Requested bytes of the program's live blocks. */
  liveBytes: number;
}

/** Takes what explainStep needs from `replayer` before it applies `event`. */
export function captureBefore(replayer: Replayer, event: TraceEvent): StateBefore {
  const model = replayer.model;
  const mp = model.mp;
  const c = model.chunks;
  let block: StateBefore['block'] = null;
  let blockIsNull = false;
  const named = event.op === 'free' || (event.op === 'realloc' && event.wasLive);
  if (named) {
    const p = replayer.chunkOfSlot(event.slot);
    if (p === NIL) blockIsNull = true;
    else block = { size: c.size[p], mmapped: c.state[p] === ChunkState.Mmapped, lead: c.lead[p], address: c.address[p] };
  }
  return {
    policy: replayer.policyName,
    mmapThreshold: mp.mmapThreshold,
    trimThreshold: mp.trimThreshold,
    noDynThreshold: mp.noDynThreshold,
    topSize: model.main.topSize,
    topPad: mp.topPad,
    nMmapsMax: mp.nMmapsMax,
    block,
    blockIsNull,
    liveBytes: replayer.liveBytes,
  };
}

/** Replays events and explains each: `apply(event)` gives the outcome and its sentence. */
export class Explainer {
  /** The image after the event explained last (the next one's before), with `bytes`. */
  private image: { seq: number; image: ModelHeapImage | string } | null = null;

  /** `bytes`: also say which words of main_arena's heap image each call changed (bytesText). */
  constructor(
    readonly replayer: Replayer,
    private readonly bytes = false,
  ) {
    // The sentences narrate the decisions the core records: ask it to record them.
    replayer.model.notes.detail = true;
  }

  apply(event: TraceEvent): { outcome: ReplayOutcome; sentence: string; bytes?: string } {
    const before = captureBefore(this.replayer, event);
    const imageBefore = this.bytes ? (this.image?.seq === event.seq - 1 ? this.image.image : this.takeImage(event.seq - 1)) : null;
    const outcome = this.replayer.apply(event);
    const sentence = explainStep(before, event, outcome);
    if (imageBefore === null) return { outcome, sentence };
    const imageAfter = this.takeImage(event.seq);
    this.image = { seq: event.seq, image: imageAfter };
    return { outcome, sentence, bytes: bytesText(imageBefore, imageAfter, this.otherTcache(before, event, outcome)) };
  }

  /**
   * The thread whose tcache the event's free put a chunk of main_arena's heap in, when that is not the main
   * thread: glibc wrote the entry's next and key in the chunk, but images hold the main thread's tcache alone.
   */
  private otherTcache(before: StateBefore, event: TraceEvent, outcome: ReplayOutcome): number | null {
    const thread = event.thread ?? 1;
    const block = before.block;
    if (thread === 1 || block === null || block.mmapped || !outcome.notes.freed.some((f) => f.to === 'tcache')) return null;
    return this.replayer.model.inMainHeap(block.address) ? thread : null;
  }

  /** The model's image now, or why there is none (the heap is not one piece). */
  private takeImage(seq: number): ModelHeapImage | string {
    try {
      return heapImage(this.replayer.model, seq);
    } catch (error) {
      if (error instanceof MallocscopeError) return error.message;
      throw error;
    }
  }
}

/**
 * What a call changed in main_arena's heap image: its words by chunk and field (docs/image.md). `otherTcache`:
 * the thread whose tcache the call freed a chunk of this heap into, when not the main thread's.
 */
export function bytesText(before: ModelHeapImage | string, after: ModelHeapImage | string, otherTcache: number | null = null): string {
  if (typeof after === 'string') return `no image: ${after}`;
  if (typeof before === 'string') return `no image before: ${before}`;
  const changes = changedWords(before, after);
  if (changes.length === 0) {
    // The heap's real bytes did change (the entry's next and key), but not the image's: say why.
    if (otherTcache !== null)
      return `no word of main_arena's heap image changed: the chunk went to thread ${otherTcache}'s tcache, which images leave out (glibc wrote its next and key in the chunk)`;
    return "no word of main_arena's heap image changed";
  }
  return changesText(changes, after.sidecar.base);
}

// ---- helpers --------------------------------------------------------------------------------------------

const hex = (n: number) => `0x${n.toString(16)}`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The brk calls among `calls`, as a sentence writes them. */
function brkText(calls: Syscall[]): string {
  return calls
    .filter((s) => s.call === 'brk')
    .map((s) => syscallProse(s))
    .join(', ');
}

/** The call as a program writes it, with the trace's IDs. */
export function callText(event: TraceEvent): string {
  // A call by a thread other than the main one carries its tag, as the trace writes it.
  const thread = event.thread ?? 1;
  const call = plainCallText(event);
  return thread !== 1 ? `@${thread} ${call}` : call;
}

function plainCallText(event: TraceEvent): string {
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
    case 'spawn':
      return `pthread_create(thread ${event.spawned})`;
    case 'exit':
      return 'exit';
  }
}

/** A decision the core records for every call of this kind: missing means the replayer was not recording. */
function recorded<T>(note: T | null, what: string): T {
  if (note === null) throw new MallocscopeError('NO_DECISIONS', `the core recorded no ${what} for this event (make the Replayer with { decisions: true })`);
  return note;
}

/** Where the block went: "heap +0x2a0", "arena 2 heap 0 +0xb70" (a thread arena's), or "mmap 200704 bytes". */
function placeText(outcome: ReplayOutcome, mapping?: number): string {
  if (outcome.where === 'mmap') return `mmap ${mapping ?? outcome.chunk} bytes`;
  if (outcome.heapIndex >= 0) return `arena ${outcome.arenaIndex} heap ${outcome.heapIndex} +${hex(outcome.offset)}`;
  return `heap +${hex(outcome.offset)}`;
}

/** How the thread got its arena in this call, as a clause ending in "; " ('' when it kept its arena). */
function arenaClause(notes: CallNotes): string {
  const a = notes.arena;
  if (!a) return '';
  const who = a.thread === 1 ? 'the main thread' : `thread ${a.thread}`;
  const limit =
    a.limit === 0
      ? `no limit yet: one is worked out once more than ${a.arenaTest} (M_ARENA_TEST) exist`
      : a.arenaMax !== 0 && a.limit === a.arenaMax
        ? `limit ${a.limit}, M_ARENA_MAX`
        : `limit ${a.limit} = 8 × ${plural(a.cores, 'CPU')}`;
  switch (a.how) {
    case 'new':
      return `${who} gets a new arena ${a.arena} (${a.narenas} arenas now; ${limit}); `;
    case 'free-list':
      return `${who} takes arena ${a.arena} back from the free list (its threads have ended); `;
    case 'reused':
      return `${who} shares arena ${a.arena}, the next in line (${a.narenas} arenas, the ${limit} reached); `;
    case 'main':
      return `${who}'s arena could not serve it: retried in main_arena; `;
  }
}

/** A thread arena's heaps that changed in this call, as a clause ('' when none did). */
function heapClause(notes: CallNotes): string {
  const parts = notes.heaps.map((h) => {
    const heap = `arena ${h.arena} heap ${h.heap}`;
    if (h.how === 'new') return `${heap} mapped (64 MiB reserved, ${h.bytes} bytes usable)`;
    if (h.how === 'grow') return `${heap} grows by ${h.bytes} bytes (mprotect)`;
    if (h.how === 'unmapped') return `${heap} (${h.bytes} bytes) unmapped whole`;
    return `${heap} shrinks by ${h.bytes} bytes (madvise)`;
  });
  return parts.join('; ');
}

/** spawn and exit: what pthread_create and the thread's end did through malloc. */
function threadBody(event: TraceEvent, outcome: ReplayOutcome): string {
  const t = recorded(outcome.notes.thread, 'thread start or end');
  if (event.op === 'spawn') {
    if (t.dtv === 'cached')
      return `thread ${t.thread} starts on a cached stack with its DTV: nothing allocated (${t.cached} of ${t.cacheLimit} stacks left in the cache)`;
    const place = outcome.notes.arena ? arenaClause(outcome.notes) : '';
    return `thread ${t.thread} starts: ${place}its DTV (chunk ${t.dtvChunk}) is calloc'd by the creating thread, in its arena`;
  }
  const parts: string[] = [];
  if (t.structChunk === 0) parts.push(`thread ${t.thread} ends without a tcache`);
  else {
    const flushed = t.flushed > 0 ? `its tcache's ${plural(t.flushed, 'chunk')} go back to their arenas, then ` : '';
    parts.push(`thread ${t.thread} ends: ${flushed}its tcache struct (chunk ${t.structChunk}) is freed`);
  }
  if (t.freedArena >= 0) parts.push(`arena ${t.freedArena} joins the free list (no thread left on it)`);
  const heaps = heapClause(outcome.notes);
  if (heaps) parts.push(heaps);
  parts.push(
    t.dtvFreed
      ? `its stack is cached; the cache keeps ${t.cacheLimit}, so the oldest goes and the main thread frees its DTV`
      : `its stack is cached with its DTV (${t.cached} of ${t.cacheLimit})`,
  );
  return parts.join('; ');
}

/** A sentence in two parts: the reason, and the result from its last arrow on (" → heap +0x2a0"). */
type Reason = [head: string, tail: string];
const joined = ([head, tail]: Reason) => head + tail;

/** What the tcache set-up said, and the system calls left for the request itself. */
function initClause(notes: CallNotes, syscalls: Syscall[]): { text: string; rest: Syscall[] } {
  const t = notes.tcacheInit;
  if (!t) return { text: '', rest: syscalls };
  const rest = syscalls.slice(t.syscalls);
  if (t.path === 'top') return { text: `the tcache struct (chunk ${t.chunk}) is carved from the top first; `, rest };
  const first = syscalls[0];
  if (t.path === 'sysmalloc' && first?.call === 'brk' && !first.failed) {
    const heap = t.topBefore === 0 ? 'no heap yet' : `the top (${t.topBefore}) is too small`;
    return {
      text: `${heap} → brk +${first.bytes} for the tcache struct (chunk ${t.chunk}) + top pad ${t.topPad} + ${t.minsize}, page-rounded; `,
      rest,
    };
  }
  if (t.path === 'mmap' && first?.call === 'mmap') {
    return { text: `the tcache struct (chunk ${t.chunk} ≥ mmap threshold ${t.mmapThreshold}) gets its own mmap ${first.bytes}; `, rest };
  }
  return { text: '', rest: syscalls };
}

interface AllocContext {
  /** calloc (which skipped the tcache until 2.41) or an internal _int_malloc (realloc, memalign): no tcache. */
  noTcache: 'calloc' | 'internal' | null;
  /** The syscalls this search made. */
  syscalls: Syscall[];
}

/** Why the search found what it found. */
function allocReason(outcome: ReplayOutcome, ctx: AllocContext): Reason {
  const notes = outcome.notes;
  const search = notes.search;
  if (!search) return failureReason(outcome, ctx);
  const nb = search.nb;
  const thr = search.mmapThreshold;
  const place = placeText(outcome);
  // (With a threshold of 0, as the mmap preset sets, every chunk is above it: saying so would be noise.)
  const above = search.aboveThreshold && thr !== 0 ? `chunk ${nb} ≥ mmap threshold ${thr}, but the bins come first: ` : '';
  const cached = search.tcacheHeld;
  const skipped = ctx.noTcache === 'calloc' && cached > 0 ? `calloc skips the tcache (it holds ${plural(cached, 'chunk')} of ${nb}); ` : '';
  const consolidated = notes.consolidations > 0 ? 'after consolidating the fastbins, ' : '';
  const whole = () => (search.whole ? ` (taken whole: the rest would be under ${search.minsize})` : ', split (the rest goes to unsorted)');
  switch (notes.path) {
    case 'tcache':
      return [`chunk ${nb} reused from the tcache`, ` → ${place}`];
    case 'fastbin': {
      const why = ctx.noTcache === null ? ' (its tcache bin is empty)' : '';
      return [`${skipped}chunk ${nb} taken from fastbin ${search.bin}${why}`, ` → ${place}`];
    }
    case 'smallbin':
      return [`${skipped}chunk ${nb} taken from small bin ${search.bin}`, ` → ${place}`];
    case 'unsorted':
      return [`${skipped}${consolidated}exact fit ${nb} found in the unsorted bin`, ` → ${place}`];
    case 'last-remainder': {
      const size = search.remainder;
      const rest = typeof nb === 'number' ? size - nb : 0;
      return [
        `${skipped}chunk ${nb} split off the last remainder (${size}, alone in unsorted); the rest (${rest}) stays as the new last remainder`,
        ` → ${place}`,
      ];
    }
    case 'largebin':
      return [`${above}${consolidated}the smallest chunk ≥ ${nb} in large bin ${search.bin} fits (best fit)${whole()}`, ` → ${place}`];
    case 'binmap':
      return [`${above}${skipped}${consolidated}no free chunk of ${nb}; the next larger non-empty bin gave one${whole()}`, ` → ${place}`];
    case 'top':
      if (notes.consolidations > 0) return [`${above}${skipped}after consolidating the fastbins, chunk ${nb} carved from the top`, ` → ${place}`];
      if (above) return [`chunk ${nb} ≥ mmap threshold ${thr}, but the top (${search.top}) can hold it`, ` → from the top, ${place}`];
      return [`${skipped}chunk ${nb} carved from the top (${search.top} ≥ ${nb} + ${search.minsize})`, ` → ${place}`];
    case 'mmap':
    case 'sysmalloc': {
      const [head, tail] = sysmallocReason(outcome, ctx);
      return [skipped + head, tail];
    }
    default: {
      const [head, tail] = failureReason(outcome, ctx);
      return [skipped + head, tail];
    }
  }
}

/** Why sysmalloc mmapped the chunk or grew the heap. */
function sysmallocReason(outcome: ReplayOutcome, ctx: AllocContext): Reason {
  const s = recorded(outcome.notes.sysmalloc, 'sysmalloc decision');
  const { nb, topSize: top, mmapThreshold: thr } = s;
  const topText = top === 0 ? 'there is no heap yet' : `the top (${top}) is too small`;
  if (outcome.notes.path === 'mmap') {
    const mapping = ctx.syscalls.filter((c) => c.call === 'mmap' && !c.failed).pop()?.bytes as number | undefined;
    return [`chunk ${nb} ≥ mmap threshold ${thr} and ${topText}`, ` → ${placeText(outcome, mapping)}`];
  }
  // The heap grew: by brk, or by glibc's mmap fallback when brk failed.
  const brkFailed = ctx.syscalls.some((c) => c.call === 'brk' && c.failed);
  const fallback = ctx.syscalls.filter((c) => c.call === 'mmap' && !c.failed).pop();
  let head: string;
  let grows = ' → the heap grows';
  if (s.triedMmap) {
    head = `chunk ${nb} ≥ mmap threshold ${thr} and ${topText}, but mmap failed`;
    grows = ' → the heap grows instead';
  } else if (s.aboveThreshold && s.mmapMaxReached) {
    head = `chunk ${nb} ≥ mmap threshold ${thr}, but n_mmaps has reached M_MMAP_MAX (${s.nMmapsMax}) and ${topText}`;
  } else head = `chunk ${nb} < mmap threshold ${thr} and ${topText}`;
  let growth: string;
  if (brkFailed && fallback) {
    growth = `${brkText(ctx.syscalls)}, so glibc maps ${fallback.bytes} bytes as heap instead (the sbrk fallback; the heap is non-contiguous from now on)`;
  } else {
    growth = brkText(ctx.syscalls) || heapClause(outcome.notes) || 'without a system call';
  }
  return [head, `${grows}: ${growth}, ${placeText(outcome)}`];
}

/** Why the call returned NULL. */
function failureReason(outcome: ReplayOutcome, ctx: AllocContext): Reason {
  const notes = outcome.notes;
  const failed = ctx.syscalls.filter((c) => c.failed).map((c) => syscallProse(c));
  const s = notes.sysmalloc;
  const topText = s ? (s.topSize === 0 ? 'there is no heap yet' : `the top (${s.topSize}) is too small`) : 'nothing free fits';
  const tried = failed.length ? `; ${failed.join(', ')}` : '';
  // sysmalloc noted the exact chunk size (a request near 2^63 reaches it as itself).
  const nb = s?.nb ?? notes.search?.nb ?? notes.realloc?.nb ?? '?';
  return [`chunk ${nb}: ${topText}${tried}`, ' → NULL (ENOMEM)'];
}

/** Where a freed piece of `size` bytes went, as _int_free recorded it (the first such piece not yet told). */
function pieceFate(notes: CallNotes, size: number, told: Set<FreeNote>): string {
  const f = notes.freed.find((n) => n.size === size && !told.has(n));
  if (!f) return 'unsorted';
  told.add(f);
  return f.to === 'top' ? 'the top' : f.to === 'small' ? 'its small bin' : f.to;
}

/** What happened after the freed chunk was merged (into unsorted or the top): consolidation and the trim check. */
function mergeText(outcome: ReplayOutcome, size: number): string {
  const notes = outcome.notes;
  const f = notes.freed[0];
  if (!f) return `chunk ${size} → unsorted bin`;
  const intoTop = f.to === 'top';
  const t = notes.trim;
  let text: string;
  // Since 2.41 a chunk small after merging goes to its own small bin.
  const bin = f.to === 'small' ? 'its small bin (since 2.41 a freed small chunk skips the unsorted bin)' : 'unsorted bin';
  if (intoTop) text = 'merged into the top';
  else text = f.merged > size ? `merged with its free neighbours into ${f.merged} → ${bin}` : `chunk ${size} → ${bin}`;
  if (!t?.checked) return intoTop ? `${text} (now ${f.merged})` : text;
  const tt = t.trimThreshold;
  const consolidated = t.consolidated ? '; the fastbins are consolidated' : '';
  const top = t.top;
  const topLabel = intoTop ? `${top}` : `merged ${f.merged} ≥ ${t.consolidationThreshold}, top ${top}`;
  // A thread arena gives memory back through heap_trim, whose heaps the sentence names after it.
  if (t.verdict === 'released' && notes.heaps.length) return `${text}${consolidated} → heap_trim gives ${notes.trimmedBytes} bytes back`;
  if (t.verdict === 'released') return `${text} (${topLabel} ≥ trim threshold ${tt})${consolidated} → brk −${notes.trimmedBytes}`;
  if (t.verdict === 'wrapped') {
    return `${text} (${topLabel} ≥ trim threshold ${tt})${consolidated} → brk +${-notes.trimmedBytes}: the top is under ${t.reserve} bytes, so systrim's size_t arithmetic wraps and the heap grows instead`;
  }
  if (t.consolidated && !intoTop) {
    // Consolidation may have grown the top after the merge: the check saw top ${t.top}.
    return `${text} (merged ${f.merged} ≥ ${t.consolidationThreshold})${consolidated}, top ${t.top} ${t.verdict === 'below' ? '<' : '≥'} trim threshold ${tt} → no trim`;
  }
  if (t.verdict === 'below') return `${text} (${topLabel} < trim threshold ${tt}) → no trim`;
  if (t.verdict === 'no-excess' || t.verdict === 'under-page') {
    const why = t.excess <= 0 ? `not above top pad ${t.topPadT}` : `${t.top} − ${t.reserve} − top pad ${t.topPad} = ${t.excess} is under a page`;
    return `${text} (${topLabel} ≥ trim threshold ${tt}, but ${why}) → no trim`;
  }
  return `${text} (${topLabel} ≥ trim threshold ${tt}, but the top does not end at the break) → no trim`;
}

/** The body of free(id) (also realloc(id, 0)). */
function freeBody(before: StateBefore, event: TraceEvent, outcome: ReplayOutcome): string {
  const id = 'id' in event ? event.id : '';
  if (before.blockIsNull || !before.block) return `${id} is NULL (its allocation failed) → nothing to do`;
  const { size, lead } = before.block;
  const notes = outcome.notes;
  const f = notes.mmappedFree;
  if (f) {
    const unmap = `; munmap ${size + lead}`;
    const thr = f.threshold;
    const move = notes.thresholdMove;
    switch (f.verdict) {
      case 'rise': {
        const { mmapThreshold, trimThreshold } = recorded(move, 'threshold move');
        return `mmapped chunk ${size} > threshold ${mmapThreshold.from} → threshold ${mmapThreshold.to}, trim threshold ${trimThreshold.to}${unmap}`;
      }
      case 'sliding-off': {
        const why = before.policy === 'glibc' ? 'mallopt switched the sliding off' : `the ${before.policy} policy does not slide`;
        return `mmapped chunk ${size}, but ${why} → no rise, threshold stays ${thr}${unmap}`;
      }
      case 'above-max':
        return `mmapped chunk ${size}: size word ${f.sizeWord} > ${f.max / 2 ** 20} MiB (${f.max}) → no rise, threshold stays ${thr}${unmap}`;
      default:
        return `mmapped chunk ${size} ≤ threshold ${thr} → no rise${unmap}`;
    }
  }
  const freed = notes.freed[0];
  if (freed?.to === 'tcache') return `chunk ${size} → tcache (${freed.count} of ${freed.fill} in its bin)`;
  if (freed?.to === 'fastbin') {
    const full = freed.tcacheable ? ', its tcache bin is full' : '';
    return `chunk ${size} → fastbin ${freed.count} (≤ ${freed.maxFast}${full}); it stays unmerged`;
  }
  return mergeText(outcome, size);
}

/** ", and the top is trimmed: brk −N" when a freed piece made systrim give memory back (or wrap and grow). */
function trimmed(outcome: ReplayOutcome): string {
  const bytes = outcome.notes.trimmedBytes;
  if (bytes > 0 && outcome.notes.heaps.length) return `, and heap_trim gives ${bytes} bytes back`;
  if (bytes > 0) return `, and the top is trimmed: brk −${bytes}`;
  if (bytes < 0) return `, and systrim's size_t arithmetic wraps: brk +${-bytes}`;
  return '';
}

// ---- the sentence --------------------------------------------------------------------------------------

/**
 * One sentence on what `event` did and why, e.g. `big = malloc(200000): chunk 200016 ≥ mmap threshold 131072
 * and the top (134400) is too small → mmap 200704 bytes`. `before` is captureBefore's snapshot, taken just
 * before the replayer applied the event; `outcome` is what apply returned, with the notes the core recorded
 * (the replayer's model must record them: an Explainer sets that up).
 */
export function explainStep(before: StateBefore, event: TraceEvent, outcome: ReplayOutcome): string {
  if (!outcome.notes.detail)
    throw new MallocscopeError(
      'NO_DECISIONS',
      'explainStep narrates the decisions the core records: make the Replayer with { decisions: true } (an Explainer does)',
    );
  const body = explainBody(before, event, outcome);
  if (event.op === 'spawn' || event.op === 'exit') return `${callText(event)}: ${body}`;
  // A thread's arena, chosen in this call, comes first; a thread arena's heaps that changed, last.
  // (sysmalloc's growth names its heap itself.)
  const heaps = outcome.notes.path === 'sysmalloc' ? '' : heapClause(outcome.notes);
  return `${callText(event)}: ${arenaClause(outcome.notes)}${body}${heaps ? `; ${heaps}` : ''}`;
}

function explainBody(before: StateBefore, event: TraceEvent, outcome: ReplayOutcome): string {
  const notes = outcome.notes;
  switch (event.op) {
    case 'malloc':
      return allocation(event, outcome, null);
    case 'calloc':
      if (notes.refused?.why === 'overflow')
        return `${event.exact?.nmemb ?? event.nmemb} × ${event.exact?.size ?? event.size} overflows size_t → NULL (ENOMEM)`;
      return allocation(event, outcome, 'calloc');
    case 'memalign':
      return memalign(event, outcome);
    case 'realloc':
      return realloc(before, event, outcome);
    case 'free':
      return freeBody(before, event, outcome);
    case 'mallopt':
      return mallopt(before, event, outcome);
    case 'trim':
      return trim(event, outcome);
    case 'spawn':
    case 'exit':
      return threadBody(event, outcome);
  }
}

function trim(event: TraceEvent & { op: 'trim' }, outcome: ReplayOutcome): string {
  const t = recorded(outcome.notes.mtrim, 'malloc_trim work');
  const pad = event.exact?.pad ?? event.pad;
  const parts: string[] = [];
  if (t.consolidated > 0) parts.push(`consolidates ${plural(t.consolidated, 'fastbin chunk')}`);
  if (t.advisedChunks > 0) parts.push(`madvise(MADV_DONTNEED) on ${plural(t.advisedChunks, 'free chunk')} (${t.advisedBytes} bytes of whole pages)`);
  const bytes = outcome.notes.trimmedBytes;
  const topText = t.consolidated === 0 ? ` (${t.top})` : '';
  if (bytes > 0) parts.push(`the top${topText} gives back its whole pages above pad ${pad} → brk −${bytes}`);
  else if (bytes < 0) parts.push(`the top is under ${t.reserve} bytes, so systrim's size_t arithmetic wraps → brk +${-bytes}`);
  if (!parts.length) return `nothing to give back (top ${t.top}, pad ${pad}) → returns 0`;
  if (bytes === 0) parts.push(`the top keeps its pages (top ${t.top}, pad ${pad})`);
  return parts.join('; ');
}

/** A request's byte count as the trace wrote it: exact above 2^53, where the number only approximates it. */
function requestText(event: TraceEvent): string {
  const exact = event.exact;
  const size = exact?.size ?? ('size' in event ? event.size : 0);
  if (event.op !== 'calloc') return String(size);
  const product = BigInt(exact?.nmemb ?? event.nmemb) * BigInt(size);
  return String(product);
}

/** The refusal at the entry point, when the call was refused before any search. */
function refusal(event: TraceEvent, notes: CallNotes): string | null {
  if (notes.refused?.why !== 'ptrdiff') return null;
  return `request ${event.op === 'memalign' ? notes.refused.value : requestText(event)} is above PTRDIFF_MAX → NULL (ENOMEM)`;
}

/** malloc, calloc, realloc(NULL, n) and small-alignment memalign. */
function allocation(event: TraceEvent, outcome: ReplayOutcome, noTcache: AllocContext['noTcache']): string {
  const refused = refusal(event, outcome.notes);
  if (refused) return refused;
  const init = initClause(outcome.notes, outcome.syscalls);
  return init.text + joined(allocReason(outcome, { noTcache, syscalls: init.rest }));
}

function memalign(event: TraceEvent & { op: 'memalign' }, outcome: ReplayOutcome): string {
  const notes = outcome.notes;
  const ma = notes.memalign;
  if (ma?.plain) return `alignment ≤ ${ma.mallocAlignment} is plain malloc: ${allocation(event, outcome, null)}`;
  if (notes.refused?.why === 'einval') return `alignment ${event.exact?.alignment ?? event.alignment} is too large → NULL (EINVAL)`;
  // Since 2.42 memalign may set the tcache up first, even for a request it then refuses.
  const init = initClause(notes, outcome.syscalls);
  const refused = refusal(event, notes);
  if (refused || !ma) return init.text + (refused ?? `_int_malloc's request ${notes.refused?.value} overflows size_t → NULL (ENOMEM)`);
  if (ma.fromTcache)
    return `the tcache bin of chunk ${ma.nb} holds an entry that is already ${ma.alignment}-aligned (since 2.38 memalign looks there first) → taken from the tcache, ${placeText(outcome)}`;
  const asked = `${init.text}_int_malloc(${ma.nb} + alignment ${ma.alignment} + ${ma.minsize}), no tcache: `;
  const ctx: AllocContext = { noTcache: 'internal', syscalls: init.rest };
  if (!outcome.where) return asked + joined(failureReason(outcome, ctx));
  const [head, tail] = allocReason(outcome, ctx);
  if (outcome.where === 'mmap') {
    const mapping = (outcome.syscalls.filter((c) => c.call === 'mmap' && !c.failed).pop()?.bytes as number | undefined) ?? outcome.chunk;
    const gapText = ma.gap > 0 ? `; the ${ma.gap}-byte front gap stays in the mapping (prev_size)` : '';
    return `${asked}${head}${gapText} → mmap ${mapping} bytes, chunk ${outcome.chunk}`;
  }
  const told = new Set<FreeNote>();
  const parts: string[] = [];
  if (ma.lead > 0) parts.push(`lead ${ma.lead} (→ ${pieceFate(notes, ma.lead, told)})`);
  if (ma.tail > 0) parts.push(`tail ${ma.tail} (→ ${pieceFate(notes, ma.tail, told)})`);
  const pieces = parts.length ? `; ${parts.join(' and ')} given back` : '; already aligned, nothing given back';
  return `${asked}${head}${pieces}${tail}`;
}

function realloc(before: StateBefore, event: TraceEvent & { op: 'realloc' }, outcome: ReplayOutcome): string {
  const id = event.id;
  const notes = outcome.notes;
  if (!event.wasLive) return allocation(event, outcome, null);
  if (event.size === 0) return `frees ${id}: ${freeBody(before, event, outcome)} → NULL`;
  if (before.blockIsNull || !before.block) return `${id} is NULL, so this is malloc: ${allocation(event, outcome, null)}`;
  const refused = refusal(event, notes);
  if (refused) return `${refused}; ${id} keeps its block`;
  const r = recorded(notes.realloc, 'realloc decision');
  const { old, nb } = r;
  if (r.how === 'usable') {
    const usable = Number(nb) + r.tail;
    return `${nb} bytes fit the ${usable} usable bytes of ${id}'s block with ${r.tail} to spare (since 2.37 realloc returns such a block at once, before anything else) → stays at ${placeText(outcome)}`;
  }
  const path = notes.path;
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
    const inner = joined(allocReason(outcome, { noTcache: null, syscalls: rest }));
    return `mremap failed → malloc, copy ${r.copied} bytes, munmap ${total} (no threshold update): ${inner}`;
  }
  const init = initClause(notes, syscalls);
  const prefix = init.text;
  const calls = init.rest;
  const top = r.top;
  const place = placeText(outcome);
  const ctx: AllocContext = { noTcache: 'internal', syscalls: calls };
  const told = new Set<FreeNote>();
  const tailText = () => (r.tail > 0 ? `; the tail ${r.tail} is freed (→ ${pieceFate(notes, r.tail, told)})${trimmed(outcome)}` : '');
  switch (r.how) {
    case 'failed':
      return `${prefix}chunk ${old} cannot grow to ${nb}; ${joined(failureReason(outcome, ctx))}; ${id} keeps its block`;
    case 'top':
      return `${prefix}chunk ${old} grows into the top (${old} + ${top} ≥ ${nb} + ${r.minsize}) → stays at ${place}`;
    case 'fits':
      if (r.tail === 0) return `${prefix}chunk ${old} already holds ${nb} (the spare ${old - Number(nb)} is under ${r.minsize}) → stays at ${place}`;
      return `${prefix}chunk ${old} shrinks in place to ${nb}${tailText()} → stays at ${place}`;
    case 'merged': {
      // The new chunk (nb) lay right above: merged, and its tail (the old chunk's size) is freed.
      const grown = brkText(calls.filter((c) => c.call === 'brk' && c.bytes > 0));
      return `${prefix}the top (${top}) is too small, so the heap grows (${grown}) and the new chunk lies right above ${id}'s → merged in place; the tail ${r.tail} is freed (→ ${pieceFate(notes, r.tail, told)})${trimmed(outcome)} → stays at ${place}`;
    }
    case 'next':
      return `${prefix}chunk ${old} grows into the free chunk above it → stays at ${place}`;
    case 'moved': {
      const inner = joined(allocReason(outcome, ctx));
      return `${prefix}chunk ${old} cannot grow in place, so _int_malloc (no tcache): ${inner}; ${r.copied} bytes copied, the old chunk freed (→ ${pieceFate(notes, old, told)})${trimmed(outcome)}`;
    }
  }
}

function mallopt(before: StateBefore, event: TraceEvent & { op: 'mallopt' }, outcome: ReplayOutcome): string {
  const notes = outcome.notes;
  const o = recorded(notes.mallopt, 'mallopt verdict');
  const n = notes.consolidatedChunks;
  const consolidate = n > 0 ? `consolidates ${plural(n, 'fastbin chunk')} first; ` : '';
  const off = before.noDynThreshold ? ' (the sliding was already off)' : ' and the sliding is switched off for good (no_dyn_threshold = 1)';
  const v = event.value;
  switch (event.param) {
    case 'M_MMAP_THRESHOLD':
      if (!o.accepted)
        return `${consolidate}refused: this glibc takes a threshold of at most ${o.thresholdLimit} (a negative int is a huge size_t) → returns 0; nothing changes, the sliding included`;
      return `${consolidate}mmap threshold ${before.mmapThreshold} → ${outcome.mmapThreshold}${off}`;
    case 'M_TRIM_THRESHOLD':
      return `${consolidate}trim threshold ${before.trimThreshold} → ${outcome.trimThreshold}${off}`;
    case 'M_TOP_PAD':
      return `${consolidate}top pad ${sizeTFromInt(before.topPad)} → ${o.topPad}${v < 0 ? ` (the int ${v} as a size_t)` : ''}${off}`;
    case 'M_MMAP_MAX':
      return `${consolidate}n_mmaps_max ${before.nMmapsMax} → ${v}${o.mmapsBlocked ? ' (no new mmaps: large requests grow the heap)' : ''}${off}`;
    case 'M_MXFAST': {
      if (!o.accepted) return `${consolidate}refused (M_MXFAST takes 0…${o.limit}) → returns 0`;
      const fast = o.fastbinsTakeNone ? 'fastbins take no chunk now' : `fastbins now take chunks up to ${o.maxFast}`;
      return `${consolidate}${fast}; the sliding threshold is not affected`;
    }
    case 'M_ARENA_MAX':
    case 'M_ARENA_TEST': {
      const field = event.param === 'M_ARENA_MAX' ? 'arena_max' : 'arena_test';
      if (v <= 0) return `${consolidate}a value that is not positive is ignored (mallopt still returns 1); the sliding threshold is not affected`;
      return `${consolidate}${field} = ${v}, the limit on arenas for threads; the sliding threshold is not affected`;
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
