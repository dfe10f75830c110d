// The kernel's side of RSS: which pages of the allocator's memory are in RAM, as a decorator over any kernel
// (SystemMemory). It sees every system call with its addresses, glibc's own data writes (calloc's memset,
// realloc's memcpy) and the program's writes (touch), and keeps one bit per page that has been touched.
//
// The assumption (docs/resident.md): the program writes every byte it asks for when it gets the block
// (malloc, calloc, memalign: the requested bytes; realloc: the whole new size); glibc's metadata writes
// (chunk headers, free-list links, the tcache) are not counted; new memory is not resident until written;
// madvise(MADV_DONTNEED), munmap and a shrinking break drop pages; mremap moves them.
import { MallocscopeError } from '../errors.ts';
import type { Protection, RealMemory, Syscall, SystemMemory } from './api.ts';

/** Resident bytes now, by where the pages are: the three parts add up to `total`. */
export interface ResidentEstimate {
  /** Pages of main_arena's brk heap, [heapStart, break). */
  heap: number;
  /** Pages of anonymous mappings: mmapped chunks, and glibc's mmap fallback heap when the break is stuck. */
  mmapped: number;
  /** Pages of the thread arenas' heaps (reserve()'s mappings). */
  threadHeaps: number;
  total: number;
}

/** Pages per block of the sparse bitmap: 4096 bits, 512 bytes, 16 MiB of 4 KiB pages. */
const BLOCK_SHIFT = 12;
const BLOCK_PAGES = 1 << BLOCK_SHIFT;
const BLOCK_WORDS = BLOCK_PAGES >>> 5;

/** One block of the bitmap: its words, and how many of its bits are set (it is dropped at 0). */
interface Block {
  words: Uint32Array;
  count: number;
}

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** The bits [from, to) of one 32-bit word (0 <= from < to <= 32). */
function wordMask(from: number, to: number): number {
  return (to === 32 ? 0xffffffff : ((1 << to) >>> 0) - 1) & ~(((1 << from) >>> 0) - 1);
}

/**
 * A set of page numbers: a sparse bitmap in blocks of BLOCK_PAGES, allocated on first touch and dropped when
 * emptied, so that its memory follows the touched pages (about 1/32768 of the resident bytes, plus 512 bytes
 * per 16 MiB area touched at all), not the address space.
 */
class PageSet {
  private readonly blocks = new Map<number, Block>();
  /** Pages in the set. */
  count = 0;
  /** The block used last (touches cluster: most hit the block of the one before). */
  private lastKey = -1;
  private lastBlock: Block | undefined;

  private block(key: number, create: boolean): Block | undefined {
    if (key === this.lastKey) return this.lastBlock;
    let block = this.blocks.get(key);
    if (block === undefined) {
      if (!create) return undefined;
      block = { words: new Uint32Array(BLOCK_WORDS), count: 0 };
      this.blocks.set(key, block);
    }
    this.lastKey = key;
    this.lastBlock = block;
    return block;
  }

  /** Becomes a copy of `other` (its own blocks: changing one leaves the other as it was). */
  copyFrom(other: PageSet): void {
    this.blocks.clear();
    for (const [key, block] of other.blocks) this.blocks.set(key, { words: block.words.slice(), count: block.count });
    this.count = other.count;
    this.lastKey = -1;
    this.lastBlock = undefined;
  }

  /** Adds pages [first, end). */
  add(first: number, end: number): void {
    // The common case, a block within one page.
    if (end === first + 1) {
      const block = this.block(Math.floor(first / BLOCK_PAGES), true) as Block;
      const bit = first % BLOCK_PAGES;
      const mask = 1 << (bit & 31);
      const word = block.words[bit >>> 5];
      if ((word & mask) === 0) {
        block.words[bit >>> 5] = word | mask;
        block.count++;
        this.count++;
      }
      return;
    }
    this.walk(first, end, true, (block, index, mask) => {
      const word = block.words[index];
      const added = popcount(mask & ~word);
      if (added === 0) return;
      block.words[index] = word | mask;
      block.count += added;
      this.count += added;
    });
  }

  /** Removes pages [first, end). */
  remove(first: number, end: number): void {
    this.walk(first, end, false, (block, index, mask, key) => {
      const word = block.words[index];
      const removed = popcount(mask & word);
      if (removed === 0) return;
      block.words[index] = word & ~mask;
      block.count -= removed;
      this.count -= removed;
      if (block.count === 0) this.drop(key);
    });
  }

  /** How many of pages [first, end) are in the set. */
  countIn(first: number, end: number): number {
    let n = 0;
    this.walk(first, end, false, (block, index, mask) => {
      n += popcount(block.words[index] & mask);
    });
    return n;
  }

  /** The pages of [first, end) in the set, in order. */
  listIn(first: number, end: number): number[] {
    const pages: number[] = [];
    this.walk(first, end, false, (block, index, mask, key) => {
      let bits = block.words[index] & mask;
      while (bits !== 0) {
        const low = bits & -bits;
        pages.push(key * BLOCK_PAGES + index * 32 + (31 - Math.clz32(low)));
        bits ^= low;
      }
    });
    return pages;
  }

  private drop(key: number): void {
    this.blocks.delete(key);
    if (key === this.lastKey) {
      this.lastKey = -1;
      this.lastBlock = undefined;
    }
  }

  /**
   * Calls `visit` for every word of pages [first, end) with the mask of the pages in range; blocks that do
   * not exist are skipped unless `create`. Whole empty blocks are stepped over at once.
   */
  private walk(first: number, end: number, create: boolean, visit: (block: Block, index: number, mask: number, key: number) => void): void {
    let page = first;
    while (page < end) {
      const key = Math.floor(page / BLOCK_PAGES);
      const blockEnd = (key + 1) * BLOCK_PAGES;
      const stop = Math.min(end, blockEnd);
      const block = this.block(key, create);
      if (block !== undefined) {
        let bit = page - key * BLOCK_PAGES;
        const last = stop - key * BLOCK_PAGES;
        while (bit < last) {
          const index = bit >>> 5;
          const to = Math.min(last, (index + 1) * 32);
          visit(block, index, wordMask(bit & 31, to - index * 32), key);
          bit = to;
          // `visit` may have dropped the block (its last page removed): nothing is left in it to visit.
          if (block.count === 0 && !create) break;
        }
      }
      page = stop;
    }
  }
}

/**
 * A kernel that also knows which pages are resident: every call is passed on to `inner` (the simulated
 * kernel or the native one), and its effect on resident pages recorded. Calls touch(address, length) for
 * each byte range the program writes; on a kernel with real bytes, touch writes them, so that the pages
 * become resident for real (and mincore can be compared with this estimate).
 */
export class ResidentPages implements SystemMemory {
  readonly pageSize: number;
  readonly heapStart: number;
  /** Where glibc's data writes (calloc's memset, realloc's memcpy) are seen; passed on to inner's bytes. */
  readonly memory: RealMemory;
  /** The highest total after any event (endEvent), and that event's seq (-1 before any). */
  peak = 0;
  peakSeq = -1;
  private readonly pages = new PageSet();
  private brk: number;
  /** The thread arenas' heaps still mapped: [start, end) pairs, as reserve() made them and munmap cut them. */
  private reservations: [number, number][] = [];

  constructor(readonly inner: SystemMemory) {
    this.pageSize = inner.pageSize;
    this.heapStart = inner.heapStart;
    this.brk = inner.sbrk(0);
    this.memory = new WriteRecorder(this, inner.memory);
  }

  /**
   * Takes the resident pages of `other`, a model of the same address space (a checkpointed copy of a replay
   * starts with the pages of the replay it copies, so that what a call would drop there can be measured).
   */
  adopt(other: ResidentPages): void {
    this.pages.copyFrom(other.pages);
    this.brk = other.brk;
    this.reservations = other.reservations.map(([start, end]) => [start, end]);
    this.peak = other.peak;
    this.peakSeq = other.peakSeq;
  }

  /** Resident bytes now, all of them (cheap: kept as pages change). */
  get total(): number {
    return this.pages.count * this.pageSize;
  }

  /** Resident bytes now, by part (heap, mmapped, thread heaps): counted over the heap and the thread heaps. */
  now(): ResidentEstimate {
    const heap = this.bytesIn(this.heapStart, this.brk - this.heapStart);
    let threadHeaps = 0;
    for (const [start, end] of this.reservations) threadHeaps += this.bytesIn(start, end - start);
    const total = this.total;
    return { heap, mmapped: total - heap - threadHeaps, threadHeaps, total };
  }

  /** now() with the peak and the event that first reached it (null before any event): what reports print. */
  summary(): ResidentEstimate & { peak: number; peakEvent: number | null } {
    return { ...this.now(), peak: this.peak, peakEvent: this.peakSeq < 0 ? null : this.peakSeq };
  }

  /** Resident bytes in [address, address + length) (whole pages that overlap it), e.g. one thread arena's heap. */
  bytesIn(address: number, length: number): number {
    if (!(length > 0)) return 0;
    return this.pages.countIn(this.firstPage(address), this.endPage(address + length)) * this.pageSize;
  }

  /**
   * The program wrote [address, address + length): its pages are resident. On a kernel with real bytes the
   * bytes are written (zeros, as calloc's memset writes them), so that the kernel makes the pages resident too.
   */
  touch(address: number, length: number): void {
    if (!(length > 0)) return;
    this.inner.memory?.zero(address, length);
    this.mark(address, length);
  }

  /** After each event: the peak follows the total as it stands between events, as a sampled RSS would. */
  endEvent(seq: number): void {
    const total = this.total;
    if (total > this.peak) {
      this.peak = total;
      this.peakSeq = seq;
    }
  }

  /** Pages [address, address + length) were written or read (any access faults a page in). */
  mark(address: number, length: number): void {
    if (length > 0) this.pages.add(this.firstPage(address), this.endPage(address + length));
  }

  private firstPage(address: number): number {
    return Math.floor(address / this.pageSize);
  }

  private endPage(end: number): number {
    return Math.ceil(end / this.pageSize);
  }

  /** Pages wholly or partly in [address, address + length) leave RAM. */
  private drop(address: number, length: number): void {
    if (length > 0) this.pages.remove(this.firstPage(address), this.endPage(address + length));
  }

  // ---- the kernel's calls, passed on ----------------------------------------------------------------

  sbrk(increment: number | bigint): number {
    const old = this.inner.sbrk(increment);
    if (old === -1 || increment === 0 || typeof increment === 'bigint') return old;
    const next = old + increment;
    // A shrinking break gives back the pages wholly above it; the page it ends in stays.
    if (next < old) this.pages.remove(this.endPage(next), this.endPage(old));
    this.brk = next;
    return old;
  }

  mmap(length: number | bigint): number {
    return this.inner.mmap(length);
  }

  munmap(address: number, length: number): void {
    this.inner.munmap(address, length);
    this.drop(address, length);
    this.cutReservations(address, address + length);
  }

  reserve(length: number, hint?: number): number {
    const address = this.inner.reserve(length, hint);
    if (address !== -1) this.reservations.push([address, address + length]);
    return address;
  }

  mprotect(address: number, length: number): boolean {
    // Writable is not resident: grow_heap's pages come in as they are written.
    return this.inner.mprotect(address, length);
  }

  mremap(address: number, oldLength: number, newLength: number | bigint): number {
    const moved = this.inner.mremap(address, oldLength, newLength);
    if (moved === -1 || typeof newLength === 'bigint') return moved;
    const kept = Math.min(oldLength, newLength);
    if (moved !== address) {
      // The kernel moves the page tables: what was resident is resident at the new place.
      const shift = (moved - address) / this.pageSize;
      const pages = this.pages.listIn(this.firstPage(address), this.endPage(address + kept));
      this.drop(address, oldLength);
      for (const page of pages) this.pages.add(page + shift, page + shift + 1);
    } else if (newLength < oldLength) {
      this.drop(address + newLength, oldLength - newLength);
    }
    return moved;
  }

  madvise(address: number, length: number): void {
    this.inner.madvise(address, length);
    this.drop(address, length);
  }

  get released(): boolean {
    return this.inner.released;
  }

  get failure(): MallocscopeError | null {
    return this.inner.failure ?? null;
  }

  get syscallCount(): number {
    return this.inner.syscallCount;
  }

  takeSyscalls(): Syscall[] {
    return this.inner.takeSyscalls();
  }

  /** Forgets the parts of reservations that [start, end) unmapped. */
  private cutReservations(start: number, end: number): void {
    if (this.reservations.length === 0) return;
    const left: [number, number][] = [];
    for (const [from, to] of this.reservations) {
      if (to <= start || from >= end) left.push([from, to]);
      else {
        if (from < start) left.push([from, start]);
        if (end < to) left.push([end, to]);
      }
    }
    this.reservations = left;
  }
}

/**
 * glibc's data writes as ResidentPages sees them: calloc's memset and realloc's memcpy mark their pages (the
 * memcpy's source too: a read faults a page in as a write does, and mincore counts it), then reach the real
 * bytes when there are any. Over a kernel without bytes (the simulated one) the writes are only counted, and
 * what needs bytes (a view, mprotect, mlock) is refused, as the Allocator refuses it there.
 */
class WriteRecorder implements RealMemory {
  constructor(
    private readonly pages: ResidentPages,
    private readonly real: RealMemory | null,
  ) {}

  copy(to: number, from: number, length: number): void {
    this.real?.copy(to, from, length);
    this.pages.mark(from, length);
    this.pages.mark(to, length);
  }

  zero(address: number, length: number): void {
    this.real?.zero(address, length);
    this.pages.mark(address, length);
  }

  private need(what: string): RealMemory {
    if (this.real === null)
      throw new MallocscopeError('NO_BYTES', `${what} needs real memory: this kernel is simulated and holds no bytes (use the native backend)`);
    return this.real;
  }

  bytes(address: number, length: number): Uint8Array {
    return this.need('bytes').bytes(address, length);
  }

  detach(view: Uint8Array): void {
    this.need('detach').detach(view);
  }

  protect(address: number, length: number, mode: Protection): void {
    this.need('protect').protect(address, length, mode);
  }

  lock(address: number, length: number): void {
    this.need('lock').lock(address, length);
  }

  unlock(address: number, length: number): void {
    this.need('unlock').unlock(address, length);
  }
}
