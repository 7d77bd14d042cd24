/**
 * `edgelog consume TOPIC`: prints a topic's records as they arrive, through the gateway's
 * /consume endpoint (src/client), as one member of a consumer group: a throwaway one by default,
 * or `--group G`, whose committed offsets it then follows and advances.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { consumer, type Consumer, type SeekTo } from '../client/consumer.js';
import type { ConsumerRecord } from '../client/records.js';
import { commandError } from './client-errors.js';
import { adminToken, GATEWAY_OPTION_HELP, gatewayUrl, webSocketUrl } from './gateway-url.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export const CONSUME_USAGE = `Usage: edgelog consume TOPIC [options]

Prints TOPIC's records, one line each (the value as UTF-8 text), as they arrive, until SIGINT or
SIGTERM (then it leaves its group cleanly and exits 0) or until --max records.

Where to start (at most one; default: records that arrive from now on, or with --group the
group's committed offsets):
  --from-beginning        The oldest record kept. With --group, only for partitions the group
                          has no committed offset for (as Kafka's console consumer does).
  --offset N              Offset N of every partition (the gateway refuses one out of range).
  --since TIME            The first record at or after TIME: ISO 8601 (2025-01-31T08:00:00Z) or a
                          duration back from now (90s, 10m, 2h, 1d).

Options:
  --group G               Read as a member of consumer group G and commit each record once it is
                          printed. Without it the command is a throwaway group that commits nothing.
  --max N                 Exit 0 after N records.
  --json                  One JSON object per line: topic, partition, offset, timestamp, key,
                          value (or valueBase64 when it is not UTF-8 text), headers.
${GATEWAY_OPTION_HELP}
  -h, --help              Show this help.
`;

interface Flags {
  group?: string;
  'from-beginning'?: boolean;
  offset?: string;
  since?: string;
  max?: string;
  json?: boolean;
  gateway?: string;
  token?: string;
  help?: boolean;
}

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** An ISO date has at least a full date; bare numbers are refused, since 10 could mean anything. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Runs `edgelog consume ...` with the arguments after `consume`. */
export async function consume(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(argv, {
        group: { type: 'string' },
        'from-beginning': { type: 'boolean' },
        offset: { type: 'string' },
        since: { type: 'string' },
        max: { type: 'string' },
        json: { type: 'boolean' },
        gateway: { type: 'string' },
        token: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      }, CONSUME_USAGE);
  const values: Flags = parsed.values;
  const { positionals } = parsed;
  if (values.help) {
    process.stdout.write(CONSUME_USAGE);
    return;
  }
  const usage = (message: string): never => {
    throw new UsageError(`${message}\n\n${CONSUME_USAGE}`);
  };
  if (positionals.length !== 1) usage(`consume takes one TOPIC, got ${positionals.length === 0 ? 'none' : positionals.join(' ')}`);
  const starts = (['from-beginning', 'offset', 'since'] as const).filter((f) => values[f] !== undefined);
  if (starts.length > 1) usage(`--${starts.join(' and --')} cannot be combined: give at most one place to start`);
  const max = values.max === undefined ? undefined : wholeNumber(values.max, 1) ?? usage(`--max must be a whole number ≥ 1, got '${values.max}'`);
  const offset = values.offset === undefined ? undefined : wholeNumber(values.offset, 0) ?? usage(`--offset must be a whole number ≥ 0, got '${values.offset}'`);
  const since = values.since === undefined ? undefined : parseSince(values.since, Date.now()) ?? usage(`--since must be an ISO 8601 time (2025-01-31T08:00:00Z) or a duration back from now (90s, 10m, 2h, 1d), got '${values.since}'`);
  const seekTo: SeekTo | undefined = offset !== undefined ? offset : since !== undefined ? { timestamp: since } : undefined;
  const base = gatewayUrl(values.gateway);
  await new ConsoleConsumer(positionals[0]!, base, values, seekTo, max).run();
}

/** One run of the command: the consumer, the printing, the commits and the way out. */
class ConsoleConsumer {
  private readonly client: Consumer;
  private printed = 0;
  /** Set by a signal, a failed seek or a closed stdout: the loop stops at its next turn. */
  private stopping = false;
  /** True while a batch is being printed and committed: a signal then waits for it to finish. */
  private inBody = false;
  private failure: unknown = null;

  constructor(
    private readonly topic: string,
    private readonly base: URL,
    private readonly flags: Flags,
    private readonly seekTo: SeekTo | undefined,
    private readonly max: number | undefined,
  ) {
    // Kafka's console consumer does the same: a group of its own that nobody else joins, whose offsets nobody needs.
    const groupId = flags.group ?? `edgelog-console-${randomBytes(4).toString('hex')}`;
    const token = adminToken(flags.token);
    this.client = consumer({
      url: webSocketUrl(base, '/consume'),
      ...(token === undefined ? {} : { token }),
      groupId,
      topics: [topic],
      clientId: 'edgelog-console',
      offsetReset: flags['from-beginning'] ? 'earliest' : 'latest',
      // It commits exactly what it printed, itself.
      autoCommit: false,
      onAssignment: (a) => {
        // Only partitions new to this run: one kept across a rebalance goes on where it is.
        if (this.seekTo === undefined) return;
        for (const p of a.added) this.client.seek(p, this.seekTo).catch((error: unknown) => this.stop(error));
      },
      onWarning: (w) => process.stderr.write(`edgelog: warning: ${w.message}\n`),
    });
  }

  async run(): Promise<void> {
    const stop = () => this.stop(null);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      // The reader went away (`| head`): stop quietly, as other commands do on EPIPE.
      this.stop(error.code === 'EPIPE' ? null : error);
    });
    try {
      await this.client.ready();
      for (const t of this.client.notYetCreated) process.stderr.write(`edgelog: topic '${t}' does not exist yet; waiting for it to be created\n`);
      await this.loop();
    } catch (error) {
      this.failure ??= error;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await this.client.close().catch(() => {});
    }
    if (this.failure !== null) throw commandError(this.base, this.failure);
    process.stderr.write(`Printed ${this.printed} record(s).\n`);
  }

  private async loop(): Promise<void> {
    const iterator = this.client[Symbol.asyncIterator]();
    while (!this.stopping) {
      this.inBody = false;
      const next = await iterator.next();
      if (next.done || this.stopping) return;
      this.inBody = true;
      const batch = next.value;
      const records = this.max === undefined ? batch.records : batch.records.slice(0, this.max - this.printed);
      await this.write(records.map((r) => this.line(r)).join(''));
      this.printed += records.length;
      if (this.flags.group !== undefined && records.length > 0) {
        // The position after the last record printed: what a restart of this group goes on from.
        await this.client.commit([{ topic: batch.topic, partition: batch.partition, offset: records.at(-1)!.offset + 1 }]);
      }
      if (this.max !== undefined && this.printed >= this.max) return;
    }
  }

  /** Ends the run: at once, unless a batch is being printed and committed; then after it. */
  private stop(error: unknown): void {
    if (error !== null) this.failure ??= error;
    this.stopping = true;
    if (!this.inBody || error !== null) void this.client.close().catch(() => {});
  }

  private line(r: ConsumerRecord): string {
    if (!this.flags.json) return `${r.value.toString('utf8')}\n`;
    const out: Record<string, unknown> = { topic: r.topic, partition: r.partition, offset: r.offset, timestamp: r.timestamp };
    if (typeof r.key === 'string' || r.key === null) out['key'] = r.key;
    else out['keyBase64'] = r.key.toString('base64');
    const text = utf8Text(r.value);
    if (text !== undefined) out['value'] = text;
    else out['valueBase64'] = r.value.toString('base64');
    const headers: Record<string, string | { base64: string }> = {};
    for (const [name, v] of Object.entries(r.headers)) headers[name] = typeof v === 'string' ? v : { base64: v.toString('base64') };
    out['headers'] = headers;
    return `${JSON.stringify(out)}\n`;
  }

  /** Writes to stdout and waits while it is full, so a slow reader slows the consumer (its credit does the rest). */
  private async write(text: string): Promise<void> {
    if (text === '' || process.stdout.write(text)) return;
    await Promise.race([once(process.stdout, 'drain'), once(process.stdout, 'close')]);
  }
}

function utf8Text(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function wholeNumber(text: string, min: number): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min ? n : undefined;
}

/** `--since`: an ISO 8601 time, or a duration back from `now`; undefined when it is neither. */
export function parseSince(text: string, now: number): number | undefined {
  const duration = DURATION.exec(text);
  if (duration) return Math.max(0, now - Number(duration[1]) * DURATION_MS[duration[2]!]!);
  if (!ISO_DATE.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) || ms < 0 ? undefined : ms;
}

