// Drives the allocator core with trace events: each trace slot maps to the chunk its ID names, and each
// event yields an outcome (where the block went, its chunk, offset, the system calls, what moved).
import type { SizeT } from '../allocator/size-t.ts';
import { MallocscopeError, ModelAbortError } from '../errors.ts';
import type { Syscall } from '../system/api.ts';
import type { ExactSizes, TraceEvent, TraceOp } from '../trace/api.ts';
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
  TraceReader,
} from '../trace/parser.ts';
import type { Malloc } from '../allocator/malloc.ts';
import { createMalloc, kernelFor, presetName, type ModelOptions } from './setup.ts';
import { ResidentPages } from '../system/resident.ts';
import { ChunkState, NIL, chunk2mem } from '../allocator/chunks.ts';
import { checkInvariants } from '../allocator/invariants.ts';
import { sizeT } from '../allocator/size-t.ts';
import { libcCalloc, libcFree, libcMallinfo2, libcMalloc, libcMallopt, libcMemalign, libcRealloc, libcTrim, type Mallinfo2 } from '../allocator/libc.ts';
import { resetNotes, type CallNotes } from '../allocator/notes.ts';
import { AllocatorAbort } from '../allocator/sysmalloc.ts';
import { exitThread, spawnThread } from '../allocator/threads.ts';

/** How to build the allocator a replay drives. */
export interface ReplayOptions extends ModelOptions {
  /** Check every invariant after every event (slow; for tests): a broken one stops the replay. */
  checkInvariants?: boolean;
  /** Have the core record each decision with its numbers (CallNotes' details), for explain and the report. */
  decisions?: boolean;
  /**
   * The trace has threads (traceHasThreads): every outcome carries its thread, 1 before the first thread
   * line, as the oracle writes such a trace.
   */
  threads?: boolean;
  /**
   * Model resident memory (docs/resident.md): the kernel is wrapped in a ResidentPages (the Replayer's
   * `resident`), and the program is taken to write every byte it asks for as it gets the block (the
   * requested bytes; a realloc's whole new size). On the native kernel those bytes are written for real.
   */
  resident?: boolean;
}

/** What one event did. The replayer reuses one outcome object: copy what you keep. */
export interface ReplayOutcome {
  /** The event, when apply() was given one; null after applyNext(reader), which makes no event object. */
  event: TraceEvent | null;
  /** The call's seq, 1-based line, and verb. */
  seq: number;
  line: number;
  op: TraceOp;
  /** The call's trace ID ("" for mallopt and trim), made when asked for; valid until the next event. */
  id(): string;
  /** 'heap' or 'mmap' for a call that returned a block; null when it returned NULL or returns nothing. */
  where: 'heap' | 'mmap' | null;
  /** chunksize of the returned block (for mmap: the mapping length less a memalign front gap). */
  chunk: number;
  /**
   * For heap blocks: user pointer minus the start of its heap (main_arena's: the first program break; a thread
   * arena's: the heap's own start, its heap_info).
   */
  offset: number;
  /** In a trace with threads: the thread that made the call (undefined otherwise). */
  thread: number | undefined;
  /** For heap blocks: the arena's number in creation order (0: main_arena), and a thread arena's heap (else -1). */
  arenaIndex: number;
  heapIndex: number;
  /** The user pointer (0 for NULL). */
  pointer: number;
  /** The system calls the event made. */
  syscalls: Syscall[];
  /** Path, consolidations, trims and threshold moves. */
  notes: CallNotes;
  /** mp_.mmap_threshold and trim_threshold after the event. */
  mmapThreshold: SizeT;
  trimThreshold: SizeT;
}

/** The numeric op code of each verb (the order of TRACE_OPS). */
const OP_CODE: Record<TraceOp, number> = {
  malloc: OP_MALLOC,
  calloc: OP_CALLOC,
  realloc: OP_REALLOC,
  memalign: OP_MEMALIGN,
  free: OP_FREE,
  mallopt: OP_MALLOPT,
  trim: OP_TRIM,
  spawn: OP_SPAWN,
  exit: OP_EXIT,
};

/** Replays events one at a time through one allocator. */
export class Replayer {
  /** The model: mp_, the arena, the tcache, the kernel. */
  readonly model: Malloc;
  /** The policy preset's name (glibc, fixed:BYTES, heap, mmap), for reports. */
  readonly policyName: string;
  /**
   * With the `resident` option: the resident-pages model over the kernel: `now()` (heap, mmapped, thread
   * heaps, total), `total`, `peak` and `peakSeq` (after an event), `bytesIn(address, length)`. Null without.
   */
  readonly resident: ResidentPages | null;
  /** trace slot -> chunk id (NIL for a NULL block). */
  private slots = new Int32Array(1024).fill(NIL);
  /** trace slot -> bytes the program asked for (0 for a NULL block). */
  private slotBytes = new Float64Array(1024);
  /** Bytes the program holds now: the requested sizes of its live blocks. */
  liveBytes = 0;
  /**
   * The blocks no ID names: `realloc ID 0` of an ID whose block is NULL is malloc(0), and the ID ends
   * (docs/trace-format.md), so the program holds that block to its end (it leaks). Chunk ids, in the order
   * made; a plain array, which checkpoints copy.
   */
  leaked: number[] = [];
  private readonly outcome: ReplayOutcome;
  private readonly checking: boolean;
  private readonly threads: boolean;
  /** Every thread number spawned so far (a number is never reused); a plain array, which checkpoints copy. */
  private spawnedBefore: number[] = [];
  /** Where the current outcome's ID comes from: its event object, or the reader (applyNext). */
  private idSource: TraceEvent | TraceReader | null = null;

  constructor(options: ReplayOptions = {}) {
    this.resident = options.resident ? new ResidentPages(kernelFor(options)) : null;
    this.model = createMalloc(this.resident ? { ...options, system: this.resident } : options);
    this.policyName = presetName(options);
    this.model.notes.detail = options.decisions ?? false;
    const mp = this.model.mp;
    this.checking = options.checkInvariants ?? false;
    this.threads = options.threads ?? false;
    const replayer = this;
    this.outcome = {
      event: null,
      seq: -1,
      line: 0,
      op: 'malloc',
      id(): string {
        const source = replayer.idSource;
        if (source === null) return '';
        return source instanceof TraceReader ? source.id() : 'id' in source ? source.id : '';
      },
      where: null,
      chunk: 0,
      offset: 0,
      thread: undefined,
      arenaIndex: 0,
      heapIndex: -1,
      pointer: 0,
      syscalls: [],
      notes: this.model.notes,
      mmapThreshold: mp.mmapThreshold,
      trimThreshold: mp.trimThreshold,
    };
  }

  /** Applies one event. An internal inconsistency or a glibc abort stops with the event's seq and line. */
  apply(event: TraceEvent): ReplayOutcome {
    // A thread line: spawn, exit, or any tagged line (`@1` too), after which every event carries `thread`.
    // An untagged line is thread 1's, also after thread lines, and so is an untagged spawn (events made by
    // hand may leave `thread` out).
    const threaded = event.thread !== undefined || this.model.multiThreaded || event.op === 'spawn' || event.op === 'exit';
    if (threaded) {
      const id = event.thread ?? 1;
      const thread = this.model.threads.get(id);
      // The reader refuses these lines; events made by hand are checked here, before anything changes.
      const where = `event ${event.seq} (line ${event.line}, ${event.op})`;
      if (!thread) throw new MallocscopeError('TRACE_THREAD_UNKNOWN', `${where}: thread ${id} is not running (never spawned, or exited)`);
      if (event.op === 'exit' && id === 1) throw new MallocscopeError('TRACE_EXIT_MAIN', `${where}: thread 1, the main thread, never exits`);
      if (event.op === 'spawn') {
        const spawned = event.spawned;
        if (!Number.isInteger(spawned) || spawned < 2 || spawned > MAX_THREAD)
          throw new MallocscopeError(
            'TRACE_THREAD_NUMBER',
            `${where}: the new thread's number must be a whole number from 2 to ${MAX_THREAD}, not ${String(spawned)}`,
          );
        if (this.model.threads.has(spawned) || this.spawnedBefore.includes(spawned))
          throw new MallocscopeError('TRACE_THREAD_NOT_NEW', `${where}: thread ${spawned} was spawned before`);
        this.spawnedBefore.push(spawned);
      }
      this.model.runAs(thread);
      if (event.op === 'spawn' || event.op === 'exit') {
        this.model.seq = event.seq;
        resetNotes(this.model.notes);
        this.guard(event.seq, event.line, event.op, () => {
          if (event.op === 'spawn') spawnThread(this.model, thread, event.spawned);
          else exitThread(this.model, thread);
          return NIL;
        });
        return this.finish(event, event.seq, event.line, OP_CODE[event.op], NIL);
      }
    }
    const exact = event.exact;
    if (exact) {
      // Values past 2^53: the entry points take them exactly (as bigints) and check them in glibc's order.
      this.model.seq = event.seq;
      resetNotes(this.model.notes);
      const result = this.guard(event.seq, event.line, event.op, () => this.applyExact(event, exact));
      return this.finish(event, event.seq, event.line, OP_CODE[event.op], result);
    }
    let result: number;
    switch (event.op) {
      case 'malloc':
        result = this.step(OP_MALLOC, event.seq, event.line, event.slot, false, event.size, 0, 0, 0, 0, 0);
        break;
      case 'calloc':
        result = this.step(OP_CALLOC, event.seq, event.line, event.slot, false, event.size, event.nmemb, 0, 0, 0, 0);
        break;
      case 'memalign':
        result = this.step(OP_MEMALIGN, event.seq, event.line, event.slot, false, event.size, 0, event.alignment, 0, 0, 0);
        break;
      case 'realloc':
        result = this.step(OP_REALLOC, event.seq, event.line, event.slot, event.wasLive, event.size, 0, 0, 0, 0, 0);
        break;
      case 'free':
        result = this.step(OP_FREE, event.seq, event.line, event.slot, true, 0, 0, 0, 0, 0, 0);
        break;
      case 'mallopt':
        result = this.step(OP_MALLOPT, event.seq, event.line, -1, false, 0, 0, 0, MALLOPT_PARAMS.indexOf(event.param), event.value, 0);
        break;
      case 'trim':
        result = this.step(OP_TRIM, event.seq, event.line, -1, false, 0, 0, 0, 0, 0, event.pad);
        break;
      default: {
        // spawn and exit were replayed above, as thread events; no other kind exists.
        const unknown: never = event;
        throw new MallocscopeError('MODEL_INCONSISTENT', `an event of no known kind: ${String((unknown as { op?: unknown }).op)}`);
      }
    }
    return this.finish(event, event.seq, event.line, OP_CODE[event.op], result);
  }

  /**
   * Reads the next call from `reader` and applies it, making no event object: the fast path of replay.
   * Null at the end of the trace.
   */
  applyNext(reader: TraceReader): ReplayOutcome | null {
    if (!reader.readRaw()) return null;
    if (reader.exact || reader.threaded) return this.apply(reader.currentEvent());
    const seq = reader.seq - 1;
    const result = this.step(
      reader.op,
      seq,
      reader.lineNumber,
      reader.slot,
      reader.wasLive,
      reader.size,
      reader.nmemb,
      reader.alignment,
      reader.param,
      reader.value,
      reader.pad,
    );
    this.idSource = reader;
    return this.finish(null, seq, reader.lineNumber, reader.op, result);
  }

  /** One call by numeric op code: the block's chunk id (NIL for NULL, or for calls that return nothing). */
  private step(
    op: number,
    seq: number,
    line: number,
    slot: number,
    wasLive: boolean,
    size: number,
    nmemb: number,
    alignment: number,
    param: number,
    value: number,
    pad: number,
  ): number {
    const m = this.model;
    m.seq = seq;
    resetNotes(m.notes);
    try {
      switch (op) {
        case OP_MALLOC: {
          const result = libcMalloc(m, size);
          this.setSlot(slot, result, size);
          return result;
        }
        case OP_CALLOC: {
          const result = libcCalloc(m, nmemb, size);
          this.setSlot(slot, result, nmemb * size);
          return result;
        }
        case OP_MEMALIGN: {
          const result = libcMemalign(m, alignment, size);
          this.setSlot(slot, result, size);
          return result;
        }
        case OP_REALLOC: {
          const old = wasLive ? this.slots[slot] : NIL;
          const result = libcRealloc(m, old, size);
          // realloc(NULL, 0) of an ending ID: its block is the program's, under no name.
          if (wasLive && old === NIL && size === 0) {
            if (result !== NIL) this.leaked.push(result);
          }
          // realloc(p, 0) freed p; a failed realloc leaves p where it was.
          else if (result !== NIL || (size === 0 && old !== NIL)) this.setSlot(slot, result, size);
          else if (!wasLive) this.setSlot(slot, NIL, 0);
          return result;
        }
        case OP_FREE:
          libcFree(m, this.slots[slot]);
          this.setSlot(slot, NIL, 0);
          return NIL;
        case OP_MALLOPT:
          libcMallopt(m, MALLOPT_PARAMS[param], value);
          return NIL;
        default:
          libcTrim(m, pad);
          return NIL;
      }
    } catch (error) {
      throw this.stopped(error, seq, line, TRACE_OPS[op]);
    }
  }

  /** Runs `run` for an event, turning a glibc abort into an error that names the event. */
  private guard(seq: number, line: number, op: string, run: () => number): number {
    try {
      return run();
    } catch (error) {
      throw this.stopped(error, seq, line, op);
    }
  }

  private stopped(error: unknown, seq: number, line: number, op: string): unknown {
    if (error instanceof AllocatorAbort) return new ModelAbortError(seq, error.signal, `event ${seq} (line ${line}, ${op}): ${error.message}`);
    return error;
  }

  /** Fills the outcome after a call (and checks the invariants when asked). */
  private finish(event: TraceEvent | null, seq: number, line: number, op: number, result: number): ReplayOutcome {
    const m = this.model;
    if (this.checking) {
      try {
        checkInvariants(m.main);
      } catch (error) {
        throw new MallocscopeError('MODEL_INVARIANT', `event ${seq} (line ${line}, ${TRACE_OPS[op]}): ${(error as Error).message}`);
      }
    }
    const out = this.outcome;
    out.event = event;
    if (event) this.idSource = event;
    out.seq = seq;
    out.line = line;
    out.op = TRACE_OPS[op];
    out.notes = m.notes;
    out.syscalls = m.system.takeSyscalls();
    this.resident?.endEvent(seq);
    out.mmapThreshold = m.mp.mmapThreshold;
    out.trimThreshold = m.mp.trimThreshold;
    out.thread = event?.thread ?? (this.threads ? 1 : undefined);
    // Only malloc, calloc, memalign and realloc return a block.
    if (result !== NIL && op <= OP_MEMALIGN) {
      const c = m.chunks;
      out.where = c.state[result] === ChunkState.Mmapped ? 'mmap' : 'heap';
      out.chunk = c.size[result];
      out.pointer = chunk2mem(c.address[result]);
      const heap = m.heapAt(c.address[result]);
      out.arenaIndex = heap?.arena?.index ?? 0;
      out.heapIndex = heap ? heap.index : -1;
      out.offset = out.pointer - (heap ? heap.base : m.system.heapStart);
    } else {
      out.where = null;
      out.chunk = 0;
      out.pointer = 0;
      out.offset = 0;
      out.arenaIndex = 0;
      out.heapIndex = -1;
    }
    return out;
  }

  /** An event with values past 2^53, each passed to the entry point as the exact size_t it is. */
  private applyExact(event: TraceEvent, exact: ExactSizes): number {
    const m = this.model;
    const size = exact.size !== undefined ? sizeT(exact.size) : 'size' in event ? event.size : 0;
    // What the program asked for, as liveBytes counts it (a double is near enough for a statistic).
    const asked = Number(size);
    switch (event.op) {
      case 'malloc': {
        const result = libcMalloc(m, size);
        this.setSlot(event.slot, result, asked);
        return result;
      }
      case 'calloc': {
        const nmemb = exact.nmemb !== undefined ? sizeT(exact.nmemb) : event.nmemb;
        const result = libcCalloc(m, nmemb, size);
        this.setSlot(event.slot, result, Number(nmemb) * asked);
        return result;
      }
      case 'memalign': {
        const result = libcMemalign(m, exact.alignment !== undefined ? sizeT(exact.alignment) : event.alignment, size);
        this.setSlot(event.slot, result, asked);
        return result;
      }
      case 'realloc': {
        const old = event.wasLive ? this.slots[event.slot] : NIL;
        const result = libcRealloc(m, old, size);
        if (result !== NIL) this.setSlot(event.slot, result, asked);
        else if (!event.wasLive) this.setSlot(event.slot, NIL, 0);
        return result;
      }
      case 'trim':
        libcTrim(m, exact.pad ?? event.pad);
        return NIL;
      default:
        throw new MallocscopeError('MODEL_INVARIANT', `event ${event.seq}: ${event.op} carries no size to take exactly`);
    }
  }

  /** mallinfo2 now. */
  mallinfo2(): Mallinfo2 {
    return libcMallinfo2(this.model);
  }

  /**
   * Calls visit(chunk id, bytes requested, trace slot) for each live block the program holds (NULL blocks have
   * no chunk); the blocks no ID names ({@link leaked}: malloc(0), 0 bytes requested) come last, with slot -1.
   */
  forEachLive(visit: (chunk: number, requested: number, slot: number) => void): void {
    const slots = this.slots;
    for (let slot = 0; slot < slots.length; slot++) if (slots[slot] !== NIL) visit(slots[slot], this.slotBytes[slot], slot);
    for (const chunk of this.leaked) visit(chunk, 0, -1);
  }

  /** The chunk id a live trace slot names (NIL for a NULL block). */
  chunkOfSlot(slot: number): number {
    return slot < this.slots.length ? this.slots[slot] : NIL;
  }

  /** Points `slot` at `chunk` (requested `bytes`), keeping liveBytes. A slot is fresh when its ID was not live. */
  private setSlot(slot: number, chunk: number, bytes: number): void {
    if (slot >= this.slots.length) {
      let length = this.slots.length;
      while (length <= slot) length *= 2;
      const bigger = new Int32Array(length).fill(NIL);
      bigger.set(this.slots);
      this.slots = bigger;
      const biggerBytes = new Float64Array(length);
      biggerBytes.set(this.slotBytes);
      this.slotBytes = biggerBytes;
    }
    if (this.slots[slot] !== NIL) this.liveBytes -= this.slotBytes[slot];
    this.slots[slot] = chunk;
    const held = chunk === NIL ? 0 : bytes;
    this.slotBytes[slot] = held;
    this.liveBytes += held;
    // The program writes what it asked for as it gets the block (docs/resident.md).
    if (held > 0 && this.resident !== null) this.resident.touch(chunk2mem(this.model.chunks.address[chunk]), held);
  }
}
