// The threaded shapes of src/trace/generate.ts: each one's trace is valid for the trace reader, shows what the
// shape is for (threads past the arena limit, a second heap, full tcaches at exit…), and replays through the
// lockstep oracle without an error under every glibc build this machine has.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runOracle, type OracleEvent } from '../dist/oracle/oracle.js';
import { SHAPES, THREAD_SHAPES, generateTrace, shapeByName } from '../dist/trace/generate.js';
import type { TraceEvent } from '../dist/trace/api.js';
import { readTrace } from '../dist/trace/reader.js';
import { formatCall } from '../dist/trace/writer.js';
import { glibcBuilds, knownVersions } from './support/glibc-builds.ts';
import { unless } from './support/skip.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-generate-threads-'));
const builds = glibcBuilds();
/** Events per trace: enough for each shape to show its point (threads-heaps' second heap needs the most). */
const EVENTS = 400;

/** What a trace does with its threads, from its events as the reader gives them. */
interface ThreadFacts {
  threads: number;
  mostAlive: number;
  exits: number;
  /** Frees and reallocs of a block another thread made. */
  crossFrees: number;
  /** Exits right after at least 7 frees by the exiting thread (a full tcache bin). */
  fullExits: number;
  /** trim calls while some thread besides the main one is alive. */
  trimsWithThreads: number;
  mallopts: string[];
}

function facts(events: TraceEvent[]): ThreadFacts {
  const maker = new Map<string, number>();
  const alive = new Set([1]);
  const result: ThreadFacts = { threads: 1, mostAlive: 1, exits: 0, crossFrees: 0, fullExits: 0, trimsWithThreads: 0, mallopts: [] };
  let freesInARow = 0;
  let lastFreer = 0;
  for (const e of events) {
    const thread = e.thread ?? 1;
    if (e.op === 'exit' && thread === lastFreer && freesInARow >= 7) result.fullExits++;
    if (e.op === 'free' && thread === lastFreer) freesInARow++;
    else freesInARow = e.op === 'free' ? 1 : 0;
    lastFreer = e.op === 'free' ? thread : 0;
    switch (e.op) {
      case 'spawn':
        alive.add(e.spawned);
        result.threads++;
        result.mostAlive = Math.max(result.mostAlive, alive.size);
        break;
      case 'exit':
        alive.delete(thread);
        result.exits++;
        break;
      case 'free':
      case 'realloc':
        if (maker.has(e.id) && maker.get(e.id) !== thread) result.crossFrees++;
        if (e.op === 'free' || e.size === 0) maker.delete(e.id);
        else if (!maker.has(e.id)) maker.set(e.id, thread);
        break;
      case 'malloc':
      case 'calloc':
      case 'memalign':
        maker.set(e.id, thread);
        break;
      case 'trim':
        if (alive.size > 1) result.trimsWithThreads++;
        break;
      case 'mallopt':
        result.mallopts.push(`${e.param} ${e.value}`);
        break;
    }
  }
  return result;
}

/** What each shape must show, in its trace and in the oracle's lines under this machine's glibc. */
const expect: Record<string, (f: ThreadFacts, out: OracleEvent[]) => void> = {
  'threads-short-lived': (f) => assert.ok(f.exits >= 5 && f.threads >= 6, `${f.exits} exits of ${f.threads} threads`),
  'threads-workers': (f, out) => {
    assert.ok(f.mostAlive >= 7 && f.crossFrees > 0);
    for (const op of ['calloc', 'memalign', 'realloc', 'trim'])
      assert.ok(
        out.some((e) => e.op === op && e.thread !== 1),
        op,
      );
  },
  'threads-cross': (f) => assert.ok(f.crossFrees >= 50, `${f.crossFrees} frees by another thread`),
  'threads-many': (f, out) => {
    // More threads alive than 8 x cores arenas can serve: the limit is reached, arenas are shared.
    const arenas = 1 + Math.max(...out.map((e) => e.arenaIndex ?? 0));
    assert.ok(f.mostAlive > 17, `${f.mostAlive} threads alive at most`);
    assert.ok(arenas > 8 && arenas <= 8 * cpus().length, `${arenas} arenas`);
  },
  'threads-arena-test': (f) => assert.ok(f.mallopts.some((m) => m.startsWith('M_ARENA_TEST')) && f.mostAlive > 5),
  'threads-huge': (_, out) => assert.ok(out.some((e) => e.where === 'mmap' && e.thread !== 1)),
  'threads-tcache-exit': (f) => assert.ok(f.fullExits >= 3, `${f.fullExits} exits with a full tcache bin`),
  'threads-trim': (f) => assert.ok(f.trimsWithThreads >= 3, `${f.trimsWithThreads} trims`),
  'threads-heaps': (_, out) =>
    assert.ok(
      out.some((e) => (e.heapIndex ?? 0) > 0),
      'no second heap',
    ),
};
for (const n of [1, 2, 3]) {
  expect[`threads-arena-max-${n}`] = (f, out) => {
    assert.equal(f.mallopts[0], `M_ARENA_MAX ${n}`);
    assert.ok(f.mostAlive > n + 2);
    assert.is(1 + Math.max(...out.map((e) => e.arenaIndex ?? 0)), n);
  };
}

test('the threaded shapes are apart from the one-thread shapes, and each is found by name', () => {
  assert.equal(Object.keys(expect).sort(), THREAD_SHAPES.map((s) => s.name).sort());
  for (const shape of THREAD_SHAPES) {
    assert.ok(shape.threads);
    assert.is(shapeByName(shape.name), shape);
    assert.not.ok(SHAPES.some((s) => s.name === shape.name || s.threads));
  }
});

test('a threaded shape gives the same trace for the same seed, and another for another seed', () => {
  const text = (seed: number) => [...generateTrace(THREAD_SHAPES[0], seed, 300)].map((c) => formatCall(c)).join('\n');
  const first = text(5);
  assert.ok(first === text(5));
  assert.ok(first !== text(6));
});

/** Each shape's trace, written once: its path and its events as the reader reads them (which validates it). */
const traces = THREAD_SHAPES.map((shape, index) => {
  const path = join(dir, `${shape.name}.trace`);
  writeFileSync(path, `${[...generateTrace(shape, 300 + index, EVENTS)].map((c) => formatCall(c)).join('\n')}\n`);
  return { shape, path };
});

for (const { shape, path } of traces) {
  test(`threaded shape ${shape.name}: valid for the reader, and the oracle replays it as the shape means`, async () => {
    const reader = readTrace(path);
    const events: TraceEvent[] = [];
    try {
      for (let e = reader.read(); e !== null; e = reader.read()) events.push(e);
    } finally {
      reader.close();
    }
    assert.ok(events.length >= EVENTS);
    const out = await runOracle(path, { stats: true });
    assert.is(out.length, events.length);
    assert.ok(out.every((e) => e.thread !== undefined));
    expect[shape.name](facts(events), out);
  });
}

// The other builds share the shapes' traces out between them, so that each trace also replays under another
// version and the file stays light (scripts/differential.ts --shape threads, run under each build with
// MALLOCSCOPE_LIBC, replays them all).
const others = knownVersions.filter((version) => builds.get(version)?.libc !== '');
for (const [k, version] of others.entries()) {
  const build = builds.get(version);
  const share = traces.filter((_, index) => index % others.length === k);
  const withBuild = unless(test, build ? undefined : `no glibc ${version} build here (see test/support/glibc-builds.ts)`);
  withBuild(`glibc ${version}: the oracle replays the traces of ${share.map((t) => t.shape.name).join(', ')}`, async () => {
    for (const { path } of share) {
      const out = await runOracle(path, { stats: true, libc: build?.libc });
      assert.ok(out.length >= EVENTS, path);
    }
  });
}

test.run();
