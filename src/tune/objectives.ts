// What `mallocscope tune` minimises: one row per objective, each read from a candidate's replay and, for the
// verification, from the real glibc's lines (mallinfo2; for rss, the resident bytes of oracle --touch --rss).
// Another objective is another row.
import { UsageError } from '../errors.ts';

/** A candidate's figures from its replay through the model (footprint = mallinfo2's arena + hblkhd). */
export interface TuneFigures {
  /** The most footprint at any event. */
  peakFootprint: number;
  /** The footprint after the last event. */
  endFootprint: number;
  /** System calls made: brk, mmap, munmap, mremap, madvise and mprotect, failed ones included. */
  syscalls: number;
  syscallCounts: { brk: number; mmap: number; munmap: number; mremap: number; madvise: number; mprotect: number; failed: number };
  events: number;
  /**
   * With the resident model (objective rss, docs/resident.md): the most resident bytes after any event, and
   * those after the first event (the verification compares the growth between the two with the real glibc's).
   */
  peakResident?: number;
  firstResident?: number;
}

/** One line of the oracle: mallinfo2's arena and hblkhd, and with --rss its resident bytes. */
export interface OracleFigures {
  arena: number;
  hblkhd: number;
  rss?: number;
}

/** The footprint after each event as the oracle reports it (mallinfo2 with --stats), folded into one figure. */
export interface OracleFold {
  line(figures: OracleFigures): void;
  value(): number;
}

export interface Objective {
  /** The name --objective takes, and the JSON key of the figure (`peakFootprint`). */
  readonly name: string;
  readonly key: 'peakFootprint' | 'endFootprint' | 'peakResident';
  /** In a sentence: "peak footprint". */
  readonly label: string;
  /**
   * An estimate (rss: the model assumes the program writes every byte it asks for): the real glibc's figure is
   * reported beside it, and the verification asks only that every event agree. Otherwise the figures must be equal.
   */
  readonly estimate?: boolean;
  /** The figure from the oracle's lines, one at a time. */
  fold(): OracleFold;
}

export const OBJECTIVES: readonly Objective[] = [
  {
    name: 'peak',
    key: 'peakFootprint',
    label: 'peak footprint',
    fold() {
      let peak = 0;
      return {
        line({ arena, hblkhd }) {
          peak = Math.max(peak, arena + hblkhd);
        },
        value: () => peak,
      };
    },
  },
  {
    name: 'end',
    key: 'endFootprint',
    label: 'footprint at the end',
    fold() {
      let last = 0;
      return {
        line({ arena, hblkhd }) {
          last = arena + hblkhd;
        },
        value: () => last,
      };
    },
  },
  {
    // The real process's RSS holds pages glibc's allocator never made (its stack, libc's own data): the fold
    // gives the growth from the first event to the peak, which is what the estimate's growth is held to.
    name: 'rss',
    key: 'peakResident',
    label: 'peak resident memory (est.)',
    estimate: true,
    fold() {
      let first: number | undefined;
      let peak = 0;
      return {
        line({ rss }) {
          if (rss === undefined) return;
          first ??= rss;
          peak = Math.max(peak, rss);
        },
        value: () => (first === undefined ? 0 : peak - first),
      };
    },
  },
];

/** A candidate's figure for the objective (peakResident exists when the search modelled resident memory). */
export function objectiveFigure(figures: TuneFigures, objective: Objective): number {
  const value = figures[objective.key];
  if (value === undefined) throw new Error(`tune: the candidates were replayed without the figure ${objective.key}`);
  return value;
}

/** The objective --objective names; a usage error for any other. */
export function objectiveByName(name: string): Objective {
  const found = OBJECTIVES.find((o) => o.name === name);
  if (found) return found;
  throw new UsageError(`unknown objective '${name}' (expected ${OBJECTIVES.map((o) => o.name).join(' or ')})`);
}
