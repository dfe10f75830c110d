// `mallocscope check TRACE`: replays the trace through the real glibc (the oracle) and the model side by
// side, streaming, and stops at the first event where they differ, with the events before it and the
// model's heap around the address; exit 1 then, 0 when every event agrees.
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Replayer } from '../allocator/replay.ts';
import { walkHeap } from '../allocator/walk.ts';
import { MallocscopeError, UsageError } from '../errors.ts';
import { builtFile } from '../native.ts';
import { oracleEnv } from '../oracle/oracle.ts';
import { sameEvent } from '../check/differential.ts';
import { contractFields, extraFields, statsFields } from '../report/jsonl.ts';
import type { TraceEvent } from '../trace/api.ts';
import { readTrace, traceDisplayName } from '../trace/reader.ts';
import { parseBytesOption, parseCountOption } from './options.ts';
import { action } from './run.ts';

interface CheckOptions {
  stats?: boolean;
  policy: string;
  brkLimit?: string;
  context: string;
}

/** One event remembered for the context of a difference. */
interface Remembered {
  line: number;
  model: string;
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('compare the model with the real glibc on a trace; exit 1 at the first difference')
    .argument('<trace>', 'trace file (not -: both replays read it)')
    .option('--stats', 'compare mallinfo2 after every call too')
    .option('--policy <name>', 'model policy (glibc unless you compare a mallopt-equivalent trace)', 'glibc')
    .option('--brk-limit <bytes>', 'the program break cannot grow more than this, in both')
    .option('--context <events>', 'events shown before a difference', '5')
    .action(action((trace: string, options: CheckOptions) => check(trace, options)));
}

async function check(trace: string, options: CheckOptions): Promise<void> {
  const brkLimit = options.brkLimit === undefined ? undefined : parseBytesOption('--brk-limit', options.brkLimit);
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
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
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
  exited: Promise<number | null>,
  stderr: () => string,
  options: CheckOptions,
  brkLimit: number | undefined,
  contextSize: number,
): Promise<void> {
  const replayer = new Replayer({ policy: options.policy, system: { brkLimit } });
  const recent: Remembered[] = [];
  let agreed = 0;
  for (const event of reader) {
    const outcome = replayer.apply(event);
    let model = contractFields(outcome);
    if (options.stats) model += statsFields(replayer.mallinfo2());
    model += '}';
    const next = await oracleLines.next();
    const oracle = next.done ? null : next.value;
    if (oracle === null || !sameEvent(model, oracle, brkLimit)) {
      if (oracle === null) {
        const code = await exited;
        throw new MallocscopeError('ORACLE_FAILED', `the oracle stopped before event ${event.seq}${code ? ` (exit ${code})` : ''}: ${stderr().trim()}`);
      }
      process.stdout.write(describeDifference(name, event.line, model, extraFields(outcome), oracle, recent, replayer, outcome.offset));
      process.exitCode = 1;
      return;
    }
    recent.push({ line: event.line, model: model.slice(0, -1) + extraFields(outcome) + '}' });
    if (recent.length > contextSize) recent.shift();
    agreed++;
  }
  const rest = await oracleLines.next();
  const code = await exited;
  if (code !== 0) throw new MallocscopeError('ORACLE_FAILED', `the oracle failed (exit ${code}): ${stderr().trim()}`);
  if (!rest.done) throw new MallocscopeError('ORACLE_FAILED', `the oracle printed more events than the trace has`);
  process.stdout.write(`${name}: all ${agreed} events agree with glibc${options.stats ? ' (mallinfo2 included)' : ''}\n`);
}

function describeDifference(name: string, line: number, model: string, extras: string, oracle: string, recent: Remembered[], replayer: Replayer, modelOffset: number): string {
  const out: string[] = [];
  out.push(`${name}:${line}: the model differs from glibc`);
  out.push(`  glibc: ${oracle}`);
  out.push(`  model: ${model}`);
  if (extras) out.push(`  the model's step: {${extras.slice(1)}}`);
  if (recent.length) {
    out.push('events before it (model, all agreeing with glibc):');
    for (const r of recent) out.push(`  line ${r.line}: ${r.model}`);
  }
  // The heap around the block in question: where glibc put it, or else where the model did.
  const oracleOffset = /"offset":(-?\d+)/.exec(oracle);
  const around = oracleOffset ? Number(oracleOffset[1]) : modelOffset;
  const av = replayer.arena;
  const heapStart = av.system.heapStart;
  const chunks = walkHeap(av);
  if (chunks.length) {
    let index = chunks.findIndex((c) => c.address + 16 - heapStart >= around);
    if (index < 0) index = chunks.length - 1;
    out.push(`the model's heap around offset ${around} (0x${around.toString(16)}), after this event:`);
    for (const c of chunks.slice(Math.max(0, index - 4), index + 5)) {
      const offset = c.address + 16 - heapStart;
      const mark = offset === around ? ' <-' : '';
      out.push(`  chunk +0x${(c.address - heapStart).toString(16).padStart(6, '0')} size ${String(c.size).padStart(8)} ${c.kind.padEnd(9)} made by event ${c.madeBy}${mark}`);
    }
  }
  return `${out.join('\n')}\n`;
}
