// What must hold after every call, checked by a fresh walk: chunks tile each region with no gap or overlap,
// neighbours agree (no two free chunks side by side, the top last), every free chunk sits in exactly one list
// that suits its size, large bins are sorted with a sound nextsize ring, and mallinfo2 equals the walk.
import type { MallocState } from './arena.ts';
import { UNSORTED } from './arena.ts';
import { ChunkState, NIL, isBinned } from './chunks.ts';
import {
  CHUNK_HDR_SZ,
  MALLOC_ALIGNMENT,
  MINSIZE,
  NBINS,
  NFASTBINS,
  TCACHE_MAX_BINS,
  csize2tidx,
  fastbinIndex,
  inSmallbinRange,
  largebinIndex,
  smallbinIndex,
} from './constants.ts';
import { libcMallinfo2 } from './libc.ts';
import { arenaForChunk } from './arenas.ts';
import { isRegionStart, kindName } from './walk.ts';

/** The codes of the lists a chunk can be on (see `listed`): tcache bins from 0, then fastbins, then bins. */
const FASTBIN_LIST = 100;
const BIN_LIST = 200;
/** Added per arena index to a fastbin or bin code, so that each arena's lists are told apart. */
const ARENA_LISTS = 1000;

/** checkInvariants' list codes, grown as needed and reused (the walk is synchronous and never nested). */
let scratch = new Int32Array(1024);

/** Throws an Error naming the first invariant that does not hold. */
export function checkInvariants(main: MallocState): void {
  const m = main.m;
  const c = main.chunks;
  const fail = (what: string): never => {
    throw new Error(`invariant broken: ${what}`);
  };
  const hex = (n: number) => `0x${n.toString(16)}`;

  // The list each chunk is on (a code: tcache i, fastbin FASTBIN_LIST + i, bin BIN_LIST + b), or -1; a typed
  // array rather than a Map, and one kept from walk to walk, since the differential tests walk thousands of
  // heaps (a fresh array each time is memory to zero and collect).
  const highWater = c.highWater;
  if (scratch.length < highWater) scratch = new Int32Array(Math.max(highWater, 2 * scratch.length));
  const listed = scratch;
  listed.fill(-1, 0, highWater);
  const listName = (raw: number) => {
    const code = raw % ARENA_LISTS;
    const where = raw >= ARENA_LISTS ? ` of arena ${Math.floor(raw / ARENA_LISTS)}` : '';
    return code >= BIN_LIST ? `bin ${code - BIN_LIST}${where}` : code >= FASTBIN_LIST ? `fastbin ${code - FASTBIN_LIST}${where}` : `tcache ${code}`;
  };
  const enlist = (p: number, list: number) => {
    if (listed[p] !== -1) fail(`chunk ${hex(c.address[p])} is on ${listName(listed[p])} and on ${listName(list)}`);
    listed[p] = list;
  };

  // every thread's tcache
  for (const thread of m.threads.values()) {
    const tcache = thread.tcache;
    for (let i = 0; i < TCACHE_MAX_BINS; i++) {
      let count = 0;
      for (let p = tcache.head[i]; p !== NIL; p = c.fd[p]) {
        enlist(p, i);
        if (c.state[p] !== ChunkState.Tcache) fail(`tcache ${i} holds a chunk in state ${c.state[p]}`);
        if (csize2tidx(c.size[p]) !== i) fail(`tcache ${i} holds a chunk of size ${c.size[p]}`);
        count++;
      }
      if (count !== tcache.counts[i]) fail(`thread ${thread.id}: tcache ${i} counts ${tcache.counts[i]} but holds ${count}`);
      if (count > m.mp.tcacheCount) fail(`thread ${thread.id}: tcache ${i} holds ${count} > ${m.mp.tcacheCount}`);
    }
  }

  // each arena's fastbins and bins
  let freeBytes = 0;
  for (const av of m.arenas) {
    let fastBytes = 0;
    let fastCount = 0;
    for (let i = 0; i < NFASTBINS; i++) {
      for (let p = av.fastbins[i]; p !== NIL; p = c.fd[p]) {
        enlist(p, FASTBIN_LIST + i + ARENA_LISTS * av.index);
        if (arenaForChunk(m, p) !== av) fail(`fastbin ${i} of arena ${av.index} holds a chunk of arena ${arenaForChunk(m, p).index}`);
        if (c.state[p] !== ChunkState.Fastbin) fail(`fastbin ${i} holds a chunk in state ${c.state[p]}`);
        if (fastbinIndex(c.size[p]) !== i) fail(`fastbin ${i} holds a chunk of size ${c.size[p]}`);
        fastBytes += c.size[p];
        fastCount++;
      }
    }
    if (fastCount > 0 && !av.haveFastchunks) fail('fastbins hold chunks but have_fastchunks is clear');

    // regular bins: doubly linked rings, sizes that suit the bin, large bins sorted with a sound nextsize ring
    let binnedBytes = 0;
    let binnedCount = 0;
    for (let b = 1; b < NBINS; b++) {
      const header = av.binBase + b;
      let previous = header;
      let lastSize = Infinity;
      const heads: number[] = [];
      for (let p = c.fd[header]; p !== header; p = c.fd[p]) {
        enlist(p, BIN_LIST + b + ARENA_LISTS * av.index);
        if (arenaForChunk(m, p) !== av) fail(`bin ${b} of arena ${av.index} holds a chunk of arena ${arenaForChunk(m, p).index}`);
        if (c.bk[p] !== previous) fail(`bin ${b}: bk of ${hex(c.address[p])} does not point back`);
        const size = c.size[p];
        const expected = b === UNSORTED ? ChunkState.Unsorted : b < 64 ? ChunkState.Small : ChunkState.Large;
        if (c.state[p] !== expected) fail(`bin ${b} holds a chunk in state ${c.state[p]}`);
        if (b !== UNSORTED) {
          const index = inSmallbinRange(size) ? smallbinIndex(size) : largebinIndex(size);
          if (index !== b) fail(`bin ${b} holds a chunk of size ${size} (bin ${index})`);
        }
        if (b >= 64) {
          if (size > lastSize) fail(`large bin ${b} is not sorted: ${size} after ${lastSize}`);
          const isHead = size !== lastSize;
          if (isHead !== (c.fdNextsize[p] !== NIL)) fail(`large bin ${b}: nextsize links of ${hex(c.address[p])} do not match its place`);
          if (isHead) heads.push(p);
          lastSize = size;
        }
        binnedBytes += size;
        binnedCount++;
        previous = p;
      }
      if (c.bk[header] !== previous) fail(`bin ${b}: header's bk is not the last chunk`);
      for (let i = 0; i < heads.length; i++) {
        const next = heads[(i + 1) % heads.length];
        if (c.fdNextsize[heads[i]] !== next || c.bkNextsize[next] !== heads[i]) fail(`large bin ${b}: nextsize ring broken`);
      }
    }

    if (fastBytes !== av.fastBytes || fastCount !== av.fastCount)
      fail(`arena ${av.index}: fastbin counters ${av.fastCount}/${av.fastBytes} but the walk finds ${fastCount}/${fastBytes}`);
    if (binnedBytes !== av.binnedBytes || binnedCount !== av.binnedCount)
      fail(`arena ${av.index}: bin counters ${av.binnedCount}/${av.binnedBytes} but the walk finds ${binnedCount}/${binnedBytes}`);
    freeBytes += c.size[av.top] + fastBytes + binnedBytes;
  }

  // One pass over the chunk records: no released record left on a list, the mmapped chunks' totals, and
  // the first chunk of each region (as regionStarts finds them, without a pass of its own).
  let mmapped = 0;
  let mmappedCount = 0;
  const starts: number[] = [];
  for (let id = 0; id < highWater; id++) {
    const state = c.state[id];
    if (state === ChunkState.Unused) {
      if (listed[id] !== -1) fail(`a released record is still on ${listName(listed[id])}`);
    } else if (state === ChunkState.Mmapped) {
      mmapped += c.size[id] + c.lead[id];
      mmappedCount++;
    } else if (isRegionStart(main, id)) starts.push(id);
  }
  starts.sort((a, b) => c.address[a] - c.address[b]);

  // regions: tiling, neighbours, the top last (over chunk ids, as walkRegions would give them, without the
  // objects it makes)
  let topsSeen = 0;
  for (const start of starts) {
    for (let p = start; p !== NIL; p = c.nextPhys[p]) {
      const address = c.address[p];
      const size = c.size[p];
      const state = c.state[p];
      if (address % MALLOC_ALIGNMENT !== 0) fail(`chunk at ${hex(address)} is misaligned`);
      const isPost = state === ChunkState.Fencepost;
      if (size % MALLOC_ALIGNMENT !== 0 || (!isPost && size < MINSIZE) || (isPost && size < CHUNK_HDR_SZ)) {
        fail(`chunk at ${hex(address)} has size ${size}`);
      }
      const next = c.nextPhys[p];
      if (next !== NIL && c.address[next] !== address + size) fail(`chunks at ${hex(address)} (+${size}) and ${hex(c.address[next])} do not tile`);
      const free = isBinned(state);
      if (free && next !== NIL && (isBinned(c.state[next]) || c.state[next] === ChunkState.Top)) {
        fail(`free chunk at ${hex(address)} borders a free chunk or the top: they should have merged`);
      }
      const onList = listed[p] !== -1;
      if (free && !onList) fail(`free chunk at ${hex(address)} is on no list`);
      if ((state === ChunkState.Tcache || state === ChunkState.Fastbin) && !onList) fail(`${kindName(state)} chunk at ${hex(address)} is on no list`);
      if (state === ChunkState.InUse && onList) fail(`chunk at ${hex(address)} is in use and on ${listName(listed[p])}`);
      if (state === ChunkState.Top) {
        if (!m.arenas.some((a) => a.top === p)) fail(`a chunk at ${hex(address)} is marked top but is no arena's top`);
        if (next !== NIL) fail('the top is not the last chunk of its region');
        topsSeen++;
      }
    }
  }
  if (topsSeen !== m.arenas.filter((a) => c.size[a.top] !== 0).length) fail('an arena top is in no region');

  // mallinfo2 against the walk
  const info = libcMallinfo2(m);
  if (info.fordblks !== freeBytes) fail('fordblks does not equal the tops + fastbins + bins of the arenas');
  if (mmapped !== info.hblkhd || mmappedCount !== info.hblks) fail(`hblks/hblkhd ${info.hblks}/${info.hblkhd} but the walk finds ${mmappedCount}/${mmapped}`);
}
