// Counting an oracle run's memory system calls with strace (compare --allocator, docs/allocators.md): where strace
// is, the options it runs with, and the count of its log between the oracle's two markers.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Every thread; only the memory calls and the writes (the markers) stop the oracle; no signal lines. */
export const STRACE_ARGS = ['-f', '-qq', '--seccomp-bpf', '-e', 'trace=%memory,write', '-e', 'signal=none'];

/** strace's path on PATH, or null: posix_spawn, which runs the oracle, takes a path, not a name. */
export function findStrace(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const path = join(dir, 'strace');
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return null;
}

/** Memory system calls by name (each attempt, as the model counts them), and how many of those failed. */
export interface MemoryCalls {
  counts: Record<string, number>;
  /** Of the calls in `counts`, those that failed. */
  failed: number;
  /** Calls on the threads' stacks (pthread_create's mmap and mprotect, exit's madvise), left out of `counts`. */
  threadStacks: number;
}

const BEGINS = '-1, "mallocscope: replay begins';
const ENDS = '-1, "mallocscope: replay ends';

/**
 * The memory calls in a strace log (STRACE_ARGS, `-o`) made between the oracle's markers, that is by the replay:
 * the allocator's, and pthread_create's for the threads' stacks, which are counted apart (a mapping made with
 * MAP_STACK, and every later call on its range). With several threads a call may be split in two lines
 * (`<unfinished ...>`, then `<... mmap resumed>`); they are joined per thread. A failed call counts under its
 * name and in `failed`, as the model counts (src/report/peaks.ts): most return -1, but brk returns the break,
 * which stays where it was when the kernel refuses, so a brk that asked for an address and got another failed.
 */
export function countStraceLog(text: string): MemoryCalls {
  const counts: Record<string, number> = {};
  let failed = 0;
  let threadStacks = 0;
  const stacks: [bigint, bigint][] = [];
  const pending = new Map<string, string>();
  let on = false;
  for (const line of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, pid] = m;
    let rest = m[2];
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(rest);
    if (resumed) {
      rest = (pending.get(pid) ?? '') + resumed[1];
      pending.delete(pid);
    } else if (rest.endsWith('<unfinished ...>')) {
      pending.set(pid, rest.slice(0, -'<unfinished ...>'.length));
      continue;
    }
    const call = /^(\w+)\((.*)\)\s+= (.*)$/.exec(rest);
    if (!call) continue;
    const [, name, args, result] = call;
    if (name === 'write') {
      if (args.startsWith(BEGINS)) on = true;
      else if (args.startsWith(ENDS)) on = false;
      continue;
    }
    if (!on) continue;
    const first = /^(0x[0-9a-f]+|NULL)/.exec(args)?.[1];
    const returned = result.split(' ')[0];
    // A call on a thread's stack is counted apart (threadStacks), failed or not: pthread_create's, not the allocator's.
    const failing =
      result.startsWith('-1 ') ||
      (name === 'brk' && first !== undefined && first !== 'NULL' && /^0x[0-9a-f]+$/.test(returned) && BigInt(returned) !== BigInt(first));
    if (name === 'mmap' && args.includes('MAP_STACK')) {
      const length = /^[^,]+, (\d+),/.exec(args)?.[1];
      if (length !== undefined && returned.startsWith('0x')) stacks.push([BigInt(returned), BigInt(returned) + BigInt(length)]);
      threadStacks++;
      continue;
    }
    if (first !== undefined && first !== 'NULL' && name !== 'brk') {
      const at = BigInt(first);
      const stack = stacks.findIndex(([from, to]) => at >= from && at < to);
      if (stack >= 0) {
        // A stack unmapped from its start is gone (glibc's cache of stacks let it go): its range may be reused.
        if (name === 'munmap' && at === stacks[stack][0] && !failing) stacks.splice(stack, 1);
        threadStacks++;
        continue;
      }
    }
    counts[name] = (counts[name] ?? 0) + 1;
    if (failing) failed++;
  }
  return { counts, failed, threadStacks };
}
