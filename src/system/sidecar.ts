// The sidecar of a file-backed heap (heap.img beside heap.img.json, named as an image's: image/files.ts): what a reader needs besides the bytes,
// which the file holds from the heap's start. Today the addresses and sizes; the heap image format
// (issue 14, its own manual when it lands) adds what its walker needs (glibc version, arena, top, bins).
import { writeFileSync } from 'node:fs';
import { MallocscopeError, errnoReason } from '../errors.ts';
import { sidecarPath } from '../image/files.ts';

/** What every sidecar holds. */
export interface BackingSidecar {
  /** The heap's start address in the process that wrote it (the file's offset 0). */
  base: number;
  /** The break's extent: bytes from the start to the break. The file holds at least this many. */
  length: number;
  pageSize: number;
  /** Fields the image format adds (NativeSystem's `imageFields`). */
  [field: string]: unknown;
}

/** Writes the sidecar of `file`; an error with `code` (naming the sidecar) when it cannot. */
export function writeSidecar(file: string, sidecar: BackingSidecar, code: 'HEAP_BACKING_OPEN' | 'HEAP_BACKING_FAILED'): void {
  const path = sidecarPath(file);
  try {
    writeFileSync(path, `${JSON.stringify(sidecar)}\n`, { mode: 0o600 });
  } catch (error) {
    throw new MallocscopeError(code, `${path}: cannot write the heap's sidecar: ${errnoReason(error)}`);
  }
}
