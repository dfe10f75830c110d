/* Reads a trace as a stream of calls, checking the format of docs/trace-format.md in its documented order
 * (see trace.h). */
#define _GNU_SOURCE
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    MAX_LINE = 4096,            /* characters, not counting "\n" and a "\r" just before it */
    READ_CHUNK = 1 << 20,
    MAX_FIELDS = 3,
};

const char *const verb_names[] = { "malloc", "calloc", "realloc", "memalign", "free", "mallopt", "trim", "spawn", "exit" };
const unsigned char verb_name_lengths[] = { 6, 6, 7, 8, 4, 7, 4, 5, 4 };

enum field_kind { FIELD_ID, FIELD_SIZE, FIELD_PARAM, FIELD_VALUE, FIELD_THREAD };

static const struct {
    int nfields;
    const char *usage;
    enum field_kind kind[MAX_FIELDS];
    const char *name[MAX_FIELDS];
} verb_shapes[] = {
    [VERB_MALLOC] = { 2, "ID SIZE", { FIELD_ID, FIELD_SIZE }, { "ID", "SIZE" } },
    [VERB_CALLOC] = { 3, "ID NMEMB SIZE", { FIELD_ID, FIELD_SIZE, FIELD_SIZE }, { "ID", "NMEMB", "SIZE" } },
    [VERB_REALLOC] = { 2, "ID SIZE", { FIELD_ID, FIELD_SIZE }, { "ID", "SIZE" } },
    [VERB_MEMALIGN] = { 3, "ID ALIGN SIZE", { FIELD_ID, FIELD_SIZE, FIELD_SIZE }, { "ID", "ALIGN", "SIZE" } },
    [VERB_FREE] = { 1, "ID", { FIELD_ID }, { "ID" } },
    [VERB_MALLOPT] = { 2, "PARAM VALUE", { FIELD_PARAM, FIELD_VALUE }, { "PARAM", "VALUE" } },
    [VERB_TRIM] = { 1, "PAD", { FIELD_SIZE }, { "PAD" } },
    [VERB_SPAWN] = { 1, "THREAD", { FIELD_THREAD }, { "THREAD" } },
    [VERB_EXIT] = { 0, "", { FIELD_ID }, { NULL } },
};

static const struct {
    const char *name;
    int param;
} mallopt_params[] = {
    { "M_MMAP_THRESHOLD", M_MMAP_THRESHOLD },
    { "M_TRIM_THRESHOLD", M_TRIM_THRESHOLD },
    { "M_TOP_PAD", M_TOP_PAD },
    { "M_MMAP_MAX", M_MMAP_MAX },
    { "M_MXFAST", M_MXFAST },
    { "M_ARENA_MAX", M_ARENA_MAX },
    { "M_ARENA_TEST", M_ARENA_TEST },
};

/* ---- errors ------------------------------------------------------------------------------------- */

static struct outbuf stderr_buf;

static struct outbuf *error_start(const char *display_name, struct outbuf *flush_first)
{
    if (flush_first != NULL) out_flush(flush_first);
    out_init(&stderr_buf, 2, 1 << 16);
    out_str(&stderr_buf, "mallocscope: ");
    out_str(&stderr_buf, display_name);
    return &stderr_buf;
}

struct outbuf *trace_error_begin(struct trace_reader *r, uint64_t line)
{
    struct outbuf *err = error_start(r->display_name, r->flush_first);
    out_bytes(err, ":", 1);
    out_u64(err, line);
    out_bytes(err, ": ", 2);
    return err;
}

_Noreturn void trace_error_end(struct outbuf *err, const char *code)
{
    out_str(err, " [");
    out_str(err, code);
    out_str(err, "]\n");
    out_flush(err);
    _exit(1);
}

_Noreturn void trace_open_error(const char *display_name, int err_no, struct outbuf *flush_first)
{
    struct outbuf *err = error_start(display_name, flush_first);
    out_str(err, ": cannot read: ");
    out_errno_reason(err, err_no);
    trace_error_end(err, "TRACE_OPEN");
}

/* "PREFIX'X'SUFFIX" with X the token as written. */
static _Noreturn void fail_token(struct trace_reader *r, const char *code, const char *field, const char *prefix,
                                 const char *token, size_t token_len, const char *suffix)
{
    struct outbuf *err = trace_error_begin(r, r->line);
    if (field != NULL) out_str(err, field);
    out_str(err, prefix);
    out_bytes(err, "'", 1);
    out_bytes(err, token, token_len);
    out_bytes(err, "'", 1);
    out_str(err, suffix);
    trace_error_end(err, code);
}

static _Noreturn void fail_binary(struct trace_reader *r, unsigned char byte, uint64_t column)
{
    struct outbuf *err = trace_error_begin(r, r->line);
    out_str(err, "binary data (byte 0x");
    out_hex2(err, byte);
    out_str(err, " at column ");
    out_u64(err, column);
    out_str(err, "); a trace is text");
    trace_error_end(err, "TRACE_BINARY");
}

static _Noreturn void fail_too_long(struct trace_reader *r)
{
    struct outbuf *err = trace_error_begin(r, r->line);
    out_str(err, "line is longer than 4096 characters");
    trace_error_end(err, "TRACE_LINE_TOO_LONG");
}

/* ---- reading lines ------------------------------------------------------------------------------ */

/* Control bytes other than tab, "\n" and "\r", and DEL, make a file binary. */
static inline int is_binary_byte(unsigned char c)
{
    return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f;
}

void trace_open_reader(struct trace_reader *r, int fd, const char *display_name, struct outbuf *flush_first)
{
    r->fd = fd;
    r->display_name = display_name;
    r->flush_first = flush_first;
    /* Room for one read chunk after the carried-over start of a line of the longest allowed length. */
    r->cap = READ_CHUNK + MAX_LINE + 2;
    r->buf = region_map(r->cap);
    r->start = r->end = 0;
    r->eof = 0;
    r->line = 0;
}

/* Appends up to a chunk after r->end; sets eof at the end of the input. */
static void fill(struct trace_reader *r)
{
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) trace_open_error(r->display_name, errno, r->flush_first);
        if (n == 0) r->eof = 1;
        r->end += (size_t)n;
        return;
    }
}

/* A line with no "\n" within the longest allowed length: it is an error, but a binary byte anywhere in
 * it comes first, so read on to its end looking for one. */
static _Noreturn void fail_long_line(struct trace_reader *r)
{
    r->line++;
    uint64_t column = 0;
    for (;;) {
        for (size_t i = r->start; i < r->end; i++) {
            unsigned char c = (unsigned char)r->buf[i];
            if (c == '\n') fail_too_long(r);
            column++;
            if (is_binary_byte(c)) fail_binary(r, c, column);
        }
        if (r->eof) fail_too_long(r);
        r->start = r->end = 0;
        fill(r);
    }
}

/* The next raw line (without its "\n"), or 0 at the end of the input. */
static int next_line(struct trace_reader *r, char **line, size_t *len)
{
    for (;;) {
        char *from = r->buf + r->start;
        char *nl = memchr(from, '\n', r->end - r->start);
        if (nl != NULL) {
            *line = from;
            *len = (size_t)(nl - from);
            r->start += *len + 1;
            r->line++;
            return 1;
        }
        if (r->eof) {
            if (r->start == r->end) return 0;
            *line = from;
            *len = r->end - r->start;
            r->start = r->end;
            r->line++;
            return 1;
        }
        size_t rest = r->end - r->start;
        if (rest > MAX_LINE + 1) fail_long_line(r);
        memmove(r->buf, from, rest);
        r->start = 0;
        r->end = rest;
        fill(r);
    }
}

/* ---- fields ------------------------------------------------------------------------------------- */

static inline int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The form is checked over the whole token before the value, so that a long malformed token is "not a
 * number" rather than "out of range". */
enum number_status parse_u64(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        for (size_t i = 2; i < n; i++)
            if (hex_value((unsigned char)p[i]) < 0) return NUMBER_MALFORMED;
        for (size_t i = 2; i < n; i++) {
            if (v > UINT64_MAX >> 4) return NUMBER_RANGE;
            v = v << 4 | (uint64_t)hex_value((unsigned char)p[i]);
        }
    } else {
        if (n == 0) return NUMBER_MALFORMED;
        for (size_t i = 0; i < n; i++)
            if (p[i] < '0' || p[i] > '9') return NUMBER_MALFORMED;
        for (size_t i = 0; i < n; i++) {
            uint64_t digit = (uint64_t)(p[i] - '0');
            if (v > (UINT64_MAX - digit) / 10) return NUMBER_RANGE;
            v = v * 10 + digit;
        }
    }
    *out = v;
    return NUMBER_OK;
}

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), as a fatal TextDecoder reads it. */
static int valid_utf8(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t more;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) more = 1;
        else if (c == 0xe0) { more = 2; lo = 0xa0; }
        else if (c >= 0xe1 && c <= 0xec) more = 2;
        else if (c == 0xed) { more = 2; hi = 0x9f; }
        else if (c >= 0xee && c <= 0xef) more = 2;
        else if (c == 0xf0) { more = 3; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) more = 3;
        else if (c == 0xf4) { more = 3; hi = 0x8f; }
        else return 0;
        if (n - i - 1 < more) return 0;
        if (p[i + 1] < lo || p[i + 1] > hi) return 0;
        for (size_t k = 2; k <= more; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xbf) return 0;
        i += more + 1;
    }
    return 1;
}

static void check_size_field(struct trace_reader *r, const char *field, const char *tok, size_t len, uint64_t *out)
{
    if (len > 0 && tok[0] == '-') fail_token(r, "TRACE_NEGATIVE", field, " is negative: ", tok, len, "");
    switch (parse_u64(tok, len, out)) {
    case NUMBER_OK: return;
    case NUMBER_MALFORMED:
        fail_token(r, "TRACE_BAD_NUMBER", field, " is not a number: ", tok, len, " (decimal or 0x-hexadecimal)");
    case NUMBER_RANGE:
        fail_token(r, "TRACE_RANGE", field, " is out of range: ", tok, len, " (at most 2^64-1)");
    }
}

static int check_value_field(struct trace_reader *r, const char *tok, size_t len)
{
    int negative = len > 0 && tok[0] == '-';
    uint64_t magnitude = 0;
    switch (parse_u64(tok + negative, len - (size_t)negative, &magnitude)) {
    case NUMBER_OK: break;
    case NUMBER_MALFORMED:
        fail_token(r, "TRACE_BAD_NUMBER", "VALUE", " is not a number: ", tok, len, " (decimal or 0x-hexadecimal)");
    case NUMBER_RANGE: magnitude = UINT64_MAX; break;
    }
    if (magnitude > (negative ? 2147483648u : 2147483647u))
        fail_token(r, "TRACE_RANGE", "VALUE", " is out of range: ", tok, len,
                   " (mallopt takes a C int, -2147483648 to 2147483647)");
    return negative ? (int)(-(int64_t)magnitude) : (int)magnitude;
}

static int check_param_field(struct trace_reader *r, const char *tok, size_t len)
{
    for (size_t i = 0; i < sizeof mallopt_params / sizeof mallopt_params[0]; i++)
        if (bytes_equal(tok, len, mallopt_params[i].name)) return mallopt_params[i].param;
    fail_token(r, "TRACE_UNKNOWN_PARAM", NULL, "unknown mallopt parameter ", tok, len,
               " (expected M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_MXFAST, M_ARENA_MAX or M_ARENA_TEST)");
}

/* The largest thread number (a C int, as the TypeScript reader keeps it too), and as the errors write it. */
#define MAX_THREAD 2147483647u
#define MAX_THREAD_TEXT "2147483647"

/* A thread number: decimal digits only, 1 to MAX_THREAD; 0 when the token is not one. */
static uint64_t thread_number(const char *tok, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (tok[i] < '0' || tok[i] > '9') return 0;
    uint64_t v;
    return parse_u64(tok, len, &v) == NUMBER_OK && v <= MAX_THREAD ? v : 0;
}

static int find_verb(const char *tok, size_t len)
{
    for (int v = VERB_MALLOC; v <= VERB_EXIT; v++)
        if (len == verb_name_lengths[v] && memcmp(tok, verb_names[v], len) == 0) return v;
    return -1;
}

static inline int is_separator(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* ---- lines to calls ----------------------------------------------------------------------------- */

int trace_next(struct trace_reader *r, struct trace_call *call)
{
    char *line;
    size_t len;
    while (next_line(r, &line, &len)) {
        /* 1. Binary bytes anywhere in the line, comments included. */
        for (size_t i = 0; i < len; i++)
            if (is_binary_byte((unsigned char)line[i])) fail_binary(r, (unsigned char)line[i], i + 1);

        /* 2. Length, not counting a "\r" that ends the line (CRLF files). */
        size_t chars = len > 0 && line[len - 1] == '\r' ? len - 1 : len;
        if (chars > MAX_LINE) fail_too_long(r);

        /* Split into fields up to a "#"; count them all, keep a tag, the verb and the first MAX_FIELDS. */
        const char *tok[2 + MAX_FIELDS];
        size_t tok_len[2 + MAX_FIELDS];
        size_t ntok = 0;
        for (size_t i = 0; i < len && line[i] != '#';) {
            if (is_separator(line[i])) { i++; continue; }
            size_t j = i;
            while (j < len && !is_separator(line[j]) && line[j] != '#') j++;
            if (ntok < 2 + MAX_FIELDS) {
                tok[ntok] = line + i;
                tok_len[ntok] = j - i;
            }
            ntok++;
            i = j;
        }
        if (ntok == 0) continue;    /* blank or comment only: not a call */

        /* 3. A thread tag, `@T`, before the verb. */
        call->thread = 1;
        size_t first = 0;
        if (tok[0][0] == '@') {
            call->thread = thread_number(tok[0] + 1, tok_len[0] - 1);
            if (call->thread == 0)
                fail_token(r, "TRACE_THREAD_TAG", NULL, "thread tag is not a thread number: ", tok[0], tok_len[0],
                           " (expected @ and a decimal number from 1 to " MAX_THREAD_TEXT ")");
            if (ntok == 1) fail_token(r, "TRACE_THREAD_TAG", NULL, "thread tag ", tok[0], tok_len[0], " has no call after it");
            first = 1;
        }

        /* 4. Verb. */
        int v = find_verb(tok[first], tok_len[first]);
        if (v < 0)
            fail_token(r, "TRACE_UNKNOWN_VERB", NULL, "unknown verb ", tok[first], tok_len[first],
                       " (expected malloc, calloc, realloc, memalign, free, mallopt, trim, spawn or exit)");

        /* 5. Field count. */
        size_t want = (size_t)verb_shapes[v].nfields;
        size_t found = ntok - 1 - first;
        if (found != want) {
            struct outbuf *err = trace_error_begin(r, r->line);
            out_str(err, verb_names[v]);
            if (want == 0) {
                out_str(err, " takes no fields, found ");
            } else {
                out_str(err, " takes ");
                out_u64(err, want);
                out_str(err, want == 1 ? " field (" : " fields (");
                out_str(err, verb_shapes[v].usage);
                out_str(err, "), found ");
            }
            out_u64(err, found);
            trace_error_end(err, "TRACE_FIELD_COUNT");
        }

        /* 6. The fields, left to right. */
        call->verb = (enum verb)v;
        call->id = "";
        call->id_len = 0;
        call->line = r->line;
        int nums = 0;
        for (size_t f = 0; f < want; f++) {
            const char *t = tok[first + 1 + f];
            size_t n = tok_len[first + 1 + f];
            switch (verb_shapes[v].kind[f]) {
            case FIELD_ID:
                if (!valid_utf8((const unsigned char *)t, n)) {
                    struct outbuf *err = trace_error_begin(r, r->line);
                    out_str(err, "ID is not valid UTF-8");
                    trace_error_end(err, "TRACE_ENCODING");
                }
                call->id = t;
                call->id_len = n;
                break;
            case FIELD_SIZE:
                check_size_field(r, verb_shapes[v].name[f], t, n, &call->num[nums++]);
                break;
            case FIELD_PARAM:
                call->param = check_param_field(r, t, n);
                break;
            case FIELD_VALUE:
                call->value = check_value_field(r, t, n);
                break;
            case FIELD_THREAD:
                call->spawn = thread_number(t, n);
                if (call->spawn == 0)
                    fail_token(r, "TRACE_THREAD_NUMBER", verb_shapes[v].name[f], " is not a thread number: ", t, n,
                               " (expected a decimal number from 1 to " MAX_THREAD_TEXT ")");
                break;
            }
        }
        return 1;
    }
    return 0;
}

/* ---- does the trace have threads? ----------------------------------------------------------------------- */

/* Looks at the first field of each line, across reads: 1 as soon as one is a tag, `spawn` or `exit`; -1 at a
 * binary byte, where the trace ends in an error whatever follows (and /dev/zero would never end); else 0. */
struct first_fields {
    enum { AT_LINE_START, IN_FIRST_FIELD, TO_LINE_END } state;
    char field[6];      /* the first field's first bytes: enough to tell "spawn" and "exit" */
    size_t field_len;
};

static int first_field_is_thread(const struct first_fields *s)
{
    return (s->field_len >= 1 && s->field[0] == '@') || bytes_equal(s->field, s->field_len, "spawn") ||
           bytes_equal(s->field, s->field_len, "exit");
}

static int scan_first_fields(struct first_fields *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (is_binary_byte((unsigned char)c)) return -1;
        switch (s->state) {
        case AT_LINE_START:
            if (c == '\n' || is_separator(c)) break;
            if (c == '#') { s->state = TO_LINE_END; break; }
            s->state = IN_FIRST_FIELD;
            s->field[0] = c;
            s->field_len = 1;
            break;
        case IN_FIRST_FIELD:
            if (c == '\n' || c == '#' || is_separator(c)) {
                if (first_field_is_thread(s)) return 1;
                s->state = c == '\n' ? AT_LINE_START : TO_LINE_END;
            } else if (s->field_len < sizeof s->field) {
                s->field[s->field_len++] = c;
            } else {
                s->field_len = sizeof s->field + 1;    /* longer than any verb of a thread: a tag shows at once */
                if (s->field[0] != '@') s->state = TO_LINE_END;
            }
            break;
        case TO_LINE_END:
            if (c == '\n') s->state = AT_LINE_START;
            break;
        }
    }
    return 0;
}

int trace_has_threads(struct trace_reader *r)
{
    struct first_fields s = { AT_LINE_START, { 0 }, 0 };
    off_t at = lseek(r->fd, 0, SEEK_CUR);
    int found = 0;
    if (at >= 0) {
        /* A file: read it through (up to the first sign of a thread, or a binary byte), then rewind. */
        while (found == 0 && !r->eof) {
            r->start = r->end = 0;
            fill(r);
            found = scan_first_fields(&s, r->buf, r->end);
        }
        if (found == 0 && s.state == IN_FIRST_FIELD) found = first_field_is_thread(&s);
        if (lseek(r->fd, at, SEEK_SET) < 0) trace_open_error(r->display_name, errno, r->flush_first);
        r->start = r->end = 0;
        r->eof = 0;
        return found > 0;
    }
    /* A pipe: copy it to an unnamed temporary file, looking on the way, then read from that file, so that
     * memory does not grow with the trace. The copy stops at a binary byte, where the trace ends in an error
     * anyway (and /dev/zero would never end). */
    const char *dir = getenv("TMPDIR");
    int spool = open(dir != NULL && *dir != '\0' ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (spool >= 0) {
        int binary = 0;
        while (!binary && !r->eof) {
            r->start = r->end = 0;
            fill(r);
            if (found == 0) {
                found = scan_first_fields(&s, r->buf, r->end);
                binary = found < 0;
            } else {
                for (size_t i = 0; i < r->end && !binary; i++) binary = is_binary_byte((unsigned char)r->buf[i]);
            }
            for (size_t done = 0; done < r->end;) {
                ssize_t n = write(spool, r->buf + done, r->end - done);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) trace_open_error(r->display_name, errno, r->flush_first);
                done += (size_t)n;
            }
        }
        if (found == 0 && s.state == IN_FIRST_FIELD) found = first_field_is_thread(&s);
        if (lseek(spool, 0, SEEK_SET) < 0) trace_open_error(r->display_name, errno, r->flush_first);
        r->fd = spool;
        r->start = r->end = 0;
        r->eof = 0;
        return found > 0;
    }
    /* No temporary file: keep what it takes to know (all of it when there are no threads) in the reader's
     * buffer, so that the reader takes its first lines from there, then reads on from the pipe. */
    while (found == 0 && !r->eof) {
        if (r->cap - r->end < READ_CHUNK) {
            r->buf = region_remap(r->buf, r->cap, r->cap * 2);
            r->cap *= 2;
        }
        size_t from = r->end;
        fill(r);
        found = scan_first_fields(&s, r->buf + from, r->end - from);
    }
    if (found == 0 && s.state == IN_FIRST_FIELD) found = first_field_is_thread(&s);
    return found > 0;
}
