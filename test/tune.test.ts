// `mallocscope tune` on a short trace: its recommendation, run by the real glibc under exactly its
// GLIBC_TUNABLES, has the footprint it claims and no more than glibc's defaults (both measured here from the
// oracle's own mallinfo2, apart from tune's verification); shards merged give the unsharded answer; worker
// threads and a single thread give the same; and its usage errors.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runOracleSync } from '../dist/oracle/oracle.js';
import { hostCores } from '../dist/system/cores.js';
import { SHAPES, generateTrace } from '../dist/trace/generate.js';
import { TraceWriter } from '../dist/trace/writer.js';
import { tuneCandidates } from '../dist/tune/candidates.js';
import { objectiveByName } from '../dist/tune/objectives.js';
import { mergeShards, traceIdentity, verify } from '../dist/tune/tune.js';
import { mallocscope } from './support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-tune-'));

/** A short trace whose best setting is not glibc's default (sizes around the mmap threshold, 150 calls). */
const trace = join(dir, 'around-threshold.trace');
{
  const writer = new TraceWriter({ path: trace });
  const shape = SHAPES.find((s) => s.name === 'around-threshold');
  assert.ok(shape);
  for (const call of generateTrace(shape, 3, 150)) writer.write(call);
  writer.close();
}

/** `mallocscope tune ARGS` as JSON, without its timing (which differs from run to run). */
async function tuneJson(args: string[]): Promise<Record<string, unknown>> {
  const run = await mallocscope(['tune', ...args]);
  assert.is(run.status, 0, run.stderr);
  const doc = JSON.parse(run.stdout);
  delete doc.timing;
  return doc;
}

/** glibc's own peak footprint (mallinfo2 arena + hblkhd, the most after any event) under `tunables`. */
function glibcPeak(tunables: string | undefined): number {
  const { lines, exit } = runOracleSync(trace, { stats: true, tunables });
  assert.is(exit.status, 0, exit.stderr);
  let peak = 0;
  for (const line of lines) {
    const { arena, hblkhd } = JSON.parse(line);
    peak = Math.max(peak, arena + hblkhd);
  }
  return peak;
}

let unsharded: Record<string, unknown>;

test("the recommendation, run by glibc under its GLIBC_TUNABLES, has the peak it claims and no more than the defaults'", async () => {
  unsharded = await tuneJson([trace, '--json', '--workers', '2']);
  const best = unsharded.best as { peakFootprint: number; tunables: string; environment: string; verified: { verified: boolean } };
  const baseline = unsharded.baseline as { peakFootprint: number; tunables: string };
  assert.is(unsharded.candidates, tuneCandidates(false).length);
  assert.is(baseline.tunables, '');
  assert.ok(best.tunables !== '', 'this trace has a better setting than the defaults');
  assert.is(best.environment, `GLIBC_TUNABLES=${best.tunables}`);
  assert.is(glibcPeak(best.tunables), best.peakFootprint);
  assert.is(glibcPeak(undefined), baseline.peakFootprint);
  assert.ok(best.peakFootprint < baseline.peakFootprint);
  assert.ok(best.verified.verified, 'tune verified it too');
  // The Pareto set: objective rising, system calls falling, the best first.
  const pareto = unsharded.pareto as { peakFootprint: number; syscalls: number; tunables: string }[];
  assert.is(pareto[0].tunables, best.tunables);
  for (let i = 1; i < pareto.length; i++) {
    assert.ok(pareto[i].peakFootprint >= pareto[i - 1].peakFootprint && pareto[i].syscalls < pareto[i - 1].syscalls);
  }
});

test('shards merged give the unsharded answer; one thread gives what the workers give', async () => {
  const files: string[] = [];
  for (const i of [1, 2, 3]) {
    const run = await mallocscope(['tune', trace, '--shard', `${i}/3`, '--workers', '0']);
    assert.is(run.status, 0, run.stderr);
    const file = join(dir, `shard-${i}.json`);
    writeFileSync(file, run.stdout);
    files.push(file);
    const doc = JSON.parse(run.stdout) as { results: { index: number }[] };
    assert.ok(doc.results.every((r) => r.index % 3 === i - 1));
  }
  assert.equal(await tuneJson([trace, '--json', '--merge', ...files]), unsharded);
  // Every candidate's figures are in the shards: none has a smaller peak than the recommendation (apart from
  // the ranking's own sort).
  const all = files.flatMap((f) => (JSON.parse(readFileSync(f, 'utf8')) as { results: { peakFootprint?: number }[] }).results);
  const smallest = Math.min(...all.filter((r) => r.peakFootprint !== undefined).map((r) => r.peakFootprint as number));
  assert.is((unsharded.best as { peakFootprint: number }).peakFootprint, smallest);
  const single = await tuneJson([trace, '--json', '--workers', '0', '--no-verify']);
  const { best, baseline, ...rest } = unsharded as { best: Record<string, unknown>; baseline: Record<string, unknown> };
  assert.equal(single, { ...rest, best: { ...best, verified: null }, baseline: { ...baseline, verified: null } });
  const missing = await mallocscope(['tune', trace, '--merge', files[0], files[2]]);
  assert.is(missing.status, 1);
  assert.match(missing.stderr, 'missing (a shard left out?) [TUNE_SHARD]');
});

test('--objective rss: the model replays with resident pages; the recommendation is verified event for event, and the real RSS growth is within the documented gap of the estimate', async () => {
  // One worker: the resident figures still cross from a worker thread (what --workers 2 adds, the results put
  // back in order, the first test shows), and a second worker's start and warm-up cost as much as the search.
  const doc = await tuneJson([trace, '--json', '--workers', '1', '--objective', 'rss']);
  type Side = {
    peakResident: number;
    firstResident: number;
    tunables: string;
    verified: { verified: boolean; agree: boolean; glibc: { peakResident: number }; residentGrowth: number; residentGap: number };
  };
  const best = doc.best as Side;
  const baseline = doc.baseline as Side;
  assert.is(doc.objective, 'rss');
  assert.ok(best.peakResident <= baseline.peakResident, 'never worse than the defaults');
  assert.ok(best.verified.agree && best.verified.verified, 'every event agreed under the recommendation');
  // The real process's growth from the first event to the peak, measured here apart from tune (oracle
  // --touch --rss): tune reports it as it is.
  const real = (tunables: string) => {
    const { lines, exit } = runOracleSync(trace, { stats: true, touch: true, rss: true, tunables: tunables === '' ? undefined : tunables });
    assert.is(exit.status, 0, exit.stderr);
    const rss = lines.map((line) => JSON.parse(line).rss as number);
    return Math.max(...rss) - rss[0];
  };
  assert.is(best.verified.glibc.peakResident, real(best.tunables));
  assert.is(best.verified.residentGrowth, best.peakResident - best.firstResident);
  // docs/resident.md: the estimate leaves out pages only glibc's header writes touch, a page or two on
  // traces of one thread.
  assert.ok(Math.abs(best.verified.residentGap) <= 2 * 4096, `gap ${best.verified.residentGap}`);
});

test('a shard that is not one is refused (TUNE_SHARD); with threads, a search for another CPU count is not confirmed here', async () => {
  const made = await mallocscope(['tune', trace, '--shard', '1/2', '--workers', '0']);
  assert.is(made.status, 0, made.stderr);
  const doc = JSON.parse(made.stdout);
  const identity = traceIdentity(trace, trace);
  for (const [i, edit] of [
    (d: { results: unknown[] }) => (d.results[0] = null),
    (d: { results: { peakFootprint: number }[] }) => (d.results[0].peakFootprint = -5),
    (d: { results: { syscallCounts: unknown }[] }) => (d.results[0].syscallCounts = null),
  ].entries()) {
    const copy = JSON.parse(JSON.stringify(doc));
    edit(copy);
    const shard = join(dir, `shard-${i}.json`);
    writeFileSync(shard, JSON.stringify(copy));
    assert.throws(
      () => mergeShards([shard], identity, copy.setup),
      (e: Error & { code?: string }) => e.code === 'TUNE_SHARD' && /not a candidate|has no figures|has no system call counts/.test(e.message),
      `edit ${i}`,
    );
  }
  // With threads the arena limit follows the CPU count, which the real glibc takes from this machine.
  const cores = hostCores() === 1 ? 2 : 1;
  const candidate = { index: 0, tunables: '', ...(doc.results[0] as object) } as Parameters<typeof verify>[2];
  const verdict = await verify(trace, trace, candidate, objectiveByName('peak'), { glibc: doc.setup.glibc, cores, threads: true });
  assert.is(verdict.verified, false);
  assert.match('skipped' in verdict ? verdict.skipped : '', `modelled ${cores} CPU`);
});

test('tune refuses what it cannot do, in one line', async () => {
  const cases: [string[], number, string][] = [
    [['--objective', 'fast'], 2, "unknown objective 'fast'"],
    [['--shard', '0/3'], 2, '--shard takes i/n'],
    [['--shard', '1/2', '--merge', 'x.json'], 2, 'exclude each other'],
    [['--workers', 'many'], 2, '--workers takes a count'],
  ];
  for (const [args, status, message] of cases) {
    const run = await mallocscope(['tune', trace, ...args]);
    assert.is(run.status, status, args.join(' '));
    assert.match(run.stderr, message);
    assert.is(run.stderr.trim().split('\n').length, 1);
  }
  const bad = join(dir, 'bad.trace');
  writeFileSync(bad, 'malloc a 10\nfree b\n');
  const run = await mallocscope(['tune', bad, '--workers', '1']);
  assert.is(run.status, 1);
  assert.match(run.stderr, `${bad}:2: `);
});

test.run();
