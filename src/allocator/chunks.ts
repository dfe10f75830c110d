// Every chunk the model knows, as records in typed arrays indexed by a dense integer (a "chunk id"), with
// each heap region's chunks linked in address order, so that neighbours are found without address lookups.
//
// Glossary (glibc's words):
//   chunk      a piece of memory with a 16-byte header; its user pointer is its address + 16
//   chunksize  the size in the header, flags masked off, header included
//   top        the free space at the high end of the heap, carved from by use_top
//   region     a run of adjacent chunks: the brk heap, or a mapping made by sysmalloc's mmap fallback
//   fencepost  the two 16-byte pseudo-chunks sysmalloc writes after an old top it cannot merge
//   bin        a list of free chunks: unsorted (1), small (2..63), large (64..126); its header is a record
//   tcache     per-thread LIFO caches of up to 7 chunks per size 32..1040, which still look in use
//   fastbin    LIFO lists of chunks of size <= global_max_fast, which still look in use until consolidated

/** What a chunk is now. */
export const enum ChunkState {
  /** The record is unused (on the record free list). */
  Unused = 0,
  /** Handed to the program. */
  InUse = 1,
  /** In a tcache bin (looks in use to its neighbours). */
  Tcache = 2,
  /** In a fastbin (looks in use to its neighbours). */
  Fastbin = 3,
  Unsorted = 4,
  Small = 5,
  Large = 6,
  Top = 7,
  /** Its own mapping. */
  Mmapped = 8,
  /** A 16-byte pseudo-chunk closing a region, or a too-small old top left in use by sysmalloc. */
  Fencepost = 9,
  /** A bin's header (records 0..127), not memory. */
  BinHeader = 10,
}

/** The null chunk id. */
export const NIL = -1;

/** chunk2mem: the user pointer of a chunk at `address` (past its prev_size and size words). */
export function chunk2mem(address: number): number {
  return address + 16;
}

/** mem2chunk: the chunk of user pointer `pointer`. */
export function mem2chunk(pointer: number): number {
  return pointer - 16;
}

/** Free in a regular bin: what glibc's clear PREV_INUSE / inuse bit means (tcache and fastbin chunks look in use). */
export function isBinned(state: number): boolean {
  return state === ChunkState.Unsorted || state === ChunkState.Small || state === ChunkState.Large;
}

/** The chunk records. Field arrays grow together; ids are reused after a record is released. */
export class ChunkTable {
  /** Chunk address (the user pointer is address + 16). */
  address: Float64Array<ArrayBuffer>;
  /** chunksize: header included, flags masked off. */
  size: Float64Array<ArrayBuffer>;
  /** A ChunkState. */
  state: Uint8Array<ArrayBuffer>;
  /** The chunk just below / above in the same region, or NIL at a region's ends. */
  prevPhys: Int32Array<ArrayBuffer>;
  nextPhys: Int32Array<ArrayBuffer>;
  /** fd and bk of bin lists; tcache and fastbins use fd only (NIL ends them). */
  fd: Int32Array<ArrayBuffer>;
  bk: Int32Array<ArrayBuffer>;
  /** fd_nextsize and bk_nextsize of large bins; NIL is glibc's NULL. */
  fdNextsize: Int32Array<ArrayBuffer>;
  bkNextsize: Int32Array<ArrayBuffer>;
  /** For an mmapped chunk: prev_size, the memalign front gap between the mapping start and the chunk. */
  lead: Float64Array<ArrayBuffer>;
  /** The seq of the call that made the chunk what it is (for reports); -1 if none. */
  madeBy: Int32Array<ArrayBuffer>;

  /** Records in use are below this id, or on the free list. */
  private limit = 0;
  private released: number[] = [];

  constructor(capacity = 1024) {
    this.address = new Float64Array(capacity);
    this.size = new Float64Array(capacity);
    this.state = new Uint8Array(capacity);
    this.prevPhys = new Int32Array(capacity);
    this.nextPhys = new Int32Array(capacity);
    this.fd = new Int32Array(capacity);
    this.bk = new Int32Array(capacity);
    this.fdNextsize = new Int32Array(capacity);
    this.bkNextsize = new Int32Array(capacity);
    this.lead = new Float64Array(capacity);
    this.madeBy = new Int32Array(capacity);
  }

  /** Ids below this have been handed out at some time (used by walks). */
  get highWater(): number {
    return this.limit;
  }

  /** A fresh record with the given address, size and state; all links NIL. */
  create(address: number, size: number, state: ChunkState, madeBy = -1): number {
    let id: number;
    const reused = this.released.pop();
    if (reused !== undefined) id = reused;
    else {
      id = this.limit++;
      if (id === this.address.length) this.grow();
    }
    this.fill(id, address, size, state, madeBy);
    return id;
  }

  /** Sets record `id` to a chunk with no links. */
  private fill(id: number, address: number, size: number, state: ChunkState, madeBy: number): void {
    this.address[id] = address;
    this.size[id] = size;
    this.state[id] = state;
    this.prevPhys[id] = NIL;
    this.nextPhys[id] = NIL;
    this.fd[id] = NIL;
    this.bk[id] = NIL;
    this.fdNextsize[id] = NIL;
    this.bkNextsize[id] = NIL;
    this.lead[id] = 0;
    this.madeBy[id] = madeBy;
  }

  /** `count` fresh records with consecutive ids (an arena's bin headers), in state `state`; the first id. */
  createBlock(count: number, state: ChunkState): number {
    const first = this.limit;
    for (let i = 0; i < count; i++) {
      const id = this.limit++;
      if (id === this.address.length) this.grow();
      this.fill(id, 0, 0, state, -1);
    }
    return first;
  }

  /** Gives a record back; its id will be reused. */
  release(id: number): void {
    this.state[id] = ChunkState.Unused;
    this.released.push(id);
  }

  /**
   * Splits `p` at `offset` bytes: p keeps the low part, a new record (returned) takes the rest, placed
   * after p in its region. The new record's state is `state`.
   */
  split(p: number, offset: number, state: ChunkState, madeBy = -1): number {
    const rest = this.create(this.address[p] + offset, this.size[p] - offset, state, madeBy);
    this.size[p] = offset;
    const next = this.nextPhys[p];
    this.nextPhys[rest] = next;
    this.prevPhys[rest] = p;
    this.nextPhys[p] = rest;
    if (next !== NIL) this.prevPhys[next] = rest;
    return rest;
  }

  /** Merges `p`'s upper neighbour into `p` (p grows, the neighbour's record is released). */
  absorbNext(p: number): void {
    const next = this.nextPhys[p];
    this.size[p] += this.size[next];
    const after = this.nextPhys[next];
    this.nextPhys[p] = after;
    if (after !== NIL) this.prevPhys[after] = p;
    this.release(next);
  }

  /** Links `p` right after `before` in address order (before may be NIL to start a region). */
  linkAfter(before: number, p: number): void {
    this.prevPhys[p] = before;
    if (before === NIL) {
      this.nextPhys[p] = NIL;
      return;
    }
    const after = this.nextPhys[before];
    this.nextPhys[p] = after;
    this.nextPhys[before] = p;
    if (after !== NIL) this.prevPhys[after] = p;
  }

  private grow(): void {
    const capacity = this.address.length * 2;
    const widen = <T extends Float64Array<ArrayBuffer> | Int32Array<ArrayBuffer> | Uint8Array<ArrayBuffer>>(old: T): T => {
      const bigger = new (old.constructor as new (n: number) => T)(capacity);
      bigger.set(old as never);
      return bigger;
    };
    this.address = widen(this.address);
    this.size = widen(this.size);
    this.state = widen(this.state);
    this.prevPhys = widen(this.prevPhys);
    this.nextPhys = widen(this.nextPhys);
    this.fd = widen(this.fd);
    this.bk = widen(this.bk);
    this.fdNextsize = widen(this.fdNextsize);
    this.bkNextsize = widen(this.bkNextsize);
    this.lead = widen(this.lead);
    this.madeBy = widen(this.madeBy);
  }
}
