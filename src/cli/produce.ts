/**
 * `edgelog produce TOPIC`: each line of stdin becomes one record of TOPIC, sent in batches through
 * the gateway's /produce endpoint (src/client). Memory stays bounded however long stdin is: lines
 * are read as they come, and at most {@link MAX_BATCHES_IN_FLIGHT} batches wait for their answer.
 */
import { producer, type Producer, type ProducerLimits } from '../client/producer.js';
import type { ProduceResult, ProducerRecord } from '../client/records.js';
import { EdgelogError, type ErrorCode } from '../errors.js';
import { commandError } from './client-errors.js';
import { adminToken, GATEWAY_OPTION_HELP, gatewayUrl, webSocketUrl } from './gateway-url.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export const PRODUCE_USAGE = `Usage: edgelog produce TOPIC [--key K] [--gateway URL]

Reads stdin line by line: each line is one record of TOPIC, its value the line as UTF-8 text
(without the line ending). Lines go to the gateway in batches; the command exits 0 once every
line is stored durably, and prints a summary on stderr. A refusal prints the gateway's reason
and exits 1; lines before it are stored. A topic that does not exist is created with the
gateway's topic defaults (log.topicDefaults), as Kafka's auto-create does.

Options:
  --key K                 Key every record with K: they all go to one partition, in order.
${GATEWAY_OPTION_HELP}
  -h, --help              Show this help.
`;

/** Records one batch holds at most: a batch is one append, answered once durable. */
const MAX_BATCH_RECORDS = 1_000;
/**
 * Batches sent and not yet answered before stdin is read again: enough to keep the gateway's
 * group commit busy, few enough that memory stays at a few batches.
 */
const MAX_BATCHES_IN_FLIGHT = 4;
/** JSON around one record in a frame ({"value":…} or {"valueBase64":…,"key":…}), generously. */
const RECORD_FRAME_OVERHEAD_BYTES = 64;
/** JSON around the records in a frame (type, id, topic). */
const FRAME_OVERHEAD_BYTES = 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Runs `edgelog produce ...` with the arguments after `produce`. */
export async function produce(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(argv, { key: { type: 'string' }, gateway: { type: 'string' }, token: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, PRODUCE_USAGE);
  const values: { key?: string; gateway?: string; token?: string; help?: boolean } = parsed.values;
  const { positionals } = parsed;
  if (values.help) {
    process.stdout.write(PRODUCE_USAGE);
    return;
  }
  if (positionals.length !== 1) throw new UsageError(`produce takes one TOPIC, got ${positionals.length === 0 ? 'none' : positionals.join(' ')}\n\n${PRODUCE_USAGE}`);
  const topic = positionals[0]!;
  const base = gatewayUrl(values.gateway);
  const token = adminToken(values.token);
  const client = producer({ url: webSocketUrl(base, '/produce'), ...(token === undefined ? {} : { token }) });
  try {
    const limits = await client.ready();
    const summary = await new LineSender(client, topic, values.key, limits).run(process.stdin);
    process.stderr.write(`Produced ${summary.records} record(s) to topic '${topic}'${summary.partitions.length > 0 ? ` (partitions ${summary.partitions.join(', ')})` : ''}.\n`);
  } catch (error) {
    throw commandError(base, error);
  } finally {
    await client.close().catch(() => {});
  }
}

/** Turns a byte stream into batches of line records and sends them, a bounded number at a time. */
class LineSender {
  private batch: ProducerRecord[] = [];
  private batchBytes = FRAME_OVERHEAD_BYTES;
  private readonly inFlight: Promise<{ count: number; firstLine: number; results?: ProduceResult[]; error?: unknown }>[] = [];
  private stored = 0;
  private lineNumber = 0;
  private batchFirstLine = 1;
  private readonly partitions = new Set<number>();
  private readonly maxBatchBytes: number;
  private readonly maxBatchRecords: number;

  constructor(
    private readonly client: Producer,
    private readonly topic: string,
    private readonly key: string | undefined,
    limits: ProducerLimits,
  ) {
    this.maxBatchBytes = limits.maxFrameBytes;
    this.maxBatchRecords = Math.min(MAX_BATCH_RECORDS, limits.maxRecordsPerFrame);
  }

  async run(input: AsyncIterable<Buffer | string>): Promise<{ records: number; partitions: number[] }> {
    // The part of a line whose end has not come yet; bounded by the largest frame.
    let partial: Buffer[] = [];
    let partialBytes = 0;
    for await (const chunk of input) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      let start = 0;
      for (let nl = bytes.indexOf(0x0a); nl !== -1; nl = bytes.indexOf(0x0a, start)) {
        const piece = bytes.subarray(start, nl);
        await this.add(partialBytes === 0 ? piece : Buffer.concat([...partial, piece]));
        partial = [];
        partialBytes = 0;
        start = nl + 1;
      }
      if (start < bytes.length) {
        partial.push(bytes.subarray(start));
        partialBytes += bytes.length - start;
        if (partialBytes > this.maxBatchBytes) this.lineTooLong(this.lineNumber + 1, partialBytes);
      }
      // Send what this read brought: a person typing sees each line stored as they enter it.
      await this.flush();
    }
    if (partialBytes > 0) await this.add(Buffer.concat(partial));
    await this.flush();
    while (this.inFlight.length > 0) await this.settleOldest();
    return { records: this.stored, partitions: [...this.partitions].sort((a, b) => a - b) };
  }

  private async add(line: Buffer): Promise<void> {
    this.lineNumber++;
    const bytes = line.at(-1) === 0x0d ? line.subarray(0, -1) : line;
    let value: string | Buffer;
    let size: number;
    try {
      value = utf8.decode(bytes);
      size = Buffer.byteLength(JSON.stringify(value));
    } catch {
      // Not UTF-8: the exact bytes go as base64, so nothing is changed on the way.
      value = Buffer.from(bytes);
      size = Math.ceil(bytes.length / 3) * 4;
    }
    size += RECORD_FRAME_OVERHEAD_BYTES + (this.key === undefined ? 0 : Buffer.byteLength(JSON.stringify(this.key)));
    if (size + FRAME_OVERHEAD_BYTES > this.maxBatchBytes) this.lineTooLong(this.lineNumber, bytes.length);
    if (this.batch.length >= this.maxBatchRecords || this.batchBytes + size > this.maxBatchBytes) await this.flush();
    if (this.batch.length === 0) this.batchFirstLine = this.lineNumber;
    this.batch.push(this.key === undefined ? { value } : { key: this.key, value });
    this.batchBytes += size;
  }

  private async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    const records = this.batch;
    const firstLine = this.batchFirstLine;
    this.batch = [];
    this.batchBytes = FRAME_OVERHEAD_BYTES;
    this.inFlight.push(
      this.client.send(this.topic, records).then(
        (results) => ({ count: records.length, firstLine, results }),
        (error: unknown) => ({ count: records.length, firstLine, error }),
      ),
    );
    while (this.inFlight.length >= MAX_BATCHES_IN_FLIGHT) await this.settleOldest();
  }

  /** Waits for the oldest batch's answer; a refusal ends the command, saying how much was stored before it. */
  private async settleOldest(): Promise<void> {
    const outcome = await this.inFlight.shift()!;
    if (outcome.error !== undefined) {
      const error = outcome.error as Error & { code?: string };
      const before = this.stored === 0 ? 'no line before it was stored' : `the ${this.stored} line(s) before its batch were stored`;
      // Batches sent after it were answered or not: the command does not wait to find out.
      const after = this.inFlight.length > 0 ? '; lines after its batch may or may not have been stored' : '';
      // The gateway names a record by its place in the batch; a person knows it by its line.
      const message = error.message.replace(/records\[(\d+)\]/g, (_, i: string) => `line ${outcome.firstLine + Number(i)}`);
      throw new EdgelogError((error.code ?? 'INTERNAL') as ErrorCode, `${message}; ${before}${after}`, { cause: error });
    }
    this.stored += outcome.count;
    for (const r of outcome.results!) this.partitions.add(r.partition);
  }

  private lineTooLong(line: number, bytes: number): never {
    throw new EdgelogError('RECORD_TOO_LARGE', `line ${line} is more than ${bytes} bytes, over the ${this.maxBatchBytes}-byte frame the gateway accepts; split it, or send it with the TypeScript client`);
  }
}
