import * as hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/** Ack latencies are recorded in microseconds; two minutes is beyond any connect timeout, so nothing valid is clipped. */
export const LATENCY_US_MAX = 120_000_000;

/** An ack-latency histogram in microseconds, 1 µs to {@link LATENCY_US_MAX}, 3 significant digits. */
export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: LATENCY_US_MAX, numberOfSignificantValueDigits: 3 });
}

/** Counters of a whole fleet, shared by its devices (one object, so 5,000 devices add no per-device counters). */
export class FleetStats {
  /** Readings the devices sampled (bursts included). */
  generated = 0;
  /** Readings published at least once. */
  sent = 0;
  /** Readings whose publish the broker acknowledged (QoS 1, or a WebSocket ingest ack); each reading counts once. */
  acknowledged = 0;
  /** The subset of `acknowledged` that the gateway stored in its dead-letter topic (WebSocket ingest says so in the ack). */
  deadLettered = 0;
  /** Readings the gateway refused for good (a WebSocket ingest error that is not retryable): never stored, not sent again. */
  rejected = 0;
  /** Readings dropped from a full buffer, never acknowledged. */
  dropped = 0;
  /** The subset of `dropped` that had been published once without an ack, so the broker may have it. */
  droppedAfterSend = 0;
  /** Every PUBLISH packet handed to a connection: readings, resends, duplicates and faults. */
  published = 0;
  /** Every PUBACK (or reading acknowledged over WebSocket ingest) received, for readings, duplicates and faults alike. */
  publishAcks = 0;
  /** The subset of `publishAcks` stored in the dead-letter topic. */
  publishDeadLettered = 0;
  /** Every refusal the gateway answered (WebSocket ingest error results), retryable or not, by code in `refusedByCode`. */
  refused = 0;
  /** Publishes of a reading again after its connection was lost before the ack. */
  resent = 0;
  duplicated = 0;
  malformed = 0;
  oversize = 0;
  bursts = 0;
  flaps = 0;
  connects = 0;
  /** Connections lost or refused, and connection attempts that failed. */
  errors = 0;
  /** Devices connected now, and readings waiting in buffers now. */
  connected = 0;
  buffered = 0;
  inflight = 0;
  /** Readings still buffered or in flight when the run ended. */
  unsent = 0;
  readonly errorsByCode = new Map<string, number>();
  readonly refusedByCode = new Map<string, number>();
  readonly latency = newHistogram();
  /** Latencies since the last status line; reset by {@link FleetStats.takeInterval}. */
  private interval = newHistogram();

  recordLatencyUs(us: number): void {
    const value = Math.min(Math.max(Math.round(us), 1), LATENCY_US_MAX);
    this.latency.recordValue(value);
    this.interval.recordValue(value);
  }

  /** Bounded: error codes are a small set (ECONNREFUSED, ...), but cap the map anyway. */
  recordError(code: string): void {
    this.errors++;
    if (this.errorsByCode.has(code) || this.errorsByCode.size < 64) this.errorsByCode.set(code, (this.errorsByCode.get(code) ?? 0) + 1);
  }

  /** Bounded like recordError: refusal codes are the gateway's closed set of error codes. */
  recordRefusal(code: string): void {
    this.refused++;
    if (this.refusedByCode.has(code) || this.refusedByCode.size < 64) this.refusedByCode.set(code, (this.refusedByCode.get(code) ?? 0) + 1);
  }

  /** p50 and p99 ack latency in ms since the previous call, then starts a new interval. */
  takeInterval(): { p50Ms: number; p99Ms: number; count: number } {
    const h = this.interval;
    const result = { p50Ms: h.getValueAtPercentile(50) / 1000, p99Ms: h.getValueAtPercentile(99) / 1000, count: h.totalCount };
    h.reset();
    return result;
  }

  latencySummary(): LatencyReport {
    const h = this.latency;
    const at = (p: number): number => h.getValueAtPercentile(p) / 1000;
    const buckets: { percentile: number; ms: number }[] = [];
    for (const percentile of [0, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100]) buckets.push({ percentile, ms: at(percentile) });
    return {
      unit: 'ms',
      count: h.totalCount,
      min: h.totalCount === 0 ? 0 : h.minNonZeroValue / 1000,
      mean: h.mean / 1000,
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max: h.maxValue / 1000,
      percentiles: buckets,
      hdrBase64: hdr.encodeIntoCompressedBase64(h),
    };
  }

  destroy(): void {
    this.latency.destroy();
    this.interval.destroy();
  }
}

/** Ack latency of a run (publish to PUBACK at QoS 1, or publish frame to ack over WebSocket ingest). */
export interface LatencyReport {
  readonly unit: 'ms';
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly percentiles: readonly { percentile: number; ms: number }[];
  /** The whole HdrHistogram (microseconds), compressed: `hdr.decodeFromCompressedBase64()` restores it. */
  readonly hdrBase64: string;
}
