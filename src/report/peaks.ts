// The figures a replay gathers as it goes, in one place for replay's summary, compare and the report: peaks
// of the heap (system_mem), the mmapped bytes, the footprint (their sum) and the live bytes, where each peak
// was first reached and what the other side was then, the values after the last event, and the counts of
// system calls, threshold moves, consolidations and trims; and the fragmentation measures of Johnstone and
// Wilson built on them.
import { heapBytes } from '../allocator/anatomy.ts';
import type { Malloc } from '../allocator/malloc.ts';
import type { ReplayOutcome } from '../replay/replayer.ts';

/** System calls made, by name (a failed call counts under its name and in `failed`). */
export interface SyscallCounts {
  brk: number;
  mmap: number;
  munmap: number;
  mremap: number;
  madvise: number;
  /** A thread arena's heap made writable (grow_heap). */
  mprotect: number;
  failed: number;
}

/** Observes every event of one replay: call observe() after each. */
export class PeakTracker {
  events = 0;
  /** Peak of the heap's extent (the arena's system_mem: brk growth, and glibc's mmap fallback heap). */
  peakHeap = 0;
  /** Peak of bytes in mmapped chunks (mmapped_mem). */
  peakMmapped = 0;
  /** Peak of heap + mmapped, the first event that reached it (−1: none yet), and the live bytes then. */
  peakFootprint = 0;
  peakFootprintSeq = -1;
  liveAtPeakFootprint = 0;
  /** Peak of the bytes the program asked for and still holds, the first event that reached it, the footprint then. */
  peakLive = 0;
  peakLiveSeq = -1;
  footprintAtPeakLive = 0;
  /**
   * Sums over the events so far of the footprint and of the live bytes after each event: the time averages of
   * Johnstone and Wilson's first fragmentation measure (fragmentationMetrics), time counted in events.
   */
  sumFootprint = 0;
  sumLive = 0;
  /** The most arenas (main_arena included) and the most threads alive (the main one included) at once. */
  arenas = 1;
  threads = 1;
  /** After the last event observed. */
  heap = 0;
  mmapped = 0;
  live = 0;
  readonly syscalls: SyscallCounts = { brk: 0, mmap: 0, munmap: 0, mremap: 0, madvise: 0, mprotect: 0, failed: 0 };
  /** Events that moved mmap_threshold or trim_threshold (the free of an mmapped chunk, mallopt). */
  thresholdMoves = 0;
  consolidations = 0;
  trims = 0;

  /**
   * After an event: its outcome, the model after it and the program's live bytes. The heap is the arenas'
   * system_mem (mallinfo2's arena: the brk heap and every thread arena's heaps) and the mmapped bytes
   * mp_.mmapped_mem, read here only, so every observer counts the same.
   */
  observe(outcome: ReplayOutcome, model: Malloc, live: number): void {
    const heap = heapBytes(model);
    if (model.arenas.length > this.arenas) this.arenas = model.arenas.length;
    if (model.threads.size > this.threads) this.threads = model.threads.size;
    const mmapped = model.mp.mmappedMem;
    this.events++;
    const syscalls = outcome.syscalls;
    for (let i = 0; i < syscalls.length; i++) {
      this.syscalls[syscalls[i].call]++;
      if (syscalls[i].failed) this.syscalls.failed++;
    }
    const notes = outcome.notes;
    if (notes.thresholdMove) this.thresholdMoves++;
    this.consolidations += notes.consolidations;
    this.trims += notes.trims;
    const footprint = heap + mmapped;
    this.heap = heap;
    this.mmapped = mmapped;
    this.live = live;
    this.sumFootprint += footprint;
    this.sumLive += live;
    if (heap > this.peakHeap) this.peakHeap = heap;
    if (mmapped > this.peakMmapped) this.peakMmapped = mmapped;
    if (footprint > this.peakFootprint) {
      this.peakFootprint = footprint;
      this.peakFootprintSeq = outcome.seq;
      this.liveAtPeakFootprint = live;
    }
    if (live > this.peakLive) {
      this.peakLive = live;
      this.peakLiveSeq = outcome.seq;
      this.footprintAtPeakLive = footprint;
    }
  }
}

/**
 * Johnstone and Wilson's four measures of fragmentation ("The memory fragmentation problem: solved?", 1998),
 * from the footprint F (every arena's system_mem + mmapped_mem) and the live bytes L (what the program asked
 * for and holds) after each event, as ratios F / L (1 is no waste); null where L is 0 (docs/anatomy.md).
 */
export interface FragmentationMetrics {
  /** #1: F averaged over the events divided by L averaged over the events. */
  averageFootprintOverAverageLive: number | null;
  /** #2: F at the first event of peak L, over that peak L. */
  footprintOverLiveAtPeakLive: number | null;
  /** #3: peak F over L at the first event of peak F. */
  peakFootprintOverLiveAtPeakFootprint: number | null;
  /** #4: peak F over peak L (the two peaks may be at different events). */
  peakFootprintOverPeakLive: number | null;
}

const ratio = (footprint: number, live: number): number | null => (live > 0 ? footprint / live : null);

/** The four measures over the events a tracker has observed. */
export function fragmentationMetrics(t: PeakTracker): FragmentationMetrics {
  return {
    averageFootprintOverAverageLive: ratio(t.sumFootprint, t.sumLive),
    footprintOverLiveAtPeakLive: ratio(t.footprintAtPeakLive, t.peakLive),
    peakFootprintOverLiveAtPeakFootprint: ratio(t.peakFootprint, t.liveAtPeakFootprint),
    peakFootprintOverPeakLive: ratio(t.peakFootprint, t.peakLive),
  };
}
