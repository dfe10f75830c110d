// Real allocators side by side (compare --allocator, docs/allocators.md): the figures of one column (an allocator's
// replay of the trace, and for glibc the model's footprint beside it) and the plain text table of them.

import type { AllocatorRun, AllocatorSyscalls } from '../oracle/allocators.ts';
import { columnTable } from './column-table.ts';

/** One column of `compare --allocator`: an allocator's run (bytes and nanoseconds), and for glibc the model beside it. */
export interface AllocatorColumn extends AllocatorRun {
  label: string;
  /**
   * glibc's column only: the model of the same glibc replaying the same trace, its footprint (heap + mmapped
   * bytes), its resident estimate (docs/resident.md: what the program's writes make resident, without what the
   * process holds before the first call) and its system calls.
   */
  model?: {
    glibc: string;
    peakFootprint: number;
    endFootprint: number;
    peakResident: number;
    endResident: number;
    syscalls: Record<string, number>;
  };
}

const milliseconds = (ns: number) => `${(ns / 1e6).toFixed(1)} ms`;

/** The plain text table: one row per figure, one column per allocator; then a line on what was not counted. */
export function formatAllocatorTable(columns: readonly AllocatorColumn[]): string {
  type Row = [string, (c: AllocatorColumn) => string];
  const calls = (get: (s: AllocatorSyscalls) => number) => (c: AllocatorColumn) => (c.syscalls === null ? 'not counted' : `${get(c.syscalls)}`);
  const counted = columns.map((c) => c.syscalls).filter((s) => s !== null);
  const rows: Row[] = [
    ['RSS at start', (c) => `${c.startRss}`],
    ['peak RSS', (c) => `${c.peakRss}`],
    ['  after event', (c) => (c.peakRssSeq === null ? '—' : `${c.peakRssSeq}`)],
    ['  growth (peak − start)', (c) => `${c.peakRss - c.startRss}`],
    ['end RSS', (c) => `${c.endRss}`],
    ['replay time', (c) => milliseconds(c.replayNs)],
  ];
  for (const call of ['brk', 'mmap', 'munmap', 'mremap', 'madvise', 'mprotect'] as const) {
    // The first three always (the ones the model counts too); the others where a column made one.
    if (call === 'brk' || call === 'mmap' || call === 'munmap' || counted.some((s) => s[call] > 0) || counted.length === 0) {
      rows.push([`${call} calls`, calls((s) => s[call])]);
    }
  }
  const others = [...new Set(counted.flatMap((s) => Object.keys(s.other)))].sort();
  for (const call of others) rows.push([`${call} calls`, calls((s) => s.other[call] ?? 0)]);
  if (counted.some((s) => s.failed > 0)) rows.push(['failed calls', calls((s) => s.failed)]);
  if (counted.some((s) => s.threadStacks > 0)) rows.push(["threads' stacks' calls", calls((s) => s.threadStacks)]);
  const model = columns.find((c) => c.model !== undefined)?.model;
  if (model !== undefined) {
    rows.push([`model (glibc ${model.glibc}):`, () => '']);
    rows.push(['  peak footprint', (c) => (c.model ? `${c.model.peakFootprint}` : '—')]);
    rows.push(['  end footprint', (c) => (c.model ? `${c.model.endFootprint}` : '—')]);
    rows.push(['  peak RSS (est.)', (c) => (c.model ? `${c.model.peakResident}` : '—')]);
  }
  const table = columnTable([['', ...columns.map((c) => c.label)], ...rows.map(([name, get]) => [name, ...columns.map(get)])]);
  const notes = [...new Set(columns.map((c) => c.syscallsNotCounted).filter((n) => n !== undefined))].map((n) => `system calls not counted: ${n}`);
  return [...table, ...notes].join('\n');
}
