// Imports heaptrack's raw output (`heaptrack --raw`: the lines libheaptrack writes before heaptrack_interpret
// reads them) as a trace v1: `+ SIZE TRACE PTR` is an allocation, `- PTR` a free, numbers in hexadecimal
// without 0x. heaptrack's default output, interpreted, is refused: its frees name an allocation site, not a block.
import { parseHexDigits } from '../number.ts';
import { decompressed } from './decompress.ts';
import { type ImportSummary, commentText, convertAll, importLog, quote } from './log-lines.ts';
import { type PointerKey, PointerLog } from './pointer-ids.ts';

/** The newest file format heaptrack writes (its `v` line's second field); its +/- lines are those of 1 and 2. */
export const HEAPTRACK_FORMAT = 3;

const SPACE = 0x20;

/** What the interpreted format has that the raw one never writes. */
const INTERPRETED =
  "this is heaptrack's interpreted output (what heaptrack writes without --raw): its frees name an allocation site and size, " +
  'not a block, so which of the blocks of one site each free ended is lost; record with `heaptrack --raw` (docs/import.md)';

/**
 * Converts heaptrack's raw output to trace text, as {@link LogConverter} does. heaptrack writes no thread
 * ids, so the trace is one thread's.
 */
export class HeaptrackConverter extends PointerLog {
  protected readonly unknownBlock = 'which the log never showed allocated';
  protected readonly reuseHint = "heaptrack logs a realloc's free after the real realloc returned, so another thread may have been given the old address first";
  private sawVersion = false;
  /** The file format: from 3 on, strings are written with their length before them. */
  private format: PointerKey = 0;
  private sawExe = false;
  /** Fields of the line being read: [start, end) pairs. */
  private readonly fields: number[] = [];

  constructor(file: string, options: { header?: readonly string[] } = {}) {
    super(file, 'HEAPTRACK', options.header);
  }

  protected line(buf: Buffer, start: number, end: number, lineNo: number, unterminated: boolean): void {
    // What the first line is decides first whether the file is heaptrack's at all, cut short or not.
    if (!this.sawVersion && !(end - start >= 2 && buf[start] === 0x76 && buf[start + 1] === SPACE)) {
      this.fail('HEAPTRACK_NOT_HEAPTRACK', lineNo, `not heaptrack output: the first line is not 'v VERSION FORMAT': ${quote(buf, start, end)}`);
    }
    // libheaptrack ends every line with '\n': a log cut inside a line is a program that died mid-write.
    if (unterminated) {
      this.fail(
        'HEAPTRACK_TRUNCATED',
        lineNo,
        `the log ends in the middle of a line (${quote(buf, start, end)}, no newline): the program died before heaptrack flushed its log; drop the last line (head -n -1) to import the rest`,
      );
    }
    if (start === end) this.fail('HEAPTRACK_BAD_LINE', lineNo, 'an empty line: not heaptrack output');
    const mode = buf[start];
    if (end - start > 1 && buf[start + 1] !== SPACE) this.fail('HEAPTRACK_BAD_LINE', lineNo, `not a heaptrack record: ${quote(buf, start, end)}`);
    switch (mode) {
      case 0x76: // 'v heaptrack-version file-format'
        this.version(buf, start, end, lineNo);
        return;
      case 0x2b: {
        // '+ size trace-index pointer'
        const count = this.split(buf, start, end);
        if (count === 1) this.fail('HEAPTRACK_INTERPRETED', lineNo, INTERPRETED);
        if (count !== 3) this.fail('HEAPTRACK_BAD_LINE', lineNo, `'+' takes a size, a trace index and a pointer: ${quote(buf, start, end)}`);
        const size = this.hex(buf, 0, lineNo, 'size');
        this.hex(buf, 1, lineNo, 'trace index');
        const ptr = this.hex(buf, 2, lineNo, 'pointer');
        if (ptr === 0) this.fail('HEAPTRACK_BAD_NUMBER', lineNo, 'an allocation at address 0: heaptrack logs only the calls that returned a block');
        this.allocated('', 'malloc', ptr, String(size), lineNo);
        return;
      }
      case 0x2d: {
        // '- pointer'
        if (this.split(buf, start, end) !== 1) this.fail('HEAPTRACK_BAD_LINE', lineNo, `'-' takes one pointer: ${quote(buf, start, end)}`);
        this.freed('', this.hex(buf, 0, lineNo, 'pointer'));
        return;
      }
      case 0x78: // 'x length exe': one process, one program
        if (this.sawExe) {
          this.fail(
            'HEAPTRACK_RESTART',
            lineNo,
            'a second program in the log (a second x line): the program ran another one with exec, which heaptrack followed into a fresh heap; heaptrack_interpret refuses such a log too',
          );
        }
        this.sawExe = true;
        this.out += `# heaptrack: program ${commentText(this.text(buf, start, end))}\n`;
        return;
      case 0x41: // 'A': heaptrack -p attached to a process that was running
        this.out += '# heaptrack attached to the running program (heaptrack -p): its blocks from before are not in the log\n';
        return;
      case 0x58: // 'X argv…': the command line
        this.out += `# heaptrack: command${commentText(buf.toString('utf8', start + 1, end))}\n`;
        return;
      case 0x73: // 's', 'i', 'a': string, instruction and allocation-info lines of the interpreted format
      case 0x69:
      case 0x61:
      case 0x23: // '#': its closing statistics
        this.fail('HEAPTRACK_INTERPRETED', lineNo, INTERPRETED);
        return;
      case 0x49: // 'I page-size pages': system information
      case 0x53: // 'S suppression'
      case 0x6d: // 'm': a loaded module
      case 0x74: // 't ip parent': a backtrace frame
      case 0x63: // 'c': a timestamp
      case 0x52: // 'R': the resident set size
        return;
      default:
        this.fail('HEAPTRACK_BAD_LINE', lineNo, `unknown heaptrack record ${quote(buf, start, start + 1)}: ${quote(buf, start, end)}`);
    }
  }

  private version(buf: Buffer, start: number, end: number, lineNo: number): void {
    if (this.sawVersion) {
      this.fail('HEAPTRACK_RESTART', lineNo, 'a second v line: heaptrack started again in this log (a program it ran with exec, or several logs put together)');
    }
    if (this.split(buf, start, end) !== 2)
      this.fail('HEAPTRACK_BAD_LINE', lineNo, `'v' takes heaptrack's version and the file format: ${quote(buf, start, end)}`);
    this.hex(buf, 0, lineNo, 'version');
    const format = this.hex(buf, 1, lineNo, 'file format');
    if (format > HEAPTRACK_FORMAT) {
      this.fail('HEAPTRACK_FORMAT', lineNo, `file format ${format.toString(16)} is newer than the ${HEAPTRACK_FORMAT} this import knows`);
    }
    this.format = format;
    this.sawVersion = true;
  }

  /** The text of an `x` line: from format 3 on, `x LENGTH TEXT` (the length in hex; the text may hold spaces). */
  private text(buf: Buffer, start: number, end: number): string {
    const text = buf.toString('utf8', start + 2, end);
    if (this.format < 3) return text;
    const space = text.indexOf(' ');
    return space < 0 ? text : text.slice(space + 1);
  }

  /** Splits the fields after the mode character into this.fields; returns how many there are. */
  private split(buf: Buffer, start: number, end: number): number {
    this.fields.length = 0;
    let p = start + 1;
    while (p < end) {
      while (p < end && buf[p] === SPACE) p++;
      if (p === end) break;
      const from = p;
      while (p < end && buf[p] !== SPACE) p++;
      this.fields.push(from, p);
    }
    return this.fields.length / 2;
  }

  /** Field `index` as hexadecimal digits (heaptrack writes no 0x). */
  private hex(buf: Buffer, index: number, lineNo: number, what: string): PointerKey {
    const from = this.fields[2 * index];
    const to = this.fields[2 * index + 1];
    const value = to - from <= 16 ? parseHexDigits(buf, from, to) : undefined;
    if (value === undefined) this.fail('HEAPTRACK_BAD_NUMBER', lineNo, `${what} is not hexadecimal (at most 16 digits): ${quote(buf, from, to)}`);
    return value;
  }

  protected override end(): void {
    if (!this.sawVersion) this.fail('HEAPTRACK_EMPTY', 0, 'the log is empty: heaptrack wrote nothing (not even its v line)');
    super.end();
    this.out += this.closing('heaptrack log', ['free of a block the log never showed allocated', 'frees of blocks the log never showed allocated']);
  }
}

/** Converts a whole log held in memory (tests, small logs); not compressed. */
export function convertHeaptrack(log: string | Uint8Array, file = '<heaptrack>'): string {
  return convertAll(new HeaptrackConverter(file), log);
}

/**
 * Imports the heaptrack raw log at `path` (`-` for standard input), compressed with zstd or gzip as
 * heaptrack writes it or not, handing the trace text to `write` piece by piece.
 */
export function importHeaptrack(path: string, write: (text: string) => void | Promise<void>, options: { name?: string } = {}): Promise<ImportSummary> {
  return importLog(path, (file) => new HeaptrackConverter(file), write, {
    openCode: 'HEAPTRACK_OPEN',
    name: options.name,
    decode: (bytes, file) => decompressed(bytes, { file, code: 'HEAPTRACK_DECOMPRESS' }),
  });
}
