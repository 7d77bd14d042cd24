/**
 * The figures a fault scenario reports (issue 8: readings acked, found, lost, duplicated; recovery
 * time), printed as one table line so runs can be compared and copied into docs/reliability.md.
 */
export interface FaultFigures {
  readonly scenario: string;
  /** The PRNG seed of the run: the same seed gives the same fault moments and readings. */
  readonly seed: number;
  /** Faults injected: SIGKILLs, link cuts, member kills, disk fills, clock jumps (the scenario says which). */
  readonly faults: number;
  /** Distinct readings (device, stream, seq) the devices had acknowledged. */
  readonly acked: number;
  /** Distinct readings found where the scenario looks (the log, upstream, a consumer's output). */
  readonly found: number;
  /** Acknowledged readings missing: must be 0. */
  readonly lost: number;
  /** Extra copies of a reading (found n times counts n - 1): publishes or deliveries repeated after a fault. */
  readonly duplicated: number;
  /** Longest time from the end of a fault until the gateway (or the part under test) worked again. */
  readonly recoveryMsMax: number;
  readonly elapsedS: number;
  /** Figures of the scenario's own (records verified, members, ...), printed after the common ones. */
  readonly extra?: Readonly<Record<string, number | string>>;
}

const COLUMNS: ReadonlyArray<[Exclude<keyof FaultFigures, 'extra'>, string]> = [
  ['scenario', 'scenario'],
  ['seed', 'seed'],
  ['faults', 'faults'],
  ['acked', 'acked'],
  ['found', 'found'],
  ['lost', 'lost'],
  ['duplicated', 'duplicated'],
  ['recoveryMsMax', 'max recovery ms'],
  ['elapsedS', 'elapsed s'],
];

/** Formats the figures as a two-line Markdown-style table (header and one row). */
export function formatFigures(figures: FaultFigures): string {
  const pairs: Array<[string, string]> = [
    ...COLUMNS.map(([key, title]): [string, string] => [title, String(figures[key])]),
    ...Object.entries(figures.extra ?? {}).map(([title, value]): [string, string] => [title, String(value)]),
  ];
  const cells = pairs.map(([title, value]) => ({ title, value, width: Math.max(title.length, value.length) }));
  const header = `| ${cells.map((c) => c.title.padEnd(c.width)).join(' | ')} |`;
  const row = `| ${cells.map((c) => c.value.padStart(c.width)).join(' | ')} |`;
  return `${header}\n${row}\n`;
}

/** Prints the figures' table line on stdout (the suite's output is the report) and returns them. */
export function reportFigures(figures: FaultFigures): FaultFigures {
  process.stdout.write(`\n${formatFigures(figures)}`);
  return figures;
}
