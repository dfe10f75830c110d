// glibc 2.36's dynamic policy (GLIBC-2.36.md §3): the threshold starts at 128 KiB and rises to the size of
// each freed mmapped chunk that is larger, up to the 32 MiB ceiling; mallopt of any of four parameters
// switches the sliding off for good.
import { DEFAULT_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD_MAX, DEFAULT_TRIM_THRESHOLD } from '../allocator/constants.ts';
import type { SizeT } from '../allocator/size-t.ts';
import type { MmapPolicy, PolicyParam, ThresholdMove } from './api.ts';

export class GlibcPolicy implements MmapPolicy {
  readonly name: string = 'glibc';
  mmapThreshold: SizeT = DEFAULT_MMAP_THRESHOLD;
  trimThreshold: SizeT = DEFAULT_TRIM_THRESHOLD;
  noDynThreshold = false;

  shouldMmap(nb: SizeT, nMmaps: number, nMmapsMax: number): boolean {
    return nb >= this.mmapThreshold && nMmaps < nMmapsMax;
  }

  onMmappedFree(sizeWord: number, chunkSize: number): ThresholdMove | null {
    // The comparisons use the raw size word (+2 for IS_MMAPPED): strictly above the threshold, and at most
    // 32 MiB, which for page-multiple chunks means at most 32 MiB - 4096.
    if (this.noDynThreshold || !(sizeWord > this.mmapThreshold) || sizeWord > DEFAULT_MMAP_THRESHOLD_MAX) return null;
    // A chunk exactly at the threshold passes the test (the size word carries +2) but rewrites the same values.
    if (chunkSize === this.mmapThreshold && 2 * chunkSize === this.trimThreshold) return null;
    const move: ThresholdMove = {
      mmapThreshold: { from: this.mmapThreshold, to: chunkSize },
      trimThreshold: { from: this.trimThreshold, to: 2 * chunkSize },
    };
    this.mmapThreshold = chunkSize;
    this.trimThreshold = 2 * chunkSize;
    return move;
  }

  onMallopt(param: PolicyParam, value: SizeT): void {
    if (param === 'M_MMAP_THRESHOLD') this.mmapThreshold = value;
    else if (param === 'M_TRIM_THRESHOLD') this.trimThreshold = value;
    // M_TOP_PAD and M_MMAP_MAX live in the allocator; every one of the four stops the sliding.
    this.noDynThreshold = true;
  }
}
