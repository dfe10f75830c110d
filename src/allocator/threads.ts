// What a thread's start and end do through malloc (nptl and arena.c, as the lockstep oracle replays them:
// docs/glibc.md, "Threads and arenas"): pthread_create callocs the new thread's DTV in the creating thread
// unless a cached stack (with its DTV) is free; a thread's end empties its tcache into the arenas, frees the
// tcache itself, and puts its arena on the free list when no other thread uses it; then the joining main
// thread caches the stack, and frees the DTV of the oldest cached stack when the cache is over its limit.
import { NIL } from './chunks.ts';
import { libcCalloc, libcFree } from './libc.ts';
import { type Malloc, Thread } from './malloc.ts';
import type { ThreadNote } from './notes.ts';

/** The DTV pthread_create allocates: calloc(17, 16), a 288-byte chunk (the oracle's process, 8 MiB stacks). */
const DTV_ENTRIES = 17;
const DTV_ENTRY_SIZE = 16;
/**
 * Stacks of ended threads kept for reuse: the cache holds 40 MiB, and a default stack is 8 MiB plus a guard
 * page (RLIMIT_STACK 8 MiB), so four fit.
 */
export const STACKS_CACHED = 4;

/** pthread_create by `spawner` of thread `id`: a cached stack's DTV, or a fresh one calloc'd by the spawner. */
export function spawnThread(m: Malloc, spawner: Thread, id: number): Thread {
  m.multiThreaded = true;
  m.runAs(spawner);
  const thread = new Thread(id, m.chunks, null);
  const cached = m.cachedStacks.shift();
  thread.dtv = cached !== undefined ? cached : libcCalloc(m, DTV_ENTRIES, DTV_ENTRY_SIZE);
  m.threads.set(id, thread);
  const note = threadNote(id);
  note.dtv = cached !== undefined ? 'cached' : 'calloc';
  note.dtvChunk = thread.dtv === NIL ? 0 : m.chunks.size[thread.dtv];
  note.cached = m.cachedStacks.length;
  m.notes.thread = note;
  return thread;
}

/** A spawn's or an exit's note for thread `id`, with nothing done yet. */
function threadNote(id: number): ThreadNote {
  return { thread: id, dtv: null, dtvChunk: 0, flushed: 0, structChunk: 0, freedArena: -1, dtvFreed: false, cached: 0, cacheLimit: STACKS_CACHED };
}

/**
 * The end of `thread` (its start routine returns) and its join by the main thread: tcache_thread_shutdown,
 * arena_thread_freeres, then the stack goes to the cache (the oldest DTVs freed past the limit).
 */
export function exitThread(m: Malloc, thread: Thread): void {
  m.runAs(thread);
  const tcache = thread.tcache;
  tcache.shuttingDown = true;
  const note = threadNote(thread.id);
  if (tcache.ready) {
    note.structChunk = m.chunks.size[tcache.structChunk];
    tcache.ready = false;
    // Each bin from its newest entry, bin by bin, then the struct itself: frees with no tcache to take them.
    for (let i = 0; i < tcache.head.length; i++) {
      while (tcache.head[i] !== NIL) {
        libcFree(m, tcache.take(i, tcache.head[i], NIL));
        note.flushed++;
      }
    }
    libcFree(m, tcache.structChunk);
    tcache.structChunk = NIL;
  }
  const arena = thread.arena;
  thread.arena = null;
  if (arena !== null && --arena.attachedThreads === 0) {
    arena.nextFree = m.freeList;
    m.freeList = arena;
    note.freedArena = arena.index;
  }
  m.threads.delete(thread.id);
  const main = m.threads.get(1) as Thread;
  m.runAs(main);
  m.cachedStacks.unshift(thread.dtv);
  while (m.cachedStacks.length > STACKS_CACHED) {
    const dtv = m.cachedStacks.pop() as number;
    if (dtv !== NIL) libcFree(m, dtv);
    note.dtvFreed = dtv !== NIL;
  }
  note.cached = m.cachedStacks.length;
  // The frees above reset nothing: the call's note is the exit's.
  m.notes.thread = note;
}
