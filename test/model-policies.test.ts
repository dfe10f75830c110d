// The model's policies against the real glibc (the oracle): a policy must place every block exactly where
// glibc does after the mallopt call it stands for (src/policy/: fixed:N ≡ mallopt M_MMAP_THRESHOLD N,
// heap ≡ mallopt M_MMAP_MAX 0, mmap ≡ mallopt M_MMAP_THRESHOLD 0; docs/glibc.md §2, §3).
// The oracle runs the trace with the mallopt as its first line; the model runs it without that line, under the
// policy, with the invariants checked after every event. The JSON lines (with --stats) after the oracle's first
// must equal the model's, seq shifted by one. The differential() check of the same mallopt trace under the glibc
// policy must agree as well (the model executing the mallopt itself).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Replayer, differential } from '../dist/index.js';
import { oracleLines } from '../dist/check/differential.js';
import { contractFields, statsFields } from '../dist/report/jsonl.js';
import { readTrace } from '../dist/trace/reader.js';

const dir = mkdtempSync(join(tmpdir(), 'mallocscope-policies-'));
let files = 0;

function traceFile(text: string): string {
  const path = join(dir, `t${files++}.trace`);
  writeFileSync(path, text);
  return path;
}

/** The lines of the model replaying `path` under `policy`, seq as in the oracle's trace (one line later). */
function modelLines(path: string, policy: string): string[] {
  const replayer = new Replayer({ policy, checkInvariants: true });
  const lines: string[] = [];
  for (const event of readTrace(path)) {
    const outcome = replayer.apply(event);
    const line = `${contractFields(outcome)}${statsFields(replayer.mallinfo2())}}`;
    lines.push(line.replace(/^\{"seq":(\d+),/, (_, seq: string) => `{"seq":${Number(seq) + 1},`));
  }
  return lines;
}

/** Asserts: the model under `policy` on `body` ≡ the oracle on `mallopt` + `body`. */
function agrees(policy: string, mallopt: string, body: string): void {
  const oracle = oracleLines(traceFile(`${mallopt}\n${body}`), { stats: true });
  const model = modelLines(traceFile(body), policy);
  assert.is(oracle.length, model.length + 1);
  for (let i = 0; i < model.length; i++) assert.is(model[i], oracle[i + 1], `event ${i} of the body`);
  // The same trace with its mallopt, under the glibc policy, through differential().
  const withMallopt = differential(traceFile(`${mallopt}\n${body}`), { stats: true, checkInvariants: true });
  assert.is(withMallopt.difference, null, JSON.stringify(withMallopt.difference));
}

/** Frees of mmapped chunks (which would slide glibc's threshold), requests around the usual thresholds. */
const MIXED = `malloc a 100
malloc b 200000
free b
malloc c 200000
malloc d 1048576
realloc d 2097152
free d
malloc e 300000
calloc f 1 300000
memalign g 4096 300000
free g
realloc a 150000
malloc h 131049
malloc i 131048
malloc j 1052664
malloc k 1052648
free c
free e
trim 0
malloc l 41943040
free l
malloc m 200000
`;

/** Small blocks, bins, consolidation, realloc in and out of the heap. */
const SMALL = `malloc a 24
malloc b 100
malloc c 1000
free a
free b
calloc d 1 24
memalign e 256 100
realloc c 5000
malloc f 0x500
realloc f 100
free c
free e
malloc g 132000
malloc h 132000
free g
free h
`;

for (const n of [131072, 200000, 0x101000, 4096, 33554432]) {
  for (const [name, body] of [
    ['mixed', MIXED],
    ['small', SMALL],
  ] as const) {
    test(`§3 policy fixed:${n} ≡ mallopt M_MMAP_THRESHOLD ${n} (oracle, ${name} trace)`, () => {
      agrees(`fixed:${n}`, `mallopt M_MMAP_THRESHOLD ${n}`, body);
    });
  }
}

for (const [name, body] of [
  ['mixed', MIXED],
  ['small', SMALL],
] as const) {
  test(`§2 policy heap ≡ mallopt M_MMAP_MAX 0 (oracle, ${name} trace)`, () => {
    agrees('heap', 'mallopt M_MMAP_MAX 0', body);
  });
  test(`§2 policy mmap ≡ mallopt M_MMAP_THRESHOLD 0 (oracle, ${name} trace)`, () => {
    agrees('mmap', 'mallopt M_MMAP_THRESHOLD 0', body);
  });
}

test('§3 policy glibc is the default: the model without mallopt agrees with the oracle (mixed and small traces)', () => {
  for (const body of [MIXED, SMALL]) {
    const result = differential(traceFile(body), { stats: true, checkInvariants: true, policy: 'glibc' });
    assert.is(result.difference, null, JSON.stringify(result.difference));
  }
});

test.run();
