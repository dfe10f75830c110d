// Each rule by which a glibc version differs from another, against the real builds: every probe trace of
// test/fixtures/versions/ (named VERSION-RULE, VERSION the one that brought or lost the rule) was run by the
// oracle under every build (scripts/record-version-probes.mjs; oracle.json holds their lines). The model of
// each version must give that build's lines, mallinfo2 included, event for event; and the probe must show its
// rule: the build of its version and the build of the version next to it part ways on it (a probe named
// VERSION-control-… shows what a rule leaves alone: there they agree).
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { compareWithLines } from '../dist/check/differential.js';
import { Replayer } from '../dist/replay/replayer.js';
import { knownVersions } from './support/glibc-builds.ts';
import { hostCommitLimit } from '../dist/system/host.js';
import { readTrace } from '../dist/trace/reader.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const probes = join(root, 'test/fixtures/versions');
const recorded = JSON.parse(readFileSync(join(probes, 'oracle.json'), 'utf8')) as Record<string, Record<string, string[]>>;
const versions = knownVersions;

/** The model of `version` against the lines a build of it printed for `file`; the first difference, or null. */
function difference(file: string, version: string, lines: string[]): string | null {
  const brk = /\.brk(\d+)\.trace$/.exec(file);
  const brkLimit = brk ? Number(brk[1]) : undefined;
  const replayer = new Replayer({ glibc: version, system: { brkLimit, commitLimit: hostCommitLimit() } });
  const reader = readTrace(join(probes, file));
  try {
    const verdict = compareWithLines(
      reader,
      replayer,
      { lines, exit: { status: 0, signal: null, stderr: '' } },
      { name: file, stats: true, brkLimit, invariantsEvery: 1 },
    );
    return verdict.agree ? null : `event ${verdict.seq}: model ${verdict.model}\n  glibc ${verdict.oracle}`;
  } finally {
    reader.close();
  }
}

test('every probe was recorded under every version the model knows', () => {
  const files = readdirSync(probes).filter((f) => f.endsWith('.trace'));
  assert.ok(files.length >= 20, `${files.length} probes`);
  for (const file of files) assert.equal(Object.keys(recorded[file] ?? {}), versions, file);
});

for (const [file, byVersion] of Object.entries(recorded)) {
  const [, ruleVersion, rule] = /^(\d+\.\d+)-([^.]+)/.exec(file) ?? [];
  test(`glibc ${ruleVersion}: ${rule.replaceAll('-', ' ')} (${file}), the model of each version against its build`, () => {
    // The probe shows its rule: its version's build and the one before (after, for the oldest) differ; a
    // control shows what the rule leaves alone, so there they agree.
    const at = versions.indexOf(ruleVersion);
    const neighbour = versions[at > 0 ? at - 1 : at + 1];
    if (rule.startsWith('control-'))
      assert.equal(byVersion[ruleVersion], byVersion[neighbour], `${file}: a control, yet ${ruleVersion} and ${neighbour} differ`);
    else assert.not.equal(byVersion[ruleVersion], byVersion[neighbour], `${file}: ${ruleVersion} and ${neighbour} print the same lines`);
    for (const version of versions) {
      const found = difference(file, version, byVersion[version]);
      assert.is(found, null, `${file} under ${version}: ${found}`);
    }
  });
}

test.run();
