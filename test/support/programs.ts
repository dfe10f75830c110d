// For tests: the C programs that CMakeLists.txt builds for them into build/Release/test-programs (sources in
// test/fixtures/programs; the oracle's non-PIE build from native/oracle). A missing or outdated one is a broken
// build, which fails the test that needs it: never a skip.
import { existsSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const sources = join(root, 'test/fixtures/programs');

/** The path of the test program NAME as built; throws, naming the command that builds it, when it is not. */
export function testProgram(name: string): string {
  const path = join(root, 'build/Release/test-programs', name);
  const rebuild = 'run `npm install` (or `npx cmake-js compile`) to build it';
  if (!existsSync(path)) throw new Error(`${relative(root, path)} is missing: the native build is incomplete; ${rebuild}`);
  const source = join(sources, `${name}.c`);
  if (existsSync(source) && statSync(source).mtimeMs > statSync(path).mtimeMs) {
    throw new Error(`${relative(root, path)} is older than ${relative(root, source)}; ${rebuild}`);
  }
  return path;
}
