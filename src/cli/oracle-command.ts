// `mallocscope oracle TRACE`: replays a trace through this machine's real glibc (native/oracle) and prints
// its JSON Lines (docs/trace-format.md) straight to standard output, so that large outputs stream.
import type { Command } from 'commander';
import { MallocscopeError, UsageError } from '../errors.ts';
import { signalError, spawnOracle, type OracleOptions } from '../oracle/oracle.ts';
import { brkLimitOption, keepEnvOption, parseBrkLimit, statsOption, tunablesOption } from './options.ts';
import { action } from './run.ts';

interface OracleCommandOptions {
  stats?: boolean;
  keepEnv?: boolean;
  tunables?: string;
  brkLimit?: string;
}

export function registerOracle(program: Command): void {
  program
    .command('oracle')
    .description("replay a trace through this machine's real glibc malloc and print one JSON line per call")
    .argument('<trace>', 'the trace; - for standard input')
    .addOption(statsOption('after every call'))
    .addOption(brkLimitOption())
    .addOption(keepEnvOption())
    .addOption(tunablesOption())
    .action(
      action(async (trace: string, options: OracleCommandOptions) => {
        process.exitCode = await runOracleCommand(trace, options);
      }),
    );
}

/** Runs the oracle with our standard streams; resolves to its exit status. */
export async function runOracleCommand(trace: string, options: OracleCommandOptions): Promise<number> {
  const oracleOptions: OracleOptions = { stats: options.stats, keepEnv: options.keepEnv, tunables: options.tunables, brkLimit: parseBrkLimit(options.brkLimit) };
  if (options.tunables?.includes('\0')) throw new UsageError('--tunables cannot hold a NUL character');
  const child = spawnOracle(trace, oracleOptions, 'inherit');
  // The oracle prints its own errors (the documented one-line form) on our stderr; we pass on its status.
  const { status, signal } = await new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ status: code, signal: sig }));
  });
  if (signal) throw signalError(signal);
  if (status === null) throw new MallocscopeError('ORACLE_FAILED', 'the oracle ended without an exit status', 70);
  return status;
}
