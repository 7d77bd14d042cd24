/**
 * `edgelog groups list|describe|reset-offsets|delete`: consumer groups, through the running
 * gateway's admin API (docs/api.md), in the manner of Kafka's kafka-consumer-groups.
 */
import type { GroupDescription, GroupSummary, OffsetResetTarget } from '../groups/coordinator.js';
import { ApiClient, segment } from './api-client.js';
import { adminToken, GATEWAY_OPTION_HELP, gatewayUrl } from './gateway-url.js';
import { formatTable, printJson } from './output.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export const GROUPS_USAGE = `Usage: edgelog groups <list|describe|reset-offsets|delete> [options]

Commands:
  list                    Each consumer group: stable (it has members) or empty (only
                          committed offsets), and its member count.
  describe GROUP          Per partition: the group's committed offset (CURRENT-OFFSET), the
                          high watermark (LOG-END-OFFSET), the lag and the member reading it;
                          then the members.
  reset-offsets GROUP --topic TOPIC [--partition P] (--to-earliest | --to-latest | --to-offset N | --to-datetime TIME)
                          Move the group's committed offsets on every partition of TOPIC (or
                          only on partition P): to the
                          oldest record kept, to the end, to offset N (kept within each
                          partition's range) or to the first record at or after TIME. Only while
                          the group has no members.
  delete GROUP            Delete the committed offsets of a group that has no members.

Options:
  --topic TOPIC           reset-offsets: the topic whose offsets to move.
  --partition P           reset-offsets: only this partition of the topic, e.g. to move a bridge
                          or connector past a record it cannot read (CORRUPT_RECORD).
  --to-earliest, --to-latest, --to-offset N, --to-datetime TIME
                          reset-offsets: where to; exactly one. TIME is ISO 8601, e.g.
                          2026-11-21T08:00:00Z; without a zone it is this machine's local time.
  --json                  Print the gateway's JSON answer, for scripts.
${GATEWAY_OPTION_HELP}
  -h, --help              Show this help.
`;

interface Flags {
  gateway?: string;
  token?: string;
  json?: boolean;
  help?: boolean;
  topic?: string;
  partition?: string;
  'to-earliest'?: boolean;
  'to-latest'?: boolean;
  'to-offset'?: string;
  'to-datetime'?: string;
}

const TO_FLAGS = ['to-earliest', 'to-latest', 'to-offset', 'to-datetime'] as const;

/** ISO 8601 as Kafka's --to-datetime takes it: a date, optionally a time, optionally a zone. */
const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/** Runs `edgelog groups ...` with the arguments after `groups`. */
export async function groups(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(argv, {
        gateway: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        topic: { type: 'string' },
        partition: { type: 'string' },
        'to-earliest': { type: 'boolean' },
        'to-latest': { type: 'boolean' },
        'to-offset': { type: 'string' },
        'to-datetime': { type: 'string' },
      }, GROUPS_USAGE);
  const values: Flags = parsed.values;
  const { positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.help || command === 'help') {
    process.stdout.write(GROUPS_USAGE);
    return;
  }
  const usage = (message: string): never => {
    throw new UsageError(`${message}\n\n${GROUPS_USAGE}`);
  };
  const only = (allowed: readonly (keyof Flags)[]) => {
    for (const key of Object.keys(values) as (keyof Flags)[]) {
      if (key !== 'gateway' && key !== 'token' && key !== 'json' && !allowed.includes(key)) usage(`groups ${command}: option --${key} does not apply`);
    }
  };
  const group = (): string => {
    if (args.length !== 1) usage(`groups ${command}: give exactly one GROUP`);
    return args[0]!;
  };
  const client = () => new ApiClient(gatewayUrl(values.gateway), adminToken(values.token));
  switch (command) {
    case 'list':
      only([]);
      if (args.length !== 0) usage(`groups list: unexpected argument '${args[0]}'`);
      return list(client(), values.json === true);
    case 'describe':
      only([]);
      return describe(client(), group(), values.json === true);
    case 'reset-offsets': {
      only(['topic', 'partition', ...TO_FLAGS]);
      const id = group();
      if (values.topic === undefined) usage('groups reset-offsets: --topic TOPIC is required');
      const partition = values.partition === undefined ? undefined : wholeNumber(values.partition, '--partition', usage);
      return resetOffsets(client(), id, values.topic!, resetTarget(values, usage), partition, values.json === true);
    }
    case 'delete':
      only([]);
      return remove(client(), group(), values.json === true);
    case undefined:
      return usage('groups: missing command: list, describe, reset-offsets or delete');
    default:
      return usage(`groups: unknown command '${command}': the commands are list, describe, reset-offsets and delete`);
  }
}

/** The one --to-* flag given, as the API's reset target. */
function resetTarget(values: Flags, usage: (message: string) => never): OffsetResetTarget {
  const given = TO_FLAGS.filter((f) => values[f] !== undefined);
  if (given.length !== 1) {
    usage(`groups reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset N, --to-datetime TIME${given.length > 1 ? ` (got ${given.map((f) => `--${f}`).join(' and ')})` : ''}`);
  }
  if (values['to-earliest']) return 'earliest';
  if (values['to-latest']) return 'latest';
  const offset = values['to-offset'];
  if (offset !== undefined) return { offset: wholeNumber(offset, '--to-offset', usage) };
  const text = values['to-datetime']!;
  // A date alone would be UTC midnight to Date.parse but local time with a time of day; make both local.
  const ms = ISO_DATETIME.test(text) ? Date.parse(text.length === 10 ? `${text}T00:00` : text) : Number.NaN;
  if (Number.isNaN(ms) || ms < 0) {
    usage(`groups reset-offsets: --to-datetime must be an ISO 8601 date and time such as 2026-11-21T08:00:00Z (or 2026-11-21), got '${text}'`);
  }
  return { timestamp: ms };
}

async function list(client: ApiClient, json: boolean): Promise<void> {
  const answer = await client.get<{ groups: GroupSummary[] }>('/api/groups');
  if (json) return printJson(answer);
  if (answer.groups.length === 0) return void process.stdout.write('No consumer groups yet: a group appears when a consumer joins it or commits offsets.\n');
  process.stdout.write(formatTable(['GROUP', 'STATE', 'MEMBERS'], answer.groups.map((g) => [g.groupId, g.state, g.members])));
}

async function describe(client: ApiClient, id: string, json: boolean): Promise<void> {
  const d = await client.get<GroupDescription>(`/api/groups/${segment(id)}`);
  if (json) return printJson(d);
  const owner = new Map<string, string>();
  for (const m of d.members) for (const p of m.assignment) owner.set(`${p.topic}/${p.partition}`, m.memberId);
  const strategy = d.strategy === null ? '' : `, generation ${d.generation}, strategy ${d.strategy}`;
  process.stdout.write(`Group ${d.groupId}: ${d.state}${strategy}, ${d.members.length} member(s)\n\n`);
  process.stdout.write(
    formatTable(
      ['TOPIC', 'PARTITION', 'CURRENT-OFFSET', 'LOG-END-OFFSET', 'LAG', 'MEMBER'],
      d.offsets.map((o) => [o.topic, o.partition, o.committed, o.highWatermark, o.lag, owner.get(`${o.topic}/${o.partition}`) ?? null]),
    ),
  );
  if (d.members.length === 0) return;
  process.stdout.write('\n');
  process.stdout.write(
    formatTable(
      ['MEMBER', 'CLIENT-ID', 'TOPICS', 'PARTITIONS', 'LAST-SEEN-MS-AGO'],
      d.members.map((m) => [m.memberId, m.clientId, m.topics.join(','), m.assignment.length, m.lastSeenAgoMs]),
    ),
  );
}

function wholeNumber(text: string, flag: string, usage: (message: string) => never): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) usage(`groups reset-offsets: ${flag} must be a whole number ≥ 0, got '${text}'`);
  return n;
}

async function resetOffsets(client: ApiClient, id: string, topic: string, to: OffsetResetTarget, partition: number | undefined, json: boolean): Promise<void> {
  const body = { topic, to, ...(partition === undefined ? {} : { partition }) };
  const answer = await client.post<{ groupId: string; topic: string; offsets: { partition: number; offset: number }[] }>(`/api/groups/${segment(id)}/reset-offsets`, body);
  if (json) return printJson(answer);
  process.stdout.write(`Reset the offsets of group ${id} on topic ${topic}:\n\n`);
  process.stdout.write(formatTable(['TOPIC', 'PARTITION', 'NEW-OFFSET'], answer.offsets.map((o) => [topic, o.partition, o.offset])));
}

async function remove(client: ApiClient, id: string, json: boolean): Promise<void> {
  const answer = await client.delete<{ groupId: string; deletedOffsets: number }>(`/api/groups/${segment(id)}`);
  if (json) return printJson(answer);
  process.stdout.write(`Deleted group ${id} (${answer.deletedOffsets} committed offset(s)).\n`);
}
