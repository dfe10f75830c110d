// `mallocscope oracle TRACE`: replays a trace through this machine's real glibc (native/oracle) and prints
// its JSON Lines (docs/trace-format.md) straight to standard output, so that large outputs stream.
import type { Command } from 'commander';
import { MallocscopeError, UsageError } from '../errors.ts';
import { parseByteCount, signalError, spawnOracle, type OracleOptions } from '../oracle/oracle.ts';
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
    .option('--stats', 'add mallinfo2 (arena, hblks, hblkhd, uordblks, fordblks, keepcost) after each call')
    .option('--keep-env', 'keep MALLOC_*, GLIBC_TUNABLES and LD_PRELOAD for the replay (removed by default)')
    .option('--tunables <string>', 'set GLIBC_TUNABLES for the replay, e.g. glibc.malloc.tcache_count=0')
    .option('--brk-limit <bytes>', 'make sbrk fail this many bytes above the initial break, so glibc falls back to mmap')
    .action(
      action(async (trace: string, options: OracleCommandOptions) => {
        process.exitCode = await runOracleCommand(trace, options);
      }),
    );
}

/** Runs the oracle with our standard streams; resolves to its exit status. */
export async function runOracleCommand(trace: string, options: OracleCommandOptions): Promise<number> {
  const oracleOptions: OracleOptions = { stats: options.stats, keepEnv: options.keepEnv, tunables: options.tunables };
  if (options.brkLimit !== undefined) {
    const limit = parseByteCount(options.brkLimit);
    if (limit === undefined) {
      throw new UsageError(`--brk-limit takes a byte count (decimal or 0x-hexadecimal, at most 2^64-1), not '${options.brkLimit}'`);
    }
    oracleOptions.brkLimit = limit;
  }
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
