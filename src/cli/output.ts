// Output for the commands: buffered lines to stdout for commands that print many lines, and the file a
// command writes with -o (`-` for standard output), opened before the work and removed if the work fails.
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { closeSync, fstatSync, ftruncateSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { MallocscopeError, UsageError, errnoReason } from '../errors.ts';
import { LineBuffer } from '../line-buffer.ts';
import { ExitRequest } from './run.ts';

/**
 * Where the bytes for standard output go: fd 1, written whole. The CLI run in-process (test/support/cli.ts)
 * puts a collector here for the time of a command.
 */
export const standardOutput = {
  write(bytes: Uint8Array): void {
    writeAll(1, bytes);
  },
};

/**
 * What a child that writes to our standard streams (the program `record` runs, the oracle of `oracle`) is
 * given: our own fds, inherited, so that its bytes never pass through Node; or, while the in-process CLI
 * (test/support/cli.ts) sets `collect`, pipes whose bytes are handed to it as if written to our fd 1 or 2.
 */
export const childStreams: { collect: ((fd: 1 | 2, bytes: Buffer) => void) | null } = { collect: null };

/** The stdio for such a child: our stdin; its stdout to our fd `stdoutTo` (1, or 2 to keep 1 for a trace); its stderr to ours. */
export function sharedStdio(stdoutTo: 1 | 2 = 1): StdioOptions {
  return childStreams.collect ? ['inherit', 'pipe', 'pipe'] : ['inherit', stdoutTo, 'inherit'];
}

/** Passes the output of a child started with sharedStdio to the collector, when one is set. */
export function forwardShared(child: ChildProcess, stdoutTo: 1 | 2 = 1): void {
  const collect = childStreams.collect;
  if (!collect) return;
  child.stdout?.on('data', (bytes: Buffer) => collect(stdoutTo, bytes));
  child.stderr?.on('data', (bytes: Buffer) => collect(2, bytes));
}

/**
 * Buffered output to stdout: one write per 64 KiB, straight to fd 1, so a million-line replay is not a
 * million stream writes. A closed pipe ends the command quietly.
 */
export class LineOutput extends LineBuffer {
  /** `fd` 1 (the default) is standard output, as standardOutput sends it. */
  constructor(fd = 1) {
    super((text) => {
      const bytes = Buffer.from(text, 'utf8');
      if (fd === 1) standardOutput.write(bytes);
      else writeAll(fd, bytes);
    });
  }
}

/** Something to sleep on while a pipe is full. */
const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `bytes` to `fd`, waiting on a full non-blocking pipe; a closed pipe ends the command (status 0). */
function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    try {
      done += writeSync(fd, bytes, done);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        // A non-blocking pipe that is full: wait for the reader without spinning (`… | less`).
        Atomics.wait(pause, 0, 0, 2);
        continue;
      }
      if (code === 'EPIPE') throw new ExitRequest(0);
      throw error;
    }
  }
}

/**
 * The file named by -o, or standard output for `-`. Opening checks that the path can be written without
 * touching an existing file; the file is emptied when the first bytes are written; `discard()` after a
 * failure removes what this command created or began to write, and leaves an untouched file as it was.
 */
export class OutputFile {
  private begun = false;

  private constructor(
    /** The path as given, or `-`. */
    readonly path: string,
    private fd: number,
    private readonly created: boolean,
  ) {
    // Only a regular file is emptied or removed (never /dev/null or a pipe named by -o).
    this.regular = fd > 2 && fstatSync(fd).isFile();
  }

  private readonly regular: boolean;

  /** Opens `path` for writing (`-`: standard output); OUTPUT_OPEN naming the path when it cannot be. */
  static open(path: string): OutputFile {
    if (path === '-') return new OutputFile(path, 1, false);
    if (path === '') throw new UsageError('-o needs a file name, or - for standard output');
    try {
      return new OutputFile(path, openSync(path, 'r+'), false);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw openError(path, error);
    }
    try {
      return new OutputFile(path, openSync(path, 'wx'), true);
    } catch (error) {
      throw openError(path, error);
    }
  }

  /** Whether this is standard output. */
  get isStdout(): boolean {
    return this.path === '-';
  }

  write(text: string | Uint8Array): void {
    if (!this.begun && this.regular) ftruncateSync(this.fd, 0);
    this.begun = true;
    const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
    if (this.fd === 1) standardOutput.write(bytes);
    else writeAll(this.fd, bytes);
  }

  /** Closes the file: the work is done. */
  close(): void {
    if (this.fd > 2) closeSync(this.fd);
    this.fd = -1;
  }

  /**
   * Runs `work`, which writes the file's text through the function it is given; closes the file when it is
   * done, or discards it (as discard() does) when it fails.
   */
  async fill<T>(work: (write: (text: string) => void) => Promise<T>): Promise<T> {
    try {
      const result = await work((text) => this.write(text));
      this.close();
      return result;
    } catch (error) {
      this.discard();
      throw error;
    }
  }

  /** Closes the file after a failure, and removes it if this command created it or began to write it. */
  discard(): void {
    if (this.fd < 0) return;
    this.close();
    if (this.regular && (this.created || this.begun)) unlinkSync(this.path);
  }
}

function openError(path: string, error: unknown): MallocscopeError {
  return new MallocscopeError('OUTPUT_OPEN', `cannot write ${path}: ${errnoReason(error)}`);
}
