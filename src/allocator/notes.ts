// What one call did inside the allocator, beyond its result: the path that found the chunk, consolidations,
// trims and threshold moves. The replay turns these (with the system calls) into the event's consequences.
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
}

/** sysmalloc's decision, for explanations. */
export interface SysmallocNote {
  /** The padded chunk size asked for (exact: a request near 2^63 reaches sysmalloc as itself). */
  nb: SizeT;
  /** The top's size when sysmalloc began. */
  topSize: number;
  /** mp_.mmap_threshold at the decision. */
  mmapThreshold: SizeT;
  /** Whether mmap was tried (nb >= mp_.mmap_threshold and n_mmaps < n_mmaps_max). */
  triedMmap: boolean;
  /** Whether the chunk got its own mapping. */
  mmapped: boolean;
  /** Whether n_mmaps had reached n_mmaps_max (then mmap is not tried, whatever the size). */
  mmapMaxReached: boolean;
}

/** A free that coalesced: the size after merging, and whether it joined the top. */
export interface MergeNote {
  size: number;
  intoTop: boolean;
}

export function newNotes(): CallNotes {
  return { path: '', consolidations: 0, trims: 0, trimmedBytes: 0, thresholdMove: null, sysmalloc: null, merge: null, mergeSlot: { size: 0, intoTop: false } };
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
}
