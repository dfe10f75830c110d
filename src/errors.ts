// Errors that mallocscope reports to a person: each carries a stable code and, for bad input, where it is.
// The CLI prints them as one line and exits 1 (bad input) or 2 (bad usage); it never shows their stack.

/** Every error mallocscope raises on purpose. `code` is stable and documented; tests and scripts match it. */
export class MallocscopeError extends Error {
  /** A stable identifier such as TRACE_UNKNOWN_VERB. */
  readonly code: string;
  /** The process exit status the CLI uses for it: 1 for bad input, 2 for bad usage. */
  readonly exitCode: number;

  constructor(code: string, message: string, exitCode = 1) {
    super(message);
    this.name = 'MallocscopeError';
    this.code = code;
    this.exitCode = exitCode;
  }

  /** The one line the CLI prints, after "mallocscope: ". */
  describe(): string {
    return `${this.message} [${this.code}]`;
  }
}

/** A bad line in a trace (or an mtrace log): names the file and the 1-based line. */
export class TraceError extends MallocscopeError {
  /** The file as the user named it; `<stdin>` for standard input. */
  readonly file: string;
  /** 1-based line number; 0 when the error concerns the whole file (it cannot be read). */
  readonly line: number;
  /** The problem alone, without file and line. */
  readonly reason: string;

  constructor(code: string, file: string, line: number, reason: string) {
    super(code, line > 0 ? `${file}:${line}: ${reason}` : `${file}: ${reason}`, 1);
    this.name = 'TraceError';
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

/** A command line that cannot be carried out as written: exit status 2. */
export class UsageError extends MallocscopeError {
  constructor(message: string) {
    super('USAGE', message, 2);
    this.name = 'UsageError';
  }
}

const ERRNO_REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ENOEXEC: 'exec format error (not a program this machine can run)',
  ENOBUFS: 'more output than one string can hold (512 MiB): replay a shorter trace, or stream it (check)',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in system',
  EIO: 'input/output error',
  ENXIO: 'no such device or address',
  ENODEV: 'no such device',
};

/** Why a file could not be opened or read, in the words the oracle uses too (native/oracle/sysio.c). */
export function errnoReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code && ERRNO_REASONS[code]) return ERRNO_REASONS[code];
  return code ? code.toLowerCase() : String(error);
}

/** The model stops where the real process dies (glibc aborts it, or crashes): which event, and the signal. */
export class ModelAbortError extends MallocscopeError {
  constructor(
    readonly seq: number,
    readonly signal: 'SIGABRT' | 'SIGSEGV',
    message: string,
  ) {
    super('MODEL_ABORT', message, 1);
    this.name = 'ModelAbortError';
  }
}
