// The summary `mallocscope replay TRACE` prints: events, peaks of heap, mmapped and live bytes, the final
// thresholds and the system calls, gathered by the PeakTracker (peaks.ts) that compare and the report use.
import type { SizeT } from '../allocator/size-t.ts';
import type { ReplayOutcome } from '../replay/replayer.ts';
import type { Malloc } from '../allocator/malloc.ts';
import { PeakTracker } from './peaks.ts';

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
  /** The most arenas (main_arena included) and threads (the main one included) at once. */
  arenas: number;
  threads: number;
}

export class SummaryObserver {
  /** The peaks and counts, gathered as compare and the report gather them. */
  readonly tracker = new PeakTracker();

  /** After each event: its outcome, the arena, and the replayer's liveBytes. */
  observe(outcome: ReplayOutcome, model: Malloc, liveBytes: number): void {
    this.tracker.observe(outcome, model, liveBytes);
  }

  /** The figures as plain data (`replay --json`), under the names the summary's lines use. */
  figures(model: Malloc): SummaryFigures {
    const t = this.tracker;
    return {
      events: t.events,
      peakHeap: t.peakHeap,
      peakMmapped: t.peakMmapped,
      peakLive: t.peakLive,
      mmapThreshold: model.mp.mmapThreshold,
      thresholdMoves: t.thresholdMoves,
      sliding: !model.mp.noDynThreshold,
      trimThreshold: model.mp.trimThreshold,
      syscalls: { ...t.syscalls },
      consolidations: t.consolidations,
      trims: t.trims,
      arenas: t.arenas,
      threads: t.threads,
    };
  }

  format(model: Malloc): string {
    const kib = (n: number) => `${n} (${(n / 1024).toFixed(1)} KiB)`;
    const t = this.tracker;
    const s = t.syscalls;
    return [
      `events            ${t.events}`,
      `peak heap         ${kib(t.peakHeap)}`,
      `peak mmapped      ${kib(t.peakMmapped)}`,
      `peak live         ${kib(t.peakLive)}`,
      `mmap threshold    ${model.mp.mmapThreshold} (moved ${t.thresholdMoves} time${t.thresholdMoves === 1 ? '' : 's'}${model.mp.noDynThreshold ? ', sliding off' : ''})`,
      `trim threshold    ${model.mp.trimThreshold}`,
      `syscalls          brk ${s.brk}, mmap ${s.mmap}, munmap ${s.munmap}, mremap ${s.mremap}, madvise ${s.madvise}${s.mprotect ? `, mprotect ${s.mprotect}` : ''}${s.failed ? ` (${s.failed} failed)` : ''}`,
      `consolidations    ${t.consolidations}`,
      `trims             ${t.trims}`,
      // Threads only: a one-thread trace's summary stays as it was.
      ...(t.threads > 1 || t.arenas > 1 ? [`arenas            ${t.arenas} at most (threads ${t.threads} at most at once)`] : []),
    ].join('\n');
  }
}
