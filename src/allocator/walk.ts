// Reading the allocator's state without changing it: every chunk of every heap region in address order,
// the mmapped chunks, and the contents of each bin. For tests, reports and teaching.
import type { MallocState } from './arena.ts';
import { UNSORTED } from './arena.ts';
import { ChunkState, NIL, chunk2mem } from './chunks.ts';
import { NBINS, NFASTBINS, NSMALLBINS, TCACHE_MAX_BINS, fastbinSize, smallbinSize, tidx2usize } from './constants.ts';

/** A chunk's state as the walk names it. */
export type ChunkKind = 'in-use' | 'tcache' | 'fastbin' | 'unsorted' | 'small' | 'large' | 'top' | 'mmapped' | 'fencepost';

const KIND: Record<number, ChunkKind> = {
  [ChunkState.InUse]: 'in-use',
  [ChunkState.Tcache]: 'tcache',
  [ChunkState.Fastbin]: 'fastbin',
  [ChunkState.Unsorted]: 'unsorted',
  [ChunkState.Small]: 'small',
  [ChunkState.Large]: 'large',
  [ChunkState.Top]: 'top',
  [ChunkState.Mmapped]: 'mmapped',
  [ChunkState.Fencepost]: 'fencepost',
};

/** The walk's name for a chunk state. */
export function kindName(state: number): ChunkKind {
  return KIND[state];
}

export interface ChunkInfo {
  /** The chunk id (stable while the chunk lives). */
  id: number;
  /** Chunk address, and the user pointer (chunk2mem). */
  address: number;
  pointer: number;
  /** chunksize. */
  size: number;
  kind: ChunkKind;
  /** The seq of the call that made it, or -1. */
  madeBy: number;
  /** For mmapped chunks: the memalign front gap (prev_size). */
  lead?: number;
}

/** The first chunk of every heap region (the brk heap and any fallback mappings), lowest address first. */
export function regionStarts(av: MallocState): number[] {
  const c = av.chunks;
  const starts: number[] = [];
  for (let id = 0; id < c.highWater; id++) if (isRegionStart(av, id)) starts.push(id);
  return starts.sort((a, b) => c.address[a] - c.address[b]);
}

/** Whether chunk record `id` is the first chunk of a heap region (regionStarts' test). */
export function isRegionStart(av: MallocState, id: number): boolean {
  const c = av.chunks;
  const state = c.state[id];
  if (state === ChunkState.Unused || state === ChunkState.BinHeader || state === ChunkState.Mmapped) return false;
  if (c.prevPhys[id] !== NIL) return false;
  return !(state === ChunkState.Top && c.size[id] === 0); // the dummy top before the first sysmalloc
}

function info(av: MallocState, id: number): ChunkInfo {
  const c = av.chunks;
  const chunk: ChunkInfo = { id, address: c.address[id], pointer: chunk2mem(c.address[id]), size: c.size[id], kind: KIND[c.state[id]], madeBy: c.madeBy[id] };
  if (c.state[id] === ChunkState.Mmapped) chunk.lead = c.lead[id];
  return chunk;
}

/** Every heap chunk in address order, region after region. */
export function walkHeap(av: MallocState): ChunkInfo[] {
  const c = av.chunks;
  const chunks: ChunkInfo[] = [];
  for (const start of regionStarts(av)) {
    for (let p = start; p !== NIL; p = c.nextPhys[p]) chunks.push(info(av, p));
  }
  return chunks;
}

/** The heap regions: each a list of chunks in address order. */
export function walkRegions(av: MallocState): ChunkInfo[][] {
  const c = av.chunks;
  return regionStarts(av).map((start) => {
    const region: ChunkInfo[] = [];
    for (let p = start; p !== NIL; p = c.nextPhys[p]) region.push(info(av, p));
    return region;
  });
}

/** Every live mmapped chunk, lowest address first. */
export function walkMmapped(av: MallocState): ChunkInfo[] {
  const c = av.chunks;
  const chunks: ChunkInfo[] = [];
  for (let id = 0; id < c.highWater; id++) if (c.state[id] === ChunkState.Mmapped) chunks.push(info(av, id));
  return chunks.sort((a, b) => a.address - b.address);
}

/** Bin contents, each list in glibc's order (fd order: head first). */
export interface BinsView {
  /** tcache bins: index -> chunks, most recent first. Only non-empty bins. */
  tcache: BinContents[];
  fastbins: BinContents[];
  unsorted: ChunkInfo[];
  /** Small (2..63) and large (64..126) bins, non-empty only, in fd order. */
  bins: BinContents[];
  top: ChunkInfo;
  /** av->last_remainder: an address, possibly stale (0 when never set). */
  lastRemainder: number;
}

/** One non-empty bin: its index, the one chunk size it holds (null for a large bin, which holds a range), and its chunks. */
export interface BinContents {
  index: number;
  kind: 'tcache' | 'fastbin' | 'small' | 'large';
  size: number | null;
  chunks: ChunkInfo[];
}

export function walkBins(av: MallocState): BinsView {
  const c = av.chunks;
  const list = (head: number): ChunkInfo[] => {
    const out: ChunkInfo[] = [];
    for (let p = head; p !== NIL; p = c.fd[p]) out.push(info(av, p));
    return out;
  };
  const ring = (bin: number): ChunkInfo[] => {
    const out: ChunkInfo[] = [];
    const head = av.binBase + bin;
    for (let p = c.fd[head]; p !== head; p = c.fd[p]) out.push(info(av, p));
    return out;
  };
  const tcache: BinContents[] = [];
  for (let i = 0; i < TCACHE_MAX_BINS; i++)
    if (av.m.tcache.head[i] !== NIL) tcache.push({ index: i, kind: 'tcache', size: tidx2usize(i), chunks: list(av.m.tcache.head[i]) });
  const fastbins: BinContents[] = [];
  for (let i = 0; i < NFASTBINS; i++)
    if (av.fastbins[i] !== NIL) fastbins.push({ index: i, kind: 'fastbin', size: fastbinSize(i), chunks: list(av.fastbins[i]) });
  const bins: BinContents[] = [];
  for (let b = 2; b < NBINS; b++) {
    if (c.fd[av.binBase + b] === av.binBase + b) continue;
    const small = b < NSMALLBINS;
    bins.push({ index: b, kind: small ? 'small' : 'large', size: small ? smallbinSize(b) : null, chunks: ring(b) });
  }
  return {
    tcache,
    fastbins,
    unsorted: ring(UNSORTED),
    bins,
    top: info(av, av.top),
    lastRemainder: av.lastRemainder,
  };
}
