import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProfileError } from '../../devices/errors.js';
import { loadProfile, loadProfiles, parseProfile } from '../../devices/profile.js';
import { tempDir } from '../helpers/temp-dir.js';

const minimal = (): Record<string, unknown> => ({
  name: 'thermo',
  streams: [{ name: 'climate', fields: [{ name: 'temperature', unit: '°C', min: -40, max: 85, resolution: 0.01, binary: 'int16', signal: { base: 20 } }] }],
});

describe('device profiles', () => {
  it('ships at least the environment, vibration and power-meter profiles, in JSON and edgebin', () => {
    const profiles = loadProfiles();
    expect(profiles.map((p) => p.name)).toEqual(expect.arrayContaining(['environment-sensor', 'motor-vibration', 'power-meter']));
    expect(new Set(profiles.map((p) => p.payloadFormat))).toEqual(new Set(['json', 'edgebin']));
    for (const p of profiles) {
      expect(Object.isFrozen(p)).toBe(true);
      expect(p.schedule.length).toBe(p.streams.reduce((n, s) => n + s.share, 0));
    }
  });

  it('fills defaults and spreads stream shares over the schedule', () => {
    const doc = minimal();
    (doc['streams'] as unknown[]).push({ name: 'status', share: 1, fields: [{ name: 'battery', min: 0, max: 100, resolution: 0.1, binary: 'uint16', signal: { kind: 'battery' } }] });
    (doc['streams'] as { share?: number }[])[0]!.share = 3;
    const p = parseProfile(doc);
    expect(p.payloadFormat).toBe('json');
    expect(p.schedule).toEqual([0, 0, 1, 0]);
    expect(p.streams[1]?.fields[0]?.decimals).toBe(1);
  });

  // `any`: the mutations poke into an untyped JSON document on purpose.
  it.each([
    ['a missing name', (d: Record<string, unknown>) => delete d['name'], '$.name: must be a string'],
    ['a name with a slash', (d: Record<string, unknown>) => (d['name'] = 'a/b'), "$.name: 'a/b' must start with a letter"],
    ['an unknown format', (d: Record<string, unknown>) => (d['payloadFormat'] = 'cbor'), "$.payloadFormat: must be one of 'json', 'edgebin'"],
    ['no streams', (d: Record<string, unknown>) => (d['streams'] = []), '$.streams: must be an array of 1 to 255 streams'],
    ['a range the binary type cannot hold', (d: any) => (d.streams[0].fields[0].binary = 'int8'), '$.streams[0].fields[0].binary: int8 cannot hold [-40, 85]'],
    ['max below min', (d: any) => (d.streams[0].fields[0].max = -50), '$.streams[0].fields[0].max: must be at least -40'],
    ['a reserved field name', (d: any) => (d.streams[0].fields[0].name = 'seq'), "$.streams[0].fields[0].name: 'seq' is reserved"],
    ['a base outside the range', (d: any) => (d.streams[0].fields[0].signal.base = 200), '$.streams[0].fields[0].signal.base: must be at most 85'],
    ['an unknown signal kind', (d: any) => (d.streams[0].fields[0].signal.kind = 'square'), "signal.kind: must be one of 'cycle', 'battery', 'counter'"],
  ])('refuses %s, naming the JSON path', (_what, mutate, message) => {
    const doc = minimal();
    mutate(doc);
    expect(() => parseProfile(doc, 'test.json')).toThrow(ProfileError);
    expect(() => parseProfile(doc, 'test.json')).toThrow(message);
  });

  it('names the file when it is missing or not JSON', () => {
    const dir = tempDir();
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{"name": ');
    expect(() => loadProfile(file)).toThrow(`invalid device profile ${file}: $: is not valid JSON`);
    expect(() => loadProfile(join(dir, 'missing.json'))).toThrow('cannot be read (ENOENT)');
  });
});

describe('device profiles: subscribe', () => {
  it('defaults to the device\'s own commands and freezes the list', () => {
    const p = parseProfile(minimal());
    expect(p.subscribe).toEqual(['devices/{deviceId}/commands/#']);
    expect(Object.isFrozen(p.subscribe)).toBe(true);
  });

  it('keeps an explicit list, including an empty one', () => {
    expect(parseProfile({ ...minimal(), subscribe: ['devices/{deviceId}/config', 'fleet/+'] }).subscribe).toEqual(['devices/{deviceId}/config', 'fleet/+']);
    expect(parseProfile({ ...minimal(), subscribe: [] }).subscribe).toEqual([]);
  });

  it.each([
    ['not a list', 'devices/#', '$.subscribe: must be an array of 0 to 32 MQTT topic filters'],
    ['too many', Array.from({ length: 33 }, (_, i) => `t/${i}`), '$.subscribe: must be an array of 0 to 32'],
    ['a number', [7], '$.subscribe[0]: must be a string'],
    ['# not last', ['a/#/b'], "$.subscribe[0]: 'a/#/b' is not a valid topic filter: '#' must be the last level"],
    ['+ in a level', ['devices/{deviceId}/cmd+'], "$.subscribe[0]: 'devices/{deviceId}/cmd+' is not a valid topic filter: '+' must be alone"],
    ['an empty filter', ['ok/#', ''], '$.subscribe[1]: \'\' is not a valid topic filter: must not be empty'],
    ['a partial placeholder', ['devices/id-{deviceId}/#'], 'the only placeholder is {deviceId}, as a whole level'],
    ['a misspelt placeholder', ['devices/{device_id}/#'], "level 2 '{device_id}' has a brace"],
  ])('refuses %s, naming the JSON path', (_what, subscribe, message) => {
    expect(() => parseProfile({ ...minimal(), subscribe }, 'test.json')).toThrow(ProfileError);
    expect(() => parseProfile({ ...minimal(), subscribe }, 'test.json')).toThrow(message);
  });
});
