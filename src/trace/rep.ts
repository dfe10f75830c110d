// Imports a malloc-lab trace (`.rep`, the format of CS:APP's malloc lab driver, mdriver) as a trace v1. The
// file has a header of four numbers (suggested heap size, number of ids, number of operations, weight), then
// one request a line: `a ID SIZE` (malloc), `r ID SIZE` (realloc), `f ID` (free). Its IDs become the trace's.
import { parseDecimalDigits } from '../number.ts';
import { SIZE_LIMIT } from './glibc-calls.ts';
import { type ImportSummary, LogConverter, convertAll, importLog, quote } from './log-lines.ts';

const HEADER = ['suggested heap size', 'number of ids', 'number of operations', 'weight'];

/**
 * Converts a `.rep` trace to trace text, as {@link LogConverter} does. What mdriver checks (every ID below
 * the header's number of ids, the largest one number of ids − 1, as many requests as the header says) is
 * checked here too, so that a file this accepts runs in mdriver; a request mdriver would make on a block that
 * is not allocated (a free or realloc of an ID that is not live, an `a` of a live one) is an error.
 */
export class RepConverter extends LogConverter {
  private readonly header: number[] = [];
  /** The header's lines, for messages. */
  private readonly headerLines: number[] = [];
  /** Live IDs, and the line that made each. */
  private readonly live = new Map<string, number>();
  private operations = 0;
  private largestId = -1;
  private readonly fields: [number, number][] = [];

  constructor(file: string, options: { header?: readonly string[] } = {}) {
    super(file, 'REP', options.header);
  }

  protected line(buf: Buffer, start: number, end: number, lineNo: number): void {
    this.split(buf, start, end);
    if (this.fields.length === 0) return; // blank lines: mdriver reads with scanf, which skips them
    if (this.header.length < HEADER.length) {
      this.headerLine(buf, start, end, lineNo);
      return;
    }
    const [opStart, opEnd] = this.fields[0];
    const op = opEnd - opStart === 1 ? String.fromCharCode(buf[opStart]) : '';
    const want = op === 'a' || op === 'r' ? 3 : op === 'f' ? 2 : 0;
    if (want === 0) this.fail('REP_BAD_LINE', lineNo, `unknown request ${quote(buf, opStart, opEnd)} (expected a, r or f): ${quote(buf, start, end)}`);
    if (this.fields.length !== want) {
      this.fail(
        'REP_BAD_LINE',
        lineNo,
        `'${op}' takes ${want === 3 ? 'an id and a size' : 'an id'}, found ${this.fields.length - 1} field(s): ${quote(buf, start, end)}`,
      );
    }
    this.operations++;
    if (this.operations > this.header[2]) {
      this.fail('REP_COUNT', lineNo, `more requests than the header's ${this.header[2]} (line ${this.headerLines[2]})`);
    }
    const id = this.id(buf, lineNo);
    const size = want === 3 ? this.size(buf, lineNo) : '';
    const made = this.live.get(id);
    this.summary.calls++;
    switch (op) {
      case 'a':
        if (made !== undefined) this.fail('REP_ID_LIVE', lineNo, `id ${id} is allocated again while still allocated (since line ${made})`);
        this.live.set(id, lineNo);
        this.out += `malloc ${id} ${size}\n`;
        return;
      case 'r':
        if (made === undefined) this.fail('REP_NOT_LIVE', lineNo, `realloc of id ${id}, which is not allocated`);
        if (size === '0') this.live.delete(id); // realloc(p, 0) frees p in glibc
        this.out += `realloc ${id} ${size}\n`;
        return;
      default:
        if (made === undefined) this.fail('REP_NOT_LIVE', lineNo, `free of id ${id}, which is not allocated`);
        this.live.delete(id);
        this.out += `free ${id}\n`;
    }
  }

  private headerLine(buf: Buffer, start: number, end: number, lineNo: number): void {
    const what = HEADER[this.header.length];
    if (this.fields.length !== 1) {
      this.fail('REP_BAD_HEADER', lineNo, `the header's ${what} should be one number on a line of its own: ${quote(buf, start, end)}`);
    }
    const [from, to] = this.fields[0];
    const value = parseDecimalDigits(buf, from, to);
    if (typeof value !== 'number' || value > 2 ** 31 - 1) {
      this.fail('REP_BAD_HEADER', lineNo, `the header's ${what} is not a number from 0 to 2147483647: ${quote(buf, from, to)}`);
    }
    this.header.push(value);
    this.headerLines.push(lineNo);
    if (this.header.length === HEADER.length) {
      const [heap, ids, ops, weight] = this.header;
      this.out += `# malloc-lab trace: suggested heap size ${heap}, ${ids} ids, ${ops} requests, weight ${weight}\n`;
    }
  }

  /** The ID field: a decimal number below the header's number of ids, written without leading zeros. */
  private id(buf: Buffer, lineNo: number): string {
    const [from, to] = this.fields[1];
    const value = parseDecimalDigits(buf, from, to);
    if (value === undefined) this.fail('REP_BAD_NUMBER', lineNo, `the id is not a decimal number: ${quote(buf, from, to)}`);
    if (value >= this.header[1]) {
      this.fail('REP_COUNT', lineNo, `id ${value} is not below the header's number of ids, ${this.header[1]} (line ${this.headerLines[1]})`);
    }
    if (value > this.largestId) this.largestId = Number(value);
    return String(value);
  }

  /** The size field: a decimal number, 0 to 2^64-1. */
  private size(buf: Buffer, lineNo: number): string {
    const [from, to] = this.fields[2];
    const value = parseDecimalDigits(buf, from, to);
    if (value === undefined || (typeof value === 'bigint' && value >= SIZE_LIMIT)) {
      this.fail('REP_BAD_NUMBER', lineNo, `the size is not a decimal number from 0 to 2^64-1: ${quote(buf, from, to)}`);
    }
    return String(value);
  }

  private split(buf: Buffer, start: number, end: number): void {
    this.fields.length = 0;
    let p = start;
    while (p < end) {
      while (p < end && isSpace(buf[p])) p++;
      if (p === end) break;
      const from = p;
      while (p < end && !isSpace(buf[p])) p++;
      this.fields.push([from, p]);
    }
  }

  protected end(): void {
    if (this.header.length < HEADER.length) {
      this.fail('REP_BAD_HEADER', 0, `the header ends early: it has ${this.header.length} of its 4 numbers (${HEADER.join(', ')})`);
    }
    const [, ids, ops] = this.header;
    if (this.operations < ops) {
      this.fail('REP_COUNT', this.headerLines[2], `the header says ${ops} requests, and the file has ${this.operations}`);
    }
    if (this.largestId !== ids - 1) {
      this.fail(
        'REP_COUNT',
        this.headerLines[1],
        `the header says ${ids} ids, so the largest should be ${ids - 1}, and it is ${this.largestId < 0 ? 'none' : this.largestId}`,
      );
    }
    this.summary.liveAtEnd = this.live.size;
    this.out += this.closing('malloc-lab trace');
  }
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0b || byte === 0x0c;
}

/** Converts a whole `.rep` file held in memory (tests, small files). */
export function convertRep(text: string | Uint8Array, file = '<rep>'): string {
  return convertAll(new RepConverter(file), text);
}

/** Imports the `.rep` file at `path` (`-` for standard input), handing the trace text to `write` piece by piece. */
export function importRep(path: string, write: (text: string) => void | Promise<void>, options: { name?: string } = {}): Promise<ImportSummary> {
  return importLog(path, (file) => new RepConverter(file), write, { openCode: 'REP_OPEN', name: options.name });
}
