// Where the footprint goes: every arena's system_mem and mp_.mmapped_mem (mallinfo2's arena + hblkhd) split
// into named parts that add up to it byte for byte, and the live block that pins main_arena's heap. A pure
// reading of the state (docs/anatomy.md defines each part); it changes nothing.
import { MallocscopeError } from '../errors.ts';
import { ChunkState, NIL, chunk2mem } from './chunks.ts';
import { SIZE_SZ, request2size } from './constants.ts';
import type { Heap } from './arena.ts';
import type { Malloc } from './malloc.ts';

/** The parts of a footprint, in bytes (docs/anatomy.md). */
export interface FootprintParts {
  /** The bytes the program asked for, in its live blocks. */
  payload: number;
  /** The rest of the live blocks' chunks: headers, rounding to 16 bytes, a memalign'd mapping's front gap. */
  overhead: number;
  /** Free chunks by where they wait. */
  tcache: number;
  fastbins: number;
  unsorted: number;
  smallBins: number;
  largeBins: number;
  top: number;
  /** Of a live block's own mapping: what lies past the smallest mapping glibc would make for its request. */
  mmapSlack: number;
  /** glibc's own: each thread's tcache_perthread_struct chunk. */
  tcacheStructs: number;
  /** glibc's own: the DTV chunks pthread_create allocates (live threads' and the cached stacks'). */
  dtvs: number;
  /** glibc's own: each thread arena heap's heap_info (and malloc_state in an arena's first heap), up to its first chunk. */
  heapHeaders: number;
  /** glibc's own: the pseudo-chunks that close a region (and an old top too small to free). */
  fenceposts: number;
  /** glibc's own: the brk heap's bytes before its first chunk (sysmalloc aligns the first chunk). */
  brkGap: number;
}

/** The part names, in the order tables list them. */
export const PART_NAMES: readonly (keyof FootprintParts)[] = [
  'payload',
  'overhead',
  'tcache',
  'fastbins',
  'unsorted',
  'smallBins',
  'largeBins',
  'top',
  'mmapSlack',
  'tcacheStructs',
  'dtvs',
  'heapHeaders',
  'fenceposts',
  'brkGap',
];

/** The parts that are free memory malloc can hand out again. */
export const FREE_PARTS: readonly (keyof FootprintParts)[] = ['tcache', 'fastbins', 'unsorted', 'smallBins', 'largeBins', 'top'];

/** The parts glibc holds for itself. */
export const GLIBC_PARTS: readonly (keyof FootprintParts)[] = ['tcacheStructs', 'dtvs', 'heapHeaders', 'fenceposts', 'brkGap'];

/**
 * The program's live blocks, as the replay knows them: calls visit(chunk id, bytes requested) once for each
 * block the program holds (a NULL block has no chunk and is not visited).
 */
export type LiveBlocks = (visit: (chunk: number, requested: number) => void) => void;

export interface ArenaAnatomy {
  /** The arena's number in creation order (0: main_arena). */
  index: number;
  /** Its system_mem, which `parts` sum to. */
  footprint: number;
  parts: FootprintParts;
}

export interface Anatomy {
  /** Every arena's system_mem plus mp_.mmapped_mem: mallinfo2's arena + hblkhd. */
  footprint: number;
  heap: number;
  mmapped: number;
  /** The whole footprint's parts (the arenas' and the mappings' summed). */
  parts: FootprintParts;
  arenas: ArenaAnatomy[];
  /** The chunks with mappings of their own, which belong to no arena: their parts sum to mp_.mmapped_mem. */
  mappings: FootprintParts;
}

/** Every arena's system_mem: mallinfo2's arena (the brk heap, any mmap fallback region, the thread heaps). */
export function heapBytes(m: Malloc): number {
  const arenas = m.arenas;
  let heap = arenas[0].systemMem;
  for (let i = 1; i < arenas.length; i++) heap += arenas[i].systemMem;
  return heap;
}

/**
 * The bytes one block in use takes from the footprint: its chunk in a heap; for a block with a mapping of its
 * own, the whole mapping (a memalign'd block's front gap, lead, included), as mp_.mmapped_mem counts it.
 */
export function blockBytes(m: Malloc, chunk: number): number {
  const c = m.chunks;
  return c.state[chunk] === ChunkState.Mmapped ? c.lead[chunk] + c.size[chunk] : c.size[chunk];
}

/** The footprint: heapBytes plus mp_.mmapped_mem, mallinfo2's arena + hblkhd. */
export function footprintBytes(m: Malloc): number {
  return heapBytes(m) + m.mp.mmappedMem;
}

export function emptyParts(): FootprintParts {
  return {
    payload: 0,
    overhead: 0,
    tcache: 0,
    fastbins: 0,
    unsorted: 0,
    smallBins: 0,
    largeBins: 0,
    top: 0,
    mmapSlack: 0,
    tcacheStructs: 0,
    dtvs: 0,
    heapHeaders: 0,
    fenceposts: 0,
    brkGap: 0,
  };
}

export function sumParts(parts: FootprintParts): number {
  let sum = 0;
  for (const name of PART_NAMES) sum += parts[name];
  return sum;
}

/** The chunks glibc itself holds in use: tcache structs and DTVs, by chunk id. */
function glibcChunks(m: Malloc): Map<number, 'tcacheStructs' | 'dtvs'> {
  const own = new Map<number, 'tcacheStructs' | 'dtvs'>();
  for (const thread of m.threads.values()) {
    if (thread.tcache.structChunk !== NIL) own.set(thread.tcache.structChunk, 'tcacheStructs');
    if (thread.dtv !== NIL) own.set(thread.dtv, 'dtvs');
  }
  for (const dtv of m.cachedStacks) if (dtv !== NIL) own.set(dtv, 'dtvs');
  return own;
}

/** The arena whose system_mem holds a heap chunk at `address`: its thread arena heap's, else main_arena's. */
function arenaOf(m: Malloc, address: number): number {
  const heap = m.heapAt(address);
  if (heap === undefined) return 0;
  if (heap.arena === null) throw inconsistent(`the heap at 0x${heap.base.toString(16)} has no arena`);
  return heap.arena.index;
}

function inconsistent(what: string): MallocscopeError {
  return new MallocscopeError('MODEL_INCONSISTENT', `footprint anatomy: ${what}`);
}

/**
 * The footprint now, split into its parts, per arena and for the mappings of their own. `live` names the
 * program's blocks with their requested sizes; every other chunk in use must be glibc's own (a tcache struct,
 * a DTV), and each arena's parts must sum to its system_mem, or the state is inconsistent (an error).
 */
export function footprintAnatomy(m: Malloc, live: LiveBlocks): Anatomy {
  const c = m.chunks;
  const own = glibcChunks(m);
  const arenas = m.arenas.map((av) => ({ index: av.index, footprint: av.systemMem, parts: emptyParts() }));
  const mappings = emptyParts();
  // Bytes of in-use chunks that are not glibc's, per arena and in mappings: the live blocks must cover them.
  const programInArena = new Float64Array(arenas.length);
  let programMapped = 0;
  // The lowest chunk address of each thread arena heap and of the brk heap: their headers end there.
  const lowest = new Map<Heap, number>();
  const brkStart = m.system.heapStart;
  const brk = m.system.sbrk(0);
  let brkLowest = Number.POSITIVE_INFINITY;
  const threadHeaps = m.heaps.size > 0;

  for (let id = 0; id < c.highWater; id++) {
    const state = c.state[id];
    if (state === ChunkState.Unused || state === ChunkState.BinHeader) continue;
    const size = c.size[id];
    if (state === ChunkState.Mmapped) {
      const bytes = c.lead[id] + size;
      const owner = own.get(id);
      if (owner) mappings[owner] += bytes;
      else programMapped += bytes;
      continue;
    }
    if (size === 0) continue; // the dummy top before an arena's first sysmalloc
    const address = c.address[id];
    // (No thread arena heaps until a thread's first call: then every chunk is main_arena's.)
    const heap = threadHeaps ? m.heapAt(address) : undefined;
    let index = 0;
    if (heap !== undefined) {
      index = arenaOf(m, address);
      const low = lowest.get(heap);
      if (low === undefined || address < low) lowest.set(heap, address);
    } else if (address >= brkStart && address < brk && address < brkLowest) brkLowest = address;
    const parts = arenas[index].parts;
    switch (state) {
      case ChunkState.InUse: {
        const owner = own.get(id);
        if (owner) parts[owner] += size;
        else programInArena[index] += size;
        break;
      }
      case ChunkState.Tcache:
        parts.tcache += size;
        break;
      case ChunkState.Fastbin:
        parts.fastbins += size;
        break;
      case ChunkState.Unsorted:
        parts.unsorted += size;
        break;
      case ChunkState.Small:
        parts.smallBins += size;
        break;
      case ChunkState.Large:
        parts.largeBins += size;
        break;
      case ChunkState.Top:
        parts.top += size;
        break;
      case ChunkState.Fencepost:
        parts.fenceposts += size;
        break;
      default:
        throw inconsistent(`chunk ${id} is in state ${state}`);
    }
  }
  for (const [heap, low] of lowest) arenas[arenaOf(m, heap.base)].parts.heapHeaders += low - heap.base;
  if (brkLowest !== Number.POSITIVE_INFINITY) arenas[0].parts.brkGap = brkLowest - brkStart;

  // The program's blocks: what it asked for, and the rest of each chunk.
  const seenInArena = new Float64Array(arenas.length);
  let seenMapped = 0;
  live((p, requested) => {
    const state = c.state[p];
    const size = c.size[p];
    if (state === ChunkState.Mmapped) {
      // glibc maps request2size(bytes) + SIZE_SZ rounded up to a page: what lies past that is slack.
      const slack = Math.max(0, size - (request2size(requested) + SIZE_SZ));
      const bytes = blockBytes(m, p);
      mappings.payload += requested;
      mappings.mmapSlack += slack;
      mappings.overhead += bytes - requested - slack;
      seenMapped += bytes;
    } else if (state === ChunkState.InUse && !own.has(p)) {
      const index = arenaOf(m, c.address[p]);
      arenas[index].parts.payload += requested;
      arenas[index].parts.overhead += size - requested;
      seenInArena[index] += size;
    } else {
      throw inconsistent(`a live block's chunk ${p} is in state ${state}${own.has(p) ? " (glibc's own)" : ''}`);
    }
  });
  if (seenMapped !== programMapped) throw inconsistent(`the live blocks hold ${seenMapped} mapped bytes, the in-use mappings ${programMapped}`);
  for (const arena of arenas) {
    if (seenInArena[arena.index] !== programInArena[arena.index]) {
      throw inconsistent(`arena ${arena.index}: the live blocks hold ${seenInArena[arena.index]} bytes, its in-use chunks ${programInArena[arena.index]}`);
    }
    const sum = sumParts(arena.parts);
    if (sum !== arena.footprint) throw inconsistent(`arena ${arena.index}: the parts sum to ${sum}, system_mem is ${arena.footprint}`);
  }
  if (sumParts(mappings) !== m.mp.mmappedMem) throw inconsistent(`the mappings' parts sum to ${sumParts(mappings)}, mmapped_mem is ${m.mp.mmappedMem}`);

  const parts = emptyParts();
  for (const arena of arenas) for (const name of PART_NAMES) parts[name] += arena.parts[name];
  for (const name of PART_NAMES) parts[name] += mappings[name];
  const heap = heapBytes(m);
  return { footprint: heap + m.mp.mmappedMem, heap, mmapped: m.mp.mmappedMem, parts, arenas, mappings };
}

/**
 * The free bytes now (tcache, fastbins, bins, tops), from the arenas' counters and the tcaches' lists:
 * what footprintAnatomy's free parts sum to, without a walk of the heap.
 */
export function freeBytes(m: Malloc): number {
  let free = 0;
  for (const av of m.arenas) free += av.topSize + av.fastBytes + av.binnedBytes;
  const c = m.chunks;
  for (const thread of m.threads.values()) {
    const head = thread.tcache.head;
    for (let i = 0; i < head.length; i++) for (let p = head[i]; p !== NIL; p = c.fd[p]) free += c.size[p];
  }
  return free;
}

/** What keeps main_arena's heap from shrinking further. */
export interface HeapPin {
  /**
   * live: a block the program holds; tcache: a freed block waiting in a thread's tcache (glibc still counts it
   * in use, so nothing merges it into the top); glibc: a chunk glibc holds for itself (a DTV, a tcache struct).
   */
  kind: 'live' | 'tcache' | 'glibc';
  /** Its chunk id, address, user pointer and chunk size. */
  chunk: number;
  address: number;
  pointer: number;
  size: number;
  /** The seq of the call that made it (chunk madeBy). */
  madeBy: number;
  /** The bytes above it in its region: the top and the free chunks malloc_trim would merge into the top. */
  freeAbove: number;
}

/**
 * The chunk nearest the end of the region that holds main_arena's top (the brk heap, or the newest mmap
 * fallback region) that malloc_trim cannot merge into the top: it consolidates the fastbins and gives back
 * only the top, so the free chunks in bins and fastbins right below the top join it, and the first chunk
 * below them that is still in use (to glibc: a tcache'd chunk too) is where the heap stops. Null when nothing
 * but glibc's first chunk (the tcache struct at the region's start) is left below, or the arena has no heap.
 */
export function heapPin(m: Malloc): HeapPin | null {
  const c = m.chunks;
  const top = m.main.top;
  if (c.size[top] === 0) return null;
  const own = glibcChunks(m);
  let freeAbove = c.size[top];
  for (let p = c.prevPhys[top]; p !== NIL; p = c.prevPhys[p]) {
    const state = c.state[p];
    if (state === ChunkState.Fastbin || state === ChunkState.Unsorted || state === ChunkState.Small || state === ChunkState.Large) {
      freeAbove += c.size[p];
      continue;
    }
    let kind: HeapPin['kind'] = 'glibc';
    if (state === ChunkState.Tcache) kind = 'tcache';
    else if (state === ChunkState.InUse && !own.has(p)) kind = 'live';
    else if (own.get(p) === 'tcacheStructs' && c.prevPhys[p] === NIL) return null;
    return { kind, chunk: p, address: c.address[p], pointer: chunk2mem(c.address[p]), size: c.size[p], madeBy: c.madeBy[p], freeAbove };
  }
  return null;
}
