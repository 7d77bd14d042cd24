/**
 * `edgelog topics list|create|describe|delete`: the log's topics, through the running gateway's
 * admin API (docs/api.md). Tables for people, `--json` (the API's answer as it is) for scripts.
 */
import type { TopicDescription } from '../log/commit-log.js';
import { ApiClient, segment } from './api-client.js';
import { adminToken, GATEWAY_OPTION_HELP, gatewayUrl } from './gateway-url.js';
import { formatTable, isoTime, printJson } from './output.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export const TOPICS_USAGE = `Usage: edgelog topics <list|create|describe|delete> [options]

Commands:
  list                    Each topic with its partitions, records and bytes.
  create NAME             Create a topic: 1 to 249 of a-z A-Z 0-9 . _ -. Its settings are
                          fixed at creation; the gateway's log.topicDefaults fill the rest.
  describe NAME           The topic's settings and, per partition, the start offset, the high
                          watermark (the next offset), records, bytes and the oldest timestamp.
  delete NAME             Delete the topic, its records and the groups' offsets for it.

Options for create:
  --partitions N          Partitions, 1 to 4096 (default 1).
  --retention-ms N        Keep records this long after they were appended (default 7 days);
                          -1 for no age limit.
  --retention-bytes N     Keep at most this many bytes per partition, oldest deleted first;
                          -1 for no size limit (the default).
  --max-message-bytes N   The largest record, 64 to 67108864 bytes (default 1048576).

Options:
  --json                  Print the gateway's JSON answer, for scripts.
${GATEWAY_OPTION_HELP}
  -h, --help              Show this help.
`;

interface Flags {
  gateway?: string;
  token?: string;
  json?: boolean;
  help?: boolean;
  partitions?: string;
  'retention-ms'?: string;
  'retention-bytes'?: string;
  'max-message-bytes'?: string;
}

/** The create flags and the API fields they set. */
const CONFIG_FLAGS = {
  partitions: 'partitions',
  'retention-ms': 'retentionMs',
  'retention-bytes': 'retentionBytes',
  'max-message-bytes': 'maxMessageBytes',
} as const;

/** One line of GET /api/topics. */
interface TopicSummary {
  name: string;
  partitions: number;
  records: number;
  bytes: number;
}

/** Runs `edgelog topics ...` with the arguments after `topics`. */
export async function topics(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(argv, {
        gateway: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        partitions: { type: 'string' },
        'retention-ms': { type: 'string' },
        'retention-bytes': { type: 'string' },
        'max-message-bytes': { type: 'string' },
      }, TOPICS_USAGE);
  const values: Flags = parsed.values;
  const { positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.help || command === 'help') {
    process.stdout.write(TOPICS_USAGE);
    return;
  }
  const usage = (message: string): never => {
    throw new UsageError(`${message}\n\n${TOPICS_USAGE}`);
  };
  const only = (allowed: readonly (keyof Flags)[]) => {
    for (const key of Object.keys(values) as (keyof Flags)[]) {
      if (key !== 'gateway' && key !== 'token' && key !== 'json' && !allowed.includes(key)) usage(`topics ${command}: option --${key} does not apply`);
    }
  };
  const name = (): string => {
    if (args.length !== 1) usage(`topics ${command}: give exactly one topic NAME`);
    return args[0]!;
  };
  const client = () => new ApiClient(gatewayUrl(values.gateway), adminToken(values.token));
  switch (command) {
    case 'list':
      only([]);
      if (args.length !== 0) usage(`topics list: unexpected argument '${args[0]}'`);
      return list(client(), values.json === true);
    case 'create':
      only(Object.keys(CONFIG_FLAGS) as (keyof Flags)[]);
      return create(client(), name(), createBody(values, usage), values.json === true);
    case 'describe':
      only([]);
      return describe(client(), name(), values.json === true);
    case 'delete':
      only([]);
      return remove(client(), name(), values.json === true);
    case undefined:
      return usage('topics: missing command: list, create, describe or delete');
    default:
      return usage(`topics: unknown command '${command}': the commands are list, create, describe and delete`);
  }
}

/** The API fields set by create's flags; a value that is not a whole number is a usage error (ranges are the gateway's to check). */
function createBody(values: Flags, usage: (message: string) => never): Record<string, number> {
  const body: Record<string, number> = {};
  for (const [flag, field] of Object.entries(CONFIG_FLAGS) as [keyof typeof CONFIG_FLAGS, string][]) {
    const text = values[flag];
    if (text === undefined) continue;
    const n = Number(text);
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(n)) usage(`topics create: --${flag} must be a whole number, got '${text}'`);
    body[field] = n;
  }
  return body;
}

async function list(client: ApiClient, json: boolean): Promise<void> {
  const answer = await client.get<{ topics: TopicSummary[] }>('/api/topics');
  if (json) return printJson(answer);
  if (answer.topics.length === 0) return void process.stdout.write('No topics yet (edgelog topics create NAME, or devices publishing create them).\n');
  process.stdout.write(formatTable(['TOPIC', 'PARTITIONS', 'RECORDS', 'BYTES'], answer.topics.map((t) => [t.name, t.partitions, t.records, t.bytes])));
}

async function create(client: ApiClient, name: string, body: Record<string, number>, json: boolean): Promise<void> {
  const description = await client.post<TopicDescription>('/api/topics', { name, ...body });
  if (json) return printJson(description);
  process.stdout.write(`Created topic ${name}.\n`);
  printDescription(description);
}

async function describe(client: ApiClient, name: string, json: boolean): Promise<void> {
  const description = await client.get<TopicDescription>(`/api/topics/${segment(name)}`);
  if (json) return printJson(description);
  printDescription(description);
}

async function remove(client: ApiClient, name: string, json: boolean): Promise<void> {
  const answer = await client.delete<{ name: string; deleted: boolean }>(`/api/topics/${segment(name)}`);
  if (json) return printJson(answer);
  process.stdout.write(`Deleted topic ${name}.\n`);
}

function printDescription(d: TopicDescription): void {
  const { partitions, retentionMs, retentionBytes, maxMessageBytes } = d.config;
  process.stdout.write(
    `Topic ${d.name}: ${partitions} partition(s), retention ${retentionMs < 0 ? 'no age limit' : `${retentionMs} ms (${duration(retentionMs)})`}, ` +
      `${retentionBytes < 0 ? 'no size limit' : `at most ${retentionBytes} bytes per partition`}, records up to ${maxMessageBytes} bytes\n\n`,
  );
  process.stdout.write(
    formatTable(
      ['PARTITION', 'START-OFFSET', 'HIGH-WATERMARK', 'RECORDS', 'BYTES', 'OLDEST-TIMESTAMP'],
      d.partitions.map((p) => [p.partition, p.startOffset, p.highWatermark, p.records, p.bytes, p.oldestTimestamp === null ? null : isoTime(p.oldestTimestamp)]),
    ),
  );
}

/** A duration in the largest whole unit: 604800000 → '7 d'. */
export function duration(ms: number): string {
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['min', 60_000],
    ['s', 1000],
  ];
  for (const [unit, size] of units) if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  return `${ms} ms`;
}
