/* Memory, output and number formatting for the oracle without ever calling malloc: everything here
 * sits on mmap/mremap and write(2), so the glibc heap we observe belongs to the replayed trace alone. */
#ifndef MALLOCSCOPE_ORACLE_SYSIO_H
#define MALLOCSCOPE_ORACLE_SYSIO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Anonymous read-write memory of `bytes` (a page multiple is not needed); dies on failure. */
void *region_map(size_t bytes);
/* Grows or shrinks a region_map block, possibly moving it; dies on failure. */
void *region_remap(void *old, size_t old_bytes, size_t new_bytes);
void region_unmap(void *p, size_t bytes);
/* From now on every page of the regions above is written as it is mapped (those mapped already at once), so
 * that the oracle's own memory is resident to the page: --rss leaves it out by its size, without mincore. */
void own_resident(void);
/* Resident bytes of the regions above, after own_resident: their sizes in whole pages. */
uint64_t own_resident_bytes(void);
/* The process's anonymous resident bytes less the oracle's own (docs/resident.md): /proc/self/statm, read
 * afresh through `statm_fd` (open for the whole replay, so that reading it allocates nothing). */
uint64_t anon_resident_bytes(int statm_fd);

/* The memory system calls the oracle has made for its own regions so far, so that a count of a whole run's
 * calls (strace, with --foreign) can leave them out. */
struct own_calls {
    uint64_t mmap, munmap, mremap;
};
extern struct own_calls own_calls;

/* Buffered output to one file descriptor, flushed with write(2). */
struct outbuf {
    int fd;
    char *data;
    size_t used;
    size_t cap;
};

void out_init(struct outbuf *out, int fd, size_t cap);

/* Unchecked writes at a cursor, for callers that made room with out_reserve first. */
static inline char *put_bytes(char *at, const char *s, size_t n)
{
    memcpy(at, s, n);
    return at + n;
}
#define PUT_LITERAL(at, lit) put_bytes((at), (lit), sizeof(lit) - 1)
char *put_u64(char *at, uint64_t v);
char *put_i64(char *at, int64_t v);
/* Makes room for `n` more bytes, flushing first if needed (n must not exceed cap). */
void out_reserve(struct outbuf *out, size_t n);
void out_flush(struct outbuf *out);
void out_bytes(struct outbuf *out, const char *s, size_t n);
void out_str(struct outbuf *out, const char *s);
#define OUT_LITERAL(out, lit) out_bytes((out), (lit), sizeof(lit) - 1)
void out_u64(struct outbuf *out, uint64_t v);
void out_i64(struct outbuf *out, int64_t v);
/* Two lower-case hex digits. */
void out_hex2(struct outbuf *out, unsigned v);

/* Writes all of buf to fd, retrying on EINTR and short writes; returns 0 or -1 (errno set). */
int write_all(int fd, const char *buf, size_t n);

/* strerror without stdio or locale (both may allocate): a lower-case reason for the errors open, read and
 * mmap give, or "error N" for others. */
void out_errno_reason(struct outbuf *out, int err);

/* Called when stdout has gone away (EPIPE) or writing fails: the replay cannot be seen, so stop. */
_Noreturn void die_output(int err);
/* A usage mistake: "mallocscope: oracle: WHAT 'ARG' (usage: …) [USAGE]" on stderr, exit 2 (main.c, which
 * knows the whole usage line; every part of the oracle that reads options reports through it). */
_Noreturn void usage_error(const char *what, const char *arg);
/* An internal failure (mmap refused): one line on stderr, exit 70. */
_Noreturn void die_internal(const char *what, int err);

size_t cstr_len(const char *s);
int bytes_equal(const char *a, size_t alen, const char *b);

#endif
