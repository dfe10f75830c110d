/* mallocscope-oracle: replays a trace (docs/trace-format.md) through this process's real glibc malloc and
 * prints one JSON line per call, so that the model can be checked against the real thing. A trace with threads
 * runs each trace thread in a real thread of its own, one at a time in the trace's order (lockstep.h). */
#define _GNU_SOURCE
#include "arenas.h"
#include "chunk.h"
#include "foreign.h"
#include "heapdump.h"
#include "idtable.h"
#include "lockstep.h"
#include "sysio.h"
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char usage_line[] =
    "mallocscope-oracle [--stats] [--touch] [--rss] [--time] [--foreign] [--name DISPLAYNAME] [--brk-limit BYTES] " HEAPDUMP_USAGE " TRACE|-";

struct options {
    int stats;
    int touch;          /* --touch: write every requested byte of each block as the program gets it */
    int rss;            /* --rss: "rss" after each call (docs/resident.md) */
    int time;           /* --time: the replay's own duration on stderr at exit (for bench/replay.ts) */
    int foreign;        /* --foreign: any malloc, measured from outside; one summary line (foreign.h) */
    const char *name;
    const char *path;
    int has_brk_limit;
    uint64_t brk_limit;
};

/* Usage mistakes: one line, exit 2 (sysio.h). */
_Noreturn void usage_error(const char *what, const char *arg)
{
    struct outbuf err;
    out_init(&err, 2, 1 << 16);
    out_str(&err, "mallocscope: oracle: ");
    out_str(&err, what);
    if (arg != NULL) {
        out_str(&err, " '");
        out_str(&err, arg);
        out_str(&err, "'");
    }
    out_str(&err, " (usage: ");
    out_str(&err, usage_line);
    out_str(&err, ") [USAGE]\n");
    out_flush(&err);
    _exit(2);
}

static void parse_args(int argc, char **argv, struct options *o)
{
    int only_paths = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_paths && a[0] == '-' && a[1] != '\0') {
            if (bytes_equal(a, cstr_len(a), "--")) {
                only_paths = 1;
            } else if (bytes_equal(a, cstr_len(a), "--stats")) {
                o->stats = 1;
            } else if (bytes_equal(a, cstr_len(a), "--touch")) {
                o->touch = 1;
            } else if (bytes_equal(a, cstr_len(a), "--rss")) {
                o->rss = 1;
            } else if (bytes_equal(a, cstr_len(a), "--time")) {
                o->time = 1;
            } else if (bytes_equal(a, cstr_len(a), "--foreign")) {
                o->foreign = 1;
            } else if (bytes_equal(a, cstr_len(a), "--name")) {
                if (++i == argc) usage_error("--name needs a value", NULL);
                o->name = argv[i];
            } else if (bytes_equal(a, cstr_len(a), "--brk-limit")) {
                if (++i == argc) usage_error("--brk-limit needs a value", NULL);
                if (parse_u64(argv[i], cstr_len(argv[i]), &o->brk_limit) != NUMBER_OK)
                    usage_error("--brk-limit takes a byte count (decimal or 0x-hexadecimal), not", argv[i]);
                o->has_brk_limit = 1;
            } else if (heapdump_option(argc, argv, &i)) {
            } else {
                usage_error("unknown option", a);
            }
        } else {
            if (o->path != NULL) usage_error("one trace only; extra argument", a);
            o->path = a;
        }
    }
    if (o->path == NULL) usage_error("no trace given", NULL);
    /* mallinfo2 is glibc's: under another malloc it answers about a heap nobody uses (all zeros). */
    if (o->foreign && o->stats) usage_error("--stats reads glibc's mallinfo2, which --foreign does not (another malloc keeps none)", NULL);
    /* An image is glibc's heap laid out as glibc lays it: another malloc has no such heap. */
    if (o->foreign && heapdump_requested()) usage_error("--image-at images glibc's heap, which --foreign does not read", NULL);
}

/* Lets the break grow at most `limit` bytes (rounded down to whole pages) above its start, as the model's
 * --brk-limit does, so that sbrk fails past it and glibc falls back to mmap (README, "the main job": what
 * --brk-limit means). The kernel moves the break only while a page stays free below the next mapping, so the
 * inaccessible page goes one page above the last byte the break may reach. */
static void place_brk_blocker(uintptr_t heap_start, uint64_t limit)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (limit > UINTPTR_MAX - heap_start - 2 * page) usage_error("--brk-limit is too large", NULL);
    uintptr_t at = heap_start + ((uintptr_t)limit & ~(page - 1)) + page;
    at = (at + page - 1) & ~(page - 1);
    void *got = mmap((void *)at, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
                     -1, 0);
    if (got == MAP_FAILED || got != (void *)at) {
        int err = got == MAP_FAILED ? errno : EEXIST;
        if (got != MAP_FAILED) munmap(got, page);
        struct outbuf out;
        out_init(&out, 2, 1 << 12);
        out_str(&out, "mallocscope: oracle: cannot place the --brk-limit blocker at heap start + ");
        out_u64(&out, (uint64_t)(at - heap_start));
        out_str(&out, ": ");
        out_errno_reason(&out, err);
        out_str(&out, " [BRK_LIMIT]\n");
        out_flush(&out);
        _exit(2);
    }
}

/* With --rss: the top 64 KiB of the main thread's stack are made resident once, so that the stack's resident
 * pages do not change from run to run. The kernel puts the program's name, arguments and environment at the
 * very top and the first stack frame a random distance (up to 8 KiB) below them, so the pages a replay touches
 * vary by one or two with where that lands; 64 KiB from the top's page down (the kernel gives the stack 128 KiB
 * more than its arguments to start with) covers them and the replay's own calls, wherever it lands. Each byte
 * is read and written back unchanged: some of those pages hold live data (this frame's, the environment's). */
static void steady_stack(void)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t top = (uintptr_t)getauxval(AT_EXECFN) & ~(page - 1);
    if (top < (64 << 10)) return;
    for (uintptr_t at = top; at > top - (64 << 10); at -= page) {
        volatile char *p = (volatile char *)at;
        *p = *p;
    }
}

/* ---- output --------------------------------------------------------------------------------------- */

static struct outbuf out;
static char *heap_start;
static int with_stats;
static int with_touch;
/* --rss: /proc/self/statm, open for the whole replay (pread at 0 reads it afresh); -1 without --rss. */
static int statm_fd = -1;
/* --foreign: no line per call, no look at glibc's structures (the size word, mallinfo2, the arenas). */
static int foreign;
/* A trace with threads (any tag, spawn or exit in it): every line says its thread, every heap block its arena. */
static int threaded;

/* The ID with `"` and `\` escaped; IDs hold no control characters (the reader rejects them). */
static char *put_id(char *at, const char *id, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (id[i] == '"' || id[i] == '\\') *at++ = '\\';
        *at++ = id[i];
    }
    return at;
}

/* --touch: the program writes the `bytes` it asked for (docs/resident.md), so that their pages are resident
 * as the model assumes. Not zero, so that no compiler turns a malloc and its memset into a calloc. */
static void touch_block(void *block, uint64_t bytes)
{
    if (with_touch && block != NULL && bytes > 0) memset(block, 0x5a, (size_t)bytes);
    heapdump_clear(block);
}

/* The word before the user pointer: glibc's size field with its flag bits. It lies outside the block
 * that C sees, hence the address arithmetic on an integer. */
static size_t size_word_of(const void *block)
{
    return *(const volatile size_t *)((uintptr_t)block - sizeof(size_t));
}

/* One JSON line: seq, op, id; where/chunk/offset when a block came back; mallinfo2 with --stats. In a trace
 * with threads, the line's thread after id, and a heap block's arenaIndex (and heapIndex, in a thread arena)
 * before its offset, which is then measured from that heap's start. */
static void emit(uint64_t seq, enum verb verb, const char *id, size_t id_len, uint64_t thread, void *block)
{
    out_reserve(&out, 2 * id_len + 512);
    char *at = out.data + out.used;
    at = PUT_LITERAL(at, "{\"seq\":");
    at = put_u64(at, seq);
    at = PUT_LITERAL(at, ",\"op\":\"");
    at = put_bytes(at, verb_names[verb], verb_name_lengths[verb]);
    at = PUT_LITERAL(at, "\",\"id\":\"");
    at = put_id(at, id, id_len);
    *at++ = '"';
    if (threaded) {
        at = PUT_LITERAL(at, ",\"thread\":");
        at = put_u64(at, thread);
    }
    if (block != NULL) {
        size_t size_word = size_word_of(block);
        size_t chunk = size_word & ~(size_t)SIZE_BITS;
        if (size_word & IS_MMAPPED) {
            at = PUT_LITERAL(at, ",\"where\":\"mmap\",\"chunk\":");
            at = put_u64(at, chunk);
        } else {
            at = PUT_LITERAL(at, ",\"where\":\"heap\",\"chunk\":");
            at = put_u64(at, chunk);
            if (threaded && (size_word & NON_MAIN_ARENA)) {
                struct block_place place;
                arenas_place(block, &place);
                at = PUT_LITERAL(at, ",\"arenaIndex\":");
                at = put_u64(at, place.arena_index);
                at = PUT_LITERAL(at, ",\"heapIndex\":");
                at = put_u64(at, place.heap_index);
                at = PUT_LITERAL(at, ",\"offset\":");
                at = put_u64(at, place.offset);
            } else {
                if (threaded) at = PUT_LITERAL(at, ",\"arenaIndex\":0");
                at = PUT_LITERAL(at, ",\"offset\":");
                at = put_i64(at, (int64_t)((intptr_t)block - (intptr_t)heap_start));
            }
        }
    }
    if (with_stats) {
        struct mallinfo2 mi = mallinfo2();
        at = PUT_LITERAL(at, ",\"arena\":");
        at = put_u64(at, mi.arena);
        at = PUT_LITERAL(at, ",\"hblks\":");
        at = put_u64(at, mi.hblks);
        at = PUT_LITERAL(at, ",\"hblkhd\":");
        at = put_u64(at, mi.hblkhd);
        at = PUT_LITERAL(at, ",\"uordblks\":");
        at = put_u64(at, mi.uordblks);
        at = PUT_LITERAL(at, ",\"fordblks\":");
        at = put_u64(at, mi.fordblks);
        at = PUT_LITERAL(at, ",\"keepcost\":");
        at = put_u64(at, mi.keepcost);
    }
    if (statm_fd >= 0) {
        at = PUT_LITERAL(at, ",\"rss\":");
        at = put_u64(at, anon_resident_bytes(statm_fd));
    }
    at = PUT_LITERAL(at, "}\n");
    out.used = (size_t)(at - out.data);
    heapdump_event(seq);
}

/* What follows each call: its JSON line, or under --foreign the measurements alone. */
static void after_call(uint64_t seq, enum verb verb, const char *id, size_t id_len, uint64_t thread, void *block)
{
    if (foreign) foreign_after(seq);
    else emit(seq, verb, id, id_len, thread, block);
}

/* ---- replay --------------------------------------------------------------------------------------- */

static _Noreturn void fail_already_live(struct trace_reader *r, const struct trace_call *c, uint64_t created)
{
    struct outbuf *err = trace_error_begin(r, c->line);
    out_str(err, "ID '");
    out_bytes(err, c->id, c->id_len);
    out_str(err, "' is already live (created at line ");
    out_u64(err, created);
    out_str(err, ")");
    trace_error_end(err, "TRACE_ID_LIVE");
}

static _Noreturn void fail_not_live(struct trace_reader *r, const struct trace_call *c)
{
    struct outbuf *err = trace_error_begin(r, c->line);
    out_str(err, "free of ID '");
    out_bytes(err, c->id, c->id_len);
    out_str(err, "', which is not live");
    trace_error_end(err, "TRACE_ID_NOT_LIVE");
}

/* ---- threads ------------------------------------------------------------------------------------- */

static _Noreturn void fail_thread(struct trace_reader *r, const struct trace_call *c, const char *code, const char *before,
                                  uint64_t number, const char *after, uint64_t line, const char *end)
{
    struct outbuf *err = trace_error_begin(r, c->line);
    out_str(err, before);
    out_u64(err, number);
    out_str(err, after);
    if (line != 0) {
        out_u64(err, line);
        out_str(err, end);
    }
    trace_error_end(err, code);
}

/* The thread of a line, after the checks that the line's thread and verb allow: the thread must have been
 * spawned and not have exited; `spawn` needs a new number; thread 1 cannot exit. */
static struct trace_thread *thread_of(struct trace_reader *r, const struct trace_call *c)
{
    struct trace_thread *t = thread_find(c->thread);
    if (t == NULL) fail_thread(r, c, "TRACE_THREAD_UNKNOWN", "thread ", c->thread, " was never spawned", 0, "");
    if (t->exited_line != 0)
        fail_thread(r, c, "TRACE_THREAD_EXITED", "thread ", c->thread, " has exited (at line ", t->exited_line, ")");
    if (c->verb == VERB_SPAWN) {
        struct trace_thread *u = thread_find(c->spawn);
        if (u == thread_main())
            fail_thread(r, c, "TRACE_THREAD_NOT_NEW", "spawn of thread ", 1, ", which is not new (the main thread)", 0, "");
        if (u != NULL)
            fail_thread(r, c, "TRACE_THREAD_NOT_NEW", "spawn of thread ", c->spawn, ", which is not new (spawned at line ",
                        u->spawned_line, ")");
    }
    if (c->verb == VERB_EXIT && t == thread_main())
        fail_thread(r, c, "TRACE_EXIT_MAIN", "thread ", 1, ", the main thread, cannot exit", 0, "");
    return t;
}

/* ---- replay --------------------------------------------------------------------------------------- */

/* The replay's state, shared by the threads of a threaded trace: only the thread that holds the turn touches
 * it, and the hand-over of the turn (an atomic store, a futex wake, an atomic load) orders those accesses. */
static struct trace_reader *source;
static struct idtable ids;
static struct trace_call call;          /* the line read last */
static int have_call;                   /* 1 while `call` waits to be run by its thread */
static uint64_t seq;
static struct trace_thread *exiting;    /* a thread that has returned, for the main thread to join */
static int trace_ended;

static void *thread_start(void *arg);

/* Runs `call` in the calling thread (its own line) and writes its JSON line; for `exit`, the line is written
 * by the main thread once the thread has been joined. Returns 1 for exit. */
static int run_call(struct trace_thread *self)
{
    struct trace_call *c = &call;
    void *block = NULL;
    struct id_slot *slot;
    switch (c->verb) {
    case VERB_MALLOC:
    case VERB_CALLOC:
    case VERB_MEMALIGN:
        slot = idtable_find(&ids, c->id, c->id_len);
        if (slot != NULL) fail_already_live(source, c, slot->line);
        if (c->verb == VERB_MALLOC) {
            block = malloc(c->num[0]);
            touch_block(block, c->num[0]);
        } else if (c->verb == VERB_CALLOC) {
            block = calloc(c->num[0], c->num[1]);
            /* A block came back, so the product fits. */
            touch_block(block, c->num[0] * c->num[1]);
        } else {
            block = memalign(c->num[0], c->num[1]);
            touch_block(block, c->num[1]);
        }
        /* The ID is live even when the call failed: a later free of it is free(NULL). */
        idtable_insert(&ids, c->id, c->id_len, block, c->line);
        break;
    case VERB_REALLOC:
        slot = idtable_find(&ids, c->id, c->id_len);
        if (slot == NULL) {
            block = realloc(NULL, c->num[0]);
            touch_block(block, c->num[0]);
            idtable_insert(&ids, c->id, c->id_len, block, c->line);
        } else if (c->num[0] == 0) {
            /* glibc 2.36 frees and returns NULL. An ID live from a failed call holds NULL, and
               realloc(NULL, 0) is malloc(0), as in the program the trace came from: its block leaks. */
            block = realloc(slot->ptr, 0);
            idtable_remove(&ids, slot);
        } else {
            block = realloc(slot->ptr, c->num[0]);
            if (block != NULL) slot->ptr = block;   /* a failed realloc leaves the old block live */
            touch_block(block, c->num[0]);          /* the whole new size */
        }
        break;
    case VERB_FREE:
        slot = idtable_find(&ids, c->id, c->id_len);
        if (slot == NULL) fail_not_live(source, c);
        free(slot->ptr);
        idtable_remove(&ids, slot);
        break;
    case VERB_MALLOPT:
        mallopt(c->param, c->value);
        break;
    case VERB_TRIM:
        malloc_trim(c->num[0]);
        break;
    case VERB_SPAWN: {
        /* pthread_create made by the spawning thread, so that glibc allocates the new thread's DTV in this
           thread's arena; the line is written once the new thread waits for its turn, so that nothing it does
           runs beside a later line. */
        struct trace_thread *u = thread_add(c->spawn, c->line);
        int err = pthread_create(&u->handle, NULL, thread_start, u);
        if (err != 0) {
            out_flush(&out); /* the lines of the calls before this one, as a trace error keeps them */
            die_internal("pthread_create", err);
        }
        started_wait(u);
        break;
    }
    case VERB_EXIT:
        self->exited_line = c->line;
        return 1;
    }
    after_call(seq++, c->verb, c->id, c->id_len, self->number, block);
    return 0;
}

/* Replays lines while `self` holds the turn: runs `call` if it waits for this thread, reads the next line,
 * and gives the turn to the line's thread when that is another, waiting until it comes back. In the main
 * thread it returns at the end of the trace; in a spawned thread, when the thread exits (the turn then goes
 * to the main thread, which joins it: so thread-exit's frees in glibc, tcache_thread_shutdown and the
 * arena's release, are over before the exit's line is written and the next line runs). */
static void take_turns(struct trace_thread *self)
{
    struct trace_thread *main_thread = thread_main();
    for (;;) {
        if (exiting != NULL) {
            /* Only the main thread is given the turn for this. */
            int err = pthread_join(exiting->handle, NULL);
            if (err != 0) die_internal("pthread_join", err);
            after_call(seq++, VERB_EXIT, "", 0, exiting->number, NULL);
            exiting = NULL;
        } else if (trace_ended) {
            return;
        } else if (have_call) {
            have_call = 0;
            if (run_call(self)) {
                exiting = self;
                turn_give(main_thread);
                return;
            }
        }
        if (!trace_next(source, &call)) {
            trace_ended = 1;
            if (self == main_thread) return;
            turn_give(main_thread);
            for (;;) turn_wait(self);   /* never given again: the main thread ends the process */
        }
        struct trace_thread *owner = threaded ? thread_of(source, &call) : self;
        have_call = 1;
        if (owner != self) {
            turn_give(owner);
            turn_wait(self);
        }
    }
}

static void *thread_start(void *arg)
{
    struct trace_thread *self = arg;
    started_signal(self);
    turn_wait(self);
    take_turns(self);
    return NULL;
}

static void replay(struct trace_reader *r)
{
    source = r;
    idtable_init(&ids);
    if (threaded && !foreign) arenas_init();
    take_turns(thread_main());
}

/* `{"replay_ns":N}` on stderr: one write from a buffer on the stack, no stdio. */
static void write_replay_time(const struct timespec *began, const struct timespec *ended)
{
    int64_t ns = (int64_t)(ended->tv_sec - began->tv_sec) * 1000000000 + (ended->tv_nsec - began->tv_nsec);
    char line[64];
    char *at = line;
    at = PUT_LITERAL(at, "{\"replay_ns\":");
    at = put_i64(at, ns);
    at = PUT_LITERAL(at, "}\n");
    if (write_all(2, line, (size_t)(at - line)) != 0) die_output(errno);
}

/* Where glibc itself crashes (malloc_printerr's abort, or a fault in its own arithmetic), the lines of the
 * calls before are written out first, so that a reader sees exactly which call the process died in; then the
 * signal takes its default course. Only write(2) here: nothing else is safe in a signal handler. */
static char fatal_stack[1 << 14];

static void flush_then_die(int sig)
{
    size_t done = 0;
    while (done < out.used) {
        ssize_t n = write(out.fd, out.data + done, out.used - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void flush_on_fatal_signals(void)
{
    stack_t alt = { .ss_sp = fatal_stack, .ss_size = sizeof fatal_stack, .ss_flags = 0 };
    sigaltstack(&alt, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = flush_then_die;
    action.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, NULL);
    sigaction(SIGBUS, &action, NULL);
    sigaction(SIGABRT, &action, NULL);
}

int main(int argc, char **argv)
{
    /* The heap start is the break before glibc's first allocation; nothing here has called malloc yet. */
    heap_start = sbrk(0);

    struct options o = { 0 };
    parse_args(argc, argv, &o);
    with_stats = o.stats;
    foreign = o.foreign;
    /* Under --foreign every block is written: its pages are real, whatever the allocator. */
    with_touch = o.touch || o.foreign;
    if (o.rss) {
        own_resident();
        steady_stack();
        statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        if (statm_fd < 0) die_internal("opening /proc/self/statm for --rss", errno);
    }
    const int from_stdin = bytes_equal(o.path, cstr_len(o.path), "-");
    const char *display = o.name != NULL ? o.name : from_stdin ? "<stdin>" : o.path;

    if (o.has_brk_limit) place_brk_blocker((uintptr_t)heap_start, o.brk_limit);
    /* A reader that goes away shows up as EPIPE from write, which ends the replay quietly. */
    signal(SIGPIPE, SIG_IGN);

    int fd = 0;
    if (!from_stdin) {
        fd = open(o.path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) trace_open_error(display, errno, NULL);
    }
    out_init(&out, 1, 1 << 20);
    flush_on_fatal_signals();
    struct trace_reader reader;
    trace_open_reader(&reader, fd, display, &out);
    threaded = trace_has_threads(&reader);
    heapdump_start(heap_start, &out, threaded);
    /* --time measures the replay alone: from just before the first read of the trace to just after its
     * last call, so process start-up and the final flush are left out. */
    struct timespec began = { 0 }, ended = { 0 };
    if (o.time) clock_gettime(CLOCK_MONOTONIC, &began);
    if (foreign) foreign_begin(statm_fd);
    replay(&reader);
    if (foreign) foreign_end(&out, seq);
    if (o.time) clock_gettime(CLOCK_MONOTONIC, &ended);
    heapdump_end(seq);
    out_flush(&out);
    if (o.time) write_replay_time(&began, &ended);
    return 0;
}
