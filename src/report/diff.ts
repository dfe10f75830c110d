// The comparison behind `mallocscope diff`: one trace replayed through two configurations side by side in one
// pass, the first event where they part (the heaps diverge, a block is placed differently, mallinfo2 differs)
// with both explanations, and each side's footprint and system calls (compare.ts's FootprintObserver).
import type { Mallinfo2 } from '../allocator/libc.ts';
import type { Replayer, ReplayOutcome } from '../replay/replayer.ts';
import type { SimulatedSystemOptions } from '../system/simulated.ts';
import type { TraceEvent, TraceOp } from '../trace/api.ts';
import { columnTable } from './column-table.ts';
import { FootprintObserver, columnReplayer, type ColumnSpec, type CompareFigures } from './compare.ts';
import { callText, captureBefore, explainStep, type StateBefore } from './explain.ts';
import type { SyscallCounts } from './peaks.ts';

/** The six mallinfo2 fields of the replay contract (docs/trace-format.md), as check compares them. */
export type ContractMallinfo = Pick<Mallinfo2, 'arena' | 'hblks' | 'hblkhd' | 'uordblks' | 'fordblks' | 'keepcost'>;
const MALLINFO_FIELDS = ['arena', 'hblks', 'hblkhd', 'uordblks', 'fordblks', 'keepcost'] as const;

/** What one side did at an event. */
export interface DiffSide {
  /** 'heap' or 'mmap' for a returned block; null for NULL, or for a call that returns nothing (free, mallopt, trim). */
  where: 'heap' | 'mmap' | null;
  /** The block's chunk size; null when no block. */
  chunk: number | null;
  /** The heap offset (user pointer minus the heap start) of a heap block; null otherwise. */
  offset: number | null;
  /** mallinfo2 after the event. */
  mallinfo2: ContractMallinfo;
  /** explain's sentence for the event on this side. */
  explanation: string;
}

/** An event where the two sides part, with what each did. */
export interface DiffEvent {
  seq: number;
  line: number;
  op: TraceOp;
  /** The trace ID ("" for mallopt and trim). */
  id: string;
  /** The call as a program writes it (`a = malloc(200)`). */
  call: string;
  a: DiffSide;
  b: DiffSide;
}

/** B − A of the figures a person compares first. */
export interface FiguresDifference {
  peakFootprint: number;
  peakHeap: number;
  peakMmapped: number;
  endFootprint: number;
  syscalls: SyscallCounts;
}

export interface DiffResult {
  /** Each side's configuration and figures (compare's CompareFigures: label, policy, settings, glibc, peaks, syscalls…). */
  a: CompareFigures;
  b: CompareFigures;
  events: number;
  /** Events whose returned block differs: where, chunk, heap offset, or NULL on one side only. */
  differing: number;
  /** The first of them; null when every event places its block alike. */
  first: DiffEvent | null;
  /**
   * The first event after which the two heaps are no longer the same: its block, the path that found it,
   * where each freed chunk went, consolidations, trims, system calls, thresholds or mallinfo2 differ. At or
   * before `first` and `firstMallinfo`: a freed chunk put in another bin can change a placement much later.
   */
  firstDivergence: DiffEvent | null;
  /** Events after which mallinfo2's contract fields differ, and the first of them. */
  mallinfoDiffering: number;
  firstMallinfo: DiffEvent | null;
  /** B − A. */
  difference: FiguresDifference;
  /** True when every event places its block alike and leaves the same mallinfo2: what `diff` exits 0 on. */
  same: boolean;
}

export interface DiffOptions {
  /** Options of the simulated kernel (brkLimit), for both sides. */
  system?: SimulatedSystemOptions;
  /** Called with each event before it is replayed (a progress bar). */
  onEvent?: (event: TraceEvent) => void;
}

/** One configuration's replay: the replayer records decisions until every first difference is found. */
interface Run {
  replayer: Replayer;
  observer: FootprintObserver;
  before: StateBefore | null;
  outcome: ReplayOutcome | null;
  info: ContractMallinfo;
}

const placedAlike = (a: ReplayOutcome, b: ReplayOutcome): boolean =>
  a.where === b.where && (a.where === null || a.chunk === b.chunk) && (a.where !== 'heap' || a.offset === b.offset);

function contractMallinfo(replayer: Replayer): ContractMallinfo {
  const m = replayer.mallinfo2();
  return { arena: m.arena, hblks: m.hblks, hblkhd: m.hblkhd, uordblks: m.uordblks, fordblks: m.fordblks, keepcost: m.keepcost };
}

const mallinfoAlike = (a: ContractMallinfo, b: ContractMallinfo): boolean => MALLINFO_FIELDS.every((field) => a[field] === b[field]);

/**
 * Whether an event left both heaps alike, given that they were alike before it: the same path, the same
 * fate for every chunk freed, the same consolidations, trims, system calls and thresholds (the block and
 * mallinfo2 are compared by the caller). Two rules that reach the same result by other reasoning (2.37's
 * realloc of a block that already fits) are not a divergence.
 */
function effectsAlike(a: ReplayOutcome, b: ReplayOutcome): boolean {
  const x = a.notes;
  const y = b.notes;
  if (x.path !== y.path || x.consolidations !== y.consolidations || x.trims !== y.trims || x.trimmedBytes !== y.trimmedBytes) return false;
  if (a.mmapThreshold !== b.mmapThreshold || a.trimThreshold !== b.trimThreshold) return false;
  if (x.freed.length !== y.freed.length || a.syscalls.length !== b.syscalls.length) return false;
  for (let i = 0; i < x.freed.length; i++) {
    const f = x.freed[i];
    const g = y.freed[i];
    if (f.size !== g.size || f.to !== g.to || f.merged !== g.merged) return false;
  }
  for (let i = 0; i < a.syscalls.length; i++) {
    const s = a.syscalls[i];
    const t = b.syscalls[i];
    if (s.call !== t.call || s.bytes !== t.bytes || s.from !== t.from || s.failed !== t.failed) return false;
  }
  return true;
}

/**
 * Replays `events` (streamed: memory grows with the live blocks, not with the trace) through configuration
 * `a` and `b` side by side, and tells where and how they part.
 */
export function diffTrace(events: Iterable<TraceEvent>, a: ColumnSpec, b: ColumnSpec, options: DiffOptions = {}): DiffResult {
  const runs: [Run, Run] = [a, b].map((column) => ({
    replayer: columnReplayer(column, { system: options.system, decisions: true }),
    observer: new FootprintObserver(column.label, column.policy, column.settings),
    before: null,
    outcome: null,
    info: { arena: 0, hblks: 0, hblkhd: 0, uordblks: 0, fordblks: 0, keepcost: 0 },
  })) as [Run, Run];
  const [ra, rb] = runs;
  let count = 0;
  let differing = 0;
  let mallinfoDiffering = 0;
  let first: DiffEvent | null = null;
  let firstDivergence: DiffEvent | null = null;
  let firstMallinfo: DiffEvent | null = null;
  // The decisions are recorded (and the state before each event kept) only until every first is found.
  let watching = true;

  for (const event of events) {
    options.onEvent?.(event);
    count++;
    for (const run of runs) {
      run.before = watching ? captureBefore(run.replayer, event) : null;
      // Each replayer has its own outcome object, so A's stays valid while B replays.
      run.outcome = run.replayer.apply(event);
      run.observer.observe(run.outcome, run.replayer.model, run.replayer.liveBytes);
      run.info = contractMallinfo(run.replayer);
    }
    const oa = ra.outcome as ReplayOutcome;
    const ob = rb.outcome as ReplayOutcome;
    const placed = placedAlike(oa, ob);
    const infoAlike = mallinfoAlike(ra.info, rb.info);
    if (!placed) differing++;
    if (!infoAlike) mallinfoDiffering++;
    if (!watching) continue;

    // One record for an event that is the first of several kinds (explaining twice would be wrong too: the
    // sentences read the state kept before the event).
    let made: DiffEvent | null = null;
    const difference = (): DiffEvent => {
      made ??= diffEvent(event, ra, rb);
      return made;
    };
    if (firstDivergence === null && !(placed && infoAlike && effectsAlike(oa, ob))) firstDivergence = difference();
    if (first === null && !placed) first = difference();
    if (firstMallinfo === null && !infoAlike) firstMallinfo = difference();
    if (first !== null && firstDivergence !== null && firstMallinfo !== null) {
      watching = false;
      for (const run of runs) run.replayer.model.notes.detail = false;
    }
  }

  const fa = ra.observer.figures(ra.replayer.model);
  const fb = rb.observer.figures(rb.replayer.model);
  const syscalls = { ...fb.syscalls };
  for (const kind of Object.keys(syscalls) as (keyof SyscallCounts)[]) syscalls[kind] -= fa.syscalls[kind];
  return {
    a: fa,
    b: fb,
    events: count,
    differing,
    first,
    firstDivergence,
    mallinfoDiffering,
    firstMallinfo,
    difference: {
      peakFootprint: fb.peakFootprint - fa.peakFootprint,
      peakHeap: fb.peakHeap - fa.peakHeap,
      peakMmapped: fb.peakMmapped - fa.peakMmapped,
      endFootprint: fb.endFootprint - fa.endFootprint,
      syscalls,
    },
    same: differing === 0 && mallinfoDiffering === 0,
  };
}

function diffEvent(event: TraceEvent, a: Run, b: Run): DiffEvent {
  return {
    seq: event.seq,
    line: event.line,
    op: event.op,
    id: 'id' in event ? event.id : '',
    call: callText(event),
    a: side(event, a),
    b: side(event, b),
  };
}

function side(event: TraceEvent, run: Run): DiffSide {
  const outcome = run.outcome as ReplayOutcome;
  return {
    where: outcome.where,
    chunk: outcome.where === null ? null : outcome.chunk,
    offset: outcome.where === 'heap' ? outcome.offset : null,
    mallinfo2: run.info,
    explanation: explainStep(run.before as StateBefore, event, outcome),
  };
}

// ---- the text ----------------------------------------------------------------------------------------

const signed = (n: number) => (n > 0 ? `+${n}` : n < 0 ? `−${-n}` : '0');

/** The sentence without its call, which the heading already shows. */
function reason(d: DiffEvent, s: DiffSide): string {
  return s.explanation.startsWith(`${d.call}: `) ? s.explanation.slice(d.call.length + 2) : s.explanation;
}

/** The mallinfo2 fields that differ, "arena 135168 / 335872". */
function mallinfoText(d: DiffEvent): string {
  return MALLINFO_FIELDS.filter((f) => d.a.mallinfo2[f] !== d.b.mallinfo2[f])
    .map((f) => `${f} ${d.a.mallinfo2[f]} / ${d.b.mallinfo2[f]}`)
    .join(', ');
}

function eventLines(title: string, d: DiffEvent): string[] {
  return [`${title}: #${d.seq} (line ${d.line}) ${d.call}`, `  A  ${reason(d, d.a)}`, `  B  ${reason(d, d.b)}`];
}

/** What `diff` prints: the sides, the first differences with both explanations, the counts and the figures. */
export function formatDiff(result: DiffResult, traceName: string): string {
  const { a, b, first, firstDivergence, firstMallinfo } = result;
  const lines = [`${traceName}: ${result.events} events`, `A  ${a.label}`, `B  ${b.label}`, ''];
  if (first) lines.push(...eventLines('first placed differently', first));
  else lines.push('every event places its block alike');
  // What came before it: the event where the heaps parted, and where mallinfo2 first differs.
  if (!firstDivergence) lines.push('the two heaps stay alike after every event');
  else if (first && firstDivergence.seq === first.seq) lines.push('the two heaps were alike until then');
  else lines.push(...eventLines(`the heaps first part${first ? ', earlier' : ''}`, firstDivergence));
  if (!firstMallinfo) lines.push('mallinfo2 is the same after every event');
  else if (firstMallinfo.seq === firstDivergence?.seq || firstMallinfo.seq === first?.seq) {
    lines.push(`mallinfo2 first differs after #${firstMallinfo.seq} (${mallinfoText(firstMallinfo)})`);
  } else lines.push(...eventLines(`mallinfo2 first differs (${mallinfoText(firstMallinfo)})`, firstMallinfo));
  lines.push(
    `events placed differently: ${result.differing} of ${result.events}; events after which mallinfo2 differs: ${result.mallinfoDiffering}`,
    '',
    figuresTable(result),
  );
  return lines.join('\n');
}

function figuresTable(result: DiffResult): string {
  const { a, b, difference: d } = result;
  const rows: [string, number, number, number][] = [
    ['peak footprint', a.peakFootprint, b.peakFootprint, d.peakFootprint],
    ['peak heap', a.peakHeap, b.peakHeap, d.peakHeap],
    ['peak mmapped', a.peakMmapped, b.peakMmapped, d.peakMmapped],
    ['end footprint', a.endFootprint, b.endFootprint, d.endFootprint],
  ];
  for (const kind of ['brk', 'mmap', 'munmap', 'mremap', 'madvise', 'failed'] as const) {
    // brk, mmap and munmap always; the rarer calls when either side made one.
    if (kind === 'brk' || kind === 'mmap' || kind === 'munmap' || a.syscalls[kind] || b.syscalls[kind]) {
      rows.push([`${kind} calls`, a.syscalls[kind], b.syscalls[kind], d.syscalls[kind]]);
    }
  }
  const cells = [['', 'A', 'B', 'B − A'], ...rows.map(([name, x, y, z]) => [name, `${x}`, `${y}`, signed(z)])];
  return columnTable(cells).join('\n');
}
