// `mallocscope report TRACE -o report.html`: one self-contained HTML page to explore a trace in a browser
// (src/report/report.ts): the timeline, and for any event the heap map, the bins and a sentence.
import { closeSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { MallocscopeError, UsageError, errnoReason } from '../errors.ts';
import { buildReport } from '../report/report.ts';
import { Progress } from './progress.ts';
import { parseBytesOption, parseCountOption } from './options.ts';
import { action } from './run.ts';

interface ReportCommandOptions {
  output?: string;
  policy: string;
  brkLimit?: string;
  checkpointEvery?: string;
  title?: string;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write one self-contained HTML page to explore a trace: timeline, heap map, bins, explanations')
    .argument('<trace>', 'trace file, or - for standard input')
    .requiredOption('-o, --output <file>', 'the HTML file to write')
    .option('--policy <name>', 'glibc, fixed:BYTES, heap or mmap', 'glibc')
    .option('--brk-limit <bytes>', 'the program break cannot grow more than this above its start')
    .option('--checkpoint-every <n>', 'events between model checkpoints in the page (default: 12 to 24 checkpoints)')
    .option('--title <text>', "the page's title (default: the trace's file name)")
    .action(
      action(async (trace: string, options: ReportCommandOptions) => {
        if (!options.output) throw new UsageError('report needs -o FILE');
        const brkLimit = options.brkLimit === undefined ? undefined : parseBytesOption('--brk-limit', options.brkLimit);
        const checkpointEvery = options.checkpointEvery === undefined ? undefined : parseCountOption('--checkpoint-every', options.checkpointEvery, 1);
        // Open the output first: a path that cannot be written is said at once, not after the whole build.
        const fd = openOutput(options.output);
        const progress = Progress.forTrace(trace, 'report');
        let result;
        try {
          result = await buildReport(trace, { policy: options.policy, brkLimit, checkpointEvery, title: options.title, onProgress: (event) => progress.tick(event) });
        } catch (error) {
          closeSync(fd);
          unlinkSync(options.output);
          throw error;
        } finally {
          progress.done();
        }
        writeFileSync(fd, result.html);
        closeSync(fd);
        const mb = (result.sizes.html / (1024 * 1024)).toFixed(2);
        process.stderr.write(`mallocscope: wrote ${options.output} (${mb} MiB, ${result.events} events, ${result.checkpoints} checkpoints)\n`);
      }),
    );
}

/** Opens (creates or truncates) the report file; a coded error naming it when that is not possible. */
function openOutput(path: string): number {
  try {
    return openSync(path, 'w');
  } catch (error) {
    throw new MallocscopeError('OUTPUT_OPEN', `cannot write ${path}: ${errnoReason(error)}`);
  }
}
