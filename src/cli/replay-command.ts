// `mallocscope replay TRACE`: the model replays a trace; a summary by default (--json: the same figures as
// JSON), or the JSON Lines of the contract (--jsonl, --stats) with the model's extra fields after them.
import { exactJson } from '../report/json.ts';
import type { Command } from 'commander';
import { Replayer } from '../replay/replayer.ts';
import { UsageError } from '../errors.ts';
import { contractFields, extraFields, statsFields } from '../report/jsonl.ts';
import { SummaryObserver } from '../report/summary.ts';
import { loadAddon } from '../native.ts';
import { NativeSystem } from '../system/native.ts';
import { readTrace, traceDisplayName, traceHasThreads } from '../trace/reader.ts';
import { colourFlag } from './colour.ts';
import { LineOutput } from './output.ts';
import { Progress } from './progress.ts';
import { action } from './run.ts';
import {
  brkLimitOption,
  checkTunables,
  colourOptions,
  coresOption,
  glibcFor,
  glibcOption,
  jsonOption,
  modelTunablesOption,
  parseBrkLimit,
  parseCores,
  policyOption,
  statsOption,
  touchOption,
} from './options.ts';
import type { ResidentPages } from '../system/resident.ts';
import type { ResidentMemory } from '../system/native.ts';

interface ReplayCommandOptions {
  cores?: string;
  jsonl?: boolean;
  json?: boolean;
  stats?: boolean;
  policy: string;
  glibc?: string;
  backend: string;
  brkLimit?: string;
  color?: boolean;
  touch?: boolean;
  tunables?: string;
}

export function registerReplay(program: Command): void {
  const command = program
    .command('replay')
    .description('replay a trace through the model of glibc (a summary, --json, or --jsonl)')
    .argument('<trace>', 'trace file, or - for standard input')
    .option('--jsonl', 'one JSON object per call (the contract of docs/trace-format.md)')
    .addOption(jsonOption('the summary'))
    .addOption(statsOption('after every call (with --jsonl), or at the end (summary)'))
    .addOption(policyOption())
    .addOption(glibcOption())
    .addOption(modelTunablesOption())
    .option('--backend <name>', 'simulated (the model of the kernel) or native (real memory through the addon)', 'simulated')
    .addOption(brkLimitOption())
    .addOption(coresOption())
    .addOption(touchOption('print the resident memory it makes (an estimate; with --backend native the bytes are written for real and mincore shown beside)'));
  for (const option of colourOptions()) command.addOption(option);
  command.action(
    action((trace: string, options: ReplayCommandOptions) => {
      if (options.backend !== 'simulated' && options.backend !== 'native') {
        throw new UsageError(`unknown backend '${options.backend}' (expected simulated or native)`);
      }
      if (options.json && options.jsonl) throw new UsageError('--json (the summary) and --jsonl (one line per call) exclude each other');
      const brkLimit = parseBrkLimit(options.brkLimit);
      // The native break lives in a reservation of whole pages, at least one (of the machine's size): --brk-limit
      // is its size.
      const page = options.backend === 'native' ? loadAddon().pageSize() : 0;
      if (options.backend === 'native' && brkLimit !== undefined && brkLimit < page) {
        throw new UsageError(`--backend native needs --brk-limit of at least one page (${page}): its break lives in a reservation of that size`);
      }
      const glibc = glibcFor(options);
      checkTunables(options.tunables, glibc);
      const native = options.backend === 'native' ? new NativeSystem(brkLimit === undefined ? {} : { reserve: Math.floor(brkLimit / page) * page }) : undefined;
      try {
        replay(
          trace,
          options,
          new Replayer({
            policy: options.policy,
            glibc,
            tunables: options.tunables,
            system: native ?? { brkLimit },
            cores: parseCores(options.cores),
            threads: trace !== '-' && traceHasThreads(trace),
            resident: options.touch,
          }),
          native,
        );
      } finally {
        native?.release();
      }
    }),
  );
}

function replay(trace: string, options: ReplayCommandOptions, replayer: Replayer, native: NativeSystem | undefined): void {
  const reader = readTrace(trace);
  // A progress bar on a terminal's stderr; none while JSON Lines go to the same terminal.
  const progress = options.jsonl && process.stdout.isTTY ? Progress.none() : Progress.forTrace(trace, 'replay', { colour: colourFlag(options) });
  if (options.jsonl) {
    const out = new LineOutput();
    try {
      for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
        progress.tick(outcome);
        let line = contractFields(outcome);
        if (options.stats) line += statsFields(replayer.mallinfo2());
        line += extraFields(outcome);
        // The model's resident estimate after the call (docs/resident.md), last: an extension.
        if (replayer.resident) line += `,"resident":${replayer.resident.total}`;
        out.line(`${line}}`);
      }
    } finally {
      // The lines before a bad line are printed before its error, as the oracle does.
      out.flush();
      progress.done();
    }
    return;
  }
  const summary = new SummaryObserver();
  try {
    for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
      progress.tick(outcome);
      summary.observe(outcome, replayer.model, replayer.liveBytes);
    }
  } finally {
    progress.done();
  }
  const real = native?.resident();
  if (options.json) {
    const figures: Record<string, unknown> = {
      trace: traceDisplayName(trace),
      policy: replayer.policyName,
      ...(options.tunables !== undefined ? { tunables: options.tunables } : {}),
      glibc: replayer.model.glibc.version,
      backend: options.backend,
      ...summary.figures(replayer.model),
    };
    if (options.stats) figures.mallinfo2 = replayer.mallinfo2();
    if (replayer.resident) figures.residentEstimate = replayer.resident.summary();
    if (real)
      figures.resident = {
        heap: real.heap,
        heapCommitted: real.heapCommitted,
        mmapped: real.mmapped,
        mapped: real.mapped,
        threadHeaps: real.threadHeaps,
        threadHeapsCommitted: real.threadHeapsCommitted,
      };
    process.stdout.write(`${exactJson(figures, 2)}\n`);
    return;
  }
  let text = summary.format(replayer.model);
  if (options.stats) {
    const m = replayer.mallinfo2();
    text += `\nmallinfo2 at end  arena ${m.arena}, hblks ${m.hblks}, hblkhd ${m.hblkhd}, uordblks ${m.uordblks}, fordblks ${m.fordblks}, keepcost ${m.keepcost}`;
  }
  if (replayer.resident) text += residentLines(replayer, replayer.resident, real);
  if (real) {
    // The model's figures at the end beside what the kernel reports for the same memory (mincore).
    const model = replayer.model;
    text += `\nheap now          ${kib(model.main.systemMem)} in the model; resident ${kib(real.heap)} of ${kib(real.heapCommitted)} committed`;
    text += `\nmmapped now       ${kib(model.mp.mmappedMem)} in the model; resident ${kib(real.mmapped)} of ${kib(real.mapped)} mapped`;
    // Thread arenas' heaps, when the trace made any: their system_mem against the pages made read-write.
    const threadMem = model.arenas.reduce((sum, av) => (av.isMain ? sum : sum + av.systemMem), 0);
    if (model.arenas.length > 1) {
      text += `\nthread heaps now  ${kib(threadMem)} in the model; resident ${kib(real.threadHeaps)} of ${kib(real.threadHeapsCommitted)} read-write`;
    }
  }
  process.stdout.write(`${text}\n`);
}

/** Bytes, and the same in KiB, as the summary lines print them. */
const kib = (n: number) => `${n} (${(n / 1024).toFixed(1)} KiB)`;

/** The summary's resident lines: the estimate, and on real memory mincore's figure beside it. */
function residentLines(replayer: Replayer, resident: ResidentPages, real: ResidentMemory | undefined): string {
  const figures = resident.summary();
  const threads = replayer.model.arenas.length > 1;
  const parts = (heap: number, mmapped: number, threadHeaps: number) => `heap ${heap}, mmapped ${mmapped}${threads ? `, thread heaps ${threadHeaps}` : ''}`;
  let text = `\nresident (est.)   ${kib(figures.total)}: ${parts(figures.heap, figures.mmapped, figures.threadHeaps)}`;
  text += `\npeak resident     ${kib(figures.peak)}${figures.peakEvent === null ? '' : ` after event ${figures.peakEvent}`} (est.)`;
  if (real) {
    const total = real.heap + real.mmapped + real.threadHeaps;
    const verdict =
      total === figures.total ? 'equal to the estimate' : `${total > figures.total ? '+' : ''}${total - figures.total} bytes against the estimate`;
    text += `\nresident (real)   ${kib(total)}: ${parts(real.heap, real.mmapped, real.threadHeaps)} (mincore; ${verdict})`;
  }
  return text;
}
