/* The flag bits of a chunk's size word, which the oracle reads from glibc's chunks (docs/glibc.md §1). */
#ifndef MALLOCSCOPE_ORACLE_CHUNK_H
#define MALLOCSCOPE_ORACLE_CHUNK_H

#define PREV_INUSE 0x1
#define IS_MMAPPED 0x2
#define NON_MAIN_ARENA 0x4
#define SIZE_BITS 0x7

#endif
