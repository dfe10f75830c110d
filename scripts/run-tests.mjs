// Runs every test/**/*.test.ts file with uvu, each file in its own process so that one file's native state
// cannot leak into another, and ends with the line CI reads: "N passed, N failed, N skipped". A skipped test
// is listed with its reason, never counted as passed.
//
// Every test runs against one build: the tests import dist/ (the package as built, which bin/mallocscope.js
// runs too), so this runner first refuses a dist/ older than src/, then compiles the tests themselves to
// dist-test/ (types stripped by tsc, no checking: `npm test` type-checks before) and runs them with plain node.
// `node scripts/run-tests.mjs PATTERN` runs the files whose path matches PATTERN; `--checks` runs the type check
// and the lint beside them (npm test does), each counted as a test.
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const saveSeconds = process.argv.includes('--save-seconds');
// --checks: the type check and the lint (scripts/check.mjs) run beside the tests, each failure counted as one.
const withChecks = process.argv.includes('--checks');
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
    for (const name of JSON.parse(readFileSync(map, 'utf8')).sources) {
      const source = join(dirname(map), name);
      if (!existsSync(source)) return `${relative(root, output)} has no source (${relative(root, source)} is gone)`;
      if (statSync(source).mtimeMs > statSync(output).mtimeMs) return `${relative(root, source)} is newer than ${relative(root, output)}`;
      built.add(source);
    }
  }
  const missing = findFiles(join(root, 'src'), '.ts').find((source) => !source.endsWith('.d.ts') && !built.has(source));
  return missing ? `${relative(root, missing)} is not built` : undefined;
}

const stale = staleDist();
if (stale) refuse(`dist/ is not the build of src/: ${stale}. Build it first: npm run build:ts (npm test does) [DIST_STALE]`);

// The tests, compiled afresh: a test removed from test/ must not run from an old copy.
rmSync(join(root, 'dist-test'), { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.test.json')], {
  cwd: root,
  encoding: 'utf8',
});
if (tsc.status !== 0) refuse(`the tests do not compile:\n${tsc.stdout}${tsc.stderr}`);

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
// Longest first, so that no long file starts last while the other workers sit idle; new files count as long.
const order = files.map((_, i) => i).sort((a, b) => (lastSeconds[relative(root, files[b])] ?? 1e9) - (lastSeconds[relative(root, files[a])] ?? 1e9));

let passed = 0;
let failed = 0;
let skipped = 0;

/** Runs one compiled test file in its own process; resolves with its combined output, exit status and seconds. */
function runFile(file) {
  const started = Date.now();
  const compiled = join(root, 'dist-test', relative(join(root, 'test'), file)).replace(/\.ts$/, '.js');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--enable-source-maps', compiled], {
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
    console.log(`FAIL ${rel} (no summary, exit ${status}, ${time})\n${out}`);
    return;
  }
  const bad = total - ok + (status !== 0 && total === ok ? 1 : 0);
  passed += ok;
  failed += bad;
  skipped += skip;
  console.log(`${bad ? 'FAIL' : 'ok  '} ${rel}: ${ok} passed${bad ? `, ${bad} failed` : ''}${skip ? `, ${skip} skipped` : ''} (${time})`);
  // test/support/skip.ts prints one such line per skipped test, with its reason.
  for (const line of out.split('\n')) if (line.startsWith('SKIP ')) console.log(`     skipped: ${line.slice(5)}`);
  if (bad) console.log(out);
}

// One file more than there are cores: much of a file's time is spent waiting for its child processes (the
// oracle, Chromium, perl, cc), and a third file keeps both cores of this machine busy (57 s -> 46 s here).
// Each file's line is printed as it ends.
const started = Date.now();
// Started with the tests, not before them: the checks and the tests then share both cores from the first second.
const checks = withChecks
  ? new Promise((resolve) => {
      const child = spawn(process.execPath, [join(root, 'scripts/check.mjs')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      const chunks = [];
      child.stdout.on('data', (c) => chunks.push(c));
      child.stderr.on('data', (c) => chunks.push(c));
      child.on('close', (status) => resolve({ status, out: Buffer.concat(chunks).toString('utf8') }));
    })
  : null;
const workers = Math.max(1, Math.min(Number(process.env.MALLOCSCOPE_TEST_JOBS) || availableParallelism() + 1, files.length));
const results = new Array(files.length);
let next = 0;
await Promise.all(
  Array.from({ length: workers }, async () => {
    while (next < order.length) {
      const index = order[next++];
      results[index] = await runFile(files[index]);
      report(files[index], results[index]);
    }
  }),
);
for (let i = 0; i < files.length; i++) lastSeconds[relative(root, files[i])] = results[i].seconds;
mkdirSync(dirname(timesFile), { recursive: true });
writeFileSync(timesFile, `${JSON.stringify(lastSeconds, null, 2)}\n`);
if (saveSeconds) {
  const rounded = Object.fromEntries(files.map((f, i) => [relative(root, f), Math.round(results[i].seconds * 10) / 10]));
  writeFileSync(committedTimesFile, `${JSON.stringify(rounded, null, 2)}\n`);
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
