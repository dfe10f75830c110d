/* Memory, output and number formatting for the oracle without ever calling malloc (see sysio.h). */
#define _GNU_SOURCE
#include "sysio.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The oracle's own regions, so that --rss can leave their resident pages out (output buffers, the ID table,
 * the reader's buffer, thread records: their number grows with the threads a trace spawns). The table starts
 * static and moves to a mapping of its own, doubled, when full; that mapping counts as the oracle's too. Only
 * the thread holding the turn maps. */
struct own_region {
    void *at;
    size_t bytes;
};
/* Small, so that every trace with threads takes the growing path (and the tests with it). */
static struct own_region own_static[4];
static struct own_region *own_regions = own_static;
static size_t own_cap = sizeof own_static / sizeof own_static[0];
static size_t own_count;
/* With --rss every page of the oracle's own memory is written as it is mapped (own_resident), so that its
 * resident bytes are simply its size: no mincore after every call. */
static int resident_own;

struct own_calls own_calls;

/* Writes a byte on each page of [at, at + bytes) (at page-aligned) when --rss asked for resident own memory:
 * the byte read and written back unchanged, as own_resident's regions may already hold data. */
static void make_resident(void *at, size_t bytes)
{
    if (!resident_own) return;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (size_t off = 0; off < bytes; off += page) {
        volatile char *p = (volatile char *)at + off;
        *p = *p;
    }
}

static void own_add(void *at, size_t bytes)
{
    if (own_count == own_cap) {
        size_t cap = own_cap * 2;
        struct own_region *bigger = mmap(NULL, cap * sizeof *bigger, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        own_calls.mmap++;
        if (bigger == MAP_FAILED) die_internal("mmap", errno);
        make_resident(bigger, cap * sizeof *bigger);
        memcpy(bigger, own_regions, own_count * sizeof *bigger);
        if (own_regions != own_static) {
            munmap(own_regions, own_cap * sizeof *own_regions);
            own_calls.munmap++;
        }
        own_regions = bigger;
        own_cap = cap;
    }
    own_regions[own_count].at = at;
    own_regions[own_count].bytes = bytes;
    own_count++;
}

static size_t own_find(void *at)
{
    for (size_t i = 0; i < own_count; i++)
        if (own_regions[i].at == at) return i;
    return own_count;
}

void own_resident(void)
{
    resident_own = 1;
    for (size_t i = 0; i < own_count; i++) make_resident(own_regions[i].at, own_regions[i].bytes);
    if (own_regions != own_static) make_resident(own_regions, own_cap * sizeof *own_regions);
}

uint64_t own_resident_bytes(void)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t round = page - 1;
    uint64_t resident = 0;
    for (size_t i = 0; i < own_count; i++) resident += (own_regions[i].bytes + round) & ~round;
    if (own_regions != own_static) resident += (own_cap * sizeof *own_regions + round) & ~round;
    return resident;
}

/* (resident - shared) pages of /proc/self/statm: RSS_ANON, so that glibc's and the oracle's code pages, which
 * the first calls fault in, stay out; less the oracle's own buffers (all resident: own_resident).
 * What is left is the allocator's heaps and mappings, plus the stack and static data of the process. */
uint64_t anon_resident_bytes(int statm_fd)
{
    char text[256];
    ssize_t n;
    do {
        n = pread(statm_fd, text, sizeof text - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) die_internal("reading /proc/self/statm", n < 0 ? errno : EIO);
    text[n] = '\0';
    /* size resident shared text lib data dt, in pages */
    uint64_t fields[3] = { 0, 0, 0 };
    const char *at = text;
    for (int f = 0; f < 3; f++) {
        while (*at == ' ') at++;
        if (*at < '0' || *at > '9') die_internal("parsing /proc/self/statm", EIO);
        while (*at >= '0' && *at <= '9') fields[f] = fields[f] * 10 + (uint64_t)(*at++ - '0');
    }
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t anon = (fields[1] - fields[2]) * page;
    uint64_t own = own_resident_bytes();
    return anon > own ? anon - own : 0;
}

void *region_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    own_calls.mmap++;
    if (p == MAP_FAILED) die_internal("mmap", errno);
    make_resident(p, bytes);
    own_add(p, bytes);
    return p;
}

void *region_remap(void *old, size_t old_bytes, size_t new_bytes)
{
    void *p = mremap(old, old_bytes, new_bytes, MREMAP_MAYMOVE);
    own_calls.mremap++;
    if (p == MAP_FAILED) die_internal("mremap", errno);
    /* The new tail starts on the page after the old end (pages already written were moved with it). */
    const size_t round = (size_t)sysconf(_SC_PAGESIZE) - 1;
    size_t kept = (old_bytes + round) & ~round;
    if (new_bytes > kept) make_resident((char *)p + kept, new_bytes - kept);
    size_t i = own_find(old);
    if (i < own_count) {
        own_regions[i].at = p;
        own_regions[i].bytes = new_bytes;
    }
    return p;
}

void region_unmap(void *p, size_t bytes)
{
    munmap(p, bytes);
    own_calls.munmap++;
    size_t i = own_find(p);
    if (i < own_count) own_regions[i] = own_regions[--own_count];
}

int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

void out_init(struct outbuf *out, int fd, size_t cap)
{
    out->fd = fd;
    out->data = region_map(cap);
    out->used = 0;
    out->cap = cap;
}

void out_flush(struct outbuf *out)
{
    if (out->used == 0) return;
    if (write_all(out->fd, out->data, out->used) != 0) die_output(errno);
    out->used = 0;
}

void out_reserve(struct outbuf *out, size_t n)
{
    if (out->cap - out->used < n) out_flush(out);
}

void out_bytes(struct outbuf *out, const char *s, size_t n)
{
    if (n > out->cap - out->used) {
        out_flush(out);
        if (n > out->cap) {
            if (write_all(out->fd, s, n) != 0) die_output(errno);
            return;
        }
    }
    memcpy(out->data + out->used, s, n);
    out->used += n;
}

void out_str(struct outbuf *out, const char *s)
{
    out_bytes(out, s, cstr_len(s));
}

char *put_u64(char *at, uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return put_bytes(at, digits + sizeof digits - n, (size_t)n);
}

char *put_i64(char *at, int64_t v)
{
    if (v >= 0) return put_u64(at, (uint64_t)v);
    *at++ = '-';
    /* Negate in unsigned arithmetic so that INT64_MIN does not overflow. */
    return put_u64(at, (uint64_t)0 - (uint64_t)v);
}

void out_u64(struct outbuf *out, uint64_t v)
{
    out_reserve(out, 20);
    out->used = (size_t)(put_u64(out->data + out->used, v) - out->data);
}

void out_i64(struct outbuf *out, int64_t v)
{
    out_reserve(out, 21);
    out->used = (size_t)(put_i64(out->data + out->used, v) - out->data);
}

void out_hex2(struct outbuf *out, unsigned v)
{
    static const char hex[] = "0123456789abcdef";
    char two[2] = { hex[(v >> 4) & 15], hex[v & 15] };
    out_bytes(out, two, 2);
}

static const char *errno_reason(int err)
{
    switch (err) {
    case ENOENT: return "no such file or directory";
    case EACCES: return "permission denied";
    case EPERM: return "operation not permitted";
    case EISDIR: return "is a directory";
    case ENOTDIR: return "not a directory";
    case ELOOP: return "too many levels of symbolic links";
    case ENAMETOOLONG: return "file name too long";
    case EMFILE: return "too many open files";
    case ENFILE: return "too many open files in system";
    case EIO: return "input/output error";
    case ENXIO: return "no such device or address";
    case ENODEV: return "no such device";
    case ENOMEM: return "cannot allocate memory";
    case EINVAL: return "invalid argument";
    case ETXTBSY: return "text file busy";
    case EEXIST: return "file exists";
    case EPIPE: return "broken pipe";
    case ENOSPC: return "no space left on device";
    case EAGAIN: return "resource temporarily unavailable";
    default: return NULL;
    }
}

void out_errno_reason(struct outbuf *out, int err)
{
    const char *reason = errno_reason(err);
    if (reason != NULL) {
        out_str(out, reason);
    } else {
        out_str(out, "error ");
        out_u64(out, (uint64_t)err);
    }
}

/* For the last-resort messages below, which cannot count on an output buffer. */
static void write_reason(int err)
{
    const char *reason = errno_reason(err);
    write_all(2, reason != NULL ? reason : "error", cstr_len(reason != NULL ? reason : "error"));
}

_Noreturn void die_output(int err)
{
    /* A reader that went away (`| head`) is not an error; anything else is. */
    if (err == EPIPE) _exit(0);
    static const char prefix[] = "mallocscope: cannot write the output: ";
    write_all(2, prefix, sizeof prefix - 1);
    write_reason(err);
    write_all(2, " [OUTPUT]\n", 10);
    _exit(1);
}

_Noreturn void die_internal(const char *what, int err)
{
    static const char prefix[] = "mallocscope: internal error: ";
    write_all(2, prefix, sizeof prefix - 1);
    write_all(2, what, cstr_len(what));
    write_all(2, ": ", 2);
    write_reason(err);
    write_all(2, " [INTERNAL]\n", 12);
    _exit(70);
}

size_t cstr_len(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') n++;
    return n;
}

int bytes_equal(const char *a, size_t alen, const char *b)
{
    size_t blen = cstr_len(b);
    return alen == blen && memcmp(a, b, alen) == 0;
}
