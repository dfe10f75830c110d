// `mallocscope tune TRACE`: searches glibc's malloc tunables for the trace (src/tune: a fixed list of
// candidates, each replayed through the model, on worker threads), keeps the Pareto set of the objective
// against system calls, recommends one GLIBC_TUNABLES line and verifies it with the real glibc under exactly
// that line. `--shard i/n` runs a part of the search and prints it as JSON; `--merge` puts the parts together.
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { exactJson } from '../report/json.ts';
import { hostCores } from '../system/cores.ts';
import { traceDisplayName, traceHasThreads } from '../trace/reader.ts';
import { tuneCandidates } from '../tune/candidates.ts';
import { objectiveByName, objectiveFigure, OBJECTIVES, type Objective } from '../tune/objectives.ts';
import { runCandidates, type CandidateResult } from '../tune/pool.ts';
import { mergeShards, rank, shardCandidates, shardDocument, traceIdentity, verify, type Scored, type Shard, type Verification } from '../tune/tune.ts';
import { CHECK_DIFFERS } from './check-command.ts';
import { libcOption } from './oracle-command.ts';
import { coresOption, glibcFor, glibcOption, jsonOption, parseCores } from './options.ts';
import { action } from './run.ts';

interface TuneOptions {
  objective: string;
  json?: boolean;
  shard?: string;
  merge?: string[];
  workers?: string;
  verify: boolean;
  glibc?: string;
  libc?: string;
  cores?: string;
}

export function registerTune(program: Command): void {
  program
    .command('tune')
    .description(
      'search glibc malloc tunables for a trace: the Pareto set of footprint against system calls, one GLIBC_TUNABLES line recommended and verified with the real glibc',
    )
    .argument('<trace>', 'trace file (not -: each candidate reads it)')
    .option(
      '--objective <name>',
      `what to minimise: ${OBJECTIVES.map((o) => `${o.name} (${o.label})`).join(', ')}; rss assumes the program writes every byte it asks for (docs/resident.md)`,
      'peak',
    )
    .addOption(jsonOption('the search (baseline, best, pareto, candidates)'))
    .option('--shard <i/n>', 'evaluate only every n-th candidate, from the i-th (1 to n), and print them as JSON for --merge')
    .option('--merge <shards...>', "the shards' JSON files (every one of a search): their answer, as an unsharded run gives it")
    .option('--workers <n>', `worker threads (default: one per core, ${availableParallelism()} here; 0: all in this thread)`)
    .option('--no-verify', 'do not run the real glibc under the recommendation')
    .addOption(glibcOption())
    .addOption(libcOption())
    .addOption(coresOption())
    .addHelpText(
      'after',
      `\nThe recommendation is the candidate with the smallest objective; ties go to fewer system calls, then fewer tunables. glibc's defaults are a candidate, so it is never worse than them. Exit status: 0; ${CHECK_DIFFERS} when the real glibc does not confirm the recommendation; 1 bad input; 2 bad usage.`,
    )
    .action(action((trace: string, options: TuneOptions) => tune(trace, options)));
}

/** --shard's value: i/n with 1 ≤ i ≤ n. */
function parseShard(text: string): Shard {
  const m = /^([1-9]\d{0,5})\/([1-9]\d{0,5})$/.exec(text);
  if (!m || Number(m[1]) > Number(m[2])) throw new UsageError(`--shard takes i/n, shard i of n (1 ≤ i ≤ n), not '${text}'`);
  return { index: Number(m[1]), count: Number(m[2]) };
}

function parseWorkers(text: string | undefined): number {
  if (text === undefined) return availableParallelism();
  if (!/^\d{1,4}$/.test(text) || Number(text) > 1024) throw new UsageError(`--workers takes a count from 0 to 1024, not '${text}'`);
  return Number(text);
}

async function tune(trace: string, options: TuneOptions): Promise<void> {
  const objective = objectiveByName(options.objective);
  if (trace === '-') throw new UsageError('tune needs a trace file, not standard input: each candidate reads it again (save it to a file first)');
  if (options.shard !== undefined && options.merge !== undefined)
    throw new UsageError('--shard (run a part) and --merge (put the parts together) exclude each other');
  const shard = options.shard === undefined ? undefined : parseShard(options.shard);
  const workers = parseWorkers(options.workers);
  const glibc = glibcFor(options).version;
  const cores = parseCores(options.cores) ?? hostCores();
  const name = traceDisplayName(trace);
  const identity = traceIdentity(trace, name);
  const setup = { glibc, cores, threads: traceHasThreads(trace), ...(objective.estimate ? { resident: true } : {}) };
  const candidates = tuneCandidates(setup.threads);

  const started = performance.now();
  let results: CandidateResult[];
  let ran = 0;
  if (options.merge !== undefined) results = mergeShards(options.merge, identity, setup);
  else {
    const chosen = shard ? shardCandidates(candidates, shard) : candidates;
    const progress = candidateProgress(chosen.length, workers);
    try {
      results = await runCandidates({ trace, ...setup }, chosen, { workers, onProgress: progress.tick });
    } finally {
      progress.done();
    }
    ran = chosen.length;
  }
  const seconds = (performance.now() - started) / 1000;
  const timing = ran ? { seconds: round(seconds), workers, candidateSeconds: round((seconds * Math.max(1, Math.min(workers, ran))) / ran) } : undefined;

  if (shard) {
    process.stdout.write(`${exactJson({ ...shardDocument(shard, identity, setup, candidates.length, results), timing }, 2)}\n`);
    return;
  }
  const ranking = rank(results, objective);
  const verifyOne = (candidate: Scored) => verify(trace, name, candidate, objective, { glibc, libc: options.libc, cores, threads: setup.threads });
  const bestVerified = options.verify ? await verifyOne(ranking.best) : undefined;
  const baselineVerified = options.verify && ranking.best.index !== 0 ? await verifyOne(ranking.baseline) : bestVerified;
  if (bestVerified && !bestVerified.verified && !('skipped' in bestVerified)) process.exitCode = CHECK_DIFFERS;

  const line = ranking.best.tunables === '' ? null : `GLIBC_TUNABLES=${ranking.best.tunables}`;
  if (options.json) {
    const doc = {
      trace: identity.name,
      glibc,
      objective: objective.name,
      candidates: candidates.length,
      baseline: { ...ranking.baseline, verified: baselineVerified ?? null },
      best: { ...ranking.best, environment: line, verified: bestVerified ?? null },
      pareto: ranking.pareto,
      failed: ranking.failed,
      timing,
    };
    process.stdout.write(`${exactJson(doc, 2)}\n`);
    return;
  }
  process.stdout.write(describe(identity.name, glibc, objective, candidates.length, ranking, line, bestVerified, baselineVerified, timing));
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/** A line on a terminal's stderr while the candidates run ("tune: 37/102 candidates on 2 workers"); nothing elsewhere. */
function candidateProgress(total: number, workers: number): { tick: (done: number) => void; done: () => void } {
  const stream = process.stderr;
  if (!stream.isTTY || process.env.TERM === 'dumb' || total === 0) return { tick: () => {}, done: () => {} };
  let drawn = false;
  const where = workers === 0 ? 'in this thread' : `on ${Math.min(workers, total)} worker${workers === 1 ? '' : 's'}`;
  return {
    tick(done) {
      stream.write(`\rtune: ${done}/${total} candidates ${where}`);
      drawn = true;
    },
    done() {
      if (drawn) stream.write('\r\x1b[K');
    },
  };
}

function describe(
  name: string,
  glibc: string,
  objective: Objective,
  candidates: number,
  ranking: ReturnType<typeof rank>,
  line: string | null,
  bestVerified: Verification | undefined,
  baselineVerified: Verification | undefined,
  timing: { seconds: number; workers: number; candidateSeconds: number } | undefined,
): string {
  const { baseline, best } = ranking;
  const out: string[] = [];
  const measure = objective.estimate ? 'the program taken to write every byte it asks for, docs/resident.md' : 'mallinfo2 arena + hblkhd';
  out.push(`${name}: ${baseline.events} events, glibc ${glibc}; objective: ${objective.label} (${measure})`);
  if (timing) {
    const where = timing.workers === 0 ? 'in one thread' : `on ${timing.workers} worker${timing.workers === 1 ? '' : 's'}`;
    out.push(`${candidates} candidates in ${timing.seconds.toFixed(1)} s ${where} (${timing.candidateSeconds.toFixed(2)} s per candidate)`);
  } else out.push(`${candidates} candidates, merged from shards`);
  if (ranking.failed.length) out.push(`${ranking.failed.length} stopped the model (glibc would die): left out`);
  out.push('');
  const change = (n: number, from: number) => (from === 0 || n === from ? '' : ` (${n < from ? '' : '+'}${(((n - from) / from) * 100).toFixed(1)}%)`);
  const rows: [string, Scored][] = [['glibc defaults', baseline]];
  if (best.index !== 0) rows.push(['recommended', best]);
  const rss = objective.estimate === true;
  const table = [
    ['', 'peak footprint', 'end footprint', ...(rss ? ['peak RSS (est.)'] : []), 'system calls'],
    ...rows.map(([label, s]) => [label, `${s.peakFootprint}`, `${s.endFootprint}`, ...(rss ? [`${s.peakResident}`] : []), `${s.syscalls}`]),
  ];
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  for (const [i, row] of table.entries()) {
    const text = row.map((cell, j) => (j === 0 ? cell.padEnd(widths[j]) : cell.padStart(widths[j]))).join('  ');
    out.push(i === 2 ? `${text}   ${objective.label}${change(objectiveFigure(best, objective), objectiveFigure(baseline, objective))}` : text.trimEnd());
  }
  out.push('');
  if (line) out.push(`recommended:  ${line}`);
  else out.push(`glibc's defaults are the best of the ${candidates} candidates: no GLIBC_TUNABLES to set`);
  out.push('');
  out.push(`Pareto set, ${objective.label} against system calls (no other candidate has less of both):`);
  for (const s of ranking.pareto) {
    const calls = `${s.syscalls} call${s.syscalls === 1 ? '' : 's'}`;
    out.push(`  ${String(s[objective.key]).padStart(widths[1])}  ${calls.padStart(12)}  ${s.tunables || "(glibc's defaults)"}`);
  }
  out.push('');
  const under = (s: Scored) => (s.tunables ? 'under exactly that GLIBC_TUNABLES' : 'without GLIBC_TUNABLES');
  out.push(verificationText(`the recommendation${line ? '' : " (glibc's defaults)"}`, bestVerified, objective, glibc, under(best)));
  if (best.index !== 0 && baselineVerified) out.push(verificationText("glibc's defaults", baselineVerified, objective, glibc, under(baseline)));
  return `${out.join('\n')}\n`;
}

function verificationText(what: string, v: Verification | undefined, objective: Objective, glibc: string, under: string): string {
  if (!v) return `${what}: not verified (--no-verify)`;
  if ('skipped' in v) return `${what}: not verified: ${v.skipped}`;
  const real = `the real glibc ${glibc}, run ${under}`;
  if (!v.agree && v.difference) {
    const d = v.difference;
    return `${what}: NOT verified: ${real}, differs from the model at event ${d.seq} (line ${d.line})\n  glibc: ${d.glibc}\n  model: ${d.model}`;
  }
  const figure =
    v.residentGrowth !== undefined
      ? `its resident bytes (oracle --touch --rss) grew ${v.glibc.peakResident} from the first event to their peak, the estimate ${v.residentGrowth} (${v.residentGap === 0 ? 'equal' : `${(v.residentGap ?? 0) > 0 ? '+' : ''}${v.residentGap} bytes: pages glibc writes and the estimate leaves out, docs/resident.md`})`
      : `its ${objective.label} ${v.glibc[objective.key]} ${v.equal ? 'equals' : 'differs from'} the model's${v.equal ? '' : ` ${v.claimed}`}`;
  return `${what}: ${v.verified ? 'verified' : 'NOT verified'}: ${real}, agrees on all ${v.events} events (mallinfo2 included); ${figure}`;
}
