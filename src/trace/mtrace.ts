// Imports a glibc mtrace log (docs/glibc.md §9) as a trace v1 (docs/trace-format.md), streaming: the log is
// read in 1 MiB chunks and parsed as bytes, so memory grows with the number of live blocks, not with the log.
import { createReadStream } from 'node:fs';
import { TraceError } from '../errors.ts';
import { parseHexDigits } from '../number.ts';

/** Options of {@link MtraceConverter} and {@link importMtrace}. */
export interface MtraceImportOptions {
  /**
   * Start the trace with the allocations that glibc's debug library and mtrace() make before the log starts
   * (docs/glibc.md §9), so that a replay puts every block at the recorded program's heap offsets.
   */
  preamble?: boolean;
  /** Comment lines (without the leading `# `) to put at the top of the trace. */
  header?: readonly string[];
  /**
   * Accept a log cut short (a program killed by a signal, or ended with _exit() before mtrace flushed its
   * log): a half-written last line, or a realloc's `<` without its `>`, becomes a comment instead of the
   * error MTRACE_TRUNCATED.
   */
  acceptTruncated?: boolean;
}

/** What an import did, for the trailing comment and for callers that report it. */
export interface MtraceSummary {
  /** Lines read from the log. */
  logLines: number;
  /** Calls written to the trace (preamble included). */
  calls: number;
  /** Frees and reallocs of blocks allocated before tracing started, which the trace cannot name. */
  untracked: number;
  /** Allocations that failed (returned NULL) in the recorded run. */
  failed: number;
  /** Blocks still allocated at the end of the log. */
  liveAtEnd: number;
  /** The log was cut short (accepted with `acceptTruncated`): its last calls are missing. */
  truncated: boolean;
}

/** The trace lines that stand for what the debug library and mtrace() allocate before `= Start` (§9). */
export const MTRACE_PREAMBLE = [
  '# preamble (--preamble): what glibc allocates before the first logged call (docs/glibc.md §9)',
  "malloc mtrace-hook-init 0     # the debug library's first call: __libc_free(__libc_malloc(0))",
  'free mtrace-hook-init',
  'malloc mtrace-log-FILE 472    # mtrace() opens the log with fopen: a FILE that stays live',
  '# end of preamble',
];

/** The longest log line accepted: mtrace's caller prefix holds a file name and a (mangled) symbol. */
const MAX_LOG_LINE = 1 << 20;
const READ_CHUNK = 1 << 20;

// Bytes the parser looks at.
const NEWLINE = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;
const CLOSE_BRACKET = 0x5d; // ']' ends the `@ caller[0x…] ` prefix
const AT = 0x40;
const EQUALS = 0x3d;

/** A pointer as a Map key: a number below 2^53 (every x86-64 user address), else a bigint (both exact). */
type PointerKey = number | bigint;

/** A live block: the trace ID it has, and the log line that created it (for error messages). */
interface LiveBlock {
  id: string;
  line: number;
}

/**
 * Converts an mtrace log to trace text, one chunk at a time: {@link feed} the log's bytes in order, then
 * call {@link finish}. Each returns the trace text that is ready. Errors are {@link TraceError}s naming the
 * log file and the 1-based line.
 */
export class MtraceConverter {
  /** The name errors give the log. */
  readonly file: string;
  private readonly live = new Map<PointerKey, LiveBlock>();
  private nextId = 1;
  private lineNumber = 0;
  /** The start of a line that the previous chunk cut. */
  private pending: Buffer | null = null;
  private out = '';
  /** The line of a `<` whose `>` has not come yet, and its pointer. */
  private reallocLine = 0;
  private reallocOld: PointerKey | null = null;
  private sawStart = false;
  private readonly acceptTruncated: boolean;
  private readonly summary: MtraceSummary = { logLines: 0, calls: 0, untracked: 0, failed: 0, liveAtEnd: 0, truncated: false };

  constructor(file: string, options: MtraceImportOptions = {}) {
    this.file = file;
    this.acceptTruncated = options.acceptTruncated ?? false;
    for (const line of options.header ?? []) this.out += `# ${line}\n`;
    if (options.preamble) {
      this.out += `${MTRACE_PREAMBLE.join('\n')}\n`;
      this.summary.calls += 3;
    }
  }

  /** Takes the next bytes of the log; returns the trace text they complete. */
  feed(chunk: Uint8Array): string {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let pos = 0;
    if (this.pending) {
      const nl = buf.indexOf(NEWLINE);
      if (nl < 0) {
        this.pending = Buffer.concat([this.pending, buf]);
        if (this.pending.length > MAX_LOG_LINE) this.fail('MTRACE_LINE_TOO_LONG', this.lineNumber + 1, `line is longer than ${MAX_LOG_LINE} bytes`);
        return this.take();
      }
      const line = Buffer.concat([this.pending, buf.subarray(0, nl)]);
      this.pending = null;
      this.line(line, 0, line.length, false);
      pos = nl + 1;
    }
    for (;;) {
      const nl = buf.indexOf(NEWLINE, pos);
      if (nl < 0) break;
      this.line(buf, pos, nl, false);
      pos = nl + 1;
    }
    if (pos < buf.length) {
      if (buf.length - pos > MAX_LOG_LINE) this.fail('MTRACE_LINE_TOO_LONG', this.lineNumber + 1, `line is longer than ${MAX_LOG_LINE} bytes`);
      this.pending = Buffer.from(buf.subarray(pos)); // a copy: the caller may reuse its buffer
    }
    return this.take();
  }

  /** Ends the log: reads a last line that has no newline, checks the log is whole; returns the last text. */
  finish(): MtraceSummary & { text: string } {
    if (this.pending) {
      const line = this.pending;
      this.pending = null;
      this.line(line, 0, line.length, true);
    }
    if (!this.sawStart) {
      this.fail('MTRACE_EMPTY', 0, "the log is empty: the program never started mtrace (no '= Start' line)");
    }
    if (this.reallocOld !== null && this.acceptTruncated) {
      this.out += `# the log ends after a realloc's '<' line (line ${this.reallocLine}) without its '>' line: the program ended before its log was flushed\n`;
      this.summary.truncated = true;
    } else if (this.reallocOld !== null) {
      this.fail(
        'MTRACE_TRUNCATED',
        this.reallocLine,
        "the log ends after a realloc's '<' line without its '>' line: the program died before its log was flushed",
      );
    }
    this.summary.liveAtEnd = this.live.size;
    const s = this.summary;
    this.out +=
      `# end of mtrace log: ${s.calls} calls from ${s.logLines} log lines; ${s.liveAtEnd} blocks still live` +
      (s.failed ? `; ${s.failed} allocations failed in the recorded run` : '') +
      (s.untracked ? `; ${s.untracked} frees/reallocs of blocks from before tracing skipped` : '') +
      '\n';
    return { ...s, text: this.take() };
  }

  private take(): string {
    const text = this.out;
    this.out = '';
    return text;
  }

  private newId(): string {
    return `b${this.nextId++}`;
  }

  /**
   * Handles the log line buf[start, end). `unterminated`: the last line of a log that ends without `\n`.
   * mtrace ends every record with `\n`, so such a line was cut by a program that died (a signal, _exit())
   * before its log was flushed, even when what is left of it looks like a whole record.
   */
  private line(buf: Buffer, start: number, end: number, unterminated: boolean): void {
    const lineNo = ++this.lineNumber;
    this.summary.logLines = lineNo;
    if (!unterminated) {
      this.record(buf, start, end, lineNo);
    } else if (this.acceptTruncated) {
      this.out += `# the log ends in the middle of line ${lineNo}: the program ended before its log was flushed\n`;
      this.summary.truncated = true;
    } else {
      this.fail(
        'MTRACE_TRUNCATED',
        lineNo,
        `the log ends in the middle of a line (${quote(buf, start, end)}, no newline): the program died before its log was flushed`,
      );
    }
  }

  private record(buf: Buffer, start: number, end: number, lineNo: number): void {
    const first = buf[start];
    if (first === EQUALS) {
      const text = buf.toString('latin1', start, end);
      if (text === '= Start') {
        if (this.sawStart) {
          this.fail(
            'MTRACE_RESTART',
            lineNo,
            "a second '= Start': several processes wrote this log (a program that forks or execs), or it restarted mtrace; mtrace follows one process: record that process directly",
          );
        }
        this.sawStart = true;
        return;
      }
      if (text === '= End') return;
      this.fail('MTRACE_BAD_LINE', lineNo, `not an mtrace line: ${quote(buf, start, end)}`);
    }
    if (!this.sawStart) {
      this.fail('MTRACE_NO_START', lineNo, "the log does not begin with '= Start': not an mtrace log, or several processes wrote it");
    }
    // `@ caller ` prefix: it ends at the last "] " (the record itself never holds ']').
    let rec = start;
    if (first === AT) {
      let i = end - 1;
      while (i > start && !(buf[i] === SPACE && buf[i - 1] === CLOSE_BRACKET)) i--;
      if (i <= start) this.fail('MTRACE_BAD_LINE', lineNo, `caller prefix '@ …[0x…] ' not closed: ${quote(buf, start, end)}`);
      rec = i + 1;
    }
    // The record: an operator character, then one or two fields separated by spaces.
    const op = buf[rec];
    if (rec + 1 >= end || (buf[rec + 1] !== SPACE && buf[rec + 1] !== TAB)) {
      this.fail('MTRACE_BAD_LINE', lineNo, `not an mtrace record: ${quote(buf, start, end)}`);
    }
    let p = skipSpaces(buf, rec + 2, end);
    const ptrStart = p;
    while (p < end && buf[p] !== SPACE && buf[p] !== TAB) p++;
    const ptrEnd = p;
    p = skipSpaces(buf, p, end);
    const sizeStart = p;
    while (p < end && buf[p] !== SPACE && buf[p] !== TAB) p++;
    const sizeEnd = p;
    if (skipSpaces(buf, p, end) !== end) this.fail('MTRACE_BAD_LINE', lineNo, `too many fields: ${quote(buf, start, end)}`);
    const hasSize = sizeEnd > sizeStart;
    if (ptrEnd === ptrStart) this.fail('MTRACE_BAD_LINE', lineNo, `a record without its pointer: ${quote(buf, start, end)}`);

    if (this.reallocOld !== null && op !== 0x3e) {
      this.fail('MTRACE_UNPAIRED', lineNo, `a realloc's '<' line (line ${this.reallocLine}) is not followed by its '>' line`);
    }
    switch (op) {
      case 0x2b: // '+ ptr size': malloc, calloc, memalign & co., realloc(NULL, n)
        this.expectFields(hasSize, true, buf, start, end, lineNo);
        this.allocate(this.pointer(buf, ptrStart, ptrEnd, lineNo), this.size(buf, sizeStart, sizeEnd, lineNo), lineNo);
        return;
      case 0x2d: // '- ptr': free, realloc(p, 0)
        this.expectFields(hasSize, false, buf, start, end, lineNo);
        this.release(this.pointer(buf, ptrStart, ptrEnd, lineNo), lineNo);
        return;
      case 0x3c: // '< old': first half of a realloc that returned a block
        this.expectFields(hasSize, false, buf, start, end, lineNo);
        {
          const old = this.pointer(buf, ptrStart, ptrEnd, lineNo);
          if (old === null) this.fail('MTRACE_BAD_NUMBER', lineNo, "'<' with a null pointer: mtrace logs realloc(NULL, n) as '+'");
          this.reallocOld = old;
          this.reallocLine = lineNo;
        }
        return;
      case 0x3e: // '> new size': second half
        this.expectFields(hasSize, true, buf, start, end, lineNo);
        if (this.reallocOld === null) this.fail('MTRACE_UNPAIRED', lineNo, "a realloc's '>' line without the '<' line before it");
        this.moved(this.reallocOld, this.pointer(buf, ptrStart, ptrEnd, lineNo), this.size(buf, sizeStart, sizeEnd, lineNo), lineNo);
        this.reallocOld = null;
        return;
      case 0x21: // '! old size': a realloc that failed; the old block stays
        this.expectFields(hasSize, true, buf, start, end, lineNo);
        this.failedRealloc(this.pointer(buf, ptrStart, ptrEnd, lineNo), this.size(buf, sizeStart, sizeEnd, lineNo));
        return;
      default:
        this.fail('MTRACE_BAD_LINE', lineNo, `unknown mtrace record ${quote(buf, rec, rec + 1)} (expected +, -, <, > or !): ${quote(buf, start, end)}`);
    }
  }

  private expectFields(hasSize: boolean, wantSize: boolean, buf: Buffer, start: number, end: number, lineNo: number): void {
    if (hasSize !== wantSize) {
      this.fail('MTRACE_BAD_LINE', lineNo, `${wantSize ? 'a pointer and a size' : 'one pointer'} expected: ${quote(buf, start, end)}`);
    }
  }

  private allocate(ptr: PointerKey | null, size: string, lineNo: number): void {
    const id = this.newId();
    this.summary.calls++;
    if (ptr === null) {
      // The ID stays live in the trace (the format's rule for failed calls) and is never freed.
      this.summary.failed++;
      this.out += `malloc ${id} ${size}    # failed (NULL) in the recorded run\n`;
      return;
    }
    const known = this.live.get(ptr);
    if (known) this.ptrLive(ptr, known, lineNo);
    this.live.set(ptr, { id, line: lineNo });
    this.out += `malloc ${id} ${size}\n`;
  }

  private release(ptr: PointerKey | null, lineNo: number): void {
    if (ptr === null) {
      // realloc(NULL, 0) that returned NULL: a failed malloc(0).
      this.allocate(null, '0', lineNo);
      return;
    }
    const block = this.live.get(ptr);
    if (!block) {
      this.summary.untracked++;
      this.out += `# free of ${pointerText(ptr)}, allocated before tracing started: skipped\n`;
      return;
    }
    this.live.delete(ptr);
    this.summary.calls++;
    this.out += `free ${block.id}\n`;
  }

  private moved(old: PointerKey, ptr: PointerKey | null, size: string, lineNo: number): void {
    if (ptr === null) this.fail('MTRACE_BAD_NUMBER', lineNo, "'>' with a null pointer: mtrace logs a failed realloc as '!'");
    const block = this.live.get(old);
    if (!block) {
      this.summary.untracked++;
      this.out += `# realloc of ${pointerText(old)}, allocated before tracing started: imported as a malloc\n`;
      this.allocate(ptr, size, lineNo);
      return;
    }
    this.live.delete(old);
    const other = this.live.get(ptr);
    if (other) this.ptrLive(ptr, other, lineNo);
    this.live.set(ptr, { id: block.id, line: lineNo });
    this.summary.calls++;
    this.out += `realloc ${block.id} ${size}\n`;
  }

  private failedRealloc(old: PointerKey | null, size: string): void {
    if (old === null) {
      this.allocate(null, size, this.lineNumber); // realloc(NULL, n) that failed: a failed malloc
      return;
    }
    this.summary.failed++;
    const block = this.live.get(old);
    if (!block) {
      this.summary.untracked++;
      this.out += `# failed realloc of ${pointerText(old)} to ${size} bytes, a block from before tracing started: skipped\n`;
      return;
    }
    this.summary.calls++;
    this.out += `realloc ${block.id} ${size}    # failed (NULL) in the recorded run; the block stayed live\n`;
  }

  private ptrLive(ptr: PointerKey, block: LiveBlock, lineNo: number): never {
    this.fail(
      'MTRACE_PTR_LIVE',
      lineNo,
      `${pointerText(ptr)} is returned again while still allocated (since line ${block.line}): was the log written by several threads or processes?`,
    );
  }

  /** A `%p` field: `(nil)` is null; else 0x and at most 16 hex digits (exact: a bigint from 2^53 on). */
  private pointer(buf: Buffer, start: number, end: number, lineNo: number): PointerKey | null {
    if (end - start === 5 && buf.toString('latin1', start, end) === '(nil)') return null;
    const value = end - start <= 18 && buf[start] === 0x30 && buf[start + 1] === 0x78 ? parseHexDigits(buf, start + 2, end) : undefined;
    if (value === undefined) this.fail('MTRACE_BAD_NUMBER', lineNo, `pointer is not 0x-hexadecimal or (nil): '${buf.toString('latin1', start, end)}'`);
    return value;
  }

  /** A `%#lx` size: `0`, or 0x and hex digits; returned as the trace's decimal text. */
  private size(buf: Buffer, start: number, end: number, lineNo: number): string {
    if (end - start === 1 && buf[start] === 0x30) return '0';
    const value = end - start > 2 && buf[start] === 0x30 && buf[start + 1] === 0x78 ? parseHexDigits(buf, start + 2, end) : undefined;
    if (value === undefined) this.fail('MTRACE_BAD_NUMBER', lineNo, `size is not 0x-hexadecimal or 0: '${buf.toString('latin1', start, end)}'`);
    if (typeof value === 'bigint' && value >= 1n << 64n)
      this.fail('MTRACE_BAD_NUMBER', lineNo, `size is larger than 2^64-1: '${buf.toString('latin1', start, end)}'`);
    return String(value);
  }

  private fail(code: string, line: number, reason: string): never {
    throw new TraceError(code, this.file, line, reason);
  }
}

function skipSpaces(buf: Buffer, p: number, end: number): number {
  while (p < end && (buf[p] === SPACE || buf[p] === TAB)) p++;
  return p;
}

function pointerText(ptr: PointerKey): string {
  return `0x${ptr.toString(16)}`;
}

/** A log line for an error message: quoted, at most 100 characters, control bytes shown as `?`. */
function quote(buf: Buffer, start: number, end: number): string {
  const text = buf.toString('latin1', start, Math.min(end, start + 100)).replace(/[\u0000-\u001f\u007f-\u00ff]/g, '?');
  return `'${text}${end - start > 100 ? '…' : ''}'`;
}

/** Converts a whole log held in memory (tests, small logs). */
export function convertMtrace(log: string | Uint8Array, file = '<mtrace>', options: MtraceImportOptions = {}): string {
  const converter = new MtraceConverter(file, options);
  const text = converter.feed(typeof log === 'string' ? Buffer.from(log, 'latin1') : log);
  return text + converter.finish().text;
}

/**
 * Imports the mtrace log at `path` (`-` for standard input) and hands the trace text to `write` in pieces
 * of about the size of a read chunk; waits for `write` when it returns a promise (back-pressure).
 */
export async function importMtrace(
  path: string,
  write: (text: string) => void | Promise<void>,
  options: MtraceImportOptions & { name?: string } = {},
): Promise<MtraceSummary> {
  const name = options.name ?? (path === '-' ? '<stdin>' : path);
  const converter = new MtraceConverter(name, options);
  const input = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: READ_CHUNK });
  try {
    for await (const chunk of input) {
      const text = converter.feed(chunk as Buffer);
      if (text) await write(text);
    }
  } catch (error) {
    if (error instanceof TraceError) throw error;
    const errno = error as NodeJS.ErrnoException;
    const reason =
      errno.code === 'ENOENT'
        ? 'no such file or directory'
        : errno.code === 'EISDIR'
          ? 'is a directory'
          : errno.code === 'EACCES'
            ? 'permission denied'
            : errno.message;
    throw new TraceError('MTRACE_OPEN', name, 0, `cannot read: ${reason}`);
  } finally {
    if (input !== process.stdin) input.destroy();
  }
  const { text, ...summary } = converter.finish();
  await write(text);
  return summary;
}
