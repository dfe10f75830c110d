// The oracle on traces with threads (docs/design.md, "Threads"): one real pthread per trace thread, run in
// lockstep. Every expected figure below was printed by the real glibc builds (the oracle run under each, by
// hand, when this file was written), never by the code under test: the probes' tables hold what each version
// printed, and each test runs the builds this machine has (its own glibc, $MALLOCSCOPE_GLIBC_BUILDS, .glibc/),
// skipping, saying so, the versions it lacks.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtFile } from '../dist/native.js';
import { ORACLE_BINARY, oracleEnv, runOracle, type OracleEvent } from '../dist/oracle/oracle.js';
import { seededRandom } from '../dist/trace/generate.js';
import { glibcBuilds, knownVersions } from './support/glibc-builds.ts';
import { unless } from './support/skip.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(root, 'test/fixtures/oracle');
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-oracle-threads-'));
const oracleBinary = builtFile(ORACLE_BINARY);
const builds = glibcBuilds();
let files = 0;

function traceFile(text: string): string {
  const path = join(dir, `t${files++}.trace`);
  writeFileSync(path, text);
  return path;
}

/** The oracle binary under this machine's glibc: its output, or its error. */
function oracle(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(oracleBinary, args, { input, encoding: 'utf8', env: oracleEnv(), maxBuffer: 64 * 1024 * 1024 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function events(stdout: string): OracleEvent[] {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as OracleEvent);
}

/** An event as the tables below write it: "uordblks arena", then for a heap block "A+offset" or "A.H+offset". */
function figures(e: OracleEvent): string {
  let text = `${e.uordblks} ${e.arena}`;
  if (e.where === 'heap') text += ` ${e.arenaIndex}${e.heapIndex === undefined ? '' : `.${e.heapIndex}`}+${e.offset}`;
  return text;
}

// ---- the probes, as each glibc build printed them --------------------------------------------------------

/**
 * threads-probe.trace (the probe of the lockstep replay): main mallocs; threads 2..7 are spawned and malloc
 * once each; 2..7 exit; 8 and 9 come. Observed under each build: a spawn adds 288 (the new thread's DTV,
 * calloc'd by the spawner) in the spawner's arena; a thread's first malloc makes arena 1, 2, … in a new 64 MiB
 * heap (arena +135168) and puts its tcache struct there before the block (656 bytes, 768 in 2.42); each exit
 * gives the tcache struct back; spawn 8 adds nothing (a cached stack, with its DTV); 8 and 9 get the arenas
 * freed last (6, then 5), where the new tcache struct takes the freed one's place and the block comes after
 * the old thread's block, still live.
 * 2.34's heap_info is 16 bytes shorter (32, not 48), hence its offsets.
 */
/** 2.35, 2.36, 2.39, 2.41 printed the same lines. */
const probeFrom2_35 = [
  '768 135168 0+672',
  '1056 135168',
  '4080 270336 1.0+2928',
  '4368 270336',
  '7392 405504 2.0+2928',
  '7680 405504',
  '10704 540672 3.0+2928',
  '10992 540672',
  '14016 675840 4.0+2928',
  '14304 675840',
  '17328 811008 5.0+2928',
  '17616 811008',
  '20640 946176 6.0+2928',
  '19984 946176',
  '19328 946176',
  '18672 946176',
  '18016 946176',
  '17360 946176',
  '16704 946176',
  '16704 946176',
  '17472 946176 6.0+3040',
  '17472 946176',
  '18240 946176 5.0+3040',
];
const probe: Record<string, string[]> = {
  '2.34': [
    '768 135168 0+672',
    '1056 135168',
    '4064 270336 1.0+2912',
    '4352 270336',
    '7360 405504 2.0+2912',
    '7648 405504',
    '10656 540672 3.0+2912',
    '10944 540672',
    '13952 675840 4.0+2912',
    '14240 675840',
    '17248 811008 5.0+2912',
    '17536 811008',
    '20544 946176 6.0+2912',
    '19888 946176',
    '19232 946176',
    '18576 946176',
    '17920 946176',
    '17264 946176',
    '16608 946176',
    '16608 946176',
    '17376 946176 6.0+3024',
    '17376 946176',
    '18144 946176 5.0+3024',
  ],
  '2.35': probeFrom2_35,
  '2.36': probeFrom2_35,
  '2.39': probeFrom2_35,
  '2.41': probeFrom2_35,
  '2.42': [
    '880 135168 0+784',
    '1168 135168',
    '4304 270336 1.0+3040',
    '4592 270336',
    '7728 405504 2.0+3040',
    '8016 405504',
    '11152 540672 3.0+3040',
    '11440 540672',
    '14576 675840 4.0+3040',
    '14864 675840',
    '18000 811008 5.0+3040',
    '18288 811008',
    '21424 946176 6.0+3040',
    '20656 946176',
    '19888 946176',
    '19120 946176',
    '18352 946176',
    '17584 946176',
    '16816 946176',
    '16816 946176',
    '17696 946176 6.0+3152',
    '17696 946176',
    '18576 946176 5.0+3152',
  ],
};

/**
 * threads-heaps.trace: with M_MMAP_MAX 0, thread 2's 7 MB blocks fill its arena's first heap (64 MiB); the
 * tenth goes to a second heap (heapIndex 1, just after its 48-byte heap_info, 32 in 2.34); freeing it gives
 * that heap back (arena −7135232). 2.42 sets up a thread's tcache only on a small request, so x1 comes first.
 */
/** 2.35, 2.36, 2.39, 2.41 printed the same lines. */
const heapsFrom2_35 = [
  '0 0',
  '944 135168',
  '7003872 7139328 1.0+2928',
  '14003888 14139392 1.0+7002944',
  '21003904 21139456 1.0+14002960',
  '28003920 28139520 1.0+21002976',
  '35003936 35139584 1.0+28002992',
  '42003952 42139648 1.0+35003008',
  '49003968 49139712 1.0+42003024',
  '56003984 56139776 1.0+49003040',
  '63004000 63139840 1.0+56003056',
  '70004096 70275072 1.1+64',
  '70004208 70275072 1.0+63003072',
  '63004112 63139840',
  '63004224 63139840 1.0+63003184',
  '63004224 63139840',
  '63003568 63139840',
];
const heaps: Record<string, string[]> = {
  '2.34': [
    '0 0',
    '944 135168',
    '7003856 7139328 1.0+2912',
    '14003872 14139392 1.0+7002928',
    '21003888 21139456 1.0+14002944',
    '28003904 28139520 1.0+21002960',
    '35003920 35139584 1.0+28002976',
    '42003936 42139648 1.0+35002992',
    '49003952 49139712 1.0+42003008',
    '56003968 56139776 1.0+49003024',
    '63003984 63139840 1.0+56003040',
    '70004064 70275072 1.1+48',
    '70004176 70275072 1.0+63003056',
    '63004096 63139840',
    '63004208 63139840 1.0+63003168',
    '63004208 63139840',
    '63003552 63139840',
  ],
  '2.35': heapsFrom2_35,
  '2.36': heapsFrom2_35,
  '2.39': heapsFrom2_35,
  '2.41': heapsFrom2_35,
  '2.42': [
    '0 0',
    '1056 135168',
    '7003328 7270400 1.0+2272',
    '14003344 14139392 1.0+7002288',
    '21003360 21139456 1.0+14002304',
    '28003376 28139520 1.0+21002320',
    '35003392 35139584 1.0+28002336',
    '42003408 42139648 1.0+35002352',
    '49003424 49139712 1.0+42002368',
    '56003440 56139776 1.0+49002384',
    '63003456 63139840 1.0+56002400',
    '70003552 70275072 1.1+64',
    '70004432 70275072 1.0+63003184',
    '63004336 63139840',
    '63004448 63139840 1.0+63003296',
    '63004448 63139840',
    '63003680 63139840',
  ],
};

/**
 * threads-arena-max.trace: with M_ARENA_MAX 1 every thread allocates in the main arena, its tcache struct too:
 * a spawn adds the DTV (288), a thread's first malloc its tcache struct and the block, thread 3's exit takes the
 * tcache struct back, and thread 2's free of its block goes to its tcache (still in use for mallinfo2).
 */
/** 2.34, 2.35, 2.36, 2.39, 2.41 printed the same lines. */
const arenaMaxFrom2_34 = ['0 0', '944 135168', '1712 135168 0+1616', '2000 135168', '2768 135168 0+2672', '2112 135168', '2112 135168'];
const arenaMax: Record<string, string[]> = {
  '2.34': arenaMaxFrom2_34,
  '2.35': arenaMaxFrom2_34,
  '2.36': arenaMaxFrom2_34,
  '2.39': arenaMaxFrom2_34,
  '2.41': arenaMaxFrom2_34,
  '2.42': ['0 0', '1056 135168', '1936 135168 0+1840', '2224 135168', '3104 135168 0+3008', '2336 135168', '2336 135168'],
};

test('the probe tables cover every version the model knows', () => {
  for (const table of [probe, heaps, arenaMax]) assert.equal(Object.keys(table), [...knownVersions]);
});

for (const version of knownVersions) {
  const build = builds.get(version);
  const withBuild = unless(test, build ? undefined : `no glibc ${version} build here (see test/support/glibc-builds.ts)`);
  withBuild(`glibc ${version}: the threads probe, line by line (spawn +288, an arena per thread, exit -tcache, reuse)`, async () => {
    const out = await runOracle(join(fixtures, 'threads-probe.trace'), { stats: true, libc: build?.libc });
    assert.equal(out.map(figures), probe[version]);
    assert.equal(
      out.map((e) => `${e.op}@${e.thread}`),
      [
        'malloc@1',
        'spawn@1',
        'malloc@2',
        'spawn@1',
        'malloc@3',
        'spawn@1',
        'malloc@4',
        'spawn@1',
        'malloc@5',
        'spawn@1',
        'malloc@6',
        'spawn@1',
        'malloc@7',
      ].concat(['exit@2', 'exit@3', 'exit@4', 'exit@5', 'exit@6', 'exit@7', 'spawn@1', 'malloc@8', 'spawn@1', 'malloc@9']),
    );
  });
  withBuild(`glibc ${version}: a thread arena's second heap (heapIndex 1), given back on free`, async () => {
    const out = await runOracle(join(fixtures, 'threads-heaps.trace'), { stats: true, libc: build?.libc });
    assert.equal(out.map(figures), heaps[version]);
  });
  withBuild(`glibc ${version}: M_ARENA_MAX 1 keeps every thread in the main arena`, async () => {
    const out = await runOracle(join(fixtures, 'threads-arena-max.trace'), { stats: true, libc: build?.libc });
    assert.equal(out.map(figures), arenaMax[version]);
    assert.equal(
      out.map((e) => `${e.op}@${e.thread}`),
      ['mallopt@1', 'spawn@1', 'malloc@2', 'spawn@1', 'malloc@3', 'exit@3', 'free@2'],
    );
  });
}

// ---- the JSON lines of a trace with threads --------------------------------------------------------------

test('a trace with threads: every line has thread; heap blocks arenaIndex, and heapIndex in a thread arena', () => {
  const path = traceFile('malloc m 100\nspawn 2\n@2 malloc a 100\n@2 malloc big 1000000\n@2 spawn 3\n@3 free a\n@2 exit\nmallopt M_ARENA_TEST 2\n');
  const run = oracle(['--stats', path]);
  assert.is(run.stderr, '');
  assert.is(run.status, 0);
  const lines = run.stdout.trimEnd().split('\n');
  const stats = ['arena', 'hblks', 'hblkhd', 'uordblks', 'fordblks', 'keepcost'];
  // Keys in this order, written as JSON.stringify writes them; offset comes after the heap it is measured in.
  assert.equal(
    lines.map((line) => Object.keys(JSON.parse(line))),
    [
      ['seq', 'op', 'id', 'thread', 'where', 'chunk', 'arenaIndex', 'offset', ...stats],
      ['seq', 'op', 'id', 'thread', ...stats],
      ['seq', 'op', 'id', 'thread', 'where', 'chunk', 'arenaIndex', 'heapIndex', 'offset', ...stats],
      ['seq', 'op', 'id', 'thread', 'where', 'chunk', ...stats],
      ['seq', 'op', 'id', 'thread', ...stats],
      ['seq', 'op', 'id', 'thread', ...stats],
      ['seq', 'op', 'id', 'thread', ...stats],
      ['seq', 'op', 'id', 'thread', ...stats],
    ],
  );
  for (const line of lines) assert.is(JSON.stringify(JSON.parse(line)), line);
  const out = events(run.stdout);
  // spawn and exit name no ID (as mallopt and trim); the line's thread is the one that spawned or exited.
  assert.equal(
    out.map((e) => [e.op, e.id, e.thread, e.arenaIndex, e.heapIndex]),
    [
      ['malloc', 'm', 1, 0, undefined],
      ['spawn', '', 1, undefined, undefined],
      ['malloc', 'a', 2, 1, 0],
      ['malloc', 'big', 2, undefined, undefined], // mmapped: no arena
      ['spawn', '', 2, undefined, undefined],
      ['free', 'a', 3, undefined, undefined],
      ['exit', '', 2, undefined, undefined],
      ['mallopt', '', 1, undefined, undefined],
    ],
  );
  // The main arena's offsets are from the program break as always.
  assert.is(out[0].offset, events(oracle([traceFile('malloc m 100\n')]).stdout)[0].offset);
});

test('threads are decided from the whole trace: a tag on its last line gives every line its thread', () => {
  const plain = 'malloc a 100\ncalloc b 2 50\nfree a\n';
  const without = events(oracle([traceFile(plain)]).stdout);
  assert.ok(without.every((e) => !('thread' in e) && !('arenaIndex' in e)));
  for (const last of ['@1 malloc c 1\n', 'spawn 2\n', '  # a comment\nspawn\t2\n']) {
    const withThreads = events(oracle([traceFile(plain + last)]).stdout).slice(0, 3);
    assert.equal(
      withThreads,
      without.map((e) => ({
        seq: e.seq,
        op: e.op,
        id: e.id,
        thread: 1,
        ...(e.where ? { where: e.where, chunk: e.chunk, arenaIndex: 0, offset: e.offset } : {}),
      })),
      last,
    );
  }
  // The look ahead stops at a binary byte (the trace ends there in an error anyway): a tag after it does not
  // count, one before it does.
  const binary = oracle([traceFile('malloc a 1\n\u0001\n@2 malloc b 1\n')]);
  assert.equal(events(binary.stdout), [{ seq: 0, op: 'malloc', id: 'a', where: 'heap', chunk: 32, offset: without[0].offset }]);
  assert.match(binary.stderr, /:2: binary data \(byte 0x01 at column 1\); a trace is text \[TRACE_BINARY\]\n$/);
  assert.equal(
    events(oracle([traceFile('malloc a 1\nspawn 2\n\u0001\n')]).stdout).map((e) => e.thread),
    [1, 1],
  );
  // Words that only look like it do not count: a comment, an ID, a later field.
  for (const text of ['# spawn 2\nmalloc a 1\n', 'malloc spawn 1\nfree spawn\n', 'malloc @2 1\n', 'malloc exit 1\n']) {
    assert.ok(
      events(oracle([traceFile(text)]).stdout).every((e) => !('thread' in e)),
      text,
    );
  }
});

// ---- lockstep: the same trace, the same lines ------------------------------------------------------------

/** Random calls by up to 10 live threads at a time that spawn (also from spawned threads), exit, and free and
 * realloc each other's blocks. */
function threadedTrace(events: number, seed: number): string {
  const next = seededRandom(seed);
  const pick = <T>(list: T[]) => list[Math.floor(next() * list.length)];
  const threads = [1];
  const live: string[] = [];
  const lines: string[] = [];
  let made = 0;
  let newest = 1;
  for (let i = 0; i < events; i++) {
    const r = next();
    const t = pick(threads);
    if (r < 0.02 && threads.length < 10) {
      threads.push(++newest);
      lines.push(`@${t} spawn ${newest}`);
    } else if (r < 0.035 && threads.length > 1) {
      const k = 1 + Math.floor(next() * (threads.length - 1));
      lines.push(`@${threads[k]} exit`);
      threads.splice(k, 1);
    } else if (live.length > 0 && r < 0.45) {
      const k = Math.floor(next() * live.length);
      lines.push(`@${t} free ${live[k]}`);
      live.splice(k, 1);
    } else if (live.length > 0 && r < 0.52) {
      lines.push(`@${t} realloc ${pick(live)} ${1 + Math.floor(next() * 6000)}`);
    } else {
      const id = `b${made++}`;
      live.push(id);
      lines.push(`@${t} malloc ${id} ${pick([16, 24, 100, 500, 1040, 5000, 70000, 200000])}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

test('lockstep: a random threaded trace gives the same lines on every run, from a file or a pipe', async () => {
  const text = threadedTrace(4000, 20251);
  const path = traceFile(text);
  const run = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile(oracleBinary, args, { encoding: 'utf8', env: oracleEnv(), maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}: ${stderr}`)) : resolve(stdout),
      );
    });
  const [first, second] = await Promise.all([run(['--stats', path]), run(['--stats', path])]);
  assert.is(first.split('\n').length - 1, 4000);
  assert.ok(first === second, 'two runs of the same trace differ');
  assert.ok(oracle(['--stats', '-'], text).stdout === first, 'the trace read from a pipe gives other lines');
  const out = events(first);
  assert.ok(new Set(out.map((e) => e.thread)).size > 20, 'the trace should have many threads');
  assert.ok(out.some((e) => (e.arenaIndex ?? 0) > 1));
});

test.run();
