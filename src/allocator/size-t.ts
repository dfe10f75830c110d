// glibc's size_t values in the model: a number while it is exact (below 2^53, which every size a real
// request can have), a bigint above, where a double would round (mallopt's negative ints, requests near 2^63).
// JavaScript compares a number with a bigint exactly, so the decisions read either; only arithmetic differs.

/** A size_t: a number below 2^53, a bigint from 2^53 up. */
export type SizeT = number | bigint;

const SIZE_MAX = (1n << 64n) - 1n;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** An exact integer as a SizeT: a number while it is safe, else the bigint itself. */
export function sizeT(value: bigint): SizeT {
  return value <= SAFE && value >= -SAFE ? Number(value) : value;
}

/** A C int converted to size_t, as glibc converts mallopt's value (a negative int wraps to near 2^64). */
export function sizeTFromInt(value: number): SizeT {
  return value < 0 ? sizeT((1n << 64n) + BigInt(value)) : value;
}

/** The same value as a bigint, for exact arithmetic. */
export function big(value: SizeT): bigint {
  return typeof value === 'bigint' ? value : BigInt(value);
}

/** Wraps to 64 bits, as C's size_t arithmetic does. */
export function wrap(value: bigint): bigint {
  return value & SIZE_MAX;
}

/** ALIGN_UP in size_t: rounds up to a multiple of `unit` (a power of two), wrapping past 2^64. */
export function alignUpExact(value: bigint, unit: number): bigint {
  const u = BigInt(unit);
  return wrap((value + u - 1n) & ~(u - 1n));
}

/** request2size in exact size_t arithmetic (wrapping as C does): the chunk size of a request of `req` bytes. */
export function request2sizeExact(req: bigint): bigint {
  const padded = wrap(req + 8n + 15n);
  return padded < 32n ? 32n : padded & ~15n;
}

/**
 * A request above 2^53 runs through the model with a stand-in size of 2^62 (every such request fails, as no
 * kernel grants it, but only after the same search); its exact size is kept in Malloc.hugeRequest. Where the
 * kernel is asked (sysmalloc, mremap_chunk) this gives the exact chunk size back: for the stand-in, the exact
 * one; for any other nb, nb itself.
 */
export const HUGE_STAND_IN = 2 ** 62;

export function exactNb(hugeRequest: bigint | null, nb: number): SizeT {
  if (hugeRequest !== null && nb >= HUGE_STAND_IN) return request2sizeExact(hugeRequest);
  return nb > Number.MAX_SAFE_INTEGER ? BigInt(nb) : nb;
}
