// What `mallocscope tune` minimises: one row per objective, each read from a candidate's replay and, for the
// verification, from the real glibc's mallinfo2 lines. Another objective is another row.
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
}

/** The footprint after each event as the oracle reports it (mallinfo2 with --stats), folded into one figure. */
export interface OracleFold {
  line(arena: number, hblkhd: number): void;
  value(): number;
}

export interface Objective {
  /** The name --objective takes, and the JSON key of the figure (`peakFootprint`). */
  readonly name: string;
  readonly key: 'peakFootprint' | 'endFootprint';
  /** In a sentence: "peak footprint". */
  readonly label: string;
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
        line(arena, hblkhd) {
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
        line(arena, hblkhd) {
          last = arena + hblkhd;
        },
        value: () => last,
      };
    },
  },
];

/** Objectives named but not yet measurable, and what they wait for. */
const NOT_YET: Record<string, string> = {
  rss: 'the objective rss needs the resident-memory model (what of the footprint is in RAM), which mallocscope does not have yet: use peak or end',
};

/** The objective --objective names; a usage error for any other. */
export function objectiveByName(name: string): Objective {
  const found = OBJECTIVES.find((o) => o.name === name);
  if (found) return found;
  if (NOT_YET[name]) throw new UsageError(NOT_YET[name]);
  throw new UsageError(`unknown objective '${name}' (expected ${OBJECTIVES.map((o) => o.name).join(' or ')})`);
}
