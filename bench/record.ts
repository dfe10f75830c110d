// What recording costs a program (issue 11): the same programs timed alone, under mallocscope's recorder, under
// glibc's mtrace, and under heaptrack, in one run, as ratios against the program alone.
//
//   node --import tsx bench/record.ts [--runs N] [--no-cpu]     (npm run bench:record)
//
// Programs: a Perl hash workload (about a quarter of a second alone here) and a C program of four threads that
// allocate and free (compiled into bench/.cache/ on first use). Ways, each a fresh process per run, interleaved
// round by round so that the load of a shared machine falls on all alike; the table gives medians:
//   alone            the program
//   recorder         the program under native/recorder's preload alone (the log written, not converted)
//   record           `mallocscope record -o FILE -- PROGRAM`: Node's start, the run, the conversion to a trace
//   mtrace           the program under glibc's debug library and mtrace alone (the text log written)
//   record mtrace    `mallocscope record --via mtrace -o FILE -- PROGRAM` (refused for the threaded program)
//   heaptrack        `heaptrack -o FILE PROGRAM` (its recording; the analysis is heaptrack_print's, not timed)
// Each run is timed twice, as two fresh processes: its wall time, and then, under `perf stat -e task-clock` (when
// perf is installed and --no-cpu is not given), the CPU time of the process and its children, which a loaded
// machine disturbs less than the wall time. No figure is asserted; the exit status says only whether the
// benchmark ran.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDist, fail, root, say } from './support.ts';
import { findMallocDebugLib } from '../src/cli/mtrace-commands.ts';

const cacheDir = join(root, 'bench', '.cache');
const recorder = join(root, 'build/Release/libmallocscope-recorder.so');
const starter = join(root, 'build/Release/libmallocscope-mtrace.so');
const heaptrack = '/usr/bin/heaptrack';
const bin = join(root, 'bin/mallocscope.js');

let runs = 5;
let cpu = true;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--runs') runs = Number(process.argv[++i]);
  else if (process.argv[i] === '--no-cpu') cpu = false;
  else fail(`unknown argument ${process.argv[i]} (bench/record.ts [--runs N] [--no-cpu])`);
}
if (cpu && spawnSync('perf', ['--version']).status !== 0) {
  say('perf is not installed: CPU times are left out');
  cpu = false;
}
if (!Number.isInteger(runs) || runs < 1) fail('--runs takes a whole number of at least 1');
if (!existsSync(recorder) || !existsSync(starter)) fail('the native build is missing: npm install');

const THREADED_C = `/* bench/record.ts: four threads, each replacing blocks of 16 to 527 bytes in 64 slots, 250000 times
 * (2 million calls: a worst case, nothing but malloc and free). */
#include <pthread.h>
#include <stdlib.h>
static void *work(void *arg) {
  unsigned s = (unsigned)(long)arg * 2654435761u + 1;
  void *keep[64] = {0};
  for (int i = 0; i < 250000; i++) {
    s = s * 1103515245u + 12345u;
    int k = (s >> 8) & 63;
    free(keep[k]);
    keep[k] = malloc(16 + (s >> 16) % 512);
  }
  for (int k = 0; k < 64; k++) free(keep[k]);
  return NULL;
}
int main(void) {
  pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, (void *)i);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  return 0;
}
`;

mkdirSync(cacheDir, { recursive: true });
const threaded = join(cacheDir, 'record-threads');
writeFileSync(`${threaded}.c`, THREADED_C);
const cc = spawnSync('cc', ['-O2', '-pthread', '-o', threaded, `${threaded}.c`], { encoding: 'utf8' });
if (cc.status !== 0) fail(`cc failed: ${cc.stderr}`);
ensureDist();

interface Program {
  name: string;
  command: string[];
}
const programs: Program[] = [
  {
    name: 'perl hash',
    command: ['perl', '-e', 'my %h; $h{$_} = "x" x ($_ % 100) for 1..130000; delete $h{$_} for 1..65000'],
  },
  { name: '4 threads (C)', command: [threaded] },
];

const work = mkdtempSync(join(tmpdir(), 'mallocscope-bench-record-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const debugLib = findMallocDebugLib();
const haveHeaptrack = existsSync(heaptrack);
if (!haveHeaptrack) say(`${heaptrack} is not installed (Debian: apt-get install heaptrack): its column is left out`);

/** A way of running a program: the command and environment, or why it cannot be run. */
interface Way {
  name: string;
  prepare(program: Program): { argv: string[]; env: NodeJS.ProcessEnv } | string;
}

const baseEnv = { ...process.env };
delete baseEnv.LD_PRELOAD;
const ways: Way[] = [
  { name: 'alone', prepare: (p) => ({ argv: p.command, env: baseEnv }) },
  {
    name: 'recorder',
    prepare: (p) => {
      const dir = join(work, 'recorder');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      return { argv: p.command, env: { ...baseEnv, LD_PRELOAD: recorder, MALLOCSCOPE_RECORD_DIR: dir } };
    },
  },
  { name: 'record', prepare: (p) => ({ argv: [process.execPath, bin, 'record', '-o', join(work, 'record.trace'), '--', ...p.command], env: baseEnv }) },
  {
    name: 'mtrace',
    prepare: (p) =>
      debugLib ? { argv: p.command, env: { ...baseEnv, LD_PRELOAD: `${debugLib} ${starter}`, MALLOC_TRACE: join(work, 'mtrace.log') } } : 'no debug library',
  },
  {
    name: 'record mtrace',
    prepare: (p) =>
      p.command[0] === threaded
        ? 'refused: threads (RECORD_THREADS)'
        : { argv: [process.execPath, bin, 'record', '--via', 'mtrace', '-o', join(work, 'mtrace.trace'), '--', ...p.command], env: baseEnv },
  },
  {
    name: 'heaptrack',
    prepare: (p) => (haveHeaptrack ? { argv: [heaptrack, '-o', join(work, 'heaptrack.data'), ...p.command], env: baseEnv } : 'not installed'),
  },
];

/** Seconds of one run; stops the benchmark if the run fails. */
function time(argv: string[], env: NodeJS.ProcessEnv): number {
  const start = process.hrtime.bigint();
  const run = spawnSync(argv[0], argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', cwd: work });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (run.status !== 0) fail(`${argv.join(' ')} failed (${run.status ?? run.signal}): ${run.stderr}`);
  return seconds;
}

/** CPU seconds of one run (task-clock: the process and its children), through `env` so that perf itself runs
 * without the run's environment (a preload would record perf too). */
function cpuTime(argv: string[], env: NodeJS.ProcessEnv): number {
  const out = join(work, 'perf.csv');
  const assignments = Object.entries(env)
    .filter(([key, value]) => value !== undefined && baseEnv[key] !== value)
    .map(([key, value]) => `${key}=${value}`);
  const run = spawnSync('perf', ['stat', '-x', ',', '-e', 'task-clock', '-o', out, '--', 'env', ...assignments, ...argv], {
    env: baseEnv,
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    cwd: work,
  });
  if (run.status !== 0) fail(`perf stat ${argv.join(' ')} failed (${run.status ?? run.signal}): ${run.stderr}`);
  const line = readFileSync(out, 'utf8')
    .split('\n')
    .find((l) => l.includes('task-clock'));
  const msec = Number(line?.split(',')[0]);
  if (!Number.isFinite(msec)) fail(`perf stat gave no task-clock: ${readFileSync(out, 'utf8')}`);
  return msec / 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

say(`${runs} runs of ${programs.length} programs in ${ways.length} ways, interleaved; load average ${loadavg()[0].toFixed(2)}`);
const times = programs.map(() => ways.map(() => [] as number[]));
const cpuTimes = programs.map(() => ways.map(() => [] as number[]));
for (let round = 0; round < runs; round++) {
  for (const [pi, program] of programs.entries()) {
    for (const [wi, way] of ways.entries()) {
      const prepared = way.prepare(program);
      if (typeof prepared === 'string') continue;
      times[pi][wi].push(time(prepared.argv, prepared.env));
      if (cpu) {
        const again = way.prepare(program) as { argv: string[]; env: NodeJS.ProcessEnv }; // a fresh log folder
        cpuTimes[pi][wi].push(cpuTime(again.argv, again.env));
      }
    }
  }
  say(`round ${round + 1} of ${runs} done`);
}

function table(title: string, samples: number[][][]): void {
  console.log(`\n${title}: median of ${runs} runs; ratio against the program alone (load average ${loadavg()[0].toFixed(2)} at the end)\n`);
  console.log(`| way | ${programs.map((p) => p.name).join(' | ')} |`);
  console.log(`|---|${programs.map(() => '---').join('|')}|`);
  for (const [wi, way] of ways.entries()) {
    const cells = programs.map((program, pi) => {
      const prepared = way.prepare(program);
      if (typeof prepared === 'string') return prepared;
      const seconds = median(samples[pi][wi]);
      const ratio = seconds / median(samples[pi][0]);
      return `${(seconds * 1000).toFixed(0)} ms, ${ratio.toFixed(2)}×`;
    });
    console.log(`| ${way.name} | ${cells.join(' | ')} |`);
  }
}
table('wall time', times);
if (cpu) table('CPU time (task-clock, the process and its children)', cpuTimes);
