// `mallocscope oracle TRACE`: replays a trace through this machine's real glibc (native/oracle), or a glibc
// build named by --libc, and prints its JSON Lines (docs/trace-format.md) straight to standard output, so
// that large outputs stream. Starting the oracle is src/oracle's job; this only maps the options.
import { Option, type Command } from 'commander';
import { UsageError } from '../errors.ts';
import { LIBC_ENV, exitError, oracleDisplayName, oracleExited, spawnOracle, type OracleOptions } from '../oracle/oracle.ts';
import { brkLimitOption, keepEnvOption, parseBrkLimit, statsOption, touchOption, tunablesOption } from './options.ts';
import { forwardShared, sharedStdio } from './output.ts';
import { action } from './run.ts';

interface OracleCommandOptions {
  stats?: boolean;
  touch?: boolean;
  rss?: boolean;
  keepEnv?: boolean;
  tunables?: string;
  brkLimit?: string;
  libc?: string;
}

/** --libc DIR: the glibc build the oracle runs under (for every command that runs the oracle). */
export function libcOption(): Option {
  return new Option(
    '--libc <dir>',
    `run the real glibc of the build in DIR (its ld-linux-*.so.* and libc.so.6) instead of this machine's; default: $${LIBC_ENV}`,
  );
}

export function registerOracle(program: Command): void {
  program
    .command('oracle')
    .description("replay a trace through this machine's real glibc malloc and print one JSON line per call")
    .argument('<trace>', 'the trace; - for standard input')
    .addOption(statsOption('after every call'))
    .addOption(touchOption('the oracle writes them, so that their pages are resident'))
    .addOption(
      new Option(
        '--rss',
        "rss after every call: the resident bytes of glibc's memory (the process's anonymous RSS less the oracle's own buffers; docs/resident.md)",
      ),
    )
    .addOption(brkLimitOption())
    .addOption(keepEnvOption())
    .addOption(tunablesOption())
    .addOption(libcOption())
    .action(
      action(async (trace: string, options: OracleCommandOptions) => {
        process.exitCode = await runOracleCommand(trace, options);
      }),
    );
}

/** Runs the oracle with our standard streams; resolves to its exit status. */
export async function runOracleCommand(trace: string, options: OracleCommandOptions): Promise<number> {
  const oracleOptions: OracleOptions = {
    stats: options.stats,
    touch: options.touch,
    rss: options.rss,
    keepEnv: options.keepEnv,
    tunables: options.tunables,
    brkLimit: parseBrkLimit(options.brkLimit),
    libc: options.libc,
  };
  if (options.tunables?.includes('\0')) throw new UsageError('--tunables cannot hold a NUL character');
  const child = spawnOracle(trace, oracleOptions, sharedStdio());
  forwardShared(child);
  const end = await oracleExited(child);
  // The oracle printed its own errors (the documented one-line form) on our stderr; we pass on its status.
  // What it could not print (a signal, no status, no start) is raised as the runner words it.
  if (end.signal || end.status === null || end.stderr) {
    const error = exitError(end, oracleDisplayName(trace));
    if (error) throw error;
  }
  return end.status ?? 1;
}
