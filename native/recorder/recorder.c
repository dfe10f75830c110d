/* libmallocscope-recorder.so: a preload library that records every call of the malloc family, with the thread
 * that made it, into a binary log that `mallocscope record` turns into a trace (docs/record.md).
 *   LD_PRELOAD=/path/libmallocscope-recorder.so MALLOCSCOPE_RECORD_DIR=DIR prog    → DIR/PID.msrec
 * It never allocates through malloc itself: the log is a file mapped MAP_SHARED, one shared array of fixed-size
 * records whose index (an atomic increment) is the call's sequence number; what is written there is in the file
 * at once, so a program that execs, calls _exit() or is killed loses nothing. */
#define _GNU_SOURCE
#include "log.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <threads.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- the real functions, and the bootstrap arena for dlsym's own calls ------------------------------------ */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
static int (*real_malloc_trim)(size_t);
static int (*real_mallopt)(int, int);
static int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static int (*real_thrd_create)(thrd_t *, thrd_start_t, void *);

/* dlsym may call malloc or calloc (its error state) before the real ones are known: such calls are served
 * from this arena, never recorded, and their frees ignored. 16-byte aligned, each block after its size. */
static _Alignas(16) unsigned char bootstrap[64 * 1024];
static atomic_size_t bootstrap_used;

static int in_bootstrap(const void *p) {
  return (const unsigned char *)p >= bootstrap && (const unsigned char *)p < bootstrap + sizeof bootstrap;
}

static void *bootstrap_alloc(size_t size) {
  size_t need = ((size + 15) & ~(size_t)15) + 16;
  if (size > sizeof bootstrap) return NULL;
  size_t at = atomic_fetch_add(&bootstrap_used, need);
  if (at + need > sizeof bootstrap) return NULL;
  *(size_t *)(bootstrap + at) = size;
  return bootstrap + at + 16; /* static storage: already zero, as calloc must return it */
}

/* ---- per-thread state ---------------------------------------------------------------------------------------- */

/* initial-exec TLS: reading it never calls __tls_get_addr, which may allocate. */
struct thread_state {
  uint32_t number;   /* 1 = the main thread, then in order of creation; 0 = not known yet */
  uint32_t suppress; /* inside pthread_create: glibc's own allocations belong to the spawn */
  uint32_t starting; /* this thread is in start(): dlsym's own calls must not wait for it */
};
static __thread struct thread_state self __attribute__((tls_model("initial-exec")));

/* ---- the log ------------------------------------------------------------------------------------------------- */

enum { NOT_STARTED, STARTING, STARTED };
static atomic_int state = NOT_STARTED;
static struct msrec_header *header; /* NULL: not recording (no MALLOCSCOPE_RECORD_DIR, or the log failed) */
static struct msrec_record *records;
static int log_fd = -1;
static atomic_uint_fast64_t committed; /* records the file is long enough to hold */
static atomic_flag grow_lock = ATOMIC_FLAG_INIT;
static atomic_uint next_thread = 2;
static atomic_int stopped; /* the log could not grow: nothing more is recorded (the header says so) */
static uint64_t heap_start;

static void spin_lock(atomic_flag *lock) {
  while (atomic_flag_test_and_set_explicit(lock, memory_order_acquire)) sched_yield();
}
static void spin_unlock(atomic_flag *lock) {
  atomic_flag_clear_explicit(lock, memory_order_release);
}

/* The file grows by doubling (sparse: only written pages take room); the mapping is reserved once, whole. */
static int grow(uint64_t index) {
  int ok = 1;
  spin_lock(&grow_lock);
  uint64_t have = atomic_load(&committed);
  if (index >= have) {
    uint64_t want = have * 2;
    while (want <= index) want *= 2;
    if (want > MSREC_MAX_RECORDS) want = MSREC_MAX_RECORDS;
    if (index >= want || ftruncate(log_fd, (off_t)(MSREC_HEADER_SIZE + want * MSREC_RECORD_SIZE)) != 0) {
      ok = 0;
      atomic_fetch_or(&header->flags, MSREC_FLAG_STOPPED);
      atomic_store(&stopped, 1);
    } else {
      atomic_store(&committed, want);
    }
  }
  spin_unlock(&grow_lock);
  return ok;
}

/* A slot for the next event: its index is the event's sequence number. NULL when not recording. */
static inline struct msrec_record *reserve(void) {
  if (header == NULL || atomic_load_explicit(&stopped, memory_order_relaxed)) return NULL;
  uint64_t index = atomic_fetch_add_explicit(&header->cursor, 1, memory_order_relaxed);
  if (index >= atomic_load_explicit(&committed, memory_order_acquire) && !grow(index)) return NULL;
  return &records[index];
}

/* The kind is stored last, with release order: a reader that sees it sees the fields (a slot whose kind is
 * still 0 was reserved by a call the process never finished: it ended, or was killed, during that call). */
static inline void commit_as(struct msrec_record *r, uint32_t thread, uint8_t kind, uint8_t how, uint64_t a, uint64_t b, uint64_t c) {
  r->thread = thread;
  r->how = how;
  r->a = a;
  r->b = b;
  r->c = c;
  atomic_store_explicit(&r->kind, kind, memory_order_release);
}

static inline void commit(struct msrec_record *r, uint8_t kind, uint8_t how, uint64_t a, uint64_t b, uint64_t c) {
  commit_as(r, self.number, kind, how, a, b, c);
}

static void thread_first_seen(void);

/* The calling thread's number; a thread that no pthread_create of ours started (glibc's own helpers) gets one
 * now, with a spawn record made in thread 1's name, flagged as unseen. */
static inline int recording(void) {
  if (header == NULL || self.suppress) return 0;
  if (__builtin_expect(self.number == 0, 0)) thread_first_seen();
  return 1;
}

static void thread_first_seen(void) {
  uint32_t number = atomic_fetch_add(&next_thread, 1);
  struct msrec_record *r = reserve();
  if (r) commit_as(r, 1, MSREC_SPAWN, MSREC_SPAWN_UNSEEN, number, 0, 0); /* in thread 1's name */
  self.number = number;
}

/* ---- starting: the real functions, then the log -------------------------------------------------------------- */

static size_t text_copy(char *to, size_t at, size_t cap, const char *from) {
  while (*from && at + 1 < cap) to[at++] = *from++;
  to[at] = 0;
  return at;
}

static size_t decimal(char *to, size_t at, size_t cap, unsigned long value) {
  char digits[24];
  size_t n = 0;
  do {
    digits[n++] = (char)('0' + value % 10);
    value /= 10;
  } while (value);
  while (n && at + 1 < cap) to[at++] = digits[--n];
  to[at] = 0;
  return at;
}

/* Opens DIR/PID.msrec (truncating it: an exec'd program's log replaces the one before it, as with mtrace) and
 * maps it. On any failure the program runs unrecorded. */
static void open_log(uint32_t forked_from) {
  const char *dir = getenv("MALLOCSCOPE_RECORD_DIR");
  header = NULL;
  records = NULL;
  if (dir == NULL || *dir == 0) return;
  char path[PATH_MAX];
  size_t n = text_copy(path, 0, sizeof path, dir);
  n = text_copy(path, n, sizeof path, "/");
  n = decimal(path, n, sizeof path, (unsigned long)getpid());
  n = text_copy(path, n, sizeof path, ".msrec");
  if (n + 1 >= sizeof path) return;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  /* A high descriptor, out of the way of programs that dup2 onto low numbers or close 3..N. */
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
  if (high >= 0) {
    close(fd);
    fd = high;
  }
  uint64_t first = MSREC_FIRST_RECORDS;
  void *map = MAP_FAILED;
  if (ftruncate(fd, (off_t)(MSREC_HEADER_SIZE + first * MSREC_RECORD_SIZE)) == 0)
    map = mmap(NULL, MSREC_HEADER_SIZE + MSREC_MAX_RECORDS * MSREC_RECORD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (map == MAP_FAILED) {
    close(fd);
    return;
  }
  struct msrec_header *h = map;
  memcpy(h->magic, MSREC_MAGIC, sizeof h->magic);
  h->version = MSREC_VERSION;
  h->record_size = MSREC_RECORD_SIZE;
  h->pid = (uint32_t)getpid();
  h->ppid = (uint32_t)getppid();
  h->forked_from = forked_from;
  h->page_size = (uint32_t)sysconf(_SC_PAGESIZE);
  h->heap_start = heap_start; /* a forked child's heap is its parent's */
  ssize_t len = readlink("/proc/self/exe", h->program, sizeof h->program - 1);
  h->program[len > 0 ? len : 0] = 0;
  log_fd = fd;
  atomic_store(&committed, first);
  atomic_store(&stopped, 0);
  records = (struct msrec_record *)((char *)map + MSREC_HEADER_SIZE);
  header = h;
}

/* Threads calling in at once (a library's constructor that starts threads) wait for the one that starts. */
static void start(void) {
  int expected = NOT_STARTED;
  if (!atomic_compare_exchange_strong(&state, &expected, STARTING)) {
    while (atomic_load(&state) != STARTED) sched_yield();
    return;
  }
  self.starting = 1;
  heap_start = (uint64_t)(uintptr_t)sbrk(0); /* before anything can touch the heap */
  real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
  real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
  real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
  real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
  real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
  real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
  real_valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
  real_pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
  real_malloc_trim = (int (*)(size_t))dlsym(RTLD_NEXT, "malloc_trim");
  real_mallopt = (int (*)(int, int))dlsym(RTLD_NEXT, "mallopt");
  real_pthread_create = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(RTLD_NEXT, "pthread_create");
  real_thrd_create = (int (*)(thrd_t *, thrd_start_t, void *))dlsym(RTLD_NEXT, "thrd_create");
  /* The first call comes from the main thread: the dynamic loader starts no thread before it. */
  self.number = 1;
  open_log(0);
  self.starting = 0;
  atomic_store(&state, STARTED);
}

static inline int started(void) {
  return __builtin_expect(atomic_load_explicit(&state, memory_order_acquire) == STARTED, 1);
}

static inline void ensure_started(void) {
  if (!started() && !self.starting) start();
}

/* Before the recorder has started, in the thread that starts it (dlsym calling back into the allocator): the
 * bootstrap arena, never the real heap, whose first blocks must be the program's. Any other thread waits. */
#define EARLY(fallback)                          \
  if (!started()) {                              \
    if (self.starting) return fallback;          \
    start();                                     \
  }

/* A forked child gets a log of its own (DIR/CHILD.msrec), its forking thread becomes its thread 1, and the
 * locks another thread may have held at fork are taken around it so the child never finds them held. */
static void before_fork(void) {
  spin_lock(&grow_lock);
}
static void after_fork_parent(void) {
  spin_unlock(&grow_lock);
}
static void after_fork_child(void) {
  spin_unlock(&grow_lock);
  uint32_t parent = header ? header->pid : 0;
  if (header) {
    munmap(header, MSREC_HEADER_SIZE + MSREC_MAX_RECORDS * MSREC_RECORD_SIZE);
    close(log_fd);
    log_fd = -1;
  }
  self.number = 1;
  self.suppress = 0;
  atomic_store(&next_thread, 2);
  if (parent) open_log(parent);
}

__attribute__((constructor)) static void recorder_init(void) {
  ensure_started();
  /* Registering a handler allocates nothing for the first few dozen handlers (glibc keeps them inline). */
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* ---- the malloc family ---------------------------------------------------------------------------------------- */

/* Calls that return a block are recorded after they return (no other thread can know the block before);
 * calls that give a block back (free, realloc's first half) before, so that the block's next owner, whose
 * call returns it later, is recorded later. */

EXPORT void *malloc(size_t size) {
  EARLY(bootstrap_alloc(size));
  void *p = real_malloc(size);
  if (recording()) {
    struct msrec_record *r = reserve();
    if (r) commit(r, MSREC_MALLOC, 0, (uint64_t)(uintptr_t)p, size, 0);
  }
  return p;
}

static void *bootstrap_calloc(size_t nmemb, size_t size) {
  size_t total;
  return __builtin_mul_overflow(nmemb, size, &total) ? NULL : bootstrap_alloc(total);
}

EXPORT void *calloc(size_t nmemb, size_t size) {
  EARLY(bootstrap_calloc(nmemb, size));
  void *p = real_calloc(nmemb, size);
  if (recording()) {
    struct msrec_record *r = reserve();
    if (r) commit(r, MSREC_CALLOC, 0, (uint64_t)(uintptr_t)p, nmemb, size);
  }
  return p;
}

EXPORT void free(void *p) {
  if (p == NULL || in_bootstrap(p)) return;
  if (!started()) {
    if (self.starting) {
      if (real_free) real_free(p);
      return;
    }
    start();
  }
  if (recording()) {
    struct msrec_record *r = reserve();
    if (r) commit(r, MSREC_FREE, 0, (uint64_t)(uintptr_t)p, 0, 0);
  }
  real_free(p);
}

/* A block from the arena moves to the real heap when it can (unrecorded: its first life was not either). */
static void *bootstrap_realloc(void *old, size_t size) {
  void *p = started() ? real_malloc(size) : bootstrap_alloc(size);
  if (p && old) {
    size_t had = *(size_t *)((unsigned char *)old - 16);
    memcpy(p, old, had < size ? had : size);
  }
  return p;
}

EXPORT void *realloc(void *old, size_t size) {
  if (in_bootstrap(old)) return bootstrap_realloc(old, size);
  EARLY(bootstrap_realloc(old, size));
  if (!recording()) return real_realloc(old, size);
  struct msrec_record *r = reserve();
  if (r) commit(r, MSREC_REALLOC_BEGIN, 0, (uint64_t)(uintptr_t)old, size, 0);
  void *p = real_realloc(old, size);
  r = reserve();
  if (r) commit(r, MSREC_REALLOC_END, 0, (uint64_t)(uintptr_t)p, size, (uint64_t)(uintptr_t)old);
  return p;
}

static inline void aligned_record(uint8_t how, void *p, size_t align, size_t size) {
  if (recording()) {
    struct msrec_record *r = reserve();
    if (r) commit(r, MSREC_MEMALIGN, how, (uint64_t)(uintptr_t)p, align, size);
  }
}

EXPORT void *memalign(size_t align, size_t size) {
  EARLY(NULL);
  void *p = real_memalign(align, size);
  aligned_record(MSREC_HOW_MEMALIGN, p, align, size);
  return p;
}

EXPORT void *aligned_alloc(size_t align, size_t size) {
  EARLY(NULL);
  void *p = real_aligned_alloc(align, size);
  aligned_record(MSREC_HOW_ALIGNED_ALLOC, p, align, size);
  return p;
}

EXPORT int posix_memalign(void **out, size_t align, size_t size) {
  EARLY(ENOMEM);
  void *p = NULL;
  int result = real_posix_memalign(&p, align, size);
  if (result == 0) *out = p;
  aligned_record(result == EINVAL ? MSREC_HOW_POSIX_MEMALIGN_EINVAL : MSREC_HOW_POSIX_MEMALIGN, result == 0 ? p : NULL, align, size);
  return result;
}

EXPORT void *valloc(size_t size) {
  EARLY(NULL);
  void *p = real_valloc(size);
  aligned_record(MSREC_HOW_VALLOC, p, 0, size);
  return p;
}

EXPORT void *pvalloc(size_t size) {
  EARLY(NULL);
  void *p = real_pvalloc(size);
  aligned_record(MSREC_HOW_PVALLOC, p, 0, size);
  return p;
}

EXPORT int malloc_trim(size_t pad) {
  EARLY(0);
  if (recording()) {
    struct msrec_record *r = reserve();
    if (r) commit(r, MSREC_TRIM, 0, pad, 0, 0);
  }
  return real_malloc_trim(pad);
}

EXPORT int mallopt(int param, int value) {
  EARLY(0);
  if (recording()) {
    struct msrec_record *r = reserve();
    if (r) commit(r, MSREC_MALLOPT, 0, (uint64_t)(int64_t)param, (uint64_t)(int64_t)value, 0);
  }
  return real_mallopt(param, value);
}

/* ---- threads --------------------------------------------------------------------------------------------------- */

/* What a new thread needs before it runs: its start routine and argument, and its number. Slots come from
 * mmap'ed pages, never malloc, and go back to a free list as soon as the thread has copied them. */
struct start_slot {
  struct start_slot *next;
  void *(*start)(void *);
  int (*c11_start)(void *);
  void *arg;
  uint32_t number;
};
static struct start_slot *free_slots;
static atomic_flag slots_lock = ATOMIC_FLAG_INIT;

static struct start_slot *slot_get(void) {
  spin_lock(&slots_lock);
  if (free_slots == NULL) {
    size_t page = 64 * 1024;
    struct start_slot *more = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (more != MAP_FAILED) {
      for (size_t i = 0; i < page / sizeof *more; i++) {
        more[i].next = free_slots;
        free_slots = &more[i];
      }
    }
  }
  struct start_slot *s = free_slots;
  if (s) free_slots = s->next;
  spin_unlock(&slots_lock);
  return s;
}

static void slot_put(struct start_slot *s) {
  spin_lock(&slots_lock);
  s->next = free_slots;
  free_slots = s;
  spin_unlock(&slots_lock);
}

/* Runs when the start routine returns, and when the thread leaves through pthread_exit, thrd_exit or a
 * cancellation (a cleanup handler runs in all four). What the thread's destructors and glibc free after this
 * is recorded too, in the thread's name: the converter puts the trace's exit after the thread's last call. */
static void thread_ends(void *unused) {
  (void)unused;
  if (recording()) {
    struct msrec_record *r = reserve();
    if (r) commit(r, MSREC_EXIT, 0, 0, 0, 0);
  }
}

static void *run_thread(void *p) {
  struct start_slot s = *(struct start_slot *)p;
  slot_put(p);
  self.number = s.number;
  void *result = NULL;
  pthread_cleanup_push(thread_ends, NULL);
  if (s.c11_start) result = (void *)(intptr_t)s.c11_start(s.arg);
  else result = s.start(s.arg);
  pthread_cleanup_pop(1);
  return result;
}

static int run_c11_thread(void *p) {
  return (int)(intptr_t)run_thread(p);
}

/* The spawn's slot is taken before the real call, so it precedes everything the new thread does; its record is
 * written after, saying whether the thread was created. What glibc allocates in between (the new thread's DTV,
 * its stack's TLS) belongs to the spawn and is not recorded. */
static struct msrec_record *spawn_begin(struct start_slot *s) {
  s->number = atomic_fetch_add(&next_thread, 1);
  struct msrec_record *r = reserve();
  self.suppress++;
  return r;
}

static void spawn_end(struct msrec_record *r, struct start_slot *s, int created) {
  self.suppress--;
  uint32_t number = s->number;
  if (!created) slot_put(s);
  if (r) commit(r, created ? MSREC_SPAWN : MSREC_SPAWN_FAILED, 0, number, 0, 0);
}

EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start_routine)(void *), void *arg) {
  ensure_started();
  if (real_pthread_create == NULL) return EAGAIN;
  struct start_slot *s = recording() ? slot_get() : NULL;
  if (s == NULL) return real_pthread_create(thread, attr, start_routine, arg);
  s->start = start_routine;
  s->c11_start = NULL;
  s->arg = arg;
  struct msrec_record *r = spawn_begin(s);
  int result = real_pthread_create(thread, attr, run_thread, s);
  spawn_end(r, s, result == 0);
  return result;
}

/* C11 threads: glibc's thrd_create reaches pthread_create through an internal name, not through ours. */
EXPORT int thrd_create(thrd_t *thread, thrd_start_t start_routine, void *arg) {
  ensure_started();
  if (real_thrd_create == NULL) return thrd_error;
  struct start_slot *s = recording() ? slot_get() : NULL;
  if (s == NULL) return real_thrd_create(thread, start_routine, arg);
  s->start = NULL;
  s->c11_start = start_routine;
  s->arg = arg;
  struct msrec_record *r = spawn_begin(s);
  int result = real_thrd_create(thread, run_c11_thread, s);
  spawn_end(r, s, result == thrd_success);
  return result;
}
