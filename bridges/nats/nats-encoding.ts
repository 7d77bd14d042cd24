import { headers as natsHeaders } from '@nats-io/transport-node';
import type { MsgHdrs } from '@nats-io/transport-node';
import { assert } from '../../src/errors.js';
import { BATCH_CONTENT_TYPE, encodeBatch, IDENTITY, identityProperties, messageId } from '../record-identity.js';
import { percentEscape, renderTemplate, type Template } from '../template.js';
import type { EncodedMessage, OutgoingMessage } from '../upstream.js';

/**
 * How a message of the log looks on NATS. Single records: the value is the payload, the identity
 * (record-identity.ts) and the record's own headers are NATS headers. Batches: the NDJSON payload
 * of encodeBatch(), with the range in the identity headers. Every message carries Nats-Msg-Id, so
 * JetStream's duplicate window drops a resend (exactly-once across gateway crashes, issue 6).
 */
export const NATS_HEADER = {
  /** JetStream's deduplication id (ADR-1 of nats-architecture-and-design). */
  msgId: 'Nats-Msg-Id',
  /** Comma-separated (percent-encoded) names of record headers whose value is base64 on the wire. */
  base64Headers: 'edgelog-base64-headers',
  contentType: 'Content-Type',
  contentEncoding: 'Content-Encoding',
} as const;

/** A message ready for nc.publish(). */
export interface NatsEncodedMessage extends EncodedMessage {
  readonly subject: string;
  readonly headers: MsgHdrs;
  readonly payload: Uint8Array;
}

/**
 * Characters a subject token cannot hold: `.` separates tokens, `*` and `>` are wildcards, and
 * whitespace (or any control character) ends the subject in the protocol line.
 */
export const SUBJECT_UNSAFE_CHARS = /[.*>\s\u0000-\u001f\u007f]/gu;

/** Escapes one value so it stays one subject token; the central side reads it back with decodeURIComponent. */
export function escapeToken(value: string): string {
  return percentEscape(value, SUBJECT_UNSAFE_CHARS);
}

/**
 * Characters a NATS header name cannot hold (it is printable ASCII without `:`), plus `,`, which
 * separates names in {@link NATS_HEADER.base64Headers}.
 */
const HEADER_NAME_UNSAFE_CHARS = /[^\u0021-\u007e]|[:,]/gu;
/**
 * Header names the server or the central side reads as ours: a record header named
 * `Nats-Expected-Stream` must not steer JetStream, nor one named `edgelog-offset` forge an identity.
 */
const RESERVED_HEADER_PREFIX = /^(nats-|edgelog-)/i;

/**
 * A record header's name as a NATS header name: percent-encoded where NATS cannot carry it, and
 * with its first letter encoded when it would be read as a reserved name. decodeURIComponent
 * gives the original back.
 */
export function escapeHeaderName(name: string): string {
  const escaped = percentEscape(name, HEADER_NAME_UNSAFE_CHARS);
  if (!RESERVED_HEADER_PREFIX.test(escaped)) return escaped;
  return '%' + escaped.charCodeAt(0).toString(16).toUpperCase() + escaped.slice(1);
}

/**
 * Whether a string survives as a NATS header value: the client rejects CR and LF and both sides
 * trim whitespace around a value, so such strings travel as base64.
 */
export function headerValueSafe(value: string): boolean {
  return !/[\r\n]/.test(value) && value.trim() === value;
}

/** The bytes of `NATS/1.0\r\n` and of the blank line that ends a header block. */
const HEADER_FRAME_BYTES = 'NATS/1.0\r\n'.length + 2;

/** Encodes one message: its subject, headers and payload, and what it costs on the link. */
export function encodeNatsMessage(
  gatewayId: string,
  subjectTemplate: Template,
  batch: { gzip: boolean } | null,
  message: OutgoingMessage,
): NatsEncodedMessage {
  const first = message.records[0]!;
  const single = message.records.length === 1 && batch === null;
  const key = first.key === null ? '' : typeof first.key === 'string' ? first.key : first.key.toString('base64');
  const subject = renderTemplate(subjectTemplate, { gatewayId, topic: message.topic, partition: String(message.partition), key: single ? key : '' }, escapeToken);

  const h = natsHeaders();
  let headerBytes = HEADER_FRAME_BYTES;
  const set = (name: string, value: string) => {
    h.set(name, value);
    headerBytes += Buffer.byteLength(name) + 2 + Buffer.byteLength(value) + 2;
  };
  set(NATS_HEADER.msgId, messageId(gatewayId, message));
  const identity = identityProperties(gatewayId, message);
  const identityKey = identity[IDENTITY.key];
  if (identityKey !== undefined && identity[IDENTITY.keyEncoding] === undefined && !headerValueSafe(identityKey)) {
    // A text key that a header cannot carry as is travels as base64 of its UTF-8, marked as such.
    identity[IDENTITY.key] = Buffer.from(identityKey).toString('base64');
    identity[IDENTITY.keyEncoding] = 'base64';
  }
  for (const [name, value] of Object.entries(identity)) set(name, value);

  let payload: Buffer;
  if (batch === null) {
    assert(message.records.length === 1, `${message.records.length} records in one message without batching`);
    payload = first.value;
    const base64: string[] = [];
    for (const [name, value] of Object.entries(first.headers)) {
      const wireName = escapeHeaderName(name);
      if (typeof value === 'string' && headerValueSafe(value)) set(wireName, value);
      else {
        set(wireName, Buffer.from(value).toString('base64'));
        base64.push(wireName);
      }
    }
    if (base64.length > 0) set(NATS_HEADER.base64Headers, base64.join(','));
  } else {
    payload = encodeBatch(gatewayId, message, batch.gzip);
    set(NATS_HEADER.contentType, BATCH_CONTENT_TYPE);
    if (batch.gzip) set(NATS_HEADER.contentEncoding, 'gzip');
  }
  return { message, subject, headers: h, payload, bytes: payload.length + Buffer.byteLength(subject) + headerBytes };
}
