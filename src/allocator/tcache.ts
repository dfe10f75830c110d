// A thread's tcache (glibc's tcache_perthread_struct): per size class, a stack of chunks and its count.
// Per thread, not per arena: a chunk freed here may belong to any arena.
import { ChunkState, NIL, type ChunkTable } from './chunks.ts';
import { TCACHE_MAX_BINS } from './constants.ts';

export class Tcache {
  /** Set once tcache_init has run (MAYBE_INIT_TCACHE on the thread's first malloc, calloc or heap free). */
  ready = false;
  /** tcache_shutting_down: the thread is exiting; its tcache is gone and is never made again. */
  shuttingDown = false;
  /** The chunk holding the struct itself (the heap's first chunk, 0x290), once made; NIL while not made. */
  structChunk = NIL;
  /** entries[i]: the newest chunk of bin i (NIL when empty); counts[i]: how many it holds. */
  readonly head = new Int32Array(TCACHE_MAX_BINS).fill(NIL);
  readonly counts = new Int32Array(TCACHE_MAX_BINS);

  constructor(private readonly chunks: ChunkTable) {}

  /** tcache_put. */
  put(p: number, tidx: number): void {
    const c = this.chunks;
    c.fd[p] = this.head[tidx];
    this.head[tidx] = p;
    this.counts[tidx]++;
    c.state[p] = ChunkState.Tcache;
  }

  /** Since 2.38 (tcache_get_n): takes entry `p`, which follows `before` in bin `tidx` (NIL: it is the newest). */
  take(tidx: number, p: number, before: number): number {
    const c = this.chunks;
    if (before === NIL) this.head[tidx] = c.fd[p];
    else c.fd[before] = c.fd[p];
    this.counts[tidx]--;
    c.fd[p] = NIL;
    c.state[p] = ChunkState.InUse;
    return p;
  }

  /** tcache_get: pops the most recent entry. */
  get(tidx: number): number {
    return this.take(tidx, this.head[tidx], NIL);
  }
}
