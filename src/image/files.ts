// Heap images on disk: FILE holds the bytes, FILE.json the sidecar (docs/image.md); read, written and walked.
import { readFileSync, writeFileSync } from 'node:fs';
import { MallocscopeError, errnoReason } from '../errors.ts';
import { formatSidecar, type ImageBytes, parseSidecar } from './format.ts';
import { type HeapWalk, type WalkOptions, walkImage } from './walk.ts';

/** An image's bytes with its sidecar. */
export type ImageFile = ImageBytes;

/** The sidecar of the image in `path`: the same name with `.json` added. */
export function sidecarPath(path: string): string {
  return `${path}.json`;
}

function read(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new MallocscopeError('IMAGE_OPEN', `${path}: cannot read: ${errnoReason(error)}`);
  }
}

/** Reads the image in `path` and its sidecar. */
export function readImage(path: string): ImageFile {
  const side = sidecarPath(path);
  const sidecar = parseSidecar(read(side).toString('utf8'), side);
  const bytes = read(path);
  return { bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), sidecar };
}

/** Writes an image and its sidecar, as the oracle does. */
export function writeImage(path: string, image: ImageFile): void {
  try {
    writeFileSync(path, image.bytes);
    writeFileSync(sidecarPath(path), formatSidecar(image.sidecar));
  } catch (error) {
    throw new MallocscopeError('IMAGE_WRITE', `${path}: cannot write: ${errnoReason(error)}`);
  }
}

/** Reads and walks the image in `path`. */
export function walkImageFile(path: string, options: WalkOptions = {}): HeapWalk {
  const { bytes, sidecar } = readImage(path);
  return walkImage(bytes, sidecar, path, options);
}
