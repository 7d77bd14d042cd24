import { describe, expect, it, onTestFinished } from 'vitest';
import type { EdgelogClientError } from '../../src/client/errors.js';
import { producer, type ProducerOptions } from '../../src/client/producer.js';
import type { Gateway } from '../../src/gateway.js';
import { startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/loopback.js';

function testProducer(gateway: Gateway, options: Partial<ProducerOptions> = {}) {
  const p = producer({ url: `ws://127.0.0.1:${gateway.ports.http}/produce`, ...options });
  onTestFinished(() => p.close().catch(() => {}));
  return p;
}

async function rejection(p: Promise<unknown>): Promise<EdgelogClientError> {
  try {
    await p;
  } catch (error) {
    return error as EdgelogClientError;
  }
  throw new Error('expected a rejection');
}

describe('producer', () => {
  it('resolves with where each record went once it is in the log, text and bytes alike', async () => {
    const gateway = await startGateway();
    const p = testProducer(gateway, { url: `http://127.0.0.1:${gateway.ports.http}` });
    const results = await p.send('events', [
      { key: 'door-1', value: 'opened', headers: { site: 'plant-3', raw: Buffer.from([1, 2]) }, timestamp: 1_750_000_000_000 },
      { key: Buffer.from([0, 255]), value: Buffer.from([0, 159, 146, 150]) },
    ]);
    expect(results).toEqual([
      { partition: 0, offset: 0 },
      { partition: 0, offset: 1 },
    ]);
    // The topic was created on first use; the records are there as soon as send() resolved.
    const { records } = gateway.log.read('events', 0, 0);
    expect(records[0]).toMatchObject({ key: 'door-1', timestamp: 1_750_000_000_000, headers: { site: 'plant-3', raw: Buffer.from([1, 2]) } });
    expect(records[0]!.value.toString()).toBe('opened');
    expect(records[1]!.key).toEqual(Buffer.from([0, 255]));
    expect(records[1]!.value).toEqual(Buffer.from([0, 159, 146, 150]));
    expect(p.limits).toMatchObject({ maxRecordsPerFrame: 10_000 });
  });

  it('keeps call order across many sends in flight, queueing past its in-flight bound', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('seq', { partitions: 2 });
    const p = testProducer(gateway, { maxInFlightBytes: 4096 });
    await p.ready();
    const sends = Array.from({ length: 200 }, (_, i) => p.send('seq', [{ value: `m${i}`.padEnd(200, '.'), partition: 1 }]));
    const results = await Promise.all(sends);
    expect(results.map((r) => r[0]!.offset)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    const read = gateway.log.read('seq', 1, 0, { maxRecords: 200 }).records.map((r) => r.value.toString().replace(/\.+$/, ''));
    expect(read).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`));
  });

  it('rejects a refused send with the gateway code and reason, and goes on', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('small', { maxMessageBytes: 256 });
    const p = testProducer(gateway);
    const tooLarge = await rejection(p.send('small', [{ value: 'x'.repeat(1000) }]));
    expect(tooLarge).toMatchObject({ name: 'EdgelogClientError', code: 'RECORD_TOO_LARGE', retryable: false, message: expect.stringMatching(/records\[0\] is \d+ bytes stored, over topic 'small' maxMessageBytes of 256/) });
    const badName = await rejection(p.send('no spaces', [{ value: 'x' }]));
    expect(badName).toMatchObject({ code: 'INVALID_TOPIC_NAME', message: expect.stringMatching(/use 1 to 249 characters/) });
    expect(await p.send('small', [{ value: 'fits' }])).toEqual([{ partition: 0, offset: 0 }]);
  });

  it('checks what it can before sending: the record types and the gateway limits', async () => {
    const gateway = await startGateway();
    const p = testProducer(gateway);
    expect(await rejection(p.send('t', []))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/records must be a list of 1 to 10000 records/) });
    expect(await rejection(p.send('t', [{ value: 42 as unknown as string }]))).toMatchObject({ code: 'INVALID_ARGUMENT', message: 'records[0].value must be a string or bytes (Buffer, Uint8Array)' });
    const huge = Array.from({ length: 10 }, () => ({ value: Buffer.alloc(1024 * 1024) }));
    expect(await rejection(p.send('t', huge))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/bytes encoded, over the gateway's \d+-byte frame limit/) });
  });

  it('close() waits for the sends in flight; sends after it are refused', async () => {
    const gateway = await startGateway();
    const p = testProducer(gateway);
    await p.ready();
    const sends = Array.from({ length: 20 }, (_, i) => p.send('closing', [{ value: `v${i}` }]));
    await p.close();
    const settled = await Promise.allSettled(sends);
    expect(settled.every((s) => s.status === 'fulfilled')).toBe(true);
    expect(gateway.log.describeTopic('closing').partitions[0]!.records).toBe(20);
    expect(await rejection(p.send('closing', [{ value: 'late' }]))).toMatchObject({ code: 'CLIENT_CLOSED' });
  });

  it('fails clearly when the gateway is unreachable, and when it shuts down', async () => {
    const port = await freePort();
    const lonely = producer({ url: `ws://127.0.0.1:${port}` });
    const unreachable = await rejection(lonely.send('t', [{ value: 'x' }]));
    expect(unreachable).toMatchObject({ code: 'GATEWAY_UNREACHABLE', retryable: true, message: expect.stringMatching(/cannot reach the gateway at ws:\/\/127\.0\.0\.1:\d+\/produce \(ECONNREFUSED\)/) });
    await lonely.close();

    const gateway = await startGateway();
    const p = testProducer(gateway);
    await p.send('t', [{ value: 'before' }]);
    await gateway.close();
    const after = await rejection(p.send('t', [{ value: 'after' }]));
    expect(after).toMatchObject({ code: 'GATEWAY_CLOSING', message: expect.stringMatching(/shutting down/) });
  });

  it('says so when the URL is not an edgelog endpoint', async () => {
    const gateway = await startGateway();
    const p = producer({ url: `ws://127.0.0.1:${gateway.ports.http}/nowhere` });
    expect(await rejection(p.ready())).toMatchObject({ code: 'GATEWAY_UNREACHABLE', message: expect.stringMatching(/answered HTTP 404 instead of opening a WebSocket: is it an edgelog gateway with \/nowhere/) });
    await p.close();
    expect(() => producer({ url: 'ftp://x' })).toThrow(/must start with ws:\/\/, wss:\/\/, http:\/\/ or https:\/\//);
  });
});
