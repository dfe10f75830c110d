// The brk/mmap policy: a small object that says, at the one place glibc decides (sysmalloc), whether a
// chunk gets its own mapping, and that is told when an mmapped chunk is freed (where glibc's watermark slides).
import type { SizeT } from '../allocator/size-t.ts';

/** A move of a threshold, for the event stream ("threshold 131072 → 200704"). */
export interface ThresholdMove {
  /** mmap_threshold before and after. */
  mmapThreshold: { from: SizeT; to: SizeT };
  /** trim_threshold before and after. */
  trimThreshold: { from: SizeT; to: SizeT };
}

/** The mallopt parameters that reach the policy. */
export type PolicyParam = 'M_MMAP_THRESHOLD' | 'M_TRIM_THRESHOLD' | 'M_TOP_PAD' | 'M_MMAP_MAX';

export interface MmapPolicy {
  /** The name as `--policy` writes it: glibc, fixed:BYTES, heap, mmap. */
  readonly name: string;
  /** mp_.mmap_threshold: chunks at least this large are mmapped when the heap cannot serve them. */
  readonly mmapThreshold: SizeT;
  /** mp_.trim_threshold: free() trims the top when it reaches this size. */
  readonly trimThreshold: SizeT;
  /** mp_.no_dyn_threshold: true once the sliding is off for good. */
  readonly noDynThreshold: boolean;
  /**
   * sysmalloc's test: mmap a chunk of `nb` bytes? `nMmaps` and `nMmapsMax` are mp_.n_mmaps and
   * mp_.n_mmaps_max (a C int each).
   */
  shouldMmap(nb: SizeT, nMmaps: number, nMmapsMax: number): boolean;
  /**
   * free() of an mmapped chunk, before it is unmapped. `sizeWord` is the unmasked size word (chunk size + 2,
   * the IS_MMAPPED bit) and `chunkSize` the masked one. Returns the move, or null when nothing moved.
   */
  onMmappedFree(sizeWord: number, chunkSize: number): ThresholdMove | null;
  /** mallopt of a threshold parameter; `value` is already converted to size_t as glibc converts it. */
  onMallopt(param: PolicyParam, value: SizeT): void;
}
