// For tests: the mallocscope command line, run as a person runs it and seen as they see it (exit status,
// standard output, standard error), from the built dist/ as every test imports it. In this process (main()
// with the standard streams collected, the working folder and environment set for the call) when it can be,
// which is about a hundred times cheaper than a process, the output of the children that share our streams
// (record's program, oracle's oracle) collected too; in a process of its own (bin/mallocscope.js) when the
// command reads standard input, or when asked.
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { main } from '../../dist/cli/main.js';
import { childStreams, standardOutput } from '../../dist/cli/output.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** The installed command: it runs dist/ too. */
export const bin = join(root, 'bin/mallocscope.js');

/** What a run of the command showed. */
export interface CliRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** The working folder; default the repository's. */
  cwd?: string;
  /** The run's whole environment instead of this process's; `env` applies over it. */
  environment?: NodeJS.ProcessEnv;
  /** Variables set (a value) or removed (undefined) for the run, over this process's environment. */
  env?: Record<string, string | undefined>;
  /** Standard input; a run with input is a process of its own. */
  input?: string;
  /** Run in a process of its own all the same (for what needs one: a pipe to `head`, signals). */
  process?: boolean;
}

let running = false;

/** Runs `mallocscope ARGS...` (in-process when it can be; see the file's comment) and returns what it showed. */
export async function mallocscope(args: string[], options: CliOptions = {}): Promise<CliRun> {
  if (options.process || options.input !== undefined) return mallocscopeProcess(args, options);
  if (running) throw new Error('mallocscope() runs one command at a time: await the one before');
  running = true;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const collect =
    (into: Buffer[]) =>
    (chunk: string | Uint8Array, ...rest: unknown[]) => {
      into.push(Buffer.from(chunk));
      const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    };
  const { stdout, stderr } = process;
  const saved = {
    out: stdout.write,
    err: stderr.write,
    outTTY: stdout.isTTY,
    errTTY: stderr.isTTY,
    standard: standardOutput.write,
    cwd: process.cwd(),
    env: { ...process.env },
  };
  // What is collected is not a terminal, as a child's pipes are not, even when the tests run on one.
  stdout.isTTY = false;
  stderr.isTTY = false;
  stdout.write = collect(out) as typeof stdout.write;
  stderr.write = collect(err) as typeof stderr.write;
  standardOutput.write = (bytes: Uint8Array) => {
    out.push(Buffer.from(bytes));
  };
  childStreams.collect = (fd, bytes) => (fd === 1 ? out : err).push(bytes);
  try {
    if (options.environment) {
      for (const name of Object.keys(process.env)) delete process.env[name];
      Object.assign(process.env, options.environment);
    }
    for (const [name, value] of Object.entries(options.env ?? {})) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    process.chdir(options.cwd ?? root);
    const status = await main(args);
    return { status, signal: null, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  } finally {
    stdout.write = saved.out;
    stderr.write = saved.err;
    stdout.isTTY = saved.outTTY;
    stderr.isTTY = saved.errTTY;
    standardOutput.write = saved.standard;
    childStreams.collect = null;
    process.chdir(saved.cwd);
    for (const name of Object.keys(process.env)) if (!(name in saved.env)) delete process.env[name];
    Object.assign(process.env, saved.env);
    running = false;
  }
}

/** Runs `mallocscope ARGS...` in a process of its own, as bin/mallocscope.js. */
export function mallocscopeProcess(args: string[], options: CliOptions = {}): CliRun {
  const env: NodeJS.ProcessEnv = { ...(options.environment ?? process.env) };
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  const run = spawnSync(process.execPath, [bin, ...args], { cwd: options.cwd ?? root, input: options.input, env, encoding: 'utf8', maxBuffer: 1 << 30 });
  return { status: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr };
}
