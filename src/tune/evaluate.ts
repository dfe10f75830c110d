// One candidate of `mallocscope tune`: the trace replayed through the model under its GLIBC_TUNABLES, read
// from the file as it goes (memory bounded by the live blocks), gathered into TuneFigures. The workers and
// the single-thread search both run this.
import { ModelAbortError } from '../errors.ts';
import { Replayer } from '../replay/replayer.ts';
import { PeakTracker } from '../report/peaks.ts';
import { readTrace } from '../trace/reader.ts';
import type { TuneFigures } from './objectives.ts';

/** What every candidate's replay shares: the trace and the model's glibc, CPU count and threads. */
export interface EvaluationSetup {
  trace: string;
  /** The glibc version the model follows ("2.36"). */
  glibc: string;
  cores: number;
  threads: boolean;
  /** Model resident memory too (objective rss): slower by about a tenth (docs/resident.md). */
  resident?: boolean;
}

/** A candidate's result: its figures, or why the model stopped (glibc would have died in that call). */
export type Evaluation = { figures: TuneFigures } | { failed: string };

export function evaluate(setup: EvaluationSetup, tunables: string): Evaluation {
  const replayer = new Replayer({
    glibc: setup.glibc,
    cores: setup.cores,
    threads: setup.threads,
    tunables: tunables === '' ? undefined : tunables,
    resident: setup.resident,
  });
  let firstResident: number | undefined;
  const tracker = new PeakTracker();
  const reader = readTrace(setup.trace);
  try {
    for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
      tracker.observe(outcome, replayer.model, replayer.liveBytes);
      if (firstResident === undefined && replayer.resident !== null) firstResident = replayer.resident.total;
    }
  } catch (error) {
    if (error instanceof ModelAbortError) return { failed: error.message };
    throw error;
  } finally {
    reader.close();
  }
  const { failed: _failed, ...counts } = tracker.syscalls;
  const syscallCounts = { ...tracker.syscalls };
  const figures: TuneFigures = {
    peakFootprint: tracker.peakFootprint,
    endFootprint: tracker.heap + tracker.mmapped,
    syscalls: Object.values(counts).reduce((a, b) => a + b, 0),
    syscallCounts,
    events: tracker.events,
  };
  if (replayer.resident !== null) {
    figures.peakResident = replayer.resident.peak;
    figures.firstResident = firstResident ?? 0;
  }
  return { figures };
}
