// One process's malloc: the parameter block mp_, the arenas, the threads with their tcaches, the chunks they
// share, the kernel, and what the current call records. Every entry point (libc.ts) takes it.
import type { SystemMemory } from '../system/api.ts';
import { type Heap, MallocState } from './arena.ts';
import { ChunkTable, NIL } from './chunks.ts';
import { HEAP_MAX_SIZE } from './constants.ts';
import { newNotes, type CallNotes } from './notes.ts';
import { MallocPar } from './params.ts';
import { Tcache } from './tcache.ts';
import { GLIBC_2_36, type GlibcRules } from './versions.ts';

/** A thread of the process, as malloc sees it: its tcache and its arena (glibc's thread_arena). */
export class Thread {
  /** The thread's tcache (made by its first malloc, calloc or heap free). */
  readonly tcache: Tcache;
  /** thread_arena: null until its first call needs one (the main thread starts on main_arena). */
  arena: MallocState | null;
  /** The chunk of its DTV (made or reused by pthread_create; NIL for the main thread's, which is not malloc's). */
  dtv = NIL;

  constructor(
    /** Its number in the trace (1 is the main thread). */
    readonly id: number,
    chunks: ChunkTable,
    arena: MallocState | null,
  ) {
    this.tcache = new Tcache(chunks);
    this.arena = arena;
  }
}

export class Malloc {
  /** mp_: thresholds, padding, limits, tcache tunables; the one block every arena and thread reads. */
  readonly mp: MallocPar;
  /** Every chunk of the process (heaps, mmapped, bin headers), by dense id. */
  readonly chunks = new ChunkTable();
  /** The kernel: simulated or real. */
  readonly system: SystemMemory;
  /** The glibc version modelled: its rule switches, read where each rule lives (versions.ts). */
  readonly glibc: GlibcRules;
  /** The CPU count glibc sees (__get_nprocs): 8 arenas per CPU once more than arena_test exist. */
  readonly cores: number;
  /** main_arena. */
  readonly main: MallocState;
  /** Every arena, in the order glibc made them (index 0 is main_arena). */
  readonly arenas: MallocState[] = [];
  /** narenas: how many arenas exist (main included). */
  narenas = 1;
  /** arena_get2's narenas_limit: 0 until computed, then fixed for the life of the process. */
  narenasLimit = 0;
  /** reused_arena's next_to_use, and free_list (arenas of exited threads, last freed first). */
  nextToUse: MallocState | null = null;
  freeList: MallocState | null = null;
  /** The thread arenas' heaps, by base / HEAP_MAX_SIZE (heap_for_ptr). */
  readonly heaps = new Map<number, Heap>();
  /** aligned_heap_area: where new_heap tries first (the end of the last heap it mapped aligned), or 0. */
  alignedHeapArea = 0;
  /** The threads that live, by trace number; the main thread (1) always. */
  readonly threads = new Map<number, Thread>();
  /** The thread making the current call. */
  thread: Thread;
  /** The running thread's tcache (thread.tcache, kept at hand for the hot path). */
  tcache: Tcache;
  /** The DTV chunks of the cached stacks of ended threads, newest first (threads.ts). */
  readonly cachedStacks: number[] = [];
  /** False until the first pthread_create: until then every call uses main_arena (SINGLE_THREAD_P). */
  multiThreaded = false;
  /**
   * For a request above 2^53, which runs with a stand-in size (libc.ts): the exact bytes the call passes to
   * _int_malloc, so that sysmalloc asks the kernel for exactly what glibc asks. null otherwise.
   */
  hugeRequest: bigint | null = null;
  /** What the current call did and why. */
  readonly notes: CallNotes = newNotes();
  /** The seq of the current call (stamped on the chunks it makes). */
  seq = -1;

  /**
   * A fresh process over `system`, with parameter block `mp` (a preset's, or the defaults), as glibc `glibc`
   * runs it on `cores` CPUs.
   */
  constructor(system: SystemMemory, mp: MallocPar = new MallocPar(), glibc: GlibcRules = GLIBC_2_36, cores = 1) {
    this.system = system;
    this.mp = mp;
    this.glibc = glibc;
    this.cores = cores;
    this.main = new MallocState(this);
    this.arenas.push(this.main);
    this.thread = new Thread(1, this.chunks, this.main);
    this.threads.set(1, this.thread);
    this.tcache = this.thread.tcache;
  }

  /** Makes `thread` the one whose calls follow. */
  runAs(thread: Thread): void {
    this.thread = thread;
    this.tcache = thread.tcache;
  }

  /** heap_for_ptr: the thread arena's heap that holds `address`, or undefined (main_arena's memory, or none). */
  heapAt(address: number): Heap | undefined {
    return this.heaps.get(Math.floor(address / HEAP_MAX_SIZE));
  }

  /** Whether `address` lies in main_arena's heap: between the heap start and the break, in no thread heap. */
  inMainHeap(address: number): boolean {
    return address >= this.system.heapStart && address < this.system.sbrk(0) && this.heapAt(address) === undefined;
  }
}
