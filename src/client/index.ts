/**
 * The TypeScript client for local applications (docs/consume.md, "TypeScript client"): a consumer
 * of `/consume` and a producer of `/produce`. Protocol only: it talks to a gateway over WebSocket
 * and shares no code with the gateway, the log or the coordinator.
 */
export { consumer, Consumer, DEFAULT_AUTO_COMMIT_INTERVAL_MS, DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_MAX_BUFFERED_RECORDS, DEFAULT_SESSION_TIMEOUT_MS } from './consumer.js';
export type { ConsumerAssignment, ConsumerOptions, ConsumerWarning, PartitionOffset, SeekTo } from './consumer.js';
export { producer, Producer, DEFAULT_MAX_IN_FLIGHT_BYTES } from './producer.js';
export type { ProducerLimits, ProducerOptions } from './producer.js';
export type { Batch, ConsumerRecord, ProduceResult, ProducerRecord, TopicPartition } from './records.js';
export { EdgelogClientError } from './errors.js';
export type { ClientErrorCode } from './errors.js';
export { endpointUrl } from './url.js';
