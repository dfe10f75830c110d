// How every command ends: errors meant for a person become one line on stderr and an exit status,
// never a stack trace; a closed pipe (`mallocscope … | head`) ends the command quietly.
import { MallocscopeError } from '../errors.ts';

/** Prints `mallocscope: MESSAGE` on stderr and exits with `status`. */
export function exitWith(message: string, status: number): never {
  process.stderr.write(`mallocscope: ${message}\n`);
  process.exit(status);
}

/** Reports any error as one line: ours with their code and status, anything else as an internal error. */
export function reportError(error: unknown): never {
  if (error instanceof MallocscopeError) exitWith(error.describe(), error.exitCode);
  const text = error instanceof Error ? error.message : String(error);
  if (process.env.MALLOCSCOPE_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  exitWith(`internal error: ${text} (set MALLOCSCOPE_DEBUG=1 for details) [INTERNAL]`, 70);
}

/** Wraps a command's action so that what it throws is reported, and a closed stdout is not an error. */
export function action<A extends unknown[]>(run: (...args: A) => unknown): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (error) {
      reportError(error);
    }
  };
}

process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  reportError(error);
});
