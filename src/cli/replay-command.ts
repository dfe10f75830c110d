// `mallocscope replay TRACE`: the model replays a trace; a summary by default, or the JSON Lines of the
// contract (--jsonl, --stats) with the model's extra fields after them.
import type { Command } from 'commander';
import { Replayer } from '../allocator/replay.ts';
import { UsageError } from '../errors.ts';
import { contractFields, extraFields, statsFields } from '../report/jsonl.ts';
import { SummaryObserver } from '../report/summary.ts';
import { NativeSystem } from '../system/native.ts';
import { readTrace } from '../trace/reader.ts';
import { LineOutput } from './output.ts';
import { Progress } from './progress.ts';
import { action } from './run.ts';
import { parseBytesOption } from './options.ts';

interface ReplayCommandOptions {
  jsonl?: boolean;
  stats?: boolean;
  policy: string;
  backend: string;
  brkLimit?: string;
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description('replay a trace through the model of glibc 2.36 (summary, or --jsonl)')
    .argument('<trace>', 'trace file, or - for standard input')
    .option('--jsonl', 'one JSON object per call (the contract of docs/trace-format.md)')
    .option('--stats', 'mallinfo2 after each call (with --jsonl), or at the end (summary)')
    .option('--policy <name>', 'glibc, fixed:BYTES, heap or mmap', 'glibc')
    .option('--backend <name>', 'simulated (the model of the kernel) or native (real memory through the addon)', 'simulated')
    .option('--brk-limit <bytes>', 'the program break cannot grow more than this above its start')
    .action(
      action((trace: string, options: ReplayCommandOptions) => {
        if (options.backend !== 'simulated' && options.backend !== 'native') {
          throw new UsageError(`unknown backend '${options.backend}' (expected simulated or native)`);
        }
        const brkLimit = options.brkLimit === undefined ? undefined : parseBytesOption('--brk-limit', options.brkLimit);
        // The native break lives in a reservation: --brk-limit is its size (whole pages, at least one).
        const native = options.backend === 'native' ? new NativeSystem(brkLimit === undefined ? {} : { reserve: Math.max(4096, Math.floor(brkLimit / 4096) * 4096) }) : undefined;
        try {
          replay(trace, options, new Replayer({ policy: options.policy, system: native ?? { brkLimit } }), native);
        } finally {
          native?.release();
        }
      }),
    );
}

function replay(trace: string, options: ReplayCommandOptions, replayer: Replayer, native: NativeSystem | undefined): void {
  const reader = readTrace(trace);
  // A progress bar on a terminal's stderr; none while JSON Lines go to the same terminal.
  const progress = options.jsonl && process.stdout.isTTY ? Progress.none() : Progress.forTrace(trace, 'replay');
  if (options.jsonl) {
    const out = new LineOutput();
    try {
      for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
        progress.tick(outcome);
        let line = contractFields(outcome);
        if (options.stats) line += statsFields(replayer.mallinfo2());
        out.line(`${line}${extraFields(outcome)}}`);
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
      summary.observe(outcome, replayer.arena);
      summary.noteLive(replayer.liveBytes);
    }
  } finally {
    progress.done();
  }
  let text = summary.format(replayer.arena);
  if (options.stats) {
    const m = replayer.mallinfo2();
    text += `\nmallinfo2 at end  arena ${m.arena}, hblks ${m.hblks}, hblkhd ${m.hblkhd}, uordblks ${m.uordblks}, fordblks ${m.fordblks}, keepcost ${m.keepcost}`;
  }
  if (native) {
    // The model's figures at the end beside what the kernel reports for the same memory (mincore).
    const arena = replayer.arena;
    const real = native.resident();
    const kib = (n: number) => `${n} (${(n / 1024).toFixed(1)} KiB)`;
    text += `\nheap now          ${kib(arena.systemMem)} in the model; resident ${kib(real.heap)} of ${kib(real.heapCommitted)} committed`;
    text += `\nmmapped now       ${kib(arena.mmappedMem)} in the model; resident ${kib(real.mmapped)} of ${kib(real.mapped)} mapped`;
  }
  process.stdout.write(`${text}\n`);
}
