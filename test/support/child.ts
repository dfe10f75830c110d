// For tests whose subject may kill the process (a write to a protected page, mlockall at exit): a script run by
// a child node, importing the same build as the tests (dist/), as plain JavaScript, so no loader starts with it.
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** The imports every child script starts with: Allocator and NativeSystem from dist/, readFileSync. */
const PREAMBLE = `import { readFileSync } from 'node:fs';
import { Allocator } from '${root}dist/replay/allocator.js';
import { NativeSystem } from '${root}dist/system/native.js';
`;

export interface ChildOptions {
  /** Words that prefix the command (prlimit, setpriv). */
  wrap?: string[];
  /** Options for node itself (--expose-gc). */
  node?: string[];
  /** The child's environment; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** JavaScript put after the imports and before `body` (helpers the file's children share). */
  prelude?: string;
}

/**
 * Writes `body` (JavaScript, an ES module) to `dir`/`name`.mjs after the imports and runs it in a child node,
 * in the repository's folder, with no core file for the crashes some children are meant to have.
 */
export function runChild(dir: string, name: string, body: string, options: ChildOptions = {}): SpawnSyncReturns<string> {
  return spawnSync('/bin/sh', ['-c', childCommand(dir, name, body, options)], {
    cwd: root,
    env: options.env ?? process.env,
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
}

/** The same, started at once and awaited later: the child runs while the tests before it run. */
export function startChild(
  dir: string,
  name: string,
  body: string,
  options: ChildOptions = {},
): Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = spawn('/bin/sh', ['-c', childCommand(dir, name, body, options)], {
    cwd: root,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

function childCommand(dir: string, name: string, body: string, options: ChildOptions): string {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(path, `${PREAMBLE}${options.prelude ?? ''}\n${body}\n`);
  const command = [...(options.wrap ?? []), process.execPath, ...(options.node ?? []), path].map((word) => `'${word}'`).join(' ');
  return `ulimit -c 0; exec ${command}`;
}
