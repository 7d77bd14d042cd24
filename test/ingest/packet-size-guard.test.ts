import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { MqttFrameScanner } from '../../src/ingest/packet-size-guard.js';

const publish = (payloadBytes: number) =>
  mqttPacket.generate({ cmd: 'publish', topic: 'devices/d/s', payload: Buffer.alloc(payloadBytes), qos: 1, messageId: 1, dup: false, retain: false });

describe('MQTT frame scanner', () => {
  it('follows packet boundaries across any chunking and passes packets within the limit', () => {
    const stream = Buffer.concat([publish(10), publish(200), publish(20_000), publish(0)]);
    for (const chunkBytes of [1, 2, 3, 7, 64, 4096, stream.length]) {
      const scanner = new MqttFrameScanner(publish(20_000).length);
      for (let i = 0; i < stream.length; i += chunkBytes) expect(scanner.feed(stream.subarray(i, i + chunkBytes))).toBeNull();
    }
  });

  it('names an oversize packet from its fixed header, before its body arrives', () => {
    const big = publish(100_000);
    const scanner = new MqttFrameScanner(50_000);
    expect(scanner.feed(publish(10))).toBeNull();
    expect(scanner.feed(big.subarray(0, 4))).toBe(`packet of ${big.length} bytes is over the limit of 50000`);
  });

  it('refuses a remaining length of more than four bytes (MQTT-2.2.3)', () => {
    const scanner = new MqttFrameScanner(1 << 30);
    expect(scanner.feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe('malformed remaining length (more than 4 bytes)');
  });
});
