// A progress bar on stderr for long replays: only on a terminal (not TERM=dumb), only for trace files of
// more than about 100k events, its done part coloured as colour.ts decides, redrawn at most ten times a second, and erased when the work ends (or fails), so that piped
// output and error lines stay clean.
//
//   const progress = Progress.forTrace(path, 'replay');
//   try { for (const event of reader) { progress.tick(event); … } } finally { progress.done(); }
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { useColour, type ColourFlag } from './colour.ts';

/** Bytes sampled at the start of the file to estimate the bytes per line. */
const SAMPLE = 64 * 1024;
/** Traces estimated below this many events get no bar. */
const MIN_EVENTS = 100_000;
const REDRAW_MS = 100;

interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

export interface ProgressOptions {
  /** Where to draw; default process.stderr. */
  stream?: ProgressStream;
  /** Draw even if the stream is not a terminal (tests). */
  force?: boolean;
  /** Estimated events below which no bar is drawn; default 100000. */
  minEvents?: number;
  /** The clock, in milliseconds; default Date.now (tests pass their own). */
  clock?: () => number;
  /** --color / --no-color as given; otherwise the rules of colour.ts decide for the stream. */
  colour?: ColourFlag;
  /** The environment the rules read (NO_COLOR, FORCE_COLOR, TERM); default process.env. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Progress through a trace file, measured as the position in the file: the event's line number times the
 * bytes per line sampled from the file's first 64 KiB, over the file's size (an estimate that is exact for
 * traces of even line lengths and never goes past 99 % before done()).
 */
export class Progress {
  private lastDraw: number;
  private drawn = false;
  private readonly started: number;

  private constructor(
    private readonly stream: ProgressStream | null,
    private readonly label: string,
    private readonly totalLines: number,
    private readonly clock: () => number = Date.now,
    private readonly colour = false,
  ) {
    // No bar in the first REDRAW_MS: a replay that ends by then never flickers one.
    this.started = clock();
    this.lastDraw = this.started;
  }

  /** A bar that draws nothing (stdin, a pipe, a short trace). */
  static none(): Progress {
    return new Progress(null, '', 0);
  }

  /** A bar for replaying the trace at `path`, or a silent one when it should not be drawn. */
  static forTrace(path: string, label: string, options: ProgressOptions = {}): Progress {
    const stream = options.stream ?? process.stderr;
    const env = options.env ?? process.env;
    // The bar redraws itself with escape sequences: only on a terminal that understands them.
    if (path === '-' || (!options.force && (!stream.isTTY || env.TERM === 'dumb'))) return Progress.none();
    let size: number;
    let lines: number;
    try {
      const stat = statSync(path);
      if (!stat.isFile()) return Progress.none();
      size = stat.size;
      const fd = openSync(path, 'r');
      try {
        const buffer = Buffer.alloc(Math.min(SAMPLE, size));
        const got = readSync(fd, buffer, 0, buffer.length, 0);
        let newlines = 0;
        for (let i = 0; i < got; i++) if (buffer[i] === 10) newlines++;
        lines = got === 0 ? 0 : Math.round((size * Math.max(newlines, 1)) / got);
      } finally {
        closeSync(fd);
      }
    } catch {
      return Progress.none(); // the reader reports an unreadable file in its own words
    }
    if (lines < (options.minEvents ?? MIN_EVENTS)) return Progress.none();
    return new Progress(stream, label, lines, options.clock, useColour(stream, options.colour, env));
  }

  /** Whether this bar draws anything. */
  get active(): boolean {
    return this.stream !== null;
  }

  /** Called per event; cheap: looks at the clock once every 4096 events. */
  tick(event: { seq: number; line: number }): void {
    if (this.stream === null || (event.seq & 4095) !== 0) return;
    const now = this.clock();
    if (now - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = now;
    this.draw(this.stream, Math.min(0.99, event.line / this.totalLines), event.seq, now);
  }

  /** Erases the bar (call it in a finally block, before anything else is printed). */
  done(): void {
    if (this.stream && this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  private draw(stream: ProgressStream, fraction: number, events: number, now: number): void {
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - 50));
    const filled = Math.round(fraction * width);
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? events / seconds : 0;
    const left = fraction > 0 ? seconds * (1 / fraction - 1) : 0;
    const done = '█'.repeat(filled);
    const bar = `${this.colour && filled ? `\x1b[36m${done}\x1b[0m` : done}${'░'.repeat(width - filled)}`;
    const text = `${this.label} ${bar} ${(fraction * 100).toFixed(0).padStart(3)}%  ${events.toLocaleString('en')} events  ${formatRate(rate)}/s  ~${left.toFixed(0)} s left`;
    stream.write(`\r\x1b[2K${text}`);
    this.drawn = true;
  }
}

function formatRate(rate: number): string {
  if (rate >= 1e6) return `${(rate / 1e6).toFixed(1)}M`;
  if (rate >= 1e3) return `${(rate / 1e3).toFixed(0)}k`;
  return rate.toFixed(0);
}
