// Model against oracle, event for event: the one comparison loop, used by `mallocscope check` (streaming the
// oracle's lines as they come) and by differential() (the oracle's output in memory: tests, the differential
// script). It compares the contract's fields of every event, mallinfo2 included with `stats`, and says where
// the model and glibc part: a different line, glibc dying where the model goes on, or the model stopping
// where glibc does not die; both dying at the same call by the same signal is an agreement.
import { hostCommitLimit } from '../system/host.ts';
import { checkInvariants } from '../allocator/invariants.ts';
import { Replayer, type ReplayOptions, type ReplayOutcome } from '../replay/replayer.ts';
import { MallocscopeError, ModelAbortError } from '../errors.ts';
import {
  GLIBC_DEATH_SIGNALS,
  exitError,
  exitText,
  runOracleSync,
  startOracle,
  pairedGlibc,
  type OracleEnvOptions,
  type OracleExit,
  type OracleRun,
} from '../oracle/oracle.ts';
import { contractFields, extraFields, statsFields } from '../report/jsonl.ts';
import { readTrace, traceHasThreads, type TraceReader } from '../trace/reader.ts';

// The oracle's lines synchronously, for tests that compare by hand (model-policies, native-maps).
export { oracleLines } from '../oracle/oracle.ts';

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

/** One agreeing event kept for the context of a difference: the model's line with its extra fields. */
export interface Remembered {
  line: number;
  model: string;
}

/** Model and glibc agree on every event (up to a call where both die, when they do). */
export interface Agreement {
  agree: true;
  /** Events that agreed; when both die, the calls before the one they die in. */
  events: number;
  /** The call where glibc dies and the model stops, by the same signal; the model's words for it. */
  diesAt?: { seq: number; line: number; signal: NodeJS.Signals; model: string };
}

/** Where model and glibc part. */
export interface Disagreement {
  agree: false;
  /**
   * differs: both made the call and printed different lines; glibc-dies: glibc died in the call and the
   * model went on; model-stops: the model stopped at the call (glibc would die) and glibc did not, by that signal.
   */
  kind: 'differs' | 'glibc-dies' | 'model-stops';
  seq: number;
  line: number;
  /** Events that agreed before it. */
  agreedBefore: number;
  /** The model's line (contract fields, mallinfo2 with stats); null when the model stopped. */
  model: string | null;
  /** The model's extra fields of this call (`,"via":…`), "" when none. */
  modelStep: string;
  /** The oracle's line for the call; null when it printed none. */
  oracle: string | null;
  /** How the oracle ended, when it printed no line for the call. */
  glibcEnd: OracleExit | null;
  /** Why the model stopped (model-stops). */
  modelStopped: string | null;
  /** Up to `context` agreeing events before it, oldest first. */
  before: Remembered[];
}

export type Verdict = Agreement | Disagreement;

export interface CompareOptions {
  /** The trace's name in errors. */
  name: string;
  /** Compare mallinfo2 after every call too (the oracle must have been run with --stats). */
  stats?: boolean;
  brkLimit?: number;
  /** How many agreeing events to keep for the context of a difference (0 by default). */
  context?: number;
  /**
   * Walk the model's heap invariants after every Nth event and after the last one (0: never). The walk costs
   * a pass over the whole heap, so long traces sample it; the Replayer's own option checks every event.
   */
  invariantsEvery?: number;
  /** The walk itself, after the event given: the model's checkInvariants by default (a test may count the calls). */
  checkHeap?: (replayer: Replayer, event: { seq: number; line: number; op: string }) => void;
}

/** What the comparison asks of the oracle between steps: its next line, or how it ended. */
const LINE = 0;
const EXIT = 1;
type Ask = typeof LINE | typeof EXIT;
type Answer = string | null | OracleExit;

/**
 * The comparison as a coroutine, so that one loop serves a synchronous and a streaming oracle: it yields LINE
 * for the oracle's next line (answered with it, or null after the last) and EXIT for how the oracle ended.
 */
function* compareSteps(reader: TraceReader, replayer: Replayer, options: CompareOptions): Generator<Ask, Verdict, Answer> {
  const context = options.context ?? 0;
  const every = options.invariantsEvery ?? 0;
  const before: Remembered[] = [];
  let agreed = 0;
  let last: { seq: number; line: number; op: string } | null = null;
  const part = (fields: Omit<Disagreement, 'agree' | 'agreedBefore' | 'before'>): Disagreement => ({ agree: false, agreedBefore: agreed, before, ...fields });

  for (;;) {
    let outcome: ReplayOutcome | null;
    try {
      outcome = replayer.applyNext(reader);
    } catch (error) {
      if (!(error instanceof ModelAbortError)) throw error;
      // The model says the real process dies in this call: so must glibc, by the same signal.
      const call = { seq: error.seq, line: reader.lineNumber, model: null, modelStep: '', modelStopped: error.message };
      const oracle = (yield LINE) as string | null;
      if (oracle !== null) return part({ kind: 'model-stops', ...call, oracle, glibcEnd: null });
      const end = (yield EXIT) as OracleExit;
      if (end.signal === error.signal)
        return { agree: true, events: agreed, diesAt: { seq: call.seq, line: call.line, signal: end.signal, model: error.message } };
      return part({ kind: 'model-stops', ...call, oracle: null, glibcEnd: end });
    }
    if (outcome === null) break;
    last = { seq: outcome.seq, line: outcome.line, op: outcome.op };
    if (every > 0 && (agreed + 1) % every === 0) invariants(replayer, last, options.checkHeap);
    let model = contractFields(outcome);
    if (options.stats) model += statsFields(replayer.mallinfo2());
    model += '}';
    const oracle = (yield LINE) as string | null;
    if (oracle === null) {
      const end = (yield EXIT) as OracleExit;
      // glibc itself died in this call, where the model went on: a difference, not a broken oracle.
      if (end.signal && GLIBC_DEATH_SIGNALS.has(end.signal)) {
        return part({
          kind: 'glibc-dies',
          seq: outcome.seq,
          line: outcome.line,
          model,
          modelStep: extraFields(outcome),
          oracle: null,
          glibcEnd: end,
          modelStopped: null,
        });
      }
      throw exitError(end, options.name) ?? new MallocscopeError('ORACLE_FAILED', `the oracle stopped before event ${outcome.seq} (${exitText(end)})`);
    }
    if (!sameEvent(model, oracle, options.brkLimit)) {
      return part({
        kind: 'differs',
        seq: outcome.seq,
        line: outcome.line,
        model,
        modelStep: extraFields(outcome),
        oracle,
        glibcEnd: null,
        modelStopped: null,
      });
    }
    if (context > 0) {
      before.push({ line: outcome.line, model: `${model.slice(0, -1)}${extraFields(outcome)}}` });
      if (before.length > context) before.shift();
    }
    agreed++;
  }
  if (every > 0 && last !== null && agreed % every !== 0) invariants(replayer, last, options.checkHeap);
  if ((yield LINE) !== null) throw new MallocscopeError('ORACLE_FAILED', 'the oracle printed more events than the trace has');
  const error = exitError((yield EXIT) as OracleExit, options.name);
  if (error) throw error;
  return { agree: true, events: agreed };
}

/** The heap's invariants after an event, broken ones raised as the Replayer raises them. */
function invariants(replayer: Replayer, event: { seq: number; line: number; op: string }, checkHeap: CompareOptions['checkHeap']): void {
  try {
    if (checkHeap) checkHeap(replayer, event);
    else checkInvariants(replayer.model.main);
  } catch (error) {
    throw new MallocscopeError('MODEL_INVARIANT', `event ${event.seq} (line ${event.line}, ${event.op}): ${(error as Error).message}`);
  }
}

/** Compares the model (`replayer` reading `reader`) with an oracle run that has already ended. */
export function compareWithLines(
  reader: TraceReader,
  replayer: Replayer,
  oracle: { lines: readonly string[]; exit: OracleExit },
  options: CompareOptions,
): Verdict {
  const steps = compareSteps(reader, replayer, options);
  let next = 0;
  let step = steps.next();
  while (!step.done) step = steps.next(step.value === LINE ? (next < oracle.lines.length ? oracle.lines[next++] : null) : oracle.exit);
  return step.value;
}

/** The oracle's `"rss"` key, last on a line of --rss. */
const RSS_KEY = /,"rss":\d+}$/;

export interface CheckTraceOptions extends Omit<CompareOptions, 'name'>, Pick<OracleEnvOptions, 'libc' | 'tunables'> {
  /** The trace's name in messages; the path by default. */
  name?: string;
  /** The glibc version the model follows; by default the oracle's (pairedGlibc). */
  glibc?: ReplayOptions['glibc'];
  /** Each line the oracle prints, as it is read (tune folds glibc's own footprint from them). */
  onOracleLine?: (line: string) => void;
  /** The oracle writes every byte it gets and prints its resident bytes (tune's rss; the comparison ignores rss). */
  touch?: boolean;
  rss?: boolean;
}

/**
 * Compares the model with the oracle on the trace file at `path`, streaming: the oracle's lines are read as it
 * prints them and it is stopped at the first difference. The replayer is returned for a look at its heap.
 */
export async function checkTrace(path: string, options: CheckTraceOptions = {}): Promise<{ verdict: Verdict; replayer: Replayer }> {
  const name = options.name ?? path;
  // The model's reader opens the trace first: a trace that cannot be read is reported once, by the reader.
  const reader = readTrace(path, { name });
  let run: OracleRun | undefined;
  try {
    const replayer = new Replayer({
      glibc: options.glibc ?? pairedGlibc(options)?.rules,
      system: { brkLimit: options.brkLimit, commitLimit: hostCommitLimit() },
      threads: traceHasThreads(path),
      tunables: options.tunables,
    });
    run = startOracle(path, {
      stats: options.stats,
      brkLimit: options.brkLimit,
      name,
      libc: options.libc,
      tunables: options.tunables,
      touch: options.touch,
      rss: options.rss,
    });
    const steps = compareSteps(reader, replayer, { ...options, name });
    let step = steps.next();
    while (!step.done) {
      if (step.value === LINE) {
        const line = await run.lines.next();
        if (!line.done) options.onOracleLine?.(line.value);
        // --rss puts the process's resident bytes last on each line: no figure of the model's, not compared.
        step = steps.next(line.done ? null : options.rss ? line.value.replace(RSS_KEY, '}') : line.value);
      } else {
        step = steps.next(await run.exited);
      }
    }
    return { verdict: step.value, replayer };
  } finally {
    run?.stop();
    reader.close();
  }
}

// ---- the one-call form -----------------------------------------------------------------------------------

/** The first event where model and oracle disagree. */
export interface Difference {
  kind: Disagreement['kind'];
  seq: number;
  line: number;
  /** The model's line, or what it did instead ("stops: …"). */
  model: string;
  /** The oracle's line, or what it did instead ("(no line: glibc killed by SIGSEGV)"). */
  oracle: string;
}

export interface DifferentialResult {
  /** The calls compared: the whole trace, or the oracle's lines when they differ. */
  events: number;
  /** Events that agreed before the first difference (all of them when there is none, the dying call included). */
  agreed: number;
  difference: Difference | null;
  /** When glibc dies in a call and the model stops there by the same signal: that call. */
  diesAt?: Agreement['diesAt'];
}

export interface DifferentialOptions extends Omit<ReplayOptions, 'checkInvariants'>, Pick<OracleEnvOptions, 'libc'> {
  stats?: boolean;
  brkLimit?: number;
  /** The heap's invariants: true after every event, N after every Nth event and the last one. */
  checkInvariants?: boolean | number;
  /**
   * A run of this very trace by the oracle (runOracleSync with the same stats, brkLimit, libc and tunables),
   * to hold a second backend against the same run without running glibc again.
   */
  oracle?: ReturnType<typeof runOracleSync>;
}

/**
 * The model's kernel for a comparison with this machine's glibc: a kernel object as given; simulated-kernel
 * options (or none) with this machine's commit limit unless they set one.
 */
function hostKernel(system: DifferentialOptions['system'], brkLimit: number | undefined): NonNullable<DifferentialOptions['system']> {
  if (system && 'sbrk' in system) return system;
  return { brkLimit, commitLimit: hostCommitLimit(), ...system };
}

/** Compares model and oracle on the trace at `path`, the oracle's output held in memory. */
export function differential(path: string, options: DifferentialOptions = {}): DifferentialResult {
  const { stats, brkLimit, checkInvariants: invariantsOption, libc, oracle: given, ...replay } = options;
  // The same GLIBC_TUNABLES for both: the model reads them as that glibc's loader does.
  const oracle = given ?? runOracleSync(path, { stats, brkLimit, libc, tunables: replay.tunables });
  const replayer = new Replayer({
    threads: traceHasThreads(path),
    ...replay,
    glibc: replay.glibc ?? pairedGlibc({ libc })?.rules,
    system: hostKernel(replay.system, brkLimit),
    checkInvariants: invariantsOption === true,
  });
  const invariantsEvery = typeof invariantsOption === 'number' ? invariantsOption : 0;
  const reader = readTrace(path);
  let verdict: Verdict;
  try {
    verdict = compareWithLines(reader, replayer, oracle, { name: path, stats, brkLimit, invariantsEvery });
  } finally {
    reader.close();
  }
  if (verdict.agree) {
    const events = verdict.events + (verdict.diesAt ? 1 : 0);
    return { events, agreed: events, difference: null, ...(verdict.diesAt ? { diesAt: verdict.diesAt } : {}) };
  }
  const model = verdict.model ?? `(the model stops: ${verdict.modelStopped})`;
  const glibc = verdict.oracle ?? `(no line: glibc ${verdict.glibcEnd ? exitText(verdict.glibcEnd) : 'ended'})`;
  return {
    events: oracle.lines.length,
    agreed: verdict.agreedBefore,
    difference: { kind: verdict.kind, seq: verdict.seq, line: verdict.line, model, oracle: glibc },
  };
}
