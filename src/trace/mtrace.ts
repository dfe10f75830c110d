// Imports a glibc mtrace log (docs/glibc.md §9) as a trace v1 (docs/trace-format.md), streaming, the log
// parsed as bytes (log-lines.ts reads it; pointer-ids.ts names its blocks).
import { parseHexDigits } from '../number.ts';
import { SIZE_LIMIT } from './glibc-calls.ts';
import { type ImportSummary, convertAll, importLog, quote } from './log-lines.ts';
import { type PointerKey, PointerLog } from './pointer-ids.ts';

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
export type MtraceSummary = ImportSummary;

/** The trace lines that stand for what the debug library and mtrace() allocate before `= Start` (§9). */
export const MTRACE_PREAMBLE = [
  '# preamble (--preamble): what glibc allocates before the first logged call (docs/glibc.md §9)',
  "malloc mtrace-hook-init 0     # the debug library's first call: __libc_free(__libc_malloc(0))",
  'free mtrace-hook-init',
  'malloc mtrace-log-FILE 472    # mtrace() opens the log with fopen: a FILE that stays live',
  '# end of preamble',
];

// Bytes the parser looks at.
const SPACE = 0x20;
const TAB = 0x09;
const CLOSE_BRACKET = 0x5d; // ']' ends the `@ caller[0x…] ` prefix
const AT = 0x40;
const EQUALS = 0x3d;

/**
 * Converts an mtrace log to trace text, one chunk at a time: {@link feed} the log's bytes in order, then
 * call {@link finish}. Each returns the trace text that is ready. Errors are {@link TraceError}s naming the
 * log file and the 1-based line.
 */
export class MtraceConverter extends PointerLog {
  protected readonly unknownBlock = 'allocated before tracing started';
  protected readonly reuseHint = 'was the log written by several threads or processes?';
  /** The line of a `<` whose `>` has not come yet, and its pointer. */
  private reallocLine = 0;
  private reallocOld: PointerKey | null = null;
  private sawStart = false;
  private readonly acceptTruncated: boolean;

  constructor(file: string, options: MtraceImportOptions = {}) {
    super(file, 'MTRACE', options.header);
    this.acceptTruncated = options.acceptTruncated ?? false;
    if (options.preamble) {
      this.out += `${MTRACE_PREAMBLE.join('\n')}\n`;
      this.summary.calls += 3;
    }
  }

  protected override end(): void {
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
    super.end();
    this.out += this.closing('mtrace log', ['free/realloc of a block from before tracing', 'frees/reallocs of blocks from before tracing']);
  }

  /**
   * Handles the log line buf[start, end). `unterminated`: the last line of a log that ends without `\n`.
   * mtrace ends every record with `\n`, so such a line was cut by a program that died (a signal, _exit())
   * before its log was flushed, even when what is left of it looks like a whole record.
   */
  protected line(buf: Buffer, start: number, end: number, lineNo: number, unterminated: boolean): void {
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
        this.move(this.reallocOld, this.pointer(buf, ptrStart, ptrEnd, lineNo), this.size(buf, sizeStart, sizeEnd, lineNo), lineNo);
        this.reallocOld = null;
        return;
      case 0x21: // '! old size': a realloc that failed; the old block stays
        this.expectFields(hasSize, true, buf, start, end, lineNo);
        this.failedRealloc(this.pointer(buf, ptrStart, ptrEnd, lineNo), this.size(buf, sizeStart, sizeEnd, lineNo), lineNo);
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
    this.allocated('', 'malloc', ptr, size, lineNo);
  }

  private release(ptr: PointerKey | null, lineNo: number): void {
    // realloc(NULL, 0) that returned NULL: a failed malloc(0).
    if (ptr === null) this.allocate(null, '0', lineNo);
    else this.freed('', ptr);
  }

  private move(old: PointerKey, ptr: PointerKey | null, size: string, lineNo: number): void {
    if (ptr === null) this.fail('MTRACE_BAD_NUMBER', lineNo, "'>' with a null pointer: mtrace logs a failed realloc as '!'");
    this.moved('', old, ptr, size, lineNo);
  }

  private failedRealloc(old: PointerKey | null, size: string, lineNo: number): void {
    // realloc(NULL, n) that failed: a failed malloc.
    if (old === null) this.allocate(null, size, lineNo);
    else this.reallocFailed('', old, size);
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
    if (typeof value === 'bigint' && value >= SIZE_LIMIT)
      this.fail('MTRACE_BAD_NUMBER', lineNo, `size is larger than 2^64-1: '${buf.toString('latin1', start, end)}'`);
    return String(value);
  }
}

function skipSpaces(buf: Buffer, p: number, end: number): number {
  while (p < end && (buf[p] === SPACE || buf[p] === TAB)) p++;
  return p;
}

/** Converts a whole log held in memory (tests, small logs). */
export function convertMtrace(log: string | Uint8Array, file = '<mtrace>', options: MtraceImportOptions = {}): string {
  return convertAll(new MtraceConverter(file, options), log);
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
  return importLog(path, (file) => new MtraceConverter(file, options), write, { openCode: 'MTRACE_OPEN', name: options.name });
}
