// The model's threads beyond what the oracle can show on this machine: the arena limit for another CPU count
// (--cores, 8 arenas per CPU: docs/glibc.md), M_ARENA_MAX's effect on a footprint through compare, and the
// native backend's plain refusal of threads. Agreement with glibc itself is test/differential.test.ts's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Replayer } from '../dist/replay/replayer.js';
import { readTrace } from '../dist/trace/reader.js';
import { THREAD_SHAPES, generateTrace } from '../dist/trace/generate.js';
import { TraceWriter } from '../dist/trace/writer.js';
import { NativeSystem } from '../dist/system/native.js';
import { mallocscope } from './support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-model-threads-'));
/** A trace with more threads than any arena limit here allows (threads-many: past 8 arenas per CPU). */
const many = join(dir, 'many.trace');
{
  const writer = new TraceWriter({ path: many });
  for (const call of generateTrace(THREAD_SHAPES.find((s) => s.name === 'threads-many')!, 5, 3000)) writer.write(call);
  writer.close();
}

/** The highest arenaIndex the model gives a block on `path` with `cores` CPUs, and how many arenas exist at the end. */
function arenasWith(path: string, cores: number): { highest: number; arenas: number } {
  const replayer = new Replayer({ cores, threads: true });
  const reader = readTrace(path);
  let highest = 0;
  try {
    for (let outcome = replayer.applyNext(reader); outcome; outcome = replayer.applyNext(reader)) {
      if (outcome.where === 'heap') highest = Math.max(highest, outcome.arenaIndex);
    }
  } finally {
    reader.close();
  }
  return { highest, arenas: replayer.model.arenas.length };
}

test('--cores sets the arena limit: 8 arenas per CPU (main_arena included), worked out once more than arena_test (8) exist', async () => {
  // The limit is looked at only once a 9th arena exists: with one CPU (limit 8) the process keeps those 9.
  for (const [cores, expected] of [
    [1, 9],
    [2, 16],
    [3, 24],
  ]) {
    const { highest, arenas } = arenasWith(many, cores);
    assert.is(arenas, expected, `${cores} CPUs: ${arenas} arenas`);
    assert.is(highest, expected - 1, `${cores} CPUs: the newest arena is ${highest}`);
  }
  // The command line says the same: with one CPU no block lies past arena 8.
  const run = await mallocscope(['replay', many, '--jsonl', '--cores', '1']);
  assert.is(run.status, 0, run.stderr);
  const indexes = run.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line).arenaIndex ?? 0);
  assert.is(Math.max(...indexes), 8);
  const bad = await mallocscope(['replay', many, '--cores', 'two']);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /--cores takes a CPU count from 1 to 4096, not 'two'/);
});

test('compare --set M_ARENA_MAX=1: every thread in main_arena, a smaller footprint than one arena per thread', async () => {
  const run = await mallocscope(['compare', many, '--set', 'M_ARENA_MAX=1', '--json']);
  assert.is(run.status, 0, run.stderr);
  const figures = JSON.parse(run.stdout);
  const [glibc, one] = figures.columns;
  assert.ok(one.peakFootprint < glibc.peakFootprint, `M_ARENA_MAX=1 ${one.peakFootprint} against ${glibc.peakFootprint}`);
  // One arena: all of it is the brk heap; no thread arena's heap is reserved.
  assert.is(one.syscalls.mprotect, 0);
  assert.ok(glibc.syscalls.mprotect > 0);
});

test('the native backend refuses a threaded trace at its first thread line, with MODEL_THREADS', () => {
  const system = new NativeSystem();
  try {
    const replayer = new Replayer({ system });
    const reader = readTrace(many);
    try {
      let code: string | undefined;
      try {
        while (replayer.applyNext(reader));
      } catch (error) {
        code = (error as { code?: string }).code;
      }
      assert.is(code, 'MODEL_THREADS');
    } finally {
      reader.close();
    }
  } finally {
    system.release();
  }
});

test.run();
