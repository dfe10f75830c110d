// The figures a replay gathers as it goes, in one place for replay's summary, compare and the report: peaks
// of the heap (system_mem), the mmapped bytes, the footprint (their sum) and the live bytes, where each peak
// was first reached and what the other side was then, the values after the last event, and the counts of
// system calls, threshold moves, consolidations and trims.
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
    const arenas = model.arenas;
    let heap = arenas[0].systemMem;
    for (let i = 1; i < arenas.length; i++) heap += arenas[i].systemMem;
    if (arenas.length > this.arenas) this.arenas = arenas.length;
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
