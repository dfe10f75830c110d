// The system calls a kernel made since the allocator last asked: both kernels record into one of these.
import type { Syscall } from './api.ts';

/** Shared by every empty take, so that a call that made no system call allocates nothing. */
const NONE: Syscall[] = [];
Object.freeze(NONE);

export class SyscallLog {
  private calls: Syscall[] = [];

  /** How many calls are waiting to be taken (a mark: the calls a part of one allocator call made). */
  get count(): number {
    return this.calls.length;
  }

  /** Records one call. */
  push(call: Syscall): void {
    this.calls.push(call);
  }

  /** The calls since the last take, oldest first; taking empties the log. */
  take(): Syscall[] {
    if (this.calls.length === 0) return NONE;
    const taken = this.calls;
    this.calls = [];
    return taken;
  }
}
