/* The live IDs of a trace (see idtable.h). Linear probing with backward-shift deletion, so that there are
 * no tombstones and a long trace of short-lived IDs keeps the table as small as its live set. */
#define _GNU_SOURCE
#include "idtable.h"
#include "sysio.h"

#include <string.h>

enum { INITIAL_SLOTS = 1 << 14, INITIAL_KEY_BYTES = 1 << 20 };

/* FNV-1a, then a final mix so that the low bits (the slot index) depend on every byte. */
static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

void idtable_init(struct idtable *t)
{
    t->slots = region_map(INITIAL_SLOTS * sizeof(struct id_slot));
    t->mask = INITIAL_SLOTS - 1;
    t->live = 0;
    t->keys = region_map(INITIAL_KEY_BYTES);
    t->keys_used = 0;
    t->keys_cap = INITIAL_KEY_BYTES;
    t->keys_garbage = 0;
}

struct id_slot *idtable_find(struct idtable *t, const char *id, size_t len)
{
    uint64_t h = hash_bytes(id, len);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        struct id_slot *s = &t->slots[i];
        if (s->line == 0) return NULL;
        if (s->hash == h && s->key_len == len && memcmp(t->keys + s->key_off, id, len) == 0) return s;
    }
}

static void place(struct id_slot *slots, size_t mask, const struct id_slot *entry)
{
    size_t i = entry->hash & mask;
    while (slots[i].line != 0) i = (i + 1) & mask;
    slots[i] = *entry;
}

/* Doubles the slot array (fresh zeroed pages from mmap are empty slots). */
static void grow_slots(struct idtable *t)
{
    size_t old_cap = t->mask + 1, new_cap = old_cap * 2;
    struct id_slot *fresh = region_map(new_cap * sizeof(struct id_slot));
    for (size_t i = 0; i < old_cap; i++)
        if (t->slots[i].line != 0) place(fresh, new_cap - 1, &t->slots[i]);
    region_unmap(t->slots, old_cap * sizeof(struct id_slot));
    t->slots = fresh;
    t->mask = new_cap - 1;
}

/* Copies the live IDs' bytes into a fresh store, dropping those of deleted IDs. */
static void compact_keys(struct idtable *t, size_t need)
{
    size_t live_bytes = t->keys_used - t->keys_garbage;
    size_t cap = INITIAL_KEY_BYTES;
    while (cap < 2 * (live_bytes + need)) cap *= 2;
    char *fresh = region_map(cap);
    size_t used = 0;
    for (size_t i = 0; i <= t->mask; i++) {
        struct id_slot *s = &t->slots[i];
        if (s->line == 0) continue;
        memcpy(fresh + used, t->keys + s->key_off, s->key_len);
        s->key_off = used;
        used += s->key_len;
    }
    region_unmap(t->keys, t->keys_cap);
    t->keys = fresh;
    t->keys_cap = cap;
    t->keys_used = used;
    t->keys_garbage = 0;
}

struct id_slot *idtable_insert(struct idtable *t, const char *id, size_t len, void *ptr, uint64_t line)
{
    if ((t->live + 1) * 2 > t->mask + 1) grow_slots(t);
    if (t->keys_cap - t->keys_used < len) {
        if (t->keys_garbage >= t->keys_used / 2) {
            compact_keys(t, len);
        } else {
            size_t cap = t->keys_cap * 2;
            while (cap - t->keys_used < len) cap *= 2;
            t->keys = region_remap(t->keys, t->keys_cap, cap);
            t->keys_cap = cap;
        }
    }
    struct id_slot entry = { hash_bytes(id, len), t->keys_used, ptr, line, (uint32_t)len, 0 };
    memcpy(t->keys + t->keys_used, id, len);
    t->keys_used += len;
    size_t i = entry.hash & t->mask;
    while (t->slots[i].line != 0) i = (i + 1) & t->mask;
    t->slots[i] = entry;
    t->live++;
    return &t->slots[i];
}

void idtable_remove(struct idtable *t, struct id_slot *slot)
{
    t->keys_garbage += slot->key_len;
    t->live--;
    /* Backward-shift deletion: pull later members of the probe run into the hole whenever their home slot
     * does not lie (cyclically) between the hole and their current position. */
    size_t hole = (size_t)(slot - t->slots);
    size_t i = hole;
    for (;;) {
        i = (i + 1) & t->mask;
        struct id_slot *s = &t->slots[i];
        if (s->line == 0) break;
        size_t home = s->hash & t->mask;
        int home_between = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
        if (home_between) continue;
        t->slots[hole] = *s;
        hole = i;
    }
    t->slots[hole].line = 0;
}
