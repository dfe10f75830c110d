// Reads a log that its tool may have compressed (heaptrack pipes its output through zstd, or gzip when zstd is
// missing): the first bytes tell which, and the rest is decompressed as it streams. gzip through Node's zlib;
// zstd through zlib where this Node has it (22.15 and later), else through the `zstd` program.
import { spawn } from 'node:child_process';
import { Readable, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { TraceError } from '../errors.ts';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Where decompression errors are reported: the log's name and the code to use. */
export interface DecompressOptions {
  file: string;
  code: string;
}

function startsWith(bytes: Buffer, magic: readonly number[]): boolean {
  return bytes.length >= magic.length && magic.every((byte, i) => bytes[i] === byte);
}

/** The log's text bytes: `input` as it is, or decompressed when it starts as a gzip or zstd stream does. */
export async function* decompressed(input: AsyncIterable<Buffer>, options: DecompressOptions): AsyncGenerator<Buffer> {
  const iterator = input[Symbol.asyncIterator]();
  // Enough bytes to tell the formats apart (a pipe may deliver fewer at first).
  let head = Buffer.alloc(0);
  let done = false;
  while (head.length < ZSTD_MAGIC.length) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    head = Buffer.concat([head, next.value]);
  }
  async function* whole(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (done) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  if (startsWith(head, GZIP_MAGIC)) yield* throughTransform(whole(), zlib.createGunzip(), 'gzip', options);
  else if (startsWith(head, ZSTD_MAGIC)) yield* zstd(whole(), options);
  else yield* whole();
}

/** zstd: this Node's own decoder when it has one, else the `zstd` program. */
function zstd(input: AsyncIterable<Buffer>, options: DecompressOptions): AsyncGenerator<Buffer> {
  const create = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
  return create ? throughTransform(input, create(), 'zstd', options) : throughZstdProgram(input, options);
}

async function* throughTransform(input: AsyncIterable<Buffer>, transform: Transform, what: string, options: DecompressOptions): AsyncGenerator<Buffer> {
  const source = Readable.from(input);
  let readError: unknown;
  source.on('error', (error) => {
    readError = error;
    transform.destroy(error);
  });
  source.pipe(transform);
  try {
    for await (const chunk of transform) yield chunk as Buffer;
  } catch (error) {
    if (readError !== undefined) throw readError; // the file's own read error, reported as such
    throw new TraceError(options.code, options.file, 0, `cannot decompress (${what}): ${(error as Error).message}`);
  } finally {
    source.destroy();
    transform.destroy();
  }
}

async function* throughZstdProgram(input: AsyncIterable<Buffer>, options: DecompressOptions): AsyncGenerator<Buffer> {
  const child = spawn('zstd', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  const exited = new Promise<{ code: number | null; error?: NodeJS.ErrnoException }>((resolve) => {
    child.on('error', (error: NodeJS.ErrnoException) => resolve({ code: null, error }));
    child.on('close', (code) => resolve({ code }));
  });
  // zstd may stop reading (bad data): its closed stdin is not our error, its exit status is.
  child.stdin.on('error', () => {});
  const source = Readable.from(input);
  let readError: unknown;
  source.on('error', (error) => {
    readError = error;
    child.stdin.destroy();
  });
  source.pipe(child.stdin);
  let finished = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const end = await exited;
    if (readError !== undefined) throw readError;
    if (end.error) {
      const reason =
        end.error.code === 'ENOENT'
          ? 'the log is zstd-compressed, and this Node.js has no zstd decoder and the zstd program is not installed (Debian: apt-get install zstd); or decompress it first: zstd -dc LOG | mallocscope import FORMAT -'
          : `cannot run zstd: ${end.error.message}`;
      throw new TraceError(options.code, options.file, 0, reason);
    }
    if (end.code !== 0) {
      const said = stderr.trim().split('\n').pop() ?? '';
      throw new TraceError(options.code, options.file, 0, `cannot decompress (zstd exited with status ${end.code}${said ? `: ${said}` : ''})`);
    }
    finished = true;
  } finally {
    source.destroy();
    if (!finished && child.exitCode === null) child.kill();
  }
}
