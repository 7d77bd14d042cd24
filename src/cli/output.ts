/**
 * What the commands that talk to the gateway print: aligned text tables for people at a terminal,
 * in the style of Kafka's tools (upper-case headers, columns left-aligned two spaces apart, '-' for
 * no value), and with `--json` the gateway's answer as it is, for scripts.
 */
export type Cell = string | number | null;

/** The table as lines, each ending with a newline; trailing spaces trimmed. */
export function formatTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = [headers, ...rows].map((row) => headers.map((_, c) => cellText(row[c] ?? null)));
  const widths = headers.map((_, c) => Math.max(...text.map((row) => row[c]!.length)));
  return text.map((row) => `${row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()}\n`).join('');
}

function cellText(cell: Cell): string {
  return cell === null ? '-' : String(cell);
}

/** The gateway's JSON answer, indented, on stdout. */
export function printJson(answer: unknown): void {
  process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
}

/** A producer timestamp as ISO 8601 UTC; one outside Date's range (a device's odd clock) as its number. */
export function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}
