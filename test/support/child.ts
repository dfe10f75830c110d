// For tests whose subject may kill the process (a write to a protected page, mlockall at exit): a script run by
// a child node, importing the same build as the tests (dist/), as plain JavaScript, so no loader starts with it.
import { fileURLToPath } from 'node:url';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
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
  const path = join(dir, `${name}.mjs`);
  writeFileSync(path, `${PREAMBLE}${options.prelude ?? ''}\n${body}\n`);
  const command = [...(options.wrap ?? []), process.execPath, ...(options.node ?? []), path].map((word) => `'${word}'`).join(' ');
  return spawnSync('/bin/sh', ['-c', `ulimit -c 0; exec ${command}`], { cwd: root, env: options.env ?? process.env, encoding: 'utf8', maxBuffer: 1 << 24 });
}
