// The options that several commands share, each defined once here so that it means the same everywhere, and
// the numbers options take, read one way: decimal or 0x/0X hexadecimal, whole, and in range; anything else is
// a usage error naming the option.
import { Option } from 'commander';
import { UsageError } from '../errors.ts';
import { parseSafeNumber } from '../number.ts';
import type { GlibcRules } from '../allocator/versions.ts';
import { tunablesIgnored } from '../allocator/tunables.ts';
import { LIBC_ENV, pairedGlibc } from '../oracle/oracle.ts';
import { GLIBC_ENV, defaultGlibc, knownVersions, rulesFor } from '../replay/glibc.ts';

/**
 * The largest --brk-limit: 16 TiB (2^44), the room the model's break has without a limit. The break lives
 * between the heap start and the mappings, so a larger limit is no limit at all (and the real glibc's process
 * cannot place its barrier past the mappings).
 */
export const MAX_BRK_LIMIT = 2 ** 44;

/** A byte count option: decimal or 0x-hexadecimal, from 0 to `most`. */
export function parseBytesOption(name: string, text: string, most = Number.MAX_SAFE_INTEGER): number {
  const value = parseSafeNumber(text);
  if (value === undefined || value > most) {
    const limit = most === MAX_BRK_LIMIT ? '2^44' : 'below 2^53';
    throw new UsageError(`${name} takes a byte count (decimal or 0x-hexadecimal, at most ${limit}), not '${text}'`);
  }
  return value;
}

/** --brk-limit's value: bytes, at most 2^44; undefined when the option is not given. */
export function parseBrkLimit(text: string | undefined): number | undefined {
  return text === undefined ? undefined : parseBytesOption('--brk-limit', text, MAX_BRK_LIMIT);
}

/** A count option (--context, --checkpoint-every, --from, --to); `least` is the smallest it may be. */
export function parseCountOption(name: string, text: string, least = 0): number {
  const value = parseSafeNumber(text);
  if (value === undefined || value < least) throw new UsageError(`${name} takes a whole number of at least ${least}, not '${text}'`);
  return value;
}

/** --cores's value: the CPU count glibc sees, 1 to 4096; undefined (this machine's) when not given. */
export function parseCores(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = parseSafeNumber(text);
  if (value === undefined || value < 1 || value > 4096) throw new UsageError(`--cores takes a CPU count from 1 to 4096, not '${text}'`);
  return value;
}

// ---- the shared options ------------------------------------------------------------------------------------

/** --cores: the CPU count glibc sees (its arena limit is 8 per CPU once more than arena_test arenas exist). */
export function coresOption(): Option {
  return new Option('--cores <n>', "the CPU count glibc sees: 8 arenas per CPU once more than M_ARENA_TEST exist (default: this machine's)");
}

/** --brk-limit: the same limit for the model, the native backend and the real glibc (the oracle). */
export function brkLimitOption(): Option {
  return new Option(
    '--brk-limit <bytes>',
    'the program break cannot grow more than this above its start (whole pages, at most 2^44); past it sbrk fails and glibc falls back to mmap',
  );
}

/** --stats: mallinfo2 after every call. */
export function statsOption(where: string): Option {
  return new Option('--stats', `mallinfo2 (arena, hblks, hblkhd, uordblks, fordblks, keepcost) ${where}`);
}

/** --touch: the program writes every byte it asks for (docs/resident.md); `what` says what the command does with it. */
export function touchOption(what: string): Option {
  return new Option('--touch', `the program writes every byte it asks for as it gets the block (docs/resident.md): ${what}`);
}

/** --policy for the commands that replay through the model alone. */
export function policyOption(): Option {
  return new Option('--policy <name>', "the model's policy: glibc (sliding threshold), fixed:BYTES, heap or mmap").default('glibc');
}

/** What --glibc takes and what it defaults to, for every command that has it. */
export const GLIBC_HELP = `the glibc version the model follows (${knownVersions()}); default: the version of the build --libc names, else $${GLIBC_ENV}, else that of the build $${LIBC_ENV} names, else this machine's`;

/** --glibc: the version the model follows. */
export function glibcOption(): Option {
  return new Option('--glibc <version>', GLIBC_HELP);
}

/**
 * The rules a command's model follows: --glibc; else the version of the glibc build the oracle runs under
 * (--libc, or MALLOCSCOPE_LIBC unless MALLOCSCOPE_GLIBC is set), so that model and oracle are the same glibc;
 * else MALLOCSCOPE_GLIBC or this machine's. A build or machine version the model does not know gives the
 * newest known one below it, with a one-line warning on stderr.
 */
export function glibcFor(options: { glibc?: string; libc?: string }): GlibcRules {
  if (options.glibc !== undefined) return rulesFor(options.glibc);
  const chosen = pairedGlibc(options) ?? defaultGlibc();
  if (chosen.warning) process.stderr.write(`mallocscope: warning: ${chosen.warning}\n`);
  return chosen.rules;
}

/** --from/--to: a range of events, 0-based as seq in JSON Lines, both ends included. */
export function fromOption(): Option {
  return new Option('--from <n>', 'first event (0-based, as seq in replay --jsonl); earlier events are replayed silently');
}
export function toOption(): Option {
  return new Option('--to <m>', 'last event (included); the replay stops there');
}

/** The range --from/--to ask for; a usage error when it is empty. */
export function parseRange(options: { from?: string; to?: string }): { from: number; to: number } {
  const from = options.from === undefined ? 0 : parseCountOption('--from', options.from);
  const to = options.to === undefined ? Infinity : parseCountOption('--to', options.to);
  if (from > to) throw new UsageError(`--from ${from} is after --to ${to}`);
  return { from, to };
}

/** --json: the command's figures as one JSON document. */
export function jsonOption(what: string): Option {
  return new Option('--json', `${what} as JSON, for scripts`);
}

/** -o for the commands that write a file; `-` is standard output. */
export function outputOption(what: string, fallback?: string): Option {
  return new Option('-o, --output <file>', `write ${what} to this file, or - for standard output${fallback ? ` (default: ${fallback})` : ''}`);
}

/** --preamble: import mtrace, import-mtrace and record (`prefix` says which format it is for). */
export function preambleOption(prefix = ''): Option {
  return new Option('--preamble', `${prefix}begin with the allocations glibc makes before the log starts, so that a replay reproduces the heap offsets`);
}

/** --keep-env and --tunables: the environment of the real glibc's process. */
export function keepEnvOption(): Option {
  return new Option('--keep-env', "keep MALLOC_*, GLIBC_TUNABLES and LD_PRELOAD in the real glibc's environment (removed by default)");
}
export function tunablesOption(): Option {
  return new Option('--tunables <string>', "GLIBC_TUNABLES for the real glibc's process, e.g. glibc.malloc.tcache_count=0");
}

/** --tunables for the commands that run the model: read as that glibc's loader reads GLIBC_TUNABLES. */
export function modelTunablesOption(also = ''): Option {
  return new Option(
    '--tunables <string>',
    `GLIBC_TUNABLES for the model${also}, read as that glibc reads it (glibc.malloc.* only), e.g. glibc.malloc.mmap_threshold=262144:glibc.malloc.tcache_count=0`,
  );
}

/**
 * Checks a --tunables value against glibc `rules` before any replay: what the model cannot follow is a
 * TUNABLES_UNSUPPORTED error (exit 2); what glibc reads and ignores is said once on stderr, as a warning.
 */
export function checkTunables(text: string | undefined, rules: GlibcRules): void {
  if (text === undefined) return;
  for (const ignored of tunablesIgnored(text, rules)) process.stderr.write(`mallocscope: warning: GLIBC_TUNABLES: ${ignored}\n`);
}

/** --color/--no-color: see colour.ts for the rules when neither is given. */
export function colourOptions(): Option[] {
  return [
    new Option(
      '--color',
      'colour even through a pipe (default: on a terminal unless NO_COLOR, FORCE_COLOR=0 or TERM=dumb; FORCE_COLOR=1 colours through a pipe too)',
    ),
    new Option('--no-color', 'no colour'),
  ];
}
