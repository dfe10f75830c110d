// The layers' rules, read off the sources (docs/design.md, "Layers"): the allocator core is pure, glibc's
// constants are read only by the core and the presets, and no file names a path outside the repository.
// A change that breaks one fails here, naming the file and the line.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Every file under `dir` (relative to the repository) whose name ends with one of `endings`. */
function files(dir: string, endings: string[]): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== '.cache') found.push(...files(path, endings));
    } else if (endings.some((ending) => entry.name.endsWith(ending))) found.push(path);
  }
  return found;
}

/** The module specifiers a TypeScript file imports (static imports and re-exports), with their lines. */
function imports(file: string): { from: string; line: number }[] {
  const found: { from: string; line: number }[] = [];
  readFileSync(join(root, file), 'utf8')
    .split('\n')
    .forEach((text, index) => {
      const m = /^\s*(?:import|export)\b.*?\bfrom\s+'([^']+)'/.exec(text) ?? /^\s*import\s+'([^']+)'/.exec(text);
      if (m) found.push({ from: m[1], line: index + 1 });
    });
  return found;
}

test('the allocator core imports no Node API and no outer layer', () => {
  const broken: string[] = [];
  for (const file of files('src/allocator', ['.ts'])) {
    for (const { from, line } of imports(file)) {
      if (/^node:|^\.\.\/(trace|cli|report|oracle|check|replay|policy)\//.test(from)) broken.push(`${file}:${line}: imports ${from}`);
    }
  }
  assert.equal(broken, []);
});

test('the heap image format and its walker import no Node API and no other layer (a worker or the page can walk a heap)', () => {
  const broken: string[] = [];
  for (const file of ['src/image/format.ts', 'src/image/walk.ts']) {
    for (const { from, line } of imports(file)) {
      if (!/^\.\.\/errors\.ts$|^\.\/(format|walk)\.ts$/.test(from)) broken.push(`${file}:${line}: imports ${from}`);
    }
  }
  assert.equal(broken, []);
});

test("glibc's constants are read by the core and the presets only (report, cli, check, oracle, trace take names at most)", () => {
  const broken: string[] = [];
  for (const file of files('src', ['.ts'])) {
    if (file.startsWith('src/allocator/') || file.startsWith('src/policy/')) continue;
    for (const { from, line } of imports(file)) {
      if (!from.endsWith('allocator/constants.ts')) continue;
      // The trace format and the API take mallopt's parameter names from the core; nothing else may look in.
      const text = readFileSync(join(root, file), 'utf8').split('\n')[line - 1];
      const names =
        /\{([^}]*)\}/
          .exec(text)?.[1]
          .split(',')
          .map((name) => name.replace(/\btype\b/, '').trim()) ?? [];
      const allowed = new Set(['MALLOPT_PARAMS', 'MalloptParam', 'alignDown', 'alignUp']);
      const other = names.filter((name) => name && !allowed.has(name));
      if (other.length) broken.push(`${file}:${line}: imports ${other.join(', ')} from the core's constants`);
    }
  }
  assert.equal(broken, []);
});

test('no file names a path outside the repository', () => {
  const broken: string[] = [];
  const tracked = [
    ...['src', 'test', 'docs', 'native', 'scripts', 'bench', 'examples', '.ci'].flatMap((dir) =>
      files(dir, ['.ts', '.mjs', '.js', '.c', '.cc', '.h', '.md', '.trace', '.sh', 'run']),
    ),
    'README.md',
    'package.json',
    'CMakeLists.txt',
  ];
  // Spelled in two parts, so that this file does not name them itself.
  const outside = new RegExp(['\\.\\./shared', '/wo' + 'rk/'].join('|'));
  for (const file of tracked) {
    if (file === relative(root, join(root, 'test/layers.test.ts'))) continue;
    readFileSync(join(root, file), 'utf8')
      .split('\n')
      .forEach((text, index) => {
        if (outside.test(text)) broken.push(`${file}:${index + 1}: ${text.trim().slice(0, 100)}`);
      });
  }
  assert.equal(broken, []);
});

test.run();
