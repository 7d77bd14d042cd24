/**
 * `edgelog bridges [NAME]`: the upstream bridges of the running gateway and how far each is
 * behind, through the admin API (docs/bridges.md "Status").
 */
import type { BridgeReport } from '../../bridges/bridges.js';
import { ApiClient, segment } from './api-client.js';
import { adminToken, GATEWAY_OPTION_HELP, gatewayUrl } from './gateway-url.js';
import { formatTable, isoTime, printJson } from './output.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export const BRIDGES_USAGE = `Usage: edgelog bridges [NAME] [options]

Without NAME: each bridge with its upstream, connection state, backlog, throughput and counters.
With NAME: that bridge's partitions: checkpoint, acknowledged offset, high watermark, backlog.

Options:
  --json                  Print the gateway's JSON answer, for scripts.
${GATEWAY_OPTION_HELP}
  -h, --help              Show this help.
`;

/** Runs `edgelog bridges ...` with the arguments after `bridges`. */
export async function bridges(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, { gateway: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, BRIDGES_USAGE);
  if (values.help) return void process.stdout.write(BRIDGES_USAGE);
  if (positionals.length > 1) throw new UsageError(`bridges: give at most one bridge NAME, got ${positionals.length} arguments\n\n${BRIDGES_USAGE}`);
  const client = new ApiClient(gatewayUrl(values.gateway), adminToken(values.token));
  const name = positionals[0];
  if (name === undefined) {
    const answer = await client.get<{ bridges: BridgeReport[] }>('/api/bridges');
    if (values.json) return printJson(answer);
    if (answer.bridges.length === 0) return void process.stdout.write('No bridges: they are configured under bridges: (docs/bridges.md).\n');
    process.stdout.write(
      formatTable(
        ['BRIDGE', 'UPSTREAM', 'STATE', 'BACKLOG', 'RECORDS/S', 'ACKED', 'RESENT', 'LOST', 'LAST-ACK', 'LAST-ERROR'],
        answer.bridges.map((b) => [
          b.name,
          `${b.kind} ${b.target}`,
          b.state,
          b.backlogRecords,
          b.recordsPerSecond,
          b.counters.ackedRecords,
          b.counters.resentRecords,
          b.counters.lostRecords,
          b.lastAckAt === null ? null : isoTime(b.lastAckAt),
          b.lastError === null ? null : `${b.lastError.code}: ${b.lastError.message}`,
        ]),
      ),
    );
    return;
  }
  const b = await client.get<BridgeReport>(`/api/bridges/${segment(name)}`);
  if (values.json) return printJson(b);
  process.stdout.write(`Bridge ${b.name}: ${b.state}, ${b.kind} ${b.target}, backlog ${b.backlogRecords} record(s)\n\n`);
  process.stdout.write(
    formatTable(
      ['TOPIC', 'PARTITION', 'CHECKPOINT', 'ACKED', 'LOG-END-OFFSET', 'BACKLOG', 'IN-FLIGHT'],
      b.partitions.map((p) => [p.topic, p.partition, p.checkpoint, p.acked, p.highWatermark, p.backlogRecords, p.inFlightRecords]),
    ),
  );
}
