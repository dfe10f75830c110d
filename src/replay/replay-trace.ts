// replayTrace: a whole trace (a path, or events) through a Replayer, one plain step object per call. Apart from
// replayer.ts because it opens files: the report's page bundles the Replayer, and no Node API may come with it.
import type { SizeT } from '../allocator/size-t.ts';
import type { Mallinfo2 } from '../allocator/libc.ts';
import type { Syscall } from '../system/api.ts';
import type { TraceEvent } from '../trace/api.ts';
import { readTrace } from '../trace/reader.ts';
import { Replayer, type ReplayOptions } from './replayer.ts';

/** One replayed call, as replayTrace hands it out (a fresh object you may keep). */
export interface ReplayStep {
  seq: number;
  line: number;
  op: TraceEvent['op'];
  /** The trace ID; "" for mallopt and trim. */
  id: string;
  /** For a call that returned a block. */
  where?: 'heap' | 'mmap';
  chunk?: number;
  /** Heap blocks: user pointer minus the heap start. */
  offset?: number;
  /** How the block was found: tcache, fastbin, smallbin, unsorted, last-remainder, largebin, binmap, top, sysmalloc, mmap, mremap, in-place. */
  via?: string;
  /** The system calls the call made. */
  syscalls: Syscall[];
  /** mmap_threshold and trim_threshold after the call. */
  mmapThreshold: SizeT;
  trimThreshold: SizeT;
  /** Set when this call moved the thresholds (free of an mmapped chunk). */
  thresholdMoved?: { from: SizeT; to: SizeT };
  consolidations: number;
  /** Bytes systrim gave back (negative when glibc's size_t arithmetic grew the heap instead). */
  trimmed: number;
  /** mallinfo2 after the call, with the `stats` option. */
  stats?: Mallinfo2;
}

/**
 * Replays a trace (a path, `-` for stdin, or events from parseTrace/readTrace) through the model, one step
 * at a time. Streams: a trace of any length is replayed in memory proportional to its live blocks.
 */
export function* replayTrace(source: string | Iterable<TraceEvent>, options: ReplayOptions & { stats?: boolean } = {}): Generator<ReplayStep> {
  const replayer = new Replayer(options);
  const events = typeof source === 'string' ? readTrace(source) : source;
  for (const event of events) {
    const outcome = replayer.apply(event);
    const step: ReplayStep = {
      seq: event.seq,
      line: event.line,
      op: event.op,
      id: 'id' in event ? event.id : '',
      syscalls: outcome.syscalls,
      mmapThreshold: outcome.mmapThreshold,
      trimThreshold: outcome.trimThreshold,
      consolidations: outcome.notes.consolidations,
      trimmed: outcome.notes.trimmedBytes,
    };
    if (outcome.where) {
      step.where = outcome.where;
      step.chunk = outcome.chunk;
      if (outcome.where === 'heap') step.offset = outcome.offset;
    }
    if (outcome.notes.path) step.via = outcome.notes.path;
    if (outcome.notes.thresholdMove) step.thresholdMoved = outcome.notes.thresholdMove.mmapThreshold;
    if (options.stats) step.stats = replayer.mallinfo2();
    yield step;
  }
}
