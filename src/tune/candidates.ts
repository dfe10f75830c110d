// The settings `mallocscope tune` tries: a fixed, ordered list of GLIBC_TUNABLES strings, the same for every
// trace of the same kind (with or without threads), so that any shard of the search (--shard i/n) is the same
// on every machine. docs/tune.md gives the list and why.
import { MALLOC_TUNABLE_NAMES } from '../allocator/tunables.ts';

/** One candidate: its place in the list, and the glibc.malloc.* tunables it sets (none: glibc's defaults). */
export interface Candidate {
  index: number;
  /** [short name, value] pairs, in the order ptmalloc_init reads them. */
  settings: readonly (readonly [string, number])[];
  /** The GLIBC_TUNABLES value ("" for the defaults). */
  tunables: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Each tunable's values tried alone (glibc's own default left out where it changes nothing by itself). */
const ONE_AT_A_TIME: readonly (readonly [string, readonly number[]])[] = [
  ['top_pad', [0, 4 * KiB, 16 * KiB, 64 * KiB, 128 * KiB, 512 * KiB, 1 * MiB, 4 * MiB]],
  ['mmap_threshold', [32 * KiB, 64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB, 1 * MiB, 2 * MiB, 4 * MiB, 8 * MiB, 16 * MiB, 32 * MiB]],
  ['trim_threshold', [0, 64 * KiB, 128 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB]],
  ['mmap_max', [0, 8, 64]],
  ['tcache_count', [0, 1, 2, 4, 16, 64]],
  ['mxfast', [0, 32, 64, 96, 160]],
];

/** The arena limits, tried alone for a trace with threads. */
const ARENA_MAX: readonly number[] = [1, 2, 4, 8];

/** The grid of the three that together decide what the heap keeps and what goes to mappings. */
const GRID_MMAP_THRESHOLD = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 32 * MiB];
const GRID_TRIM_THRESHOLD = [0, 128 * KiB, 1 * MiB, 16 * MiB];
const GRID_TOP_PAD = [0, 64 * KiB, 1 * MiB];

/** The GLIBC_TUNABLES value of some settings. */
export function tunablesString(settings: readonly (readonly [string, number])[]): string {
  return settings.map(([name, value]) => `glibc.malloc.${name}=${value}`).join(':');
}

/**
 * Every candidate, in order: glibc's defaults (index 0, the baseline), then each tunable alone, then the grid
 * of mmap_threshold × trim_threshold × top_pad.
 */
export function tuneCandidates(threads: boolean): Candidate[] {
  const lists: [string, number][][] = [[]];
  for (const [name, values] of ONE_AT_A_TIME) for (const value of values) lists.push([[name, value]]);
  if (threads) for (const value of ARENA_MAX) lists.push([['arena_max', value]]);
  for (const mmap of GRID_MMAP_THRESHOLD)
    for (const trim of GRID_TRIM_THRESHOLD)
      for (const pad of GRID_TOP_PAD)
        lists.push([
          ['top_pad', pad],
          ['mmap_threshold', mmap],
          ['trim_threshold', trim],
        ]);
  return lists.map((settings, index) => {
    // In ptmalloc_init's order (the core's list of the tunables), so that each string is written one way.
    const sorted = [...settings].sort((a, b) => MALLOC_TUNABLE_NAMES.indexOf(a[0]) - MALLOC_TUNABLE_NAMES.indexOf(b[0]));
    return { index, settings: sorted, tunables: tunablesString(sorted) };
  });
}
