// Each glibc version the model knows against a real build of that version (test/support/glibc-builds.ts:
// this machine's own, a folder of .glibc/ (scripts/build-glibc.sh makes one), or of $MALLOCSCOPE_GLIBC_BUILDS), event for event:
// the examples, the real programs' traces, a short seeded trace of each base shape and a few edge traces. A
// version with no build here is a skipped test that says how to get one.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { differential } from '../dist/check/differential.js';
import { generateEdgeTrace } from '../dist/trace/edges.js';
import { SHAPES, generateTrace } from '../dist/trace/generate.js';
import { TraceWriter, formatCall } from '../dist/trace/writer.js';
import { machineGlibcVersion } from '../dist/replay/glibc.js';
import { BUILDS_ENV, type GlibcBuild, glibcBuilds, knownVersions, missingBuild } from './support/glibc-builds.ts';
import { unless } from './support/skip.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-versions-'));
const builds = glibcBuilds();

/** Events per random trace: short, since every version runs them all. */
const EVENTS = 300;
/** The families without their few/many variations (src/trace/generate.ts). */
const baseShapes = SHAPES.filter((shape) => !/-(few|many)$/.test(shape.name));
/** Edge seeds that once found a rule the model missed (test/differential.test.ts), and two more. */
const edgeSeeds = [14, 52, 629, 1771, 4001, 4002];
const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.trace'));
const realDir = join(root, 'test/fixtures/real');
const realTraces = readdirSync(realDir).filter((f) => f.endsWith('.trace'));

/** Asserts that the model of the build's version and the build agree on every event of `path`. */
function agrees(build: GlibcBuild, path: string, label: string): void {
  // The machine's own glibc is named by its version: MALLOCSCOPE_LIBC may point the oracle elsewhere.
  const options = build.libc === '' ? { glibc: build.version, libc: '' } : { libc: build.libc };
  const result = differential(path, { stats: true, ...options });
  if (result.difference) {
    const d = result.difference;
    assert.unreachable(
      `glibc ${build.version} (${build.where}), ${label}: event ${d.seq} (line ${d.line}) differs\n  oracle: ${d.oracle}\n  model:  ${d.model}\n  trace: ${path}`,
    );
  }
  assert.ok(result.events > 0, `${label}: no events`);
  assert.is(result.agreed, result.events);
}

/** A trace file of `lines`. */
function traceFile(name: string, lines: Iterable<string>): string {
  const path = join(dir, name);
  const writer = new TraceWriter({ path });
  for (const line of lines) writer.line(line);
  writer.close();
  return path;
}

test('the version tests cover at least the five versions besides this machine', () => {
  assert.ok(knownVersions.length >= 6, `the model knows ${knownVersions.join(', ')}`);
  assert.ok(baseShapes.length >= 20 && examples.length >= 5 && realTraces.length >= 3);
});

for (const version of knownVersions) {
  const build = builds.get(version);
  const run = unless(test, missingBuild(version, builds));
  if (!build) {
    run(`glibc ${version}: examples, real programs, random and edge traces`, () => {});
    continue;
  }
  // The glibc test/differential.test.ts replays against (this machine's, or MALLOCSCOPE_LIBC's) has the
  // examples, the real programs and these very edge traces there already: not run twice.
  const inDifferential = resolve(build.libc || '/') === resolve(process.env.MALLOCSCOPE_LIBC || '/');
  if (!inDifferential) {
    for (const name of examples) run(`glibc ${version}: example ${name}`, () => agrees(build, join(root, 'examples', name), name));
    for (const name of realTraces) run(`glibc ${version}: real program trace ${name}`, () => agrees(build, join(realDir, name), name));
  }
  for (const [index, shape] of baseShapes.entries()) {
    run(`glibc ${version}: random trace, shape ${shape.name}`, () => {
      const path = traceFile(
        `${version}-${shape.name}.trace`,
        (function* () {
          for (const call of generateTrace(shape, 8000 + index, EVENTS)) yield formatCall(call);
        })(),
      );
      agrees(build, path, shape.name);
    });
  }
  for (const seed of inDifferential ? [] : edgeSeeds) {
    run(`glibc ${version}: edges seed ${seed}`, () =>
      agrees(build, traceFile(`${version}-edges-${seed}.trace`, generateEdgeTrace(seed, 200)), `edges seed ${seed}`),
    );
  }
}

test('builds are found by the version their loader reports, in the folder $MALLOCSCOPE_GLIBC_BUILDS names', () => {
  // Stand-in loaders that only answer --version: the discovery reads nothing else.
  const parent = mkdtempSync(join(tmpdir(), 'mallocscope-builds-'));
  const loader = (folder: string, version: string) => {
    mkdirSync(join(parent, folder));
    const path = join(parent, folder, 'ld-linux-x86-64.so.2');
    writeFileSync(path, `#!/bin/sh\necho "ld.so (a test's stand-in) stable release version ${version}."\n`);
    chmodSync(path, 0o755);
  };
  // This machine's own version is always its own glibc; any other is taken from the folder first.
  const known = knownVersions.find((v) => v !== machineGlibcVersion()) ?? knownVersions[0];
  loader('any-name', known);
  loader('unknown', '2.99');
  mkdirSync(join(parent, 'empty'));
  const found = glibcBuilds(join(dir, 'no-repository'), { [BUILDS_ENV]: parent });
  assert.is(found.get(known)?.libc, join(parent, 'any-name'));
  assert.ok(![...found.values()].some((b) => b.libc === join(parent, 'unknown') || b.libc === join(parent, 'empty')));
  assert.not.ok(found.has('2.99'));
});

test.run();
