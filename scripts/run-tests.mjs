// Runs every test/**/*.test.ts file with uvu (through tsx), each file in its own process so that one
// file's native state cannot leak into another, and ends with the line CI reads:
// "N passed, N failed, N skipped". A skipped test is listed with its reason, never counted as passed.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const only = process.argv[2] ? new RegExp(process.argv[2]) : null;

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'fixtures') found.push(...findTests(path));
    else if (entry.isFile() && entry.name.endsWith('.test.ts')) found.push(path);
  }
  return found.sort();
}

const files = findTests(join(root, 'test')).filter((f) => !only || only.test(relative(root, f)));
let passed = 0;
let failed = 0;
let skipped = 0;

/** Runs one test file in its own process; resolves with its combined output, exit status and seconds. */
function runFile(file) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks = [];
    child.stdout.on('data', (c) => chunks.push(c));
    child.stderr.on('data', (c) => chunks.push(c));
    child.on('close', (status, signal) => resolve({ out: Buffer.concat(chunks).toString('utf8'), status: status ?? signal, seconds: ((Date.now() - started) / 1000).toFixed(1) }));
  });
}

/** Counts one file's results and prints its line (and its output when something failed). */
function report(file, { out, status, seconds }) {
  const rel = relative(root, file);
  // uvu's summary: "  Total:     12", "  Passed:    11", "  Skipped:   0" (Total counts the tests that ran)
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const skip = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    // The file crashed before uvu could summarise: count it as one failure and show why.
    failed += 1;
    console.log(`FAIL ${rel} (no summary, exit ${status}, ${seconds}s)\n${out}`);
    return;
  }
  const bad = total - ok + (status !== 0 && total === ok ? 1 : 0);
  passed += ok;
  failed += bad;
  skipped += skip;
  console.log(`${bad ? 'FAIL' : 'ok  '} ${rel}: ${ok} passed${bad ? `, ${bad} failed` : ''}${skip ? `, ${skip} skipped` : ''} (${seconds}s)`);
  // test/support/skip.ts prints one such line per skipped test, with its reason.
  for (const line of out.split('\n')) if (line.startsWith('SKIP ')) console.log(`     skipped: ${line.slice(5)}`);
  if (bad) console.log(out);
}

// As many files at once as there are cores (most of a file's time is child processes: the oracle, the CLI);
// results are printed in file order, whatever order they finish in.
const workers = Math.max(1, Math.min(Number(process.env.MALLOCSCOPE_TEST_JOBS) || availableParallelism(), files.length));
const results = new Array(files.length);
let next = 0;
let printed = 0;
await Promise.all(
  Array.from({ length: workers }, async () => {
    while (next < files.length) {
      const index = next++;
      results[index] = await runFile(files[index]);
      while (printed < files.length && results[printed]) report(files[printed], results[printed++]);
    }
  }),
);
if (passed + failed === 0) {
  console.log('no test ran');
  console.log("0 passed, 1 failed, 0 skipped");
  process.exit(1);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
