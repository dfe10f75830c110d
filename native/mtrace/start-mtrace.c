/* libmallocscope-mtrace.so: a preload library that turns on glibc's mtrace in a program that never calls it.
 * Use it after glibc's debug allocator (since glibc 2.34, mtrace() in libc itself does nothing):
 *   LD_PRELOAD="/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 /path/libmallocscope-mtrace.so" MALLOC_TRACE=log prog
 * `mallocscope record` does exactly that. Nothing here calls malloc: that would move the traced heap. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <mcheck.h>
#include <pthread.h>
#include <stdlib.h>
#include <threads.h>
#include <unistd.h>

/* mtrace follows one process, but every process that inherits MALLOC_TRACE writes the same file: an exec'd
 * program reopens (truncates) it, a forked child shares the parent's stream. When MALLOCSCOPE_MTRACE_PIDS
 * names a file, each process that starts tracing, and each forked child, appends a line "PID\tWHAT" to it,
 * so that `mallocscope record` can tell a clean log from a mixed one. */
static const char *pids_file;

static void append_pid_line(const char *what) {
  char line[4200];
  size_t n = 0;
  char digits[24];
  size_t d = 0;
  unsigned long pid = (unsigned long)getpid();
  do {
    digits[d++] = (char)('0' + pid % 10);
    pid /= 10;
  } while (pid);
  while (d) line[n++] = digits[--d];
  line[n++] = '\t';
  if (what) {
    while (*what && n < sizeof line - 2) line[n++] = *what++;
  } else {
    ssize_t len = readlink("/proc/self/exe", line + n, sizeof line - n - 2);
    if (len > 0) n += (size_t)len;
  }
  line[n++] = '\n';
  int fd = open(pids_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t written = write(fd, line, n); /* one write with O_APPEND: lines of several processes never mix */
  (void)written;
  close(fd);
}

static void note_forked_child(void) {
  append_pid_line("fork");
}

/* mtrace's log does not say which thread made a call, and a threaded program's calls go to several arenas:
 * its trace would replay as if one thread made them all. So each pthread_create the program makes appends
 * (or thrd_create) appends "PID\tthread" to the same file, and `mallocscope record` refuses (or, if told to, marks) the trace. The
 * real pthread_create is looked up in the constructor, before tracing starts, so that whatever dlsym
 * might allocate is not in the log. Threads that glibc starts inside itself (timer and AIO helpers) call its
 * internal entry point and are not seen. */
typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef int (*thrd_create_fn)(thrd_t *, thrd_start_t, void *);
static pthread_create_fn real_pthread_create;
static thrd_create_fn real_thrd_create;

/* Another library's constructor may start a thread before ours has run: look the real one up then. */
int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
  if (real_pthread_create == NULL) real_pthread_create = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
  if (real_pthread_create == NULL) return EAGAIN;
  if (pids_file && *pids_file) append_pid_line("thread");
  return real_pthread_create(thread, attr, start, arg);
}

/* C11 threads: glibc's thrd_create reaches pthread_create through an internal name, not through ours. */
int thrd_create(thrd_t *thread, thrd_start_t start, void *arg) {
  if (real_thrd_create == NULL) real_thrd_create = (thrd_create_fn)dlsym(RTLD_NEXT, "thrd_create");
  if (real_thrd_create == NULL) return thrd_error;
  if (pids_file && *pids_file) append_pid_line("thread");
  return real_thrd_create(thread, start, arg);
}

/* The dynamic linker runs preloaded libraries' constructors before the program's own constructors and main,
 * so every allocation the program makes from there on is logged. `mtrace` resolves to the debug allocator's
 * definition because that library comes first in LD_PRELOAD. Whatever ran before this constructor (the
 * debug allocator's own set-up, mtrace's fopen) is not logged: see docs/glibc.md §9 and docs/mtrace.md. */
__attribute__((constructor)) static void start_mtrace(void) {
  if (real_pthread_create == NULL) real_pthread_create = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
  if (real_thrd_create == NULL) real_thrd_create = (thrd_create_fn)dlsym(RTLD_NEXT, "thrd_create");
  pids_file = getenv("MALLOCSCOPE_MTRACE_PIDS");
  if (pids_file && *pids_file) {
    append_pid_line(NULL);
    /* Registering a handler allocates nothing for the first few dozen handlers (glibc keeps them inline). */
    pthread_atfork(NULL, NULL, note_forked_child);
  }
  mtrace();
}

/* Deliberately no muntrace() in a destructor:
 * - muntrace() sets the log stream to NULL and closes it without stopping other threads, so a thread that is
 *   still allocating while exit() runs the destructors would write to a closed (or NULL) stream and crash;
 * - destructors of the libraries finalized after this one, and mtrace's own exit handler (which calls
 *   __libc_freeres), still free memory: with tracing on, those frees are logged, so fewer blocks look leaked;
 * - nothing is lost by leaving the stream open: exit() flushes every stdio stream (_IO_cleanup) after all
 *   atexit handlers and destructors have run.
 * The price is that the log has no "= End" line, and a program that ends with _exit() or a signal loses the
 * last, unflushed part of the log (at most mtrace's 512-byte buffer). */
