// The oracle: this machine's real glibc replaying a trace in a fresh process (native/oracle), and the
// JSON Lines it prints (docs/trace-format.md) read back as objects. The model is checked against it.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { createInterface } from 'node:readline';
import { MallocscopeError, TraceError, UsageError, errnoReason } from '../errors.ts';
import { builtFile } from '../native.ts';

/** The executable built from native/oracle by CMake, next to the addon. */
export const ORACLE_BINARY = 'mallocscope-oracle';

/** One line of the oracle's output: one call of the trace. Keys in the order the oracle prints them. */
export interface OracleEvent {
  seq: number;
  op: 'malloc' | 'calloc' | 'realloc' | 'memalign' | 'free' | 'mallopt' | 'trim';
  /** The trace ID; "" for mallopt and trim. */
  id: string;
  /** Only when the call returned a block. */
  where?: 'heap' | 'mmap';
  /** glibc's chunksize of the returned block (header included). */
  chunk?: number;
  /** Heap blocks only: user pointer minus the program break before the first call. */
  offset?: number;
  /** With `stats`: mallinfo2 after the call. */
  arena?: number;
  hblks?: number;
  hblkhd?: number;
  uordblks?: number;
  fordblks?: number;
  keepcost?: number;
}

export interface OracleEnvOptions {
  /** Keep MALLOC_*, GLIBC_TUNABLES and LD_PRELOAD from the environment (they change what glibc does). */
  keepEnv?: boolean;
  /** GLIBC_TUNABLES for the replay, set on purpose (e.g. "glibc.malloc.tcache_count=0"). */
  tunables?: string;
  /** The environment to start from; process.env by default. */
  env?: NodeJS.ProcessEnv;
}

export interface OracleOptions extends OracleEnvOptions {
  /** Print mallinfo2 after each call. */
  stats?: boolean;
  /**
   * The program break cannot grow more than this many bytes above its start (rounded down to whole pages),
   * as in the model's simulated kernel: past it sbrk fails and glibc falls back to mmap.
   */
  brkLimit?: number | bigint;
  /** FILE in error messages; the trace path (`<stdin>` for `-`) by default. */
  name?: string;
  /** The trace's text when `trace` is `-`; without it the oracle reads this process's standard input. */
  input?: string | Uint8Array;
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
      if (name.startsWith('MALLOC_') || name === 'GLIBC_TUNABLES' || name === 'LD_PRELOAD') delete env[name];
    }
  }
  if (options.tunables !== undefined) env.GLIBC_TUNABLES = options.tunables;
  return env;
}

/** The name errors give a trace: `<stdin>` for `-`. */
export function oracleDisplayName(trace: string, options: { name?: string } = {}): string {
  return options.name ?? (trace === '-' ? '<stdin>' : trace);
}

/** The oracle's command line (after the executable). */
export function oracleArgs(trace: string, options: OracleOptions = {}): string[] {
  const args: string[] = [];
  if (options.stats) args.push('--stats');
  if (options.name !== undefined) args.push('--name', options.name);
  if (options.brkLimit !== undefined) {
    const limit = BigInt(options.brkLimit);
    if (limit < 0n || limit > 0xffffffffffffffffn) throw new UsageError(`--brk-limit must be 0 to 2^64-1 bytes, not ${limit}`);
    args.push('--brk-limit', limit.toString());
  }
  // `--` so that a trace named like an option stays a path.
  args.push('--', trace);
  return args;
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
  const args = oracleArgs(trace, options);
  checkTraceReadable(trace, oracleDisplayName(trace, options));
  return spawn(builtFile(ORACLE_BINARY), args, { env: oracleEnv(options), stdio });
}

/** The error to raise for an oracle that died of a signal (glibc aborting, say), with glibc's own words. */
export function signalError(signal: NodeJS.Signals, stderr = ''): MallocscopeError {
  const number = osConstants.signals[signal];
  const said = stderr.trim().split('\n').filter(Boolean).pop();
  const glibc = said ? `; it said: ${said}` : '';
  return new MallocscopeError(
    'ORACLE_SIGNAL',
    `the oracle (real glibc) was killed by signal ${signal}${number ? ` (${number})` : ''}${glibc}`,
  );
}

/**
 * Turns the oracle's stderr and exit status into the error it stands for: a TraceError for a bad trace
 * (same code, file, line and message), a UsageError for exit status 2, a MallocscopeError otherwise.
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
    if (status === 2) return new UsageError(body.replace(/^oracle: /, ''));
    return new MallocscopeError(code, body, status === 1 ? 1 : 70);
  }
  return new MallocscopeError('ORACLE_FAILED', `the oracle exited with status ${status}${line ? `: ${line}` : ''}`, 70);
}

function feedInput(child: ChildProcess, input: string | Uint8Array | undefined): void {
  if (!child.stdin) return;
  child.stdin.on('error', () => {}); // the oracle may stop reading early (a bad line): not our error
  child.stdin.end(input ?? '');
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
 * Ending the loop early stops the oracle.
 */
export async function* streamOracle(trace: string, options: OracleOptions = {}): AsyncGenerator<OracleEvent> {
  const fromInput = trace === '-' && options.input !== undefined;
  const child = spawnOracle(trace, options, [trace === '-' ? (fromInput ? 'pipe' : 'inherit') : 'ignore', 'pipe', 'pipe']);
  if (fromInput) feedInput(child, options.input);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    if (stderr.length < 1 << 16) stderr += text;
  });
  const exited = new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal }));
  });
  exited.catch(() => {}); // awaited below; this only keeps an early `break` from leaving it unhandled
  let finished = false;
  try {
    const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
    for await (const line of lines) {
      if (line) yield JSON.parse(line) as OracleEvent;
    }
    finished = true;
  } finally {
    if (!finished && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
  const { status, signal } = await exited;
  if (signal) throw signalError(signal, stderr);
  if (status !== 0) throw oracleFailure(status ?? 70, stderr, oracleDisplayName(trace, options));
}
