// The CPU count glibc sees on this machine (__get_nprocs: the online CPUs), which sets its arena limit. Read
// without a static import of Node's modules, so that the report page (a browser) can bundle the replay: there
// it is 1, and a page never replays threads.

/**
 * The online CPUs of /sys/devices/system/cpu/online (ranges such as "0-3,6"), as glibc counts them; Node's
 * count when that file cannot be read; 1 outside Node.
 */
export function hostCores(): number {
  const node = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process;
  const fs = node?.getBuiltinModule?.('fs') as typeof import('node:fs') | undefined;
  const os = node?.getBuiltinModule?.('os') as typeof import('node:os') | undefined;
  try {
    const text = fs?.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim() ?? '';
    let count = 0;
    for (const part of text.split(',')) {
      const [from, to] = part.split('-').map(Number);
      if (Number.isInteger(from)) count += to === undefined ? 1 : to - from + 1;
    }
    if (count > 0) return count;
  } catch {
    // no sysfs: Node's count
  }
  return os?.cpus().length || 1;
}
