// One process's malloc: the parameter block mp_, the main arena, the running thread's tcache, the chunks
// they share, the kernel, and what the current call records. Every entry point (libc.ts) takes it.
import type { SystemMemory } from '../system/api.ts';
import { MallocState, type SideArena } from './arena.ts';
import { ChunkTable } from './chunks.ts';
import { newNotes, type CallNotes } from './notes.ts';
import { MallocPar } from './params.ts';
import { Tcache } from './tcache.ts';
import { GLIBC_2_36, type GlibcRules } from './versions.ts';

export class Malloc {
  /** mp_: thresholds, padding, limits, tcache tunables; the one block every arena and thread reads. */
  readonly mp: MallocPar;
  /** Every chunk of the process (heap, mmapped, bin headers), by dense id. */
  readonly chunks = new ChunkTable();
  /** The kernel: simulated or real. */
  readonly system: SystemMemory;
  /** The glibc version modelled: its rule switches, read where each rule lives (versions.ts). */
  readonly glibc: GlibcRules;
  /** main_arena. */
  readonly main: MallocState;
  /** The running thread's tcache (one thread today). */
  readonly tcache: Tcache;
  /**
   * A second arena, made when the main arena could not hold the tcache struct (tcache_init retries in a new
   * arena even in a single thread); it holds nothing else, but mallinfo2 counts it. Null until then.
   */
  sideArena: SideArena | null = null;
  /**
   * For a request above 2^53, which runs with a stand-in size (libc.ts): the exact bytes the call passes to
   * _int_malloc, so that sysmalloc asks the kernel for exactly what glibc asks. null otherwise.
   */
  hugeRequest: bigint | null = null;
  /** What the current call did and why. */
  readonly notes: CallNotes = newNotes();
  /** The seq of the current call (stamped on the chunks it makes). */
  seq = -1;

  /** A fresh process over `system`, with parameter block `mp` (a preset's, or the defaults), as glibc `glibc` runs it. */
  constructor(system: SystemMemory, mp: MallocPar = new MallocPar(), glibc: GlibcRules = GLIBC_2_36) {
    this.system = system;
    this.mp = mp;
    this.glibc = glibc;
    this.main = new MallocState(this);
    this.tcache = new Tcache(this.chunks);
  }
}
