/**
 * The gateway at a glance, as one JSON document: what the dashboard shows and `GET /api/overview`
 * answers (docs/api.md). Built on demand from the parts' own state, plus a one-second sampler of
 * each topic's high watermarks for the ingest-rate history.
 */
import type { BridgeStatus } from '../../bridges/bridge.js';
import type { GroupCoordinator } from '../groups/coordinator.js';
import type { PartitionLag } from '../groups/types.js';
import type { DeviceActivity, DeviceReport } from '../ingest/device-activity.js';
import { DEADLETTER_TOPIC, type Intake, type IntakeStats } from '../ingest/intake.js';
import type { CommitLog, DiskUsage, PartitionDescription } from '../log/commit-log.js';

/** How often topic rates are sampled: the chart's resolution. */
export const RATE_SAMPLE_INTERVAL_MS = 1000;
/**
 * Each rate is over the last this many samples: devices report on whole seconds, so a rate over
 * one second alternates between 0 and twice the truth as readings fall either side of a sample.
 */
export const RATE_WINDOW_SAMPLES = 5;
/** Samples kept: two minutes of history for a page that has just opened. */
export const RATE_HISTORY_SAMPLES = 120;
/** Devices listed at most, quiet ones first: a page stays small with any fleet; /api/devices pages through all. */
export const OVERVIEW_DEVICES_MAX = 200;
/** Groups listed at most (the coordinator holds up to 1,000 live ones). */
export const OVERVIEW_GROUPS_MAX = 100;
/** Latest dead letters shown, with their reasons. */
export const DEAD_LETTERS_LATEST = 10;

/** The parts whose state the overview and the metrics read; the gateway wires them in. */
export interface GatewayParts {
  log: CommitLog;
  groups: GroupCoordinator;
  intake: Intake;
  activity: DeviceActivity;
  /** Ids of the registered devices (a registered device never seen is quiet too). */
  registeredDevices: () => readonly string[];
  bridges: () => readonly BridgeStatus[];
  connections: () => Connections;
}

/** What the overview reads besides the parts. */
export interface OverviewSources extends GatewayParts {
  gatewayId: string;
  version: string;
  startedAtMs: number;
  ports: () => Record<string, number | null>;
  tokenRequired: boolean;
  /** The wall clock, ms since the epoch: the times the overview shows. */
  now?: () => number;
  /**
   * The monotonic clock, ms: the intervals rates are computed over (after a step back of the wall
   * clock the rates would otherwise freeze for as long). Default performance.now(); `now` when only that is given.
   */
  monotonicNow?: () => number;
}

export interface Connections {
  /** MQTT clients (TCP, TLS and WebSocket). */
  mqtt: number;
  /** WebSocket ingest connections. */
  ws: number;
  consumers: number;
  producers: number;
}

export interface TopicOverview {
  name: string;
  records: number;
  bytes: number;
  /** Records appended per second over the last RATE_WINDOW_SAMPLES samples (5 s). */
  ratePerSecond: number;
  partitions: PartitionDescription[];
}

export interface GroupOverview {
  groupId: string;
  state: string;
  members: number;
  /** Records behind the high watermarks, over the partitions with a committed offset. */
  lag: number;
  offsets: PartitionLag[];
}

export interface BridgeOverview extends BridgeStatus {
  /** Seconds until the backlog is upstream at the current rates; 0 when caught up, null when it is not catching up. */
  catchUpSeconds: number | null;
}

export interface DeadLetter {
  timestamp: number;
  deviceId: string | null;
  originalTopic: string | null;
  reason: string;
}

export interface Overview {
  atMs: number;
  gateway: { id: string; version: string; startedAtMs: number; uptimeMs: number; ports: Record<string, number | null>; tokenRequired: boolean; rssBytes: number; heapUsedBytes: number };
  ingest: IntakeStats & { readingsPerSecond: number; connections: Connections };
  topics: TopicOverview[];
  /** Per-topic rates (each over the 5 s before it), oldest first, one sample a RATE_SAMPLE_INTERVAL_MS. */
  rateHistory: Array<{ atMs: number; topics: Record<string, number> }>;
  groups: GroupOverview[];
  groupsTotal: number;
  bridges: BridgeOverview[];
  devices: { registered: number; seen: number; quiet: number; quietAfterMs: number; forgotten: number; listed: DeviceReport[] };
  deadLetters: { total: number; latest: DeadLetter[] };
  disk: DiskUsage;
}

/** Builds overviews; {@link start} the rate sampler, {@link close} it. */
export class OverviewBuilder {
  private readonly now: () => number;
  private readonly history: Array<{ atMs: number; topics: Record<string, number> }> = [];
  /** The last RATE_WINDOW_SAMPLES + 1 samples of each topic's appended records, oldest first (monotonic times). */
  private readonly totals: Array<{ monoMs: number; topics: Map<string, number> }> = [];
  private readonly monotonicNow: () => number;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly sources: OverviewSources) {
    this.now = sources.now ?? Date.now;
    this.monotonicNow = sources.monotonicNow ?? sources.now ?? (() => performance.now());
  }

  /** Samples topic rates every RATE_SAMPLE_INTERVAL_MS until {@link close}. */
  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), RATE_SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Takes one rate sample: records appended per second per topic since the last one. */
  sample(): void {
    const atMs = this.now();
    const monoMs = this.monotonicNow();
    const { log } = this.sources;
    const totals = new Map<string, number>();
    for (const name of log.listTopics()) totals.set(name, log.describeTopic(name).partitions.reduce((sum, p) => sum + p.highWatermark, 0));
    const oldest = this.totals[0];
    if (oldest !== undefined && monoMs > oldest.monoMs) {
      const seconds = (monoMs - oldest.monoMs) / 1000;
      const topics: Record<string, number> = {};
      for (const [name, total] of totals) topics[name] = Math.max(0, total - (oldest.topics.get(name) ?? 0)) / seconds;
      this.history.push({ atMs, topics });
      if (this.history.length > RATE_HISTORY_SAMPLES) this.history.shift();
    }
    this.totals.push({ monoMs, topics: totals });
    if (this.totals.length > RATE_WINDOW_SAMPLES) this.totals.shift();
  }

  build(): Overview {
    const s = this.sources;
    const atMs = this.now();
    const latest = this.history.at(-1)?.topics ?? {};
    const topics = s.log.listTopics().map((name): TopicOverview => {
      const { partitions } = s.log.describeTopic(name);
      return {
        name,
        records: partitions.reduce((sum, p) => sum + p.records, 0),
        bytes: partitions.reduce((sum, p) => sum + p.bytes, 0),
        ratePerSecond: latest[name] ?? 0,
        partitions,
      };
    });
    const memory = process.memoryUsage();
    const readingsPerSecond = Object.entries(latest).reduce((sum, [name, rate]) => (name.startsWith('_') ? sum : sum + rate), 0);
    const groupList = s.groups.list();
    return {
      atMs,
      gateway: { id: s.gatewayId, version: s.version, startedAtMs: s.startedAtMs, uptimeMs: atMs - s.startedAtMs, ports: s.ports(), tokenRequired: s.tokenRequired, rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
      ingest: { ...s.intake.stats(), readingsPerSecond, connections: s.connections() },
      topics,
      rateHistory: this.history,
      groups: groupList.slice(0, OVERVIEW_GROUPS_MAX).map(({ groupId }) => {
        const d = s.groups.describe(groupId);
        return { groupId, state: d.state, members: d.members.length, lag: d.offsets.reduce((sum, o) => sum + (o.lag ?? 0), 0), offsets: d.offsets };
      }),
      groupsTotal: groupList.length,
      bridges: s.bridges().map((b) => ({ ...b, catchUpSeconds: catchUpSeconds(b, latest) })),
      devices: this.devices(),
      deadLetters: this.deadLetters(),
      disk: s.log.diskUsage(),
    };
  }

  /** The quiet devices first (longest silent first), then the most recently seen, up to OVERVIEW_DEVICES_MAX. */
  private devices(): Overview['devices'] {
    const { activity } = this.sources;
    // One instant for the whole list, on the activity table's own (monotonic) clock.
    const nowMs = activity.monotonicNowMs();
    const registered = this.sources.registeredDevices();
    const neverSeen = registered.filter((id) => !activity.has(id));
    const listed: DeviceReport[] = neverSeen.slice(0, OVERVIEW_DEVICES_MAX).map((id) => activity.report(id, nowMs));
    // Recency order, least recent first: the quiet ones lead, then the active ones, newest first.
    const ids = [...activity.seenIds()];
    const quiet = activity.quietCount(nowMs);
    for (const id of ids.slice(0, quiet)) {
      if (listed.length >= OVERVIEW_DEVICES_MAX) break;
      listed.push(activity.report(id, nowMs));
    }
    for (let i = ids.length - 1; i >= quiet && listed.length < OVERVIEW_DEVICES_MAX; i--) listed.push(activity.report(ids[i]!, nowMs));
    return {
      registered: registered.length,
      seen: activity.size,
      quiet: quiet + neverSeen.length,
      quietAfterMs: activity.opts.quietAfterMs,
      forgotten: activity.forgottenDevices,
      listed,
    };
  }

  /** The dead-letter topic's record count and its latest records' reasons (read from the log's tail). */
  private deadLetters(): Overview['deadLetters'] {
    const { log } = this.sources;
    if (!log.hasTopic(DEADLETTER_TOPIC)) return { total: 0, latest: [] };
    const { partitions } = log.describeTopic(DEADLETTER_TOPIC);
    const latest: DeadLetter[] = [];
    for (const p of partitions) {
      const from = Math.max(p.startOffset, p.highWatermark - DEAD_LETTERS_LATEST);
      if (from >= p.highWatermark) continue;
      for (const r of log.read(DEADLETTER_TOPIC, p.partition, from, { maxRecords: DEAD_LETTERS_LATEST }).records) {
        latest.push({ timestamp: r.timestamp, deviceId: text(r.headers['device-id']), originalTopic: text(r.headers['original-topic']), reason: text(r.headers['deadletter-reason']) ?? '' });
      }
    }
    latest.sort((a, b) => b.timestamp - a.timestamp);
    return { total: partitions.reduce((sum, p) => sum + p.records, 0), latest: latest.slice(0, DEAD_LETTERS_LATEST) };
  }
}

/** Backlog over the net drain rate: acked per second minus what the bridged topics take in. */
function catchUpSeconds(bridge: BridgeStatus, rates: Record<string, number>): number | null {
  if (bridge.backlogRecords === 0) return 0;
  const topics = new Set(bridge.partitions.map((p) => p.topic));
  const inflow = [...topics].reduce((sum, t) => sum + (rates[t] ?? 0), 0);
  const net = bridge.recordsPerSecond - inflow;
  return net > 0 ? bridge.backlogRecords / net : null;
}

function text(v: string | Buffer | undefined): string | null {
  return v === undefined ? null : v.toString();
}
