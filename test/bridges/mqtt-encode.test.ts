import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { encodeMqtt } from '../../bridges/mqtt/mqtt-encode.js';
import { resolveMqttOptions, type MqttUpstreamOptions } from '../../bridges/mqtt/mqtt-options.js';
import { topicMatches } from '../../bridges/mqtt/mqtt-topics.js';
import { IDENTITY } from '../../bridges/record-identity.js';
import { parseTemplate } from '../../bridges/template.js';
import { EdgelogError } from '../../src/errors.js';
import { record } from './upstream-contract.js';

const logger = pino({ level: 'silent' });
const base: MqttUpstreamOptions = { url: 'mqtt://127.0.0.1:1883', protocolVersion: 5, clientId: 'c', gatewayId: 'gw1', batch: null, commands: null, logger };
const settings = { protocolVersion: 5 as const, gatewayId: 'gw1', topic: parseTemplate('gateways/{gatewayId}/{topic}/{partition}/{key}'), gzip: false };

function configError(options: Partial<MqttUpstreamOptions>): string {
  try {
    resolveMqttOptions({ ...base, ...options });
  } catch (error) {
    expect(error).toBeInstanceOf(EdgelogError);
    expect((error as EdgelogError).code).toBe('INVALID_CONFIG');
    return (error as Error).message;
  }
  throw new Error('expected INVALID_CONFIG');
}

describe('MQTT encoding', () => {
  test('template values are escaped so they stay one level: / + # NUL and % itself; an empty key is _', () => {
    const at = (key: string | Buffer | null) => encodeMqtt(settings, { topic: 'a/b', partition: 3, records: [record(0, { key })] }).topic;
    expect(at('x/+#\u0000%')).toBe('gateways/gw1/a%2Fb/3/x%2F%2B%23%00%25');
    expect(at(null)).toBe('gateways/gw1/a%2Fb/3/_');
    // A bytes key is base64 ('+/8='), then escaped like any value.
    expect(at(Buffer.from([0xfb, 0xff]))).toBe('gateways/gw1/a%2Fb/3/%2B%2F8=');
  });

  test('a header named like an identity property comes after the identity, and byte-valued header names are listed escaped', () => {
    const r = record(5, { headers: { [IDENTITY.offset]: 'spoofed', 'a,b': Buffer.from([1]) } });
    const encoded = encodeMqtt(settings, { topic: 't', partition: 0, records: [r] });
    expect(encoded.properties?.userProperties?.[IDENTITY.offset]).toEqual(['5', 'spoofed']);
    expect(encoded.properties?.userProperties?.['edgelog-base64-headers']).toBe('a%2Cb');
    expect(encoded.properties?.userProperties?.['a,b']).toBe('AQ==');
  });

  test('bytes count the payload, the topic and the properties', () => {
    const value = Buffer.alloc(500, 1);
    const encoded = encodeMqtt(settings, { topic: 't', partition: 0, records: [record(0, { value })] });
    const props = Object.entries(encoded.properties!.userProperties!).reduce((n, [k, v]) => n + k.length + String(v).length, 0);
    expect(encoded.bytes).toBeGreaterThanOrEqual(value.length + encoded.topic.length + props);
    expect(encoded.bytes).toBeLessThan(value.length + encoded.topic.length + props + 100);
  });

  test('MQTT 3.1.1 gzip batches are gzip NDJSON without properties', () => {
    const records = [record(1), record(2)];
    const encoded = encodeMqtt({ ...settings, protocolVersion: 4, topic: parseTemplate('g/{topic}'), gzip: true }, { topic: 't', partition: 0, records });
    expect(encoded.properties).toBeUndefined();
    const lines = gunzipSync(encoded.payload).toString().trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { offset: number }).offset)).toEqual([1, 2]);
  });
});

describe('MQTT options', () => {
  test('contradictions are INVALID_CONFIG naming the field', () => {
    expect(configError({ batch: { records: 10, gzip: false }, topic: parseTemplate('g/{key}') })).toContain('{key}');
    expect(configError({ tls: { caFile: '/nonexistent' } })).toContain('mqtts://');
    expect(configError({ url: 'mqtts://h:8883', tls: { caFile: '/nonexistent/ca.pem' } })).toContain('tls.caFile');
    expect(configError({ url: 'http://h' })).toContain('mqtt://');
    expect(configError({ commands: {} })).toContain('onCommand');
    const onCommand = async () => {};
    expect(configError({ commands: { topic: 'gateways/{gatewayId}/commands' }, onCommand })).toContain("'/#'");
    expect(configError({ commands: { allow: ['devices/#/x'] }, onCommand })).toContain('commands.allow');
    expect(configError({ url: 'mqtt://user:hunter2@h:1883', protocolVersion: 3 as 4 })).not.toContain('hunter2');
  });

  test('defaults: the topic depends on batching, commands use the gateway id (escaped) and the device command tree', () => {
    const resolved = resolveMqttOptions({ ...base, url: 'mqtt://user:pw@h:1883', gatewayId: 'site/7', commands: {}, onCommand: async () => {} });
    expect(resolved.target).toBe('mqtt://h:1883');
    expect(resolved.commands).toEqual({ filter: 'gateways/site%2F7/commands/#', prefix: 'gateways/site%2F7/commands/', allow: ['devices/+/commands/#'] });
    expect(resolved.topic).toEqual(parseTemplate('gateways/{gatewayId}/{topic}/{key}'));
    expect(resolveMqttOptions({ ...base, batch: { records: 2, gzip: true } }).topic).toEqual(parseTemplate('gateways/{gatewayId}/{topic}'));
  });

  test('topic filters match as MQTT-4.7 says', () => {
    expect(topicMatches('devices/+/commands/#', 'devices/d1/commands/reboot')).toBe(true);
    expect(topicMatches('devices/+/commands/#', 'devices/d1/commands')).toBe(true);
    expect(topicMatches('devices/+/commands/#', 'devices/d1/telemetry')).toBe(false);
    expect(topicMatches('devices/+/commands/#', 'devices/commands/x')).toBe(false);
    expect(topicMatches('#', '$SYS/x')).toBe(false);
    expect(topicMatches('a/+', 'a/b/c')).toBe(false);
  });
});
