// The one reader and writer of the numbers mallocscope takes in (traces, mtrace logs, options, policy names):
// decimal or 0x/0X-hexadecimal digits, whole and unsigned, exact at any size (a bigint from 2^53 on).
// No node: imports, so that every layer, the browser page included, can use it.

/** The value of each byte as a hexadecimal digit, or 255. */
const HEX_DIGIT = new Uint8Array(256).fill(255);
for (let d = 0; d < 10; d++) HEX_DIGIT[0x30 + d] = d;
for (let d = 0; d < 6; d++) {
  HEX_DIGIT[0x41 + d] = 10 + d;
  HEX_DIGIT[0x61 + d] = 10 + d;
}

/** The digits of a bigint, read from bytes that were checked to be digits. */
function digitText(bytes: Uint8Array, start: number, end: number): string {
  let text = '';
  for (let i = start; i < end; i++) text += String.fromCharCode(bytes[i]);
  return text;
}

/**
 * The hexadecimal digits at bytes[start, end) (no 0x): a number below 2^53, a bigint from 2^53 on; undefined
 * when there is no digit or a byte is not one.
 */
export function parseHexDigits(bytes: Uint8Array, start: number, end: number): number | bigint | undefined {
  if (start >= end) return undefined;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = HEX_DIGIT[bytes[i]];
    if (digit === 255) return undefined;
    // Each step is exact while the result stays at or below 2^53 - 1; a rounded one is larger still.
    value = value * 16 + digit;
  }
  return value <= Number.MAX_SAFE_INTEGER ? value : BigInt(`0x${digitText(bytes, start, end)}`);
}

/** The decimal digits at bytes[start, end), as parseHexDigits reads hexadecimal ones. */
export function parseDecimalDigits(bytes: Uint8Array, start: number, end: number): number | bigint | undefined {
  if (start >= end) return undefined;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = bytes[i] - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    value = value * 10 + digit;
  }
  return value <= Number.MAX_SAFE_INTEGER ? value : BigInt(digitText(bytes, start, end));
}

/**
 * A whole number at bytes[start, end), in decimal or with a 0x/0X prefix in hexadecimal: a number below
 * 2^53, a bigint from 2^53 on (exact either way); undefined when malformed (no sign, no space, no other base).
 */
export function parseNumberBytes(bytes: Uint8Array, start: number, end: number): number | bigint | undefined {
  if (end - start >= 2 && bytes[start] === 0x30 && (bytes[start + 1] | 0x20) === 0x78) return parseHexDigits(bytes, start + 2, end);
  return parseDecimalDigits(bytes, start, end);
}

/** parseNumberBytes of a string; anything outside ASCII makes it malformed. */
export function parseNumber(text: string): number | bigint | undefined {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return undefined;
    bytes[i] = code;
  }
  return parseNumberBytes(bytes, 0, bytes.length);
}

/** A whole number in decimal or 0x-hexadecimal that a double holds exactly (below 2^53); undefined otherwise. */
export function parseSafeNumber(text: string): number | undefined {
  const value = parseNumber(text);
  return typeof value === 'number' ? value : undefined;
}

/** A size as the trace format writes it: decimal below 2^53, 0x-hexadecimal from there on (exact both ways). */
export function formatNumber(value: number | bigint): string {
  if (typeof value === 'number' ? value <= Number.MAX_SAFE_INTEGER : value <= BigInt(Number.MAX_SAFE_INTEGER)) return String(value);
  return `0x${BigInt(value).toString(16)}`;
}
