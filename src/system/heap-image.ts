// The reader of a heap backing: a Uint8Array over a shared heap (backing 'shared') or a heap file (backing
// { file }), mapped read-only at whatever address the kernel picks, in another process, in a worker thread, or
// later from disk. Its bytes are the heap's from its start: offsets, never addresses (the addon: image.cc).
import { constants } from 'node:buffer';
import { MallocscopeError } from '../errors.ts';
import { loadAddon, type NativeHeapImage } from '../native.ts';

/** Options of openHeapImage. */
export interface HeapImageOptions {
  /**
   * Bytes to map from the heap's start; default the file's size. For a live heap pass the `length` its
   * owner's sharedHeap() reported: the backing may be longer (its size is the break's high-water mark).
   */
  length?: number;
}

/** A heap backing mapped read-only. Close it when done: the mapping goes at once (and with the GC otherwise). */
export class HeapImage {
  /** What was opened: a path, or a descriptor of this process. */
  readonly source: string | number;
  /** Sealed against shrinking (the memfd of backing 'shared'): no page of it can vanish under the reader. */
  readonly sealed: boolean;
  private native: NativeHeapImage | null;
  private view: Uint8Array;

  constructor(source: string | number, options: HeapImageOptions = {}) {
    if (typeof source === 'string' ? source === '' || source.includes('\0') : !Number.isSafeInteger(source) || source < 0) {
      throw new MallocscopeError('BAD_ARGUMENT', `openHeapImage takes a path or a file descriptor, not ${describe(source)}`);
    }
    checkLength(options.length, 'openHeapImage');
    this.source = source;
    const native = new (loadAddon().HeapImage)(source, constants.MAX_LENGTH);
    try {
      this.sealed = native.sealed();
      this.view = native.map(options.length ?? fileLength(native.size(), 'openHeapImage'));
    } catch (error) {
      native.close();
      throw error;
    }
    this.native = native;
  }

  /** The view: the heap's bytes from its start, `length` of them. A new array after refresh() remaps. */
  get bytes(): Uint8Array {
    this.open();
    return this.view;
  }

  /** Bytes mapped now. */
  get length(): number {
    return this.native ? this.view.length : 0;
  }

  get closed(): boolean {
    return this.native === null;
  }

  /**
   * Follows the heap: maps `length` bytes (default the file's size now) when that differs from what is
   * mapped, detaching the previous view; when it fails, the image stays as it was. HEAP_IMAGE_SHORT when the file holds fewer bytes;
   * HEAP_IMAGE_TRUNCATED when the file shrank under the reader (its pages past the new end read as zeros).
   */
  refresh(length?: number): Uint8Array {
    checkLength(length, 'refresh');
    const native = this.open();
    const size = native.check();
    const wanted = length ?? fileLength(size, 'refresh');
    // On failure map() leaves the mapping and the view as they were.
    if (wanted !== this.view.length) this.view = native.map(wanted);
    return this.view;
  }

  /** Unmaps (the view is detached: it reads as empty) and closes the descriptor. Closing twice does nothing. */
  close(): void {
    this.native?.close();
    this.native = null;
  }

  private open(): NativeHeapImage {
    if (this.native === null) throw new MallocscopeError('HEAP_IMAGE_CLOSED', `${describe(this.source)}: this heap image was closed; open it again`);
    return this.native;
  }
}

/** Maps a heap backing read-only: a path (a heap file, or /proc/PID/fd/N of a shared heap) or a descriptor. */
export function openHeapImage(source: string | number, options: HeapImageOptions = {}): HeapImage {
  return new HeapImage(source, options);
}

function checkLength(length: number | undefined, call: string): void {
  if (length === undefined) return;
  if (!Number.isSafeInteger(length) || length < 0)
    throw new MallocscopeError('BAD_ARGUMENT', `${call}: length must be a whole number of bytes, not ${String(length)}`);
  if (length > constants.MAX_LENGTH) {
    throw new MallocscopeError('VIEW_TOO_LARGE', `${call}: ${length} bytes is more than Node's largest ArrayBuffer (${constants.MAX_LENGTH} bytes)`);
  }
}

/** The file's size as a view's length: VIEW_TOO_LARGE, before anything is mapped, when Node cannot make it. */
function fileLength(size: number, call: string): number {
  if (size > constants.MAX_LENGTH) {
    throw new MallocscopeError(
      'VIEW_TOO_LARGE',
      `${call}: the file holds ${size} bytes, more than Node's largest ArrayBuffer (${constants.MAX_LENGTH} bytes); pass a length`,
    );
  }
  return size;
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : typeof value === 'number' ? `fd ${value}` : String(value);
}
