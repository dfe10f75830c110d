// Two heap images of the same event compared byte for byte (the model's against the real glibc's): the first
// difference named by its offset, the chunk that holds it and the field (docs/image.md), or by sidecar key.
import { formatSidecar, type ImageSidecar } from './format.ts';
import { type ImageChunk, walkImage } from './walk.ts';

export interface ComparedImage {
  bytes: Uint8Array;
  sidecar: ImageSidecar;
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

/** The name of the word at `delta` bytes into `chunk` (the tcache struct's arrays by bin). */
function fieldName(chunk: ImageChunk, delta: number, tcacheBins: number): string {
  const word = delta - (delta % 8);
  if (chunk.tcacheStruct && word >= 16) {
    const user = delta - 16;
    if (user < 2 * tcacheBins) return `counts[${Math.floor(user / 2)}]`;
    if (user < 10 * tcacheBins) return `entries[${Math.floor((user - 2 * tcacheBins) / 8)}]`;
  }
  const names: Record<number, string> = {
    0: 'prev_size',
    8: 'size',
    16: chunk.state === 'tcache' ? 'next' : 'fd',
    24: chunk.state === 'tcache' ? 'key' : 'bk',
    32: 'fd_nextsize',
    40: 'bk_nextsize',
  };
  return names[word] ?? `the word at +${hex(word)}`;
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
    try {
      const walk = walkImage(image.bytes, image.sidecar);
      const chunk = [...walk.chunks].reverse().find((c) => c.offset <= word);
      if (chunk) {
        where = `, in the ${chunk.state} chunk at ${hex(chunk.offset)} (size ${hex(chunk.size)}, as ${image === b ? bName : aName} walks it): ${fieldName(chunk, word - chunk.offset, image.sidecar.tcache?.bins ?? 64)}`;
        break;
      }
    } catch {
      // an image that does not walk: try the other one
    }
  }
  return `offset ${hex(word)}${where}: ${aName} ${hex(read(a.bytes))}, ${bName} ${hex(read(b.bytes))}`;
}
