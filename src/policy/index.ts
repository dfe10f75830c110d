// The brk/mmap policies `--policy` names, as presets of glibc's parameter block mp_: the threshold rule
// itself is glibc's and lives in the core (sysmalloc's comparison, free's sliding watermark); a preset only
// sets mp_ before the first call, exactly as the mallopt call it stands for would.
import { HEAP_MAX_SIZE } from '../allocator/constants.ts';
import { MallocPar } from '../allocator/params.ts';
import { parseTunables, ptmallocInitTunables } from '../allocator/tunables.ts';
import { GLIBC_2_36, type GlibcRules } from '../allocator/versions.ts';
import { UsageError } from '../errors.ts';
import { parseSafeNumber } from '../number.ts';

export interface Preset {
  /** The name as `--policy` writes it: glibc, fixed:BYTES, heap, mmap. */
  readonly name: string;
  /** Sets the preset's values in a fresh mp_. */
  apply(mp: MallocPar): void;
}

/** glibc's defaults: the threshold starts at 128 KiB and slides up as mmapped chunks are freed. */
export const GLIBC: Preset = { name: 'glibc', apply() {} };

/** Never mmap, as after mallopt(M_MMAP_MAX, 0): every chunk comes from the heap (or sbrk's mmap fallback). */
export const HEAP: Preset = {
  name: 'heap',
  apply(mp) {
    mp.nMmapsMax = 0;
    mp.noDynThreshold = true;
  },
};

/** Always mmap, as after mallopt(M_MMAP_THRESHOLD, 0): whatever the bins and the top cannot serve is mapped. */
export const MMAP: Preset = {
  name: 'mmap',
  apply(mp) {
    mp.mmapThreshold = 0;
    mp.noDynThreshold = true;
  },
};

/** A fixed threshold, as after mallopt(M_MMAP_THRESHOLD, BYTES): freeing never moves it. */
export function fixed(bytes: number): Preset {
  return {
    name: `fixed:${bytes}`,
    apply(mp) {
      mp.mmapThreshold = bytes;
      mp.noDynThreshold = true;
    },
  };
}

/** The preset that `name` names; a UsageError for anything else. */
export function policyByName(name: string): Preset {
  if (name === 'glibc') return GLIBC;
  if (name === 'heap') return HEAP;
  if (name === 'mmap') return MMAP;
  if (name.startsWith('fixed:')) {
    const bytes = parseSafeNumber(name.slice(6));
    if (bytes !== undefined) return fixed(bytes);
    throw new UsageError(`policy ${name}: the threshold is a byte count (decimal or 0x-hexadecimal, below 2^53)`);
  }
  throw new UsageError(`unknown policy '${name}' (expected glibc, fixed:BYTES, heap or mmap)`);
}

/**
 * A fresh mp_ for glibc `rules`: GLIBC_TUNABLES first, when given (ptmalloc_init reads them before any call),
 * then `preset`. A fixed threshold that version's mallopt would refuse (2.34: above HEAP_MAX_SIZE / 2) is a
 * usage error: the preset stands for that mallopt.
 */
export function paramsFor(preset: Preset, rules: GlibcRules = GLIBC_2_36, tunables?: string): MallocPar {
  const mp = new MallocPar();
  if (tunables !== undefined) ptmallocInitTunables(mp, parseTunables(tunables, rules), rules);
  preset.apply(mp);
  if (rules.mmapThresholdCapped && mp.mmapThreshold > HEAP_MAX_SIZE / 2) {
    throw new UsageError(
      `policy ${preset.name}: glibc ${rules.version} refuses an mmap threshold above ${HEAP_MAX_SIZE / 2} (its mallopt returns 0 and changes nothing)`,
    );
  }
  return mp;
}
