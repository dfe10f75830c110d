// mprotect and mlock on the native backend, as the seed documents use them. A write to a read-only block
// must kill the process with SIGSEGV, so that is tested in a child process (and only there); making the block
// read-write again works in this one. mlock and mlockall work, and with RLIMIT_MEMLOCK too low (in a child
// without CAP_IPC_LOCK, under prlimit) they fail with an error that names the limit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unless } from './support/skip.ts';
import { DROP_LOCK_CAPABILITY, cannotDropLock } from './support/memlock.ts';
import { runChild } from './support/child.ts';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Allocator } from '../dist/replay/allocator.js';
import { NativeSystem } from '../dist/system/native.js';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-native-protect-'));

/** Runs `body` (JavaScript, with Allocator and NativeSystem imported) in a child node; `wrap` prefixes the command. */
function child(name: string, body: string, wrap: string[] = []) {
  return runChild(dir, name, body, { wrap });
}

function vmLocked(): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmLck:'))!;
  return Number(/(\d+)/.exec(line)![1]) * 1024;
}

// AddressSanitizer turns mlock, munlock, mlockall and munlockall into no-ops (scripts/native-asan.sh sets
// this): the locking tests then have nothing to observe.
const lockingIgnored = process.env.MALLOCSCOPE_ASAN === '1';
const lockTest = unless(test, lockingIgnored ? 'AddressSanitizer makes mlock a no-op' : undefined);

const PAGED_BLOCK = `
const system = new NativeSystem();
const heap = new Allocator({ system });
const p = heap.memalign(4096, 4 * 4096);
const view = heap.bytes(p);
view[0] = 1;
`;

test('a write to a read-only block kills the (child) process with SIGSEGV', () => {
  const run = child(
    'write-read-only',
    `${PAGED_BLOCK}
heap.protect(p, 'read');
console.log('read', view[0]);
view[10] = 2;
console.log('survived');`,
  );
  assert.is(run.signal, 'SIGSEGV', `status ${run.status}, stderr ${run.stderr}`);
  assert.match(run.stdout, /read 1/);
  assert.not.match(run.stdout, /survived/);
});

test('a read of a no-access block kills the (child) process with SIGSEGV', () => {
  const run = child(
    'read-none',
    `${PAGED_BLOCK}
heap.protect(p, 'none');
console.log('protected');
console.log(view[0]);`,
  );
  assert.is(run.signal, 'SIGSEGV', `status ${run.status}, stderr ${run.stderr}`);
  assert.match(run.stdout, /protected/);
});

test('a write to an mmapped read-only block kills the child too', () => {
  const run = child(
    'write-mmapped',
    `
const system = new NativeSystem();
const heap = new Allocator({ system });
const p = heap.memalign(4096, 1 << 20);
console.log(heap.block(p).where);
heap.protect(p, 'read');
heap.bytes(p)[5] = 1;`,
  );
  assert.is(run.signal, 'SIGSEGV');
  assert.match(run.stdout, /mmap/);
});

test('guard pages are PROT_NONE in maps on both sides of a mapping', () => {
  const system = new NativeSystem({ guardPages: true });
  const m = system.mmap(8192);
  const lines = readFileSync('/proc/self/maps', 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [range, perms] = line.split(' ');
      const [from, to] = range.split('-').map((hex) => parseInt(hex, 16));
      return { from, to, perms };
    });
  const at = (address: number) => lines.find((line) => line.from <= address && address < line.to)?.perms;
  assert.is(at(m - 1), '---p');
  assert.is(at(m), 'rw-p');
  assert.is(at(m + 8191), 'rw-p');
  assert.is(at(m + 8192), '---p');
  // bytes() refuses the guard page: it is not memory the layer handed out.
  assert.throws(
    () => system.bytes(m + 8192, 1),
    (error: Error & { code: string }) => error.code === 'ERR_NOT_MAPPED',
  );
  system.release();
});

test('read-only and back to read-write: writes work again, and free restores read-write', () => {
  const system = new NativeSystem();
  const heap = new Allocator({ system });
  const p = heap.memalign(4096, 4 * 4096);
  const view = heap.bytes(p);
  heap.protect(p, 'read');
  assert.is(view[0], 0, 'reading a read-only block works');
  heap.protect(p, 'read-write');
  view[0] = 7;
  assert.is(view[0], 7);
  heap.protect(p, 'none');
  // The allocator may reuse the memory after free: free makes it read-write again.
  heap.free(p);
  const q = heap.memalign(4096, 4 * 4096);
  assert.is(q, p);
  heap.bytes(q)[0] = 3;
  // copy out of a no-access block is refused instead of faulting.
  heap.protect(q, 'none');
  assert.throws(
    () => system.copy(system.heapStart, q, 16),
    (error: Error & { code: string }) => error.code === 'ERR_PROTECTED',
  );
  const r = heap.realloc(q, 40000);
  assert.is(heap.bytes(r)[0], 3, 'realloc of a protected block restores it, then copies');
  system.release();
});

lockTest('mlock of a block and munlock', () => {
  const system = new NativeSystem();
  const heap = new Allocator({ system });
  const p = heap.malloc(1 << 20);
  const before = vmLocked();
  heap.lock(p);
  assert.ok(vmLocked() >= before + (1 << 20), `VmLck ${vmLocked()}`);
  const resident = system.resident();
  assert.is(resident.mmapped, resident.mapped, 'locked pages are resident');
  heap.unlock(p);
  assert.is(vmLocked(), before);
  heap.lock(p);
  heap.free(p); // unlocks, then unmaps
  assert.is(vmLocked(), before);
  system.release();
});

lockTest("mlockall(MCL_CURRENT | MCL_FUTURE): the break's growth is resident at once (in a child)", () => {
  const run = child(
    'lockall',
    `
const system = new NativeSystem();
system.lockAll();
const heap = new Allocator({ system });
heap.malloc(1000);
const locked = Number(/VmLck:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
const r = system.resident();
console.log(JSON.stringify({ locked, heap: r.heap, committed: r.heapCommitted }));
system.unlockAll();
system.release();`,
  );
  assert.is(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout);
  assert.ok(out.locked > 0, 'VmLck > 0');
  assert.is(out.heap, out.committed, 'with MCL_FUTURE, every committed heap page is resident');
});

const limitTest = unless(test, lockingIgnored ? 'AddressSanitizer makes mlock a no-op' : cannotDropLock);

limitTest('with RLIMIT_MEMLOCK 64 KiB and no CAP_IPC_LOCK, mlock and mlockall fail clearly (in a child)', () => {
  const run = child(
    'memlock-limit',
    `
const system = new NativeSystem();
const heap = new Allocator({ system });
const p = heap.malloc(1 << 20);
const show = (e) => console.log(JSON.stringify({ code: e.code, errno: e.errno, syscall: e.syscall, reason: e.reason, limit: e.limit, message: e.message }));
try { heap.lock(p); console.log('locked?'); } catch (e) { show(e); }
try { system.lockAll({ future: false }); console.log('locked all?'); } catch (e) { show(e); }
const small = heap.memalign(4096, 4096);
heap.lock(small);
console.log('small ok');`,
    DROP_LOCK_CAPABILITY,
  );
  assert.is(run.status, 0, run.stderr);
  const [lock, lockAll] = run.stdout
    .trim()
    .split('\n')
    .slice(0, 2)
    .map((line) => JSON.parse(line));
  assert.is(lock.code, 'ENOMEM');
  assert.is(lock.errno, -12);
  assert.is(lock.syscall, 'mlock');
  assert.is(lock.reason, 'RLIMIT_MEMLOCK');
  assert.is(lock.limit, 65536);
  assert.match(lock.message, /RLIMIT_MEMLOCK is 65536 bytes/);
  assert.match(lock.message, /ulimit -l/);
  assert.is(lockAll.code, 'ENOMEM');
  assert.is(lockAll.syscall, 'mlockall');
  assert.match(lockAll.message, /mlockall\(MCL_CURRENT\).*RLIMIT_MEMLOCK/);
  assert.match(run.stdout, /small ok/, 'a page within the limit locks');
});

test.run();
