// The model's threads beyond what the oracle can show on this machine: the arena limit for another CPU count
// (--cores, 8 arenas per CPU: docs/glibc.md), M_ARENA_MAX's effect on a footprint through compare, and the
// native backend's arenas for that CPU count. Agreement with glibc itself is test/differential.test.ts's.
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

test('with one CPU the native backend places every block where the simulated kernel does: 9 arenas, their heaps real', () => {
  // The oracle cannot show another CPU count on this machine; the two kernels must still agree on each block.
  const outcomes = (system?: NativeSystem) => {
    const replayer = new Replayer({ cores: 1, threads: true, ...(system ? { system } : {}) });
    const reader = readTrace(many);
    const lines: string[] = [];
    try {
      for (let o = replayer.applyNext(reader); o; o = replayer.applyNext(reader))
        lines.push(`${o.seq} ${o.where} ${o.chunk} ${o.arenaIndex} ${o.heapIndex} ${o.offset}`);
    } finally {
      reader.close();
    }
    return { lines, arenas: replayer.model.arenas.length };
  };
  const system = new NativeSystem();
  try {
    const native = outcomes(system);
    const simulated = outcomes();
    assert.is(native.arenas, 9);
    assert.equal(native.lines, simulated.lines);
    // Each thread arena has at least one heap of its own, a reservation aligned to 64 MiB.
    const heaps = system.regions().reservations;
    assert.ok(heaps.length >= 8, `${heaps.length} heaps`);
    for (const [address, length] of heaps) assert.equal([address % 2 ** 26, length], [0, 2 ** 26]);
  } finally {
    system.release();
  }
});

test('Replayer.apply checks thread events made by hand before it changes anything: coded errors, never a crash', () => {
  const replayer = new Replayer({ cores: 2 });
  const base = { seq: 0, line: 1, id: '', slot: -1 } as const;
  const code = (event: object): string | undefined => {
    try {
      replayer.apply(event as never);
    } catch (error) {
      return (error as { code?: string }).code ?? `uncoded ${String(error)}`;
    }
    return undefined;
  };
  assert.is(code({ ...base, op: 'exit', thread: 1 }), 'TRACE_EXIT_MAIN');
  assert.is(code({ ...base, op: 'spawn', thread: 1, spawned: 1 }), 'TRACE_THREAD_NUMBER');
  assert.is(code({ ...base, op: 'spawn', thread: 1, spawned: undefined }), 'TRACE_THREAD_NUMBER');
  assert.is(code({ ...base, op: 'spawn', thread: 1, spawned: 2.5 }), 'TRACE_THREAD_NUMBER');
  assert.is(code({ ...base, op: 'malloc', thread: 7, slot: 0, size: 10 }), 'TRACE_THREAD_UNKNOWN');
  // Nothing changed: the main thread and main_arena are as they were, and a real spawn still works.
  assert.is(replayer.model.threads.size, 1);
  assert.is(replayer.model.main.attachedThreads, 1);
  assert.is(code({ ...base, op: 'spawn', thread: 1, spawned: 2 }), undefined);
  assert.is(code({ ...base, op: 'spawn', thread: 1, spawned: 2 }), 'TRACE_THREAD_NOT_NEW');
  assert.is(code({ ...base, op: 'malloc', thread: 2, slot: 0, size: 10 }), undefined);
  assert.is(replayer.model.thread.id, 2);
  // An event without `thread` after thread lines is the main thread's, as an untagged trace line is.
  const outcome = replayer.apply({ ...base, op: 'malloc', slot: 1, size: 10 } as never);
  assert.is(replayer.model.thread.id, 1);
  assert.is(outcome.arenaIndex, 0);
  assert.is(code({ ...base, op: 'exit', thread: 2 }), undefined);
  assert.is(code({ ...base, op: 'spawn', thread: 1, spawned: 2 }), 'TRACE_THREAD_NOT_NEW');
});

test.run();
