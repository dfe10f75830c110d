// Where the native build lives, and the addon loaded from it. Only src/system's native backend and a few
// facts (the machine's glibc, its page size) go through here; the allocator core never imports it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MallocscopeError } from './errors.ts';

/** The package root: one level above src/ (in the checkout) or dist/ (compiled). */
export const packageRoot = fileURLToPath(new URL('..', import.meta.url));

/**
 * The folder cmake-js builds into; MALLOCSCOPE_BUILD_DIR points elsewhere (scripts/native-asan.sh's build, a
 * test's stand-in oracle), read at each call so that a command run in-process sees its own environment.
 */
export function buildDir(): string {
  return process.env.MALLOCSCOPE_BUILD_DIR || `${packageRoot}build/Release`;
}

/** The path of a file the native build produced, or a clear error when the build has not run. */
export function builtFile(name: string): string {
  const path = `${buildDir()}/${name}`;
  if (!existsSync(path)) {
    throw new MallocscopeError('NOT_BUILT', `${path} is missing; run \`npm install\` in ${packageRoot} to build it`, 2);
  }
  return path;
}

/** What the addon exports. */
export interface Addon {
  /** gnu_get_libc_version(): the glibc this process runs on, e.g. "2.36". */
  glibcVersion(): string;
  /** sysconf(_SC_PAGESIZE). */
  pageSize(): number;
  /** The native system layer (native/addon/layer.h); src/system/native.ts wraps it. */
  Layer: new (
    reserve: number,
    guardPages: boolean,
    backing?: 'shared' | { file: string },
  ) => NativeLayer;
  /** The reader of a heap backing (native/addon/image.cc); src/system/heap-image.ts wraps it. */
  HeapImage: new (
    source: string | number,
    /** Node's largest ArrayBuffer: no mapping is made for a longer view. */
    maxView: number,
  ) => NativeHeapImage;
  /** The class the addon's own errors (HEAP_BACKING_*, HEAP_IMAGE_*) are made of, per env. */
  setErrorClass(errorClass: typeof MallocscopeError): void;
  /** mlockall(MCL_CURRENT if current | MCL_FUTURE if future). */
  lockAll(current: boolean, future: boolean): void;
  /** munlockall(). */
  unlockAll(): void;
  /** Nanoseconds for `count` pairs of glibc malloc(size) + free, timed in C++ (bench/native.ts). */
  glibcMallocFree(size: number, count: number): number;
  /** One glibc malloc(size) + free, called once from JavaScript (so the N-API crossing shows). */
  glibcMallocFreeOnce(size: number): void;
  /**
   * Runs `file` (argv, envp as NAME=value) to its end with posix_spawn, stdin /dev/null, stdout and stderr
   * read as text: no fork of Node (native/addon/spawn.cc). `error` (Node's shape) when it could not start.
   */
  runSync(file: string, argv: string[], envp: string[]): { status: number | null; signal: number | null; stdout: string; stderr: string } | { error: Error };
}

/** One reservation with its emulated break, mappings and views (see native/addon/layer.h). */
export interface NativeLayer {
  info(): { base: number; size: number; pageSize: number; guardPages: boolean };
  sbrk(increment: number): number;
  release(): void;
  mmap(length: number): number;
  munmap(address: number, length: number): void;
  mremap(address: number, oldLength: number, newLength: number): number;
  madvise(address: number, length: number): void;
  reserve(length: number, hint: number): number;
  mprotect(address: number, length: number): boolean;
  regions(): {
    heap: [number, number];
    brk: number;
    mappings: [number, number, number, number][];
    reservations: [number, number, number][];
    released: boolean;
  };
  bytes(address: number, length: number): Uint8Array;
  detach(view: Uint8Array): boolean;
  copy(to: number, from: number, length: number): void;
  zero(address: number, length: number): void;
  protect(address: number, length: number, mode: 'none' | 'read' | 'read-write'): void;
  lock(address: number, length: number): void;
  unlock(address: number, length: number): void;
  resident(): { heap: number; mmapped: number; heapCommitted: number; mapped: number; threadHeaps: number; threadHeapsCommitted: number };
  /** The heap's backing: its kind, descriptor, size (the break's high-water mark) and a file's path; null without one. */
  /** Throws what the next call would (ERR_RELEASED, HEAP_BACKING_LOST; with `guard`, HEAP_BACKING_UNGUARDED); else nothing. */
  check(guard: boolean): void;
  /** A view of the backing's SIGBUS fault counter (null without a backing): read without calling the addon. */
  faults(): Uint32Array | null;
  backing(): { kind: 'shared' | 'file'; fd: number; size: number; path?: string } | null;
}

/** One opened heap backing, mapped read-only on demand (see native/addon/image.cc). */
export interface NativeHeapImage {
  /** The file's size now (fstat). */
  size(): number;
  /** Whether it is sealed against shrinking (a memfd of backing 'shared'). */
  sealed(): boolean;
  /** A new view over the first `length` bytes; the previous one is detached and unmapped. */
  map(length: number): Uint8Array;
  /**
   * The file's size; throws HEAP_IMAGE_TRUNCATED when it shrank below the view or a read past its end was
   * caught, HEAP_IMAGE_UNGUARDED when another SIGBUS handler replaced the guard over a file that may shrink.
   */
  check(): number;
  close(): void;
}

let addon: Addon | undefined;

/** The addon, loaded once. */
export function loadAddon(): Addon {
  if (addon === undefined) {
    addon = createRequire(import.meta.url)(builtFile('mallocscope.node')) as Addon;
    addon.setErrorClass(MallocscopeError);
  }
  return addon;
}
