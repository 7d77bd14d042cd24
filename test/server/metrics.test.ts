import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { encodeReading } from '../../devices/payload-codec.js';
import { loadProfiles } from '../../devices/profile.js';
import type { Gateway } from '../../src/gateway.js';
import { bridgeConfigFile } from '../bridges/bridged-gateway.js';
import { startGateway, writeRegistry } from '../helpers/gateway.js';
import { freePort } from '../helpers/loopback.js';
import { waitFor } from '../helpers/wait.js';

/** One sample of the text format: `name{label="value",...} value`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Scrape {
  status: number;
  contentType: string | null;
  text: string;
  samples: Sample[];
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus's text format (0.0.4): comments skipped, every other line must be a sample. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (match === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const raw = match[3]!;
    samples.push({ name: match[1]!, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return samples;
}

async function scrape(gateway: Gateway, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${gateway.ports.http}/metrics`, { headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), text, samples: res.ok ? parseMetrics(text) : [] };
}

/** The samples of `name` whose labels include `labels`. */
function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The one sample of `name` with `labels`; fails when there is none or more than one. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = find(samples, name, labels);
  if (found.length !== 1) throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

function sum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return find(samples, name, labels).reduce((total, s) => total + s.value, 0);
}

async function connect(port: number, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...options });
  onTestFinished(() => client.endAsync(true));
  return client;
}

const environment = loadProfiles().find((p) => p.name === 'environment-sensor')!;
const climate = (seq: number) => encodeReading(environment, 'climate', { seq, ts: 1_769_846_400_000 + seq, values: { temperature: 21.5, humidity: 45, pressure: 1013 } });

describe('/metrics', () => {
  it('counts stored readings, append latency, partitions, connections, devices, lag and a disconnected bridge', async () => {
    const closedPort = await freePort();
    const configFile = bridgeConfigFile([
      { name: 'central', type: 'nats', topics: ['readings'], reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, nats: { servers: `nats://127.0.0.1:${closedPort}`, connectTimeoutMs: 500 } },
    ]);
    const gateway = await startGateway({}, { configFile });
    const N = 30;
    const devices = ['sensor-1', 'sensor-2', 'sensor-3'];
    const client = await connect(gateway.ports.mqtt, { clientId: 'metrics-test' });
    // QoS 1 and awaited: each PUBACK means the reading is durable, so the counters include it.
    await Promise.all(Array.from({ length: N }, (_, i) => client.publishAsync(`devices/${devices[i % devices.length]}/readings`, `{"n":${i}}`, { qos: 1 })));
    await gateway.log.commitOffsets('g1', [{ topic: 'readings', partition: 0, offset: 0 }]);

    const m = await scrape(gateway);
    expect(m.status).toBe(200);
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8$/);
    const s = m.samples;
    expect(value(s, 'edgelog_ingest_readings_total', { result: 'stored' })).toBe(N);
    expect(value(s, 'edgelog_ingest_readings_total', { result: 'deadlettered' })).toBe(0);

    // The append histogram: one observation per append (at least one per reading), buckets cumulative and ending at the count.
    const count = value(s, 'edgelog_append_duration_seconds_count');
    expect(count).toBeGreaterThanOrEqual(N);
    const buckets = find(s, 'edgelog_append_duration_seconds_bucket')
      .map((b) => ({ le: b.labels['le'] === '+Inf' ? Infinity : Number(b.labels['le']), value: b.value }))
      .sort((a, b) => a.le - b.le);
    expect(buckets.length).toBeGreaterThan(5);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(buckets.at(-1)).toEqual({ le: Infinity, value: count });
    expect(value(s, 'edgelog_append_duration_seconds_sum')).toBeGreaterThan(0);

    // Every partition of the topic, summing to the readings stored.
    const partitions = gateway.log.describeTopic('readings').partitions;
    const watermarks = find(s, 'edgelog_partition_high_watermark', { topic: 'readings' });
    expect(watermarks.map((w) => Number(w.labels['partition'])).sort((a, b) => a - b)).toEqual(partitions.map((p) => p.partition));
    expect(sum(s, 'edgelog_partition_high_watermark', { topic: 'readings' })).toBe(N);
    expect(sum(s, 'edgelog_partition_bytes', { topic: 'readings' })).toBe(partitions.reduce((total, p) => total + p.bytes, 0));

    expect(value(s, 'edgelog_connections', { kind: 'mqtt' })).toBe(1);
    expect(value(s, 'edgelog_devices', { state: 'seen' })).toBe(devices.length);
    expect(value(s, 'edgelog_devices', { state: 'registered' })).toBe(0);
    expect(value(s, 'edgelog_devices', { state: 'quiet' })).toBe(0);
    expect(value(s, 'edgelog_deadletter_records')).toBe(0);
    expect(value(s, 'edgelog_log_full')).toBe(0);

    // g1 committed offset 0 of partition 0: it lags by everything partition 0 holds.
    expect(value(s, 'edgelog_consumer_group_lag', { group: 'g1', topic: 'readings', partition: '0' })).toBe(partitions[0]!.highWatermark);
    expect(value(s, 'edgelog_consumer_group_members', { group: 'g1' })).toBe(0);

    // The bridge's upstream does not listen: it is not connected and holds every reading of its topic.
    expect(value(s, 'edgelog_bridge_connected', { bridge: 'central' })).toBe(0);
    expect(value(s, 'edgelog_bridge_backlog_records', { bridge: 'central' })).toBe(N);
    expect(value(s, 'edgelog_bridge_records_total', { bridge: 'central', event: 'acked' })).toBe(0);

    // prom-client's process and Node.js metrics.
    expect(value(s, 'process_resident_memory_bytes')).toBeGreaterThan(1024 * 1024);
    expect(find(s, 'nodejs_eventloop_lag_seconds')).toHaveLength(1);

    // More committed: the lag follows.
    const half = Math.floor(partitions[0]!.highWatermark / 2);
    await gateway.log.commitOffsets('g1', [{ topic: 'readings', partition: 0, offset: half }]);
    expect(value((await scrape(gateway)).samples, 'edgelog_consumer_group_lag', { group: 'g1', topic: 'readings', partition: '0' })).toBe(partitions[0]!.highWatermark - half);

    // The client leaves: the connection gauge follows.
    await client.endAsync();
    await waitFor(async () => value((await scrape(gateway)).samples, 'edgelog_connections', { kind: 'mqtt' }) === 0, 'the MQTT connection gauge to fall to 0');
  });

  it('counts a dead letter, the registered devices and the never-seen ones as quiet', async () => {
    const registryFile = await writeRegistry([
      { id: 'env-0001', profile: 'environment-sensor', password: 'pw-env-0001-secret' },
      { id: 'env-0002', profile: 'environment-sensor', password: 'pw-env-0002-secret' },
    ]);
    const gateway = await startGateway({ 'devices.registryFile': registryFile });
    const client = await connect(gateway.ports.mqtt, { clientId: 'env-0001', username: 'env-0001', password: 'pw-env-0001-secret' });
    await client.publishAsync('devices/env-0001/climate', climate(1), { qos: 1 });
    // Outside the profile's range: stored in the dead-letter topic with the reason, and acked.
    await client.publishAsync('devices/env-0001/climate', '{"seq":2,"ts":1769846400002,"temperature":500,"humidity":45,"pressure":1013}', { qos: 1 });

    const s = (await scrape(gateway)).samples;
    expect(value(s, 'edgelog_ingest_readings_total', { result: 'stored' })).toBe(1);
    expect(value(s, 'edgelog_ingest_readings_total', { result: 'deadlettered' })).toBe(1);
    expect(value(s, 'edgelog_deadletter_records')).toBe(1);
    expect(value(s, 'edgelog_devices', { state: 'registered' })).toBe(2);
    expect(value(s, 'edgelog_devices', { state: 'seen' })).toBe(1);
    // env-0002 is registered and has sent nothing: quiet, as the overview and /api/devices count it.
    expect(value(s, 'edgelog_devices', { state: 'quiet' })).toBe(1);
  });

  it('needs the admin token when one is configured', async () => {
    const token = 'metrics-admin-token-0123456789';
    const gateway = await startGateway({ 'admin.token': token });
    const refused = await scrape(gateway);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'AUTH_FAILED' } });
    expect(refused.text).not.toContain('edgelog_');
    expect((await scrape(gateway, { authorization: `Bearer ${token}x` })).status).toBe(401);
    const admitted = await scrape(gateway, { authorization: `Bearer ${token}` });
    expect(admitted.status).toBe(200);
    expect(value(admitted.samples, 'edgelog_ingest_readings_total', { result: 'stored' })).toBe(0);
  });

  it('answers HEAD without a body and refuses other methods', async () => {
    const gateway = await startGateway();
    const head = await fetch(`http://127.0.0.1:${gateway.ports.http}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const post = await fetch(`http://127.0.0.1:${gateway.ports.http}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });
});
