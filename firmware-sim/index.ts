/** firmware-sim as a library: tests and benchmarks drive a {@link Fleet} directly. */
export { Fleet } from './fleet.js';
export type { FleetSnapshot } from './fleet.js';
export { InvalidOptionError, resolveFleetOptions, deviceId, DEFAULT_FAULTS } from './options.js';
export type { AckListener, FaultOptions, FleetConfig, FleetOptions, Transport } from './options.js';
export { AckLog } from './ack-log.js';
export type { FleetReport } from './report.js';
export type { LatencyReport } from './stats.js';
export { LATENCY_US_MAX, newHistogram } from './stats.js';
export { SignalGenerator } from './signal.js';
export type { GeneratedReading, SignalOptions } from './signal.js';
export { backoffDelayMs, DEFAULT_BACKOFF } from './backoff.js';
export type { BackoffPolicy } from './backoff.js';
