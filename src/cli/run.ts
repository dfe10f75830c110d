// How every command ends: errors meant for a person become one line on stderr and an exit status,
// never a stack trace; a usage mistake points to the command's own help; a closed pipe
// (`mallocscope … | head`) ends the command quietly.
import type { Command } from 'commander';
import { MallocscopeError } from '../errors.ts';

/**
 * A command's end with an exit status, thrown up to main() (which returns the status), so that the command
 * line can run in-process (test/support/cli.ts) and the commands' finally blocks still run.
 */
export class ExitRequest extends Error {
  constructor(readonly status: number) {
    super(`exit ${status}`);
  }
}

/** Prints `mallocscope: MESSAGE` on stderr and ends the command with `status`. */
export function exitWith(message: string, status: number): never {
  process.stderr.write(`mallocscope: ${message}\n`);
  throw new ExitRequest(status);
}

/** Where to read about a command's usage: `mallocscope replay --help`, or the overview without a command. */
export function helpPointer(commandName?: string): string {
  return `(run \`mallocscope ${commandName ? `${commandName} ` : ''}--help\` for usage)`;
}

/**
 * Reports any error as one line: ours with their code and status (a usage error with a pointer to the
 * command's help), anything else as an internal error. An ExitRequest passes through.
 */
export function reportError(error: unknown, commandName?: string): never {
  if (error instanceof ExitRequest) throw error;
  if (error instanceof MallocscopeError) {
    if (error.code === 'USAGE') exitWith(`${error.message} ${helpPointer(commandName)} [USAGE]`, error.exitCode);
    exitWith(error.describe(), error.exitCode);
  }
  const text = error instanceof Error ? error.message : String(error);
  if (process.env.MALLOCSCOPE_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  exitWith(`internal error: ${text} (set MALLOCSCOPE_DEBUG=1 for details) [INTERNAL]`, 70);
}

/**
 * Wraps a command's action so that what it throws is reported, and a closed stdout is not an error.
 * Commander passes the command itself last, which names the help a usage error points to.
 */
export function action<A extends unknown[]>(run: (...args: A) => unknown): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (error) {
      const command = args[args.length - 1] as Command | undefined;
      reportError(error, typeof command?.name === 'function' ? command.name() : undefined);
    }
  };
}

// An error of an asynchronous write to stdout comes outside any command: it ends the process here.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  try {
    reportError(error);
  } catch (end) {
    process.exit(end instanceof ExitRequest ? end.status : 70);
  }
});
