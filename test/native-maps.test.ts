// The native backend seen from the kernel's side, in /proc/self/maps: the reservation of the emulated break
// is there during a replay, the mmapped blocks appear and disappear exactly as the trace says, and after a
// replay of a million events that frees everything, release() leaves no reservation and no mapping behind.
// Also `mallocscope replay --backend native --jsonl --stats` line for line against the oracle, a threaded
// trace included.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { oracleLines } from '../dist/check/differential.js';
import { Replayer } from '../dist/replay/replayer.js';
import { walkMmapped } from '../dist/allocator/walk.js';
import { NativeSystem } from '../dist/system/native.js';
import { parseTrace } from '../dist/trace/reader.js';
import type { TraceEvent } from '../dist/trace/api.js';
import { mallocscope } from './support/cli.ts';

const asan = process.env.MALLOCSCOPE_ASAN === '1';
const root = fileURLToPath(new URL('..', import.meta.url));

interface MapsLine {
  start: number;
  end: number;
  perms: string;
}

function maps(): MapsLine[] {
  return readFileSync('/proc/self/maps', 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [range, perms] = line.split(' ');
      const [start, end] = range.split('-').map((hex) => parseInt(hex, 16));
      return { start, end, perms };
    });
}

/** Whether [start, end) is wholly covered by maps lines with these perms (adjacent VMAs may merge or split). */
function covered(lines: MapsLine[], start: number, end: number, perms?: string): boolean {
  let at = start;
  for (const line of lines) {
    if (line.end <= at || line.start > at) continue;
    if (perms && line.perms !== perms) return false;
    at = line.end;
    if (at >= end) return true;
  }
  return at >= end;
}

/** Whether any byte of [start, end) is mapped. */
function touched(lines: MapsLine[], start: number, end: number): boolean {
  return lines.some((line) => line.start < end && start < line.end);
}

test('during a replay the reservation is in maps and mmapped blocks come and go as the trace says', () => {
  const text = [
    'malloc a 100',
    'malloc big1 300000',
    'malloc big2 2000000',
    'free big1',
    'malloc big3 5000000',
    'realloc big2 9000000',
    'free big2',
    'malloc b 200',
    'free big3',
    'malloc huge 40000000',
    'free huge',
    'free a',
    'free b',
  ].join('\n');
  const system = new NativeSystem();
  const reservation = system.regions();
  const replayer = new Replayer({ system });
  let before = new Map<number, number>();
  let mmappedSeen = 0;
  for (const event of parseTrace(text)) {
    replayer.apply(event);
    const lines = maps();
    assert.ok(covered(lines, system.heapStart, system.heapLimit), 'the reservation is mapped');
    // The committed part of the break is read-write, the rest PROT_NONE.
    const [heapStart, committed] = system.regions().heap;
    assert.ok(covered(lines, heapStart, committed, 'rw-p'), 'committed heap is rw-p');
    assert.ok(covered(lines, committed, system.heapLimit, '---p'), 'the rest of the reservation is ---p');
    const now = new Map<number, number>();
    for (const chunk of walkMmapped(replayer.model.main)) now.set(chunk.address - (chunk.lead ?? 0), chunk.size + (chunk.lead ?? 0));
    for (const [start, length] of now)
      assert.ok(covered(lines, start, start + length, 'rw-p'), `${event.op} ${'id' in event ? event.id : ''}: live mapping ${start.toString(16)} is in maps`);
    for (const [start, length] of before) {
      if (now.get(start) === length) continue;
      const reused = [...now].some(([s, l]) => s < start + length && start < s + l);
      // Under scripts/native-asan.sh, ASan's allocator (preloaded, it serves all of Node's mallocs) maps
      // memory all the time and may land in the range just unmapped: there the layer's registry below speaks.
      if (!reused && !asan) assert.not.ok(touched(lines, start, start + length), `${event.op}: mapping ${start.toString(16)} is gone from maps`);
    }
    // The layer's registry says the same as the model.
    assert.equal(
      system.regions().mappings.map(([address, length]) => [address, length]),
      [...now].sort((a, b) => a[0] - b[0]),
    );
    mmappedSeen = Math.max(mmappedSeen, now.size);
    before = now;
  }
  assert.ok(mmappedSeen >= 2, 'the trace had several mappings live at once');
  system.release();
  assert.not.ok(touched(maps(), reservation.heap[0], system.heapLimit), 'the reservation is gone after release');
});

/**
 * A million events, each handed to `replay` as it is made: 500 000 allocations, half of them freed at once, a few above the
 * mmap threshold; all freed in the end. Each event carries the place the trace reader would give it (its slot:
 * a small number naming the block while it lives, reused after its free), so no trace file is written and
 * read back: the claim is the native backend's, and a million events read from a file are the reader's tests'.
 */
function millionEvents(replay: (event: TraceEvent) => void): void {
  const sizes = [16, 24, 100, 700, 4000, 30000, 200000, 1500000];
  /** The live blocks' ids and, at the same index, their slots. */
  const ids: string[] = [];
  const liveSlots: number[] = [];
  /** Slots of freed blocks, for the next mallocs. */
  const spare: number[] = [];
  let slots = 0;
  let next = 0;
  /** Events made so far: the next one's seq, and its line less one. */
  let events = 0;
  const free = (index: number) => {
    const slot = liveSlots[index];
    replay({ op: 'free', id: ids[index], seq: events, line: ++events, slot, wasLive: true });
    spare.push(slot);
  };
  // A fixed threshold keeps the large blocks mmapped all along (the sliding one would move them to the heap).
  replay({ op: 'mallopt', param: 'M_MMAP_THRESHOLD', value: 131072, seq: events, line: ++events, slot: -1, wasLive: false });
  while (events + ids.length < 999_999) {
    if (ids.length < 2000 && (next % 3 !== 2 || ids.length === 0)) {
      const id = `b${next}`;
      const size = sizes[next % 150 === 0 ? 6 + ((next / 150) % 2) : next % 6];
      const slot = spare.length > 0 ? (spare.pop() as number) : slots++;
      replay({ op: 'malloc', id, size, seq: events, line: ++events, slot, wasLive: false });
      ids.push(id);
      liveSlots.push(slot);
    } else {
      const index = (next * 31 + events) % ids.length;
      free(index);
      ids[index] = ids[ids.length - 1];
      ids.pop();
      liveSlots[index] = liveSlots[liveSlots.length - 1];
      liveSlots.pop();
    }
    next++;
  }
  for (let index = 0; index < ids.length; index++) free(index);
  // A malloc adds two events (itself and its final free), so the count stays odd: a last trim makes it even.
  replay({ op: 'trim', pad: 0, seq: events, line: ++events, slot: -1, wasLive: false });
}

test('a replay of a million events that frees everything leaves nothing behind after release', () => {
  const system = new NativeSystem();
  const replayer = new Replayer({ system });
  const handedOut = new Set<number>();
  let count = 0;
  let mmapped = 0;
  millionEvents((event) => {
    const outcome = replayer.apply(event);
    if (outcome.where === 'mmap') {
      handedOut.add(outcome.pointer - 16);
      mmapped++;
    }
    count++;
  });
  assert.is(count, 1_000_000);
  assert.ok(mmapped > 1000, `only ${mmapped} mmapped blocks`);
  assert.is(system.regions().mappings.length, 0, 'every mapping was unmapped by free');
  const base = system.heapStart;
  const limit = system.heapLimit;
  system.release();
  const lines = maps();
  assert.not.ok(touched(lines, base, limit), 'no part of the reservation is left');
  for (const start of handedOut)
    assert.not.ok(
      lines.some((line) => line.start === start),
      `mapping ${start.toString(16)} left`,
    );
  assert.ok(system.regions().released);
});

test("replay --backend native --jsonl --stats prints the oracle's lines", async () => {
  for (const trace of [
    'examples/threshold-slides.trace',
    'examples/realloc-mmapped.trace',
    'test/fixtures/real/python-json.trace',
    'test/fixtures/oracle/threads-heaps.trace',
  ]) {
    const run = await mallocscope(['replay', trace, '--backend', 'native', '--jsonl', '--stats']);
    assert.is(run.status, 0, run.stderr);
    const native = run.stdout.trim().split('\n');
    const oracle = oracleLines(join(root, trace), { stats: true });
    assert.is(native.length, oracle.length);
    for (let i = 0; i < oracle.length; i++) {
      // The replay adds the model's extra fields after the contract's: compare the contract's only.
      const expected = JSON.parse(oracle[i]);
      const got = JSON.parse(native[i]);
      for (const key of Object.keys(expected)) assert.is(got[key], expected[key], `${trace} event ${i} field ${key}`);
    }
  }
});

test("replay --backend native prints resident memory beside the model's figures", async () => {
  const run = await mallocscope(['replay', 'examples/threshold-slides.trace', '--backend', 'native']);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stdout, /heap now +\d+ .* in the model; resident \d+ .* committed/);
  assert.match(run.stdout, /mmapped now +\d+ .* in the model; resident \d+ .* mapped/);
  assert.not.match(run.stdout, /thread heaps now/, 'no thread arena, no line');
  // threads-heaps ends with one thread arena of one heap (the second went at free x10). Each block grew it to
  // the page above its end plus MINSIZE: after the headers (2256) and tcache_init's 656-byte chunk, nine
  // chunks of 7000016 bytes: round_up(2912 + 9 * 7000016 + 32, 4096) = 63004672 bytes read-write.
  const threaded = await mallocscope(['replay', 'test/fixtures/oracle/threads-heaps.trace', '--backend', 'native', '--json']);
  assert.is(threaded.status, 0, threaded.stderr);
  const { resident } = JSON.parse(threaded.stdout);
  assert.is(resident.threadHeapsCommitted, 63004672);
  assert.ok(resident.threadHeaps <= resident.threadHeapsCommitted);
});

test.run();
