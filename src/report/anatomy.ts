// The anatomy of a replay at one event: the footprint split into its parts (the core's footprintAnatomy), what
// malloc_trim(0) would give back then (the core's own trim, run on a copy), the live block that pins the heap,
// and the fragmentation measures of the whole replay. What `mallocscope anatomy` prints (docs/anatomy.md).
// No Node API: the trace comes from a reader the caller opens.
import {
  FREE_PARTS,
  GLIBC_PARTS,
  PART_NAMES,
  footprintAnatomy,
  footprintBytes,
  heapPin,
  sumParts,
  type ArenaAnatomy,
  type FootprintParts,
} from '../allocator/anatomy.ts';
import { libcTrim } from '../allocator/libc.ts';
import { MallocscopeError, UsageError } from '../errors.ts';
import { Replayer } from '../replay/replayer.ts';
import { ResidentPages } from '../system/resident.ts';
import { SimulatedSystem, type SimulatedSystemOptions } from '../system/simulated.ts';
import type { TraceReader } from '../trace/parser.ts';
import { restoreCheckpoint, takeCheckpoint } from './checkpoint.ts';
import { columnTable } from './column-table.ts';
import { PeakTracker, fragmentationMetrics, type FragmentationMetrics } from './peaks.ts';

/** Which event: the first of the peak footprint, the last, or a seq. */
export type AnatomyAt = 'peak' | 'end' | number;

/** What malloc_trim(0) would give back: the footprint's drop (the top given back) and the bytes advised away inside free chunks. */
export interface TrimEstimate {
  released: number;
  madvised: number;
  /** With the resident model (--touch): the resident bytes the trim would take out of RAM. */
  resident?: number;
  /**
   * What glibc's systrim decided on main_arena's top (the core's note): released, no-excess or under-page
   * (nothing above the pad to give), not-at-break (the top is not where the program break is, e.g. in a
   * region mapped when the break could not grow: malloc_trim can never give it back); null: no heap.
   */
  topVerdict: 'no-excess' | 'under-page' | 'not-at-break' | 'released' | 'wrapped' | 'unchecked' | 'below' | null;
}

/** The pin, as the anatomy reports it (the core's HeapPin). */
export interface PinReport {
  /** live (a block the program holds), tcache (a freed block a tcache keeps) or glibc (a chunk of glibc's own). */
  kind: 'live' | 'tcache' | 'glibc';
  /** A live block's trace ID; null for the other kinds, and for a block no ID names (Replayer.leaked). */
  id: string | null;
  /** As replay's JSON Lines give a heap block: the user pointer minus the heap start, and the chunk size. */
  offset: number;
  chunk: number;
  /** The event that made the block (chunk madeBy) and its line. */
  madeBy: { seq: number; line: number };
  /** Free bytes above it: the top and the free chunks malloc_trim would merge into it (docs/anatomy.md). */
  freeAbove: number;
}

export interface AnatomyReport {
  /** The event (seq), its line and verb; null for a trace without events. */
  event: number | null;
  line: number | null;
  op: string | null;
  /** Every arena's system_mem + mmapped_mem (mallinfo2's arena + hblkhd), and those two. */
  footprint: number;
  heap: number;
  mmapped: number;
  /** Sum to footprint, byte for byte. */
  parts: FootprintParts;
  /** released + madvised. */
  trimmable: number;
  trimmableParts: TrimEstimate;
  pinned: PinReport | null;
  /** Johnstone and Wilson's four over the whole replay, and the free share of the footprint at this event. */
  metrics: FragmentationMetrics & { freeShare: number | null };
  /**
   * With the resident model (--touch): the resident bytes now by part (an estimate: the program writes every
   * byte it asks for; docs/resident.md), and the highest total after any event so far with that event.
   */
  resident?: ReturnType<ResidentPages['summary']>;
  /** Once the trace has threads: each arena's system_mem and its parts, and the mappings of their own. */
  arenas?: ArenaAnatomy[];
  mappings?: { footprint: number; parts: FootprintParts };
}

/** How to build the model the anatomy replays through (as the replay command's options). */
export interface AnatomyOptions {
  policy?: string;
  glibc?: string;
  system?: SimulatedSystemOptions;
  cores?: number;
  /** Called after each event (a progress bar). */
  onEvent?: (event: { seq: number; line: number }) => void;
  /** Model resident memory (--touch, docs/resident.md): the report gains `resident` and the trim's resident bytes. */
  resident?: boolean;
}

/**
 * What malloc_trim(0) would give back now, found by running the core's own malloc_trim on a copy of the state
 * (it consolidates the fastbins first, so the original must not be touched): the footprint's drop, and the
 * bytes of its madvise calls.
 */
export function trimEstimate(replayer: Replayer, options: AnatomyOptions = {}): TrimEstimate {
  const m = replayer.model;
  const setup = { policy: replayer.policyName, glibc: m.glibc.version, system: { ...options.system }, cores: m.cores };
  const system = replayer.model.system;
  if (!((system instanceof ResidentPages ? system.inner : system) instanceof SimulatedSystem)) {
    throw new MallocscopeError('TRIM_ESTIMATE_NATIVE', 'trimEstimate copies the replay, which it can do for the simulated kernel only (not for real memory)');
  }
  const restored = restoreCheckpoint(takeCheckpoint(replayer), setup, true, replayer.resident !== null);
  if (replayer.resident !== null) restored.resident?.adopt(replayer.resident);
  const copy = restored.model;
  const before = footprintBytes(copy);
  const residentBefore = restored.resident?.total ?? 0;
  const hadHeap = copy.chunks.size[copy.main.top] > 0;
  libcTrim(copy, 0);
  let madvised = 0;
  for (const call of copy.system.takeSyscalls()) if (call.call === 'madvise' && !call.failed) madvised += Number(call.bytes);
  const estimate: TrimEstimate = { released: before - footprintBytes(copy), madvised, topVerdict: null };
  // No heap yet (a top of size 0): nothing for systrim to judge, whatever its size_t arithmetic says.
  if (hadHeap) estimate.topVerdict = copy.notes.mainTrim?.topVerdict ?? null;
  if (restored.resident !== null) estimate.resident = residentBefore - restored.resident.total;
  return estimate;
}

/** The anatomy of the replayer's state now (after the event `outcome`), without the measures of the whole replay. */
function anatomyNow(replayer: Replayer, reader: TraceReader, at: { seq: number; line: number; op: string } | null, options: AnatomyOptions): AnatomyReport {
  const m = replayer.model;
  const anatomy = footprintAnatomy(m, (visit) => replayer.forEachLive(visit));
  const trim = trimEstimate(replayer, options);
  const pin = heapPin(m);
  let pinned: PinReport | null = null;
  if (pin !== null) {
    let id: string | null = null;
    if (pin.kind === 'live') {
      let found = false;
      replayer.forEachLive((chunk, _requested, slot) => {
        if (chunk !== pin.chunk) return;
        found = true;
        id = slot >= 0 ? reader.idOfSlot(slot) : null;
      });
      if (!found) throw new MallocscopeError('MODEL_INCONSISTENT', `the block pinning the heap (chunk ${pin.chunk}) is no live block of the trace`);
    }
    // The line is found once the pass is over (lineOfSeq): the events before are gone by now.
    pinned = { kind: pin.kind, id, offset: pin.pointer - m.system.heapStart, chunk: pin.size, madeBy: { seq: pin.madeBy, line: 0 }, freeAbove: pin.freeAbove };
  }
  let free = 0;
  for (const name of FREE_PARTS) free += anatomy.parts[name];
  const report: AnatomyReport = {
    event: at?.seq ?? null,
    line: at?.line ?? null,
    op: at?.op ?? null,
    footprint: anatomy.footprint,
    heap: anatomy.heap,
    mmapped: anatomy.mmapped,
    parts: anatomy.parts,
    trimmable: trim.released + trim.madvised,
    trimmableParts: trim,
    pinned,
    metrics: {
      averageFootprintOverAverageLive: null,
      footprintOverLiveAtPeakLive: null,
      peakFootprintOverLiveAtPeakFootprint: null,
      peakFootprintOverPeakLive: null,
      freeShare: anatomy.footprint > 0 ? free / anatomy.footprint : null,
    },
  };
  if (replayer.resident !== null) report.resident = replayer.resident.summary();
  if (m.multiThreaded) {
    report.arenas = anatomy.arenas;
    report.mappings = { footprint: anatomy.mmapped, parts: anatomy.mappings };
  }
  return report;
}

/**
 * Replays the trace `open()` reads and returns its anatomy at `at`, with the measures of the whole trace.
 * `open` is called for each pass: one replay (two for `peak`: the first finds the peak, the second stops
 * there), and a plain read up to the event that made the pin, for its line; so memory stays bounded by the
 * live blocks. A seq past the end is a usage error.
 */
export function anatomyOfTrace(open: () => TraceReader, at: AnatomyAt, options: AnatomyOptions = {}): AnatomyReport {
  const tracker = new PeakTracker();
  let report: AnatomyReport | null = null;
  const target = typeof at === 'number' ? at : -1;
  const first = replayAll(open(), options, tracker, target, at === 'end', (r) => {
    report = r;
  });
  if (at === 'peak' && first.events > 0) {
    // The first event of the peak footprint (the first event when the footprint never left 0).
    const peak = Math.max(tracker.peakFootprintSeq, 0);
    replayAll(open(), { ...options, onEvent: undefined }, null, peak, false, (r) => {
      report = r;
    });
  } else if (at === 'end') {
    report = first.end;
  } else if (at === 'peak') {
    // No events: the state before any.
    report = replayAll(open(), options, null, -1, true, () => {}).end;
  }
  if (report === null) {
    const name = first.name;
    throw new UsageError(`--at ${at} is past the end: ${name} has ${first.events} events${first.events > 0 ? ` (0 to ${first.events - 1})` : ''}`);
  }
  const found = report as AnatomyReport;
  if (found.pinned !== null && found.pinned.madeBy.seq >= 0) found.pinned.madeBy.line = lineOfSeq(open(), found.pinned.madeBy.seq);
  found.metrics = { ...fragmentationMetrics(tracker), freeShare: found.metrics.freeShare };
  return found;
}

/**
 * One pass: replays every event (only up to `stop` when no tracker is given), calling `found` with the anatomy
 * after event `stop`; with `wantEnd`, the anatomy after the last event comes back as `end`.
 */
function replayAll(
  reader: TraceReader,
  options: AnatomyOptions,
  tracker: PeakTracker | null,
  stop: number,
  wantEnd: boolean,
  found: (report: AnatomyReport) => void,
): { events: number; name: string; end: AnatomyReport | null } {
  const replayer = new Replayer({
    policy: options.policy,
    glibc: options.glibc,
    system: { ...options.system },
    cores: options.cores,
    resident: options.resident,
  });
  let last: { seq: number; line: number; op: string } | null = null;
  let events = 0;
  try {
    for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
      events++;
      tracker?.observe(outcome, replayer.model, replayer.liveBytes);
      options.onEvent?.(outcome);
      last = { seq: outcome.seq, line: outcome.line, op: outcome.op };
      if (outcome.seq === stop) {
        found(anatomyNow(replayer, reader, last, options));
        if (tracker === null) return { events, name: reader.name, end: null };
      }
    }
  } finally {
    reader.close();
  }
  return { events, name: reader.name, end: wantEnd ? anatomyNow(replayer, reader, last, options) : null };
}

/** The parts' names as a table shows them, in PART_NAMES' order. */
export const PART_LABELS: Record<keyof FootprintParts, string> = {
  payload: 'live payload (what the program asked for)',
  overhead: 'chunk overhead (headers, rounding, alignment)',
  tcache: 'free: in the tcache',
  fastbins: 'free: in fastbins',
  unsorted: 'free: in the unsorted bin',
  smallBins: 'free: in small bins',
  largeBins: 'free: in large bins',
  top: 'free: the top chunk',
  mmapSlack: "mmapped slack (page rounding, memalign's tail)",
  tcacheStructs: "glibc's: tcache structs",
  dtvs: "glibc's: thread DTVs",
  heapHeaders: "glibc's: heap headers",
  fenceposts: "glibc's: fenceposts",
  brkGap: "glibc's: brk alignment gap",
};

/** A part's share of a whole, as the anatomy prints it (one decimal; — for a whole of 0). */
export const share = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '—');
const ratioText = (r: number | null) => (r === null ? '— (nothing live)' : r.toFixed(3));

/** Why nothing pins the heap: glibc's chunk is all that is left below the top, or the top cannot go back at all. */
function unpinnedText(verdict: TrimEstimate['topVerdict'], mainHeap: number): string {
  if (verdict === null || mainHeap === 0) return 'pinned: nothing (main_arena has no heap)';
  if (verdict === 'not-at-break') {
    return "pinned: nothing, but main_arena's top does not end at the program break (it lies in a region glibc mapped when the break could not grow), and malloc_trim gives back only a top that does";
  }
  return "pinned: nothing (the heap that holds the top has no chunk in use above glibc's first)";
}

/** The anatomy as a person reads it: the parts (those not 0) with their shares, then trim, pin and measures. */
export function formatAnatomy(report: AnatomyReport, trace: string): string {
  const lines: string[] = [];
  const where = report.event === null ? 'before any event' : `after event ${report.event} (line ${report.line}, ${report.op})`;
  lines.push(`${trace} ${where}`);
  lines.push(
    `footprint ${report.footprint} bytes (heap ${report.heap}, mmapped ${report.mmapped}); the program holds ${report.parts.payload} of it (${share(report.parts.payload, report.footprint)})`,
  );
  const sumOf = (names: readonly (keyof FootprintParts)[]) => names.reduce((sum, name) => sum + report.parts[name], 0);
  const free = sumOf(FREE_PARTS);
  const own = sumOf(GLIBC_PARTS);
  lines.push(
    `the rest, ${report.footprint - report.parts.payload}: ${free} free in malloc's lists and tops, ${report.parts.overhead + report.parts.mmapSlack} overhead of the live blocks, ${own} glibc's own`,
  );
  if (report.resident) {
    const r = report.resident;
    lines.push(
      `resident (est., the program writes every byte it asks for): ${r.total} bytes (heap ${r.heap}, mmapped ${r.mmapped}${r.threadHeaps > 0 ? `, thread heaps ${r.threadHeaps}` : ''}), ${share(r.total, report.footprint)} of the footprint; peak ${r.peak}${r.peakEvent === null ? '' : ` after event ${r.peakEvent}`}`,
    );
  }
  lines.push('');
  const rows: [string, string, string][] = [['part', 'bytes', 'share']];
  for (const name of PART_NAMES) {
    const bytes = report.parts[name];
    if (bytes === 0 && name !== 'payload') continue;
    rows.push([PART_LABELS[name], `${bytes}`, share(bytes, report.footprint)]);
  }
  rows.push(['total (the footprint)', `${sumParts(report.parts)}`, share(sumParts(report.parts), report.footprint)]);
  lines.push(...columnTable(rows));
  if (report.arenas && report.arenas.length > 0) {
    lines.push('');
    for (const arena of report.arenas) {
      const free = FREE_PARTS.reduce((sum, name) => sum + arena.parts[name], 0);
      const glibcOwn = GLIBC_PARTS.reduce((sum, name) => sum + arena.parts[name], 0);
      lines.push(
        `arena ${arena.index}${arena.index === 0 ? ' (main)' : ''}: ${arena.footprint} bytes, payload ${arena.parts.payload}, free ${free}, glibc's ${glibcOwn}`,
      );
    }
    if (report.mappings) lines.push(`own mappings: ${report.mappings.footprint} bytes, payload ${report.mappings.parts.payload}`);
  }
  lines.push('');
  const t = report.trimmableParts;
  lines.push(
    `malloc_trim(0) now would give back ${report.trimmable} bytes: ${t.released} from the top, ${t.madvised} advised away (madvise) inside free chunks`,
  );
  if (t.resident !== undefined) lines.push(`  of them resident (est.): ${t.resident} bytes would leave RAM`);
  const pin = report.pinned;
  if (pin === null) lines.push(unpinnedText(t.topVerdict, report.arenas ? report.arenas[0].footprint : report.heap));
  else {
    const what =
      pin.kind === 'live'
        ? pin.id === null
          ? 'a block no ID names (malloc(0) of a realloc to 0 of a NULL block)'
          : `'${pin.id}'`
        : pin.kind === 'tcache'
          ? 'a freed block the tcache keeps'
          : "a chunk of glibc's own";
    lines.push(`pinned by ${what} (offset ${pin.offset}, chunk ${pin.chunk}, made at line ${pin.madeBy.line}, event ${pin.madeBy.seq}):`);
    lines.push(`  the heap cannot shrink below it; ${pin.freeAbove} bytes above it are free`);
  }
  lines.push('');
  const mt = report.metrics;
  lines.push('fragmentation (Johnstone & Wilson, footprint over live bytes):');
  lines.push(`  #1 average footprint / average live         ${ratioText(mt.averageFootprintOverAverageLive)}`);
  lines.push(`  #2 footprint / live at peak live            ${ratioText(mt.footprintOverLiveAtPeakLive)}`);
  lines.push(`  #3 peak footprint / live at peak footprint  ${ratioText(mt.peakFootprintOverLiveAtPeakFootprint)}`);
  lines.push(`  #4 peak footprint / peak live               ${ratioText(mt.peakFootprintOverPeakLive)}`);
  lines.push(`  free share of the footprint here            ${mt.freeShare === null ? '—' : share(mt.freeShare, 1)}`);
  return lines.join('\n');
}

/** The line of event `seq`, read again from the start (no replay: the reader alone). */
function lineOfSeq(reader: TraceReader, seq: number): number {
  try {
    while (reader.readRaw()) if (reader.seq - 1 === seq) return reader.lineNumber;
  } finally {
    reader.close();
  }
  throw new MallocscopeError('MODEL_INCONSISTENT', `event ${seq}, which made the pinning chunk, is not in the trace`);
}
