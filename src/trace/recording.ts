// Converts the binary log of mallocscope's own recorder (native/recorder, docs/record.md) to a trace with its
// threads: `@T` tags, `spawn`, `exit`. Reads the log twice in 1 MiB pieces (first to learn where each thread's
// last call is), so memory grows with the live blocks and the threads, not with the log. The records written out
// come first, then those still in the ring (the last ones of a process that ended, or was killed).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { MallocscopeError, errnoReason } from '../errors.ts';
import { counted } from './log-lines.ts';
import { type AlignedCall, REALLOC_ZERO_RULE, alignedRequest, reallocOutcome, refusedComment } from './glibc-calls.ts';
import { type PointerKey, pointerText } from './pointer-ids.ts';

/** The log's first eight bytes. */
export const RECORDING_MAGIC = 'MSCOPREC';
export const RECORDING_VERSION = 2;
/** The header's fields. */
const FIELDS_SIZE = 4096;
export const RECORDING_RECORD_SIZE = 32;
/** The ring after the fields: record i is in slot i % RING_RECORDS until it is written out. */
const RING_RECORDS = 32768;
/** Where the records written out start: record i is at RECORDING_HEADER_SIZE + i * 32. */
export const RECORDING_HEADER_SIZE = FIELDS_SIZE + RING_RECORDS * RECORDING_RECORD_SIZE;
const FLAG_STOPPED = 1;

// record.kind (native/recorder/log.h)
const NONE = 0;
const MALLOC = 1;
const CALLOC = 2;
const REALLOC_BEGIN = 3;
const REALLOC_END = 4;
const FREE = 5;
const MEMALIGN = 6;
const TRIM = 7;
const MALLOPT = 8;
const SPAWN = 9;
const SPAWN_FAILED = 10;
const EXIT = 11;
// record.how of MEMALIGN
const HOW_MEMALIGN = 0;
const HOW_ALIGNED_ALLOC = 1;
const HOW_POSIX_MEMALIGN = 2;
const HOW_POSIX_MEMALIGN_EINVAL = 3;
const HOW_VALLOC = 4;
const HOW_PVALLOC = 5;
const SPAWN_UNSEEN = 1;

/** mallopt's parameter numbers (glibc's malloc.h) that the trace format names. */
const MALLOPT_NAMES = new Map<number, string>([
  [1, 'M_MXFAST'],
  [-1, 'M_TRIM_THRESHOLD'],
  [-2, 'M_TOP_PAD'],
  [-3, 'M_MMAP_THRESHOLD'],
  [-4, 'M_MMAP_MAX'],
  [-7, 'M_ARENA_TEST'],
  [-8, 'M_ARENA_MAX'],
]);

/** Records read at a time: 1 MiB, the ring's size. */
const CHUNK_RECORDS = (1 << 20) / RECORDING_RECORD_SIZE;

/** A bad log: names the file and, when one record is at fault, that record (0-based, as its sequence number). */
export class RecordingError extends MallocscopeError {
  constructor(
    code: string,
    readonly file: string,
    readonly record: number | undefined,
    readonly reason: string,
    /** Where the record is, when it is still in the ring (default: where it is written out). */
    byte?: number,
  ) {
    super(
      code,
      record === undefined
        ? `${file}: ${reason}`
        : `${file}: record ${record} (byte ${byte ?? RECORDING_HEADER_SIZE + record * RECORDING_RECORD_SIZE}): ${reason}`,
      1,
    );
    this.name = 'RecordingError';
  }
}

/** What the log's header says. */
export interface RecordingHeader {
  pid: number;
  /** The parent process when the log was opened. */
  ppid: number;
  /** The recorded process this one was forked from, else 0. */
  forkedFrom: number;
  pageSize: number;
  /** sbrk(0) before the first recorded call: the heap start that offsets are measured from. */
  heapStart: number | bigint;
  /** The program (/proc/self/exe) that wrote the log. */
  program: string;
  /** Records in the log. */
  records: number;
  /** Records written out after the ring; the others, up to `records`, are in the ring. */
  written: number;
  /** The log could not grow and recording stopped: the calls after the last record are missing. */
  stopped: boolean;
}

/** What a conversion did, for the trailing comment and for callers that report it. */
export interface RecordingSummary {
  records: number;
  /** Trace lines that are calls (spawn and exit included). */
  calls: number;
  /** Threads besides the main one. */
  threads: number;
  /** Frees and reallocs of blocks the log never saw allocated (before recording, inside pthread_create, in the parent before fork). */
  untracked: number;
  /** Calls that failed (returned NULL) in the recorded run. */
  failed: number;
  /** Blocks still allocated at the end. */
  liveAtEnd: number;
  /** Records of calls the process never finished (it ended, or was killed, during them). */
  unfinished: number;
  /** Blocks whose address came back while still live: their free was not recorded (inside pthread_create). */
  unseenFrees: number;
  stopped: boolean;
}

export interface RecordingImportOptions {
  /** Comment lines (without the leading `# `) to put at the top of the trace. */
  header?: readonly string[];
  /** The name errors give the log (default: its path). */
  name?: string;
}

/** The unsigned 64-bit value at `at`: a number below 2^53, else a bigint. */
function u64(buf: Buffer, at: number): number | bigint {
  const hi = buf.readUInt32LE(at + 4);
  if (hi < 0x200000) return hi * 0x100000000 + buf.readUInt32LE(at);
  return buf.readBigUInt64LE(at);
}

/** Where record `index` is in the file: written out, or still in the ring. */
function recordByte(header: RecordingHeader, index: number): number {
  return index < header.written ? RECORDING_HEADER_SIZE + index * RECORDING_RECORD_SIZE : FIELDS_SIZE + (index % RING_RECORDS) * RECORDING_RECORD_SIZE;
}

/** Reads and checks the header of an open log. */
function readHeader(fd: number, name: string): RecordingHeader {
  const size = fstatSync(fd).size;
  const head = Buffer.alloc(FIELDS_SIZE);
  const got = readSync(fd, head, 0, FIELDS_SIZE, 0);
  if (got < RECORDING_MAGIC.length || head.toString('latin1', 0, 8) !== RECORDING_MAGIC) {
    throw new RecordingError('RECLOG_NOT_A_LOG', name, undefined, `not a mallocscope recording (it does not start with '${RECORDING_MAGIC}')`);
  }
  if (got < FIELDS_SIZE) {
    throw new RecordingError('RECLOG_TRUNCATED', name, undefined, `the header is cut short: ${got} of its ${FIELDS_SIZE} bytes`);
  }
  const version = head.readUInt32LE(8);
  const recordSize = head.readUInt32LE(12);
  const ring = head.readUInt32LE(44);
  if (version !== RECORDING_VERSION || recordSize !== RECORDING_RECORD_SIZE || ring !== RING_RECORDS) {
    throw new RecordingError(
      'RECLOG_VERSION',
      name,
      undefined,
      `a recording of format ${version} with ${recordSize}-byte records${version === RECORDING_VERSION ? ` and a ring of ${ring}` : ''}; this mallocscope reads format ${RECORDING_VERSION} with ${RECORDING_RECORD_SIZE}-byte records and a ring of ${RING_RECORDS}`,
    );
  }
  const cursor = u64(head, 16);
  const writtenOut = u64(head, 56);
  const flags = head.readUInt32LE(24);
  const stopped = (flags & FLAG_STOPPED) !== 0;
  if (size < RECORDING_HEADER_SIZE) {
    throw new RecordingError('RECLOG_TRUNCATED', name, undefined, `the ring is cut short: the file ends at byte ${size}, the ring at ${RECORDING_HEADER_SIZE}`);
  }
  const room = Math.floor((size - RECORDING_HEADER_SIZE) / RECORDING_RECORD_SIZE);
  const written = typeof writtenOut === 'bigint' ? Number.MAX_SAFE_INTEGER : writtenOut;
  if (written > room) {
    throw new RecordingError(
      'RECLOG_TRUNCATED',
      name,
      undefined,
      `the header counts ${writtenOut} records written out, but the file holds ${room}: it was cut short`,
    );
  }
  let records = typeof cursor === 'bigint' ? Number.MAX_SAFE_INTEGER : cursor;
  if (records < written) {
    throw new RecordingError('RECLOG_BAD_RECORD', name, undefined, `the header counts ${cursor} records, fewer than the ${writtenOut} written out`);
  }
  if (records - written > RING_RECORDS) {
    // A recorder that stopped counted the slots of calls that were waiting for room in the ring: never written.
    if (!stopped) {
      throw new RecordingError(
        'RECLOG_BAD_RECORD',
        name,
        undefined,
        `the header counts ${cursor} records, more than the ${writtenOut} written out and the ring's ${RING_RECORDS}`,
      );
    }
    records = written + RING_RECORDS;
  }
  const programEnd = head.indexOf(0, 64);
  // valloc and pvalloc records are converted with the page size: it must be one (a power of two, 4 KiB up).
  const pageSize = head.readUInt32LE(40);
  if (pageSize < 4096 || (pageSize & (pageSize - 1)) !== 0) {
    throw new RecordingError('RECLOG_PAGE_SIZE', name, undefined, `the header's page size is ${pageSize}, not a power of two of at least 4096`);
  }
  return {
    pid: head.readUInt32LE(28),
    ppid: head.readUInt32LE(32),
    forkedFrom: head.readUInt32LE(36),
    pageSize,
    heapStart: u64(head, 48),
    program: head.toString('utf8', 64, programEnd < 0 ? FIELDS_SIZE : programEnd),
    records,
    written,
    stopped,
  };
}

/** A thread as the conversion knows it. */
interface ThreadInfo {
  /** Its number in the trace: 1, then in the order of the spawn lines. */
  traceNumber: number;
  /** The index of its last record (from the first pass). */
  last: number;
  /** Its exit record has been met; the exit line follows its last record. */
  exiting: boolean;
  gone: boolean;
  /** A realloc's first half waiting for its second: the old pointer, its ID (0 if unknown), the record. */
  reallocOld: PointerKey | null;
  reallocId: number;
  reallocRecord: number;
}

/** Turns the records, in order, into trace text. */
class RecordingConverter {
  private readonly threads = new Map<number, ThreadInfo>();
  private readonly live = new Map<PointerKey, number>();
  private nextId = 1;
  private nextThread = 2;
  private out = '';
  readonly summary: RecordingSummary;

  constructor(
    private readonly name: string,
    private readonly header: RecordingHeader,
    private readonly lastRecord: Map<number, number>,
  ) {
    this.summary = {
      records: header.records,
      calls: 0,
      threads: 0,
      untracked: 0,
      failed: 0,
      liveAtEnd: 0,
      unfinished: 0,
      unseenFrees: 0,
      stopped: header.stopped,
    };
    this.threads.set(1, this.newThread(1, 1));
  }

  private newThread(recorded: number, traceNumber: number): ThreadInfo {
    return {
      traceNumber,
      last: this.lastRecord.get(recorded) ?? -1,
      exiting: false,
      gone: false,
      reallocOld: null,
      reallocId: 0,
      reallocRecord: 0,
    };
  }

  take(): string {
    const text = this.out;
    this.out = '';
    return text;
  }

  private fail(code: string, index: number, reason: string): never {
    throw new RecordingError(code, this.name, index, reason, recordByte(this.header, index));
  }

  /** Takes the records buf[0, count * 32), the first of which is record `first`. */
  feed(buf: Buffer, first: number, count: number): void {
    for (let k = 0; k < count; k++) this.record(buf, k * RECORDING_RECORD_SIZE, first + k);
  }

  private record(buf: Buffer, at: number, index: number): void {
    const kind = buf[at];
    if (kind === NONE) {
      this.summary.unfinished++;
      this.out += `# record ${index}: a call the process never finished (it ended, or was killed, during the call)\n`;
      return;
    }
    const how = buf[at + 1];
    const recorded = buf.readUInt32LE(at + 4);
    if (kind > EXIT) this.fail('RECLOG_BAD_RECORD', index, `unknown record kind ${kind}`);
    if (recorded === 0) this.fail('RECLOG_BAD_RECORD', index, 'a record of thread 0 (threads are numbered from 1)');
    const thread = this.threads.get(recorded);
    if (!thread) this.fail('RECLOG_THREAD', index, `a record of thread ${recorded}, which was never spawned`);
    if (thread.gone) this.fail('RECLOG_THREAD', index, `a record of thread ${recorded} after its exit`);
    const tag = thread.traceNumber === 1 ? '' : `@${thread.traceNumber} `;
    if (thread.reallocOld !== null && kind !== REALLOC_END) {
      this.fail('RECLOG_UNPAIRED', index, `thread ${recorded} began a realloc at record ${thread.reallocRecord} and made another call before it returned`);
    }
    switch (kind) {
      case MALLOC:
        this.allocate(tag, 'malloc', u64(buf, at + 8), `${u64(buf, at + 16)}`);
        break;
      case CALLOC:
        this.allocate(tag, 'calloc', u64(buf, at + 8), `${u64(buf, at + 16)} ${u64(buf, at + 24)}`);
        break;
      case MEMALIGN:
        this.memalign(tag, how, u64(buf, at + 8), u64(buf, at + 16), u64(buf, at + 24), index);
        break;
      case FREE:
        this.release(tag, u64(buf, at + 8), index);
        break;
      case REALLOC_BEGIN:
        this.reallocBegin(thread, u64(buf, at + 8), index);
        break;
      case REALLOC_END:
        if (thread.reallocOld === null) this.fail('RECLOG_UNPAIRED', index, `the end of a realloc in thread ${recorded} without its beginning`);
        this.reallocEnd(tag, thread, u64(buf, at + 8), `${u64(buf, at + 16)}`, index);
        break;
      case TRIM:
        this.call(`${tag}trim ${u64(buf, at + 8)}`);
        break;
      case MALLOPT: {
        const param = Number(buf.readBigInt64LE(at + 8));
        const value = Number(buf.readBigInt64LE(at + 16));
        const name = MALLOPT_NAMES.get(param);
        if (name) this.call(`${tag}mallopt ${name} ${value}`);
        else this.out += `# mallopt(${param}, ${value}): a parameter the trace format does not name (M_CHECK_ACTION, M_PERTURB): skipped\n`;
        break;
      }
      case SPAWN:
      case SPAWN_FAILED:
        this.spawn(tag, recorded, kind === SPAWN, how === SPAWN_UNSEEN, buf.readUInt32LE(at + 8), index);
        break;
      case EXIT:
        if (recorded === 1) this.fail('RECLOG_THREAD', index, 'thread 1, the main thread, cannot exit');
        if (thread.exiting) this.fail('RECLOG_THREAD', index, `thread ${recorded} exits twice`);
        thread.exiting = true;
        break;
    }
    // A thread's exit line comes after its last record: what its destructors and glibc free after the start
    // routine returned is still its own.
    if (thread.exiting && thread.last <= index) {
      this.call(`@${thread.traceNumber} exit`);
      thread.gone = true;
    }
  }

  private call(line: string): void {
    this.summary.calls++;
    this.out += `${line}\n`;
  }

  private newId(): number {
    return this.nextId++;
  }

  /** `ptr` was returned by a call of this line's thread: if the log still has it live, its free went unseen. */
  private claim(tag: string, ptr: PointerKey, id: number): void {
    const old = this.live.get(ptr);
    if (old !== undefined) {
      this.summary.unseenFrees++;
      this.call(
        `${tag}free b${old}    # ${pointerText(ptr)} comes back while live: its free was not recorded (glibc freed it inside pthread_create), so it is freed here`,
      );
    }
    this.live.set(ptr, id);
  }

  private allocate(tag: string, verb: string, ptr: PointerKey, args: string): void {
    const id = this.newId();
    if (ptr === 0) {
      this.summary.failed++;
      this.call(`${tag}${verb} b${id} ${args}    # failed (NULL) in the recorded run`);
      return;
    }
    this.claim(tag, ptr, id);
    this.call(`${tag}${verb} b${id} ${args}`);
  }

  private memalign(tag: string, how: number, ptr: PointerKey, align: number | bigint, size: number | bigint, index: number): void {
    let call: AlignedCall;
    switch (how) {
      case HOW_MEMALIGN:
      case HOW_POSIX_MEMALIGN:
        call = 'memalign';
        break;
      case HOW_ALIGNED_ALLOC:
        call = 'aligned_alloc';
        break;
      case HOW_POSIX_MEMALIGN_EINVAL:
        this.out += `# posix_memalign(${align}, ${size}) refused its alignment (EINVAL) without allocating: skipped\n`;
        return;
      case HOW_VALLOC:
        call = 'valloc';
        break;
      case HOW_PVALLOC:
        call = 'pvalloc';
        break;
      default:
        this.fail('RECLOG_BAD_RECORD', index, `an aligned allocation of unknown kind ${how}`);
    }
    const request = alignedRequest(call, BigInt(align), BigInt(size), ptr === 0, BigInt(this.header.pageSize));
    if ('refused' in request) {
      this.out += refusedComment(request.refused, call === 'aligned_alloc' ? `aligned_alloc(${align}, ${size})` : `${call}(${size})`);
      return;
    }
    this.allocate(tag, 'memalign', ptr, `${request.align} ${request.size}`);
  }

  private release(tag: string, ptr: PointerKey, index: number): void {
    if (ptr === 0) this.fail('RECLOG_BAD_RECORD', index, 'a free of NULL (the recorder leaves those out)');
    const id = this.live.get(ptr);
    if (id === undefined) {
      this.summary.untracked++;
      this.out += `# free of ${pointerText(ptr)}, a block this log never saw allocated: skipped\n`;
      return;
    }
    this.live.delete(ptr);
    this.call(`${tag}free b${id}`);
  }

  /** The old block stops being live at once: another thread may get its address before this realloc returns. */
  private reallocBegin(thread: ThreadInfo, old: PointerKey, index: number): void {
    thread.reallocOld = old;
    thread.reallocRecord = index;
    thread.reallocId = 0;
    if (old === 0) return;
    const id = this.live.get(old);
    if (id !== undefined) {
      this.live.delete(old);
      thread.reallocId = id;
    }
  }

  private reallocEnd(tag: string, thread: ThreadInfo, ptr: PointerKey, size: string, index: number): void {
    const old = thread.reallocOld as PointerKey;
    const id = thread.reallocId;
    thread.reallocOld = null;
    const outcome = reallocOutcome(old === 0, BigInt(size), ptr === 0);
    if (outcome === 'not-glibc') {
      this.fail('RECLOG_NOT_GLIBC', index, `realloc(${pointerText(old)}, 0) returned a block (${pointerText(ptr)}): ${REALLOC_ZERO_RULE}`);
    }
    if (outcome === 'new') {
      this.allocate(tag, 'realloc', ptr, size); // the trace's realloc of an ID not live is realloc(NULL, n)
      return;
    }
    if (id === 0) {
      this.summary.untracked++;
      this.out += `# realloc of ${pointerText(old)} to ${size} bytes, a block this log never saw allocated: `;
      if (ptr === 0) {
        this.out += 'skipped\n';
        return;
      }
      this.out += 'written as a new block\n';
      this.allocate(tag, 'realloc', ptr, size);
      return;
    }
    switch (outcome) {
      case 'freed':
        this.call(`${tag}realloc b${id} 0`);
        return;
      case 'failed':
        this.summary.failed++;
        this.live.set(old, id);
        this.call(`${tag}realloc b${id} ${size}    # failed (NULL) in the recorded run; the block stayed live`);
        return;
      case 'moved':
        this.claim(tag, ptr, id);
        this.call(`${tag}realloc b${id} ${size}`);
        return;
    }
  }

  private spawn(tag: string, recorded: number, created: boolean, unseen: boolean, child: number, index: number): void {
    if (!created) {
      this.out += `# ${tag}pthread_create failed: no thread\n`;
      return;
    }
    if (child < 2 || this.threads.has(child)) this.fail('RECLOG_THREAD', index, `a spawn of thread ${child}, which is not new`);
    if (unseen && recorded !== 1) this.fail('RECLOG_BAD_RECORD', index, 'an unseen thread made known in another thread than 1');
    const traceNumber = this.nextThread++;
    this.threads.set(child, this.newThread(child, traceNumber));
    this.summary.threads++;
    this.call(
      unseen
        ? `spawn ${traceNumber}    # a thread that no pthread_create of the program started (one of glibc's own): spawned at its first call`
        : `${tag}spawn ${traceNumber}`,
    );
  }

  /** The end of the log: realloc halves left open, the summary line. */
  finish(): string {
    for (const [recorded, thread] of this.threads) {
      if (thread.reallocOld === null) continue;
      this.summary.unfinished++;
      if (thread.reallocId) this.live.set(thread.reallocOld, thread.reallocId);
      this.out += `# the log ends inside a realloc of thread ${recorded} (record ${thread.reallocRecord}): the process ended during the call\n`;
    }
    if (this.summary.stopped) this.out += '# the recorder stopped here: its log could not grow (no room left, or the program closed its file)\n';
    this.summary.liveAtEnd = this.live.size;
    const s = this.summary;
    this.out +=
      `# end of recording: ${counted(s.calls, 'call', 'calls')} from ${counted(s.records, 'record', 'records')}; ${counted(s.threads, 'thread', 'threads')} besides the main one; ${counted(s.liveAtEnd, 'block', 'blocks')} still live` +
      (s.failed ? `; ${counted(s.failed, 'call', 'calls')} failed in the recorded run` : '') +
      (s.untracked ? `; ${counted(s.untracked, 'free/realloc of a block', 'frees/reallocs of blocks')} the log never saw allocated skipped` : '') +
      (s.unseenFrees ? `; ${counted(s.unseenFrees, 'free', 'frees')} not recorded, written where the address came back` : '') +
      (s.unfinished ? `; ${counted(s.unfinished, 'call', 'calls')} unfinished when the process ended` : '') +
      '\n';
    return this.take();
  }
}

/** Opens a log, reporting RECLOG_OPEN in the words the other readers use. */
function openLog(path: string, name: string): number {
  try {
    const fd = openSync(path, 'r');
    if (fstatSync(fd).isDirectory()) {
      closeSync(fd);
      throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    }
    return fd;
  } catch (error) {
    throw new RecordingError('RECLOG_OPEN', name, undefined, `cannot read: ${errnoReason(error)}`);
  }
}

/** Reads the header of the log at `path`. */
export function readRecordingHeader(path: string, name = path): RecordingHeader {
  const fd = openLog(path, name);
  try {
    return readHeader(fd, name);
  } finally {
    closeSync(fd);
  }
}

/**
 * Converts the log at `path` and hands the trace text to `write` in pieces of about 1 MiB of records; waits for
 * `write` when it returns a promise (back-pressure).
 */
export async function importRecording(
  path: string,
  write: (text: string) => void | Promise<void>,
  options: RecordingImportOptions = {},
): Promise<RecordingSummary & { header: RecordingHeader }> {
  const name = options.name ?? path;
  const fd = openLog(path, name);
  try {
    const header = readHeader(fd, name);
    const buf = Buffer.alloc(CHUNK_RECORDS * RECORDING_RECORD_SIZE);
    // Records from `first` on, as many as fit and lie together: written out, or in the ring up to its end.
    const read = (first: number): number => {
      const count =
        first < header.written
          ? Math.min(CHUNK_RECORDS, header.written - first)
          : Math.min(CHUNK_RECORDS, header.records - first, RING_RECORDS - (first % RING_RECORDS));
      const bytes = count * RECORDING_RECORD_SIZE;
      const got = readSync(fd, buf, 0, bytes, recordByte(header, first));
      if (got !== bytes) {
        const index = first + Math.floor(got / RECORDING_RECORD_SIZE);
        throw new RecordingError('RECLOG_TRUNCATED', name, index, 'the file ends here', recordByte(header, index));
      }
      return count;
    };
    // First pass: each thread's last record, so that its exit line can follow it.
    const last = new Map<number, number>();
    for (let first = 0; first < header.records; ) {
      const count = read(first);
      for (let k = 0; k < count; k++) {
        if (buf[k * RECORDING_RECORD_SIZE] !== NONE) last.set(buf.readUInt32LE(k * RECORDING_RECORD_SIZE + 4), first + k);
      }
      first += count;
    }
    const converter = new RecordingConverter(name, header, last);
    let text = (options.header ?? []).map((line) => `# ${line}\n`).join('');
    if (text) await write(text);
    for (let first = 0; first < header.records; ) {
      const count = read(first);
      converter.feed(buf, first, count);
      first += count;
      text = converter.take();
      if (text) await write(text);
    }
    await write(converter.finish());
    return { ...converter.summary, header };
  } finally {
    closeSync(fd);
  }
}
