import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { encodeReading } from '../../devices/payload-codec.js';
import { loadProfiles } from '../../devices/profile.js';
import type { Gateway } from '../../src/gateway.js';
import { MAX_DEVICES_PAGE } from '../../src/server/api-requests.js';
import { startGateway, writeRegistry } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

interface Reply {
  status: number;
  // any: the shapes differ per route, and each test reads the fields it checks.
  json: any;
}

async function get(gateway: Gateway, path: string): Promise<Reply> {
  const res = await fetch(`http://127.0.0.1:${gateway.ports.http}${path}`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
  expect(text).not.toMatch(/\n\s+at |\.ts:\d+/);
  return { status: res.status, json: JSON.parse(text) };
}

/** The ids on one answer of GET /api/devices. */
async function ids(gateway: Gateway, query: string): Promise<string[]> {
  const reply = await get(gateway, `/api/devices${query}`);
  expect(reply.status).toBe(200);
  return (reply.json.devices as Array<{ deviceId: string }>).map((d) => d.deviceId);
}

const environment = loadProfiles().find((p) => p.name === 'environment-sensor')!;
let seq = 0;
const climate = () => {
  seq++;
  return encodeReading(environment, 'climate', { seq, ts: 1_769_846_400_000 + seq, values: { temperature: 21.5, humidity: 45, pressure: 1013 } });
};

const DEVICES = [
  { id: 'env-a', profile: 'environment-sensor', password: 'pw-env-a-secret' },
  { id: 'env-b', profile: 'environment-sensor', password: 'pw-env-b-secret' },
  { id: 'env-never', profile: 'environment-sensor', password: 'pw-env-never-secret' },
];

/** A gateway with the registry above, a 3 s quiet threshold (long enough that a loaded machine answers a query before an active device turns quiet), and anonymous clients allowed too (seen but not registered). */
async function devicesGateway(): Promise<Gateway> {
  return startGateway({ 'devices.registryFile': await writeRegistry(DEVICES), 'devices.quietAfterMs': '3000', allowAnonymous: true });
}

async function device(gateway: Gateway, id: string): Promise<mqtt.MqttClient> {
  const credentials = DEVICES.find((d) => d.id === id);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.ports.mqtt}`, {
    clientId: id,
    reconnectPeriod: 0,
    ...(credentials === undefined ? {} : { username: id, password: credentials.password }),
  });
  onTestFinished(() => client.endAsync(true));
  return client;
}

/** Publishes one valid climate reading at QoS 1 and waits for its PUBACK (stored). */
async function publish(client: mqtt.MqttClient, id: string): Promise<void> {
  await client.publishAsync(`devices/${id}/climate`, climate(), { qos: 1 });
}

describe('GET /api/devices', () => {
  it('lists active, quiet and never-seen devices, filters by state and pages through them', async () => {
    const gateway = await devicesGateway();
    const [a, b] = await Promise.all([device(gateway, 'env-a'), device(gateway, 'env-b')]);
    await Promise.all([publish(a, 'env-a'), publish(b, 'env-b'), publish(a, 'env-a')]);

    expect(await ids(gateway, '?state=active')).toEqual(['env-a', 'env-b']);
    const all = await get(gateway, '/api/devices');
    expect(all.json).toMatchObject({ total: 3, quietAfterMs: 3000, next: null });
    expect(all.json.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual(['env-a', 'env-b', 'env-never']);
    expect(all.json.devices[0]).toMatchObject({ deviceId: 'env-a', readings: 2, deadLetters: 0, refusals: 0, quiet: false, lastError: null });
    expect(all.json.devices[0].lastSeenMs).toBeGreaterThan(Date.now() - 60_000);
    expect(all.json.devices[0].ratePerSecond).toBeGreaterThan(0);
    expect(all.json.devices[2]).toEqual({
      deviceId: 'env-never',
      firstSeenMs: null,
      lastSeenMs: null,
      readings: 0,
      deadLetters: 0,
      refusals: 0,
      ratePerSecond: 0,
      lastError: null,
      quiet: true,
    });

    // env-b stops; after quietAfterMs it is listed as quiet (bounded wait, the threshold is 3 s).
    await waitFor(async () => (await ids(gateway, '?state=quiet')).includes('env-b'), 'env-b to be listed as quiet', 10_000);
    // env-a speaks again: active, while env-b stays quiet.
    await publish(a, 'env-a');
    expect(await ids(gateway, '?state=quiet')).toEqual(['env-b', 'env-never']);
    expect(await ids(gateway, '?state=active')).toEqual(['env-a']);

    // An anonymous client's device is seen, not registered.
    const stranger = await device(gateway, 'stranger');
    await publish(stranger, 'stranger');
    expect(await ids(gateway, '?state=all')).toEqual(['env-a', 'env-b', 'env-never', 'stranger']);

    // Pages of one, each starting after the previous page's last id; next is null on the last page.
    const walked: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const reply: Reply = await get(gateway, `/api/devices?limit=1${after === null ? '' : `&after=${encodeURIComponent(after)}`}`);
      expect(reply.status).toBe(200);
      expect(reply.json.devices).toHaveLength(1);
      expect(reply.json.total).toBe(4);
      walked.push(reply.json.devices[0].deviceId);
      after = reply.json.next;
      if (after === null) break;
      expect(after).toBe(walked.at(-1));
    }
    expect(walked).toEqual(['env-a', 'env-b', 'env-never', 'stranger']);
    const pageOfTwo = await get(gateway, '/api/devices?limit=2&after=env-a');
    expect(pageOfTwo.json.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual(['env-b', 'env-never']);
    expect(pageOfTwo.json.next).toBe('env-never');
    // After the last id, or after an id between two: the page goes on from there.
    expect(await ids(gateway, '?after=stranger')).toEqual([]);
    expect(await ids(gateway, '?after=env-c')).toEqual(['env-never', 'stranger']);
    expect(await ids(gateway, '?state=quiet&limit=1')).toEqual(['env-b']);
  });

  it('refuses a bad state or limit with 400 INVALID_ARGUMENT naming the parameter and what is allowed', async () => {
    const gateway = await devicesGateway();
    const state = await get(gateway, '/api/devices?state=sleeping');
    expect(state).toEqual({
      status: 400,
      json: { error: { code: 'INVALID_ARGUMENT', message: `query parameter 'state' must be one of all, quiet, active, got "sleeping"`, retryable: false } },
    });
    for (const limit of ['0', 'ten', '-1', '1.5', String(MAX_DEVICES_PAGE + 1), '']) {
      const reply = await get(gateway, `/api/devices?limit=${limit}`);
      expect(reply.status, limit).toBe(400);
      expect(reply.json.error).toMatchObject({ code: 'INVALID_ARGUMENT', message: `query parameter 'limit' must be an integer from 1 to ${MAX_DEVICES_PAGE}, got ${JSON.stringify(limit)}` });
    }
    expect((await get(gateway, `/api/devices?limit=${MAX_DEVICES_PAGE}`)).status).toBe(200);
  });
});

describe('GET /api/devices/{id}', () => {
  it('describes a seen or registered device with its registered flag; an unknown one is 404 UNKNOWN_DEVICE', async () => {
    const gateway = await devicesGateway();
    const a = await device(gateway, 'env-a');
    await publish(a, 'env-a');
    const stranger = await device(gateway, 'stranger');
    await publish(stranger, 'stranger');

    const seen = await get(gateway, '/api/devices/env-a');
    expect(seen.status).toBe(200);
    expect(seen.json).toMatchObject({ deviceId: 'env-a', registered: true, readings: 1, quiet: false });
    expect(await get(gateway, '/api/devices/env-never')).toMatchObject({ status: 200, json: { deviceId: 'env-never', registered: true, lastSeenMs: null, quiet: true } });
    expect(await get(gateway, '/api/devices/stranger')).toMatchObject({ status: 200, json: { deviceId: 'stranger', registered: false, readings: 1 } });

    const unknown = await get(gateway, '/api/devices/nobody');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatchObject({ code: 'UNKNOWN_DEVICE', message: expect.stringMatching(/^unknown device "nobody": it is not registered/) });
    expect((await get(gateway, '/api/devices/%zz')).json.error.code).toBe('INVALID_ARGUMENT');
  });
});

describe('GET /api/overview', () => {
  it('shows topics, quiet devices first, the latest dead letters with their reasons, the disk, and a growing rate history', async () => {
    const gateway = await devicesGateway();
    const [a, b] = await Promise.all([device(gateway, 'env-a'), device(gateway, 'env-b')]);
    await publish(b, 'env-b');
    await waitFor(async () => (await ids(gateway, '?state=quiet')).includes('env-b'), 'env-b to be quiet', 10_000);
    await publish(a, 'env-a');
    await a.publishAsync('devices/env-a/climate', '{"seq":99,"ts":1769846400099,"temperature":500,"humidity":45,"pressure":1013}', { qos: 1 });

    const first = await get(gateway, '/api/overview');
    expect(first.status).toBe(200);
    const o = first.json;
    expect(o.topics.map((t: { name: string }) => t.name).sort()).toEqual(['_deadletter', 'climate']);
    expect(o.topics.find((t: { name: string }) => t.name === 'climate')).toMatchObject({ records: 2 });
    // Never seen, then quiet (longest silent first), then active (newest first).
    expect(o.devices.listed.map((d: { deviceId: string }) => d.deviceId)).toEqual(['env-never', 'env-b', 'env-a']);
    expect(o.devices).toMatchObject({ registered: 3, seen: 2, quiet: 2, quietAfterMs: 3000, forgotten: 0 });
    expect(o.devices.listed[2]).toMatchObject({ deviceId: 'env-a', readings: 1, deadLetters: 1, lastError: { code: 'INVALID_PAYLOAD', reason: expect.stringMatching(/'temperature' is 500/) } });
    expect(o.deadLetters.total).toBe(1);
    expect(o.deadLetters.latest).toEqual([
      { timestamp: expect.any(Number), deviceId: 'env-a', originalTopic: 'climate', reason: expect.stringMatching(/'temperature' is 500, outside \[-40, 85\]/) },
    ]);
    expect(o.disk).toEqual({ storedBytes: expect.any(Number), maxLogBytes: expect.any(Number), freeDiskBytes: expect.any(Number), minFreeDiskBytes: expect.any(Number) });
    expect(o.disk.storedBytes).toBeGreaterThan(0);
    expect(o.disk.freeDiskBytes).toBeGreaterThan(0);
    expect(o.ingest).toMatchObject({ stored: 2, deadLettered: 1, connections: { mqtt: 2 } });
    expect(o.gateway).toMatchObject({ tokenRequired: false, ports: { mqtt: gateway.ports.mqtt, http: gateway.ports.http } });

    // The sampler adds a point a second.
    const before = o.rateHistory.length as number;
    await waitFor(async () => (await get(gateway, '/api/overview')).json.rateHistory.length > before, 'the rate history to grow', 5_000);
    const later = (await get(gateway, '/api/overview')).json;
    expect(later.rateHistory.at(-1).topics).toHaveProperty('climate');
    expect(later.rateHistory.at(-1).atMs).toBeGreaterThan(o.rateHistory.at(-1)?.atMs ?? 0);
  });
});
