// benchmark.js on the model's replay, one suite per process (bench/replay.ts starts one for summary and
// one for --stats). Every sample is one whole replay of the trace with a fresh Replayer, so this measures
// the model warm: after the first samples the JIT has compiled the hot path, which a one-shot
// `mallocscope replay` never enjoys. bench/replay.ts reports it beside the cold, fresh-process medians.
//
//   node bench/model-benchmark.mjs TRACE summary|stats
//
// Prints one JSON line: benchmark.js's mean, relative margin of error and sample count, and the median of
// its samples, in nanoseconds.
import Benchmark from 'benchmark';
import { Replayer } from '../dist/replay/replayer.js';
import { SummaryObserver } from '../dist/report/summary.js';
import { readTrace } from '../dist/trace/reader.js';

const [path, mode = 'summary'] = process.argv.slice(2);
if (!path || !['summary', 'stats'].includes(mode)) {
  process.stderr.write('usage: node bench/model-benchmark.mjs TRACE summary|stats\n');
  process.exit(2);
}

let check = 0;
function replayOnce() {
  const replayer = new Replayer({ policy: 'glibc' });
  const summary = new SummaryObserver();
  const reader = readTrace(path);
  // The fast path, as `mallocscope replay` runs it: no event objects.
  for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
    summary.observe(outcome, replayer.model, replayer.liveBytes);
    if (mode === 'stats') check += replayer.mallinfo2().uordblks;
  }
  check += summary.tracker.events;
}

// A replay takes a few hundred milliseconds: one call per sample (benchmark.js calibrates the count to its
// minTime, which one replay exceeds), at least 8 samples, and about 5 s of sampling.
const bench = new Benchmark(`model ${mode}`, replayOnce, { minSamples: 8, maxTime: 5 });
bench.on('error', (event) => {
  process.stderr.write(`benchmark.js: ${event.target.error}\n`);
  process.exit(1);
});
bench.run();
const sample = [...bench.stats.sample].sort((a, b) => a - b);
const middle = sample.length >> 1;
const median = sample.length % 2 ? sample[middle] : (sample[middle - 1] + sample[middle]) / 2;
process.stdout.write(
  `${JSON.stringify({
    mode,
    mean_ns: bench.stats.mean * 1e9,
    median_ns: median * 1e9,
    rme_percent: bench.stats.rme,
    samples: sample.length,
    count_per_sample: bench.count,
    check,
  })}\n`,
);
