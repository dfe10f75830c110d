/* The oracle's --foreign mode: a replay measured from outside the allocator (see foreign.h). */
#define _GNU_SOURCE
#include "foreign.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* The samples of resident memory over the trace: at most this many buckets of `width` events each, every
 * bucket the highest figure after any of its events (so the peak is in the chart). When they fill up, pairs
 * merge and the width doubles, so a trace of any length keeps between half this and this many. */
#define MAX_BUCKETS 1024

static int statm = -1;
static uint64_t start_rss, peak_rss, end_rss, peak_seq;
static int have_peak;
static uint64_t *buckets;
static uint64_t bucket_count, width = 1;
static struct own_calls own_before, own_after;
static struct timespec began, ended;

/* The markers strace shows (`write(-1, "mallocscope: replay begins\n", 27) = -1 EBADF`): a write to no
 * file, which does nothing and cannot fail otherwise, so that the calls between them are the replay's. */
static void marker(const char *text)
{
    ssize_t ignored = write(-1, text, cstr_len(text));
    (void)ignored;
}

void foreign_begin(int statm_fd)
{
    statm = statm_fd;
    if (statm >= 0) {
        buckets = region_map(MAX_BUCKETS * sizeof *buckets);
        start_rss = anon_resident_bytes(statm);
        end_rss = start_rss;
    }
    own_before = own_calls;
    marker("mallocscope: replay begins\n");
    clock_gettime(CLOCK_MONOTONIC, &began);
}

void foreign_after(uint64_t seq)
{
    if (statm < 0) return;
    uint64_t rss = anon_resident_bytes(statm);
    end_rss = rss;
    if (!have_peak || rss > peak_rss) {
        peak_rss = rss;
        peak_seq = seq;
        have_peak = 1;
    }
    uint64_t bucket = seq / width;
    if (bucket >= MAX_BUCKETS) {
        for (uint64_t i = 0; i < MAX_BUCKETS / 2; i++)
            buckets[i] = buckets[2 * i] > buckets[2 * i + 1] ? buckets[2 * i] : buckets[2 * i + 1];
        width *= 2;
        bucket_count = (bucket_count + 1) / 2;
        bucket = seq / width;
    }
    if (bucket >= bucket_count) {
        bucket_count = bucket + 1;
        buckets[bucket] = rss;
    } else if (rss > buckets[bucket]) {
        buckets[bucket] = rss;
    }
}

/* A JSON string: `"` and `\` escaped, control bytes as \u00XX. */
static void out_json_string(struct outbuf *out, const char *s)
{
    OUT_LITERAL(out, "\"");
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char two[2] = { '\\', (char)c };
            out_bytes(out, two, 2);
        } else if (c < 0x20) {
            OUT_LITERAL(out, "\\u00");
            out_hex2(out, c);
        } else {
            out_bytes(out, (const char *)&c, 1);
        }
    }
    OUT_LITERAL(out, "\"");
}

void foreign_end(struct outbuf *out, uint64_t events)
{
    clock_gettime(CLOCK_MONOTONIC, &ended);
    marker("mallocscope: replay ends\n");
    own_after = own_calls;
    /* Whose malloc ran: the first definition after the oracle itself in the dynamic linker's search order, to
       which it bound the oracle's calls (a preloaded library's when it was loaded, else libc's). Not `&malloc`:
       in a build that is not position-independent that is the oracle's own PLT entry, in the oracle's file. */
    Dl_info info;
    void *entry = dlsym(RTLD_NEXT, "malloc");
    const char *name = entry != NULL && dladdr(entry, &info) != 0 ? info.dli_fname : NULL;

    int64_t ns = (int64_t)(ended.tv_sec - began.tv_sec) * 1000000000 + (ended.tv_nsec - began.tv_nsec);
    OUT_LITERAL(out, "{\"events\":");
    out_u64(out, events);
    OUT_LITERAL(out, ",\"malloc\":");
    if (name == NULL) OUT_LITERAL(out, "null");
    else out_json_string(out, name);
    OUT_LITERAL(out, ",\"replayNs\":");
    out_i64(out, ns);
    if (statm >= 0) {
        OUT_LITERAL(out, ",\"rss\":{\"start\":");
        out_u64(out, start_rss);
        OUT_LITERAL(out, ",\"peak\":");
        out_u64(out, have_peak ? peak_rss : start_rss);
        OUT_LITERAL(out, ",\"peakSeq\":");
        if (have_peak) out_u64(out, peak_seq);
        else OUT_LITERAL(out, "null");
        OUT_LITERAL(out, ",\"end\":");
        out_u64(out, end_rss);
        OUT_LITERAL(out, ",\"every\":");
        out_u64(out, width);
        OUT_LITERAL(out, ",\"max\":[");
        for (uint64_t i = 0; i < bucket_count; i++) {
            if (i > 0) OUT_LITERAL(out, ",");
            out_u64(out, buckets[i]);
        }
        OUT_LITERAL(out, "]}");
    }
    OUT_LITERAL(out, ",\"own\":{\"mmap\":");
    out_u64(out, own_after.mmap - own_before.mmap);
    OUT_LITERAL(out, ",\"munmap\":");
    out_u64(out, own_after.munmap - own_before.munmap);
    OUT_LITERAL(out, ",\"mremap\":");
    out_u64(out, own_after.mremap - own_before.mremap);
    OUT_LITERAL(out, "}}\n");
}
