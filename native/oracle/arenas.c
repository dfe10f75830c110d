/* Numbers arenas and heaps from glibc's own structures (see arenas.h).
 *
 * Layouts on x86-64, from malloc/arena.c and malloc/malloc.c of glibc 2.34 to 2.42 (the same in all but the
 * one noted):
 * - a thread arena's heaps are HEAP_MAX_SIZE-aligned mappings, HEAP_MAX_SIZE = 2 * DEFAULT_MMAP_THRESHOLD_MAX
 *   = 64 MiB, each starting with a heap_info: the arena pointer at 0, the previous heap of the same arena at 8
 *   (NULL for the arena's first heap). heap_info is 32 bytes up to 2.34 and 48 from 2.35 on (a page size field
 *   was added, and its padding keeps the chunks after it 16-byte aligned);
 * - an arena's malloc_state sits right after the heap_info of its first heap; in it, after three ints (16
 *   bytes with padding), 10 fastbin pointers, top, last_remainder, 254 bin pointers and a 4-int binmap, comes
 *   `next` at byte 2160, then next_free, attached_threads and system_mem at 2184;
 * - the arenas form a ring through `next`: main -> newest -> ... -> oldest -> main, since a new arena is
 *   linked in right after the main arena and none is ever unlinked.
 * The ring is walked from a thread arena (the main arena is a static of libc, which exports no symbol for
 * it); the main arena is the one member that is not the malloc_state right after its own heap_info. Each walk
 * is checked against mallinfo2, whose `arena` is the sum of system_mem over the same ring. */
#define _GNU_SOURCE
#include "arenas.h"
#include "sysio.h"

#include <errno.h>
#include <gnu/libc-version.h>
#include <malloc.h>

#define HEAP_MAX_SIZE ((uintptr_t)64 << 20)
enum { STATE_NEXT = 2160, STATE_SYSTEM_MEM = 2184, HEAP_INFO_PREV = 8, MAX_RING = 1 << 20 };

static uintptr_t heap_info_size;
static const void **arenas;     /* arenas[k] is thread arena k + 1, in creation order */
static size_t arena_count;
static size_t arena_cap;

static uintptr_t word_at(uintptr_t address)
{
    return *(const volatile uintptr_t *)address;
}

void arenas_init(void)
{
    /* "2.MINOR" or "2.MINOR.PATCH": the minor version decides the heap_info layout. */
    const char *v = gnu_get_libc_version();
    unsigned minor = 0;
    if (v[0] == '2' && v[1] == '.')
        for (const char *p = v + 2; *p >= '0' && *p <= '9'; p++) minor = minor * 10 + (unsigned)(*p - '0');
    heap_info_size = minor >= 35 ? 48 : 32;
}

/* Whether `arena` is a thread arena: the malloc_state right after the heap_info of its first heap, which
 * points back at it. The heap_info lies on the same page as the arena's first bytes, so reading it is safe
 * even for the main arena, which is no such thing. */
static int is_thread_arena(uintptr_t arena)
{
    return (arena & (HEAP_MAX_SIZE - 1)) == heap_info_size && word_at(arena - heap_info_size) == arena;
}

static _Noreturn void inconsistent(const char *what)
{
    die_internal(what, EPROTO);
}

/* Walks the ring from a thread arena and numbers its members in creation order. */
static void rebuild(uintptr_t from)
{
    size_t n = 0, main_at = 0, mains = 0;
    uintptr_t system_mem = 0;
    uintptr_t a = from;
    /* First pass: count, find the main arena, sum system_mem. */
    do {
        if (!is_thread_arena(a)) {
            mains++;
            main_at = n;
        }
        system_mem += word_at(a + STATE_SYSTEM_MEM);
        n++;
        if (n > MAX_RING) inconsistent("the arena ring does not close");
        a = word_at(a + STATE_NEXT);
    } while (a != from);
    if (mains != 1) inconsistent("the arena ring has no single main arena");
    struct mallinfo2 mi = mallinfo2();
    if (mi.arena != system_mem) inconsistent("the arenas' system_mem do not add up to mallinfo2's arena");

    size_t threads = n - 1;
    if (threads > arena_cap) {
        size_t cap = arena_cap == 0 ? 512 : arena_cap;
        while (cap < threads) cap *= 2;
        const void **fresh = region_map(cap * sizeof *fresh);
        if (arenas != NULL) region_unmap(arenas, arena_cap * sizeof *arenas);
        arenas = fresh;
        arena_cap = cap;
    }
    /* From the main arena on, the p-th member (p = 1 the newest) was created as number threads + 1 - p. */
    a = from;
    for (size_t i = 0; i < main_at; i++) a = word_at(a + STATE_NEXT);
    for (size_t p = 1; p <= threads; p++) {
        a = word_at(a + STATE_NEXT);
        arenas[threads - p] = (const void *)a;
    }
    arena_count = threads;
}

static uint64_t arena_number(uintptr_t arena)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < arena_count; k++)
            if ((uintptr_t)arenas[k] == arena) return k + 1;
        if (!is_thread_arena(arena)) inconsistent("a heap_info names no thread arena");
        rebuild(arena);
    }
    inconsistent("an arena is not in the arena ring");
}

void arenas_place(const void *block, struct block_place *place)
{
    uintptr_t heap = (uintptr_t)block & ~(HEAP_MAX_SIZE - 1);
    uint64_t depth = 0;
    for (uintptr_t h = word_at(heap + HEAP_INFO_PREV); h != 0; h = word_at(h + HEAP_INFO_PREV)) depth++;
    place->arena_index = arena_number(word_at(heap));
    place->heap_index = depth;
    place->offset = (uint64_t)((uintptr_t)block - heap);
}
