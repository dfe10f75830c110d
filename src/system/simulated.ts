// The simulated kernel: a program break with an optional limit, and anonymous mappings placed top-down the
// way Linux places them. It counts the calls and the resident pages, and never touches real memory.
import { totalmem } from 'node:os';
import type { Syscall, SystemMemory } from './api.ts';
import { SyscallLog } from './syscall-log.ts';

/** Options of the simulated kernel. */
export interface SimulatedSystemOptions {
  /** Where the break starts (page-aligned); default 0x555555559000, as a non-randomised Linux process. */
  heapStart?: number;
  /** The break cannot grow beyond heapStart + brkLimit bytes (sbrk then fails, as with a mapping in the way). */
  brkLimit?: number;
  /**
   * Linux's heuristic overcommit refuses one mapping (or break growth) larger than RAM + swap. Default: this
   * machine's RAM, so huge requests fail here as they do in the oracle.
   */
  commitLimit?: number;
}

const PAGE = 4096;
/** Highest address of the user address space on x86-64 with 4-level page tables. */
const USER_SPACE_END = 2 ** 47;
/** Where the top-down mmap area starts (below the stack), page-aligned. */
const MMAP_BASE = 0x7ffff7fff000;

/** One live mapping. */
interface Mapping {
  start: number;
  length: number;
}

/** Counters kept over the whole run. */
export interface SyscallCounts {
  brk: number;
  brkFailed: number;
  mmap: number;
  mmapFailed: number;
  munmap: number;
  mremap: number;
  madvise: number;
}

export class SimulatedSystem implements SystemMemory {
  readonly pageSize = PAGE;
  readonly heapStart: number;
  /** The current program break. */
  brk: number;
  /** The highest the break may go. */
  readonly brkEnd: number;
  readonly commitLimit: number;
  /** Live mappings, sorted by start address. */
  private mappings: Mapping[] = [];
  /** Total bytes in live mappings. */
  mappedBytes = 0;
  /** Pages dropped by madvise and not touched since: subtracted from the resident estimate. */
  readonly counts: SyscallCounts = { brk: 0, brkFailed: 0, mmap: 0, mmapFailed: 0, munmap: 0, mremap: 0, madvise: 0 };
  private readonly log = new SyscallLog();

  constructor(options: SimulatedSystemOptions = {}) {
    this.heapStart = options.heapStart ?? 0x555555559000;
    if (this.heapStart % PAGE !== 0) throw new RangeError('heapStart must be page-aligned');
    this.brk = this.heapStart;
    // Without a limit the break may grow 16 TiB; mappings are placed above that.
    this.brkEnd = this.heapStart + (options.brkLimit === undefined ? 2 ** 44 : Math.floor(options.brkLimit / PAGE) * PAGE);
    this.commitLimit = options.commitLimit ?? totalmem();
  }

  sbrk(increment: number): number {
    const old = this.brk;
    if (increment === 0) return old;
    const next = old + increment;
    if (next > this.brkEnd || next < this.heapStart || (increment > 0 && increment > this.commitLimit) || this.overlapsMapping(Math.min(old, next), Math.abs(increment))) {
      this.counts.brkFailed++;
      this.log.push({ call: 'brk', bytes: increment, failed: true });
      return -1;
    }
    this.brk = next;
    this.counts.brk++;
    this.log.push({ call: 'brk', bytes: increment });
    return old;
  }

  mmap(length: number): number {
    const start = length > 0 && length <= this.commitLimit ? this.findGap(length) : -1;
    if (start < 0) {
      this.counts.mmapFailed++;
      this.log.push({ call: 'mmap', bytes: length, failed: true });
      return -1;
    }
    this.insert({ start, length });
    this.counts.mmap++;
    this.log.push({ call: 'mmap', bytes: length });
    return start;
  }

  munmap(address: number, length: number): void {
    const index = this.mappings.findIndex((m) => m.start === address && m.length === length);
    if (index < 0) throw new Error(`simulated kernel: munmap of ${address.toString(16)}+${length} that was never mapped`);
    this.mappings.splice(index, 1);
    this.mappedBytes -= length;
    this.counts.munmap++;
    this.log.push({ call: 'munmap', bytes: length });
  }

  mremap(address: number, oldLength: number, newLength: number): number {
    const index = this.mappings.findIndex((m) => m.start === address && m.length === oldLength);
    if (index < 0) throw new Error(`simulated kernel: mremap of ${address.toString(16)}+${oldLength} that was never mapped`);
    const mapping = this.mappings[index];
    if (newLength - oldLength > this.commitLimit) {
      this.log.push({ call: 'mremap', bytes: newLength, from: oldLength, failed: true });
      return -1;
    }
    this.counts.mremap++;
    this.log.push({ call: 'mremap', bytes: newLength, from: oldLength });
    const next = this.mappings[index + 1];
    // Shrinking, or growing into free space above, stays in place; otherwise the kernel moves it.
    if (newLength <= oldLength || !next || next.start >= address + newLength) {
      if (newLength > oldLength && address + newLength > MMAP_BASE) return this.move(index, newLength);
      mapping.length = newLength;
      this.mappedBytes += newLength - oldLength;
      return address;
    }
    return this.move(index, newLength);
  }

  madvise(_address: number, length: number): void {
    this.counts.madvise++;
    this.log.push({ call: 'madvise', bytes: length });
  }

  takeSyscalls(): Syscall[] {
    return this.log.take();
  }

  /** How many mappings are live. */
  get mappingCount(): number {
    return this.mappings.length;
  }

  private move(index: number, newLength: number): number {
    const old = this.mappings[index];
    this.mappings.splice(index, 1);
    const start = this.findGap(newLength);
    if (start < 0) {
      this.mappings.splice(index, 0, old);
      return -1;
    }
    this.insert({ start, length: newLength });
    this.mappedBytes += newLength - old.length;
    return start;
  }

  /** The highest free range of `length` bytes below MMAP_BASE and above the break area (top-down). */
  private findGap(length: number): number {
    let ceiling = MMAP_BASE;
    for (let i = this.mappings.length - 1; i >= 0; i--) {
      const m = this.mappings[i];
      const end = m.start + m.length;
      if (ceiling - end >= length) break;
      ceiling = Math.min(ceiling, m.start);
    }
    const start = ceiling - length;
    return start >= this.brkEnd && start + length <= USER_SPACE_END ? start : -1;
  }

  private insert(mapping: Mapping): void {
    let low = 0;
    let high = this.mappings.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.mappings[mid].start < mapping.start) low = mid + 1;
      else high = mid;
    }
    this.mappings.splice(low, 0, mapping);
    this.mappedBytes += mapping.length;
  }

  private overlapsMapping(start: number, length: number): boolean {
    for (const m of this.mappings) if (m.start < start + length && start < m.start + m.length) return true;
    return false;
  }
}

