// Drives the allocator core with trace events: each trace slot maps to the chunk its ID names, and each
// event yields an outcome (where the block went, its chunk, offset, the system calls, what moved).
import { MallocscopeError } from '../errors.ts';
import type { MmapPolicy } from '../policy/api.ts';
import { policyByName } from '../policy/index.ts';
import type { Syscall, SystemMemory } from '../system/api.ts';
import { SimulatedSystem, type SimulatedSystemOptions } from '../system/simulated.ts';
import type { TraceEvent } from '../trace/api.ts';
import { readTrace } from '../trace/reader.ts';
import { Arena } from './arena.ts';
import { ChunkState, NIL } from './chunks.ts';
import { CHUNK_HDR_SZ } from './constants.ts';
import { checkInvariants } from './invariants.ts';
import { HUGE_STAND_IN, classifyHuge, reallocHugeRefused, type HugeOutcome } from './huge.ts';
import { libcCalloc, libcFree, libcMallinfo2, libcMalloc, libcMallopt, libcMemalign, libcRealloc, libcTrim, maybeInitTcache, type Mallinfo2 } from './libc.ts';
import { resetNotes, type CallNotes } from './notes.ts';
import { AllocatorAbort } from './sysmalloc.ts';

/** How to build the allocator a replay drives. */
export interface ReplayOptions {
  /** A policy object or its `--policy` name; default glibc. */
  policy?: MmapPolicy | string;
  /** The kernel: a system layer, or options for the simulated one (the default). */
  system?: SystemMemory | SimulatedSystemOptions;
  /** Check every invariant after every event (slow; for tests): a broken one stops the replay. */
  checkInvariants?: boolean;
}

/** What one event did. The replayer reuses one outcome object: copy what you keep. */
export interface ReplayOutcome {
  event: TraceEvent;
  /** 'heap' or 'mmap' for a call that returned a block; null when it returned NULL or returns nothing. */
  where: 'heap' | 'mmap' | null;
  /** chunksize of the returned block (for mmap: the mapping length less a memalign front gap). */
  chunk: number;
  /** For heap blocks: user pointer minus the heap start. */
  offset: number;
  /** The user pointer (0 for NULL). */
  pointer: number;
  /** The system calls the event made. */
  syscalls: Syscall[];
  /** Path, consolidations, trims and threshold moves. */
  notes: CallNotes;
  /** mp_.mmap_threshold and trim_threshold after the event. */
  mmapThreshold: number;
  trimThreshold: number;
}

/** Replays events one at a time through one allocator. */
export class Replayer {
  readonly arena: Arena;
  /** trace slot -> chunk id (NIL for a NULL block). */
  private slots = new Int32Array(1024).fill(NIL);
  /** trace slot -> bytes the program asked for (0 for a NULL block). */
  private slotBytes = new Float64Array(1024);
  /** Bytes the program holds now: the requested sizes of its live blocks. */
  liveBytes = 0;
  private readonly outcome: ReplayOutcome;
  private readonly checking: boolean;

  constructor(options: ReplayOptions = {}) {
    const policy = typeof options.policy === 'string' || options.policy === undefined ? policyByName(options.policy ?? 'glibc') : options.policy;
    const system = options.system && 'sbrk' in options.system ? options.system : new SimulatedSystem(options.system);
    this.arena = new Arena(system, policy);
    this.checking = options.checkInvariants ?? false;
    this.outcome = {
      event: undefined as unknown as TraceEvent,
      where: null,
      chunk: 0,
      offset: 0,
      pointer: 0,
      syscalls: [],
      notes: this.arena.notes,
      mmapThreshold: policy.mmapThreshold,
      trimThreshold: policy.trimThreshold,
    };
  }

  /** Applies one event. An internal inconsistency or a glibc abort stops with the event's seq and line. */
  apply(event: TraceEvent): ReplayOutcome {
    const av = this.arena;
    av.seq = event.seq;
    resetNotes(av.notes);
    let result = NIL;
    let returns = true;
    const huge = event.exact ? classifyHuge(event) : null;
    try {
      if (huge) {
        result = this.applyHuge(event, huge);
      } else switch (event.op) {
        case 'malloc':
          result = libcMalloc(av, event.size);
          this.setSlot(event.slot, result, event.size);
          break;
        case 'calloc':
          result = libcCalloc(av, event.nmemb, event.size);
          this.setSlot(event.slot, result, event.nmemb * event.size);
          break;
        case 'memalign':
          result = libcMemalign(av, event.alignment, event.size);
          this.setSlot(event.slot, result, event.size);
          break;
        case 'realloc': {
          const old = event.wasLive ? this.slots[event.slot] : NIL;
          result = libcRealloc(av, old, event.size);
          // realloc(p, 0) freed p; a failed realloc leaves p where it was.
          if (result !== NIL || (event.size === 0 && old !== NIL)) this.setSlot(event.slot, result, event.size);
          else if (!event.wasLive) this.setSlot(event.slot, NIL, 0);
          break;
        }
        case 'free':
          libcFree(av, this.slots[event.slot]);
          this.setSlot(event.slot, NIL, 0);
          returns = false;
          break;
        case 'mallopt':
          libcMallopt(av, event.param, event.value);
          returns = false;
          break;
        case 'trim':
          libcTrim(av, event.pad);
          returns = false;
          break;
      }
    } catch (error) {
      if (error instanceof AllocatorAbort) {
        throw new MallocscopeError('MODEL_ABORT', `event ${event.seq} (line ${event.line}, ${event.op}): ${error.message}`);
      }
      throw error;
    }
    if (this.checking) {
      try {
        checkInvariants(av);
      } catch (error) {
        throw new MallocscopeError('MODEL_INVARIANT', `event ${event.seq} (line ${event.line}, ${event.op}): ${(error as Error).message}`);
      }
    }
    const out = this.outcome;
    out.event = event;
    out.notes = av.notes;
    out.syscalls = av.system.takeSyscalls();
    out.mmapThreshold = av.policy.mmapThreshold;
    out.trimThreshold = av.policy.trimThreshold;
    if (returns && result !== NIL) {
      const c = av.chunks;
      out.where = c.state[result] === ChunkState.Mmapped ? 'mmap' : 'heap';
      out.chunk = c.size[result];
      out.pointer = c.address[result] + CHUNK_HDR_SZ;
      out.offset = out.pointer - av.system.heapStart;
    } else {
      out.where = null;
      out.chunk = 0;
      out.pointer = 0;
      out.offset = 0;
    }
    return out;
  }

  /**
   * A request above 2^53 bytes, which fails whatever happens: do the side effects glibc does before failing
   * (classifyHuge decides which), with a stand-in size that fails the same way. A failed realloc keeps its
   * block; a failed malloc, calloc or memalign leaves its ID live with a NULL block.
   */
  private applyHuge(event: TraceEvent, huge: HugeOutcome): number {
    const av = this.arena;
    if (huge === 'refused-after-init') maybeInitTcache(av);
    if (event.op === 'realloc') {
      const old = event.wasLive ? this.slots[event.slot] : NIL;
      if (huge === 'searched') {
        const heapBlock = old !== NIL && av.chunks.state[old] !== ChunkState.Mmapped;
        if (!(heapBlock && reallocHugeRefused(event.exact!.size!))) libcRealloc(av, old, HUGE_STAND_IN);
      }
      if (!event.wasLive) this.setSlot(event.slot, NIL, 0);
      return NIL;
    }
    if (huge === 'searched') {
      if (event.op === 'memalign' && event.alignment > 16) libcMemalign(av, 64, HUGE_STAND_IN);
      else libcMalloc(av, HUGE_STAND_IN);
    }
    this.setSlot(event.slot, NIL, 0);
    return NIL;
  }

  /** mallinfo2 now. */
  mallinfo2(): Mallinfo2 {
    return libcMallinfo2(this.arena);
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
  }
}

/** One replayed call, as replayTrace hands it out (a fresh object you may keep). */
export interface ReplayStep {
  seq: number;
  line: number;
  op: TraceEvent['op'];
  /** The trace ID; "" for mallopt and trim. */
  id: string;
  /** For a call that returned a block. */
  where?: 'heap' | 'mmap';
  chunk?: number;
  /** Heap blocks: user pointer minus the heap start. */
  offset?: number;
  /** How the block was found: tcache, fastbin, smallbin, unsorted, last-remainder, largebin, binmap, top, sysmalloc, mmap, mremap, in-place. */
  via?: string;
  /** The system calls the call made. */
  syscalls: Syscall[];
  /** mmap_threshold and trim_threshold after the call. */
  mmapThreshold: number;
  trimThreshold: number;
  /** Set when this call moved the thresholds (free of an mmapped chunk). */
  thresholdMoved?: { from: number; to: number };
  consolidations: number;
  /** Bytes systrim gave back (negative when glibc's size_t arithmetic grew the heap instead). */
  trimmed: number;
  /** mallinfo2 after the call, with the `stats` option. */
  stats?: Mallinfo2;
}

/**
 * Replays a trace (a path, `-` for stdin, or events from parseTrace/readTrace) through the model, one step
 * at a time. Streams: a trace of any length is replayed in memory proportional to its live blocks.
 */
export function* replayTrace(source: string | Iterable<TraceEvent>, options: ReplayOptions & { stats?: boolean } = {}): Generator<ReplayStep> {
  const replayer = new Replayer(options);
  const events = typeof source === 'string' ? readTrace(source) : source;
  for (const event of events) {
    const outcome = replayer.apply(event);
    const step: ReplayStep = {
      seq: event.seq,
      line: event.line,
      op: event.op,
      id: 'id' in event ? event.id : '',
      syscalls: outcome.syscalls,
      mmapThreshold: outcome.mmapThreshold,
      trimThreshold: outcome.trimThreshold,
      consolidations: outcome.notes.consolidations,
      trimmed: outcome.notes.trimmedBytes,
    };
    if (outcome.where) {
      step.where = outcome.where;
      step.chunk = outcome.chunk;
      if (outcome.where === 'heap') step.offset = outcome.offset;
    }
    if (outcome.notes.path) step.via = outcome.notes.path;
    if (outcome.notes.thresholdMove) step.thresholdMoved = outcome.notes.thresholdMove.mmapThreshold;
    if (options.stats) step.stats = replayer.mallinfo2();
    yield step;
  }
}
