// `mallocscope compare TRACE --policy glibc --policy fixed:131072 --set M_TRIM_THRESHOLD=N … [--json]`:
// one column per policy, setting or GLIBC_TUNABLES string (--tunables), in the order given; footprint against live
// bytes (src/report/compare.ts).
//
// A --policy column is a policy, optionally with mallopt settings after commas (`heap,M_TOP_PAD=0`). A --set
// column is the glibc policy with the settings (`M_TRIM_THRESHOLD=0,M_TOP_PAD=0`), applied with mallopt
// before the first event, exactly as a program's first lines would (so the sliding is off in that column).
// With no --policy, a glibc column comes first as the baseline; with no column at all: glibc, fixed:131072, heap.
//
// `--allocator glibc|jemalloc|tcmalloc|mimalloc` (repeatable) compares real allocators instead (docs/allocators.md):
// a column each, the trace replayed by the oracle with the library preloaded; not mixed with the model's columns,
// whose figures are another kind (a model's footprint, not a process's resident memory).
import { exactJson } from '../report/json.ts';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import type { GlibcRules } from '../allocator/versions.ts';
import {
  DEFAULT_COLUMNS,
  compareTrace,
  formatCompareTable,
  parsePolicyColumn,
  parseSetColumn,
  parseTunablesColumn,
  type ColumnSpec,
} from '../report/compare.ts';
import { formatAllocatorTable } from '../report/allocators.ts';
import { traceDisplayName } from '../trace/reader.ts';
import { allocatorColumns, parseAllocatorNames } from './allocators.ts';
import { colourFlag } from './colour.ts';
import { Progress } from './progress.ts';
import {
  GLIBC_HELP,
  brkLimitOption,
  checkTunables,
  colourOptions,
  coresOption,
  glibcFor,
  jsonOption,
  parseBrkLimit,
  parseCores,
  touchOption,
} from './options.ts';
import { rulesFor } from '../replay/glibc.ts';
import { action } from './run.ts';

interface CompareCommandOptions {
  glibc?: string[];
  allocator?: string[];
  json?: boolean;
  brkLimit?: string;
  cores?: string;
  color?: boolean;
  touch?: boolean;
}

export function registerCompare(program: Command): void {
  // Both options feed one list, so the columns keep the command line's order.
  const given: { kind: 'policy' | 'set' | 'glibc' | 'tunables'; text: string }[] = [];
  const command = program
    .command('compare')
    .description('footprint against live bytes, one column per policy or glibc setting')
    .argument('<trace>', 'trace file, or - for standard input')
    .option('--policy <name>', 'a column: glibc, fixed:BYTES, heap or mmap, optionally with ,PARAM=VALUE settings (repeatable)', (text: string) => {
      given.push({ kind: 'policy', text });
      return text;
    })
    .option(
      '--set <PARAM=VALUE>',
      'a column: glibc with mallopt(PARAM, VALUE) before the first event; join settings with commas (repeatable)',
      (text: string) => {
        given.push({ kind: 'set', text });
        return text;
      },
    )
    .option(
      '--tunables <string>',
      'a column: glibc under this GLIBC_TUNABLES string, read as that glibc reads it (glibc.malloc.* only; repeatable)',
      (text: string) => {
        given.push({ kind: 'tunables', text });
        return text;
      },
    )
    .option(
      '--glibc <version>',
      `${GLIBC_HELP}; given twice or more, a column per version, the other columns under the default (repeatable)`,
      (text: string, all: string[] = []) => {
        given.push({ kind: 'glibc', text });
        return [...all, text];
      },
    )
    .option(
      '--allocator <name>',
      "a column: the real glibc, jemalloc, tcmalloc or mimalloc replaying the trace, every byte written: RSS, time, system calls (repeatable; not with the model's columns)",
      (text: string, all: string[] = []) => [...all, text],
    )
    .addOption(jsonOption('the figures'))
    .addOption(brkLimitOption())
    .addOption(coresOption())
    .addOption(touchOption('add the rows peak RSS (est.) and end RSS (est.)'));
  for (const option of colourOptions()) command.addOption(option);
  command.action(
    action((trace: string, options: CompareCommandOptions) => {
      if (options.allocator !== undefined) {
        compareAllocators(trace, options, given);
        return;
      }
      // One --glibc sets the version of every column; several make a column each ("glibc 2.39").
      const versions = given.filter((g) => g.kind === 'glibc').map((g) => rulesFor(g.text));
      const columns: ColumnSpec[] = [];
      let nextVersion = 0;
      for (const g of given) {
        if (g.kind === 'policy') columns.push(parsePolicyColumn(g.text));
        else if (g.kind === 'set') columns.push(parseSetColumn(g.text));
        else if (g.kind === 'tunables') columns.push(parseTunablesColumn(g.text));
        else {
          const glibc = versions[nextVersion++];
          if (versions.length > 1) columns.push({ label: `glibc ${glibc.version}`, policy: 'glibc', settings: [], glibc });
        }
      }
      if (!given.some((g) => g.kind !== 'glibc')) {
        if (versions.length < 2) columns.push(...DEFAULT_COLUMNS.map(parsePolicyColumn));
      } else if (!given.some((g) => g.kind === 'policy') && versions.length < 2) columns.unshift(parsePolicyColumn('glibc'));
      const version = versions.length === 1 ? versions[0] : glibcFor({});
      for (const column of columns) {
        // Beside columns of other versions, a column under the default says which it is.
        if (versions.length > 1 && column.glibc === undefined) column.label = `${column.label} (glibc ${version.version})`;
        column.glibc ??= version;
      }
      if (columns.length > 16) throw new UsageError('at most 16 columns');
      for (const column of columns) checkTunables(column.tunables, column.glibc as GlibcRules);
      const brkLimit = parseBrkLimit(options.brkLimit);
      const progress = Progress.forTrace(trace, 'compare', { colour: colourFlag(options) });
      let figures: ReturnType<typeof compareTrace>;
      try {
        figures = compareTrace(trace, columns, {
          system: { brkLimit },
          cores: parseCores(options.cores),
          onEvent: (event) => progress.tick(event),
          resident: options.touch,
        });
      } finally {
        progress.done();
      }
      if (options.json) {
        process.stdout.write(`${exactJson({ trace: traceDisplayName(trace), columns: figures }, 2)}\n`);
        return;
      }
      const one = versions.length > 1 ? '' : `, glibc ${version.version}`;
      process.stdout.write(`${traceDisplayName(trace)}: ${figures[0]?.events ?? 0} events${one}\n${formatCompareTable(figures)}\n`);
    }),
  );
}

/** `compare --allocator ...`: the real allocators' columns (src/cli/allocators.ts). */
function compareAllocators(trace: string, options: CompareCommandOptions, given: readonly { kind: string }[]): void {
  const other = [...given.map((g) => `--${g.kind}`), ...(options.touch ? ['--touch'] : []), ...(options.cores !== undefined ? ['--cores'] : [])];
  if (other.length > 0) {
    throw new UsageError(
      `--allocator compares real allocators and cannot be mixed with ${[...new Set(other)].join(', ')} (the model's columns): run compare twice`,
    );
  }
  const names = parseAllocatorNames(options.allocator ?? []);
  const columns = allocatorColumns(trace, names, { brkLimit: parseBrkLimit(options.brkLimit) });
  if (options.json) {
    process.stdout.write(`${exactJson({ trace: traceDisplayName(trace), columns }, 2)}\n`);
    return;
  }
  const events = columns[0]?.events ?? 0;
  process.stdout.write(
    `${traceDisplayName(trace)}: ${events} events, each allocator replaying them in a process of its own, every byte written\n${formatAllocatorTable(columns)}\n`,
  );
}
