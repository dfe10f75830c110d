// Which arena a call uses (arena.c: arena_get, arena_get2, get_free_list, reused_arena, _int_new_arena,
// arena_get_retry, arena_for_chunk). Calls are replayed one at a time, so no arena is ever locked by another
// thread: reused_arena always takes the next arena in line.
import { MallocState } from './arena.ts';
import { ChunkState } from './chunks.ts';
import { CHUNK_HDR_SZ, MALLOC_ALIGNMENT, MALLOC_STATE_SIZE, alignUp } from './constants.ts';
import { newHeap, noteHeap } from './heap.ts';
import type { Malloc } from './malloc.ts';
import type { ArenaNote } from './notes.ts';

/** arenas per CPU once more than arena_test exist (NARENAS_FROM_NCORES). */
const ARENAS_PER_CORE = 8;

/** arena_get: the running thread's arena, chosen (arena_get2) at its first call that needs one. Null if none could be had. */
export function arenaGet(m: Malloc, bytes: number): MallocState | null {
  return m.thread.arena ?? arenaGet2(m, bytes, null);
}

/**
 * arena_get2: an arena of an exited thread first (the last freed), else a new one while fewer than the limit
 * exist (arena_max; or, once more than arena_test exist, 8 per CPU; no limit before), else the next arena in
 * line. The limit is worked out once and kept.
 */
export function arenaGet2(m: Malloc, bytes: number, avoid: MallocState | null): MallocState | null {
  const free = getFreeList(m);
  if (free) return noteArena(m, free, 'free-list');
  const mp = m.mp;
  if (m.narenasLimit === 0) {
    if (mp.arenaMax !== 0) m.narenasLimit = mp.arenaMax;
    else if (m.narenas > mp.arenaTest) m.narenasLimit = ARENAS_PER_CORE * (m.cores >= 1 ? m.cores : 2);
  }
  // narenas <= narenas_limit - 1 in size_t: a limit of 0 (not yet worked out) allows any number.
  if (m.narenasLimit === 0 || m.narenas <= m.narenasLimit - 1) {
    m.narenas++;
    const made = intNewArena(m, bytes);
    if (made === null) m.narenas--;
    return made && noteArena(m, made, 'new');
  }
  return noteArena(m, reusedArena(m, avoid), 'reused');
}

/** Records the running thread's new arena and why (the call's decisions). */
function noteArena(m: Malloc, av: MallocState, how: ArenaNote['how']): MallocState {
  const mp = m.mp;
  m.notes.arena = {
    thread: m.thread.id,
    how,
    arena: av.index,
    narenas: m.narenas,
    limit: m.narenasLimit,
    arenaMax: mp.arenaMax,
    cores: m.cores,
    arenaTest: mp.arenaTest,
  };
  return av;
}

/** arena_get_retry: after a failed allocation, a thread arena's caller tries main_arena; main_arena's, another arena. */
export function arenaGetRetry(m: Malloc, av: MallocState, bytes: number): MallocState | null {
  if (!av.isMain) return noteArena(m, m.main, 'main');
  return arenaGet2(m, bytes, av);
}

/** arena_for_chunk: a heap chunk's arena (its heap's, when it lies in a thread arena's heap). */
export function arenaForChunk(m: Malloc, p: number): MallocState {
  return m.heapAt(m.chunks.address[p])?.arena ?? m.main;
}

/** detach_arena: the thread leaves `av` (its old thread_arena). */
function detachArena(av: MallocState | null): void {
  if (av !== null) av.attachedThreads--;
}

/** get_free_list: takes the head of the free list (arenas whose threads all exited) for the running thread. */
function getFreeList(m: Malloc): MallocState | null {
  const result = m.freeList;
  if (result === null) return null;
  m.freeList = result.nextFree;
  result.attachedThreads = 1;
  detachArena(m.thread.arena);
  m.thread.arena = result;
  return result;
}

/** reused_arena: the next arena in line (main first, then newest to oldest), taken off the free list if there. */
function reusedArena(m: Malloc, avoid: MallocState | null): MallocState {
  m.nextToUse ??= m.main;
  // Every trylock succeeds in a one-at-a-time replay, so the loop that skips locked arenas (and `avoid`,
  // which only matters after every arena was found locked) always stops at next_to_use.
  void avoid;
  const result = m.nextToUse;
  detachArena(m.thread.arena);
  removeFromFreeList(m, result);
  result.attachedThreads++;
  m.thread.arena = result;
  m.nextToUse = result.next;
  return result;
}

function removeFromFreeList(m: Malloc, av: MallocState): void {
  if (m.freeList === av) {
    m.freeList = av.nextFree;
    return;
  }
  for (let a = m.freeList; a !== null; a = a.nextFree) {
    if (a.nextFree === av) {
      a.nextFree = av.nextFree;
      return;
    }
  }
}

/**
 * _int_new_arena(bytes): a heap for the request and the arena's headers (or, when that cannot fit a heap, a
 * minimal one), the malloc_state in it after the heap_info, the top after that; linked into the ring after
 * main_arena, and made the running thread's arena.
 */
function intNewArena(m: Malloc, bytes: number): MallocState | null {
  const headers = m.glibc.heapInfoSize + MALLOC_STATE_SIZE;
  const heap = newHeap(m, bytes + headers + MALLOC_ALIGNMENT) ?? newHeap(m, headers + MALLOC_ALIGNMENT);
  if (heap === null) return null;
  const av = new MallocState(m, m.arenas.length);
  m.arenas.push(av);
  heap.arena = av;
  av.heap = heap;
  av.contiguous = false;
  av.attachedThreads = 1;
  av.systemMem = heap.size;
  av.maxSystemMem = heap.size;
  noteHeap(av, heap, 'new', heap.size);
  // The top starts after the headers, moved up so that its user pointer is 16-byte aligned.
  const topOffset = alignUp(headers + CHUNK_HDR_SZ, MALLOC_ALIGNMENT) - CHUNK_HDR_SZ;
  m.chunks.release(av.top);
  av.top = m.chunks.create(heap.base + topOffset, heap.size - topOffset, ChunkState.Top, m.seq);
  const replaced = m.thread.arena;
  m.thread.arena = av;
  av.next = m.main.next;
  m.main.next = av;
  detachArena(replaced);
  return av;
}
