// `mallocscope anatomy TRACE [--at peak|end|SEQ] [--json]`: where the footprint goes at one event, byte for
// byte, what malloc_trim(0) would give back, the block that pins the heap, and the fragmentation measures
// (src/report/anatomy.ts, docs/anatomy.md).
import type { Command } from 'commander';
import { Option } from 'commander';
import { UsageError } from '../errors.ts';
import { parseSafeNumber } from '../number.ts';
import { anatomyOfTrace, formatAnatomy, type AnatomyAt } from '../report/anatomy.ts';
import { exactJson } from '../report/json.ts';
import { readTrace, traceDisplayName } from '../trace/reader.ts';
import { colourFlag } from './colour.ts';
import { Progress } from './progress.ts';
import {
  brkLimitOption,
  colourOptions,
  coresOption,
  glibcFor,
  glibcOption,
  jsonOption,
  parseBrkLimit,
  parseCores,
  policyOption,
  touchOption,
} from './options.ts';
import { action } from './run.ts';
import { spoolStdin } from './spool.ts';

interface AnatomyCommandOptions {
  at: string;
  json?: boolean;
  policy: string;
  glibc?: string;
  brkLimit?: string;
  cores?: string;
  touch?: boolean;
  color?: boolean;
}

/** --at's value: peak, end, or an event's seq. */
export function parseAt(text: string): AnatomyAt {
  if (text === 'peak' || text === 'end') return text;
  const seq = parseSafeNumber(text);
  if (seq === undefined) throw new UsageError(`--at takes peak, end or an event's seq (0-based, as in replay --jsonl), not '${text}'`);
  return seq;
}

export function registerAnatomy(program: Command): void {
  const command = program
    .command('anatomy')
    .description('where the footprint goes at one event, byte for byte; what malloc_trim(0) would give back; what pins the heap')
    .argument('<trace>', 'trace file, or - for standard input')
    .addOption(new Option('--at <event>', 'peak (the first event of the peak footprint), end, or an event seq (0-based, as in replay --jsonl)').default('end'))
    .addOption(jsonOption('the anatomy'))
    .addOption(policyOption())
    .addOption(glibcOption())
    .addOption(brkLimitOption())
    .addOption(coresOption())
    .addOption(touchOption("add the resident memory it makes (an estimate) and the part of malloc_trim(0)'s bytes that would leave RAM"));
  for (const option of colourOptions()) command.addOption(option);
  command.action(
    action((trace: string, options: AnatomyCommandOptions) => {
      const at = parseAt(options.at);
      const brkLimit = parseBrkLimit(options.brkLimit);
      const glibc = glibcFor(options).version;
      const name = traceDisplayName(trace);
      // The trace is read more than once (the pin's line; --at peak's second pass): standard input is first
      // copied to a temporary file for that.
      const spool = trace === '-' ? spoolStdin(name, 'anatomy') : null;
      const progress = Progress.forTrace(spool?.path ?? trace, 'anatomy', { colour: colourFlag(options) });
      let report: ReturnType<typeof anatomyOfTrace>;
      try {
        const path = spool?.path ?? trace;
        report = anatomyOfTrace(() => readTrace(path, { name }), at, {
          policy: options.policy,
          glibc,
          system: { brkLimit },
          cores: parseCores(options.cores),
          resident: options.touch,
          onEvent: (event) => progress.tick(event),
        });
      } finally {
        progress.done();
        spool?.remove();
      }
      if (options.json) {
        process.stdout.write(`${exactJson({ trace: name, glibc, policy: options.policy, ...report }, 2)}\n`);
        return;
      }
      process.stdout.write(`${formatAnatomy(report, `${name} (glibc ${glibc})`)}\n`);
    }),
  );
}
