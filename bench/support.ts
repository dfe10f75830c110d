// What both benchmarks need before they measure: dist/ as fresh as src/ (the suites run the compiled
// library, as bin/mallocscope.js does), and the oracle's clean environment for every process alike.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
export { oracleEnv } from '../src/oracle/oracle.ts';

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
