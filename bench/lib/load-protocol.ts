/**
 * Messages between the ingest benchmark and its load processes (bench/lib/load-worker.ts), over
 * the IPC channel of child_process.fork. The load runs in processes of its own so that its CPU
 * (about as much per message as a broker's, DESIGN "Traps") is not the coordinator's, and is measured.
 */

/** What one load process drives. */
export interface LoadSpec {
  /** 'fleet': firmware-sim's Fleet, paced devices; 'publisher': bench/lib/mqtt-publisher.ts. */
  readonly kind: 'fleet' | 'publisher';
  readonly url: string;
  readonly devices: number;
  /** Unique per load process, so client ids never collide on the broker. */
  readonly idPrefix: string;
  readonly seed: number;
  /** Unacknowledged publishes per device at once. */
  readonly inflight: number;
  /** Readings/s per device; undefined only for a closed-loop publisher. */
  readonly ratePerSecond: number | undefined;
  /** Upper bound of the fleet's sampling time; the run normally stops it earlier. */
  readonly durationS: number;
  /** Fleet only: new connections per second while it starts. */
  readonly rampPerSecond: number;
}

/** Counts at one instant, taken by the load process itself. */
export interface LoadMark {
  readonly type: 'mark';
  /** Wall-clock ms with sub-ms precision (performance.timeOrigin + now), comparable across processes. */
  readonly atMs: number;
  /** Readings whose QoS 1 publish was acknowledged. */
  readonly acknowledged: number;
  /** PUBLISH packets sent. */
  readonly published: number;
  /** Readings dropped from full device buffers (fleet) or shed (paced publisher) so far. */
  readonly dropped: number;
  /** This process's user + system CPU seconds. */
  readonly cpuS: number;
  /** Every ack latency (us) since the start, an HdrHistogram as hdr-histogram-js encodeIntoCompressedBase64 writes it; two marks subtract. */
  readonly latencyHdrBase64: string;
}

/** Totals at the end of a load process's run. */
export interface LoadTotals {
  readonly type: 'stopped';
  readonly published: number;
  readonly acknowledged: number;
  /** Fleet: readings dropped from full device buffers (offered more than the broker took); publisher: readings shed. */
  readonly dropped: number;
  readonly resent: number;
  readonly errors: number;
  readonly errorsByCode: Readonly<Record<string, number>>;
}

/** 'start' connects every device and answers 'connected'; 'go', once every load process is connected, starts the publishing. */
export type ToWorker = { readonly type: 'start'; readonly spec: LoadSpec } | { readonly type: 'go' } | { readonly type: 'mark' } | { readonly type: 'stop' };
export type FromWorker = { readonly type: 'connected' } | LoadMark | LoadTotals | { readonly type: 'failed'; readonly message: string };
