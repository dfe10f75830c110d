// `mallocscope record`: run a program and turn its allocations into a trace, with its threads, through
// mallocscope's own preloaded recorder (native/recorder, docs/record.md), or through glibc's mtrace with
// `--via mtrace` (mtrace-commands.ts, docs/mtrace.md); and `mallocscope import-recording` for a kept log.
import type { Command } from 'commander';
import { Option } from 'commander';
import { closeSync, existsSync, mkdirSync, openSync, readSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { MallocscopeError, UsageError, errnoReason } from '../errors.ts';
import { builtFile } from '../native.ts';
import {
  RECORDING_HEADER_SIZE,
  RECORDING_RECORD_SIZE,
  RecordingError,
  importRecording,
  readRecordingHeader,
  type RecordingHeader,
  type RecordingSummary,
} from '../trace/recording.ts';
import { type RecordOptions, checkLogPath, commandText, glibcVersion, inRecordFolder, recordWithMtrace, run } from './mtrace-commands.ts';
import { outputOption, preambleOption } from './options.ts';
import { OutputFile } from './output.ts';
import { action } from './run.ts';

/** The preload library built from native/recorder/recorder.c. */
export const RECORDER = 'libmallocscope-recorder.so';
/** The ways `record` can record: the default first. */
const WAYS = ['recorder', 'mtrace'];

interface RecordCommandOptions extends RecordOptions {
  via?: string;
  children?: string;
}

export function registerRecord(program: Command): void {
  program
    .command('record')
    .description('run a program and record its allocations, with its threads, as a trace: mallocscope record [options] -- PROGRAM [ARGS...]')
    .argument('<program>', 'the program to run (found on PATH like a shell would)')
    .argument('[args...]', 'its arguments (put -- before PROGRAM when they hold options)')
    .addOption(outputOption('the trace', "standard output; the program's own standard output then goes to standard error"))
    .addOption(
      new Option(
        '--via <way>',
        "recorder (mallocscope's own, which keeps threads and forked children: docs/record.md) or mtrace (glibc's, one thread and one process: docs/mtrace.md)",
      ).default('recorder'),
    )
    .option('--log <log>', 'keep the raw log in this file (the recorder: the binary log of PROGRAM itself; mtrace: its text log)')
    .option('--children <dir>', "the recorder: also write the trace of each child process (forked, or forked then exec'd) to DIR/PID.trace")
    .option(
      '--ignore-threads',
      'mtrace: write the trace even when the program created threads (mtrace drops them, so it replays as one thread: the trace says so); the recorder keeps threads, so it needs no such option',
    )
    .addOption(preambleOption())
    .action(
      action(async (command: string, args: string[], options: RecordCommandOptions) => {
        if (!WAYS.includes(options.via ?? 'recorder')) throw new UsageError(`--via takes ${WAYS.join(' or ')}, not '${options.via}'`);
        if (options.via === 'mtrace') {
          if (options.children !== undefined) throw new UsageError('--children is for the recorder: mtrace follows one process');
          await recordWithMtrace(command, args, options);
        } else {
          await recordWithRecorder(command, args, options);
        }
      }),
    );

  program
    .command('import-recording')
    .description("convert a log of mallocscope's recorder (record --log) to a trace (docs/record.md)")
    .argument('<log>', 'the binary log')
    .addOption(outputOption('the trace', 'standard output'))
    .action(
      action(async (log: string, options: { output?: string }) => {
        const output = OutputFile.open(options.output ?? '-');
        await convertTo(log, log, output, []);
      }),
    );
}

/** Converts the log at `path` to `output`; removes a half-written output file when the conversion fails. */
async function convertTo(path: string, name: string, output: OutputFile, header: string[]): Promise<RecordingSummary & { header: RecordingHeader }> {
  return output.fill((write) => importRecording(path, write, { header, name }));
}

/** Copies the first `length` bytes of `from` to `to` (the log file is sparse and longer than what it holds). */
function copyPrefix(from: string, to: string, length: number): void {
  const input = openSync(from, 'r');
  try {
    const out = openSync(to, 'w');
    try {
      const buf = Buffer.alloc(1 << 20);
      for (let at = 0; at < length; ) {
        const got = readSync(input, buf, 0, Math.min(buf.length, length - at), at);
        if (got <= 0) break;
        for (let done = 0; done < got; ) done += writeSync(out, buf, done, got - done);
        at += got;
      }
    } finally {
      closeSync(out);
    }
  } finally {
    closeSync(input);
  }
}

/** --children names a folder the child traces go to: made if missing, and it must be writable. */
function checkChildrenDir(dir: string, given: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.mallocscope-${process.pid}`);
    closeSync(openSync(probe, 'w'));
    rmSync(probe);
  } catch (error) {
    throw new MallocscopeError('OUTPUT_OPEN', `cannot write in ${given}: ${errnoReason(error)}`);
  }
}

/** A process for a message: its program's name and its pid. */
function processName(header: RecordingHeader): string {
  return `${basename(header.program) || 'a process'} ${header.pid}`;
}

async function recordWithRecorder(command: string, args: string[], options: RecordCommandOptions): Promise<void> {
  const library = builtFile(RECORDER);
  // Where the trace, the log and the children's traces go is checked before the program runs.
  const output = OutputFile.open(options.output ?? '-');
  const log = options.log ? resolve(options.log) : undefined;
  if (log && options.log) checkLogPath(log, options.log);
  const childrenDir = options.children ? resolve(options.children) : undefined;
  if (childrenDir && options.children) checkChildrenDir(childrenDir, options.children);

  await inRecordFolder(output, async (tempDir) => {
    const preload = [library, process.env.LD_PRELOAD].filter(Boolean).join(' ');
    const env = { ...process.env, LD_PRELOAD: preload, MALLOCSCOPE_RECORD_DIR: tempDir };
    const started = new Date();
    const status = await run(command, args, env, output.isStdout);
    const main = join(tempDir, `${status.pid}.msrec`);
    if (!existsSync(main)) {
      throw new MallocscopeError(
        'RECORD_NO_LOG',
        `${command} wrote no recording: the recorder never ran in it (LD_PRELOAD has no effect on a statically linked or setuid program)`,
        1,
      );
    }
    const header = readRecordingHeader(main, `<recording of ${basename(command)}>`);
    const children = readdirSync(tempDir)
      .filter((name) => name.endsWith('.msrec') && name !== `${status.pid}.msrec`)
      .map((name) => ({ path: join(tempDir, name), header: readRecordingHeader(join(tempDir, name)) }))
      .sort((a, b) => a.header.pid - b.header.pid);

    if (status.signal) process.stderr.write(`mallocscope: note: ${command} was killed by ${status.signal}; its trace ends at its last call\n`);
    else if (status.code !== 0) process.stderr.write(`mallocscope: note: ${command} exited with status ${status.code}; its trace is written all the same\n`);
    const lines = [
      `recorded by mallocscope record on ${started.toISOString()}`,
      `program: ${commandText(header.program || command, [])}`,
      `command: ${commandText(command, args)}`,
      `glibc: ${glibcVersion()}`,
      `exit: ${status.signal ? `killed by ${status.signal}` : `status ${status.code}`}`,
      `recorder: mallocscope's, every call of the process from its first, with its threads (docs/record.md); heap start 0x${header.heapStart.toString(16)}`,
    ];
    if (options.preamble)
      lines.push("preamble: none is needed: the recorder starts at the process's first allocation, so a fresh replay starts from the same heap");
    if (children.length) {
      const names = children.map((child) => processName(child.header));
      const shown = names.length > 6 ? [...names.slice(0, 6), `${names.length - 6} more`] : names;
      const where = childrenDir ? `written to ${options.children}/PID.trace` : 'not written (--children DIR writes them)';
      lines.push(`children: ${children.length} other process${children.length === 1 ? '' : 'es'} recorded (${shown.join(', ')}), ${where}`);
      if (!childrenDir) {
        process.stderr.write(
          `mallocscope: note: ${basename(command)} started ${children.length} other process${children.length === 1 ? '' : 'es'} (${shown.join(', ')}): recorded, but not in this trace; --children DIR writes a trace for each\n`,
        );
      }
    }
    let source = main;
    let name = `<recording of ${basename(command)}>`;
    if (log && options.log) {
      copyPrefix(main, log, RECORDING_HEADER_SIZE + header.records * RECORDING_RECORD_SIZE);
      source = log;
      name = options.log;
    }
    let summary: RecordingSummary;
    try {
      summary = await convertTo(source, name, output, lines);
    } catch (error) {
      if (error instanceof RecordingError && !options.log) {
        throw new RecordingError(error.code, error.file, error.record, `${error.reason}; record again with --log FILE to keep the log`);
      }
      throw error;
    }
    if (summary.stopped) process.stderr.write(`mallocscope: warning: the recorder's log of ${command} could not grow: the trace ends early (it says so)\n`);
    if (childrenDir) await writeChildren(children, childrenDir, options.children as string);
  });
}

/** Each child's trace, DIR/PID.trace; a child whose log cannot be converted is a warning, not the end. */
async function writeChildren(children: { path: string; header: RecordingHeader }[], dir: string, given: string): Promise<void> {
  for (const child of children) {
    const target = join(dir, `${child.header.pid}.trace`);
    const lines = [
      `recorded by mallocscope record: a child process`,
      `program: ${commandText(child.header.program, [])}`,
      `pid: ${child.header.pid}, parent ${child.header.ppid}${child.header.forkedFrom ? ` (forked from the recorded process ${child.header.forkedFrom}: blocks it inherited are not in this trace)` : ''}`,
      `glibc: ${glibcVersion()}`,
    ];
    try {
      await convertTo(child.path, `<recording of ${processName(child.header)}>`, OutputFile.open(target), lines);
    } catch (error) {
      const reason = error instanceof MallocscopeError ? error.describe() : String(error);
      process.stderr.write(`mallocscope: warning: the trace of ${processName(child.header)} was not written to ${given}: ${reason}\n`);
    }
  }
}
