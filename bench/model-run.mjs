// One model replay in this process, timed from inside: bench/replay.ts starts it once per measurement, so
// that every run is a fresh process, as `mallocscope replay` is. Prints one JSON line on stdout.
//
//   node bench/model-run.mjs TRACE summary|stats|jsonl-stats|resident
//
// summary      what `mallocscope replay TRACE` does: Replayer + SummaryObserver, one summary at the end
// stats        the same, plus mallinfo2 after every event (what `replay --jsonl --stats` computes), no output
// jsonl-stats  the JSON Lines of `replay --jsonl --stats` built for every event, but not written
// resident     summary with the resident-pages model on (`replay --touch`: docs/resident.md)
//
// The clock starts just before the first event is read and stops just after the last one is applied:
// Node's start-up, module loading and the final print are left out, as the oracle's --time leaves out its
// own. It runs the compiled library (dist/, what bin/mallocscope.js runs), so no TypeScript loader sits in
// the process and its peak RSS is that of a real `mallocscope replay`; bench/replay.ts rebuilds dist/ first
// when src/ is newer.
import { Replayer } from '../dist/replay/replayer.js';
import { contractFields, extraFields, statsFields } from '../dist/report/jsonl.js';
import { SummaryObserver } from '../dist/report/summary.js';
import { readTrace } from '../dist/trace/reader.js';

const [path, mode = 'summary'] = process.argv.slice(2);
if (!path || !['summary', 'stats', 'jsonl-stats', 'resident'].includes(mode)) {
  process.stderr.write('usage: node bench/model-run.mjs TRACE summary|stats|jsonl-stats|resident\n');
  process.exit(2);
}

/** KiB, as getrusage reports it: Node and the modules, before the replay. */
const rssBefore = process.resourceUsage().maxRSS;
const replayer = new Replayer({ policy: 'glibc', resident: mode === 'resident' });
const summary = new SummaryObserver();
const reader = readTrace(path);
// Folded into the output so that the work cannot be optimised away.
let check = 0;

const began = process.hrtime.bigint();
if (mode === 'summary' || mode === 'resident') {
  for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
    summary.observe(outcome, replayer.model, replayer.liveBytes);
  }
} else if (mode === 'stats') {
  for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
    summary.observe(outcome, replayer.model, replayer.liveBytes);
    const info = replayer.mallinfo2();
    check += info.uordblks + info.hblks;
  }
} else {
  for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
    const line = `${contractFields(outcome)}${statsFields(replayer.mallinfo2())}${extraFields(outcome)}}`;
    check += line.length;
    summary.tracker.events++;
  }
}
const ended = process.hrtime.bigint();

const usage = process.resourceUsage();
// With --expose-gc (bench/replay.ts passes it), what the heap still holds once garbage is gone: the live
// state of the replay, as opposed to the collector's slack that peak RSS also counts.
globalThis.gc?.();
const heapAfterGc = process.memoryUsage().heapUsed;
process.stdout.write(
  `${JSON.stringify({
    mode,
    events: summary.tracker.events,
    replay_ns: Number(ended - began),
    maxrss_kib: usage.maxRSS,
    rss_before_kib: rssBefore,
    heap_after_gc_kib: Math.round(heapAfterGc / 1024),
    chunk_records: replayer.model.chunks.highWater,
    id_slots: reader.slotLimit,
    peak_live: summary.tracker.peakLive,
    peak_resident: replayer.resident?.peak ?? null,
    check,
  })}\n`,
);
