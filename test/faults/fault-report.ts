/**
 * The figures a fault scenario reports (issue 8: readings acked, found, lost, duplicated; recovery
 * time), printed as one table line so runs can be compared and copied into docs/reliability.md.
 */
export interface FaultFigures {
  readonly scenario: string;
  /** The PRNG seed of the run: the same seed gives the same kill moments and readings. */
  readonly seed: number;
  /** Times the gateway was SIGKILLed. */
  readonly kills: number;
  /** Distinct readings (device, stream, seq) the devices had acknowledged. */
  readonly acked: number;
  /** Distinct readings stored in the log (acknowledged or not). */
  readonly found: number;
  /** Acknowledged readings missing from the log: must be 0. */
  readonly lost: number;
  /** Extra stored copies of a reading (stored n times counts n - 1): publishes resent after a kill. */
  readonly duplicated: number;
  /** Records read back and checksum-verified, over every topic. */
  readonly recordsVerified: number;
  /** Longest time from spawning the gateway to its first MQTT CONNACK. */
  readonly recoveryMsMax: number;
  readonly elapsedS: number;
}

const COLUMNS: ReadonlyArray<[keyof FaultFigures, string]> = [
  ['scenario', 'scenario'],
  ['seed', 'seed'],
  ['kills', 'kills'],
  ['acked', 'acked'],
  ['found', 'found'],
  ['lost', 'lost'],
  ['duplicated', 'duplicated'],
  ['recordsVerified', 'records verified'],
  ['recoveryMsMax', 'max recovery ms'],
  ['elapsedS', 'elapsed s'],
];

/** Formats the figures as a two-line Markdown-style table (header and one row). */
export function formatFigures(figures: FaultFigures): string {
  const cells = COLUMNS.map(([key, title]) => {
    const value = String(figures[key]);
    return { title, value, width: Math.max(title.length, value.length) };
  });
  const header = `| ${cells.map((c) => c.title.padEnd(c.width)).join(' | ')} |`;
  const row = `| ${cells.map((c) => c.value.padStart(c.width)).join(' | ')} |`;
  return `${header}\n${row}\n`;
}

/** Prints the figures' table line on stdout (the suite's output is the report) and returns them. */
export function reportFigures(figures: FaultFigures): FaultFigures {
  process.stdout.write(`\n${formatFigures(figures)}`);
  return figures;
}
