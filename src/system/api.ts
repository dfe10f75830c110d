// What the allocator core may ask of "the kernel": a program break and anonymous mappings (SystemMemory,
// which every backend offers), and, apart, what only real memory offers (RealMemory). Two backends implement
// it: the simulated address space (simulated.ts, no memory) and real memory through the addon (native.ts).
import type { MallocscopeError } from '../errors.ts';

/** One system call the allocator made, as the event stream reports it. */
export interface Syscall {
  /**
   * brk: the program break moved by `bytes` (negative to shrink); mmap/munmap/mremap/madvise as named;
   * mprotect: pages of a thread arena's heap made writable (grow_heap).
   */
  call: 'brk' | 'mmap' | 'munmap' | 'mremap' | 'madvise' | 'mprotect';
  /** brk: the increment; mmap/munmap/madvise: the length; mremap: the new length. A bigint from 2^53 up. */
  bytes: number | bigint;
  /** mremap: the old length. */
  from?: number;
  /** Set when the kernel refused (ENOMEM): the call was made and failed. */
  failed?: true;
}

/** The kernel interface of the allocator core. Addresses are plain numbers (user space is below 2^47). */
export interface SystemMemory {
  /** The page size: the unit of brk growth, trimming and mapping lengths. */
  readonly pageSize: number;
  /** The program break before the first allocation: where heap offsets are measured from. */
  readonly heapStart: number;
  /**
   * sbrk(increment): moves the break and returns the old one, or -1 when the kernel refuses (as glibc's
   * MORECORE_FAILURE). sbrk(0) reads the break and makes no system call.
   */
  sbrk(increment: number | bigint): number;
  /**
   * An anonymous private read-write mapping of `length` bytes (a page multiple); -1 on failure. A bigint
   * increment or length is 2^53 or more, which no x86-64 kernel grants: the call fails, logged exactly.
   */
  mmap(length: number | bigint): number;
  /** Unmaps [address, address + length): a whole mapping, or a page-aligned part of one. */
  munmap(address: number, length: number): void;
  /**
   * A reservation without access (mmap PROT_NONE, MAP_NORESERVE: new_heap's, for a thread arena's heap) of
   * `length` bytes, at `hint` when that range is free, else where the kernel puts it; -1 on failure.
   */
  reserve(length: number, hint?: number): number;
  /** mprotect(PROT_READ | PROT_WRITE) of whole pages of a reservation; false when the kernel refuses. */
  mprotect(address: number, length: number): boolean;
  /** mremap with MREMAP_MAYMOVE: the (possibly new) address, or -1 on failure. */
  mremap(address: number, oldLength: number, newLength: number | bigint): number;
  /** madvise(MADV_DONTNEED): the pages' contents are dropped (resident memory only). */
  madvise(address: number, length: number): void;
  /**
   * Set once the kernel's memory was given back (NativeSystem.release()), or once a failure stopped a call
   * halfway (`failure`): no call may be made after it.
   */
  readonly released: boolean;
  /** The failure that stopped a call halfway (a heap backing's: HEAP_BACKING_FULL …), if any. */
  readonly failure?: MallocscopeError | null;
  /** How many calls were made since the last take (the allocator marks which part of a call made which). */
  readonly syscallCount: number;
  /** The calls made since the last take, oldest first; taking empties the list. */
  takeSyscalls(): Syscall[];
  /** The real bytes behind the addresses, or null where there are none (the simulated kernel). */
  readonly memory: RealMemory | null;
}

/** What only real memory offers: its bytes, and the kernel's protection and locking of its pages. */
export interface RealMemory {
  /** Copies `length` bytes of user data from `from` to `to` (realloc moving a block, as glibc's memcpy). */
  copy(to: number, from: number, length: number): void;
  /** Zeroes `length` bytes at `address` (calloc of recycled memory). */
  zero(address: number, length: number): void;
  /**
   * A Uint8Array over the real bytes at [address, address + length) (no copy). The view is detached (reads as
   * empty, any access throws TypeError) when that memory goes away.
   */
  bytes(address: number, length: number): Uint8Array;
  /** Detaches a view bytes() returned (its block was freed or reallocated). */
  detach(view: Uint8Array): void;
  /** mprotect of whole pages: `address` page-aligned, `length` rounded up to pages. */
  protect(address: number, length: number, mode: Protection): void;
  /** mlock of whole pages: `address` page-aligned, `length` rounded up to pages. */
  lock(address: number, length: number): void;
  /** munlock, as lock. */
  unlock(address: number, length: number): void;
}

/** What protect() allows: no access, reading, or reading and writing (the default of all memory). */
export type Protection = 'none' | 'read' | 'read-write';
