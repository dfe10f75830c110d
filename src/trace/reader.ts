// Reading trace files: readTrace opens a path (or `-` for standard input) and streams it through the parser
// (parser.ts, which has no Node API and is re-exported here, so that Node code imports one module).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { TraceError, errnoReason } from '../errors.ts';
import { DEFAULT_CHUNK, ThreadLineScanner, TraceReader, traceDisplayName, type ByteSource, type ReadTraceOptions } from './parser.ts';

export * from './parser.ts';

/** A file descriptor as the parser's byte source: read errors are TraceErrors (TRACE_OPEN) naming the trace. */
function fileSource(fd: number, closeFd: boolean, name: string): ByteSource {
  let open = true;
  return {
    read(into, offset, length) {
      for (;;) {
        try {
          return readSync(fd, into, offset, length, null);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN') continue; // a non-blocking stdin: wait for the writer
          if (code === 'EOF') return 0;
          throw new TraceError('TRACE_OPEN', name, 0, `cannot read: ${errnoReason(error)}`);
        }
      }
    },
    close() {
      if (open && closeFd) closeSync(fd);
      open = false;
    },
  };
}

/** Standard input as a byte source, read as readTrace reads `-` (a non-blocking stdin waited for, errors TRACE_OPEN). */
export function standardInput(name: string): ByteSource {
  return fileSource(0, false, name);
}

/**
 * Opens a trace file (or `-` for standard input) for streaming. A file that cannot be opened is a
 * TraceError with code TRACE_OPEN.
 */
export function readTrace(path: string, options: ReadTraceOptions = {}): TraceReader {
  const name = options.name ?? traceDisplayName(path);
  if (path === '-') return new TraceReader(standardInput(name), name, options.chunkSize);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new TraceError('TRACE_OPEN', name, 0, `cannot read: ${errnoReason(error)}`);
  }
  return new TraceReader(fileSource(fd, true, name), name, options.chunkSize ?? fileChunk(fd));
}

/**
 * The read buffer for a regular file smaller than the default chunk: its size and a byte (so that the second
 * read sees the end), not a whole MiB. Each reader's buffer is fresh memory the kernel must fault in and zero,
 * and tests and the differential script open hundreds of short traces.
 */
const MIN_CHUNK = 1 << 16;

function fileChunk(fd: number): number | undefined {
  try {
    const stat = fstatSync(fd);
    // At least 64 KiB: a file still being written when it is opened must not be read a few bytes at a time.
    return stat.isFile() && stat.size < DEFAULT_CHUNK ? Math.max(stat.size + 1, MIN_CHUNK) : undefined;
  } catch {
    return undefined; // reading it reports what is wrong
  }
}

/** traceHasThreads' read buffer, one for all calls (they are synchronous): a fresh MiB per call costs more than the look. */
const scanBuffer = new Uint8Array(1 << 16);

/**
 * Whether the trace file at `path` has threads, as the oracle decides it (ThreadLineScanner): a look at first
 * fields only. False for a file that cannot be read: reading it reports that.
 */
export function traceHasThreads(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  const scanner = new ThreadLineScanner();
  const buf = scanBuffer;
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch {
        return false; // a directory, say: reading it reports that
      }
      if (n === 0) return scanner.end();
      const found = scanner.feed(buf, n);
      if (found !== null) return found;
    }
  } finally {
    closeSync(fd);
  }
}
