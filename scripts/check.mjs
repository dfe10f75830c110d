// The checks npm test runs before the tests, side by side (each takes about two seconds, one mostly on one
// core): the type check of src, test, bench and scripts (tsc, against the built dist/), and Biome's lint and
// format check. Prints what fails and exits non-zero when either does.
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules/.bin', name);

/** Runs a command, its output collected; resolves with its name, status and output. */
function run(name, command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    child.stdout.on('data', (c) => chunks.push(c));
    child.stderr.on('data', (c) => chunks.push(c));
    child.on('error', (error) => resolve({ name, status: 1, out: `${error.message}\n` }));
    child.on('close', (status) => resolve({ name, status, out: Buffer.concat(chunks).toString('utf8') }));
  });
}

const results = await Promise.all([
  // tsc under V8's --single-threaded, as the tests run (scripts/run-tests.mjs says why), and with one checker
  // thread of its own: beside the tests, its parallel checkers only cost more CPU (2.3 -> 1.9 s here).
  run('typecheck (tsc -p tsconfig.json --noEmit)', process.execPath, [
    '--single-threaded',
    join(root, 'node_modules/typescript/bin/tsc'),
    '-p',
    'tsconfig.json',
    '--noEmit',
    '--singleThreaded',
  ]),
  run('lint (biome check --error-on-warnings)', bin('biome'), ['check', '--error-on-warnings']),
]);
let failed = false;
for (const { name, status, out } of results) {
  if (status === 0) console.log(`ok   ${name}`);
  else {
    failed = true;
    console.log(`FAIL ${name}\n${out}`);
  }
}
process.exit(failed ? 1 : 0);
