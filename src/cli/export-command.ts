// `mallocscope export massif TRACE [-o FILE]`: the model's timeline in another tool's format; for now Valgrind
// massif's, for ms_print and massif-visualizer (src/report/massif.ts, docs/export.md).
import type { Command } from 'commander';
import { Option } from 'commander';
import { UsageError } from '../errors.ts';
import { parseSafeNumber } from '../number.ts';
import { MAX_SNAPSHOTS, MIN_SNAPSHOTS, writeMassif, type MassifExtra, type MassifTimeUnit } from '../report/massif.ts';
import { readTrace, traceDisplayName, traceHasThreads } from '../trace/reader.ts';
import { colourFlag } from './colour.ts';
import {
  brkLimitOption,
  checkTunables,
  colourOptions,
  coresOption,
  glibcFor,
  glibcOption,
  modelTunablesOption,
  outputOption,
  parseBrkLimit,
  parseCores,
  parseCountOption,
  policyOption,
} from './options.ts';
import { OutputFile } from './output.ts';
import { Progress } from './progress.ts';
import { action } from './run.ts';
import { spoolStdin } from './spool.ts';

/** The formats `export` writes. */
const FORMATS = ['massif'] as const;

interface ExportCommandOptions {
  output: string;
  policy: string;
  glibc?: string;
  tunables?: string;
  brkLimit?: string;
  cores?: string;
  timeUnit: string;
  extra: string;
  maxSnapshots: string;
  detailedFreq: string;
  threshold: string;
  color?: boolean;
}

/** --threshold's value: a percentage from 0 to 100, decimal (massif's own form: 1, 0.5, 2.25). */
function parseThreshold(text: string): number {
  const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= 0 && value <= 100)) throw new UsageError(`--threshold takes a percentage from 0 to 100 (such as 1 or 0.5), not '${text}'`);
  return value;
}

export function registerExport(program: Command): void {
  const command = program
    .command('export')
    .description("write the model's timeline in another tool's format: massif (Valgrind's, for ms_print and massif-visualizer)")
    .argument('<format>', `the format: ${FORMATS.join(', ')}`)
    .argument('<trace>', 'trace file, or - for standard input')
    .addOption(outputOption('the profile').default('-', 'standard output'))
    .addOption(policyOption())
    .addOption(glibcOption())
    .addOption(modelTunablesOption())
    .addOption(brkLimitOption())
    .addOption(coresOption())
    .addOption(new Option('--time-unit <unit>', "massif's time: i (the calls made so far) or B (the bytes allocated and freed so far)").default('i'))
    .addOption(
      new Option(
        '--extra <what>',
        "mem_heap_extra_B: overhead (the live blocks' headers, rounding and page rounding, massif's meaning) or footprint (all of glibc's footprint beyond the live bytes)",
      ).default('overhead'),
    )
    .addOption(new Option('--max-snapshots <n>', `at most this many snapshots (${MIN_SNAPSHOTS} to ${MAX_SNAPSHOTS}), as massif's option`).default('100'))
    .addOption(new Option('--detailed-freq <n>', "every Nth snapshot has a tree of the live blocks (the peak's always has), as massif's option").default('10'))
    .addOption(new Option('--threshold <percent>', "tree nodes under this share of the snapshot are summed into one, as massif's option").default('1.0'));
  for (const option of colourOptions()) command.addOption(option);
  command.action(
    action((format: string, trace: string, options: ExportCommandOptions) => {
      if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`unknown format '${format}' (expected ${FORMATS.join(', ')})`);
      if (options.timeUnit !== 'i' && options.timeUnit !== 'B') {
        throw new UsageError(`--time-unit takes i (calls) or B (bytes), not '${options.timeUnit}' (a trace has no clock: no ms)`);
      }
      if (options.extra !== 'overhead' && options.extra !== 'footprint') throw new UsageError(`--extra takes overhead or footprint, not '${options.extra}'`);
      const maxSnapshots = parseSafeNumber(options.maxSnapshots);
      if (maxSnapshots === undefined || maxSnapshots < MIN_SNAPSHOTS || maxSnapshots > MAX_SNAPSHOTS) {
        throw new UsageError(`--max-snapshots takes a whole number from ${MIN_SNAPSHOTS} to ${MAX_SNAPSHOTS}, not '${options.maxSnapshots}'`);
      }
      const detailedFreq = parseCountOption('--detailed-freq', options.detailedFreq, 1);
      const threshold = parseThreshold(options.threshold);
      const brkLimit = parseBrkLimit(options.brkLimit);
      const cores = parseCores(options.cores);
      const rules = glibcFor(options);
      checkTunables(options.tunables, rules);
      const name = traceDisplayName(trace);
      // How the profile was made, as massif's desc: line gives its options.
      const description = [
        `--policy=${options.policy}`,
        `--glibc=${rules.version}`,
        ...(options.tunables !== undefined ? [`--tunables=${options.tunables}`] : []),
        ...(brkLimit !== undefined ? [`--brk-limit=${brkLimit}`] : []),
        ...(cores !== undefined ? [`--cores=${cores}`] : []),
        `--time-unit=${options.timeUnit}`,
        `--extra=${options.extra}`,
        `--max-snapshots=${maxSnapshots}`,
        `--detailed-freq=${detailedFreq}`,
        `--threshold=${threshold}`,
      ].join(' ');
      // Opened before the work, so that an unwritable path fails first; removed if the work fails.
      const output = OutputFile.open(options.output);
      // The trace is read twice: standard input is first copied to a temporary file.
      const spool = trace === '-' ? spoolStdin(name, 'export') : null;
      const path = spool?.path ?? trace;
      const bars = [1, 2].map((pass) => Progress.forTrace(path, `export (pass ${pass} of 2)`, { colour: colourFlag(options) }));
      try {
        writeMassif(
          () => readTrace(path, { name }),
          (text) => output.write(text),
          {
            policy: options.policy,
            glibc: rules.version,
            tunables: options.tunables,
            system: { brkLimit },
            cores,
            timeUnit: options.timeUnit as MassifTimeUnit,
            extra: options.extra as MassifExtra,
            maxSnapshots,
            detailedFreq,
            threshold,
            name,
            threads: traceHasThreads(path),
            description,
            onEvent: (pass, event) => {
              if (pass === 2) bars[0].done();
              bars[pass - 1].tick(event);
            },
          },
        );
        output.close();
      } catch (error) {
        output.discard();
        throw error;
      } finally {
        for (const bar of bars) bar.done();
        spool?.remove();
      }
    }),
  );
}
