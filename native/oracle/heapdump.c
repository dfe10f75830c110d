/* Heap images (heapdump.h, docs/image.md): the main arena's heap as glibc's live metadata alone, rebased.
 *
 * Layouts on x86-64, the same in glibc 2.34 to 2.42 unless said (malloc/malloc.c):
 * - a chunk: prev_size at 0 (meaningful only while the previous chunk is free, i.e. its P bit is clear), the
 *   size word with the A|M|P bits at 8; a free chunk's fd at 16 and bk at 24, and for a chunk of 0x400 bytes
 *   or more (not in smallbin range) in the unsorted or a large bin, fd_nextsize at 32 and bk_nextsize at 40;
 *   a tcache entry's next at 16 and key at 24;
 * - malloc_state: 16 bytes of mutex and flags, fastbinsY[10] at 16, top at 96, last_remainder at 104,
 *   bins[254] at 112, next at 2160; bin i (1 to 127) has its header "chunk" at 96 + 16 * (i - 1), whose fd
 *   and bk are bins[2i-2] and bins[2i-1];
 * - tcache_perthread_struct: uint16_t counts[64] then 64 entry pointers (a 0x290 chunk) up to 2.41; from 2.42,
 *   uint16_t num_slots[76] (how many more chunks each bin takes) then 76 entry pointers (a 0x300 chunk);
 * - safe-linking (since 2.32): a tcache next and a fastbin fd are stored as (field address >> 12) ^ pointer;
 *   the heads (entries[], fastbinsY[]) and every other link are plain.
 * Which word is a pointer is decided by following glibc's own lists from their heads, never from its value. */
#define _GNU_SOURCE
#include "chunk.h"
#include "heapdump.h"
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <malloc.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    MINSIZE = 32,
    MIN_LARGE_SIZE = 0x400,
    NFASTBINS = 10,
    NBIN_HEADERS = 127,         /* bins 1 (unsorted) to 127 */
    STATE_FASTBINS = 16,
    STATE_TOP = 96,
    STATE_LAST_REMAINDER = 104,
    STATE_NEXT = 2160,
    STATE_SIZE = 2200,
};

/* The defaults: where the heap starts and where libc's main_arena lies in a small program run under gdb
 * (no ASLR) on Debian 12 with its glibc 2.36; the markers are ASCII, so that a hex dump shows what they are. */
#define DEFAULT_BASE ((uint64_t)0x555555559000)
#define DEFAULT_ARENA ((uint64_t)0x7ffff7fa7c60)
#define KEY_MARKER ((uint64_t)0x59454b4843414354)       /* "TCACHKEY" in memory */
#define FOREIGN_MARKER ((uint64_t)0xf0f0f0f0f0f0f0f0)

/* ---- options ------------------------------------------------------------------------------------------ */

static int enabled;
static const char *dir_name;
static uint64_t *at_seqs;       /* the SEQ items, sorted, without repeats */
static size_t at_count, at_cap, at_next;
static uint64_t every;          /* every:N, 0 without */
static int at_end;
static uint64_t image_base = DEFAULT_BASE, image_arena = DEFAULT_ARENA;
static const char *image_base_text = "0x555555559000";
static int dir_fd = -1;
static struct outbuf *lines;    /* the JSON Lines, flushed before an error */
static int trace_threaded;
static uint64_t last_written = UINT64_MAX;

static void add_seq(uint64_t seq)
{
    if (at_count == at_cap) {
        size_t cap = at_cap == 0 ? 64 : at_cap * 2;
        at_seqs = at_seqs == NULL ? region_map(cap * sizeof *at_seqs)
                                  : region_remap(at_seqs, at_cap * sizeof *at_seqs, cap * sizeof *at_seqs);
        at_cap = cap;
    }
    /* Insertion keeps the list sorted; lists are short, and given in order they cost nothing. */
    size_t k = at_count;
    while (k > 0 && at_seqs[k - 1] > seq) k--;
    if (k > 0 && at_seqs[k - 1] == seq) return;
    memmove(at_seqs + k + 1, at_seqs + k, (at_count - k) * sizeof *at_seqs);
    at_seqs[k] = seq;
    at_count++;
}

static void parse_at(const char *spec)
{
    const char *p = spec;
    for (;;) {
        const char *end = p;
        while (*end != '\0' && *end != ',') end++;
        size_t n = (size_t)(end - p);
        uint64_t v;
        if (bytes_equal(p, n, "end")) {
            at_end = 1;
        } else if (n > 6 && memcmp(p, "every:", 6) == 0) {
            if (parse_u64(p + 6, n - 6, &v) != NUMBER_OK || v == 0) usage_error("--image-at every:N takes a count of 1 or more, not", spec);
            if (every != 0 && every != v) usage_error("--image-at takes one every:N, not two, in", spec);
            every = v;
        } else if (parse_u64(p, n, &v) == NUMBER_OK) {
            add_seq(v);
        } else {
            usage_error("--image-at takes SEQ, every:N or end, comma-separated, not", spec);
        }
        if (*end == '\0') break;
        p = end + 1;
    }
}

static uint64_t parse_address(const char *arg, uint64_t alignment)
{
    uint64_t v;
    if (parse_u64(arg, cstr_len(arg), &v) != NUMBER_OK || v == 0 || v % alignment != 0) {
        usage_error(alignment == 4096 ? "--image-base takes a non-zero multiple of 4096 (decimal or 0x-hexadecimal), not"
                                : "--image-arena takes a non-zero multiple of 16 (decimal or 0x-hexadecimal), not",
              arg);
    }
    return v;
}

int heapdump_requested(void)
{
    return enabled;
}

int heapdump_option(int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    size_t n = cstr_len(a);
    int at = bytes_equal(a, n, "--image-at"), dir = bytes_equal(a, n, "--image-dir");
    int base = bytes_equal(a, n, "--image-base"), arena = bytes_equal(a, n, "--image-arena");
    if (!at && !dir && !base && !arena) return 0;
    if (++*i == argc) usage_error("needs a value:", a);
    const char *v = argv[*i];
    if (at) {
        parse_at(v);
        enabled = 1;
    } else if (dir) {
        dir_name = v;
    } else if (base) {
        image_base = parse_address(v, 4096);
        image_base_text = v;
    } else {
        image_arena = parse_address(v, 16);
        /* Its bin headers (and the overlap check) take arena + STATE_SIZE: it must not wrap past 2^64. */
        if (image_arena > UINT64_MAX - STATE_SIZE) usage_error("--image-arena leaves main_arena (2200 bytes) no room below 2^64:", v);
    }
    return 1;
}

/* ---- errors ----------------------------------------------------------------------------------------- */

/* `mallocscope: oracle: heap image after event SEQ: WHAT [CODE]` (or without the event), exit 1. */
static _Noreturn void fail(uint64_t seq, const char *what, const char *detail, int err, const char *code)
{
    if (lines != NULL) out_flush(lines);
    struct outbuf e;
    out_init(&e, 2, 1 << 12);
    out_str(&e, "mallocscope: oracle: heap image");
    if (seq != UINT64_MAX) {
        out_str(&e, " after event ");
        out_u64(&e, seq);
    }
    out_str(&e, ": ");
    out_str(&e, what);
    if (detail != NULL) out_str(&e, detail);
    if (err != 0) {
        out_str(&e, ": ");
        out_errno_reason(&e, err);
    }
    out_str(&e, " [");
    out_str(&e, code);
    out_str(&e, "]\n");
    out_flush(&e);
    _exit(1);
}

/* ---- the probe -------------------------------------------------------------------------------------- */

/* What the child process finds out (probe()). */
struct probe_result {
    uint64_t ok;
    uint64_t arena;         /* the real address of main_arena */
    uint64_t tls_word;      /* the address of the main thread's `tcache` variable (libc's static TLS) */
    uint64_t fill;          /* 2.42 on: mp_.tcache_count, the num_slots of an untouched bin */
    char why[200];
};

static unsigned glibc_minor;
static uint64_t tcache_bins;        /* entries in tcache_perthread_struct */
static int tcache_free_slots;       /* 2.42 on: the uint16 array holds free slots, not counts */
static uint64_t tcache_chunk_size;
static struct probe_result probed;
static uintptr_t heap_at;

static uintptr_t word_at(uintptr_t address)
{
    return *(const volatile uintptr_t *)address;
}

static uint16_t half_at(uintptr_t address)
{
    return *(const volatile uint16_t *)address;
}

static struct {
    uintptr_t want;
    uintptr_t found;
    int matches;
} tls_search;

/* Looks for the word `tls_search.want` in each module's static TLS block of the calling thread. */
static int search_tls(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (info->dlpi_tls_data == NULL) return 0;
    for (int k = 0; k < info->dlpi_phnum; k++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
        if (ph->p_type != PT_TLS) continue;
        uintptr_t from = (uintptr_t)info->dlpi_tls_data;
        for (uintptr_t at = (from + 7) & ~(uintptr_t)7; at + 8 <= from + ph->p_memsz; at += 8) {
            if (word_at(at) == tls_search.want) {
                tls_search.found = at;
                tls_search.matches++;
            }
        }
    }
    return 0;
}

static _Noreturn void child_fail(int fd, struct probe_result *r, const char *why)
{
    size_t n = cstr_len(why);
    if (n >= sizeof r->why) n = sizeof r->why - 1;
    memcpy(r->why, why, n);
    r->why[n] = '\0';
    r->ok = 0;
    write_all(fd, (const char *)r, sizeof *r);
    _exit(0);
}

/* In the child: the first malloc makes the heap and the main thread's tcache at the break; the tcache pointer
 * is then the one word of static TLS equal to the struct's address. A block no tcache bin takes that is not
 * next to the top goes to the unsorted bin when freed, with its bk at the bin's header
 * inside main_arena: at main_arena + 96. The child's heap is a copy: the parent's is not touched. */
static _Noreturn void probe_child(int fd)
{
    struct probe_result r;
    memset(&r, 0, sizeof r);
    uintptr_t h = (uintptr_t)sbrk(0);
    void *first = malloc(24);
    if (first == NULL) child_fail(fd, &r, "the first malloc failed");
    if ((uintptr_t)sbrk(0) < h + tcache_chunk_size + 32 || (word_at(h + 8) & ~(uintptr_t)SIZE_BITS) != tcache_chunk_size)
        child_fail(fd, &r, "the first chunk at the program break is not the tcache of this glibc version "
                           "(the break could not grow, or the layout is unknown)");
    uintptr_t tcache = h + 16;
    if (tcache_free_slots) r.fill = half_at(tcache);
    tls_search.want = tcache;
    dl_iterate_phdr(search_tls, NULL);
    if (tls_search.matches != 1) child_fail(fd, &r, "the tcache pointer is not one word of static TLS");
    r.tls_word = tls_search.found;
    free(first);
    /* Freed into tcache bin 0 when that bin takes chunks (tcache_count > 0): then entries[0] is the block. */
    uint16_t c0 = half_at(tcache);
    int held = tcache_free_slots ? (uint64_t)c0 + 1 == r.fill : c0 == 1;
    if (held && word_at(tcache + 2 * tcache_bins) != (uintptr_t)first)
        child_fail(fd, &r, "the tcache pointer found does not lead to the freed block");

    /* Blocks just past the tcache's small range (chunks of 0x410 at most) go to the unsorted bin, and cost
     * little, so that a low RLIMIT_DATA still lets the probe run. 2.42's large tcache bins may take them (when
     * glibc.malloc.tcache_max allows): then the blocks are 8 MiB, past its largest bin (4 MiB), with mmap off. */
    char *big = malloc(0x420);
    char *after = malloc(0x420);
    if (big == NULL || after == NULL) child_fail(fd, &r, "the probe's blocks could not be allocated");
    free(big);
    if (tcache_free_slots && word_at(tcache + 2 * tcache_bins + 8 * 64) == (uintptr_t)big) {
        mallopt(M_MMAP_MAX, 0);
        big = malloc((size_t)8 << 20);
        after = malloc((size_t)8 << 20);
        if (big == NULL || after == NULL) child_fail(fd, &r, "the probe's 8 MiB blocks could not be allocated");
        free(big);
    }
    uintptr_t chunk = (uintptr_t)big - 16;
    /* Only the top could serve either block, so the top lies past `after`: `big` was not merged into it. It
     * went to the front of the unsorted bin (merged with a free chunk after it, maybe), whose header is then
     * its bk; had it merged with a free chunk before it, its size word would be stale, and the prev_size at its
     * end would not match it. */
    uintptr_t size = word_at(chunk + 8) & ~(uintptr_t)SIZE_BITS;
    if (word_at(chunk + size) != size) child_fail(fd, &r, "the freed block merged with the chunk before it");
    uintptr_t header = word_at(chunk + 24);
    uintptr_t arena = header - STATE_TOP;
    if ((header & 15) != 0 || word_at(header + 16) != chunk)
        child_fail(fd, &r, "the freed block is not at the front of the unsorted bin");
    if (word_at(arena + STATE_NEXT) != arena) child_fail(fd, &r, "the arena found is not a ring of one");
    r.arena = arena;
    r.ok = 1;
    write_all(fd, (const char *)&r, sizeof r);
    _exit(0);
}

static void probe(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) fail(UINT64_MAX, "cannot make a pipe for the probe", NULL, errno, "IMAGE_PROBE");
    pid_t pid = fork();
    if (pid < 0) fail(UINT64_MAX, "cannot start the probe", NULL, errno, "IMAGE_PROBE");
    if (pid == 0) {
        close(fds[0]);
        probe_child(fds[1]);
    }
    close(fds[1]);
    size_t got = 0;
    while (got < sizeof probed) {
        ssize_t n = read(fds[0], (char *)&probed + got, sizeof probed - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof probed) fail(UINT64_MAX, "the probe died before it answered", NULL, 0, "IMAGE_PROBE");
    if (!probed.ok) fail(UINT64_MAX, "the probe failed: ", probed.why, 0, "IMAGE_PROBE");
}

/* mkdir -p: the folder and those above it that are missing (errors show when the folder is opened). */
static void make_folders(const char *path)
{
    char buf[4096];
    size_t n = cstr_len(path);
    if (n >= sizeof buf) return;
    memcpy(buf, path, n + 1);
    for (size_t k = 1; k <= n; k++) {
        if (buf[k] != '/' && buf[k] != '\0') continue;
        char was = buf[k];
        buf[k] = '\0';
        mkdir(buf, 0777);
        buf[k] = was;
    }
}

void heapdump_start(char *heap_start, struct outbuf *out, int threaded)
{
    if (!enabled) {
        if (dir_name != NULL) usage_error("--image-dir needs --image-at", NULL);
        return;
    }
    if (dir_name == NULL) usage_error("--image-at needs --image-dir", NULL);
    lines = out;
    trace_threaded = threaded;
    heap_at = (uintptr_t)heap_start;
    dir_fd = open(dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 && errno == ENOENT) {
        make_folders(dir_name);
        dir_fd = open(dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dir_fd < 0) fail(UINT64_MAX, "cannot use the folder ", dir_name, errno, "IMAGE_DIR");

    const char *v = gnu_get_libc_version();
    if (v[0] == '2' && v[1] == '.')
        for (const char *p = v + 2; *p >= '0' && *p <= '9'; p++) glibc_minor = glibc_minor * 10 + (unsigned)(*p - '0');
    tcache_free_slots = glibc_minor >= 42;
    tcache_bins = tcache_free_slots ? 76 : 64;
    /* request2size of the struct: two bytes and one pointer a bin, plus the size word, to 16 bytes. */
    tcache_chunk_size = (tcache_bins * 10 + 8 + 15) & ~(uint64_t)15;
    probe();
}

/* ---- zeroing the program's bytes ------------------------------------------------------------------------ */

void heapdump_clear(void *block)
{
    if (!enabled || block == NULL) return;
    uintptr_t size_word = word_at((uintptr_t)block - 8);
    if (size_word & (IS_MMAPPED | NON_MAIN_ARENA)) return;
    /* The usable bytes run to the end of the chunk and over the next chunk's prev_size. */
    memset(block, 0, (size_word & ~(uintptr_t)SIZE_BITS) - 8);
}

/* ---- the image ------------------------------------------------------------------------------------------ */

enum chunk_state { IN_USE, TCACHE, FASTBIN, UNSORTED, SMALL, LARGE, TOP };

struct dump {
    uint64_t seq;
    uintptr_t start, top, end;  /* real addresses: the heap's first chunk, the top chunk, the top's end */
    uintptr_t arena;
    size_t n;                   /* chunks, the top included */
    uintptr_t *at;              /* chunk addresses, ascending */
    unsigned char *state;
    char *image;
    unsigned char *dirty;       /* a bit per 4 KiB page of the image that holds a word */
};

static _Noreturn void broken(const struct dump *d, const char *what, uintptr_t address)
{
    /* "... at offset N" */
    char detail[48];
    char *p = PUT_LITERAL(detail, " at offset ");
    p = put_u64(p, (uint64_t)(address - d->start));
    *p = '\0';
    fail(d->seq, what, detail, 0, "IMAGE_INCONSISTENT");
}

/* The index of the chunk that starts at `address`, or n. */
static size_t chunk_index(const struct dump *d, uintptr_t address)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->at[mid] < address) lo = mid + 1;
        else hi = mid;
    }
    return lo < d->n && d->at[lo] == address ? lo : d->n;
}

static void mark(struct dump *d, uintptr_t chunk, enum chunk_state state, const char *list)
{
    size_t k = chunk_index(d, chunk);
    if (k == d->n || k == d->n - 1) broken(d, list, chunk);
    if (d->state[k] != IN_USE) broken(d, "a chunk is in two free lists, the second", chunk);
    d->state[k] = (unsigned char)state;
}

static int in_heap(const struct dump *d, uintptr_t p)
{
    return p >= d->start && p < d->end;
}

static uint64_t heap_pointer(const struct dump *d, uintptr_t p)
{
    return (uint64_t)(p - d->start) + image_base;
}

/* A tcache pointer (to an entry, chunk + 16): NULL, into this heap, or to another arena's chunk. */
static uint64_t rebase_entry(const struct dump *d, uintptr_t p)
{
    if (p == 0) return 0;
    return in_heap(d, p - 16) ? heap_pointer(d, p) : FOREIGN_MARKER;
}

/* A bin link (fd, bk): a chunk of this heap or a bin header in main_arena. */
static uint64_t rebase_link(const struct dump *d, uintptr_t p, uintptr_t field)
{
    if (in_heap(d, p)) return heap_pointer(d, p);
    uintptr_t first = d->arena + STATE_TOP;
    if (p >= first && p < first + 16 * NBIN_HEADERS && (p - first) % 16 == 0) return (uint64_t)(p - d->arena) + image_arena;
    broken(d, "a bin link points neither into the heap nor at a bin header", field);
}

/* fd_nextsize, bk_nextsize: NULL or a chunk of this heap. */
static uint64_t rebase_nextsize(const struct dump *d, uintptr_t p, uintptr_t field)
{
    if (p == 0) return 0;
    if (in_heap(d, p)) return heap_pointer(d, p);
    broken(d, "a nextsize link points outside the heap", field);
}

static uint64_t protect(uint64_t field, uint64_t pointer)
{
    return (field >> 12) ^ pointer;
}

static void put_word(struct dump *d, uintptr_t address, uint64_t value)
{
    size_t at = (size_t)(address - d->start);
    memcpy(d->image + at, &value, 8);
    d->dirty[at >> 15] |= (unsigned char)(1u << ((at >> 12) & 7));
}

/* The chunks from the heap start to the top, by their size words. */
static void walk_chunks(struct dump *d)
{
    size_t n = 0;
    for (uintptr_t p = d->start; p < d->top; n++) {
        uintptr_t size = word_at(p + 8) & ~(uintptr_t)SIZE_BITS;
        if (size < MINSIZE || size % 16 != 0 || size > d->top - p) broken(d, "a chunk's size does not lead to the top", p);
        p += size;
    }
    d->n = n + 1;
    d->at = region_map(d->n * sizeof *d->at);
    d->state = region_map(d->n);
    size_t k = 0;
    for (uintptr_t p = d->start; p < d->top; p += word_at(p + 8) & ~(uintptr_t)SIZE_BITS) d->at[k++] = p;
    d->at[k] = d->top;
    d->state[k] = TOP;
}

static uintptr_t tcache_struct(void)
{
    return word_at((uintptr_t)probed.tls_word);
}

/* Follows every list from its head and marks its chunks. */
static void follow_lists(struct dump *d)
{
    uintptr_t tcache = tcache_struct();
    if (tcache != 0) {
        size_t k = chunk_index(d, tcache - 16);
        if (k == d->n || (word_at(tcache - 8) & ~(uintptr_t)SIZE_BITS) != tcache_chunk_size)
            fail(d->seq, "the main thread's tcache is not a chunk of this heap", NULL, 0, "IMAGE_INCONSISTENT");
        for (uint64_t i = 0; i < tcache_bins; i++) {
            uintptr_t e = word_at(tcache + 2 * tcache_bins + 8 * i);
            /* A chain stops at another arena's chunk (a threaded trace), as a walker of the image must: what
             * follows it is not in the image, and this heap's chunks past it show as in use. */
            for (uint64_t steps = 0; e != 0 && in_heap(d, e - 16); steps++) {
                if (steps > d->n || (e & 15) != 0) broken(d, "a tcache bin does not end", tcache);
                mark(d, e - 16, TCACHE, "a tcache entry is not a chunk");
                e = word_at(e) ^ (e >> 12);
            }
        }
    }
    for (unsigned i = 0; i < NFASTBINS; i++) {
        uintptr_t p = word_at(d->arena + STATE_FASTBINS + 8 * i);
        for (size_t steps = 0; p != 0; steps++) {
            if (steps > d->n || !in_heap(d, p)) broken(d, "a fastbin does not end in the heap", d->start);
            mark(d, p, FASTBIN, "a fastbin entry is not a chunk");
            p = word_at(p + 16) ^ ((p + 16) >> 12);
        }
    }
    for (unsigned i = 1; i <= NBIN_HEADERS; i++) {
        uintptr_t header = d->arena + STATE_TOP + 16 * (i - 1);
        uintptr_t p = word_at(header + 16);
        enum chunk_state state = i == 1 ? UNSORTED : i < 64 ? SMALL : LARGE;
        for (size_t steps = 0; p != header; steps++) {
            if (steps > d->n || !in_heap(d, p)) broken(d, "a bin does not end at its header", d->start);
            mark(d, p, state, "a bin entry is not a chunk");
            p = word_at(p + 16);
        }
    }
}

/* The image: every chunk's live words, rebased; every other byte zero. */
static void compose(struct dump *d)
{
    uintptr_t tcache = tcache_struct();
    uintptr_t key = 0;
    for (size_t k = 0; k < d->n; k++) {
        uintptr_t c = d->at[k];
        uintptr_t size_word = word_at(c + 8);
        uintptr_t size = size_word & ~(uintptr_t)SIZE_BITS;
        put_word(d, c + 8, size_word);
        if (!(size_word & PREV_INUSE)) put_word(d, c, word_at(c));
        switch ((enum chunk_state)d->state[k]) {
        case TCACHE: {
            uintptr_t next = word_at(c + 16) ^ ((c + 16) >> 12);
            put_word(d, c + 16, protect(heap_pointer(d, c + 16), rebase_entry(d, next)));
            /* Every entry holds glibc's one random tcache_key: a check that these are tcache entries. */
            if (key == 0) key = word_at(c + 24);
            if (key == 0 || word_at(c + 24) != key) broken(d, "a tcache entry's key is not glibc's", c);
            put_word(d, c + 24, KEY_MARKER);
            break;
        }
        case FASTBIN: {
            uintptr_t fd = word_at(c + 16) ^ ((c + 16) >> 12);
            put_word(d, c + 16, protect(heap_pointer(d, c + 16), fd == 0 ? 0 : heap_pointer(d, fd)));
            break;
        }
        case UNSORTED:
        case SMALL:
        case LARGE:
            put_word(d, c + 16, rebase_link(d, word_at(c + 16), c + 16));
            put_word(d, c + 24, rebase_link(d, word_at(c + 24), c + 24));
            if (size >= MIN_LARGE_SIZE && d->state[k] != SMALL) {
                put_word(d, c + 32, rebase_nextsize(d, word_at(c + 32), c + 32));
                put_word(d, c + 40, rebase_nextsize(d, word_at(c + 40), c + 40));
            }
            break;
        case IN_USE:
            if (c == tcache - 16) {
                /* counts (or num_slots) as they are, then the entries rebased */
                for (uint64_t w = 0; w < 2 * tcache_bins; w += 8) put_word(d, tcache + w, word_at(tcache + w));
                for (uint64_t i = 0; i < tcache_bins; i++) {
                    uintptr_t entry = tcache + 2 * tcache_bins + 8 * i;
                    put_word(d, entry, rebase_entry(d, word_at(entry)));
                }
            } else if (!trace_threaded && (word_at(c + 16) != 0 || word_at(c + 24) != 0)) {
                /* The oracle zeroed the block's usable bytes when the program got it, and nothing writes there
                 * while it is in use, while every free list writes a link at 16 or 24 (a tcache key, or a
                 * mangled NULL, is never zero): a word that is not zero means a free list was missed. */
                broken(d, "an in-use chunk holds a word the program did not write", c);
            }
            break;
        case TOP:
            break;
        }
    }
}

static char *put_hex(char *at, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    at = PUT_LITERAL(at, "\"0x");
    int shift = 60;
    while (shift > 0 && ((v >> shift) & 15) == 0) shift -= 4;
    for (; shift >= 0; shift -= 4) *at++ = hex[(v >> shift) & 15];
    *at++ = '"';
    return at;
}

/* A chunk pointer of the arena as an offset from the heap start, or null. */
static char *put_offset(char *at, const struct dump *d, uintptr_t p)
{
    if (p == 0) return PUT_LITERAL(at, "null");
    return put_u64(at, (uint64_t)(p - d->start));
}

/* The sidecar: one JSON object on one line, keys in this order (docs/image.md). */
static size_t sidecar(const struct dump *d, char *text)
{
    char *at = text;
    at = PUT_LITERAL(at, "{\"format\":\"mallocscope-heap-image\",\"version\":1,\"glibc\":\"");
    at = put_bytes(at, gnu_get_libc_version(), cstr_len(gnu_get_libc_version()));
    at = PUT_LITERAL(at, "\",\"seq\":");
    at = put_u64(at, d->seq);
    at = PUT_LITERAL(at, ",\"base\":");
    at = put_hex(at, image_base);
    at = PUT_LITERAL(at, ",\"size\":");
    at = put_u64(at, (uint64_t)(d->end - d->start));
    at = PUT_LITERAL(at, ",\"arena\":");
    at = put_hex(at, image_arena);
    at = PUT_LITERAL(at, ",\"key\":");
    at = put_hex(at, KEY_MARKER);
    at = PUT_LITERAL(at, ",\"foreign\":");
    at = put_hex(at, FOREIGN_MARKER);
    int empty = d->end == d->start;
    at = PUT_LITERAL(at, ",\"top\":");
    at = put_offset(at, d, empty ? 0 : d->top);
    at = PUT_LITERAL(at, ",\"lastRemainder\":");
    at = put_offset(at, d, empty ? 0 : word_at(d->arena + STATE_LAST_REMAINDER));
    at = PUT_LITERAL(at, ",\"tcache\":");
    uintptr_t tcache = empty ? 0 : tcache_struct();
    if (tcache == 0) {
        at = PUT_LITERAL(at, "null");
    } else {
        at = PUT_LITERAL(at, "{\"chunk\":");
        at = put_u64(at, (uint64_t)(tcache - 16 - d->start));
        at = PUT_LITERAL(at, ",\"bins\":");
        at = put_u64(at, tcache_bins);
        if (tcache_free_slots) {
            at = PUT_LITERAL(at, ",\"slots\":\"free\",\"fill\":");
            at = put_u64(at, probed.fill);
            at = PUT_LITERAL(at, "}");
        } else {
            at = PUT_LITERAL(at, ",\"slots\":\"used\"}");
        }
    }
    at = PUT_LITERAL(at, ",\"fastbins\":[");
    for (unsigned i = 0; i < NFASTBINS; i++) {
        if (i > 0) *at++ = ',';
        at = put_offset(at, d, empty ? 0 : word_at(d->arena + STATE_FASTBINS + 8 * i));
    }
    at = PUT_LITERAL(at, "],\"bins\":[");
    int first = 1;
    for (unsigned i = 1; i <= NBIN_HEADERS && !empty; i++) {
        uintptr_t header = d->arena + STATE_TOP + 16 * (i - 1);
        uintptr_t fd = word_at(header + 16), bk = word_at(header + 24);
        if (fd == header && bk == header) continue;
        if (!first) *at++ = ',';
        first = 0;
        at = PUT_LITERAL(at, "{\"bin\":");
        at = put_u64(at, i);
        at = PUT_LITERAL(at, ",\"fd\":");
        at = put_offset(at, d, fd);
        at = PUT_LITERAL(at, ",\"bk\":");
        at = put_offset(at, d, bk);
        *at++ = '}';
    }
    at = PUT_LITERAL(at, "]}\n");
    return (size_t)(at - text);
}

/* Whether page `k` of the image holds a word. */
static int page_dirty(const struct dump *d, size_t k)
{
    return (d->dirty[k >> 3] >> (k & 7)) & 1;
}

/* Writes heap-SEQ`suffix`: `n` bytes of `data`, or with `d->dirty` only the image's pages that hold a word, the
 * others left as holes of a sparse file (an image is mostly zeros: the bodies of blocks), which read as zeros. */
static void write_file(const struct dump *d, const char *suffix, const char *data, size_t n, int sparse)
{
    char name[64];
    char *p = PUT_LITERAL(name, "heap-");
    p = put_u64(p, d->seq);
    p = put_bytes(p, suffix, cstr_len(suffix));
    *p = '\0';
    int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    int ok = fd >= 0;
    for (size_t done = 0; ok && done < n;) {
        int hole = sparse && !page_dirty(d, done >> 12);
        size_t run = sparse ? 0 : n;
        while (sparse && done + run < n && (!page_dirty(d, (done + run) >> 12)) == hole)
            run += n - done - run < 4096 ? n - done - run : 4096;
        ok = hole ? lseek(fd, (off_t)run, SEEK_CUR) >= 0 : write_all(fd, data + done, run) == 0;
        done += run;
    }
    if (!ok || ftruncate(fd, (off_t)n) != 0 || close(fd) != 0) fail(d->seq, "cannot write ", name, errno, "IMAGE_WRITE");
}

static void dump(uint64_t seq)
{
    struct dump d;
    memset(&d, 0, sizeof d);
    d.seq = seq;
    d.start = heap_at;
    d.arena = (uintptr_t)probed.arena;
    uintptr_t brk_now = (uintptr_t)sbrk(0);
    d.top = word_at(d.arena + STATE_TOP);
    if (brk_now == d.start && d.top == d.arena + STATE_TOP) {
        /* No heap yet: the top is still glibc's initial one, the unsorted bin's header. */
        d.end = d.top = d.start;
    } else {
        if (d.top < d.start || d.top >= brk_now)
            fail(seq, "the main arena's top chunk is not at the program break (the break could not grow, and glibc "
                      "went on in mmapped memory): the heap is not one piece",
                 NULL, 0, "IMAGE_NOT_CONTIGUOUS");
        d.end = d.top + (word_at(d.top + 8) & ~(uintptr_t)SIZE_BITS);
        if (d.end != brk_now) broken(&d, "the top chunk does not end at the program break", d.top);
        uint64_t size = (uint64_t)(d.end - d.start);
        if (size > UINT64_MAX - image_base) {
            /* The heap grew past what the base leaves below 2^64: the option's mistake, found only now. */
            out_flush(lines);
            usage_error("--image-base leaves the heap no room below 2^64 (it has grown past 2^64 - base bytes):", image_base_text);
        }
        if (image_base < image_arena + STATE_SIZE && image_arena < image_base + size)
            fail(seq, "the heap, placed at --image-base, would overlap --image-arena", NULL, 0, "IMAGE_BASE");
    }
    size_t size = (size_t)(d.end - d.start);
    if (size > 0) {
        walk_chunks(&d);
        follow_lists(&d);
        d.image = region_map(size);
        d.dirty = region_map((size >> 15) + 1);
        compose(&d);
    }
    write_file(&d, ".img", d.image, size, size > 0);
    char *text = region_map(1 << 16);
    write_file(&d, ".img.json", text, sidecar(&d, text), 0);
    region_unmap(text, 1 << 16);
    if (size > 0) {
        region_unmap(d.image, size);
        region_unmap(d.dirty, (size >> 15) + 1);
        region_unmap(d.at, d.n * sizeof *d.at);
        region_unmap(d.state, d.n);
    }
    last_written = seq;
}

void heapdump_event(uint64_t seq)
{
    if (!enabled) return;
    while (at_next < at_count && at_seqs[at_next] < seq) at_next++;
    if ((at_next < at_count && at_seqs[at_next] == seq) || (every != 0 && seq % every == 0)) dump(seq);
}

void heapdump_end(uint64_t events)
{
    if (!enabled) return;
    if (at_end && events != 0 && last_written != events - 1) dump(events - 1);
    /* A SEQ the trace never reached: its image was asked for and is missing, so the run fails (after the
     * images that could be written), rather than passing for a run that wrote all it was asked to. */
    if (at_count > 0 && at_seqs[at_count - 1] >= events) {
        while (at_next < at_count && at_seqs[at_next] < events) at_next++;
        out_flush(lines);
        struct outbuf e;
        out_init(&e, 2, 1 << 12);
        out_str(&e, "mallocscope: oracle: heap image: --image-at ");
        out_u64(&e, at_seqs[at_next]);
        out_str(&e, " is past the trace's end: it has ");
        out_u64(&e, events);
        out_str(&e, events == 1 ? " event" : " events");
        if (events > 0) {
            out_str(&e, " (seq 0 to ");
            out_u64(&e, events - 1);
            out_str(&e, ")");
        }
        out_str(&e, " [IMAGE_PAST_END]\n");
        out_flush(&e);
        _exit(1);
    }
}
