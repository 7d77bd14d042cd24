import { jetstreamManager } from '@nats-io/jetstream';
import { connect, ConnectionError, nanos, TimeoutError } from '@nats-io/transport-node';
import { pino } from 'pino';
import { describe, expect, onTestFinished, test } from 'vitest';
import { EdgelogError } from '../../src/errors.js';
import { natsConnectError } from '../../bridges/nats/nats-errors.js';
import { NatsUpstream, type NatsUpstreamOptions } from '../../bridges/nats/nats-upstream.js';
import { parseTemplate } from '../../bridges/template.js';
import type { SendResult } from '../../bridges/upstream.js';
import { natsSkipReason, startNats, startNatsCluster } from '../helpers/nats-server.js';
import { waitFor } from '../helpers/wait.js';
import { decodeNatsMessage, readStream, receivedRecords, streamInfo } from './nats-central.js';
import { record, retryUntil, upstreamContract } from './upstream-contract.js';

const skip = natsSkipReason();
const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
let streamCount = 0;
/** A stream name unique within this file's run. */
const uniqueStream = () => `EDGELOG_TEST_${process.pid}_${++streamCount}`;

function upstreamOptions(servers: string[], overrides: Partial<NatsUpstreamOptions> = {}): NatsUpstreamOptions {
  return {
    servers,
    gatewayId: 'gw-contract',
    stream: { name: uniqueStream(), create: true, subjects: ['edgelog.>'], replicas: 1, duplicateWindowMs: 120_000 },
    batch: null,
    ackTimeoutMs: 10_000,
    connectTimeoutMs: 2_000,
    logger,
    ...overrides,
  };
}

/** An upstream disconnected when the test finishes. */
function makeUpstream(options: NatsUpstreamOptions): NatsUpstream {
  const upstream = new NatsUpstream(options);
  onTestFinished(() => upstream.disconnect());
  return upstream;
}

async function refusal(promise: Promise<unknown>): Promise<EdgelogError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EdgelogError);
  return error as EdgelogError;
}

/** Sends `offset` until it is acked: the core's resend, bounded by `timeoutMs`. */
function sendUntilAcked(upstream: NatsUpstream, offset: number, timeoutMs: number): Promise<SendResult> {
  const message = { topic: 'failover', partition: 0, records: [record(offset)] };
  return retryUntil(() => upstream.send(upstream.encode(message)), `offset ${offset} to be acked`, timeoutMs);
}

describe.skipIf(skip !== undefined)('NatsUpstream', () => {
  upstreamContract('NATS JetStream', async ({ batch }) => {
    const server = await startNats();
    const options = upstreamOptions([server.url], { batch });
    const upstream = makeUpstream(options);
    return {
      upstream,
      received: () => receivedRecords([server.url], options.stream!.name),
      // SIGKILL: a crash, which is what a cut link looks like to the client (JetStream has written
      // what it acked before the kill, DESIGN "Traps").
      stopServer: () => server.stop('SIGKILL'),
      startServer: () => server.start(),
    };
  });

  test('the same message sent twice is stored once and the second ack says duplicate', async () => {
    const server = await startNats();
    const options = upstreamOptions([server.url]);
    const upstream = makeUpstream(options);
    await upstream.connect();
    const message = { topic: 'readings', partition: 0, records: [record(7)] };
    expect(await upstream.send(upstream.encode(message))).toEqual({ duplicate: false });
    expect(await upstream.send(upstream.encode(message))).toEqual({ duplicate: true });
    const stored = await readStream([server.url], options.stream!.name);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.headers?.get('Nats-Msg-Id')).toBe('gw-contract:readings:0:7');
  });

  test('a subject no stream takes is refused, naming the subject', async () => {
    const server = await startNats();
    const upstream = makeUpstream(upstreamOptions([server.url], { stream: null, subject: parseTemplate('nowhere.{gatewayId}.{topic}') }));
    await upstream.connect();
    const error = await refusal(upstream.send(upstream.encode({ topic: 'readings', partition: 0, records: [record(0)] })));
    expect(error.code).toBe('UPSTREAM_REFUSED');
    expect(error.message).toContain("'nowhere.gw-contract.readings'");
    expect(error.message).toContain('stream');
  });

  test('subject tokens are escaped, and record headers that NATS cannot carry as they are survive', async () => {
    const server = await startNats();
    const options = upstreamOptions([server.url], { subject: parseTemplate('edgelog.{gatewayId}.{topic}.{key}') });
    const upstream = makeUpstream(options);
    await upstream.connect();
    const r = record(0, {
      key: 'line 1.*>',
      headers: { 'Nats-Expected-Stream': 'NOPE', 'two words': 'x', padded: ' value ', 'multi\nline': 'a\r\nb', 'edgelog-offset': '999' },
    });
    await upstream.send(upstream.encode({ topic: 'readings', partition: 2, records: [r] }));
    const [stored] = await readStream([server.url], options.stream!.name);
    expect(stored!.subject).toBe('edgelog.gw-contract.readings.line%201%2E%2A%3E');
    const [got] = decodeNatsMessage(stored!.headers, stored!.data);
    expect(got!.offset).toBe(0);
    expect(got!.key).toBe('line 1.*>');
    expect(got!.headers['Nats-Expected-Stream']).toBe('NOPE');
    expect(got!.headers['two words']).toBe('x');
    expect(got!.headers['edgelog-offset']).toBe('999');
    expect(got!.headers['padded']).toEqual(Buffer.from(' value '));
    expect(got!.headers['multi\nline']).toEqual(Buffer.from('a\r\nb'));
  });

  test('a wrong password is refused with UPSTREAM_REFUSED, an unreachable server is UPSTREAM_UNAVAILABLE', async () => {
    const server = await startNats({ extraConfig: ['authorization { user: bridge, password: right }'] });
    const wrong = makeUpstream(upstreamOptions([server.url], { user: 'bridge', pass: 'wrong' }));
    const error = await refusal(wrong.connect());
    expect(error.code).toBe('UPSTREAM_REFUSED');
    expect(error.message).toContain(server.url);
    const right = makeUpstream(upstreamOptions([server.url], { user: 'bridge', pass: 'right' }));
    await right.connect();
    await right.send(right.encode({ topic: 'readings', partition: 0, records: [record(0)] }));
    await server.stop();
    const down = await refusal(makeUpstream(upstreamOptions([server.url])).connect());
    expect(down.code).toBe('UPSTREAM_UNAVAILABLE');
  });

  test('no PubAck within ackTimeoutMs rejects UPSTREAM_UNAVAILABLE', async () => {
    const server = await startNats();
    const upstream = makeUpstream(upstreamOptions([server.url], { ackTimeoutMs: 300 }));
    await upstream.connect();
    // SIGSTOP: the server keeps its socket open but answers nothing, as behind a stalled link.
    process.kill(server.pid!, 'SIGSTOP');
    onTestFinished(() => {
      if (server.pid !== undefined) process.kill(server.pid, 'SIGCONT');
    });
    const error = await refusal(upstream.send(upstream.encode({ topic: 'readings', partition: 0, records: [record(0)] })));
    expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(error.message).toContain('300 ms');
    process.kill(server.pid!, 'SIGCONT');
  });

  test('an existing stream is accepted: missing subjects are added and a shorter duplicate window widened', async () => {
    const server = await startNats();
    const name = uniqueStream();
    const nc = await connect({ servers: [server.url], reconnect: false });
    onTestFinished(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name, subjects: ['central.>'], duplicate_window: nanos(1_000) });
    const upstream = makeUpstream(upstreamOptions([server.url], { stream: { name, create: true, subjects: ['edgelog.>'], replicas: 1, duplicateWindowMs: 120_000 } }));
    await upstream.connect();
    await upstream.send(upstream.encode({ topic: 'readings', partition: 0, records: [record(0)] }));
    const info = await jsm.streams.info(name);
    expect(info.config.subjects).toEqual(['central.>', 'edgelog.>']);
    expect(info.config.duplicate_window).toBe(nanos(120_000));
    expect(info.state.messages).toBe(1);
  });

  test('a subject the user may not publish to is refused at once, not after the ack timeout', async () => {
    const server = await startNats({
      extraConfig: ['authorization { users: [ { user: bridge, password: pw, permissions: { publish: { deny: ["edgelog.*.secret.>"] } } } ] }'],
    });
    const upstream = makeUpstream(upstreamOptions([server.url], { user: 'bridge', pass: 'pw', ackTimeoutMs: 60_000 }));
    await upstream.connect();
    const error = await refusal(upstream.send(upstream.encode({ topic: 'secret', partition: 0, records: [record(0)] })));
    expect(error.code).toBe('UPSTREAM_REFUSED');
    expect(error.message).toContain("'edgelog.gw-contract.secret.0'");
    // The connection stays usable for the subjects it may publish to.
    expect(await upstream.send(upstream.encode({ topic: 'readings', partition: 0, records: [record(0)] }))).toEqual({ duplicate: false });
  });

  describe('a 3-node JetStream cluster with replicas 3', () => {
    async function clusterUpstream() {
      const cluster = await startNatsCluster();
      const options = upstreamOptions(cluster.urls, {
        // An election takes seconds: time out sooner and resend, as the core would.
        ackTimeoutMs: 3_000,
        stream: { name: uniqueStream(), create: true, subjects: ['edgelog.>'], replicas: 3, duplicateWindowMs: 120_000 },
      });
      const upstream = makeUpstream(options);
      await upstream.connect();
      const info = await streamInfo(cluster.urls, options.stream!.name);
      expect(info.config.num_replicas).toBe(3);
      return { cluster, options, upstream };
    }

    /** The node whose client port the upstream's connection uses (the client reports host:port). */
    function connectedNode(cluster: Awaited<ReturnType<typeof startNatsCluster>>, upstream: NatsUpstream) {
      const server = upstream.connectedServer() ?? 'no server';
      const node = cluster.nodes.find((n) => server.endsWith(`:${n.port}`));
      expect(node, `the node behind ${server}`).toBeDefined();
      return node!;
    }

    test('sends keep being acked after a node the client is not connected to stops', async () => {
      const { cluster, options, upstream } = await clusterUpstream();
      await upstream.send(upstream.encode({ topic: 'failover', partition: 0, records: [record(0)] }));
      const connected = connectedNode(cluster, upstream);
      const other = cluster.nodes.find((n) => n !== connected)!;
      await other.stop('SIGKILL');
      // A stream leader on the stopped node means an election: the core resends until acked.
      await sendUntilAcked(upstream, 1, 30_000);
      const offsets = (await receivedRecords(cluster.urls.filter((u) => u !== other.url), options.stream!.name)).map((r) => r.offset);
      expect(offsets).toEqual([0, 1]);
    });

    test('after the node the client is connected to stops, connect() to the remaining servers and sends succeed', async () => {
      const { cluster, options, upstream } = await clusterUpstream();
      const drops: Error[] = [];
      upstream.onDisconnect((e) => drops.push(e));
      await upstream.send(upstream.encode({ topic: 'failover', partition: 0, records: [record(0)] }));
      const connected = connectedNode(cluster, upstream);
      await connected.stop('SIGKILL');
      await waitFor(() => drops.length === 1, 'onDisconnect after the connected node died');
      await upstream.disconnect();
      await retryUntil(() => upstream.connect(), 'connect() to a remaining node', 30_000);
      expect(connectedNode(cluster, upstream)).not.toBe(connected);
      await sendUntilAcked(upstream, 1, 30_000);
      const offsets = (await receivedRecords(cluster.urls.filter((u) => u !== connected.url), options.stream!.name)).map((r) => r.offset);
      expect(offsets).toEqual([0, 1]);
    });
  });
});

describe('natsConnectError', () => {
  const target = 'nats://central:4222';

  test('a certificate the client cannot verify is a refusal that points at the TLS settings', () => {
    const tls = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    const error = natsConnectError(tls, target);
    expect(error.code).toBe('UPSTREAM_REFUSED');
    expect(error.message).toContain('tls.caFile');
    expect(error.message).toContain(target);
  });

  test('a refused or timed-out socket is unavailability', () => {
    const refused = new ConnectionError('connection refused', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    expect(natsConnectError(refused, target).code).toBe('UPSTREAM_UNAVAILABLE');
    expect(natsConnectError(new TimeoutError(), target).code).toBe('UPSTREAM_UNAVAILABLE');
  });

  test('a TLS requirement the server does not meet is a refusal', () => {
    expect(natsConnectError(new ConnectionError("server does not support 'tls'"), target).code).toBe('UPSTREAM_REFUSED');
  });
});
