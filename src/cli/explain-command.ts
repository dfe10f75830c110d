// `mallocscope explain TRACE [--from N] [--to M]`: one sentence per event on what glibc did and why, with its
// numbers (src/report/explain.ts). Colour on a terminal only; plain when piped or with NO_COLOR.
import type { Command } from 'commander';
import { Replayer } from '../allocator/replay.ts';
import { UsageError } from '../errors.ts';
import { Explainer, colourSentence, useColour } from '../report/explain.ts';
import { readTrace, traceDisplayName as name } from '../trace/reader.ts';
import { LineOutput } from './output.ts';
import { parseBytesOption, parseCountOption } from './options.ts';
import { action } from './run.ts';

interface ExplainOptions {
  from?: string;
  to?: string;
  policy: string;
  brkLimit?: string;
}

export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description('one sentence per event: what glibc did and why, with its numbers')
    .argument('<trace>', 'trace file, or - for standard input')
    .option('--from <n>', 'first event to explain (0-based, as seq in replay --jsonl); earlier events are replayed silently')
    .option('--to <m>', 'last event to explain (inclusive); the replay stops there')
    .option('--policy <name>', 'glibc, fixed:BYTES, heap or mmap', 'glibc')
    .option('--brk-limit <bytes>', 'the program break cannot grow more than this above its start')
    .action(
      action((trace: string, options: ExplainOptions) => {
        const from = options.from === undefined ? 0 : parseCountOption('--from', options.from);
        const to = options.to === undefined ? Infinity : parseCountOption('--to', options.to);
        if (from > to) throw new UsageError(`--from ${from} is after --to ${to}`);
        const brkLimit = options.brkLimit === undefined ? undefined : parseBytesOption('--brk-limit', options.brkLimit);
        const explainer = new Explainer(new Replayer({ policy: options.policy, system: { brkLimit } }));
        const colour = useColour(process.stdout);
        const out = new LineOutput();
        const reader = readTrace(trace);
        try {
          // The events before --from are replayed without a word, and without making event objects.
          while (reader.seq < from && explainer.replayer.applyNext(reader));
          for (const event of reader) {
            const { sentence } = explainer.apply(event);
            const line = `#${event.seq} ${sentence}`;
            out.line(colour ? colourSentenceWithSeq(line) : line);
            if (event.seq >= to) break;
          }
        } finally {
          out.flush();
          reader.close();
        }
        if (reader.seq <= from && from > 0) {
          throw new UsageError(`--from ${from} is past the end: ${name(trace)} has ${reader.seq} events (0 to ${reader.seq - 1})`);
        }
      }),
    );
}

function colourSentenceWithSeq(line: string): string {
  const space = line.indexOf(' ');
  return `\x1b[2m${line.slice(0, space)}\x1b[0m ${colourSentence(line.slice(space + 1))}`;
}
