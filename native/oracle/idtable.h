/* The live IDs of a trace: an open-addressing hash table from ID bytes to (block pointer, line where the ID
 * was created), kept in mmap'ed memory so that it never touches the heap it observes. */
#ifndef MALLOCSCOPE_ORACLE_IDTABLE_H
#define MALLOCSCOPE_ORACLE_IDTABLE_H

#include <stddef.h>
#include <stdint.h>

struct id_slot {
    uint64_t hash;
    uint64_t key_off;   /* where the ID's bytes start in the key store */
    void *ptr;          /* the block; NULL when the call that made it failed (the ID is live all the same) */
    uint64_t line;      /* 1-based line that created the ID; 0 marks an empty slot */
    uint32_t key_len;
    uint32_t unused;
};

struct idtable {
    struct id_slot *slots;
    size_t mask;        /* capacity - 1; capacity is a power of two */
    size_t live;
    char *keys;         /* ID bytes, appended; deleted IDs leave garbage until the next compaction */
    size_t keys_used;
    size_t keys_cap;
    size_t keys_garbage;
};

void idtable_init(struct idtable *t);
/* The slot of a live ID, or NULL. */
struct id_slot *idtable_find(struct idtable *t, const char *id, size_t len);
/* Adds an ID that is not live and returns its slot. */
struct id_slot *idtable_insert(struct idtable *t, const char *id, size_t len, void *ptr, uint64_t line);
/* Removes a slot returned by idtable_find (it is no longer valid afterwards). */
void idtable_remove(struct idtable *t, struct id_slot *slot);

#endif
