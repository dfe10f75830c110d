// The report's card of real allocators (report --allocator, docs/allocators.md): each allocator's resident memory
// over the trace, one line each, drawn once as inline SVG when the page is written (it needs no script).
import type { AllocatorColumn } from '../allocators.ts';
import { escapeHtml } from './escape.ts';
import { bytes, decimalStep, niceStep } from './format.ts';

/** What the chart reads of a column. */
export type RssSeries = Pick<AllocatorColumn, 'label' | 'events' | 'peakRss' | 'peakRssSeq' | 'rssSamples'>;

/** A line's colour per allocator, in the order of the columns. */
const COLOURS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea'];

const WIDTH = 1000;
const HEIGHT = 240;
const PLOT = { left: 70, right: WIDTH - 14, top: 12, bottom: HEIGHT - 26 };

/** The card: an SVG of one step line per series (bucket i drawn over its events at its highest RSS), and a legend. */
export function renderRssChart(series: readonly RssSeries[]): string {
  const events = Math.max(1, ...series.map((s) => s.events));
  const top = Math.max(1, ...series.map((s) => s.peakRss)) * 1.06;
  const step = niceStep(top / 4);
  const yMax = Math.ceil(top / step) * step;
  const x = (seq: number) => PLOT.left + (Math.min(seq, events) / events) * (PLOT.right - PLOT.left);
  const y = (v: number) => PLOT.bottom - (v / yMax) * (PLOT.bottom - PLOT.top);
  const at = (n: number) => n.toFixed(1);
  const grid: string[] = [];
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    grid.push(`<line x1="${PLOT.left}" x2="${PLOT.right}" y1="${at(y(v))}" y2="${at(y(v))}" class="grid"/>`);
    grid.push(`<text x="${PLOT.left - 6}" y="${at(y(v))}" class="ylabel">${bytes(v)}</text>`);
  }
  const xStep = decimalStep(events / 6);
  for (let seq = 0; seq <= events; seq += xStep) grid.push(`<text x="${at(x(seq))}" y="${HEIGHT - 8}" class="xlabel">${seq.toLocaleString('en-US')}</text>`);
  const lines = series.map((s, i) => {
    const { every, max } = s.rssSamples;
    const points: string[] = [];
    max.forEach((v, b) => {
      points.push(`${at(x(b * every))},${at(y(v))}`, `${at(x((b + 1) * every))},${at(y(v))}`);
    });
    return `<polyline class="rss" data-allocator="${escapeHtml(s.label)}" stroke="${COLOURS[i % COLOURS.length]}" points="${points.join(' ')}"/>`;
  });
  const legend = series
    .map((s, i) => {
      const when = s.peakRssSeq === null ? '' : ` after event ${s.peakRssSeq.toLocaleString('en-US')}`;
      return `<span class="key"><span class="ln" style="border-color:${COLOURS[i % COLOURS.length]}"></span>${escapeHtml(s.label)}: peak ${bytes(s.peakRss)}${when}</span>`;
    })
    .join('');
  const every = series[0]?.rssSamples.every ?? 1;
  return `<section class="card" id="allocators-card">
    <div class="card-head"><h2>Resident memory under real allocators</h2><div class="legend">${legend}</div></div>
    <svg id="rss-chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="resident memory over the trace, one line per allocator">
      ${grid.join('\n      ')}
      ${lines.join('\n      ')}
    </svg>
    <p class="hint">Anonymous resident bytes of the process that replayed the trace under each allocator, writing every byte it
    allocated, after each call${every > 1 ? ` (each step the highest over ${every} events)` : ''}; the x axis counts events.</p>
  </section>`;
}

/** The chart's styles, added to the page's. */
export const RSS_CHART_CSS = `
#rss-chart { width: 100%; height: auto; display: block; }
#rss-chart .grid { stroke: #eef1f5; stroke-width: 1; }
#rss-chart .ylabel { font: 11px system-ui, sans-serif; fill: #667085; text-anchor: end; dominant-baseline: middle; }
#rss-chart .xlabel { font: 11px system-ui, sans-serif; fill: #667085; text-anchor: middle; }
#rss-chart .rss { fill: none; stroke-width: 1.6; stroke-linejoin: round; }
`;
