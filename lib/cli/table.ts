/**
 * A plain text table: columns padded to their widest cell, each row passed through `style`
 * (colour, say) after padding so widths stay right.
 *
 * @example renderTable(['HOST', 'STATUS'], [{ cells: ['web1', 'OK'] }]) // 'HOST  STATUS\nweb1  OK\n'
 */
export function renderTable<R extends { cells: readonly string[] }>(header: readonly string[], rows: readonly R[], style: (line: string, row: R) => string = (l) => l): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r.cells[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return `${[line(header), ...rows.map((r) => style(line(r.cells), r))].join('\n')}\n`;
}
