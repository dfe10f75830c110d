// `mallocscope replay TRACE`: the model replays a trace; a summary by default, or the JSON Lines of the
// contract (--jsonl, --stats) with the model's extra fields after them.
import type { Command } from 'commander';
import { Replayer } from '../allocator/replay.ts';
import { UsageError } from '../errors.ts';
import { contractFields, extraFields, statsFields } from '../report/jsonl.ts';
import { SummaryObserver } from '../report/summary.ts';
import { readTrace } from '../trace/reader.ts';
import { LineOutput } from './output.ts';
import { action } from './run.ts';

interface ReplayCommandOptions {
  jsonl?: boolean;
  stats?: boolean;
  policy: string;
  backend: string;
  brkLimit?: string;
}

/** A byte count option: decimal or 0x-hexadecimal. */
export function parseBytesOption(name: string, text: string): number {
  if (!/^(?:[0-9]+|0[xX][0-9a-fA-F]+)$/.test(text)) throw new UsageError(`${name} takes a byte count (decimal or 0x-hexadecimal), not '${text}'`);
  return Number(text);
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description('replay a trace through the model of glibc 2.36 (summary, or --jsonl)')
    .argument('<trace>', 'trace file, or - for standard input')
    .option('--jsonl', 'one JSON object per call (the contract of docs/trace-format.md)')
    .option('--stats', 'with --jsonl: mallinfo2 after each call')
    .option('--policy <name>', 'glibc, fixed:BYTES, heap or mmap', 'glibc')
    .option('--backend <name>', 'simulated (native: see issue 4)', 'simulated')
    .option('--brk-limit <bytes>', 'the program break cannot grow more than this above its start')
    .action(
      action((trace: string, options: ReplayCommandOptions) => {
        if (options.backend !== 'simulated') {
          throw new UsageError(`backend '${options.backend}' is not available in this version (expected simulated)`);
        }
        const brkLimit = options.brkLimit === undefined ? undefined : parseBytesOption('--brk-limit', options.brkLimit);
        const replayer = new Replayer({ policy: options.policy, system: { brkLimit } });
        const reader = readTrace(trace);
        if (options.jsonl) {
          const out = new LineOutput();
          for (const event of reader) {
            const outcome = replayer.apply(event);
            let line = contractFields(outcome);
            if (options.stats) line += statsFields(replayer.mallinfo2());
            out.line(`${line}${extraFields(outcome)}}`);
          }
          out.flush();
          return;
        }
        const summary = new SummaryObserver();
        for (const event of reader) {
          summary.observe(replayer.apply(event), replayer.arena);
          summary.noteLive(replayer.liveBytes);
        }
        process.stdout.write(`${summary.format(replayer.arena)}\n`);
      }),
    );
}
