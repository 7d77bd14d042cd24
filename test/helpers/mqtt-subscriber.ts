import mqtt from 'mqtt';
import { onTestFinished } from 'vitest';
import type { ReceivedMessage } from './aedes.js';

export interface Subscriber {
  readonly received: ReceivedMessage[];
}

/**
 * A QoS 1 subscriber on devices/# with a persistent session (clean: false), so a broker that
 * restarts with persistence keeps queueing for it while it reconnects. Ended when the test finishes.
 */
export async function subscribe(url: string, clientId: string): Promise<Subscriber> {
  const received: ReceivedMessage[] = [];
  const client = mqtt.connect(url, { clientId, clean: false, protocolVersion: 4, reconnectPeriod: 100 });
  client.on('message', (topic, payload) => received.push({ topic, payload: Buffer.from(payload) }));
  client.on('error', () => {}); // reconnects on its own while a test restarts the broker
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => client.subscribe('devices/#', { qos: 1 }, (error) => (error ? reject(error) : resolve())));
  });
  onTestFinished(() => new Promise<void>((resolve) => client.end(true, {}, () => resolve())));
  return { received };
}
