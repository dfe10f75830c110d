// Writes trace format v1: one call a line, buffered, to a file, standard output or a string. Used by
// mtrace import, by generated test traces, and by anyone who records calls through the API.
import { closeSync, openSync, writeSync } from 'node:fs';
import { MallocscopeError } from '../errors.ts';
import { LineBuffer } from '../line-buffer.ts';
import { formatNumber } from '../number.ts';
import type { TraceCall } from './api.ts';
import { MAX_THREAD } from './vocabulary.ts';

/** An ID the format can hold: no white space, no '#', no control bytes. */
const VALID_ID = /^[^\s#\u0000-\u001f\u007f]+$/u;

function checkId(id: string): string {
  if (!VALID_ID.test(id)) {
    throw new MallocscopeError('TRACE_WRITE_ID', `cannot write ID ${JSON.stringify(id)}: an ID is one token without white space, '#' or control characters`);
  }
  return id;
}

function checkSize(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** 64 - 1) {
    throw new MallocscopeError('TRACE_WRITE_NUMBER', `cannot write ${field} ${value}: it must be a whole number from 0 to 2^64-1`);
  }
  return value;
}

/** Writes a size_t value; exact below 2^53, in hexadecimal above (the nearest double, see the format doc). */
const sizeText = formatNumber;

/**
 * The line (without `\n`) that records one call, tagged `@T` when `thread` is given and not 1. Throws for a
 * call the format cannot hold.
 */
export function formatCall(call: TraceCall & { thread?: number }, thread = call.thread ?? 1): string {
  if (thread === 1) return callText(call, 1);
  if (!Number.isInteger(thread) || thread < 1 || thread > MAX_THREAD) {
    throw new MallocscopeError('TRACE_WRITE_NUMBER', `cannot write thread ${thread}: a thread is a whole number from 1 to ${MAX_THREAD}`);
  }
  return `@${thread} ${callText(call, thread)}`;
}

/** The call's verb and fields, made by `thread`. */
function callText(call: TraceCall, thread: number): string {
  switch (call.op) {
    case 'malloc':
      return `malloc ${checkId(call.id)} ${sizeText(checkSize(call.size, 'SIZE'))}`;
    case 'calloc':
      return `calloc ${checkId(call.id)} ${sizeText(checkSize(call.nmemb, 'NMEMB'))} ${sizeText(checkSize(call.size, 'SIZE'))}`;
    case 'realloc':
      return `realloc ${checkId(call.id)} ${sizeText(checkSize(call.size, 'SIZE'))}`;
    case 'memalign':
      return `memalign ${checkId(call.id)} ${sizeText(checkSize(call.alignment, 'ALIGN'))} ${sizeText(checkSize(call.size, 'SIZE'))}`;
    case 'free':
      return `free ${checkId(call.id)}`;
    case 'mallopt':
      if (!Number.isInteger(call.value) || call.value < -2147483648 || call.value > 2147483647) {
        throw new MallocscopeError('TRACE_WRITE_NUMBER', `cannot write mallopt VALUE ${call.value}: mallopt takes a C int`);
      }
      return `mallopt ${call.param} ${call.value}`;
    case 'trim':
      return `trim ${sizeText(checkSize(call.pad, 'PAD'))}`;
    case 'spawn':
      if (!Number.isInteger(call.spawned) || call.spawned < 2 || call.spawned > MAX_THREAD) {
        throw new MallocscopeError('TRACE_WRITE_NUMBER', `cannot write spawn ${call.spawned}: a new thread is a whole number from 2 to ${MAX_THREAD}`);
      }
      return `spawn ${call.spawned}`;
    case 'exit':
      if (thread === 1)
        throw new MallocscopeError('TRACE_WRITE_NUMBER', 'cannot write exit in thread 1: the main thread never exits (give the thread that exits)');
      return 'exit';
  }
}

/** Where a {@link TraceWriter} sends its text. */
export type TraceSink = { path: string } | { fd: number } | { collect: true };

/** Buffers trace lines and writes them in large pieces. Call {@link close} at the end. */
export class TraceWriter {
  private fd: number;
  private readonly closeFd: boolean;
  private collected: string[] | null = null;
  private readonly lines = new LineBuffer((text) => {
    if (this.collected) {
      this.collected.push(text);
      return;
    }
    const bytes = Buffer.from(text, 'utf8');
    for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done);
  });

  constructor(sink: TraceSink = { collect: true }) {
    if ('path' in sink) {
      this.fd = openSync(sink.path, 'w');
      this.closeFd = true;
    } else if ('fd' in sink) {
      this.fd = sink.fd;
      this.closeFd = false;
    } else {
      this.fd = -1;
      this.closeFd = false;
      this.collected = [];
    }
  }

  /** Appends one call. */
  write(call: TraceCall & { thread?: number }, thread = call.thread ?? 1): void {
    this.line(formatCall(call, thread));
  }

  /** Appends a comment line (each line of `text` becomes `# …`). */
  comment(text: string): void {
    for (const part of text.split('\n')) this.line(part ? `# ${part}` : '#');
  }

  /** Appends a line written elsewhere (no check). */
  line(text: string): void {
    this.lines.line(text);
  }

  /** Writes what is buffered. */
  flush(): void {
    this.lines.flush();
  }

  /** Flushes and closes; returns the whole text when the writer collects into a string. */
  close(): string {
    this.flush();
    if (this.closeFd && this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    return this.collected ? this.collected.join('') : '';
  }
}

/** The text of a whole trace, one call a line. */
export function formatTrace(calls: Iterable<TraceCall>): string {
  const writer = new TraceWriter();
  for (const call of calls) writer.write(call);
  return writer.close();
}
