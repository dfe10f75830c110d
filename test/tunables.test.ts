// GLIBC_TUNABLES in the model against the real glibc. The loader's reading of the string is held to the real
// loader's own account of it (`ld.so --list-tunables` under that GLIBC_TUNABLES) for every build here; what
// malloc does with the values is held to the oracle running under the same string, event for event with
// mallinfo2, on random shapes and on probes whose outcome each tunable changes. What the model cannot follow
// is refused with TUNABLES_UNSUPPORTED.
import { fileURLToPath } from 'node:url';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MALLOC_TUNABLE_NAMES, parseTunables } from '../dist/allocator/tunables.js';
import { differential } from '../dist/check/differential.js';
import { MallocscopeError } from '../dist/errors.js';
import { libcLoader, runOracleSync, spawnWithoutFork } from '../dist/oracle/oracle.js';
import { rulesFor } from '../dist/replay/glibc.js';
import { Replayer } from '../dist/replay/replayer.js';
import { generateTrace, shapeByName } from '../dist/trace/generate.js';
import { TraceWriter } from '../dist/trace/writer.js';
import { mallocscope } from './support/cli.ts';
import { glibcBuilds } from './support/glibc-builds.ts';
import { unless } from './support/skip.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-tunables-'));
const builds = [...glibcBuilds().values()];
const byVersion = new Map(builds.map((b) => [b.version, b]));

/** The x86-64 ABI's loader: this machine's own glibc. */
const MACHINE_LOADER = '/lib64/ld-linux-x86-64.so.2';

/** What the real loader of `libc` ("" this machine's) holds for each glibc.malloc.* tunable under GLIBC_TUNABLES=text. */
function listed(libc: string, text: string | undefined): Map<string, bigint> {
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  if (text !== undefined) env.GLIBC_TUNABLES = text;
  // Started as runOracleSync starts the oracle (spawnWithoutFork, stdin /dev/null): spawnSync's fork costs
  // twice as much a run, and this file makes a few dozen.
  const loader = libc === '' ? MACHINE_LOADER : libcLoader(libc);
  const run = spawnWithoutFork(loader, ['--list-tunables'], env);
  if (run.error) throw run.error;
  assert.is(run.status, 0, run.stderr);
  const values = new Map<string, bigint>();
  for (const m of run.stdout.matchAll(/^glibc\.malloc\.(\w+): (-?(?:0x)?[0-9a-f]+) \(/gm)) values.set(m[1], BigInt(m[2]));
  return values;
}

// Each string probes a rule of the loader's reading (docs/tune.md, "How glibc reads GLIBC_TUNABLES").
const STRINGS = [
  '',
  'glibc.malloc.tcache_count=5:', // a trailing ':' (2.39 on: the whole string ignored)
  'glibc.malloc.tcache_count=5:glibc.malloc.mmap_max', // a name without '=' at the end
  'glibc.malloc.tcache_count=5=6', // a second '=' in a value
  'glibc.malloc.mmap_max=4294967297', // INT_32 past 2^32: refused, or from 2.39 its low 32 bits (1)
  'glibc.malloc.mmap_max=-1:glibc.malloc.mmap_threshold=2147483648', // below an INT_32's minimum
  'glibc.malloc.mmap_max=2147483648',
  'glibc.malloc.tcache_count= 0x1F', // a space, then hexadecimal
  'glibc.malloc.tcache_count=018', // octal, up to the 8
  'glibc.malloc.tcache_count=9:glibc.malloc.tcache_count=x', // the same name again, with a value that is not a number
  'glibc.malloc.tcache_count=9:glibc.malloc.tcache_count=-', // a lone sign
  'glibc.malloc.tcache_count=18446744073709551610', // near 2^64: the two overflow checks
  'glibc.malloc.tcache_count=1844674407370955161',
  'glibc.malloc.tcache_count=18446744073709551616',
  'glibc.malloc.tcache_count=0x',
  ':foo=bar::glibc.malloc.mxfast=+64', // empty entries and an unknown name
  'glibc.malloc.arena_max=0:glibc.malloc.arena_test=-1', // arena_max's minimum of 1
  'glibc.malloc.trim_threshold=12abc:glibc.malloc.top_pad=077',
  'glibc.malloc.mmap_thresholdx=5:glibc.malloc.mmap_threshold=65536',
  'glibc.malloc.tcache_max=2000:glibc.malloc.tcache_unsorted_limit=-5',
  'glibc.malloc.perturb=256:glibc.malloc.check=2:glibc.malloc.hugetlb=0',
  'glibc.malloc.mmap_threshold=',
  'glibc.malloc.trim_threshold=7:glibc.malloc.trim_threshold=0x10:glibc.malloc.trim_threshold=99999999999999999999',
];

for (const build of builds) {
  test(`the loader's reading of GLIBC_TUNABLES: the model against glibc ${build.version}'s ld.so --list-tunables`, () => {
    const rules = rulesFor(build.version);
    const unset = listed(build.libc, undefined);
    assert.equal([...unset.keys()].sort(), [...MALLOC_TUNABLE_NAMES].sort(), 'the tunables glibc.malloc.* has');
    const wrong: string[] = [];
    for (const text of STRINGS) {
      const real = listed(build.libc, text);
      const model = new Map(parseTunables(text, rules).settings.map((s) => [s.name, s.value]));
      for (const name of MALLOC_TUNABLE_NAMES) {
        const expected = real.get(name);
        const got = model.get(name) ?? unset.get(name);
        if (got !== expected) wrong.push(`'${text}': glibc.malloc.${name} is ${expected} in glibc, ${got} in the model`);
      }
    }
    assert.equal(wrong, []);
  });
}

/** Writes `lines` (or a shape's calls) to a trace file; its path. */
function traceFile(name: string, lines: string[]): string {
  const path = join(dir, `${name}.trace`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}
function shapeTrace(name: string, seed: number, events: number): string {
  const shape = shapeByName(name);
  assert.ok(shape, name);
  const path = join(dir, `${name}-${seed}.trace`);
  const writer = new TraceWriter({ path });
  for (const call of generateTrace(shape, seed, events)) writer.write(call);
  writer.close();
  return path;
}

/** Model and oracle under `tunables` agree on every event of `path`; and, unless `inert`, the tunables changed something. */
function agreesUnder(path: string, tunables: string, libc: string, inert = false): void {
  const oracle = runOracleSync(path, { stats: true, tunables, libc });
  const result = differential(path, { stats: true, tunables, libc, oracle, checkInvariants: 25 });
  const d = result.difference;
  assert.ok(!d, d ? `${tunables}: event ${d.seq} differs\n  glibc: ${d.oracle}\n  model: ${d.model}` : '');
  assert.is(result.agreed, result.events);
  // The same oracle run against the model without the tunables: they must have mattered, or the test shows nothing.
  if (!inert) assert.ok(differential(path, { stats: true, libc, oracle }).difference, `${tunables} changes nothing in ${path}`);
}

// Random shapes under strings that each change their replay (1500 events each; values at their limits; threads).
const SHAPE_RUNS: [string, string[]][] = [
  ['threshold-and-small-many', ['glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=0', 'glibc.malloc.top_pad=0:glibc.malloc.mmap_max=0']],
  ['small-churn-many', ['glibc.malloc.tcache_count=0', 'glibc.malloc.tcache_max=100:glibc.malloc.mxfast=0']],
  ['everything', ['glibc.malloc.tcache_count=100:glibc.malloc.top_pad=4096', 'glibc.malloc.mmap_threshold=0x10000:glibc.malloc.mxfast=160']],
  ['trim-mix', ['glibc.malloc.top_pad=-1:glibc.malloc.trim_threshold=-1:glibc.malloc.mmap_threshold=-1:glibc.malloc.tcache_max=0']],
  ['threads-workers', ['glibc.malloc.arena_max=1']],
];

for (const build of builds) {
  test(`model and glibc ${build.version} agree event for event under GLIBC_TUNABLES, on random shapes`, () => {
    for (const [index, [shape, strings]] of SHAPE_RUNS.entries()) {
      const path = shapeTrace(shape, 4100 + index, 1500);
      for (const tunables of strings) agreesUnder(path, tunables, build.libc);
    }
  });
}

// tcache_unsorted_limit: the unsorted scan that stashes exact fits in the tcache hands one out once more than
// the limit's count of chunks have been filed into bins. sa and sb (chunk 112) reach the unsorted bin through
// the consolidations that the frees of big1 and big2 (70000 bytes, past 64 KiB) start, so the scan of the
// last malloc(100), its tcache drained, meets big1, sa, x, big2, sb. Without a limit, sa and sb are stashed
// and sb, the newest, is handed out; with a limit of 1 (or 2) the scan stops at x (or big2) and sa is; with 3
// it does not stop (the count must pass the limit), as without one.
const unsortedProbe = [
  ...[1, 2, 3, 4, 5, 6, 7].map((i) => `malloc t${i} 100`),
  ...['sa 100', 'g1 16', 'big1 70000', 'g2 16', 'x 2000', 'g3 16', 'big2 70000', 'g4 16', 'sb 100', 'g5 16'].map((call) => `malloc ${call}`),
  ...[1, 2, 3, 4, 5, 6, 7].map((i) => `free t${i}`),
  ...['sa', 'big1', 'x', 'sb', 'big2'].map((id) => `free ${id}`),
  ...[1, 2, 3, 4, 5, 6, 7].map((i) => `malloc u${i} 100`),
  'malloc probe 100',
];

for (const build of builds) {
  test(`glibc ${build.version}: the probes of each tunable, and what the loader ignores, agree with the oracle`, () => {
    const unsorted = traceFile('unsorted-limit', unsortedProbe);
    agreesUnder(unsorted, 'glibc.malloc.tcache_unsorted_limit=1', build.libc);
    agreesUnder(unsorted, 'glibc.malloc.tcache_unsorted_limit=3', build.libc, true);
    const slides = join(root, 'examples/threshold-slides.trace');
    // A threshold of 0 (an empty value reads as 0) mmaps the first request: set, it changes everything.
    agreesUnder(slides, 'glibc.malloc.mmap_threshold=', build.libc);
    // Not a number: 2.36 reads 0 (the digits before the x: none), 2.39 on ignores the value.
    agreesUnder(slides, 'glibc.malloc.mmap_threshold=x', build.libc, rulesFor(build.version).tunablesStrict);
    // A trailing ':' is ignored whole from 2.39 on; the threshold of 300000 keeps the 200000-byte blocks on the heap.
    agreesUnder(slides, 'glibc.malloc.mmap_threshold=300000:', build.libc, rulesFor(build.version).tunablesStrict);
    agreesUnder(slides, 'glibc.malloc.mmap_max=0:glibc.malloc.arena_max=1:glibc.malloc.arena_test=1', build.libc);
  });
}

test('what the model cannot follow is refused, naming the tunable', () => {
  const refused = (text: string, glibc = '2.36'): string => {
    try {
      new Replayer({ tunables: text, glibc });
    } catch (error) {
      assert.instance(error, MallocscopeError);
      assert.is((error as MallocscopeError).code, 'TUNABLES_UNSUPPORTED');
      assert.is((error as MallocscopeError).exitCode, 2);
      return (error as Error).message;
    }
    throw new Error(`${text} was taken`);
  };
  assert.match(refused('glibc.cpu.hwcaps=-AVX2_Usable'), 'glibc.cpu.hwcaps: the model follows the glibc.malloc.* tunables only');
  assert.match(refused('glibc.malloc.perturb=165'), 'perturb=165');
  assert.match(refused('glibc.malloc.hugetlb=1'), 'hugetlb=1');
  assert.match(refused('glibc.malloc.top_pad=4294967296'), 'top_pad=4294967296');
  assert.match(refused('glibc.malloc.arena_max=-1'), 'arena_max=18446744073709551615');
  assert.match(refused('glibc.malloc.tcache_count=1\0'), 'NUL');
  assert.match(refused('glibc.malloc.tcache_max=2000', '2.42'), 'large tcache bins');
  assert.match(refused('', '2.34'), 'sbrk');
  // What glibc itself ignores is followed, not refused: an out-of-range perturb, 2.42's tcache_max past PTRDIFF_MAX.
  new Replayer({ tunables: 'glibc.malloc.perturb=256:glibc.malloc.tcache_max=-1', glibc: '2.42' });
});

test('replay, check and compare take --tunables; a refusal is one line and exit 2, what glibc ignores a warning', async () => {
  const slides = join(root, 'examples/threshold-slides.trace');
  const replay = await mallocscope(['replay', slides, '--jsonl', '--tunables', 'glibc.malloc.mmap_threshold=300000:glibc.malloc.mmap_max=-1']);
  assert.is(replay.status, 0, replay.stderr);
  // The threshold of 300000 keeps both 200000-byte requests on the heap (docs/glibc.md §2).
  assert.match(replay.stdout.split('\n')[1], '"where":"heap"');
  assert.match(replay.stderr, 'warning: GLIBC_TUNABLES: glibc ');
  assert.match(replay.stderr, 'mmap_max=-1');
  const check = await mallocscope(['check', slides, '--stats', '--tunables', 'glibc.malloc.mmap_threshold=300000']);
  assert.is(check.status, 0, check.stderr);
  assert.match(check.stdout, 'both under GLIBC_TUNABLES=glibc.malloc.mmap_threshold=300000');
  const compare = await mallocscope(['compare', slides, '--json', '--tunables', 'glibc.malloc.mmap_threshold=300000']);
  const columns = JSON.parse(compare.stdout).columns;
  assert.equal(
    columns.map((c: { label: string; peakMmapped: number }) => [c.label, c.peakMmapped]),
    [
      ['glibc', 200704],
      ['glibc.malloc.mmap_threshold=300000', 0],
    ],
  );
  const refused = await mallocscope(['replay', slides, '--tunables', 'glibc.rtld.nns=2']);
  assert.is(refused.status, 2);
  assert.is(refused.stderr.trim().split('\n').length, 1);
  assert.match(refused.stderr, '[TUNABLES_UNSUPPORTED]');
});

const v241 = unless(test, byVersion.has('2.41') ? undefined : 'no glibc 2.41 build here (scripts/debian-glibc.sh trixie .glibc/2.41)');
v241('2.36 and 2.41 read the same malformed strings differently, as the model of each does', () => {
  // Checked above against both loaders; here, the difference itself, so that a build missing is seen.
  const lenient = parseTunables('glibc.malloc.tcache_count=5=6', rulesFor('2.36'));
  const strict = parseTunables('glibc.malloc.tcache_count=5=6', rulesFor('2.41'));
  assert.equal(lenient.settings, [{ name: 'tcache_count', value: 5n }]);
  assert.equal(strict.settings, []);
  assert.match(strict.ignored[0], 'ignores the whole string');
});

test.run();
