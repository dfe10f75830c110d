// The report page's script (bundled with the model into the page by report.ts). It decodes the payload, draws
// the timeline, and for the event picked restores the nearest checkpoint, replays forward to it with the
// same model as the CLI, and draws the heap map, the mmapped blocks, the bins and the event's sentence
// (computed here, on demand, by src/report/explain.ts).
import { walkBins, walkMmapped, walkRegions, type BinsView, type ChunkInfo, type ChunkKind } from '../../allocator/walk.ts';
import { mem2chunk } from '../../allocator/chunks.ts';
import { Replayer, type ReplayOutcome } from '../../replay/replayer.ts';
import type { Heap, MallocState } from '../../allocator/arena.ts';
import type { Syscall } from '../../system/api.ts';
import type { SizeT } from '../../allocator/size-t.ts';
import { footprintAnatomy, heapPin, PART_NAMES, type FootprintParts, type HeapPin } from '../../allocator/anatomy.ts';
import { PART_LABELS, share, trimEstimate } from '../anatomy.ts';
import { restoreCheckpoint } from '../checkpoint.ts';
import { captureBefore, callText, explainStep } from '../explain.ts';
import { syscallProse } from '../syscall-text.ts';
import { EventColumns, float64Of, unpackSections } from './codec.ts';
import { escapeHtml } from './escape.ts';
import { type HexShown, hexView } from './hex-view.ts';
import { bytes, decimalStep, niceStep } from './format.ts';
import type { ReportMeta } from './template.ts';

// ---- formatting -------------------------------------------------------------------------------------------

const hex = (n: number) => `0x${n.toString(16)}`;
const chunksText = (n: number) => `${n.toLocaleString('en-US')} chunk${n === 1 ? '' : 's'}`;
const int = (n: number) => n.toLocaleString('en-US');
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** The text of element `id`, which the page template always fills. */
function textOf(id: string): string {
  return $(id).textContent ?? '';
}

/** A canvas's 2D context (null only when the browser cannot draw at all, which stops the page). */
function context2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const g = canvas.getContext('2d');
  if (!g) throw new Error('this browser gives no 2D canvas');
  return g;
}

// One address style on the page: offsets from the start of the heap (the first break), which stay the
// same from run to run and read short; the absolute address is in the hover title or the tooltip.
let heapStart = 0;
function offsetText(address: number): string {
  const d = address - heapStart;
  return d >= 0 ? `+${hex(d)}` : `−${hex(-d)}`;
}
function addressHtml(address: number): string {
  return `<span class="addr" title="${hex(address)}">${placeText(address)}</span>`;
}

// ---- colours ---------------------------------------------------------------------------------------------

const KIND_COLOUR: Record<ChunkKind, string> = {
  'in-use': '#3b82f6',
  tcache: '#a78bfa',
  fastbin: '#f472b6',
  unsorted: '#fbbf24',
  small: '#34d399',
  large: '#0f9488',
  top: '#dfe6ef',
  mmapped: '#fb923c',
  fencepost: '#374151',
};
const KIND_LABEL: Record<ChunkKind, string> = {
  'in-use': 'in use',
  tcache: 'tcache',
  fastbin: 'fastbin',
  unsorted: 'unsorted bin',
  small: 'small bin',
  large: 'large bin',
  top: 'top chunk',
  mmapped: 'mmapped',
  fencepost: 'fencepost',
};
const KIND_NOTE: Record<ChunkKind, string> = {
  'in-use': 'held by the program',
  tcache: 'free, cached per size (still looks in use to its neighbours)',
  fastbin: 'free, in a fastbin (still looks in use until consolidated)',
  unsorted: 'free, waiting in the unsorted bin to be sorted or reused',
  small: 'free, in a small bin (one size per bin)',
  large: 'free, in a large bin (a range of sizes, largest first)',
  top: 'the free space at the end of the heap; malloc carves from it, brk grows it',
  mmapped: 'its own mapping: munmap gives it back on free',
  fencepost: 'a pseudo-chunk closing a heap region',
};
const SERIES = [
  { key: 'heap', label: 'heap (system_mem)', colour: '#3b82f6', fill: 'rgba(59,130,246,0.16)' },
  { key: 'mmapped', label: 'mmapped', colour: '#f97316', fill: 'rgba(249,115,22,0.18)' },
  { key: 'live', label: 'live bytes', colour: '#16a34a', fill: 'rgba(22,163,74,0.12)' },
  { key: 'footprint', label: 'footprint (heap + mmapped)', colour: '#111827', fill: '' },
] as const;
/** Thread arenas' shares of the heap, stacked on main_arena's (blue), by arena index from 1, round robin. */
const ARENA_COLOURS = ['#0891b2', '#7c3aed', '#db2777', '#65a30d', '#ca8a04', '#4f46e5', '#0d9488', '#be123c'];
const arenaColour = (index: number) => ARENA_COLOURS[(index - 1) % ARENA_COLOURS.length];
const arenaFill = (index: number) => `${arenaColour(index)}33`;
/** Threads in the lane, by row, round robin. */
const THREAD_COLOURS = ['#1d4ed8', '#c2410c', '#15803d', '#7e22ce', '#b91c1c', '#0e7490', '#a16207', '#be185d', '#4338ca', '#047857'];
const MMAP_T = '#dc2626';
const TRIM_T = '#7c3aed';

// ---- data ------------------------------------------------------------------------------------------------

interface Data {
  meta: ReportMeta;
  events: EventColumns;
  high: Record<string, Float64Array>;
  low: Record<string, Float64Array>;
  /** Per timeline point, the heap's part of its highest footprint (the mmapped area is stacked on it). */
  stackHeap: Float64Array;
  /** Per thread arena (index 1 on), its part of stackHeap at the same event (main_arena's is the rest). */
  stackArenas: Float64Array[];
  /** Triples: seq from which (−1: the start), mmap threshold, trim threshold. */
  thresholds: Float64Array;
  moves: Float64Array;
  checkpoints: Uint8Array[];
}

function base64Bytes(text: string): Uint8Array {
  const binary = atob(text.trim());
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function loadData(): Promise<Data> {
  const meta = JSON.parse(textOf('meta')) as ReportMeta;
  const raw = await gunzip(base64Bytes(textOf('payload')));
  const sections = unpackSections(raw);
  const get = (name: string) => {
    const section = sections.get(name);
    if (!section) throw new Error(`the report's data has no section ${name}`);
    return section;
  };
  const events = new EventColumns(meta.events, {
    ops: get('ops'),
    slots: get('slots'),
    nums: get('nums'),
    lines: get('lines'),
    ids: get('ids'),
    threads: get('threads'),
  });
  const stackArenas: Float64Array[] = [];
  for (let a = 1; a < meta.arenas; a++) stackArenas.push(float64Of(get(`stack.arena.${a}`)));
  const high: Record<string, Float64Array> = {};
  const low: Record<string, Float64Array> = {};
  for (const s of SERIES) {
    high[s.key] = float64Of(get(`high.${s.key}`));
    low[s.key] = float64Of(get(`low.${s.key}`));
  }
  const checkpoints: Uint8Array[] = [];
  for (let k = 1; k <= meta.checkpoints; k++) checkpoints.push(get(`checkpoint.${k}`));
  return {
    meta,
    events,
    high,
    low,
    stackHeap: float64Of(get('stack.heap')),
    stackArenas,
    thresholds: float64Of(get('thresholds')),
    moves: float64Of(get('moves')),
    checkpoints,
  };
}

// ---- the model, stepped ----------------------------------------------------------------------------------

/** What the page shows of one event. */
interface Step {
  seq: number;
  outcome: {
    where: ReplayOutcome['where'];
    chunk: number;
    offset: number;
    pointer: number;
    syscalls: Syscall[];
    mmapThreshold: SizeT;
    trimThreshold: SizeT;
    arenaIndex: number;
    heapIndex: number;
  };
  sentence: string;
  /** The chunk address the event is about: the block it returned, or the block it freed. */
  focus: number;
  replayer: Replayer;
}

class Engine {
  private replayer: Replayer;
  /** Events applied to `replayer`. */
  private applied = 0;

  constructor(private readonly data: Data) {
    this.replayer = this.fresh();
  }

  private fresh(): Replayer {
    const { policy, glibc, system, cores } = this.data.meta.setup;
    return new Replayer({ policy, glibc, system, cores, decisions: true });
  }

  /** Brings the model to just after event `seq`. */
  step(seq: number): Step {
    const { events, meta } = this.data;
    const every = meta.checkpointEvery;
    const k = Math.min(Math.floor(seq / every), this.data.checkpoints.length);
    if (this.applied > seq || this.applied < k * every) {
      this.replayer = k === 0 ? this.fresh() : restoreCheckpoint(this.data.checkpoints[k - 1], meta.setup, true);
      this.applied = k * every;
    }
    const r = this.replayer;
    while (this.applied < seq) r.apply(events.event(this.applied++));
    const event = events.event(seq);
    const before = captureBefore(r, event);
    let focus = -1;
    if (event.op === 'free' || (event.op === 'realloc' && event.wasLive)) {
      const p = r.chunkOfSlot(event.slot);
      if (p >= 0) focus = r.model.chunks.address[p];
    }
    const outcome = r.apply(event);
    this.applied++;
    if (outcome.pointer) focus = mem2chunk(outcome.pointer);
    let sentence: string;
    try {
      sentence = explainStep(before, event, outcome);
    } catch (error) {
      sentence = `${callText(event)} (no explanation: ${(error as Error).message})`;
    }
    return {
      seq,
      outcome: {
        where: outcome.where,
        chunk: outcome.chunk,
        offset: outcome.offset,
        pointer: outcome.pointer,
        syscalls: outcome.syscalls.slice(),
        mmapThreshold: outcome.mmapThreshold,
        trimThreshold: outcome.trimThreshold,
        arenaIndex: outcome.arenaIndex,
        heapIndex: outcome.heapIndex,
      },
      sentence,
      focus,
      replayer: r,
    };
  }
}

// ---- the timeline ----------------------------------------------------------------------------------------
//
// Drawn by hand on one canvas, not with a charting library. uPlot (1.6.32) was tried on this data in headless
// Chromium: it draws it as fast (under 20 ms), but it would replace only the generic third of this code (axes,
// ticks, scaling, step paths) and adds 51 KB, +58% to the script every self-contained report carries. The rest
// stays ours as its hooks: the mmapped area stacked on each bucket's heap, the log-scale threshold lane (a
// second chart whose plot area must be kept aligned by hand), thresholds past 2^47 drawn at the top, the move
// markers, the selection line and its label, the bucket tooltip, and the geometry the pixel tests read.

interface Plot {
  left: number;
  right: number;
  top: number;
  mainBottom: number;
  stripTop: number;
  stripBottom: number;
  /** The thread lane, under the threshold strip (both stripBottom in a trace without threads: no lane). */
  laneTop: number;
  laneBottom: number;
}

/** The thread lane's rows: the threads in order of first appearance, the main thread first. */
function laneRows(meta: ReportMeta): number[] {
  return meta.threads.length === 0 ? [] : [...new Set([1, ...meta.threads])];
}

class Timeline {
  private readonly canvas = $<HTMLCanvasElement>('timeline');
  private plot!: Plot;
  private hoverX = -1;
  private selected = 0;
  private base: HTMLCanvasElement | null = null;
  private dpr = 1;
  /** The thread lane's rows (thread numbers) and each row's height; no rows in a trace without threads. */
  private readonly rows: number[];
  private readonly rowH: number;
  /** The lane's height with its gap above (0: no lane). */
  private readonly lane: number;

  constructor(
    private readonly data: Data,
    private readonly pick: (seq: number) => void,
  ) {
    this.rows = laneRows(data.meta);
    const count = this.rows.length;
    this.rowH = count === 0 ? 0 : count <= 8 ? 11 : Math.max(2, Math.floor(88 / count));
    this.lane = count === 0 ? 0 : count * this.rowH + 10;
    // The lane adds to the canvas's height, so that the charts above it keep theirs.
    if (this.lane > 0) this.canvas.style.height = `${300 + this.lane}px`;
    const legend = $('timeline-legend');
    const arenas = data.stackArenas.length;
    const shownArenas = Math.min(arenas, 6);
    legend.innerHTML =
      SERIES.map((s) => {
        const label = arenas > 0 && s.key === 'heap' ? 'main_arena (system_mem)' : s.label;
        return s.fill
          ? `<span class="key"><span class="sw" style="background:${s.fill};border-color:${s.colour}"></span>${label}</span>`
          : `<span class="key"><span class="ln" style="border-color:${s.colour}"></span>${label}</span>`;
      }).join('') +
      Array.from(
        { length: shownArenas },
        (_, i) => `<span class="key"><span class="sw" style="background:${arenaFill(i + 1)};border-color:${arenaColour(i + 1)}"></span>arena ${i + 1}</span>`,
      ).join('') +
      (arenas > shownArenas ? `<span class="key">… arenas ${shownArenas + 1}–${arenas}</span>` : '') +
      `<span class="key"><span class="ln" style="border-color:${MMAP_T}"></span>mmap threshold</span>` +
      `<span class="key"><span class="ln dash" style="border-color:${TRIM_T}"></span>trim threshold</span>` +
      `<span class="key"><span style="color:${MMAP_T}">▼</span>threshold moved</span>` +
      (count > 0
        ? '<span class="key"><span class="sw" style="background:#1d4ed8"></span>thread lane: calls by each thread (faint: while it lives)</span>'
        : '');
    this.canvas.addEventListener('click', (e) => {
      const seq = this.seqAt(e.offsetX);
      if (seq >= 0) this.pick(seq);
    });
    this.canvas.addEventListener('mousemove', (e) => {
      this.hoverX = e.offsetX;
      this.drawOverlay();
      this.tooltip(e);
    });
    this.canvas.addEventListener('mouseleave', () => {
      this.hoverX = -1;
      this.drawOverlay();
      hideTooltip();
    });
    new ResizeObserver(() => this.draw()).observe(this.canvas);
  }

  /** The event under x (CSS pixels), or −1 outside the plot. */
  seqAt(x: number): number {
    const p = this.plot;
    if (!p || x < p.left - 4 || x > p.right + 4) return -1;
    const n = this.data.meta.events;
    const f = Math.min(1, Math.max(0, (x - p.left) / (p.right - p.left)));
    return Math.min(n - 1, Math.max(0, Math.floor(f * n)));
  }

  /** Where the page marks event `seq` (the selection line, the move markers): the middle of its span. */
  private eventX(seq: number): number {
    return this.xOf(seq + 0.5);
  }

  /** Event `seq` spans [xOf(seq), xOf(seq + 1)). */
  private xOf(seq: number): number {
    const p = this.plot;
    return p.left + (seq / this.data.meta.events) * (p.right - p.left);
  }

  setSelected(seq: number): void {
    this.selected = seq;
    this.drawOverlay();
  }

  draw(): void {
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    this.dpr = dpr;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (w === 0) return;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const g = context2d(canvas);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const lane = this.lane;
    const p: Plot = {
      left: 70,
      right: w - 14,
      top: 12,
      mainBottom: h - 104 - lane,
      stripTop: h - 84 - lane,
      stripBottom: h - 22 - lane,
      laneTop: h - 22 - lane + (lane > 0 ? 10 : 0),
      laneBottom: h - 22,
    };
    this.plot = p;
    canvas.dataset.plotLeft = String(p.left);
    canvas.dataset.plotRight = String(p.right);
    const { meta, high, low } = this.data;
    const n = meta.events;
    const width = meta.bucketWidth;
    const points = meta.buckets;
    // Main chart: bytes.
    const top = Math.max(meta.peaks.footprint, meta.peaks.live, 1) * 1.06;
    const step = niceStep(top / 4);
    const yMax = Math.ceil(top / step) * step;
    const yOf = (v: number) => p.mainBottom - (v / yMax) * (p.mainBottom - p.top);
    // The axes' geometry, for tests that read the drawing's pixels.
    Object.assign(canvas.dataset, {
      mainTop: String(p.top),
      mainBottom: String(p.mainBottom),
      stripTop: String(p.stripTop),
      stripBottom: String(p.stripBottom),
      yMax: String(yMax),
    });
    g.font = '11px system-ui, sans-serif';
    g.textBaseline = 'middle';
    g.strokeStyle = '#eef1f5';
    g.fillStyle = '#667085';
    g.lineWidth = 1;
    for (let v = 0; v <= yMax + 1e-9; v += step) {
      const y = Math.round(yOf(v)) + 0.5;
      g.beginPath();
      g.moveTo(p.left, y);
      g.lineTo(p.right, y);
      g.stroke();
      g.textAlign = 'right';
      g.fillText(bytes(v), p.left - 6, y);
    }
    // Point i holds events [i * width, (i + 1) * width): drawn as a step over that span.
    const xs = new Float64Array(points + 1);
    for (let i = 0; i <= points; i++) xs[i] = this.xOf(Math.min(n, i * width));
    const trace = (values: Float64Array, forward = true) => {
      if (forward) {
        for (let i = 0; i < points; i++) {
          const y = yOf(values[i]);
          if (i === 0) g.moveTo(xs[0], y);
          else g.lineTo(xs[i], y);
          g.lineTo(xs[i + 1], y);
        }
      } else {
        for (let i = points - 1; i >= 0; i--) {
          const y = yOf(values[i]);
          g.lineTo(xs[i + 1], y);
          g.lineTo(xs[i], y);
        }
      }
    };
    const line = (values: Float64Array, stroke: string, lw: number) => {
      g.beginPath();
      trace(values);
      g.strokeStyle = stroke;
      g.lineWidth = lw;
      g.lineJoin = 'round';
      g.stroke();
    };
    const area = (values: Float64Array, fill: string, stroke: string) => {
      g.beginPath();
      trace(values);
      g.lineTo(xs[points], yOf(0));
      g.lineTo(xs[0], yOf(0));
      g.closePath();
      g.fillStyle = fill;
      g.fill();
      line(values, stroke, 1.25);
    };
    const band = (lo: Float64Array, hi: Float64Array, fill: string) => {
      g.beginPath();
      trace(hi);
      trace(lo, false);
      g.closePath();
      g.fillStyle = fill;
      g.fill();
    };
    // Stacked: the heap from 0, the mmapped bytes on top of it, so that they end at the footprint line. With
    // thread arenas, main_arena's part of the heap from 0 and each thread arena's part on it, in order.
    const stackHeap = this.data.stackHeap;
    const stackArenas = this.data.stackArenas;
    if (stackArenas.length === 0) area(stackHeap, SERIES[0].fill, SERIES[0].colour);
    else {
      let below = stackHeap.map((total, i) => stackArenas.reduce((rest, arena) => rest - arena[i], total));
      area(below, SERIES[0].fill, SERIES[0].colour);
      stackArenas.forEach((arena, a) => {
        const above = below.map((v, i) => v + arena[i]);
        band(below, above, arenaFill(a + 1));
        line(above, arenaColour(a + 1), 1);
        below = above;
      });
    }
    band(stackHeap, high.footprint, SERIES[1].fill);
    if (width > 1) band(low.live, high.live, SERIES[2].fill);
    line(high.live, SERIES[2].colour, 1.5);
    line(high.footprint, SERIES[3].colour, 1.5);
    // Threshold moves across the main chart, faintly.
    const moves = this.data.moves;
    if (moves.length <= 400) {
      g.strokeStyle = 'rgba(220,38,38,0.18)';
      g.lineWidth = 1;
      for (const seq of moves) {
        const x = Math.round(this.eventX(seq)) + 0.5;
        g.beginPath();
        g.moveTo(x, p.top);
        g.lineTo(x, p.mainBottom);
        g.stroke();
      }
    }
    // The threshold strip: a log scale of its own.
    this.drawThresholds(g, p);
    if (this.rows.length > 0) this.drawLane(g, p);
    // x axis.
    g.fillStyle = '#667085';
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const xStep = decimalStep(n / 7 || 1);
    for (let s = 0; s < n; s += xStep) {
      const x = this.xOf(s + 0.5);
      g.fillText(int(s), x, p.laneBottom + 6);
      g.fillRect(Math.round(x), p.laneBottom, 1, 4);
    }
    g.textAlign = 'left';
    g.fillText('event', p.left - 62, p.laneBottom + 6);
    g.strokeStyle = '#d0d5dd';
    g.strokeRect(p.left + 0.5, p.top + 0.5, p.right - p.left, p.mainBottom - p.top);
    g.strokeRect(p.left + 0.5, p.stripTop + 0.5, p.right - p.left, p.stripBottom - p.stripTop);
    if (this.rows.length > 0) g.strokeRect(p.left + 0.5, p.laneTop + 0.5, p.right - p.left, p.laneBottom - p.laneTop);
    // Keep the drawing; the overlay (hover and selection lines) is redrawn over a copy of it.
    this.base ??= document.createElement('canvas');
    const base = this.base;
    base.width = canvas.width;
    base.height = canvas.height;
    context2d(base).drawImage(canvas, 0, 0);
    this.drawOverlay();
  }

  private drawThresholds(g: CanvasRenderingContext2D, p: Plot): void {
    const t = this.data.thresholds;
    // A threshold past the user address space (2^47 on x86-64; mallopt can set SIZE_MAX) is out of reach of any
    // request: its line runs along the top of the lane rather than stretching the log scale.
    const CAP = 2 ** 47;
    let lo = Infinity;
    let hi = 0;
    for (let i = 0; i < t.length; i += 3) {
      for (const v of [t[i + 1], t[i + 2]]) {
        if (v > 0 && v <= CAP) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
    }
    // Every threshold beyond any address (a mallopt of -1): the lines run along the top.
    if (!Number.isFinite(lo)) lo = hi = CAP;
    const l2lo = Math.floor(Math.log2(lo)) - 1;
    const l2hi = Math.max(l2lo + 3, Math.ceil(Math.log2(hi)) + 1);
    const yOf = (v: number) => {
      if (v > CAP) return p.stripTop + 3;
      const l = v <= 0 ? l2lo : Math.max(l2lo, Math.log2(v));
      return p.stripBottom - 3 - ((l - l2lo) / (l2hi - l2lo)) * (p.stripBottom - p.stripTop - 6);
    };
    g.fillStyle = '#fafbfc';
    g.fillRect(p.left, p.stripTop, p.right - p.left, p.stripBottom - p.stripTop);
    g.font = '10.5px system-ui, sans-serif';
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    g.fillStyle = '#667085';
    for (const l of new Set([l2lo + 1, l2hi - 1])) g.fillText(bytes(2 ** l), p.left - 6, yOf(2 ** l));
    g.save();
    g.translate(12, (p.stripTop + p.stripBottom) / 2);
    g.rotate(-Math.PI / 2);
    g.textAlign = 'center';
    g.fillText('thresholds', 0, 0);
    g.restore();
    const stepLine = (offset: number, colour: string, dash: number[]) => {
      g.beginPath();
      g.setLineDash(dash);
      let y = yOf(t[offset]);
      g.moveTo(p.left, y);
      for (let i = 3; i < t.length; i += 3) {
        // The value after event t[i]: it steps at that event's x, where the selection line and the marker are.
        const x = this.eventX(t[i]);
        g.lineTo(x, y);
        y = yOf(t[i + offset]);
        g.lineTo(x, y);
      }
      g.lineTo(p.right, y);
      g.strokeStyle = colour;
      g.lineWidth = 1.75;
      g.stroke();
      g.setLineDash([]);
    };
    stepLine(2, TRIM_T, [5, 3]);
    stepLine(1, MMAP_T, []);
    g.fillStyle = MMAP_T;
    for (const seq of this.data.moves) {
      const x = this.eventX(seq);
      g.beginPath();
      g.moveTo(x - 4, p.stripTop - 7);
      g.lineTo(x + 4, p.stripTop - 7);
      g.lineTo(x, p.stripTop - 1);
      g.closePath();
      g.fill();
    }
  }

  /**
   * The thread lane: a row per thread, a faint bar while the thread lives (from its spawn to its exit) and a
   * tick in each pixel column where it made a call. An event without a thread (before the trace's first
   * thread line) is the main thread's.
   */
  private drawLane(g: CanvasRenderingContext2D, p: Plot): void {
    const { events, meta } = this.data;
    const n = meta.events;
    const rows = this.rows;
    const rowOf = new Map(rows.map((t, r) => [t, r]));
    const columns = Math.max(1, Math.ceil(p.right - p.left));
    const marks = new Uint8Array(columns * rows.length);
    const born = new Float64Array(rows.length).fill(-1);
    const ended = new Float64Array(rows.length).fill(n);
    born[0] = 0;
    for (let seq = 0; seq < n; seq++) {
      const r = rowOf.get(events.thread[seq] || 1) ?? 0;
      const column = Math.min(columns - 1, Math.max(0, Math.floor(this.xOf(seq + 0.5) - p.left)));
      marks[r * columns + column] = 1;
      const op = events.opName(seq);
      if (op === 'spawn') {
        const spawned = rowOf.get(events.a[seq]);
        if (spawned !== undefined) born[spawned] = seq;
      } else if (op === 'exit') ended[r] = seq + 1;
    }
    g.fillStyle = '#fafbfc';
    g.fillRect(p.left, p.laneTop, p.right - p.left, p.laneBottom - p.laneTop);
    const h = this.rowH;
    const tick = Math.max(1, h - 1);
    rows.forEach((thread, r) => {
      const y = p.laneTop + r * h;
      const colour = THREAD_COLOURS[r % THREAD_COLOURS.length];
      if (born[r] >= 0) {
        g.fillStyle = `${colour}30`;
        g.fillRect(this.xOf(born[r]), y, this.xOf(ended[r]) - this.xOf(born[r]), tick);
      }
      g.fillStyle = colour;
      for (let c = 0; c < columns; c++) {
        if (!marks[r * columns + c]) continue;
        let end = c;
        while (end + 1 < columns && marks[r * columns + end + 1]) end++;
        g.fillRect(p.left + c, y, end - c + 1, tick);
        c = end;
      }
      if (h >= 9) {
        g.font = '10.5px system-ui, sans-serif';
        g.textAlign = 'right';
        g.textBaseline = 'middle';
        g.fillStyle = '#667085';
        g.fillText(`T${thread}`, p.left - 6, y + h / 2);
      }
    });
    if (p.laneBottom - p.laneTop >= 40) {
      g.save();
      g.fillStyle = '#667085';
      g.font = '10.5px system-ui, sans-serif';
      g.translate(12, (p.laneTop + p.laneBottom) / 2);
      g.rotate(-Math.PI / 2);
      g.textAlign = 'center';
      g.fillText('threads', 0, 0);
      g.restore();
    }
    Object.assign(this.canvas.dataset, {
      laneTop: String(p.laneTop),
      laneBottom: String(p.laneBottom),
      laneRows: rows.join(','),
      laneRowHeight: String(h),
    });
  }

  private drawOverlay(): void {
    const canvas = this.canvas;
    if (!this.base || !this.plot) return;
    const g = context2d(canvas);
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.drawImage(this.base, 0, 0);
    g.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    const p = this.plot;
    if (this.hoverX >= p.left && this.hoverX <= p.right) {
      g.strokeStyle = 'rgba(17,24,39,0.25)';
      g.lineWidth = 1;
      g.beginPath();
      g.moveTo(Math.round(this.hoverX) + 0.5, p.top);
      g.lineTo(Math.round(this.hoverX) + 0.5, p.laneBottom);
      g.stroke();
    }
    const x = Math.round(this.eventX(this.selected)) + 0.5;
    g.strokeStyle = '#111827';
    g.lineWidth = 1.5;
    g.beginPath();
    g.moveTo(x, p.top);
    g.lineTo(x, p.laneBottom);
    g.stroke();
    const label = `#${int(this.selected)}`;
    g.font = '600 11px system-ui, sans-serif';
    const tw = g.measureText(label).width + 10;
    const lx = Math.min(Math.max(x - tw / 2, p.left), p.right - tw);
    g.fillStyle = '#111827';
    g.beginPath();
    g.roundRect(lx, p.top, tw, 17, 4);
    g.fill();
    g.fillStyle = '#fff';
    g.textAlign = 'left';
    g.textBaseline = 'middle';
    g.fillText(label, lx + 5, p.top + 9);
  }

  private tooltip(e: MouseEvent): void {
    const seq = this.seqAt(e.offsetX);
    if (seq < 0) {
      hideTooltip();
      return;
    }
    const { meta, high, low, thresholds } = this.data;
    const i = Math.min(meta.buckets - 1, Math.floor(seq / meta.bucketWidth));
    const from = i * meta.bucketWidth;
    const to = Math.min(meta.events - 1, from + meta.bucketWidth - 1);
    let j = 0;
    while (j + 3 < thresholds.length && thresholds[j + 3] <= seq) j += 3;
    const range = from === to ? `event ${int(from)}` : `events ${int(from)}–${int(to)}`;
    const val = (key: string) =>
      high[key][i] === low[key][i] || meta.bucketWidth === 1 ? bytes(high[key][i]) : `${bytes(low[key][i])} – ${bytes(high[key][i])}`;
    showTooltip(
      e,
      `<div class="t">${range}</div>` +
        SERIES.map((s) => `<div><span class="k">${s.label}</span> <span class="m">${val(s.key)}</span></div>`).join('') +
        `<div><span class="k">mmap threshold</span> <span class="m">${bytes(meta.exactThresholds[j + 1] ?? thresholds[j + 1])}</span> <span class="k">trim</span> <span class="m">${bytes(meta.exactThresholds[j + 2] ?? thresholds[j + 2])}</span></div>` +
        (this.rows.length > 0
          ? `<div><span class="k">event ${int(seq)} by</span> <span class="m">thread ${this.data.events.thread[seq] || 1}</span> <span class="k">${escapeHtml(this.data.events.callText(seq))}</span></div>`
          : '') +
        `<div class="k">click to show event ${int(seq)}</div>`,
    );
  }
}

// ---- the heap map ----------------------------------------------------------------------------------------

interface Placed {
  chunk: ChunkInfo;
  /** Offset of the chunk in the map's byte space (regions are laid out one after another, each from a new row). */
  at: number;
}

/** A heap region and, in a thread arena, the heap it is (its chunks start after the heap's headers). */
interface Region {
  chunks: ChunkInfo[];
  heap: Heap | undefined;
}

/** Each arena's regions after a step (main_arena's brk heap and fallback mappings; a thread arena's heaps), walked once. */
const regionsByStep = new WeakMap<Step, Region[][]>();
function regionsOf(step: Step): Region[][] {
  let byArena = regionsByStep.get(step);
  if (byArena) return byArena;
  const model = step.replayer.model;
  byArena = model.arenas.map(() => []);
  for (const chunks of walkRegions(model.main)) {
    const heap = model.heapAt(chunks[0].address);
    byArena[heap?.arena?.index ?? 0].push({ chunks, heap });
  }
  regionsByStep.set(step, byArena);
  return byArena;
}

/** The legend of the heap maps and their zoom (one for all). */
function setUpHeapMaps(data: Data, maps: HeapMap[]): void {
  $('heap-legend').innerHTML =
    (Object.keys(KIND_COLOUR) as ChunkKind[])
      .map(
        (k) =>
          `<span class="key"><span class="sw" style="background:${k === 'top' ? `repeating-linear-gradient(135deg, ${KIND_COLOUR.top} 0 3px, #b6c2d2 3px 4.5px)` : KIND_COLOUR[k]}"></span>${KIND_LABEL[k]}</span>`,
      )
      .join('') +
    '<span class="key"><span class="sw" style="background:#fff;border:2px solid #111827"></span>this event\'s block</span>' +
    `<span class="key" title="the chunk nearest the top that malloc_trim cannot merge into it"><span class="sw" style="background:#fff;border:2px dashed ${PIN_COLOUR}"></span>the pin: the heap cannot shrink below it</span>` +
    `<span class="key" title="the heap starts at ${hex(data.meta.heapStart)}">addresses: +0x… from the heap start (hover one for its absolute address)</span>` +
    (maps.length > 1 ? '<span class="key">in a thread arena: +0x… from the start of its heap</span>' : '');
  $<HTMLSelectElement>('zoom').addEventListener('change', (e) => {
    const zoom = Number((e.target as HTMLSelectElement).value);
    for (const map of maps) map.setZoom(zoom);
  });
}

/**
 * The thread arenas' maps, below main_arena's: a title and a canvas for each arena the replay made (the
 * page shows an arena's map before it is made too, saying so, so that the layout does not jump).
 */
function arenaMapElements(arenas: number): { canvas: HTMLCanvasElement; scroll: HTMLElement; caption: HTMLElement }[] {
  const box = document.createElement('div');
  box.id = 'arena-maps';
  $('heap-card').appendChild(box);
  const title = document.createElement('h3');
  title.id = 'main-arena-title';
  title.textContent = 'main_arena';
  $('heap-card').querySelector('.maps')?.before(title);
  const out = [];
  for (let a = 1; a < arenas; a++) {
    box.insertAdjacentHTML(
      'beforeend',
      `<div class="arena-map" data-arena="${a}"><h3><span class="arena-key" style="background:${arenaFill(a)};border-color:${arenaColour(a)}"></span>arena ${a} <span class="muted arena-caption"></span></h3><div class="arena-scroll"><canvas class="heapmap"></canvas></div></div>`,
    );
    const el = box.lastElementChild as HTMLElement;
    out.push({
      canvas: el.querySelector('canvas') as HTMLCanvasElement,
      scroll: el.querySelector('.arena-scroll') as HTMLElement,
      caption: el.querySelector('.arena-caption') as HTMLElement,
    });
  }
  return out;
}

class HeapMap {
  private placed: Placed[] = [];
  private rowStarts: number[] = [];
  /** Per row, the address its label counts from: the heap start for main_arena, a thread heap's own start. */
  private rowOrigins: number[] = [];
  private bytesPerRow = 256; // layout() sets it from the heap's extent
  private gutter = 96;
  private mapWidth = 100;
  private readonly rowH = 16;
  private readonly rowGap = 3;
  private zoom = 1;
  private step: Step | null = null;
  private highlight = -1;
  /** The chunk that pins the heap (anatomy), outlined in its own colour; -1: none. */
  private pin = -1;

  constructor(
    private readonly data: Data,
    private readonly canvas: HTMLCanvasElement,
    private readonly scroll: HTMLElement,
    private readonly caption: HTMLElement,
    /** The arena shown (0: main_arena). */
    private readonly arena: number,
    /** Rows the map fits its regions into at zoom 1. */
    private readonly baseRows: number,
  ) {
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('click', (e) => {
      const found = this.chunkAt(e);
      if (found) this.onPick?.(found.chunk.address);
    });
    this.canvas.addEventListener('mouseleave', () => hideTooltip());
    new ResizeObserver(() => this.draw()).observe(this.scroll);
  }

  /** Called with a chunk's address when one is clicked (the hex view shows it). */
  onPick: ((address: number) => void) | null = null;

  setZoom(zoom: number): void {
    this.zoom = zoom;
    this.draw();
  }

  show(step: Step): void {
    this.step = step;
    this.draw();
  }

  setPin(address: number): void {
    this.pin = address;
  }

  setHighlight(address: number): void {
    this.highlight = address;
    this.draw();
  }

  draw(): void {
    const step = this.step;
    if (!step) return;
    const canvas = this.canvas;
    const model = step.replayer.model;
    const made = this.arena < model.arenas.length;
    const found = made ? regionsOf(step)[this.arena] : [];
    const regions = found.map((r) => r.chunks);
    const cssWidth = this.scroll.clientWidth - 2;
    if (cssWidth <= 0) return;
    this.mapWidth = cssWidth - this.gutter - 10;
    const total = regions.reduce((sum, r) => sum + extent(r), 0);
    const targetRows = this.baseRows * this.zoom;
    this.bytesPerRow = Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(1, total / targetRows))));
    // Lay the regions out, each from a fresh row, with a header line between them.
    this.placed = [];
    this.rowStarts = [];
    this.rowOrigins = [];
    const headers: { y: number; text: string }[] = [];
    let y = 6;
    let at = 0;
    const rowY = new Map<number, number>();
    regions.forEach((region, index) => {
      const start = region[0].address;
      const rows = Math.max(1, Math.ceil(extent(region) / this.bytesPerRow));
      const heap = found[index].heap;
      if (heap) {
        headers.push({ y, text: `heap ${heap.index}: ${bytes(heap.size)} in use, its chunks from +${hex(start - heap.base)}` });
        y += 18;
      } else if (regions.length > 1 || index > 0) {
        headers.push({ y, text: index === 0 ? `brk heap at ${offsetText(start)}` : `region ${index + 1}: mmap'ed heap at ${offsetText(start)} (sbrk failed)` });
        y += 18;
      }
      for (let r = 0; r < rows; r++) {
        rowY.set(at / this.bytesPerRow + r, y);
        this.rowStarts.push(start + r * this.bytesPerRow);
        this.rowOrigins.push(heap ? heap.base : -1);
        y += this.rowH + this.rowGap;
      }
      for (const chunk of region) this.placed.push({ chunk, at: at + (chunk.address - start) });
      at += rows * this.bytesPerRow;
    });
    const height = Math.max(60, y + 4);
    const dpr = window.devicePixelRatio || 1;
    canvas.style.height = `${height}px`;
    canvas.width = Math.round(cssWidth * dpr);
    canvas.height = Math.round(height * dpr);
    const g = context2d(canvas);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssWidth, height);
    this.rowYs = rowY;
    canvas.dataset.chunks = String(this.placed.length);
    canvas.dataset.bytesPerRow = String(this.bytesPerRow);
    if (regions.length === 0) {
      g.fillStyle = '#667085';
      g.font = 'italic 13px system-ui, sans-serif';
      const empty =
        this.arena === 0
          ? 'No heap yet: nothing has been carved from the program break.'
          : `Arena ${this.arena} is not made yet: a thread's first call makes it.`;
      g.fillText(empty, 12, 30);
      canvas.dataset.signature = 'empty';
      this.caption.textContent = made && this.arena > 0 ? arenaCaption(model.arenas[this.arena], step) : '';
      return;
    }
    g.font = '11px ui-monospace, Menlo, Consolas, monospace';
    g.textBaseline = 'middle';
    g.textAlign = 'right';
    g.fillStyle = '#667085';
    for (const [row, ry] of rowY) {
      const address = this.rowStarts[row];
      const origin = this.rowOrigins[row];
      g.fillText(origin >= 0 ? `+${hex(address - origin)}` : offsetText(address), this.gutter - 8, ry + this.rowH / 2);
    }
    g.textAlign = 'left';
    g.font = '600 11px system-ui, sans-serif';
    for (const h of headers) g.fillText(h.text, 6, h.y + 8);
    // Row backgrounds (address space past a region's end stays pale).
    g.fillStyle = '#f6f8fb';
    for (const ry of rowY.values()) g.fillRect(this.gutter, ry, this.mapWidth, this.rowH);
    let signature = 0;
    const stripes = topPattern(g);
    for (const { chunk, at } of this.placed) {
      g.fillStyle = chunk.kind === 'top' ? stripes : KIND_COLOUR[chunk.kind];
      this.segments(at, chunk.size, (x, w, ry) => g.fillRect(x, ry, Math.max(w, 1), this.rowH));
      signature = (Math.imul(signature, 31) + chunk.address + chunk.size * 7 + chunk.kind.length) | 0;
    }
    // Chunk boundaries where there is room for them.
    g.fillStyle = 'rgba(255,255,255,0.9)';
    const pxPerByte = this.mapWidth / this.bytesPerRow;
    for (const { chunk, at } of this.placed) {
      if (chunk.size * pxPerByte < 4) continue;
      this.segments(at, 1, (x, _w, ry) => g.fillRect(x, ry, 1, this.rowH));
    }
    // The event's block, and the chunk a bin chip points at.
    const outline = (address: number, colour: string, dash: number[]) => {
      const found = this.placed.find((p) => address >= p.chunk.address && address < p.chunk.address + Math.max(p.chunk.size, 1));
      if (!found) return;
      g.strokeStyle = colour;
      g.lineWidth = 2;
      g.setLineDash(dash);
      this.segments(found.at, found.chunk.size, (x, w, ry) => g.strokeRect(x + 1, ry + 1, Math.max(Math.max(w, 2) - 2, 1), this.rowH - 2));
      g.setLineDash([]);
    };
    if (this.pin >= 0) outline(this.pin, PIN_COLOUR, [6, 3]);
    if (step.focus >= 0) outline(step.focus, '#111827', []);
    if (this.highlight >= 0) outline(this.highlight, '#e11d48', [3, 2]);
    canvas.dataset.signature = `${this.placed.length}:${signature >>> 0}`;
    const sizes = `${chunksText(this.placed.length)} · ${bytes(total)} · ${bytes(this.bytesPerRow)} per row`;
    this.caption.textContent = this.arena === 0 ? sizes : `${arenaCaption(model.arenas[this.arena], step)} · ${sizes}`;
  }

  private rowYs = new Map<number, number>();

  /** Calls draw(x, width, rowY) for each row-piece of [at, at + size). */
  private segments(at: number, size: number, draw: (x: number, w: number, y: number) => void): void {
    const bpr = this.bytesPerRow;
    let pos = at;
    const end = at + size;
    while (pos < end) {
      const row = Math.floor(pos / bpr);
      const rowEnd = (row + 1) * bpr;
      const piece = Math.min(end, rowEnd) - pos;
      const ry = this.rowYs.get(row);
      if (ry !== undefined) draw(this.gutter + ((pos - row * bpr) / bpr) * this.mapWidth, (piece / bpr) * this.mapWidth, ry);
      pos += piece;
    }
  }

  private hover(e: MouseEvent): void {
    const found = this.chunkAt(e);
    if (found) showTooltip(e, chunkTooltip(found.chunk, this.data));
    else hideTooltip();
  }

  /** The placed chunk under the mouse, or null. */
  private chunkAt(e: MouseEvent): Placed | null {
    const x = e.offsetX - this.gutter;
    if (x < 0 || x > this.mapWidth) return null;
    let row = -1;
    for (const [r, ry] of this.rowYs) if (e.offsetY >= ry && e.offsetY < ry + this.rowH + this.rowGap) row = r;
    if (row < 0) return null;
    const at = row * this.bytesPerRow + (x / this.mapWidth) * this.bytesPerRow;
    // Binary search the placed chunks; widen to a pixel so that the thinnest chunks can be hovered.
    const slack = this.bytesPerRow / this.mapWidth;
    let lo = 0;
    let hi = this.placed.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.placed[mid].at <= at) lo = mid;
      else hi = mid - 1;
    }
    let found = this.placed[lo];
    if (!found || at > found.at + found.chunk.size + slack) return null;
    if (found.chunk.size < slack && lo + 1 < this.placed.length && this.placed[lo + 1].at - at < slack / 2) found = this.placed[lo + 1];
    return found;
  }
}

/** Who uses a thread arena now: its threads (thread_arena), or that it waits on the free list. */
function arenaCaption(arena: MallocState, step: Step): string {
  const model = step.replayer.model;
  const users = [...model.threads.values()].filter((t) => t.arena === arena).map((t) => t.id);
  let onFreeList = false;
  for (let a = model.freeList; a !== null; a = a.nextFree) if (a === arena) onFreeList = true;
  const who = users.length ? `thread${users.length > 1 ? 's' : ''} ${users.join(', ')}` : onFreeList ? 'on the free list' : 'no thread';
  return `${who} · system_mem ${bytes(arena.systemMem)}`;
}

/** The thread heap an address is in, for the page's texts (set for each event shown). */
let heapOf: (address: number) => Heap | undefined = () => undefined;

/** An address as the page prints it: in a thread heap, from that heap's start; else from the heap start. */
function placeText(address: number): string {
  const heap = heapOf(address);
  if (!heap) return offsetText(address);
  return `arena ${heap.arena?.index ?? '?'} heap ${heap.index} +${hex(address - heap.base)}`;
}

/** The top chunk's fill: pale diagonal stripes, free space that is not in any bin. */
function topPattern(g: CanvasRenderingContext2D): CanvasPattern | string {
  const tile = document.createElement('canvas');
  tile.width = 8;
  tile.height = 8;
  const t = context2d(tile);
  t.fillStyle = KIND_COLOUR.top;
  t.fillRect(0, 0, 8, 8);
  t.strokeStyle = '#b6c2d2';
  t.lineWidth = 1.5;
  t.beginPath();
  t.moveTo(-2, 10);
  t.lineTo(10, -2);
  t.moveTo(-2, 2);
  t.lineTo(2, -2);
  t.moveTo(6, 10);
  t.lineTo(10, 6);
  t.stroke();
  return g.createPattern(tile, 'repeat') ?? KIND_COLOUR.top;
}

function extent(region: ChunkInfo[]): number {
  const last = region[region.length - 1];
  return last.address + last.size - region[0].address;
}

function madeByText(seq: number, data: Data): string {
  if (seq < 0) return 'made by: no call (set up by the allocator)';
  const event = data.events.event(seq);
  return `made by #${int(seq)} (line ${int(event.line)}): <span class="m">${escapeHtml(callText(event))}</span>`;
}

function chunkTooltip(chunk: ChunkInfo, data: Data): string {
  const lead = chunk.lead ? `<div><span class="k">memalign gap before it</span> <span class="m">${int(chunk.lead)} bytes</span></div>` : '';
  return (
    `<div class="t"><span style="color:${KIND_COLOUR[chunk.kind]}">■</span> ${KIND_LABEL[chunk.kind]} <span class="k">· ${KIND_NOTE[chunk.kind]}</span></div>` +
    `<div><span class="k">chunk</span> <span class="m">${placeText(chunk.address)}</span> <span class="k">user ptr</span> <span class="m">${placeText(chunk.pointer)}</span>${chunk.kind === 'mmapped' ? ' <span class="k">(its own mapping)</span>' : ''}</div>` +
    `<div><span class="k">size</span> <span class="m">${hex(chunk.size)} (${bytes(chunk.size)})</span></div>` +
    `<div><span class="k">absolute chunk address</span> <span class="m">${hex(chunk.address)}</span></div>` +
    lead +
    `<div>${madeByText(chunk.madeBy, data)}</div>`
  );
}

// ---- mmapped blocks and bins ----------------------------------------------------------------------------

function drawMmapped(step: Step, data: Data, hover: (address: number) => void): void {
  const blocks = walkMmapped(step.replayer.model.main);
  const box = $('mmapped');
  $('mmap-count').textContent = blocks.length ? `${blocks.length} · ${bytes(blocks.reduce((s, b) => s + b.size, 0))}` : '';
  if (blocks.length === 0) {
    box.innerHTML = '<div class="empty">none</div>';
    return;
  }
  const largest = Math.max(...blocks.map((b) => b.size));
  const shown = blocks.slice(0, 300);
  box.innerHTML =
    shown
      .map((b, i) => {
        const current = step.focus >= b.address && step.focus < b.address + b.size;
        const width = Math.max(2, (Math.log2(b.size) / Math.log2(largest)) ** 4 * 100);
        return `<div class="mblock${current ? ' current' : ''}" data-i="${i}"><div><b>${bytes(b.size)}</b> <span class="muted">#${b.madeBy >= 0 ? int(b.madeBy) : '–'}</span></div><div class="bar" style="width:${width.toFixed(1)}%"></div><div>${addressHtml(b.address)}</div></div>`;
      })
      .join('') + (blocks.length > shown.length ? `<div class="empty">and ${blocks.length - shown.length} more</div>` : '');
  box.querySelectorAll<HTMLElement>('.mblock').forEach((el) => {
    const b = shown[Number(el.dataset.i)];
    el.addEventListener('mousemove', (e) => showTooltip(e, chunkTooltip(b, data)));
    el.addEventListener('mouseleave', () => {
      hideTooltip();
      hover(-1);
    });
  });
}

const CHIPS_SHOWN = 36;

/**
 * The arena an event is about: the one its block is in (returned, or freed), else the calling thread's
 * (main_arena in a trace without threads).
 */
function eventArena(step: Step): MallocState {
  const model = step.replayer.model;
  const o = step.outcome;
  if (o.where === 'heap') return model.arenas[o.arenaIndex] ?? model.main;
  const heap = step.focus >= 0 ? model.heapAt(step.focus) : undefined;
  return heap?.arena ?? model.thread.arena ?? model.main;
}

function drawBins(step: Step, data: Data, hover: (address: number) => void): void {
  const arena = eventArena(step);
  const view: BinsView = walkBins(arena);
  const model = step.replayer.model;
  const chips: ChunkInfo[] = [];
  const chipRow = (list: ChunkInfo[], kind: ChunkKind) =>
    `<span class="chips">${list
      .slice(0, CHIPS_SHOWN)
      .map((c) => {
        chips.push(c);
        const current = step.focus >= c.address && step.focus < c.address + c.size;
        return `<span class="c${current ? ' current' : ''}" data-chip="${chips.length - 1}" style="background:${KIND_COLOUR[kind]}"></span>`;
      })
      .join('')}${list.length > CHIPS_SHOWN ? `<span class="more">+${int(list.length - CHIPS_SHOWN)}</span>` : ''}</span>`;
  const row = (name: string, list: ChunkInfo[], kind: ChunkKind, title = '') =>
    `<div class="binrow"${title ? ` title="${escapeHtml(title)}"` : ''}><span class="name">${name}</span><span class="count">${list.length}</span>${chipRow(list, kind)}</div>`;
  const sum = (lists: { chunks: ChunkInfo[] }[]) => lists.reduce((s, l) => s + l.chunks.length, 0);
  const total = (lists: { chunks: ChunkInfo[] }[]) => lists.reduce((s, l) => s + l.chunks.reduce((t, c) => t + c.size, 0), 0);
  const group = (title: string, note: string, body: string, empty: string) =>
    `<div class="bingroup"><h3>${title} <span class="muted">${note}</span></h3>${body || `<div class="empty">${empty}</div>`}</div>`;
  const sizeRange = (list: ChunkInfo[]) => {
    const sizes = list.map((c) => c.size);
    const lo = Math.min(...sizes);
    const hi = Math.max(...sizes);
    return lo === hi ? hex(lo) : `${hex(lo)}–${hex(hi)}`;
  };
  const small = view.bins.filter((b) => b.kind === 'small');
  const large = view.bins.filter((b) => b.kind === 'large');
  const html = [
    group(
      'tcache',
      view.tcache.length
        ? `${chunksText(sum(view.tcache))} · ${bytes(total(view.tcache))} · up to ${model.mp.tcacheCount} per size`
        : `up to ${model.mp.tcacheCount} per size`,
      view.tcache.map((b) => row(hex(b.size ?? 0), b.chunks, 'tcache', `tcache bin ${b.index}: chunks of ${b.size} bytes, newest first`)).join(''),
      model.tcache.ready ? 'empty' : 'not set up yet (the first malloc makes it)',
    ),
    group(
      'fastbins',
      view.fastbins.length
        ? `${chunksText(sum(view.fastbins))} · ${bytes(total(view.fastbins))} · up to ${hex(model.mp.maxFast)}`
        : `chunks up to ${hex(model.mp.maxFast)}`,
      view.fastbins.map((b) => row(hex(b.size ?? 0), b.chunks, 'fastbin', `fastbin ${b.index}: newest first`)).join(''),
      'empty',
    ),
    group(
      'unsorted bin',
      view.unsorted.length ? `${chunksText(view.unsorted.length)} · ${bytes(view.unsorted.reduce((s, c) => s + c.size, 0))}` : '',
      view.unsorted.length ? row('unsorted', view.unsorted, 'unsorted', 'newest first; malloc scans from the oldest') : '',
      'empty',
    ),
    group(
      'small bins',
      small.length ? `${chunksText(sum(small))} · ${bytes(total(small))}` : '',
      small.map((b) => row(hex(b.size ?? 0), b.chunks, 'small', `small bin ${b.index}: chunks of ${b.size} bytes`)).join(''),
      'empty',
    ),
    group(
      'large bins',
      large.length ? `${chunksText(sum(large))} · ${bytes(total(large))}` : '',
      large.map((b) => row(`${b.index}: ${sizeRange(b.chunks)}`, b.chunks, 'large', `large bin ${b.index}, largest first`)).join(''),
      'empty',
    ),
    group(
      'top',
      '',
      `<div class="kv">${view.top.size ? `${addressHtml(view.top.address)} · ${hex(view.top.size)} (${bytes(view.top.size)})` : 'no top yet'}</div>` +
        (view.lastRemainder ? `<div class="kv muted">last_remainder ${addressHtml(view.lastRemainder)}</div>` : ''),
      '',
    ),
  ].join('');
  $('bins').innerHTML = html;
  $('bins-caption').textContent =
    data.meta.threads.length > 0
      ? `${arena.isMain ? 'main_arena' : `arena ${arena.index}`} · tcache of thread ${model.thread.id} · after event #${int(step.seq)}`
      : `after event #${int(step.seq)}`;
  $('bins')
    .querySelectorAll<HTMLElement>('[data-chip]')
    .forEach((el) => {
      const chunk = chips[Number(el.dataset.chip)];
      el.addEventListener('mouseenter', (e) => {
        hover(chunk.address);
        showTooltip(e, chunkTooltip(chunk, data));
      });
      el.addEventListener('mousemove', (e) => showTooltip(e, chunkTooltip(chunk, data)));
      el.addEventListener('mouseleave', () => {
        hover(-1);
        hideTooltip();
      });
    });
}

// ---- the event panel ---------------------------------------------------------------------------------------

function sentenceHtml(sentence: string): string {
  const colon = sentence.indexOf(': ');
  const call = colon < 0 ? sentence : sentence.slice(0, colon);
  let rest = colon < 0 ? '' : escapeHtml(sentence.slice(colon));
  rest = rest.replace(/→ ([^;→]*)/g, (_m, result: string) => `<span class="result${/NULL/.test(result) ? ' null' : ''}">→ ${result}</span>`);
  return `<span class="call">${escapeHtml(call)}</span>${rest}`;
}

// ---- where the footprint goes (the core's anatomy at the event picked) -------------------------------------

const PIN_COLOUR = '#dc2626';
/** The parts' colours: the heap map's for the free lists and the top, shades of them for the rest. */
const PART_COLOUR: Record<keyof FootprintParts, string> = {
  payload: KIND_COLOUR['in-use'],
  overhead: '#93c5fd',
  tcache: KIND_COLOUR.tcache,
  fastbins: KIND_COLOUR.fastbin,
  unsorted: KIND_COLOUR.unsorted,
  smallBins: KIND_COLOUR.small,
  largeBins: KIND_COLOUR.large,
  top: '#b6c2d2',
  mmapSlack: '#fdba74',
  tcacheStructs: '#4b5563',
  dtvs: '#6b7280',
  heapHeaders: '#374151',
  fenceposts: KIND_COLOUR.fencepost,
  brkGap: '#9ca3af',
};

/** Johnstone and Wilson's four measures, footprint over live bytes (docs/anatomy.md), for the header. */
function fragmentationText(m: ReportMeta['metrics']): string {
  const r = (x: number | null) => (x === null ? '—' : x.toFixed(2));
  return [m.averageFootprintOverAverageLive, m.footprintOverLiveAtPeakLive, m.peakFootprintOverLiveAtPeakFootprint, m.peakFootprintOverPeakLive]
    .map(r)
    .join(' · ');
}

/** What the anatomy card shows, kept for tests (window.mallocscope.anatomy). */
export interface PageAnatomy {
  seq: number;
  footprint: number;
  parts: FootprintParts;
  trimmable: { released: number; madvised: number };
  /** The chunk that pins main_arena's heap: its kind, chunk address, offset of its block, and maker. */
  pinned: { kind: HeapPin['kind']; address: number; offset: number; madeBy: number } | null;
}

/** Draws the anatomy card for the step and returns what it shows (the pin's address is for the heap map). */
function drawAnatomy(step: Step, data: Data, select: (seq: number) => void): PageAnatomy {
  const r = step.replayer;
  const m = r.model;
  const anatomy = footprintAnatomy(m, (visit) => r.forEachLive(visit));
  const trim = trimEstimate(r, { system: data.meta.setup.system });
  const pin = heapPin(m);
  const whole = anatomy.footprint;
  const shown = PART_NAMES.filter((name) => anatomy.parts[name] > 0);
  const pct = (n: number) => share(n, whole);
  $('anatomy-caption').textContent =
    `after event ${int(step.seq)}: footprint ${bytes(whole)}, the program holds ${bytes(anatomy.parts.payload)} (${pct(anatomy.parts.payload)})`;
  $('anatomy-bar').innerHTML = shown
    .map((name) => {
      const n = anatomy.parts[name];
      const title = escapeHtml(`${PART_LABELS[name]}: ${int(n)} bytes, ${pct(n)}`);
      return `<span data-part="${name}" data-bytes="${n}" title="${title}" style="flex:${n} 0 0;background:${PART_COLOUR[name]}"></span>`;
    })
    .join('');
  $('anatomy-legend').innerHTML = shown
    .map(
      (name) =>
        `<span class="key"><span class="sw" style="background:${PART_COLOUR[name]}"></span>${escapeHtml(PART_LABELS[name])} <b>${bytes(anatomy.parts[name])}</b> ${pct(anatomy.parts[name])}</span>`,
    )
    .join('');
  const trimText =
    trim.released + trim.madvised > 0
      ? `malloc_trim(0) now would give back ${bytes(trim.released + trim.madvised)}: ${bytes(trim.released)} from the top, ${bytes(trim.madvised)} advised away inside free chunks.`
      : 'malloc_trim(0) now would give back nothing.';
  let pinText = '';
  let pinned: PageAnatomy['pinned'] = null;
  if (pin !== null) {
    pinned = { kind: pin.kind, address: pin.address, offset: pin.pointer - m.system.heapStart, madeBy: pin.madeBy };
    const what = pin.kind === 'live' ? 'the live block' : pin.kind === 'tcache' ? 'a freed block waiting in a tcache' : 'a chunk glibc holds for itself';
    const maker = pin.madeBy >= 0 ? data.events.event(pin.madeBy) : null;
    const id = pin.kind === 'live' && maker !== null && 'id' in maker ? ` '${escapeHtml(maker.id)}'` : '';
    const made = pin.madeBy >= 0 ? ` made at <button type="button" id="pin-made">event ${int(pin.madeBy)}</button>` : '';
    pinText = ` The heap cannot shrink below <span style="color:${PIN_COLOUR};font-weight:600">${what}${id}</span> at ${escapeHtml(offsetText(pin.address))} (${bytes(pin.size)})${made}, outlined on the heap map; ${bytes(pin.freeAbove)} above it are free.`;
  }
  $('anatomy-note').innerHTML = `${escapeHtml(trimText)}${pinText}`;
  if (pin !== null && pin.madeBy >= 0) $('pin-made')?.addEventListener('click', () => select(pin.madeBy));
  return { seq: step.seq, footprint: whole, parts: { ...anatomy.parts }, trimmable: trim, pinned };
}

function drawEvent(step: Step, data: Data): void {
  const { events, meta } = data;
  const r = step.replayer;
  const threaded = meta.threads.length > 0;
  const a = threaded ? eventArena(step) : r.model.main;
  $('event-title').textContent = `Event #${int(step.seq)} of ${int(meta.events)}`;
  $('event-line').textContent = `trace line ${int(events.line[step.seq])}`;
  $('explanation').innerHTML = sentenceHtml(step.sentence);
  const o = step.outcome;
  const chip = (k: string, v: string, title = '') => `<span class="chip"${title ? ` title="${escapeHtml(title)}"` : ''}>${k} <b>${v}</b></span>`;
  const heapPlace = o.heapIndex >= 0 ? `arena ${o.arenaIndex} heap ${o.heapIndex} +${hex(o.offset)}` : `heap +${hex(o.offset)}`;
  const arenaName = a.isMain ? 'main_arena' : `arena ${a.index}`;
  const facts = [
    ...(threaded
      ? [
          chip('thread', String(events.thread[step.seq] || 1), 'the thread that made the call'),
          chip('arena', arenaName, "the arena the event's block is in, else the calling thread's"),
        ]
      : []),
    o.where === 'heap'
      ? chip('block', `${heapPlace} · chunk size ${hex(o.chunk)}`, `the pointer returned: ${hex(o.pointer)}`)
      : o.where === 'mmap'
        ? chip('block', `mmap · ${bytes(o.chunk)}`)
        : '',
    ...o.syscalls.map((s) => chip('syscall', syscallProse(s, bytes))),
    threaded
      ? chip(
          'heap',
          `${bytes(r.model.arenas.reduce((sum, arena) => sum + arena.systemMem, 0))} in ${r.model.arenas.length} arena${r.model.arenas.length === 1 ? '' : 's'}`,
          "every arena's system_mem: bytes the heaps hold from the kernel",
        )
      : chip('heap', bytes(a.systemMem), 'system_mem: bytes the heap holds from the kernel'),
    chip('mmapped', bytes(r.model.mp.mmappedMem), 'bytes in mmapped chunks'),
    chip('live', bytes(r.liveBytes), 'bytes the program asked for, in its live blocks'),
    chip(threaded ? `${arenaName}'s top` : 'top', bytes(a.topSize)),
    chip('mmap threshold', bytes(o.mmapThreshold)),
    chip('trim threshold', bytes(o.trimThreshold)),
  ];
  $('event-facts').innerHTML = facts.join('');
}

// ---- tooltip ---------------------------------------------------------------------------------------------

function showTooltip(e: MouseEvent, html: string): void {
  const tip = $('tooltip');
  tip.innerHTML = html;
  tip.hidden = false;
  const pad = 14;
  const w = tip.offsetWidth;
  const h = tip.offsetHeight;
  let x = e.clientX + pad;
  let y = e.clientY + pad;
  if (x + w > window.innerWidth - 4) x = e.clientX - w - pad;
  if (y + h > window.innerHeight - 4) y = e.clientY - h - pad;
  tip.style.left = `${Math.max(4, x)}px`;
  tip.style.top = `${Math.max(4, y)}px`;
}

function hideTooltip(): void {
  $('tooltip').hidden = true;
}

// ---- the page ------------------------------------------------------------------------------------------

/** The event a URL's fragment names ("#1234"): past the end, the last; anything else, the first. */
function seqOfHash(hash: string, events: number): number {
  const match = /^#(\d+)$/.exec(hash);
  return match ? Math.min(events - 1, Number(match[1])) : 0;
}

interface PageHandle {
  ready: boolean;
  loadMs: number;
  seq: number;
  error?: string;
  select(seq: number): void;
  /** Resolves once the event picked last is drawn. */
  drawn(): Promise<number>;
  /** The anatomy card's figures for the event drawn last. */
  anatomy?: PageAnatomy;
  /** What the hex view shows (drawn when its card is in view). */
  hex?: HexShown;
  /** Shows the chunk at `address` (a model address) in the hex view, as a click on the heap map does. */
  pick?(address: number): void;
}

declare global {
  interface Window {
    mallocscope: PageHandle;
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const data = await loadData();
  const { meta } = data;
  heapStart = meta.heapStart;
  const n = meta.events;
  const summary = [
    ['events', int(n)],
    ['glibc', meta.setup.glibc],
    ['policy', meta.policy],
    ['peak heap', bytes(meta.peaks.heap)],
    ['peak mmapped', bytes(meta.peaks.mmapped)],
    ['peak live', bytes(meta.peaks.live)],
    ['peak footprint', bytes(meta.peaks.footprint)],
    ['fragmentation #1–#4', fragmentationText(meta.metrics)],
    ['mmap threshold', `${bytes(meta.final.mmapThreshold)} (moved ${meta.thresholdMoves}×${meta.final.noDynThreshold ? ', sliding off' : ''})`],
    [
      'syscalls',
      Object.entries(meta.syscalls)
        .filter(([, c]) => c > 0)
        .map(([k, c]) => `${k} ${int(c)}`)
        .join(', ') || 'none',
    ],
  ];
  $('summary').innerHTML = summary.map(([k, v]) => `<span class="chip">${k} <b>${escapeHtml(v)}</b></span>`).join('');
  const checkpoints = meta.checkpoints
    ? `${meta.checkpoints} checkpoints every ${int(meta.checkpointEvery)} events`
    : 'replayed from the start (short enough for no checkpoint)';
  $('footer').textContent = `${int(n)} events · ${checkpoints} · timeline of ${int(meta.buckets)} points · made by mallocscope on ${meta.generated}`;
  if (n === 0) {
    $('event-title').textContent = 'This trace has no events.';
    window.mallocscope = { ready: true, loadMs: performance.now() - started, seq: -1, select() {}, drawn: async () => -1 };
    return;
  }

  const engine = new Engine(data);
  const slider = $<HTMLInputElement>('slider');
  const seqInput = $<HTMLInputElement>('seq');
  slider.max = String(n - 1);
  seqInput.max = String(n - 1);
  let current = 0;
  let pending = -1;
  let waiters: ((seq: number) => void)[] = [];
  let step: Step | null = null;
  // One map per arena: main_arena's in the card's own canvas (as in a report without threads), then each
  // thread arena's, with fewer rows each.
  const maps = [new HeapMap(data, $<HTMLCanvasElement>('heapmap'), $('heap-scroll'), $('heap-caption'), 0, 22)];
  if (meta.arenas > 1) {
    arenaMapElements(meta.arenas).forEach((el, i) => {
      maps.push(new HeapMap(data, el.canvas, el.scroll, el.caption, i + 1, 8));
    });
  }
  setUpHeapMaps(data, maps);
  // The hex view: computed only while its card is in view, and again only when the event or the chunk changes.
  let picked = -1;
  let hexDrawn = '';
  let hexVisible = false;
  const drawHex = () => {
    if (!step || !hexVisible) return;
    const address = picked >= 0 ? picked : step.focus;
    const key = `${step.seq}:${address}`;
    if (key === hexDrawn) return;
    hexDrawn = key;
    const view = hexView(step.replayer.model, step.seq, address);
    $('hex').innerHTML = view.html;
    handle.hex = view.shown;
  };
  new IntersectionObserver((entries) => {
    hexVisible = entries.some((e) => e.isIntersecting);
    drawHex();
  }).observe($('hex-card'));
  const pick = (address: number) => {
    picked = address;
    drawHex();
  };
  maps[0].onPick = pick;
  const hover = (address: number) => {
    for (const map of maps) map.setHighlight(address);
  };
  const render = () => {
    const seq = pending;
    pending = -1;
    if (seq < 0) return;
    step = engine.step(seq);
    const model = step.replayer.model;
    heapOf = (address) => model.heapAt(address);
    timeline.setSelected(seq);
    drawEvent(step, data);
    handle.anatomy = drawAnatomy(step, data, select);
    maps[0].setPin(handle.anatomy.pinned?.address ?? -1);
    for (const map of maps) map.show(step);
    drawMmapped(step, data, hover);
    drawBins(step, data, hover);
    picked = -1;
    drawHex();
    handle.seq = seq;
    showInUrl(seq);
    const done = waiters;
    waiters = [];
    for (const w of done) w(seq);
  };
  // The URL follows the event shown (report.html#1234), so that a link or a reload opens it again. It is
  // replaced, not pushed (dragging the slider would fill the history), and at most every 100 ms: browsers
  // refuse a flood of history updates.
  let urlTimer: ReturnType<typeof setTimeout> | undefined;
  let urlSeq = -1;
  const showInUrl = (seq: number) => {
    urlSeq = seq;
    if (urlTimer !== undefined) return;
    urlTimer = setTimeout(() => {
      urlTimer = undefined;
      if (location.hash !== `#${urlSeq}`) history.replaceState(history.state, '', `#${urlSeq}`);
    }, 100);
  };
  const select = (seq: number) => {
    seq = Math.max(0, Math.min(n - 1, Math.round(seq)));
    current = seq;
    slider.value = String(seq);
    if (document.activeElement !== seqInput) seqInput.value = String(seq);
    if (pending < 0) requestAnimationFrame(render);
    pending = seq;
  };
  const timeline = new Timeline(data, select);
  const handle: PageHandle = {
    ready: false,
    loadMs: 0,
    seq: -1,
    select,
    pick: (address: number) => {
      hexVisible = true;
      pick(address);
    },
    drawn: () => new Promise((resolve) => (pending < 0 && step ? resolve(handle.seq) : waiters.push(resolve))),
  };
  window.mallocscope = handle;

  slider.addEventListener('input', () => select(Number(slider.value)));
  seqInput.addEventListener('change', () => select(Number(seqInput.value)));
  $('prev').addEventListener('click', () => select(current - 1));
  $('next').addEventListener('click', () => select(current + 1));
  const moves = data.moves;
  $('next-move').addEventListener('click', () => {
    for (const m of moves) if (m > current) return select(m);
  });
  $('prev-move').addEventListener('click', () => {
    for (let i = moves.length - 1; i >= 0; i--) if (moves[i] < current) return select(moves[i]);
  });
  if (moves.length === 0) {
    $<HTMLButtonElement>('next-move').disabled = true;
    $<HTMLButtonElement>('prev-move').disabled = true;
  }
  document.addEventListener('keydown', (e) => {
    const target = e.target as HTMLElement;
    if (target === seqInput || target.tagName === 'SELECT') return;
    const big = Math.max(1, Math.round(n / 100));
    let next = -1;
    if (e.key === 'ArrowRight' || e.key === 'ArrowUp') next = current + (e.shiftKey ? 10 : 1);
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowDown') next = current - (e.shiftKey ? 10 : 1);
    else if (e.key === 'PageUp') next = current - big;
    else if (e.key === 'PageDown') next = current + big;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = n - 1;
    if (next < 0 && e.key !== 'Home') return;
    e.preventDefault();
    select(next);
  });

  window.addEventListener('hashchange', () => {
    const seq = seqOfHash(location.hash, n);
    if (seq !== current) select(seq);
  });

  timeline.draw();
  select(seqOfHash(location.hash, n));
  await handle.drawn();
  handle.loadMs = performance.now() - started;
  handle.ready = true;
  document.body.dataset.ready = 'true';
}

main().catch((error: Error) => {
  console.error(error);
  const title = document.getElementById('event-title');
  if (title) title.innerHTML = `<span class="error">The report could not be shown: ${escapeHtml(String(error?.message ?? error))}</span>`;
  window.mallocscope = { ready: false, loadMs: 0, seq: -1, error: String(error?.message ?? error), select() {}, drawn: async () => -1 };
});
