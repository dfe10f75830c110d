// A thread arena's heaps (arena.c: new_heap, grow_heap, shrink_heap, heap_trim): 64 MiB-aligned reservations,
// made writable page by page as the arena grows, and given back from the top, a whole heap at a time.
import { Heap, type MallocState } from './arena.ts';
import { ChunkState, NIL, isBinned } from './chunks.ts';
import { CHUNK_HDR_SZ, HEAP_MAX_SIZE, HEAP_MIN_SIZE, MALLOC_ALIGNMENT, MINSIZE, alignDown, alignUp } from './constants.ts';
import type { Malloc } from './malloc.ts';
import type { HeapNote } from './notes.ts';
import { big, sizeTFromInt, wrap } from './size-t.ts';

/**
 * new_heap(size, mp_.top_pad): `size` plus the pad (a negative M_TOP_PAD wraps as a size_t), at least
 * HEAP_MIN_SIZE, at most HEAP_MAX_SIZE, in whole pages; reserved at the address the last aligned reservation
 * left free (aligned_heap_area) or by mapping twice HEAP_MAX_SIZE and unmapping the misaligned ends; then
 * made writable. Null when the request cannot fit a heap or the kernel refuses.
 */
export function newHeap(m: Malloc, size: number): Heap | null {
  const system = m.system;
  const withPad = wrap(BigInt(size) + big(sizeTFromInt(m.mp.topPad)));
  let bytes: number;
  if (withPad < BigInt(HEAP_MIN_SIZE)) bytes = HEAP_MIN_SIZE;
  else if (withPad <= BigInt(HEAP_MAX_SIZE)) bytes = Number(withPad);
  else if (size > HEAP_MAX_SIZE) return null;
  else bytes = HEAP_MAX_SIZE;
  bytes = alignUp(bytes, system.pageSize);

  let base = -1;
  if (m.alignedHeapArea !== 0) {
    base = system.reserve(HEAP_MAX_SIZE, m.alignedHeapArea);
    m.alignedHeapArea = 0;
    if (base !== -1 && base % HEAP_MAX_SIZE !== 0) {
      system.munmap(base, HEAP_MAX_SIZE);
      base = -1;
    }
  }
  if (base === -1) {
    const wide = system.reserve(2 * HEAP_MAX_SIZE);
    if (wide !== -1) {
      base = alignUp(wide, HEAP_MAX_SIZE);
      const lead = base - wide;
      if (lead !== 0) system.munmap(wide, lead);
      else m.alignedHeapArea = base + HEAP_MAX_SIZE;
      system.munmap(base + HEAP_MAX_SIZE, HEAP_MAX_SIZE - lead);
    } else {
      // Perhaps a reservation of one heap's size happens to be aligned.
      base = system.reserve(HEAP_MAX_SIZE);
      if (base === -1) return null;
      if (base % HEAP_MAX_SIZE !== 0) {
        system.munmap(base, HEAP_MAX_SIZE);
        return null;
      }
    }
  }
  if (!system.mprotect(base, bytes)) {
    system.munmap(base, HEAP_MAX_SIZE);
    return null;
  }
  const heap = new Heap(base, bytes, bytes, null, null);
  m.heaps.set(base / HEAP_MAX_SIZE, heap);
  return heap;
}

/** grow_heap: `diff` more bytes (in whole pages) at the heap's end; false when the heap would pass HEAP_MAX_SIZE. */
export function growHeap(m: Malloc, heap: Heap, diff: number): boolean {
  const grown = heap.size + alignUp(diff, m.system.pageSize);
  // Written so that an endless diff (a request past 2^53, which no heap holds) is refused too.
  if (!(grown <= HEAP_MAX_SIZE)) return false;
  if (grown > heap.mprotectSize) {
    if (!m.system.mprotect(heap.base + heap.mprotectSize, grown - heap.mprotectSize)) return false;
    heap.mprotectSize = grown;
  }
  heap.size = grown;
  return true;
}

/** shrink_heap: the last `diff` bytes go back (madvise; the pages stay writable). */
function shrinkHeap(m: Malloc, heap: Heap, diff: number): boolean {
  const shrunk = heap.size - diff;
  if (shrunk < m.glibc.heapInfoSize) return false;
  m.system.madvise(heap.base + shrunk, diff);
  heap.size = shrunk;
  return true;
}

/**
 * sysmalloc's end of a thread arena's heap that cannot grow: the old top, less two 16-byte fenceposts, is
 * freed when at least MINSIZE is left; otherwise it stays behind as one in-use chunk before the last
 * fencepost (heap_trim finds the fenceposts again when the next heap goes).
 */
export function closeHeap(av: MallocState, heap: Heap, oldTop: number, freeChunk: (p: number) => void): void {
  const c = av.chunks;
  const end = c.address[oldTop] + c.size[oldTop];
  const keep = alignDown(c.size[oldTop] - MINSIZE, MALLOC_ALIGNMENT);
  const freed = keep >= MINSIZE;
  // The chunk the closing fencepost follows: a 16-byte fencepost after a freed rest, or the small rest itself.
  let before = oldTop;
  if (freed) {
    c.size[oldTop] = keep;
    c.state[oldTop] = ChunkState.InUse;
    before = c.create(c.address[oldTop] + keep, CHUNK_HDR_SZ, ChunkState.Fencepost, av.m.seq);
    c.linkAfter(oldTop, before);
  } else {
    c.size[oldTop] = keep + CHUNK_HDR_SZ;
    c.state[oldTop] = ChunkState.Fencepost;
  }
  heap.closing = c.create(end - CHUNK_HDR_SZ, CHUNK_HDR_SZ, ChunkState.Fencepost, av.m.seq);
  c.linkAfter(before, heap.closing);
  if (freed) freeChunk(oldTop);
}

/** Records a change of a thread arena's heap in the call's decisions; a release counts as a trim. */
export function noteHeap(av: MallocState, heap: Heap, how: HeapNote['how'], bytes: number): void {
  const notes = av.m.notes;
  if (how === 'unmapped' || how === 'shrunk') {
    notes.trims++;
    notes.trimmedBytes += bytes;
  }
  if (notes.detail) notes.heaps.push({ arena: av.index, heap: heap.index, how, bytes });
}

/**
 * heap_trim(heap, mp_.top_pad), after a free of 64 KiB or more in a thread arena: while the top is all of the
 * arena's last heap, that heap is unmapped and the previous heap's end (its fenceposts, and the free chunk
 * before them) becomes the top, unless too little would be free there; then the top beyond the pad goes
 * back in whole pages (madvise) once it reaches the trim threshold. Returns whether memory went back.
 */
export function heapTrim(av: MallocState): boolean {
  const m = av.m;
  let released = false;
  const c = av.chunks;
  const page = m.system.pageSize;
  const pad = big(sizeTFromInt(m.mp.topPad));
  let heap = av.heap as Heap;
  while (heap.prev !== null && c.address[av.top] === heap.base + m.glibc.heapInfoSize) {
    const prev = heap.prev;
    // The previous heap ends with its closing fencepost; the chunk before it is the other fencepost (or the
    // old top's small remainder), and before that maybe a free chunk to merge with.
    const last = prev.closing;
    const before = c.prevPhys[last];
    let size = c.size[before] + c.size[last];
    const merge = c.prevPhys[before] !== NIL && isBinned(c.state[c.prevPhys[before]]) ? c.prevPhys[before] : NIL;
    if (merge !== NIL) size += c.size[merge];
    // Kept when the free end and the unreserved rest of the previous heap are below pad + MINSIZE + a page.
    if (wrap(BigInt(size + (HEAP_MAX_SIZE - prev.size))) < wrap(pad + BigInt(MINSIZE + page))) break;
    av.systemMem -= heap.size;
    released = true;
    noteHeap(av, heap, 'unmapped', heap.size);
    if (heap.base + HEAP_MAX_SIZE === m.alignedHeapArea) m.alignedHeapArea = 0;
    m.system.munmap(heap.base, HEAP_MAX_SIZE);
    m.heaps.delete(heap.base / HEAP_MAX_SIZE);
    c.release(av.top);
    heap = prev;
    av.heap = prev;
    let top = before;
    if (merge !== NIL) {
      av.unlinkChunk(merge);
      top = merge;
    }
    // The new top runs to the heap's end: absorb what follows it.
    while (c.nextPhys[top] !== NIL) c.absorbNext(top);
    c.size[top] = size;
    c.state[top] = ChunkState.Top;
    av.top = top;
    prev.closing = -1;
  }
  const topSize = c.size[av.top];
  if (topSize < m.mp.trimThreshold) return released;
  const topArea = topSize - MINSIZE - 1;
  if (topArea < 0 || BigInt(topArea) <= pad) return released;
  const extra = alignDown(topArea - Number(pad), page);
  if (extra === 0 || !shrinkHeap(m, heap, extra)) return released;
  av.systemMem -= extra;
  c.size[av.top] = topSize - extra;
  noteHeap(av, heap, 'shrunk', extra);
  return true;
}
