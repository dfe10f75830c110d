// The backing's sidecar of a file-backed heap (heap.img beside heap.img.backing.json): what a reader needs
// besides the bytes, which the file holds from the heap's start. It is not a heap image's sidecar (heap.img.json,
// docs/image.md): the native heap holds the program's bytes but not glibc's metadata yet, so its file is no
// image; it becomes one when the native heap holds that metadata (a later step of issue 14).
import { rmSync, writeFileSync } from 'node:fs';
import { MallocscopeError, errnoReason } from '../errors.ts';
import { sidecarPath } from '../image/files.ts';

/** What the backing's sidecar holds. */
export interface BackingSidecar {
  /** The heap's start address in the process that wrote it (the file's offset 0). */
  base: number;
  /** The break's extent: bytes from the start to the break. The file holds at least this many. */
  length: number;
  pageSize: number;
}

/** The backing's sidecar of a heap file: FILE.backing.json (a heap image's is FILE.json: image/files.ts). */
export function backingSidecarPath(file: string): string {
  return `${file}.backing.json`;
}

/** Writes the sidecar of `file`; an error with `code` (naming the sidecar) when it cannot. */
export function writeSidecar(file: string, sidecar: BackingSidecar, code: 'HEAP_BACKING_OPEN' | 'HEAP_BACKING_FAILED'): void {
  const path = backingSidecarPath(file);
  try {
    writeFileSync(path, `${JSON.stringify(sidecar)}\n`, { mode: 0o600 });
  } catch (error) {
    throw new MallocscopeError(code, `${path}: cannot write the heap's sidecar: ${errnoReason(error)}`);
  }
}

/**
 * Writes a file-backed heap's image sidecar (the image format's FILE.json, text already formatted), or removes
 * a stale one when the heap has no image (`null`: no longer one piece).
 */
export function writeImageSidecar(file: string, text: string | null): void {
  const path = sidecarPath(file);
  try {
    if (text === null) rmSync(path, { force: true });
    else writeFileSync(path, text, { mode: 0o600 });
  } catch (error) {
    throw new MallocscopeError('HEAP_BACKING_FAILED', `${path}: cannot write the heap image's sidecar: ${errnoReason(error)}`);
  }
}
