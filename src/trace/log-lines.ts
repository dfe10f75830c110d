// What every importer of another tool's log shares (mtrace.ts, heaptrack.ts, ltrace.ts, rep.ts): the log cut
// into lines from chunks of any size, errors that name the file and the line, the closing summary, and the
// streaming read of a file or of standard input, so that memory grows with the live blocks, not with the log.
import { createReadStream } from 'node:fs';
import { TraceError, errnoReason } from '../errors.ts';

/** What an import did, for the trailing comment and for callers that report it. */
export interface ImportSummary {
  /** Lines read from the log. */
  logLines: number;
  /** Calls written to the trace. */
  calls: number;
  /** Frees and reallocs of blocks the log never showed allocated (allocated before tracing started), skipped. */
  untracked: number;
  /** Allocations that failed (returned NULL) in the recorded run. */
  failed: number;
  /** Blocks still allocated at the end of the log. */
  liveAtEnd: number;
  /** The log was cut short (accepted on request): its last calls are missing. */
  truncated: boolean;
  /** ltrace: lines that name a call of the family but were another function's (ltrace misnames some PLT slots), skipped. */
  misnamed: number;
}

/** The longest log line accepted: mtrace's caller prefix holds a file name and a (mangled) symbol. */
export const MAX_LOG_LINE = 1 << 20;
/** Bytes read at a time. */
export const READ_CHUNK = 1 << 20;

const NEWLINE = 0x0a;

/**
 * Converts a log to trace text, one chunk at a time: {@link feed} the log's bytes in order, then call
 * {@link finish}. Each returns the trace text that is ready. A format implements {@link line} and
 * {@link end}; its errors are {@link TraceError}s naming the log and the 1-based line, with codes that start
 * with the format's prefix (MTRACE_, HEAPTRACK_, …).
 */
export abstract class LogConverter {
  /** The name errors give the log. */
  readonly file: string;
  protected readonly summary: ImportSummary = { logLines: 0, calls: 0, untracked: 0, failed: 0, liveAtEnd: 0, truncated: false, misnamed: 0 };
  /** Trace text not yet handed out. */
  protected out = '';
  private lineNumber = 0;
  /** The start of a line that the previous chunk cut. */
  private pending: Buffer | null = null;

  constructor(
    file: string,
    /** MTRACE, HEAPTRACK, …: the start of this format's error codes. */
    protected readonly codePrefix: string,
    header: readonly string[] = [],
  ) {
    this.file = file;
    for (const line of header) this.out += `# ${line}\n`;
  }

  /**
   * Handles the log line buf[start, end), without its `\n`. `unterminated`: the last line of a log that ends
   * without `\n` (a tool that died mid-line, or one that never ends its last line).
   */
  protected abstract line(buf: Buffer, start: number, end: number, lineNo: number, unterminated: boolean): void;

  /** The log has ended: checks that it is whole, and writes what is left (the closing comment). */
  protected abstract end(): void;

  /** Takes the next bytes of the log; returns the trace text they complete. */
  feed(chunk: Uint8Array): string {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let pos = 0;
    if (this.pending) {
      const nl = buf.indexOf(NEWLINE);
      if (nl < 0) {
        this.pending = Buffer.concat([this.pending, buf]);
        if (this.pending.length > MAX_LOG_LINE) this.tooLong();
        return this.take();
      }
      const line = Buffer.concat([this.pending, buf.subarray(0, nl)]);
      this.pending = null;
      this.next(line, 0, line.length, false);
      pos = nl + 1;
    }
    for (;;) {
      const nl = buf.indexOf(NEWLINE, pos);
      if (nl < 0) break;
      this.next(buf, pos, nl, false);
      pos = nl + 1;
    }
    if (pos < buf.length) {
      if (buf.length - pos > MAX_LOG_LINE) this.tooLong();
      this.pending = Buffer.from(buf.subarray(pos)); // a copy: the caller may reuse its buffer
    }
    return this.take();
  }

  /** Ends the log: reads a last line that has no newline, checks the log is whole; returns the last text. */
  finish(): ImportSummary & { text: string } {
    if (this.pending) {
      const line = this.pending;
      this.pending = null;
      this.next(line, 0, line.length, true);
    }
    this.end();
    return { ...this.summary, text: this.take() };
  }

  /**
   * The closing comment: `# end of WHAT: N calls from M log lines; …`, `untracked` naming one and several
   * skipped frees (`free of a block …`, `frees of blocks …`), with `more` clauses after the counts.
   */
  protected closing(what: string, untracked?: readonly [string, string], more: readonly string[] = []): string {
    const s = this.summary;
    return (
      `# end of ${what}: ${counted(s.calls, 'call', 'calls')} from ${counted(s.logLines, 'log line', 'log lines')}; ${counted(s.liveAtEnd, 'block', 'blocks')} still live` +
      (s.failed ? `; ${counted(s.failed, 'allocation', 'allocations')} failed in the recorded run` : '') +
      (s.untracked && untracked ? `; ${counted(s.untracked, ...untracked)} skipped` : '') +
      more.map((clause) => `; ${clause}`).join('') +
      '\n'
    );
  }

  protected fail(code: string, line: number, reason: string): never {
    throw new TraceError(code, this.file, line, reason);
  }

  private next(buf: Buffer, start: number, end: number, unterminated: boolean): void {
    const lineNo = ++this.lineNumber;
    this.summary.logLines = lineNo;
    this.line(buf, start, end, lineNo, unterminated);
  }

  private tooLong(): never {
    this.fail(`${this.codePrefix}_LINE_TOO_LONG`, this.lineNumber + 1, `line is longer than ${MAX_LOG_LINE} bytes`);
  }

  private take(): string {
    const text = this.out;
    this.out = '';
    return text;
  }
}

/** `1 call`, `2 calls`: a count and its noun, singular for 1. */
export function counted(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** A log line for an error message: quoted, at most 100 characters, control bytes shown as `?`. */
export function quote(buf: Buffer, start: number, end: number): string {
  return quoteText(buf.toString('latin1', start, Math.min(end, start + 101)));
}

/** The same for text already read as Latin-1 (one character a byte). */
export function quoteText(text: string): string {
  const shown = text.slice(0, 100).replace(/[\u0000-\u001f\u007f-\u00ff]/g, '?');
  return `'${shown}${text.length > 100 ? '…' : ''}'`;
}

/** Text from a log (a program name, a command line) for a trace comment: no control characters, not too long. */
export function commentText(text: string): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 1000 ? `${clean.slice(0, 1000)}…` : clean;
}

/** Converts a whole log held in memory (tests, small logs); a string is taken as Latin-1 bytes. */
export function convertAll(converter: LogConverter, log: string | Uint8Array): string {
  const text = converter.feed(typeof log === 'string' ? Buffer.from(log, 'latin1') : log);
  return text + converter.finish().text;
}

/** The bytes of a log: the file at `path` in READ_CHUNK pieces, or standard input for `-`. */
export function logSource(path: string): AsyncIterable<Buffer> & { destroy?: () => void } {
  return path === '-' ? process.stdin : createReadStream(path, { highWaterMark: READ_CHUNK });
}

/** How to read a log: what its read errors are called, what it is called, what its raw bytes need. */
export interface LogReadOptions {
  /** The code of an error that stops the read (a missing file, a directory): MTRACE_OPEN, … */
  openCode: string;
  /** The name errors give the log; default the path, `<stdin>` for `-`. */
  name?: string;
  /** Turns the raw bytes into the log's text bytes (heaptrack's compressed files). */
  decode?: (bytes: AsyncIterable<Buffer>, file: string) => AsyncIterable<Buffer>;
}

/**
 * Reads the log at `path` (`-` for standard input) through the converter `make` returns for its name, and
 * hands the trace text to `write` in pieces of about the size of a read chunk; waits for `write` when it
 * returns a promise (back-pressure).
 */
export async function importLog(
  path: string,
  make: (file: string) => LogConverter,
  write: (text: string) => void | Promise<void>,
  options: LogReadOptions,
): Promise<ImportSummary> {
  const file = options.name ?? (path === '-' ? '<stdin>' : path);
  const converter = make(file);
  const input = logSource(path);
  // What `write` throws (a closed pipe ends the command; a full disk) is the output's, not the log's.
  let writing = false;
  try {
    for await (const chunk of options.decode ? options.decode(input, file) : input) {
      const text = converter.feed(chunk as Buffer);
      writing = true;
      if (text) await write(text);
      writing = false;
    }
  } catch (error) {
    if (error instanceof TraceError || writing) throw error;
    throw new TraceError(options.openCode, file, 0, `cannot read: ${errnoReason(error)}`);
  } finally {
    if (input !== process.stdin) input.destroy?.();
  }
  const { text, ...summary } = converter.finish();
  await write(text);
  return summary;
}
