// How a system call the model made is written, in one place. Two forms with the same words and order: the
// contract's (the "sys" strings of replay --jsonl, docs/trace-format.md: plain ASCII, exact numbers) and the
// reading form of explain's sentences and the report page (a true minus sign, an arrow, amounts as the
// reader wants them).
import type { Syscall } from '../system/api.ts';

/** Writes an amount of bytes (a bigint from 2^53 up); the contract writes every digit. */
export type BytesText = (bytes: number | bigint) => string;

/** The contract's form: `brk +N`, `brk -N`, `mmap N`, `munmap N`, `mremap A->B`, `madvise N`; a call that failed ends in ` failed`. */
export function syscallText(call: Syscall): string {
  return spell(call, '-', '->', ' failed', String);
}

/**
 * The same call in a sentence: `brk +N`, `brk −N`, `mmap N`, `mremap A → B`…, and ` (failed)`. `amount` writes
 * the byte counts (default: every digit, as the contract; the page passes its KiB/MiB formatter).
 */
export function syscallProse(call: Syscall, amount: BytesText = String): string {
  return spell(call, '−', ' → ', ' (failed)', amount);
}

function spell(call: Syscall, minus: string, arrow: string, failed: string, amount: BytesText): string {
  const end = call.failed ? failed : '';
  switch (call.call) {
    case 'brk': {
      const down = call.bytes < 0;
      return `brk ${down ? minus : '+'}${amount(down ? -call.bytes : call.bytes)}${end}`;
    }
    case 'mremap':
      return `mremap ${amount(call.from ?? 0)}${arrow}${amount(call.bytes)}${end}`;
    default:
      return `${call.call} ${amount(call.bytes)}${end}`;
  }
}
