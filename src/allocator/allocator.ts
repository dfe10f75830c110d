// The model as a library: an allocator with glibc's calls on plain addresses (malloc returns a user pointer,
// 0 for NULL), its thresholds, mallinfo2, a walk of the heap and bins, and what the last call did.
import { MallocscopeError } from '../errors.ts';
import type { MmapPolicy } from '../policy/api.ts';
import { policyByName } from '../policy/index.ts';
import type { Protection, Syscall, SystemMemory } from '../system/api.ts';
import { SimulatedSystem, type SimulatedSystemOptions } from '../system/simulated.ts';
import type { MalloptParam } from '../trace/api.ts';
import { Arena } from './arena.ts';
import { ChunkState, NIL } from './chunks.ts';
import { CHUNK_HDR_SZ, SIZE_SZ, alignDown, alignUp } from './constants.ts';
import { checkInvariants } from './invariants.ts';
import { libcCalloc, libcFree, libcMallinfo2, libcMalloc, libcMallopt, libcMemalign, libcRealloc, libcTrim, type Mallinfo2 } from './libc.ts';
import { newNotes, type CallNotes } from './notes.ts';
import { walkBins, walkHeap, walkMmapped, type BinsView, type ChunkInfo } from './walk.ts';

export interface AllocatorOptions {
  /** glibc (default), fixed:BYTES, heap, mmap, or a policy object. */
  policy?: MmapPolicy | string;
  /** The kernel: a system layer, or options for the simulated one (the default). */
  system?: SystemMemory | SimulatedSystemOptions;
}

/** What the last call did besides its result. */
export interface LastCall extends CallNotes {
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

/** glibc 2.36's allocator (main arena, one thread) over a simulated or real kernel. */
export class Allocator {
  /** The model's state; read it, do not change it. */
  readonly arena: Arena;
  /** Live user pointer -> chunk id. */
  private readonly blocks = new Map<number, number>();
  private last: LastCall = { ...newNotes(), syscalls: [] };
  /** Views bytes() handed out, per live pointer (only for blocks someone asked to see). */
  private readonly views = new Map<number, Uint8Array[]>();
  /** Blocks protect() made read-only or no-access: pointer -> protected length. */
  private readonly protectedBlocks = new Map<number, number>();
  /** Blocks lock() locked: pointer -> [page-aligned start, length]. */
  private readonly lockedBlocks = new Map<number, [number, number]>();

  constructor(options: AllocatorOptions = {}) {
    const policy = typeof options.policy === 'object' ? options.policy : policyByName(options.policy ?? 'glibc');
    const system = options.system && 'sbrk' in options.system ? options.system : new SimulatedSystem(options.system);
    this.arena = new Arena(system, policy);
  }

  /** malloc(size): a user pointer, or 0. */
  malloc(size: number): number {
    return this.call(() => libcMalloc(this.arena, checkSize(size, 'size')));
  }

  /** calloc(nmemb, size). */
  calloc(nmemb: number, size: number): number {
    return this.call(() => libcCalloc(this.arena, checkSize(nmemb, 'nmemb'), checkSize(size, 'size')));
  }

  /** memalign(alignment, size), also aligned_alloc in glibc 2.36. */
  memalign(alignment: number, size: number): number {
    return this.call(() => libcMemalign(this.arena, checkSize(alignment, 'alignment'), checkSize(size, 'size')));
  }

  /** realloc(pointer, size): the new pointer, or 0 (the old block stays when a non-zero resize fails). */
  realloc(pointer: number, size: number): number {
    const old = pointer === 0 ? NIL : this.chunkOf(pointer, 'realloc');
    checkSize(size, 'size');
    if (pointer !== 0) {
      // realloc ends the old block (as in C, even when the address stays): its views, protection and lock go.
      this.endBlock(pointer);
      this.blocks.delete(pointer);
    }
    const result = this.call(() => libcRealloc(this.arena, old, size));
    if (result === 0 && pointer !== 0 && size !== 0) this.blocks.set(pointer, old);
    return result;
  }

  /** free(pointer); free(0) does nothing. */
  free(pointer: number): void {
    if (pointer === 0) return;
    const chunk = this.chunkOf(pointer, 'free');
    this.endBlock(pointer);
    this.blocks.delete(pointer);
    this.call(() => {
      libcFree(this.arena, chunk);
      return NIL;
    });
  }

  /** mallopt(param, value): glibc's return value. */
  mallopt(param: MalloptParam, value: number): number {
    let result = 0;
    this.call(() => {
      result = libcMallopt(this.arena, param, value);
      return NIL;
    });
    return result;
  }

  /** malloc_trim(pad): 1 when memory was released. */
  trim(pad = 0): number {
    let result = 0;
    this.call(() => {
      result = libcTrim(this.arena, checkSize(pad, 'pad'));
      return NIL;
    });
    return result;
  }

  /** mallinfo2() now. */
  mallinfo2(): Mallinfo2 {
    return libcMallinfo2(this.arena);
  }

  /** mp_.mmap_threshold: the sliding watermark. */
  get mmapThreshold(): number {
    return this.arena.policy.mmapThreshold;
  }

  /** mp_.trim_threshold. */
  get trimThreshold(): number {
    return this.arena.policy.trimThreshold;
  }

  /** Whether mallopt (or the policy) has switched the sliding off. */
  get noDynThreshold(): boolean {
    return this.arena.policy.noDynThreshold;
  }

  /** The program break before the first allocation: heap offsets are measured from it. */
  get heapStart(): number {
    return this.arena.system.heapStart;
  }

  /** The program break now. */
  get brk(): number {
    return this.arena.system.sbrk(0);
  }

  /** Where a live block is and how big its chunk is. */
  block(pointer: number): BlockInfo {
    const c = this.arena.chunks;
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
    const system = this.arena.system;
    const chunk = this.chunkOf(pointer, 'bytes');
    if (!system.bytes) throw new MallocscopeError('NO_BYTES', 'this allocator runs on a simulated kernel, which holds no bytes; use the native backend (new NativeSystem())');
    const view = system.bytes(pointer, this.usable(chunk));
    const list = this.views.get(pointer);
    if (list) list.push(view);
    else this.views.set(pointer, [view]);
    return view;
  }

  /**
   * mprotect on a block (native backend): 'read' makes it read-only, 'none' no-access, 'read-write' restores
   * it. Page-granular: the block must start on a page (allocate it with memalign(pageSize, n * pageSize)) and
   * the whole pages of its usable bytes are protected; the few bytes past the last whole page are not.
   * free and realloc restore read-write first, so the allocator can reuse the memory.
   */
  protect(pointer: number, mode: Protection): void {
    const system = this.arena.system;
    const chunk = this.chunkOf(pointer, 'protect');
    if (!system.protect) throw new MallocscopeError('NO_BYTES', 'protect needs the native backend (new NativeSystem())');
    const page = system.pageSize;
    const length = alignDown(this.usable(chunk), page);
    if (pointer % page !== 0 || length === 0) {
      throw new MallocscopeError(
        'UNALIGNED_BLOCK',
        `protect(0x${pointer.toString(16)}): mprotect works on whole pages; allocate the block with memalign(${page}, n * ${page}) so that it starts on a page and spans at least one`,
      );
    }
    system.protect(pointer, length, mode);
    if (mode === 'read-write') this.protectedBlocks.delete(pointer);
    else this.protectedBlocks.set(pointer, length);
  }

  /**
   * mlock on a block (native backend): its pages stay in RAM, never in swap. Page-granular: whole pages are
   * locked, so neighbours sharing them are locked too, and unlock or free unlocks those pages. Fails with a
   * clear message (code ENOMEM or EPERM) when RLIMIT_MEMLOCK is too low.
   */
  lock(pointer: number): void {
    const system = this.arena.system;
    const chunk = this.chunkOf(pointer, 'lock');
    if (!system.lock) throw new MallocscopeError('NO_BYTES', 'lock needs the native backend (new NativeSystem())');
    const page = system.pageSize;
    const start = alignDown(pointer, page);
    const length = alignUp(pointer + this.usable(chunk), page) - start;
    system.lock(start, length);
    this.lockedBlocks.set(pointer, [start, length]);
  }

  /** munlock of a block lock() locked. */
  unlock(pointer: number): void {
    this.chunkOf(pointer, 'unlock');
    const range = this.lockedBlocks.get(pointer);
    if (!range) return;
    this.arena.system.unlock!(range[0], range[1]);
    this.lockedBlocks.delete(pointer);
  }

  /** What the last call did: the path that found its chunk, system calls, consolidations, trims, threshold moves. */
  get lastCall(): LastCall {
    return this.last;
  }

  /** Every heap chunk in address order. */
  heap(): ChunkInfo[] {
    return walkHeap(this.arena);
  }

  /** Every mmapped chunk. */
  mmapped(): ChunkInfo[] {
    return walkMmapped(this.arena);
  }

  /** The tcache, fastbins, unsorted, small and large bins, the top and last_remainder. */
  bins(): BinsView {
    return walkBins(this.arena);
  }

  /** Checks every invariant of the heap; throws an Error naming the first that does not hold. */
  check(): void {
    checkInvariants(this.arena);
  }

  private call(run: () => number): number {
    const av = this.arena;
    av.notes = newNotes();
    av.seq++;
    const chunk = run();
    this.last = { ...av.notes, syscalls: av.system.takeSyscalls() };
    if (chunk === NIL) return 0;
    const pointer = av.chunks.address[chunk] + CHUNK_HDR_SZ;
    this.blocks.set(pointer, chunk);
    return pointer;
  }

  /** malloc_usable_size of a live chunk. */
  private usable(chunk: number): number {
    const c = this.arena.chunks;
    return c.state[chunk] === ChunkState.Mmapped ? c.size[chunk] - CHUNK_HDR_SZ : c.size[chunk] - SIZE_SZ;
  }

  /** The block is about to be freed or reallocated: detach its views, restore read-write, unlock it. */
  private endBlock(pointer: number): void {
    if (this.views.size !== 0) {
      const list = this.views.get(pointer);
      if (list) {
        for (const view of list) this.arena.system.detach?.(view);
        this.views.delete(pointer);
      }
    }
    if (this.protectedBlocks.size !== 0) {
      const length = this.protectedBlocks.get(pointer);
      if (length !== undefined) {
        this.arena.system.protect!(pointer, length, 'read-write');
        this.protectedBlocks.delete(pointer);
      }
    }
    if (this.lockedBlocks.size !== 0) {
      const range = this.lockedBlocks.get(pointer);
      if (range) {
        this.arena.system.unlock!(range[0], range[1]);
        this.lockedBlocks.delete(pointer);
      }
    }
  }

  private chunkOf(pointer: number, call: string): number {
    const chunk = this.blocks.get(pointer);
    if (chunk === undefined) {
      throw new MallocscopeError('BAD_POINTER', `${call}(0x${pointer.toString(16)}): not a pointer this allocator returned, or already freed`);
    }
    return chunk;
  }
}

function checkSize(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new MallocscopeError('BAD_ARGUMENT', `${name} must be a whole number of bytes, not ${value}`);
  }
  return value;
}
