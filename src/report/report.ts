// `mallocscope report`: one self-contained HTML page about a trace. The page carries the events (packed,
// gzip-compressed, base64 in a <script type=application/octet-stream>), a sampled timeline of heap, mmapped,
// live bytes and footprint with the thresholds, checkpoints of the model every K events, and the model itself
// bundled into the page's script, so that picking any event restores the nearest checkpoint and replays
// forward to it in the browser. Explanations are computed in the page for the event picked. The page's
// script is bundled when the package builds (scripts/build-page.mjs); this only reads it.
import type { SizeT } from '../allocator/size-t.ts';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { MallocscopeError } from '../errors.ts';
import { Replayer } from '../replay/replayer.ts';
import type { TraceEvent } from '../trace/api.ts';
import type { GlibcRules } from '../allocator/versions.ts';
import { chooseGlibc } from '../replay/glibc.ts';
import { hostCores } from '../system/cores.ts';
import { TraceReader, readTrace, traceDisplayName } from '../trace/reader.ts';
import { takeCheckpoint, type CheckpointSetup } from './checkpoint.ts';
import { PeakTracker, fragmentationMetrics } from './peaks.ts';
import { EventEncoder, bytesOf, packSections } from './html/codec.ts';
import { renderHtml, type ReportMeta } from './html/template.ts';
import { renderRssChart, type RssSeries } from './html/rss-chart.ts';

export interface ReportOptions {
  /** The --policy name; default glibc. */
  policy?: string;
  /** The glibc version the model follows; default as for any model (MALLOCSCOPE_GLIBC, else this machine's). */
  glibc?: string | GlibcRules;
  /** --brk-limit. */
  brkLimit?: number;
  /** The CPU count glibc sees (its arena limit); default this machine's. The page replays with the same. */
  cores?: number;
  /** Events between checkpoints; default: a spacing of 5000 × 2^k that keeps 12 to 24 checkpoints. */
  checkpointEvery?: number;
  /** Most points of the timeline (it keeps between half this and this); default 3200. */
  samples?: number;
  /** The name the page gives the trace; default the path's base name. */
  title?: string;
  /** Called after each event (the CLI's progress bar). */
  onProgress?: (event: TraceEvent) => void;
  /** Real allocators' resident memory over the same trace (report --allocator): a card with a line each. */
  allocators?: readonly RssSeries[];
}

export interface ReportResult {
  html: string;
  events: number;
  checkpoints: number;
  /** Bytes of each part of the page, for the curious and for tests. */
  sizes: { payload: number; script: number; html: number };
}

const SERIES = ['heap', 'mmapped', 'live', 'footprint'] as const;
const FOOTPRINT = 3;

/** Timeline points kept: between MAX_POINTS / 2 and MAX_POINTS (pairs merge when it fills). */
const MAX_POINTS = 3200;
/** Checkpoints kept, unless --checkpoint-every fixes the spacing: between MAX_CHECKPOINTS / 2 and MAX_CHECKPOINTS. */
const MAX_CHECKPOINTS = 24;
const FIRST_SPACING = 5000;

/**
 * Builds the report of the trace at `path` (or of `events`). One streaming pass: the trace is read, replayed,
 * packed and sampled at once, so memory grows with the live blocks and the packed events, not with a list of
 * event objects. The timeline's buckets and the checkpoints' spacing double whenever they fill up.
 */
export async function buildReport(source: string | Iterable<TraceEvent>, options: ReportOptions = {}): Promise<ReportResult> {
  const policy = options.policy ?? 'glibc';
  const system = options.brkLimit === undefined ? {} : { brkLimit: options.brkLimit };
  // The page builds its replayers from this (the simulated kernel's defaults are the same there: one build).
  const setup: CheckpointSetup = { policy, glibc: chooseGlibc(options.glibc).rules.version, system, cores: options.cores ?? hostCores() };
  const replayer = new Replayer(setup);
  const fixedSpacing = options.checkpointEvery === undefined ? 0 : Math.max(1, Math.floor(options.checkpointEvery));
  let every = fixedSpacing || FIRST_SPACING;
  const maxPoints = 2 * Math.max(1, Math.floor((options.samples ?? MAX_POINTS) / 2));

  const model = replayer.model;
  const mp = model.mp;
  const encoder = new EventEncoder();
  let checkpoints: Uint8Array[] = [];
  const timeline = new Timeline(maxPoints);
  // The threads the trace names, in the order they first appear (the page gives each a row of its thread lane).
  const threadsSeen = new Set<number>();
  // Plotted as doubles; the exact digits of values beyond 2^53 are kept aside for the page to print.
  const thresholds: number[] = [-1, Number(mp.mmapThreshold), Number(mp.trimThreshold)];
  const exactThresholds: Record<number, string> = {};
  const keepExact = (value: SizeT) => {
    if (typeof value === 'bigint') exactThresholds[thresholds.length] = String(value);
    thresholds.push(Number(value));
  };
  if (typeof mp.mmapThreshold === 'bigint') exactThresholds[1] = String(mp.mmapThreshold);
  if (typeof mp.trimThreshold === 'bigint') exactThresholds[2] = String(mp.trimThreshold);
  let lastMmap = mp.mmapThreshold;
  let lastTrim = mp.trimThreshold;
  const moves: number[] = [];
  const tracker = new PeakTracker();
  let n = 0;
  const events = typeof source === 'string' ? readTrace(source) : source;
  try {
    for (const event of events) {
      const seq = n;
      if (seq % every === 0 && seq > 0) {
        checkpoints.push(takeCheckpoint(replayer));
        if (!fixedSpacing && checkpoints.length >= MAX_CHECKPOINTS) {
          // Keep every other one: checkpoint k (after k * every events) stays when k is even.
          checkpoints = checkpoints.filter((_, i) => i % 2 === 1);
          every *= 2;
        }
      }
      const outcome = replayer.apply(event);
      encoder.add(event);
      if (outcome.mmapThreshold !== lastMmap || outcome.trimThreshold !== lastTrim) {
        thresholds.push(seq);
        keepExact(outcome.mmapThreshold);
        keepExact(outcome.trimThreshold);
        lastMmap = outcome.mmapThreshold;
        lastTrim = outcome.trimThreshold;
      }
      if (outcome.notes.thresholdMove) moves.push(seq);
      tracker.observe(outcome, model, replayer.liveBytes);
      timeline.add(seq, tracker.heap, tracker.mmapped, tracker.live, model.arenas);
      if (event.thread !== undefined) threadsSeen.add(event.thread);
      n++;
      options.onProgress?.(event);
    }
  } finally {
    if (events instanceof TraceReader) events.close();
  }

  const sections: [string, Uint8Array][] = [
    ['ops', encoder.ops.take()],
    ['slots', encoder.slots.take()],
    ['nums', encoder.nums.take()],
    ['lines', encoder.lines.take()],
    ['ids', encoder.idTable()],
    ['threads', encoder.threads.take()],
    ['thresholds', bytesOf(new Float64Array(thresholds))],
    ['moves', bytesOf(new Float64Array(moves))],
  ];
  const points = timeline.points;
  SERIES.forEach((name, s) => {
    sections.push([`high.${name}`, bytesOf(timeline.high[s].subarray(0, points))]);
    sections.push([`low.${name}`, bytesOf(timeline.low[s].subarray(0, points))]);
  });
  sections.push(['stack.heap', bytesOf(timeline.stackHeap.subarray(0, points))]);
  timeline.stackArenas.forEach((arena, i) => {
    sections.push([`stack.arena.${i + 1}`, bytesOf(arena.subarray(0, points))]);
  });
  // Checkpoint k holds the state after k * every events (k from 1; the state after 0 events is a fresh replayer).
  checkpoints.forEach((bytes, k) => {
    sections.push([`checkpoint.${k + 1}`, bytes]);
  });
  // zlib's default level: level 9 packs a million events 0.5% tighter and takes ten times as long.
  const payload = gzipSync(packSections(sections), { level: 6 });

  const title = options.title ?? (typeof source === 'string' ? basename(traceDisplayName(source)) : 'trace');
  const meta: ReportMeta = {
    format: 1,
    title,
    events: n,
    policy: setup.policy,
    setup,
    heapStart: model.system.heapStart,
    arenas: model.arenas.length,
    threads: [...threadsSeen],
    checkpointEvery: every,
    checkpoints: checkpoints.length,
    buckets: points,
    bucketWidth: timeline.width,
    peaks: { heap: tracker.peakHeap, mmapped: tracker.peakMmapped, live: tracker.peakLive, footprint: tracker.peakFootprint },
    metrics: fragmentationMetrics(tracker),
    final: {
      mmapThreshold: exactOrNumber(mp.mmapThreshold),
      trimThreshold: exactOrNumber(mp.trimThreshold),
      noDynThreshold: mp.noDynThreshold,
      heap: tracker.heap,
      mmapped: tracker.mmapped,
      live: tracker.live,
    },
    exactThresholds,
    thresholdMoves: tracker.thresholdMoves,
    syscalls: { ...tracker.syscalls },
    consolidations: tracker.consolidations,
    trims: tracker.trims,
    generated: new Date().toISOString(),
  };
  const script = pageScript();
  const payloadBase64 = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64');
  const allocators = options.allocators?.length ? renderRssChart(options.allocators) : undefined;
  const html = renderHtml({ meta, payloadBase64, script, allocators });
  return {
    html,
    events: n,
    checkpoints: checkpoints.length,
    sizes: { payload: payload.length, script: script.length, html: Buffer.byteLength(html) },
  };
}

/**
 * The sampled timeline: per bucket of `width` events, the lowest and highest value of each series over its
 * events. The buckets' width doubles whenever they fill up. A class of its own, called once per event: the
 * report's loop stays small, which V8 compiles (and, as rare paths are first taken, compiles again) for less.
 */
class Timeline {
  width = 1;
  points = 0;
  readonly high: Float64Array[];
  readonly low: Float64Array[];
  /**
   * Per bucket, the heap's part of the footprint at the bucket's highest footprint: the page stacks the
   * mmapped bytes on it, so that the two areas end exactly at the footprint line even when a bucket spans
   * many events (where the heap's and the mmapped bytes' highs need not be at the same event).
   */
  readonly stackHeap: Float64Array;
  /**
   * The same for each thread arena (index 1 on, made when the arena is): its system_mem at the bucket's
   * highest footprint, stacked on main_arena's part of the heap by the page.
   */
  readonly stackArenas: Float64Array[] = [];

  constructor(private readonly maxPoints: number) {
    this.high = SERIES.map(() => new Float64Array(maxPoints));
    this.low = SERIES.map(() => new Float64Array(maxPoints));
    this.stackHeap = new Float64Array(maxPoints);
  }

  /** After event `seq`: the heap (every arena's system_mem), the mmapped and the live bytes, the arenas. */
  add(seq: number, heap: number, mmapped: number, live: number, arenas: readonly { systemMem: number }[]): void {
    let bucket = Math.floor(seq / this.width);
    if (bucket >= this.maxPoints) {
      this.merge();
      bucket = Math.floor(seq / this.width);
    }
    const fresh = bucket >= this.points;
    if (fresh) this.points = bucket + 1;
    const footprint = heap + mmapped;
    while (this.stackArenas.length < arenas.length - 1) this.stackArenas.push(new Float64Array(this.maxPoints));
    if (fresh || footprint > this.high[FOOTPRINT][bucket]) {
      this.stackHeap[bucket] = heap;
      for (let a = 1; a < arenas.length; a++) this.stackArenas[a - 1][bucket] = arenas[a].systemMem;
    }
    // In SERIES' order.
    this.keep(0, bucket, fresh, heap);
    this.keep(1, bucket, fresh, mmapped);
    this.keep(2, bucket, fresh, live);
    this.keep(FOOTPRINT, bucket, fresh, footprint);
  }

  private keep(s: number, bucket: number, fresh: boolean, v: number): void {
    const high = this.high[s];
    const low = this.low[s];
    if (fresh || v > high[bucket]) high[bucket] = v;
    if (fresh || v < low[bucket]) low[bucket] = v;
  }

  /** Full: merges pairs of buckets and doubles their width (the stack's split first: it reads the footprint's highs before they merge). */
  private merge(): void {
    const half = this.maxPoints / 2;
    const footprint = this.high[FOOTPRINT];
    for (let i = 0; i < half; i++) {
      const from = footprint[2 * i] >= footprint[2 * i + 1] ? 2 * i : 2 * i + 1;
      this.stackHeap[i] = this.stackHeap[from];
      for (const arena of this.stackArenas) arena[i] = arena[from];
    }
    for (let s = 0; s < SERIES.length; s++) {
      const high = this.high[s];
      const low = this.low[s];
      for (let i = 0; i < half; i++) {
        high[i] = Math.max(high[2 * i], high[2 * i + 1]);
        low[i] = Math.min(low[2 * i], low[2 * i + 1]);
      }
    }
    this.width *= 2;
    this.points = Math.ceil(this.points / 2);
  }
}

let cachedScript: string | undefined;

/**
 * The page's script: src/report/html/page.ts with the model it imports, one browser IIFE bundled by
 * scripts/build-page.mjs into dist/. Read from there whether this module runs from dist/ (the built CLI)
 * or from src/ (a script run through tsx): both are two levels below the package's root.
 */
export function pageScript(): string {
  if (cachedScript) return cachedScript;
  const path = fileURLToPath(new URL('../../dist/report/html/page.bundle.js', import.meta.url));
  try {
    cachedScript = readFileSync(path, 'utf8');
  } catch {
    throw new MallocscopeError('REPORT_PAGE_MISSING', `the report page's script ${path} is missing: build the package (npm run build)`);
  }
  return cachedScript;
}

/** A size_t for the page's JSON: a number while exact, else its decimal digits. */
function exactOrNumber(value: SizeT): number | string {
  return typeof value === 'bigint' ? String(value) : value;
}
