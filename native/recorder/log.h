/* The binary log that libmallocscope-recorder.so writes (DIR/PID.msrec) and src/trace/recording.ts reads:
 * 4096 bytes of header fields, a ring of 32768 32-byte records (the calls not yet written out), then the records
 * written out, in order; all little-endian. docs/record.md describes it field by field. */
#ifndef MALLOCSCOPE_RECORDER_LOG_H
#define MALLOCSCOPE_RECORDER_LOG_H

#include <stdatomic.h>
#include <stdint.h>

#define MSREC_MAGIC "MSCOPREC"
#define MSREC_VERSION 2
#define MSREC_FIELDS_SIZE 4096u
#define MSREC_RECORD_SIZE 32u
/* Record i is written in the ring, at slot i % MSREC_RING_RECORDS, then copied out to the file at
 * MSREC_HEADER_SIZE + i * 32 (the header being the fields and the ring). */
#define MSREC_RING_RECORDS (1u << 15)
#define MSREC_HEADER_SIZE (MSREC_FIELDS_SIZE + MSREC_RING_RECORDS * MSREC_RECORD_SIZE)

/* header.flags */
#define MSREC_FLAG_STOPPED 1u /* the log could not be written: the calls after the last record are missing */

struct msrec_header {
  char magic[8];             /* MSREC_MAGIC, no NUL */
  uint32_t version;          /* MSREC_VERSION */
  uint32_t record_size;      /* MSREC_RECORD_SIZE */
  _Atomic uint64_t cursor;   /* slots taken: records [0, cursor) exist (a slot whose kind is 0 was never finished) */
  _Atomic uint32_t flags;    /* MSREC_FLAG_* */
  uint32_t pid;              /* the process */
  uint32_t ppid;             /* its parent when the log was opened */
  uint32_t forked_from;      /* the recorded process it was forked from, else 0 */
  uint32_t page_size;        /* what valloc and pvalloc align to */
  uint32_t ring_records;     /* MSREC_RING_RECORDS */
  uint64_t heap_start;       /* sbrk(0) before the first recorded call */
  _Atomic uint64_t written;  /* records [0, written) are written out after the ring; [written, cursor) are in it */
  char program[MSREC_FIELDS_SIZE - 64]; /* /proc/self/exe, NUL-terminated */
};

/* record.kind; a record's index is its sequence number (the order of the calls) */
enum {
  MSREC_NONE = 0,       /* a slot taken by a call the process never finished (it ended, or was killed) */
  MSREC_MALLOC = 1,     /* a = result, b = size */
  MSREC_CALLOC = 2,     /* a = result, b = nmemb, c = size */
  MSREC_REALLOC_BEGIN = 3, /* a = old pointer, b = size; taken before the call (it may free the old block) */
  MSREC_REALLOC_END = 4,   /* a = result, b = size, c = old pointer; the same thread's next record after BEGIN */
  MSREC_FREE = 5,       /* a = pointer (never NULL); taken before the call */
  MSREC_MEMALIGN = 6,   /* a = result, b = alignment (0 for valloc, pvalloc), c = size; how = MSREC_HOW_* */
  MSREC_TRIM = 7,       /* a = pad */
  MSREC_MALLOPT = 8,    /* a = param, b = value (C ints, sign-extended) */
  MSREC_SPAWN = 9,      /* a = the new thread's number; how = MSREC_SPAWN_UNSEEN for a thread no pthread_create of ours started */
  MSREC_SPAWN_FAILED = 10, /* a = the number the thread would have had */
  MSREC_EXIT = 11,      /* the thread's start routine returned, or it called pthread_exit, or was cancelled */
};

/* record.how for MSREC_MEMALIGN: which function, since they differ in what they refuse */
enum {
  MSREC_HOW_MEMALIGN = 0,
  MSREC_HOW_ALIGNED_ALLOC = 1,
  MSREC_HOW_POSIX_MEMALIGN = 2,
  MSREC_HOW_POSIX_MEMALIGN_EINVAL = 3, /* refused the alignment before allocating */
  MSREC_HOW_VALLOC = 4,
  MSREC_HOW_PVALLOC = 5,
};
#define MSREC_SPAWN_UNSEEN 1

struct msrec_record {
  _Atomic uint8_t kind; /* stored last */
  uint8_t how;
  uint16_t reserved;
  uint32_t thread; /* 1 = the main thread, then in order of creation */
  uint64_t a, b, c;
};

_Static_assert(sizeof(struct msrec_header) == MSREC_FIELDS_SIZE, "header size");
_Static_assert(sizeof(struct msrec_record) == MSREC_RECORD_SIZE, "record size");

#endif
