// `mallocscope report`: the checkpoints and the packed events round-trip exactly, and the page works in a
// real browser (headless Chromium through playwright-core): it loads with no console error, the slider and
// the arrow keys change the heap map and the sentence, a click on the timeline picks that event; the same on a
// million-event trace, whose load time is printed and whose file stays within a few MB.
//
// Chromium: Debian's package at /usr/bin/chromium. When it is missing this test installs it
// (apt-get install -y chromium, after apt-get update if needed) and fails with a clear message if it cannot.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Replayer } from '../src/allocator/replay.ts';
import { walkBins, walkHeap, walkMmapped } from '../src/allocator/walk.ts';
import { restoreCheckpoint, takeCheckpoint } from '../src/report/checkpoint.ts';
import { EventColumns, EventEncoder } from '../src/report/html/codec.ts';
import { buildReport } from '../src/report/report.ts';
import type { TraceEvent } from '../src/trace/api.ts';
import { generateTrace, shapeByName } from '../src/trace/generate.ts';
import { parseTrace } from '../src/trace/reader.ts';
import { formatTrace } from '../src/trace/writer.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const CHROMIUM = '/usr/bin/chromium';
// The benchmark's recorded cc1 trace when it has been recorded (npm run bench); else a generated one.
const BIG_RECORDED = join(ROOT, 'bench/.cache/cc1-large.trace');
const work = mkdtempSync(join(tmpdir(), 'mallocscope-report-'));

function generated(shape: string, seed: number, events: number): string {
  return formatTrace(generateTrace(shapeByName(shape)!, seed, events));
}

/** A short trace for teaching: small blocks, a block above the threshold, frees that fill the bins. */
const TEACHING = `# a small walk through glibc malloc
malloc a 100
malloc b 200
malloc c 1000
malloc d 24
malloc e 5000
malloc f 40
free b
free d
free f
malloc big 200000
free c
free big
malloc big2 180000
malloc g 3000
free e
malloc h 90
free a
malloc i 2000
free g
trim 0
`;

// ---- the model's state and the events, packed and back ----------------------------------------------------

function sameState(a: Replayer, b: Replayer, where: string): void {
  assert.equal(walkHeap(a.arena), walkHeap(b.arena), `${where}: heap`);
  assert.equal(walkMmapped(a.arena), walkMmapped(b.arena), `${where}: mmapped`);
  assert.equal(walkBins(a.arena), walkBins(b.arena), `${where}: bins`);
  assert.is(a.liveBytes, b.liveBytes, `${where}: live bytes`);
  assert.is(a.arena.systemMem, b.arena.systemMem, `${where}: system_mem`);
  assert.is(a.arena.policy.mmapThreshold, b.arena.policy.mmapThreshold, `${where}: threshold`);
}

test('a restored checkpoint replays on exactly as the original (every shape family)', () => {
  for (const shape of ['everything', 'mallopt-mix', 'realloc-mixed', 'memalign-large', 'huge', 'trim-mix', 'mxfast']) {
    const events = parseTrace(generated(shape, 3, 6000));
    const straight = new Replayer();
    const every = 700;
    let restored: Replayer | null = null;
    for (const event of events) {
      if (event.seq % every === 0 && event.seq > 0) {
        const bytes = takeCheckpoint(straight);
        restored = restoreCheckpoint(bytes, { policy: 'glibc', system: { commitLimit: totalmem() } });
        sameState(restored, straight, `${shape} at ${event.seq}`);
      }
      const a = straight.apply(event);
      const expected = { where: a.where, chunk: a.chunk, offset: a.offset, syscalls: a.syscalls.slice(), t: a.mmapThreshold };
      if (restored) {
        const b = restored.apply(event);
        assert.equal({ where: b.where, chunk: b.chunk, offset: b.offset, syscalls: b.syscalls.slice(), t: b.mmapThreshold }, expected, `${shape} event ${event.seq}`);
      }
    }
    if (restored) sameState(restored, straight, `${shape} at the end`);
  }
});

test('events pack and unpack to what the reader made (ids, slots, lines, numbers)', () => {
  const text = `${TEACHING}\n# a gap\n\nmallopt M_TRIM_THRESHOLD -1\nmallopt M_MMAP_THRESHOLD 65536\ncalloc x 3 77\nmemalign y 4096 100\nrealloc x 9000\nrealloc x 0\nrealloc z 10\nfree y\nmalloc y 18446744073709551615\n${generated('everything', 9, 3000)}`;
  const events = parseTrace(text);
  const encoder = new EventEncoder();
  for (const event of events) encoder.add(event);
  const columns = new EventColumns(events.length, {
    ops: encoder.ops.take(),
    slots: encoder.slots.take(),
    nums: encoder.nums.take(),
    lines: encoder.lines.take(),
    ids: encoder.idTable(),
  });
  const plain = (e: TraceEvent) => JSON.parse(JSON.stringify(e, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)));
  for (const event of events) assert.equal(plain(columns.event(event.seq)), plain(event), `event ${event.seq}`);
});

// ---- the page in a browser ---------------------------------------------------------------------------------

function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // apt's output can pass spawnSync's 1 MiB default, which would kill it half-way.
  const options = { encoding: 'utf8' as const, env, maxBuffer: 64 * 1024 * 1024 };
  let run = spawnSync('apt-get', ['install', '-y', '-q', 'chromium'], options);
  if (run.status !== 0) {
    spawnSync('apt-get', ['update', '-q'], options);
    run = spawnSync('apt-get', ['install', '-y', '-q', 'chromium'], options);
  }
  if (run.status !== 0 || !existsSync(CHROMIUM)) {
    throw new Error(`the report tests need headless Chromium at ${CHROMIUM}; 'apt-get install -y chromium' failed (exit ${run.status}): ${(run.stderr || String(run.error ?? '')).trim().split('\n').slice(-3).join(' | ')}`);
  }
}

type Browser = import('playwright-core').BrowserContext;
type Page = import('playwright-core').Page;

async function openBrowser(): Promise<Browser> {
  ensureChromium();
  let playwright: typeof import('playwright-core');
  try {
    playwright = await import('playwright-core');
  } catch {
    throw new Error('the report tests need playwright-core (a devDependency): run npm install');
  }
  const profile = mkdtempSync(join(work, 'profile-'));
  return playwright.chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

interface Shown {
  seq: number;
  signature: string;
  chunks: number;
  sentence: string;
  title: string;
}

async function shown(page: Page): Promise<Shown> {
  await page.evaluate(() => window.mallocscope.drawn());
  return page.evaluate(() => {
    const map = document.getElementById('heapmap')!;
    return {
      seq: window.mallocscope.seq,
      signature: map.dataset.signature ?? '',
      chunks: Number(map.dataset.chunks),
      sentence: document.getElementById('explanation')!.textContent ?? '',
      title: document.getElementById('event-title')!.textContent ?? '',
    };
  });
}

/** Opens a report, checks the page end to end, saves screenshots; returns the load time in ms. */
async function exercise(browser: Browser, file: string, events: number, shots: { name: string; at?: number }[]): Promise<number> {
  const page = await browser.newPage();
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('request', (request) => {
    if (!request.url().startsWith('file:')) requests.push(request.url());
  });
  const started = Date.now();
  await page.goto(`file://${file}`);
  await page.waitForFunction(() => window.mallocscope && (window.mallocscope.ready || window.mallocscope.error !== undefined), null, { timeout: 120_000 });
  const loadMs = Date.now() - started;
  const error = await page.evaluate(() => window.mallocscope.error);
  assert.is(error, undefined, `the page failed: ${error}`);

  const first = await shown(page);
  assert.is(first.seq, 0);
  assert.ok(first.sentence.length > 10, 'event 0 has a sentence');
  assert.match(first.title, `of ${events.toLocaleString('en-US')}`);

  // The slider: to a third of the way, then the arrow keys on it.
  const third = Math.floor(events / 3);
  await page.locator('#slider').fill(String(third));
  const moved = await shown(page);
  assert.is(moved.seq, third, 'the slider picks the event');
  assert.is.not(moved.signature, first.signature, 'the heap map changed');
  assert.is.not(moved.sentence, first.sentence, 'the sentence changed');
  await page.locator('#slider').focus();
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowRight');
  const stepped = await shown(page);
  assert.is(stepped.seq, third + 2, 'two presses of → step two events');
  await page.keyboard.press('ArrowLeft');
  assert.is((await shown(page)).seq, third + 1, '← steps back');

  // A click on the timeline picks the event under the pointer.
  const box = (await page.locator('#timeline').boundingBox())!;
  const plot = await page.evaluate(() => {
    const canvas = document.getElementById('timeline')!;
    return { left: Number(canvas.dataset.plotLeft), right: Number(canvas.dataset.plotRight) };
  });
  const fraction = 0.8;
  const x = plot.left + fraction * (plot.right - plot.left);
  await page.mouse.click(box.x + x, box.y + 60);
  const clicked = await shown(page);
  const expected = Math.floor(fraction * events);
  assert.ok(Math.abs(clicked.seq - expected) <= Math.max(1, events / 1000), `the click picked event ${clicked.seq}, expected about ${expected}`);
  assert.ok(clicked.chunks > 0, 'the heap map draws chunks');

  // A tooltip on the heap map names the chunk and the call that made it.
  const mapBox = (await page.locator('#heapmap').boundingBox())!;
  await page.mouse.move(mapBox.x + 110, mapBox.y + 14);
  const tip = await page.evaluate(() => {
    const t = document.getElementById('tooltip')!;
    return t.hidden ? '' : t.textContent ?? '';
  });
  assert.match(tip, /size 0x[0-9a-f]+/, 'the tooltip gives the size');
  assert.match(tip, /made by|set up by the allocator/, 'the tooltip names the call that made the chunk');
  await page.mouse.move(0, 0);

  for (const shot of shots) {
    if (shot.at !== undefined) {
      await page.evaluate((seq) => window.mallocscope.select(seq), shot.at);
      await shown(page);
    }
    await page.screenshot({ path: shot.name, fullPage: true });
    assert.ok(statSync(shot.name).size > 10_000, `screenshot ${shot.name}`);
  }
  assert.equal(problems, [], 'no console errors');
  assert.equal(requests, [], 'no network requests');
  await page.close();
  return loadMs;
}

test('the report page works in Chromium (a teaching trace; MALLOCSCOPE_UPDATE_SCREENSHOT=1 refreshes docs/report.png)', async () => {
  const traceFile = join(work, 'teaching.trace');
  // A teaching trace followed by a few hundred generated calls around the threshold, so that every kind of
  // chunk and a threshold move show.
  writeFileSync(traceFile, `${TEACHING}${generated('threshold-and-small', 4, 600)}`);
  const report = await buildReport(traceFile, { title: 'teaching.trace' });
  const file = join(work, 'teaching.html');
  writeFileSync(file, report.html);
  assert.ok(report.sizes.html < 1_000_000, `a small trace gives a small page (${report.sizes.html} bytes)`);
  const browser = await openBrowser();
  try {
    const events = report.events;
    const shots = [{ name: join(work, 'teaching.png'), at: 18 }];
    // The README's screenshot is refreshed only on request: a test run leaves the repository as it was.
    if (process.env.MALLOCSCOPE_UPDATE_SCREENSHOT) {
      mkdirSync(join(ROOT, 'docs'), { recursive: true });
      shots.push({ name: join(ROOT, 'docs', 'report.png'), at: 18 });
    }
    await exercise(browser, file, events, shots);
    console.log(`  teaching report: ${events} events, ${(report.sizes.html / 1024).toFixed(0)} KiB, screenshot ${join(work, 'teaching.png')}`);
  } finally {
    await browser.close();
  }
});

test('the report page works on a million-event trace, and its file stays within a few MB', async () => {
  let traceFile = BIG_RECORDED;
  if (!existsSync(traceFile)) {
    traceFile = join(work, 'million.trace');
    writeFileSync(traceFile, generated('threshold-and-small-many', 11, 1_000_000));
  }
  const built = Date.now();
  const report = await buildReport(traceFile);
  const buildMs = Date.now() - built;
  const file = join(work, 'million.html');
  writeFileSync(file, report.html);
  assert.ok(report.events >= 900_000, `a million-event trace (${report.events})`);
  assert.ok(report.sizes.html < 6 * 1024 * 1024, `the page is ${(report.sizes.html / 2 ** 20).toFixed(2)} MiB, more than a few MB`);
  const browser = await openBrowser();
  try {
    const loadMs = await exercise(browser, file, report.events, [{ name: join(work, 'million.png') }]);
    console.log(
      `  ${traceFile}: ${report.events} events, page ${(report.sizes.html / 2 ** 20).toFixed(2)} MiB (${report.checkpoints} checkpoints), built in ${buildMs} ms, loaded in Chromium in ${loadMs} ms`,
    );
  } finally {
    await browser.close();
  }
});

test.after(() => {
  if (!process.env.MALLOCSCOPE_KEEP_REPORTS) rmSync(work, { recursive: true, force: true });
  else console.log(`  reports kept in ${work}`);
});

test.run();
