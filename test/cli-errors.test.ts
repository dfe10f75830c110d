// Bad input and bad usage across the commands, as a person meets them: one line naming what is wrong, with a
// code, exit 1 for bad input and 2 for bad usage, and no half-written output.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mallocscope } from './support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-cli-'));

/** The command, in-process (test/support/cli.ts). */
const run = (args: string[]) => mallocscope(args);

test('report -o to a path that cannot be written: OUTPUT_OPEN at once, exit 1', async () => {
  const missing = join(dir, 'no-such-folder', 'r.html');
  const r = await run(['report', 'examples/trim.trace', '-o', missing]);
  assert.is(r.status, 1);
  assert.is(r.stderr, `mallocscope: cannot write ${missing}: no such file or directory [OUTPUT_OPEN]\n`);
  const onDir = await run(['report', 'examples/trim.trace', '-o', dir]);
  assert.is(onDir.stderr, `mallocscope: cannot write ${dir}: is a directory [OUTPUT_OPEN]\n`);
});

test('report of a bad trace: the trace error, and no report file left behind', async () => {
  const bad = join(dir, 'bad.trace');
  writeFileSync(bad, 'malloc a 1\nfree b\n');
  const out = join(dir, 'bad.html');
  const r = await run(['report', bad, '-o', out]);
  assert.is(r.status, 1);
  assert.is(r.stderr, `mallocscope: ${bad}:2: free of ID 'b', which is not live [TRACE_ID_NOT_LIVE]\n`);
  assert.not.ok(existsSync(out));
});

test('a threaded trace: replay, check and report follow the threads', async () => {
  const threads = join(dir, 'threads.trace');
  writeFileSync(threads, 'malloc a 100\nspawn 2\n@2 malloc b 100\n@2 exit\n');
  // Every line carries its thread once the trace has threads, as the oracle writes it (line 0 included).
  const jsonl = await run(['replay', threads, '--jsonl']);
  assert.is(jsonl.status, 0, jsonl.stderr);
  const lines = jsonl.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  assert.equal(
    lines.map((l) => l.thread),
    [1, 1, 2, 2],
  );
  assert.is(lines[2].arenaIndex, 1);
  assert.is(lines[2].heapIndex, 0);
  const check = await run(['check', threads, '--stats']);
  assert.is(check.status, 0, check.stderr);
  assert.match(check.stdout, /all 4 events agree with glibc/);
  const report = await run(['report', threads, '-o', join(dir, 't.html'), '--cores', '2']);
  assert.is(report.status, 0, report.stderr);
  const page = readFileSync(join(dir, 't.html'), 'utf8');
  const meta = JSON.parse(/<script type="application\/json" id="meta">(.*?)<\/script>/s.exec(page)![1]);
  assert.equal([meta.arenas, meta.threads, meta.setup.cores], [2, [1, 2], 2]);
  // A tag is a thread line even when it names thread 1, as for the oracle (which then prints `thread`).
  const tagged = join(dir, 'tagged.trace');
  writeFileSync(tagged, '@1 malloc a 100\nfree a\n');
  const taggedRun = await run(['replay', tagged, '--jsonl']);
  assert.equal(
    taggedRun.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).thread),
    [1, 1],
  );
});

test('explain --from past the end says how many events there are, exit 2', async () => {
  const r = await run(['explain', 'examples/trim.trace', '--from', '99']);
  assert.is(r.status, 2);
  assert.is(
    r.stderr,
    'mallocscope: --from 99 is past the end: examples/trim.trace has 7 events (0 to 6) (run `mallocscope explain --help` for usage) [USAGE]\n',
  );
});

test('help: mallocscope alone and help NAME print it on stdout, exit 0; an unknown command says so', async () => {
  const bare = await run([]);
  assert.is(bare.status, 0);
  assert.match(bare.stdout, /^Usage: mallocscope \[options\] \[command\]\n/);
  assert.match(bare.stdout, /\n {2}replay \[options\] <trace>/);
  assert.is(bare.stderr, '');
  const help = await run(['help', 'replay']);
  assert.is(help.status, 0);
  assert.match(help.stdout, /^Usage: mallocscope replay \[options\] <trace>\n/);
  const helpHelp = await run(['help', 'help']);
  assert.is(helpHelp.status, 0);
  assert.is(helpHelp.stdout, bare.stdout);
  assert.is(helpHelp.stderr, '');
  for (const r of [bare, help]) assert.not.match(r.stdout + r.stderr, /outputHelp/);
  const unknownHelp = await run(['help', 'frob']);
  assert.is(unknownHelp.status, 2);
  assert.is(unknownHelp.stdout, '');
  assert.is(unknownHelp.stderr, "mallocscope: unknown command 'frob' (run `mallocscope --help` for usage) [USAGE]\n");
  const typo = await run(['explian', 'examples/trim.trace']);
  assert.is(typo.status, 2);
  assert.is(typo.stderr, "mallocscope: unknown command 'explian' (Did you mean explain?) (run `mallocscope --help` for usage) [USAGE]\n");
});

test('each command the overview lists, named first, finds its own module: its --help is what help NAME prints', async () => {
  // `mallocscope NAME ...` loads only the module main.ts lists NAME under; `help NAME` loads them all. A name
  // listed under the wrong module would be an unknown command when named first.
  const overview = (await run(['--help'])).stdout;
  const names = [...overview.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]).filter((name) => name !== 'help');
  assert.ok(names.length >= 15, overview);
  for (const name of names) {
    const own = await run([name, '--help']);
    const all = await run(['help', name]);
    assert.is(own.status, 0, name);
    assert.match(own.stdout, new RegExp(`^Usage: mallocscope ${name} `));
    assert.is(own.stdout, all.stdout, name);
  }
});

test("usage errors point to the command's own help; an unknown option after record suggests --", async () => {
  const option = await run(['replay', 'examples/trim.trace', '--nope']);
  assert.is(option.status, 2);
  assert.is(option.stderr, "mallocscope: unknown option '--nope' (run `mallocscope replay --help` for usage) [USAGE]\n");
  const argument = await run(['compare']);
  assert.is(argument.stderr, "mallocscope: missing required argument 'trace' (run `mallocscope compare --help` for usage) [USAGE]\n");
  const record = await run(['record', 'perl', '-e', '1']);
  assert.is(record.status, 2);
  assert.is(
    record.stderr,
    "mallocscope: unknown option '-e': if it is an option of the program, put -- before the program (mallocscope record [options] -- PROGRAM [ARGS...]) (run `mallocscope record --help` for usage) [USAGE]\n",
  );
});

test('explain writes huge requests exactly, as the trace does (not as rounded doubles)', async () => {
  const huge = join(dir, 'huge.trace');
  writeFileSync(huge, 'malloc b 0xffffffffffffffff\ncalloc c 0x100000000 0x100000001\n');
  const r = await run(['explain', huge]);
  assert.is(r.status, 0, r.stderr);
  assert.is(
    r.stdout,
    '#0 b = malloc(18446744073709551615): request 18446744073709551615 is above PTRDIFF_MAX → NULL (ENOMEM)\n' +
      '#1 c = calloc(4294967296, 4294967297): 4294967296 × 4294967297 overflows size_t → NULL (ENOMEM)\n',
  );
});

test('check - is refused: both replays must read the trace', async () => {
  const r = await run(['check', '-']);
  assert.is(r.status, 2);
  assert.match(r.stderr, /^mallocscope: check needs a trace file, not standard input .*\[USAGE\]\n$/);
});

test('a directory, an empty file and a comments-only file', async () => {
  const dirRun = await run(['replay', dir]);
  assert.is(dirRun.status, 1);
  assert.is(dirRun.stderr, `mallocscope: ${dir}: cannot read: is a directory [TRACE_OPEN]\n`);
  const empty = join(dir, 'empty.trace');
  writeFileSync(empty, '');
  assert.match((await run(['replay', empty])).stdout, /^events\s+0$/m);
  const comments = join(dir, 'comments.trace');
  writeFileSync(comments, '# nothing\n\n   # at all\n');
  const jsonl = await run(['replay', comments, '--jsonl']);
  assert.is(jsonl.status, 0);
  assert.is(jsonl.stdout, '');
});

test.run();
