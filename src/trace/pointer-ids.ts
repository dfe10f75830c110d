// The trace IDs of logs that name blocks by their address (mtrace, heaptrack, ltrace): each block gets a new
// ID (`b1`, `b2`, …) from the call that returns it to the call that frees it, so that an address reused after
// a free is a new ID; frees of addresses the log never showed allocated become comments and are counted.
import { LogConverter } from './log-lines.ts';

/** An address as a Map key: a number below 2^53 (every x86-64 user address), else a bigint (both exact). */
export type PointerKey = number | bigint;

/** A live block: the trace ID it has, and the log line that created it (for error messages). */
interface LiveBlock {
  id: string;
  line: number;
}

export function pointerText(ptr: PointerKey): string {
  return `0x${ptr.toString(16)}`;
}

/**
 * A log converter whose calls name addresses. `tag` arguments are the trace's thread tag for the line
 * (`''` for thread 1, `@2 ` …). The texts a format words differently come from the subclass.
 */
export abstract class PointerLog extends LogConverter {
  private readonly live = new Map<PointerKey, LiveBlock>();
  private nextId = 1;

  /** How a skipped call's comment names a block the log never showed allocated: "allocated before tracing started". */
  protected abstract readonly unknownBlock: string;
  /** Why an address can be returned while still allocated, in this format: the end of PTR_LIVE's message. */
  protected abstract readonly reuseHint: string;

  /** Whether the log has a block live at `ptr` now. */
  protected isLive(ptr: PointerKey): boolean {
    return this.live.has(ptr);
  }

  /** Blocks live now. */
  protected get liveCount(): number {
    return this.live.size;
  }

  /**
   * A call that returned `ptr` (null: it failed) made a block: writes `VERB ID ARGS`. A failed call's ID
   * stays live in the trace (the format's rule for failed calls) and is never freed.
   */
  protected allocated(tag: string, verb: string, ptr: PointerKey | null, args: string, lineNo: number): void {
    const id = `b${this.nextId++}`;
    this.summary.calls++;
    if (ptr === null) {
      this.summary.failed++;
      this.out += `${tag}${verb} ${id} ${args}    # failed (NULL) in the recorded run\n`;
      return;
    }
    const known = this.live.get(ptr);
    if (known) this.ptrLive(ptr, known, lineNo);
    this.live.set(ptr, { id, line: lineNo });
    this.out += `${tag}${verb} ${id} ${args}\n`;
  }

  /** free(ptr), ptr not null: `free ID`, or a comment for a block the log never showed. */
  protected freed(tag: string, ptr: PointerKey): void {
    const block = this.live.get(ptr);
    if (!block) {
      this.summary.untracked++;
      this.out += `# free of ${pointerText(ptr)}, ${this.unknownBlock}: skipped\n`;
      return;
    }
    this.live.delete(ptr);
    this.summary.calls++;
    this.out += `${tag}free ${block.id}\n`;
  }

  /** realloc(old, size) returned `ptr` (old and ptr not null): the ID follows the block to its new address. */
  protected moved(tag: string, old: PointerKey, ptr: PointerKey, size: string, lineNo: number): void {
    const block = this.live.get(old);
    if (!block) {
      this.summary.untracked++;
      this.out += `# realloc of ${pointerText(old)}, ${this.unknownBlock}: imported as a malloc\n`;
      this.allocated(tag, 'malloc', ptr, size, lineNo);
      return;
    }
    this.live.delete(old);
    const other = this.live.get(ptr);
    if (other) this.ptrLive(ptr, other, lineNo);
    this.live.set(ptr, { id: block.id, line: lineNo });
    this.summary.calls++;
    this.out += `${tag}realloc ${block.id} ${size}\n`;
  }

  /** realloc(old, 0), old not null, which glibc turns into free(old) and NULL: `realloc ID 0`, which ends the ID. */
  protected reallocToZero(tag: string, old: PointerKey): void {
    const block = this.live.get(old);
    if (!block) {
      this.summary.untracked++;
      this.out += `# realloc of ${pointerText(old)} to 0 bytes (a free), ${this.unknownBlock}: skipped\n`;
      return;
    }
    this.live.delete(old);
    this.summary.calls++;
    this.out += `${tag}realloc ${block.id} 0\n`;
  }

  /** realloc(old, size) failed (old not null): the old block stays live. */
  protected reallocFailed(tag: string, old: PointerKey, size: string): void {
    this.summary.failed++;
    const block = this.live.get(old);
    if (!block) {
      this.summary.untracked++;
      this.out += `# failed realloc of ${pointerText(old)} to ${size} bytes, ${this.unknownBlock}: skipped\n`;
      return;
    }
    this.summary.calls++;
    this.out += `${tag}realloc ${block.id} ${size}    # failed (NULL) in the recorded run; the block stayed live\n`;
  }

  private ptrLive(ptr: PointerKey, block: LiveBlock, lineNo: number): never {
    this.fail(
      `${this.codePrefix}_PTR_LIVE`,
      lineNo,
      `${pointerText(ptr)} is returned again while still allocated (since line ${block.line}): ${this.reuseHint}`,
    );
  }

  protected override end(): void {
    this.summary.liveAtEnd = this.live.size;
  }
}
