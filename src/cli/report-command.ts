// `mallocscope report TRACE -o report.html`: one self-contained HTML page to explore a trace in a browser
// (src/report/report.ts): the timeline, and for any event the heap map, the bins and a sentence.
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { buildReport } from '../report/report.ts';
import { parseAllocatorNames } from './allocators.ts';
import { allocatorLibrary, allocatorRss } from '../oracle/allocators.ts';
import { colourFlag } from './colour.ts';
import { OutputFile } from './output.ts';
import { Progress } from './progress.ts';
import {
  brkLimitOption,
  colourOptions,
  coresOption,
  glibcFor,
  glibcOption,
  outputOption,
  parseBrkLimit,
  parseCores,
  parseCountOption,
  policyOption,
} from './options.ts';
import { action } from './run.ts';

interface ReportCommandOptions {
  output?: string;
  policy: string;
  glibc?: string;
  brkLimit?: string;
  cores?: string;
  checkpointEvery?: string;
  title?: string;
  color?: boolean;
  allocator?: string[];
}

export function registerReport(program: Command): void {
  const command = program
    .command('report')
    .description('write one self-contained HTML page to explore a trace: timeline, heap map, bins, explanations')
    .argument('<trace>', 'trace file, or - for standard input')
    .addOption(outputOption('the HTML page (required)'))
    .addOption(policyOption())
    .addOption(glibcOption())
    .addOption(brkLimitOption())
    .addOption(coresOption())
    .option('--checkpoint-every <n>', 'events between model checkpoints in the page (default: 12 to 24 checkpoints)')
    .option('--title <text>', "the page's title (default: the trace's file name)")
    .option(
      '--allocator <name>',
      'add a chart of resident memory over the trace under real allocators: glibc, jemalloc, tcmalloc, mimalloc (repeatable)',
      (text: string, all: string[] = []) => [...all, text],
    );
  for (const option of colourOptions()) command.addOption(option);
  command.action(
    action(async (trace: string, options: ReportCommandOptions) => {
      if (options.output === undefined) throw new UsageError('report needs -o FILE, the HTML page to write (-o - for standard output)');
      const brkLimit = parseBrkLimit(options.brkLimit);
      const checkpointEvery = options.checkpointEvery === undefined ? undefined : parseCountOption('--checkpoint-every', options.checkpointEvery, 1);
      const allocators = parseAllocatorNames(options.allocator ?? []);
      // Open the output first: a path that cannot be written is said at once, not after the whole build.
      const output = OutputFile.open(options.output);
      const progress = Progress.forTrace(trace, 'report', { colour: colourFlag(options) });
      let result: Awaited<ReturnType<typeof buildReport>>;
      try {
        // The chart draws resident memory alone: one sampled run each (no strace, no timing runs, no model).
        for (const name of allocators) allocatorLibrary(name);
        const columns = allocators.map((name) => ({ label: name, ...allocatorRss(trace, name, { brkLimit }) }));
        result = await buildReport(trace, {
          allocators: columns.length > 0 ? columns : undefined,
          policy: options.policy,
          glibc: glibcFor(options),
          brkLimit,
          cores: parseCores(options.cores),
          checkpointEvery,
          title: options.title,
          onProgress: (event) => progress.tick(event),
        });
      } catch (error) {
        output.discard();
        throw error;
      } finally {
        progress.done();
      }
      output.write(result.html);
      output.close();
      const mb = (result.sizes.html / (1024 * 1024)).toFixed(2);
      const where = output.isStdout ? 'the report to standard output' : options.output;
      process.stderr.write(`mallocscope: wrote ${where} (${mb} MiB, ${result.events} events, ${result.checkpoints} checkpoints)\n`);
    }),
  );
}
