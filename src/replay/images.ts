// The model's heap images along a trace (docs/image.md): the trace replayed through the model, and after each
// event an "at" list chooses (the oracle's --image-at: SEQ, every:N, end), the core's image of main_arena's heap.
import { type ImagePlacement, type ModelHeapImage, heapImage } from '../allocator/image.ts';
import { UsageError } from '../errors.ts';
import { readTrace, traceHasThreads } from '../trace/reader.ts';
import { Replayer, type ReplayOptions } from './replayer.ts';

/** The events an image is taken after: listed seqs, every Nth seq (0, N, 2N …), and the last event. */
export interface ImageEvents {
  seqs: Set<number>;
  every: number;
  end: boolean;
}

/** Reads an "at" list as the oracle's --image-at takes it: SEQ, every:N, end, comma-separated. */
export function parseImageAt(text: string, option = '--at'): ImageEvents {
  const events: ImageEvents = { seqs: new Set(), every: 0, end: false };
  for (const item of text.split(',')) {
    const every = /^every:(\d+)$/.exec(item);
    if (item === 'end') events.end = true;
    else if (every && Number(every[1]) > 0 && Number.isSafeInteger(Number(every[1]))) {
      if (events.every !== 0 && events.every !== Number(every[1])) throw new UsageError(`${option} takes one every:N, not two, in '${text}'`);
      events.every = Number(every[1]);
    } else if (/^(\d+|0x[0-9a-fA-F]+)$/.test(item) && Number.isSafeInteger(Number(item))) events.seqs.add(Number(item));
    else throw new UsageError(`${option} takes SEQ (an event's seq, 0-based), every:N or end, comma-separated, not '${text}'`);
  }
  return events;
}

export interface ModelImagesOptions extends Omit<ReplayOptions, 'threads'>, ImagePlacement {
  /** The trace's name in errors. */
  name?: string;
}

/**
 * Replays the trace at `path` through the model and hands `take` the image after each event `at` chooses
 * (the end's only when the last event had none). Returns the number of events.
 */
export function modelImages(path: string, at: ImageEvents, options: ModelImagesOptions, take: (seq: number, image: ModelHeapImage) => void): number {
  const { base, arena, name, ...replay } = options;
  const replayer = new Replayer({ ...replay, threads: path !== '-' && traceHasThreads(path) });
  const reader = readTrace(path, name === undefined ? {} : { name });
  let events = 0;
  let last = -1;
  try {
    for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
      events++;
      const seq = outcome.seq;
      if (at.seqs.has(seq) || (at.every > 0 && seq % at.every === 0)) {
        take(seq, heapImage(replayer.model, seq, { base, arena }));
        last = seq;
      }
    }
  } finally {
    reader.close();
  }
  if (at.end && events > 0 && last !== events - 1) take(events - 1, heapImage(replayer.model, events - 1, { base, arena }));
  return events;
}
