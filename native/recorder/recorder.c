/* libmallocscope-recorder.so: a preload library that records every call of the malloc family, with the thread
 * that made it, into a binary log that `mallocscope record` turns into a trace (docs/record.md).
 *   LD_PRELOAD=/path/libmallocscope-recorder.so MALLOCSCOPE_RECORD_DIR=DIR prog    → DIR/PID.msrec
 * It never allocates through malloc itself. The records have a fixed size; a record's index (an atomic increment)
 * is the call's sequence number. They are written into a ring mapped MAP_SHARED from the log file itself, so
 * what is written is in the file at once and a program that execs, calls _exit() or is killed loses nothing,
 * and copied out of the ring, in order, to the rest of the file with pwrite. */
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
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
  uint64_t pending;  /* 1 + the index of the record this thread has reserved and not written yet, else 0 */
};
static __thread struct thread_state self __attribute__((tls_model("initial-exec")));

/* ---- the log ------------------------------------------------------------------------------------------------- */

/* The calls write their records into a ring of MSREC_RING_RECORDS slots that is mapped MAP_SHARED from the log
 * file itself (record i in slot i % MSREC_RING_RECORDS), so a record is in the file as soon as it is written
 * and a program that execs, calls _exit() or is killed loses nothing. Every MSREC_DRAIN_EVERY records a thread
 * copies the finished records at the ring's start out to their place after it with pwrite (header->written
 * says how far), and their slots are taken again. The ring's pages are touched once and stay mapped: the
 * whole log mapped instead costs a page fault on every 4 KiB of new log, which is what the recorder used to
 * spend most of its time on (docs/record.md, What it costs). */
#define MSREC_RING_MASK (MSREC_RING_RECORDS - 1)
#define MSREC_DRAIN_EVERY (MSREC_RING_RECORDS / 8)
#define NO_SLOT UINT64_MAX

enum { NOT_STARTED, STARTING, STARTED };
static atomic_int state = NOT_STARTED;
static struct msrec_header *header; /* NULL: not recording (no MALLOCSCOPE_RECORD_DIR, or the log failed) */
static struct msrec_record *ring;
static int log_fd = -1;
static dev_t log_dev;
static ino_t log_ino;
static atomic_flag drain_lock = ATOMIC_FLAG_INIT;
static atomic_uint next_thread = 2;
static atomic_int stopped; /* the log could not be written: nothing more is recorded (the header says so) */
static atomic_int waiters;  /* threads asleep in wait_for_room */
static uint64_t heap_start;

static void spin_lock(atomic_flag *lock) {
  while (atomic_flag_test_and_set_explicit(lock, memory_order_acquire)) sched_yield();
}
static void spin_unlock(atomic_flag *lock) {
  atomic_flag_clear_explicit(lock, memory_order_release);
}

static inline struct msrec_record *slot(uint64_t index) {
  return &ring[index & MSREC_RING_MASK];
}

static void stop_recording(void) {
  atomic_fetch_or(&header->flags, MSREC_FLAG_STOPPED);
  atomic_store(&stopped, 1);
}

/* Is log_fd still our log? A program may close it or put another file at its number (dup2). */
static int log_fd_is_ours(void) {
  struct stat st;
  return fstat(log_fd, &st) == 0 && st.st_dev == log_dev && st.st_ino == log_ino;
}

static int write_at(const void *from, size_t length, off_t at) {
  const char *p = from;
  while (length) {
    ssize_t got = pwrite(log_fd, p, length, at);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return 0;
    p += got;
    length -= (size_t)got;
    at += got;
  }
  return 1;
}

/* The low half of header->written (little-endian), which every drain changes: what waiting threads sleep on. */
static uint32_t *written_word(void) {
  return (uint32_t *)&header->written;
}

/* With drain_lock held: writes out the finished records at the ring's start and frees their slots. Returns how
 * many, or -1 when the log cannot be written (recording stops; the ring keeps what it has). */
static int64_t drain_locked(void) {
  if (atomic_load(&stopped)) return -1;
  uint64_t from = atomic_load_explicit(&header->written, memory_order_relaxed);
  uint64_t end = atomic_load_explicit(&header->cursor, memory_order_acquire);
  if (end - from > MSREC_RING_RECORDS) end = from + MSREC_RING_RECORDS;
  uint64_t to = from;
  while (to < end && atomic_load_explicit(&slot(to)->kind, memory_order_acquire) != MSREC_NONE) to++;
  if (to == from) return 0;
  int saved_errno = errno;
  int ok = log_fd_is_ours();
  for (uint64_t at = from; ok && at < to;) {
    uint64_t piece_end = (at | MSREC_RING_MASK) + 1; /* the ring's end */
    if (piece_end > to) piece_end = to;
    ok = write_at(slot(at), (piece_end - at) * MSREC_RECORD_SIZE, (off_t)(MSREC_HEADER_SIZE + at * MSREC_RECORD_SIZE));
    at = piece_end;
  }
  errno = saved_errno;
  if (!ok) {
    stop_recording();
    return -1;
  }
  /* Emptied slots read as unfinished until their next record is written: a process that ends in between
   * leaves no stale record behind. */
  for (uint64_t i = from; i < to; i++) atomic_store_explicit(&slot(i)->kind, MSREC_NONE, memory_order_relaxed);
  atomic_store_explicit(&header->written, to, memory_order_release);
  if (atomic_load(&waiters)) syscall(SYS_futex, written_word(), FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
  return (int64_t)(to - from);
}

static void drain(void) {
  if (atomic_flag_test_and_set_explicit(&drain_lock, memory_order_acquire)) return; /* another thread drains */
  drain_locked();
  spin_unlock(&drain_lock);
}

/* The ring is full: record `index` must wait until the one a ring's length before it has been written out, which
 * waits for that record's thread to finish writing it (a few instructions: no call is made in between). If that
 * thread is this one (a signal handler that made a ring's worth of calls while it interrupted one), it never
 * will: recording stops. While another thread drains, this one sleeps until the drain is done (woken by it, or
 * after 1 ms, in case what holds the ring up is a thread that was descheduled before writing its record). */
static int wait_for_room(uint64_t index) {
  for (int round = 0;; round++) {
    if (atomic_load(&stopped)) return 0;
    uint64_t written = atomic_load_explicit(&header->written, memory_order_acquire);
    if (index - written < MSREC_RING_RECORDS) return 1;
    if (self.pending == written + 1) {
      stop_recording();
      return 0;
    }
    if (!atomic_flag_test_and_set_explicit(&drain_lock, memory_order_acquire)) {
      int64_t got = drain_locked();
      spin_unlock(&drain_lock);
      if (got > 0) continue;
      if (got < 0) return 0;
    }
    if (round < 4) {
      sched_yield();
      continue;
    }
    atomic_fetch_add(&waiters, 1);
    uint32_t seen = (uint32_t)written;
    struct timespec nap = {0, 1000 * 1000};
    int saved_errno = errno;
    if (atomic_load_explicit(&header->written, memory_order_acquire) == written)
      syscall(SYS_futex, written_word(), FUTEX_WAIT_PRIVATE, seen, &nap, NULL, 0);
    errno = saved_errno;
    atomic_fetch_sub(&waiters, 1);
  }
}

/* A slot for the next event: its index is the event's sequence number. NO_SLOT when not recording. The caller
 * writes the record at once, with commit. */
static inline uint64_t reserve(void) {
  if (header == NULL || atomic_load_explicit(&stopped, memory_order_relaxed)) return NO_SLOT;
  uint64_t index = atomic_fetch_add_explicit(&header->cursor, 1, memory_order_relaxed);
  if (__builtin_expect(index - atomic_load_explicit(&header->written, memory_order_acquire) >= MSREC_RING_RECORDS, 0) &&
      !wait_for_room(index))
    return NO_SLOT;
  if (self.pending == 0) self.pending = index + 1; /* not in a signal handler that interrupted a call */
  return index;
}

/* The kind is stored last, with release order: a reader that sees it sees the fields (a slot whose kind is
 * still 0 was reserved by a call the process never finished: it ended, or was killed, during that call). */
static inline void commit_as(uint64_t index, uint32_t thread, uint8_t kind, uint8_t how, uint64_t a, uint64_t b, uint64_t c) {
  struct msrec_record *r = slot(index);
  r->thread = thread;
  r->how = how;
  r->a = a;
  r->b = b;
  r->c = c;
  atomic_store_explicit(&r->kind, kind, memory_order_release);
  if (self.pending == index + 1) self.pending = 0;
  if (__builtin_expect((index & (MSREC_DRAIN_EVERY - 1)) == MSREC_DRAIN_EVERY - 1, 0)) drain();
}

static inline void commit(uint64_t index, uint8_t kind, uint8_t how, uint64_t a, uint64_t b, uint64_t c) {
  commit_as(index, self.number, kind, how, a, b, c);
}

/* One call's record: reserved and written at once. */
static inline void record_call(uint8_t kind, uint8_t how, uint64_t a, uint64_t b, uint64_t c) {
  uint64_t index = reserve();
  if (index != NO_SLOT) commit(index, kind, how, a, b, c);
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
  uint64_t index = reserve();
  if (index != NO_SLOT) commit_as(index, 1, MSREC_SPAWN, MSREC_SPAWN_UNSEEN, number, 0, 0); /* in thread 1's name */
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
  ring = NULL;
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
  struct stat st;
  void *map = MAP_FAILED;
  if (fstat(fd, &st) == 0 && ftruncate(fd, (off_t)MSREC_HEADER_SIZE) == 0)
    map = mmap(NULL, MSREC_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
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
  h->ring_records = MSREC_RING_RECORDS;
  h->heap_start = heap_start; /* a forked child's heap is its parent's */
  ssize_t len = readlink("/proc/self/exe", h->program, sizeof h->program - 1);
  h->program[len > 0 ? len : 0] = 0;
  log_fd = fd;
  log_dev = st.st_dev;
  log_ino = st.st_ino;
  atomic_store(&stopped, 0);
  ring = (struct msrec_record *)((char *)map + MSREC_FIELDS_SIZE);
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

/* Guards the free list of the start slots (below); taken around fork too. */
static atomic_flag slots_lock = ATOMIC_FLAG_INIT;

/* A forked child gets a log of its own (DIR/CHILD.msrec), its forking thread becomes its thread 1, and the
 * locks another thread may have held at fork (the drain's, the start slots') are taken around it so the child
 * never finds them held. */
static void before_fork(void) {
  spin_lock(&drain_lock);
  spin_lock(&slots_lock);
}
static void after_fork_parent(void) {
  spin_unlock(&slots_lock);
  spin_unlock(&drain_lock);
}
static void after_fork_child(void) {
  spin_unlock(&slots_lock);
  spin_unlock(&drain_lock);
  uint32_t parent = header ? header->pid : 0;
  if (header) {
    munmap(header, MSREC_HEADER_SIZE);
    close(log_fd);
    log_fd = -1;
  }
  self.number = 1;
  self.suppress = 0;
  self.pending = 0;
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
  if (recording()) record_call(MSREC_MALLOC, 0, (uint64_t)(uintptr_t)p, size, 0);
  return p;
}

static void *bootstrap_calloc(size_t nmemb, size_t size) {
  size_t total;
  return __builtin_mul_overflow(nmemb, size, &total) ? NULL : bootstrap_alloc(total);
}

EXPORT void *calloc(size_t nmemb, size_t size) {
  EARLY(bootstrap_calloc(nmemb, size));
  void *p = real_calloc(nmemb, size);
  if (recording()) record_call(MSREC_CALLOC, 0, (uint64_t)(uintptr_t)p, nmemb, size);
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
  if (recording()) record_call(MSREC_FREE, 0, (uint64_t)(uintptr_t)p, 0, 0);
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
  record_call(MSREC_REALLOC_BEGIN, 0, (uint64_t)(uintptr_t)old, size, 0);
  void *p = real_realloc(old, size);
  record_call(MSREC_REALLOC_END, 0, (uint64_t)(uintptr_t)p, size, (uint64_t)(uintptr_t)old);
  return p;
}

static inline void aligned_record(uint8_t how, void *p, size_t align, size_t size) {
  if (recording()) record_call(MSREC_MEMALIGN, how, (uint64_t)(uintptr_t)p, align, size);
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
  if (recording()) record_call(MSREC_TRIM, 0, pad, 0, 0);
  return real_malloc_trim(pad);
}

EXPORT int mallopt(int param, int value) {
  EARLY(0);
  if (recording()) record_call(MSREC_MALLOPT, 0, (uint64_t)(int64_t)param, (uint64_t)(int64_t)value, 0);
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
  if (recording()) record_call(MSREC_EXIT, 0, 0, 0, 0);
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

/* The spawn's record is written before the real call, so it precedes everything the new thread does, and at
 * once, so no record waits on it while glibc creates the thread (the ring's slots are taken in order: a slot
 * held that long would hold up every thread once the ring is full). If the thread could not be created, the
 * record is changed to say so, where it is then: in the ring, or already written out. What glibc allocates in
 * between (the new thread's DTV, its stack's TLS) belongs to the spawn and is not recorded. */
static uint64_t spawn_begin(struct start_slot *s) {
  s->number = atomic_fetch_add(&next_thread, 1);
  uint64_t index = reserve();
  if (index != NO_SLOT) commit(index, MSREC_SPAWN, 0, s->number, 0, 0);
  self.suppress++;
  return index;
}

static void spawn_end(uint64_t index, struct start_slot *s, int created) {
  self.suppress--;
  if (created) return;
  slot_put(s);
  if (index == NO_SLOT) return;
  spin_lock(&drain_lock);
  if (index >= atomic_load(&header->written)) {
    atomic_store_explicit(&slot(index)->kind, MSREC_SPAWN_FAILED, memory_order_release);
  } else if (!atomic_load(&stopped)) {
    uint8_t kind = MSREC_SPAWN_FAILED;
    int saved_errno = errno;
    if (!log_fd_is_ours() || !write_at(&kind, 1, (off_t)(MSREC_HEADER_SIZE + index * MSREC_RECORD_SIZE))) stop_recording();
    errno = saved_errno;
  }
  spin_unlock(&drain_lock);
}

EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start_routine)(void *), void *arg) {
  ensure_started();
  if (real_pthread_create == NULL) return EAGAIN;
  struct start_slot *s = recording() ? slot_get() : NULL;
  if (s == NULL) return real_pthread_create(thread, attr, start_routine, arg);
  s->start = start_routine;
  s->c11_start = NULL;
  s->arg = arg;
  uint64_t index = spawn_begin(s);
  int result = real_pthread_create(thread, attr, run_thread, s);
  spawn_end(index, s, result == 0);
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
  uint64_t index = spawn_begin(s);
  int result = real_thrd_create(thread, run_c11_thread, s);
  spawn_end(index, s, result == thrd_success);
  return result;
}
