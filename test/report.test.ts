// `mallocscope report`: the checkpoints and the packed events round-trip exactly, and the page works in a
// real browser (headless Chromium through playwright-core): it loads with no console error, the slider and
// the arrow keys change the heap map and the sentence, a click on the timeline picks that event; the same on a
// million-event trace, whose load time is printed and whose file stays within a few MB. On the README's
// example (examples/growing-buffers.trace) the drawing is read back pixel by pixel: the threshold lane steps
// at the event that moved it, the heap and mmapped areas are stacked under the footprint line; the URL's
// #event opens that event and follows the slider; the page prints addresses as offsets from the heap start.
//
// Chromium: Debian's chromium-headless-shell at /usr/bin/chromium-headless-shell (Chromium's old headless
// shell, which Playwright too drives for headless runs: it starts and draws for about half the CPU of the full
// browser), else Debian's chromium, or the browser MALLOCSCOPE_CHROMIUM names. This test never installs
// anything: without a browser, or without playwright-core, its browser tests are skipped with the reason
// (.ci/run installs chromium-headless-shell for CI).
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unless } from './support/skip.ts';
import { Replayer } from '../dist/replay/replayer.js';
import { walkBins, walkHeap, walkMmapped } from '../dist/allocator/walk.js';
import { restoreCheckpoint, takeCheckpoint } from '../dist/report/checkpoint.js';
import { Explainer } from '../dist/report/explain.js';
import { EventColumns, EventEncoder, float64Of, unpackSections } from '../dist/report/html/codec.js';
import type { ReportMeta } from '../dist/report/html/template.js';
import { buildReport, pageScript } from '../dist/report/report.js';
import { anatomyOfTrace } from '../dist/report/anatomy.js';
import { runOracleSync } from '../dist/oracle/oracle.js';
import { oracleImages } from '../dist/oracle/images.js';
import { readImage } from '../dist/image/files.js';
import { KEY_MARKER } from '../dist/image/format.js';
import { walkImage } from '../dist/image/walk.js';
import { syscallProse, syscallText } from '../dist/report/syscall-text.js';
import type { TraceEvent } from '../dist/trace/api.js';
import { THREAD_SHAPES, generateTrace, shapeByName } from '../dist/trace/generate.js';
import { parseTrace, readTrace } from '../dist/trace/reader.js';
import { TraceWriter, formatTrace } from '../dist/trace/writer.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
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

// ---- one spelling of system calls, one page script ----------------------------------------------------------

test("system calls are spelled as docs/trace-format.md's table in the contract's form, and the same words in a sentence", () => {
  const calls = [
    { call: 'brk', bytes: 135168 },
    { call: 'brk', bytes: -102400 },
    { call: 'mmap', bytes: 200704 },
    { call: 'munmap', bytes: 200704 },
    { call: 'mremap', from: 1052672, bytes: 8192 },
    { call: 'madvise', bytes: 4096 },
    { call: 'brk', bytes: 2n ** 64n - 4096n, failed: true },
  ] as const;
  assert.equal(
    calls.map((c) => syscallText(c)),
    ['brk +135168', 'brk -102400', 'mmap 200704', 'munmap 200704', 'mremap 1052672->8192', 'madvise 4096', 'brk +18446744073709547520 failed'],
  );
  assert.equal(
    calls.map((c) => syscallProse(c)),
    ['brk +135168', 'brk −102400', 'mmap 200704', 'munmap 200704', 'mremap 1052672 → 8192', 'madvise 4096', 'brk +18446744073709547520 (failed)'],
  );
  assert.is(
    syscallProse(calls[4], (n) => `${Number(n) / 1024} KiB`),
    'mremap 1028 KiB → 8 KiB',
  );
});

test("the page's script is the build's browser bundle: no Node module or global in it", () => {
  const script = pageScript();
  assert.ok(script.length > 10_000, `the bundle (${script.length} bytes)`);
  assert.not.match(script, /\b(require|Buffer|process|__dirname)\s*[.(]/, 'no Node global');
  assert.not.match(script, /["']node:/, 'no Node module');
});

// ---- the model's state and the events, packed and back ----------------------------------------------------

function sameState(a: Replayer, b: Replayer, where: string): void {
  assert.equal(walkHeap(a.model.main), walkHeap(b.model.main), `${where}: heap`);
  assert.equal(walkMmapped(a.model.main), walkMmapped(b.model.main), `${where}: mmapped`);
  assert.is(a.liveBytes, b.liveBytes, `${where}: live bytes`);
  assert.is(a.model.mp.mmapThreshold, b.model.mp.mmapThreshold, `${where}: threshold`);
  // Every arena's bins, top and counters, its place in the ring and on the free list, its heaps.
  const arenaOf = (arena: { index: number } | null) => (arena === null ? -1 : arena.index);
  const arenas = (r: Replayer) =>
    r.model.arenas.map((av) => ({
      index: av.index,
      bins: walkBins(av),
      systemMem: av.systemMem,
      maxSystemMem: av.maxSystemMem,
      attached: av.attachedThreads,
      next: av.next.index,
      nextFree: arenaOf(av.nextFree),
      heap: av.heap?.base ?? -1,
    }));
  assert.equal(arenas(a), arenas(b), `${where}: arenas`);
  const heaps = (r: Replayer) =>
    [...r.model.heaps].map(([key, h]) => ({
      key,
      base: h.base,
      size: h.size,
      mprotect: h.mprotectSize,
      prev: h.prev?.base ?? -1,
      arena: arenaOf(h.arena),
      index: h.index,
    }));
  assert.equal(heaps(a), heaps(b), `${where}: heaps`);
  // Every thread's tcache and arena, the running one, the stack cache, arena_get2's state.
  const threads = (r: Replayer) =>
    [...r.model.threads.values()].map((t) => ({
      id: t.id,
      arena: arenaOf(t.arena),
      dtv: t.dtv,
      ready: t.tcache.ready,
      struct: t.tcache.structChunk,
      head: [...t.tcache.head],
      counts: [...t.tcache.counts],
    }));
  assert.equal(threads(a), threads(b), `${where}: threads`);
  const process = (r: Replayer) => ({
    thread: r.model.thread.id,
    tcacheIsThreads: r.model.tcache === r.model.thread.tcache,
    freeList: arenaOf(r.model.freeList),
    nextToUse: arenaOf(r.model.nextToUse),
    narenas: r.model.narenas,
    limit: r.model.narenasLimit,
    stacks: [...r.model.cachedStacks],
    multi: r.model.multiThreaded,
    aligned: r.model.alignedHeapArea,
  });
  assert.equal(process(a), process(b), `${where}: the process`);
}

test('a restored checkpoint replays on exactly as the original (every shape family, the threaded ones too)', () => {
  const single = ['everything', 'mallopt-mix', 'realloc-mixed', 'memalign-large', 'huge', 'trim-mix', 'mxfast'];
  // The threaded shapes on 2 CPUs (16 arenas at most), shorter: their checkpoints hold every arena and thread.
  const threaded = THREAD_SHAPES.map((shape) => shape.name);
  for (const shape of [...single, ...threaded]) {
    const isThreaded = threaded.includes(shape);
    const events = parseTrace(generated(shape, 3, isThreaded ? 1200 : 6000));
    const cores = 2;
    const straight = new Replayer({ cores });
    const glibc = straight.model.glibc.version;
    const every = isThreaded ? 150 : 700;
    let restored: Replayer | null = null;
    for (const event of events) {
      if (event.seq % every === 0 && event.seq > 0) {
        const bytes = takeCheckpoint(straight);
        // Restored on a model told another CPU count: the checkpoint's own count must win.
        restored = restoreCheckpoint(bytes, { policy: 'glibc', glibc, system: { commitLimit: totalmem() }, cores: 64 });
        sameState(restored, straight, `${shape} at ${event.seq}`);
      }
      const a = straight.apply(event);
      const expected = {
        where: a.where,
        chunk: a.chunk,
        offset: a.offset,
        arena: a.where === 'heap' ? a.arenaIndex : null,
        heap: a.where === 'heap' ? a.heapIndex : null,
        syscalls: a.syscalls.slice(),
        t: a.mmapThreshold,
      };
      if (restored) {
        const b = restored.apply(event);
        assert.equal(
          {
            where: b.where,
            chunk: b.chunk,
            offset: b.offset,
            arena: b.where === 'heap' ? b.arenaIndex : null,
            heap: b.where === 'heap' ? b.heapIndex : null,
            syscalls: b.syscalls.slice(),
            t: b.mmapThreshold,
          },
          expected,
          `${shape} event ${event.seq}`,
        );
      }
    }
    if (restored) sameState(restored, straight, `${shape} at the end`);
    if (isThreaded)
      assert.ok(
        straight.model.arenas.length > 1 || shape.startsWith('threads-arena-max-1'),
        `${shape}: thread arenas were made (${straight.model.arenas.length})`,
      );
  }
});

test('events pack and unpack to what the reader made (ids, slots, lines, numbers, threads, spawns and exits)', () => {
  const text = `${TEACHING}\n# a gap\n\nmallopt M_TRIM_THRESHOLD -1\nmallopt M_MMAP_THRESHOLD 65536\ncalloc x 3 77\nmemalign y 4096 100\nrealloc x 9000\nrealloc x 0\nrealloc z 10\nfree y\nmalloc y 18446744073709551615\n${generated('everything', 9, 3000)}`;
  // Events before the first thread line carry no thread; after it every one does (thread 1 untagged).
  const threaded = `malloc m 10\nmallopt M_ARENA_MAX 3\nspawn 2\n@2 malloc a 100\n@2 spawn 300\nfree a\n@300 realloc m 5000\n@300 exit\n@2 trim 0\n@2 exit\n`;
  // IDs the ID predictor must split right (a number after a prefix, leading zeros, past 2^53, digits alone).
  const ids = [
    'a9',
    'a10',
    'a011',
    'a12',
    'a20',
    'x9007199254740990',
    'x9007199254740991',
    'x9007199254740992',
    'x9007199254740993',
    '7',
    '8',
    '08',
    'b',
    'b1',
    '1b2',
    '1b3',
  ]
    .map((id) => `malloc ${id} 16\n`)
    .join('');
  for (const trace of [text, threaded, ids, generated('threads-cross', 5, 2000), generated('threads-short-lived', 6, 2000)]) {
    const events = parseTrace(trace);
    const encoder = new EventEncoder();
    for (const event of events) encoder.add(event);
    const columns = new EventColumns(events.length, {
      ops: encoder.ops.take(),
      slots: encoder.slots.take(),
      nums: encoder.nums.take(),
      lines: encoder.lines.take(),
      ids: encoder.idTable(),
      threads: encoder.threads.take(),
    });
    const plain = (e: TraceEvent) => JSON.parse(JSON.stringify(e, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)));
    for (const event of events) assert.equal(plain(columns.event(event.seq)), plain(event), `event ${event.seq}`);
    if (trace === threaded) {
      assert.equal(
        events.map((e) => columns.callText(e.seq)),
        [
          'malloc m 10',
          'mallopt M_ARENA_MAX 3',
          'spawn 2',
          '@2 malloc a 100',
          '@2 spawn 300',
          'free a',
          '@300 realloc m 5000',
          '@300 exit',
          '@2 trim 0',
          '@2 exit',
        ],
      );
    }
  }
});

test('an ID no trace can hold (empty, or with a newline), in events made by hand, is refused with REPORT_BAD_ID, not packed as another', async () => {
  for (const id of ['', 'a\nb']) {
    const events = parseTrace('malloc a1 16\nmalloc a2 16\nfree a1\n');
    // The second call's ID would have been predicted from the first (a1 -> a2): '' is what the table stores then.
    const bad = { ...events[1], id } as TraceEvent;
    const encoder = new EventEncoder();
    encoder.add(events[0]);
    assert.throws(
      () => encoder.add(bad),
      (error: Error & { code?: string }) => error.code === 'REPORT_BAD_ID' && error.message.includes('event 1 (line 2, malloc)'),
      JSON.stringify(id),
    );
    await buildReport([events[0], bad, events[2]]).then(
      () => assert.unreachable(`buildReport took the ID ${JSON.stringify(id)}`),
      (error: Error & { code?: string }) => assert.is(error.code, 'REPORT_BAD_ID'),
    );
  }
});

/** The meta and the sections of a report page, read back from its HTML as the page reads them. */
function pageData(html: string): { meta: ReportMeta; sections: Map<string, Uint8Array> } {
  const meta = JSON.parse(/<script type="application\/json" id="meta">(.*?)<\/script>/s.exec(html)![1]) as ReportMeta;
  const payload = /<script type="application\/octet-stream" id="payload">(.*?)<\/script>/s.exec(html)![1];
  return { meta, sections: unpackSections(new Uint8Array(gunzipSync(Buffer.from(payload, 'base64')))) };
}

test('the stacked areas end at the footprint: per timeline point, the heap at its highest footprint (buckets of many events)', async () => {
  const text = generated('threshold-and-small', 8, 5000);
  const report = await buildReport(parseTrace(text), { samples: 64 });
  const { meta, sections } = pageData(report.html);
  assert.ok(meta.bucketWidth > 1, `buckets of several events (${meta.bucketWidth})`);
  const stack = float64Of(sections.get('stack.heap')!);
  const footprint = float64Of(sections.get('high.footprint')!);
  assert.is(stack.length, meta.buckets);
  // Straight from the model: in each bucket, the first event with the bucket's highest footprint, and its heap.
  const replayer = new Replayer();
  const best = new Float64Array(meta.buckets).fill(-1);
  const heapThere = new Float64Array(meta.buckets);
  let withMmapped = 0;
  for (const event of parseTrace(text)) {
    replayer.apply(event);
    const i = Math.floor(event.seq / meta.bucketWidth);
    const fp = replayer.model.main.systemMem + replayer.model.mp.mmappedMem;
    if (fp > best[i]) {
      best[i] = fp;
      heapThere[i] = replayer.model.main.systemMem;
    }
  }
  for (let i = 0; i < meta.buckets; i++) {
    assert.is(footprint[i], best[i], `point ${i}: the footprint`);
    assert.is(stack[i], heapThere[i], `point ${i}: the heap under the mmapped area`);
    if (footprint[i] > stack[i]) withMmapped++;
  }
  assert.ok(withMmapped > 3, `points with mapped bytes stacked on the heap: ${withMmapped}`);
});

// ---- the page in a browser ---------------------------------------------------------------------------------

const BROWSERS = ['/usr/bin/chromium-headless-shell', '/usr/bin/chromium'];
const CHROMIUM = process.env.MALLOCSCOPE_CHROMIUM || BROWSERS.find((path) => existsSync(path)) || BROWSERS[0];
let playwright: typeof import('playwright-core') | undefined;
try {
  // require, not import: playwright-core is one large CommonJS bundle, and an import has Node scan it for its
  // named exports first (0.3 s here).
  playwright = createRequire(import.meta.url)('playwright-core') as typeof import('playwright-core');
} catch {
  playwright = undefined;
}
const browserTest = unless(
  test,
  !existsSync(CHROMIUM)
    ? process.env.MALLOCSCOPE_CHROMIUM
      ? `no browser at ${CHROMIUM} (MALLOCSCOPE_CHROMIUM names a Chromium binary)`
      : `no browser at ${BROWSERS.join(' or ')} (Debian: apt-get install chromium-headless-shell; or set MALLOCSCOPE_CHROMIUM to a Chromium binary)`
    : playwright === undefined
      ? 'playwright-core (a devDependency) is not installed: npm install'
      : undefined,
);

type Browser = import('playwright-core').BrowserContext;
type Page = import('playwright-core').Page;

/**
 * The one browser of this file, shared by every browser test (each opens its own pages) and closed after the
 * last test. It is launched as soon as the file loads, so that Chromium starts while Node builds the reports.
 */
let browserStarted: Promise<Browser> | undefined;
function sharedBrowser(): Promise<Browser> {
  browserStarted ??= playwright!.chromium
    .launchPersistentContext(mkdtempSync(join(work, 'profile-')), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // The renderer and the compositor in the browser's process: no cross-process messages and shared
        // buffers per frame (Chromium's CPU over this file: 15.5 -> 14 s). Nothing here needs the isolation.
        '--single-process',
      ],
    })
    .then((context) => {
      // A persistent context opens with a tab (about:blank): the first report goes there rather than to a new one.
      idleTabs.push(...context.pages());
      return context;
    });
  return browserStarted;
}
if (existsSync(CHROMIUM) && playwright) void sharedBrowser().catch(() => undefined);

/**
 * How often a wait for the page polls it. Playwright's default polls on every animation frame, which has
 * Chromium make a frame every 16 ms for as long as the wait lasts.
 */
const POLL_MS = 20;

interface Shown {
  seq: number;
  signature: string;
  chunks: number;
  sentence: string;
  title: string;
}

/** Waits until the event picked last is drawn, and reads what the page shows (one round trip to the page). */
async function shown(page: Page): Promise<Shown> {
  return page.evaluate(async () => {
    await window.mallocscope.drawn();
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

// Tabs are reused: a new one costs Chromium about half a second of CPU, a navigation of an open one little.
// A released tab drops its listeners; the next report it opens loads afresh (see open).
const idleTabs: Page[] = [];
async function takeTab(browser: Browser): Promise<Page> {
  return idleTabs.pop() ?? browser.newPage();
}
async function releaseTab(page: Page): Promise<void> {
  page.removeAllListeners('console');
  page.removeAllListeners('pageerror');
  page.removeAllListeners('request');
  idleTabs.push(page);
}
/**
 * Loads `url` in the tab as a new document. A URL that differs from the tab's only in its #fragment would
 * be a same-document navigation (a hashchange, no load): about:blank first. Otherwise the tab goes straight
 * to it, which spares Chromium a navigation to about:blank per report.
 */
async function open(page: Page, url: string): Promise<void> {
  if (page.url().split('#')[0] === url.split('#')[0]) await page.goto('about:blank');
  await page.goto(url);
}

/**
 * Checks a freshly opened report end to end (`opened` straight from openPage: the page still at its first
 * event), saves screenshots. The tab stays open: the caller releases it or goes on using it.
 */
async function exercise(opened: Opened, events: number, shots: { name: string; at?: number; fullPage?: boolean }[]): Promise<void> {
  const { page, problems, requests } = opened;
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
  // Past a checkpoint too, the sentence narrates the core's decisions (a restored model records them).
  assert.not.match(moved.sentence, /no explanation/, `event ${third}: ${moved.sentence}`);
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
    return t.hidden ? '' : (t.textContent ?? '');
  });
  assert.match(tip, /size 0x[0-9a-f]+/, 'the tooltip gives the size');
  assert.match(tip, /made by|set up by the allocator/, 'the tooltip names the call that made the chunk');
  await page.mouse.move(0, 0);

  for (const shot of shots) {
    if (shot.at !== undefined) {
      await page.evaluate((seq) => window.mallocscope.select(seq), shot.at);
      await shown(page);
    }
    await page.screenshot({ path: shot.name, fullPage: shot.fullPage ?? false });
    assert.ok(statSync(shot.name).size > 10_000, `screenshot ${shot.name}`);
  }
  assert.equal(problems, [], 'no console errors');
  assert.equal(requests, [], 'no network requests');
}

browserTest('the report page works in Chromium (a teaching trace with a few hundred generated calls)', async () => {
  const traceFile = join(work, 'teaching.trace');
  // A teaching trace followed by a few hundred generated calls around the threshold, so that every kind of
  // chunk and a threshold move show.
  writeFileSync(traceFile, `${TEACHING}${generated('threshold-and-small', 4, 600)}`);
  const report = await buildReport(traceFile, { title: 'teaching.trace' });
  const file = join(work, 'teaching.html');
  writeFileSync(file, report.html);
  assert.ok(report.sizes.html < 1_000_000, `a small trace gives a small page (${report.sizes.html} bytes)`);
  const opened = await openPage(await sharedBrowser(), file);
  // The viewport's screenshot, not the whole page's: it is there to be looked at (MALLOCSCOPE_KEEP_REPORTS),
  // and the whole page's costs Chromium twice the CPU (0.38 s against 0.16 s).
  await exercise(opened, report.events, [{ name: join(work, 'teaching.png'), at: 18 }]);
  await releaseTab(opened.page);
  console.log(`  teaching report: ${report.events} events, ${(report.sizes.html / 1024).toFixed(0)} KiB, screenshot ${join(work, 'teaching.png')}`);
});

// ---- the README's example, read back from the page --------------------------------------------------------

const EXAMPLE = join(ROOT, 'examples/growing-buffers.trace');
/** The event of the README's screenshot: two buffers mapped at once above a heap that has grown twice. */
const SCREENSHOT_AT = 20;

/** What the model says of each event of the example: footprint parts and the events that moved the threshold. */
function exampleFacts(): { heap: number[]; mmapped: number[]; live: number[]; moves: number[] } {
  const replayer = new Replayer();
  const facts = { heap: [] as number[], mmapped: [] as number[], live: [] as number[], moves: [] as number[] };
  for (const event of parseTrace(readFileSync(EXAMPLE, 'utf8'))) {
    const outcome = replayer.apply(event);
    facts.heap.push(replayer.model.main.systemMem);
    facts.mmapped.push(replayer.model.mp.mmappedMem);
    facts.live.push(replayer.liveBytes);
    if (outcome.notes.thresholdMove) facts.moves.push(event.seq);
  }
  return facts;
}

async function exampleReport(): Promise<{ file: string; events: number }> {
  const file = join(work, 'growing-buffers.html');
  if (!existsSync(file)) writeFileSync(file, (await buildReport(EXAMPLE)).html);
  return { file, events: parseTrace(readFileSync(EXAMPLE, 'utf8')).length };
}

/**
 * The example's page opened once (no URL fragment) for the tests that only pick events on it; closed after
 * the last test. `fresh` is true for the first caller only, which gets the page as it loaded.
 */
let exampleOpened: Promise<Opened> | undefined;
async function examplePage(file: string): Promise<Opened & { fresh: boolean }> {
  const fresh = exampleOpened === undefined;
  exampleOpened ??= sharedBrowser().then((browser) => openPage(browser, file));
  return { ...(await exampleOpened), fresh };
}

interface Opened {
  page: Page;
  /** Console errors and page errors so far. */
  problems: string[];
  /** Requests the page made for anything but a file. */
  requests: string[];
  /** From the navigation until the page said it was ready. */
  loadMs: number;
}

/** Opens a report (at `hash`, if given) and waits until it is drawn; console errors fail the test. */
async function openPage(browser: Browser, file: string, hash = ''): Promise<Opened> {
  const page = await takeTab(browser);
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
  await open(page, `file://${file}${hash}`);
  await page.waitForFunction(() => window.mallocscope && (window.mallocscope.ready || window.mallocscope.error !== undefined), null, {
    timeout: 120_000,
    polling: POLL_MS,
  });
  const loadMs = Date.now() - started;
  const error = await page.evaluate(() => window.mallocscope.error);
  assert.is(error, undefined, `the page failed: ${error}`);
  return { page, problems, requests, loadMs };
}

interface Geometry {
  left: number;
  right: number;
  mainTop: number;
  mainBottom: number;
  stripTop: number;
  stripBottom: number;
  yMax: number;
}

async function timelineGeometry(page: Page): Promise<Geometry> {
  const d = await page.evaluate(() => ({ ...document.getElementById('timeline')!.dataset }));
  const g = {
    left: Number(d.plotLeft),
    right: Number(d.plotRight),
    mainTop: Number(d.mainTop),
    mainBottom: Number(d.mainBottom),
    stripTop: Number(d.stripTop),
    stripBottom: Number(d.stripBottom),
    yMax: Number(d.yMax),
  };
  for (const [k, v] of Object.entries(g)) assert.ok(Number.isFinite(v), `the timeline gives its ${k} (${v})`);
  return g;
}

/** RGBA bytes of a rectangle of the timeline, in CSS pixels (the test's viewport has a device pixel ratio of 1). */
async function timelinePixels(page: Page, x: number, y: number, w: number, h: number): Promise<{ at(cx: number, cy: number): [number, number, number] }> {
  // The bytes cross as base64: a JSON array of a few hundred thousand numbers takes seconds.
  const base64: string = await page.evaluate(
    ([x, y, w, h]) => {
      const canvas = document.getElementById('timeline') as HTMLCanvasElement;
      if (canvas.width !== canvas.clientWidth) throw new Error('expected a device pixel ratio of 1');
      const bytes = canvas.getContext('2d')!.getImageData(x, y, w, h).data;
      let binary = '';
      for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(binary);
    },
    [x, y, w, h],
  );
  const data = Buffer.from(base64, 'base64');
  assert.is(data.length, w * h * 4, 'the pixels of the rectangle');
  return {
    at(cx, cy) {
      // The canvas is transparent where nothing is drawn: blend onto the page's white, as the eye sees it.
      const i = ((cy - y) * w + (cx - x)) * 4;
      const a = data[i + 3] / 255;
      return [0, 1, 2].map((k) => Math.round(data[i + k] * a + 255 * (1 - a))) as [number, number, number];
    },
  };
}

browserTest("the README's example (examples/growing-buffers.trace) works end to end; MALLOCSCOPE_UPDATE_SCREENSHOT=1 refreshes docs/report.png", async () => {
  const { file, events } = await exampleReport();
  const browser = await sharedBrowser();
  const shots: { name: string; at: number; fullPage?: boolean }[] = [{ name: join(work, 'growing-buffers.png'), at: SCREENSHOT_AT }];
  // The README's screenshot (the whole page) is refreshed only on request: a test run leaves the repository as it was.
  if (process.env.MALLOCSCOPE_UPDATE_SCREENSHOT) shots.push({ name: join(ROOT, 'docs', 'report.png'), at: SCREENSHOT_AT, fullPage: true });
  // The first of the example's tests: the page it checks from its load then serves the tests after it, which
  // pick their events themselves (one load of the example less).
  const example = await examplePage(file);
  const opened = example.fresh ? example : await openPage(browser, file);
  await exercise(opened, events, shots);
  if (!example.fresh) await releaseTab(opened.page);
  console.log(`  README example: ${events} events, screenshot ${shots[shots.length - 1].name}`);
});

browserTest("the threshold lane steps at the event that moved the threshold, where the slider's line and the marker are", async () => {
  const { file, events } = await exampleReport();
  const facts = exampleFacts();
  // `mallocscope check` agrees with glibc on the example; these are the frees that slid the threshold.
  assert.equal(facts.moves, [5, 12, 21]);
  // The example's page as the README's test left it: this test picks its own event.
  const { page, problems } = await examplePage(file);
  // The selection line is drawn over the lanes: put it on the last event, away from every move.
  await page.evaluate((seq) => window.mallocscope.select(seq), events - 1);
  await shown(page);
  const g = await timelineGeometry(page);
  const x0 = Math.floor(g.left);
  const width = Math.ceil(g.right) - x0;
  const top = Math.ceil(g.stripTop) + 2;
  const height = Math.floor(g.stripBottom) - 2 - top;
  const pixels = await timelinePixels(page, x0, top, width, height);
  // Columns where the mmap threshold's red line runs vertically (a step), grouped into runs.
  const red = ([r, gr, b]: [number, number, number]) => r > 170 && gr < 120 && b < 120;
  const steps: number[][] = [];
  for (let x = x0; x < x0 + width; x++) {
    let count = 0;
    for (let y = top; y < top + height; y++) if (red(pixels.at(x, y))) count++;
    if (count < 5) continue;
    const last = steps[steps.length - 1];
    if (last && x - last[last.length - 1] <= 1) last.push(x);
    else steps.push([x]);
  }
  const eventX = (seq: number) => g.left + ((seq + 0.5) / events) * (g.right - g.left);
  const centres = steps.map((run) => (run[0] + run[run.length - 1] + 1) / 2);
  // The first move (131072 to 151552) is too small a step on the lane's log scale to stand out; the other two
  // are a doubling or more.
  assert.ok(centres.length >= 2, `the lane shows its steps (found at x = ${centres.join(', ')})`);
  for (const c of centres) {
    const nearest = facts.moves.reduce((best, m) => (Math.abs(eventX(m) - c) < Math.abs(eventX(best) - c) ? m : best));
    assert.ok(
      Math.abs(eventX(nearest) - c) <= 1.5,
      `a step at x = ${c}, but event ${nearest} (which moved the threshold) is at x = ${eventX(nearest).toFixed(1)}`,
    );
  }
  for (const m of [12, 21])
    assert.ok(
      centres.some((c) => Math.abs(eventX(m) - c) <= 1.5),
      `the lane steps at event ${m}`,
    );
  console.log(
    `  threshold lane: steps at x = ${centres.join(', ')}; events ${facts.moves.join(', ')} at x = ${facts.moves.map((m) => eventX(m).toFixed(1)).join(', ')}`,
  );
  assert.equal(problems, []);
});

browserTest('heap and mmapped are stacked: the mmapped area sits on the heap, up to the footprint line', async () => {
  const { file, events } = await exampleReport();
  const facts = exampleFacts();
  // The example's page as the README's test left it: this test picks its own event.
  const { page, problems } = await examplePage(file);
  await page.evaluate((seq) => window.mallocscope.select(seq), events - 1);
  await shown(page);
  const g = await timelineGeometry(page);
  const yOf = (v: number) => g.mainBottom - (v / g.yMax) * (g.mainBottom - g.mainTop);
  // Events with both a heap and mapped blocks, away from the threshold moves' faint lines.
  const picked = [10, 17, 20];
  for (const seq of picked) {
    const heap = facts.heap[seq];
    const mmapped = facts.mmapped[seq];
    assert.ok(heap > 0 && mmapped > 0, `event ${seq} has both a heap and mapped blocks`);
    const x = Math.floor(g.left + ((seq + 0.5) / events) * (g.right - g.left));
    const top = Math.ceil(g.mainTop) + 1;
    const column = await timelinePixels(page, x, top, 1, Math.floor(g.mainBottom) - top);
    const yFoot = yOf(heap + mmapped);
    const yHeap = yOf(heap);
    const yLive = yOf(facts.live[seq]);
    const nearLive = (y: number) => Math.abs(y - yLive) <= 3;
    const tint = (y: number) => {
      const [r, , b] = column.at(x, y);
      return r - b;
    };
    let checked = 0;
    for (let y = Math.ceil(yFoot) + 3; y <= Math.floor(yHeap) - 3; y++) {
      if (nearLive(y)) continue;
      assert.ok(
        tint(y) > 15,
        `event ${seq}: just under the footprint line (y ${y}, between ${yFoot.toFixed(0)} and ${yHeap.toFixed(0)}) is the mmapped area, not ${column.at(x, y)}`,
      );
      checked++;
    }
    for (let y = Math.ceil(yHeap) + 3; y <= Math.floor(g.mainBottom) - 3; y++) {
      if (nearLive(y)) continue;
      assert.ok(tint(y) < -15, `event ${seq}: under the heap's top (y ${y}, below ${yHeap.toFixed(0)}) is the heap area alone, not ${column.at(x, y)}`);
      checked++;
    }
    for (let y = top + 20; y <= Math.floor(yFoot) - 3; y++) {
      if (nearLive(y)) continue;
      assert.ok(Math.abs(tint(y)) < 12, `event ${seq}: above the footprint line (y ${y}) nothing is filled, not ${column.at(x, y)}`);
    }
    assert.ok(checked > 20, `event ${seq}: ${checked} pixels checked`);
  }
  assert.equal(problems, []);
});

browserTest('report.html#N opens at event N, the URL follows the slider and the keys, and a new #N moves the page', async () => {
  const { file } = await exampleReport();
  const browser = await sharedBrowser();
  const { page, problems } = await openPage(browser, file, '#20');
  const opened = await shown(page);
  assert.is(opened.seq, 20, 'the page opens at the event of the URL');
  assert.match(opened.title, 'Event #20 of');
  assert.is(await page.locator('#slider').inputValue(), '20');
  await page.locator('#slider').fill('7');
  await page.waitForFunction(() => location.hash === '#7', null, { timeout: 10_000, polling: POLL_MS });
  await page.locator('#slider').focus();
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() => location.hash === '#8', null, { timeout: 10_000, polling: POLL_MS });
  // Editing the URL's fragment picks that event.
  await page.evaluate(() => {
    location.hash = '#30';
  });
  await page.waitForFunction(() => window.mallocscope.seq === 30, null, { timeout: 10_000, polling: POLL_MS });
  assert.is((await shown(page)).seq, 30);
  await releaseTab(page);
  // Past the end, the last event; not a number, the first: checked on the glibc versions test's two loads
  // (two loads of the example fewer, each 0.3-0.5 s of Chromium's CPU).
  assert.equal(problems, []);
});

browserTest('one address style: the page prints offsets from the heap start, absolute addresses only on hover', async () => {
  const { file } = await exampleReport();
  // The example's page as the README's test left it: this test picks its own event.
  const { page, problems } = await examplePage(file);
  const heapStart = await page.evaluate(() => JSON.parse(document.getElementById('meta')!.textContent!).heapStart as number);
  // Event 10: two mapped blocks; event 33: a last remainder, tcache and unsorted chunks.
  for (const seq of [10, 20, 33]) {
    await page.evaluate((s) => window.mallocscope.select(s), seq);
    await shown(page);
    // innerText, not textContent: the text as shown (no script source, no hidden elements).
    // The hex view is left out: it shows the words of a heap image, whose pointers are addresses by design.
    // biome-ignore lint/performance/useDomNodeTextContent: the visible text is what is checked
    const text = await page.evaluate(() => document.body.innerText.replace(document.getElementById('hex-card')!.innerText, ''));
    const numbers = text.match(/0x[0-9a-f]+/gi) ?? [];
    assert.ok(numbers.length > 5, `event ${seq}: the page prints hex numbers (${numbers.length})`);
    const absolute = numbers.filter((h) => Number(h) >= heapStart);
    assert.equal(absolute, [], `event ${seq}: absolute addresses in the page's text`);
    assert.match(text, /\+0x[0-9a-f]+/, `event ${seq}: offsets from the heap start`);
    // Each printed address carries the absolute one in its hover title.
    const titled = await page.evaluate(() => Array.from(document.querySelectorAll<HTMLElement>('.addr')).map((e) => [e.textContent ?? '', e.title]));
    assert.ok(titled.length > 0, `event ${seq}: addresses are marked`);
    for (const [shownText, title] of titled) {
      const offset = /([+−-])0x([0-9a-f]+)/.exec(shownText);
      assert.ok(offset, `an address printed as an offset: ${shownText}`);
      const absoluteTitle = /0x([0-9a-f]+)/.exec(title);
      assert.ok(absoluteTitle, `its title gives the absolute address: "${title}"`);
      const sign = offset![1] === '+' ? 1 : -1;
      assert.is(parseInt(absoluteTitle![1], 16), heapStart + sign * parseInt(offset![2], 16), `${shownText} and its title ${title}`);
    }
  }
  // The chunk tooltip (a hover) gives both.
  await page.evaluate(() => window.mallocscope.select(10));
  await shown(page);
  const mapBox = (await page.locator('#heapmap').boundingBox())!;
  await page.mouse.move(mapBox.x + 110, mapBox.y + 14);
  const tip = await page.evaluate(() => document.getElementById('tooltip')!.textContent ?? '');
  assert.match(tip, /chunk \+0x[0-9a-f]+/, 'the tooltip gives the chunk as an offset');
  assert.ok(
    (tip.match(/0x[0-9a-f]+/g) ?? []).some((h) => Number(h) >= heapStart),
    `the tooltip gives the absolute address: ${tip}`,
  );

  // The hex view of a tcache chunk whose next is not NULL, after event 33, against the real glibc's image
  // of the same event: the stored (mangled) next, the pointer it decodes to, the key and the size word.
  const out = join(work, 'images-33');
  oracleImages(EXAMPLE, { at: '33', dir: out });
  const real = readImage(join(out, 'heap-33.img'));
  const realWalk = walkImage(real.bytes, real.sidecar);
  const entry = realWalk.chunks.find((c) => c.state === 'tcache' && c.links.some((l) => l.field === 'next' && l.target.kind === 'chunk'));
  assert.ok(entry, "glibc's image after event 33 has a tcache chunk whose next points at another");
  const word = (at: number) => new DataView(real.bytes.buffer, real.bytes.byteOffset).getBigUint64(at, true);
  const nextAt = entry!.offset + 16;
  const base = real.sidecar.base;
  // Safe-linking by hand: the pointer is the stored word ^ (the word's own address >> 12).
  const decoded = word(nextAt) ^ ((base + BigInt(nextAt)) >> 12n);
  const list = realWalk.lists.find((l) => l.kind === 'tcache' && l.chunks.includes(entry!.offset))!;
  assert.is(decoded, base + BigInt(list.chunks[list.chunks.indexOf(entry!.offset) + 1]) + 16n, 'the decoded next is the next entry');
  await page.evaluate((s) => window.mallocscope.select(s), 33);
  await shown(page);
  const hexShown = await page.evaluate((address) => {
    window.mallocscope.pick!(address);
    return { ...window.mallocscope.hex!, html: document.getElementById('hex')!.textContent ?? '' };
  }, heapStart + entry!.offset);
  assert.is(hexShown.chunk, entry!.offset);
  assert.is(hexShown.state, 'tcache');
  const byField = new Map(hexShown.words.map((w) => [w.field, w]));
  assert.equal(byField.get('next'), { at: nextAt, field: 'next', stored: `0x${word(nextAt).toString(16)}`, pointer: `0x${decoded.toString(16)}` });
  assert.is(byField.get('key')?.stored, `0x${KEY_MARKER.toString(16)}`);
  assert.is(byField.get('size')?.stored, `0x${word(entry!.offset + 8).toString(16)}`);
  assert.match(
    hexShown.html,
    `stored 0x${word(nextAt).toString(16)} · decoded (0x${(base + BigInt(nextAt)).toString(16)} >> 12) ^ 0x${word(nextAt).toString(16)} = 0x${decoded.toString(16)}`,
  );
  assert.equal(problems, []);
});

browserTest(
  'the page follows the glibc version the report was built for: its summary names it, its replays place blocks as that glibc does (and report.html#N past the end opens the last event, #nonsense the first)',
  async () => {
    // The real builds place the first malloc(100) after the tcache struct: at +0x2a0 under 2.36 (chunk 0x290),
    // at +0x310 under 2.42 (chunk 0x300; test/fixtures/versions/oracle.json, 2.42-tcache-edge-1040.trace).
    const trace = join(work, 'versions.trace');
    writeFileSync(trace, 'malloc a 100\nmalloc b 100\n');
    // Each page is opened at a URL fragment, for report.html#N's test: past the end opens the last event, what is
    // not a number the first (any report shows that; these two loads serve both tests).
    for (const [glibc, offset, hash, opens] of [
      ['2.36', '+0x2a0', '#102', 1],
      ['2.42', '+0x310', '#nonsense', 0],
    ] as const) {
      const file = join(work, `versions-${glibc}.html`);
      writeFileSync(file, (await buildReport(trace, { glibc })).html);
      const { page, problems } = await openPage(await sharedBrowser(), file, hash);
      assert.is((await shown(page)).seq, opens, `${hash} opens event ${opens} of 2`);
      await page.evaluate(() => window.mallocscope.select(0));
      const { sentence } = await shown(page);
      // biome-ignore lint/performance/useDomNodeTextContent: the visible text is what is checked
      const text = await page.evaluate(() => document.body.innerText);
      assert.match(text, new RegExp(`glibc\\s+${glibc.replace('.', '\\.')}`), `the summary names glibc ${glibc}`);
      assert.ok(sentence.includes(offset), `glibc ${glibc}: ${sentence}`);
      assert.equal(problems, []);
      await releaseTab(page);
    }
  },
);

browserTest("a threaded trace: one heap map per arena with its chunks, a thread lane, and the selected call's sentence as explain says it", async () => {
  // Six long-lived workers on 2 CPUs: an arena each, frees and reallocs across threads. Checkpoints every 100
  // events, so that the page restores multi-arena, multi-thread state before it replays on.
  const trace = join(work, 'threads.trace');
  writeFileSync(trace, generated('threads-workers', 4, 400));
  const report = await buildReport(trace, { cores: 2, checkpointEvery: 100 });
  const file = join(work, 'threads.html');
  writeFileSync(file, report.html);
  const { meta } = pageData(report.html);
  const events = parseTrace(readFileSync(trace, 'utf8'));
  assert.ok(report.checkpoints >= 3, `checkpoints (${report.checkpoints})`);
  assert.ok(meta.arenas >= 4, `thread arenas were made (${meta.arenas})`);

  // What explain says of each event, straight from the model in Node, with the report's setup.
  const explainer = new Explainer(new Replayer({ cores: 2, glibc: meta.setup.glibc }));
  const sentences = events.map((event) => explainer.apply(event).sentence);
  // Calls by other threads than the main one whose blocks went to a thread arena: one before the first
  // checkpoint, the rest after one (restored in the page).
  const inArenas = events.filter((e) => (e.thread ?? 1) !== 1 && / → arena \d+ heap \d+ \+0x/.test(sentences[e.seq]));
  const picked = [inArenas.find((e) => e.seq < 100), inArenas.find((e) => e.seq > 150), inArenas[inArenas.length - 1]].filter((e) => e !== undefined);
  assert.is(picked.length, 3, 'thread calls to pick');

  const { page, problems } = await openPage(await sharedBrowser(), file, `#${events.length - 1}`);
  await shown(page);
  const maps = () =>
    page.evaluate(() =>
      Array.from(document.querySelectorAll<HTMLCanvasElement>('#heapmap, .arena-map canvas')).map((c) => ({
        arena: c.closest<HTMLElement>('.arena-map')?.dataset.arena ?? '0',
        chunks: Number(c.dataset.chunks),
      })),
    );
  const atEnd = await maps();
  assert.equal(
    atEnd.map((m) => m.arena),
    Array.from({ length: meta.arenas }, (_, i) => String(i)),
    'one map per arena, main_arena first',
  );
  for (const map of atEnd) assert.ok(map.chunks > 0, `arena ${map.arena}'s map draws chunks (${map.chunks})`);

  // The lane: a row per thread, the main thread first; each picked call's tick in its thread's row.
  const lane = await page.evaluate(() => ({ ...document.getElementById('timeline')!.dataset }));
  const rows = lane.laneRows!.split(',').map(Number);
  assert.equal(rows, [...new Set([1, ...meta.threads])], 'the lane has a row per thread');
  const g = await timelineGeometry(page);
  const rowHeight = Number(lane.laneRowHeight);
  for (const event of picked) {
    const x = Math.floor(g.left + ((event.seq + 0.5) / events.length) * (g.right - g.left));
    const r = rows.indexOf(event.thread!);
    const y = Math.floor(Number(lane.laneTop) + r * rowHeight + rowHeight / 2);
    const [red, green, blue] = (await timelinePixels(page, x, y, 1, 1)).at(x, y);
    assert.ok(
      Math.max(red, green, blue) - Math.min(red, green, blue) > 40,
      `event ${event.seq}: a tick in thread ${event.thread}'s row, not ${[red, green, blue]}`,
    );
  }

  // Each picked call: the page's sentence is explain's, and its arena's map outlines the block.
  for (const event of picked) {
    await page.evaluate((seq) => window.mallocscope.select(seq), event.seq);
    const now = await shown(page);
    assert.is(now.seq, event.seq);
    assert.is(now.sentence, sentences[event.seq], `event ${event.seq}`);
    assert.match(now.sentence, new RegExp(`^@${event.thread} `), 'the call carries its thread');
    // biome-ignore lint/performance/useDomNodeTextContent: the visible text is what is checked
    const facts = await page.evaluate(() => document.getElementById('event-facts')!.innerText);
    assert.match(facts, `thread ${event.thread}`);
  }
  assert.ok((await maps()).filter((m) => m.chunks > 0).length >= 2, 'thread arenas drawn after a restored checkpoint');
  assert.equal(problems, []);
  await releaseTab(page);
  console.log(
    `  threaded report: ${events.length} events, ${meta.arenas} arenas, threads ${rows.join(', ')}, sentences checked at ${picked.map((e) => e.seq).join(', ')}`,
  );
});

browserTest(
  "the anatomy card: the parts of the picked event's footprint, which the real glibc's arena + hblkhd equal, the pin outlined, the measures in the header",
  async () => {
    // A threaded trace with checkpoints, so that the page's anatomy reads restored arenas, heaps and tcaches.
    const trace = join(work, 'anatomy-threads.trace');
    writeFileSync(trace, generated('threads-trim', 3, 300));
    const report = await buildReport(trace, { cores: 2, checkpointEvery: 100 });
    const file = join(work, 'anatomy-threads.html');
    writeFileSync(file, report.html);
    const oracle = runOracleSync(trace, { stats: true }).lines.map((line) => JSON.parse(line) as { seq: number; arena: number; hblkhd: number });
    const { page, problems } = await openPage(await sharedBrowser(), file);
    for (const seq of [40, 150, 299]) {
      await page.evaluate((s) => window.mallocscope.select(s), seq);
      await shown(page);
      const card = await page.evaluate(() => ({
        anatomy: window.mallocscope.anatomy!,
        bar: Array.from(document.querySelectorAll<HTMLElement>('#anatomy-bar span')).map((s) => Number(s.dataset.bytes)),
        note: document.getElementById('anatomy-note')!.textContent ?? '',
      }));
      const real = oracle.find((e) => e.seq === seq)!;
      assert.is(card.anatomy.seq, seq);
      assert.is(card.anatomy.footprint, real.arena + real.hblkhd, `event ${seq}: the footprint is glibc's arena + hblkhd`);
      assert.is(
        Object.values(card.anatomy.parts).reduce((a, b) => a + b, 0),
        card.anatomy.footprint,
        `event ${seq}: the parts sum to the footprint`,
      );
      assert.is(
        card.bar.reduce((a, b) => a + b, 0),
        card.anatomy.footprint,
        `event ${seq}: the bar's segments sum to the footprint`,
      );
      // The same figures as `mallocscope anatomy --at SEQ`, which replays from the start without checkpoints.
      const cli = anatomyOfTrace(() => readTrace(trace), seq, { cores: 2 });
      assert.equal(card.anatomy.parts, cli.parts, `event ${seq}: parts as the anatomy command`);
      assert.equal(card.anatomy.trimmable, cli.trimmableParts, `event ${seq}: trim as the anatomy command`);
      assert.is(card.anatomy.pinned?.offset ?? null, cli.pinned?.offset ?? null, `event ${seq}: the pin`);
      assert.match(card.note, /malloc_trim\(0\) now would give back/);
    }
    // The pin is outlined in its own colour (#dc2626) on main_arena's map.
    const pinned = await page.evaluate(() => {
      const canvas = document.getElementById('heapmap') as HTMLCanvasElement;
      const g = canvas.getContext('2d')!;
      const { data } = g.getImageData(0, 0, canvas.width, canvas.height);
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] === 0xdc && data[i + 1] === 0x26 && data[i + 2] === 0x26) n++;
      return { n, pin: window.mallocscope.anatomy!.pinned };
    });
    if (pinned.pin !== null) assert.ok(pinned.n > 0, 'the pin is outlined on the heap map');
    // biome-ignore lint/performance/useDomNodeTextContent: the visible text is what is checked
    const header = await page.evaluate(() => document.getElementById('summary')!.innerText);
    const m = anatomyOfTrace(() => readTrace(trace), 'end', { cores: 2 }).metrics;
    assert.ok(
      header.includes(
        `fragmentation #1–#4 ${[m.averageFootprintOverAverageLive, m.footprintOverLiveAtPeakLive, m.peakFootprintOverLiveAtPeakFootprint, m.peakFootprintOverPeakLive].map((x) => (x === null ? '—' : x.toFixed(2))).join(' · ')}`,
      ),
      header,
    );
    assert.equal(problems, []);
    await releaseTab(page);
  },
);

browserTest('the report page works on a million-event trace, and its file stays within a few MB', async () => {
  let traceFile = BIG_RECORDED;
  if (!existsSync(traceFile)) {
    traceFile = join(work, 'million.trace');
    // Written as generated, not formatted into one string first: the same bytes for a quarter less CPU.
    const writer = new TraceWriter({ path: traceFile });
    for (const call of generateTrace(shapeByName('threshold-and-small-many')!, 11, 1_000_000)) writer.write(call);
    writer.close();
  }
  const built = Date.now();
  const report = await buildReport(traceFile);
  const buildMs = Date.now() - built;
  const file = join(work, 'million.html');
  writeFileSync(file, report.html);
  assert.ok(report.events >= 900_000, `a million-event trace (${report.events})`);
  assert.ok(report.sizes.html < 6 * 1024 * 1024, `the page is ${(report.sizes.html / 2 ** 20).toFixed(2)} MiB, more than a few MB`);
  const opened = await openPage(await sharedBrowser(), file);
  const loadMs = opened.loadMs;
  await exercise(opened, report.events, [{ name: join(work, 'million.png') }]);
  await releaseTab(opened.page);
  console.log(
    `  ${traceFile}: ${report.events} events, page ${(report.sizes.html / 2 ** 20).toFixed(2)} MiB (${report.checkpoints} checkpoints), built in ${buildMs} ms, loaded in Chromium in ${loadMs} ms`,
  );
});

test.after(async () => {
  if (browserStarted) await (await browserStarted.catch(() => undefined))?.close();
  if (!process.env.MALLOCSCOPE_KEEP_REPORTS) rmSync(work, { recursive: true, force: true });
  else console.log(`  reports kept in ${work}`);
});

test.run();
