// The parser of trace format v1 (docs/trace-format.md): reads bytes from a source in 1 MiB chunks, checks every
// rule of the format, and hands out each call as an event object or, on the fast path (readRaw), in its own
// fields with no object and no string. Memory grows with live IDs only. No Node API here (files are opened by
// reader.ts), so that the report's page can bundle the model that imports it.
import { parseNumberBytes } from '../number.ts';
import { TraceError } from '../errors.ts';
import type { ExactSizes, TraceEvent, TraceOp } from './api.ts';
import { IdTable } from './id-table.ts';
import {
  MALLOPT_PARAMS,
  MAX_THREAD,
  OP_CALLOC,
  OP_EXIT,
  OP_FREE,
  OP_MALLOC,
  OP_MALLOPT,
  OP_MEMALIGN,
  OP_REALLOC,
  OP_SPAWN,
  OP_TRIM,
  TRACE_OPS,
} from './vocabulary.ts';

/** The longest line the format allows, in bytes, not counting `\n` and a `\r` before it. */
export const MAX_LINE_LENGTH = 4096;

/** Options for readTrace (reader.ts) and {@link parseTrace}. */
export interface ReadTraceOptions {
  /** The name errors give the file; default: the path as given, or `<stdin>` for `-`. */
  name?: string;
  /** Bytes read at a time (raised to hold two of the longest lines, 8196 bytes); default 1 MiB. */
  chunkSize?: number;
}

/** Bytes read at a time by default (readTrace reads a smaller regular file whole). */
export const DEFAULT_CHUNK = 1 << 20;

/** The event field each number field's exact value goes to. */
const EXACT_FIELD: Record<string, keyof ExactSizes> = { SIZE: 'size', NMEMB: 'nmemb', ALIGN: 'alignment', PAD: 'pad' };
/** Largest size_t: 2^64 - 1. */
const SIZE_MAX = (1n << 64n) - 1n;
/** PTRDIFF_MAX on x86-64: glibc fails any request above it before doing anything else. */
const PTRDIFF_MAX = (1n << 63n) - 1n;
/** The largest double below 2^63: where values at or below PTRDIFF_MAX are clamped to keep their class. */
const BELOW_2_63 = 2 ** 63 - 1024;

// Byte classes for the one pass over a line.
const ORDINARY = 0;
const SPACE = 1; // space, tab, \r
const HASH = 2; // '#': a comment runs to the end of the line
const BINARY = 3; // control bytes that make the file binary
const byteClass = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) byteClass[b] = BINARY;
byteClass[0x7f] = BINARY;
byteClass[0x09] = SPACE;
byteClass[0x0d] = SPACE;
byteClass[0x20] = SPACE;
byteClass[0x23] = HASH;
// 0x0a never reaches a line's bytes: it ends the line.

/** Each verb: its op, how many fields follow it, and their names as the errors write them. */
interface VerbShape {
  op: TraceOp;
  fields: readonly string[];
}
const VERBS: readonly VerbShape[] = [
  { op: 'malloc', fields: ['ID', 'SIZE'] },
  { op: 'calloc', fields: ['ID', 'NMEMB', 'SIZE'] },
  { op: 'realloc', fields: ['ID', 'SIZE'] },
  { op: 'memalign', fields: ['ID', 'ALIGN', 'SIZE'] },
  { op: 'free', fields: ['ID'] },
  { op: 'mallopt', fields: ['PARAM', 'VALUE'] },
  { op: 'trim', fields: ['PAD'] },
  { op: 'spawn', fields: ['THREAD'] },
  { op: 'exit', fields: [] },
];
const ascii = new TextEncoder();
const verbBytes = VERBS.map((v) => ascii.encode(v.op));

const PARAMS = MALLOPT_PARAMS;
const paramBytes = PARAMS.map((p) => ascii.encode(p));

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lenientUtf8 = new TextDecoder('utf-8');

export { TRACE_OPS, MALLOPT_PARAMS, MAX_THREAD, OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_MEMALIGN, OP_FREE, OP_MALLOPT, OP_TRIM, OP_SPAWN, OP_EXIT };

/**
 * Where a reader gets its bytes from: read() fills into[offset, offset + length) and returns how many bytes it
 * put there (0 at the end); close() lets go of the file. reader.ts makes one for a file descriptor.
 */
export interface ByteSource {
  read(into: Uint8Array, offset: number, length: number): number;
  close(): void;
}

/**
 * At most this many tokens are located on a line (a thread tag and a verb with three fields); more are only
 * counted (for the field-count error).
 */
const MAX_TOKENS = 5;

/**
 * Reads a trace one call at a time. Iterate it (`for (const event of reader)`) for fresh event objects, or,
 * where speed matters, call {@link readRaw} and read the call from the reader's fields: that makes no object
 * and no string. The reader keeps only the live IDs and a chunk of the file.
 */
export class TraceReader implements IterableIterator<TraceEvent> {
  /** The name errors give the file. */
  readonly name: string;
  /** How many calls have been read so far: after readRaw(), the current call's seq is seq - 1. */
  seq = 0;
  /** The 1-based number of the line read last. */
  lineNumber = 0;

  // The call readRaw() read last (fields that do not apply to its verb keep stale values).
  /** OP_MALLOC .. OP_TRIM. */
  op = -1;
  /** The block's slot (malloc, calloc, realloc, memalign, free); -1 for mallopt and trim. */
  slot = -1;
  /** realloc: whether the ID was live before (false: realloc(NULL, size)). */
  wasLive = false;
  /** SIZE of malloc, calloc, realloc, memalign. */
  size = 0;
  /** NMEMB of calloc. */
  nmemb = 0;
  /** ALIGN of memalign. */
  alignment = 0;
  /** mallopt's PARAM, as an index of MALLOPT_PARAMS, and its VALUE. */
  param = 0;
  value = 0;
  /** PAD of trim. */
  pad = 0;
  /** Exact values of fields above 2^53, or null. */
  exact: ExactSizes | null = null;
  /** The thread making the call (its line's `@T`; 1 without a tag). */
  thread = 1;
  /** spawn's THREAD: the thread it creates. */
  spawned = 0;
  /** Whether a thread line (a tag, spawn or exit) has been read: from then on events carry `thread`. */
  threaded = false;

  private source: ByteSource | null;
  private buf: Uint8Array;
  /** The unread bytes of the chunk are buf[start, end). */
  private start = 0;
  private end = 0;
  private eof = false;
  /** The current line is buf[lineStart, lineEnd). */
  private lineStart = 0;
  private lineEnd = 0;
  /** How many tokens the current line has (only the first MAX_TOKENS are located). */
  private tokenCount = 0;
  /** Token bounds on the current line: tokenStart[i] .. tokenEnd[i]. */
  private readonly tokenStart = new Int32Array(MAX_TOKENS);
  private readonly tokenEnd = new Int32Array(MAX_TOKENS);

  /** The live IDs and their slots. */
  private readonly ids = new IdTable();
  /** The second token's FNV-1a hash and the OR of its bytes (above 0x7f: not plain ASCII), from nextLine. */
  private idHash = 0;
  private idHigh = 0;
  /** A slot whose ID ended on the last line: removed at the next read, so that its ID can still be asked for. */
  private ending = -1;
  /** Every thread the trace has named by spawn (and thread 1): 0 while it runs, else the line of its exit. */
  private readonly threads = new Map<number, number>([[1, 0]]);
  /** The line that spawned each thread, for the errors. */
  private readonly spawnedAt = new Map<number, number>();

  /** Reads from a byte source or a whole buffer; use readTrace (reader.ts) or {@link parseTrace}. */
  constructor(source: ByteSource | { bytes: Uint8Array }, name: string, chunkSize = DEFAULT_CHUNK) {
    this.name = name;
    if ('bytes' in source) {
      this.source = null;
      this.buf = source.bytes;
      this.end = this.buf.length;
      this.eof = true;
    } else {
      this.source = source;
      this.buf = new Uint8Array(Math.max(chunkSize, 2 * (MAX_LINE_LENGTH + 2)));
    }
  }

  /** How many IDs are live now. */
  get liveCount(): number {
    return this.ids.size;
  }

  /** The number of distinct slots handed out so far: every slot is below it. */
  get slotLimit(): number {
    return this.ids.slotLimit;
  }

  [Symbol.iterator](): this {
    return this;
  }

  next(): IteratorResult<TraceEvent> {
    const event = this.read();
    return event ? { value: event, done: false } : { value: undefined, done: true };
  }

  /** The next event as a fresh object, or null at the end of the trace (the file is then closed). */
  read(): TraceEvent | null {
    return this.readRaw() ? this.currentEvent() : null;
  }

  /** The call readRaw() read last, as a fresh event object. */
  currentEvent(): TraceEvent {
    const seq = this.seq - 1;
    const line = this.lineNumber;
    const slot = this.slot;
    let event: TraceEvent;
    switch (this.op) {
      case OP_MALLOC:
        event = { op: 'malloc', id: this.id(), size: this.size, seq, line, slot, wasLive: false };
        break;
      case OP_CALLOC:
        event = { op: 'calloc', id: this.id(), nmemb: this.nmemb, size: this.size, seq, line, slot, wasLive: false };
        break;
      case OP_MEMALIGN:
        event = { op: 'memalign', id: this.id(), alignment: this.alignment, size: this.size, seq, line, slot, wasLive: false };
        break;
      case OP_REALLOC:
        event = { op: 'realloc', id: this.id(), size: this.size, seq, line, slot, wasLive: this.wasLive };
        break;
      case OP_FREE:
        event = { op: 'free', id: this.id(), seq, line, slot, wasLive: true };
        break;
      case OP_MALLOPT:
        event = { op: 'mallopt', param: PARAMS[this.param], value: this.value, seq, line, slot: -1, wasLive: false };
        break;
      case OP_TRIM:
        event = { op: 'trim', pad: this.pad, seq, line, slot: -1, wasLive: false };
        break;
      case OP_SPAWN:
        event = { op: 'spawn', spawned: this.spawned, seq, line, slot: -1, wasLive: false };
        break;
      default:
        event = { op: 'exit', seq, line, slot: -1, wasLive: false };
        break;
    }
    if (this.exact) event.exact = this.exact;
    if (this.threaded) event.thread = this.thread;
    return event;
  }

  /** The ID of the call readRaw() read last ("" for mallopt and trim), valid until the next read. */
  id(): string {
    return this.slot < 0 ? '' : this.ids.key(this.slot);
  }

  /** The ID of a live slot (one the calls read so far made and did not end), as id() gives it for its call. */
  idOfSlot(slot: number): string {
    return this.ids.key(slot);
  }

  /**
   * Reads the next call into this reader's fields (op, slot, size, …): false at the end of the trace (the file
   * is then closed). A bad line throws a TraceError.
   */
  readRaw(): boolean {
    try {
      if (this.ending >= 0) {
        this.ids.remove(this.ending);
        this.ending = -1;
      }
      while (this.nextLine()) {
        if (this.parseLine()) return true;
      }
      this.close();
      return false;
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** Stops reading and closes the file; safe to call more than once. */
  close(): void {
    const source = this.source;
    this.source = null;
    source?.close();
  }

  // ---- lines ---------------------------------------------------------------------------------------------

  /**
   * Moves to the next line and splits it into tokens in the same pass (binary bytes are errors wherever they
   * stand); false at the end of the input.
   */
  private nextLine(): boolean {
    const tokenStart = this.tokenStart;
    const tokenEnd = this.tokenEnd;
    for (;;) {
      const buf = this.buf;
      const lineStart = this.start;
      const end = this.end;
      let tokens = 0;
      let tokenAt = -1;
      let inComment = false;
      // The second token is the ID for every verb that has one: hash it (FNV-1a) on the way.
      let hash = 0x811c9dc5;
      let high = 0;
      let i = lineStart;
      for (; i < end; i++) {
        const byte = buf[i];
        const kind = byteClass[byte];
        if (kind === ORDINARY) {
          if (tokenAt < 0 && !inComment) tokenAt = i;
          if (tokens === 1 && !inComment) {
            hash = Math.imul(hash ^ byte, 0x01000193);
            high |= byte;
          }
          continue;
        }
        if (byte === 10) break;
        if (kind === BINARY) {
          this.lineNumber++;
          this.throwBinary(byte, i - lineStart + 1);
        }
        if (tokenAt >= 0) {
          if (tokens < MAX_TOKENS) {
            tokenStart[tokens] = tokenAt;
            tokenEnd[tokens] = i;
          }
          tokens++;
          tokenAt = -1;
        }
        if (kind === HASH) inComment = true;
      }
      if (i === end && !this.eof) {
        // No newline in what is read: read more (the line moves to the front) and scan it again.
        if (end - lineStart > MAX_LINE_LENGTH + 1) this.tooLongLine();
        this.refill();
        continue;
      }
      if (i === end && lineStart === end) return false;
      if (tokenAt >= 0) {
        if (tokens < MAX_TOKENS) {
          tokenStart[tokens] = tokenAt;
          tokenEnd[tokens] = i;
        }
        tokens++;
      }
      this.lineStart = lineStart;
      this.lineEnd = i;
      this.start = i < end ? i + 1 : end;
      this.lineNumber++;
      this.tokenCount = tokens;
      this.idHash = hash | 0;
      this.idHigh = high;
      return true;
    }
  }

  /** Keeps the partial line, moves it to the front of the buffer, and reads more after it. */
  private refill(): void {
    if (this.start > 0) {
      this.buf.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    const got = this.readSome(this.end);
    if (got === 0) this.eof = true;
    else this.end += got;
  }

  private readSome(at: number): number {
    return this.source ? this.source.read(this.buf, at, this.buf.length - at) : 0;
  }

  /**
   * The partial line has no newline and is already too long. Binary bytes win over length, so scan to the
   * end of the line (across chunks) for one before reporting the length.
   */
  private tooLongLine(): never {
    this.lineNumber++;
    let column = 1;
    for (;;) {
      for (let i = this.start; i < this.end; i++, column++) {
        const byte = this.buf[i];
        if (byte === 10) this.throwLine('TRACE_LINE_TOO_LONG', `line is longer than ${MAX_LINE_LENGTH} characters`);
        if (byteClass[byte] === BINARY) this.throwBinary(byte, column);
      }
      if (this.eof) this.throwLine('TRACE_LINE_TOO_LONG', `line is longer than ${MAX_LINE_LENGTH} characters`);
      this.start = this.end = 0;
      const got = this.readSome(0);
      if (got === 0) this.eof = true;
      else this.end = got;
    }
  }

  // ---- one line ------------------------------------------------------------------------------------------

  /** Parses the current line into the reader's fields: false for a blank or comment line. */
  private parseLine(): boolean {
    const buf = this.buf;
    const lineEnd = this.lineEnd;
    const tokens = this.tokenCount;
    const length = lineEnd - this.lineStart - (lineEnd > this.lineStart && buf[lineEnd - 1] === 0x0d ? 1 : 0);
    if (length > MAX_LINE_LENGTH) this.throwLine('TRACE_LINE_TOO_LONG', `line is longer than ${MAX_LINE_LENGTH} characters`);
    if (tokens === 0) return false;
    this.thread = 1;
    if (buf[this.tokenStart[0]] === 0x40) return this.parseTagged();
    return this.parseCall(tokens);
  }

  /**
   * A line that starts with a thread tag `@T`: checks the tag's form, then reads the call after it as an
   * untagged line (its ID hashed again: nextLine hashed the token after the tag). Whether T runs is checked
   * after the call's fields, as the format orders the checks.
   */
  private parseTagged(): boolean {
    const thread = this.threadNumber(0, 1);
    if (thread === 0) {
      this.throwLine('TRACE_THREAD_TAG', `thread tag is not a thread number: '${this.tokenText(0)}' (expected @ and a decimal number from 1 to ${MAX_THREAD})`);
    }
    if (this.tokenCount === 1) this.throwLine('TRACE_THREAD_TAG', `thread tag '${this.tokenText(0)}' has no call after it`);
    this.threaded = true;
    const tokenStart = this.tokenStart;
    const tokenEnd = this.tokenEnd;
    tokenStart.copyWithin(0, 1);
    tokenEnd.copyWithin(0, 1);
    this.tokenCount--;
    if (this.tokenCount > 1) {
      let hash = 0x811c9dc5;
      let high = 0;
      for (let i = tokenStart[1]; i < tokenEnd[1]; i++) {
        hash = Math.imul(hash ^ this.buf[i], 0x01000193);
        high |= this.buf[i];
      }
      this.idHash = hash | 0;
      this.idHigh = high;
    }
    this.thread = thread;
    return this.parseCall(this.tokenCount);
  }

  /**
   * The thread number in token `token` after `skip` bytes (the `@` of a tag): decimal digits (leading zeros
   * are fine), 1 to MAX_THREAD; 0 when the token is not one.
   */
  private threadNumber(token: number, skip: number): number {
    const start = this.tokenStart[token] + skip;
    const end = this.tokenEnd[token];
    if (end === start) return 0;
    let value = 0;
    for (let i = start; i < end; i++) {
      const digit = this.buf[i] - 0x30;
      if (digit < 0 || digit > 9) return 0;
      value = value * 10 + digit;
      if (value > MAX_THREAD) return 0;
    }
    return value;
  }

  /** The line's thread must have been spawned and not have exited (checked after the fields, before liveness). */
  private checkRunning(): void {
    const thread = this.thread;
    if (thread === 1) return;
    const exitedAt = this.threads.get(thread);
    if (exitedAt === undefined) this.throwLine('TRACE_THREAD_UNKNOWN', `thread ${thread} was never spawned`);
    if (exitedAt > 0) this.throwLine('TRACE_THREAD_EXITED', `thread ${thread} has exited (at line ${exitedAt})`);
  }

  /** Parses the call on the current line (its tag, if any, taken off): false never (a call is always read). */
  private parseCall(tokens: number): boolean {
    const verb = this.verbIndex();
    const shape = VERBS[verb];
    if (tokens - 1 !== shape.fields.length) {
      const n = shape.fields.length;
      const takes = n === 0 ? 'no fields' : `${n} field${n === 1 ? '' : 's'} (${shape.fields.join(' ')})`;
      this.throwLine('TRACE_FIELD_COUNT', `${shape.op} takes ${takes}, found ${tokens - 1}`);
    }
    this.exact = null;
    this.op = verb;
    switch (verb) {
      case OP_MALLOC:
        this.idToken(1);
        this.size = this.sizeField(2, 'SIZE');
        this.checkRunning();
        this.slot = this.create(1);
        break;
      case OP_CALLOC:
        this.idToken(1);
        this.nmemb = this.sizeField(2, 'NMEMB');
        this.size = this.sizeField(3, 'SIZE');
        this.checkRunning();
        this.slot = this.create(1);
        break;
      case OP_MEMALIGN:
        this.idToken(1);
        this.alignment = this.sizeField(2, 'ALIGN');
        this.size = this.sizeField(3, 'SIZE');
        this.checkRunning();
        this.slot = this.create(1);
        break;
      case OP_REALLOC: {
        this.idToken(1);
        this.size = this.sizeField(2, 'SIZE');
        this.checkRunning();
        const existing = this.lookup(1);
        this.wasLive = existing >= 0;
        if (existing < 0) {
          // realloc(NULL, size) is malloc(size), even for size 0: the ID becomes live.
          this.slot = this.create(1);
        } else {
          this.slot = existing;
          if (this.size === 0) this.ending = existing;
        }
        break;
      }
      case OP_FREE: {
        this.idToken(1);
        this.checkRunning();
        const slot = this.lookup(1);
        if (slot < 0) this.throwLine('TRACE_ID_NOT_LIVE', `free of ID '${this.tokenText(1)}', which is not live`);
        this.slot = slot;
        this.wasLive = true;
        this.ending = slot;
        break;
      }
      case OP_MALLOPT:
        this.param = this.paramIndex(1);
        this.value = this.intValue(2);
        this.checkRunning();
        this.slot = -1;
        break;
      case OP_TRIM:
        this.pad = this.sizeField(1, 'PAD');
        this.checkRunning();
        this.slot = -1;
        break;
      case OP_SPAWN: {
        const spawned = this.threadNumber(1, 0);
        if (spawned === 0) {
          this.throwLine('TRACE_THREAD_NUMBER', `THREAD is not a thread number: '${this.tokenText(1)}' (expected a decimal number from 1 to ${MAX_THREAD})`);
        }
        this.checkRunning();
        if (this.threads.has(spawned)) {
          const at = this.spawnedAt.get(spawned);
          this.throwLine(
            'TRACE_THREAD_NOT_NEW',
            `spawn of thread ${spawned}, which is not new (${at === undefined ? 'the main thread' : `spawned at line ${at}`})`,
          );
        }
        this.threads.set(spawned, 0);
        this.spawnedAt.set(spawned, this.lineNumber);
        this.spawned = spawned;
        this.threaded = true;
        this.slot = -1;
        break;
      }
      default:
        this.checkRunning();
        if (this.thread === 1) this.throwLine('TRACE_EXIT_MAIN', 'thread 1, the main thread, cannot exit');
        this.threads.set(this.thread, this.lineNumber);
        this.threaded = true;
        this.slot = -1;
        break;
    }
    if (verb <= OP_MEMALIGN && verb !== OP_REALLOC) this.wasLive = false;
    this.seq++;
    return true;
  }

  /** Which verb the first token is (told apart by length and first byte, then checked whole); an error if none. */
  private verbIndex(): number {
    const start = this.tokenStart[0];
    const length = this.tokenEnd[0] - start;
    const first = this.buf[start];
    let verb = -1;
    if (length === 6) verb = first === 0x6d ? OP_MALLOC : first === 0x63 ? OP_CALLOC : -1;
    else if (length === 4) verb = first === 0x66 ? OP_FREE : first === 0x74 ? OP_TRIM : first === 0x65 ? OP_EXIT : -1;
    else if (length === 5) verb = first === 0x73 ? OP_SPAWN : -1;
    else if (length === 7) verb = first === 0x72 ? OP_REALLOC : first === 0x6d ? OP_MALLOPT : -1;
    else if (length === 8) verb = OP_MEMALIGN;
    if (verb >= 0 && this.tokenEquals(start, length, verbBytes[verb])) return verb;
    this.throwLine(
      'TRACE_UNKNOWN_VERB',
      `unknown verb '${this.tokenText(0)}' (expected malloc, calloc, realloc, memalign, free, mallopt, trim, spawn or exit)`,
    );
  }

  private tokenEquals(start: number, length: number, word: Uint8Array): boolean {
    if (length !== word.length) return false;
    for (let i = 0; i < length; i++) if (this.buf[start + i] !== word[i]) return false;
    return true;
  }

  private tokenText(token: number): string {
    return lenientUtf8.decode(this.buf.subarray(this.tokenStart[token], this.tokenEnd[token]));
  }

  /** Checks the ID in token `token` (hashed by nextLine) to be UTF-8 when it has bytes above 0x7f. */
  private idToken(token: number): void {
    if (this.idHigh < 0x80) return;
    try {
      strictUtf8.decode(this.buf.subarray(this.tokenStart[token], this.tokenEnd[token]));
    } catch {
      this.throwLine('TRACE_ENCODING', 'ID is not valid UTF-8');
    }
  }

  /** The slot of the live ID in token `token` (read by idToken), or -1. */
  private lookup(token: number): number {
    return this.ids.find(this.buf, this.tokenStart[token], this.tokenEnd[token], this.idHash);
  }

  /** A size_t field: negative, then malformed, then range, as the format orders the checks. */
  private sizeField(token: number, field: string): number {
    const buf = this.buf;
    const start = this.tokenStart[token];
    const end = this.tokenEnd[token];
    if (buf[start] === 0x2d) this.throwLine('TRACE_NEGATIVE', `${field} is negative: '${this.tokenText(token)}'`);
    const value = this.unsigned(start, end, token, field);
    if (typeof value === 'number') return value;
    if (value > SIZE_MAX) this.throwLine('TRACE_RANGE', `${field} is out of range: '${this.tokenText(token)}' (at most 2^64-1)`);
    // A bigint is 2^53 or more: the event carries it exactly too (event.exact).
    this.exact ??= {};
    this.exact[EXACT_FIELD[field]] = value;
    // Beyond 2^53 a double is approximate; keep "at most PTRDIFF_MAX" on its side of 2^63 (see the format doc).
    return value <= PTRDIFF_MAX ? Math.min(Number(value), BELOW_2_63) : Number(value);
  }

  /** mallopt's VALUE: a C int, optionally negative. */
  private intValue(token: number): number {
    const start = this.tokenStart[token];
    const end = this.tokenEnd[token];
    const negative = this.buf[start] === 0x2d;
    const magnitude = this.unsigned(negative ? start + 1 : start, end, token, 'VALUE');
    const value = negative ? -magnitude : magnitude;
    if (value < -2147483648 || value > 2147483647) {
      this.throwLine('TRACE_RANGE', `VALUE is out of range: '${this.tokenText(token)}' (mallopt takes a C int, -2147483648 to 2147483647)`);
    }
    return Number(value);
  }

  /** The digits of token `token` (decimal or 0x-hexadecimal, read by src/number.ts); malformed ones are an error. */
  private unsigned(start: number, end: number, token: number, field: string): number | bigint {
    const value = parseNumberBytes(this.buf, start, end);
    if (value === undefined) this.malformed(token, field);
    return value;
  }

  private malformed(token: number, field: string): never {
    this.throwLine('TRACE_BAD_NUMBER', `${field} is not a number: '${this.tokenText(token)}' (decimal or 0x-hexadecimal)`);
  }

  private paramIndex(token: number): number {
    const start = this.tokenStart[token];
    const length = this.tokenEnd[token] - start;
    for (let p = 0; p < paramBytes.length; p++) {
      if (this.tokenEquals(start, length, paramBytes[p])) return p;
    }
    this.throwLine(
      'TRACE_UNKNOWN_PARAM',
      `unknown mallopt parameter '${this.tokenText(token)}' (expected ${PARAMS.slice(0, -1).join(', ')} or ${PARAMS[PARAMS.length - 1]})`,
    );
  }

  // ---- live IDs ------------------------------------------------------------------------------------------

  /** Makes the ID in token `token` live on this line and gives it a slot; an error if it is live already. */
  private create(token: number): number {
    const existing = this.lookup(token);
    if (existing >= 0) {
      this.throwLine('TRACE_ID_LIVE', `ID '${this.ids.key(existing)}' is already live (created at line ${this.ids.createdAt[existing]})`);
    }
    return this.ids.insert(this.buf, this.tokenStart[token], this.tokenEnd[token], this.idHash, this.lineNumber);
  }

  // ---- errors --------------------------------------------------------------------------------------------

  private throwLine(code: string, reason: string): never {
    throw new TraceError(code, this.name, this.lineNumber, reason);
  }

  private throwBinary(byte: number, column: number): never {
    this.throwLine('TRACE_BINARY', `binary data (byte 0x${byte.toString(16).padStart(2, '0')} at column ${column}); a trace is text`);
  }
}

/**
 * Whether a trace has threads, as the oracle decides it before its first line: a line whose first field is a
 * tag, `spawn` or `exit` (comments and blank lines aside). Fed the file's bytes in pieces, it checks nothing
 * else, and stops at a byte that makes the file binary (the trace ends in that error anyway).
 */
export class ThreadLineScanner {
  /** The first field of the current line, up to six bytes: enough to tell `spawn`, `exit` and a tag. */
  private field = '';
  private atLineStart = true;
  /** The current line's first field is known (or the line is a comment): skip to its end. */
  private skipping = false;

  /** true: a thread line; false: a binary byte, so the look ends without one; null: none so far. */
  feed(buf: Uint8Array, length: number): boolean | null {
    for (let i = 0; i < length; i++) {
      const byte = buf[i];
      if (byte === 10) {
        if (this.fieldIsThread()) return true;
        this.atLineStart = true;
        this.skipping = false;
        this.field = '';
        continue;
      }
      const kind = byteClass[byte];
      if (kind === BINARY) return false;
      if (this.skipping) continue;
      if (kind === ORDINARY) {
        this.atLineStart = false;
        if (this.field.length < 6) this.field += String.fromCharCode(byte);
      } else if (!this.atLineStart) {
        if (this.fieldIsThread()) return true;
        this.skipping = true;
      } else if (kind === HASH) this.skipping = true;
    }
    return null;
  }

  /** At the end of the input: whether its last line, without a newline, is a thread line. */
  end(): boolean {
    return this.fieldIsThread();
  }

  private fieldIsThread(): boolean {
    const field = this.field;
    return !this.skipping && (field.startsWith('@') || field === 'spawn' || field === 'exit');
  }
}

/** The name errors give a trace path: `<stdin>` for `-`. */
export function traceDisplayName(path: string): string {
  return path === '-' ? '<stdin>' : path;
}

/** Reads a whole trace held in memory (a string or bytes), for tests and small programmatic traces. */
export function parseTrace(text: string | Uint8Array, options: ReadTraceOptions = {}): TraceEvent[] {
  const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
  return [...new TraceReader({ bytes }, options.name ?? '<string>')];
}
