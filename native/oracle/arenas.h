/* Where a heap block of a threaded trace lives: its arena, numbered in the order glibc created the arenas
 * (0 is the main arena), and for a thread arena its heap, numbered from the arena's first, with the block's
 * offset from that heap's start. Read from glibc's own structures, whose layouts are in arenas.c. */
#ifndef MALLOCSCOPE_ORACLE_ARENAS_H
#define MALLOCSCOPE_ORACLE_ARENAS_H

#include <stddef.h>
#include <stdint.h>

struct block_place {
    uint64_t arena_index;   /* 1.. for a thread arena */
    uint64_t heap_index;    /* the heap's place in its arena, the first heap 0 */
    uint64_t offset;        /* user pointer minus the heap's start (its heap_info) */
};

/* Reads the glibc version this process runs under, for the layouts; before the first arenas_place. */
void arenas_init(void);
/* The place of a block whose chunk has the NON_MAIN_ARENA bit (chunk.h). */
void arenas_place(const void *block, struct block_place *place);

#endif
