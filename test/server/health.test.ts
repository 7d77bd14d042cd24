import { connect as connectTcp } from 'node:net';
import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { LogFullError } from '../../src/index.js';
import { startGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = 'health-admin-token-0123456789';

interface Reply {
  status: number;
  // any: each test reads the fields it checks.
  json: any;
}

async function get(gateway: Gateway, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`http://127.0.0.1:${gateway.ports.http}${path}`, { headers, signal: AbortSignal.timeout(10_000) });
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
  return { status: res.status, json: JSON.parse(await res.text()) };
}

async function connect(port: number, clientId: string): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0 });
  onTestFinished(() => client.endAsync(true));
  return client;
}

/** Publishes at QoS 1: 'acked', or 'closed' when the gateway refuses the reading by closing the connection (MQTT 3.1.1 has no PUBACK reason). */
function publishOutcome(client: mqtt.MqttClient, topic: string, payload: string): Promise<'acked' | 'closed'> {
  return Promise.race([
    client.publishAsync(topic, payload, { qos: 1 }).then(() => 'acked' as const),
    new Promise<'closed'>((resolve) => client.once('close', () => resolve('closed'))),
  ]);
}

/** Appends directly until the log refuses with LOG_FULL; bounded. */
async function fillLog(gateway: Gateway, topic: string): Promise<number> {
  await gateway.log.createTopic(topic);
  let appended = 0;
  for (let i = 0; i < 1000; i++) {
    try {
      await gateway.log.append(topic, [{ value: Buffer.alloc(4096, i % 251) }]);
      appended++;
    } catch (error) {
      if (error instanceof LogFullError) return appended;
      throw error;
    }
  }
  throw new Error('the log took 1000 appends of 4 KiB without filling up');
}

describe('/healthz and /readyz', () => {
  it('say the gateway is up and ready, with its id and ports', async () => {
    const gateway = await startGateway({ gatewayId: 'gw-health' });
    const health = await get(gateway, '/healthz');
    expect(health).toEqual({ status: 200, json: { status: 'ok', service: 'edgelog', gatewayId: 'gw-health', ports: { mqtt: gateway.ports.mqtt, http: gateway.ports.http } } });
    expect(await get(gateway, '/readyz')).toEqual({ status: 200, json: { ready: true, reasons: [] } });
    expect(await get(gateway, '/api/health')).toEqual({ status: 200, json: { ready: true, reasons: [], bridges: [] } });
  });

  it('need no token when the gateway has an admin token, while /api/health does', async () => {
    const gateway = await startGateway({ 'admin.token': TOKEN });
    expect((await get(gateway, '/healthz')).json).toMatchObject({ status: 'ok', service: 'edgelog' });
    expect(await get(gateway, '/readyz')).toEqual({ status: 200, json: { ready: true, reasons: [] } });
    expect((await get(gateway, '/api/health')).status).toBe(401);
    expect((await get(gateway, '/api/health', { authorization: `Bearer ${TOKEN}` })).json).toMatchObject({ ready: true });
  });

  it('/readyz answers 503 naming the full log while readings are refused, and 200 again once space is freed', async () => {
    const gateway = await startGateway({ 'log.maxLogBytes': String(64 * 1024) });
    expect(await fillLog(gateway, 'filler')).toBeGreaterThan(3);
    // The log refuses the next reading: the intake learns it is full from that refusal.
    const device = await connect(gateway.ports.mqtt, 'sensor-full');
    expect(await publishOutcome(device, 'devices/sensor-full/readings', 'x'.repeat(4096))).toBe('closed');
    expect(gateway.intake.stats().logFull).toBe(true);

    const ready = await get(gateway, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.json.ready).toBe(false);
    expect(ready.json.reasons).toHaveLength(1);
    expect(ready.json.reasons[0]).toMatch(/the log is full/);
    // /api/health says the same with a 200: it is a report, not a probe.
    expect(await get(gateway, '/api/health')).toEqual({ status: 200, json: { ready: false, reasons: ready.json.reasons, bridges: [] } });
    // The process itself is fine.
    expect((await get(gateway, '/healthz')).status).toBe(200);

    await gateway.log.deleteTopic('filler');
    const again = await connect(gateway.ports.mqtt, 'sensor-back');
    expect(await publishOutcome(again, 'devices/sensor-back/readings', 'fits')).toBe('acked');
    expect(await get(gateway, '/readyz')).toEqual({ status: 200, json: { ready: true, reasons: [] } });
  });

  it('/readyz is not ready once the gateway begins to close', async () => {
    const gateway = await startGateway();
    const port = gateway.ports.http;
    // A kept-alive connection with a request whose headers are still arriving when close() begins:
    // the server answers it (not ready) or cuts it; it never says ready.
    const socket = connectTcp({ host: '127.0.0.1', port });
    onTestFinished(() => void socket.destroy());
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    const ended = new Promise<string>((resolve) => {
      socket.once('close', () => resolve('closed'));
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    // Pipelined: the second request's first bytes arrive with the first, so the server is
    // reading a request on this connection (not idle) by the time it has answered the first.
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    await waitFor(() => answer.includes('"service":"edgelog"'), 'the answer to /healthz on the kept-alive connection', 5_000);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    answer = '';

    const closing = gateway.close();
    socket.write('Connection: close\r\n\r\n');
    const outcome = await ended;
    const fresh = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5_000) }).then(
      (res) => `HTTP ${res.status}`,
      (error: Error & { cause?: NodeJS.ErrnoException }) => error.cause?.code ?? error.message,
    );
    await closing;

    // The partial request: answered not ready, or its connection cut; never "ready".
    if (answer !== '') {
      expect(answer).toMatch(/^HTTP\/1\.1 503 /);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { ready: boolean; reasons: string[] };
      expect(body.ready).toBe(false);
      expect(body.reasons.join(' ')).toMatch(/shutting down/);
    } else {
      expect(outcome).toMatch(/^(closed|ECONNRESET|EPIPE)$/);
    }
    // A new connection after close() began is refused: the listener is closed.
    expect(fresh).toBe('ECONNREFUSED');
  });
});
