/* Reads a trace (docs/trace-format.md) as a stream of calls: read(2) into an mmap'ed buffer, one line at a
 * time, every check of the format in its documented order, every error worded as the format page says. */
#ifndef MALLOCSCOPE_ORACLE_TRACE_H
#define MALLOCSCOPE_ORACLE_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include "sysio.h"

enum verb { VERB_MALLOC, VERB_CALLOC, VERB_REALLOC, VERB_MEMALIGN, VERB_FREE, VERB_MALLOPT, VERB_TRIM, VERB_SPAWN, VERB_EXIT };

extern const char *const verb_names[];
extern const unsigned char verb_name_lengths[];

/* One call of the trace. `id` points into the reader's buffer and is valid until the next trace_next. */
struct trace_call {
    enum verb verb;
    const char *id;
    size_t id_len;
    uint64_t num[2];    /* malloc/realloc: SIZE; calloc: NMEMB, SIZE; memalign: ALIGN, SIZE; trim: PAD */
    int param;          /* mallopt: M_MMAP_THRESHOLD etc. from <malloc.h> */
    int value;          /* mallopt: VALUE */
    uint64_t thread;    /* the line's thread: its `@T` tag, 1 without one */
    uint64_t spawn;     /* spawn: the new thread's number */
    uint64_t line;
};

struct trace_reader {
    int fd;
    const char *display_name;   /* FILE in error messages */
    struct outbuf *flush_first; /* stdout: what was printed before a bad line must come out first */
    char *buf;
    size_t cap, start, end;
    int eof;
    uint64_t line;
};

void trace_open_reader(struct trace_reader *r, int fd, const char *display_name, struct outbuf *flush_first);
/* The next call of the trace: 1, or 0 at the end. A bad line ends the process with the documented error. */
int trace_next(struct trace_reader *r, struct trace_call *call);
/* Whether the trace has threads: a line whose first field is an `@T` tag, `spawn` or `exit` (comments aside;
 * nothing else of a line is checked here). Reads the whole input first and leaves the reader at its start: a
 * file is read and rewound; a pipe is copied to an unnamed temporary file read from then on (kept in memory
 * only when no such file can be made). */
int trace_has_threads(struct trace_reader *r);

enum number_status { NUMBER_OK, NUMBER_MALFORMED, NUMBER_RANGE };
/* `[0-9]+` or `0[xX][0-9a-fA-F]+` as an exact uint64 (a trace's numbers, and --brk-limit). */
enum number_status parse_u64(const char *p, size_t n, uint64_t *out);

/* The error line `mallocscope: FILE:LINE: MESSAGE [CODE]`: trace_error_begin writes up to "LINE: " and
 * returns the stderr buffer for the message; trace_error_end adds " [CODE]", writes it and exits 1. */
struct outbuf *trace_error_begin(struct trace_reader *r, uint64_t line);
_Noreturn void trace_error_end(struct outbuf *err, const char *code);
/* `mallocscope: FILE: cannot read: REASON [TRACE_OPEN]`, exit 1. */
_Noreturn void trace_open_error(const char *display_name, int err, struct outbuf *flush_first);

#endif
