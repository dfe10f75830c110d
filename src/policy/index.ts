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
  const fixed = /^fixed:(\d+|0x[0-9a-fA-F]+)$/.exec(name);
  if (fixed) return new FixedPolicy(Number(fixed[1]));
  throw new UsageError(`unknown policy '${name}' (expected glibc, fixed:BYTES, heap or mmap)`);
}
