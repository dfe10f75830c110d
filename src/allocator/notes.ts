// What one call did inside the allocator, beyond its result: the path that found the chunk, consolidations,
// trims and threshold moves. The replay turns these (with the system calls) into the event's consequences.
import type { ThresholdMove } from '../policy/api.ts';

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
  /** The threshold move this call caused (free of an mmapped chunk), if any. */
  thresholdMove: ThresholdMove | null;
}

export function newNotes(): CallNotes {
  return { path: '', consolidations: 0, trims: 0, trimmedBytes: 0, thresholdMove: null };
}
