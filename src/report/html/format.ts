// Numbers as the report shows them, in the page and in the parts the template draws: bytes in binary units, and
// the steps of a chart's axes. No Node API: the page bundles it.

/** `n` bytes in the largest binary unit that keeps it at 1 or more ("1.5 MiB"); a bigint or string with every digit. */
export function bytes(n: number | bigint | string): string {
  // A bigint, or a decimal string, is a size_t beyond 2^53: written with every digit.
  if (typeof n !== 'number') return `${n} bytes`;
  if (!Number.isFinite(n)) return String(n);
  if (n >= 2 ** 62) return `${(n / 2 ** 60).toFixed(0)} EiB`;
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const text = u === 0 ? String(v) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${n < 0 ? '−' : ''}${text.replace(/\.0+$|(\.\d*?)0+$/, '$1')} ${units[u]}`;
}

/** A step for an axis of about `raw`: a power of two for bytes, 1-2-5 decimals below 1024. */
export function niceStep(raw: number): number {
  if (raw <= 0) return 1;
  const power = 2 ** Math.floor(Math.log2(raw));
  // Byte axes read best in powers of two; event axes in 1-2-5 decimals.
  return raw >= 1024 ? power * (raw / power > 1.5 ? 2 : 1) : decimalStep(raw);
}

/** A 1-2-5 decimal step of at least `raw` (events). */
export function decimalStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return Math.max(1, (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power);
}
