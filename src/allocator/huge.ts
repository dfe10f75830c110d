// Requests above 2^53 bytes, which can never succeed on x86-64 (user space ends at 2^47) but whose side
// effects still depend on exact size_t arithmetic: glibc refuses some at once (above PTRDIFF_MAX, or when
// its own padding passes it), and takes the others through _int_malloc (tcache set-up, consolidation, the
// unsorted scan) before failing. This decides which, exactly, from a trace event's exact values.
import type { TraceEvent } from '../trace/api.ts';
import { PTRDIFF_MAX } from './constants.ts';
import type { SizeT } from './size-t.ts';

const SIZE_MAX = (1n << 64n) - 1n;
const MINSIZE = 32n;

/** request2size in exact size_t arithmetic (wrapping as C does). */
export function request2size(req: bigint): bigint {
  const padded = (req + 8n + 15n) & SIZE_MAX;
  return padded < MINSIZE ? MINSIZE : padded & ~15n;
}

/** How glibc treats a huge request. */
export type HugeOutcome =
  /** NULL before any search (realloc of a heap block has set up the tcache by then, as for any size). */
  | 'refused'
  /** NULL after the whole search (consolidation, unsorted scan, failing sysmalloc): replay it with a stand-in. */
  | 'searched';

/** A stand-in size that takes the same path to failure as any huge request that gets searched. */
export const HUGE_STAND_IN = 2 ** 62;
/** A stand-in above PTRDIFF_MAX: each entry point refuses it where glibc refuses any such size. */
export const HUGE_REFUSED_STAND_IN = 2 ** 64;

/**
 * For a malloc, calloc, realloc or memalign event carrying exact values, what glibc does; null when the
 * event's exact values do not matter (the call is decided by its other fields).
 */
export function classifyHuge(event: TraceEvent): HugeOutcome | null {
  const exact = event.exact;
  if (!exact) return null;
  switch (event.op) {
    case 'malloc':
      return exact.size === undefined ? null : exact.size > PTRDIFF_MAX ? 'refused' : 'searched';
    case 'calloc': {
      const nmemb = exact.nmemb ?? BigInt(event.nmemb);
      const size = exact.size ?? BigInt(event.size);
      // calloc multiplies into a ptrdiff_t: a product past PTRDIFF_MAX overflows it, before any set-up.
      const bytes = nmemb * size;
      if (bytes > PTRDIFF_MAX) return 'refused';
      return bytes <= BigInt(Number.MAX_SAFE_INTEGER) ? null : 'searched';
    }
    case 'realloc': {
      if (exact.size === undefined) return null;
      if (exact.size > PTRDIFF_MAX) return 'refused';
      // A live heap block goes through _int_malloc(nb - 15), refused at once above PTRDIFF_MAX; the replay
      // decides between this and the other realloc paths (see reallocHugeRefused).
      return 'searched';
    }
    case 'memalign': {
      const alignment = exact.alignment ?? BigInt(event.alignment);
      if (alignment <= 16n) return exact.size === undefined ? null : exact.size > PTRDIFF_MAX ? 'refused' : 'searched';
      if (alignment > (1n << 63n)) return 'refused'; // EINVAL
      let aligned = alignment < MINSIZE ? MINSIZE : alignment;
      if ((aligned & (aligned - 1n)) !== 0n) {
        let power = 32n;
        while (power < aligned) power <<= 1n;
        aligned = power;
      }
      const req = exact.size ?? BigInt(event.size);
      if (req > PTRDIFF_MAX) return 'refused';
      const nb = request2size(req);
      if (nb > SIZE_MAX - aligned - MINSIZE) return 'refused';
      if (nb + aligned + MINSIZE > PTRDIFF_MAX) return 'refused';
      return req > BigInt(Number.MAX_SAFE_INTEGER) ? 'searched' : null;
    }
    default:
      return null;
  }
}

/**
 * For a request glibc searches for (classifyHuge said 'searched'), the exact bytes its call passes to
 * _int_malloc, whose nb sysmalloc then works with. `heapBlock`: a realloc of a live, non-mmapped block.
 */
export function intMallocBytes(event: TraceEvent, heapBlock: boolean): bigint {
  const exact = event.exact!;
  const size = exact.size ?? BigInt('size' in event ? event.size : 0);
  switch (event.op) {
    case 'calloc':
      return (exact.nmemb ?? BigInt(event.nmemb)) * size;
    case 'memalign': {
      const alignment = exact.alignment ?? BigInt(event.alignment);
      if (alignment <= 16n) return size;
      let aligned = alignment < MINSIZE ? MINSIZE : alignment;
      if ((aligned & (aligned - 1n)) !== 0n) {
        let power = 32n;
        while (power < aligned) power <<= 1n;
        aligned = power;
      }
      // _int_memalign asks for nb + alignment + MINSIZE, to find an aligned spot inside.
      return request2size(size) + aligned + MINSIZE;
    }
    case 'realloc':
      // _int_realloc, unable to grow in place, mallocs nb - MALLOC_ALIGN_MASK; otherwise a plain malloc.
      return heapBlock ? request2size(size) - 15n : size;
    default:
      return size;
  }
}

/**
 * The chunk size glibc works with where the kernel is asked (sysmalloc, mremap_chunk): for the stand-in of
 * a huge request (arena.hugeRequest set, nb from the stand-in), the exact one; else nb itself, exactly.
 */
export function exactNb(hugeRequest: bigint | null, nb: number): SizeT {
  if (hugeRequest !== null && nb >= HUGE_STAND_IN) return request2size(hugeRequest);
  return nb > Number.MAX_SAFE_INTEGER ? BigInt(nb) : nb;
}

/** realloc of a live heap block to an exact huge size: whether _int_malloc(nb - 15) refuses it at once. */
export function reallocHugeRefused(size: bigint): boolean {
  return request2size(size) - 15n > PTRDIFF_MAX;
}
