// Fixed-width text tables for the CLI: a header row, columns two spaces apart, no trailing spaces.

export type Cell = string | number | boolean | null | undefined;

/** Shows a cell: null/undefined as `-`, booleans as yes/no, newlines flattened. */
export function cell(v: Cell): string {
  if (v === null || v === undefined || v === '') return '-';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v).replace(/\s*\n\s*/g, ' ');
}

/** Cuts a string to `max` characters with an ellipsis. */
export const clip = (s: string | null | undefined, max: number): string | null | undefined =>
  s && s.length > max ? s.slice(0, max - 1) + '…' : s;

/** The table as text: `headers` then one line per row. */
export function table(headers: string[], rows: Cell[][]): string {
  const text = rows.map((r) => headers.map((_, i) => cell(r[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(headers), ...text.map(line)].join('\n');
}

/** "12s ago", "3m ago", "5h ago", "2d ago" for an ISO time; null stays null. */
export function ago(iso: string | null | undefined, now = Date.now()): string | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}
