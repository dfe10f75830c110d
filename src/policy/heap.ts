// Never mmap, as after mallopt(M_MMAP_MAX, 0): every chunk comes from the heap (or, when brk fails, from
// glibc's mmap'ed fallback heap, which is still heap).
import { GlibcPolicy } from './glibc.ts';

export class HeapPolicy extends GlibcPolicy {
  override readonly name = 'heap';

  constructor() {
    super();
    this.noDynThreshold = true;
  }

  override shouldMmap(): boolean {
    return false;
  }
}
