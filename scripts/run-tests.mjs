// Runs every test/**/*.test.ts file with uvu (through tsx), each file in its own process so that one
// file's native state cannot leak into another, and ends with the line CI reads:
// "N passed, N failed, N skipped". A skipped test is listed with its reason, never counted as passed.
import { spawnSync } from 'node:child_process';
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
for (const file of files) {
  const rel = relative(root, file);
  const started = Date.now();
  const run = spawnSync(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
    maxBuffer: 256 * 1024 * 1024,
  });
  const out = run.stdout + run.stderr;
  // uvu's summary: "  Total:     12", "  Passed:    11", "  Skipped:   0" (Total counts the tests that ran)
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const skip = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    // The file crashed before uvu could summarise: count it as one failure and show why.
    failed += 1;
    console.log(`FAIL ${rel} (no summary, exit ${run.status}, ${seconds}s)\n${out}`);
    continue;
  }
  const bad = total - ok + (run.status !== 0 && total === ok ? 1 : 0);
  passed += ok;
  failed += bad;
  skipped += skip;
  console.log(`${bad ? 'FAIL' : 'ok  '} ${rel}: ${ok} passed${bad ? `, ${bad} failed` : ''}${skip ? `, ${skip} skipped` : ''} (${seconds}s)`);
  // test/support/skip.ts prints one such line per skipped test, with its reason.
  for (const line of out.split('\n')) if (line.startsWith('SKIP ')) console.log(`     skipped: ${line.slice(5)}`);
  if (bad) console.log(out);
}
if (passed + failed === 0) {
  console.log('no test ran');
  console.log("0 passed, 1 failed, 0 skipped");
  process.exit(1);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
