// The "edges" shape: seeded random traces made of boundary values — sizes at every bin and threshold limit,
// requests past PTRDIFF_MAX and 2^64, calloc products that cross them, odd and huge alignments, every mallopt
// parameter with edge values, trims with edge pads — anywhere, the very first call included. Its values pass
// 2^53, so it yields trace lines (exact in the reader), not TraceCalls (numbers).
import { seededRandom } from './generate.ts';
import type { MalloptParam } from './api.ts';
import { formatNumber } from '../number.ts';

const KiB = 1024n;
const MiB = 1024n * KiB;
const PTRDIFF_MAX = (1n << 63n) - 1n;
const SIZE_MAX = (1n << 64n) - 1n;

/** Requests around every limit glibc's malloc tests a size against. */
// biome-ignore format: a table, one row per limit
const EDGE_SIZES: readonly bigint[] = [
  0n, 1n, 8n, 23n, 24n, 25n, 40n, 41n,
  // fastbins: the default 128-byte chunk limit (request 120) and M_MXFAST's largest (160, request 152)
  119n, 120n, 121n, 152n, 153n, 160n, 161n,
  // small bins end at chunk 1024 (request 1000..1008), the tcache at chunk 1040 (request 1032)
  1000n, 1001n, 1008n, 1009n, 1016n, 1024n, 1032n, 1033n, 1040n,
  4095n, 4096n, 4097n, 65535n, 65536n, 65537n,
  // the default mmap and trim thresholds
  128n * KiB - 24n, 128n * KiB - 8n, 128n * KiB - 1n, 128n * KiB, 128n * KiB + 1n,
  // the dynamic threshold's ceiling (32 MiB) and the heap's limits
  32n * MiB - 24n, 32n * MiB - 1n, 32n * MiB, 32n * MiB + 1n, 64n * MiB,
  (1n << 31n) - 1n, 1n << 31n, (1n << 32n) - 1n, 1n << 32n, (1n << 32n) + 1n,
  1n << 47n, (1n << 53n) - 1n, 1n << 53n, (1n << 53n) + 1n, 1n << 62n,
  // PTRDIFF_MAX and the paddings that push a request past it
  PTRDIFF_MAX - 4096n - 64n, PTRDIFF_MAX - 4096n, PTRDIFF_MAX - 64n, PTRDIFF_MAX - 33n, PTRDIFF_MAX - 32n,
  PTRDIFF_MAX - 24n, PTRDIFF_MAX - 23n, PTRDIFF_MAX - 16n, PTRDIFF_MAX - 15n, PTRDIFF_MAX - 8n, PTRDIFF_MAX - 7n,
  PTRDIFF_MAX - 1n, PTRDIFF_MAX, PTRDIFF_MAX + 1n, PTRDIFF_MAX + 2n, PTRDIFF_MAX + 24n,
  // 2^64 less a little: request2size wraps
  SIZE_MAX - 4096n, SIZE_MAX - 32n, SIZE_MAX - 24n, SIZE_MAX - 23n, SIZE_MAX - 16n, SIZE_MAX - 15n, SIZE_MAX - 8n,
  SIZE_MAX - 1n, SIZE_MAX,
];

/** calloc pairs whose product sits at, just below or just past PTRDIFF_MAX, 2^64, or small limits. */
// biome-ignore format: a table, one row per limit
const CALLOC_PAIRS: readonly (readonly [bigint, bigint])[] = [
  [0n, 0n], [0n, SIZE_MAX], [SIZE_MAX, 0n], [1n, 0n], [1n, 1n], [3n, 8n], [1n, 1032n], [2n, 516n], [1n, 1033n],
  [1n, 128n * KiB], [2n, 64n * KiB], [1n, 32n * MiB], [1n << 16n, 1n << 16n], [1n << 16n, (1n << 16n) + 1n],
  [1n << 31n, 1n << 31n], [1n << 32n, 1n << 21n], [1n << 26n, 1n << 27n],
  [1n << 31n, (1n << 32n) - 1n], [1n << 32n, (1n << 31n) - 1n], [1n << 32n, 1n << 31n], [2n, 1n << 62n],
  [2n, (1n << 62n) - 1n], [3n, (1n << 61n) + 1n], [1n, PTRDIFF_MAX], [1n, PTRDIFF_MAX + 1n], [PTRDIFF_MAX, 1n],
  [PTRDIFF_MAX + 1n, 1n], [1n << 32n, 1n << 32n], [(1n << 32n) - 1n, (1n << 32n) + 1n], [(1n << 32n) + 1n, (1n << 32n) - 1n],
  [2n, 1n << 63n], [3n, 6148914691236517205n], [3n, 6148914691236517206n], [5n, 3689348814741910323n],
  [1n, SIZE_MAX], [SIZE_MAX, 1n], [SIZE_MAX, SIZE_MAX], [1n << 33n, 1n << 31n], [(1n << 63n) + 1n, 2n],
  [1n, (1n << 53n) + 1n], [7n, (1n << 60n) + 3n],
];

/** Every power of two up to 4096, odd ones up to 4095, and huge ones (which fail with any size). */
// biome-ignore format: a table, one row per limit
const ALIGNMENTS: readonly bigint[] = [
  0n, 1n, 2n, 4n, 8n, 16n, 32n, 64n, 128n, 256n, 512n, 1024n, 2048n, 4096n,
  3n, 15n, 17n, 24n, 31n, 33n, 48n, 100n, 1000n, 2049n, 4095n,
  // past the page size the block's place depends on where the kernel put the heap or the mapping (ASLR),
  // except for requests that fail whatever the alignment
  1n << 62n, (1n << 62n) + 4096n, 1n << 63n, (1n << 63n) + 1n, SIZE_MAX,
];

const PARAMS: readonly MalloptParam[] = ['M_MMAP_THRESHOLD', 'M_TRIM_THRESHOLD', 'M_TOP_PAD', 'M_MMAP_MAX', 'M_MXFAST'];
/** mallopt takes a C int: its edges, and values at the allocator's own limits. */
// biome-ignore format: a table, one row per limit
const MALLOPT_VALUES: readonly number[] = [
  0, 1, -1, 2, 7, 8, 15, 16, 17, 24, 63, 64, 80, 120, 128, 159, 160, 161, 176, 4096, 65535, 65536,
  128 * 1024 - 1, 128 * 1024, 128 * 1024 + 1, 1024 * 1024, 32 * 1024 * 1024, 32 * 1024 * 1024 + 1,
  64 * 1024 * 1024, 2 ** 30, 2 ** 31 - 1, -2, -16, -4096, -(2 ** 31), -(2 ** 31) + 1,
];

const TRIM_PADS: readonly bigint[] = [0n, 1n, 16n, 4095n, 4096n, 128n * KiB, 32n * MiB, 1n << 32n, PTRDIFF_MAX, 1n << 63n, SIZE_MAX - 4096n, SIZE_MAX];

/** A number as the trace format writes it: decimal up to 2^53, hexadecimal above (both exact). */
const text = formatNumber;

/** The lines of an "edges" trace of `events` calls, drawn with `seed`. */
export function* generateEdgeTrace(seed: number, events: number): Generator<string> {
  const random = seededRandom(seed * 2654435761 + 0x5eed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  // Ordinary sizes between the edges, so that the heap has bins, a top and mmapped blocks to work with.
  const ordinary = (): bigint => BigInt(Math.round(Math.exp(random() * Math.log(4 * 1024 * 1024))));
  const size = (): bigint => (random() < 0.6 ? pick(EDGE_SIZES) : ordinary());
  const live: string[] = [];
  let nextId = 0;
  const take = (): string => {
    // frees in every order: newest, oldest, any
    const r = random();
    const index = r < 0.3 ? live.length - 1 : r < 0.5 ? 0 : Math.floor(random() * live.length);
    return live.splice(index, 1)[0];
  };
  for (let n = 0; n < events; n++) {
    const r = random() * 100;
    if (r < 22) {
      const id = `b${nextId++}`;
      live.push(id);
      yield `malloc ${id} ${text(size())}`;
    } else if (r < 34) {
      const id = `b${nextId++}`;
      live.push(id);
      if (random() < 0.6) {
        const [nmemb, each] = pick(CALLOC_PAIRS);
        yield `calloc ${id} ${text(nmemb)} ${text(each)}`;
      } else {
        yield `calloc ${id} ${text(BigInt(1 + Math.floor(random() * 16)))} ${text(size())}`;
      }
    } else if (r < 46) {
      const id = `b${nextId++}`;
      live.push(id);
      yield `memalign ${id} ${text(pick(ALIGNMENTS))} ${text(size())}`;
    } else if (r < 60) {
      if (live.length === 0 || random() < 0.15) {
        // realloc(NULL, n)
        const id = `b${nextId++}`;
        live.push(id);
        yield `realloc ${id} ${text(size())}`;
        // biome-ignore lint/suspicious/noDuplicateElseIf: random() draws a new number at each call
      } else if (random() < 0.15) {
        yield `realloc ${take()} 0`;
      } else {
        const bytes = size();
        // realloc(p, 0) frees p: its ID ends
        yield `realloc ${bytes === 0n ? take() : pick(live)} ${text(bytes)}`;
      }
    } else if (r < 80) {
      if (live.length > 0) {
        yield `free ${take()}`;
      } else {
        // nothing to free: realloc(NULL, 0), which is malloc(0)
        const id = `b${nextId++}`;
        live.push(id);
        yield `realloc ${id} 0`;
      }
    } else if (r < 94) {
      yield `mallopt ${pick(PARAMS)} ${pick(MALLOPT_VALUES)}`;
    } else {
      yield `trim ${text(pick(TRIM_PADS))}`;
    }
  }
}

/** The edge shape's name, as scripts/differential.ts and the tests call it. */
export const EDGES = 'edges';
