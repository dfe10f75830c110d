// Two heap images of the same event compared byte for byte (the model's against the real glibc's): the first
// difference named by its offset, the chunk that holds it and the field (docs/image.md), or by sidecar key.
import { formatSidecar, type ImageBytes, type ImageSidecar } from './format.ts';
import type { ImageChunk } from './walk.ts';
import { chunkHolding, fieldOf, safeWalk } from './words.ts';

export type ComparedImage = ImageBytes;

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

/** The field that holds byte `at` of `chunk`, as words.ts names it (a tcache struct array's element by bin). */
function fieldName(chunk: ImageChunk, at: number, layout: ImageSidecar['tcache']): string {
  const word = fieldOf(chunk, at - (at % 8), layout);
  return word.width === 2 ? fieldOf(chunk, at - (at % 2), layout).field : word.field;
}

/** The first byte at which two arrays of the same length differ, or -1; by 32-bit words where both allow it. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  let at = 0;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const x = new Uint32Array(a.buffer, a.byteOffset, a.length >>> 2);
    const y = new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2);
    let k = 0;
    while (k < x.length && x[k] === y[k]) k++;
    at = 4 * k;
  }
  while (at < a.length && a[at] === b[at]) at++;
  return at === a.length ? -1 : at;
}

/**
 * The first difference between image `a` (named `aName`) and image `b`, in a sentence: a sidecar key, the
 * length, or the first byte that differs with its chunk (found by walking `b`, else `a`) and field; null
 * when they are the same bytes and the same sidecar.
 */
export function imageDifference(a: ComparedImage, b: ComparedImage, aName = 'model', bName = 'glibc'): string | null {
  const aText = formatSidecar(a.sidecar);
  const bText = formatSidecar(b.sidecar);
  if (aText !== bText) {
    const aJson = JSON.parse(aText) as Record<string, unknown>;
    const bJson = JSON.parse(bText) as Record<string, unknown>;
    for (const key of Object.keys(bJson)) {
      const x = JSON.stringify(aJson[key]);
      const y = JSON.stringify(bJson[key]);
      if (x !== y) return `sidecar "${key}": ${aName} ${x}, ${bName} ${y}`;
    }
  }
  if (a.bytes.length !== b.bytes.length) return `size: ${aName} ${a.bytes.length} bytes, ${bName} ${b.bytes.length}`;
  const at = firstDifference(a.bytes, b.bytes);
  if (at < 0) return null;
  const word = at - (at % 8);
  const read = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(word, true);
  let where = '';
  for (const image of [b, a]) {
    // An image that does not walk: the other one.
    const walk = safeWalk(image);
    const chunk = walk && chunkHolding(walk, word);
    if (chunk) {
      where = `, in the ${chunk.state} chunk at ${hex(chunk.offset)} (size ${hex(chunk.size)}, as ${image === b ? bName : aName} walks it): ${fieldName(chunk, at, image.sidecar.tcache)}`;
      break;
    }
  }
  return `offset ${hex(word)}${where}: ${aName} ${hex(read(a.bytes))}, ${bName} ${hex(read(b.bytes))}`;
}
