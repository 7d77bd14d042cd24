import { describe, expect, it } from 'vitest';
import { mapDefaultTopic } from '../../src/ingest/topic-mapping.js';

describe('default topic mapping', () => {
  it('maps devices/{deviceId}/{stream} to topic {stream} keyed by {deviceId}', () => {
    expect(mapDefaultTopic('devices/device-0001/temperature')).toEqual({
      topic: 'temperature',
      key: 'device-0001',
      deviceId: 'device-0001',
      stream: 'temperature',
    });
  });

  it.each([
    ['sensors/a/temperature', /does not match devices\/\{deviceId\}\/\{stream\}/],
    ['devices/a', /does not match/],
    ['devices/a/b/c', /does not match/],
    ['devices//temperature', /device id '' must be/],
    ['devices/a b/temperature', /device id 'a b'/],
    ['devices/a/temp erature', /stream 'temp erature'/],
    ['devices/a/_deadletter', /may not start with '_'/],
  ])('refuses %s with a reason', (topic, reason) => {
    expect(mapDefaultTopic(topic)).toMatch(reason);
  });
});
