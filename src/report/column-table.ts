// The plain text tables of the reports (compare, compare --allocator, diff, anatomy, tune): a row a figure,
// its name left-aligned in the first column and the values right-aligned in the others, so digits line up.

/** The lines of `rows` (the header among them, if any) laid out in columns two spaces apart, without trailing spaces. */
export function columnTable(rows: readonly (readonly string[])[]): string[] {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}
