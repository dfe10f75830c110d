// Imports an ltrace log of the malloc family (`ltrace -e malloc+calloc+realloc+free …`, the input villoc
// reads) as a trace v1. With -f the lines carry pids, and calls of several pids interleave, cut in two
// (`malloc(100 <unfinished ...>` … `<... malloc resumed> ) = 0x…`): a trace is one process, so several pids
// are refused unless --pid picks one or --threads takes them as the threads of one process.
import { parseNumber } from '../number.ts';
import { type ImportSummary, convertAll, importLog, quoteText } from './log-lines.ts';
import { type PointerKey, PointerLog, pointerText } from './pointer-ids.ts';

/** Options of {@link LtraceConverter}. */
export interface LtraceImportOptions {
  /** Import only the lines of this pid (ltrace -f): one process of several, or one thread. */
  pid?: string;
  /** Import every pid as a thread of one process: the first pid is thread 1, the others are spawned by it. */
  threads?: boolean;
  /** Comment lines (without the leading `# `) to put at the top of the trace. */
  header?: readonly string[];
}

/** The calls the import reads; every other function in the log is passed over. */
const FAMILY = new Set(['malloc', 'calloc', 'realloc', 'reallocarray', 'free', 'memalign', 'aligned_alloc', 'valloc', 'pvalloc', 'posix_memalign']);
/** Arguments each call takes. ltrace knows the prototypes of the first four (so prints exactly these), and
 * prints guessed extra arguments for the others, which are ignored. */
const ARGUMENTS: Record<string, [number, boolean]> = {
  malloc: [1, true],
  calloc: [2, true],
  realloc: [2, true],
  free: [1, true],
  reallocarray: [3, false],
  memalign: [2, false],
  aligned_alloc: [2, false],
  valloc: [1, false],
  pvalloc: [1, false],
  posix_memalign: [3, false],
};
/** valloc and pvalloc align to a page; ltrace's log does not say its size, which is 4096 on x86-64 Linux. */
const PAGE = 4096n;
const SIZE_LIMIT = 1n << 64n;

// The parts of a line, in the order ltrace writes them: the pid (-f: `PID ` with -o, `[pid PID] ` without),
// the time (-t, -tt, -ttt, -r), the caller's address (-i), then the event.
const PID = /^(?:(\d+) |\[pid (\d+)\] )/;
const TIME = /^ *(?:\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) /;
const CALLER = /^\[(?:0x[0-9a-f]+|\?+)\] /;
const RESUMED = /^<\.\.\. (.+?) resumed> ?(.*)$/;
/** A call's end: `ARGS) = RESULT`, then the time it took (-T). */
const RETURNED = /^(.*)\) *= ?(.*?)(?: <\d+\.\d+>)?$/;
const UNFINISHED = ' <unfinished ...>';
const NO_RETURN = ' <no return ...>';

/** A call whose `<unfinished ...>` line has come and its `<... resumed>` line not yet. */
interface OpenCall {
  name: string;
  args: string;
  line: number;
  /** A call of the family that no other call of the family encloses: the one the trace records. */
  outer: boolean;
}

/** A pid of the log: its thread in the trace, and its open calls (innermost last). */
interface Task {
  pid: string;
  thread: number;
  spawned: boolean;
  open: OpenCall[];
}

/**
 * Converts an ltrace log to trace text, as {@link LogConverter} does. The trace has each call where ltrace
 * saw it end (a free where it began, so that its address is free before any other thread can be given it);
 * a call of the family inside another (ltrace -x shows malloc@libc.so.6 inside the program's malloc, and
 * realloc calling malloc) is the same call seen twice, or the allocator's own work: only the outer one counts.
 */
export class LtraceConverter extends PointerLog {
  protected readonly unknownBlock = 'which the log never showed allocated';
  protected get reuseHint(): string {
    return this.options.threads
      ? 'with --threads, was one of the pids a process (a fork) rather than a thread? Import one pid with --pid'
      : 'did ltrace miss the free of that block (a call it did not trace)?';
  }
  private readonly options: LtraceImportOptions;
  private readonly tasks = new Map<string, Task>();
  /** Whether the lines carry pids: set by the first line. */
  private withPids: boolean | undefined;
  /** The first pid of the log (its main thread), or '' without pids. */
  private firstPid: string | undefined;
  private nextThread = 2;
  private sawWanted = false;
  /** Calls whose block the log does not show (posix_memalign), and calls of the family inside another. */
  private unseen = 0;
  private nested = 0;

  constructor(file: string, options: LtraceImportOptions = {}) {
    super(file, 'LTRACE', options.header);
    this.options = options;
  }

  protected line(buf: Buffer, start: number, end: number, lineNo: number): void {
    // ltrace -o leaves its last line without '\n': an unterminated line is read as any other.
    let text = buf.toString('latin1', start, end);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() === '') return;
    const pidMatch = PID.exec(text);
    const pid = pidMatch ? (pidMatch[1] ?? pidMatch[2]) : '';
    if (pidMatch) text = text.slice(pidMatch[0].length);
    const task = this.task(pid, lineNo);
    if (!task) return;
    text = text.replace(TIME, '').replace(CALLER, '').replace(/^ +/, '');
    this.event(task, text, lineNo);
  }

  /** The task of `pid`, after the checks on pids; undefined for a pid that --pid leaves out. */
  private task(pid: string, lineNo: number): Task | undefined {
    const withPid = pid !== '';
    if (this.withPids === undefined) {
      this.withPids = withPid;
      if (!withPid && this.options.pid !== undefined) {
        this.fail('LTRACE_NO_PIDS', lineNo, '--pid picks one pid of a log with pids, and this one has none (ltrace without -f): import it without --pid');
      }
    } else if (withPid !== this.withPids) {
      this.fail('LTRACE_BAD_LINE', lineNo, withPid ? 'a line with a pid after lines without one' : 'a line without a pid after lines with one');
    }
    if (this.options.pid !== undefined && pid !== this.options.pid) return undefined;
    if (this.firstPid === undefined) this.firstPid = pid;
    else if (pid !== this.firstPid && !this.options.threads && this.options.pid === undefined) {
      this.fail(
        'LTRACE_SEVERAL_PIDS',
        lineNo,
        `a second pid, ${pid} (the log began with ${this.firstPid}): ltrace -f followed a child process or a thread, and a trace is one process; import one pid with --pid PID, or all as threads of one process with --threads`,
      );
    }
    this.sawWanted = true;
    let task = this.tasks.get(pid);
    if (!task) {
      task = { pid, thread: pid === this.firstPid ? 1 : 0, spawned: pid === this.firstPid, open: [] };
      this.tasks.set(pid, task);
    }
    return task;
  }

  private event(task: Task, text: string, lineNo: number): void {
    if (text.startsWith('+++ ') && text.endsWith(' +++')) {
      this.ended(task, text.slice(4, -4), lineNo);
      return;
    }
    if (text.startsWith('--- ') && text.endsWith(' ---')) {
      if (text === '--- Called exec() ---') {
        this.fail('LTRACE_EXEC', lineNo, 'the process ran another program (exec), whose heap starts afresh: trace the program it ran directly');
      }
      return; // a signal
    }
    if (text.startsWith('unexpected breakpoint at ')) {
      this.out += `# ltrace (line ${lineNo}): ${text}: ltrace lost track of ${task.pid ? `pid ${task.pid}` : 'the program'} here\n`;
      return;
    }
    const resumed = RESUMED.exec(text);
    if (resumed) {
      this.resumed(task, resumed[1], resumed[2], lineNo);
      return;
    }
    const paren = text.indexOf('(');
    if (paren <= 0) this.fail('LTRACE_BAD_LINE', lineNo, `not an ltrace line: ${quoteText(text)}`);
    const name = functionName(text.slice(0, paren));
    const rest = text.slice(paren + 1);
    const family = FAMILY.has(name) && !task.open.some((call) => call.outer);
    if (FAMILY.has(name) && !family) this.nested++;
    if (rest.endsWith(UNFINISHED)) {
      const args = rest.slice(0, -UNFINISHED.length);
      task.open.push({ name, args, line: lineNo, outer: family });
      if (family && name === 'free') this.call(task, name, args, null, lineNo);
      return;
    }
    if (rest.endsWith(NO_RETURN)) {
      if (family) this.noReturn(task, name, rest.slice(0, -NO_RETURN.length), lineNo);
      return;
    }
    const returned = RETURNED.exec(rest);
    if (!returned) this.fail('LTRACE_BAD_LINE', lineNo, `not an ltrace line (a call without ' = ' and its result): ${quoteText(text)}`);
    if (family) this.call(task, name, returned[1], returned[2], lineNo);
  }

  private resumed(task: Task, name: string, rest: string, lineNo: number): void {
    const call = task.open.pop();
    if (!call) {
      this.fail('LTRACE_UNPAIRED', lineNo, `'<... ${name} resumed>' without its '<unfinished ...>' line${task.pid ? ` on pid ${task.pid}` : ''}`);
    }
    if (call.name !== name) {
      this.fail(
        'LTRACE_UNPAIRED',
        lineNo,
        `'<... ${name} resumed>', but the unfinished call${task.pid ? ` of pid ${task.pid}` : ''} is ${call.name} (line ${call.line})`,
      );
    }
    if (rest.endsWith(NO_RETURN)) {
      if (call.outer && name !== 'free') this.noReturn(task, name, call.args + rest.slice(0, -NO_RETURN.length), call.line);
      return;
    }
    const returned = RETURNED.exec(rest);
    if (!returned) this.fail('LTRACE_BAD_LINE', lineNo, `not an ltrace line (a resumed call without ' = ' and its result): ${quoteText(rest)}`);
    // free was recorded where it began.
    if (call.outer && name !== 'free') this.call(task, name, call.args + returned[1], returned[2], lineNo);
  }

  /** A call of the family that never returned (the process died in it, or ltrace lost it): free counts, the others cannot. */
  private noReturn(task: Task, name: string, args: string, lineNo: number): void {
    if (name === 'free') this.call(task, name, args, null, lineNo);
    else this.out += `# ${name}(${args.trim()}) at line ${lineNo} never returned: not in the trace\n`;
  }

  private ended(task: Task, what: string, lineNo: number): void {
    for (const call of task.open) {
      if (call.outer && call.name !== 'free') this.out += `# ${call.name}(${call.args.trim()}) at line ${call.line} never returned: not in the trace\n`;
    }
    task.open.length = 0;
    if (/^exited \(status -?\d+\)$/.test(what)) {
      if (task.thread > 1) {
        this.summary.calls++;
        this.out += `@${task.thread} exit\n`;
      }
    } else if (/^killed by \S+$/.test(what)) {
      this.out += `# ${task.pid ? `pid ${task.pid}` : 'the program'} was ${what} (line ${lineNo})\n`;
    } else {
      this.fail('LTRACE_BAD_LINE', lineNo, `not an ltrace line: ${quoteText(`+++ ${what} +++`)}`);
    }
    // A pid seen again later is another thread (the kernel reuses pids).
    if (task.pid !== this.firstPid) this.tasks.delete(task.pid);
  }

  /** The trace tag of the task's lines, spawning its thread first when it has none yet. */
  private tag(task: Task): string {
    if (!task.spawned) {
      task.thread = this.nextThread++;
      task.spawned = true;
      this.summary.calls++;
      this.out += `spawn ${task.thread}    # pid ${task.pid}\n`;
    }
    return task.thread === 1 ? '' : `@${task.thread} `;
  }

  /** A call of the family that returned `result` (null: not known, for free). */
  private call(task: Task, name: string, argText: string, result: string | null, lineNo: number): void {
    const args = argText.trim() === '' ? [] : argText.split(',').map((arg) => arg.trim());
    const [count, exact] = ARGUMENTS[name];
    if (exact ? args.length !== count : args.length < count) {
      this.fail(
        'LTRACE_BAD_LINE',
        lineNo,
        `${name} takes ${count} argument${count === 1 ? '' : 's'}${exact ? '' : ' or more'}, found ${args.length}: ${name}(${argText.trim()})`,
      );
    }
    if (name === 'free') {
      const ptr = this.pointer(args[0], lineNo, 'the pointer');
      if (ptr !== null) this.freed(this.tag(task), ptr); // free(NULL) does nothing
      return;
    }
    if (name === 'posix_memalign') {
      this.unseen++;
      this.out += `# posix_memalign(${argText.trim()}) at line ${lineNo}: ltrace shows its status, not the block it made: not in the trace\n`;
      return;
    }
    const ret = this.pointer(result ?? '', lineNo, 'the result');
    const tag = this.tag(task);
    switch (name) {
      case 'malloc':
        this.allocated(tag, 'malloc', ret, this.size(args[0], lineNo), lineNo);
        return;
      case 'calloc':
        this.allocated(tag, 'calloc', ret, `${this.size(args[0], lineNo)} ${this.size(args[1], lineNo)}`, lineNo);
        return;
      case 'realloc':
        this.realloc(tag, this.pointer(args[0], lineNo, 'the pointer'), BigInt(this.size(args[1], lineNo)), ret, lineNo);
        return;
      case 'reallocarray': {
        const bytes = BigInt(this.size(args[1], lineNo)) * BigInt(this.size(args[2], lineNo));
        if (bytes >= SIZE_LIMIT) {
          this.out += `# reallocarray(${argText.trim()}) at line ${lineNo}: the size overflows, so glibc failed without calling realloc: skipped\n`;
          return;
        }
        this.realloc(tag, this.pointer(args[0], lineNo, 'the pointer'), bytes, ret, lineNo);
        return;
      }
      case 'memalign':
        this.allocated(tag, 'memalign', ret, `${this.size(args[0], lineNo)} ${this.size(args[1], lineNo)}`, lineNo);
        return;
      case 'aligned_alloc': {
        const align = BigInt(this.size(args[0], lineNo));
        // Since glibc 2.38 aligned_alloc refuses an alignment that is not a power of two before doing anything
        // (before, it was memalign, which rounds it up); the result tells which this one did.
        if (ret === null && (align === 0n || (align & (align - 1n)) !== 0n)) {
          this.out += `# aligned_alloc(${args[0]}, ${args[1]}) at line ${lineNo} refused its alignment (EINVAL) without allocating: skipped\n`;
          return;
        }
        this.allocated(tag, 'memalign', ret, `${align} ${this.size(args[1], lineNo)}`, lineNo);
        return;
      }
      case 'valloc':
        this.allocated(tag, 'memalign', ret, `${PAGE} ${this.size(args[0], lineNo)}`, lineNo);
        return;
      case 'pvalloc': {
        const size = BigInt(this.size(args[0], lineNo));
        if (size + PAGE - 1n >= SIZE_LIMIT) {
          this.out += `# pvalloc(${args[0]}) at line ${lineNo}: the size rounded up to a page wraps, so glibc failed without allocating: skipped\n`;
          return;
        }
        this.allocated(tag, 'memalign', ret, `${PAGE} ${((size + PAGE - 1n) / PAGE) * PAGE}`, lineNo);
        return;
      }
    }
  }

  private realloc(tag: string, old: PointerKey | null, size: bigint, ret: PointerKey | null, lineNo: number): void {
    if (old === null) {
      this.allocated(tag, 'realloc', ret, String(size), lineNo); // realloc(NULL, n): the trace's realloc of an ID not live
    } else if (size === 0n) {
      if (ret !== null) {
        this.fail(
          'LTRACE_NOT_GLIBC',
          lineNo,
          `realloc(${pointerText(old)}, 0) returned a block: glibc's realloc frees the block and returns NULL, so this is another allocator`,
        );
      }
      this.reallocToZero(tag, old);
    } else if (ret === null) {
      this.reallocFailed(tag, old, String(size));
    } else {
      this.moved(tag, old, ret, String(size), lineNo);
    }
  }

  /** A size argument: decimal (ltrace's ulong) or 0x-hexadecimal, 0 to 2^64-1; as the trace's decimal text. */
  private size(text: string, lineNo: number): string {
    const value = parseNumber(text);
    if (value === undefined || BigInt(value) >= SIZE_LIMIT) {
      this.fail('LTRACE_BAD_NUMBER', lineNo, `a size that is not a number from 0 to 2^64-1: ${quoteText(text)}`);
    }
    return String(value);
  }

  /** A pointer argument or result: 0x-hexadecimal, or 0, nil or (nil) for NULL. */
  private pointer(text: string, lineNo: number, what: string): PointerKey | null {
    if (text === 'nil' || text === '(nil)') return null;
    const value = /^0x[0-9a-fA-F]{1,16}$|^0$/.test(text) ? parseNumber(text) : undefined;
    if (value === undefined) this.fail('LTRACE_BAD_NUMBER', lineNo, `${what} is not an address (0x-hexadecimal, or 0 or nil for NULL): ${quoteText(text)}`);
    return value === 0 ? null : value;
  }

  protected override end(): void {
    if (this.withPids === undefined) this.fail('LTRACE_EMPTY', 0, 'the log is empty: ltrace writes at least the line of how the program ended');
    if (this.options.pid !== undefined && !this.sawWanted) this.fail('LTRACE_NO_PID', 0, `pid ${this.options.pid} is not in the log`);
    for (const task of this.tasks.values()) {
      for (const call of task.open) {
        if (call.outer && call.name !== 'free') this.out += `# ${call.name}(${call.args.trim()}) at line ${call.line} never returned: not in the trace\n`;
      }
    }
    super.end();
    const more: string[] = [];
    if (this.unseen) more.push(`${this.unseen} posix_memalign calls whose block the log does not show left out`);
    if (this.nested) more.push(`${this.nested} calls of the family inside another (the same call seen twice, or the allocator's own calls) not counted again`);
    this.out += this.closing('ltrace log', 'frees/reallocs of blocks the log never showed allocated', more);
  }
}

/** `prog->malloc`, `malloc@libc.so.6`, `malloc`: the function's own name. */
function functionName(text: string): string {
  const arrow = text.lastIndexOf('->');
  const name = arrow >= 0 ? text.slice(arrow + 2) : text;
  const at = name.indexOf('@');
  return at >= 0 ? name.slice(0, at) : name;
}

/** Converts a whole log held in memory (tests, small logs). */
export function convertLtrace(log: string | Uint8Array, file = '<ltrace>', options: LtraceImportOptions = {}): string {
  return convertAll(new LtraceConverter(file, options), log);
}

/** Imports the ltrace log at `path` (`-` for standard input), handing the trace text to `write` piece by piece. */
export function importLtrace(
  path: string,
  write: (text: string) => void | Promise<void>,
  options: LtraceImportOptions & { name?: string } = {},
): Promise<ImportSummary> {
  return importLog(path, (file) => new LtraceConverter(file, options), write, { openCode: 'LTRACE_OPEN', name: options.name });
}
