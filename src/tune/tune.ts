// `mallocscope tune`'s answer from its candidates' figures: the Pareto set of the objective against system
// calls, the recommendation, shards of the search and their merge, and the verification of the recommendation
// by the real glibc (the oracle) under exactly its GLIBC_TUNABLES. docs/tune.md states every rule.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { hostCores } from '../system/cores.ts';
import { checkTrace } from '../check/differential.ts';
import { MallocscopeError, TraceError, errnoReason } from '../errors.ts';
import { oracleGlibcVersion } from '../oracle/oracle.ts';
import { tuneCandidates, type Candidate } from './candidates.ts';
import { OBJECTIVES, objectiveFigure, type Objective, type TuneFigures } from './objectives.ts';
import type { CandidateResult } from './pool.ts';

/** A candidate that the model replayed to the end, with its figures. */
export type Scored = { index: number; tunables: string } & TuneFigures;

/** The trace a search is about, by content: shards of one search must be of the same file. */
export interface TraceIdentity {
  name: string;
  bytes: number;
  sha256: string;
}

/** What a search ran under, besides the trace; shards must agree on it (the CPU count only with threads). */
export interface SearchSetup {
  glibc: string;
  cores: number;
  threads: boolean;
  /** The candidates were replayed with the resident model (objective rss): their figures hold peakResident. */
  resident?: boolean;
}

/** The SHA-256 of the trace file and its size; a TraceError (TRACE_OPEN) when it cannot be read. */
export function traceIdentity(path: string, name: string): TraceIdentity {
  const hash = createHash('sha256');
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new TraceError('TRACE_OPEN', name, 0, `cannot read: ${errnoReason(error)}`);
  }
  const buffer = Buffer.alloc(1 << 20);
  let bytes = 0;
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buffer, 0, buffer.length, null);
      } catch (error) {
        throw new TraceError('TRACE_OPEN', name, 0, `cannot read: ${errnoReason(error)}`);
      }
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
      bytes += n;
    }
  } finally {
    closeSync(fd);
  }
  return { name, bytes, sha256: hash.digest('hex') };
}

// ---- ranking -------------------------------------------------------------------------------------------

/** How many tunables a candidate sets (0 for glibc's defaults). */
const settingsCount = (tunables: string) => (tunables === '' ? 0 : tunables.split(':').length);

/**
 * The order of preference: the smaller objective, then fewer system calls, then fewer tunables to set, then
 * the earlier candidate. The first is the recommendation; glibc's defaults are a candidate too, so it is never
 * worse than them.
 */
function preferred(objective: Objective): (a: Scored, b: Scored) => number {
  return (a, b) =>
    objectiveFigure(a, objective) - objectiveFigure(b, objective) ||
    a.syscalls - b.syscalls ||
    settingsCount(a.tunables) - settingsCount(b.tunables) ||
    a.index - b.index;
}

export interface Ranking {
  baseline: Scored;
  best: Scored;
  /** The candidates no other beats on both the objective and the system calls (one for each such pair), objective rising. */
  pareto: Scored[];
  /** Candidates under which the model stopped (glibc would have died), with why. */
  failed: { index: number; tunables: string; failed: string }[];
}

export function rank(results: readonly CandidateResult[], objective: Objective): Ranking {
  const scored: Scored[] = [];
  const failed: Ranking['failed'] = [];
  for (const r of results) {
    if ('failed' in r) failed.push({ index: r.index, tunables: r.tunables, failed: r.failed });
    else scored.push({ index: r.index, tunables: r.tunables, ...r.figures });
  }
  const baseline = scored.find((s) => s.index === 0);
  if (!baseline) {
    const why = failed.find((f) => f.index === 0)?.failed ?? 'it was not evaluated';
    throw new MallocscopeError('TUNE_BASELINE', `the trace cannot be replayed under glibc's defaults: ${why}`);
  }
  const sorted = [...scored].sort(preferred(objective));
  const pareto: Scored[] = [];
  for (const s of sorted) if (pareto.length === 0 || s.syscalls < pareto[pareto.length - 1].syscalls) pareto.push(s);
  return { baseline, best: sorted[0], pareto, failed };
}

// ---- shards --------------------------------------------------------------------------------------------

/** `--shard i/n`: shard i (1 to n) of n. */
export interface Shard {
  index: number;
  count: number;
}

/** The candidates shard i/n evaluates: every n-th, starting with the i-th (candidate i - 1). */
export function shardCandidates(candidates: readonly Candidate[], shard: Shard): Candidate[] {
  return candidates.filter((c) => c.index % shard.count === shard.index - 1);
}

/** A shard's JSON document: what it evaluated and under what, so that shards can be merged and checked. */
export interface ShardDocument {
  shard: Shard;
  trace: TraceIdentity;
  setup: SearchSetup;
  /** The whole search's size, all shards together. */
  candidates: number;
  results: ShardResult[];
}

export type ShardResult = { index: number; tunables: string } & (TuneFigures | { failed: string });

export function shardDocument(shard: Shard, trace: TraceIdentity, setup: SearchSetup, candidates: number, results: readonly CandidateResult[]): ShardDocument {
  return {
    shard,
    trace,
    setup,
    candidates,
    results: results.map((r) =>
      'failed' in r ? { index: r.index, tunables: r.tunables, failed: r.failed } : { index: r.index, tunables: r.tunables, ...r.figures },
    ),
  };
}

const FIGURE_KEYS = ['peakFootprint', 'endFootprint', 'syscalls', 'events'] as const;
const SYSCALL_KEYS = ['brk', 'mmap', 'munmap', 'mremap', 'madvise', 'mprotect', 'failed'] as const;

/**
 * The results of the shards in `files`, merged into the whole search for `trace` under `setup`: every shard of
 * the same trace (by content), glibc, core count and candidate list, each candidate exactly once.
 */
export function mergeShards(files: readonly string[], trace: TraceIdentity, setup: SearchSetup): CandidateResult[] {
  const candidates = tuneCandidates(setup.threads);
  const found = new Map<number, { file: string; result: CandidateResult }>();
  const bad = (file: string, why: string) => new MallocscopeError('TUNE_SHARD', `${file}: ${why}`);
  for (const file of files) {
    let doc: ShardDocument;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8')) as ShardDocument;
    } catch (error) {
      const why = error instanceof SyntaxError ? `not JSON (${error.message})` : `cannot read: ${errnoReason(error)}`;
      throw bad(file, why);
    }
    if (
      typeof doc !== 'object' ||
      doc === null ||
      !doc.shard ||
      typeof doc.trace !== 'object' ||
      doc.trace === null ||
      typeof doc.trace.sha256 !== 'string' ||
      typeof doc.setup !== 'object' ||
      doc.setup === null ||
      !Array.isArray(doc.results)
    ) {
      throw bad(file, 'not a shard of mallocscope tune (made by `mallocscope tune TRACE --shard i/n`)');
    }
    if (doc.trace.sha256 !== trace.sha256 || doc.trace.bytes !== trace.bytes) {
      throw bad(file, `a shard of another trace (${doc.trace.name ?? 'no name'}, ${doc.trace.bytes ?? '?'} bytes), not of ${trace.name}`);
    }
    for (const key of ['glibc', 'cores'] as const) {
      // The CPU count only sets the arena limit: it matters to a trace with threads alone.
      if (key === 'cores' && !setup.threads) continue;
      if (doc.setup[key] !== setup[key]) {
        throw bad(file, `searched with --${key} ${doc.setup[key]}, this merge with ${setup[key]} (give every shard and the merge the same --${key})`);
      }
    }
    if (setup.resident && !doc.setup.resident) throw bad(file, 'searched without the resident model: make the shards with --objective rss too');
    if (doc.candidates !== candidates.length) throw bad(file, `a search of ${doc.candidates} candidates, this version searches ${candidates.length}`);
    for (const r of doc.results) {
      if (typeof r !== 'object' || r === null || !Number.isSafeInteger(r.index) || typeof r.tunables !== 'string') {
        throw bad(file, 'a result that is not a candidate of mallocscope tune (an object with index and tunables)');
      }
      const candidate = candidates[r.index];
      if (!candidate || candidate.tunables !== r.tunables) throw bad(file, `candidate ${r.index} is not this version's (${r.tunables})`);
      const before = found.get(r.index);
      if (before) throw bad(file, `candidate ${r.index} is in ${before.file} too: give each shard once`);
      let result: CandidateResult;
      if ('failed' in r) result = { index: r.index, tunables: r.tunables, failed: String(r.failed) };
      else {
        const count = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
        if (FIGURE_KEYS.some((k) => !count(r[k]))) throw bad(file, `candidate ${r.index} has no figures (counts of bytes and calls)`);
        if (typeof r.syscallCounts !== 'object' || r.syscallCounts === null || !SYSCALL_KEYS.every((k) => count(r.syscallCounts[k]))) {
          throw bad(file, `candidate ${r.index} has no system call counts`);
        }
        if (setup.resident && (!count(r.peakResident) || !count(r.firstResident))) {
          throw bad(file, `candidate ${r.index} has no resident figures`);
        }
        result = { index: r.index, tunables: r.tunables, figures: figuresOf(r) };
      }
      found.set(r.index, { file, result });
    }
  }
  const missing = candidates.filter((c) => !found.has(c.index)).map((c) => c.index);
  if (missing.length) {
    const shown = missing.slice(0, 8).join(', ') + (missing.length > 8 ? ', …' : '');
    throw new MallocscopeError('TUNE_SHARD', `the shards given hold ${found.size} of ${candidates.length} candidates: ${shown} missing (a shard left out?)`);
  }
  return candidates.map((c) => (found.get(c.index) as { result: CandidateResult }).result);
}

function figuresOf(r: TuneFigures): TuneFigures {
  const figures: TuneFigures = {
    peakFootprint: r.peakFootprint,
    endFootprint: r.endFootprint,
    syscalls: r.syscalls,
    syscallCounts: { ...r.syscallCounts },
    events: r.events,
  };
  if (typeof r.peakResident === 'number') figures.peakResident = r.peakResident;
  if (typeof r.firstResident === 'number') figures.firstResident = r.firstResident;
  return figures;
}

// ---- verification --------------------------------------------------------------------------------------

/** What the real glibc said of a candidate, under exactly its GLIBC_TUNABLES. */
export type Verification =
  | {
      /** Every event agreed, mallinfo2 included, and glibc's own objective figure equals the claimed one. */
      verified: boolean;
      agree: boolean;
      /** Events compared (all, when they agree). */
      events: number;
      /** The first difference, when there is one. */
      difference: { seq: number; line: number; glibc: string | null; model: string | null } | null;
      /**
       * glibc's own footprint figures, from its mallinfo2 after each event; for rss, peakResident is the growth
       * of the real process's resident bytes from the first event to their peak (oracle --touch --rss).
       */
      glibc: { peakFootprint: number; endFootprint: number; peakResident?: number };
      /** The figure the search claimed, and whether glibc's equals it (rss: the growths from the first event). */
      claimed: number;
      equal: boolean;
      /** rss: the model's growth from the first event to the peak, and glibc's less the model's (bytes). */
      residentGrowth?: number;
      residentGap?: number;
    }
  | { verified: false; skipped: string };

/**
 * Runs the oracle on `path` under `tunables` (no GLIBC_TUNABLES at all for glibc's defaults), compares it with
 * the model event for event with mallinfo2, and folds glibc's own peak and end footprint from its lines.
 */
export async function verify(
  path: string,
  name: string,
  candidate: Scored,
  objective: Objective,
  options: { glibc: string; libc?: string; cores?: number; threads?: boolean },
): Promise<Verification> {
  const real = oracleGlibcVersion({ libc: options.libc });
  if (real !== undefined && real !== options.glibc) {
    return { verified: false, skipped: `the model followed glibc ${options.glibc} and the oracle runs glibc ${real}` };
  }
  // The real glibc sees this machine's CPUs: with threads the arena limit follows them, so a search made for
  // another count cannot be confirmed here.
  const host = hostCores();
  if (options.threads && options.cores !== undefined && options.cores !== host) {
    return {
      verified: false,
      skipped: `the search modelled ${options.cores} CPU${options.cores === 1 ? '' : 's'} (--cores) and the real glibc here sees ${host}, which sets its arena limit`,
    };
  }
  const fold = (key: Objective['key']) => OBJECTIVES.find((o) => o.key === key)?.fold();
  const peak = fold('peakFootprint');
  const end = fold('endFootprint');
  // rss: the oracle writes every byte it gets (--touch), as the estimate assumes, and prints its RSS (--rss).
  const resident = objective.estimate ? fold('peakResident') : undefined;
  const tunables = candidate.tunables === '' ? undefined : candidate.tunables;
  const { verdict } = await checkTrace(path, {
    name,
    stats: true,
    libc: options.libc,
    glibc: options.glibc,
    tunables,
    touch: resident !== undefined,
    rss: resident !== undefined,
    onOracleLine(line) {
      const arena = /"arena":(\d+)/.exec(line);
      const hblkhd = /"hblkhd":(\d+)/.exec(line);
      const rss = /"rss":(\d+)/.exec(line);
      if (arena && hblkhd) {
        const figures = { arena: Number(arena[1]), hblkhd: Number(hblkhd[1]), rss: rss ? Number(rss[1]) : undefined };
        peak?.line(figures);
        end?.line(figures);
        resident?.line(figures);
      }
    },
  });
  const glibc: { peakFootprint: number; endFootprint: number; peakResident?: number } = { peakFootprint: peak?.value() ?? 0, endFootprint: end?.value() ?? 0 };
  const claimed = candidate[objective.key] ?? 0;
  let equal = glibc[objective.key] === claimed;
  const estimate: { residentGrowth?: number; residentGap?: number } = {};
  if (resident !== undefined) {
    glibc.peakResident = resident.value();
    const growth = (candidate.peakResident ?? 0) - (candidate.firstResident ?? 0);
    estimate.residentGrowth = growth;
    estimate.residentGap = glibc.peakResident - growth;
    equal = estimate.residentGap === 0;
  }
  // An estimate is reported beside the real figure; what must hold is that every event agreed.
  const confirmed = (agree: boolean) => agree && (objective.estimate || equal);
  if (verdict.agree)
    return { verified: confirmed(true) && !verdict.diesAt, agree: true, events: verdict.events, difference: null, glibc, claimed, equal, ...estimate };
  return {
    verified: false,
    agree: false,
    events: verdict.agreedBefore,
    difference: { seq: verdict.seq, line: verdict.line, glibc: verdict.oracle, model: verdict.model },
    glibc,
    claimed,
    equal,
    ...estimate,
  };
}
