// What both benchmarks need before they measure: dist/ as fresh as src/ (the suites run the compiled
// library, as bin/mallocscope.js does), and the oracle's clean environment for every process alike.
import { fileURLToPath } from 'node:url';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { oracleEnv } from '../src/oracle/oracle.ts';

/** The repository root: commands run there. */
export const root = fileURLToPath(new URL('..', import.meta.url));

function newestMtime(dir: string, suffix: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path, suffix));
    else if (entry.name.endsWith(suffix)) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function oldestMtime(dir: string, suffix: string): number {
  let oldest = Infinity;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) oldest = Math.min(oldest, oldestMtime(path, suffix));
    else if (entry.name.endsWith(suffix)) oldest = Math.min(oldest, statSync(path).mtimeMs);
  }
  return oldest;
}

/** Whether every file in dist/ is at least as new as every source in src/. */
export function distIsFresh(root: string): boolean {
  const dist = join(root, 'dist');
  return existsSync(dist) && oldestMtime(dist, '.js') >= newestMtime(join(root, 'src'), '.ts');
}

/** A progress line on stderr. */
export function say(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

/** Stops the benchmark with a reason (exit 1): something it needs is missing or failed. */
export function fail(text: string): never {
  process.stderr.write(`bench: ${text}\n`);
  process.exit(1);
}

/** Runs a command in the repository with the oracle's clean environment; stops the benchmark if it fails. */
export function run(command: string, args: string[], options: { stdout?: 'ignore' | 'pipe' | 'inherit' } = {}): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'],
    env: oracleEnv(),
  });
  if (result.error) fail(`${command}: ${result.error.message}`);
  if (result.status !== 0) fail(`${relative(root, command) || command} ${args.join(' ')} failed (${result.status ?? result.signal}):\n${result.stderr}`);
  return result;
}

/** The suites run from dist/ (as bin/mallocscope.js does): rebuild it when src/ has changed since. */
export function ensureDist(): void {
  if (distIsFresh(root)) return;
  say('dist/ is older than src/: compiling it (tsc -p tsconfig.build.json)');
  run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], { stdout: 'inherit' });
}
