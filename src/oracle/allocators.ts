// Real allocators side by side (compare --allocator, docs/allocators.md): glibc's malloc, and jemalloc, tcmalloc
// and mimalloc preloaded into the oracle in --foreign mode, each replaying the trace in a process of its own and
// writing every byte it allocates; where their libraries are, and one measured run of each.
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { MallocscopeError, UsageError } from '../errors.ts';
import { exitError, oracleDisplayName, runOracleSync, type OracleEnvOptions, type OracleExit } from './oracle.ts';
import { countStraceLog, findStrace } from './strace.ts';

/** The allocators `--allocator` names: the shared library that replaces malloc, and the Debian package that installs it. */
export const ALLOCATORS = {
  glibc: { library: null, package: 'libc6' },
  jemalloc: { library: 'libjemalloc.so.2', package: 'libjemalloc2' },
  tcmalloc: { library: 'libtcmalloc_minimal.so.4', package: 'libtcmalloc-minimal4' },
  mimalloc: { library: 'libmimalloc.so.2', package: 'libmimalloc2.0' },
} as const;

export type AllocatorName = keyof typeof ALLOCATORS;

export const ALLOCATOR_NAMES = Object.keys(ALLOCATORS) as AllocatorName[];

/** A `--allocator` value, or a UsageError naming the known ones. */
export function parseAllocatorName(text: string): AllocatorName {
  if ((ALLOCATOR_NAMES as string[]).includes(text)) return text as AllocatorName;
  throw new UsageError(`unknown allocator '${text}' (expected ${ALLOCATOR_NAMES.join(', ')})`);
}

/** Debian's name for this machine's architecture in library folders (multiarch). */
const MULTIARCH: Record<string, string> = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  ppc64: 'powerpc64le-linux-gnu',
  riscv64: 'riscv64-linux-gnu',
  s390x: 's390x-linux-gnu',
};

/** Where the libraries are looked for: the folders the dynamic loader searches by default on Debian and Fedora. */
export function libraryDirs(): string[] {
  const triplet = MULTIARCH[process.arch];
  return [...(triplet ? [`/usr/lib/${triplet}`, `/lib/${triplet}`] : []), '/usr/lib64', '/usr/lib', '/usr/local/lib'];
}

/** The library of `name` in the first of `dirs` that holds it (resolved), or null; glibc needs none (null). */
export function findAllocatorLibrary(name: AllocatorName, dirs: readonly string[] = libraryDirs()): string | null {
  const file = ALLOCATORS[name].library;
  if (file === null) return null;
  for (const dir of dirs) {
    try {
      return realpathSync(join(dir, file));
    } catch {
      // not in this folder
    }
  }
  return null;
}

/** The library to preload for `name` (undefined for glibc), or ALLOCATOR_MISSING naming the package to install. */
export function allocatorLibrary(name: AllocatorName, dirs: readonly string[] = libraryDirs()): string | undefined {
  const { library, package: debian } = ALLOCATORS[name];
  if (library === null) return undefined;
  const found = findAllocatorLibrary(name, dirs);
  if (found !== null) return found;
  throw new MallocscopeError('ALLOCATOR_MISSING', `${name} is not installed: ${library} is in none of ${dirs.join(', ')} (Debian: apt-get install ${debian})`);
}

/** The oracle's summary line under --foreign (native/oracle/foreign.c). */
interface ForeignSummary {
  events: number;
  /** The object whose malloc the calls reached: the preloaded library, or libc.so.6. */
  malloc: string | null;
  replayNs: number;
  rss?: { start: number; peak: number; peakSeq: number | null; end: number; every: number; max: number[] };
  /** The oracle's own mappings made during the replay (its ID table, thread records), left out of the count. */
  own: { mmap: number; munmap: number; mremap: number };
}

/** The memory system calls of a replay, by name, as strace saw them (docs/allocators.md). */
export interface AllocatorSyscalls {
  brk: number;
  mmap: number;
  munmap: number;
  mremap: number;
  madvise: number;
  mprotect: number;
  /** Any other memory call (mlock, msync…), by name. */
  other: Record<string, number>;
  /** Of the calls counted above, those that failed (each attempt counts under its name, as in the model). */
  failed: number;
  /** Calls on threads' stacks (pthread_create's and thread exit's), left out of the counts above. */
  threadStacks: number;
}

/** One allocator's replay of a trace. Bytes and nanoseconds; RSS as docs/allocators.md defines it. */
export interface AllocatorRun {
  allocator: AllocatorName;
  /** The Debian package that installs it. */
  package: string;
  /** The object whose malloc the replay called (the preloaded library, or glibc's libc.so.6). */
  malloc: string;
  events: number;
  /** Anonymous resident bytes before the first call (the process, the allocator's start-up). */
  startRss: number;
  /** The highest after any call, the first call after which it was reached (null: no call), and after the last. */
  peakRss: number;
  peakRssSeq: number | null;
  endRss: number;
  /** Resident bytes over the trace: bucket i is the highest after any of the calls [i × every, (i + 1) × every). */
  rssSamples: { every: number; max: number[] };
  /**
   * The replay's duration in runs of their own (no sampling, no strace), the fastest of `timingRuns`: the calls
   * and the writes of every byte.
   */
  replayNs: number;
  /** null when they could not be counted, with the reason in `syscallsNotCounted`. */
  syscalls: AllocatorSyscalls | null;
  syscallsNotCounted?: string;
}

export interface AllocatorRunOptions extends OracleEnvOptions {
  /** --brk-limit, as for any oracle run. */
  brkLimit?: number | bigint;
  /** FILE in error messages. */
  name?: string;
  /** The folders to look for the libraries in; libraryDirs() by default. */
  dirs?: readonly string[];
  /** strace's path, or null not to count system calls; found on PATH by default. */
  strace?: string | null;
  /** Runs that time the replay, the fastest counted (a shared machine's load only ever slows a run); 3 by default. */
  timingRuns?: number;
}

const MEMORY_CALLS = ['brk', 'mmap', 'munmap', 'mremap', 'madvise', 'mprotect'] as const;

/** What one sampled run of an allocator gives: its resident memory over the trace (AllocatorRun's fields). */
export type AllocatorRss = Pick<AllocatorRun, 'allocator' | 'events' | 'startRss' | 'peakRss' | 'peakRssSeq' | 'endRss' | 'rssSamples'>;

/** The oracle's options for `allocator`'s runs of `trace`, and the library it preloads. */
function foreignRun(trace: string, allocator: AllocatorName, options: AllocatorRunOptions) {
  if (trace === '-') throw new UsageError('--allocator replays the trace several times: give a file, not -');
  const preload = allocatorLibrary(allocator, options.dirs);
  const base = {
    keepEnv: options.keepEnv,
    tunables: options.tunables,
    env: options.env,
    libc: options.libc,
    brkLimit: options.brkLimit,
    name: options.name,
    foreign: true,
    preload,
  };
  return { base, preload, name: oracleDisplayName(trace, options) };
}

/** A summary's resident memory, as AllocatorRss gives it. */
function rssOf(allocator: AllocatorName, summary: ForeignSummary): AllocatorRss {
  const rss = summary.rss;
  if (rss === undefined) throw new MallocscopeError('ORACLE_FAILED', 'the oracle gave no resident memory under --foreign --rss', 1);
  return {
    allocator,
    events: summary.events,
    startRss: rss.start,
    peakRss: rss.peak,
    peakRssSeq: rss.peakSeq,
    endRss: rss.end,
    rssSamples: { every: rss.every, max: rss.max },
  };
}

/** Replays `trace` under `allocator` once, sampling resident memory after every call (what report --allocator draws). */
export function allocatorRss(trace: string, allocator: AllocatorName, options: AllocatorRunOptions = {}): AllocatorRss {
  const { base, preload, name } = foreignRun(trace, allocator, options);
  return rssOf(allocator, checkedSummary(runOracleSync(trace, { ...base, rss: true }), allocator, preload, name));
}

/**
 * Replays `trace` under `allocator`: one run that samples resident memory after every call (under strace, which
 * counts the memory system calls, when it is here), and runs that only time the replay.
 */
export function runAllocator(trace: string, allocator: AllocatorName, options: AllocatorRunOptions = {}): AllocatorRun {
  const { base, preload, name } = foreignRun(trace, allocator, options);
  const straceProgram = options.strace === undefined ? findStrace() : options.strace;
  let notCounted: string | undefined = straceProgram === null ? 'strace is not installed (Debian: apt-get install strace)' : undefined;

  let summary: ForeignSummary | undefined;
  let syscalls: AllocatorSyscalls | null = null;
  if (straceProgram !== null) {
    const dir = mkdtempSync(join(tmpdir(), 'mallocscope-strace-'));
    try {
      const log = join(dir, 'strace.log');
      const run = runOracleSync(trace, { ...base, rss: true, strace: { program: straceProgram, log } });
      const said = run.exit.stderr.split('\n').find((line) => line.startsWith('strace: '));
      if (run.exit.status !== 0 && said !== undefined) {
        notCounted = `strace could not run here (${said.slice('strace: '.length)})`;
      } else {
        // Checked first (its errors, the allocator that ran), then counted, less the oracle's own mappings.
        summary = checkedSummary(run, allocator, preload, name);
        syscalls = syscallsOf(readFileSync(log, 'utf8'), summary.own);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  summary ??= checkedSummary(runOracleSync(trace, { ...base, rss: true }), allocator, preload, name);
  let replayNs = Number.POSITIVE_INFINITY;
  for (let i = 0; i < Math.max(1, options.timingRuns ?? 3); i++) {
    replayNs = Math.min(replayNs, checkedSummary(runOracleSync(trace, base), allocator, preload, name).replayNs);
  }
  const { events, startRss, peakRss, peakRssSeq, endRss, rssSamples } = rssOf(allocator, summary);
  // The keys in compare --json's order: the allocator, then its library, then the figures.
  return {
    allocator,
    package: ALLOCATORS[allocator].package,
    malloc: summary.malloc ?? '',
    events,
    startRss,
    peakRss,
    peakRssSeq,
    endRss,
    rssSamples,
    replayNs,
    syscalls,
    ...(syscalls === null && notCounted !== undefined ? { syscallsNotCounted: notCounted } : {}),
  };
}

function summaryOf(lines: string[], name: string): ForeignSummary {
  const last = lines[lines.length - 1];
  if (last === undefined) throw new MallocscopeError('ORACLE_FAILED', `the oracle printed no summary for ${name}`, 1);
  return JSON.parse(last) as ForeignSummary;
}

/** The run's summary, after its errors, and after checking that the calls reached the allocator asked for. */
function checkedSummary(run: { lines: string[]; exit: OracleExit }, allocator: AllocatorName, preload: string | undefined, name: string): ForeignSummary {
  const error = exitError(run.exit, name);
  if (error) throw error;
  const summary = summaryOf(run.lines, name);
  const malloc = summary.malloc ?? '(unknown)';
  // ld.so ignores a preload it cannot load, with a line on stderr, and the replay runs on glibc's malloc.
  const loaded = preload === undefined ? /^libc[.-]/.test(basename(malloc)) : sameFile(malloc, preload);
  if (!loaded) {
    const said = run.exit.stderr.split('\n').find((line) => line.includes('LD_PRELOAD'));
    throw new MallocscopeError(
      'ALLOCATOR_NOT_LOADED',
      `the replay under ${allocator} called the malloc of ${malloc}, not ${preload ?? "glibc's"}${said ? ` (${said.trim()})` : ''}`,
      1,
    );
  }
  return summary;
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/** strace's count, less the oracle's own mappings (which it reports), in AllocatorSyscalls' shape. */
function syscallsOf(log: string, own: ForeignSummary['own']): AllocatorSyscalls {
  const { counts, failed, threadStacks } = countStraceLog(log);
  const take = (call: string, less = 0) => {
    const n = (counts[call] ?? 0) - less;
    delete counts[call];
    return n;
  };
  const result: AllocatorSyscalls = {
    brk: take('brk'),
    mmap: take('mmap', own.mmap),
    munmap: take('munmap', own.munmap),
    mremap: take('mremap', own.mremap),
    madvise: take('madvise'),
    mprotect: take('mprotect'),
    other: counts,
    failed,
    threadStacks,
  };
  for (const call of MEMORY_CALLS) {
    if (result[call] < 0) throw new MallocscopeError('ORACLE_FAILED', `strace saw fewer ${call} calls than the oracle made itself`, 1);
  }
  return result;
}
