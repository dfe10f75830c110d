// The options several commands share, through the CLI: --brk-limit means the same for the model and the real
// glibc, every command reads it the same way, --json summaries, check's exit status, -o -, and colour.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unless } from './support/skip.ts';
import { bin, mallocscope } from './support/cli.ts';
import { useColour } from '../dist/cli/colour.js';
import { Progress } from '../dist/cli/progress.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-options-'));
const haveScript = spawnSync('script', ['--version']).status === 0;
const ptyTest = unless(test, haveScript ? undefined : "needs util-linux's script for a terminal");

/** The CLI (test/support/cli.ts) with a clean colour environment (the test runner sets NO_COLOR and FORCE_COLOR), plus `env`. */
/**
 * For a stand-in oracle (a script that runs this machine's oracle binary directly): no other glibc build, and
 * a model of this machine's glibc, whatever MALLOCSCOPE_LIBC says for the rest of the suite.
 */
const OWN_GLIBC = { MALLOCSCOPE_LIBC: undefined, MALLOCSCOPE_GLIBC: undefined };

function run(args: string[], env: NodeJS.ProcessEnv = {}, input?: string) {
  return mallocscope(args, { env: { NO_COLOR: undefined, FORCE_COLOR: undefined, ...env }, input });
}

const firstMalloc = join(dir, 'first-malloc.trace');
writeFileSync(firstMalloc, 'malloc a 100\n');

test('--brk-limit: the same limit for the real glibc and the model, whole pages of break growth', async () => {
  // The first malloc(100) grows the break by 135168 bytes (33 pages): a limit of exactly that lets it, one
  // byte less does not (sbrk fails, and glibc falls back to an mmapped heap far from the break).
  const oracleAt = async (limit: string) => JSON.parse((await run(['oracle', firstMalloc, '--brk-limit', limit])).stdout);
  const modelAt = async (limit: string) => JSON.parse((await run(['replay', firstMalloc, '--jsonl', '--brk-limit', limit])).stdout);
  assert.equal(await oracleAt('135168'), { seq: 0, op: 'malloc', id: 'a', where: 'heap', chunk: 112, offset: 672 });
  const model = await modelAt('135168');
  assert.equal([model.offset, model.sys], [672, ['brk +135168']]);
  assert.is.not((await oracleAt('135167')).offset, 672);
  const refused = await modelAt('135167');
  assert.is.not(refused.offset, 672);
  assert.is(refused.sys[0], 'brk +135168 failed');
  const checked = await run(['check', firstMalloc, '--brk-limit', '0x21000']);
  assert.is(checked.status, 0, checked.stdout + checked.stderr);
});

test('--brk-limit is read the same way by every command that has it', async () => {
  // One malformed value per command (each costs a process): the same message, naming the command's help.
  const commands: [string, string[], string][] = [
    ['oracle', [], 'lots'],
    ['replay', [], '-1'],
    ['check', [], '0x100000000001'],
    ['report', ['-o', join(dir, 'r.html')], '0x100000000001'],
  ];
  for (const [name, rest, bad] of commands) {
    const r = await run([name, firstMalloc, ...rest, '--brk-limit', bad]);
    assert.is(r.status, 2, `${name} --brk-limit ${bad}`);
    assert.is(
      r.stderr,
      `mallocscope: --brk-limit takes a byte count (decimal or 0x-hexadecimal, at most 2^44), not '${bad}' (run \`mallocscope ${name} --help\` for usage) [USAGE]\n`,
    );
  }
  const native = await run(['replay', firstMalloc, '--backend', 'native', '--brk-limit', '4095']);
  assert.is(native.status, 2);
  assert.match(native.stderr, /--backend native needs --brk-limit of at least one page \(4096\)/);
});

test('replay --json: the summary as JSON (§11 figures), with mallinfo2 under --stats', async () => {
  const r = await run(['replay', 'examples/threshold-slides.trace', '--json', '--stats', '--glibc', '2.36']);
  assert.is(r.status, 0, r.stderr);
  const figures = JSON.parse(r.stdout);
  assert.equal(
    { ...figures, syscalls: undefined, mallinfo2: undefined },
    {
      trace: 'examples/threshold-slides.trace',
      policy: 'glibc',
      glibc: '2.36',
      backend: 'simulated',
      events: 4,
      peakHeap: 335872,
      peakMmapped: 200704,
      peakLive: 200100,
      mmapThreshold: 200704,
      thresholdMoves: 1,
      sliding: true,
      trimThreshold: 401408,
      consolidations: 0,
      trims: 0,
      arenas: 1,
      threads: 1,
      syscalls: undefined,
      mallinfo2: undefined,
    },
  );
  assert.equal(figures.syscalls, { brk: 2, mmap: 1, munmap: 1, mremap: 0, madvise: 0, mprotect: 0, failed: 0 });
  // The real glibc's mallinfo2 after the last call of the same trace.
  const oracle = (await run(['oracle', 'examples/threshold-slides.trace', '--stats'])).stdout.trim().split('\n').pop()!;
  const last = JSON.parse(oracle);
  for (const key of ['arena', 'hblks', 'hblkhd', 'uordblks', 'fordblks', 'keepcost']) assert.is(figures.mallinfo2[key], last[key], key);
  const both = await run(['replay', 'examples/threshold-slides.trace', '--json', '--jsonl']);
  assert.is(both.status, 2);
});

test('check: exit 0 when glibc and the model agree, 3 when they differ, 1 for a bad trace, 2 for usage; --json', async () => {
  const agree = await run(['check', 'examples/threshold-slides.trace', '--json']);
  assert.is(agree.status, 0, agree.stderr);
  assert.equal(JSON.parse(agree.stdout), { trace: 'examples/threshold-slides.trace', agree: true, events: 4, stats: false });
  // A stand-in for the oracle that runs the real one and changes the chunk of its second line.
  const fake = mkdtempSync(join(dir, 'oracle-'));
  writeFileSync(
    join(fake, 'mallocscope-oracle'),
    `#!/bin/sh\n"${join(root, 'build/Release/mallocscope-oracle')}" "$@" | sed '2s/"chunk":[0-9]*/"chunk":4096/'\n`,
  );
  chmodSync(join(fake, 'mallocscope-oracle'), 0o755);
  const differ = await run(['check', 'examples/threshold-slides.trace'], { ...OWN_GLIBC, MALLOCSCOPE_BUILD_DIR: fake });
  assert.is(differ.status, 3, differ.stderr);
  assert.match(
    differ.stdout,
    /^examples\/threshold-slides\.trace:8: the model differs from glibc\n {2}glibc: \{"seq":1,"op":"malloc","id":"big","where":"mmap","chunk":4096\}\n/,
  );
  const json = await run(['check', 'examples/threshold-slides.trace', '--json'], { ...OWN_GLIBC, MALLOCSCOPE_BUILD_DIR: fake });
  assert.is(json.status, 3);
  const d = JSON.parse(json.stdout);
  assert.equal([d.agree, d.line, d.seq, d.agreedBefore, d.glibc.chunk, d.model.chunk, d.before.length], [false, 8, 1, 1, 4096, 200704, 1]);
  const bad = join(dir, 'bad.trace');
  writeFileSync(bad, 'malloc a 1\nfree b\n');
  const badRun = await run(['check', bad]);
  assert.is(badRun.status, 1);
  assert.is(badRun.stderr, `mallocscope: ${bad}:2: free of ID 'b', which is not live [TRACE_ID_NOT_LIVE]\n`);
  const policy = await run(['check', 'examples/trim.trace', '--policy', 'heap']);
  assert.is(policy.status, 2);
  assert.match(
    policy.stderr,
    /^mallocscope: check compares with the real glibc, which has no policy 'heap': start the trace with the mallopt .*heap: mallopt M_MMAP_MAX 0.*\[USAGE\]\n$/,
  );
  const help = await run(['check', '--help']);
  assert.match(help.stdout, /Exit status: 0 when every event agrees, 3 when the model and glibc differ, 1 for a bad trace/);
  assert.match(help.stdout, /--policy <name> +only glibc/);
});

test('check where the real glibc dies: agreement when the model stops at that call with the same signal, else a difference', async () => {
  // The oracle, a real glibc 2.36: `trim 0xffffffffffffefff` with a 32-byte top kills the process with
  // SIGSEGV (model-rules has the arithmetic); the lines of the calls before reach check all the same.
  const crash = join(dir, 'crash.trace');
  writeFileSync(crash, 'mallopt M_MMAP_MAX 0\nmalloc a 134472\ntrim 0xffffffffffffefff\nmalloc c 10\n');
  const both = await run(['check', crash, '--stats']);
  assert.is(both.status, 0, both.stderr);
  assert.match(
    both.stdout,
    /: all 2 events before agree with glibc \(mallinfo2 included\), and at event 2 \(line 3\) glibc dies of SIGSEGV where the model stops: /,
  );
  const json = JSON.parse((await run(['check', crash, '--json'])).stdout);
  assert.equal(json.diesAt, { seq: 2, line: 3, signal: 'SIGSEGV' });
  // An oracle that dies where the model goes on (a stand-in that kills itself after two lines): a difference.
  const fake = mkdtempSync(join(dir, 'dies-'));
  writeFileSync(join(fake, 'mallocscope-oracle'), `#!/bin/sh\n"${join(root, 'build/Release/mallocscope-oracle')}" "$@" | head -n 2\nkill -SEGV $$\n`);
  chmodSync(join(fake, 'mallocscope-oracle'), 0o755);
  const differ = await run(['check', 'examples/threshold-slides.trace'], { ...OWN_GLIBC, MALLOCSCOPE_BUILD_DIR: fake });
  assert.is(differ.status, 3, differ.stderr);
  assert.match(differ.stdout, /^examples\/threshold-slides\.trace:\d+: glibc dies of SIGSEGV in this call, and the model goes on\n/);
  // And the other way round: a stand-in glibc that lives through the crashing trim (the pad 2^64 - 1 frees
  // nothing) while the model stops there: a difference too, not bad input.
  const lives = mkdtempSync(join(dir, 'lives-'));
  writeFileSync(
    join(lives, 'mallocscope-oracle'),
    `#!/bin/sh\nfor last; do :; done\nsed 's/0xffffffffffffefff/0xffffffffffffffff/' "$last" > "${lives}/t.trace"\nexec "${join(root, 'build/Release/mallocscope-oracle')}" "${lives}/t.trace"\n`,
  );
  chmodSync(join(lives, 'mallocscope-oracle'), 0o755);
  const stops = await run(['check', crash], { ...OWN_GLIBC, MALLOCSCOPE_BUILD_DIR: lives });
  assert.is(stops.status, 3, stops.stderr);
  assert.match(stops.stdout, /:3: the model stops here \(.*SIGSEGV.*\), but glibc went on: \{"seq":2,"op":"trim","id":""\}\n$/);
});

test('-o - is standard output for every command that writes a file; report without -o says so', async () => {
  const page = await run(['report', 'examples/trim.trace', '-o', '-']);
  assert.is(page.status, 0, page.stderr);
  assert.match(page.stdout, /^<!doctype html>/i);
  assert.match(page.stdout, /<\/html>\s*$/);
  assert.not.ok(existsSync(join(root, '-')), 'no file named -');
  const missing = await run(['report', 'examples/trim.trace']);
  assert.is(missing.status, 2);
  assert.is(
    missing.stderr,
    'mallocscope: report needs -o FILE, the HTML page to write (-o - for standard output) (run `mallocscope report --help` for usage) [USAGE]\n',
  );
  const imported = await run(['import-mtrace', '-', '-o', '-'], {}, '= Start\n+ 0x10 0x20\n- 0x10\n');
  assert.is(imported.status, 0, imported.stderr);
  assert.match(imported.stdout, /^malloc b1 32\nfree b1\n/);
});

test('colour: FORCE_COLOR, NO_COLOR, --color and --no-color, the same rules for explain and the progress bar', async () => {
  const explain = async (args: string[], env: NodeJS.ProcessEnv) => (await run(['explain', 'examples/trim.trace', '--to', '0', ...args], env)).stdout;
  const coloured = /\x1b\[/;
  assert.not.match(await explain([], {}), coloured); // a pipe
  assert.match(await explain([], { FORCE_COLOR: '3', NO_COLOR: '1' }), coloured);
  assert.not.match(await explain([], { FORCE_COLOR: '0' }), coloured);
  assert.not.match(await explain(['--no-color'], { FORCE_COLOR: '1' }), coloured);
  assert.is(
    await explain(['--color'], { NO_COLOR: '1' }),
    '\x1b[2m#0\x1b[0m \x1b[1mx = malloc(1)\x1b[0m: no heap yet \x1b[32m→ brk +135168 for the tcache struct (chunk 656) + top pad 131072 + 32, page-rounded\x1b[0m; chunk 32 carved from the top (134512 ≥ 32 + 32) \x1b[32m→ heap +0x2a0\x1b[0m\n',
  );
  // The rules themselves, as the progress bar and explain both call them.
  const tty = { isTTY: true };
  assert.is(useColour(tty, undefined, {}), true);
  assert.is(useColour(tty, undefined, { TERM: 'dumb' }), false);
  assert.is(useColour(tty, undefined, { NO_COLOR: '1' }), false);
  assert.is(useColour(tty, undefined, { NO_COLOR: '' }), true);
  assert.is(useColour({ isTTY: false }, undefined, { FORCE_COLOR: '2' }), true);
  assert.is(useColour(tty, undefined, { FORCE_COLOR: 'false' }), false);
  assert.is(useColour({ isTTY: false }, true, {}), true);
  // The bar: its done part coloured when colour is on; no bar at all on a dumb terminal.
  const big = join(dir, 'big.trace');
  writeFileSync(big, 'malloc a 1\nfree a\n'.repeat(60000));
  const draw = (colour: boolean | undefined, env: NodeJS.ProcessEnv) => {
    const written: string[] = [];
    let now = 0;
    const stream = { isTTY: true, columns: 100, write: (text: string) => written.push(text) > 0 };
    const bar = Progress.forTrace(big, 'replay', { stream, clock: () => now, colour, env });
    now = 1000;
    bar.tick({ seq: 4096, line: 60000 });
    return { active: bar.active, text: written.join('') };
  };
  assert.match(draw(undefined, {}).text, /\x1b\[36m█+\x1b\[0m░/);
  assert.not.match(draw(undefined, { NO_COLOR: '1' }).text, /\x1b\[36m/);
  assert.match(draw(undefined, { NO_COLOR: '1' }).text, /^\r\x1b\[2Kreplay █+░+ +50%/);
  assert.not.match(draw(false, {}).text, /\x1b\[36m/);
  assert.is(draw(undefined, { TERM: 'dumb' }).active, false);
});

ptyTest('colour on a terminal, none on TERM=dumb or with NO_COLOR (through a pseudo-terminal)', () => {
  const onTerminal = (env: NodeJS.ProcessEnv) =>
    spawnSync('script', ['-qec', `"${process.execPath}" "${bin}" explain examples/trim.trace --to 0`, '/dev/null'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NO_COLOR' && k !== 'FORCE_COLOR')), ...env },
    }).stdout;
  assert.match(onTerminal({ TERM: 'xterm' }), /\x1b\[1mx = malloc\(1\)/);
  assert.not.match(onTerminal({ TERM: 'dumb' }), /\x1b\[/);
  assert.match(onTerminal({ TERM: 'dumb', FORCE_COLOR: '1' }), /\x1b\[1mx = malloc\(1\)/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
