// Footprint against live bytes, per policy or glibc setting: an observer that gathers one replay's figures
// (peaks of heap, mmapped and footprint, live bytes, fragmentation at the peaks, system calls, threshold
// moves; the peaks and counts by peaks.ts's PeakTracker), and compareTrace, which replays one trace through
// several allocators in a single pass.
import type { SizeT } from '../allocator/size-t.ts';
import type { Malloc } from '../allocator/malloc.ts';
import type { GlibcRules } from '../allocator/versions.ts';
import { libcMallopt } from '../allocator/libc.ts';
import { Replayer, type ReplayOutcome } from '../replay/replayer.ts';
import { UsageError } from '../errors.ts';
import { parseNumber, parseSafeNumber } from '../number.ts';
import { policyByName } from '../policy/index.ts';
import type { SimulatedSystemOptions } from '../system/simulated.ts';
import type { ResidentPages } from '../system/resident.ts';
import type { MalloptParam, TraceEvent } from '../trace/api.ts';
import { readTrace } from '../trace/reader.ts';
import { columnTable } from './column-table.ts';
import { PeakTracker, fragmentationMetrics, type FragmentationMetrics, type SyscallCounts } from './peaks.ts';
import { freeBytes } from '../allocator/anatomy.ts';
import { MALLOPT_PARAMS } from '../trace/vocabulary.ts';

/** One mallopt applied before the first event. */
export interface Setting {
  param: MalloptParam;
  value: number;
}

/** One column: a policy, and mallopt settings applied to it before the first event. */
export interface ColumnSpec {
  label: string;
  policy: string;
  settings: Setting[];
  /** The glibc version of the column's model; default as for any model. */
  glibc?: string | GlibcRules;
  /** GLIBC_TUNABLES for the column's model, applied at ptmalloc_init (before the settings). */
  tunables?: string;
}

/** The figures of one replay. Bytes throughout; fragmentation is footprint ÷ live − 1 (null when live is 0). */
export interface CompareFigures {
  label: string;
  policy: string;
  settings: Setting[];
  /** The glibc version the column's model followed. */
  glibc: string;
  /** The column's GLIBC_TUNABLES, when it has one. */
  tunables?: string;
  events: number;
  /** Peak of the heap's extent: the arena's system_mem (brk growth, and glibc's mmap fallback heap). */
  peakHeap: number;
  /** Peak of bytes in mmapped chunks (mmapped_mem). */
  peakMmapped: number;
  /** Peak of heap + mmapped, the first event that reached it, and the live bytes then. */
  peakFootprint: number;
  peakFootprintSeq: number;
  liveAtPeakFootprint: number;
  fragmentationAtPeakFootprint: number | null;
  /** Peak of live bytes (requested sizes of live blocks), the first event that reached it, the footprint then. */
  peakLive: number;
  peakLiveSeq: number;
  footprintAtPeakLive: number;
  fragmentationAtPeakLive: number | null;
  /** The most arenas (main_arena included) and threads alive at once. */
  arenas: number;
  threads: number;
  /** After the last event. */
  endHeap: number;
  endMmapped: number;
  endFootprint: number;
  endLive: number;
  /** System calls made, by name (a failed call counts under its name and in `failed`, peaks.ts). */
  syscalls: SyscallCounts;
  /** Events that changed mmap_threshold or trim_threshold (free of an mmapped chunk, mallopt). */
  thresholdMoves: number;
  /**
   * Johnstone and Wilson's four fragmentation measures (ratios footprint ÷ live; peaks.ts, docs/anatomy.md),
   * and the share of the end footprint that is free (tcache, fastbins, bins, tops); null where a divisor is 0.
   */
  metrics: FragmentationMetrics & { freeShareAtEnd: number | null };
  finalMmapThreshold: SizeT;
  finalTrimThreshold: SizeT;
  slidingOff: boolean;
  /**
   * With the resident option (`compare --touch`, docs/resident.md): the resident estimate's peak (after an
   * event), the first event that reached it, and the estimate after the last event.
   */
  peakResident?: number;
  peakResidentSeq?: number;
  endResident?: number;
}

const fragmentation = (footprint: number, live: number): number | null => (live > 0 ? footprint / live - 1 : null);

/** Gathers CompareFigures from a replay's outcomes (with the PeakTracker replay and the report use): call observe after every event. */
export class FootprintObserver {
  readonly tracker = new PeakTracker();

  constructor(
    readonly label: string,
    readonly policy: string,
    readonly settings: Setting[] = [],
  ) {}

  /** After each event: its outcome, the arena, and the replayer's liveBytes. */
  observe(outcome: ReplayOutcome, model: Malloc, liveBytes: number): void {
    this.tracker.observe(outcome, model, liveBytes);
  }

  /** The figures so far; `model` gives the final thresholds, `resident` (when modelled) the resident estimate. */
  figures(model: Malloc, resident: ResidentPages | null = null): CompareFigures {
    const t = this.tracker;
    const figures: CompareFigures = {
      label: this.label,
      policy: this.policy,
      settings: this.settings,
      glibc: model.glibc.version,
      events: t.events,
      peakHeap: t.peakHeap,
      peakMmapped: t.peakMmapped,
      peakFootprint: t.peakFootprint,
      peakFootprintSeq: t.peakFootprintSeq,
      liveAtPeakFootprint: t.liveAtPeakFootprint,
      fragmentationAtPeakFootprint: fragmentation(t.peakFootprint, t.liveAtPeakFootprint),
      peakLive: t.peakLive,
      peakLiveSeq: t.peakLiveSeq,
      footprintAtPeakLive: t.footprintAtPeakLive,
      fragmentationAtPeakLive: fragmentation(t.footprintAtPeakLive, t.peakLive),
      arenas: t.arenas,
      threads: t.threads,
      endHeap: t.heap,
      endMmapped: t.mmapped,
      endFootprint: t.heap + t.mmapped,
      endLive: t.live,
      syscalls: { ...t.syscalls },
      thresholdMoves: t.thresholdMoves,
      metrics: { ...fragmentationMetrics(t), freeShareAtEnd: t.heap + t.mmapped > 0 ? freeBytes(model) / (t.heap + t.mmapped) : null },
      finalMmapThreshold: model.mp.mmapThreshold,
      finalTrimThreshold: model.mp.trimThreshold,
      slidingOff: model.mp.noDynThreshold,
    };
    if (resident) {
      figures.peakResident = resident.peak;
      figures.peakResidentSeq = resident.peakSeq;
      figures.endResident = resident.total;
    }
    return figures;
  }
}

// ---- columns -----------------------------------------------------------------------------------------

/** `PARAM=VALUE`: one of mallopt's five parameters and a C int (decimal or 0x-hexadecimal, may be negative). */
export function parseSetting(text: string): Setting {
  const match = /^([A-Z_]+)=(-?)(.+)$/.exec(text);
  const magnitude = match ? parseSafeNumber(match[3]) : undefined;
  if (!match || (magnitude === undefined && parseNumber(match[3]) === undefined)) {
    throw new UsageError(`a setting is PARAM=VALUE (e.g. M_TRIM_THRESHOLD=262144), not '${text}'`);
  }
  const param = match[1] as MalloptParam;
  if (!MALLOPT_PARAMS.includes(param)) throw new UsageError(`unknown mallopt parameter '${match[1]}' (expected ${MALLOPT_PARAMS.join(', ')})`);
  const value = magnitude === undefined ? Number.NaN : match[2] ? -magnitude : magnitude;
  if (!Number.isSafeInteger(value) || value < -(2 ** 31) || value > 2 ** 31 - 1) {
    throw new UsageError(`${param}=${match[2]}${match[3]}: mallopt takes a C int (-2147483648 to 2147483647)`);
  }
  return { param, value };
}

/**
 * A `--policy` value: a policy name (glibc, fixed:BYTES, heap, mmap), optionally followed by settings
 * after commas (`heap,M_TOP_PAD=0`).
 */
export function parsePolicyColumn(text: string): ColumnSpec {
  const [policy, ...rest] = text.split(',');
  policyByName(policy); // a UsageError for an unknown name
  return { label: text, policy, settings: rest.map(parseSetting) };
}

/** A `--set` value: settings separated by commas, applied to the glibc policy (`M_TOP_PAD=0,M_TRIM_THRESHOLD=0`). */
export function parseSetColumn(text: string): ColumnSpec {
  return { label: text, policy: 'glibc', settings: text.split(',').map(parseSetting) };
}

/** A `--tunables` value: the glibc policy under that GLIBC_TUNABLES string. */
export function parseTunablesColumn(text: string): ColumnSpec {
  return { label: text === '' ? 'GLIBC_TUNABLES=' : text, policy: 'glibc', settings: [], tunables: text };
}

/** The columns compare uses when none is named. */
export const DEFAULT_COLUMNS: readonly string[] = ['glibc', 'fixed:131072', 'heap'];

export interface CompareOptions {
  /** Options of the simulated kernel (brkLimit). */
  system?: SimulatedSystemOptions;
  /** The CPU count glibc sees (the arena limit); this machine's by default. */
  cores?: number;
  /** Called with each event before it is replayed (a progress bar). */
  onEvent?: (event: TraceEvent) => void;
  /** Model resident memory in every column (docs/resident.md): the figures gain peakResident and endResident. */
  resident?: boolean;
}

/**
 * A column's replayer: its policy and glibc version, and its settings applied with mallopt before the first
 * event, as a program's first lines would (their system calls, none today, are not the trace's). diff uses it too.
 */
export function columnReplayer(
  column: ColumnSpec,
  options: { system?: SimulatedSystemOptions; decisions?: boolean; cores?: number; resident?: boolean } = {},
): Replayer {
  const replayer = new Replayer({
    policy: column.policy,
    glibc: column.glibc,
    system: { ...options.system },
    decisions: options.decisions,
    cores: options.cores,
    resident: options.resident,
    tunables: column.tunables,
  });
  for (const setting of column.settings) libcMallopt(replayer.model, setting.param, setting.value);
  replayer.model.system.takeSyscalls();
  return replayer;
}

/** Replays a trace (a path, `-`, or events) once through one allocator per column; figures per column. */
export function compareTrace(source: string | Iterable<TraceEvent>, columns: readonly ColumnSpec[], options: CompareOptions = {}): CompareFigures[] {
  const runs = columns.map((column) => ({
    replayer: columnReplayer(column, { system: options.system, cores: options.cores, resident: options.resident }),
    observer: new FootprintObserver(column.label, column.policy, column.settings),
  }));
  const events = typeof source === 'string' ? readTrace(source) : source;
  for (const event of events) {
    options.onEvent?.(event);
    for (const run of runs) {
      const outcome = run.replayer.apply(event);
      run.observer.observe(outcome, run.replayer.model, run.replayer.liveBytes);
    }
  }
  return runs.map((run, i) => {
    const figures = run.observer.figures(run.replayer.model, run.replayer.resident);
    const tunables = columns[i].tunables;
    return tunables === undefined ? figures : { ...figures, tunables };
  });
}

// ---- the table -------------------------------------------------------------------------------------

const percent = (ratio: number | null) => (ratio === null ? '—' : `${(ratio * 100).toFixed(1)}%`);
const ratio = (value: number | null) => (value === null ? '—' : value.toFixed(3));

/** A plain text table: one row per figure, one column per policy or setting. */
export function formatCompareTable(figures: readonly CompareFigures[]): string {
  const rows: [string, (f: CompareFigures) => string][] = [
    ['peak heap', (f) => `${f.peakHeap}`],
    ['peak mmapped', (f) => `${f.peakMmapped}`],
    ['peak footprint', (f) => `${f.peakFootprint}`],
    ['  live then', (f) => `${f.liveAtPeakFootprint}`],
    ['  fragmentation', (f) => percent(f.fragmentationAtPeakFootprint)],
    ['peak live', (f) => `${f.peakLive}`],
    ['  footprint then', (f) => `${f.footprintAtPeakLive}`],
    ['  fragmentation', (f) => percent(f.fragmentationAtPeakLive)],
    ['end footprint', (f) => `${f.endFootprint}`],
    ['  live at end', (f) => `${f.endLive}`],
    ['  free at end', (f) => percent(f.metrics.freeShareAtEnd)],
    ['J&W #1 avg F / avg L', (f) => ratio(f.metrics.averageFootprintOverAverageLive)],
    ['J&W #2 F / L at peak L', (f) => ratio(f.metrics.footprintOverLiveAtPeakLive)],
    ['J&W #3 peak F / L then', (f) => ratio(f.metrics.peakFootprintOverLiveAtPeakFootprint)],
    ['J&W #4 peak F / peak L', (f) => ratio(f.metrics.peakFootprintOverPeakLive)],
    ...(figures.some((f) => f.peakResident !== undefined)
      ? ([
          ['peak RSS (est.)', (f) => `${f.peakResident ?? '—'}`],
          ['end RSS (est.)', (f) => `${f.endResident ?? '—'}`],
        ] as [string, (f: CompareFigures) => string][])
      : []),
    ['brk calls', (f) => `${f.syscalls.brk}`],
    ['mmap calls', (f) => `${f.syscalls.mmap}`],
    ['munmap calls', (f) => `${f.syscalls.munmap}`],
  ];
  if (figures.some((f) => f.syscalls.mremap)) rows.push(['mremap calls', (f) => `${f.syscalls.mremap}`]);
  if (figures.some((f) => f.syscalls.madvise)) rows.push(['madvise calls', (f) => `${f.syscalls.madvise}`]);
  if (figures.some((f) => f.syscalls.failed)) rows.push(['failed calls', (f) => `${f.syscalls.failed}`]);
  if (figures.some((f) => f.threads > 1 || f.arenas > 1)) {
    rows.push(['arenas at most', (f) => `${f.arenas}`]);
    rows.push(['mprotect calls', (f) => `${f.syscalls.mprotect}`]);
  }
  rows.push(['threshold moves', (f) => `${f.thresholdMoves}`]);
  rows.push(['final threshold', (f) => `${f.finalMmapThreshold}${f.slidingOff ? ' (fixed)' : ''}`]);
  return columnTable([['', ...figures.map((f) => f.label)], ...rows.map(([name, get]) => [name, ...figures.map(get)])]).join('\n');
}
