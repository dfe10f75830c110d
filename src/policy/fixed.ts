// A fixed threshold, as after mallopt(M_MMAP_THRESHOLD, BYTES): chunks of at least BYTES are mmapped when
// the heap cannot serve them, and freeing never moves the threshold.
import { GlibcPolicy } from './glibc.ts';

export class FixedPolicy extends GlibcPolicy {
  override readonly name: string;

  constructor(threshold: number) {
    super();
    this.name = `fixed:${threshold}`;
    this.mmapThreshold = threshold;
    this.noDynThreshold = true;
  }
}
