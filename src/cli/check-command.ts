// `mallocscope check TRACE`: replays the trace through the real glibc (the oracle) and the model side by
// side, streaming, and stops at the first event where they differ, with the events before it and the
// model's heap around the address; exit 3 then (CHECK_DIFFERS), 0 when every event agrees, and as every
// command 1 for bad input, 2 for bad usage.
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { totalmem } from 'node:os';
import { createInterface } from 'node:readline';
import { Replayer } from '../allocator/replay.ts';
import { walkHeap } from '../allocator/walk.ts';
import { MallocscopeError, ModelAbortError, UsageError } from '../errors.ts';
import { builtFile } from '../native.ts';
import { oracleEnv } from '../oracle/oracle.ts';
import { sameEvent } from '../check/differential.ts';
import { contractFields, extraFields, statsFields } from '../report/jsonl.ts';
import type { TraceEvent } from '../trace/api.ts';
import { readTrace, traceDisplayName } from '../trace/reader.ts';
import { brkLimitOption, jsonOption, parseBrkLimit, parseCountOption, statsOption } from './options.ts';
import { action } from './run.ts';

/** check's exit status when the model and glibc differ: not 1 (bad input) nor 2 (usage), so scripts can tell. */
export const CHECK_DIFFERS = 3;

interface CheckOptions {
  stats?: boolean;
  policy?: string;
  brkLimit?: string;
  context: string;
  json?: boolean;
}

/** What the real glibc does instead of each of the model's other policies, for the refusal of --policy. */
const POLICY_INSTEAD = 'fixed:N: mallopt M_MMAP_THRESHOLD N; heap: mallopt M_MMAP_MAX 0; mmap: mallopt M_MMAP_THRESHOLD 0';

/** One event remembered for the context of a difference. */
interface Remembered {
  line: number;
  model: string;
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description(`compare the model with the real glibc on a trace; exit 0 when they agree, ${CHECK_DIFFERS} at the first difference`)
    .argument('<trace>', 'trace file (not -: both replays read it)')
    .addOption(statsOption('after every call, compared too'))
    .addOption(brkLimitOption())
    .option('--context <events>', 'events shown before a difference', '5')
    .addOption(jsonOption('the result (agreement, or the difference with its context)'))
    .option('--policy <name>', `only glibc: the real glibc has no other policy, so any other is refused; start the trace with the mallopt that sets it instead (${POLICY_INSTEAD})`)
    .addHelpText(
      'after',
      `\nExit status: 0 when every event agrees, ${CHECK_DIFFERS} when the model and glibc differ, 1 for a bad trace or a failed oracle, 2 for bad usage.`,
    )
    .action(action((trace: string, options: CheckOptions) => check(trace, options)));
}

async function check(trace: string, options: CheckOptions): Promise<void> {
  if (options.policy !== undefined && options.policy !== 'glibc') {
    throw new UsageError(`check compares with the real glibc, which has no policy '${options.policy}': start the trace with the mallopt that sets it instead (${POLICY_INSTEAD})`);
  }
  const brkLimit = parseBrkLimit(options.brkLimit);
  const contextSize = parseCountOption('--context', options.context);
  // Both replays read the trace, so it must be a file that can be read twice, not standard input.
  if (trace === '-') throw new UsageError('check needs a trace file, not standard input (save it to a file first)');
  const name = traceDisplayName(trace);
  // Read the trace first through the reader: a bad trace is reported once, with the reader's error.
  const reader = readTrace(trace);
  const args = [...(options.stats ? ['--stats'] : []), ...(brkLimit !== undefined ? ['--brk-limit', String(brkLimit)] : []), '--name', name, '--', trace];
  const child = spawn(builtFile('mallocscope-oracle'), args, { env: oracleEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<OracleExit>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const oracleLines = createInterface({ input: child.stdout, crlfDelay: Infinity })[Symbol.asyncIterator]();

  try {
    await compare(name, reader, oracleLines, exited, () => stderr, options, brkLimit, contextSize);
  } finally {
    child.kill();
  }
}

async function compare(
  name: string,
  reader: Iterable<TraceEvent>,
  oracleLines: AsyncIterator<string>,
  exited: Promise<OracleExit>,
  stderr: () => string,
  options: CheckOptions,
  brkLimit: number | undefined,
  contextSize: number,
): Promise<void> {
  // The real glibc runs on this machine: the model's kernel refuses what this one would (its RAM, not the default).
  const replayer = new Replayer({ system: { brkLimit, commitLimit: totalmem() } });
  const recent: Remembered[] = [];
  let agreed = 0;
  for (const event of reader) {
    let outcome;
    try {
      outcome = replayer.apply(event);
    } catch (error) {
      if (!(error instanceof ModelAbortError)) throw error;
      // The model says the real process dies at this call: so must glibc, by the same signal.
      const next = await oracleLines.next();
      const end = await exited;
      if (next.done && end.signal === error.signal) {
        const diesAt = { seq: event.seq, line: event.line, signal: end.signal };
        if (options.json) writeAgreement(name, agreed, options, diesAt);
        else process.stdout.write(`${name}: all ${agreed} events before agree with glibc${options.stats ? ' (mallinfo2 included)' : ''}, and at event ${event.seq} (line ${event.line}) glibc dies of ${end.signal} where the model stops: ${error.message}\n`);
        return;
      }
      // The model stops where glibc went on, or glibc ended otherwise: a difference, as any other.
      const glibc = next.done ? `glibc ${exitText(end)}` : `glibc went on: ${next.value}`;
      process.stdout.write(
        options.json
          ? `{"trace":${JSON.stringify(name)},"agree":false,"line":${event.line},"seq":${event.seq},"agreedBefore":${agreed},"modelStopped":${JSON.stringify(error.message)},"glibc":${next.done ? 'null' : next.value}}\n`
          : `${name}:${event.line}: the model stops here (${error.message}), but ${glibc}\n`,
      );
      process.exitCode = CHECK_DIFFERS;
      return;
    }
    let model = contractFields(outcome);
    if (options.stats) model += statsFields(replayer.mallinfo2());
    model += '}';
    const next = await oracleLines.next();
    const oracle = next.done ? null : next.value;
    if (oracle === null || !sameEvent(model, oracle, brkLimit)) {
      if (oracle === null) {
        const end = await exited;
        if (end.signal === 'SIGSEGV' || end.signal === 'SIGABRT' || end.signal === 'SIGBUS') {
          // glibc itself died in this call, where the model went on: a difference, not a broken oracle.
          const said = stderr().trim();
          process.stdout.write(
            options.json
              ? `{"trace":${JSON.stringify(name)},"agree":false,"line":${event.line},"seq":${event.seq},"agreedBefore":${agreed},"glibcDied":"${end.signal}","model":${model}}\n`
              : `${name}:${event.line}: glibc dies of ${end.signal} in this call${said ? ` (${said})` : ''}, and the model goes on\n  model: ${model}\n`,
          );
          process.exitCode = CHECK_DIFFERS;
          return;
        }
        throw new MallocscopeError('ORACLE_FAILED', `the oracle stopped before event ${event.seq} (${exitText(end)}): ${stderr().trim()}`);
      }
      const difference = { name, line: event.line, seq: event.seq, agreed, model, extras: extraFields(outcome), oracle, recent, replayer };
      process.stdout.write(options.json ? differenceJson(difference) : describeDifference(difference));
      process.exitCode = CHECK_DIFFERS;
      return;
    }
    recent.push({ line: event.line, model: model.slice(0, -1) + extraFields(outcome) + '}' });
    if (recent.length > contextSize) recent.shift();
    agreed++;
  }
  const rest = await oracleLines.next();
  const end = await exited;
  if (end.code !== 0) throw new MallocscopeError('ORACLE_FAILED', `the oracle failed (${exitText(end)}): ${stderr().trim()}`);
  if (!rest.done) throw new MallocscopeError('ORACLE_FAILED', `the oracle printed more events than the trace has`);
  if (options.json) writeAgreement(name, agreed, options);
  else process.stdout.write(`${name}: all ${agreed} events agree with glibc${options.stats ? ' (mallinfo2 included)' : ''}\n`);
}

/** check --json's document for an agreement (up to where glibc dies, when it does). */
function writeAgreement(name: string, events: number, options: CheckOptions, diesAt?: { seq: number; line: number; signal: string }): void {
  process.stdout.write(`${JSON.stringify({ trace: name, agree: true, events, stats: Boolean(options.stats), diesAt })}\n`);
}

/** How the oracle's process ended. */
interface OracleExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function exitText(end: OracleExit): string {
  return end.signal ? `killed by ${end.signal}` : `exit ${end.code}`;
}

/** The first difference: the two lines (JSON texts, kept as printed so that every number stays exact). */
interface Difference {
  name: string;
  line: number;
  seq: number;
  /** Events that agreed before it. */
  agreed: number;
  model: string;
  extras: string;
  oracle: string;
  recent: Remembered[];
  replayer: Replayer;
}

/**
 * The chunks of the model's heap around the block in question: where glibc put it, or else where the model
 * did; for a block that is not on the heap (mmapped, NULL), the end of the heap, where the top is.
 */
function heapAround(d: Difference): { around: number | null; chunks: { offset: number; size: number; kind: string; madeBy: number; marked: boolean }[] } {
  const offset = /"offset":(-?\d+)/.exec(d.oracle) ?? /"offset":(-?\d+)/.exec(d.model);
  const around = offset ? Number(offset[1]) : null;
  const heapStart = d.replayer.arena.system.heapStart;
  const chunks = walkHeap(d.replayer.arena);
  if (chunks.length === 0) return { around, chunks: [] };
  let index = around === null ? -1 : chunks.findIndex((c) => c.address + 16 - heapStart >= around);
  if (index < 0) index = chunks.length - 1;
  return {
    around,
    chunks: chunks.slice(Math.max(0, index - 4), index + 5).map((c) => ({
      offset: c.address - heapStart,
      size: c.size,
      kind: c.kind,
      madeBy: c.madeBy,
      marked: c.address + 16 - heapStart === around,
    })),
  };
}

/** check --json's document for a difference; the glibc and model lines are embedded as they were printed. */
function differenceJson(d: Difference): string {
  const before = d.recent.map((r) => `{"line":${r.line},"model":${r.model}}`).join(',');
  const heap = heapAround(d);
  const chunks = heap.chunks.map(({ marked: _marked, ...chunk }) => JSON.stringify(chunk)).join(',');
  return (
    `{"trace":${JSON.stringify(d.name)},"agree":false,"line":${d.line},"seq":${d.seq},"agreedBefore":${d.agreed},` +
    `"glibc":${d.oracle},"model":${d.model},"modelStep":{${d.extras.slice(1)}},"before":[${before}],` +
    `"heapAround":${heap.around},"heap":[${chunks}]}\n`
  );
}

function describeDifference(d: Difference): string {
  const out: string[] = [];
  out.push(`${d.name}:${d.line}: the model differs from glibc`);
  out.push(`  glibc: ${d.oracle}`);
  out.push(`  model: ${d.model}`);
  if (d.extras) out.push(`  the model's step: {${d.extras.slice(1)}}`);
  if (d.recent.length) {
    out.push('events before it (model, all agreeing with glibc):');
    for (const r of d.recent) out.push(`  line ${r.line}: ${r.model}`);
  }
  const heap = heapAround(d);
  if (heap.chunks.length) {
    const where = heap.around === null ? 'at its end' : `around offset ${heap.around} (0x${heap.around.toString(16)})`;
    out.push(`the model's heap ${where}, after this event:`);
    for (const c of heap.chunks) {
      out.push(`  chunk +0x${c.offset.toString(16).padStart(6, '0')} size ${String(c.size).padStart(8)} ${c.kind.padEnd(9)} made by event ${c.madeBy}${c.marked ? ' <-' : ''}`);
    }
  }
  return `${out.join('\n')}\n`;
}
