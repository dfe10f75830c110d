// `mallocscope diff TRACE A B`: one trace through two configurations side by side (src/report/diff.ts); the
// first event where they part, explained on both sides, and the footprint and system calls of each.
//
// The two sides come from --glibc, --policy and --set: what is given once applies to both sides, what is
// given twice is A then B. A lone --policy or --set, with nothing given twice, is compared with plain glibc.
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { parsePolicyColumn, parseSetColumn, type ColumnSpec } from '../report/compare.ts';
import { diffTrace, formatDiff } from '../report/diff.ts';
import { exactJson } from '../report/json.ts';
import { rulesFor } from '../replay/glibc.ts';
import type { GlibcRules } from '../allocator/versions.ts';
import { readTrace, traceDisplayName } from '../trace/reader.ts';
import { colourFlag } from './colour.ts';
import { CHECK_DIFFERS } from './check-command.ts';
import { GLIBC_HELP, brkLimitOption, colourOptions, glibcFor, jsonOption, parseBrkLimit } from './options.ts';
import { Progress } from './progress.ts';
import { action } from './run.ts';

/** diff's exit status when the two configurations differ: check's, so that 1 stays bad input and 2 bad usage. */
export const DIFF_DIFFERS = CHECK_DIFFERS;

interface DiffCommandOptions {
  json?: boolean;
  brkLimit?: string;
  color?: boolean;
}

const HELP = `
The two configurations: --glibc, --policy and --set given once apply to both sides; given twice, the first
is A and the second B. A single --policy or --set (with nothing given twice) is B, against plain glibc as A.
  mallocscope diff app.trace --glibc 2.36 --glibc 2.41          two versions
  mallocscope diff app.trace --policy glibc --policy heap       two policies (the default version)
  mallocscope diff app.trace --set M_TOP_PAD=0                  glibc against glibc with mallopt(M_TOP_PAD, 0)
  mallocscope diff app.trace --glibc 2.39 --policy heap --policy mmap

An event is placed differently when its block differs (heap or mmap, chunk size, heap offset) or one side
returns NULL. diff shows the first such event with both explanations (as \`mallocscope explain\` words them);
the event where the two heaps first parted, when that came earlier (a freed chunk put in another bin: the
path, the freed chunks' fate, consolidations, trims, system calls or thresholds differ); the first event
after which mallinfo2 differs; then the peaks and system calls of each side, and B − A.

Exit status: 0 when every event places its block alike and leaves the same mallinfo2; ${DIFF_DIFFERS} when the two
differ (as check); 1 bad input (a bad trace); 2 bad usage.`;

export function registerDiff(program: Command): void {
  // --policy and --set feed one list, so that their order on the command line is the order of the sides.
  const columns: ColumnSpec[] = [];
  const versions: string[] = [];
  const command = program
    .command('diff')
    .description('one trace through two configurations (versions, policies, settings): the first event they place differently, explained on both sides')
    .argument('<trace>', 'trace file, or - for standard input')
    .option('--glibc <version>', `${GLIBC_HELP}: once for both sides, twice for A then B`, (text: string) => {
      versions.push(text);
      return text;
    })
    .option(
      '--policy <name>',
      'glibc, fixed:BYTES, heap or mmap, optionally with ,PARAM=VALUE settings: once for both sides, twice for A then B',
      (text: string) => {
        columns.push(parsePolicyColumn(text));
        return text;
      },
    )
    .option(
      '--set <PARAM=VALUE>',
      'glibc with mallopt(PARAM, VALUE) before the first event (join settings with commas); a side, as --policy',
      (text: string) => {
        columns.push(parseSetColumn(text));
        return text;
      },
    )
    .addOption(jsonOption('the comparison'))
    .addOption(brkLimitOption())
    .addHelpText('after', HELP);
  for (const option of colourOptions()) command.addOption(option);
  command.action(
    action((trace: string, options: DiffCommandOptions) => {
      const [a, b] = sides(columns, versions);
      const brkLimit = parseBrkLimit(options.brkLimit);
      const progress = Progress.forTrace(trace, 'diff', { colour: colourFlag(options) });
      const reader = readTrace(trace);
      let result: ReturnType<typeof diffTrace>;
      try {
        result = diffTrace(reader, a, b, { system: { brkLimit }, onEvent: (event) => progress.tick(event) });
      } finally {
        progress.done();
        reader.close();
      }
      const name = traceDisplayName(trace);
      if (options.json) process.stdout.write(`${exactJson({ trace: name, ...result }, 2)}\n`);
      else process.stdout.write(`${formatDiff(result, name)}\n`);
      if (!result.same) process.exitCode = DIFF_DIFFERS;
    }),
  );
}

/** The two sides the options name (see the file's comment), each with its version and a label that says it. */
function sides(columns: ColumnSpec[], versions: string[]): [ColumnSpec, ColumnSpec] {
  if (versions.length > 2) throw new UsageError(`--glibc given ${versions.length} times: diff compares two configurations (once for both, or A then B)`);
  if (columns.length > 2)
    throw new UsageError(`--policy and --set given ${columns.length} times: diff compares two configurations (once for both, or A then B)`);
  if (versions.length < 2 && columns.length < 2) {
    if (columns.length === 0) {
      throw new UsageError(
        'diff needs two configurations: give --glibc, --policy or --set twice (A, then B), or one --policy or --set to set against plain glibc',
      );
    }
    columns.unshift(parsePolicyColumn('glibc'));
  }
  const rules: GlibcRules[] = versions.length ? versions.map((v) => rulesFor(v)) : [glibcFor({})];
  const pick = <T>(list: T[], i: number): T | undefined => list[Math.min(i, list.length - 1)];
  return [0, 1].map((i) => {
    const column = pick(columns, i) ?? parsePolicyColumn('glibc');
    const glibc = pick(rules, i) as GlibcRules;
    const plain = column.policy === 'glibc' && column.settings.length === 0;
    return { ...column, glibc, label: `glibc ${glibc.version}${plain ? '' : `, ${column.label}`}` };
  }) as [ColumnSpec, ColumnSpec];
}
