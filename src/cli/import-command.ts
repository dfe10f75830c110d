// `mallocscope import FORMAT FILE`: another tool's log of a program's allocations as a trace (docs/import.md):
// glibc's mtrace, heaptrack's raw output, ltrace, and CS:APP malloc-lab traces. `import-mtrace` is kept as
// another name for `import mtrace`.
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { importHeaptrack } from '../trace/heaptrack.ts';
import type { ImportSummary } from '../trace/log-lines.ts';
import { importLtrace } from '../trace/ltrace.ts';
import { importMtrace } from '../trace/mtrace.ts';
import { importRep } from '../trace/rep.ts';
import { outputOption, preambleOption } from './options.ts';
import { OutputFile } from './output.ts';
import { action } from './run.ts';

interface ImportOptions {
  output?: string;
  preamble?: boolean;
  pid?: string;
  threads?: boolean;
}

type Write = (text: string) => void | Promise<void>;

/** The formats, each with the options that are its own. */
const FORMATS: Record<string, { own: (keyof ImportOptions)[]; run: (file: string, write: Write, options: ImportOptions) => Promise<ImportSummary> }> = {
  mtrace: { own: ['preamble'], run: (file, write, options) => importMtrace(file, write, { preamble: options.preamble }) },
  heaptrack: { own: [], run: (file, write) => importHeaptrack(file, write) },
  ltrace: { own: ['pid', 'threads'], run: (file, write, options) => importLtrace(file, write, { pid: options.pid, threads: options.threads }) },
  rep: { own: [], run: (file, write) => importRep(file, write) },
};
const FORMAT_NAMES = Object.keys(FORMATS);
const OPTION_NAMES: Record<string, string> = { preamble: '--preamble', pid: '--pid', threads: '--threads' };

export function registerImport(program: Command): void {
  program
    .command('import')
    .description(`convert another tool's log of a program's allocations to a trace: ${FORMAT_NAMES.join(', ')} (docs/import.md)`)
    .argument('<format>', 'mtrace (a glibc mtrace log), heaptrack (heaptrack --raw output), ltrace (an ltrace log), rep (a CS:APP malloc-lab trace)')
    .argument('<file>', 'the log; - for standard input')
    .addOption(outputOption('the trace', 'standard output'))
    .addOption(preambleOption('mtrace: '))
    .option('--pid <pid>', 'ltrace: import only the calls of this pid (a log of ltrace -f)')
    .option('--threads', 'ltrace: import every pid of a log of ltrace -f as a thread of one process')
    .action(action(async (format: string, file: string, options: ImportOptions) => importTo(format, file, options)));

  program
    .command('import-mtrace')
    .description('convert a glibc mtrace log (MALLOC_TRACE) to a trace: the same as import mtrace (docs/mtrace.md)')
    .argument('<log>', 'the mtrace log; - for standard input')
    .addOption(outputOption('the trace', 'standard output'))
    .addOption(preambleOption())
    .action(action(async (log: string, options: ImportOptions) => importTo('mtrace', log, options)));
}

async function importTo(format: string, file: string, options: ImportOptions): Promise<void> {
  const chosen = FORMATS[format];
  if (!chosen) throw new UsageError(`unknown format '${format}' (expected ${FORMAT_NAMES.join(', ')})`);
  for (const [key, name] of Object.entries(OPTION_NAMES)) {
    if (options[key as keyof ImportOptions] !== undefined && !chosen.own.includes(key as keyof ImportOptions)) {
      const owner = FORMAT_NAMES.find((other) => FORMATS[other].own.includes(key as keyof ImportOptions));
      throw new UsageError(`${name} is for import ${owner}, not ${format}`);
    }
  }
  if (options.pid !== undefined && options.threads) throw new UsageError('--pid and --threads exclude each other: one pid, or all of them as threads');
  if (options.pid !== undefined && !/^[1-9]\d{0,9}$/.test(options.pid))
    throw new UsageError(`--pid takes a process id, a positive whole number: '${options.pid}'`);
  const output = OutputFile.open(options.output ?? '-');
  const summary: ImportSummary = await output.fill((write) => chosen.run(file, write, options));
  const n = summary.untracked;
  if (n > 0) {
    process.stderr.write(
      `mallocscope: note: ${n === 1 ? '1 free or realloc of a block' : `${n} frees or reallocs of blocks`} the log never showed allocated ${n === 1 ? 'was' : 'were'} skipped (each is a comment in the trace)\n`,
    );
  }
  const m = summary.misnamed;
  if (m > 0) {
    process.stderr.write(
      `mallocscope: note: ${m === 1 ? '1 line names' : `${m} lines name`} a call of the malloc family that was another function, which ltrace misnamed, and ${m === 1 ? 'was' : 'were'} skipped (each is a comment in the trace)\n`,
    );
  }
}
