// `mallocscope record --via mtrace`: runs a program under glibc's mtrace and imports its log (record-command.ts
// registers `record`; import-command.ts the import of a log alone, `import mtrace`). See docs/mtrace.md.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { MallocscopeError, TraceError, UsageError, errnoReason } from '../errors.ts';
import { builtFile } from '../native.ts';
import { importMtrace, type MtraceImportOptions, type MtraceSummary } from '../trace/mtrace.ts';
import { OutputFile, forwardShared, sharedStdio } from './output.ts';
import { machineGlibcVersion } from '../replay/glibc.ts';

/** The preload library built from native/mtrace/start-mtrace.c. */
export const MTRACE_STARTER = 'libmallocscope-mtrace.so';
/** glibc's debug allocator, which holds the working mtrace() since glibc 2.34. */
export const MALLOC_DEBUG_LIB = 'libc_malloc_debug.so.0';

interface OutputOptions {
  output?: string;
  preamble?: boolean;
}

/** Imports `log` to `output`; removes a half-written output file when the import fails. */
async function importTo(log: string, output: OutputFile, options: OutputOptions, extra: MtraceImportOptions, name: string | undefined): Promise<MtraceSummary> {
  return output.fill((write) => importMtrace(log, write, { ...extra, preamble: options.preamble, name }));
}

/** Where glibc's debug allocator is: beside the libc this process runs on, else the usual folders. */
export function findMallocDebugLib(): string | undefined {
  const folders: string[] = [];
  try {
    const libc = /\s(\/\S*\/libc\.so\.6)$/m.exec(readFileSync('/proc/self/maps', 'latin1'));
    if (libc) folders.push(dirname(libc[1]));
  } catch {
    // no /proc: fall back to the usual places
  }
  folders.push('/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib');
  return folders.map((folder) => join(folder, MALLOC_DEBUG_LIB)).find((path) => existsSync(path));
}

/** The glibc this machine runs, e.g. "2.36". */
export function glibcVersion(): string {
  return machineGlibcVersion() ?? 'unknown';
}

/** A command line for a comment: shell-like quoting, no control characters, not too long. */
export function commandText(command: string, args: string[]): string {
  const quoted = [command, ...args].map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`));
  const text = quoted
    .join(' ')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    .replace(/[\u0000-\u001f\u007f]/g, '?');
  return text.length > 1000 ? `${text.slice(0, 1000)}…` : text;
}

/** `record`'s options that the mtrace way reads. */
export interface RecordOptions extends OutputOptions {
  log?: string;
  ignoreThreads?: boolean;
}

/** Runs the program under mtrace, waits for it, and imports its log. */
export async function recordWithMtrace(command: string, args: string[], options: RecordOptions): Promise<void> {
  const debugLib = findMallocDebugLib();
  if (!debugLib) {
    throw new MallocscopeError(
      'RECORD_NO_DEBUG_LIB',
      `glibc's debug allocator ${MALLOC_DEBUG_LIB} is not on this machine; mtrace needs it since glibc 2.34 (it ships with glibc, e.g. Debian's libc6)`,
      1,
    );
  }
  const starter = builtFile(MTRACE_STARTER);
  // Where the trace and the log go is checked before the program runs, not after it has done its work.
  const output = OutputFile.open(options.output ?? '-');
  const log = options.log ? resolve(options.log) : undefined;
  if (log && options.log) checkLogPath(log, options.log);

  await inRecordFolder(output, (tempDir) =>
    recordInto(command, args, options, output, debugLib, starter, log ?? join(tempDir, 'mtrace.log'), join(tempDir, 'processes')),
  );
}

/**
 * Runs a recording's `work` in a temporary folder of its own, and discards the trace's output if it fails.
 * The folder goes in every case: success, an error, a closed standard output (`record … | head`, an
 * ExitRequest through the finally below), and a process.exit that skips it (run.ts, on an EPIPE of an
 * asynchronous write).
 */
export async function inRecordFolder(output: OutputFile, work: (tempDir: string) => Promise<void>): Promise<void> {
  const tempDir = mkdtempSync(join(tmpdir(), 'mallocscope-record-'));
  const removeTemp = () => rmSync(tempDir, { recursive: true, force: true });
  process.on('exit', removeTemp);
  try {
    await work(tempDir);
  } catch (error) {
    output.discard();
    throw error;
  } finally {
    removeTemp();
    process.off('exit', removeTemp);
  }
}

/** --log names a file the program's mtrace will create: its folder must exist and be writable. */
export function checkLogPath(log: string, given: string): void {
  try {
    closeSync(openSync(log, 'a'));
  } catch (error) {
    throw new MallocscopeError('OUTPUT_OPEN', `cannot write ${given}: ${errnoReason(error)}`);
  }
}

async function recordInto(
  command: string,
  args: string[],
  options: RecordOptions,
  output: OutputFile,
  debugLib: string,
  starter: string,
  log: string,
  pidsFile: string,
): Promise<void> {
  // A log left by an earlier run would pass for this program's: remove it so that "no log" is detected.
  if (existsSync(log)) unlinkSync(log);
  // The starter library appends "PID\tPROGRAM" to pidsFile for each process that starts tracing (and each fork).
  const preload = [debugLib, starter, process.env.LD_PRELOAD].filter(Boolean).join(' ');
  const env = { ...process.env, LD_PRELOAD: preload, MALLOC_TRACE: log, MALLOCSCOPE_MTRACE_PIDS: pidsFile };
  const started = new Date();
  const status = await run(command, args, env, output.isStdout);

  const { processes, threads } = readProcesses(pidsFile);
  const pids = new Set(processes.map((p) => p.pid));
  if (pids.size > 1) {
    const names = processes.map((p) => `${basename(p.program)} ${p.pid}`);
    const shown = names.length > 6 ? [...names.slice(0, 6), `${names.length - 6} more`] : names;
    throw new MallocscopeError(
      'RECORD_SEVERAL_PROCESSES',
      `${pids.size} processes wrote the same mtrace log (${shown.join(', ')}), so it mixes their calls: mtrace follows one process; ` +
        'record the program that does the work directly (for example cc1 rather than the gcc driver, the interpreter binary rather than a shim or wrapper script)',
      1,
    );
  }
  const size = existsSync(log) ? statSync(log).size : -1;
  // No file, or the starter never ran: mtrace was never switched on, so an empty trace would be a lie.
  if (size < 0 || processes.length === 0) {
    throw new MallocscopeError(
      'RECORD_NO_LOG',
      `${command} wrote no mtrace log (${size < 0 ? 'no file' : 'an empty file'}): ` +
        (processes.length === 0
          ? 'the starter library never ran; LD_PRELOAD and MALLOC_TRACE have no effect on a statically linked or setuid program'
          : 'mtrace could not open it, or the program closed it') +
        '; a program that forks or execs (a shell script, a shim, a compiler driver) may lose the log: mtrace follows one process, so record the child program directly',
      1,
    );
  }
  // An exec chain (a wrapper that execs the real program) keeps one pid; the log is the last program's.
  const program = processes[processes.length - 1].program;
  // mtrace does not say which thread made a call: replayed as one thread, the trace would be silently wrong
  // about a threaded program (its threads' arenas, tcaches and heaps are gone).
  const threadNote = `${basename(program)} created ${threads === 1 ? 'a thread' : `${threads} threads`}: mtrace does not record which thread made each call, so this trace replays as if one thread made them all (one arena), which is not what its glibc did`;
  if (threads > 0 && !options.ignoreThreads) {
    throw new MallocscopeError(
      'RECORD_THREADS',
      `${threadNote}; no trace written (--ignore-threads writes it anyway, with this note in it; threads are issue 11)`,
      1,
    );
  }
  if (status.signal)
    process.stderr.write(`mallocscope: note: ${command} was killed by ${status.signal}; the end of its log may be missing (the trace says so)\n`);
  else if (status.code !== 0) process.stderr.write(`mallocscope: note: ${command} exited with status ${status.code}; its trace is imported all the same\n`);

  const header = [
    `recorded by mallocscope record on ${started.toISOString()}`,
    `program: ${commandText(program, [])}`,
    `command: ${commandText(command, args)}`,
    `glibc: ${glibcVersion()}`,
    `exit: ${status.signal ? `killed by ${status.signal}` : `status ${status.code}`}`,
  ];
  if (threads > 0) {
    header.push(`threads: ${threadNote}`);
    process.stderr.write(`mallocscope: warning: ${threadNote} [RECORD_THREADS]\n`);
  }
  // mtrace writes its log through a 512-byte buffer that only exit() flushes: a program that ends with
  // _exit() (dash does, so does `sh -c 'exit 0'`) or a signal leaves the log empty or cut inside a line.
  // The program's calls up to the last flushed record are still a trace.
  if (size === 0) {
    output.write(
      `${header.map((line) => `# ${line}\n`).join('')}# the mtrace log is empty: ${basename(program)} ended before mtrace flushed its first record, so no call was logged\n`,
    );
    output.close();
    if (!status.signal) noteCutShort(command);
    return;
  }
  let summary: MtraceSummary;
  try {
    summary = await importTo(log, output, options, { header, acceptTruncated: true }, options.log ?? `<mtrace log of ${basename(command)}>`);
  } catch (error) {
    if (error instanceof TraceError && error.code.startsWith('MTRACE_')) {
      // The error names a line of the log, which is removed with the temporary folder unless --log kept it.
      const keep = options.log ? '' : '; record again with --log FILE to keep the log';
      const mixed = ['MTRACE_PTR_LIVE', 'MTRACE_NO_START', 'MTRACE_BAD_LINE', 'MTRACE_UNPAIRED'].includes(error.code)
        ? ` (if ${basename(command)} forks or runs threads that allocate, its log mixes several writers: record the child program directly)`
        : '';
      throw new TraceError(error.code, error.file, error.line, `${error.reason}${mixed}${keep}`);
    }
    throw error;
  }
  if (summary.truncated && !status.signal) noteCutShort(command);
}

function noteCutShort(command: string): void {
  process.stderr.write(
    `mallocscope: note: ${command} ended without flushing its mtrace log (it left through _exit() or a signal): the trace ends at the last call logged\n`,
  );
}

/**
 * The processes the starter library saw ("PID\tPROGRAM" lines, PROGRAM "fork" for a forked child) and how many
 * threads they created ("PID\tthread" lines).
 */
function readProcesses(path: string): { processes: { pid: string; program: string }[]; threads: number } {
  if (!existsSync(path)) return { processes: [], threads: 0 };
  const processes: { pid: string; program: string }[] = [];
  let threads = 0;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.includes('\t')) continue;
    const [pid, program] = line.split('\t', 2);
    if (program === 'thread') threads++;
    else processes.push({ pid, program: program === 'fork' ? 'a forked child' : program });
  }
  return { processes, threads };
}

/** How a program that `record` ran ended, and its process id. */
export interface ProgramEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  pid: number;
}

/** Runs the program with the given environment and resolves with how it ended (and its process id). */
export function run(command: string, args: string[], env: NodeJS.ProcessEnv, stdoutToStderr: boolean): Promise<ProgramEnd> {
  // Like system(3): a Ctrl-C stops the program, not the recording, so what it logged is still imported.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  return new Promise<ProgramEnd>((done, fail) => {
    const stdoutTo = stdoutToStderr ? 2 : 1;
    const child = spawn(command, args, { env, stdio: sharedStdio(stdoutTo) });
    forwardShared(child, stdoutTo);
    child.on('error', (error: NodeJS.ErrnoException) => {
      const reason = error.code === 'ENOENT' ? 'no such program' : error.code === 'EACCES' ? 'permission denied' : error.message;
      fail(new UsageError(`cannot run ${command}: ${reason}`));
    });
    // 'close', not 'exit': piped output (see sharedStdio) is all passed on by then.
    child.on('close', (code, signal) => done({ code, signal, pid: child.pid ?? 0 }));
  }).finally(() => process.off('SIGINT', ignore));
}
