import mqtt, { type IClientOptions, type IPublishPacket } from 'mqtt';
import { onTestFinished } from 'vitest';
import { BASE64_HEADERS_PROPERTY } from '../../bridges/mqtt/mqtt-encode.js';
import { BATCH_CONTENT_TYPE, IDENTITY } from '../../bridges/record-identity.js';
import { waitFor } from '../helpers/wait.js';
import { decodeBatchPayload, type ReceivedRecord } from './upstream-contract.js';

/** One message as the central side got it. */
export interface CentralMessage {
  topic: string;
  payload: Buffer;
  userProperties: Record<string, string | string[]>;
  contentType: string | undefined;
  /** The broker's DUP flag: a redelivery of its own to this subscriber (after a broker restart), not a copy the bridge sent again. */
  dup: boolean;
}

/** The central side of the MQTT tests: a QoS 1 subscriber on the bridge's topics. */
export interface Central {
  readonly messages: CentralMessage[];
  /** Every message received so far, once every message the broker acked before this call has arrived. */
  settled(): Promise<CentralMessage[]>;
  /** The records the messages hold, decoded from user properties or NDJSON batches. */
  received(): Promise<ReceivedRecord[]>;
  /** Publishes as the central side (commands down to the gateway). */
  publish(topic: string, payload: string | Buffer): Promise<void>;
}

const FENCE_TOPIC = 'edgelog-test-fence';
/** How long settled() waits for its fence; Mosquitto delivers in well under a second on loopback. */
const FENCE_TIMEOUT_MS = 20_000;

/**
 * Subscribes to `filter` with a persistent session (so it keeps receiving across broker restarts),
 * ended when the test finishes. settled() publishes a fence to itself: Mosquitto handles packets
 * one at a time and queues to a subscriber in order, so when the fence arrives, every message the
 * broker acked to the bridge before it has arrived too.
 */
export async function centralSubscriber(url: string, protocolVersion: 4 | 5, filter = 'gateways/#', extra: IClientOptions = {}): Promise<Central> {
  const messages: CentralMessage[] = [];
  const fences = new Set<string>();
  let fenceCount = 0;
  const clientId = `central-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  // MQTT 5 ends a session at disconnect unless it has an expiry interval: keep it across restarts.
  const session = protocolVersion === 5 ? { properties: { sessionExpiryInterval: 3_600 } } : {};
  const client = mqtt.connect(url, { clientId, clean: false, protocolVersion, reconnectPeriod: 100, ...session, ...extra });
  client.on('error', () => {}); // it reconnects by itself while a test restarts the broker
  client.on('message', (topic, payload, packet: IPublishPacket) => {
    if (topic.startsWith(`${FENCE_TOPIC}/`)) {
      fences.add(topic);
      return;
    }
    messages.push({ topic, payload: Buffer.from(payload), userProperties: packet.properties?.userProperties ?? {}, contentType: packet.properties?.contentType, dup: packet.dup });
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => client.subscribe([filter, `${FENCE_TOPIC}/${clientId}/#`], { qos: 1 }, (error) => (error ? reject(error) : resolve())));
  });
  onTestFinished(() => new Promise<void>((resolve) => client.end(true, {}, () => resolve())));

  const settled = async (): Promise<CentralMessage[]> => {
    const fence = `${FENCE_TOPIC}/${clientId}/${++fenceCount}`;
    await client.publishAsync(fence, 'fence', { qos: 1 });
    await waitFor(() => fences.has(fence), `the fence ${fence} to come back`, FENCE_TIMEOUT_MS);
    return [...messages];
  };
  return {
    messages,
    settled,
    async received() {
      return (await settled()).flatMap(decodeMessage);
    },
    async publish(topic, payload) {
      await client.publishAsync(topic, payload, { qos: 1 });
    },
  };
}

/** The first value of a user property (the bridge's own value comes first when a header repeats the name). */
function first(props: Record<string, string | string[]>, name: string): string | undefined {
  const v = props[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Decodes one message: a single MQTT 5 record (identity in user properties) or an NDJSON batch. */
export function decodeMessage(m: CentralMessage): ReceivedRecord[] {
  const props = m.userProperties;
  if (m.contentType === BATCH_CONTENT_TYPE || first(props, IDENTITY.gateway) === undefined) return decodeBatchPayload(m.payload);
  const own = new Set<string>([...Object.values(IDENTITY), BASE64_HEADERS_PROPERTY]);
  const base64 = new Set((first(props, BASE64_HEADERS_PROPERTY) ?? '').split(',').filter((n) => n !== '').map(decodeURIComponent));
  const headers: Record<string, string | Buffer> = {};
  for (const [name, v] of Object.entries(props)) {
    const values = Array.isArray(v) ? v : [v];
    const header = own.has(name) ? values[1] : values[0];
    if (header !== undefined) headers[name] = base64.has(name) ? Buffer.from(header, 'base64') : header;
  }
  const key = first(props, IDENTITY.key);
  return [
    {
      gateway: first(props, IDENTITY.gateway)!,
      topic: first(props, IDENTITY.topic)!,
      partition: Number(first(props, IDENTITY.partition)),
      offset: Number(first(props, IDENTITY.offset)),
      key: key === undefined ? null : first(props, IDENTITY.keyEncoding) === 'base64' ? Buffer.from(key, 'base64') : key,
      timestamp: Number(first(props, IDENTITY.timestamp)),
      value: m.payload,
      headers,
    },
  ];
}
