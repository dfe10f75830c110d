// What glibc's realloc and its aligned allocation calls do with their arguments, as the trace records them:
// the one copy of these rules for the importers that see the calls by name (ltrace.ts, recording.ts).

/** size_t's values are 0 to 2^64-1. */
export const SIZE_LIMIT = 1n << 64n;

/** The calls that the trace writes as `memalign ALIGN SIZE`. */
export type AlignedCall = 'memalign' | 'aligned_alloc' | 'valloc' | 'pvalloc';

/** Why glibc failed an aligned call before it allocated anything: the call is then left out of the trace. */
export type AlignedRefusal = 'alignment' | 'wraps';

/**
 * An aligned call as the trace's memalign: its alignment and size, or why glibc refused it without allocating.
 * `align` is the call's own (memalign, aligned_alloc; the others align to a page), `failed` whether it returned
 * NULL in the recorded run, `pageSize` the recorded machine's page size.
 */
export function alignedRequest(
  call: AlignedCall,
  align: bigint,
  size: bigint,
  failed: boolean,
  pageSize: bigint,
): { align: bigint; size: bigint } | { refused: AlignedRefusal } {
  switch (call) {
    case 'memalign':
      return { align, size };
    case 'aligned_alloc':
      // Since glibc 2.38 aligned_alloc refuses an alignment that is not a power of two before malloc does
      // anything; before, it was memalign, which rounds the alignment up. The result tells which this one did.
      if (failed && (align === 0n || (align & (align - 1n)) !== 0n)) return { refused: 'alignment' };
      return { align, size };
    case 'valloc':
      return { align: pageSize, size };
    case 'pvalloc': {
      // pvalloc rounds the size up to whole pages, and fails (ENOMEM) when that overflows size_t.
      const rounded = size + pageSize - 1n;
      if (rounded >= SIZE_LIMIT) return { refused: 'wraps' };
      return { align: pageSize, size: (rounded / pageSize) * pageSize };
    }
  }
}

/** The comment for a refused aligned call, `call` being how it is shown (`aligned_alloc(3, 10)`, with where). */
export function refusedComment(refused: AlignedRefusal, call: string): string {
  return refused === 'alignment'
    ? `# ${call} refused its alignment (EINVAL) without allocating: skipped\n`
    : `# ${call}: the size rounded up to a page wraps, so glibc failed without allocating: skipped\n`;
}

/**
 * What a realloc(old, size) that returned NULL or a block did in glibc:
 * - `new`: realloc(NULL, size), which is malloc(size) (and failed if it returned NULL);
 * - `freed`: realloc(old, 0), which frees old and returns NULL;
 * - `failed`: realloc(old, size > 0) returned NULL, and old stays allocated;
 * - `moved`: realloc(old, size > 0) returned the block, moved or in place;
 * - `not-glibc`: realloc(old, 0) returned a block, which glibc's never does.
 */
export function reallocOutcome(oldIsNull: boolean, size: bigint, resultIsNull: boolean): 'new' | 'freed' | 'failed' | 'moved' | 'not-glibc' {
  if (oldIsNull) return 'new';
  if (size === 0n) return resultIsNull ? 'freed' : 'not-glibc';
  return resultIsNull ? 'failed' : 'moved';
}

/** Why `not-glibc` is not glibc, for error messages. */
export const REALLOC_ZERO_RULE = "glibc's realloc frees the block and returns NULL, so this is another allocator";

/**
 * Whether glibc could have returned the block at `ptr` (not NULL): every block it returns is aligned to 16 bytes
 * (MALLOC_ALIGNMENT on 64-bit and i386) and lies above the first page, which is never mapped.
 */
export function glibcCouldReturn(ptr: number | bigint): boolean {
  const value = BigInt(ptr);
  return value >= 4096n && value % 16n === 0n;
}
