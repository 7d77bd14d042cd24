import { isUtf8 } from 'node:buffer';
import { gzipSync } from 'node:zlib';
import type { StoredRecord } from '../src/index.js';
import type { OutgoingMessage } from './upstream.js';

/**
 * A record's identity travels upstream with it (issue 6, "the bridge contract"): gateway id,
 * topic, partition, offset, key and timestamp, so the central side can deduplicate and order what
 * thousands of gateways send. Single records carry it in MQTT 5 user properties or NATS headers;
 * batches carry it per record inside the payload (the batch format below).
 */
export const IDENTITY = {
  gateway: 'edgelog-gateway',
  topic: 'edgelog-topic',
  partition: 'edgelog-partition',
  /** The record's offset, or a batch's first offset. */
  offset: 'edgelog-offset',
  /** A batch's last offset. */
  lastOffset: 'edgelog-last-offset',
  key: 'edgelog-key',
  /** 'base64' when the key is bytes rather than text. */
  keyEncoding: 'edgelog-key-encoding',
  timestamp: 'edgelog-timestamp',
} as const;

/** The media type of a batch payload: one JSON record per line. */
export const BATCH_CONTENT_TYPE = 'application/x-ndjson';

/**
 * A message's id for upstream deduplication (JetStream's Nats-Msg-Id): the same records always
 * get the same id. A batch's id names its first and last offsets, so a resend with other batch
 * boundaries is never taken for a duplicate of a shorter batch (that would drop records).
 */
export function messageId(gatewayId: string, message: OutgoingMessage): string {
  const first = message.records[0]!.offset;
  const last = message.records[message.records.length - 1]!.offset;
  const base = `${gatewayId}:${message.topic}:${message.partition}:${first}`;
  return message.records.length === 1 ? base : `${base}-${last}`;
}

/**
 * Identity properties of a message: for a single record, all of its identity; for a batch, the
 * range (each record's own identity is in the payload). The record's own headers are not included.
 */
export function identityProperties(gatewayId: string, message: OutgoingMessage): Record<string, string> {
  const first = message.records[0]!;
  const props: Record<string, string> = {
    [IDENTITY.gateway]: gatewayId,
    [IDENTITY.topic]: message.topic,
    [IDENTITY.partition]: String(message.partition),
    [IDENTITY.offset]: String(first.offset),
  };
  if (message.records.length > 1) {
    props[IDENTITY.lastOffset] = String(message.records[message.records.length - 1]!.offset);
    return props;
  }
  props[IDENTITY.timestamp] = String(first.timestamp);
  if (first.key !== null) {
    if (typeof first.key === 'string') props[IDENTITY.key] = first.key;
    else {
      props[IDENTITY.key] = first.key.toString('base64');
      props[IDENTITY.keyEncoding] = 'base64';
    }
  }
  return props;
}

/** One line of a batch payload. */
export interface BatchLine {
  gateway: string;
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: string | null;
  keyEncoding?: 'base64';
  headers: Record<string, string>;
  /** Base64 header values, by name. */
  headerEncodings?: Record<string, 'base64'>;
  value: string;
  valueEncoding: 'utf8' | 'base64';
}

/**
 * The batch payload: one JSON object per record and line (NDJSON), gzip-compressed when asked,
 * so the central side reads it with standard tools (`zcat batch | jq`).
 */
export function encodeBatch(gatewayId: string, message: OutgoingMessage, gzip: boolean): Buffer {
  const lines = message.records.map((r) => JSON.stringify(batchLine(gatewayId, message.topic, message.partition, r)));
  const text = Buffer.from(lines.join('\n') + '\n');
  return gzip ? gzipSync(text) : text;
}

function batchLine(gateway: string, topic: string, partition: number, r: StoredRecord): BatchLine {
  const line: BatchLine = {
    gateway,
    topic,
    partition,
    offset: r.offset,
    timestamp: r.timestamp,
    key: r.key === null ? null : typeof r.key === 'string' ? r.key : r.key.toString('base64'),
    headers: {},
    value: '',
    valueEncoding: 'utf8',
  };
  if (r.key !== null && typeof r.key !== 'string') line.keyEncoding = 'base64';
  for (const [name, v] of Object.entries(r.headers)) {
    if (typeof v === 'string') line.headers[name] = v;
    else {
      line.headers[name] = v.toString('base64');
      (line.headerEncodings ??= {})[name] = 'base64';
    }
  }
  if (isUtf8(r.value)) line.value = r.value.toString('utf8');
  else {
    line.value = r.value.toString('base64');
    line.valueEncoding = 'base64';
  }
  return line;
}
