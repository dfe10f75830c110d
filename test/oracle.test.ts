// The oracle (the real glibc of this machine) against docs/glibc.md: every expected number below comes
// from that spec or from docs/trace-format.md, never from the oracle's own output. What the oracle program
// does is asked of its binary directly; what the runner (src/oracle) and the command line add (the clean
// environment, --keep-env, --tunables, --libc, standard input, a closed pipe) is checked through them.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MallocscopeError, TraceError, UsageError } from '../dist/errors.js';
import { builtFile, loadAddon } from '../dist/native.js';
import { seededRandom } from '../dist/trace/generate.js';
import { mallocscope } from './support/cli.ts';
import { testProgram } from './support/programs.ts';
import {
  LIBC_ENV,
  ORACLE_BINARY,
  OracleSignalError,
  exitError,
  oracleArgs,
  oracleCommand,
  oracleEnv,
  oracleLines,
  runOracle,
  signalError,
  streamOracle,
  type OracleEvent,
} from '../dist/oracle/oracle.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(root, 'test/fixtures/oracle');
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-oracle-'));
const MiB = 1024 * 1024;
const oracleBinary = builtFile(ORACLE_BINARY);

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `mallocscope oracle ARGS…` as a user runs it, with an environment free of malloc settings by default. */
async function cli(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return mallocscope(['oracle', ...args], { input: options.input, environment: options.env ?? oracleEnv() });
}

/** The oracle binary itself, with an environment free of malloc settings by default. */
function oracle(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Run {
  const run = spawnSync(oracleBinary, args, { input: options.input, encoding: 'utf8', env: options.env ?? oracleEnv(), maxBuffer: 256 * MiB });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** The same, without waiting: several runs can go side by side. */
function oracleAsync(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(oracleBinary, args, { encoding: 'utf8', env: oracleEnv(), maxBuffer: 256 * MiB }, (error, stdout, stderr) => {
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

/** The events of a successful run. */
function parsed(run: Run): OracleEvent[] {
  assert.is(run.stderr, '', 'no error expected');
  assert.is(run.status, 0);
  return run.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as OracleEvent);
}

/** The events of a successful run of the oracle binary. */
function events(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): OracleEvent[] {
  return parsed(oracle(args, options));
}

/** The events of a successful `mallocscope oracle` run. */
async function cliEvents(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<OracleEvent[]> {
  return parsed(await cli(args, options));
}

function fixture(name: string): string {
  return join(fixtures, name);
}

function traceFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

// ---- placement -------------------------------------------------------------------------------------------

test('first malloc(100) is at heap offset 0x2a0 with chunk 0x70 (§5, §11)', () => {
  const [a] = events([traceFile('first.trace', 'malloc a 100\n')]);
  assert.equal(a, { seq: 0, op: 'malloc', id: 'a', where: 'heap', chunk: 0x70, offset: 0x2a0 });
});

test('the sliding threshold of §11: mmap 200704, then heap after its free; 40 MiB stays mmapped', () => {
  const [a, b, freeB, c, d, freeD, e] = events([fixture('section11.trace')]);
  assert.equal(a, { seq: 0, op: 'malloc', id: 'a', where: 'heap', chunk: 112, offset: 0x2a0 });
  assert.equal(b, { seq: 1, op: 'malloc', id: 'b', where: 'mmap', chunk: 200704 });
  assert.equal(freeB, { seq: 2, op: 'free', id: 'b' });
  assert.equal(c, { seq: 3, op: 'malloc', id: 'c', where: 'heap', chunk: 200016, offset: 0x310 });
  assert.equal(d, { seq: 4, op: 'malloc', id: 'd', where: 'mmap', chunk: 0x2801000 });
  assert.equal(freeD, { seq: 5, op: 'free', id: 'd' });
  assert.equal(e, { seq: 6, op: 'malloc', id: 'e', where: 'mmap', chunk: 0x2801000 });
});

test('mallinfo2 of §11 with --stats', () => {
  const [a, b, freeB, c, d, freeD] = events(['--stats', fixture('section11.trace')]);
  assert.equal(
    { arena: a.arena, hblks: a.hblks, hblkhd: a.hblkhd, uordblks: a.uordblks, fordblks: a.fordblks, keepcost: a.keepcost },
    { arena: 135168, hblks: 0, hblkhd: 0, uordblks: 768, fordblks: 134400, keepcost: 134400 },
  );
  assert.equal([b.hblks, b.hblkhd, b.arena, b.keepcost], [1, 200704, 135168, 134400]);
  assert.equal([freeB.hblks, freeB.hblkhd], [0, 0]);
  assert.equal([c.arena, c.keepcost, c.uordblks, c.fordblks, c.hblks], [335872, 135088, 200784, 135088, 0]);
  assert.equal([d.hblks, d.hblkhd, d.arena], [1, 41947136, 335872]);
  assert.equal([freeD.hblks, freeD.hblkhd], [0, 0]);
});

test('--stats: keys in the documented order, written as JSON.stringify writes them', () => {
  const run = oracle(['--stats', fixture('section11.trace')]);
  assert.is(run.status, 0);
  const lines = run.stdout.trimEnd().split('\n');
  const stats = ['arena', 'hblks', 'hblkhd', 'uordblks', 'fordblks', 'keepcost'];
  assert.equal(Object.keys(JSON.parse(lines[0])), ['seq', 'op', 'id', 'where', 'chunk', 'offset', ...stats]);
  assert.equal(Object.keys(JSON.parse(lines[1])), ['seq', 'op', 'id', 'where', 'chunk', ...stats]);
  assert.equal(Object.keys(JSON.parse(lines[2])), ['seq', 'op', 'id', ...stats]);
  for (const line of lines) assert.is(JSON.stringify(JSON.parse(line)), line);
  // Without --stats there are none of them.
  for (const line of oracle([fixture('section11.trace')])
    .stdout.trimEnd()
    .split('\n')) {
    for (const key of stats) assert.not.ok(key in JSON.parse(line));
  }
});

test('probe D: the threshold becomes 0x101000; nb equal to it is mmapped, nb below it is heap', () => {
  const [s, p, , q, r, t] = events(['--stats', fixture('probe-d.trace')]);
  assert.equal([s.where, s.offset, s.chunk], ['heap', 0x2a0, 0x20]);
  assert.equal([p.where, p.chunk, p.hblkhd], ['mmap', 0x101000, 1052672]);
  assert.equal([q.where, q.offset, q.chunk, q.arena, q.keepcost], ['heap', 0x2c0, 0x100010, 1183744, 134464]);
  assert.equal([r.where, r.chunk], ['mmap', 0x102000]);
  assert.equal([t.where, t.offset, t.chunk], ['heap', 0x1002d0, 0x100ff0]);
});

test('probe F: any mallopt of the four settings stops the sliding threshold; M_MXFAST does not', () => {
  const base = 'malloc p 1048576\nfree p\nmalloc q 1048576\n';
  const secondWhere = (prefix: string) => events([traceFile('f.trace', prefix + base)]).at(-1)!.where;
  assert.is(secondWhere(''), 'heap');
  assert.is(secondWhere('mallopt M_MMAP_MAX 65536\n'), 'mmap');
  assert.is(secondWhere('mallopt M_TOP_PAD 131072\n'), 'mmap');
  assert.is(secondWhere('mallopt M_TRIM_THRESHOLD 131072\n'), 'mmap');
  assert.is(secondWhere('mallopt M_MMAP_THRESHOLD 131072\n'), 'mmap');
  assert.is(secondWhere('mallopt M_MXFAST 64\n'), 'heap');
});

test('probes E1/E2: a 32 MiB mapping does not raise the threshold, 32 MiB - 4096 does', () => {
  const e1 = events([fixture('probe-e1.trace')]);
  assert.equal([e1[0].where, e1[0].chunk], ['mmap', 0x2000000]);
  assert.equal([e1[2].where, e1[2].chunk], ['mmap', 200704]);
  const e2 = events([fixture('probe-e2.trace')]);
  assert.equal([e2[0].where, e2[0].chunk], ['mmap', 0x1fff000]);
  assert.is(e2[2].where, 'heap');
  assert.is(e2[3].where, 'heap');
});

test('scenario A: a request above the threshold is served from the top when it fits', () => {
  const [, x, y] = events([fixture('scenario-a.trace')]);
  assert.equal(x, { seq: 1, op: 'malloc', id: 'x', where: 'heap', chunk: 132016, offset: 0x2c0 });
  assert.equal([y.where, y.chunk], ['mmap', 0x21000]); // ALIGN_UP(132016 + 8, 4096)
});

test('probe H: trimming on free and by malloc_trim', () => {
  const [, , , c, freeC, freeB, trim] = events(['--stats', fixture('probe-h.trace')]);
  assert.equal([c.arena, c.keepcost], [335872, 35136]);
  assert.equal([freeC.arena, freeC.keepcost], [335872, 135152]);
  assert.equal([freeB.arena, freeB.keepcost], [233472, 132768]);
  assert.equal(trim, { seq: 6, op: 'trim', id: '', arena: 102400, hblks: 0, hblkhd: 0, uordblks: 100704, fordblks: 1696, keepcost: 1696 });
});

test('probe G: realloc of an mmapped block: 0x201000, then a 0x1000 mapping, then 0x2000', () => {
  const [p, grown, shrunk, regrown] = events([fixture('probe-g.trace')]);
  assert.equal([p.where, p.chunk], ['mmap', 0x101000]);
  assert.equal([grown.op, grown.where, grown.chunk], ['realloc', 'mmap', 0x201000]);
  assert.equal([shrunk.where, shrunk.chunk], ['mmap', 0x1000]);
  assert.equal([regrown.where, regrown.chunk], ['mmap', 0x2000]);
});

test('memalign(4096, 300000) is mmapped; chunk excludes the 0xff0 front gap (§7.7)', () => {
  const [m] = events([fixture('memalign.trace')]);
  assert.equal(m, { seq: 0, op: 'memalign', id: 'm', where: 'mmap', chunk: 0x4a010 });
});

test('failed calls print no where: malloc(2^64-1), calloc overflow; their IDs stay live', () => {
  const out = events([fixture('failures.trace')]);
  assert.equal(out, [
    { seq: 0, op: 'malloc', id: 'huge' },
    { seq: 1, op: 'calloc', id: 'over' },
    { seq: 2, op: 'free', id: 'huge' },
    { seq: 3, op: 'free', id: 'over' },
  ]);
});

test('realloc liveness: a non-live ID is realloc(NULL, n) and becomes live; size 0 frees it', () => {
  const out = events([traceFile('realloc.trace', 'realloc r 100\nrealloc r 0\nrealloc z 0\nfree z\n')]);
  assert.equal(out[0], { seq: 0, op: 'realloc', id: 'r', where: 'heap', chunk: 112, offset: 0x2a0 });
  assert.equal(out[1], { seq: 1, op: 'realloc', id: 'r' });
  // realloc(NULL, 0) is malloc(0): a 32-byte chunk, and the ID is live (free works).
  assert.equal([out[2].where, out[2].chunk], ['heap', 32]);
  assert.equal(out[3], { seq: 3, op: 'free', id: 'z' });
  const again = oracle([traceFile('realloc2.trace', 'realloc r 100\nrealloc r 0\nfree r\n')]);
  assert.is(again.status, 1);
  assert.match(again.stderr, /:3: free of ID 'r', which is not live \[TRACE_ID_NOT_LIVE\]/);
});

test('--brk-limit: a growth past the limit takes the 1 MiB mmap fallback (§5, probe sbrk fail)', () => {
  const [a, b, c] = events(['--stats', '--brk-limit', '0x30000', fixture('brk-fail.trace')]);
  assert.equal([a.arena, a.offset], [135168, 0x2a0]);
  assert.equal([b.where, b.keepcost], ['heap', 34384]);
  assert.is(c.where, 'heap'); // the fallback mapping is the arena's, not an mmapped chunk
  assert.equal([c.arena, c.hblks, c.hblkhd], [135168 + MiB, 0, 0]);
  assert.is(c.fordblks! - c.keepcost!, 34352); // the fenceposted old top, freed to the unsorted bin
  assert.is(c.keepcost, MiB - 100016);
  // Without the limit the same growth is an sbrk: ALIGN_UP(100016 + 131072 + 32 - 34384, 4096) = 0x31000.
  const free = events(['--stats', fixture('brk-fail.trace')]);
  assert.equal([free[2].arena, free[2].offset], [135168 + 0x31000, 784 + 100016]);
});

test('a bad --brk-limit is a usage error (exit 2, one line)', async () => {
  const run = await cli(['--brk-limit', '64k', fixture('section11.trace')]);
  assert.is(run.status, 2);
  assert.is(run.stdout, '');
  assert.is(
    run.stderr,
    "mallocscope: --brk-limit takes a byte count (decimal or 0x-hexadecimal, at most 2^44), not '64k' (run `mallocscope oracle --help` for usage) [USAGE]\n",
  );
});

// ---- determinism, environment, stdin ---------------------------------------------------------------------

function randomTrace(events: number, seed: number): string {
  const next = seededRandom(seed);
  const sizes = [0, 1, 24, 100, 500, 1032, 1040, 5000, 70000, 131072, 200000, 1 * MiB, 3 * MiB];
  const live: string[] = [];
  const lines: string[] = [];
  let made = 0;
  for (let i = 0; i < events; i++) {
    const r = next();
    const size = sizes[Math.floor(next() * sizes.length)] + Math.floor(next() * 64);
    if (live.length > 0 && r < 0.42) {
      const k = Math.floor(next() * live.length);
      [live[k], live[live.length - 1]] = [live[live.length - 1], live[k]];
      lines.push(`free ${live.pop()}`);
    } else if (live.length > 0 && r < 0.52) {
      const k = Math.floor(next() * live.length);
      lines.push(`realloc ${live[k]} ${size}`);
      if (size === 0) live.splice(k, 1); // realloc ID 0 ends the ID
    } else if (r < 0.53) {
      lines.push(`trim ${Math.floor(next() * 200000)}`);
    } else {
      const id = `b${made++}`;
      live.push(id);
      const kind = next();
      if (kind < 0.1) lines.push(`calloc ${id} ${1 + Math.floor(next() * 8)} ${size}`);
      else if (kind < 0.15) lines.push(`memalign ${id} ${2 ** (4 + Math.floor(next() * 9))} ${size}`);
      else lines.push(`malloc ${id} ${size}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

test('determinism: two runs of a 2000-event seeded random trace are byte-identical', async () => {
  // 2000 events hold every kind of call the generator makes (memalign up to 4096, calloc, realloc, trim) with
  // mmapped and heap blocks both, as 5000 did; glibc's own page work (calloc's memset of MiBs) grows faster than
  // the events: 0.25 s of CPU a replay at 2000, 0.65 s at 5000.
  const path = traceFile('random.trace', randomTrace(2000, 12345));
  // Two processes at once.
  const [first, second] = await Promise.all([oracleAsync(['--stats', path]), oracleAsync(['--stats', path])]);
  assert.is(first.status, 0);
  assert.is(first.stdout.split('\n').length - 1, 2000);
  assert.ok(first.stdout === second.stdout, 'the two outputs differ');
  assert.ok(first.stdout.includes('"where":"mmap"') && first.stdout.includes('"where":"heap"'));
});

test('the environment: MALLOC_* and GLIBC_TUNABLES of the parent are removed unless --keep-env', async () => {
  const trace = traceFile('env.trace', 'malloc a 100\n');
  const clean = events(['--stats', trace]);
  assert.is(clean[0].arena, 135168);
  const env = { ...oracleEnv(), MALLOC_TOP_PAD_: '0' };
  // The binary started in such an environment follows it; the runner takes it out unless asked to keep it.
  assert.is.not(events(['--stats', trace], { env })[0].arena, 135168); // top_pad 0: the first heap is no longer 0x21000
  assert.equal(await runOracle(trace, { stats: true, env }), clean);
  const kept = await runOracle(trace, { stats: true, env, keepEnv: true });
  assert.is.not(kept[0].arena, 135168);
  const tunables = { ...oracleEnv(), GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' };
  assert.equal(await runOracle(fixture('tcache.trace'), { env: tunables }), events([fixture('tcache.trace')]));
  // The command line: both removed by default; --keep-env keeps the parent's, --tunables sets GLIBC_TUNABLES.
  const dirty = { ...oracleEnv(), MALLOC_TOP_PAD_: '0', GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' };
  const tcacheClean = events(['--stats', fixture('tcache.trace')]);
  assert.equal(await cliEvents(['--stats', fixture('tcache.trace')], { env: dirty }), tcacheClean);
  const both = await cliEvents(['--stats', '--keep-env', '--tunables', 'glibc.malloc.tcache_count=0', fixture('tcache.trace')], { env });
  assert.is.not(both[0].arena, tcacheClean[0].arena); // MALLOC_TOP_PAD_ kept
  assert.equal([both[3].where, both[3].offset], ['heap', 0x2a0]); // tcache off: see the next test
});

test('--tunables glibc.malloc.tcache_count=0 changes where a freed chunk is reused (§7.2, §7.3)', async () => {
  const withTcache = events([fixture('tcache.trace')]);
  // a (0xd0) sits in tcache; g (0x20) follows it; b (0x70) comes from the top after g.
  assert.equal([withTcache[3].where, withTcache[3].offset], ['heap', 0x2a0 + 0xd0 + 0x20]);
  const without = await runOracle(fixture('tcache.trace'), { tunables: 'glibc.malloc.tcache_count=0' });
  // a went to the unsorted bin; malloc(100) splits it and gets a's address.
  assert.equal([without[3].where, without[3].offset], ['heap', 0x2a0]);
});

test('oracleEnv removes MALLOC_*, GLIBC_TUNABLES and LD_PRELOAD; keeps them on request; sets tunables', () => {
  const env = { PATH: '/bin', MALLOC_ARENA_MAX: '1', MALLOC_CHECK_: '3', GLIBC_TUNABLES: 'x=1', LD_PRELOAD: 'lib.so' };
  assert.equal(oracleEnv({ env }), { PATH: '/bin' });
  assert.equal(oracleEnv({ env, keepEnv: true }), env);
  assert.equal(oracleEnv({ env, tunables: 'glibc.malloc.tcache_count=0' }), { PATH: '/bin', GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' });
  assert.equal(oracleArgs('-x', { stats: true, brkLimit: 4096 }), ['--stats', '--brk-limit', '4096', '--', '-x']);
});

test('- reads the trace from standard input; errors name <stdin>', async () => {
  const out = events(['-'], { input: 'malloc a 100\nfree a\n' });
  assert.equal(out, [
    { seq: 0, op: 'malloc', id: 'a', where: 'heap', chunk: 112, offset: 0x2a0 },
    { seq: 1, op: 'free', id: 'a' },
  ]);
  const bad = oracle(['-'], { input: 'free a\n' });
  assert.is(bad.status, 1);
  assert.is(bad.stderr, "mallocscope: <stdin>:1: free of ID 'a', which is not live [TRACE_ID_NOT_LIVE]\n");
  // The command line hands its standard input to the oracle: the lines, then the error, as they were.
  const viaCli = await cli(['-'], { input: 'malloc a 100\nfree a\nfree a\n' });
  assert.is(viaCli.status, 1);
  assert.equal(
    viaCli.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line)),
    out,
  );
  assert.is(viaCli.stderr, "mallocscope: <stdin>:3: free of ID 'a', which is not live [TRACE_ID_NOT_LIVE]\n");
});

test('a closed pipe ends the oracle quietly', () => {
  const path = traceFile('many.trace', 'malloc a 1\nfree a\n'.repeat(200000));
  const run = spawnSync('sh', ['-c', `node bin/mallocscope.js oracle '${path}' | head -1`], { cwd: root, encoding: 'utf8' });
  assert.is(run.stdout, '{"seq":0,"op":"malloc","id":"a","where":"heap","chunk":32,"offset":672}\n');
  assert.is(run.stderr, '');
});

// ---- the library API -------------------------------------------------------------------------------------

test('runOracle returns the events; streamOracle yields them one by one', async () => {
  const out = await runOracle(fixture('section11.trace'), { stats: true });
  assert.is(out.length, 7);
  assert.equal([out[1].where, out[1].chunk, out[1].hblkhd], ['mmap', 200704, 200704]);
  const fromInput = await runOracle('-', { input: 'malloc a 100\n' });
  assert.equal(fromInput, [{ seq: 0, op: 'malloc', id: 'a', where: 'heap', chunk: 112, offset: 0x2a0 }]);
  let seen = 0;
  for await (const event of streamOracle(traceFile('stream.trace', 'malloc a 1\nfree a\n'.repeat(50000)))) {
    seen++;
    if (event.seq === 10) break; // stops the oracle
  }
  assert.is(seen, 11);
});

test('runOracle raises the TraceError the oracle reported', async () => {
  const path = traceFile('bad.trace', 'malloc a 1\n\nmalloc a 2\n');
  try {
    await runOracle(path);
    assert.unreachable('expected an error');
  } catch (error) {
    assert.instance(error, TraceError);
    const e = error as TraceError;
    assert.equal([e.code, e.file, e.line, e.reason], ['TRACE_ID_LIVE', path, 3, "ID 'a' is already live (created at line 1)"]);
  }
  try {
    await runOracle(join(dir, 'missing.trace'));
    assert.unreachable('expected an error');
  } catch (error) {
    assert.instance(error, TraceError);
    assert.is((error as TraceError).describe(), `${join(dir, 'missing.trace')}: cannot read: no such file or directory [TRACE_OPEN]`);
  }
});

test('an oracle killed by a signal is a MallocscopeError naming it', () => {
  const e = signalError('SIGABRT', 'free(): invalid pointer\n');
  assert.instance(e, MallocscopeError);
  assert.instance(e, OracleSignalError);
  assert.is(e.code, 'ORACLE_SIGNAL');
  assert.is(e.signal, 'SIGABRT');
  assert.match(e.message, /signal SIGABRT \(6\)/);
  assert.match(e.message, /free\(\): invalid pointer/);
});

test('exitError: how the oracle ended, as the error it stands for', () => {
  assert.is(exitError({ status: 0, signal: null, stderr: '' }, 't'), null);
  const trace = exitError({ status: 1, signal: null, stderr: "mallocscope: t:4: free of ID 'x', which is not live [TRACE_ID_NOT_LIVE]\n" }, 't');
  assert.instance(trace, TraceError);
  assert.equal(
    [trace!.code, (trace as TraceError).line, (trace as TraceError).reason, trace!.exitCode],
    ['TRACE_ID_NOT_LIVE', 4, "free of ID 'x', which is not live", 1],
  );
  const usage = exitError({ status: 2, signal: null, stderr: "mallocscope: oracle: unknown option '--x' (usage: …) [USAGE]\n" }, 't');
  assert.instance(usage, UsageError);
  assert.equal([usage!.message, usage!.exitCode], ["unknown option '--x' (usage: …)", 2]);
  const signal = exitError({ status: null, signal: 'SIGSEGV', stderr: '' }, 't');
  assert.instance(signal, OracleSignalError);
  assert.is((signal as OracleSignalError).signal, 'SIGSEGV');
  const other = exitError({ status: 127, signal: null, stderr: 'sh: not found\n' }, 't');
  assert.equal([other!.code, other!.message, other!.exitCode], ['ORACLE_FAILED', 'the oracle exited with status 127: sh: not found', 1]);
  // A coded failure that is not a usage error keeps its code, with exit 2 when the oracle exited 2.
  const blocker = exitError(
    { status: 2, signal: null, stderr: 'mallocscope: oracle: cannot place the --brk-limit blocker at heap start + 8192: file exists [BRK_LIMIT]\n' },
    't',
  );
  assert.equal(
    [blocker!.code, blocker!.message, blocker!.exitCode],
    ['BRK_LIMIT', 'oracle: cannot place the --brk-limit blocker at heap start + 8192: file exists', 2],
  );
  // oracleLines raises the same errors as the streaming runner.
  const bad = traceFile('bad-sync.trace', 'malloc a 1\nfree b\n');
  try {
    oracleLines(bad);
    assert.unreachable('expected an error');
  } catch (error) {
    assert.instance(error, TraceError);
    assert.is((error as TraceError).describe(), `${bad}:2: free of ID 'b', which is not live [TRACE_ID_NOT_LIVE]`);
  }
});

// ---- another glibc: --libc DIR and MALLOCSCOPE_LIBC ------------------------------------------------------

/**
 * A stand-in for a glibc build: its "loader" writes down the arguments it was given, then runs the program as
 * the real loader would (after `--library-path DIR`), here under this machine's glibc.
 */
function standInLibc(): { dir: string; args: () => string[] | null } {
  const libc = mkdtempSync(join(dir, 'libc-'));
  const loader = join(libc, 'ld-linux-x86-64.so.2');
  // It tells its version as a loader does (check asks, to pick the model of the same glibc).
  writeFileSync(
    loader,
    `#!/bin/sh\n[ "$1" = --version ] && { echo 'ld.so (GNU libc) stable release version 2.36.'; exit 0; }\nprintf '%s\\n' "$@" > "${libc}/args"\nshift 2\nexec "$@"\n`,
  );
  chmodSync(loader, 0o755);
  const file = join(libc, 'args');
  return {
    dir: libc,
    args: () => {
      if (!existsSync(file)) return null;
      const args = readFileSync(file, 'utf8').trimEnd().split('\n');
      rmSync(file);
      return args;
    },
  };
}

test("--libc DIR / MALLOCSCOPE_LIBC: the oracle runs under the build's loader, with its library path", async () => {
  const libc = standInLibc();
  const trace = fixture('section11.trace');
  const own = events(['--stats', trace]);
  assert.equal(await runOracle(trace, { stats: true, libc: libc.dir }), own);
  assert.equal(libc.args(), ['--library-path', libc.dir, oracleBinary, '--stats', '--', trace]);
  assert.equal(oracleCommand(trace, { libc: libc.dir }).file, join(libc.dir, 'ld-linux-x86-64.so.2'));
  // MALLOCSCOPE_LIBC is the default; an empty --libc is this machine's glibc.
  const env = { ...oracleEnv(), [LIBC_ENV]: libc.dir };
  assert.equal(await runOracle(trace, { env }), events([trace]));
  assert.equal(libc.args(), ['--library-path', libc.dir, oracleBinary, '--', trace]);
  assert.equal(oracleLines(trace, { env, libc: '' }), oracle([trace]).stdout.trimEnd().split('\n'));
  assert.is(libc.args(), null);
  // A folder without a loader, a missing folder: a usage error of its own code.
  for (const [folder, words] of [
    [fixtures, 'holds no glibc build: no dynamic loader ld-linux-*.so.* in it'],
    [join(dir, 'no-such-libc'), 'cannot be read: no such file or directory'],
  ]) {
    try {
      await runOracle(trace, { libc: folder });
      assert.unreachable('expected an error');
    } catch (error) {
      assert.instance(error, MallocscopeError);
      assert.equal([(error as MallocscopeError).code, (error as MallocscopeError).exitCode], ['LIBC_NOT_FOUND', 2]);
      assert.ok((error as Error).message.includes(words), (error as Error).message);
    }
  }
  // The command line: `oracle --libc`, `check --libc`, and MALLOCSCOPE_LIBC naming a folder with no glibc.
  assert.equal(await cliEvents(['--libc', libc.dir, trace]), events([trace]));
  assert.equal(libc.args(), ['--library-path', libc.dir, oracleBinary, '--', trace]);
  const checked = await mallocscope(['check', '--libc', libc.dir, trace], { environment: oracleEnv() });
  assert.is(checked.status, 0, checked.stderr);
  assert.is(checked.stdout, `${trace}: all 7 events agree with glibc\n`);
  assert.equal(libc.args(), ['--library-path', libc.dir, oracleBinary, '--name', trace, '--', trace]);
  const missing = await cli([trace], { env: { ...oracleEnv(), [LIBC_ENV]: fixtures } });
  assert.is(missing.status, 2);
  assert.match(missing.stderr, /^mallocscope: .*oracle holds no glibc build: .* \[LIBC_NOT_FOUND\]\n$/);
});

test("--rss makes the oracle's own regions resident without changing a byte of them (sysio.c)", () => {
  // own_resident() writes a byte on each page of the regions mapped before it: read and written back, as a
  // region may hold data by then. A program of sysio.c's own (test/fixtures/programs/own-resident.c), on three
  // pages of numbered bytes.
  const run = spawnSync(testProgram('own-resident'), { encoding: 'utf8' });
  assert.is(run.status, 0, run.stderr);
  const page = loadAddon().pageSize();
  assert.is(run.stdout, `0 bytes changed, ${Math.ceil((3 * 4096) / page) * page} resident\n`);
});

test.run();
