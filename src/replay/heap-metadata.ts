// The native backend's metadata mode (Allocator option `metadata`): after every call, glibc's live metadata
// words as the model knows them are written into the real heap at their real addresses (docs/image.md).
import { arenaOverlaps, heapImageWords, type ImageWordSink } from '../allocator/image.ts';
import type { Malloc } from '../allocator/malloc.ts';
import { DEFAULT_ARENA, type ImageSidecar, KEY_MARKER } from '../image/format.ts';
import { MallocscopeError } from '../errors.ts';
import type { RealMemory } from '../system/api.ts';

const TWO_32 = 2 ** 32;
/** The words are written through typed arrays, in this machine's byte order: glibc's x86-64 is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Keeps main_arena's heap in real memory a glibc heap: the words heapImage would write, written in place after
 * each call, every other byte left as the program wrote it. Each call rewrites every live word (the chunks'
 * size words, the free chunks' links, the tcache struct): O(chunks) per call. Words that stop being live are
 * left as they are, as glibc leaves them (a walker never reads them), except a tcache entry's key: glibc zeroes
 * it when it hands the block out, so a key word that stops being live is written 0 (the key words of the call
 * before are zeroed first, then the live ones written again).
 */
export class HeapMetadata {
  /** Calls so far: the sidecar's `seq`. */
  private seq = 0;
  private view: Uint8Array | null = null;
  /** The view as words: every live word is aligned (the heap starts on a page; the counts are two-byte). */
  private words: BigUint64Array<ArrayBufferLike> = new BigUint64Array(0);
  private halves: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  private shorts: Uint16Array<ArrayBufferLike> = new Uint16Array(0);
  private last: ImageSidecar | null = null;
  /** The key words' offsets the last update wrote, and this update's (swapped after each). */
  private keys: number[] = [];
  private nextKeys: number[] = [];
  /** Set once the heap is not one piece (the break could not grow): no image describes it from then on. */
  private failure: MallocscopeError | null = null;
  private readonly base: bigint;
  private readonly arena: bigint;
  private readonly sink: ImageWordSink;

  constructor(
    private readonly model: Malloc,
    private readonly memory: RealMemory,
  ) {
    if (!LITTLE_ENDIAN)
      throw new MallocscopeError('METADATA_BYTE_ORDER', "metadata: this machine is big-endian; the heap image is x86-64 glibc's, little-endian");
    const system = model.system;
    this.base = BigInt(system.heapStart);
    // The bin headers' pointers name a notional main_arena (there is none in this process): the oracle's
    // address under no ASLR, unless it falls in the heap's reservation; then just past the reservation.
    const limit = BigInt((system as { heapLimit?: number }).heapLimit ?? system.heapStart);
    this.arena = arenaOverlaps(DEFAULT_ARENA, this.base, limit) ? (limit + 15n) & ~15n : DEFAULT_ARENA;
    this.sink = {
      begin: (size) => {
        this.map(size);
        // The last call's key words to 0 (those past a trimmed heap are gone); the live ones come back below.
        for (const at of this.keys) if (at >>> 3 < this.words.length) this.words[at >>> 3] = 0n;
      },
      word: (at, value) => {
        this.words[at >>> 3] = value;
        if (value === KEY_MARKER) this.nextKeys.push(at);
      },
      number: (at, value) => {
        this.halves[at >>> 2] = value % TWO_32;
        this.halves[(at >>> 2) + 1] = Math.floor(value / TWO_32);
      },
      half: (at, value) => {
        this.shorts[at >>> 1] = value;
      },
    };
  }

  /** After a call: its live words into the real heap. */
  update(): void {
    this.seq++;
    if (this.failure) return;
    try {
      this.nextKeys = [];
      this.last = heapImageWords(this.model, this.seq, { base: this.base, arena: this.arena }, this.sink);
      this.keys = this.nextKeys;
    } catch (error) {
      if (error instanceof MallocscopeError && error.code === 'IMAGE_NOT_CONTIGUOUS') {
        this.failure = new MallocscopeError(
          'IMAGE_NOT_CONTIGUOUS',
          `the heap's metadata stopped being written after call ${this.seq}: ${error.message.replace(/^heap image after event \d+: /, '')}`,
        );
        this.last = null;
        return;
      }
      throw error;
    }
  }

  /** The image sidecar of the heap now: its base is the heap's real start, `size` the bytes to the break. */
  sidecar(): ImageSidecar {
    if (this.failure) throw this.failure;
    if (this.last === null)
      this.last = heapImageWords(this.model, this.seq, { base: this.base, arena: this.arena }, { begin() {}, word() {}, number() {}, half() {} });
    return {
      ...this.last,
      fastbins: [...this.last.fastbins],
      bins: this.last.bins.map((b) => ({ ...b })),
      tcache: this.last.tcache && { ...this.last.tcache },
    };
  }

  /** A view of the heap's first `size` bytes, taken again when the break moved. */
  private map(size: number): void {
    if (this.view !== null && this.view.length === size) return;
    if (this.view !== null) this.memory.detach(this.view);
    const view = this.memory.bytes(this.model.system.heapStart, size);
    this.view = view;
    this.words = new BigUint64Array(view.buffer, view.byteOffset, size >>> 3);
    this.halves = new Uint32Array(view.buffer, view.byteOffset, size >>> 2);
    this.shorts = new Uint16Array(view.buffer, view.byteOffset, size >>> 1);
  }
}
