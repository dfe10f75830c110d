/* The threads of a threaded trace (docs/design.md, "Threads"): one real pthread per trace thread, and the turn
 * that lets exactly one of them run at a time. The turn is a token handed over with a futex word per thread,
 * so that nothing here ever calls malloc: the only allocations are glibc's own, inside pthread_create and
 * thread exit, and they belong to the trace's `spawn` and `exit` lines. */
#ifndef MALLOCSCOPE_ORACLE_LOCKSTEP_H
#define MALLOCSCOPE_ORACLE_LOCKSTEP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct trace_thread {
    uint64_t number;            /* the trace's thread number; 1 is the main thread */
    uint64_t spawned_line;      /* the line of its `spawn`; 0 for the main thread */
    uint64_t exited_line;       /* the line of its `exit`; 0 while it runs */
    pthread_t handle;
    atomic_uint turn;           /* 1 when the turn has been given to this thread and not yet taken */
    atomic_uint started;        /* 1 once the new thread waits for its first turn */
};

/* The main thread's record (thread 1). */
struct trace_thread *thread_main(void);
/* The record of thread `number`, or NULL when it was never spawned. */
struct trace_thread *thread_find(uint64_t number);
/* A record for a new thread `number`, first spawned at `line`. Records never move (futex words live in them). */
struct trace_thread *thread_add(uint64_t number, uint64_t line);

/* Gives the turn to `to` and returns at once. */
void turn_give(struct trace_thread *to);
/* Blocks until the turn has been given to `self`, and takes it. */
void turn_wait(struct trace_thread *self);

/* The new thread says it is ready (before waiting for its first turn); its spawner waits for that. */
void started_signal(struct trace_thread *t);
void started_wait(struct trace_thread *t);

#endif
