// Model against oracle on one trace: replays it through the real glibc (the oracle, a child process) and
// through the model, and compares the contract's fields of every event, mallinfo2 included with `stats`.
import { spawnSync } from 'node:child_process';
import { totalmem } from 'node:os';
import { Replayer, type ReplayOptions } from '../allocator/replay.ts';
import { MallocscopeError } from '../errors.ts';
import { builtFile } from '../native.ts';
import { oracleEnv } from '../oracle/oracle.ts';
import { contractFields, statsFields } from '../report/jsonl.ts';
import { readTrace } from '../trace/reader.ts';

/** The first event where model and oracle disagree. */
export interface Difference {
  seq: number;
  line: number;
  model: string;
  oracle: string;
}

export interface DifferentialResult {
  events: number;
  /** Events that agreed before the first difference (all of them when there is none). */
  agreed: number;
  difference: Difference | null;
}

/**
 * How far from the heap start a block of the brk heap can lie when no brk limit is set: the model lets the
 * break grow 16 TiB; the real break runs into the mappings 0x7f... long before (heaps start near 0x55...).
 */
const BRK_REACH = 2 ** 44;

/**
 * Whether a model line and an oracle line say the same. They must be equal, except that the offsets of blocks
 * outside the brk heap (in glibc's mmap fallback heap, after sbrk failed: past a brk limit, or for a growth
 * that wraps to a negative increment) depend on where the kernel put that mapping, which ASLR moves: two such
 * offsets agree whatever their values.
 */
export function sameEvent(model: string, oracle: string, brkLimit?: number): boolean {
  if (model === oracle) return true;
  const reach = brkLimit ?? BRK_REACH;
  const outside = (line: string) =>
    line.replace(/"offset":(-?\d+)/, (whole, offset: string) => (Number(offset) < 0 || Number(offset) >= reach ? '"offset":"fallback"' : whole));
  return outside(model) === outside(oracle);
}

/** Runs the oracle on `path` and returns its JSON lines (raising its trace error as ours). */
export function oracleLines(path: string, options: { stats?: boolean; brkLimit?: number } = {}): string[] {
  const args = [...(options.stats ? ['--stats'] : []), ...(options.brkLimit !== undefined ? ['--brk-limit', String(options.brkLimit)] : []), '--', path];
  const run = spawnSync(builtFile('mallocscope-oracle'), args, { env: oracleEnv(), encoding: 'utf8', maxBuffer: 1 << 30 });
  if (run.status !== 0) {
    throw new MallocscopeError('ORACLE_FAILED', `the oracle failed on ${path}: ${run.stderr.trim() || `signal ${run.signal}`}`);
  }
  const lines = run.stdout.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Compares model and oracle on the trace at `path`. */
export function differential(path: string, options: ReplayOptions & { stats?: boolean; brkLimit?: number } = {}): DifferentialResult {
  const oracle = oracleLines(path, options);
  // The real glibc runs on this machine: the model's kernel refuses what this one would (its RAM, not the default).
  const replayer = new Replayer({ policy: options.policy, system: options.system ?? { brkLimit: options.brkLimit, commitLimit: totalmem() }, checkInvariants: options.checkInvariants });
  let events = 0;
  const reader = readTrace(path);
  for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
    let line = contractFields(outcome);
    if (options.stats) line += statsFields(replayer.mallinfo2());
    line += '}';
    const expected = oracle[events];
    events++;
    if (expected === undefined || !sameEvent(line, expected, options.brkLimit)) {
      return { events: oracle.length, agreed: events - 1, difference: { seq: outcome.seq, line: outcome.line, model: line, oracle: expected ?? '(no line)' } };
    }
  }
  return { events, agreed: events, difference: null };
}
