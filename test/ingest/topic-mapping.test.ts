import { describe, expect, it } from 'vitest';
import { MAP_CACHE_ENTRIES, TopicMapper, topicRuleError } from '../../src/ingest/topic-mapping.js';

describe('topic rules', () => {
  const defaults = new TopicMapper();

  it('maps devices/{deviceId}/{stream} to topic {stream} keyed by {deviceId} by default', () => {
    expect(defaults.map('devices/device-0001/temperature')).toEqual({ topic: 'temperature', key: 'device-0001', deviceId: 'device-0001', stream: 'temperature' });
    expect(defaults.mapReading('device-0001', 'temperature')).toEqual(defaults.map('devices/device-0001/temperature'));
  });

  it.each([
    ['sensors/a/temperature', /topic 'sensors\/a\/temperature' does not match devices\/\{deviceId\}\/\{stream\}/],
    ['devices/a', /does not match/],
    ['devices/a/b/c', /does not match/],
    ['devices//temperature', /device id '' must be 1 to 128/],
    ['devices/a b/temperature', /device id 'a b'/],
    ['devices/a/temp erature', /log topic 'temp erature' \(from '\{stream\}'\) must be 1 to 249/],
    ['devices/a/_deadletter', /may not start with '_'/],
  ])('refuses %s with a reason', (topic, reason) => {
    expect(defaults.map(topic)).toMatch(reason);
  });

  it('follows declared rules in order: literals, captures, templates for topic and key', () => {
    const mapper = new TopicMapper([
      { match: 'site/{site}/line/{line}/{deviceId}/{stream}', topic: '{site}.{stream}', key: '{line}/{deviceId}' },
      { match: 'devices/{deviceId}/{stream}', topic: '{stream}', key: '{deviceId}' },
      { match: 'legacy/{deviceId}', topic: 'legacy', key: '{deviceId}' },
    ]);
    expect(mapper.map('site/north/line/3/env-1/climate')).toEqual({ topic: 'north.climate', key: '3/env-1', deviceId: 'env-1', stream: 'climate' });
    expect(mapper.map('devices/env-1/climate')).toMatchObject({ topic: 'climate', key: 'env-1' });
    // No {stream}: the payload is decoded as the stream named like the log topic.
    expect(mapper.map('legacy/env-1')).toEqual({ topic: 'legacy', key: 'env-1', deviceId: 'env-1', stream: 'legacy' });
    expect(mapper.map('site/north/env-1')).toMatch(/does not match site\/\{site\}\/line\/\{line\}\/\{deviceId\}\/\{stream\} or devices\/\{deviceId\}\/\{stream\} or legacy\/\{deviceId\}/);
  });

  it.each([
    [null, /must be a mapping/],
    [{ match: 'devices/{deviceId}/{stream}', topic: '{stream}' }, /'key' must be a non-empty string/],
    [{ match: 'devices/{deviceId}/{stream}', topic: '{stream}', key: '{deviceId}', qos: 1 }, /unknown key 'qos'/],
    [{ match: 'devices/{stream}', topic: '{stream}', key: 'k' }, /must capture a \{deviceId\} level/],
    [{ match: 'devices/+/{deviceId}', topic: 't', key: 'k' }, /not MQTT wildcards \('\+'\)/],
    [{ match: 'devices/x{deviceId}', topic: 't', key: 'k' }, /level 'x\{deviceId\}' must be a whole \{name\}/],
    [{ match: 'a/{deviceId}/{deviceId}', topic: 't', key: 'k' }, /captures \{deviceId\} twice/],
    [{ match: 'devices/{deviceId}', topic: '{stream}', key: 'k' }, /'topic' uses \{stream\}, which 'match' does not capture \(it captures \{deviceId\}\)/],
  ])('refuses the rule %j naming what is wrong', (rule, reason) => {
    expect(topicRuleError(rule)).toMatch(reason);
  });

  it('remembers mappings up to a bound, never refusals, and answers the same after starting over', () => {
    const mapper = new TopicMapper();
    const first = mapper.map('devices/d-0/temperature');
    expect(mapper.map('devices/d-0/temperature')).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    for (let i = 0; i < 100; i++) expect(mapper.map(`nowhere/${i}`)).toMatch(/does not match/);
    expect(mapper.cachedTopics).toBe(1);
    for (let i = 1; i <= MAP_CACHE_ENTRIES; i++) mapper.map(`devices/d-${i}/temperature`);
    expect(mapper.cachedTopics).toBeLessThanOrEqual(MAP_CACHE_ENTRIES);
    expect(mapper.map('devices/d-0/temperature')).toEqual({ topic: 'temperature', key: 'd-0', deviceId: 'd-0', stream: 'temperature' });
  });
});
