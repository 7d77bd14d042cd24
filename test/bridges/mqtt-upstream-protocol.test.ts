import { createServer, type Socket } from 'node:net';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { pino } from 'pino';
import { describe, expect, onTestFinished, test } from 'vitest';
import { MqttUpstream } from '../../bridges/mqtt/mqtt-upstream.js';
import type { SendResult } from '../../bridges/upstream.js';
import { EdgelogError } from '../../src/errors.js';
import { waitFor } from '../helpers/wait.js';
import { record } from './upstream-contract.js';

// What Mosquitto will not do on demand: withhold PUBACKs, refuse a message, advertise a small
// Receive Maximum, never answer CONNECT. A hand-driven MQTT 5 server on 127.0.0.1 plays the broker.

const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

interface FakeBroker {
  readonly port: number;
  /** PUBLISH packets without a PUBACK yet, and the most there ever were at once. */
  readonly unacked: IPublishPacket[];
  readonly maxUnacked: number;
  puback(packet: IPublishPacket, reasonCode?: number): void;
  readonly connections: number;
  /** Destroys the client connections, as a broker crash would. */
  dropConnections(): void;
}

/** Answers CONNECT with CONNACK (unless `silent`), PINGREQ with PINGRESP, and hands each PUBLISH to `onPublish`. */
async function fakeBroker(options: { receiveMaximum?: number; silent?: boolean; onPublish?: (broker: FakeBroker, packet: IPublishPacket) => void }): Promise<FakeBroker> {
  const sockets = new Set<Socket>();
  const unacked: IPublishPacket[] = [];
  let maxUnacked = 0;
  let socket: Socket | undefined;
  const write = (packet: Packet) => socket?.write(mqttPacket.generate(packet, { protocolVersion: 5 }));
  const server = createServer((s) => {
    sockets.add(s);
    socket = s;
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    parser.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connect' && !options.silent) {
        write({ cmd: 'connack', sessionPresent: false, reasonCode: 0, ...(options.receiveMaximum !== undefined ? { properties: { receiveMaximum: options.receiveMaximum } } : {}) });
      } else if (packet.cmd === 'pingreq') write({ cmd: 'pingresp' });
      else if (packet.cmd === 'publish') {
        unacked.push(packet);
        maxUnacked = Math.max(maxUnacked, unacked.length);
        options.onPublish?.(broker, packet);
      }
    });
    s.on('data', (data) => parser.parse(data));
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const broker: FakeBroker = {
    port: address.port,
    unacked,
    get maxUnacked() {
      return maxUnacked;
    },
    get connections() {
      return sockets.size;
    },
    puback(packet, reasonCode = 0) {
      unacked.splice(unacked.indexOf(packet), 1);
      write({ cmd: 'puback', messageId: packet.messageId!, reasonCode });
    },
    dropConnections() {
      for (const s of sockets) s.destroy();
    },
  };
  return broker;
}

function makeUpstream(port: number, overrides: { ackTimeoutMs?: number; connectTimeoutMs?: number } = {}): MqttUpstream {
  const upstream = new MqttUpstream({ url: `mqtt://127.0.0.1:${port}`, protocolVersion: 5, clientId: 'fake-broker-test', gatewayId: 'gw1', batch: null, commands: null, logger, ...overrides });
  onTestFinished(() => upstream.disconnect());
  return upstream;
}

async function rejection(promise: Promise<unknown>): Promise<EdgelogError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected a rejection').toBeInstanceOf(EdgelogError);
  return error as EdgelogError;
}

const message = (offset: number) => ({ topic: 'readings', partition: 0, records: [record(offset)] });

describe('MqttUpstream against a hand-driven MQTT 5 server', () => {
  test('no PUBACK within ackTimeoutMs rejects the send with UPSTREAM_UNAVAILABLE naming the topic', async () => {
    const broker = await fakeBroker({});
    const upstream = makeUpstream(broker.port, { ackTimeoutMs: 300 });
    await upstream.connect();
    const error = await rejection(upstream.send(upstream.encode(message(0))));
    expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(error.message).toContain('gateways/gw1/readings/device-0');
    expect(broker.unacked).toHaveLength(1);
  });

  test('a PUBACK reason code of 0x80 or more is UPSTREAM_REFUSED naming the code and the topic; 0x10 is success', async () => {
    const broker = await fakeBroker({ onPublish: (b, p) => b.puback(p, p.payload.toString().includes('"reading":1') ? 0x97 : 0x10) });
    const upstream = makeUpstream(broker.port);
    await upstream.connect();
    expect(await upstream.send(upstream.encode(message(0)))).toEqual({ duplicate: false });
    const error = await rejection(upstream.send(upstream.encode(message(1))));
    expect(error.code).toBe('UPSTREAM_REFUSED');
    expect(error.message).toContain('0x97');
    expect(error.message).toContain('Quota exceeded');
    expect(error.message).toContain('gateways/gw1/readings/device-1');
  });

  test("no more PUBLISH packets in flight than the broker's Receive Maximum (MQTT-3.3.4-7), and all of them acked in order", async () => {
    const acked: number[] = [];
    const broker = await fakeBroker({
      receiveMaximum: 3,
      // Acks in the next turn, so sends pile up behind the limit meanwhile.
      onPublish: (b, p) => setImmediate(() => b.puback(p)),
    });
    const upstream = makeUpstream(broker.port);
    await upstream.connect();
    const sends: Promise<SendResult>[] = [];
    for (let i = 0; i < 50; i++) sends.push(upstream.send(upstream.encode(message(i))).then((r) => (acked.push(i), r)));
    await Promise.all(sends);
    expect(broker.maxUnacked).toBe(3);
    expect(acked).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  test('a server that accepts the socket but never answers CONNECT is UPSTREAM_UNAVAILABLE after connectTimeoutMs', async () => {
    const broker = await fakeBroker({ silent: true });
    const upstream = makeUpstream(broker.port, { connectTimeoutMs: 300 });
    const error = await rejection(upstream.connect());
    expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(error.message).toContain('did not answer CONNECT');
    // The failed attempt left nothing behind: a later connect() is allowed.
    expect((await rejection(upstream.connect())).code).toBe('UPSTREAM_UNAVAILABLE');
  });

  test('disconnect() while connect() waits for CONNACK rejects the connect with UPSTREAM_UNAVAILABLE', async () => {
    const broker = await fakeBroker({ silent: true });
    const upstream = makeUpstream(broker.port, { connectTimeoutMs: 30_000 });
    const connecting = upstream.connect();
    await waitFor(() => broker.connections > 0, 'the socket at the server');
    await upstream.disconnect();
    const error = await rejection(connecting);
    expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(error.message).toContain('disconnect() was called');
    await waitFor(() => broker.connections === 0, 'the socket closed');
  });

  test('sends waiting behind Receive Maximum are rejected too when the link is lost', async () => {
    const broker = await fakeBroker({ receiveMaximum: 2 });
    const upstream = makeUpstream(broker.port);
    const drops: Error[] = [];
    upstream.onDisconnect((e) => drops.push(e));
    await upstream.connect();
    const sends = Array.from({ length: 10 }, (_, i) => upstream.send(upstream.encode(message(i))));
    await waitFor(() => broker.unacked.length === 2, 'the first 2 publishes at the server');
    broker.dropConnections();
    const settled = await Promise.allSettled(sends);
    expect(settled.every((s) => s.status === 'rejected' && (s.reason as EdgelogError).code === 'UPSTREAM_UNAVAILABLE')).toBe(true);
    expect(drops).toHaveLength(1);
  });
});
