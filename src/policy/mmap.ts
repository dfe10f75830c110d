// Always mmap, as after mallopt(M_MMAP_THRESHOLD, 0): every request that the bins and the top cannot serve
// gets its own mapping, so the heap never grows (the first request, tcache's own, is mmapped too).
import type { SizeT } from '../allocator/size-t.ts';
import { GlibcPolicy } from './glibc.ts';

export class MmapAlwaysPolicy extends GlibcPolicy {
  override readonly name = 'mmap';

  constructor() {
    super();
    this.mmapThreshold = 0;
    this.noDynThreshold = true;
  }

  override shouldMmap(_nb: SizeT, nMmaps: number, nMmapsMax: number): boolean {
    return nMmaps < nMmapsMax;
  }
}
