// The model as a library: an allocator with glibc's calls on plain addresses (malloc returns a user pointer,
// 0 for NULL), its thresholds, mallinfo2, a walk of the heap and bins, and what the last call did.
import type { SizeT } from '../allocator/size-t.ts';
import { MallocscopeError } from '../errors.ts';
import type { Protection, RealMemory, Syscall } from '../system/api.ts';
import type { Malloc } from '../allocator/malloc.ts';
import { createMalloc, type ModelOptions } from './setup.ts';
import { ChunkState, NIL, chunk2mem } from '../allocator/chunks.ts';
import { MALLOPT_PARAMS, alignDown, alignUp, type MalloptParam } from '../allocator/constants.ts';
import { checkInvariants } from '../allocator/invariants.ts';
import {
  libcCalloc,
  libcFree,
  libcMallinfo2,
  libcMalloc,
  libcMallopt,
  libcMemalign,
  libcRealloc,
  libcTrim,
  libcMallocStats,
  mallocUsableSize,
  type Mallinfo2,
  type MallocStats,
} from '../allocator/libc.ts';
import { resetNotes, type CallNotes } from '../allocator/notes.ts';
import { HeapMetadata } from './heap-metadata.ts';
import { formatSidecar } from '../image/format.ts';
import type { ImageSidecar } from '../image/format.ts';
import { walkBins, walkHeap, walkMmapped, type BinsView, type ChunkInfo } from '../allocator/walk.ts';

/** A policy (or its name) and a kernel (or the simulated one's options). */
export interface AllocatorOptions extends ModelOptions {
  /**
   * Native backend only: after every call, write glibc's live metadata words (size words, free chunks' links,
   * the tcache struct) into the real heap at their real addresses, so that a reader of the memory sees a glibc
   * heap (docs/image.md); imageSidecar() gives the list heads. Off by default (then it costs nothing).
   */
  metadata?: boolean;
}

/** What the last call did besides its result. */
export interface LastCall
  extends Pick<CallNotes, 'path' | 'consolidations' | 'trims' | 'trimmedBytes' | 'thresholdMove' | 'sysmalloc' | 'merge' | 'mergeSlot'> {
  syscalls: Syscall[];
}

/** A block as the allocator sees it. */
export interface BlockInfo {
  where: 'heap' | 'mmap';
  /** chunksize, header included. */
  chunk: number;
  /** For heap blocks: user pointer minus the heap start. */
  offset?: number;
}

/** glibc's allocator (main arena, one thread), of the version the options name, over a simulated or real kernel. */
export class Allocator {
  /** The model's state (mp_, the main arena, the tcache, the kernel); read it, do not change it. */
  readonly model: Malloc;
  /** Live user pointer -> chunk id. */
  private readonly blocks = new PointerTable();
  /** The system calls of the last call (its notes stay in the arena until the next call resets them). */
  private lastSyscalls: Syscall[] = [];
  /** lastCall's object, made on first read after a call (a snapshot, so it outlives the next call). */
  private last: LastCall | null = null;
  /** The view bytes() handed out, per live pointer (one per block, for blocks someone asked to see). */
  private readonly views = new Map<number, Uint8Array>();
  /** Blocks protect() made read-only or no-access: pointer -> protected length. */
  private readonly protectedBlocks = new Map<number, number>();
  /** The mode of each block in protectedBlocks ('read' or 'none'), to put back after a failed realloc. */
  private readonly protectionOf = new Map<number, Protection>();
  /** Blocks lock() locked: pointer -> [page-aligned start, length]. */
  private readonly lockedBlocks = new Map<number, [number, number]>();

  /** The metadata mode's writer (option `metadata`), or null. */
  private readonly metadata: HeapMetadata | null = null;

  constructor(options: AllocatorOptions = {}) {
    this.model = createMalloc(options);
    if (options.metadata !== undefined && typeof options.metadata !== 'boolean')
      throw new MallocscopeError('BAD_ARGUMENT', `metadata must be true or false, not ${String(options.metadata)}`);
    if (options.metadata) {
      const memory = this.model.system.memory;
      if (!memory) throw new MallocscopeError('NO_BYTES', 'metadata needs the native backend (system: new NativeSystem()): a simulated heap has no bytes');
      this.metadata = new HeapMetadata(this.model, memory);
      // A file-backed NativeSystem writes the image's sidecar at release: the file is then a heap image.
      const owner = options.system as { imageSidecar?: (() => string) | null } | undefined;
      if (owner !== undefined && 'imageSidecar' in owner) {
        const metadata = this.metadata;
        owner.imageSidecar = () => formatSidecar(metadata.sidecar());
      }
    }
  }

  /**
   * With option `metadata`: the image sidecar of the real heap now (docs/image.md), whose base is the heap's
   * real start; with the heap's bytes (sharedHeap() and openHeapImage, or bytes()) walkImage decodes it.
   */
  imageSidecar(): ImageSidecar {
    if (!this.metadata) throw new MallocscopeError('NO_METADATA', 'imageSidecar: create the allocator with { metadata: true } (and a NativeSystem)');
    return this.metadata.sidecar();
  }

  /** malloc(size): a user pointer, or 0. */
  malloc(size: number): number {
    const av = this.begin();
    return this.end(libcMalloc(av, checkSize(size, 'size')));
  }

  /** calloc(nmemb, size). */
  calloc(nmemb: number, size: number): number {
    const av = this.begin();
    return this.end(libcCalloc(av, checkSize(nmemb, 'nmemb'), checkSize(size, 'size')));
  }

  /** memalign(alignment, size), also aligned_alloc until glibc 2.38 (which refuses an alignment that is not a power of two). */
  memalign(alignment: number, size: number): number {
    const av = this.begin();
    return this.end(libcMemalign(av, checkSize(alignment, 'alignment'), checkSize(size, 'size')));
  }

  /** realloc(pointer, size): the new pointer, or 0 (the old block stays when a non-zero resize fails). */
  realloc(pointer: number, size: number): number {
    this.live();
    const old = pointer === 0 ? NIL : this.chunkOf(pointer, 'realloc');
    checkSize(size, 'size');
    if (pointer === 0) return this.end(libcRealloc(this.begin(), old, size));
    // The copy and mremap need the block read-write and unlocked; a failed realloc puts both back, and its
    // views stay attached: in C the block is untouched.
    const protectedLength = this.protectedBlocks.get(pointer);
    const lockedRange = this.lockedBlocks.get(pointer);
    if (protectedLength !== undefined) this.real().protect(pointer, protectedLength, 'read-write');
    if (lockedRange) this.real().unlock(lockedRange[0], lockedRange[1]);
    this.blocks.delete(pointer);
    let result = 0;
    try {
      result = this.end(libcRealloc(this.begin(), old, size));
    } finally {
      if (result === 0 && size !== 0) {
        this.blocks.set(pointer, old);
        if (lockedRange) this.real().lock(lockedRange[0], lockedRange[1]);
        const mode = this.protectionOf.get(pointer);
        if (protectedLength !== undefined && mode !== undefined) this.real().protect(pointer, protectedLength, mode);
      }
    }
    if (result !== 0 || size === 0) {
      // realloc ends the old block (as in C, even when the address stays): its views, protection and lock go.
      this.protectedBlocks.delete(pointer);
      this.protectionOf.delete(pointer);
      this.lockedBlocks.delete(pointer);
      this.endBlock(pointer);
    }
    return result;
  }

  /** free(pointer); free(0) does nothing. */
  free(pointer: number): void {
    if (pointer === 0) return;
    this.live();
    // One probe finds and forgets the block.
    const chunk = this.blocks.take(pointer);
    if (chunk === NIL) this.chunkOf(pointer, 'free');
    this.endBlock(pointer);
    libcFree(this.begin(), chunk);
    this.end(NIL);
  }

  /** mallopt(param, value): glibc's return value. */
  mallopt(param: MalloptParam, value: number): number {
    if (!MALLOPT_PARAMS.includes(param))
      throw new MallocscopeError('BAD_ARGUMENT', `mallopt: unknown parameter ${String(param)} (known: ${MALLOPT_PARAMS.join(', ')})`);
    // glibc's mallopt takes a C int.
    if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31)
      throw new MallocscopeError('BAD_ARGUMENT', `mallopt: the value must be a C int (-2147483648 to 2147483647), not ${String(value)}`);
    const result = libcMallopt(this.begin(), param, value);
    this.end(NIL);
    return result;
  }

  /** malloc_trim(pad): 1 when memory was released. */
  trim(pad = 0): number {
    const av = this.begin();
    const result = libcTrim(av, checkSize(pad, 'pad'));
    this.end(NIL);
    return result;
  }

  /** mallinfo2() now. */
  mallinfo2(): Mallinfo2 {
    return libcMallinfo2(this.model);
  }

  /** malloc_stats()'s figures now: system and in-use bytes, and the peaks of mmapped regions and bytes. */
  mallocStats(): MallocStats {
    return libcMallocStats(this.model);
  }

  /** mp_.mmap_threshold: the sliding watermark. */
  get mmapThreshold(): SizeT {
    return this.model.mp.mmapThreshold;
  }

  /** mp_.trim_threshold. */
  get trimThreshold(): SizeT {
    return this.model.mp.trimThreshold;
  }

  /** Whether mallopt (or the policy) has switched the sliding off. */
  get noDynThreshold(): boolean {
    return this.model.mp.noDynThreshold;
  }

  /** The program break before the first allocation: heap offsets are measured from it. */
  get heapStart(): number {
    return this.model.system.heapStart;
  }

  /** The program break now. */
  get brk(): number {
    return this.model.system.sbrk(0);
  }

  /** Where a live block is and how big its chunk is. */
  block(pointer: number): BlockInfo {
    const c = this.model.chunks;
    const chunk = this.chunkOf(pointer, 'block');
    if (c.state[chunk] === ChunkState.Mmapped) return { where: 'mmap', chunk: c.size[chunk] };
    return { where: 'heap', chunk: c.size[chunk], offset: pointer - this.heapStart };
  }

  /**
   * The block's usable bytes as a Uint8Array over real memory (native backend only): chunksize - 8 for a
   * heap block, chunksize - 16 for an mmapped one, as malloc_usable_size. No copy: writes reach the block.
   * free and realloc detach it (any later access throws a TypeError); call bytes() again on realloc's result.
   */
  bytes(pointer: number): Uint8Array {
    this.live();
    const system = this.model.system;
    const chunk = this.chunkOf(pointer, 'bytes');
    const memory = system.memory;
    if (!memory)
      throw new MallocscopeError('NO_BYTES', 'this allocator runs on a simulated kernel, which holds no bytes; use the native backend (new NativeSystem())');
    // One view per block, kept until the block ends: asking again costs nothing and holds nothing more. A
    // view detached behind our back (transferred away) is replaced.
    const kept = this.views.get(pointer);
    const usable = this.usable(chunk);
    if (kept !== undefined && kept.byteLength === usable) return kept;
    const view = memory.bytes(pointer, usable);
    this.views.set(pointer, view);
    return view;
  }

  /**
   * mprotect on a block (native backend): 'read' makes it read-only, 'none' no-access, 'read-write' restores
   * it. Page-granular: the block must start on a page (allocate it with memalign(pageSize, n * pageSize)) and
   * the whole pages of its usable bytes are protected; the few bytes past the last whole page are not.
   * free and realloc restore read-write first, so the allocator can reuse the memory.
   */
  protect(pointer: number, mode: Protection): void {
    this.live();
    const system = this.model.system;
    const chunk = this.chunkOf(pointer, 'protect');
    const memory = system.memory;
    if (!memory) throw new MallocscopeError('NO_BYTES', 'protect needs the native backend (new NativeSystem())');
    const page = system.pageSize;
    const length = alignDown(this.usable(chunk), page);
    if (pointer % page !== 0 || length === 0) {
      throw new MallocscopeError(
        'UNALIGNED_BLOCK',
        `protect(0x${pointer.toString(16)}): mprotect works on whole pages; allocate the block with memalign(${page}, n * ${page}) so that it starts on a page and spans at least one`,
      );
    }
    memory.protect(pointer, length, mode);
    if (mode === 'read-write') {
      this.protectedBlocks.delete(pointer);
      this.protectionOf.delete(pointer);
    } else {
      this.protectedBlocks.set(pointer, length);
      this.protectionOf.set(pointer, mode);
    }
  }

  /**
   * mlock on a block (native backend): its pages stay in RAM, never in swap. Page-granular: whole pages are
   * locked, so neighbours sharing them are locked too, and unlock or free unlocks those pages. Fails with a
   * clear message (code ENOMEM or EPERM) when RLIMIT_MEMLOCK is too low.
   */
  lock(pointer: number): void {
    this.live();
    const system = this.model.system;
    const chunk = this.chunkOf(pointer, 'lock');
    const memory = system.memory;
    if (!memory) throw new MallocscopeError('NO_BYTES', 'lock needs the native backend (new NativeSystem())');
    const page = system.pageSize;
    const start = alignDown(pointer, page);
    const length = alignUp(pointer + this.usable(chunk), page) - start;
    memory.lock(start, length);
    this.lockedBlocks.set(pointer, [start, length]);
  }

  /** munlock of a block lock() locked. */
  unlock(pointer: number): void {
    this.live();
    this.chunkOf(pointer, 'unlock');
    const range = this.lockedBlocks.get(pointer);
    if (!range) return;
    this.real().unlock(range[0], range[1]);
    this.lockedBlocks.delete(pointer);
  }

  /** What the last call did: the path that found its chunk, system calls, consolidations, trims, threshold moves. */
  get lastCall(): LastCall {
    if (this.last === null) {
      const n = this.model.notes;
      // An explicit literal, not { ...n, syscalls }: V8 (Node 20) takes a slow runtime path for a spread
      // followed by another property, about 0.7 us, which was most of a malloc+free pair.
      const merge = n.merge === null ? null : { size: n.merge.size, intoTop: n.merge.intoTop };
      this.last = {
        path: n.path,
        consolidations: n.consolidations,
        trims: n.trims,
        trimmedBytes: n.trimmedBytes,
        thresholdMove: n.thresholdMove,
        sysmalloc: n.sysmalloc,
        merge,
        mergeSlot: merge ?? { size: 0, intoTop: false },
        syscalls: this.lastSyscalls,
      };
    }
    return this.last;
  }

  /** Every heap chunk in address order. */
  heap(): ChunkInfo[] {
    return walkHeap(this.model.main);
  }

  /** Every mmapped chunk. */
  mmapped(): ChunkInfo[] {
    return walkMmapped(this.model.main);
  }

  /** The tcache, fastbins, unsorted, small and large bins, the top and last_remainder. */
  bins(): BinsView {
    return walkBins(this.model.main);
  }

  /** Checks every invariant of the heap; throws an Error naming the first that does not hold. */
  check(): void {
    checkInvariants(this.model.main);
  }

  /** Starts a call: its notes reset in place, the next seq (as before the arguments are checked). */
  private begin(): Malloc {
    const av = this.model;
    if (av.system.released) this.live();
    resetNotes(av.notes);
    this.last = null;
    av.seq++;
    return av;
  }

  /** Ends a call that returned `chunk` (NIL for none): keeps its system calls; the user pointer, or 0. */
  private end(chunk: number): number {
    const av = this.model;
    this.lastSyscalls = av.system.takeSyscalls();
    if (this.metadata !== null) {
      this.metadata.update();
      // The metadata's writes are this call's: a backing lost under them fails this call, not the next.
      if (av.system.failure) this.live();
    }
    if (chunk === NIL) return 0;
    const pointer = chunk2mem(av.chunks.address[chunk]);
    this.blocks.set(pointer, chunk);
    return pointer;
  }

  /** malloc_usable_size of a live chunk. */
  private usable(chunk: number): number {
    return mallocUsableSize(this.model, chunk);
  }

  /** The block is about to be freed or reallocated: detach its views, restore read-write, unlock it. */
  private endBlock(pointer: number): void {
    if (this.views.size !== 0) {
      const view = this.views.get(pointer);
      if (view !== undefined) {
        this.model.system.memory?.detach(view);
        this.views.delete(pointer);
      }
    }
    if (this.protectedBlocks.size !== 0) {
      const length = this.protectedBlocks.get(pointer);
      if (length !== undefined) {
        this.real().protect(pointer, length, 'read-write');
        this.protectedBlocks.delete(pointer);
        this.protectionOf.delete(pointer);
      }
    }
    if (this.lockedBlocks.size !== 0) {
      const range = this.lockedBlocks.get(pointer);
      if (range) {
        this.real().unlock(range[0], range[1]);
        this.lockedBlocks.delete(pointer);
      }
    }
  }

  private chunkOf(pointer: number, call: string): number {
    // 0 is NULL (and the pointer table's empty slot): never a block.
    const chunk = typeof pointer === 'number' && pointer !== 0 ? this.blocks.get(pointer) : undefined;
    if (chunk === undefined) {
      const shown = typeof pointer === 'number' && Number.isSafeInteger(pointer) && pointer >= 0 ? `0x${pointer.toString(16)}` : describe(pointer);
      const why =
        pointer === 0
          ? 'NULL is not a block'
          : typeof pointer !== 'number'
            ? 'a pointer is a number (an address malloc returned)'
            : 'not a pointer this allocator returned, or already freed';
      throw new MallocscopeError('BAD_POINTER', `${call}(${shown}): ${why}`);
    }
    return chunk;
  }

  /** The real memory under a block that was protected or locked (which only real memory can be). */
  private real(): RealMemory {
    const memory = this.model.system.memory;
    if (!memory) throw new MallocscopeError('NO_BYTES', 'this allocator runs on a simulated kernel, which holds no bytes');
    return memory;
  }

  /** Refuses a call once the native system under the allocator was released (its memory is gone) or failed. */
  private live(): void {
    const failure = this.model.system.failure;
    if (failure) {
      // A backing lost or left unguarded is the memory's fault, whenever it happened; a backing that failed
      // to grow (FULL, FAILED) stopped a call of this allocator halfway.
      const lost = failure.code === 'HEAP_BACKING_LOST' || failure.code === 'HEAP_BACKING_UNGUARDED';
      throw new MallocscopeError(
        failure.code,
        lost
          ? `the heap's backing can no longer be trusted, so neither can this allocator: ${failure.message}`
          : `an earlier call of this allocator stopped halfway when its native system failed, so its state is not to be trusted: ${failure.message}`,
      );
    }
    if (this.model.system.released) {
      throw new MallocscopeError(
        'SYSTEM_RELEASED',
        "this allocator's native system was released (its memory is gone); create a new NativeSystem and Allocator",
      );
    }
  }
}

/**
 * Live user pointer -> chunk id: open addressing with linear probing over typed arrays (what a Map<number,
 * number> did, without a Map entry and a boxed key per block: pointers are above 2^31, so a Map hashed heap
 * numbers). Deletion shifts the following entries back, so there are no tombstones; the table doubles when
 * half full. Pointers are 16-byte aligned and never 0, so 0 marks an empty slot.
 */
class PointerTable {
  private keys = new Float64Array(1024);
  private values = new Int32Array(1024);
  private mask = 1023;
  private shift = 22; // 32 - log2(capacity)
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The chunk id of a live pointer, or undefined. */
  get(pointer: number): number | undefined {
    const keys = this.keys;
    for (let i = this.slot(pointer); ; i = (i + 1) & this.mask) {
      const key = keys[i];
      if (key === pointer) return this.values[i];
      if (key === 0) return undefined;
    }
  }

  set(pointer: number, chunk: number): void {
    const keys = this.keys;
    let i = this.slot(pointer);
    for (; ; i = (i + 1) & this.mask) {
      const key = keys[i];
      if (key === pointer) {
        this.values[i] = chunk;
        return;
      }
      if (key === 0) break;
    }
    keys[i] = pointer;
    this.values[i] = chunk;
    if (++this.count > this.mask >>> 1) this.grow();
  }

  delete(pointer: number): void {
    this.take(pointer);
  }

  /** Removes a live pointer and returns its chunk id; NIL (-1) when it is not live. */
  take(pointer: number): number {
    const keys = this.keys;
    const values = this.values;
    const mask = this.mask;
    let i = this.slot(pointer);
    for (; ; i = (i + 1) & mask) {
      const key = keys[i];
      if (key === pointer) break;
      if (key === 0) return -1;
    }
    const chunk = values[i];
    this.count--;
    // Backward-shift deletion: move up every later entry of the run whose home slot is not in (i, j].
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const key = keys[j];
      if (key === 0) break;
      const home = this.slot(key);
      if (i <= j ? i < home && home <= j : i < home || home <= j) continue;
      keys[i] = key;
      values[i] = values[j];
      i = j;
    }
    keys[i] = 0;
    return chunk;
  }

  /** Fibonacci hashing of the pointer's bits above the alignment (exact below 2^53, as addresses are). */
  private slot(pointer: number): number {
    const unit = pointer / 16;
    return Math.imul((unit >>> 0) ^ ((unit / 4294967296) >>> 0), 0x9e3779b1) >>> this.shift;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    const capacity = oldKeys.length * 2;
    this.keys = new Float64Array(capacity);
    this.values = new Int32Array(capacity);
    this.mask = capacity - 1;
    this.shift--;
    this.count = 0;
    for (let i = 0; i < oldKeys.length; i++) if (oldKeys[i] !== 0) this.set(oldKeys[i], oldValues[i]);
  }
}

/** A value that is not an address, as a message shows it. */
function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function checkSize(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new MallocscopeError('BAD_ARGUMENT', `${name} must be a whole number of bytes, not ${value}`);
  }
  return value;
}
