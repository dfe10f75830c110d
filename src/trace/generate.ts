// Seeded random traces of many shapes: small-object churn, sizes around the mmap threshold, large and huge
// blocks, realloc growth and shrink, calloc, memalign, mallopt and trim mixed in; and threaded shapes (spawn,
// exit, calls tagged with their thread, blocks freed by other threads, arena limits). The same shape and seed
// always give the same trace; tests compare model and oracle on them.
import type { MalloptParam, TraceCall } from './api.ts';

/** How one shape draws its calls. Weights are relative; sizes are drawn log-uniformly from a range. */
export interface TraceShape {
  name: string;
  /** Request size ranges [min, max] (bytes), one picked at random per request, weighted by `sizeWeights`. */
  sizes: readonly (readonly [number, number])[];
  sizeWeights?: readonly number[];
  /** Relative weights of the calls. */
  weights: { malloc: number; free: number; realloc?: number; calloc?: number; memalign?: number; mallopt?: number; trim?: number };
  /** Most blocks live at once; a malloc past it becomes a free. */
  maxLive: number;
  /** Which live block a free picks: the newest, the oldest, or any. */
  freeOrder: 'lifo' | 'fifo' | 'random';
  /** realloc: the new size as a factor of the old, drawn log-uniformly from [min, max]. */
  reallocFactor?: readonly [number, number];
  /** memalign alignments to choose from. */
  alignments?: readonly number[];
  /** mallopt settings to choose from. */
  mallopts?: readonly (readonly [MalloptParam, number])[];
  /** Free every live block at the end. */
  drain?: boolean;
  /** How the trace uses threads; absent for a trace of one thread (every shape of SHAPES). */
  threads?: ThreadPlan;
}

/**
 * How a threaded shape spawns, runs and ends its threads. Thread 1 (the main thread) is always alive; the
 * others are long-lived workers, spawned before the first call, and short-lived threads that come and go.
 */
export interface ThreadPlan {
  /** Workers spawned by the main thread before the first call; they live to the end (or `exitAtEnd`). */
  workers: number;
  /** Most threads alive at once, the main thread and the workers included. */
  maxAlive: number;
  /** Relative weights, beside the shape's call weights, of a spawn of a short-lived thread and of its exit. */
  spawn: number;
  exit: number;
  /** Whether a live thread other than the main one may spawn too. */
  spawnFromAny?: boolean;
  /** Which thread makes a call: any live one, or mostly the newest but the main one (a short-lived thread does its work and goes). */
  caller: 'any' | 'newest';
  /** The chance that a free or realloc takes a block another thread made (else one of the caller's own, if any). */
  cross: number;
  /**
   * Before a short-lived thread exits, it fills the tcache bins of a few small sizes: this many mallocs of each
   * size, then their frees (7 fill a bin; more go past it to the arena).
   */
  fillTcache?: number;
  /** mallopt calls before the first line: one of these lists, picked by the seed (arena limits, M_MMAP_MAX 0). */
  preludes?: readonly (readonly (readonly [MalloptParam, number])[])[];
  /** Every thread but the main one exits at the end, before the drain's frees (which the main thread makes). */
  exitAtEnd?: boolean;
}

/** A generated call and the thread that makes it (absent: thread 1). */
export type GeneratedCall = TraceCall & { thread?: number };

/** mulberry32: a small, fast, well-mixed 32-bit PRNG; enough for test workloads. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KiB = 1024;
const MiB = 1024 * KiB;
const MALLOPTS_ALL: readonly (readonly [MalloptParam, number])[] = [
  ['M_MMAP_THRESHOLD', 64 * KiB],
  ['M_MMAP_THRESHOLD', 256 * KiB],
  ['M_MMAP_THRESHOLD', 1 * MiB],
  ['M_TRIM_THRESHOLD', 0],
  ['M_TRIM_THRESHOLD', 256 * KiB],
  ['M_TRIM_THRESHOLD', -1],
  ['M_TOP_PAD', 0],
  ['M_TOP_PAD', 4096],
  ['M_TOP_PAD', 1 * MiB],
  ['M_MMAP_MAX', 0],
  ['M_MMAP_MAX', 2],
  ['M_MMAP_MAX', 65536],
  ['M_MXFAST', 0],
  ['M_MXFAST', 64],
  ['M_MXFAST', 160],
  ['M_MXFAST', 200],
];
const MALLOPTS_MXFAST = MALLOPTS_ALL.filter(([p]) => p === 'M_MXFAST');
const MALLOPTS_THRESHOLDS = MALLOPTS_ALL.filter(([p]) => p !== 'M_MXFAST');
const ALIGNMENTS = [16, 24, 32, 48, 64, 128, 256, 512, 1024, 2048, 4096] as const;

/** The base families; `shapes` below multiplies them by variations. */
// biome-ignore format: a table, one family a line
const FAMILIES: TraceShape[] = [
  { name: 'small-churn', sizes: [[1, 256]], weights: { malloc: 5, free: 4 }, maxLive: 200, freeOrder: 'random' },
  { name: 'tiny-lifo', sizes: [[0, 64]], weights: { malloc: 1, free: 1 }, maxLive: 50, freeOrder: 'lifo' },
  { name: 'fastbin-fifo', sizes: [[1, 120]], weights: { malloc: 1, free: 1 }, maxLive: 400, freeOrder: 'fifo' },
  { name: 'size-classes', sizes: [[24, 24], [100, 100], [500, 520], [1000, 1040]], weights: { malloc: 3, free: 3 }, maxLive: 100, freeOrder: 'random' },
  { name: 'small-and-large', sizes: [[8, 200], [1024, 16384]], sizeWeights: [4, 1], weights: { malloc: 4, free: 3 }, maxLive: 300, freeOrder: 'random' },
  { name: 'medium', sizes: [[256, 8192]], weights: { malloc: 4, free: 3 }, maxLive: 150, freeOrder: 'random' },
  { name: 'large-bins', sizes: [[1024, 128 * KiB]], weights: { malloc: 3, free: 2 }, maxLive: 80, freeOrder: 'random' },
  { name: 'around-threshold', sizes: [[96 * KiB, 640 * KiB]], weights: { malloc: 2, free: 2 }, maxLive: 12, freeOrder: 'random' },
  { name: 'threshold-and-small', sizes: [[16, 512], [100 * KiB, 2 * MiB]], sizeWeights: [6, 1], weights: { malloc: 3, free: 3 }, maxLive: 100, freeOrder: 'random' },
  { name: 'huge', sizes: [[1 * MiB, 48 * MiB]], weights: { malloc: 1, free: 1 }, maxLive: 4, freeOrder: 'random' },
  { name: 'ceiling', sizes: [[31 * MiB, 33 * MiB], [128, 300 * KiB]], weights: { malloc: 1, free: 1 }, maxLive: 6, freeOrder: 'random' },
  { name: 'realloc-grow', sizes: [[1, 4096]], weights: { malloc: 2, free: 1, realloc: 5 }, maxLive: 40, freeOrder: 'random', reallocFactor: [1, 4] },
  { name: 'realloc-shrink', sizes: [[1024, 512 * KiB]], weights: { malloc: 2, free: 1, realloc: 4 }, maxLive: 30, freeOrder: 'random', reallocFactor: [0.05, 1] },
  { name: 'realloc-mixed', sizes: [[1, 2 * MiB]], weights: { malloc: 3, free: 2, realloc: 4 }, maxLive: 40, freeOrder: 'random', reallocFactor: [0.1, 10] },
  { name: 'calloc-mix', sizes: [[1, 64 * KiB]], weights: { malloc: 2, free: 3, calloc: 2 }, maxLive: 120, freeOrder: 'random' },
  { name: 'memalign-mix', sizes: [[1, 16 * KiB]], weights: { malloc: 3, free: 3, memalign: 2 }, maxLive: 120, freeOrder: 'random', alignments: ALIGNMENTS },
  { name: 'memalign-large', sizes: [[64 * KiB, 1 * MiB]], weights: { malloc: 1, free: 2, memalign: 2 }, maxLive: 20, freeOrder: 'random', alignments: ALIGNMENTS },
  { name: 'mallopt-mix', sizes: [[1, 1 * MiB]], sizeWeights: [1], weights: { malloc: 4, free: 3, mallopt: 0.2 }, maxLive: 100, freeOrder: 'random', mallopts: MALLOPTS_ALL },
  { name: 'mxfast', sizes: [[1, 300]], weights: { malloc: 4, free: 4, mallopt: 0.1 }, maxLive: 200, freeOrder: 'random', mallopts: MALLOPTS_MXFAST },
  { name: 'trim-mix', sizes: [[16, 256 * KiB]], weights: { malloc: 4, free: 4, trim: 0.2 }, maxLive: 60, freeOrder: 'random' },
  { name: 'everything', sizes: [[0, 512], [512, 64 * KiB], [64 * KiB, 4 * MiB]], sizeWeights: [8, 3, 1], weights: { malloc: 6, free: 5, realloc: 2, calloc: 1, memalign: 1, mallopt: 0.05, trim: 0.05 }, maxLive: 150, freeOrder: 'random', reallocFactor: [0.2, 5], alignments: ALIGNMENTS, mallopts: MALLOPTS_THRESHOLDS },
];

/** The variations each family is run with: how many blocks live, and whether everything is freed at the end. */
const VARIATIONS: readonly { suffix: string; liveScale: number; drain: boolean }[] = [
  { suffix: '', liveScale: 1, drain: false },
  { suffix: '-few', liveScale: 0.1, drain: true },
  { suffix: '-many', liveScale: 4, drain: true },
];

/** Every shape: 21 families in 3 variations. */
export const SHAPES: readonly TraceShape[] = FAMILIES.flatMap((family) =>
  VARIATIONS.map((v) => ({ ...family, name: `${family.name}${v.suffix}`, maxLive: Math.max(2, Math.round(family.maxLive * v.liveScale)), drain: v.drain })),
);

/** The shape named `name` (one of SHAPES or THREAD_SHAPES), or undefined. */
export function shapeByName(name: string): TraceShape | undefined {
  return SHAPES.find((s) => s.name === name) ?? THREAD_SHAPES.find((s) => s.name === name);
}

/** The calls a shape makes with their relative weights (those of weight 0 left out), in a fixed order. */
function callWeights(shape: TraceShape, extra: [string, number][] = []): [string, number][] {
  const w = shape.weights;
  return (
    [
      ['malloc', w.malloc],
      ['free', w.free],
      ['realloc', w.realloc ?? 0],
      ['calloc', w.calloc ?? 0],
      ['memalign', w.memalign ?? 0],
      ['mallopt', w.mallopt ?? 0],
      ['trim', w.trim ?? 0],
      ...extra,
    ] as [string, number][]
  ).filter(([, weight]) => weight > 0);
}

/** The call whose share of the weights `r` (drawn from 0 to their total) falls in. */
function drawOp(ops: readonly [string, number][], r: number): string {
  for (const [name, weight] of ops) {
    r -= weight;
    if (r <= 0) return name;
  }
  return ops[0][0];
}

/**
 * A shape's random choices: an item of a list, and a request size from its ranges. A class, not closures made
 * per trace, so that the optimized generators call the same functions from trace to trace.
 */
class Draws {
  private readonly sizeWeightTotal: number;

  constructor(
    private readonly shape: TraceShape,
    private readonly random: () => number,
    private readonly sizeWeights = shape.sizeWeights ?? shape.sizes.map(() => 1),
  ) {
    this.sizeWeightTotal = this.sizeWeights.reduce((a, b) => a + b, 0);
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)];
  }

  private logUniform(min: number, max: number): number {
    if (max <= min) return min;
    const low = Math.log(Math.max(min, 1));
    return Math.min(max, Math.max(min, Math.round(Math.exp(low + this.random() * (Math.log(max) - low)))));
  }

  size(): number {
    const sizes = this.shape.sizes;
    let r = this.random() * this.sizeWeightTotal;
    for (let i = 0; i < sizes.length; i++) {
      r -= this.sizeWeights[i];
      if (r <= 0) return this.logUniform(sizes[i][0], sizes[i][1]);
    }
    const last = sizes[sizes.length - 1];
    return this.logUniform(last[0], last[1]);
  }
}

/**
 * The shape with every field present, in one order: the shapes' literals differ in which optional fields they
 * have, and objects of one layout keep the generators' optimized code from being thrown away at each new shape.
 */
function uniformShape(shape: TraceShape): TraceShape {
  const w = shape.weights;
  return {
    name: shape.name,
    sizes: shape.sizes,
    sizeWeights: shape.sizeWeights,
    weights: {
      malloc: w.malloc,
      free: w.free,
      realloc: w.realloc,
      calloc: w.calloc,
      memalign: w.memalign,
      mallopt: w.mallopt,
      trim: w.trim,
    } satisfies { [K in keyof Required<TraceShape['weights']>]: TraceShape['weights'][K] },
    maxLive: shape.maxLive,
    freeOrder: shape.freeOrder,
    reallocFactor: shape.reallocFactor,
    alignments: shape.alignments,
    mallopts: shape.mallopts,
    drain: shape.drain,
    threads: shape.threads,
    // Every field of TraceShape, optional ones included: a field added there and not here fails to compile.
  } satisfies { [K in keyof Required<TraceShape>]: TraceShape[K] };
}

/** The live block a free takes, by the shape's order (the random one draws from `random`). */
function takeLive<T>(live: T[], order: TraceShape['freeOrder'], random: () => number): T {
  const index = order === 'lifo' ? live.length - 1 : order === 'fifo' ? 0 : Math.floor(random() * live.length);
  return live.splice(index, 1)[0];
}

/** `events` calls of `shape`, drawn with `seed` (and then the drain's frees and the threads' exits). */
export function* generateTrace(given: TraceShape, seed: number, events: number): Generator<GeneratedCall> {
  const shape = uniformShape(given);
  if (shape.threads) {
    yield* generateThreadedTrace(shape, shape.threads, seed, events);
    return;
  }
  const random = seededRandom(seed * 2654435761 + shape.name.length);
  const live: { id: string; size: number }[] = [];
  let nextId = 0;
  const ops = callWeights(shape);
  const totalWeight = ops.reduce((sum, [, weight]) => sum + weight, 0);
  const draw = new Draws(shape, random);

  for (let n = 0; n < events; n++) {
    let op = drawOp(ops, random() * totalWeight);
    if ((op === 'malloc' || op === 'calloc' || op === 'memalign') && live.length >= shape.maxLive) op = 'free';
    if ((op === 'free' || op === 'realloc') && live.length === 0) op = 'malloc';
    switch (op) {
      case 'malloc': {
        const block = { id: `b${nextId++}`, size: draw.size() };
        live.push(block);
        yield { op: 'malloc', id: block.id, size: block.size };
        break;
      }
      case 'calloc': {
        const size = draw.size();
        const nmemb = draw.pick([1, 1, 2, 3, 4, 8, 16]);
        const block = { id: `b${nextId++}`, size: Math.max(1, Math.floor(size / nmemb)) * nmemb };
        live.push(block);
        yield { op: 'calloc', id: block.id, nmemb, size: block.size / nmemb };
        break;
      }
      case 'memalign': {
        const block = { id: `b${nextId++}`, size: draw.size() };
        live.push(block);
        yield { op: 'memalign', id: block.id, alignment: draw.pick(shape.alignments ?? ALIGNMENTS), size: block.size };
        break;
      }
      case 'free':
        yield { op: 'free', id: takeLive(live, shape.freeOrder, random).id };
        break;
      case 'realloc': {
        if (random() < 0.05) {
          // realloc(NULL, n): a new block
          const block = { id: `b${nextId++}`, size: draw.size() };
          live.push(block);
          yield { op: 'realloc', id: block.id, size: block.size };
          break;
        }
        const index = Math.floor(random() * live.length);
        const block = live[index];
        if (random() < 0.03) {
          live.splice(index, 1);
          yield { op: 'realloc', id: block.id, size: 0 };
          break;
        }
        const [low, high] = shape.reallocFactor ?? [0.5, 2];
        const factor = Math.exp(Math.log(low) + random() * (Math.log(high) - Math.log(low)));
        block.size = Math.max(1, Math.min(64 * MiB, Math.round(block.size * factor)));
        yield { op: 'realloc', id: block.id, size: block.size };
        break;
      }
      case 'mallopt': {
        const [param, value] = draw.pick(shape.mallopts ?? MALLOPTS_ALL);
        yield { op: 'mallopt', param, value };
        break;
      }
      case 'trim':
        yield { op: 'trim', pad: draw.pick([0, 0, 4096, 128 * KiB]) };
        break;
    }
  }
  if (shape.drain) while (live.length > 0) yield { op: 'free', id: takeLive(live, shape.freeOrder, random).id };
}

// ---- threaded shapes -------------------------------------------------------------------------------------

/** Sizes that the tcache and the fastbins hold, for the tcache fills before an exit. */
const TCACHE_FILL_SIZES = [16, 24, 40, 100, 120, 200, 500, 1000, 1032] as const;
/** The arena limits the limit shapes set, before any thread runs; 8 x 2 cores = 16 arenas would be the default. */
const ARENA_PRELUDES = [1, 2, 3].map((n) => [[['M_ARENA_MAX', n] as const]] as const);

/**
 * The threaded shapes: what glibc does with threads (a tcache and an arena per thread, up to a limit, arenas
 * handed back at exit and reused, a thread arena's further heaps, frees into another thread's arena, trims over
 * every arena). Each has its own name, never one of SHAPES', and the same seed always gives the same trace.
 */
// biome-ignore format: a table, one shape a line
export const THREAD_SHAPES: readonly TraceShape[] = [
  // Threads that spawn, make a few calls (mostly the newest thread) and exit: arenas go on the free list and come back.
  { name: 'threads-short-lived', sizes: [[1, 512], [512, 16 * KiB]], sizeWeights: [4, 1], weights: { malloc: 5, free: 4, realloc: 1 }, maxLive: 120, freeOrder: 'random', reallocFactor: [0.3, 3], threads: { workers: 0, maxAlive: 4, spawn: 0.6, exit: 0.6, caller: 'newest', cross: 0.3 } },
  // Long-lived workers, every call kind, frees and reallocs across threads, trims now and then.
  { name: 'threads-workers', sizes: [[0, 512], [512, 64 * KiB], [64 * KiB, 1 * MiB]], sizeWeights: [8, 3, 1], weights: { malloc: 6, free: 5, realloc: 2, calloc: 1, memalign: 1, trim: 0.2 }, maxLive: 200, freeOrder: 'random', reallocFactor: [0.2, 5], alignments: ALIGNMENTS, threads: { workers: 6, maxAlive: 7, spawn: 0, exit: 0, caller: 'any', cross: 0.3, exitAtEnd: true }, drain: true },
  // Most frees and reallocs by another thread than the maker's: chunks go back to arenas through foreign tcaches.
  { name: 'threads-cross', sizes: [[1, 2048], [2048, 200 * KiB]], sizeWeights: [5, 1], weights: { malloc: 4, free: 4, realloc: 3 }, maxLive: 150, freeOrder: 'random', reallocFactor: [0.2, 4], threads: { workers: 3, maxAlive: 6, spawn: 0.15, exit: 0.15, spawnFromAny: true, caller: 'any', cross: 0.9 } },
  // M_ARENA_MAX 1, 2, 3 before any thread runs: threads share arenas (reused_arena) once the limit is reached.
  ...ARENA_PRELUDES.map((preludes, i): TraceShape => ({ name: `threads-arena-max-${i + 1}`, sizes: [[1, 1024], [1024, 128 * KiB]], sizeWeights: [5, 1], weights: { malloc: 5, free: 4, realloc: 1 }, maxLive: 120, freeOrder: 'random', threads: { workers: 4, maxAlive: 8, spawn: 0.3, exit: 0.3, spawnFromAny: true, caller: 'any', cross: 0.4, preludes } })),
  // More threads than 8 x cores (16 arenas on 2 cores): the limit is reached and arenas are shared round robin.
  { name: 'threads-many', sizes: [[1, 1024]], weights: { malloc: 5, free: 4 }, maxLive: 200, freeOrder: 'random', threads: { workers: 18, maxAlive: 26, spawn: 0.4, exit: 0.3, caller: 'any', cross: 0.3 } },
  // M_ARENA_TEST (with and without M_ARENA_MAX): when the limit is first computed, and that it then stays.
  { name: 'threads-arena-test', sizes: [[1, 1024]], weights: { malloc: 5, free: 4, mallopt: 0.05 }, maxLive: 150, freeOrder: 'random', mallopts: [['M_ARENA_MAX', 2], ['M_ARENA_MAX', 6], ['M_ARENA_TEST', 3]], threads: { workers: 6, maxAlive: 14, spawn: 0.4, exit: 0.3, caller: 'any', cross: 0.3, preludes: [[['M_ARENA_TEST', 1]], [['M_ARENA_TEST', 2]], [['M_ARENA_TEST', 4], ['M_ARENA_MAX', 3]], [['M_ARENA_MAX', 5], ['M_ARENA_TEST', 1]], [['M_ARENA_TEST', 20]]] } },
  // Huge blocks (mapped, and in thread heaps once the threshold has slid) made and freed by threads.
  { name: 'threads-huge', sizes: [[16, 4096], [128 * KiB, 48 * MiB]], sizeWeights: [4, 1], weights: { malloc: 3, free: 3, realloc: 1 }, maxLive: 12, freeOrder: 'random', reallocFactor: [0.3, 3], threads: { workers: 3, maxAlive: 6, spawn: 0.2, exit: 0.2, caller: 'any', cross: 0.4 } },
  // Threads that exit with full tcache bins: tcache_thread_shutdown empties them into the chunks' arenas.
  { name: 'threads-tcache-exit', sizes: [[1, 1032]], weights: { malloc: 5, free: 4 }, maxLive: 100, freeOrder: 'random', threads: { workers: 1, maxAlive: 5, spawn: 0.5, exit: 0.5, caller: 'newest', cross: 0.3, fillTcache: 9 } },
  // malloc_trim while threads (and their arenas) exist, with frees that leave free pages in thread heaps.
  { name: 'threads-trim', sizes: [[16, 256 * KiB]], weights: { malloc: 4, free: 4, trim: 0.3 }, maxLive: 60, freeOrder: 'random', threads: { workers: 3, maxAlive: 6, spawn: 0.2, exit: 0.2, caller: 'any', cross: 0.3 } },
  // Blocks kept in the heaps (no mappings, or a 32 MiB threshold), mostly by one thread, until its arena needs a second heap (64 MiB each); frees trim them away.
  { name: 'threads-heaps', sizes: [[16, 4096], [256 * KiB, 12 * MiB]], sizeWeights: [1, 2], weights: { malloc: 4, free: 3, realloc: 1 }, maxLive: 60, freeOrder: 'random', reallocFactor: [0.5, 2], threads: { workers: 1, maxAlive: 3, spawn: 0.05, exit: 0.05, caller: 'newest', cross: 0.2, preludes: [[['M_MMAP_MAX', 0]], [['M_MMAP_THRESHOLD', 32 * MiB]]] } },
];

/** One live block of a threaded trace and the thread that made it. */
interface ThreadedBlock {
  id: string;
  size: number;
  maker: number;
}

/** The threaded form of generateTrace: thread lines drawn beside the calls, each call made by a live thread. */
function* generateThreadedTrace(shape: TraceShape, plan: ThreadPlan, seed: number, events: number): Generator<GeneratedCall> {
  const random = seededRandom(seed * 2654435761 + shape.name.length);
  const draw = new Draws(shape, random);
  const ops = callWeights(shape, [
    ['spawn', plan.spawn],
    ['exit', plan.exit],
  ]);
  const totalWeight = ops.reduce((sum, [, weight]) => sum + weight, 0);
  const live: ThreadedBlock[] = [];
  /** The live threads, oldest first: 1, the workers, then the short-lived ones. */
  const alive = [1];
  const workers = new Set<number>();
  let newestThread = 1;
  let nextId = 0;
  let made = 0;

  // A new number each time; now and then a gap, since a trace may number its threads as it likes.
  const spawn = (by: number): GeneratedCall => {
    newestThread += random() < 0.1 ? 2 + Math.floor(random() * 1000) : 1;
    alive.push(newestThread);
    return { op: 'spawn', spawned: newestThread, thread: by };
  };
  const caller = (): number => (plan.caller === 'newest' && alive.length > 1 && random() < 0.75 ? alive[alive.length - 1] : draw.pick(alive));
  /** A live block for a free or realloc by `thread`: another thread's with the plan's chance, else its own when it has one. */
  const takeIndex = (thread: number): number => {
    if (random() >= plan.cross) {
      const own: number[] = [];
      for (let i = 0; i < live.length; i++) if (live[i].maker === thread) own.push(i);
      if (own.length > 0) return draw.pick(own);
    }
    return Math.floor(random() * live.length);
  };
  const newBlock = (thread: number, size: number): ThreadedBlock => {
    const block = { id: `b${nextId++}`, size, maker: thread };
    live.push(block);
    return block;
  };

  for (const [param, value] of plan.preludes ? draw.pick(plan.preludes) : []) {
    made++;
    yield { op: 'mallopt', param, value };
  }
  while (workers.size < plan.workers) {
    made++;
    const call = spawn(1);
    workers.add(newestThread);
    yield call;
  }
  for (; made < events; made++) {
    let op = drawOp(ops, random() * totalWeight);
    const shortLived = alive.length - 1 - workers.size;
    if (op === 'spawn' && alive.length >= plan.maxAlive) op = shortLived > 0 ? 'exit' : 'malloc';
    if (op === 'exit' && shortLived === 0) op = alive.length < plan.maxAlive && plan.spawn > 0 ? 'spawn' : 'malloc';
    if ((op === 'malloc' || op === 'calloc' || op === 'memalign') && live.length >= shape.maxLive) op = 'free';
    if ((op === 'free' || op === 'realloc') && live.length === 0) op = 'malloc';
    const thread = op === 'spawn' && !plan.spawnFromAny ? 1 : caller();
    switch (op) {
      case 'spawn':
        yield spawn(thread);
        break;
      case 'exit': {
        // A short-lived thread: the newest one mostly, as it did most of the calls.
        const first = 1 + workers.size;
        const index = random() < 0.6 ? alive.length - 1 : first + Math.floor(random() * (alive.length - first));
        const [leaving] = alive.splice(index, 1);
        if (plan.fillTcache) {
          // Fill whole tcache bins: `fillTcache` blocks of a size, then their frees, newest first.
          for (const size of [draw.pick(TCACHE_FILL_SIZES), draw.pick(TCACHE_FILL_SIZES)]) {
            const blocks: ThreadedBlock[] = [];
            for (let k = 0; k < plan.fillTcache; k++) {
              const block = newBlock(leaving, size);
              blocks.push(block);
              made++;
              yield { op: 'malloc', id: block.id, size, thread: leaving };
            }
            for (const block of blocks.reverse()) {
              live.splice(live.indexOf(block), 1);
              made++;
              yield { op: 'free', id: block.id, thread: leaving };
            }
          }
        }
        yield { op: 'exit', thread: leaving };
        break;
      }
      case 'malloc': {
        const block = newBlock(thread, draw.size());
        yield { op: 'malloc', id: block.id, size: block.size, thread };
        break;
      }
      case 'calloc': {
        const size = draw.size();
        const nmemb = draw.pick([1, 1, 2, 3, 4, 8, 16]);
        const block = newBlock(thread, Math.max(1, Math.floor(size / nmemb)) * nmemb);
        yield { op: 'calloc', id: block.id, nmemb, size: block.size / nmemb, thread };
        break;
      }
      case 'memalign': {
        const block = newBlock(thread, draw.size());
        yield { op: 'memalign', id: block.id, alignment: draw.pick(shape.alignments ?? ALIGNMENTS), size: block.size, thread };
        break;
      }
      case 'free': {
        const [block] = live.splice(takeIndex(thread), 1);
        yield { op: 'free', id: block.id, thread };
        break;
      }
      case 'realloc': {
        const index = takeIndex(thread);
        const block = live[index];
        if (random() < 0.03) {
          live.splice(index, 1);
          yield { op: 'realloc', id: block.id, size: 0, thread };
          break;
        }
        const [low, high] = shape.reallocFactor ?? [0.5, 2];
        const factor = Math.exp(Math.log(low) + random() * (Math.log(high) - Math.log(low)));
        block.size = Math.max(1, Math.min(64 * MiB, Math.round(block.size * factor)));
        yield { op: 'realloc', id: block.id, size: block.size, thread };
        break;
      }
      case 'mallopt': {
        const [param, value] = draw.pick(shape.mallopts ?? MALLOPTS_ALL);
        yield { op: 'mallopt', param, value, thread };
        break;
      }
      case 'trim':
        yield { op: 'trim', pad: draw.pick([0, 0, 4096, 128 * KiB]), thread };
        break;
    }
  }
  if (plan.exitAtEnd) for (const thread of alive.splice(1)) yield { op: 'exit', thread };
  if (shape.drain) while (live.length > 0) yield { op: 'free', id: live.splice(Math.floor(random() * live.length), 1)[0].id };
}
