import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DeviceRegistry } from '../../devices/registry.js';
import { AuthThrottle } from '../../src/ingest/auth-throttle.js';
import { Intake } from '../../src/ingest/intake.js';
import { MAX_PENDING_FRAMES, MAX_PENDING_READINGS } from '../../src/ingest/ws-connection.js';
import { WsIngest, wsIngestFrameBytesMax } from '../../src/ingest/ws-ingest.js';
import { MAX_READINGS_PER_FRAME } from '../../src/ingest/ws-frames.js';
import { HttpServer } from '../../src/server/http-server.js';
import { TopicMapper } from '../../src/ingest/topic-mapping.js';
import { openTestLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';
import { IngestClient } from '../helpers/ws-ingest-client.js';

/** WsIngest on a real HttpServer, intake and log, without the rest of the gateway, to set its timings and read its counters. */
async function startIngest(opts: { authTimeoutMs?: number; maxPendingBytes?: number } = {}): Promise<{ port: number; ingest: WsIngest; intake: Intake }> {
  const logger = pino({ level: 'silent' });
  const log = await openTestLog();
  const intake = new Intake({ log, devices: DeviceRegistry.empty(), mapper: new TopicMapper(), logger, maxPendingBytes: opts.maxPendingBytes ?? 16 * 1024 * 1024, maxReadingsPerSecond: 0, burstReadings: 1000 });
  const ingest = new WsIngest({ intake, devices: DeviceRegistry.empty(), allowAnonymous: true, authThrottle: new AuthThrottle(), logger, maxMessageBytes: 1024 * 1024, ...(opts.authTimeoutMs ? { authTimeoutMs: opts.authTimeoutMs } : {}) });
  const http = await HttpServer.start({ host: '127.0.0.1', port: 0, logger, routes: [{ path: '/ingest', handler: (ws, req) => ingest.handle(ws, req), maxPayloadBytes: ingest.maxFrameBytes }] });
  onTestFinished(async () => {
    await intake.close();
    await http.close();
  });
  return { port: http.ports.http, ingest, intake };
}

describe('WebSocket ingest connections', () => {
  it('sizes frames from maxMessageBytes: a batch of four base64 readings, capped, never less than one', () => {
    expect(wsIngestFrameBytesMax(1024 * 1024)).toBe(4 * (Math.ceil((1024 * 1024) / 3) * 4 + 64 * 1024));
    expect(wsIngestFrameBytesMax(64 * 1024 * 1024)).toBe(Math.ceil((64 * 1024 * 1024) / 3) * 4 + 64 * 1024);
    expect(wsIngestFrameBytesMax(8 * 1024 * 1024)).toBe(16 * 1024 * 1024);
  });

  it('closes a connection that sends no auth frame in time with AUTH_FAILED and 1008', async () => {
    const { port, ingest } = await startIngest({ authTimeoutMs: 200 });
    const client = await IngestClient.connect(port);
    expect(await client.next()).toMatchObject({ type: 'error', code: 'AUTH_FAILED', message: expect.stringMatching(/no auth frame within 0.2 s; the first frame must be \{"type":"auth"/) });
    expect(await client.closed).toEqual({ code: 1008, reason: 'AUTH_FAILED' });
    await waitFor(() => ingest.stats().connections === 0, 'the connection to be forgotten');
  });

  it('stops reading a client that does not read its acks, and goes on once it does', async () => {
    const { port, ingest } = await startIngest();
    const { client } = await IngestClient.authed(port, 'deaf-1');
    // The client stops reading: the gateway's acks pile up in TCP buffers, then in ws, until it pauses.
    client.ws.pause();
    const frames = 400;
    const batch = Array.from({ length: MAX_READINGS_PER_FRAME }, (_, i) => ({ stream: 'deaf', payload: { i } }));
    for (let f = 0; f < frames; f++) client.send({ type: 'publish', id: f, readings: batch });
    await waitFor(() => ingest.stats().pauses > 0, 'the gateway to pause the connection', 30_000);
    client.ws.resume();
    await client.waitForAnswers(1 + frames, 60_000);
    expect(client.answers.slice(1).every((a, f) => a.type === 'ack' && a.id === f && a.results?.length === MAX_READINGS_PER_FRAME)).toBe(true);
    expect(ingest.stats().pendingReadingsMax).toBeLessThanOrEqual(MAX_PENDING_READINGS + MAX_READINGS_PER_FRAME);
  });

  it('bounds the answers held for frames refused behind a reading that waits', async () => {
    // A budget of one reading: the first waits for nothing, refused frames queue behind the next ones.
    const { port, ingest } = await startIngest({ maxPendingBytes: 64 * 1024 });
    const { client } = await IngestClient.authed(port, 'noisy-1');
    const n = 3 * MAX_PENDING_FRAMES;
    for (let i = 0; i < n; i++) client.send(i % 2 === 0 ? { type: 'publish', id: i, stream: 'noisy', payload: { i } } : 'not json');
    await client.waitForAnswers(1 + n, 60_000);
    const answers = client.answers.slice(1);
    expect(answers.map((a) => a.type)).toEqual(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 'ack' : 'error')));
    expect(answers.filter((a) => a.type === 'ack').map((a) => a.id)).toEqual(Array.from({ length: n / 2 }, (_, i) => 2 * i));
    expect(ingest.stats().connections).toBe(1);
  });
});
