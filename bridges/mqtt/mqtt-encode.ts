import type { IPublishPacket } from 'mqtt';
import { BATCH_CONTENT_TYPE, encodeBatch, identityProperties } from '../record-identity.js';
import { percentEscape, renderTemplate, type Template } from '../template.js';
import type { EncodedMessage, OutgoingMessage } from '../upstream.js';
import { escapeLevel } from './mqtt-options.js';

/** MQTT 5 user property listing the record headers whose values travel as base64 (they were bytes). */
export const BASE64_HEADERS_PROPERTY = 'edgelog-base64-headers';
/** MQTT 5 user property saying a batch payload is gzip-compressed (MQTT has no Content-Encoding of its own). */
export const CONTENT_ENCODING_PROPERTY = 'content-encoding';

/** Fixed header (1 byte + up to 4 of remaining length) and packet identifier of a QoS 1 PUBLISH (MQTT 3.3.1, 3.3.2.2). */
const PUBLISH_OVERHEAD_BYTES = 7;
/** MQTT 5 property length field (variable byte integer, 4 bytes at most, MQTT 3.3.2.3.1). */
const PROPERTIES_LENGTH_BYTES = 4;

/** User properties: a name may repeat (MQTT 5 §3.3.2.3.7), hence string[]. */
type UserProperties = Record<string, string | string[]>;

/** An encoded message with what send() puts on the wire. */
export class MqttEncodedMessage implements EncodedMessage {
  constructor(
    readonly message: OutgoingMessage,
    readonly bytes: number,
    readonly topic: string,
    readonly payload: Buffer,
    readonly properties: IPublishPacket['properties'] | undefined,
  ) {}
}

/** What encoding needs from the options. */
export interface EncodeSettings {
  protocolVersion: 4 | 5;
  gatewayId: string;
  topic: Template;
  /** Whether batch payloads are gzip-compressed. */
  gzip: boolean;
}

/**
 * Turns records into one PUBLISH. MQTT 5, one record: the payload is the record's value as it is,
 * and the identity and the record's headers are user properties. MQTT 5, a batch: the NDJSON batch
 * format of record-identity.ts with content type application/x-ndjson. MQTT 3.1.1 has no
 * properties, so the identity can only travel in the payload: every message, even of one record,
 * is a batch payload (and a gzip one is told apart by its magic bytes 1f 8b, since NDJSON never
 * starts with them).
 */
export function encodeMqtt(settings: EncodeSettings, message: OutgoingMessage): MqttEncodedMessage {
  const first = message.records[0];
  if (first === undefined) throw new Error('edgelog invariant violated: an outgoing message holds at least one record');
  const topic = renderTemplate(
    settings.topic,
    {
      gatewayId: settings.gatewayId,
      topic: message.topic,
      partition: String(message.partition),
      // {key} is only allowed without batching (checked with the options), so one record.
      key: first.key === null ? '' : typeof first.key === 'string' ? first.key : first.key.toString('base64'),
    },
    escapeLevel,
  );
  const topicBytes = Buffer.byteLength(topic);
  if (settings.protocolVersion === 4) {
    const payload = encodeBatch(settings.gatewayId, message, settings.gzip);
    return new MqttEncodedMessage(message, PUBLISH_OVERHEAD_BYTES + 2 + topicBytes + payload.length, topic, payload, undefined);
  }
  let payload: Buffer;
  let properties: NonNullable<IPublishPacket['properties']>;
  if (message.records.length === 1) {
    payload = first.value;
    properties = { userProperties: singleRecordProperties(settings.gatewayId, message) };
  } else {
    payload = encodeBatch(settings.gatewayId, message, settings.gzip);
    const userProperties: UserProperties = identityProperties(settings.gatewayId, message);
    if (settings.gzip) userProperties[CONTENT_ENCODING_PROPERTY] = 'gzip';
    properties = { contentType: BATCH_CONTENT_TYPE, userProperties };
  }
  const bytes = PUBLISH_OVERHEAD_BYTES + 2 + topicBytes + PROPERTIES_LENGTH_BYTES + propertiesBytes(properties) + payload.length;
  return new MqttEncodedMessage(message, bytes, topic, payload, properties);
}

/**
 * The identity, then the record's own headers. A header whose name is also an identity property
 * repeats that name after the identity (the first value is always the identity). Bytes-valued
 * headers travel as base64 and are listed, percent-encoded (`,` and `%`) and comma-separated, in
 * {@link BASE64_HEADERS_PROPERTY}.
 */
function singleRecordProperties(gatewayId: string, message: OutgoingMessage): UserProperties {
  const props: UserProperties = identityProperties(gatewayId, message);
  const base64: string[] = [];
  for (const [name, v] of Object.entries(message.records[0]!.headers)) {
    let value: string;
    if (typeof v === 'string') value = v;
    else {
      value = v.toString('base64');
      base64.push(percentEscape(name, /,/g));
    }
    const existing = props[name];
    props[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  if (base64.length > 0) {
    const existing = props[BASE64_HEADERS_PROPERTY];
    const list = base64.join(',');
    props[BASE64_HEADERS_PROPERTY] = existing === undefined ? list : [list, ...(Array.isArray(existing) ? existing : [existing])];
  }
  return props;
}

/** Bytes of the properties on the wire: identifier, then length-prefixed UTF-8 strings (MQTT 5 §2.2.2.2, §1.5.7). */
function propertiesBytes(properties: NonNullable<IPublishPacket['properties']>): number {
  let n = 0;
  if (properties.contentType !== undefined) n += 1 + 2 + Buffer.byteLength(properties.contentType);
  for (const [name, v] of Object.entries(properties.userProperties ?? {})) {
    for (const value of Array.isArray(v) ? v : [v]) n += 1 + 2 + Buffer.byteLength(name) + 2 + Buffer.byteLength(value);
  }
  return n;
}
