// Runs every test/**/*.test.ts file with uvu and ends with the line CI reads: "N passed, N failed, N skipped".
// A file that holds native state, or runs long, has a process of its own, so that one file's native state
// cannot leak into another; the light files run in batches, a few to a process (scripts/test-batch.mjs), each
// still reported on its own. A skipped test is listed with its reason, never counted as passed.
//
// Every test runs against one build: the tests import dist/ (the package as built, which bin/mallocscope.js
// runs too), so this runner first refuses a dist/ older than src/ (`--build`, as npm test does: builds it
// first, and brings the native build up to date), then compiles the tests themselves to dist-test/ (types
// stripped by esbuild, no checking) and runs them with plain node. `node scripts/run-tests.mjs PATTERN` runs
// the files whose path matches PATTERN; `--checks` runs the type check and the lint beside them (npm test
// does), each counted as a test.
//
// Test processes run with V8's --single-threaded (no background compiler or GC threads): on this 2-core
// machine the suite's files already keep both cores busy, and the background threads only add work
// (61 -> 55 s of CPU for the suite, 45 -> 39 s of wall time).
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { SourceMap } from 'node:module';
import { END as BATCH_END, START as BATCH_START } from './test-batch.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const saveSeconds = process.argv.includes('--save-seconds');
// --checks: the type check and the lint (scripts/check.mjs) run beside the tests, each failure counted as one.
const withChecks = process.argv.includes('--checks');
// --build: builds dist/ first unless it is already the build of the sources (npm test).
const build = process.argv.includes('--build');
const pattern = process.argv.slice(2).find((arg) => !arg.startsWith('--'));
const only = pattern ? new RegExp(pattern) : null;
/** Each file's seconds in the last run, so that the longest start first. */
const timesFile = join(root, 'node_modules/.cache/mallocscope/test-seconds.json');
/**
 * The same, as measured on the machine the suite is tuned on: the order of a first run (a fresh clone, CI),
 * which would otherwise start in name order and could leave the longest file (report) to run last, alone.
 * `node scripts/run-tests.mjs --save-seconds` rewrites it from the run it makes.
 */
const committedTimesFile = join(root, 'test/seconds.json');

function findFiles(dir, suffix) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'fixtures') found.push(...findFiles(path, suffix));
    else if (entry.isFile() && entry.name.endsWith(suffix)) found.push(path);
  }
  return found.sort();
}

/** Ends the run with one failure and the reason (the closing line CI reads included). */
function refuse(reason) {
  console.log(reason);
  console.log('0 passed, 1 failed, 0 skipped');
  process.exit(1);
}

/**
 * Why dist/ is not the build of src/ (a source newer than its output, a source without output, an output
 * whose source is gone), or undefined when it is. The source maps name each output's sources (one for tsc's
 * outputs, several for a bundle).
 */
function staleDist() {
  const dist = join(root, 'dist');
  if (!existsSync(dist)) return 'dist/ is missing';
  const built = new Set();
  for (const map of findFiles(dist, '.js.map')) {
    const output = map.slice(0, -'.map'.length);
    const builtAt = statSync(output).mtimeMs;
    for (const name of mapSources(readFileSync(map, 'utf8'))) {
      const source = join(dirname(map), name);
      if (!existsSync(source)) return `${relative(root, output)} has no source (${relative(root, source)} is gone)`;
      if (statSync(source).mtimeMs > builtAt) return `${relative(root, source)} is newer than ${relative(root, output)}`;
      built.add(source);
    }
  }
  const missing = findFiles(join(root, 'src'), '.ts').find((source) => !source.endsWith('.d.ts') && !built.has(source));
  return missing ? `${relative(root, missing)} is not built` : undefined;
}

/**
 * A source map's "sources": the one field read, taken out of the text before it is parsed (the whole of
 * dist/'s maps took 20-30 ms to parse, at the start of every run).
 */
function mapSources(text) {
  const field = /"sources":\s*(\[[^\]]*\])/.exec(text);
  try {
    if (field) return JSON.parse(field[1]);
  } catch {
    // a name with a ']' in it: the whole map is parsed
  }
  return JSON.parse(text).sources;
}

/** The build's own inputs besides src/: a change to one of them makes every output stale. */
const BUILD_INPUTS = ['tsconfig.json', 'tsconfig.build.json', 'scripts/build-page.mjs', 'package-lock.json'];

/** staleDist(), or a build input newer than the build (dist/index.js, written by every build). */
function staleBuild() {
  const stale = staleDist();
  if (stale) return stale;
  const built = statSync(join(root, 'dist/index.js')).mtimeMs;
  const newer = BUILD_INPUTS.find((name) => existsSync(join(root, name)) && statSync(join(root, name)).mtimeMs > built);
  return newer ? `${newer} is newer than dist/` : undefined;
}

/**
 * Compiles the .ts files of test/ (fixtures apart) to dist-test/ with esbuild, each file alone: types stripped, nothing resolved or
 * checked (`npm test` type-checks with tsconfig.json beside the tests), a source map beside each file. A
 * relative import of a .ts file becomes one of its .js output, as tsc's rewriteRelativeImportExtensions does:
 * the same length, so the maps stay exact. Resolves with the errors, each naming its file and line, or
 * undefined. (tsc did this in about 1.5 s of CPU on the suite's serial start; esbuild in 0.3 s.)
 */
async function compileTests() {
  const { build, stop } = await import('esbuild');
  const result = await build({
    entryPoints: findFiles(join(root, 'test'), '.ts'),
    outbase: join(root, 'test'),
    outdir: join(root, 'dist-test'),
    bundle: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    sourcesContent: false,
    absWorkingDir: root,
    write: false,
    logLevel: 'silent',
  }).catch((failure) => failure);
  // esbuild's service process is not needed again: it ends now rather than idle beside the tests.
  await stop();
  if (result.errors.length > 0) {
    return result.errors
      .map(({ text, location }) => (location ? `${location.file}:${location.line}:${location.column + 1}: ${text}\n  ${location.lineText}` : text))
      .join('\n');
  }
  for (const file of result.outputFiles) {
    mkdirSync(dirname(file.path), { recursive: true });
    const text = file.path.endsWith('.js') ? file.text.replace(RELATIVE_TS_IMPORT, '$1.js$2') : file.text;
    writeFileSync(file.path, text);
  }
  return undefined;
}

/** A relative module specifier ending in .ts, in an import, an export or a dynamic import, as esbuild prints them. */
const RELATIVE_TS_IMPORT = /((?:\bfrom|\bimport\s*\(|^import)\s*["']\.\.?\/[^"'\n]*)\.ts(["'])/gm;

// --build (npm test): the native side first, through the build tree npm install configured: the build tool
// remakes only what a change to native/, CMakeLists.txt or a test program's source touches (a no-op costs
// about 40 ms), so that no test runs an addon, oracle or test program older than its sources.
if (build && existsSync(join(root, 'build/CMakeCache.txt'))) {
  const native = spawnSync('cmake', ['--build', join(root, 'build')], { cwd: root, encoding: 'utf8' });
  if (native.status !== 0) {
    refuse(
      `the native build failed (cmake --build build, exit ${native.status ?? native.signal ?? native.error?.message}):\n${native.stdout ?? ''}${native.stderr ?? ''}`,
    );
  }
  if (/Linking|Building/.test(native.stdout)) console.log('built: the native side was older than its sources (cmake --build build)');
}
// --build (npm test): build first when the build is not that of the sources (npm install has built it).
// Without --build, or when the build did not run, staleDist() is read once: it reads every source map of dist/.
let stale = build ? staleBuild() : staleDist();
if (build && stale) {
  console.log(`building: ${stale}`);
  const run = spawnSync('npm', ['run', '--silent', 'build:ts'], { cwd: root, stdio: 'inherit' });
  if (run.status !== 0) refuse(`npm run build:ts failed (exit ${run.status ?? run.signal})`);
  stale = staleDist();
}
if (stale) refuse(`dist/ is not the build of src/: ${stale}. Build it first: npm run build:ts (npm test does) [DIST_STALE]`);

// Started before the tests are compiled (the type check reads src/, test/ and dist/, never dist-test/): the
// checks take one core while the tests compile on the other, then share both with the tests.
const checks = withChecks
  ? new Promise((resolve) => {
      const child = spawn(process.execPath, [join(root, 'scripts/check.mjs')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      const chunks = [];
      child.stdout.on('data', (c) => chunks.push(c));
      child.stderr.on('data', (c) => chunks.push(c));
      child.on('close', (status) => resolve({ status, out: Buffer.concat(chunks).toString('utf8') }));
    })
  : null;

// The tests, compiled afresh: a test removed from test/ must not run from an old copy.
rmSync(join(root, 'dist-test'), { recursive: true, force: true });
const compileError = await compileTests();
if (compileError) refuse(`the tests do not compile:\n${compileError}`);

// MALLOCSCOPE_LIBC=DIR runs the suite as if this machine had the glibc build in DIR: the oracle runs under
// it, and every model made without a version follows that build's (MALLOCSCOPE_GLIBC, set here once).
const testEnv = { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' };
if (process.env.MALLOCSCOPE_LIBC && !process.env.MALLOCSCOPE_GLIBC) {
  const { pairedGlibc } = await import(join(root, 'dist/oracle/oracle.js'));
  try {
    const chosen = pairedGlibc({});
    testEnv.MALLOCSCOPE_GLIBC = chosen.rules.version;
    if (chosen.warning) console.log(`warning: ${chosen.warning}`);
  } catch (error) {
    refuse(`MALLOCSCOPE_LIBC=${process.env.MALLOCSCOPE_LIBC}: ${error.message}`);
  }
  console.log(`glibc ${testEnv.MALLOCSCOPE_GLIBC} from ${process.env.MALLOCSCOPE_LIBC} (MALLOCSCOPE_LIBC): the oracle and the model's default`);
}

const files = findFiles(join(root, 'test'), '.test.ts').filter((f) => !only || only.test(relative(root, f)));
function readTimes(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}
const lastSeconds = readTimes(timesFile) ?? readTimes(committedTimesFile) ?? {};
// The units the workers take: a file of its own in a process of its own when it holds native state (native-*,
// whose addon state must not meet another file's), is long enough to keep a worker busy alone (at least
// ALONE_SECONDS), or is new; the other files in batches of up to BATCH_SECONDS, one process each. Sharing a
// process saves more than a Node start: the model's hot functions are compiled and optimised once, not once per
// file (four mid-size files: 12.4 s of CPU apart, 9.5 s in one process). Batches are packed first-fit, longest
// file first. Decided by the committed seconds only, so that a commit always groups its files alike.
const BATCH_SECONDS = 12;
const ALONE_SECONDS = 10;
const committedSeconds = readTimes(committedTimesFile) ?? {};
const units = [];
const batches = [];
const byCommitted = files
  .map((_, i) => i)
  .sort((a, b) => (committedSeconds[relative(root, files[b])] ?? 1e9) - (committedSeconds[relative(root, files[a])] ?? 1e9));
for (const index of byCommitted) {
  const rel = relative(root, files[index]);
  const seconds = committedSeconds[rel];
  if (seconds === undefined || seconds >= ALONE_SECONDS || /(^|\/)native-/.test(rel)) {
    units.push([index]);
    continue;
  }
  let batch = batches.find((b) => b.seconds + seconds <= BATCH_SECONDS);
  if (!batch) {
    batch = { files: [], seconds: 0 };
    batches.push(batch);
    units.push(batch.files);
  }
  batch.files.push(index);
  batch.seconds += seconds;
}
// Longest unit first by the last run's seconds (a batch counts as the sum of its files; a new file as long), so
// that no long unit starts last while the other workers sit idle.
const unitSeconds = (unit) => unit.reduce((sum, index) => sum + (lastSeconds[relative(root, files[index])] ?? 1e9), 0);
units.sort((a, b) => unitSeconds(b) - unitSeconds(a));

let passed = 0;
let failed = 0;
let skipped = 0;

const compiledOf = (file) => join(root, 'dist-test', relative(join(root, 'test'), file)).replace(/\.ts$/, '.js');

// Stack traces name dist/ lines, which read as src/ does (tsc only strips the types), and dist-test/ lines,
// which the runner turns into test/ lines in a failing file's output (sourcePositions): Node's source maps
// cost each test process the parsing of every map it loads, about 3 s of the suite's CPU.
// MALLOCSCOPE_SOURCE_MAPS=1 maps them all back to src/ and test/ when a failure needs it.
const SOURCE_MAPS = process.env.MALLOCSCOPE_SOURCE_MAPS === '1' ? ['--enable-source-maps'] : [];

/** Runs a command of node, its output collected; resolves with the output, exit status and seconds. */
function runNode(args) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...SOURCE_MAPS, '--single-threaded', ...args], {
      cwd: root,
      env: testEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks = [];
    child.stdout.on('data', (c) => chunks.push(c));
    child.stderr.on('data', (c) => chunks.push(c));
    child.on('close', (status, signal) =>
      resolve({ out: Buffer.concat(chunks).toString('utf8'), status: status ?? signal, seconds: (Date.now() - started) / 1000 }),
    );
  });
}

/**
 * Runs a unit (one file in its own process, or a batch of light files in one, scripts/test-batch.mjs) and
 * resolves with each file's result: a batch's output is split at its marker lines. A file of a batch that
 * crashed before its end marker gets the output from its start on, and no summary.
 */
async function runUnit(unit) {
  if (unit.length === 1) return [await runNode([compiledOf(unit[0])])];
  const run = await runNode([join(root, 'scripts/test-batch.mjs'), ...unit.map(compiledOf)]);
  const results = unit.map(() => ({ out: '', status: run.status || 1, seconds: 0, started: false }));
  // Lines between a file's end and the next start (stderr arrives through its own pipe, and a file's late
  // timers may write) go to the file that started last.
  let current = 0;
  for (const line of run.out.split('\n')) {
    const [marker, index, status, seconds] = line.split(' ');
    if (marker === BATCH_START) {
      current = Number(index);
      results[current].started = true;
    } else if (marker === BATCH_END) {
      results[Number(index)].status = Number(status);
      results[Number(index)].seconds = Number(seconds);
    } else if (line.trim()) results[current].out += `${line}\n`;
  }
  for (const result of results) {
    if (!result.started) result.out += `(not run: the batch's process ended before this file, exit ${run.status})\n`;
  }
  return results;
}

/**
 * A failing file's output with each dist-test/ position (esbuild's lines are not the sources') given as the
 * test/ position it was compiled from, through the map beside it: read only for a failure.
 */
function sourcePositions(out) {
  const maps = new Map();
  return out.replace(/(?:file:\/\/)?(\/[^\s():]*\/dist-test\/[^\s():]+\.js):(\d+):(\d+)/g, (whole, file, line, column) => {
    if (!maps.has(file)) {
      try {
        maps.set(file, new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8'))));
      } catch {
        maps.set(file, null);
      }
    }
    const entry = maps.get(file)?.findEntry(Number(line) - 1, Number(column) - 1);
    if (!entry?.originalSource) return whole;
    return `${relative(root, resolve(dirname(file), entry.originalSource))}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
  });
}

/** Counts one file's results and prints its line (and its output when something failed). */
function report(file, { out, status, seconds }) {
  const rel = relative(root, file);
  const time = `${seconds.toFixed(1)}s`;
  // uvu's summary: "  Total:     12", "  Passed:    11", "  Skipped:   0" (Total counts the tests that ran)
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? Number.NaN);
  const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? Number.NaN);
  const skip = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    // The file crashed before uvu could summarise: count it as one failure and show why.
    failed += 1;
    console.log(`FAIL ${rel} (no summary, exit ${status}, ${time})\n${sourcePositions(out)}`);
    return;
  }
  const bad = total - ok + (status !== 0 && total === ok ? 1 : 0);
  passed += ok;
  failed += bad;
  skipped += skip;
  console.log(`${bad ? 'FAIL' : 'ok  '} ${rel}: ${ok} passed${bad ? `, ${bad} failed` : ''}${skip ? `, ${skip} skipped` : ''} (${time})`);
  // test/support/skip.ts prints one such line per skipped test, with its reason.
  for (const line of out.split('\n')) if (line.startsWith('SKIP ')) console.log(`     skipped: ${line.slice(5)}`);
  if (bad) console.log(sourcePositions(out));
}

// As many units at once as there are cores: with V8 single-threaded the files keep both cores of this
// machine busy, and a third one at once only made them contend (44.5-46.6 s against 43.4-43.7 s here; it
// helped before, when files waited more on their children). Each file's line is printed as it ends.
const started = Date.now();
const workers = Math.max(1, Math.min(Number(process.env.MALLOCSCOPE_TEST_JOBS) || availableParallelism(), units.length));
const results = new Array(files.length);
let next = 0;
await Promise.all(
  Array.from({ length: workers }, async () => {
    while (next < units.length) {
      const unit = units[next++];
      const unitResults = await runUnit(unit.map((index) => files[index]));
      for (const [k, index] of unit.entries()) {
        results[index] = unitResults[k];
        report(files[index], results[index]);
      }
    }
  }),
);
for (let i = 0; i < files.length; i++) lastSeconds[relative(root, files[i])] = results[i].seconds;
mkdirSync(dirname(timesFile), { recursive: true });
writeFileSync(timesFile, `${JSON.stringify(lastSeconds, null, 2)}\n`);
if (saveSeconds) {
  // The files run now replace their old seconds; with a PATTERN, the other files keep theirs (a file missing
  // from the committed seconds would run alone, as new).
  const saved = { ...(readTimes(committedTimesFile) ?? {}) };
  for (const [i, f] of files.entries()) saved[relative(root, f)] = Math.round(results[i].seconds * 10) / 10;
  const existing = Object.keys(saved)
    .filter((name) => existsSync(join(root, name)))
    .sort();
  writeFileSync(committedTimesFile, `${JSON.stringify(Object.fromEntries(existing.map((name) => [name, saved[name]])), null, 2)}\n`);
}
console.log(`${files.length} files in ${((Date.now() - started) / 1000).toFixed(1)}s with ${workers} at a time`);
const testsRan = passed + failed;
if (checks) {
  const { status, out } = await checks;
  process.stdout.write(out);
  // check.mjs prints one "ok" or "FAIL" line per check.
  const failures = (out.match(/^FAIL /gm) ?? []).length;
  failed += status === 0 ? 0 : Math.max(1, failures);
  passed += (out.match(/^ok {3}/gm) ?? []).length;
}
if (testsRan === 0) refuse('no test ran');
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
