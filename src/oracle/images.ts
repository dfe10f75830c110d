// The oracle's heap images (docs/image.md): the same oracle run as oracle.ts starts, with --image-at and
// --image-dir, so that the real glibc's heap is written after the chosen events.
import { spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { MallocscopeError, UsageError, errnoReason } from '../errors.ts';
import { type Addon, loadAddon } from '../native.ts';
import { type OracleOptions, checkTraceReadable, exitError, oracleCommand, oracleDisplayName } from './oracle.ts';

export interface OracleImageOptions extends OracleOptions {
  /** The events: "SEQ[,SEQ...]", "every:N", "end", or several of them comma-separated. */
  at: string;
  /** The folder the images go to (made when missing): heap-SEQ.img and heap-SEQ.img.json. */
  dir: string;
  /** The address the image's heap starts at (a multiple of 4096); 0x555555559000 by default. */
  base?: bigint;
  /** The notional address of main_arena (a multiple of 16); 0x7ffff7fa7c60 by default. */
  arena?: bigint;
}

/** The oracle's image options, as its command line takes them. */
export function oracleImageArgs(options: OracleImageOptions): string[] {
  if (!/^(\d+|0x[0-9a-fA-F]+|every:\d+|end)(,(\d+|0x[0-9a-fA-F]+|every:\d+|end))*$/.test(options.at)) {
    throw new UsageError(`--image-at takes SEQ, every:N or end, comma-separated, not '${options.at}'`);
  }
  const args = ['--image-at', options.at, '--image-dir', options.dir];
  if (options.base !== undefined) args.push('--image-base', `0x${options.base.toString(16)}`);
  if (options.arena !== undefined) args.push('--image-arena', `0x${options.arena.toString(16)}`);
  return args;
}

/** Signal names by number, for a run the addon reports. */
const SIGNAL_NAMES = new Map(Object.entries(osConstants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

/**
 * Runs the oracle to its end: through the addon's posix_spawn when it is built (Node's spawnSync forks, copying
 * Node's page tables each time), else through spawnSync.
 */
function spawn(file: string, args: string[], env: NodeJS.ProcessEnv): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  let addon: Addon | null = null;
  try {
    addon = loadAddon();
  } catch {
    addon = null;
  }
  if (addon) {
    const envp = Object.entries(env).flatMap(([name, value]) => (value === undefined ? [] : [`${name}=${value}`]));
    const run = addon.runSync(file, [file, ...args], envp);
    if ('error' in run) throw new MallocscopeError('ORACLE_START', `cannot run the oracle: ${errnoReason(run.error)}`);
    return { status: run.status, signal: run.signal === null ? null : (SIGNAL_NAMES.get(run.signal) ?? null), stdout: run.stdout, stderr: run.stderr };
  }
  const run = spawnSync(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 30 });
  if (run.error) throw new MallocscopeError('ORACLE_START', `cannot run the oracle: ${errnoReason(run.error)}`);
  return { status: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr };
}

/**
 * Replays `trace` (a file) through the real glibc, writing its heap images into `options.dir`; returns the
 * oracle's JSON Lines. A failed run raises its error, as oracleLines does.
 */
export function oracleImages(trace: string, options: OracleImageOptions): string[] {
  if (trace === '-') throw new UsageError('heap images need a trace file, not standard input');
  const command = oracleCommand(trace, options);
  checkTraceReadable(trace, oracleDisplayName(trace, options));
  // The trace comes last, after `--`: the image options go before it.
  const args = [...command.args];
  args.splice(args.lastIndexOf('--'), 0, ...oracleImageArgs(options));
  const run = spawn(command.file, args, command.env);
  const error = exitError({ status: run.status, signal: run.signal, stderr: run.stderr }, oracleDisplayName(trace, options));
  if (error) throw error;
  const lines = run.stdout.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}
