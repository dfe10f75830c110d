// The words of a heap image by name (docs/image.md): every word two images of one heap differ in, named by
// its chunk and field (what `explain --bytes` prints), and a chunk's bytes as hex rows with their fields.
import { FOREIGN_MARKER, type ImageBytes, KEY_MARKER } from './format.ts';
import { demangle, type HeapWalk, type ImageChunk, walkImage } from './walk.ts';

export type { ImageBytes };

/** One word (8 bytes, or a tcache count's 2) that differs between two images. */
export interface WordChange {
  /** Its offset in the image. */
  at: number;
  /** 8, or 2 for a tcache_perthread_struct count. */
  width: 8 | 2;
  /** The chunk that holds it (its offset, state and size as the walk that names it has them); null past every chunk. */
  chunk: { offset: number; state: string; size: number; tcacheStruct: boolean; was?: string } | null;
  field: string;
  /** The words as stored; a word past an image's end (the heap grew or shrank) reads 0, as fresh memory does. */
  old: bigint;
  new: bigint;
  /** Safe-linked: the pointers are stored ^ (at's address >> 12). */
  mangled: boolean;
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

/** The tcache struct's arrays as a sidecar lays them out: the bins, and what the uint16 array counts. */
type StructLayout = { bins: number; slots: 'used' | 'free' };
/** No tcache in the sidecar: the arrays of 64 bins would be counts. */
const NO_TCACHE: StructLayout = { bins: 64, slots: 'used' };

/** The name of the tcache struct's uint16 array: counts up to 2.41, 2.42's num_slots (free slots). */
export function slotsName(layout: StructLayout | null): string {
  return (layout ?? NO_TCACHE).slots === 'free' ? 'num_slots' : 'counts';
}

/**
 * A word's field in `chunk`, as the walk that made `chunk` found it: the header, a link it followed (by its
 * offset), a tcache entry's key, the tcache struct's arrays by bin; anything else is the program's or unused.
 */
export function fieldOf(chunk: ImageChunk, at: number, layout: StructLayout | null): { field: string; mangled: boolean; width: 8 | 2 } {
  const delta = at - chunk.offset;
  if (delta === 0) return { field: 'prev_size', mangled: false, width: 8 };
  if (delta === 8) return { field: 'size', mangled: false, width: 8 };
  if (chunk.tcacheStruct) {
    const bins = (layout ?? NO_TCACHE).bins;
    const user = delta - 16;
    if (user < 2 * bins) return { field: `${slotsName(layout)}[${user >> 1}]`, mangled: false, width: 2 };
    if (user < 10 * bins) return { field: `entries[${(user - 2 * bins) >> 3}]`, mangled: false, width: 8 };
  }
  const link = chunk.links.find((l) => l.at === at);
  if (link) return { field: link.field, mangled: link.mangled, width: 8 };
  if (chunk.key !== undefined && delta === 24) return { field: 'key', mangled: false, width: 8 };
  // Past the links: the program's bytes in use, and nothing glibc keeps in a free chunk or the top.
  return { field: `${chunk.state === 'in-use' ? 'user' : 'unused'} +${hex(delta - 16)}`, mangled: false, width: 8 };
}

/** The chunk of `walk` that holds byte `at` (binary search on the offsets), or null. */
export function chunkHolding(walk: HeapWalk, at: number): ImageChunk | null {
  const chunks = walk.chunks;
  let lo = 0;
  let hi = chunks.length - 1;
  if (hi < 0 || at < chunks[0].offset) return null;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (chunks[mid].offset <= at) lo = mid;
    else hi = mid - 1;
  }
  const chunk = chunks[lo];
  return at < chunk.offset + Math.max(chunk.size, 16) ? chunk : null;
}

/** The walk of an image, or null when it does not walk (a broken image: the caller tries another). */
export function safeWalk(image: ImageBytes): HeapWalk | null {
  try {
    return walkImage(image.bytes, image.sidecar);
  } catch {
    return null;
  }
}

/**
 * Every word in which `before` and `after` (two images of the same heap) differ, in address order, each named
 * by the chunk that holds it: as `after` walks it, or as `before` did when the word belonged to a free chunk
 * then and to a chunk in use now (a malloc took it: its links went to zero).
 */
export function changedWords(before: ImageBytes, after: ImageBytes): WordChange[] {
  const length = Math.max(before.bytes.length, after.bytes.length);
  const read = (image: ImageBytes, at: number, width: 8 | 2): bigint => {
    if (at + width > image.bytes.length) return 0n;
    const view = new DataView(image.bytes.buffer, image.bytes.byteOffset, image.bytes.byteLength);
    return width === 8 ? view.getBigUint64(at, true) : BigInt(view.getUint16(at, true));
  };
  // Most of two images is the same zeros: 32-bit lanes over the common length where both are aligned.
  const common = Math.min(before.bytes.length, after.bytes.length) & ~7;
  const lanes = (b: Uint8Array) => (b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, common >>> 2) : null);
  const x = lanes(before.bytes);
  const y = lanes(after.bytes);
  const same = (at: number) => {
    for (let k = at; k < at + 8; k++) if ((before.bytes[k] ?? 0) !== (after.bytes[k] ?? 0)) return false;
    return true;
  };
  /** The offsets of the 8-byte words that differ, in order. */
  const differing: number[] = [];
  let from = 0;
  if (x && y) {
    const n = common >>> 2;
    for (let k = 0; k < n; k++) {
      if (x[k] === y[k]) continue;
      differing.push((k << 2) & ~7);
      k |= 1; // on to the next word
    }
    from = common;
  }
  for (let at = from; at < length; at += 8) if (!same(at)) differing.push(at);
  const walks: [ImageBytes, HeapWalk | null][] = [
    [after, null],
    [before, null],
  ];
  let walked = false;
  const changes: WordChange[] = [];
  for (const at of differing) {
    if (!walked) {
      walks[0][1] = safeWalk(after);
      walks[1][1] = safeWalk(before);
      walked = true;
    }
    // Name it by after's chunk, unless after has it in use (not the header) and before had it free.
    let named: { chunk: ImageChunk; layout: StructLayout | null } | null = null;
    for (const [image, walk] of walks) {
      const chunk = walk ? chunkHolding(walk, at) : null;
      if (!chunk) continue;
      const candidate = { chunk, layout: image.sidecar.tcache };
      if (named === null) named = candidate;
      else if (
        named.chunk.state === 'in-use' &&
        !named.chunk.tcacheStruct &&
        at - named.chunk.offset >= 16 &&
        chunk.state !== 'in-use' &&
        chunk.state !== 'top'
      ) {
        named = candidate;
      }
    }
    let where: WordChange['chunk'] = null;
    if (named) {
      // Its state after the call, and before when that differs (a chunk at the same offset then).
      const offset = named.chunk.offset;
      const [now, then] = walks.map(([, walk]) => (walk ? chunkHolding(walk, offset) : null)).map((c) => (c?.offset === offset ? c : null));
      const state = (now ?? named.chunk).state;
      where = { offset, state, size: named.chunk.size, tcacheStruct: named.chunk.tcacheStruct === true };
      if (then && then.state !== state) where.was = then.state;
    }
    const first = named ? fieldOf(named.chunk, at, named.layout) : { field: `+${hex(at)}`, mangled: false, width: 8 as const };
    if (named && first.width === 2) {
      // The counts are uint16: each that differs, by its bin.
      for (let k = at; k < at + 8; k += 2) {
        const old = read(before, k, 2);
        const now = read(after, k, 2);
        if (old === now) continue;
        const f = fieldOf(named.chunk, k, named.layout);
        changes.push({ at: k, width: 2, chunk: where, field: f.field, old, new: now, mangled: false });
      }
      continue;
    }
    changes.push({ at, width: 8, chunk: where, field: first.field, old: read(before, at, 8), new: read(after, at, 8), mangled: first.mangled });
  }
  return changes;
}

/** A stored word as a reader wants it: the markers by name. */
export function wordText(value: bigint): string {
  if (value === KEY_MARKER) return 'TCACHKEY';
  if (value === FOREIGN_MARKER) return 'FOREIGN';
  return hex(value);
}

/** A safe-linked word as its pointer: 0x0 for a word that holds nothing (no link), NULL for a link to nothing. */
function decoded(stored: bigint, base: bigint, at: number): string {
  if (stored === 0n) return '0x0';
  const pointer = demangle(stored, base, at);
  return pointer === 0n ? 'NULL' : wordText(pointer);
}

/**
 * The changes in words, grouped by chunk: `chunk +0x2a0 (tcache, size 0x20): next at +0x2b0 0x0 → 0x5555555592c0
 * (stored 0x0 → 0x55500000c7f9), key at +0x2b8 0x0 → TCACHKEY`; groups joined by "; ".
 */
export function changesText(changes: WordChange[], base: bigint): string {
  const groups: string[] = [];
  let current: number | null | undefined;
  let items: string[] = [];
  let head = '';
  const flush = () => {
    if (items.length > 0) groups.push(`${head}: ${items.join(', ')}`);
    items = [];
  };
  for (const change of changes) {
    const key = change.chunk?.offset ?? null;
    if (key !== current) {
      flush();
      current = key;
      const c = change.chunk;
      head = c
        ? `${c.tcacheStruct ? 'tcache struct' : 'chunk'} +${hex(c.offset)} (${c.was ? `${c.was} → ` : ''}${c.state}, size ${hex(c.size)})`
        : 'past the chunks';
    }
    const shown =
      change.width === 2
        ? `${change.old} → ${change.new}`
        : change.mangled
          ? `${decoded(change.old, base, change.at)} → ${decoded(change.new, base, change.at)} (stored ${hex(change.old)} → ${hex(change.new)})`
          : `${wordText(change.old)} → ${wordText(change.new)}`;
    items.push(`${change.field} at +${hex(change.at)} ${shown}`);
  }
  flush();
  return groups.join('; ');
}

/** One row of a chunk's hex view: 16 bytes at most, from `at`, with the fields of its two words. */
export interface HexRow {
  at: number;
  /** The row's bytes (fewer than 16 at the image's end). */
  bytes: number[];
  words: { at: number; field: string; stored: bigint; mangled: boolean; pointer: bigint }[];
}

/**
 * The chunk at `offset` of `image` as xxd rows from its prev_size to the next chunk's, with each word's field
 * (and the pointer a safe-linked word hides); a chunk longer than its header and links (and the tcache struct
 * longer than its arrays) is cut after them, and `more` says how many bytes are left out. `walk` is the image's.
 */
export function chunkRows(image: ImageBytes, walk: HeapWalk, offset: number): { chunk: ImageChunk | null; rows: HexRow[]; more: number } {
  const chunk = chunkHolding(walk, offset);
  if (!chunk) return { chunk: null, rows: [], more: 0 };
  const view = new DataView(image.bytes.buffer, image.bytes.byteOffset, image.bytes.byteLength);
  const layout = image.sidecar.tcache;
  const bins = (layout ?? NO_TCACHE).bins;
  const nextPrevSize = Math.min(chunk.offset + chunk.size + 8, image.bytes.length);
  // The header row, then the links' row(s): fd and bk (or next and key), and the nextsize pair of a large chunk.
  const nextsize = chunk.links.some((l) => l.field === 'fd_nextsize');
  const limit = chunk.tcacheStruct ? 16 + 10 * bins : nextsize ? 48 : 32;
  const end = Math.min(nextPrevSize, chunk.offset + limit);
  const rows: HexRow[] = [];
  for (let at = chunk.offset; at < end; at += 16) {
    const bytes = Array.from(image.bytes.subarray(at, Math.min(at + 16, end)));
    const words: HexRow['words'] = [];
    for (let w = at; w + 8 <= at + bytes.length; w += 8) {
      // The word past the chunk's end is the next chunk's prev_size.
      const f = w >= chunk.offset + chunk.size ? { field: 'next prev_size', mangled: false } : fieldOf(chunk, w, layout);
      const stored = view.getBigUint64(w, true);
      words.push({ at: w, field: f.field, stored, mangled: f.mangled, pointer: f.mangled && stored !== 0n ? demangle(stored, image.sidecar.base, w) : stored });
    }
    rows.push({ at, bytes, words });
  }
  return { chunk, rows, more: nextPrevSize - end };
}
