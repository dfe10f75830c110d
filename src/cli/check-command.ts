// `mallocscope check TRACE`: the comparison of src/check run on a trace (the oracle streaming beside the
// model), told to a person: the first event where they differ, with the events before it and the model's
// heap around the address; exit 3 then (CHECK_DIFFERS), 0 when every event agrees, and as every command 1
// for bad input, 2 for bad usage.
import type { Command } from 'commander';
import type { Replayer } from '../replay/replayer.ts';
import { walkHeap } from '../allocator/walk.ts';
import { checkTrace, type Disagreement } from '../check/differential.ts';
import { UsageError } from '../errors.ts';
import { exitText, oracleGlibcVersion } from '../oracle/oracle.ts';
import { traceDisplayName } from '../trace/reader.ts';
import { libcOption } from './oracle-command.ts';
import {
  brkLimitOption,
  checkTunables,
  glibcFor,
  glibcOption,
  jsonOption,
  modelTunablesOption,
  parseBrkLimit,
  parseCountOption,
  statsOption,
} from './options.ts';
import { action } from './run.ts';

/** check's exit status when the model and glibc differ: not 1 (bad input) nor 2 (usage), so scripts can tell. */
export const CHECK_DIFFERS = 3;

interface CheckOptions {
  stats?: boolean;
  policy?: string;
  brkLimit?: string;
  context: string;
  json?: boolean;
  libc?: string;
  glibc?: string;
  tunables?: string;
}

/** What the real glibc does instead of each of the model's other policies, for the refusal of --policy. */
const POLICY_INSTEAD = 'fixed:N: mallopt M_MMAP_THRESHOLD N; heap: mallopt M_MMAP_MAX 0; mmap: mallopt M_MMAP_THRESHOLD 0';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description(`compare the model with the real glibc on a trace; exit 0 when they agree, ${CHECK_DIFFERS} at the first difference`)
    .argument('<trace>', 'trace file (not -: both replays read it)')
    .addOption(statsOption('after every call, compared too'))
    .addOption(brkLimitOption())
    .addOption(libcOption())
    .addOption(glibcOption())
    .addOption(modelTunablesOption(' and the real glibc alike'))
    .option('--context <events>', 'events shown before a difference', '5')
    .addOption(jsonOption('the result (agreement, or the difference with its context)'))
    .option(
      '--policy <name>',
      `only glibc: the real glibc has no other policy, so any other is refused; start the trace with the mallopt that sets it instead (${POLICY_INSTEAD})`,
    )
    .addHelpText(
      'after',
      `\nExit status: 0 when every event agrees, ${CHECK_DIFFERS} when the model and glibc differ, 1 for a bad trace or a failed oracle, 2 for bad usage.`,
    )
    .action(action((trace: string, options: CheckOptions) => check(trace, options)));
}

async function check(trace: string, options: CheckOptions): Promise<void> {
  if (options.policy !== undefined && options.policy !== 'glibc') {
    throw new UsageError(
      `check compares with the real glibc, which has no policy '${options.policy}': start the trace with the mallopt that sets it instead (${POLICY_INSTEAD})`,
    );
  }
  const brkLimit = parseBrkLimit(options.brkLimit);
  const context = parseCountOption('--context', options.context);
  // Both replays read the trace, so it must be a file that can be read twice, not standard input.
  if (trace === '-') throw new UsageError('check needs a trace file, not standard input (save it to a file first)');
  const name = traceDisplayName(trace);
  const glibc = glibcFor(options);
  // A model of another version than the oracle's glibc differs by that version's rules, not by a fault.
  const real = oracleGlibcVersion({ libc: options.libc });
  if (real !== undefined && real !== glibc.version) {
    process.stderr.write(
      `mallocscope: warning: the model follows glibc ${glibc.version} and the oracle runs glibc ${real}: where they differ, it may be the versions, not the model\n`,
    );
  }
  checkTunables(options.tunables, glibc);
  const { verdict, replayer } = await checkTrace(trace, {
    name,
    stats: options.stats,
    brkLimit,
    context,
    libc: options.libc,
    glibc,
    tunables: options.tunables,
  });
  const stats = `${options.stats ? ' (mallinfo2 included)' : ''}${options.tunables !== undefined ? `, both under GLIBC_TUNABLES=${options.tunables}` : ''}`;
  if (verdict.agree) {
    if (options.json) {
      const diesAt = verdict.diesAt && { seq: verdict.diesAt.seq, line: verdict.diesAt.line, signal: verdict.diesAt.signal };
      const tunables = options.tunables;
      process.stdout.write(`${JSON.stringify({ trace: name, agree: true, events: verdict.events, stats: Boolean(options.stats), tunables, diesAt })}\n`);
    } else if (verdict.diesAt) {
      const d = verdict.diesAt;
      process.stdout.write(
        `${name}: all ${verdict.events} events before agree with glibc${stats}, and at event ${d.seq} (line ${d.line}) glibc dies of ${d.signal} where the model stops: ${d.model}\n`,
      );
    } else {
      process.stdout.write(`${name}: all ${verdict.events} events agree with glibc${stats}\n`);
    }
    return;
  }
  process.stdout.write(options.json ? disagreementJson(name, verdict, replayer) : describeDisagreement(name, verdict, replayer));
  process.exitCode = CHECK_DIFFERS;
}

/** check --json's document for a disagreement; the glibc and model lines are embedded as they were printed. */
function disagreementJson(name: string, d: Disagreement, replayer: Replayer): string {
  const head = `{"trace":${JSON.stringify(name)},"agree":false,"line":${d.line},"seq":${d.seq},"agreedBefore":${d.agreedBefore}`;
  if (d.kind === 'model-stops') return `${head},"modelStopped":${JSON.stringify(d.modelStopped)},"glibc":${d.oracle ?? 'null'}}\n`;
  if (d.kind === 'glibc-dies') return `${head},"glibcDied":"${d.glibcEnd?.signal}","model":${d.model}}\n`;
  const before = d.before.map((r) => `{"line":${r.line},"model":${r.model}}`).join(',');
  const heap = heapAround(d, replayer);
  const chunks = heap.chunks.map(({ marked: _marked, ...chunk }) => JSON.stringify(chunk)).join(',');
  return (
    `${head},"glibc":${d.oracle},"model":${d.model},"modelStep":{${d.modelStep.slice(1)}},"before":[${before}],` +
    `"heapAround":${heap.around},"heap":[${chunks}]}\n`
  );
}

function describeDisagreement(name: string, d: Disagreement, replayer: Replayer): string {
  if (d.kind === 'model-stops') {
    const glibc = d.oracle !== null ? `glibc went on: ${d.oracle}` : `glibc ${d.glibcEnd ? exitText(d.glibcEnd) : 'ended'}`;
    return `${name}:${d.line}: the model stops here (${d.modelStopped}), but ${glibc}\n`;
  }
  if (d.kind === 'glibc-dies') {
    const said = d.glibcEnd?.stderr.trim();
    return `${name}:${d.line}: glibc dies of ${d.glibcEnd?.signal} in this call${said ? ` (${said})` : ''}, and the model goes on\n  model: ${d.model}\n`;
  }
  const out: string[] = [];
  out.push(`${name}:${d.line}: the model differs from glibc`);
  out.push(`  glibc: ${d.oracle}`);
  out.push(`  model: ${d.model}`);
  if (d.modelStep) out.push(`  the model's step: {${d.modelStep.slice(1)}}`);
  if (d.before.length) {
    out.push('events before it (model, all agreeing with glibc):');
    for (const r of d.before) out.push(`  line ${r.line}: ${r.model}`);
  }
  const heap = heapAround(d, replayer);
  if (heap.chunks.length) {
    const where = heap.around === null ? 'at its end' : `around offset ${heap.around} (0x${heap.around.toString(16)})`;
    out.push(`the model's heap ${where}, after this event:`);
    for (const c of heap.chunks) {
      out.push(
        `  chunk +0x${c.offset.toString(16).padStart(6, '0')} size ${String(c.size).padStart(8)} ${c.kind.padEnd(9)} made by event ${c.madeBy}${c.marked ? ' <-' : ''}`,
      );
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * The chunks of the model's heap around the block in question: where glibc put it, or else where the model
 * did; for a block that is not on the heap (mmapped, NULL), the end of the heap, where the top is.
 */
function heapAround(
  d: Disagreement,
  replayer: Replayer,
): { around: number | null; chunks: { offset: number; size: number; kind: string; madeBy: number; marked: boolean }[] } {
  const offset = /"offset":(-?\d+)/.exec(d.oracle ?? '') ?? /"offset":(-?\d+)/.exec(d.model ?? '');
  const around = offset ? Number(offset[1]) : null;
  const heapStart = replayer.model.system.heapStart;
  const chunks = walkHeap(replayer.model.main);
  if (chunks.length === 0) return { around, chunks: [] };
  let index = around === null ? -1 : chunks.findIndex((c) => c.pointer - heapStart >= around);
  if (index < 0) index = chunks.length - 1;
  return {
    around,
    chunks: chunks.slice(Math.max(0, index - 4), index + 5).map((c) => ({
      offset: c.address - heapStart,
      size: c.size,
      kind: c.kind,
      madeBy: c.madeBy,
      marked: c.pointer - heapStart === around,
    })),
  };
}
