// GLIBC_TUNABLES as glibc reads it: ld.so's parsing of the string (dl-tunables.c, each version's way), the
// glibc.malloc.* tunables with their types and bounds (dl-tunables.list), and ptmalloc_init handing the ones
// that were set to the same do_set_* functions mallopt uses (do-set.ts). What the model cannot follow exactly
// is refused (TUNABLES_UNSUPPORTED), never guessed. docs/tune.md lists every rule with its probe.
import { MallocscopeError } from '../errors.ts';
import { MAX_FAST_SIZE } from './constants.ts';
import {
  MAX_TCACHE_COUNT,
  MAX_TCACHE_SIZE,
  doSetArenaMax,
  doSetArenaTest,
  doSetMmapThreshold,
  doSetMmapsMax,
  doSetMxfast,
  doSetTcacheCount,
  doSetTcacheMax,
  doSetTcacheUnsortedLimit,
  doSetTopPad,
  doSetTrimThreshold,
} from './do-set.ts';
import { MallocPar } from './params.ts';
import { sizeT } from './size-t.ts';
import type { GlibcRules } from './versions.ts';

const U64 = 1n << 64n;
const U64_MAX = U64 - 1n;
const INT32_MAX = 2n ** 31n - 1n;
const PTRDIFF_MAX = 2n ** 63n - 1n;

/** A tunable's type as dl-tunables.list gives it: both kinds of glibc.malloc.* are one of these. */
type TunableType = 'SIZE_T' | 'INT_32';

interface TunableDef {
  /** The name after "glibc.malloc.". */
  readonly name: string;
  readonly type: TunableType;
  /** minval and maxval (the type's range when the list gives none). */
  readonly min: bigint;
  readonly max: bigint;
}

const sizeTunable = (name: string, min = 0n): TunableDef => ({ name, type: 'SIZE_T', min, max: U64_MAX });

/**
 * The glibc.malloc.* tunables of 2.35 to 2.42 (2.34 lacks hugetlb, and its tunables are refused anyway), in
 * the order ptmalloc_init reads them; check is read by no one (malloc checking lives in libc_malloc_debug.so).
 */
const MALLOC_TUNABLES: readonly TunableDef[] = [
  sizeTunable('top_pad'),
  { name: 'perturb', type: 'INT_32', min: 0n, max: 255n },
  sizeTunable('mmap_threshold'),
  sizeTunable('trim_threshold'),
  { name: 'mmap_max', type: 'INT_32', min: 0n, max: INT32_MAX },
  sizeTunable('arena_max', 1n),
  sizeTunable('arena_test', 1n),
  sizeTunable('tcache_max'),
  sizeTunable('tcache_count'),
  sizeTunable('tcache_unsorted_limit'),
  sizeTunable('mxfast'),
  sizeTunable('hugetlb'),
  { name: 'check', type: 'INT_32', min: 0n, max: 3n },
];

/** The glibc.malloc.* tunable names the model knows (the short names, as in `glibc.malloc.NAME`). */
export const MALLOC_TUNABLE_NAMES: readonly string[] = MALLOC_TUNABLES.map((t) => t.name);

/** One tunable that ld.so set, with the value it holds (an INT_32's signed, a SIZE_T's from 0 to 2^64 - 1). */
export interface TunableSetting {
  /** The short name: `mmap_threshold` for glibc.malloc.mmap_threshold. */
  name: string;
  value: bigint;
}

/** What a GLIBC_TUNABLES string gives glibc's malloc. */
export interface GlibcTunables {
  /** The string as given. */
  text: string;
  /** The glibc.malloc.* tunables set, in the order ptmalloc_init reads them. */
  settings: TunableSetting[];
  /** What glibc reads and then ignores, one sentence each (a warning for whoever wrote the string). */
  ignored: string[];
}

function refuse(message: string): MallocscopeError {
  return new MallocscopeError('TUNABLES_UNSUPPORTED', `GLIBC_TUNABLES: ${message}`, 2);
}

const COLON = 0x3a;
const EQUALS = 0x3d;

/**
 * _dl_strtoul on bytes[start, end): spaces and tabs, a sign, then 0x for hexadecimal, a leading 0 for octal,
 * else decimal, up to the first byte that is not a digit of the base. Returns the value (mod 2^64, a minus
 * negating it) and where it stopped. On overflow it gives 2^64 - 1 and stops at the digit that overflowed:
 * until 2.38 a little early (`result >= (max - digit) / base`), from 2.39 exactly.
 */
function dlStrtoul(bytes: Uint8Array, start: number, end: number, exactOverflow: boolean): { value: bigint; stop: number } {
  let p = start;
  while (p < end && (bytes[p] === 0x20 || bytes[p] === 0x09)) p++;
  let negative = false;
  if (p < end && bytes[p] === 0x2d) {
    negative = true;
    p++;
  } else if (p < end && bytes[p] === 0x2b) p++;
  if (p >= end || bytes[p] < 0x30 || bytes[p] > 0x39) return { value: 0n, stop: p };
  let base = 10n;
  let maxDigit = 9;
  if (bytes[p] === 0x30) {
    if (p + 1 < end && (bytes[p + 1] | 0x20) === 0x78) {
      base = 16n;
      p += 2;
    } else {
      base = 8n;
      maxDigit = 7;
    }
  }
  let result = 0n;
  for (; p < end; p++) {
    const b = bytes[p];
    let digit: number;
    if (b >= 0x30 && b <= 0x30 + maxDigit) digit = b - 0x30;
    else if (base === 16n && (b | 0x20) >= 0x61 && (b | 0x20) <= 0x66) digit = (b | 0x20) - 0x61 + 10;
    else break;
    const d = BigInt(digit);
    const overflows = exactOverflow ? result > U64_MAX / base || (result === U64_MAX / base && d > U64_MAX % base) : result >= (U64_MAX - d) / base;
    if (overflows) return { value: U64_MAX, stop: p };
    result = result * base + d;
  }
  if (negative) result = (U64 - result) % U64;
  return { value: result, stop: p };
}

/** One `name=value` entry of the string, by byte offsets. */
interface Entry {
  nameStart: number;
  nameEnd: number;
  valueStart: number;
  valueEnd: number;
}

/**
 * Reads a GLIBC_TUNABLES string as glibc `glibc` does. Entries naming another glibc namespace
 * (glibc.cpu.*, glibc.pthread.*, glibc.rtld.* …) are refused: the model cannot say what they change.
 */
export function parseTunables(text: string, glibc: GlibcRules): GlibcTunables {
  if (glibc.tunablesMoveTheBreak) {
    throw refuse(
      `glibc ${glibc.version}'s loader copies GLIBC_TUNABLES into memory it takes with sbrk, so the program break malloc starts from is moved by the string's length: the model does not follow that (choose another --glibc)`,
    );
  }
  if (text.includes('\0')) throw refuse('the string holds a NUL byte, which no environment variable can');
  const bytes = new TextEncoder().encode(text);
  const name = (e: Entry) => new TextDecoder().decode(bytes.subarray(e.nameStart, e.nameEnd));
  const value = (e: Entry) => new TextDecoder().decode(bytes.subarray(e.valueStart, e.valueEnd));
  const ignored: string[] = [];
  const v = `glibc ${glibc.version}`;

  // The entries, as this version's loader splits the string.
  const entries: Entry[] = [];
  let p = 0;
  if (glibc.tunablesStrict) {
    // A malformed string is ignored whole: a name running to the end, a second '=', a trailing ':'.
    let done = bytes.length === 0;
    while (!done) {
      const nameStart = p;
      while (p < bytes.length && bytes[p] !== EQUALS && bytes[p] !== COLON) p++;
      if (p >= bytes.length) {
        return { text, settings: [], ignored: [`${v} ignores the whole string: '${text}' is not a list of NAME=VALUE separated by ':'`] };
      }
      if (bytes[p] === COLON) {
        p++;
        continue;
      }
      const nameEnd = p++;
      const valueStart = p;
      while (p < bytes.length && bytes[p] !== EQUALS && bytes[p] !== COLON) p++;
      if (p < bytes.length && bytes[p] === EQUALS) {
        return { text, settings: [], ignored: [`${v} ignores the whole string: a value holds a second '=' ('${text}')`] };
      }
      if (p >= bytes.length) done = true;
      entries.push({ nameStart, nameEnd, valueStart, valueEnd: p });
    }
  } else {
    // A name without a value ends the reading there; a name before ':' is skipped; a value runs to ':'.
    while (p < bytes.length) {
      const nameStart = p;
      while (p < bytes.length && bytes[p] !== EQUALS && bytes[p] !== COLON) p++;
      if (p >= bytes.length) {
        if (p > nameStart) ignored.push(`${v} stops reading at '${text.slice(nameStart)}', a name without '='`);
        break;
      }
      if (bytes[p] === COLON) {
        p++;
        continue;
      }
      const nameEnd = p++;
      const valueStart = p;
      while (p < bytes.length && bytes[p] !== COLON) p++;
      entries.push({ nameStart, nameEnd, valueStart, valueEnd: p });
      p++;
    }
  }

  // The entries that name a tunable, refused or set in turn (from 2.40 only a name's last occurrence).
  const known: { def: TunableDef; entry: Entry }[] = [];
  for (const entry of entries) {
    const full = name(entry);
    const def = full.startsWith('glibc.malloc.') ? MALLOC_TUNABLES.find((t) => `glibc.malloc.${t.name}` === full) : undefined;
    if (def) known.push({ def, entry });
    else if (full.startsWith('glibc.') && !full.startsWith('glibc.malloc.'))
      throw refuse(`${full}: the model follows the glibc.malloc.* tunables only, and cannot tell what this one changes (leave it out)`);
    else ignored.push(`${v} knows no tunable ${full || '(empty name)'}: ignored`);
  }
  const tried = glibc.tunablesLastOccurrence ? known.filter((k, i) => !known.slice(i + 1).some((later) => later.def === k.def)) : known;
  const set = new Map<TunableDef, bigint>();
  for (const { def, entry } of tried) {
    const written = `glibc.malloc.${def.name}=${value(entry)}`;
    const read = dlStrtoul(bytes, entry.valueStart, entry.valueEnd, glibc.tunablesStrict);
    if (glibc.tunablesStrict && read.stop !== entry.valueEnd) {
      ignored.push(`${v} ignores ${written}: the value is not a whole number`);
      continue;
    }
    // The value as the tunable holds it: an INT_32 is signed (from 2.39 only its low 32 bits are kept).
    let held = read.value;
    if (def.type === 'INT_32') {
      if (glibc.tunablesStrict) held = BigInt.asIntN(32, held);
      else held = BigInt.asIntN(64, held);
    }
    if (held < def.min || held > def.max) {
      ignored.push(`${v} ignores ${written}: ${held} is outside ${def.min} to ${def.max}`);
      continue;
    }
    set.set(def, held);
  }
  const settings = MALLOC_TUNABLES.filter((def) => set.has(def)).map((def) => ({ name: def.name, value: set.get(def) as bigint }));
  return { text, settings, ignored };
}

/**
 * ptmalloc_init's part: each tunable that was set goes to its do_set_* (the callbacks glibc registers), in
 * ptmalloc_init's order, before the first call. Returns what malloc itself ignored, one sentence each.
 */
export function ptmallocInitTunables(mp: MallocPar, tunables: GlibcTunables, glibc: GlibcRules): string[] {
  const ignored: string[] = [];
  const v = `glibc ${glibc.version}`;
  const keeps = (name: string, value: bigint, why: string) => ignored.push(`${v}'s malloc ignores glibc.malloc.${name}=${value}: ${why}`);
  for (const { name, value } of tunables.settings) {
    const size = sizeT(value);
    switch (name) {
      case 'top_pad':
        // The model holds top_pad as mallopt's C int; a size_t from 2^63 on is the negative int it equals.
        if (value <= INT32_MAX) doSetTopPad(mp, Number(value));
        else if (value >= U64 - 2n ** 31n) doSetTopPad(mp, Number(value - U64));
        else throw refuse(`glibc.malloc.top_pad=${value}: the model takes a pad up to 2^31 - 1 (or from 2^64 - 2^31, as mallopt's negative values)`);
        break;
      case 'perturb':
        if (value !== 0n) throw refuse(`glibc.malloc.perturb=${value}: the model does not fill memory with a perturb byte`);
        break;
      case 'mmap_threshold':
        if (doSetMmapThreshold(mp, size, glibc) === 0) keeps(name, value, `above ${glibc.version}'s limit`);
        break;
      case 'trim_threshold':
        doSetTrimThreshold(mp, size);
        break;
      case 'mmap_max':
        doSetMmapsMax(mp, Number(value));
        break;
      case 'arena_max':
      case 'arena_test':
        if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw refuse(`glibc.malloc.${name}=${value}: the model takes an arena count below 2^53`);
        if (name === 'arena_max') doSetArenaMax(mp, Number(value));
        else doSetArenaTest(mp, Number(value));
        break;
      case 'tcache_max':
        if (glibc.tcacheLargeBins && value > MAX_TCACHE_SIZE) {
          if (value > PTRDIFF_MAX) keeps(name, value, 'above PTRDIFF_MAX');
          else
            throw refuse(
              `glibc.malloc.tcache_max=${value}: glibc ${glibc.version} then caches chunks above 1040 bytes in its large tcache bins, which the model does not follow`,
            );
        } else if (doSetTcacheMax(mp, size) === 0) keeps(name, value, `above ${MAX_TCACHE_SIZE}, the largest request the tcache holds`);
        break;
      case 'tcache_count':
        if (doSetTcacheCount(mp, size) === 0) keeps(name, value, `above ${MAX_TCACHE_COUNT}, the most a tcache bin counts`);
        break;
      case 'tcache_unsorted_limit':
        doSetTcacheUnsortedLimit(mp, size);
        break;
      case 'mxfast':
        if (doSetMxfast(mp, size) === 0) keeps(name, value, `above ${MAX_FAST_SIZE}, the largest fastbin request`);
        break;
      case 'hugetlb':
        if (value !== 0n) throw refuse(`glibc.malloc.hugetlb=${value}: huge pages depend on this machine's kernel settings, which the model does not follow`);
        break;
      // check: nobody reads it without libc_malloc_debug.so preloaded.
    }
  }
  return ignored;
}

/** Everything glibc ignores in `text` (the loader's and malloc's reasons), or a TUNABLES_UNSUPPORTED error. */
export function tunablesIgnored(text: string, glibc: GlibcRules): string[] {
  const tunables = parseTunables(text, glibc);
  return [...tunables.ignored, ...ptmallocInitTunables(new MallocPar(), tunables, glibc)];
}
