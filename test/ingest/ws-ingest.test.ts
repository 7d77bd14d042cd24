import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { hashSecret } from '../../devices/credentials.js';
import { decodeReading, encodeReading } from '../../devices/payload-codec.js';
import { loadProfiles, type DeviceProfile } from '../../devices/profile.js';
import { loadConfig } from '../../src/config.js';
import { Gateway } from '../../src/gateway.js';
import { CommitLog } from '../../src/index.js';
import { AUTH_FAILURE_BURST } from '../../src/ingest/auth-throttle.js';
import { MAX_READINGS_PER_FRAME } from '../../src/ingest/ws-frames.js';
import { MAX_PENDING_READINGS } from '../../src/ingest/ws-connection.js';
import { WsIngest } from '../../src/ingest/ws-ingest.js';
import { spawnTs } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { IngestClient, type Answer, type Result } from '../helpers/ws-ingest-client.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const profiles = new Map(loadProfiles().map((p) => [p.name, p]));
const env = profiles.get('environment-sensor') as DeviceProfile;
const vibration = profiles.get('motor-vibration') as DeviceProfile;

const TOKENS = { 'env-0001': 'token-env-0001-xxxxxxxx', 'vib-0001': 'token-vib-0001-xxxxxxxx' } as const;
let registryYaml = '';
beforeAll(async () => {
  // ln=10: the cheapest cost the registry accepts, so auth is fast in tests.
  const [envHash, vibHash] = await Promise.all([hashSecret(TOKENS['env-0001'], { logN: 10 }), hashSecret(TOKENS['vib-0001'], { logN: 10 })]);
  registryYaml = [
    'devices:',
    `  - { id: env-0001, profile: environment-sensor, tokenHash: '${envHash}' }`,
    `  - { id: vib-0001, profile: motor-vibration, tokenHash: '${vibHash}' }`,
    '',
  ].join('\n');
});

interface StartOptions {
  registry?: boolean;
  flags?: Record<string, string>;
  lines?: string[];
}

async function startGateway(opts: StartOptions = {}): Promise<Gateway> {
  const dir = tempDir();
  const flags: Record<string, string> = { dataDir: dir, 'mqtt.port': '0', 'http.port': '0', ...opts.flags };
  if (opts.registry) {
    flags['devices.registryFile'] = join(dir, 'devices.yaml');
    writeFileSync(flags['devices.registryFile'], registryYaml);
  }
  const lines = opts.lines;
  const logger = lines ? pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }) : pino({ level: 'silent' });
  const gateway = await Gateway.start(loadConfig({ flags: { ...flags, dataDir: join(dir, 'data') } }), logger);
  onTestFinished(() => gateway.close());
  return gateway;
}

let seq = 0;
function climate(values: Partial<Record<'temperature' | 'humidity' | 'pressure', number>> = {}): Record<string, number> {
  const payload = encodeReading(env, 'climate', { seq: seq++, ts: Date.now(), values: { temperature: 21.5, humidity: 40, pressure: 1013, ...values } }, 'json');
  return JSON.parse(payload.toString()) as Record<string, number>;
}

function stored(result: Result | undefined): { topic: string; partition: number; offset: number; deadLetter?: string } {
  if (result === undefined || 'error' in result) throw new Error(`expected a stored reading, got ${JSON.stringify(result)}`);
  return result;
}

describe('WebSocket ingest at /ingest', () => {
  it('acks a reading with its partition and offset once it is in the log, with headers', async () => {
    const gateway = await startGateway();
    const { client, answer } = await IngestClient.authed(gateway.ports.http, 'env-0009');
    expect(answer).toMatchObject({ type: 'auth-ok', deviceId: 'env-0009', anonymous: true, limits: { maxReadingsPerFrame: MAX_READINGS_PER_FRAME } });
    const ack = await client.request({ type: 'publish', id: 'c-1', stream: 'climate', payload: { c: 21.5, note: 'ünïcode' } });
    expect(ack).toEqual({ type: 'ack', id: 'c-1', results: [{ topic: 'climate', partition: 0, offset: 0 }] });
    // The ack has arrived: the record must already be readable (and so committed).
    const [record] = gateway.log.read('climate', 0, 0).records;
    expect(record).toMatchObject({ offset: 0, key: 'env-0009' });
    expect(record!.value.toString()).toBe('{"c":21.5,"note":"ünïcode"}');
    expect(record!.headers).toMatchObject({ 'device-id': 'env-0009', 'content-type': 'application/json' });
    expect(Number(record!.headers!['received-at'])).toBeGreaterThan(Date.now() - 60_000);
    expect(record!.headers).not.toHaveProperty('profile');
  });

  it('stores a registered device readings with its profile, and edgebin sent as payloadBase64', async () => {
    const gateway = await startGateway({ registry: true });
    const { client, answer } = await IngestClient.authed(gateway.ports.http, 'vib-0001', TOKENS['vib-0001']);
    expect(answer).toMatchObject({ type: 'auth-ok', deviceId: 'vib-0001', anonymous: false });
    const stream = vibration.streams[0]!;
    const values = Object.fromEntries(stream.fields.map((f) => [f.name, Math.max(f.min, 0)]));
    const bin = encodeReading(vibration, stream.name, { seq: 1, ts: Date.now(), values }, 'edgebin');
    const ack = await client.request({ type: 'publish', id: 1, stream: stream.name, payloadBase64: bin.toString('base64') });
    expect(ack).toMatchObject({ type: 'ack', id: 1, results: [{ topic: stream.name, partition: 0, offset: 0 }] });
    const [record] = gateway.log.read(stream.name, 0, 0).records;
    expect(record!.value).toEqual(bin);
    expect(record!.headers).toMatchObject({ 'device-id': 'vib-0001', profile: 'motor-vibration', 'content-type': 'application/vnd.edgelog.edgebin' });
  });

  it('acks a batch with one result per reading, in order, across streams', async () => {
    const gateway = await startGateway({ registry: true });
    const { client } = await IngestClient.authed(gateway.ports.http, 'env-0001', TOKENS['env-0001']);
    const status = JSON.parse(encodeReading(env, 'status', { seq: 99, ts: Date.now(), values: { battery: 80, rssi: -60 } }).toString()) as object;
    const ack = await client.request({
      type: 'publish',
      id: 'b-1',
      readings: [
        { stream: 'climate', payload: climate() },
        { stream: 'status', payload: status },
        { stream: 'climate', payload: climate() },
      ],
    });
    expect(ack).toEqual({
      type: 'ack',
      id: 'b-1',
      results: [
        { topic: 'climate', partition: 0, offset: 0 },
        { topic: 'status', partition: 0, offset: 0 },
        { topic: 'climate', partition: 0, offset: 1 },
      ],
    });
  });

  it('stores a registered device bad payload in the dead-letter topic and acks it with the reason', async () => {
    const gateway = await startGateway({ registry: true });
    const { client } = await IngestClient.authed(gateway.ports.http, 'env-0001', TOKENS['env-0001']);
    const ack = await client.request({ type: 'publish', id: 'd', readings: [{ stream: 'climate', payload: climate({ temperature: 500 }) }, { stream: 'climate', payload: climate() }] });
    expect(ack.type).toBe('ack');
    const [dead, good] = ack.results!.map(stored);
    expect(dead).toMatchObject({ topic: '_deadletter', partition: 0, offset: 0, deadLetter: expect.stringMatching(/'temperature' is 500, outside \[-40, 85\]/) });
    expect(good).toEqual({ topic: 'climate', partition: 0, offset: 0 });
    const [record] = gateway.log.read('_deadletter', 0, 0).records;
    expect(record!.headers).toMatchObject({ 'device-id': 'env-0001', profile: 'environment-sensor', 'original-topic': 'climate', 'deadletter-reason': dead!.deadLetter });
  });

  it('keeps every device in order in its partition under pipelined load from several connections', async () => {
    const gateway = await startGateway({ flags: { 'log.topicDefaults.partitions': '4' } });
    const devices = ['load-1', 'load-2', 'load-3', 'load-4', 'load-5', 'load-6'];
    const perDevice = 1_000;
    const acks = new Map<string, Map<number, Result>>();
    await Promise.all(
      devices.map(async (deviceId) => {
        const { client } = await IngestClient.authed(gateway.ports.http, deviceId);
        const sentSeqs: number[][] = [];
        // Without waiting: single frames and batches of 1 to 50 readings, mixed.
        for (let n = 0; n < perDevice; ) {
          const size = Math.min(perDevice - n, n % 7 === 0 ? 1 : 1 + (n % 50));
          const seqs = Array.from({ length: size }, (_, i) => n + i);
          sentSeqs.push(seqs);
          if (size === 1) client.send({ type: 'publish', id: `${deviceId}/${n}`, stream: 'load', payload: { seq: n } });
          else client.send({ type: 'publish', id: `${deviceId}/${n}`, readings: seqs.map((s) => ({ stream: 'load', payload: { seq: s } })) });
          n += size;
        }
        await client.waitForAnswers(1 + sentSeqs.length);
        const mine = new Map<number, Result>();
        client.answers.slice(1).forEach((answer, i) => {
          // Answers come in frame order; each carries its frame's id.
          expect(answer).toMatchObject({ type: 'ack', id: `${deviceId}/${sentSeqs[i]![0]}` });
          answer.results!.forEach((r, j) => mine.set(sentSeqs[i]![j]!, stored(r)));
        });
        acks.set(deviceId, mine);
      }),
    );
    const lastSeq = new Map<string, number>();
    let total = 0;
    let partitionsUsed = 0;
    for (let p = 0; p < 4; p++) {
      const { records } = gateway.log.read('load', p, 0, { maxRecords: 10_000 });
      records.forEach((r, i) => {
        expect(r.offset).toBe(i); // dense from 0
        const device = r.key as string;
        const s = (JSON.parse(r.value.toString()) as { seq: number }).seq;
        expect(s, device).toBeGreaterThan(lastSeq.get(device) ?? -1);
        lastSeq.set(device, s);
        expect(acks.get(device)!.get(s)).toEqual({ topic: 'load', partition: p, offset: r.offset });
      });
      total += records.length;
      if (records.length > 0) partitionsUsed += 1;
    }
    expect(total).toBe(devices.length * perDevice);
    expect(partitionsUsed).toBeGreaterThan(1);
    for (const d of devices) expect(lastSeq.get(d)).toBe(perDevice - 1);
  });

  describe('authentication', () => {
    it('accepts a registered device with its token, and never logs the token', async () => {
      const lines: string[] = [];
      const gateway = await startGateway({ registry: true, lines });
      const { answer } = await IngestClient.authed(gateway.ports.http, 'env-0001', TOKENS['env-0001']);
      expect(answer).toEqual({ type: 'auth-ok', deviceId: 'env-0001', anonymous: false, limits: { maxReadingsPerFrame: 1000, maxFrameBytes: expect.any(Number) } });
      const refused = await IngestClient.authed(gateway.ports.http, 'env-0001', 'wrong-token-123456');
      expect(refused.answer).toMatchObject({ type: 'error', code: 'AUTH_FAILED' });
      expect(await refused.client.closed).toEqual({ code: 1008, reason: 'AUTH_FAILED' });
      expect(lines.join('')).not.toContain(TOKENS['env-0001']);
      expect(lines.join('')).not.toContain('wrong-token-123456');
      const warn = lines.map((l) => JSON.parse(l) as { level: number; msg: string; reason?: string; deviceId?: string }).filter((l) => l.level === 40 && /connection refused/.test(l.msg));
      expect(warn).toEqual([expect.objectContaining({ deviceId: 'env-0001', reason: 'wrong token' })]);
    });

    it.each([
      ['a wrong token', 'env-0001', 'not-the-token-xxxx', /device id or token not accepted \(unknown device or wrong token\)/],
      ['an unknown device', 'env-9999', 'some-token-xxxxxxx', /device id or token not accepted \(unknown device or wrong token\)/],
      ['no token where one is required', 'env-9999', undefined, /this gateway requires a token: the auth frame is \{"type":"auth"/],
      ['a registered device without a token', 'env-0001', undefined, /this gateway requires a token/],
    ])('refuses %s with AUTH_FAILED and closes with 1008', async (_what, deviceId, token, message) => {
      const gateway = await startGateway({ registry: true });
      const { client, answer } = await IngestClient.authed(gateway.ports.http, deviceId, token);
      expect(answer).toEqual({ type: 'error', code: 'AUTH_FAILED', message: expect.stringMatching(message), retryable: false });
      expect(await client.closed).toEqual({ code: 1008, reason: 'AUTH_FAILED' });
      expect(gateway.intake.stats().refused['AUTH_FAILED']).toBe(1);
    });

    it('throttles a source after repeated failures, like MQTT: refused without a check, even with the right token', async () => {
      const gateway = await startGateway({ registry: true });
      for (let i = 0; i < AUTH_FAILURE_BURST; i++) {
        const { answer } = await IngestClient.authed(gateway.ports.http, 'env-0001', `guess-${i}-xxxxxxxxxx`);
        expect(answer).toMatchObject({ type: 'error', code: 'AUTH_FAILED', message: expect.stringMatching(/not accepted/) });
      }
      const { answer } = await IngestClient.authed(gateway.ports.http, 'env-0001', TOKENS['env-0001']);
      expect(answer).toMatchObject({ type: 'error', code: 'AUTH_FAILED', message: expect.stringMatching(/^too many failed logins from 127\.0\.0\.1: one more is allowed every 6 s/) });
    });

    it('with allowAnonymous and a registry: anonymous clients for unregistered ids, but a registered device must use its token', async () => {
      const gateway = await startGateway({ registry: true, flags: { allowAnonymous: 'true' } });
      const anon = await IngestClient.authed(gateway.ports.http, 'guest-1');
      expect(anon.answer).toMatchObject({ type: 'auth-ok', deviceId: 'guest-1', anonymous: true });
      expect(await anon.client.request({ type: 'publish', stream: 'climate', payload: { c: 1 } })).toMatchObject({ type: 'ack' });
      const posing = await IngestClient.authed(gateway.ports.http, 'env-0001');
      expect(posing.answer).toMatchObject({ type: 'error', code: 'AUTH_FAILED', message: "device 'env-0001' is registered: its auth frame must carry its token" });
      expect(await posing.client.closed).toMatchObject({ code: 1008 });
    });

    it.each([
      ['a publish frame', { type: 'publish', stream: 'climate', payload: {} }, /the first frame must be \{"type":"auth".*got a publish frame/],
      ['text that is not JSON', 'hello', /the first frame must be \{"type":"auth".*got a frame that is not one: a frame must be a JSON object/],
      ['a binary frame', Buffer.from([1, 2, 3]), /the first frame must be .*got a binary frame/],
      ['an auth frame with a bad device id', { type: 'auth', deviceId: 'a b' }, /"deviceId" 'a b' must be 1 to 128 of/],
    ])('refuses %s before auth with AUTH_FAILED naming the auth frame, and closes with 1008', async (_what, frame, message) => {
      const gateway = await startGateway();
      const client = await IngestClient.connect(gateway.ports.http);
      client.send(frame);
      expect(await client.next()).toMatchObject({ type: 'error', code: 'AUTH_FAILED', message: expect.stringMatching(message) });
      expect(await client.closed).toMatchObject({ code: 1008 });
      expect(gateway.log.listTopics()).toEqual([]);
    });

    it('handles publish frames pipelined right behind the auth frame once auth succeeds', async () => {
      const gateway = await startGateway({ registry: true });
      const client = await IngestClient.connect(gateway.ports.http);
      client.send({ type: 'auth', deviceId: 'env-0001', token: TOKENS['env-0001'] });
      for (let i = 0; i < 5; i++) client.send({ type: 'publish', id: i, stream: 'climate', payload: climate() });
      await client.waitForAnswers(6);
      expect(client.answers.map((a) => [a.type, a.id])).toEqual([['auth-ok', undefined], ...[0, 1, 2, 3, 4].map((i) => ['ack', i])]);
    });
  });

  describe('bad frames', () => {
    it('answers each malformed frame with an error naming the problem, and the connection goes on', async () => {
      const gateway = await startGateway();
      const { client } = await IngestClient.authed(gateway.ports.http, 'env-0002');
      const cases: [unknown, Partial<Answer>, RegExp][] = [
        ['{"type":"publish",', { code: 'INVALID_ARGUMENT' }, /not JSON/],
        ['42', { code: 'INVALID_ARGUMENT' }, /must be a JSON object/],
        [{ type: 'subscribe', topic: 'x' }, { code: 'INVALID_ARGUMENT' }, /unknown frame type .*'auth' \(the first frame\) and 'publish'/],
        [{ type: 'publish', id: 'm1', stream: 'climate' }, { code: 'INVALID_ARGUMENT', id: 'm1' }, /payload is missing/],
        [{ type: 'publish', id: 'm2', stream: 'climate', payload: 5 }, { code: 'INVALID_ARGUMENT', id: 'm2' }, /payload must be a JSON object/],
        [{ type: 'publish', id: 'm3', stream: 'climate', payloadBase64: '!!' }, { code: 'INVALID_ARGUMENT', id: 'm3' }, /payloadBase64 must be non-empty base64/],
        [{ type: 'publish', id: 'm4', stream: 'no/slash', payload: {} }, { code: 'UNMAPPED_TOPIC', id: 'm4' }, /stream 'no\/slash' must be 1 to 249 of/],
        [{ type: 'publish', id: 'm5', stream: '_deadletter', payload: {} }, { code: 'UNMAPPED_TOPIC', id: 'm5' }, /may not start with '_'/],
        [
          { type: 'publish', id: 'm6', readings: [{ stream: 'climate', payload: {} }, { stream: '', payload: {} }] },
          { code: 'UNMAPPED_TOPIC', id: 'm6' },
          /readings\[1\]: stream '' must be .*nothing of this frame was stored/,
        ],
        [{ type: 'publish', id: 'm7', readings: Array.from({ length: 1001 }, () => ({ stream: 'climate', payload: {} })) }, { code: 'INVALID_ARGUMENT', id: 'm7' }, /1 to 1000 readings/],
        [{ type: 'auth', deviceId: 'env-0003' }, { code: 'INVALID_ARGUMENT' }, /already authenticated for device 'env-0002'; one connection is one device/],
        [Buffer.from('{"type":"publish"}'), { code: 'INVALID_ARGUMENT' }, /frames are JSON text, not binary/],
      ];
      for (const [frame, expected, message] of cases) {
        const answer = await client.request(frame);
        expect(answer, JSON.stringify(frame).slice(0, 80)).toEqual({ type: 'error', retryable: false, ...expected, message: expect.stringMatching(message) });
      }
      expect(gateway.log.listTopics()).toEqual([]); // nothing of a refused frame is stored
      expect(await client.request({ type: 'publish', id: 'ok', stream: 'climate', payload: { c: 1 } })).toMatchObject({ type: 'ack', id: 'ok' });
    });

    it('refuses a reading over maxMessageBytes in a batch, stores the others and says which to resend', async () => {
      const gateway = await startGateway({ flags: { 'log.topicDefaults.maxMessageBytes': '1024' } });
      const { client } = await IngestClient.authed(gateway.ports.http, 'env-0004');
      const answer = await client.request({
        type: 'publish',
        id: 'big',
        readings: [{ stream: 'climate', payload: { n: 1 } }, { stream: 'climate', payload: { pad: 'x'.repeat(2000) } }, { stream: 'climate', payload: { n: 3 } }],
      });
      expect(answer).toMatchObject({ type: 'error', id: 'big', code: 'RECORD_TOO_LARGE', retryable: false, message: expect.stringMatching(/^1 of 3 readings were not stored/) });
      expect(answer.results).toEqual([
        { topic: 'climate', partition: 0, offset: 0 },
        { error: { code: 'RECORD_TOO_LARGE', message: expect.any(String), retryable: false } },
        { topic: 'climate', partition: 0, offset: 1 },
      ]);
    });

    it('closes a connection that sends a frame over the limit with 1009, and the gateway goes on', async () => {
      const gateway = await startGateway({ flags: { 'log.topicDefaults.maxMessageBytes': '1024' } });
      const { client, answer } = await IngestClient.authed(gateway.ports.http, 'env-0005');
      const limit = answer.limits!.maxFrameBytes;
      expect(limit).toBeLessThan(1024 * 1024);
      client.send({ type: 'publish', stream: 'climate', payload: { pad: 'x'.repeat(limit) } });
      expect((await client.closed).code).toBe(1009);
      expect(gateway.intake.stats().refused['RECORD_TOO_LARGE']).toBe(1);
      const again = await IngestClient.authed(gateway.ports.http, 'env-0005');
      expect(await again.client.request({ type: 'publish', stream: 'climate', payload: { n: 1 } })).toMatchObject({ type: 'ack' });
    });
  });

  it('pauses a connection that sends faster than the log takes it, and acks every reading in the end', async () => {
    // The gateway's WsIngest, to read its counters; a spy changes nothing else.
    const handle = vi.spyOn(WsIngest.prototype, 'handle');
    onTestFinished(() => handle.mockRestore());
    const gateway = await startGateway({ flags: { 'ingest.maxPendingBytes': String(64 * 1024) } });
    const { client } = await IngestClient.authed(gateway.ports.http, 'fast-1');
    const wsIngest = handle.mock.contexts[0] as WsIngest;
    const readings = 5_000;
    const pad = 'p'.repeat(4_000);
    let maxPendingBytes = 0;
    const sampler = setInterval(() => (maxPendingBytes = Math.max(maxPendingBytes, gateway.intake.stats().pendingBytes)), 1);
    onTestFinished(() => clearInterval(sampler));
    for (let i = 0; i < readings; i++) client.send({ type: 'publish', id: i, stream: 'bulk', payload: { i, pad } });
    await client.waitForAnswers(1 + readings, 60_000);
    clearInterval(sampler);
    expect(client.answers.slice(1).every((a, i) => a.type === 'ack' && a.id === i)).toBe(true);
    expect(gateway.log.read('bulk', 0, readings - 1).records[0]?.offset).toBe(readings - 1);
    const stats = wsIngest.stats();
    // The socket was paused (TCP backpressure) and the readings held never passed the bound.
    expect(stats.pauses).toBeGreaterThan(0);
    expect(stats.pendingReadingsMax).toBeLessThanOrEqual(MAX_PENDING_READINGS + MAX_READINGS_PER_FRAME);
    expect(maxPendingBytes).toBeLessThanOrEqual(64 * 1024 + 4_300);
  });

  it('at shutdown acks what was submitted, refuses what comes later as retryable, and closes with 1001', async () => {
    const dir = tempDir();
    const config = loadConfig({ flags: { dataDir: dir, 'mqtt.port': '0', 'http.port': '0' } });
    const gateway = await Gateway.start(config, pino({ level: 'silent' }));
    const { client } = await IngestClient.authed(gateway.ports.http, 'env-0006');
    for (let i = 0; i < 300; i++) client.send({ type: 'publish', id: i, stream: 'climate', payload: { i } });
    await waitFor(() => client.answers.length > 1, 'a first ack');
    await gateway.close();
    const { code } = await client.closed;
    expect(code).toBe(1001);
    const answers = client.answers.slice(1);
    const acked = answers.filter((a) => a.type === 'ack').map((a) => a.id);
    for (const a of answers.filter((x) => x.type !== 'ack')) expect(a).toMatchObject({ type: 'error', code: 'GATEWAY_CLOSING', retryable: true });
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    onTestFinished(() => log.close());
    const values = log.read('climate', 0, 0, { maxRecords: 1000 }).records.map((r) => (JSON.parse(r.value.toString()) as { i: number }).i);
    for (const id of acked) expect(values).toContain(id);
  });

  it('an ack survives SIGKILL of the gateway right after it', async () => {
    const dir = tempDir();
    const gw = spawnTs(CLI, ['start', '--data-dir', dir, '--mqtt-port', '0', '--http-port', '0']);
    const started = JSON.parse(await gw.waitForLine(/edgelog gateway started/)) as { httpPort: number };
    const { client } = await IngestClient.authed(started.httpPort, 'env-0010');
    for (let n = 0; n < 10; n++) {
      const payload = { reading: n };
      expect(await client.request({ type: 'publish', id: n, stream: 'vibration', payload })).toMatchObject({ type: 'ack' });
    }
    client.send({ type: 'publish', id: 'batch', readings: Array.from({ length: 10 }, (_, i) => ({ stream: 'vibration', payload: { reading: 10 + i } })) });
    expect(await client.next()).toMatchObject({ type: 'ack', id: 'batch' });
    gw.child.kill('SIGKILL');
    expect(await gw.exited).toBe('SIGKILL');
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    onTestFinished(() => log.close());
    const values = log.read('vibration', 0, 0, { maxRecords: 100 }).records.map((r) => (JSON.parse(r.value.toString()) as { reading: number }).reading);
    expect(values).toEqual(Array.from({ length: 20 }, (_, n) => n));
  });
});

// A decodable climate payload must round-trip through the gateway unchanged (compact JSON in, same bytes out).
it('stores a firmware JSON payload byte for byte', () => {
  const payload = encodeReading(env, 'climate', { seq: 5, ts: 1_700_000_000_000, values: { temperature: -3.07, humidity: 55.5, pressure: 1001.2 } }, 'json');
  expect(Buffer.from(JSON.stringify(JSON.parse(payload.toString())))).toEqual(payload);
  expect(decodeReading(env, 'climate', payload).seq).toBe(5);
});
