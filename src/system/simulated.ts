// The simulated kernel: a program break with an optional limit, and anonymous mappings placed top-down the
// way Linux places them. It logs the calls the allocator makes and never touches real memory.
import { MallocscopeError } from '../errors.ts';
import type { Syscall, SystemMemory } from './api.ts';
import { SyscallLog } from './syscall-log.ts';

/** Options of the simulated kernel. */
export interface SimulatedSystemOptions {
  /** Where the break starts (page-aligned); default 0x555555559000, as a non-randomised Linux process. */
  heapStart?: number;
  /** The break cannot grow beyond heapStart + brkLimit bytes (sbrk then fails, as with a mapping in the way). */
  brkLimit?: number;
  /**
   * Linux's heuristic overcommit refuses one mapping (or break growth) larger than RAM + swap. Default:
   * DEFAULT_COMMIT_LIMIT, the same on every host (a replay must not depend on the machine it runs on).
   */
  commitLimit?: number;
}

const PAGE = 4096;
/** The commit limit of a kernel with 16 GiB of RAM and no swap. */
export const DEFAULT_COMMIT_LIMIT = 2 ** 34;
/** Highest address of the user address space on x86-64 with 4-level page tables. */
const USER_SPACE_END = 2 ** 47;
/** Where the top-down mmap area starts (below the stack), page-aligned. */
const MMAP_BASE = 0x7ffff7fff000;

/** One live mapping. */
interface Mapping {
  start: number;
  length: number;
  /** A reservation (reserve(): a thread arena's heap), which may be unmapped in parts. */
  reserved?: true;
}

export class SimulatedSystem implements SystemMemory {
  /** No bytes live behind the simulated addresses. */
  readonly memory = null;
  /** A simulated kernel is never released. */
  readonly released = false;
  readonly pageSize = PAGE;
  readonly heapStart: number;
  /** The current program break. */
  brk: number;
  /** The highest the break may go; mappings are placed above it. */
  readonly brkEnd: number;
  readonly commitLimit: number;
  /** Live mappings, sorted by start address. */
  private mappings: Mapping[] = [];
  private readonly log = new SyscallLog();

  constructor(options: SimulatedSystemOptions = {}) {
    this.heapStart = options.heapStart ?? 0x555555559000;
    if (this.heapStart % PAGE !== 0) throw new RangeError('heapStart must be page-aligned');
    this.brk = this.heapStart;
    // Without a limit the break may grow 16 TiB; mappings are placed above that.
    this.brkEnd = this.heapStart + (options.brkLimit === undefined ? 2 ** 44 : Math.floor(options.brkLimit / PAGE) * PAGE);
    this.commitLimit = options.commitLimit ?? DEFAULT_COMMIT_LIMIT;
  }

  sbrk(increment: number | bigint): number {
    const old = this.brk;
    if (increment === 0) return old;
    // A bigint increment (2^53 or more) fails as any past the limit; no mapping can be in the way: every
    // mapping lies above brkEnd.
    const next = typeof increment === 'bigint' ? Number.NaN : old + increment;
    if (typeof increment === 'bigint' || next > this.brkEnd || next < this.heapStart || increment > this.commitLimit) {
      this.log.push({ call: 'brk', bytes: increment, failed: true });
      return -1;
    }
    this.brk = next;
    this.log.push({ call: 'brk', bytes: increment });
    return old;
  }

  mmap(length: number | bigint): number {
    const start = typeof length === 'number' && length > 0 && length <= this.commitLimit ? this.findGap(length) : -1;
    if (typeof length === 'bigint' || start < 0) {
      this.log.push({ call: 'mmap', bytes: length, failed: true });
      return -1;
    }
    this.mappings.splice(this.indexFor(start), 0, { start, length });
    this.log.push({ call: 'mmap', bytes: length });
    return start;
  }

  munmap(address: number, length: number): void {
    // A part of a reservation (new_heap cuts one to an aligned heap); any other mapping whole, as the model
    // maps it: a wrong length there is a model bug, not a call to carry out.
    const index = this.indexContaining(address, length);
    const mapping = this.mappings[index];
    if (index < 0 || (!mapping.reserved && (mapping.start !== address || mapping.length !== length))) this.indexOf(address, length, 'munmap'); // throws
    const rest: Mapping[] = [];
    if (mapping.start < address) rest.push({ start: mapping.start, length: address - mapping.start, reserved: true });
    const end = mapping.start + mapping.length;
    if (address + length < end) rest.push({ start: address + length, length: end - address - length, reserved: true });
    this.mappings.splice(index, 1, ...rest);
    this.log.push({ call: 'munmap', bytes: length });
  }

  reserve(length: number, hint?: number): number {
    let start = -1;
    if (length > 0 && length % PAGE === 0) {
      start = hint !== undefined && this.isFree(hint, length) ? hint : this.findGap(length);
    }
    if (start < 0) {
      this.log.push({ call: 'mmap', bytes: length, failed: true });
      return -1;
    }
    this.mappings.splice(this.indexFor(start), 0, { start, length, reserved: true });
    this.log.push({ call: 'mmap', bytes: length });
    return start;
  }

  mprotect(address: number, length: number): boolean {
    if (this.indexContaining(address, length) < 0) this.indexOf(address, length, 'mprotect'); // throws
    this.log.push({ call: 'mprotect', bytes: length });
    return true;
  }

  mremap(address: number, oldLength: number, newLength: number | bigint): number {
    const index = this.indexOf(address, oldLength, 'mremap');
    if (typeof newLength === 'bigint' || newLength - oldLength > this.commitLimit) {
      this.log.push({ call: 'mremap', bytes: newLength, from: oldLength, failed: true });
      return -1;
    }
    this.log.push({ call: 'mremap', bytes: newLength, from: oldLength });
    const next = this.mappings[index + 1];
    // Shrinking, or growing into free space above, stays in place; otherwise the kernel moves it.
    const fits = newLength <= oldLength || ((!next || next.start >= address + newLength) && address + newLength <= MMAP_BASE);
    if (fits) {
      this.mappings[index].length = newLength;
      return address;
    }
    const [old] = this.mappings.splice(index, 1);
    const start = this.findGap(newLength);
    if (start < 0) {
      this.mappings.splice(index, 0, old);
      return -1;
    }
    this.mappings.splice(this.indexFor(start), 0, { start, length: newLength });
    return start;
  }

  madvise(_address: number, length: number): void {
    this.log.push({ call: 'madvise', bytes: length });
  }

  get syscallCount(): number {
    return this.log.count;
  }

  takeSyscalls(): Syscall[] {
    return this.log.take();
  }

  /** The highest free range of `length` bytes below MMAP_BASE and above the break area (top-down). */
  private findGap(length: number): number {
    let ceiling = MMAP_BASE;
    for (let i = this.mappings.length - 1; i >= 0; i--) {
      const m = this.mappings[i];
      if (ceiling - (m.start + m.length) >= length) break;
      ceiling = Math.min(ceiling, m.start);
    }
    const start = ceiling - length;
    return start >= this.brkEnd && start + length <= USER_SPACE_END ? start : -1;
  }

  /** Where a mapping starting at `start` goes in the sorted list (binary search). */
  private indexFor(start: number): number {
    let low = 0;
    let high = this.mappings.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.mappings[mid].start < start) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Whether [start, start + length) is inside the address space and touches no mapping. */
  private isFree(start: number, length: number): boolean {
    if (start % PAGE !== 0 || start < this.brkEnd || start + length > MMAP_BASE) return false;
    const index = this.indexFor(start);
    const before = this.mappings[index - 1];
    const after = this.mappings[index];
    return (!before || before.start + before.length <= start) && (!after || after.start >= start + length);
  }

  /** The index of the live mapping that holds all of [address, address + length), or -1. */
  private indexContaining(address: number, length: number): number {
    let index = this.indexFor(address);
    if (!this.mappings[index] || this.mappings[index].start !== address) index--;
    const mapping = this.mappings[index];
    return mapping && mapping.start <= address && address + length <= mapping.start + mapping.length ? index : -1;
  }

  /** The index of the live mapping [address, address + length); a coded error if there is none. */
  private indexOf(address: number, length: number, call: string): number {
    const index = this.indexFor(address);
    const mapping = this.mappings[index];
    if (!mapping || mapping.start !== address || mapping.length !== length) {
      throw new MallocscopeError('MODEL_INCONSISTENT', `simulated kernel: ${call} of 0x${address.toString(16)}+${length}, which was never mapped`);
    }
    return index;
  }
}
