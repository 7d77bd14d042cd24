/**
 * `/metrics` in Prometheus's text format (prom-client), one registry per gateway. Most values are
 * read from the parts' own counters when Prometheus scrapes (collect callbacks), so nothing on
 * the reading path pays for them; the append latency histogram is the exception, observed by the
 * log at each commit. The names are listed in docs/api.md.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DEADLETTER_TOPIC } from '../ingest/intake.js';
import type { CommitLog } from '../log/commit-log.js';
import { sendError } from './http-json.js';
import { EdgelogError } from '../errors.js';
import type { AccessCheck, HttpRoute } from './http-server.js';
import type { GatewayParts } from './overview.js';

export const METRICS_PATH = '/metrics';

/** From a lone fsync on an SSD (~0.5 ms) to an SD card stalling (seconds). */
const APPEND_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Consumer groups whose lag is exported per partition, so a misbehaving app cannot explode the series count. */
const LAG_GROUPS_MAX = 100;

export interface MetricsSources extends GatewayParts {
  /** Dashboards connected to /api/live. */
  dashboards: () => number;
}

/** The gateway's metrics registry. Created before the log opens (which observes append latency), then {@link attach}ed to the parts. */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly appendSeconds: Histogram;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.appendSeconds = new Histogram({
      name: 'edgelog_append_duration_seconds',
      help: 'Time from an append to its durable (fsync-ed) commit, per append call',
      buckets: APPEND_BUCKETS_SECONDS,
      registers: [this.registry],
    });
  }

  /** For CommitLogOptions.observeAppendMs. */
  readonly observeAppendMs = (latencyMs: number): void => this.appendSeconds.observe(latencyMs / 1000);

  /** Registers the metrics read from the parts at each scrape. */
  attach(s: MetricsSources): void {
    const registers = [this.registry];
    /** A counter whose total lives in a part: set to that total at each scrape. */
    const total = <L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Array<[Partial<Record<L, string>>, number]>) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const [labels, value] of read()) this.inc(labels, value);
        },
      });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Array<[Partial<Record<L, string>>, number]>) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const [labels, value] of read()) this.set(labels, value);
        },
      });

    total('edgelog_ingest_readings_total', 'Readings stored, by where they went (their topic, or the dead-letter topic)', ['result'], () => {
      const st = s.intake.stats();
      return [
        [{ result: 'stored' }, st.stored],
        [{ result: 'deadlettered' }, st.deadLettered],
      ];
    });
    total('edgelog_ingest_refused_total', 'Readings refused (not stored), by error code', ['code'], () => Object.entries(s.intake.stats().refused).map(([code, n]) => [{ code }, n]));
    gauge('edgelog_ingest_pending_bytes', 'Bytes of readings taken off sockets and not yet durable', [], () => [[{}, s.intake.stats().pendingBytes]]);
    gauge('edgelog_log_full', '1 while the log refuses readings with LOG_FULL', [], () => [[{}, s.intake.stats().logFull ? 1 : 0]]);
    total('edgelog_log_commits_total', 'Group commits (one fsync each)', [], () => [[{}, s.log.commitCount]]);
    gauge('edgelog_log_stored_bytes', 'Record bytes stored in the log', [], () => [[{}, s.log.diskUsage().storedBytes]]);
    gauge('edgelog_log_capacity_bytes', 'The log capacity (log.maxLogBytes); -1 when the disk is the limit', [], () => [[{}, s.log.diskUsage().maxLogBytes]]);
    gauge('edgelog_disk_free_bytes', "Free bytes on the data folder's disk", [], () => [[{}, s.log.diskUsage().freeDiskBytes]]);
    total('edgelog_retention_dropped_unreplicated_total', "Records retention deleted before a bridge replicated them (log.diskPressurePolicy 'drop-oldest')", [], () => [[{}, s.log.droppedHeldRecords]]);
    gauge('edgelog_partition_high_watermark', 'The offset the next record of a partition will get', ['topic', 'partition'], () => partitions(s.log, (p) => p.highWatermark));
    gauge('edgelog_partition_start_offset', 'The oldest offset a partition still stores', ['topic', 'partition'], () => partitions(s.log, (p) => p.startOffset));
    gauge('edgelog_partition_bytes', 'Record bytes a partition stores', ['topic', 'partition'], () => partitions(s.log, (p) => p.bytes));
    gauge('edgelog_deadletter_records', 'Records in the dead-letter topic', [], () => [
      [{}, s.log.hasTopic(DEADLETTER_TOPIC) ? s.log.describeTopic(DEADLETTER_TOPIC).partitions.reduce((sum, p) => sum + p.records, 0) : 0],
    ]);
    gauge('edgelog_consumer_group_lag', 'Records between a group committed offset and the high watermark', ['group', 'topic', 'partition'], () =>
      s.groups
        .list()
        .slice(0, LAG_GROUPS_MAX)
        .flatMap(({ groupId }) =>
          s.groups
            .describe(groupId)
            .offsets.filter((o) => o.lag !== null)
            .map((o): [Record<string, string>, number] => [{ group: groupId, topic: o.topic, partition: String(o.partition) }, o.lag!]),
        ),
    );
    gauge('edgelog_consumer_group_members', 'Members of a consumer group', ['group'], () => s.groups.list().slice(0, LAG_GROUPS_MAX).map((g) => [{ group: g.groupId }, g.members]));
    gauge('edgelog_bridge_connected', '1 while a bridge is connected upstream', ['bridge'], () => s.bridges().map((b) => [{ bridge: b.name }, b.state === 'connected' ? 1 : 0]));
    gauge('edgelog_bridge_backlog_records', 'Records a bridge has not had acknowledged upstream', ['bridge'], () => s.bridges().map((b) => [{ bridge: b.name }, b.backlogRecords]));
    total('edgelog_bridge_records_total', 'Records a bridge sent, had acknowledged, sent again, found duplicate upstream, or lost to retention', ['bridge', 'event'], () =>
      s.bridges().flatMap((b) => {
        const c = b.counters;
        const events: Array<[string, number]> = [['sent', c.sentRecords], ['acked', c.ackedRecords], ['resent', c.resentRecords], ['duplicate', c.duplicateRecords], ['lost', c.lostRecords]];
        return events.map(([event, n]): [Record<string, string>, number] => [{ bridge: b.name, event }, n]);
      }),
    );
    total('edgelog_bridge_reconnects_total', 'Reconnects of a bridge', ['bridge'], () => s.bridges().map((b) => [{ bridge: b.name }, b.counters.reconnects]));
    total('edgelog_bridge_errors_total', 'Errors of a bridge (refusals, timeouts, disconnects)', ['bridge'], () => s.bridges().map((b) => [{ bridge: b.name }, b.counters.errors]));
    gauge('edgelog_connections', 'Open connections by kind', ['kind'], () => [...Object.entries(s.connections()), ['dashboards', s.dashboards()] as const].map(([kind, n]) => [{ kind }, n]));
    gauge('edgelog_devices', 'Devices by state: registered, seen since start, quiet (silent past devices.quietAfterMs, or registered and not seen since start)', ['state'], () => {
      const registered = s.registeredDevices();
      const neverSeen = registered.reduce((n, id) => (s.activity.has(id) ? n : n + 1), 0);
      return [
        [{ state: 'registered' }, registered.length],
        [{ state: 'seen' }, s.activity.size],
        [{ state: 'quiet' }, s.activity.quietCount() + neverSeen],
      ];
    });
  }

  /** The `/metrics` route. */
  route(access: AccessCheck): HttpRoute {
    return {
      prefix: METRICS_PATH,
      exact: true,
      access,
      handler: (req, res) => {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          return sendError(res, new EdgelogError('METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not served at ${METRICS_PATH}; use GET`), { allow: 'GET, HEAD' });
        }
        void this.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.registry.contentType, 'cache-control': 'no-store' });
            res.end(req.method === 'HEAD' ? undefined : text);
          },
          (error: unknown) => sendError(res, new EdgelogError('INTERNAL', `collecting the metrics failed: ${(error as Error).message}`)),
        );
      },
    };
  }
}

function partitions(log: CommitLog, value: (p: { highWatermark: number; startOffset: number; bytes: number }) => number): Array<[Record<string, string>, number]> {
  return log.listTopics().flatMap((topic) => log.describeTopic(topic).partitions.map((p): [Record<string, string>, number] => [{ topic, partition: String(p.partition) }, value(p)]));
}
