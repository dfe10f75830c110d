// The JSON Lines of `replay --jsonl` (docs/trace-format.md): the contract's fields in their fixed order,
// mallinfo2 with --stats, then what the model alone knows: the path, the system calls, what moved.
import type { Mallinfo2 } from '../allocator/libc.ts';
import type { ReplayOutcome } from '../replay/replayer.ts';
import { syscallText } from './syscall-text.ts';

/** The contract's part of a line: seq, op, id, and where/chunk/offset for a returned block. */
export function contractFields(outcome: ReplayOutcome): string {
  let line = `{"seq":${outcome.seq},"op":"${outcome.op}","id":${JSON.stringify(outcome.id())}`;
  const threaded = outcome.thread !== undefined;
  if (threaded) line += `,"thread":${outcome.thread}`;
  if (outcome.where === 'heap') {
    line += `,"where":"heap","chunk":${outcome.chunk}`;
    // In a trace with threads: the arena, a thread arena's heap, and the offset from that heap's start.
    if (threaded) line += `,"arenaIndex":${outcome.arenaIndex}${outcome.heapIndex >= 0 ? `,"heapIndex":${outcome.heapIndex}` : ''}`;
    line += `,"offset":${outcome.offset}`;
  } else if (outcome.where === 'mmap') line += `,"where":"mmap","chunk":${outcome.chunk}`;
  return line;
}

/** mallinfo2's six contract fields, in order. */
export function statsFields(info: Mallinfo2): string {
  return `,"arena":${info.arena},"hblks":${info.hblks},"hblkhd":${info.hblkhd},"uordblks":${info.uordblks},"fordblks":${info.fordblks},"keepcost":${info.keepcost}`;
}

/** The model's extra fields: via (the path), sys, threshold/trimThreshold moves, consolidations, trims. */
export function extraFields(outcome: ReplayOutcome): string {
  const notes = outcome.notes;
  let extra = '';
  if (notes.path) extra += `,"via":"${notes.path}"`;
  if (outcome.syscalls.length) extra += `,"sys":${JSON.stringify(outcome.syscalls.map(syscallText))}`;
  const move = notes.thresholdMove;
  if (move) {
    extra += `,"threshold":{"from":${move.mmapThreshold.from},"to":${move.mmapThreshold.to}}`;
    extra += `,"trimThreshold":{"from":${move.trimThreshold.from},"to":${move.trimThreshold.to}}`;
  }
  if (notes.consolidations) extra += `,"consolidations":${notes.consolidations}`;
  if (notes.trims) extra += `,"trimmed":${notes.trimmedBytes}`;
  return extra;
}
