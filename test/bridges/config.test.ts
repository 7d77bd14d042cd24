import { describe, expect, it } from 'vitest';
import { parseBridges } from '../../bridges/config.js';

const nats = { name: 'central', type: 'nats', topics: ['*'], nats: { servers: 'nats://127.0.0.1:4222' } };
const mqtt = { name: 'cloud', type: 'mqtt', topics: [{ match: 'alerts', priority: 10, ack: 'upstream' }], mqtt: { url: 'mqtts://broker.example:8883' } };

function refusal(raw: unknown): string {
  try {
    parseBridges(raw, 'gw-1');
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('the bridges config', () => {
  it('fills every default', () => {
    const [n, m] = parseBridges([nats, mqtt], 'gw-1');
    expect(n).toMatchObject({
      type: 'nats',
      settings: { name: 'central', gatewayId: 'gw-1', topics: [{ match: '*', priority: 0, syncWindow: null, ack: 'local' }], maxInFlight: 1000, batch: null, bandwidthBytesPerSecond: 0 },
      nats: { servers: ['nats://127.0.0.1:4222'], stream: null },
    });
    expect(m).toMatchObject({ type: 'mqtt', mqtt: { protocolVersion: 5, clientId: 'edgelog-gw-1-cloud', commands: null }, settings: { topics: [{ priority: 10, ack: 'upstream' }] } });
    expect(parseBridges(null, 'gw-1')).toEqual([]);
  });

  it('refuses mistakes naming the key and what is allowed', () => {
    expect(refusal([{ ...nats, type: 'kafka' }])).toMatch(/'bridges\[0\]\.type' must be 'mqtt' or 'nats', got "kafka"/);
    expect(refusal([{ ...nats, topics: [] }])).toMatch(/'bridges\[0\]\.topics' must be a list of 1 to 32 topic rules/);
    expect(refusal([{ ...nats, topics: [{ match: 'bulk', syncWindow: 'at night' }] }])).toMatch(/'bridges\[0\]\.topics\[0\]\.syncWindow' must be a cron expression/);
    expect(refusal([{ ...nats, topics: [{ match: 'a b' }] }])).toMatch(/'bridges\[0\]\.topics\[0\]\.match' must be a topic name or a pattern/);
    expect(refusal([{ ...nats, retries: 3 }])).toMatch(/'bridges\[0\]\.retries' is not known: allowed in bridges\[0\] are name, type, topics/);
    expect(refusal([nats, nats])).toMatch(/'bridges\[1\]\.name' repeats "central"/);
    expect(refusal([{ ...nats, nats: { servers: ['http://x'] } }])).toMatch(/'bridges\[0\]\.nats\.servers' must be a server address or a list of them, nats:\/\/HOST:PORT/);
    expect(refusal([{ ...nats, mqtt: mqtt.mqtt }])).toMatch(/'bridges\[0\]\.mqtt' does not go with type 'nats'/);
    expect(refusal([{ ...mqtt, mqtt: { url: 'mqtt://user:pw@host:1883' } }])).toMatch(/credentials go in username and password/);
    expect(refusal([{ ...mqtt, batch: { records: 50 }, mqtt: { url: 'mqtt://h:1883', topic: 'gw/{topic}/{key}' } }])).toMatch(/uses \{key\}, but the bridge batches records of many keys/);
    expect(refusal([{ ...mqtt, mqtt: { url: 'mqtt://h:1883', topic: 'gw/{device}' } }])).toMatch(/unknown placeholder \{device\}.*allowed are \{gatewayId\}, \{topic\}, \{partition\}, \{key\}/);
    expect(refusal([{ ...nats, maxInFlight: 0 }])).toMatch(/'bridges\[0\]\.maxInFlight' must be an integer from 1 to 100000, got 0/);
  });
});

describe('config/bridges.example.yaml', () => {
  it('loads as shipped', async () => {
    const { loadConfig } = await import('../../src/config.js');
    const config = loadConfig({ file: new URL('../../config/bridges.example.yaml', import.meta.url).pathname });
    expect(config.gatewayId).toBe('plant-7-line-2');
    expect(config.bridges.map((b) => `${b.settings.name}:${b.type}`)).toEqual(['central:nats', 'cloud:mqtt']);
    expect(config.bridges[1]!.settings).toMatchObject({ batch: { records: 50, gzip: true }, bandwidthBytesPerSecond: 20000, topics: [{ match: 'alerts', ack: 'upstream' }] });
  });
});
