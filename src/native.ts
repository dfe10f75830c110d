// Where the native build lives, and the addon loaded from it. Only src/system's native backend and a few
// facts (the machine's glibc, its page size) go through here; the allocator core never imports it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MallocscopeError } from './errors.ts';

/** The package root: one level above src/ (in the checkout) or dist/ (compiled). */
export const packageRoot = fileURLToPath(new URL('..', import.meta.url));

/** The folder cmake-js builds into. */
export const buildDir = `${packageRoot}build/Release`;

/** The path of a file the native build produced, or a clear error when the build has not run. */
export function builtFile(name: string): string {
  const path = `${buildDir}/${name}`;
  if (!existsSync(path)) {
    throw new MallocscopeError('NOT_BUILT', `${path} is missing; run \`npm install\` in ${packageRoot} to build it`, 2);
  }
  return path;
}

/** What the addon exports. */
export interface Addon {
  /** gnu_get_libc_version(): the glibc this process runs on, e.g. "2.36". */
  glibcVersion(): string;
  /** sysconf(_SC_PAGESIZE). */
  pageSize(): number;
}

let addon: Addon | undefined;

/** The addon, loaded once. */
export function loadAddon(): Addon {
  addon ??= createRequire(import.meta.url)(builtFile('mallocscope.node')) as Addon;
  return addon;
}
