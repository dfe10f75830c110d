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
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtFile } from '../dist/native.js';
import { ORACLE_BINARY, oracleCommand, oracleEnv, runOracle, spawnWithoutFork, type OracleEvent } from '../dist/oracle/oracle.js';
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

/**
 * The oracle binary under this machine's glibc: its output, or its error. Without input, started as
 * runOracleSync starts it (spawnWithoutFork, stdin /dev/null: spawnSync's fork costs twice as much).
 */
function oracle(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  if (input === undefined) {
    const run = spawnWithoutFork(oracleBinary, args, oracleEnv());
    if (run.error) throw run.error;
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  }
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
  const buildTest = unless(test, build ? undefined : `no glibc ${version} build here (see test/support/glibc-builds.ts)`);
  buildTest(`glibc ${version}: the threads probe, line by line (spawn +288, an arena per thread, exit -tcache, reuse)`, async () => {
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
  buildTest(`glibc ${version}: a thread arena's second heap (heapIndex 1), given back on free`, async () => {
    const out = await runOracle(join(fixtures, 'threads-heaps.trace'), { stats: true, libc: build?.libc });
    assert.equal(out.map(figures), heaps[version]);
  });
  buildTest(`glibc ${version}: M_ARENA_MAX 1 keeps every thread in the main arena`, async () => {
    const out = await runOracle(join(fixtures, 'threads-arena-max.trace'), { stats: true, libc: build?.libc });
    assert.equal(out.map(figures), arenaMax[version]);
    assert.equal(
      out.map((e) => `${e.op}@${e.thread}`),
      ['mallopt@1', 'spawn@1', 'malloc@2', 'spawn@1', 'malloc@3', 'exit@3', 'free@2'],
    );
  });
}

// ---- what pthread_create and a thread's end do through malloc (docs/glibc.md, "Threads and arenas") ----

/**
 * The oracle's events for a fixture under a build, with 8 MiB thread stacks (`ulimit -s 8192`) whatever this
 * shell's limit: glibc takes its default stack size from it, and so how many stacks its 40 MiB cache keeps.
 */
function oracleWith8MiBStacks(fixture: string, libc: string | undefined, wrap: string[] = []): OracleEvent[] {
  const command = oracleCommand(join(fixtures, fixture), { stats: true, libc });
  const run = spawnSync('/bin/sh', ['-c', 'ulimit -s 8192 && exec "$@"', 'sh', ...wrap, command.file, ...command.args], {
    env: command.env,
    encoding: 'utf8',
  });
  assert.is(run.stderr, '');
  assert.is(run.status, 0);
  return events(run.stdout);
}

/** The change of uordblks each line made. */
function deltas(out: OracleEvent[]): number[] {
  return out.map((e, i) => (e.uordblks ?? 0) - (i === 0 ? 0 : (out[i - 1].uordblks ?? 0)));
}

/**
 * threads-spawn.trace: a spawn calloc's the new thread's DTV (chunk 288) in the spawner's arena, through the
 * spawner's tcache from 2.41 (p's freed chunk at 784 becomes thread 2's DTV, so q comes from the top) and
 * around it before (q takes p's chunk back). Idle threads' exits free nothing; the joiner caches each stack
 * (8 MiB + a guard page), at most 40 MiB of them: the fifth exit drops the oldest (thread 2's) and the sixth
 * thread 3's, each DTV freed by the joiner, the main thread, into its tcache (r and s take them back, newest
 * first). Spawns 8 to 11 reuse the four cached stacks with their DTVs (+0); spawn 12 calloc's a new one.
 */
/** 2.34, 2.35, 2.36 and 2.39 printed the same lines. */
const spawnFrom2_34 = [
  '768 135168 0+672',
  '1056 135168 0+784',
  '1056 135168',
  '1344 135168',
  '1344 135168 0+784',
  '1632 135168',
  '1920 135168',
  '2208 135168',
  '2496 135168',
  '2784 135168',
  '2784 135168',
  '2784 135168',
  '2784 135168',
  '2784 135168',
  '2784 135168',
  '2784 135168',
  '2784 135168 0+1360',
  '2784 135168 0+1072',
  '3072 135168 0+2800',
  '3072 135168',
  '3072 135168',
  '3072 135168',
  '3072 135168',
  '3360 135168',
  '3648 135168 0+3376',
];
const spawn: Record<string, string[]> = {
  '2.34': spawnFrom2_34,
  '2.35': spawnFrom2_34,
  '2.36': spawnFrom2_34,
  '2.39': spawnFrom2_34,
  '2.41': [
    '768 135168 0+672',
    '1056 135168 0+784',
    '1056 135168',
    '1056 135168',
    '1344 135168 0+1072',
    '1632 135168',
    '1920 135168',
    '2208 135168',
    '2496 135168',
    '2784 135168',
    '2784 135168',
    '2784 135168',
    '2784 135168',
    '2784 135168',
    '2784 135168',
    '2784 135168',
    '2784 135168 0+1360',
    '2784 135168 0+784',
    '3072 135168 0+2800',
    '3072 135168',
    '3072 135168',
    '3072 135168',
    '3072 135168',
    '3360 135168',
    '3648 135168 0+3376',
  ],
  '2.42': [
    '880 135168 0+784',
    '1168 135168 0+896',
    '1168 135168',
    '1168 135168',
    '1456 135168 0+1184',
    '1744 135168',
    '2032 135168',
    '2320 135168',
    '2608 135168',
    '2896 135168',
    '2896 135168',
    '2896 135168',
    '2896 135168',
    '2896 135168',
    '2896 135168',
    '2896 135168',
    '2896 135168 0+1472',
    '2896 135168 0+896',
    '3184 135168 0+2912',
    '3184 135168',
    '3184 135168',
    '3184 135168',
    '3184 135168',
    '3472 135168',
    '3760 135168 0+3488',
  ],
};
/**
 * threads-exit.trace: thread 2's exit frees its tcache entries into each chunk's own arena (m1 and m2 back to
 * the main arena, where x and y find them; a and c to arena 1), then the tcache struct (656 bytes, 768 in
 * 2.42): 1136 bytes in all. Thread 3, spawned by thread 2, had its DTV put in arena 1 (the spawner's); its first
 * call takes the freed arena 1 and finds the freed struct, a and c there.
 */
/** 2.35, 2.36, 2.39 and 2.41 printed the same lines. */
const exitProbeFrom2_35 = [
  '688 135168 0+672',
  '896 135168 0+704',
  '1184 135168',
  '4128 270336 1.0+2928',
  '4160 270336 1.0+2960',
  '4368 270336 1.0+2992',
  '4576 270336 1.0+3200',
  '4864 270336',
  '4864 270336',
  '4864 270336',
  '4864 270336',
  '4864 270336',
  '3728 270336',
  '3760 270336 0+672',
  '3968 270336 0+704',
  '4656 270336 1.0+2928',
  '4864 270336 1.0+2992',
  '4896 270336 1.0+3696',
];
const exitProbe: Record<string, string[]> = {
  '2.34': [
    '688 135168 0+672',
    '896 135168 0+704',
    '1184 135168',
    '4112 270336 1.0+2912',
    '4144 270336 1.0+2944',
    '4352 270336 1.0+2976',
    '4560 270336 1.0+3184',
    '4848 270336',
    '4848 270336',
    '4848 270336',
    '4848 270336',
    '4848 270336',
    '3712 270336',
    '3744 270336 0+672',
    '3952 270336 0+704',
    '4640 270336 1.0+2912',
    '4848 270336 1.0+2976',
    '4880 270336 1.0+3680',
  ],
  '2.35': exitProbeFrom2_35,
  '2.36': exitProbeFrom2_35,
  '2.39': exitProbeFrom2_35,
  '2.41': exitProbeFrom2_35,
  '2.42': [
    '800 135168 0+784',
    '1008 135168 0+816',
    '1296 135168',
    '4352 270336 1.0+3040',
    '4384 270336 1.0+3072',
    '4592 270336 1.0+3104',
    '4800 270336 1.0+3312',
    '5088 270336',
    '5088 270336',
    '5088 270336',
    '5088 270336',
    '5088 270336',
    '3840 270336',
    '3872 270336 0+784',
    '4080 270336 0+816',
    '4880 270336 1.0+3040',
    '5088 270336 1.0+3104',
    '5120 270336 1.0+3808',
  ],
};
/**
 * threads-exit-tcache.trace: thread 2 exits with 7 chunks of 32 bytes in its tcache (x8 went to the fastbin)
 * and 3 of 208: they are freed bin by bin, each bin head first (x7 … x1 pushed onto x8 in the fastbin), then the
 * struct. Thread 3 takes arena 1: z1 is x1, the fastbin's head, and the rest of the fastbin moves to its tcache
 * (x8 last, so z2 is x8); t1 is s3 from the small bin, whose other chunks move to the tcache (t2 is s1).
 */
/** 2.35, 2.36, 2.39 and 2.41 printed the same lines. */
const exitTcacheFrom2_35 = [
  '944 135168',
  '3888 270336 1.0+2928',
  '3920 270336 1.0+2960',
  '3952 270336 1.0+2992',
  '3984 270336 1.0+3024',
  '4016 270336 1.0+3056',
  '4048 270336 1.0+3088',
  '4080 270336 1.0+3120',
  '4112 270336 1.0+3152',
  '4320 270336 1.0+3184',
  '4352 270336 1.0+3392',
  '4560 270336 1.0+3424',
  '4592 270336 1.0+3632',
  '4800 270336 1.0+3664',
  '4832 270336 1.0+3872',
  '4832 270336',
  '4832 270336',
  '4832 270336',
  '4832 270336',
  '4832 270336',
  '4832 270336',
  '4832 270336',
  '4800 270336',
  '4800 270336',
  '4800 270336',
  '4800 270336',
  '3296 270336',
  '3296 270336',
  '4208 270336 1.0+2928',
  '4208 270336 1.0+3152',
  '4832 270336 1.0+3664',
  '4832 270336 1.0+3184',
];
const exitTcache: Record<string, string[]> = {
  '2.34': [
    '944 135168',
    '3872 270336 1.0+2912',
    '3904 270336 1.0+2944',
    '3936 270336 1.0+2976',
    '3968 270336 1.0+3008',
    '4000 270336 1.0+3040',
    '4032 270336 1.0+3072',
    '4064 270336 1.0+3104',
    '4096 270336 1.0+3136',
    '4304 270336 1.0+3168',
    '4336 270336 1.0+3376',
    '4544 270336 1.0+3408',
    '4576 270336 1.0+3616',
    '4784 270336 1.0+3648',
    '4816 270336 1.0+3856',
    '4816 270336',
    '4816 270336',
    '4816 270336',
    '4816 270336',
    '4816 270336',
    '4816 270336',
    '4816 270336',
    '4784 270336',
    '4784 270336',
    '4784 270336',
    '4784 270336',
    '3280 270336',
    '3280 270336',
    '4192 270336 1.0+2912',
    '4192 270336 1.0+3136',
    '4816 270336 1.0+3648',
    '4816 270336 1.0+3168',
  ],
  '2.35': exitTcacheFrom2_35,
  '2.36': exitTcacheFrom2_35,
  '2.39': exitTcacheFrom2_35,
  '2.41': exitTcacheFrom2_35,
  '2.42': [
    '1056 135168',
    '4112 270336 1.0+3040',
    '4144 270336 1.0+3072',
    '4176 270336 1.0+3104',
    '4208 270336 1.0+3136',
    '4240 270336 1.0+3168',
    '4272 270336 1.0+3200',
    '4304 270336 1.0+3232',
    '4336 270336 1.0+3264',
    '4544 270336 1.0+3296',
    '4576 270336 1.0+3504',
    '4784 270336 1.0+3536',
    '4816 270336 1.0+3744',
    '5024 270336 1.0+3776',
    '5056 270336 1.0+3984',
    '5056 270336',
    '5056 270336',
    '5056 270336',
    '5056 270336',
    '5056 270336',
    '5056 270336',
    '5056 270336',
    '5024 270336',
    '5024 270336',
    '5024 270336',
    '5024 270336',
    '3408 270336',
    '3408 270336',
    '4432 270336 1.0+3040',
    '4432 270336 1.0+3264',
    '5056 270336 1.0+3776',
    '5056 270336 1.0+3296',
  ],
};
/**
 * threads-trim.trace: with M_MMAP_THRESHOLD 1 MiB, a thread arena grows by just what a request needs (no
 * top_pad); the free of a block merged into its top runs heap_trim, which shrinks the heap only when the top
 * reaches the trim threshold, and then keeps top_pad (free b: arena 1 from 303104 to 135168 bytes). malloc_trim
 * (trim 0, from thread 2) shrinks the main arena only (135168 to 4096); thread heaps are never shrunk by it.
 */
/** 2.35, 2.36, 2.39 and 2.41 printed the same lines. */
const trimFrom2_35 = [
  '0 0',
  '0 0',
  '944 135168',
  '303872 438272 1.0+2928',
  '3856 438272',
  '3856 307200',
  '3856 307200',
  '303872 307200 1.0+2928',
  '3856 139264',
  '303872 307200 1.0+2928',
  '603888 610304 1.0+302944',
  '303872 610304',
  '3856 139264',
];
const trim: Record<string, string[]> = {
  '2.34': [
    '0 0',
    '0 0',
    '944 135168',
    '303856 438272 1.0+2912',
    '3840 438272',
    '3840 307200',
    '3840 307200',
    '303856 307200 1.0+2912',
    '3840 139264',
    '303856 307200 1.0+2912',
    '603872 610304 1.0+302928',
    '303856 610304',
    '3840 139264',
  ],
  '2.35': trimFrom2_35,
  '2.36': trimFrom2_35,
  '2.39': trimFrom2_35,
  '2.41': trimFrom2_35,
  '2.42': [
    '0 0',
    '0 0',
    '1056 135168',
    '303328 569344 1.0+2272',
    '3312 569344',
    '3312 438272',
    '3312 438272',
    '303328 438272 1.0+2272',
    '3312 139264',
    '303328 307200 1.0+2272',
    '603344 610304 1.0+302288',
    '303328 610304',
    '3312 139264',
  ],
};
/**
 * threads-arena-max-late.trace: four threads make arenas 1-4 (no limit yet: at most arena_test arenas); M_ARENA_MAX
 * 2, set then, is read at thread 6's first call, which reuses the main arena (round robin from it), thread 7 the
 * newest arena (4), and thread 8 the next (3): the later M_ARENA_MAX 10 changes nothing, the limit is kept.
 */
/** 2.35, 2.36, 2.39 and 2.41 printed the same lines. */
const arenaMaxLateFrom2_35 = [
  '944 135168',
  '3968 270336 1.0+2928',
  '4256 270336',
  '7280 405504 2.0+2928',
  '7568 405504',
  '10592 540672 3.0+2928',
  '10880 540672',
  '13904 675840 4.0+2928',
  '13904 675840',
  '14192 675840',
  '14960 675840 0+2768',
  '15248 675840',
  '16016 675840 4.0+3696',
  '16016 675840',
  '16304 675840',
  '17072 675840 3.0+3696',
];
const arenaMaxLate: Record<string, string[]> = {
  '2.34': [
    '944 135168',
    '3952 270336 1.0+2912',
    '4240 270336',
    '7248 405504 2.0+2912',
    '7536 405504',
    '10544 540672 3.0+2912',
    '10832 540672',
    '13840 675840 4.0+2912',
    '13840 675840',
    '14128 675840',
    '14896 675840 0+2768',
    '15184 675840',
    '15952 675840 4.0+3680',
    '15952 675840',
    '16240 675840',
    '17008 675840 3.0+3680',
  ],
  '2.35': arenaMaxLateFrom2_35,
  '2.36': arenaMaxLateFrom2_35,
  '2.39': arenaMaxLateFrom2_35,
  '2.41': arenaMaxLateFrom2_35,
  '2.42': [
    '1056 135168',
    '4192 270336 1.0+3040',
    '4480 270336',
    '7616 405504 2.0+3040',
    '7904 405504',
    '11040 540672 3.0+3040',
    '11328 540672',
    '14464 675840 4.0+3040',
    '14464 675840',
    '14752 675840',
    '15632 675840 0+2992',
    '15920 675840',
    '16800 675840 4.0+3920',
    '16800 675840',
    '17088 675840',
    '17968 675840 3.0+3920',
  ],
};
/** The tcache_perthread_struct's chunk: 656 bytes, 768 in 2.42 (76 bins). */
const tcacheStruct = (version: string) => (version === '2.42' ? 768 : 656);

test('the tables of the spawn and exit probes cover every version the model knows', () => {
  for (const table of [spawn, exitProbe, exitTcache, trim, arenaMaxLate]) assert.equal(Object.keys(table), [...knownVersions]);
});

/** Each malloc line's thread and arena, as "thread:arena". */
const arenasOf = (out: OracleEvent[]) => out.filter((e) => e.op === 'malloc').map((e) => `${e.thread}:${e.arenaIndex}`);
const twoCpus = cpus().length === 2 ? undefined : `the arena probes are written for 2 CPUs (8 x 2 = 16 arenas); this machine has ${cpus().length}`;

for (const version of knownVersions) {
  const build = builds.get(version);
  const buildTest = unless(test, build ? undefined : `no glibc ${version} build here (see test/support/glibc-builds.ts)`);
  const twoCpuBuildTest = unless(test, build ? twoCpus : `no glibc ${version} build here (see test/support/glibc-builds.ts)`);
  buildTest(`glibc ${version}: spawn calloc's a 288-byte DTV in the spawner's arena; 4 cached stacks, the oldest's DTV freed by the joiner`, () => {
    const out = oracleWith8MiBStacks('threads-spawn.trace', build?.libc);
    assert.equal(out.map(figures), spawn[version]);
  });
  buildTest(`glibc ${version}: exit frees the tcache entries into their own arenas, then the tcache struct`, () => {
    const out = oracleWith8MiBStacks('threads-exit.trace', build?.libc);
    assert.equal(out.map(figures), exitProbe[version]);
    assert.is(deltas(out)[12], -(tcacheStruct(version) + 32 + 32 + 208 + 208));
  });
  buildTest(`glibc ${version}: an exit with a full tcache bin, and the next thread in the freed arena`, () => {
    const out = oracleWith8MiBStacks('threads-exit-tcache.trace', build?.libc);
    assert.equal(out.map(figures), exitTcache[version]);
    assert.is(deltas(out)[26], -(tcacheStruct(version) + 7 * 32 + 3 * 208));
  });
  buildTest(`glibc ${version}: thread heaps shrink at free above the trim threshold; malloc_trim shrinks only the main arena`, () => {
    assert.equal(oracleWith8MiBStacks('threads-trim.trace', build?.libc).map(figures), trim[version]);
  });
  buildTest(`glibc ${version}: M_ARENA_MAX set late applies from the next thread's first call, and only once`, () => {
    const out = oracleWith8MiBStacks('threads-arena-max-late.trace', build?.libc);
    assert.equal(out.map(figures), arenaMaxLate[version]);
    assert.equal(arenasOf(out), ['2:1', '3:2', '4:3', '5:4', '6:0', '7:4', '8:3']);
  });
  twoCpuBuildTest(`glibc ${version}: 16 arenas (8 x 2 online CPUs) past arena_test, then round robin from the main arena; a freed arena first`, () => {
    const out = oracleWith8MiBStacks('threads-arena-limit.trace', build?.libc);
    const made = Array.from({ length: 15 }, (_, k) => `${k + 2}:${k + 1}`);
    const expected = ['1:0', ...made, '17:0', '18:15', '19:14', '20:13', '21:15', '22:12', '23:11'];
    assert.equal(arenasOf(out), expected);
    const d = deltas(out);
    const struct = tcacheStruct(version);
    // Each spawn calloc'd a DTV, but for 21 to 23, which reused the three stacks cached at the exits; each exit gave a tcache struct back.
    assert.equal(out.map((e, i) => (e.op === 'spawn' || e.op === 'exit' ? `${e.op}@${e.thread} ${d[i]}` : '')).filter(Boolean), [
      ...Array.from({ length: 19 }, () => 'spawn@1 288'),
      `exit@17 ${-struct}`,
      `exit@18 ${-struct}`,
      `exit@16 ${-struct}`,
      'spawn@1 0',
      'spawn@1 0',
      'spawn@1 0',
    ]);
    // A thread's first call in a reused arena puts its tcache struct there too: 17's in the main arena.
    assert.is(d[32], struct + 112);
    // glibc counts the online CPUs, not those the process may run on: one CPU allowed changes nothing.
    if (spawnSync('taskset', ['-c', '0', 'true']).status === 0)
      assert.equal(arenasOf(oracleWith8MiBStacks('threads-arena-limit.trace', build?.libc, ['taskset', '-c', '0'])), expected);
  });
  twoCpuBuildTest(`glibc ${version}: M_ARENA_TEST 20 lets 21 arenas be made before the limit of 16 applies`, () => {
    const out = oracleWith8MiBStacks('threads-arena-test.trace', build?.libc);
    assert.equal(arenasOf(out), [...Array.from({ length: 20 }, (_, k) => `${k + 2}:${k + 1}`), '22:0', '23:20']);
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
