/* The oracle's heap images (docs/image.md): after chosen events, glibc's main-arena heap from its first chunk
 * to the end of its top chunk, reduced to glibc's live metadata and rebased to fixed addresses, with a JSON
 * sidecar, so that a walker can decode it from the bytes alone and the model can be held to the same bytes. */
#ifndef MALLOCSCOPE_ORACLE_HEAPDUMP_H
#define MALLOCSCOPE_ORACLE_HEAPDUMP_H

#include <stdint.h>
#include "sysio.h"

/* The image options, for the oracle's usage line. */
#define HEAPDUMP_USAGE "[--image-at SEQ[,SEQ...]|every:N|end --image-dir DIR [--image-base ADDR] [--image-arena ADDR]]"

/* Takes argv[*i] (with its value) when it is an image option: returns 1 with *i on the last word taken, else 0. */
int heapdump_option(int argc, char **argv, int *i);
/* Whether --image-at was given. */
int heapdump_requested(void);
/* After the options, before the first call of the trace: checks the options, opens the image folder and finds
 * glibc's main arena and the main thread's tcache pointer (in a child process, so that this heap is not
 * touched). `out` (the JSON Lines) is flushed before any error. Nothing happens without --image-at. */
void heapdump_start(char *heap_start, struct outbuf *out, int threaded);
/* Zeros the usable bytes of a block the program got, when images are on (main-arena heap blocks only: the
 * program's own bytes are no part of the image). */
void heapdump_clear(void *block);
/* After event `seq`'s line: writes the image of that moment when --image-at chose it. */
void heapdump_event(uint64_t seq);
/* At the end of the trace, after `events` events: the `end` image, unless the last event had one already. */
void heapdump_end(uint64_t events);

#endif
