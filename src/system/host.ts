// This machine's kernel, for comparisons with the real glibc on it: Linux's heuristic overcommit refuses one
// mapping (or break growth) larger than RAM + swap, so a model compared with the oracle here takes this
// machine's limit; replays elsewhere keep the simulated kernel's fixed default and stay deterministic.
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';

/** RAM + swap of this machine, in bytes: the largest single commitment the kernel grants. */
export function hostCommitLimit(): number {
  let swap = 0;
  try {
    const line = /^SwapTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (line) swap = Number(line[1]) * 1024;
  } catch {
    // no /proc: RAM alone
  }
  return totalmem() + swap;
}
