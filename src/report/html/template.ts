// The report page's HTML and CSS. Everything is inline: no font, script, image or style is fetched.
import type { CheckpointSetup } from '../checkpoint.ts';
import type { FragmentationMetrics } from '../peaks.ts';
import { escapeHtml } from './escape.ts';
import { RSS_CHART_CSS } from './rss-chart.ts';

/** What the page knows about the report besides the payload (a small JSON island). */
export interface ReportMeta {
  format: 1;
  title: string;
  events: number;
  policy: string;
  setup: CheckpointSetup;
  heapStart: number;
  /** The arenas the replay made (1: main_arena alone); the payload holds stack.arena.I for I from 1. */
  arenas: number;
  /** The threads the trace names, in order of first appearance; empty for a trace without threads. */
  threads: number[];
  /** Checkpoint k (1-based) is the state after k * checkpointEvery events. */
  checkpointEvery: number;
  checkpoints: number;
  /** Timeline points; point i covers events [i * bucketWidth, (i + 1) * bucketWidth). */
  buckets: number;
  bucketWidth: number;
  peaks: { heap: number; mmapped: number; live: number; footprint: number };
  /** Johnstone and Wilson's measures over the whole trace (docs/anatomy.md). */
  metrics: FragmentationMetrics;
  /** Thresholds beyond 2^53 are decimal strings, exact (JSON numbers there would round). */
  final: { mmapThreshold: number | string; trimThreshold: number | string; noDynThreshold: boolean; heap: number; mmapped: number; live: number };
  /** The exact values of the thresholds section's entries beyond 2^53 (which it holds as rounded doubles), by index. */
  exactThresholds: Record<number, string>;
  thresholdMoves: number;
  syscalls: Record<string, number>;
  consolidations: number;
  trims: number;
  generated: string;
}

/**
 * The page: meta as JSON, the payload as base64, the bundled script last; `allocators`, the card of real
 * allocators (rss-chart.ts), under the timeline when given.
 */
export function renderHtml(parts: { meta: ReportMeta; payloadBase64: string; script: string; allocators?: string }): string {
  const meta = JSON.stringify(parts.meta).replace(/</g, '\\u003c');
  const script = parts.script.replace(/<\/(script)/gi, '<\\/$1');
  const title = escapeHtml(parts.meta.title);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mallocscope report">
<title>${title} · mallocscope report</title>
<style>${CSS}${parts.allocators ? RSS_CHART_CSS : ''}</style>
</head>
<body>
<header class="top">
  <div class="brand"><span class="logo">▦</span> mallocscope <span class="muted">report</span></div>
  <h1 id="title">${title}</h1>
  <div id="summary" class="summary"></div>
</header>
<main>
  <section class="card" id="timeline-card">
    <div class="card-head">
      <h2>Timeline</h2>
      <div class="legend" id="timeline-legend"></div>
    </div>
    <div id="timeline-wrap"><canvas id="timeline" tabindex="-1" aria-label="timeline: click to pick an event"></canvas></div>
    <div class="controls">
      <button id="prev" title="previous event (←)">◀</button>
      <input id="slider" type="range" min="0" value="0" step="1" aria-label="event">
      <button id="next" title="next event (→)">▶</button>
      <label class="seq">event <input id="seq" type="number" min="0" value="0"></label>
      <span class="sep"></span>
      <button id="prev-move" title="previous threshold move">◀ move</button>
      <button id="next-move" title="next threshold move">move ▶</button>
    </div>
    <div class="hint">← → step one event · Shift+← → ten · PgUp PgDn one percent · Home End · click the timeline to jump</div>
  </section>
${parts.allocators ?? ''}

  <section class="card" id="event-card">
    <div class="event-head"><span id="event-title">loading…</span><span id="event-line" class="muted"></span></div>
    <p id="explanation" class="explanation"></p>
    <div id="event-facts" class="facts"></div>
  </section>

  <div class="grid">
    <section class="card" id="heap-card">
      <div class="card-head">
        <h2>Heap map</h2>
        <span id="heap-caption" class="muted"></span>
        <label class="zoom">rows <select id="zoom"><option value="1">fit</option><option value="2">×2</option><option value="4">×4</option><option value="8">×8</option><option value="16">×16</option></select></label>
      </div>
      <div class="legend" id="heap-legend"></div>
      <div class="maps">
        <div id="heap-scroll"><canvas id="heapmap"></canvas></div>
        <div id="mmap-col">
          <h3>mmapped blocks <span id="mmap-count" class="muted"></span></h3>
          <div id="mmapped"></div>
        </div>
      </div>
    </section>
    <section class="card" id="bins-card">
      <div class="card-head"><h2>Bins</h2><span id="bins-caption" class="muted"></span></div>
      <div id="bins"></div>
    </section>
  </div>

  <section class="card" id="hex-card">
    <div class="card-head"><h2>The chunk's bytes</h2><span id="hex-caption" class="muted">this event's block, or the chunk you click in the heap map, as main_arena's heap image holds it</span></div>
    <div id="hex"></div>
  </section>

  <section class="card" id="anatomy-card">
    <div class="card-head"><h2>Where the footprint goes</h2><span id="anatomy-caption" class="muted"></span></div>
    <div id="anatomy-bar" class="stack" role="img" aria-label="the footprint's parts"></div>
    <div class="legend" id="anatomy-legend"></div>
    <p id="anatomy-note" class="anatomy-note"></p>
  </section>
  <footer class="muted" id="footer"></footer>
</main>
<div id="tooltip" role="tooltip" hidden></div>
<script type="application/json" id="meta">${meta}</script>
<script type="application/octet-stream" id="payload">${parts.payloadBase64}</script>
<script>${script}</script>
</body>
</html>
`;
}

const CSS = `
:root {
  --bg: #f4f6fa; --card: #ffffff; --ink: #1c2433; --muted: #667085; --line: #e3e8ef; --accent: #2563eb;
  --mono: ui-monospace, "SF Mono", "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  --sans: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 var(--sans); }
header.top { padding: 18px 28px 10px; background: linear-gradient(180deg, #ffffff, var(--bg)); border-bottom: 1px solid var(--line); }
.brand { font-weight: 600; color: var(--accent); letter-spacing: .02em; font-size: 13px; }
.logo { display: inline-block; transform: translateY(1px); }
h1 { margin: 2px 0 8px; font-size: 22px; font-weight: 650; word-break: break-all; }
h2 { margin: 0; font-size: 15px; font-weight: 650; }
h3 { margin: 0 0 6px; font-size: 13px; font-weight: 600; }
.muted { color: var(--muted); font-weight: 400; }
.summary { display: flex; flex-wrap: wrap; gap: 6px 8px; }
.chip { background: #eef2f8; border: 1px solid var(--line); border-radius: 999px; padding: 2px 10px; font-size: 12.5px; white-space: nowrap; }
.chip b { font-family: var(--mono); font-weight: 600; font-size: 12px; }
main { padding: 14px 28px 28px; max-width: 1600px; margin: 0 auto; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; margin-bottom: 14px; box-shadow: 0 1px 2px rgba(16,24,40,.04); }
.card-head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; margin-bottom: 8px; }
.card-head .legend { margin-left: auto; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 12px; color: var(--muted); }
.legend .key { display: inline-flex; align-items: center; gap: 5px; }
.legend .sw { width: 12px; height: 12px; border-radius: 3px; display: inline-block; border: 1px solid rgba(0,0,0,.15); }
.legend .ln { width: 16px; height: 0; display: inline-block; border-top: 2px solid; }
.legend .ln.dash { border-top-style: dashed; }
#timeline-wrap { position: relative; }
.stack { display: flex; height: 22px; border-radius: 5px; overflow: hidden; border: 1px solid var(--line); margin-bottom: 8px; }
.stack span { display: block; height: 100%; min-width: 1px; }
.anatomy-note { margin: 8px 0 0; font-size: 13px; }
.anatomy-note button { font: inherit; font-size: 12px; }
canvas { display: block; }
#timeline { width: 100%; height: 300px; cursor: crosshair; outline: none; }
.controls { display: flex; align-items: center; gap: 8px; margin-top: 8px; }
.controls input[type=range] { flex: 1; accent-color: var(--accent); }
.controls .sep { width: 8px; }
button { font: inherit; font-size: 13px; border: 1px solid var(--line); background: #f8fafc; border-radius: 6px; padding: 3px 9px; cursor: pointer; color: var(--ink); }
button:hover { background: #eef2f8; }
.seq input { width: 110px; font: 13px var(--mono); padding: 2px 6px; border: 1px solid var(--line); border-radius: 6px; }
.hint { font-size: 11.5px; color: var(--muted); margin-top: 4px; }
.event-head { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; font-weight: 600; }
.explanation { font-size: 16px; margin: 8px 0 10px; padding: 10px 14px; background: #f5f8ff; border-left: 4px solid var(--accent); border-radius: 6px; }
.explanation .call { font-family: var(--mono); font-weight: 650; font-size: 14.5px; }
.explanation .result { color: #15803d; font-weight: 600; }
.explanation .result.null { color: #b91c1c; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 8px; }
.grid { display: grid; grid-template-columns: minmax(0, 1fr) 380px; gap: 14px; align-items: start; }
@media (max-width: 1100px) { .grid { grid-template-columns: 1fr; } }
.maps { display: flex; gap: 14px; align-items: flex-start; margin-top: 8px; }
#heap-scroll { flex: 1; min-width: 0; max-height: 560px; overflow-y: auto; border: 1px solid var(--line); border-radius: 6px; background: #fbfcfe; }
#heapmap { width: 100%; cursor: default; }
#mmap-col { width: 210px; flex: none; }
#main-arena-title { margin: 6px 0 0; }
.arena-map { margin-top: 12px; }
.arena-map h3 { display: flex; align-items: center; gap: 6px; }
.arena-key { width: 12px; height: 12px; border-radius: 3px; display: inline-block; border: 1px solid; }
.arena-scroll { max-height: 320px; overflow-y: auto; border: 1px solid var(--line); border-radius: 6px; background: #fbfcfe; }
.arena-scroll canvas { width: 100%; }
#mmapped { display: flex; flex-direction: column; gap: 5px; max-height: 520px; overflow-y: auto; }
.mblock { border: 1px solid #f3b27a; background: #fff7ed; border-radius: 6px; padding: 4px 7px; font-size: 12px; cursor: default; }
.mblock .bar { height: 8px; background: #fb923c; border-radius: 3px; margin: 3px 0 2px; min-width: 3px; }
.mblock.current { outline: 2px solid #111827; }
.addr { font-family: var(--mono); cursor: help; text-decoration: underline dotted #b6c2d2; text-underline-offset: 2px; }
.mblock .addr { font-size: 11.5px; }
.empty { color: var(--muted); font-size: 12.5px; font-style: italic; }
.zoom { margin-left: auto; font-size: 12.5px; color: var(--muted); }
.zoom select { font: inherit; }
#bins { display: flex; flex-direction: column; gap: 10px; max-height: 700px; overflow-y: auto; }
.bingroup h3 { display: flex; justify-content: space-between; }
.bingroup h3 .muted { font-size: 12px; }
.binrow { display: grid; grid-template-columns: 92px 34px 1fr; gap: 6px; align-items: center; font-size: 12px; padding: 1px 0; }
.binrow .name { font-family: var(--mono); color: var(--ink); }
.binrow .count { font-family: var(--mono); color: var(--muted); text-align: right; }
.chips { display: flex; flex-wrap: wrap; gap: 2px; }
.c { width: 11px; height: 11px; border-radius: 2px; display: inline-block; border: 1px solid rgba(0,0,0,.18); }
.c.current { outline: 2px solid #111827; outline-offset: 0; }
.more { font-size: 11px; color: var(--muted); margin-left: 3px; }
.kv { font-size: 12.5px; font-family: var(--mono); }
.hex { border-collapse: collapse; font: 12px var(--mono); margin-top: 6px; }
.hex td { padding: 1px 10px 1px 0; vertical-align: top; white-space: nowrap; }
.hex .o { color: var(--muted); }
.hex .a { color: var(--muted); }
.hex .n { white-space: normal; }
.hex .f { color: var(--accent); }
#tooltip { position: fixed; z-index: 10; pointer-events: none; background: #111827; color: #f9fafb; border-radius: 7px; padding: 7px 10px; font-size: 12px; line-height: 1.5; max-width: 380px; box-shadow: 0 6px 20px rgba(0,0,0,.25); }
#tooltip .t { font-weight: 650; margin-bottom: 2px; }
#tooltip .m { font-family: var(--mono); font-size: 11.5px; }
#tooltip .k { color: #9ca3af; }
footer { font-size: 12px; margin-top: 6px; }
.error { color: #b91c1c; font-weight: 600; }
`;
