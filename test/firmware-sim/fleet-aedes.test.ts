import { createServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { Aedes } from 'aedes';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { PayloadError } from '../../devices/errors.js';
import { decodeReading } from '../../devices/payload-codec.js';
import { loadProfiles } from '../../devices/profile.js';
import type { DeviceProfile } from '../../devices/profile.js';
import { Fleet } from '../../firmware-sim/index.js';
import { startAedes } from '../helpers/aedes.js';
import { distinctCount, readingsByDevice } from '../helpers/readings.js';
import { waitFor } from '../helpers/wait.js';

const profiles = new Map(loadProfiles().map((p) => [p.name, p]));
const profile = (name: string): DeviceProfile => {
  const p = profiles.get(name);
  if (p === undefined) throw new Error(`no shipped profile ${name}`);
  return p;
};
// Fast reconnects keep the outage tests short; ramp fast so a test does not wait for its devices.
const quick = { rampPerSecond: 1_000, backoff: { initialMs: 100, maxMs: 400 }, drainTimeoutMs: 10_000 } as const;

describe('Fleet against an in-process aedes broker', () => {
  it('publishes every reading once at QoS 1, and the report counts what the subscriber received', async () => {
    const broker = await startAedes();
    const vibration = profile('motor-vibration'); // edgebin payloads
    const report = await new Fleet({ ...quick, gateway: broker.url, devices: 20, ratePerSecond: 20, durationS: 2, qos: 1, profiles: [vibration], seed: 11 }).run();
    expect(report.readings).toEqual({ generated: 800, sent: 800, acknowledged: 800, deadLettered: 0, rejected: 0, dropped: 0, droppedAfterSend: 0, unsent: 0 });
    expect(report.publishes.acknowledged).toBe(800);
    expect(report.connections.connects).toBe(20);
    expect(report.latency.count).toBe(800);
    await waitFor(() => broker.received.length >= report.publishes.acknowledged, 'the subscriber to receive every acknowledged publish');
    expect(broker.received.length).toBe(report.publishes.acknowledged);
    const byDevice = readingsByDevice(broker.received, vibration);
    expect(byDevice.size).toBe(20);
    for (const [device, got] of byDevice) {
      expect(got.duplicates, device).toBe(0);
      expect([...got.seqs].sort((a, b) => a - b), device).toEqual(Array.from({ length: 40 }, (_, i) => i));
    }
  });

  it('counts duplicated and malformed publishes injected on purpose exactly (QoS 0)', async () => {
    const broker = await startAedes();
    const env = profile('environment-sensor');
    const report = await new Fleet({
      ...quick, gateway: broker.url, devices: 10, ratePerSecond: 50, durationS: 1, qos: 0, profiles: [env], seed: 5,
      faults: { duplicate: 0.1, malformed: 0.05 },
    }).run();
    expect(report.publishes.duplicatedOnPurpose).toBeGreaterThan(0);
    expect(report.publishes.malformedOnPurpose).toBeGreaterThan(0);
    await waitFor(() => broker.received.length >= report.publishes.total, 'every QoS 0 publish to arrive over loopback');
    let malformed = 0;
    const valid = broker.received.filter(({ topic, payload }) => {
      try {
        decodeReading(env, topic.split('/')[2] ?? '', payload);
        return true;
      } catch (error) {
        expect(error).toBeInstanceOf(PayloadError);
        malformed++;
        return false;
      }
    });
    expect(malformed).toBe(report.publishes.malformedOnPurpose);
    const byDevice = readingsByDevice(valid, env);
    expect(distinctCount(byDevice)).toBe(report.readings.generated);
    expect([...byDevice.values()].reduce((n, d) => n + d.duplicates, 0)).toBe(report.publishes.duplicatedOnPurpose);
    expect(report.readings.generated).toBe(500);
  });

  it('makes the same readings from the same seed, and different ones from another seed', async () => {
    const broker = await startAedes();
    const run = async (seed: number): Promise<string[]> => {
      broker.received.length = 0;
      const report = await new Fleet({
        ...quick, gateway: broker.url, devices: 6, ratePerSecond: 20, durationS: 1, seed, startTimeMs: Date.UTC(2026, 0, 31, 8),
        faults: { clockSkewMs: 30_000 },
      }).run();
      await waitFor(() => broker.received.length >= report.publishes.acknowledged, 'every reading to arrive');
      return broker.received.map((m) => `${m.topic} ${m.payload.toString('hex')}`).sort();
    };
    const first = await run(1234);
    const again = await run(1234);
    const other = await run(4321);
    expect(first).toHaveLength(120);
    expect(again).toEqual(first);
    expect(other).toHaveLength(120);
    expect(other.filter((line) => first.includes(line)).length).toBeLessThan(5);
  });

  it('buffers while the broker is away and delivers every reading, oldest first, when it is back', async () => {
    const broker = await startAedes();
    const env = profile('environment-sensor');
    const fleet = new Fleet({ ...quick, gateway: broker.url, devices: 10, ratePerSecond: 20, durationS: 4, profiles: [env], seed: 3 });
    fleet.start();
    await waitFor(() => broker.received.length >= 100, 'the fleet to publish');
    await broker.stopListening();
    await waitFor(() => fleet.snapshot().connected === 0, 'every device to notice the broker is gone');
    await waitFor(() => fleet.snapshot().buffered >= 10 * 10, 'every device to buffer about half a second of readings');
    expect(fleet.snapshot().errors).toBeGreaterThan(0);
    await broker.startListening();
    const report = await fleet.done();
    expect(report.readings.dropped).toBe(0);
    expect(report.readings.acknowledged).toBe(report.readings.generated);
    expect(report.readings.generated).toBe(800);
    await waitFor(() => broker.received.length >= report.publishes.acknowledged, 'the subscriber to receive every acknowledged publish');
    const byDevice = readingsByDevice(broker.received, env);
    for (const [device, got] of byDevice) expect(got.seqs.size, device).toBe(80);
    // Oldest first: per device, the seqs arrive in increasing order apart from resends of in-flight readings.
    const lastSeq = new Map<string, number>();
    let outOfOrder = 0;
    for (const { topic, payload } of broker.received) {
      const device = topic.split('/')[1] ?? '';
      const seq = decodeReading(env, topic.split('/')[2] ?? '', payload).seq;
      if (seq < (lastSeq.get(device) ?? -1)) outOfOrder++;
      lastSeq.set(device, Math.max(seq, lastSeq.get(device) ?? -1));
    }
    expect(outOfOrder).toBeLessThanOrEqual(report.publishes.resent);
  });

  it('speaks MQTT over WebSocket (ws://HOST:PORT/mqtt)', async () => {
    const broker = await Aedes.createBroker();
    const http = createServer();
    const wss = new WebSocketServer({ server: http, path: '/mqtt' });
    wss.on('connection', (ws) => broker.handle(createWebSocketStream(ws) as Duplex as Parameters<typeof broker.handle>[0]));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    onTestFinished(async () => {
      wss.close();
      await new Promise((resolve) => http.close(resolve));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    });
    const address = http.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    const report = await new Fleet({ ...quick, gateway: `ws://127.0.0.1:${address.port}/mqtt`, devices: 5, ratePerSecond: 10, durationS: 1 }).run();
    expect(report.readings).toMatchObject({ generated: 50, acknowledged: 50, dropped: 0 });
  });
});
