// Chooses a policy by the name `--policy` takes: glibc (the default), fixed:BYTES, heap, mmap.
import { UsageError } from '../errors.ts';
import type { MmapPolicy } from './api.ts';
import { FixedPolicy } from './fixed.ts';
import { GlibcPolicy } from './glibc.ts';
import { HeapPolicy } from './heap.ts';
import { MmapAlwaysPolicy } from './mmap.ts';

export type { MmapPolicy, ThresholdMove, PolicyParam } from './api.ts';
export { GlibcPolicy, FixedPolicy, HeapPolicy, MmapAlwaysPolicy };

/** The policy that `name` names; a UsageError for anything else. */
export function policyByName(name: string): MmapPolicy {
  if (name === 'glibc') return new GlibcPolicy();
  if (name === 'heap') return new HeapPolicy();
  if (name === 'mmap') return new MmapAlwaysPolicy();
  if (name.startsWith('fixed:')) {
    const bytes = /^(?:[0-9]+|0[xX][0-9a-fA-F]+)$/.test(name.slice(6)) ? Number(name.slice(6)) : NaN;
    if (Number.isSafeInteger(bytes)) return new FixedPolicy(bytes);
    throw new UsageError(`policy ${name}: the threshold is a byte count (decimal or 0x-hexadecimal, below 2^53)`);
  }
  throw new UsageError(`unknown policy '${name}' (expected glibc, fixed:BYTES, heap or mmap)`);
}
