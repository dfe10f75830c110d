// The numbers command-line options take, read one way everywhere: decimal or 0x/0X hexadecimal, whole,
// and small enough to be exact; anything else is a usage error naming the option.
import { UsageError } from '../errors.ts';

/** A whole number written in decimal or 0x/0X hexadecimal, exact as a double; undefined otherwise. */
export function parseCount(text: string): number | undefined {
  if (!/^(?:[0-9]+|0[xX][0-9a-fA-F]+)$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** A byte count option (--brk-limit): decimal or 0x-hexadecimal, up to 2^53 - 1. */
export function parseBytesOption(name: string, text: string): number {
  const value = parseCount(text);
  if (value === undefined) throw new UsageError(`${name} takes a byte count (decimal or 0x-hexadecimal, below 2^53), not '${text}'`);
  return value;
}

/** A count option (--context, --checkpoint-every); `least` is the smallest it may be. */
export function parseCountOption(name: string, text: string, least = 0): number {
  const value = parseCount(text);
  if (value === undefined || value < least) throw new UsageError(`${name} takes a whole number of at least ${least}, not '${text}'`);
  return value;
}
