// The oracle runner: the one place that starts native/oracle (this machine's real glibc, or a glibc build
// named by --libc / MALLOCSCOPE_LIBC), with a clean environment, and turns its JSON Lines (docs/trace-format.md),
// its exit status, signal and stderr into events and into the project's coded errors.
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, fstatSync, openSync, readdirSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { MallocscopeError, TraceError, UsageError, errnoReason } from '../errors.ts';
import { builtFile, loadAddon, type Addon } from '../native.ts';
import { STRACE_ARGS } from './strace.ts';
import { GLIBC_ENV, machineGlibc, machineGlibcVersion, rulesForMachine, type ChosenGlibc } from '../replay/glibc.ts';

/** The executable built from native/oracle by CMake, next to the addon. */
export const ORACLE_BINARY = 'mallocscope-oracle';

/** The environment variable that names a glibc build for every oracle run (as --libc does for one command). */
export const LIBC_ENV = 'MALLOCSCOPE_LIBC';

/** One line of the oracle's output: one call of the trace. Keys in the order the oracle prints them. */
export interface OracleEvent {
  seq: number;
  op: 'malloc' | 'calloc' | 'realloc' | 'memalign' | 'free' | 'mallopt' | 'trim' | 'spawn' | 'exit';
  /** The trace ID; "" for mallopt, trim, spawn and exit. */
  id: string;
  /** In a trace with threads (and only there): the thread that made the call, 1 the main thread. */
  thread?: number;
  /** Only when the call returned a block. */
  where?: 'heap' | 'mmap';
  /** glibc's chunksize of the returned block (header included). */
  chunk?: number;
  /** Heap blocks of a trace with threads: the block's arena, 0 the main arena, then in glibc's creation order. */
  arenaIndex?: number;
  /** Heap blocks in a thread arena: the heap of that arena, 0 its first, in creation order. */
  heapIndex?: number;
  /**
   * Heap blocks only: user pointer minus the program break before the first call; in a thread arena, minus
   * the start of the block's heap (its heap_info).
   */
  offset?: number;
  /** With `stats`: mallinfo2 after the call. */
  arena?: number;
  hblks?: number;
  hblkhd?: number;
  uordblks?: number;
  fordblks?: number;
  keepcost?: number;
  /**
   * With `rss`: the process's anonymous resident bytes after the call, less the oracle's own buffers
   * (docs/resident.md). It includes the process's stack and static data: compare differences between events.
   */
  rss?: number;
}

export interface OracleEnvOptions {
  /**
   * Keep MALLOC_*, GLIBC_TUNABLES, LD_PRELOAD (they change what glibc does), MIMALLOC_* and TCMALLOC_* (what
   * the allocators of `compare --allocator` do) from the environment.
   */
  keepEnv?: boolean;
  /** GLIBC_TUNABLES for the replay, set on purpose (e.g. "glibc.malloc.tcache_count=0"). */
  tunables?: string;
  /** The environment to start from; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /**
   * A folder holding a glibc build (its dynamic loader ld-linux-*.so.* and libc.so.6): the oracle runs under
   * that glibc instead of this machine's. By default MALLOCSCOPE_LIBC of `env`; "" for the machine's own.
   */
  libc?: string;
}

export interface OracleOptions extends OracleEnvOptions {
  /** Print mallinfo2 after each call. */
  stats?: boolean;
  /** Write every requested byte of each block as the program gets it (a realloc's whole new size): docs/resident.md. */
  touch?: boolean;
  /** Print `rss` after each call: resident bytes of glibc's memory, as OracleEvent.rss says. */
  rss?: boolean;
  /**
   * `--foreign`: replay under whatever malloc the process has (see `preload`), writing every byte, without a
   * look at glibc's structures, and print one summary line (ForeignSummary in allocators.ts) instead of a line per call.
   */
  foreign?: boolean;
  /** A shared library that replaces malloc (LD_PRELOAD), for `foreign` runs. */
  preload?: string;
  /** Run the oracle under strace (this program: strace.ts's findStrace), which writes its log to `log`. */
  strace?: { program: string; log: string };
  /**
   * The program break cannot grow more than this many bytes above its start (rounded down to whole pages),
   * as in the model's simulated kernel: past it sbrk fails and glibc falls back to mmap.
   */
  brkLimit?: number | bigint;
  /** FILE in error messages; the trace path (`<stdin>` for `-`) by default. */
  name?: string;
  /** The trace's text when `trace` is `-`; without it the oracle reads this process's standard input. */
  input?: string | Uint8Array;
  /** Write the real heap's images after chosen events (docs/image.md; images.ts's oracleImages). */
  images?: OracleImages;
}

/** The oracle's heap images: `--image-at`, `--image-dir`, `--image-base`, `--image-arena`. */
export interface OracleImages {
  /** The events: "SEQ[,SEQ...]", "every:N", "end", or several of them comma-separated. */
  at: string;
  /** The folder the images go to (made when missing): heap-SEQ.img and heap-SEQ.img.json. */
  dir: string;
  /** The address the image's heap starts at (a multiple of 4096); 0x555555559000 by default. */
  base?: bigint;
  /** The notional address of main_arena (a multiple of 16); 0x7ffff7fa7c60 by default. */
  arena?: bigint;
}

/**
 * The oracle's environment: `env` without the variables that change glibc malloc's behaviour (every
 * MALLOC_* alias, GLIBC_TUNABLES, and LD_PRELOAD, which could replace malloc altogether) unless `keepEnv`,
 * then GLIBC_TUNABLES set to `tunables` when given.
 */
export function oracleEnv(options: OracleEnvOptions = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env) };
  if (!options.keepEnv) {
    for (const name of Object.keys(env)) {
      if (/^(MALLOC_|MIMALLOC_|TCMALLOC_)/.test(name) || name === 'GLIBC_TUNABLES' || name === 'LD_PRELOAD') delete env[name];
    }
  }
  if (options.tunables !== undefined) env.GLIBC_TUNABLES = options.tunables;
  return env;
}

/** The glibc build the oracle runs under: `libc`, else MALLOCSCOPE_LIBC; undefined for the machine's own. */
export function oracleLibc(options: OracleEnvOptions = {}): string | undefined {
  const dir = options.libc ?? (options.env ?? process.env)[LIBC_ENV];
  return dir ? dir : undefined;
}

/**
 * The dynamic loader of the glibc build in `dir`, which runs a program under that build
 * (`LOADER --library-path DIR PROGRAM ARGS`); a coded error (exit 2) when `dir` holds none.
 */
export function libcLoader(dir: string): string {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    throw new MallocscopeError('LIBC_NOT_FOUND', `the glibc folder ${dir} cannot be read: ${errnoReason(error)}`, 2);
  }
  const loader = names.filter((name) => /^ld-linux[\w.-]*\.so\.\d+$/.test(name)).sort()[0];
  if (loader === undefined) {
    throw new MallocscopeError(
      'LIBC_NOT_FOUND',
      `${dir} holds no glibc build: no dynamic loader ld-linux-*.so.* in it (the folder is named by --libc or ${LIBC_ENV})`,
      2,
    );
  }
  return join(resolve(dir), loader);
}

const buildVersions = new Map<string, string>();

/**
 * The version of the glibc build in `dir`, as its loader prints it (`ld.so --version`: "… release version
 * 2.39."); asked once per folder. A coded error (exit 2) when it cannot be told.
 */
export function libcVersion(dir: string): string {
  const loader = libcLoader(dir);
  let version = buildVersions.get(loader);
  if (version === undefined) {
    const run = spawnSync(loader, ['--version'], { encoding: 'utf8', env: {}, timeout: 10_000 });
    // The whole version: a development build's 2.42.9000 is not 2.42.
    const found = /version (\d+\.\d+(?:\.\d+)?)/.exec(run.stdout ?? '');
    if (!found) throw new MallocscopeError('LIBC_NOT_FOUND', `the glibc build in ${dir} did not tell its version (${loader} --version)`, 2);
    version = found[1];
    buildVersions.set(loader, version);
  }
  return version;
}

/**
 * The version a model compared with this oracle follows, so that both are the same glibc: that of the build
 * `libc` names (this machine's for ""); else none (the model's own default) when MALLOCSCOPE_GLIBC names one;
 * else that of the build MALLOCSCOPE_LIBC names; else none (this machine's). A build the model does not know
 * gives the newest known version below it, with the warning that says so.
 */
export function pairedGlibc(options: { libc?: string }): ChosenGlibc | null {
  if (options.libc === '') return machineGlibc();
  const dir = options.libc ?? (process.env[GLIBC_ENV] ? undefined : process.env[LIBC_ENV]);
  return dir ? rulesForMachine(libcVersion(dir), `the glibc build in ${dir}`) : null;
}

/** The version of the glibc the oracle runs under with these options, as that glibc reports it. */
export function oracleGlibcVersion(options: { libc?: string }): string | undefined {
  const dir = oracleLibc(options);
  return dir ? libcVersion(dir) : machineGlibcVersion();
}

/** The name errors give a trace: `<stdin>` for `-`. */
export function oracleDisplayName(trace: string, options: { name?: string } = {}): string {
  return options.name ?? (trace === '-' ? '<stdin>' : trace);
}

/** The oracle's command line (after the executable). */
export function oracleArgs(trace: string, options: OracleOptions = {}): string[] {
  const args: string[] = [];
  if (options.stats) args.push('--stats');
  if (options.touch) args.push('--touch');
  if (options.rss) args.push('--rss');
  if (options.foreign) args.push('--foreign');
  if (options.name !== undefined) args.push('--name', options.name);
  if (options.brkLimit !== undefined) {
    const limit = BigInt(options.brkLimit);
    if (limit < 0n || limit > 0xffffffffffffffffn) throw new UsageError(`--brk-limit must be 0 to 2^64-1 bytes, not ${limit}`);
    args.push('--brk-limit', limit.toString());
  }
  const images = options.images;
  if (images !== undefined) {
    if (!/^(\d+|0x[0-9a-fA-F]+|every:\d+|end)(,(\d+|0x[0-9a-fA-F]+|every:\d+|end))*$/.test(images.at)) {
      throw new UsageError(`--image-at takes SEQ, every:N or end, comma-separated, not '${images.at}'`);
    }
    args.push('--image-at', images.at, '--image-dir', images.dir);
    if (images.base !== undefined) args.push('--image-base', `0x${images.base.toString(16)}`);
    if (images.arena !== undefined) args.push('--image-arena', `0x${images.arena.toString(16)}`);
  }
  // `--` so that a trace named like an option stays a path.
  args.push('--', trace);
  return args;
}

/** What to execute: the oracle itself, or the glibc build's loader with the oracle as its program. */
export interface OracleCommand {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** The command that replays `trace`: executable, arguments and environment, all decided here. */
export function oracleCommand(trace: string, options: OracleOptions = {}): OracleCommand {
  const args = oracleArgs(trace, options);
  const binary = builtFile(ORACLE_BINARY);
  const env = oracleEnv(options);
  const libc = oracleLibc(options);
  const command = libc === undefined ? { file: binary, args } : { file: libcLoader(libc), args: ['--library-path', resolve(libc), binary, ...args] };
  if (options.strace !== undefined) {
    // The preload goes to the oracle alone (-E), not to strace itself.
    const preload = options.preload === undefined ? [] : ['-E', `LD_PRELOAD=${options.preload}`];
    return { file: options.strace.program, args: [...STRACE_ARGS, '-o', options.strace.log, ...preload, command.file, ...command.args], env };
  }
  if (options.preload !== undefined) env.LD_PRELOAD = options.preload;
  return { ...command, env };
}

/**
 * Checks from here that the trace can be opened and is not a directory, so that the common mistakes give
 * the documented TRACE_OPEN error without starting the oracle.
 */
export function checkTraceReadable(trace: string, name = oracleDisplayName(trace)): void {
  if (trace === '-') return;
  let fd: number | undefined;
  try {
    fd = openSync(trace, 'r');
    if (fstatSync(fd).isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
  } catch (error) {
    throw new TraceError('TRACE_OPEN', name, 0, `cannot read: ${errnoReason(error)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Starts the oracle on `trace`; the caller decides where its output goes. */
export function spawnOracle(trace: string, options: OracleOptions, stdio: StdioOptions): ChildProcess {
  const command = oracleCommand(trace, options);
  checkTraceReadable(trace, oracleDisplayName(trace, options));
  return spawn(command.file, command.args, { env: command.env, stdio });
}

// ---- how the oracle ended, as an error -------------------------------------------------------------------

/** How an oracle process ended, with what it wrote on stderr (its first 64 KiB). */
export interface OracleExit {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** The signals by which glibc itself ends a process (malloc_printerr's abort, a fault in its arithmetic). */
export const GLIBC_DEATH_SIGNALS: ReadonlySet<string> = new Set(['SIGABRT', 'SIGSEGV', 'SIGBUS']);

/** An oracle killed by a signal (glibc aborting, say): ORACLE_SIGNAL, with the signal's name kept. */
export class OracleSignalError extends MallocscopeError {
  constructor(
    readonly signal: NodeJS.Signals,
    message: string,
  ) {
    super('ORACLE_SIGNAL', message, 1);
    this.name = 'OracleSignalError';
  }
}

/** The error to raise for an oracle that died of a signal, with glibc's own last words. */
export function signalError(signal: NodeJS.Signals, stderr = ''): OracleSignalError {
  const number = osConstants.signals[signal];
  const said = stderr.trim().split('\n').filter(Boolean).pop();
  const glibc = said ? `; it said: ${said}` : '';
  return new OracleSignalError(signal, `the oracle (real glibc) was killed by signal ${signal}${number ? ` (${number})` : ''}${glibc}`);
}

/**
 * Turns the oracle's stderr and exit status into the error it stands for: a TraceError for a bad trace
 * (same code, file, line and message), a UsageError for its usage errors, else a MallocscopeError with the
 * oracle's code (exit 2 when the oracle said the command line was at fault, 1 otherwise: a failed oracle is
 * reported as bad input is, as `check` documents).
 */
export function oracleFailure(status: number, stderr: string, name: string): MallocscopeError {
  const line = stderr.split('\n').find((l) => l.startsWith('mallocscope: ')) ?? stderr.trim();
  const coded = /^mallocscope: (.*) \[([A-Z_]+)\]$/.exec(line);
  if (coded) {
    const [, body, code] = coded;
    const prefix = `${name}:`;
    if (code.startsWith('TRACE_') && body.startsWith(prefix)) {
      const rest = body.slice(prefix.length);
      const numbered = /^(\d+): (.*)$/s.exec(rest);
      if (numbered) return new TraceError(code, name, Number(numbered[1]), numbered[2]);
      if (rest.startsWith(' ')) return new TraceError(code, name, 0, rest.slice(1));
    }
    if (code === 'USAGE') return new UsageError(body.replace(/^oracle: /, ''));
    return new MallocscopeError(code, body, status === 2 ? 2 : 1);
  }
  return new MallocscopeError('ORACLE_FAILED', `the oracle exited with status ${status}${line ? `: ${line}` : ''}`, 1);
}

/** The error an ended oracle stands for, or null when it succeeded (status 0). */
export function exitError(exit: OracleExit, name: string): MallocscopeError | null {
  if (exit.signal) return signalError(exit.signal, exit.stderr);
  if (exit.status === 0) return null;
  if (exit.status === null) return new MallocscopeError('ORACLE_FAILED', 'the oracle ended without an exit status', 1);
  return oracleFailure(exit.status, exit.stderr, name);
}

/** A few words on how the oracle ended, for messages: "exit 1", "killed by SIGSEGV". */
export function exitText(exit: OracleExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit ${exit.status}`;
}

/** At most this much of the oracle's stderr is kept: its errors are one line, glibc's are a few. */
const STDERR_KEPT = 1 << 16;

// ---- running it ------------------------------------------------------------------------------------------

/** A running oracle: its lines as they come, and how it ended. */
export interface OracleRun {
  /** The JSON Lines as printed (text, so that every number stays exact). Ends when the oracle closes stdout. */
  lines: AsyncIterator<string>;
  /** Resolves once the process has ended; never rejects (a failure to start is an exit with a message). */
  exited: Promise<OracleExit>;
  /** Stops the oracle (SIGTERM) if it still runs: for a caller that has read enough. */
  stop(): void;
}

/**
 * How an oracle from spawnOracle ends; `stderr` gives what was kept of its stderr. Never rejects: a failure to
 * start is an exit with status 127 and an ORACLE_START line.
 */
export function oracleExited(child: ChildProcess, stderr: () => string = () => ''): Promise<OracleExit> {
  return new Promise((resolve) => {
    child.on('error', (error) => resolve({ status: 127, signal: null, stderr: `mallocscope: cannot start the oracle: ${errnoReason(error)} [ORACLE_START]` }));
    child.on('close', (status, signal) => resolve({ status, signal, stderr: stderr() }));
  });
}

/** Starts the oracle on `trace` with its stdout and stderr piped here; the trace is read only by the oracle. */
export function startOracle(trace: string, options: OracleOptions = {}): OracleRun {
  const fromInput = trace === '-' && options.input !== undefined;
  const child = spawnOracle(trace, options, [trace === '-' ? (fromInput ? 'pipe' : 'inherit') : 'ignore', 'pipe', 'pipe']);
  if (fromInput && child.stdin) {
    child.stdin.on('error', () => {}); // the oracle may stop reading early (a bad line): not our error
    child.stdin.end(options.input);
  }
  let stderr = '';
  const { stdout, stderr: errors } = child;
  // Both are pipes by the stdio asked for above; Node's types cannot know that.
  if (!stdout || !errors) throw new MallocscopeError('ORACLE_START', 'the oracle started without its output pipes');
  errors.setEncoding('utf8');
  errors.on('data', (text: string) => {
    if (stderr.length < STDERR_KEPT) stderr += text;
  });
  const exited = oracleExited(child, () => stderr);
  const lines = createInterface({ input: stdout, crlfDelay: Infinity })[Symbol.asyncIterator]();
  return {
    lines,
    exited,
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

/**
 * Runs the oracle to its end and returns its lines and how it ended, raising nothing for a failed run:
 * the synchronous form, for traces whose output fits in memory (tests, the differential script).
 */
export function runOracleSync(trace: string, options: OracleOptions = {}): { lines: string[]; exit: OracleExit } {
  const command = oracleCommand(trace, options);
  checkTraceReadable(trace, oracleDisplayName(trace, options));
  const spawner = trace === '-' ? undefined : addonSpawner();
  const run = spawner
    ? spawnWithoutFork(command.file, command.args, command.env, spawner)
    : spawnSync(command.file, command.args, {
        env: command.env,
        input: trace === '-' ? options.input : undefined,
        stdio: [trace === '-' ? (options.input !== undefined ? 'pipe' : 'inherit') : 'ignore', 'pipe', 'pipe'],
        encoding: 'utf8',
        maxBuffer: 1 << 30,
      });
  if (run.error) {
    const stderr = `mallocscope: cannot run the oracle: ${errnoReason(run.error)} [ORACLE_START]`;
    return { lines: [], exit: { status: 127, signal: null, stderr } };
  }
  const lines = run.stdout.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return { lines, exit: { status: run.status, signal: run.signal, stderr: run.stderr.slice(0, STDERR_KEPT) } };
}

/** The addon's runSync, or null when the addon is not built (a stand-in build folder): Node's spawnSync then. */
let spawner: Addon['runSync'] | null | undefined;
function addonSpawner(): Addon['runSync'] | null {
  if (spawner === undefined) {
    try {
      spawner = loadAddon().runSync;
    } catch {
      spawner = null;
    }
  }
  return spawner;
}

/** Signal names by number, for a run the addon reports. */
const SIGNAL_NAMES = new Map(Object.entries(osConstants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

/**
 * `file` with `args` and the environment `env`, standard input /dev/null, run to its end through the addon's
 * posix_spawn, in spawnSync's shape (runOracleSync's runs, and the tests' runs of the oracle and of loaders).
 * Node's spawnSync forks: it copies the page tables of all of Node and leaves its memory copy-on-write, a cost
 * that grows with Node's heap and that the tests pay for each of their hundreds of oracle runs.
 */
export function spawnWithoutFork(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  runSync: Addon['runSync'] = loadAddon().runSync,
): { error?: Error; status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const envp: string[] = [];
  for (const [name, value] of Object.entries(env)) if (value !== undefined) envp.push(`${name}=${value}`);
  const run = runSync(file, [file, ...args], envp);
  if ('error' in run) return { error: run.error, status: null, signal: null, stdout: '', stderr: '' };
  return { status: run.status, signal: run.signal === null ? null : (SIGNAL_NAMES.get(run.signal) ?? null), stdout: run.stdout, stderr: run.stderr };
}

/** The oracle's JSON Lines for `trace`, synchronously; a failed run raises its error (as runOracle does). */
export function oracleLines(trace: string, options: OracleOptions = {}): string[] {
  const { lines, exit } = runOracleSync(trace, options);
  const error = exitError(exit, oracleDisplayName(trace, options));
  if (error) throw error;
  return lines;
}

/**
 * Replays `trace` (a path, or `-` with `options.input`) through the real glibc and returns its events.
 * A bad trace raises the TraceError the oracle reported; the events before the bad line are lost then,
 * use streamOracle to see them.
 */
export async function runOracle(trace: string, options: OracleOptions = {}): Promise<OracleEvent[]> {
  const events: OracleEvent[] = [];
  for await (const event of streamOracle(trace, options)) events.push(event);
  return events;
}

/**
 * The oracle's events one at a time, as it prints them: a trace of millions of calls never sits in memory.
 * Ending the loop early stops the oracle. How the oracle ended is raised after its last event.
 */
export async function* streamOracle(trace: string, options: OracleOptions = {}): AsyncGenerator<OracleEvent> {
  const run = startOracle(trace, options);
  let finished = false;
  try {
    for (let next = await run.lines.next(); !next.done; next = await run.lines.next()) {
      if (next.value) yield JSON.parse(next.value) as OracleEvent;
    }
    finished = true;
  } finally {
    if (!finished) run.stop();
  }
  const error = exitError(await run.exited, oracleDisplayName(trace, options));
  if (error) throw error;
}
