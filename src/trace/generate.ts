// Seeded random traces of many shapes: small-object churn, sizes around the mmap threshold, large and huge
// blocks, realloc growth and shrink, calloc, memalign, mallopt and trim mixed in. The same shape and seed
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
}

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

/** The shape named `name`, or undefined. */
export function shapeByName(name: string): TraceShape | undefined {
  return SHAPES.find((s) => s.name === name);
}

/** `events` calls of `shape`, drawn with `seed`. */
export function* generateTrace(shape: TraceShape, seed: number, events: number): Generator<TraceCall> {
  const random = seededRandom(seed * 2654435761 + shape.name.length);
  const live: { id: string; size: number }[] = [];
  let nextId = 0;
  const w = shape.weights;
  const ops: [string, number][] = (
    [
      ['malloc', w.malloc],
      ['free', w.free],
      ['realloc', w.realloc ?? 0],
      ['calloc', w.calloc ?? 0],
      ['memalign', w.memalign ?? 0],
      ['mallopt', w.mallopt ?? 0],
      ['trim', w.trim ?? 0],
    ] as [string, number][]
  ).filter(([, weight]) => weight > 0);
  const totalWeight = ops.reduce((sum, [, weight]) => sum + weight, 0);
  const sizeWeights = shape.sizeWeights ?? shape.sizes.map(() => 1);
  const sizeWeightTotal = sizeWeights.reduce((a, b) => a + b, 0);

  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const logUniform = (min: number, max: number): number => {
    if (max <= min) return min;
    const low = Math.log(Math.max(min, 1));
    return Math.min(max, Math.max(min, Math.round(Math.exp(low + random() * (Math.log(max) - low)))));
  };
  const drawSize = (): number => {
    let r = random() * sizeWeightTotal;
    for (let i = 0; i < shape.sizes.length; i++) {
      r -= sizeWeights[i];
      if (r <= 0) return logUniform(shape.sizes[i][0], shape.sizes[i][1]);
    }
    const last = shape.sizes[shape.sizes.length - 1];
    return logUniform(last[0], last[1]);
  };
  const takeLive = (): { id: string; size: number } => {
    const index = shape.freeOrder === 'lifo' ? live.length - 1 : shape.freeOrder === 'fifo' ? 0 : Math.floor(random() * live.length);
    const [block] = live.splice(index, 1);
    return block;
  };

  for (let n = 0; n < events; n++) {
    let r = random() * totalWeight;
    let op = ops[0][0];
    for (const [name, weight] of ops) {
      r -= weight;
      if (r <= 0) {
        op = name;
        break;
      }
    }
    if ((op === 'malloc' || op === 'calloc' || op === 'memalign') && live.length >= shape.maxLive) op = 'free';
    if ((op === 'free' || op === 'realloc') && live.length === 0) op = 'malloc';
    switch (op) {
      case 'malloc': {
        const block = { id: `b${nextId++}`, size: drawSize() };
        live.push(block);
        yield { op: 'malloc', id: block.id, size: block.size };
        break;
      }
      case 'calloc': {
        const size = drawSize();
        const nmemb = pick([1, 1, 2, 3, 4, 8, 16]);
        const block = { id: `b${nextId++}`, size: Math.max(1, Math.floor(size / nmemb)) * nmemb };
        live.push(block);
        yield { op: 'calloc', id: block.id, nmemb, size: block.size / nmemb };
        break;
      }
      case 'memalign': {
        const block = { id: `b${nextId++}`, size: drawSize() };
        live.push(block);
        yield { op: 'memalign', id: block.id, alignment: pick(shape.alignments ?? ALIGNMENTS), size: block.size };
        break;
      }
      case 'free':
        yield { op: 'free', id: takeLive().id };
        break;
      case 'realloc': {
        if (random() < 0.05) {
          // realloc(NULL, n): a new block
          const block = { id: `b${nextId++}`, size: drawSize() };
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
        const [param, value] = pick(shape.mallopts ?? MALLOPTS_ALL);
        yield { op: 'mallopt', param, value };
        break;
      }
      case 'trim':
        yield { op: 'trim', pad: pick([0, 0, 4096, 128 * KiB]) };
        break;
    }
  }
  if (shape.drain) while (live.length > 0) yield { op: 'free', id: takeLive().id };
}
