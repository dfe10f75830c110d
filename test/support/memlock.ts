// For the locking tests: a child run under a 64 KiB RLIMIT_MEMLOCK and without CAP_IPC_LOCK (as an ordinary
// user is), so that mlock and mlockall meet the limit even when the tests run as root.
import { spawnSync } from 'node:child_process';

/** The command words that run a program that way (util-linux's prlimit and setpriv). */
export const DROP_LOCK_CAPABILITY = ['prlimit', '--memlock=65536:65536', 'setpriv', '--inh-caps=-ipc_lock', '--bounding-set=-ipc_lock'];

/** Why such a child cannot be run here, or undefined when it can. */
export const cannotDropLock: string | undefined =
  spawnSync('setpriv', ['--help']).status === 0 && spawnSync('prlimit', ['--help']).status === 0 ? undefined : 'needs prlimit and setpriv';
