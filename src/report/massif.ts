// Valgrind massif's format (massif.out) from two replays, for ms_print and massif-visualizer: the live bytes,
// what glibc holds beyond them, and trees of the live blocks (docs/export.md). No Node API: the caller opens the trace.
import { blockBytes, footprintBytes } from '../allocator/anatomy.ts';
import { NIL } from '../allocator/chunks.ts';
import { MallocscopeError, UsageError } from '../errors.ts';
import { LineBuffer } from '../line-buffer.ts';
import { Replayer, type ReplayOutcome } from '../replay/replayer.ts';
import type { SimulatedSystemOptions } from '../system/simulated.ts';
import { OP_CALLOC, OP_FREE, OP_MALLOC, OP_MEMALIGN, OP_REALLOC, type TraceReader } from '../trace/parser.ts';

/** massif's time units that a trace can give: i counts the calls made, B the bytes allocated and freed. */
export type MassifTimeUnit = 'i' | 'B';
/** What mem_heap_extra_B holds: the live blocks' overhead (massif's meaning), or all the rest of the footprint. */
export type MassifExtra = 'overhead' | 'footprint';

export interface MassifOptions {
  /** How to build the model (as the replay command's options). */
  policy?: string;
  glibc?: string;
  tunables?: string;
  system?: SimulatedSystemOptions;
  cores?: number;
  /** Default i. */
  timeUnit?: MassifTimeUnit;
  /** Default overhead. */
  extra?: MassifExtra;
  /** At most this many snapshots, snapshot 0 included (massif's --max-snapshots); 10 to 1000, default 100. */
  maxSnapshots?: number;
  /** Every Nth snapshot has a tree (massif's --detailed-freq); the peak's always has. Default 10. */
  detailedFreq?: number;
  /** A tree node under this percentage of the snapshot's total joins the "in N places" node (massif's --threshold). Default 1. */
  threshold?: number;
  /** Name the trace has in the file: `cmd:` and the tree's locations. */
  name: string;
  /** The trace has threads (traceHasThreads): the trees group the blocks by the thread that made them first. */
  threads?: boolean;
  /** The `desc:` line: how the profile was made (the command's options). */
  description: string;
  /** Called after each event of each pass (a progress bar). */
  onEvent?: (pass: 1 | 2, event: { seq: number; line: number }) => void;
}

/** What was written. */
export interface MassifSummary {
  events: number;
  snapshots: number;
  /** The snapshot marked `heap_tree=peak` (the first event where heap + extra is highest), or null when that is 0. */
  peak: { snapshot: number; seq: number; heap: number; extra: number } | null;
}

/** The largest time, and the largest --max-snapshots (massif's limits). */
const MAX_TIME = Number.MAX_SAFE_INTEGER;
export const MAX_SNAPSHOTS = 1000;
export const MIN_SNAPSHOTS = 10;

/**
 * The program's live blocks as this export needs them, kept per trace slot after each event: the bytes each
 * takes from the footprint (blockBytes) and what made it (the call, its line, its thread), for the trees.
 */
class LiveBlocks {
  /** The sum of the live blocks' bytes: their chunks (their mappings). */
  total = 0;
  /** How many of the replay's blocks no ID names are in `total`. */
  private leakedSeen = 0;
  private bytes = new Float64Array(1024);
  private op = new Uint8Array(1024);
  /** malloc/realloc: SIZE; calloc: NMEMB; memalign: ALIGN. */
  private first = new Float64Array(1024);
  /** calloc and memalign: SIZE; realloc: 1 for realloc of a block, 0 for realloc(NULL, SIZE). */
  private second = new Float64Array(1024);
  private line = new Float64Array(1024);
  private thread = new Int32Array(1024);
  /** The call's text for the rare call with values beyond 2^53, exactly as written. */
  private exactCall = new Map<number, string>();

  /** After an event: updates its slot; returns the change of `total` (0 for calls that touch no block). */
  after(outcome: ReplayOutcome, reader: TraceReader, replayer: Replayer): number {
    // malloc, calloc, realloc, memalign and free name a slot; mallopt, trim, spawn and exit none.
    const op = reader.op;
    if (op > OP_FREE) return 0;
    const slot = reader.slot;
    if (slot >= this.bytes.length) this.grow(slot);
    const chunk = replayer.chunkOfSlot(slot);
    const bytes = chunk === NIL ? 0 : blockBytes(replayer.model, chunk);
    // realloc of an ID whose call had failed is realloc(NULL, SIZE), as in the C program.
    const hadBlock = this.bytes[slot] > 0;
    let delta = bytes - this.bytes[slot];
    this.bytes[slot] = bytes;
    // A block no ID names from now on (Replayer.leaked) stays to the end.
    for (; this.leakedSeen < replayer.leaked.length; this.leakedSeen++) delta += blockBytes(replayer.model, replayer.leaked[this.leakedSeen]);
    this.total += delta;
    // The call that returned the block names it (a failed realloc leaves the block and its name as they were).
    if (outcome.where !== null) {
      this.op[slot] = op;
      this.first[slot] = op === OP_CALLOC ? reader.nmemb : op === OP_MEMALIGN ? reader.alignment : reader.size;
      this.second[slot] = op === OP_CALLOC || op === OP_MEMALIGN ? reader.size : reader.wasLive && hadBlock ? 1 : 0;
      this.line[slot] = reader.lineNumber;
      this.thread[slot] = reader.thread;
      if (reader.exact) this.exactCall.set(slot, exactCallText(reader, this.second[slot] === 1));
      else this.exactCall.delete(slot);
    }
    return delta;
  }

  /** The call that made a live slot's block, as C writes it: malloc(100), calloc(4, 25), realloc(ptr, 500). */
  call(slot: number): string {
    return this.exactCall.get(slot) ?? callText(this.op[slot], this.first[slot], this.second[slot]);
  }

  lineOf(slot: number): number {
    return this.line[slot];
  }

  threadOf(slot: number): number {
    return this.thread[slot];
  }

  private grow(slot: number): void {
    let length = this.bytes.length;
    while (length <= slot) length *= 2;
    const bigger = <T extends Float64Array | Uint8Array | Int32Array>(old: T, make: (n: number) => T): T => {
      const copy = make(length);
      copy.set(old);
      return copy;
    };
    this.bytes = bigger(this.bytes, (n) => new Float64Array(n));
    this.op = bigger(this.op, (n) => new Uint8Array(n));
    this.first = bigger(this.first, (n) => new Float64Array(n));
    this.second = bigger(this.second, (n) => new Float64Array(n));
    this.line = bigger(this.line, (n) => new Float64Array(n));
    this.thread = bigger(this.thread, (n) => new Int32Array(n));
  }
}

/** A call's text as C writes it, from the numbers LiveBlocks keeps (first and second as it documents them). */
function callText(op: number, first: number, second: number): string {
  switch (op) {
    case OP_MALLOC:
      return `malloc(${first})`;
    case OP_CALLOC:
      return `calloc(${first}, ${second})`;
    case OP_MEMALIGN:
      return `memalign(${first}, ${second})`;
    default:
      return `realloc(${second === 1 ? 'ptr' : 'NULL'}, ${first})`;
  }
}

/** The call the reader read last, each field exact (a call with values beyond 2^53); `ofBlock`: realloc of a block. */
function exactCallText(reader: TraceReader, ofBlock: boolean): string {
  const exact = reader.exact;
  const size = exact?.size ?? reader.size;
  if (reader.op === OP_CALLOC) return `calloc(${exact?.nmemb ?? reader.nmemb}, ${size})`;
  if (reader.op === OP_MEMALIGN) return `memalign(${exact?.alignment ?? reader.alignment}, ${size})`;
  if (reader.op === OP_REALLOC) return `realloc(${ofBlock ? 'ptr' : 'NULL'}, ${size})`;
  return `malloc(${size})`;
}

/**
 * The event with the highest heap + extra in each of `count` buckets of time, kept in bounded memory over a
 * trace of any length: when a time falls past the last bucket, neighbouring buckets merge in pairs and each
 * covers twice the time (massif halves its snapshots in the same way when its table is full).
 */
class BucketMaxima {
  private width = 1;
  private readonly seqs: Float64Array;
  private readonly totals: Float64Array;

  constructor(private readonly count: number) {
    this.seqs = new Float64Array(count).fill(-1);
    this.totals = new Float64Array(count);
  }

  add(time: number, seq: number, total: number): void {
    while (time >= this.count * this.width) this.merge();
    const b = Math.floor(time / this.width);
    // The first event of a bucket's highest total: a later one must be higher.
    if (this.seqs[b] < 0 || total > this.totals[b]) {
      this.seqs[b] = seq;
      this.totals[b] = total;
    }
  }

  private merge(): void {
    const { seqs, totals } = this;
    for (let i = 0; i < this.count; i++) {
      let seq = -1;
      let total = 0;
      for (const from of [2 * i, 2 * i + 1]) {
        if (from >= this.count || seqs[from] < 0) continue;
        // The left bucket's events came first: it keeps a tie.
        if (seq < 0 || totals[from] > total) {
          seq = seqs[from];
          total = totals[from];
        }
      }
      seqs[i] = seq;
      totals[i] = total;
    }
    this.width *= 2;
  }

  /**
   * The events to show, at most `slices`: the highest of each bucket up to `endTime` when no more buckets
   * than that hold an event, else the highest of each of `slices` runs of buckets, as even as whole buckets allow.
   */
  choose(endTime: number, slices: number): number[] {
    const used = Math.floor(endTime / this.width) + 1;
    let filled = 0;
    for (let b = 0; b < used; b++) if (this.seqs[b] >= 0) filled++;
    const runs = filled <= slices ? used : slices;
    const chosen: number[] = [];
    for (let run = 0; run < runs; run++) {
      let seq = -1;
      let total = 0;
      for (let b = Math.floor((run * used) / runs); b < Math.floor(((run + 1) * used) / runs); b++) {
        if (this.seqs[b] < 0) continue;
        if (seq < 0 || this.totals[b] > total) {
          seq = this.seqs[b];
          total = this.totals[b];
        }
      }
      if (seq >= 0) chosen.push(seq);
    }
    return chosen;
  }
}

/** One replay of the trace, with the figures a snapshot needs after each event. */
class Pass {
  readonly replayer: Replayer;
  readonly live = new LiveBlocks();
  time = 0;
  events = 0;

  constructor(
    readonly reader: TraceReader,
    private readonly options: MassifOptions,
  ) {
    this.replayer = new Replayer({
      policy: options.policy,
      glibc: options.glibc,
      tunables: options.tunables,
      system: { ...options.system },
      cores: options.cores,
    });
  }

  /** Applies the next event; null at the end of the trace. */
  next(): ReplayOutcome | null {
    const outcome = this.replayer.applyNext(this.reader);
    if (outcome === null) return null;
    this.events++;
    const delta = this.live.after(outcome, this.reader, this.replayer);
    if (this.options.timeUnit === 'B') {
      this.time += Math.abs(delta);
      if (this.time > MAX_TIME) {
        throw new MallocscopeError(
          'MASSIF_TIME_RANGE',
          `${this.reader.name}:${outcome.line}: the bytes allocated and freed so far pass 2^53, more than massif's time can count exactly; use --time-unit i`,
        );
      }
    } else this.time = outcome.seq + 1;
    return outcome;
  }

  /** The live bytes the program asked for: mem_heap_B. */
  heap(): number {
    return this.replayer.liveBytes;
  }

  /** mem_heap_extra_B: the live blocks' bytes beyond their requests, or the whole footprint beyond them. */
  extra(): number {
    const heap = this.replayer.liveBytes;
    return (this.options.extra === 'footprint' ? footprintBytes(this.replayer.model) : this.live.total) - heap;
  }
}

/**
 * Replays the trace twice and writes its massif profile through `write`: the first pass finds the events to
 * show (the peak of heap + extra, the last event, and the highest event in each of even slices of time), the
 * second writes their snapshots as it reaches them. Memory grows with the live blocks, not the trace.
 */
export function writeMassif(open: () => TraceReader, write: (text: string) => void, options: MassifOptions): MassifSummary {
  const maxSnapshots = options.maxSnapshots ?? 100;
  if (!Number.isInteger(maxSnapshots) || maxSnapshots < MIN_SNAPSHOTS || maxSnapshots > MAX_SNAPSHOTS) {
    throw new UsageError(`the snapshots must be a whole number from ${MIN_SNAPSHOTS} to ${MAX_SNAPSHOTS}, not ${maxSnapshots}`);
  }
  const freq = options.detailedFreq ?? 10;
  if (!Number.isInteger(freq) || freq < 1) throw new UsageError(`the detailed frequency must be a whole number of at least 1, not ${freq}`);
  const threshold = options.threshold ?? 1;
  if (!(threshold >= 0 && threshold <= 100)) throw new UsageError(`the threshold must be a percentage from 0 to 100, not ${threshold}`);
  // Snapshot 0 (before the first call) and the last event take two; the slices the rest.
  const slices = maxSnapshots - 2;

  // Pass 1: the timeline's shape.
  // Eight buckets a slice at least: when the buckets are merged into the slices, these differ by one bucket at most.
  const buckets = new BucketMaxima(16 * slices);
  let peak = { seq: -1, heap: 0, extra: 0 };
  let last = -1;
  let endTime = 0;
  const first = new Pass(open(), options);
  try {
    for (let outcome = first.next(); outcome; outcome = first.next()) {
      options.onEvent?.(1, outcome);
      const heap = first.heap();
      const extra = first.extra();
      buckets.add(first.time, outcome.seq, heap + extra);
      if (heap + extra > peak.heap + peak.extra) peak = { seq: outcome.seq, heap, extra };
      last = outcome.seq;
      endTime = first.time;
    }
  } finally {
    first.reader.close();
  }
  const events = first.events;
  // Every event when there are few enough.
  const shown = new Set(events <= slices ? Array.from({ length: events }, (_, seq) => seq) : buckets.choose(endTime, slices));
  if (peak.seq >= 0) shown.add(peak.seq);
  if (last >= 0) shown.add(last);
  const seqs = [...shown].sort((a, b) => a - b);

  // Pass 2: the snapshots.
  const out = new LineBuffer(write);
  out.line(`desc: ${fieldText(options.description)}`);
  out.line(`cmd: ${fieldText(options.name)} (replayed through mallocscope's model of glibc ${first.replayer.model.glibc.version})`);
  out.line(`time_unit: ${options.timeUnit ?? 'i'}`);
  const location = locationText(options.name);
  snapshot(out, 0, 0, 0, 0, freq === 1 ? 'detailed' : 'empty');
  if (freq === 1) out.line(`n0: 0 ${ROOT}`);
  let summaryPeak: MassifSummary['peak'] = null;
  if (seqs.length > 0) {
    const second = new Pass(open(), options);
    let next = 0;
    try {
      // The last event is the last snapshot: the loop ends there.
      for (let outcome = second.next(); outcome; outcome = next < seqs.length ? second.next() : null) {
        options.onEvent?.(2, outcome);
        if (outcome.seq !== seqs[next]) continue;
        const number = ++next;
        const heap = second.heap();
        const extra = second.extra();
        // (A peak is an event whose heap + extra passed 0.)
        const isPeak = outcome.seq === peak.seq;
        if (isPeak && heap + extra !== peak.heap + peak.extra) throw changed(options.name);
        const kind = isPeak ? 'peak' : number % freq === freq - 1 ? 'detailed' : 'empty';
        snapshot(out, number, second.time, heap, extra, kind);
        if (kind !== 'empty') writeTree(out, second, heap + extra, threshold, options.threads ?? false, location);
        if (isPeak) summaryPeak = { snapshot: number, seq: outcome.seq, heap, extra };
      }
    } finally {
      second.reader.close();
    }
    if (next < seqs.length) throw changed(options.name);
  }
  out.flush();
  return { events, snapshots: seqs.length + 1, peak: summaryPeak };
}

/** The two passes must see the same trace. */
function changed(name: string): MallocscopeError {
  return new MallocscopeError('TRACE_CHANGED', `${name}: the trace changed while it was read twice (export reads it once to find the peak, once to write)`);
}

/** massif's label for a tree's root: the allocation functions themselves. */
const ROOT = '(heap allocation functions) malloc/calloc/realloc/memalign';

function snapshot(out: LineBuffer, number: number, time: number, heap: number, extra: number, kind: 'empty' | 'detailed' | 'peak'): void {
  out.line('#-----------');
  out.line(`snapshot=${number}`);
  out.line('#-----------');
  out.line(`time=${time}`);
  out.line(`mem_heap_B=${heap}`);
  out.line(`mem_heap_extra_B=${extra}`);
  // A trace has no stacks.
  out.line('mem_stacks_B=0');
  out.line(`heap_tree=${kind}`);
}

/** A node of a snapshot's tree: bytes the program asked for, under a label. */
interface TreeNode {
  label: string;
  bytes: number;
  children: Map<string, TreeNode>;
}

function child(parent: TreeNode, label: string, bytes: number): TreeNode {
  let node = parent.children.get(label);
  if (node === undefined) {
    node = { label, bytes: 0, children: new Map() };
    parent.children.set(label, node);
  }
  node.bytes += bytes;
  return node;
}

/**
 * The tree of the live blocks: under the root, the call that made each (with threads, first the thread that
 * made it), then the block itself, named by its trace ID and the line of that call.
 */
function writeTree(out: LineBuffer, pass: Pass, total: number, threshold: number, threads: boolean, location: (line: number) => string): void {
  const root: TreeNode = { label: ROOT, bytes: 0, children: new Map() };
  const { live, reader } = pass;
  pass.replayer.forEachLive((_chunk, requested, slot) => {
    // A block no ID names (Replayer.leaked) is malloc(0): no bytes of the heap's, only extra.
    if (slot < 0) return;
    root.bytes += requested;
    const under = threads ? child(root, `thread ${live.threadOf(slot)}`, requested) : root;
    const call = child(under, live.call(slot), requested);
    const id = reader.idOfSlot(slot);
    child(call, `${id} (${location(live.lineOf(slot))})`, requested);
  });
  if (root.bytes !== pass.heap()) {
    throw new MallocscopeError('MODEL_INCONSISTENT', `massif tree: the live blocks hold ${root.bytes} bytes, the replay counts ${pass.heap()}`);
  }
  writeNode(out, root, 0, total, threshold);
}

/** A node and its children, largest first; the children under the threshold as one "in N places" node, last. */
function writeNode(out: LineBuffer, node: TreeNode, depth: number, total: number, threshold: number): void {
  const significant = (bytes: number) => threshold === 0 || (total > 0 && (bytes * 100) / total >= threshold);
  const children = [...node.children.values()].sort((a, b) => b.bytes - a.bytes || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  const shown = children.filter((c) => significant(c.bytes));
  const below = children.length - shown.length;
  const indent = ' '.repeat(depth);
  out.line(`${indent}n${shown.length + (below > 0 ? 1 : 0)}: ${node.bytes} ${node.label}`);
  for (const c of shown) writeNode(out, c, depth + 1, total, threshold);
  if (below > 0) {
    let bytes = 0;
    for (const c of children) if (!significant(c.bytes)) bytes += c.bytes;
    const places = below === 1 ? 'in 1 place, below' : `in ${below} places, all below`;
    out.line(`${indent} n0: ${bytes} ${places} massif's threshold (${threshold.toFixed(2)}%)`);
  }
}

/**
 * Text for a line of the file: ms_print drops everything after a `#` and each field is one line, so `#`, `%`
 * and line breaks are written percent-encoded.
 */
function fieldText(text: string): string {
  return text.replace(/[#%\r\n]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/**
 * The location of a trace line, `NAME:LINE`, as massif writes `file.c:LINE`. massif-visualizer reads a label's
 * location from its last ` (` to its closing `)`, so parentheses in the name are percent-encoded too.
 */
function locationText(name: string): (line: number) => string {
  const safe = fieldText(name).replace(/[()]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return (line) => `${safe}:${line}`;
}
