/* Thread records and the turn of a lockstep replay (see lockstep.h). Records sit in mmap'ed blocks that never
 * move, found by number through an open-addressing table that may; both live outside the glibc heap. */
#define _GNU_SOURCE
#include "lockstep.h"
#include "sysio.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { RECORDS_PER_BLOCK = 256, INITIAL_SLOTS = 64 };

static struct trace_thread main_thread = { .number = 1 };

static struct trace_thread *block;       /* the block new records are taken from */
static size_t block_used = RECORDS_PER_BLOCK;
static struct trace_thread **slots;      /* number -> record, linear probing; NULL is empty */
static size_t slot_mask;
static size_t slot_count;

struct trace_thread *thread_main(void)
{
    return &main_thread;
}

static size_t home_of(uint64_t number, size_t mask)
{
    uint64_t h = number * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & mask;
}

struct trace_thread *thread_find(uint64_t number)
{
    if (number == 1) return &main_thread;
    if (slots == NULL) return NULL;
    for (size_t i = home_of(number, slot_mask);; i = (i + 1) & slot_mask) {
        if (slots[i] == NULL) return NULL;
        if (slots[i]->number == number) return slots[i];
    }
}

static void place(struct trace_thread **table, size_t mask, struct trace_thread *t)
{
    size_t i = home_of(t->number, mask);
    while (table[i] != NULL) i = (i + 1) & mask;
    table[i] = t;
}

struct trace_thread *thread_add(uint64_t number, uint64_t line)
{
    if (slots == NULL) {
        slots = region_map(INITIAL_SLOTS * sizeof *slots);
        slot_mask = INITIAL_SLOTS - 1;
    } else if ((slot_count + 1) * 2 > slot_mask + 1) {
        size_t cap = (slot_mask + 1) * 2;
        struct trace_thread **fresh = region_map(cap * sizeof *fresh);
        for (size_t i = 0; i <= slot_mask; i++)
            if (slots[i] != NULL) place(fresh, cap - 1, slots[i]);
        region_unmap(slots, (slot_mask + 1) * sizeof *slots);
        slots = fresh;
        slot_mask = cap - 1;
    }
    if (block_used == RECORDS_PER_BLOCK) {
        block = region_map(RECORDS_PER_BLOCK * sizeof *block);   /* zeroed: turn and started are 0 */
        block_used = 0;
    }
    struct trace_thread *t = &block[block_used++];
    t->number = number;
    t->spawned_line = line;
    place(slots, slot_mask, t);
    slot_count++;
    return t;
}

/* ---- the turn ----------------------------------------------------------------------------------------- */

static void futex_wait(atomic_uint *word, unsigned expected)
{
    /* EAGAIN (the word changed already) and EINTR both mean: look again. */
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *word)
{
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void turn_give(struct trace_thread *to)
{
    atomic_store(&to->turn, 1);
    futex_wake(&to->turn);
}

void turn_wait(struct trace_thread *self)
{
    /* The token may have arrived before this call (the other thread ran and gave it back at once): the word
     * then already says 1 and the wait returns without sleeping. Taking it resets the word for next time. */
    while (atomic_load(&self->turn) == 0) futex_wait(&self->turn, 0);
    atomic_store(&self->turn, 0);
}

void started_signal(struct trace_thread *t)
{
    atomic_store(&t->started, 1);
    futex_wake(&t->started);
}

void started_wait(struct trace_thread *t)
{
    while (atomic_load(&t->started) == 0) futex_wait(&t->started, 0);
}
