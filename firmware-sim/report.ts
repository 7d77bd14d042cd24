import type { FleetConfig } from './options.js';
import type { FleetStats, LatencyReport } from './stats.js';

/** What `--report FILE` writes: the run's settings, its counts and its ack latency. */
export interface FleetReport {
  readonly tool: 'firmware-sim';
  readonly version: 1;
  readonly startedAt: string;
  readonly elapsedMs: number;
  readonly settings: {
    readonly gateway: string;
    readonly transport: FleetConfig['transport'];
    readonly devices: number;
    readonly ratePerSecond: number;
    readonly durationS: number;
    readonly qos: 0 | 1;
    readonly seed: number;
    /** Simulated time of the first sample; pass it back as --start-time with --seed to reproduce the payloads. */
    readonly startTimeMs: number;
    readonly profiles: readonly string[];
    readonly format: string;
    readonly bufferReadings: number;
    readonly inflightMax: number;
    readonly rampPerSecond: number;
    readonly faults: FleetConfig['faults'];
  };
  /**
   * Accounting of readings. With QoS 1, generated = acknowledged + dropped + unsent + rejected;
   * with QoS 0 (no acks), generated = sent + dropped + unsent. Only WebSocket ingest rejects
   * (MQTT 3.1.1 has no refusal on PUBACK) and says which acknowledged readings were dead-lettered.
   */
  readonly readings: {
    readonly generated: number;
    readonly sent: number;
    readonly acknowledged: number;
    readonly deadLettered: number;
    readonly rejected: number;
    readonly dropped: number;
    readonly droppedAfterSend: number;
    readonly unsent: number;
  };
  /** Every PUBLISH packet (or reading sent over WebSocket ingest) and its ack, including resends and the faults injected on purpose. */
  readonly publishes: {
    readonly total: number;
    readonly acknowledged: number;
    readonly deadLettered: number;
    /** Refusals answered by the gateway (WebSocket ingest), retryable ones included, by error code. */
    readonly refused: number;
    readonly refusedByCode: Readonly<Record<string, number>>;
    readonly resent: number;
    readonly duplicatedOnPurpose: number;
    readonly malformedOnPurpose: number;
    readonly oversizeOnPurpose: number;
  };
  readonly faults: { readonly bursts: number; readonly flaps: number };
  readonly connections: { readonly connects: number; readonly errors: number; readonly errorsByCode: Readonly<Record<string, number>> };
  readonly latency: LatencyReport;
}

export function buildReport(config: FleetConfig, stats: FleetStats, run: { startedAt: string; elapsedMs: number; startTimeMs: number }): FleetReport {
  const done = config.qos === 1 ? stats.acknowledged : stats.sent;
  const accounted = done + stats.dropped + stats.unsent + stats.rejected;
  if (accounted !== stats.generated) {
    // A programmer's bug: every reading must end acknowledged, dropped, unsent or rejected (each counted).
    throw new Error(
      `edgelog invariant violated: readings generated ${stats.generated} != ${config.qos === 1 ? 'acknowledged' : 'sent'} ${done} + dropped ${stats.dropped} + unsent ${stats.unsent} + rejected ${stats.rejected}`,
    );
  }
  return {
    tool: 'firmware-sim',
    version: 1,
    startedAt: run.startedAt,
    elapsedMs: Math.round(run.elapsedMs),
    settings: {
      gateway: config.gateway,
      transport: config.transport,
      devices: config.devices,
      ratePerSecond: config.ratePerSecond,
      durationS: config.durationS,
      qos: config.qos,
      seed: config.seed,
      startTimeMs: run.startTimeMs,
      profiles: config.profiles.map((p) => p.name),
      format: config.format ?? 'per profile',
      bufferReadings: config.bufferReadings,
      inflightMax: config.inflightMax,
      rampPerSecond: config.rampPerSecond,
      faults: config.faults,
    },
    readings: {
      generated: stats.generated,
      sent: stats.sent,
      acknowledged: stats.acknowledged,
      deadLettered: stats.deadLettered,
      rejected: stats.rejected,
      dropped: stats.dropped,
      droppedAfterSend: stats.droppedAfterSend,
      unsent: stats.unsent,
    },
    publishes: {
      total: stats.published,
      acknowledged: stats.publishAcks,
      deadLettered: stats.publishDeadLettered,
      refused: stats.refused,
      refusedByCode: Object.fromEntries(stats.refusedByCode),
      resent: stats.resent,
      duplicatedOnPurpose: stats.duplicated,
      malformedOnPurpose: stats.malformed,
      oversizeOnPurpose: stats.oversize,
    },
    faults: { bursts: stats.bursts, flaps: stats.flaps },
    connections: { connects: stats.connects, errors: stats.errors, errorsByCode: Object.fromEntries(stats.errorsByCode) },
    latency: stats.latencySummary(),
  };
}
