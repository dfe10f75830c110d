// `mallocscope explain TRACE [--from N] [--to M]`: one sentence per event on what glibc did and why, with its
// numbers (src/report/explain.ts). Coloured as colour.ts decides (a terminal, NO_COLOR, FORCE_COLOR, --color).
import type { Command } from 'commander';
import { Replayer } from '../replay/replayer.ts';
import { UsageError } from '../errors.ts';
import { Explainer, colourSentence } from '../report/explain.ts';
import { readTrace, traceDisplayName as name } from '../trace/reader.ts';
import { colourFlag, useColour } from './colour.ts';
import { LineOutput } from './output.ts';
import { brkLimitOption, colourOptions, fromOption, glibcFor, glibcOption, parseBrkLimit, parseRange, policyOption, toOption } from './options.ts';
import { action } from './run.ts';

interface ExplainOptions {
  from?: string;
  to?: string;
  policy: string;
  glibc?: string;
  brkLimit?: string;
  color?: boolean;
  bytes?: boolean;
}

export function registerExplain(program: Command): void {
  const command = program
    .command('explain')
    .description('one sentence per event: what glibc did and why, with its numbers')
    .argument('<trace>', 'trace file, or - for standard input')
    .addOption(fromOption())
    .addOption(toOption())
    .addOption(policyOption())
    .addOption(glibcOption())
    .addOption(brkLimitOption())
    .option('--bytes', "also list the words of main_arena's heap image each call changed (docs/image.md)");
  for (const option of colourOptions()) command.addOption(option);
  command.action(
    action((trace: string, options: ExplainOptions) => {
      const { from, to } = parseRange(options);
      const brkLimit = parseBrkLimit(options.brkLimit);
      const explainer = new Explainer(new Replayer({ policy: options.policy, glibc: glibcFor(options), system: { brkLimit } }), options.bytes === true);
      const colour = useColour(process.stdout, colourFlag(options));
      const out = new LineOutput();
      const reader = readTrace(trace);
      try {
        // The events before --from are replayed without a word, and without making event objects.
        while (reader.seq < from && explainer.replayer.applyNext(reader));
        for (const event of reader) {
          const { sentence, bytes } = explainer.apply(event);
          const line = `#${event.seq} ${sentence}`;
          out.line(colour ? colourSentenceWithSeq(line) : line);
          if (bytes !== undefined) out.line(`    bytes: ${bytes}`);
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
