/* The oracle's --foreign mode (docs/allocators.md): the trace replayed under whatever malloc the process has
 * (jemalloc, tcmalloc or mimalloc preloaded, or glibc's), measured from outside the allocator only: resident
 * memory after every call, the replay's duration, and markers that let strace count the calls made in between.
 * Nothing here reads an allocator's own structures, which only glibc's would have. */
#ifndef MALLOCSCOPE_ORACLE_FOREIGN_H
#define MALLOCSCOPE_ORACLE_FOREIGN_H

#include <stdint.h>
#include "sysio.h"

/* Before the first call: the resident bytes then (with `statm_fd` >= 0; -1 measures no memory), the
 * "replay begins" marker, the clock. */
void foreign_begin(int statm_fd);
/* After the call numbered `seq` (0, 1, 2… in order): the resident bytes, the peak, the samples. */
void foreign_after(uint64_t seq);
/* After the last call: the clock, the "replay ends" marker, then one JSON line on `out` (docs/allocators.md). */
void foreign_end(struct outbuf *out, uint64_t events);

#endif
