// The native kernel: the allocator core's system calls on real memory, through the addon (native/addon).
// The program break is emulated inside one reserved range (the real brk belongs to the glibc under Node);
// large blocks get real anonymous mappings, thread arenas' heaps real PROT_NONE reservations made writable
// page by page (mprotect), as glibc's new_heap and grow_heap make them. The break is also tracked here, so that sbrk(0) and every call
// that needs no system call stay in JavaScript. Only this file loads the addon for the allocator. With a
// backing, the break's pages are a shared memfd's or a file's, which readers map (heap-image.ts).
import { isMainThread } from 'node:worker_threads';
import { constants } from 'node:buffer';
import { resolve } from 'node:path';
import { MallocscopeError } from '../errors.ts';
import { loadAddon, type NativeLayer } from '../native.ts';
import type { Protection, RealMemory, Syscall, SystemMemory } from './api.ts';
import { type BackingSidecar, writeImageSidecar, writeSidecar } from './sidecar.ts';
import { SyscallLog } from './syscall-log.ts';

/** Options of the native kernel. */
export interface NativeSystemOptions {
  /**
   * Address space reserved for the emulated break, in bytes (a page multiple; default 64 GiB). Only what the
   * break covers is committed; growing past the reservation fails as sbrk fails, so glibc's mmap fallback runs.
   */
  reserve?: number;
  /** A PROT_NONE page before and after every mapping, so that overrunning an mmapped block faults. */
  guardPages?: boolean;
  /**
   * Where the emulated heap's pages live (the break's; mappings stay private): private memory (default);
   * 'shared', a memfd that other processes and worker threads can map (sharedHeap(), openHeapImage); or
   * { file }, a regular file (created, or truncated, mode 0600 when created) holding the heap's bytes from its
   * start, with a sidecar FILE.backing.json ({ base, length, pageSize }). One heap per file: a file another
   * live heap uses (locked with flock) is refused with HEAP_BACKING_OPEN.
   */
  backing?: 'shared' | { file: string };
}

/** What a reader needs to map a shared or file-backed heap (openHeapImage). */
export interface SharedHeap {
  kind: 'shared' | 'file';
  /** A path any process may open: /proc/PID/fd/N for a memfd, the file's absolute path. */
  path: string;
  /** The descriptor in this process (a worker thread may pass it to openHeapImage). */
  fd: number;
  /** The heap's start here: the backing's offset 0. */
  base: number;
  /** Bytes from the start to the break now; the backing holds at least this many. */
  length: number;
  pageSize: number;
}

/** Resident memory now, in bytes (mincore). */
export interface ResidentMemory {
  /** Resident pages of the emulated heap. */
  heap: number;
  /** Resident pages of the mappings (mmapped blocks and any mmap fallback heap). */
  mmapped: number;
  /** The heap's committed bytes: from its start to the break, rounded up to a page. */
  heapCommitted: number;
  /** Bytes in live mappings (guard pages excluded). */
  mapped: number;
  /** Resident pages of the thread arenas' heaps. */
  threadHeaps: number;
  /** The thread arenas' heaps' read-write bytes (what grow_heap's mprotect calls made writable). */
  threadHeapsCommitted: number;
}

/** What the layer holds now (for tests): the heap's committed range, the break, the mappings. */
export interface NativeRegions {
  heap: [number, number];
  brk: number;
  /** [address, length, frontGuard, backGuard] per mapping, by address. */
  mappings: [number, number, number, number][];
  /** [address, length, read-write bytes] per reservation (what is left of each after partial munmaps), by address. */
  reservations: [number, number, number][];
  released: boolean;
}

const GiB = 1024 ** 3;
/** Larger than x86-64 user space: the kernel refuses it, so no call is made. */
const USER_SPACE = 2 ** 47;

/** A value in a message: JSON when it has a JSON form, else its string. */
function shown(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * How many times a process.on('SIGBUS') listener came or went since the first backing: libuv's handler then
 * replaced the backings' SIGBUS guard (or gave it back to the default), which their layers check (a system
 * call) only when this moved.
 */
let sigbusChanges = 0;
let sigbusWatched = false;

function watchSigbus(): void {
  if (sigbusWatched) return;
  sigbusWatched = true;
  const note = (event: string | symbol) => {
    if (event === 'SIGBUS') sigbusChanges++;
  };
  process.on('newListener', note);
  process.on('removeListener', note);
}

/** Whether an mlockall of lockAll() is in force; an 'exit' listener undoes it while it is. */
let processLocked = false;
let exitHooked = false;

/**
 * Undoes lockAll() as Node exits (also after process.exit() and an uncaught error): with MCL_FUTURE in force,
 * V8's own mprotect calls while it shuts down fail and abort the process. The addon's env cleanup hook does
 * the same at the env's teardown (workers, embedders).
 */
function unlockAtExit(): void {
  if (processLocked) {
    processLocked = false;
    loadAddon().unlockAll();
  }
}

export class NativeSystem implements SystemMemory, RealMemory {
  /** The bytes behind the addresses are real: this system is its own RealMemory. */
  get memory(): RealMemory {
    return this;
  }

  readonly pageSize: number;
  readonly heapStart: number;
  /** The end of the reservation: the break cannot pass it. */
  readonly heapLimit: number;
  readonly guardPages: boolean;
  private brk: number;
  private readonly layer: NativeLayer;
  private readonly log = new SyscallLog();
  private isReleased = false;
  /** Whether this system's lockAll() is in force (release() then undoes it). */
  private lockedAll = false;
  /** The backing file's absolute path (for the sidecar and readers; a later chdir changes nothing), when backed by a file. */
  private readonly file: string | undefined;
  /** The error of a backing that failed under a call (the allocator's state is then not to be trusted). */
  private backingFailure: MallocscopeError | null = null;
  /** The backing's SIGBUS fault counter (native memory, read as it changes), or null without a backing. */
  private readonly faults: Uint32Array | null;
  /** `sigbusChanges` when the layer last checked its guard. */
  private sigbusSeen = sigbusChanges;

  constructor(options: NativeSystemOptions = {}) {
    const addon = loadAddon();
    const page = addon.pageSize();
    const reserve = options.reserve ?? 64 * GiB;
    if (!Number.isSafeInteger(reserve) || reserve <= 0 || reserve % page !== 0) {
      throw new MallocscopeError('BAD_ARGUMENT', `reserve must be a positive multiple of the page size (${page}), not ${reserve}`);
    }
    const backing = options.backing;
    if (backing !== undefined && backing !== 'shared') {
      const file = typeof backing === 'object' && backing !== null ? (backing as { file?: unknown }).file : undefined;
      if (typeof file !== 'string' || file === '' || file.includes('\0')) {
        throw new MallocscopeError('BAD_ARGUMENT', `backing must be 'shared' or { file: PATH } with a non-empty path, not ${shown(backing)}`);
      }
      this.file = resolve(file);
    }
    this.layer = new addon.Layer(reserve, options.guardPages ?? false, backing);
    const info = this.layer.info();
    this.pageSize = info.pageSize;
    this.heapStart = info.base;
    this.heapLimit = info.base + info.size;
    this.guardPages = info.guardPages;
    this.brk = this.heapStart;
    this.faults = backing !== undefined ? this.layer.faults() : null;
    if (this.faults) watchSigbus();
    if (this.file !== undefined) {
      try {
        writeSidecar(this.file, this.sidecar(), 'HEAP_BACKING_OPEN');
      } catch (error) {
        this.layer.release();
        throw error;
      }
    }
  }

  sbrk(increment: number | bigint): number {
    const old = this.brk;
    if (increment === 0) return old;
    // Outside the reservation sbrk fails without asking the kernel (as a mapping in the way would make it),
    // and so does a bigint increment (2^53 or more, which glibc's requests past PTRDIFF_MAX reach).
    const next = typeof increment === 'bigint' ? Number.NaN : old + increment;
    if (typeof increment === 'bigint' || (Number.isInteger(increment) && (next < this.heapStart || next > this.heapLimit))) {
      this.log.push({ call: 'brk', bytes: increment, failed: true });
      return -1;
    }
    if (this.call(() => this.layer.sbrk(increment)) === -1) {
      this.log.push({ call: 'brk', bytes: increment, failed: true });
      return -1;
    }
    this.brk = next;
    this.log.push({ call: 'brk', bytes: increment });
    return old;
  }

  mmap(length: number | bigint): number {
    // A bad length (NaN, negative, unaligned) is the layer's to refuse with its code.
    const address = typeof length === 'bigint' || length >= USER_SPACE ? -1 : this.call(() => this.layer.mmap(length));
    this.log.push(address === -1 ? { call: 'mmap', bytes: length, failed: true } : { call: 'mmap', bytes: length });
    return address;
  }

  /** A whole mapping, or a page-aligned part of one (new_heap keeps the aligned heap of a larger reservation). */
  munmap(address: number, length: number): void {
    this.call(() => this.layer.munmap(address, length));
    this.log.push({ call: 'munmap', bytes: length });
  }

  /**
   * A thread arena's heap: a real PROT_NONE, MAP_NORESERVE mapping, at `hint` when the kernel finds it free
   * (a hint, never MAP_FIXED: nothing of Node's can be mapped over), logged as an mmap.
   */
  reserve(length: number, hint?: number): number {
    // A bad length or hint (NaN, negative, unaligned) is the layer's to refuse with its code.
    const address = length >= USER_SPACE ? -1 : this.call(() => this.layer.reserve(length, hint ?? 0));
    this.log.push(address === -1 ? { call: 'mmap', bytes: length, failed: true } : { call: 'mmap', bytes: length });
    return address;
  }

  /** grow_heap: whole pages of a reservation made read-write; false when the kernel refuses. */
  mprotect(address: number, length: number): boolean {
    const done = this.call(() => this.layer.mprotect(address, length));
    this.log.push(done ? { call: 'mprotect', bytes: length } : { call: 'mprotect', bytes: length, failed: true });
    return done;
  }

  mremap(address: number, oldLength: number, newLength: number | bigint): number {
    const moved = typeof newLength === 'bigint' || newLength >= USER_SPACE ? -1 : this.call(() => this.layer.mremap(address, oldLength, newLength));
    this.log.push(moved === -1 ? { call: 'mremap', bytes: newLength, from: oldLength, failed: true } : { call: 'mremap', bytes: newLength, from: oldLength });
    return moved;
  }

  madvise(address: number, length: number): void {
    this.call(() => this.layer.madvise(address, length));
    this.log.push({ call: 'madvise', bytes: length });
  }

  get syscallCount(): number {
    return this.log.count;
  }

  takeSyscalls(): Syscall[] {
    return this.log.take();
  }

  /** memmove of user data (realloc moving a block). */
  copy(to: number, from: number, length: number): void {
    if (length > 0) this.call(() => this.layer.copy(to, from, length));
  }

  /** memset to 0 (calloc of recycled heap memory). */
  zero(address: number, length: number): void {
    if (length > 0) this.call(() => this.layer.zero(address, length));
  }

  /**
   * A Uint8Array over the real bytes at [address, address + length), inside the heap or one mapping. It is
   * detached when that memory is unmapped, moved by mremap, or given back by a shrinking break.
   */
  bytes(address: number, length: number): Uint8Array {
    // Node makes no ArrayBuffer larger than this (2^32 bytes on Node 20): refused before the addon is asked.
    if (length > constants.MAX_LENGTH) {
      throw new MallocscopeError(
        'VIEW_TOO_LARGE',
        `bytes(0x${address.toString(16)}): ${length} bytes is more than Node's largest ArrayBuffer (buffer.constants.MAX_LENGTH, ${constants.MAX_LENGTH} bytes)`,
      );
    }
    return this.call(() => this.layer.bytes(address, length));
  }

  /** Detaches a view bytes() returned; detaching twice does nothing. */
  detach(view: Uint8Array): void {
    this.layer.detach(view);
  }

  /** mprotect: `address` page-aligned, `length` rounded up to whole pages, inside the heap or one mapping. */
  protect(address: number, length: number, mode: Protection): void {
    this.call(() => this.layer.protect(address, length, mode));
  }

  /** mlock, page-granular as protect(). Fails with a clear message when RLIMIT_MEMLOCK is too low. */
  lock(address: number, length: number): void {
    this.call(() => this.layer.lock(address, length));
  }

  /** munlock. */
  unlock(address: number, length: number): void {
    this.call(() => this.layer.unlock(address, length));
  }

  /**
   * mlockall for the whole process (Node included): MCL_CURRENT locks what is mapped now, MCL_FUTURE what is
   * mapped later (the break's growth and new mappings then become resident at once). Default: both.
   * MCL_FUTURE also locks Node's own later mappings, so it is refused (ERR_MEMLOCK_FUTURE) unless
   * RLIMIT_MEMLOCK is unlimited or the process has CAP_IPC_LOCK. release() of this system and Node's exit
   * undo it (munlockall).
   */
  lockAll(options: { current?: boolean; future?: boolean } = {}): void {
    if (this.released) throw new MallocscopeError('SYSTEM_RELEASED', 'lockAll: this native system was released; create a new one');
    // A worker's V8 heap cannot live with locked pages: as it grows code space or ends, V8 aborts the process.
    if (!isMainThread)
      throw new MallocscopeError(
        'LOCK_ALL_IN_WORKER',
        'lockAll: mlockall from a worker thread would take Node down when the worker compiles code or ends (V8 cannot change the permissions of locked pages); call it from the main thread, with no worker running',
      );
    loadAddon().lockAll(options.current ?? true, options.future ?? true);
    this.lockedAll = true;
    processLocked = true;
    if (!exitHooked) {
      exitHooked = true;
      process.on('exit', unlockAtExit);
    }
  }

  /** munlockall for the whole process (which also unlocks blocks locked one by one). */
  unlockAll(): void {
    loadAddon().unlockAll();
    this.lockedAll = false;
    processLocked = false;
  }

  /**
   * Set by release(): an Allocator over this system refuses every call after it (SYSTEM_RELEASED). Set too
   * once the backing failed under a call (`failure`): that call stopped halfway, so the allocator refuses
   * every later call with the failure's code.
   */
  get released(): boolean {
    this.poll();
    return this.isReleased || this.backingFailure !== null;
  }

  /**
   * The backing's failure that stopped a call halfway or made the heap untrustworthy (HEAP_BACKING_FULL,
   * _FAILED, _LOST, _UNGUARDED), or null. Kept: every later call of an Allocator over this system is refused.
   */
  get failure(): MallocscopeError | null {
    this.poll();
    return this.backingFailure;
  }

  /**
   * Whether a page of the backing was lost or its guard replaced since the last call: that happens under
   * writes through views, in JavaScript, with no call of the layer, so it is asked before every Allocator
   * call. Without a fault and without a SIGBUS listener come or gone, no call of the addon.
   */
  private poll(): void {
    if (this.faults === null || this.isReleased || this.backingFailure !== null) return;
    if (this.faults[0] === 0 && this.sigbusSeen === sigbusChanges) return;
    try {
      this.call(() => this.layer.check(true));
    } catch {
      // Kept by call(): the getters report it.
    }
  }

  /**
   * What a reader needs to map the heap (openHeapImage(path or fd, { length })): a shared or file-backed
   * heap's path, descriptor, start and the break's extent now. NO_BACKING for a heap in private memory.
   */
  sharedHeap(): SharedHeap {
    if (this.isReleased) throw new MallocscopeError('SYSTEM_RELEASED', 'sharedHeap: this native system was released; create a new one');
    const backing = this.call(() => this.layer.backing());
    if (backing === null) {
      throw new MallocscopeError(
        'NO_BACKING',
        "sharedHeap: this native system keeps its heap in private memory; create it with { backing: 'shared' } or { backing: { file } }",
      );
    }
    return {
      kind: backing.kind,
      path: this.file ?? `/proc/${process.pid}/fd/${backing.fd}`,
      fd: backing.fd,
      base: this.heapStart,
      length: this.brk - this.heapStart,
      pageSize: this.pageSize,
    };
  }

  /** Every call of the layer: a failure of the backing is kept (see `released`) and thrown. */
  private call<T>(run: () => T): T {
    try {
      // A SIGBUS listener came or went since the layer last looked: whether the guard is still in place first.
      if (this.faults !== null && this.sigbusSeen !== sigbusChanges) {
        this.sigbusSeen = sigbusChanges;
        this.layer.check(true);
      }
      return run();
    } catch (error) {
      if (error instanceof MallocscopeError && error.code.startsWith('HEAP_BACKING_')) this.backingFailure ??= error;
      throw error;
    }
  }

  /** The sidecar's fields now (a file-backed heap). */
  private sidecar(): BackingSidecar {
    return { base: this.heapStart, length: this.brk - this.heapStart, pageSize: this.pageSize };
  }

  /** Resident memory of the heap and of the mappings now (mincore). */
  resident(): ResidentMemory {
    return this.call(() => this.layer.resident());
  }

  /** What the layer holds now. */
  regions(): NativeRegions {
    return this.call(() => this.layer.regions());
  }

  /**
   * Set by an Allocator in metadata mode (docs/image.md): the image sidecar's text of the heap now. A
   * file-backed heap writes it beside its file at release (FILE.json), so that the file is a heap image a
   * walker reads later, anywhere, with no model (walkImageFile with programBytes).
   */
  imageSidecar: (() => string) | null = null;

  /**
   * Unmaps the reservation and every mapping and detaches every view. The system is unusable afterwards;
   * releasing twice does nothing; an Allocator over it then refuses every call (SYSTEM_RELEASED). A system
   * dropped without release() is released once the GC has collected it (V8 is told how much memory each
   * system holds, so it collects them in time); at exit the kernel takes everything back anyway. A
   * file-backed heap's file stays, and its sidecar is written again with the break's extent now (a system
   * the GC released keeps the sidecar of its creation, length 0).
   */
  release(): void {
    if (this.isReleased) return;
    this.isReleased = true;
    if (this.lockedAll && processLocked) this.unlockAll();
    const sidecar = this.file !== undefined ? this.sidecar() : undefined;
    // The image's sidecar is read while the heap is still there; a heap that is no longer one piece has none.
    let image: string | null = null;
    if (this.file !== undefined && this.imageSidecar !== null) {
      try {
        image = this.imageSidecar();
      } catch {
        image = null;
      }
    }
    this.layer.release();
    if (this.file !== undefined && sidecar) writeSidecar(this.file, sidecar, 'HEAP_BACKING_FAILED');
    if (this.file !== undefined && this.imageSidecar !== null) writeImageSidecar(this.file, image);
  }
}
