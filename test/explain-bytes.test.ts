// `explain --bytes` against the real glibc: the words it says a call changed are exactly those in which the
// oracle's heap images before and after that call differ, with the same stored values (docs/image.md).
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readImage } from '../dist/image/files.js';
import { walkImage } from '../dist/image/walk.js';
import { chunkRows } from '../dist/image/words.js';
import { FOREIGN_MARKER, KEY_MARKER } from '../dist/image/format.js';
import { oracleImages } from '../dist/oracle/images.js';
import { Explainer } from '../dist/report/explain.js';
import { hexView } from '../dist/report/html/hex-view.js';
import { Replayer } from '../dist/replay/replayer.js';
import { parseTrace } from '../dist/trace/reader.js';
import { SHAPES, generateTrace } from '../dist/trace/generate.js';
import { formatCall } from '../dist/trace/writer.js';
import { type GlibcBuild, glibcBuilds } from './support/glibc-builds.ts';
import { mallocscope } from './support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-explain-bytes-'));
const machine = [...glibcBuilds().values()].find((b) => b.libc === '') as GlibcBuild;

/** The changed words by offset, [old, new] as stored: from the oracle's images (2-byte lanes for the tcache counts). */
function oracleChanges(trace: string, events: number): Map<number, Map<number, [bigint, bigint]>> {
  const out = join(dir, `images-${readdirSync(dir).length}`);
  oracleImages(trace, { at: 'every:1', dir: out, libc: machine.libc });
  const bySeq = new Map<number, Map<number, [bigint, bigint]>>();
  let before = { bytes: new Uint8Array(0) as Uint8Array, counts: [0, 0] };
  for (let seq = 0; seq < events; seq++) {
    const image = readImage(join(out, `heap-${seq}.img`));
    const t = image.sidecar.tcache;
    const counts = t ? [t.chunk + 16, t.chunk + 16 + 2 * t.bins] : [0, 0];
    const after = { bytes: new Uint8Array(image.bytes), counts };
    const words = new Map<number, [bigint, bigint]>();
    const read = (bytes: Uint8Array, at: number, width: number) => {
      let v = 0n;
      for (let k = width - 1; k >= 0; k--) v = (v << 8n) | BigInt(bytes[at + k] ?? 0);
      return v;
    };
    const length = Math.max(before.bytes.length, after.bytes.length);
    const shared = Math.min(before.bytes.length, after.bytes.length);
    for (let at = 0; at < length; at += 8) {
      // Most of two images' words are the same bytes: those are skipped before any word is read as a number.
      if (at + 8 <= shared) {
        let k = at;
        while (k < at + 8 && before.bytes[k] === after.bytes[k]) k++;
        if (k === at + 8) continue;
      }
      const inCounts = at >= after.counts[0] && at < after.counts[1];
      const width = inCounts ? 2 : 8;
      for (let k = at; k < at + 8; k += width) {
        const old = read(before.bytes, k, width);
        const now = read(after.bytes, k, width);
        if (old !== now) words.set(k, [old, now]);
      }
    }
    bySeq.set(seq, words);
    before = after;
  }
  return bySeq;
}

const value = (text: string): bigint => (text === 'TCACHKEY' ? KEY_MARKER : text === 'FOREIGN' ? FOREIGN_MARKER : BigInt(text));

/**
 * explain --bytes's changed words by event: offset → [old, new] as stored. The command itself for the example;
 * the Explainer it runs, in this process, for the random shapes (a process less each).
 */
async function explainChanges(trace: string, command: boolean): Promise<{ lines: string[]; bySeq: Map<number, Map<number, [bigint, bigint]>> }> {
  let lines: string[];
  if (command) {
    const run = await mallocscope(['explain', trace, '--bytes', '--glibc', machine.version]);
    assert.is(run.status, 0, run.stderr);
    lines = run.stdout.trimEnd().split('\n');
  } else {
    const explainer = new Explainer(new Replayer({ glibc: machine.version }), true);
    lines = parseTrace(readFileSync(trace, 'utf8')).flatMap((event) => {
      const { sentence, bytes } = explainer.apply(event);
      return [`#${event.seq} ${sentence}`, `    bytes: ${bytes}`];
    });
  }
  const bySeq = new Map<number, Map<number, [bigint, bigint]>>();
  let seq = -1;
  for (const line of lines) {
    const call = /^#(\d+) /.exec(line);
    if (call) {
      seq = Number(call[1]);
      continue;
    }
    const bytes = /^ {4}bytes: (.*)$/.exec(line);
    assert.ok(bytes, `a line that is neither a call nor its bytes: ${line}`);
    const words = new Map<number, [bigint, bigint]>();
    for (const m of (bytes?.[1] ?? '').matchAll(/ at \+0x([0-9a-f]+) ([^\s,;]+) → ([^\s,;]+)(?: \(stored (0x[0-9a-f]+) → (0x[0-9a-f]+)\))?/g)) {
      words.set(Number.parseInt(m[1], 16), m[4] ? [BigInt(m[4]), BigInt(m[5])] : [value(m[2]), value(m[3])]);
    }
    bySeq.set(seq, words);
  }
  return { lines, bySeq };
}

async function holdToOracle(trace: string, events: number, command = false): Promise<string[]> {
  const expected = oracleChanges(trace, events);
  const { lines, bySeq } = await explainChanges(trace, command);
  assert.is(bySeq.size, events, `${trace}: a bytes line per event`);
  for (let seq = 0; seq < events; seq++) {
    const want = [...(expected.get(seq) ?? new Map()).entries()].sort((a, b) => a[0] - b[0]);
    const got = [...(bySeq.get(seq) ?? new Map()).entries()].sort((a, b) => a[0] - b[0]);
    assert.equal(got, want, `${trace}, event ${seq}: the words explain --bytes names, against glibc's images`);
  }
  return lines;
}

test('heap-bytes.trace: the words each call changed are those glibc changed; free(b) links b to a, safe-linked', async () => {
  const lines = await holdToOracle('examples/heap-bytes.trace', 7, true);
  const freeB = lines[lines.findIndex((l) => l.startsWith('#5 ')) + 1];
  // b's next at heap +0x2c0 (0x5555555592c0) points at a's user bytes, 0x5555555592a0, stored as
  // (0x5555555592c0 >> 12) ^ 0x5555555592a0 = 0x555555559 ^ 0x5555555592a0 = 0x55500000c7f9.
  assert.match(freeB, 'next at +0x2c0 0x0 → 0x5555555592a0 (stored 0x0 → 0x55500000c7f9), key at +0x2c8 0x0 → TCACHKEY');
  assert.match(freeB, 'counts[0] at +0x10 1 → 2, entries[0] at +0x90 0x5555555592a0 → 0x5555555592c0');
});

test("2.42's tcache struct (model only: that build is not on this machine): its uint16 array is num_slots, free slots that fall as entries come", () => {
  const explainer = new Explainer(new Replayer({ glibc: '2.42' }), true);
  const lines = parseTrace(readFileSync('examples/heap-bytes.trace', 'utf8')).map((event) => explainer.apply(event).bytes ?? '');
  // 76 bins: the struct's request is 76 * 2 + 76 * 8 = 760 bytes, its chunk (760 + 8 + 15) & ~15 = 0x300, so a is
  // at +0x300 (user 0x555555559310), b at +0x320 (user 0x555555559330), entries[0] at 0x10 + 2 * 76 = +0xa8.
  // b's next: (0x555555559330 >> 12) ^ 0x555555559310 = 0x555555559 ^ 0x555555559310 = 0x55500000c649.
  // num_slots[0] starts at the fill, 7, and each entry takes a slot: free(a) 7 → 6, free(b) 6 → 5.
  assert.match(lines[4], 'num_slots[0] at +0x10 7 → 6, entries[0] at +0xa8 0x0 → 0x555555559310');
  assert.match(lines[5], 'num_slots[0] at +0x10 6 → 5, entries[0] at +0xa8 0x555555559310 → 0x555555559330');
  assert.match(lines[5], 'next at +0x330 0x0 → 0x555555559310 (stored 0x0 → 0x55500000c649), key at +0x338 0x0 → TCACHKEY');
  assert.not.match(lines.join('\n'), 'counts[');
  // The report's hex card of the struct after free(c) (1216 bytes: no tcache bin): bin 0 holds 2, so 7 - 2 = 5
  // free slots, the other bins 7; its size word 0x300 with P (nothing before it).
  const m = explainer.replayer.model;
  const { shown } = hexView(m, 6, m.system.heapStart);
  assert.is(shown.state, 'tcache struct');
  assert.equal(
    shown.words.slice(0, 3).map((w) => w.field),
    ['prev_size', 'size', 'num_slots[0..3]'],
  );
  assert.is(shown.words[2].stored, '0x7000700070005');
  assert.match(hexView(m, 6, m.system.heapStart).html, '0x301 = 0x300 | P');
});

test("a main-arena block freed by thread 2 goes to thread 2's tcache: glibc's image has no word changed, and the line says why", async () => {
  const path = join(dir, 'threaded.trace');
  writeFileSync(path, 'malloc a 24\nmalloc b 24\nmalloc g 24\nspawn 2\n@2 free a\n@2 malloc x 40\n');
  const lines = await holdToOracle(path, 6);
  const bytesOf = (seq: number) => lines[lines.findIndex((l) => l.startsWith(`#${seq} `)) + 1];
  assert.is(
    bytesOf(4),
    "    bytes: no word of main_arena's heap image changed: the chunk went to thread 2's tcache, which images leave out (glibc wrote its next and key in the chunk)",
  );
  // x comes from thread 2's arena: nothing of main_arena's heap, and no tcache to blame.
  assert.is(bytesOf(5), "    bytes: no word of main_arena's heap image changed");
});

test("a fastbin chunk's words in glibc's image are named as the walk found them: fd, and no bk", () => {
  // Seven frees fill tcache bin 0; the eighth 32-byte chunk goes to fastbin 0. The chunks follow the 0x290-byte
  // tcache struct, 0x20 apart: the eighth is at 0x290 + 7 * 0x20 = +0x370.
  const path = join(dir, 'fastbin.trace');
  const ids = [1, 2, 3, 4, 5, 6, 7, 8];
  writeFileSync(path, `${ids.map((i) => `malloc a${i} 24`).join('\n')}\nmalloc guard 24\n${ids.map((i) => `free a${i}`).join('\n')}\n`);
  const out = join(dir, 'fastbin-images');
  oracleImages(path, { at: 'every:1', dir: out, libc: machine.libc });
  const image = readImage(join(out, 'heap-16.img'));
  const walk = walkImage(image.bytes, image.sidecar);
  const { chunk, rows } = chunkRows(image, walk, 0x370);
  assert.is(chunk?.state, 'fastbin');
  assert.equal(
    rows.flatMap((r) => r.words.map((w) => [w.at, w.field, w.mangled])),
    [
      [0x370, 'prev_size', false],
      [0x378, 'size', false],
      [0x380, 'fd', true],
      [0x388, 'unused +0x8', false],
    ],
  );
});

for (const [shape, seed, events] of [
  ['fastbin-fifo', 5, 80],
  ['small-and-large', 3, 60],
] as const) {
  test(`${shape} (seed ${seed}): every call's changed words are glibc's`, async () => {
    const spec = SHAPES.find((s) => s.name === shape);
    if (!spec) throw new Error(`no shape ${shape}`);
    const path = join(dir, `${shape}-${seed}.trace`);
    writeFileSync(path, `${[...generateTrace(spec, seed, events)].map((call) => formatCall(call)).join('\n')}\n`);
    await holdToOracle(path, events);
  });
}

test.run();
