import { describe, expect, it } from 'vitest';
import { DEFAULT_SUBSCRIBE, allowedFilterError, filterCovers, subscriptionAllowed, topicFilterError } from '../../devices/acl.js';
import { loadProfiles, parseProfile, type DeviceProfile } from '../../devices/profile.js';

const withSubscribe = (subscribe: string[]): DeviceProfile =>
  parseProfile({ name: 'thermo', subscribe, streams: [{ name: 'climate', fields: [{ name: 't', min: 0, max: 1, signal: { base: 0 } }] }] });

const commands = withSubscribe(['devices/{deviceId}/commands/#']);

describe('topicFilterError', () => {
  it.each(['a', 'a/b/c', '#', '+', '+/+', 'a/+/c', 'a/#', '/', '//', 'a//b', '/a', 'a/', '$SYS/#', '$SYS/broker/+', 'sensors/°C', 'a b', '+/#'])(
    'accepts %j',
    (filter) => expect(topicFilterError(filter)).toBeUndefined(),
  );

  it.each([
    ['', 'must not be empty (MQTT-4.7.3-1)'],
    ['a/#/b', "'#' must be the last level and alone in it (MQTT-4.7.1-2), in level 2 '#'"],
    ['a#', "'#' must be the last level and alone in it (MQTT-4.7.1-2), in level 1 'a#'"],
    ['a/b#', "in level 2 'b#'"],
    ['#/', "in level 1 '#'"],
    ['a+', "'+' must be alone in its level (MQTT-4.7.1-3), in level 1 'a+'"],
    ['a/+b/c', "in level 2 '+b'"],
    ['++', "in level 1 '++'"],
    ['a\u0000b', 'must not contain U+0000 (MQTT-4.7.3-2)'],
    ['a/\uD800', 'must be well-formed UTF-8 (MQTT-1.5.3-1)'],
    ['x'.repeat(65_536), 'must be at most 65535 bytes of UTF-8'],
    ['é'.repeat(32_768), 'must be at most 65535 bytes of UTF-8'],
  ])('refuses %j: %s', (filter, reason) => {
    expect(topicFilterError(filter)).toContain(reason);
  });

  it('accepts a well-formed surrogate pair and the largest allowed length', () => {
    expect(topicFilterError('devices/🌡')).toBeUndefined();
    expect(topicFilterError('x'.repeat(65_535))).toBeUndefined();
  });
});

describe('allowedFilterError', () => {
  it('accepts {deviceId} as a whole level, anywhere, more than once', () => {
    for (const f of ['devices/{deviceId}/commands/#', '{deviceId}', '{deviceId}/+/{deviceId}', 'config/{deviceId}']) expect(allowedFilterError(f)).toBeUndefined();
  });

  it.each([
    ['devices/dev-{deviceId}/#', "level 2 'dev-{deviceId}' has a brace"],
    ['devices/{deviceID}/#', "level 2 '{deviceID}' has a brace: the only placeholder is {deviceId}"],
    ['devices/{id}/#', "'{id}'"],
    ['devices/{deviceId/#', "'{deviceId'"],
    ['devices/{deviceId}/#/x', "'#' must be the last level"],
  ])('refuses %j', (filter, reason) => expect(allowedFilterError(filter)).toContain(reason));
});

describe('filterCovers', () => {
  const covers = (allowed: string, requested: string) => filterCovers(allowed.split('/'), requested.split('/'));

  it.each([
    ['a/b', 'a/b'],
    ['a/+', 'a/b'],
    ['a/+', 'a/+'],
    ['a/+', 'a/'],
    ['a/#', 'a'],
    ['a/#', 'a/#'],
    ['a/#', 'a/+/c/#'],
    ['#', '#'],
    ['#', '+/x'],
    ['+/#', 'a/b/#'],
    ['+', ''],
    ['+/x', '/x'],
    ['$SYS/#', '$SYS/broker/uptime'],
    ['$SYS/+', '$SYS/x'],
  ])('%j covers %j', (allowed, requested) => expect(covers(allowed, requested)).toBe(true));

  it.each([
    ['a/b', 'a/+'],
    ['a/b', 'a/#'],
    ['a/b', 'a'],
    ['a/b', 'a/b/c'],
    ['a/+', 'a/#'],
    ['a/+', 'a'],
    ['a/+', 'a/b/c'],
    ['a/#', '#'],
    ['a/#', '+/b'],
    ['a', 'a/#'],
    ['#', '$SYS/#'],
    ['#', '$SYS'],
    ['+/#', '$SYS/x'],
    ['+/uptime', '$SYS/uptime'],
    ['$SYS/#', '#'],
    ['$SYS/#', '+/broker'],
  ])('%j does not cover %j', (allowed, requested) => expect(covers(allowed, requested)).toBe(false));
});

describe('subscriptionAllowed', () => {
  it.each(['devices/d1/commands/reboot', 'devices/d1/commands/+', 'devices/d1/commands/#', 'devices/d1/commands', 'devices/d1/commands/ota/+/chunk', 'devices/d1/commands/'])(
    'lets d1 subscribe to %j under the default filter',
    (filter) => expect(subscriptionAllowed(commands, 'd1', filter)).toBe(true),
  );

  it.each([
    'devices/+/commands/#',
    'devices/#',
    'devices/d1/#',
    '#',
    '+/d1/commands/#',
    'devices/d2/commands/#',
    'devices/d1/climate',
    'devices/d1/+/reboot',
    'devices/d1x/commands/#',
    'devices/d/commands/#',
    'devices//commands/#',
    'devices/d1/commands/a#',
    'devices/d1/commands/#/x',
    '',
    '$SYS/#',
    '$SYS/broker/clients/connected',
  ])('refuses d1 %j', (filter) => expect(subscriptionAllowed(commands, 'd1', filter)).toBe(false));

  it('substitutes the subscriber id only, never a wildcard from it', () => {
    expect(subscriptionAllowed(commands, 'env-0001', 'devices/env-0001/commands/#')).toBe(true);
    for (const id of ['+', '#', 'a/b', '', 'x'.repeat(129)]) {
      expect(subscriptionAllowed(commands, id, `devices/${id}/commands/#`)).toBe(false);
      expect(subscriptionAllowed(commands, id, 'devices/anything/commands/x')).toBe(false);
    }
  });

  it('allows any filter one of several allowed filters covers; an empty list allows nothing', () => {
    const p = withSubscribe(['devices/{deviceId}/commands/#', 'fleet/firmware/+', '$SYS/broker/uptime']);
    expect(subscriptionAllowed(p, 'd1', 'fleet/firmware/latest')).toBe(true);
    expect(subscriptionAllowed(p, 'd1', 'fleet/firmware/#')).toBe(false);
    expect(subscriptionAllowed(p, 'd1', '$SYS/broker/uptime')).toBe(true);
    expect(subscriptionAllowed(p, 'd1', '$SYS/broker/+')).toBe(false);
    const none = withSubscribe([]);
    for (const f of ['#', 'devices/d1/commands/#', 'devices/d1/commands/x']) expect(subscriptionAllowed(none, 'd1', f)).toBe(false);
  });

  it('keeps $-topics out of reach of even a profile that allows #', () => {
    const everything = withSubscribe(['#']);
    expect(subscriptionAllowed(everything, 'd1', 'devices/d2/climate')).toBe(true);
    expect(subscriptionAllowed(everything, 'd1', '#')).toBe(true);
    expect(subscriptionAllowed(everything, 'd1', '$SYS/#')).toBe(false);
  });

  it('gives the shipped profiles the default: their own commands only', () => {
    for (const p of loadProfiles()) {
      expect(p.subscribe).toEqual(DEFAULT_SUBSCRIBE);
      expect(subscriptionAllowed(p, 'env-0001', 'devices/env-0001/commands/#')).toBe(true);
      expect(subscriptionAllowed(p, 'env-0001', 'devices/env-0002/commands/#')).toBe(false);
    }
  });
});
