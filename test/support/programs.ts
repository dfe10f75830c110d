// For tests: the C programs that CMakeLists.txt builds for them into build/Release/test-programs (sources in
// test/fixtures/programs; the oracle's non-PIE build from native/oracle). A missing or outdated one is a broken
// build, which fails the test that needs it: never a skip.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const sources = join(root, 'test/fixtures/programs');
const oracle = join(root, 'native/oracle');

/**
 * What program NAME is built from, as CMakeLists.txt's test_program lines say: its own source, and for the two
 * built from the oracle's sources those too (headers included), so that an edit there is not tested stale.
 */
function sourcesOf(name: string): string[] {
  const own = join(sources, `${name}.c`);
  if (name === 'oracle-no-pie') return readdirSync(oracle).map((file) => join(oracle, file));
  if (name === 'own-resident') return [own, join(oracle, 'sysio.c'), join(oracle, 'sysio.h')];
  return [own];
}

/** The path of the test program NAME as built; throws, naming the command that builds it, when it is not. */
export function testProgram(name: string): string {
  const path = join(root, 'build/Release/test-programs', name);
  const rebuild = 'run `npm install` (or `npx cmake-js compile`) to build it';
  if (!existsSync(path)) throw new Error(`${relative(root, path)} is missing: the native build is incomplete; ${rebuild}`);
  const built = statSync(path).mtimeMs;
  for (const source of sourcesOf(name)) {
    if (existsSync(source) && statSync(source).mtimeMs > built) {
      throw new Error(`${relative(root, path)} is older than ${relative(root, source)}; ${rebuild}`);
    }
  }
  return path;
}
