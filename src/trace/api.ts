// The shapes of trace format v1 (docs/trace-format.md): the calls a trace holds, and the events the reader
// hands out (a call plus where it stood in the file and the dense slot of its block). Interfaces only.

/** The seven verbs of trace format v1, then the two of threads. */
export type TraceOp = 'malloc' | 'calloc' | 'realloc' | 'memalign' | 'free' | 'mallopt' | 'trim' | 'spawn' | 'exit';

/** The mallopt parameters a trace may set (glibc's names, from <malloc.h>). */
import type { MalloptParam } from '../allocator/constants.ts';
export type { MalloptParam };

/** malloc(size). */
export interface MallocCall {
  op: 'malloc';
  /** The name of the block this call creates. */
  id: string;
  /** Requested bytes (size_t). */
  size: number;
}

/** calloc(nmemb, size). */
export interface CallocCall {
  op: 'calloc';
  id: string;
  /** Number of elements (size_t). */
  nmemb: number;
  /** Bytes per element (size_t). */
  size: number;
}

/** realloc(block of id, size); realloc(NULL, size) when id is not live. */
export interface ReallocCall {
  op: 'realloc';
  id: string;
  /** New size in bytes; 0 frees a live block. */
  size: number;
}

/** memalign(alignment, size), which is also aligned_alloc in glibc 2.36. */
export interface MemalignCall {
  op: 'memalign';
  id: string;
  /** Requested alignment in bytes (glibc rounds it up to a power of two). */
  alignment: number;
  size: number;
}

/** free(block of id). */
export interface FreeCall {
  op: 'free';
  id: string;
}

/** mallopt(param, value). */
export interface MalloptCall {
  op: 'mallopt';
  param: MalloptParam;
  /** mallopt's C int value: -2^31 to 2^31-1. */
  value: number;
}

/** malloc_trim(pad). */
export interface TrimCall {
  op: 'trim';
  /** Bytes to leave untrimmed at the top of the heap (size_t). */
  pad: number;
}

/** spawn U: the line's thread creates thread U (pthread_create). */
export interface SpawnCall {
  op: 'spawn';
  /** The new thread's number (never used before in the trace). */
  spawned: number;
}

/** exit: the line's thread returns from its start routine (never thread 1). */
export interface ExitCall {
  op: 'exit';
}

/** One call of a trace, as a program would make it. */
export type TraceCall = MallocCall | CallocCall | ReallocCall | MemalignCall | FreeCall | MalloptCall | TrimCall | SpawnCall | ExitCall;

/** Where a call stood in its trace, and which block it names. */
export interface EventPlace {
  /** 0-based index of the call among the trace's calls (comments and blank lines do not count). */
  seq: number;
  /** 1-based line number in the file. */
  line: number;
  /**
   * A dense small integer naming the block while its ID is live, reused after the ID ends: index typed
   * arrays with it instead of keeping a Map from ID to block. -1 for mallopt and trim.
   */
  slot: number;
  /** For realloc: whether the ID was live before this call (false means realloc(NULL, size)). */
  wasLive: boolean;
  /**
   * The thread that makes the call (`@T` on its line; 1, the main thread, without a tag). Present on every
   * event from the trace's first thread line (a tag, spawn or exit) on; absent means thread 1.
   */
  thread?: number;
  /**
   * The exact values of the number fields above 2^53, which the number fields only approximate. Present only
   * then: glibc's early refusals of huge requests (near 2^63) depend on exact size_t arithmetic.
   */
  exact?: ExactSizes;
}

/** Exact values of huge number fields, by field name. */
export interface ExactSizes {
  size?: bigint;
  nmemb?: bigint;
  alignment?: bigint;
  pad?: bigint;
}

/** One call read from a trace, with its place. */
export type TraceEvent = TraceCall & EventPlace;
