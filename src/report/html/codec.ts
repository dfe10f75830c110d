// The report's binary payload, written in Node and read in the page: a trace's events packed as byte streams
// (one byte of op and flags per event, LEB128 varints for slots, numbers, line gaps and thread changes, the IDs
// of the calls that create a block as one string table), plus named sections of typed arrays (timeline,
// checkpoints).
// Plain TypeScript with no Node API, so the page bundles it as it is.
import { MallocscopeError } from '../../errors.ts';
import type { EventPlace, TraceEvent, TraceOp } from '../../trace/api.ts';

export { TRACE_OPS as OPS, MALLOPT_PARAMS as PARAMS } from '../../trace/vocabulary.ts';
import { TRACE_OPS as OPS, MALLOPT_PARAMS as PARAMS } from '../../trace/vocabulary.ts';

/**
 * Op codes in the op byte's low three bits (the flag bits start at 0x08). spawn and exit share code 7: the
 * nums stream then holds the spawned thread's number, or 0 for exit (thread numbers start at 1).
 */
const OP_CODE: Record<TraceOp, number> = { malloc: 0, calloc: 1, realloc: 2, memalign: 3, free: 4, mallopt: 5, trim: 6, spawn: 7, exit: 7 };
const THREAD_VERB = 7;
/** The verbs' indexes in OPS (what EventColumns.op holds). */
const SPAWN = 7;
const EXIT = 8;
/** Flag bits of the op byte. */
const WAS_LIVE = 0x08;
const NEXT_LINE = 0x10; // the event is on the line after the previous event's
const SLOT_PREDICTED = 0x20; // a call that makes its ID live got the slot SlotPredictor foresaw
const HAS_EXACT = 0x40; // exact values of number fields above 2^53 follow in the nums stream
const THREAD_CHANGED = 0x80; // the event's thread is not the previous event's: the threads stream gives it (0: none)
const EXACT_FIELDS = ['size', 'nmemb', 'alignment', 'pad'] as const;

/**
 * Foresees the slot the trace reader gives a new ID: its IdTable reuses the slot freed last, else takes the
 * next unused one. Encoder and decoder run the same predictor; a wrong guess only costs the slot's bytes.
 */
class SlotPredictor {
  private free: number[] = [];
  private count = 0;

  predict(): number {
    return this.free.length > 0 ? this.free[this.free.length - 1] : this.count;
  }

  created(slot: number): void {
    const top = this.free.length - 1;
    if (top >= 0 && this.free[top] === slot) this.free.pop();
    else {
      const at = this.free.lastIndexOf(slot);
      if (at >= 0) this.free.splice(at, 1);
    }
    if (slot >= this.count) this.count = slot + 1;
  }

  ended(slot: number): void {
    this.free.push(slot);
  }
}

/** A character `.` in a regular expression does not match. */
const LINE_TERMINATOR = /[\n\r\u2028\u2029]/;

/**
 * Foresees the next created ID as the last one's number plus one ("b41" after "b40"); "" in the table means so.
 * An ID is split as /^(.*?)(\d+)$/ would split it, by hand: a regular expression's match and its strings for
 * each created block were a third of the encoder's time.
 */
class IdPredictor {
  /** The ID's part before its last run of digits (so it never ends in a digit). */
  private prefix = '';
  private next = -1;

  predict(): string {
    return this.next < 0 ? '\n' : `${this.prefix}${this.next}`;
  }

  saw(id: string): void {
    const end = id.length;
    let start = end;
    for (let c = id.charCodeAt(start - 1); start > 0 && c >= 48 && c <= 57; c = id.charCodeAt(--start - 1));
    const digits = end - start;
    let number: number;
    if (digits === 0 || (digits > 1 && id.charCodeAt(start) === 48))
      number = -1; // no number, or not its own decimal form
    else if (digits <= 15) {
      // Below 10^15: exact, and one more is still a safe integer.
      number = 0;
      for (let i = start; i < end; i++) number = number * 10 + (id.charCodeAt(i) - 48);
    } else {
      const text = id.slice(start);
      number = Number(text);
      if (!Number.isSafeInteger(number + 1) || String(number) !== text) number = -1;
    }
    if (number < 0) {
      this.next = -1;
      return;
    }
    if (start !== this.prefix.length || !id.startsWith(this.prefix)) {
      const prefix = id.slice(0, start);
      if (LINE_TERMINATOR.test(prefix)) {
        this.next = -1;
        return;
      }
      this.prefix = prefix;
    }
    this.next = number + 1;
  }

  /** Whether `id` is what predict() says, then saw(id): one scan of the ID for both (the encoder's way). */
  sawPredicted(id: string): boolean {
    const prefix = this.prefix;
    const next = this.next;
    this.saw(id);
    if (next < 0) return id === '\n';
    // prefix + next, with a prefix that ends in no digit, splits only into that prefix and that number.
    if (this.next >= 0) return this.next === next + 1 && this.prefix === prefix;
    return id === `${prefix}${next}`;
  }
}

/** Whether an event ends its ID (free, or realloc to 0 of a live block). */
function endsId(op: number, wasLive: boolean, size: number): boolean {
  return op === 4 || (op === 2 && wasLive && size === 0);
}

/** A growable byte buffer. */
export class ByteWriter {
  bytes = new Uint8Array(1 << 16);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.bytes.subarray(0, this.length));
    this.bytes = bigger;
  }

  byte(value: number): void {
    this.room(1);
    this.bytes[this.length++] = value;
  }

  /** An unsigned integer up to 2^53 as LEB128. */
  varint(value: number): void {
    this.room(8);
    while (value >= 128) {
      this.bytes[this.length++] = (value % 128) | 128;
      value = Math.floor(value / 128);
    }
    this.bytes[this.length++] = value;
  }

  /** Any double: a whole number in [0, 2^53) as varint(2v), anything else as varint(1) and 8 bytes. */
  number(value: number): void {
    if (Number.isSafeInteger(value) && value >= 0) this.varint(value * 2);
    else {
      this.varint(1);
      this.raw(new Uint8Array(new Float64Array([value]).buffer));
    }
  }

  raw(data: Uint8Array): void {
    this.room(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  u32(value: number): void {
    this.room(4);
    new DataView(this.bytes.buffer).setUint32(this.length, value, true);
    this.length += 4;
  }

  /** Pads with zeros to a multiple of `unit`. */
  align(unit: number): void {
    while (this.length % unit !== 0) this.byte(0);
  }

  take(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

/** Reads what ByteWriter wrote. */
export class ByteReader {
  offset = 0;
  constructor(readonly bytes: Uint8Array) {}

  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = this.bytes[this.offset++];
      value += (b & 127) * scale;
      if (b < 128) return value;
      scale *= 128;
    }
  }

  number(): number {
    const v = this.varint();
    if (v !== 1) return v / 2;
    const copy = this.bytes.slice(this.offset, this.offset + 8);
    this.offset += 8;
    return new Float64Array(copy.buffer)[0];
  }
}

/** Packs events as they are read: feed them in order, then take the streams. */
export class EventEncoder {
  readonly ops = new ByteWriter();
  readonly slots = new ByteWriter();
  readonly nums = new ByteWriter();
  readonly lines = new ByteWriter();
  /** The event's thread where it differs from the previous event's (0: the event carries none). */
  readonly threads = new ByteWriter();
  private readonly ids: string[] = [];
  private readonly slotGuess = new SlotPredictor();
  private readonly idGuess = new IdPredictor();
  private lastLine = 0;
  private lastThread = 0;
  count = 0;

  add(event: TraceEvent): void {
    const code = OP_CODE[event.op];
    let op = code;
    const thread = event.thread ?? 0;
    if (thread !== this.lastThread) {
      op |= THREAD_CHANGED;
      this.threads.varint(thread);
      this.lastThread = thread;
    }
    if (event.wasLive) op |= WAS_LIVE;
    if (event.line === this.lastLine + 1) op |= NEXT_LINE;
    else this.lines.varint(event.line - this.lastLine);
    this.lastLine = event.line;
    const creates = event.slot >= 0 && event.op !== 'free' && !event.wasLive;
    if (creates) {
      if (event.slot === this.slotGuess.predict()) op |= SLOT_PREDICTED;
      else this.slots.varint(event.slot);
      this.slotGuess.created(event.slot);
    } else if (event.slot >= 0) this.slots.varint(event.slot);
    if (event.slot >= 0 && endsId(code, event.wasLive, event.op === 'realloc' ? event.size : 0)) this.slotGuess.ended(event.slot);
    this.ops.byte(op); // rewritten below when exact values follow
    switch (event.op) {
      case 'malloc':
      case 'realloc':
        this.nums.number(event.size);
        break;
      case 'calloc':
        this.nums.number(event.nmemb);
        this.nums.number(event.size);
        break;
      case 'memalign':
        this.nums.number(event.alignment);
        this.nums.number(event.size);
        break;
      case 'mallopt':
        this.nums.varint(PARAMS.indexOf(event.param));
        this.nums.number(event.value);
        break;
      case 'trim':
        this.nums.number(event.pad);
        break;
      case 'spawn':
        this.nums.varint(event.spawned);
        break;
      case 'exit':
        this.nums.varint(0);
        break;
      case 'free':
        break;
    }
    if (event.exact) {
      op |= HAS_EXACT;
      let mask = 0;
      const exact = event.exact;
      EXACT_FIELDS.forEach((field, bit) => {
        if (exact[field] !== undefined) mask |= 1 << bit;
      });
      this.nums.varint(mask);
      for (const field of EXACT_FIELDS) {
        const value = event.exact[field];
        if (value === undefined) continue;
        const digits = new TextEncoder().encode(value.toString());
        this.nums.varint(digits.length);
        this.nums.raw(digits);
      }
    }
    this.ops.bytes[this.ops.length - 1] = op;
    // A call that makes its ID live names it; later calls on the ID find it through the slot.
    if (creates && 'id' in event) {
      // A trace's IDs are words. An empty one, or one holding a newline (the table's separator), can come only
      // from events made by hand through the API, and would decode as another ID: refused, not drawn wrong.
      if (event.id === '' || event.id.includes('\n')) {
        throw new MallocscopeError(
          'REPORT_BAD_ID',
          `event ${event.seq} (line ${event.line}, ${event.op}): the ID ${JSON.stringify(event.id)} is not a word a trace can hold`,
        );
      }
      this.ids.push(this.idGuess.sawPredicted(event.id) ? '' : event.id);
    }
    this.count++;
  }

  /** The string table of created IDs (IDs hold no white space, so a newline separates them). */
  idTable(): Uint8Array {
    return new TextEncoder().encode(this.ids.join('\n'));
  }
}

/** Every event of a report, decoded into columns (random access by seq). */
export class EventColumns {
  readonly count: number;
  /** The verb's index in OPS. */
  readonly op: Uint8Array;
  readonly wasLive: Uint8Array;
  readonly slot: Int32Array;
  /** First and second numeric argument: malloc/realloc size; calloc nmemb, size; memalign alignment, size; mallopt param index, value; trim pad; spawn the new thread. */
  readonly a: Float64Array;
  readonly b: Float64Array;
  readonly line: Float64Array;
  /** Index into `ids` of the event's trace ID (-1 for mallopt and trim). */
  readonly idIndex: Int32Array;
  /** The thread the event names (0: the event carries none, as every event before a trace's first thread line). */
  readonly thread: Int32Array;
  readonly ids: string[];
  /** Exact values of number fields above 2^53, by seq (rare). */
  readonly exact = new Map<number, NonNullable<TraceEvent['exact']>>();

  constructor(count: number, streams: { ops: Uint8Array; slots: Uint8Array; nums: Uint8Array; lines: Uint8Array; ids: Uint8Array; threads?: Uint8Array }) {
    this.count = count;
    this.op = new Uint8Array(count);
    this.wasLive = new Uint8Array(count);
    this.slot = new Int32Array(count);
    this.a = new Float64Array(count);
    this.b = new Float64Array(count);
    this.line = new Float64Array(count);
    this.idIndex = new Int32Array(count);
    this.thread = new Int32Array(count);
    const idText = new TextDecoder().decode(streams.ids);
    this.ids = idText.length === 0 && count === 0 ? [] : idText.split('\n');
    const idGuess = new IdPredictor();
    for (let i = 0; i < this.ids.length; i++) {
      if (this.ids[i] === '') this.ids[i] = idGuess.predict();
      idGuess.saw(this.ids[i]);
    }
    const slotGuess = new SlotPredictor();
    const slots = new ByteReader(streams.slots);
    const nums = new ByteReader(streams.nums);
    const lines = new ByteReader(streams.lines);
    const threads = new ByteReader(streams.threads ?? new Uint8Array(0));
    let thread = 0;
    // A slot is below the count of events (each live ID was made by one): sized so, the array never grows, and
    // the loop's code is not thrown away when a first slot past a smaller size comes (1M events: 4 MB, briefly).
    let slotId = new Int32Array(Math.max(1024, count));
    let nextId = 0;
    let line = 0;
    for (let i = 0; i < count; i++) {
      const byte = streams.ops[i];
      let op = byte & 7;
      if (byte & THREAD_CHANGED) thread = threads.varint();
      this.thread[i] = thread;
      if (op === THREAD_VERB) {
        // spawn U, or exit (0): neither names a block.
        const spawned = nums.varint();
        op = spawned === 0 ? EXIT : SPAWN;
        this.a[i] = spawned;
      }
      this.op[i] = op;
      const live = byte & WAS_LIVE ? 1 : 0;
      this.wasLive[i] = live;
      line += byte & NEXT_LINE ? 1 : lines.varint();
      this.line[i] = line;
      if (op === 5 || op === 6 || op === SPAWN || op === EXIT) {
        this.slot[i] = -1;
        this.idIndex[i] = -1;
      } else {
        const creates = op !== 4 && !live;
        const slot = creates && byte & SLOT_PREDICTED ? slotGuess.predict() : slots.varint();
        if (creates) slotGuess.created(slot);
        this.slot[i] = slot;
        if (slot >= slotId.length) {
          let size = slotId.length * 2;
          while (size <= slot) size *= 2;
          const bigger = new Int32Array(size);
          bigger.set(slotId);
          slotId = bigger;
        }
        if (op !== 4 && !live) slotId[slot] = nextId++;
        this.idIndex[i] = slotId[slot];
      }
      if (op === 0 || op === 2 || op === 6) this.a[i] = nums.number();
      else if (op === 1 || op === 3) {
        this.a[i] = nums.number();
        this.b[i] = nums.number();
      } else if (op === 5) {
        this.a[i] = nums.varint();
        this.b[i] = nums.number();
      }
      if (byte & HAS_EXACT) {
        const mask = nums.varint();
        const exact: NonNullable<TraceEvent['exact']> = {};
        EXACT_FIELDS.forEach((field, bit) => {
          if (!(mask & (1 << bit))) return;
          const length = nums.varint();
          exact[field] = BigInt(new TextDecoder().decode(nums.bytes.subarray(nums.offset, nums.offset + length)));
          nums.offset += length;
        });
        this.exact.set(i, exact);
      }
      if (op === 4 || (op === 2 && live && this.a[i] === 0)) slotGuess.ended(this.slot[i]);
    }
  }

  opName(seq: number): TraceOp {
    return OPS[this.op[seq]];
  }

  id(seq: number): string {
    const index = this.idIndex[seq];
    return index < 0 ? '' : this.ids[index];
  }

  /** The event as the trace reader made it. */
  event(seq: number): TraceEvent {
    const op = OPS[this.op[seq]];
    const place: { seq: number; line: number; slot: number; wasLive: boolean; exact?: NonNullable<TraceEvent['exact']> } = {
      seq,
      line: this.line[seq],
      slot: this.slot[seq],
      wasLive: this.wasLive[seq] === 1,
    };
    const exact = this.exact.get(seq);
    if (exact) place.exact = exact;
    const thread = this.thread[seq];
    const id = this.id(seq);
    const made = this.made(seq, op, id, place);
    if (thread !== 0) made.thread = thread;
    return made;
  }

  private made(seq: number, op: TraceOp, id: string, place: EventPlace): TraceEvent {
    switch (op) {
      case 'malloc':
        return { op, id, size: this.a[seq], ...place };
      case 'realloc':
        return { op, id, size: this.a[seq], ...place };
      case 'calloc':
        return { op, id, nmemb: this.a[seq], size: this.b[seq], ...place };
      case 'memalign':
        return { op, id, alignment: this.a[seq], size: this.b[seq], ...place };
      case 'free':
        return { op, id, ...place };
      case 'mallopt':
        return { op, param: PARAMS[this.a[seq]], value: this.b[seq], ...place };
      case 'trim':
        return { op, pad: this.a[seq], ...place };
      case 'spawn':
        return { op, spawned: this.a[seq], ...place };
      case 'exit':
        return { op, ...place };
    }
  }

  /** The call as the trace wrote it: "malloc b17 100", "@2 free b17". */
  callText(seq: number): string {
    const thread = this.thread[seq];
    const call = this.plainCallText(seq);
    return thread > 1 ? `@${thread} ${call}` : call;
  }

  private plainCallText(seq: number): string {
    const op = OPS[this.op[seq]];
    const a = this.a[seq];
    const b = this.b[seq];
    switch (op) {
      case 'malloc':
      case 'realloc':
        return `${op} ${this.id(seq)} ${a}`;
      case 'calloc':
      case 'memalign':
        return `${op} ${this.id(seq)} ${a} ${b}`;
      case 'free':
        return `free ${this.id(seq)}`;
      case 'mallopt':
        return `mallopt ${PARAMS[a]} ${b}`;
      case 'trim':
        return `trim ${a}`;
      case 'spawn':
        return `spawn ${a}`;
      case 'exit':
        return 'exit';
    }
  }
}

/** Named byte sections in one buffer: [u32 name length][name][u32 data length][pad to 8][data]. */
export function packSections(sections: [string, Uint8Array][]): Uint8Array {
  const out = new ByteWriter();
  for (const [name, data] of sections) {
    const nameBytes = new TextEncoder().encode(name);
    out.u32(nameBytes.length);
    out.raw(nameBytes);
    out.u32(data.length);
    out.align(8);
    out.raw(data);
    out.align(8);
  }
  return out.take();
}

/** The sections packSections wrote, as views into `bytes` (8-byte aligned, so typed arrays can view them). */
export function unpackSections(bytes: Uint8Array): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder();
  const sections = new Map<string, Uint8Array>();
  let offset = 0;
  while (offset < bytes.length) {
    const nameLength = view.getUint32(offset, true);
    offset += 4;
    const name = decoder.decode(bytes.subarray(offset, offset + nameLength));
    offset += nameLength;
    const length = view.getUint32(offset, true);
    offset += 4;
    offset = Math.ceil(offset / 8) * 8;
    sections.set(name, bytes.subarray(offset, offset + length));
    offset = Math.ceil((offset + length) / 8) * 8;
  }
  return sections;
}

/** A typed array's bytes (for a section). */
export function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** A Float64Array over a section (copied when it is not 8-byte aligned in its buffer). */
export function float64Of(bytes: Uint8Array): Float64Array {
  if (bytes.byteOffset % 8 === 0) return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  return new Float64Array(bytes.slice().buffer);
}

export function int32Of(bytes: Uint8Array): Int32Array {
  if (bytes.byteOffset % 4 === 0) return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new Int32Array(bytes.slice().buffer);
}
