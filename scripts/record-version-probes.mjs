// Records what each glibc build does with the probe traces of test/fixtures/versions/ (one per version-specific
// rule): the oracle's --stats lines under every build, into test/fixtures/versions/oracle.json, which
// test/model-versions.test.ts compares the model with. Run it when a probe or a build is added:
//   node scripts/record-version-probes.mjs BUILDS_DIR
// BUILDS_DIR holds one folder per version (ld-linux-x86-64.so.2, libc.so.6); this machine's own glibc is
// recorded too. A probe named NAME.brkN.trace runs with --brk-limit N.
import { fileURLToPath } from 'node:url';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runOracleSync, libcVersion } = await import(join(root, 'dist/oracle/oracle.js'));
const { machineGlibcVersion } = await import(join(root, 'dist/replay/glibc.js'));
const buildsDir = process.argv[2];
if (!buildsDir) {
  console.error('usage: node scripts/record-version-probes.mjs BUILDS_DIR');
  process.exit(2);
}
const probes = join(root, 'test/fixtures/versions');
const builds = [{ version: machineGlibcVersion(), dir: undefined }];
for (const name of readdirSync(buildsDir).sort()) {
  const dir = join(buildsDir, name);
  try {
    const version = libcVersion(dir);
    if (!builds.some((b) => b.version === version)) builds.push({ version, dir });
  } catch {
    // not a build
  }
}
const recorded = {};
for (const file of readdirSync(probes)
  .filter((f) => f.endsWith('.trace'))
  .sort()) {
  const brk = /\.brk(\d+)\.trace$/.exec(file);
  recorded[file] = {};
  for (const { version, dir } of builds.sort((a, b) => a.version.localeCompare(b.version, 'en', { numeric: true }))) {
    const { lines, exit } = runOracleSync(join(probes, file), { stats: true, libc: dir ?? '', brkLimit: brk ? Number(brk[1]) : undefined });
    if (exit.status !== 0) throw new Error(`${file} under ${version}: exit ${exit.status} ${exit.signal ?? ''} ${exit.stderr}`);
    recorded[file][version] = lines;
  }
}
writeFileSync(join(probes, 'oracle.json'), `${JSON.stringify(recorded, null, 1)}\n`);
console.log(`${Object.keys(recorded).length} probes under glibc ${builds.map((b) => b.version).join(', ')}`);
