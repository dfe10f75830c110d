// JSON with exact integers: values above 2^53 (bigints in the model) are written as integer literals with
// every digit, never as rounded doubles, as docs/trace-format.md promises for every JSON the tool prints.

/** JSON.stringify for plain data (objects, arrays, strings, numbers, booleans, null), bigints written exactly. */
export function exactJson(value: unknown, space = 0): string {
  return write(value, space > 0 ? ' '.repeat(space) : '', '');
}

function write(value: unknown, indent: string, at: string): string {
  if (typeof value === 'bigint') return String(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return JSON.stringify(value);
  const inner = at + indent;
  const open = indent ? `\n${inner}` : '';
  const close = indent ? `\n${at}` : '';
  const comma = indent ? `,\n${inner}` : ',';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[${open}${value.map((v) => (v === undefined || typeof v === 'function' ? 'null' : write(v, indent, inner))).join(comma)}${close}]`;
  }
  const fields: string[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined || typeof v === 'function') continue;
    fields.push(`${JSON.stringify(key)}:${indent ? ' ' : ''}${write(v, indent, inner)}`);
  }
  return fields.length === 0 ? '{}' : `{${open}${fields.join(comma)}${close}}`;
}
