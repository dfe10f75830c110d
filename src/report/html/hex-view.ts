// The report's hex view: the selected chunk's bytes in main_arena's heap image (docs/image.md), as xxd rows
// with each word named, and safe-linked pointers shown stored and decoded side by side.
import { heapImage } from '../../allocator/image.ts';
import type { Malloc } from '../../allocator/malloc.ts';
import { walkImage } from '../../image/walk.ts';
import { chunkRows, wordText } from '../../image/words.ts';
import { escapeHtml } from './escape.ts';

/** What the hex view shows, kept for tests (window.mallocscope.hex). */
export interface HexShown {
  /** The chunk's offset from the heap start, or -1 when the view shows none. */
  chunk: number;
  state: string;
  /** Every named word shown: offset, field, the stored word and (safe-linked) the pointer it hides, in hex. */
  words: { at: number; field: string; stored: string; pointer: string | null }[];
  note: string;
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

/**
 * The hex view of the chunk holding `address` (a model address) after event `seq` of model `m`; the image is
 * computed here, so the page calls this only when the card is in view and the chunk or the event changed.
 */
export function hexView(m: Malloc, seq: number, address: number): { html: string; shown: HexShown } {
  const none = (note: string) => ({ html: `<div class="empty">${escapeHtml(note)}</div>`, shown: { chunk: -1, state: '', words: [], note } });
  if (address < 0) return none("No chunk selected: click one in the heap map (this event's block is shown when it has one).");
  const start = m.system.heapStart;
  if (!m.inMainHeap(address)) {
    return none("This chunk is not in main_arena's heap (an mmapped chunk, or a thread arena's): the heap image covers main_arena's heap only.");
  }
  let image: ReturnType<typeof heapImage>;
  try {
    image = heapImage(m, seq);
  } catch (error) {
    return none(`No image: ${(error as Error).message}`);
  }
  const walk = walkImage(image.bytes, image.sidecar);
  const { chunk, rows, more: left } = chunkRows(image, walk, address - start);
  if (!chunk) return none('No chunk of the image holds this address.');
  const base = image.sidecar.base;
  const words: HexShown['words'] = [];
  const body = rows
    .map((row) => {
      const hexText = row.bytes.map((b, i) => `${b.toString(16).padStart(2, '0')}${i % 2 === 1 && i < row.bytes.length - 1 ? ' ' : ''}`).join('');
      const ascii = row.bytes.map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
      const fields = row.words.map((w) => {
        const counts = /^(counts|num_slots)\[(\d+)\]$/.exec(w.field);
        if (counts) {
          // Four uint16 counts (2.42: free slots) in the word: their bins and values.
          const first = Number(counts[2]);
          const field = `${counts[1]}[${first}..${first + 3}]`;
          const values = [0, 2, 4, 6].map((k) => (row.bytes[w.at - row.at + k] ?? 0) | ((row.bytes[w.at - row.at + k + 1] ?? 0) << 8));
          words.push({ at: w.at, field, stored: hex(w.stored), pointer: null });
          return `<span class="f">${field}</span> ${values.join(' ')}`;
        }
        const entry = { at: w.at, field: w.field, stored: hex(w.stored), pointer: w.mangled ? hex(w.pointer) : null };
        words.push(entry);
        let value = wordText(w.stored);
        if (w.field === 'size') {
          const flags = (['A', 'M', 'P'] as const).filter((f) => chunk.flags[f]);
          value = `${hex(w.stored)} = ${hex(chunk.size)}${flags.length ? ` | ${flags.join('|')}` : ''}`;
        } else if (w.mangled) {
          value =
            w.stored === 0n
              ? '0x0'
              : `stored ${hex(w.stored)} · decoded (${hex(base + BigInt(w.at))} >> 12) ^ ${hex(w.stored)} = <b>${wordText(w.pointer)}</b>`;
        }
        return `<span class="f">${escapeHtml(w.field)}</span> ${value}`;
      });
      return `<tr><td class="o">+${hex(row.at).slice(2).padStart(6, '0')}</td><td class="x">${hexText}</td><td class="a">${escapeHtml(ascii)}</td><td class="n">${fields.join(' · ')}</td></tr>`;
    })
    .join('');
  const what = chunk.tcacheStruct ? 'the tcache_perthread_struct' : `a ${chunk.state} chunk`;
  const note = `${what} at +${hex(chunk.offset)}, size ${hex(chunk.size)}${chunk.bin !== null ? `, bin ${chunk.bin}` : ''}; pointers as in an image whose heap starts at ${hex(base)}`;
  const more = left > 0 ? `<tr><td></td><td class="x">…</td><td></td><td class="n muted">${left} more bytes, to the next chunk's prev_size</td></tr>` : '';
  return {
    html: `<div class="kv muted">${escapeHtml(note)}</div><table class="hex">${body}${more}</table>`,
    shown: { chunk: chunk.offset, state: chunk.tcacheStruct ? 'tcache struct' : chunk.state, words, note },
  };
}
