import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, loadConfig } from '../src/config.js';
import { EdgelogError } from '../src/errors.js';
import { tempDir } from './helpers/temp-dir.js';

const SHIPPED = fileURLToPath(new URL('../config/edgelog.yaml', import.meta.url));

function configFile(text: string): string {
  const file = join(tempDir(), 'edgelog.yaml');
  writeFileSync(file, text);
  return file;
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(EdgelogError);
    expect((error as EdgelogError).code).toBe('INVALID_CONFIG');
    return (error as Error).message;
  }
  throw new Error('expected INVALID_CONFIG');
}

describe('config', () => {
  it('the shipped config/edgelog.yaml is valid and spells out exactly the embedded defaults', () => {
    expect(loadConfig({ file: SHIPPED })).toEqual(DEFAULT_CONFIG);
    expect(loadConfig()).toEqual(DEFAULT_CONFIG);
  });

  it('applies file, then environment, then flags', () => {
    const file = configFile('mqtt:\n  port: 2000\ndataDir: /from/file\nlog:\n  topicDefaults:\n    partitions: 4\n');
    const fromFile = loadConfig({ file });
    expect(fromFile).toMatchObject({ dataDir: '/from/file', mqtt: { port: 2000 }, log: { topicDefaults: { partitions: 4, retentionMs: 604800000 } } });
    const fromEnv = loadConfig({ file, env: { EDGELOG_MQTT_PORT: '3000', EDGELOG_ALLOW_ANONYMOUS: 'true' } });
    expect(fromEnv).toMatchObject({ dataDir: '/from/file', allowAnonymous: true, mqtt: { port: 3000 } });
    const fromFlags = loadConfig({ file, env: { EDGELOG_MQTT_PORT: '3000' }, flags: { 'mqtt.port': '0', dataDir: '/from/flag' } });
    expect(fromFlags).toMatchObject({ dataDir: '/from/flag', mqtt: { port: 0 } });
    expect(Object.isFrozen(fromFlags.log.topicDefaults)).toBe(true);
  });

  it('refuses mistakes naming the key, the source and what is allowed', () => {
    expect(refusal(() => loadConfig({ file: configFile('mqtt:\n  prot: 1884\n') }))).toMatch(/unknown config key 'mqtt\.prot' in config file .*: allowed here are mqtt\.port/);
    expect(refusal(() => loadConfig({ file: configFile('mqtt:\n  port: "1884"\n') }))).toMatch(/config key 'mqtt\.port' in config file .* must be a number, got "1884"/);
    expect(refusal(() => loadConfig({ file: configFile('mqtt:\n  port: 70000\n') }))).toMatch(/'mqtt\.port' must be an integer from 0 to 65535, got 70000/);
    expect(refusal(() => loadConfig({ file: configFile('log:\n  topicDefaults:\n    partitions: 0\n') }))).toMatch(/'log\.topicDefaults\.partitions' must be an integer from 1 to 4096, got 0/);
    expect(refusal(() => loadConfig({ file: configFile("log:\n  retentionSchedule: 'hourly'\n") }))).toMatch(/'log\.retentionSchedule' must be a cron expression/);
    expect(refusal(() => loadConfig({ file: configFile('mqtt: [1, 2]\n') }))).toMatch(/'mqtt' in config file .* must be a mapping with keys port/);
    expect(refusal(() => loadConfig({ file: configFile('mqtt:\n  port: 1\n bad indentation') }))).toMatch(/is not valid YAML/);
    expect(refusal(() => loadConfig({ file: '/no/such/edgelog.yaml' }))).toMatch(/cannot read config file \/no\/such\/edgelog\.yaml: ENOENT/);
    expect(refusal(() => loadConfig({ env: { EDGELOG_MQTT_PORT: 'eighteen' } }))).toMatch(/environment variable EDGELOG_MQTT_PORT must be a number for 'mqtt\.port', got "eighteen"/);
    expect(refusal(() => loadConfig({ env: { EDGELOG_ALLOW_ANONYMOUS: 'sure' } }))).toMatch(/must be true or false/);
    expect(refusal(() => loadConfig({ flags: { 'mqtt.port': 'x' } }))).toMatch(/flag --mqtt-port must be a number/);
  });
  it('takes the admin token from the environment, and refuses a weak one without echoing it', () => {
    expect(loadConfig({ env: { EDGELOG_ADMIN_TOKEN: 'abcdefghijklmnop-0123' } }).admin.token).toBe('abcdefghijklmnop-0123');
    const weak = refusal(() => loadConfig({ env: { EDGELOG_ADMIN_TOKEN: 'secret' } }));
    expect(weak).toMatch(/config key 'admin\.token' must be 16 to 256 of a-z A-Z 0-9 \. _ ~ \+ \/ = -/);
    expect(weak).not.toContain('secret');
    expect(refusal(() => loadConfig({ file: configFile('admin:\n  token: "has spaces in it, sixteen+"\n') }))).toMatch(/'admin\.token' must be/);
    expect(refusal(() => loadConfig({ file: configFile('log:\n  commitIntervalMs: 5000\n') }))).toMatch(/'log\.commitIntervalMs' must be an integer from 0 to 1000, got 5000/);
    expect(refusal(() => loadConfig({ file: configFile('devices:\n  quietAfterMs: 10\n') }))).toMatch(/'devices\.quietAfterMs' must be an integer from 1000/);
  });

  it('takes declared topic rules and refuses a bad one naming its index and what is wrong', () => {
    const file = configFile("ingest:\n  topicRules:\n    - match: site/{site}/{deviceId}/{stream}\n      topic: '{site}.{stream}'\n      key: '{deviceId}'\n");
    expect(loadConfig({ file }).ingest.topicRules).toEqual([{ match: 'site/{site}/{deviceId}/{stream}', topic: '{site}.{stream}', key: '{deviceId}' }]);
    const bad = configFile("ingest:\n  topicRules:\n    - match: devices/{deviceId}/{stream}\n      topic: '{stream}'\n      key: '{deviceId}'\n    - match: site/{stream}\n      topic: '{stream}'\n      key: k\n");
    expect(refusal(() => loadConfig({ file: bad }))).toMatch(/config key 'ingest\.topicRules\[1\]': 'match' must capture a \{deviceId\} level/);
    expect(refusal(() => loadConfig({ file: configFile('ingest:\n  topicRules: {}\n') }))).toMatch(/'ingest\.topicRules' must be a list of 1 to 32 rules/);
  });
});

describe('the shipped examples', () => {
  it('config/streams.example.yaml loads: per-device one-minute aggregates and an alerts topic', () => {
    const config = loadConfig({ file: fileURLToPath(new URL('../config/streams.example.yaml', import.meta.url)) });
    expect(config.streams.map((p) => [p.name, p.to])).toEqual([
      ['climate-1m', 'climate-1m'],
      ['climate-alerts', 'alerts'],
    ]);
  });
});
