// Imports an ltrace log of the malloc family (`ltrace -e malloc+calloc+realloc+free …`, the input villoc
// reads) as a trace v1. With -f the lines carry pids, and calls of several pids interleave, cut in two
// (`malloc(100 <unfinished ...>` … `<... malloc resumed> ) = 0x…`): a trace is one process, so several pids
// are refused unless --pid picks one or --threads takes them as the threads of one process.
import { parseNumber } from '../number.ts';
import { type AlignedCall, REALLOC_ZERO_RULE, SIZE_LIMIT, alignedRequest, glibcCouldReturn, reallocOutcome, refusedComment } from './glibc-calls.ts';
import { type ImportSummary, commentText, convertAll, counted, importLog, quoteText } from './log-lines.ts';
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
/** The caller `libc.so.6->` of ltrace -e: a call libc makes through its own PLT (see {@link LtraceConverter}). */
const LIBC_CALLER = /^libc\.so(?:\.\d+)*$/;

// The parts of a line, in the order ltrace writes them: the pid (-f: `PID ` with -o, `[pid PID] ` without),
// the time (-t, -tt, -ttt, -r), the caller's address (-i), then the event.
const PID = /^(?:(\d+) |\[pid (\d+)\] )/;
const TIME = /^ *(?:\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+) /;
const CALLER = /^\[(?:0x[0-9a-f]+|\?+)\] /;
const RESUMED = /^<\.\.\. (.+?) resumed> ?(.*)$/;
/** A call's end: `ARGS) = RESULT`, then the time it took (-T). */
const RETURNED = /^(.*)\) *= ?(.*?)(?: <\d+\.\d+>)?$/;
/**
 * The ends of a call's first half when another line comes before its return. ltrace 0.7.3 writes
 * `<no return ...>` where the line that cuts the call is a signal's or a pid's end (`--- SIG… ---`,
 * `+++ exited …`), whether or not the call returns later: a call so cut may still resume.
 */
const CUT = [' <unfinished ...>', ' <no return ...>'];

/** A call whose first half has come (`<unfinished ...>`, `<no return ...>`) and its `<... resumed>` line not yet. */
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
 *
 * ltrace 0.7.3 names a PLT slot by its index among the slots' relocations, and a library or program whose
 * PLT also has IRELATIVE relocations (ifuncs: libc's own string functions) gets some slots misnamed: libc's
 * call of strchrnul shows as `libc.so.6->realloc(…) = 0x5`, its realloc as `libc.so.6->calloc`. So a call that
 * libc makes through its own PLT is skipped (libc calls malloc and free directly, never through its PLT, so
 * -e never shows libc's own allocations whole anyway), and so is any call whose result or pointer argument is
 * no block glibc could give (not 16-byte aligned, or in the first page): another function under the name.
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
  /**
   * --threads: the addresses freed and not given out since, with the pid that freed each and where. Threads
   * share one heap, so another pid freeing one again is a process freeing its own copy: the pids are forks.
   */
  private readonly freedBy = new Map<PointerKey, { pid: string; line: number }>();

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
      // A child process that ends sends its parent SIGCHLD; a thread that ends sends none.
      if (this.options.threads && this.withPids && text.startsWith('--- SIGCHLD ')) {
        this.fail(
          'LTRACE_FORK',
          lineNo,
          `pid ${task.pid} got SIGCHLD, so a child process of it ended: the log's pids are processes (forks, each with its own copy of the heap), not threads; import one process with --pid PID`,
        );
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
    if (paren < 0) this.fail('LTRACE_BAD_LINE', lineNo, `not an ltrace line: ${quoteText(text)}`);
    // `(40, …) = 0x…`, with no name: a PLT slot that ltrace could not name, passed over as another function.
    const callee = text.slice(0, paren);
    const name = functionName(callee);
    let inFamily = FAMILY.has(name);
    if (inFamily && LIBC_CALLER.test(callerOf(callee))) {
      inFamily = false;
      this.summary.misnamed++;
      this.out += `# ${commentText(text.replace(/ {2,}/g, ' '))} (line ${lineNo}): a call libc made through its own PLT, whose slots ltrace 0.7.3 misnames: skipped\n`;
    }
    const rest = text.slice(paren + 1);
    const family = inFamily && !task.open.some((call) => call.outer);
    if (inFamily && !family) this.nested++;
    const cut = CUT.find((end) => rest.endsWith(end));
    if (cut) {
      const args = rest.slice(0, -cut.length);
      task.open.push({ name, args, line: lineNo, outer: family });
      if (family && name === 'free') this.call(task, name, args, null, lineNo);
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
    const returned = RETURNED.exec(rest);
    if (!returned) this.fail('LTRACE_BAD_LINE', lineNo, `not an ltrace line (a resumed call without ' = ' and its result): ${quoteText(rest)}`);
    // free was recorded where it began.
    if (call.outer && name !== 'free') this.call(task, name, call.args + returned[1], returned[2], lineNo);
  }

  /** Calls of the family still open when their pid or the log ends: they never returned; a free was recorded. */
  private neverReturned(task: Task): void {
    for (const call of task.open) {
      if (call.outer && call.name !== 'free') this.out += `# ${call.name}(${call.args.trim()}) at line ${call.line} never returned: not in the trace\n`;
    }
    task.open.length = 0;
  }

  private ended(task: Task, what: string, lineNo: number): void {
    this.neverReturned(task);
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
    if (name === 'posix_memalign') {
      this.unseen++;
      this.out += `# posix_memalign(${argText.trim()}) at line ${lineNo}: ltrace shows its status, not the block it made: not in the trace\n`;
      return;
    }
    // The pointers first: one that no glibc block can be at is a misnamed call, whatever its other arguments.
    const given = name === 'free' || name === 'realloc' || name === 'reallocarray' ? this.pointer(args[0], lineNo, 'the pointer') : null;
    const ret = name === 'free' ? null : this.pointer(result ?? '', lineNo, 'the result');
    const wrong = given !== null && !glibcCouldReturn(given) ? given : ret !== null && !glibcCouldReturn(ret) ? ret : null;
    if (wrong !== null) {
      this.summary.misnamed++;
      const shown = `${name}(${argText.trim()})${name === 'free' || result === null ? '' : ` = ${result}`}`;
      this.out += `# ${commentText(shown)} at line ${lineNo}: glibc has no block at ${pointerText(wrong)} (its blocks are 16-byte aligned, above the first page), so ltrace gave another function this name: skipped\n`;
      return;
    }
    if (name === 'free') {
      if (given !== null) this.released(task, given, lineNo); // free(NULL) does nothing
      return;
    }
    switch (name) {
      case 'malloc':
        this.allocate(task, 'malloc', ret, this.size(args[0], lineNo), lineNo);
        return;
      case 'calloc':
        this.allocate(task, 'calloc', ret, `${this.size(args[0], lineNo)} ${this.size(args[1], lineNo)}`, lineNo);
        return;
      case 'realloc':
        this.realloc(task, given, BigInt(this.size(args[1], lineNo)), ret, lineNo);
        return;
      case 'reallocarray': {
        const bytes = BigInt(this.size(args[1], lineNo)) * BigInt(this.size(args[2], lineNo));
        if (bytes >= SIZE_LIMIT) {
          this.out += `# reallocarray(${argText.trim()}) at line ${lineNo}: the size overflows, so glibc failed without calling realloc: skipped\n`;
          return;
        }
        this.realloc(task, given, bytes, ret, lineNo);
        return;
      }
      default: {
        // memalign, aligned_alloc, valloc, pvalloc
        const call = name as AlignedCall;
        const paged = call === 'valloc' || call === 'pvalloc';
        const align = paged ? 0n : BigInt(this.size(args[0], lineNo));
        const size = BigInt(this.size(args[paged ? 0 : 1], lineNo));
        const request = alignedRequest(call, align, size, ret === null, PAGE);
        if ('refused' in request) {
          this.out += refusedComment(request.refused, `${name}(${paged ? args[0] : `${args[0]}, ${args[1]}`}) at line ${lineNo}`);
          return;
        }
        this.allocate(task, 'memalign', ret, `${request.align} ${request.size}`, lineNo);
      }
    }
  }

  private realloc(task: Task, old: PointerKey | null, size: bigint, ret: PointerKey | null, lineNo: number): void {
    const outcome = reallocOutcome(old === null, size, ret === null);
    if (outcome === 'not-glibc') this.fail('LTRACE_NOT_GLIBC', lineNo, `realloc(${pointerText(old as PointerKey)}, 0) returned a block: ${REALLOC_ZERO_RULE}`);
    switch (outcome) {
      case 'new':
        this.allocate(task, 'realloc', ret, String(size), lineNo); // the trace's realloc of an ID not live is realloc(NULL, n)
        return;
      case 'freed': {
        const known = this.givingBack(task, old as PointerKey, lineNo);
        this.reallocToZero(this.tag(task), old as PointerKey);
        if (known) this.noteFreed(task, old as PointerKey, lineNo);
        return;
      }
      case 'failed':
        this.reallocFailed(this.tag(task), old as PointerKey, String(size));
        return;
      case 'moved': {
        const known = this.givingBack(task, old as PointerKey, lineNo);
        this.moved(this.tag(task), old as PointerKey, ret as PointerKey, String(size), lineNo);
        if (known && ret !== old) this.noteFreed(task, old as PointerKey, lineNo);
        this.freedBy.delete(ret as PointerKey);
        return;
      }
    }
  }

  /** A call that made a block at `ptr` (null: it failed). */
  private allocate(task: Task, verb: string, ptr: PointerKey | null, args: string, lineNo: number): void {
    this.allocated(this.tag(task), verb, ptr, args, lineNo);
    if (ptr !== null) this.freedBy.delete(ptr);
  }

  /** free(ptr), ptr not null. */
  private released(task: Task, ptr: PointerKey, lineNo: number): void {
    const known = this.givingBack(task, ptr, lineNo);
    this.freed(this.tag(task), ptr);
    if (known) this.noteFreed(task, ptr, lineNo);
  }

  /**
   * A free or realloc of `ptr` is about to give it back: whether the log has its block live. With --threads, a
   * pid giving back an address whose block another pid freed, and that nothing gave out since, is a process
   * freeing its own copy of the heap: the pids are forks. (Only blocks the log showed are followed: one that libc
   * allocated unseen, in strdup or fopen, may come back unseen too.)
   */
  private givingBack(task: Task, ptr: PointerKey, lineNo: number): boolean {
    if (this.isLive(ptr)) return true;
    const freed = this.options.threads ? this.freedBy.get(ptr) : undefined;
    if (freed && freed.pid !== task.pid) {
      this.fail(
        'LTRACE_FORK',
        lineNo,
        `pid ${task.pid} frees ${pointerText(ptr)}, whose block pid ${freed.pid} freed at line ${freed.line}, and nothing allocated it since: the log's pids are processes (forks, each freeing its own copy of the heap), not threads; import one process with --pid PID`,
      );
    }
    return false;
  }

  /** --threads: `ptr`'s block was freed by this pid, here. */
  private noteFreed(task: Task, ptr: PointerKey, lineNo: number): void {
    if (this.options.threads) this.freedBy.set(ptr, { pid: task.pid, line: lineNo });
  }

  /** A size argument: decimal (ltrace's ulong) or 0x-hexadecimal, 0 to 2^64-1; as the trace's decimal text. */
  private size(text: string, lineNo: number): string {
    const value = parseNumber(text);
    if (value === undefined || (typeof value === 'bigint' && value >= SIZE_LIMIT)) {
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
    for (const task of this.tasks.values()) this.neverReturned(task);
    super.end();
    const more: string[] = [];
    if (this.unseen) more.push(`${counted(this.unseen, 'posix_memalign call', 'posix_memalign calls')} whose block the log does not show left out`);
    if (this.nested) {
      more.push(
        `${counted(this.nested, 'call', 'calls')} of the family inside another (the same call seen twice, or the allocator's own calls) not counted again`,
      );
    }
    if (this.summary.misnamed) {
      more.push(`${counted(this.summary.misnamed, 'line', 'lines')} naming a call of the family that was another function (misnamed by ltrace) skipped`);
    }
    this.out += this.closing(
      'ltrace log',
      ['free/realloc of a block the log never showed allocated', 'frees/reallocs of blocks the log never showed allocated'],
      more,
    );
  }
}

/** `libc.so.6` of `libc.so.6->malloc` (ltrace -e: the library whose PLT the call went through), else ''. */
function callerOf(text: string): string {
  const arrow = text.lastIndexOf('->');
  return arrow >= 0 ? text.slice(0, arrow) : '';
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
