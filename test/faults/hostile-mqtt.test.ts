/**
 * The MQTT listener under hostile input (issue 8, "Hostile and broken input"): garbage, mutated
 * packets, protocol extremes, a connect flood and slowloris senders, each while a well-behaved
 * canary device keeps publishing. The gateway must stay up, ack and store every canary reading
 * within a bounded latency, close what it cannot serve, and keep its memory bounded.
 * Per-packet limits already covered in test/ingest (packet size, auth throttling) are not repeated.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { MQTT_CONNECT_TIMEOUT_MS } from '../../src/ingest/mqtt-ingest.js';
import { inPool, randomBytes, RawSocket, seededRandom, underAttack } from './hostile-helpers.js';

/** Slack on top of a timeout the gateway applies, for a loaded two-core machine. */
const TIMEOUT_SLACK_MS = 5_000;

const connectPacket = (clientId: string | Buffer, keepalive = 5): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: clientId as string, keepalive });

const generate = (packet: Packet): Buffer => mqttPacket.generate(packet);

/** Replaces the first occurrence of `placeholder` in `packet` by bytes of the same length. */
function patch(packet: Buffer, placeholder: string, bytes: number[]): Buffer {
  const at = packet.indexOf(placeholder);
  if (at < 0 || bytes.length !== Buffer.byteLength(placeholder)) throw new Error('bad patch');
  Buffer.from(bytes).copy(packet, at);
  return packet;
}

/** Opens a connection, sends `bytes`, and reports whether the gateway closed it within `timeoutMs`. */
async function sendAndWatch(port: number, bytes: Buffer, timeoutMs: number): Promise<boolean> {
  const raw = await RawSocket.open(port);
  raw.write(bytes);
  const closed = await raw.closedWithin(timeoutMs);
  raw.destroy();
  return closed;
}

describe('MQTT under hostile input', () => {
  it('closes each of 300 connections that send random bytes, and serves the canary meanwhile', async () => {
    const random = seededRandom(0x5eed_0001);
    const garbage = Array.from({ length: 300 }, () => randomBytes(random, 16 + Math.floor(random() * 2048)));
    const { result } = await underAttack('mqtt random bytes', (gateway) =>
      // Garbage that announces a long packet waits for its body until the connect timeout: every one must end by then.
      inPool(garbage.length, 100, (i) => sendAndWatch(gateway.ports.mqtt, garbage[i]!, MQTT_CONNECT_TIMEOUT_MS + TIMEOUT_SLACK_MS)),
    );
    expect(result.filter((closed) => !closed)).toHaveLength(0);
  });

  it('survives 300 truncated and bit-flipped CONNECT, PUBLISH and SUBSCRIBE sequences', async () => {
    const random = seededRandom(0x5eed_0002);
    const mutated = Array.from({ length: 300 }, (_, i) => {
      const valid = Buffer.concat([
        connectPacket(`fuzz-${i}`),
        generate({ cmd: 'publish', topic: `devices/fuzz-${i}/fuzz`, payload: randomBytes(random, 32), qos: 1, messageId: 1, retain: false, dup: false }),
        generate({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: `devices/fuzz-${i}/#`, qos: 1 }] }),
      ]);
      const mode = i % 3; // 0: truncated, 1: bits flipped, 2: both
      let bytes = mode === 1 ? valid : valid.subarray(0, 1 + Math.floor(random() * (valid.length - 1)));
      if (mode !== 0) {
        bytes = Buffer.from(bytes);
        for (let flips = 1 + Math.floor(random() * 8); flips > 0; flips--) {
          const at = Math.floor(random() * bytes.length);
          bytes[at] = bytes[at]! ^ (1 << Math.floor(random() * 8));
        }
      }
      return bytes;
    });
    // A mutation may leave a valid session (then it lives until its keepalive): each is dropped after a while.
    const { result } = await underAttack('mqtt mutated packets', (gateway) => inPool(mutated.length, 50, (i) => sendAndWatch(gateway.ports.mqtt, mutated[i]!, 1_500)));
    // Most mutations break the stream, and the gateway closes those at once.
    expect(result.filter(Boolean).length).toBeGreaterThan(mutated.length / 3);
  });

  it('closes the connection of each protocol extreme: absurd lengths, a huge topic, thousands of levels, invalid UTF-8', async () => {
    const levels = `devices/levels/${'a/'.repeat(5_000)}t`;
    const cases: Record<string, Buffer> = {
      // 0xFFFFFFF, the largest remaining length MQTT can encode (§2.2.3), as the first packet.
      'CONNECT of remaining length 0xFFFFFFF': Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]),
      'a remaining length of five bytes': Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]),
      'a topic of 65,000 bytes': Buffer.concat([
        connectPacket('huge-topic'),
        generate({ cmd: 'publish', topic: `devices/huge-topic/${'x'.repeat(65_000)}`, payload: Buffer.from('1'), qos: 1, messageId: 1, retain: false, dup: false }),
      ]),
      'a topic of 5,000 levels': Buffer.concat([
        connectPacket('levels'),
        generate({ cmd: 'publish', topic: levels, payload: Buffer.from('1'), qos: 1, messageId: 1, retain: false, dup: false }),
      ]),
      'invalid UTF-8 in the topic': Buffer.concat([
        connectPacket('bad-utf8-topic'),
        patch(generate({ cmd: 'publish', topic: 'devices/bad-utf8-topic/XX', payload: Buffer.from('1'), qos: 1, messageId: 1, retain: false, dup: false }), 'XX', [0xc3, 0x28]),
      ]),
      'invalid UTF-8 in the client id': patch(connectPacket('id-XX'), 'XX', [0xff, 0xfe]),
    };
    const { gateway, result } = await underAttack('mqtt protocol extremes', (gw) =>
      Promise.all(Object.entries(cases).map(async ([name, bytes]) => [name, await sendAndWatch(gw.ports.mqtt, bytes, TIMEOUT_SLACK_MS)] as const)),
    );
    expect(Object.fromEntries(result)).toEqual(Object.fromEntries(Object.keys(cases).map((name) => [name, true])));
    // None of it became a topic: the canary's is the only one.
    expect(gateway.log.listTopics().filter((t) => !t.startsWith('_'))).toEqual(['canary']);
  });

  it('survives a subscription of 20,000 topic levels while a device publishes', async () => {
    const filter = `${'a/'.repeat(20_000)}#`;
    // The canary's publishes are matched against this filter: they must stay acked within the bound.
    const { result } = await underAttack('mqtt deep subscription', async (gateway) => {
      const raw = await RawSocket.open(gateway.ports.mqtt);
      raw.write(Buffer.concat([connectPacket('deep-sub', 0), generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] })]));
      // Granted or refused, either is fine; what matters is that matching publishes against it stays cheap.
      await raw.closedWithin(1_000);
      return { raw };
    });
    result.raw.destroy();
  });

  it('survives a flood of 500 connections opened as fast as possible and dropped', async () => {
    await underAttack('mqtt connect flood', (gateway) =>
      inPool(500, 100, async (i) => {
        const raw = await RawSocket.open(gateway.ports.mqtt);
        // Half say CONNECT and vanish before the CONNACK, half vanish at once.
        if (i % 2 === 0) raw.write(connectPacket(`flood-${i}`));
        raw.destroy();
      }),
    );
  });

  it(`closes 120 slowloris connections that never finish their CONNECT within the connect timeout (${MQTT_CONNECT_TIMEOUT_MS} ms)`, async () => {
    const { result } = await underAttack('mqtt slowloris', (gateway) =>
      inPool(120, 120, async (i) => {
        // A CONNECT with a long client id, so the trickle cannot finish it before the timeout.
        const connect = connectPacket(`slowloris-${i}-${'s'.repeat(64)}`);
        const raw = await RawSocket.open(gateway.ports.mqtt);
        raw.write(connect.subarray(0, connect.length >> 1));
        let sent = connect.length >> 1;
        const trickle = setInterval(() => {
          // One byte every 2 s, never the last one: the CONNECT stays incomplete.
          if (sent < connect.length - 1 && raw.write(connect.subarray(sent, sent + 1))) sent += 1;
        }, 2_000);
        try {
          return await raw.closedWithin(MQTT_CONNECT_TIMEOUT_MS + TIMEOUT_SLACK_MS);
        } finally {
          clearInterval(trickle);
          raw.destroy();
        }
      }),
    );
    expect(result.filter((closed) => !closed)).toHaveLength(0);
  });
});
