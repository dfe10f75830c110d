// The summary `mallocscope replay TRACE` prints: events, peaks of heap, mmapped and live bytes, the final
// thresholds and the system calls, gathered as an observer of the outcomes.
import type { SizeT } from '../allocator/size-t.ts';
import type { ReplayOutcome } from '../replay/replayer.ts';
import type { Malloc } from '../allocator/malloc.ts';

/** What `replay --json` prints: the summary's figures, bytes as plain numbers. */
export interface SummaryFigures {
  events: number;
  /** Peak of system_mem (brk growth and fallback mappings). */
  peakHeap: number;
  peakMmapped: number;
  /** Peak of the bytes the program asked for and still held. */
  peakLive: number;
  /** The mmap threshold at the end, how often it moved, and whether it still slides. */
  mmapThreshold: SizeT;
  thresholdMoves: number;
  sliding: boolean;
  trimThreshold: SizeT;
  /** System calls made, by name, and how many of them failed. */
  syscalls: Record<string, number>;
  consolidations: number;
  trims: number;
}

export class SummaryObserver {
  events = 0;
  /** Peak of the heap's extent (system_mem: brk growth and fallback mappings). */
  peakHeap = 0;
  /** Peak of bytes in mmapped chunks. */
  peakMmapped = 0;
  /** Peak of bytes the program held (the sizes it asked for, of its live blocks). */
  peakLive = 0;
  /** Bytes in live blocks now. */
  live = 0;
  thresholdMoves = 0;
  consolidations = 0;
  trims = 0;
  readonly syscalls: Record<string, number> = { brk: 0, mmap: 0, munmap: 0, mremap: 0, madvise: 0 };
  failedSyscalls = 0;

  observe(outcome: ReplayOutcome, model: Malloc): void {
    this.events++;
    const syscalls = outcome.syscalls;
    for (let i = 0; i < syscalls.length; i++) {
      this.syscalls[syscalls[i].call]++;
      if (syscalls[i].failed) this.failedSyscalls++;
    }
    if (outcome.notes.thresholdMove) this.thresholdMoves++;
    this.consolidations += outcome.notes.consolidations;
    this.trims += outcome.notes.trims;
    if (model.main.systemMem > this.peakHeap) this.peakHeap = model.main.systemMem;
    if (model.mp.mmappedMem > this.peakMmapped) this.peakMmapped = model.mp.mmappedMem;
  }

  /** The program's live bytes after an event. */
  noteLive(liveBytes: number): void {
    this.live = liveBytes;
    if (liveBytes > this.peakLive) this.peakLive = liveBytes;
  }

  /** The figures as plain data (`replay --json`), under the names the summary's lines use. */
  figures(model: Malloc): SummaryFigures {
    return {
      events: this.events,
      peakHeap: this.peakHeap,
      peakMmapped: this.peakMmapped,
      peakLive: this.peakLive,
      mmapThreshold: model.mp.mmapThreshold,
      thresholdMoves: this.thresholdMoves,
      sliding: !model.mp.noDynThreshold,
      trimThreshold: model.mp.trimThreshold,
      syscalls: { ...this.syscalls, failed: this.failedSyscalls },
      consolidations: this.consolidations,
      trims: this.trims,
    };
  }

  format(model: Malloc): string {
    const kib = (n: number) => `${n} (${(n / 1024).toFixed(1)} KiB)`;
    const s = this.syscalls;
    return [
      `events            ${this.events}`,
      `peak heap         ${kib(this.peakHeap)}`,
      `peak mmapped      ${kib(this.peakMmapped)}`,
      `peak live         ${kib(this.peakLive)}`,
      `mmap threshold    ${model.mp.mmapThreshold} (moved ${this.thresholdMoves} time${this.thresholdMoves === 1 ? "" : "s"}${model.mp.noDynThreshold ? ', sliding off' : ''})`,
      `trim threshold    ${model.mp.trimThreshold}`,
      `syscalls          brk ${s.brk}, mmap ${s.mmap}, munmap ${s.munmap}, mremap ${s.mremap}, madvise ${s.madvise}${this.failedSyscalls ? ` (${this.failedSyscalls} failed)` : ''}`,
      `consolidations    ${this.consolidations}`,
      `trims             ${this.trims}`,
    ].join('\n');
  }
}
