import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import type { StoredRecord } from '../../src/index.js';
import { EdgelogError } from '../../src/errors.js';
import type { BatchLine } from '../../bridges/record-identity.js';
import type { OutgoingMessage, SendResult, Upstream } from '../../bridges/upstream.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The contract every upstream (bridges/upstream.ts) passes, whatever the engine (STYLE.md §10, like
 * MQTT.js's abstract_store): what the central side holds after sends, acks in order, batches,
 * outages and disconnects. An engine's test file calls {@link upstreamContract} with a harness
 * that starts its server and reads back what the central side stored.
 */

/** One record as the central side holds it, decoded from headers/properties or from an NDJSON batch line. */
export interface ReceivedRecord {
  gateway: string;
  topic: string;
  partition: number;
  offset: number;
  key: string | Buffer | null;
  timestamp: number;
  value: Buffer;
  headers: Record<string, string | Buffer>;
}

export interface UpstreamHarness {
  /** A fresh upstream, not yet connected; the harness disconnects it when the test finishes. */
  readonly upstream: Upstream;
  /** Every record the central side holds, in arrival order. */
  received(): Promise<ReceivedRecord[]>;
  /**
   * Stops the server abruptly, as a crash or a cut link looks to the client, keeping what it
   * acknowledged. It must signal the server before its first await: the contract issues sends and
   * calls stopServer() in the same tick to have sends in flight when the server goes.
   */
  stopServer(): Promise<void>;
  /** Starts it again on the same address, with what it stored. */
  startServer(): Promise<void>;
}

export type HarnessFactory = (opts: { batch: { records: number; gzip: boolean } | null }) => Promise<UpstreamHarness>;

/** Decodes an NDJSON batch payload (gzip-compressed or not: gzip's magic bytes tell) into records. */
export function decodeBatchPayload(payload: Buffer): ReceivedRecord[] {
  const text = (payload[0] === 0x1f && payload[1] === 0x8b ? gunzipSync(payload) : payload).toString('utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const l = JSON.parse(line) as BatchLine;
      const headers: Record<string, string | Buffer> = {};
      for (const [name, v] of Object.entries(l.headers)) headers[name] = l.headerEncodings?.[name] === 'base64' ? Buffer.from(v, 'base64') : v;
      return {
        gateway: l.gateway,
        topic: l.topic,
        partition: l.partition,
        offset: l.offset,
        key: l.key === null ? null : l.keyEncoding === 'base64' ? Buffer.from(l.key, 'base64') : l.key,
        timestamp: l.timestamp,
        value: l.valueEncoding === 'base64' ? Buffer.from(l.value, 'base64') : Buffer.from(l.value, 'utf8'),
        headers,
      };
    });
}

const GATEWAY_ID = 'gw-contract';
/** Sends of the "many in flight" test: enough that acks overlap, few enough for two shared cores. */
const MANY_SENDS = 1_000;
/** Sends in flight when the server stops. */
const SENDS_AT_STOP = 500;
/** A restarted server (JetStream recovers its store) takes a few seconds to accept the setup again. */
const RECONNECT_TIMEOUT_MS = 20_000;

/** A record built by hand, as the log would return it. */
export function record(offset: number, fields: Partial<Omit<StoredRecord, 'offset'>> = {}): StoredRecord {
  return {
    offset,
    timestamp: fields.timestamp ?? 1_700_000_000_000 + offset,
    appendTime: fields.appendTime ?? 1_700_000_000_500 + offset,
    key: fields.key === undefined ? `device-${offset % 7}` : fields.key,
    value: fields.value ?? Buffer.from(JSON.stringify({ reading: offset })),
    headers: fields.headers ?? {},
  };
}

/** What the central side should hold for `r` sent from `topic`/`partition` by the contract's gateway. */
function expected(topic: string, partition: number, r: StoredRecord): ReceivedRecord {
  return { gateway: GATEWAY_ID, topic, partition, offset: r.offset, key: r.key, timestamp: r.timestamp, value: r.value, headers: r.headers };
}

async function sendOne(upstream: Upstream, message: OutgoingMessage): Promise<SendResult> {
  return upstream.send(upstream.encode(message));
}

/** Settles every promise; returns the rejections, each checked to be a retryable UPSTREAM_UNAVAILABLE. */
async function unavailableRejections(sends: readonly Promise<SendResult>[]): Promise<{ acked: number; rejected: number }> {
  const settled = await Promise.allSettled(sends);
  let rejected = 0;
  for (const s of settled) {
    if (s.status === 'fulfilled') continue;
    rejected++;
    expect(s.reason).toBeInstanceOf(EdgelogError);
    expect((s.reason as EdgelogError).code).toBe('UPSTREAM_UNAVAILABLE');
    expect((s.reason as EdgelogError).retryable).toBe(true);
  }
  return { acked: settled.length - rejected, rejected };
}

async function expectUnavailable(promise: Promise<unknown>): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected a rejection').toBeInstanceOf(EdgelogError);
  expect((error as EdgelogError).code).toBe('UPSTREAM_UNAVAILABLE');
  expect((error as EdgelogError).retryable).toBe(true);
}

/**
 * Calls `attempt` until it resolves, the way the core's reconnect and resend would, for at most
 * `timeoutMs`; on timeout fails with the last error.
 */
export async function retryUntil<T>(attempt: () => Promise<T>, what: string, timeoutMs: number): Promise<T> {
  let last: unknown;
  let result: { value: T } | undefined;
  try {
    await waitFor(
      () =>
        attempt().then(
          (value) => ((result = { value }), true),
          (error: unknown) => ((last = error), false),
        ),
      what,
      timeoutMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last error: ${String(last)}`, { cause: last });
  }
  return result!.value;
}

/** Registers the Upstream contract tests for one engine. */
export function upstreamContract(name: string, makeHarness: HarnessFactory): void {
  describe(`${name} upstream contract`, () => {
    test('a record arrives with its whole identity, value and headers', async () => {
      const h = await makeHarness({ batch: null });
      await h.upstream.connect();
      const withHeaders = record(41, {
        key: 'sensor-1',
        value: Buffer.from([0x00, 0xff, 0x10, 0x80]),
        headers: { unit: 'celsius', raw: Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef]) },
      });
      const noKey = record(42, { key: null, value: Buffer.from('{"t":21.5}') });
      const bytesKey = record(43, { key: Buffer.from([1, 2, 3, 250]) });
      for (const r of [withHeaders, noKey, bytesKey]) {
        const result = await sendOne(h.upstream, { topic: 'readings', partition: 3, records: [r] });
        expect(result.duplicate).toBe(false);
      }
      expect(await h.received()).toEqual([withHeaders, noKey, bytesKey].map((r) => expected('readings', 3, r)));
      await h.upstream.disconnect();
    });

    test(`${MANY_SENDS} sends issued without waiting all ack and arrive in offset order per partition`, async () => {
      const h = await makeHarness({ batch: null });
      await h.upstream.connect();
      const sends: Promise<SendResult>[] = [];
      for (let i = 0; i < MANY_SENDS; i++) {
        const partition = i % 2;
        sends.push(sendOne(h.upstream, { topic: 'bulk', partition, records: [record(Math.floor(i / 2))] }));
      }
      const results = await Promise.all(sends);
      expect(results.every((r) => !r.duplicate)).toBe(true);
      const received = await h.received();
      expect(received).toHaveLength(MANY_SENDS);
      for (const partition of [0, 1]) {
        const offsets = received.filter((r) => r.partition === partition).map((r) => r.offset);
        expect(offsets).toEqual(Array.from({ length: MANY_SENDS / 2 }, (_, i) => i));
      }
      await h.upstream.disconnect();
    });

    test('a batch of 10 records (gzip) arrives as 10 records', async () => {
      const h = await makeHarness({ batch: { records: 10, gzip: true } });
      await h.upstream.connect();
      const records = Array.from({ length: 10 }, (_, i) =>
        record(100 + i, {
          key: i % 3 === 0 ? null : `device-${i}`,
          value: i === 4 ? Buffer.from([0xff, 0xfe, 0x00]) : Buffer.from(`{"i":${i}}`),
          headers: i === 5 ? { unit: 'celsius', raw: Buffer.from([1, 2, 3]) } : {},
        }),
      );
      await sendOne(h.upstream, { topic: 'batched', partition: 1, records });
      expect(await h.received()).toEqual(records.map((r) => expected('batched', 1, r)));
      await h.upstream.disconnect();
    });

    test('a stopped server: sends reject UPSTREAM_UNAVAILABLE, onDisconnect fires once, connect() works again after the restart', async () => {
      const h = await makeHarness({ batch: null });
      const drops: Error[] = [];
      h.upstream.onDisconnect((error) => drops.push(error));
      await h.upstream.connect();
      await sendOne(h.upstream, { topic: 'outage', partition: 0, records: [record(0)] });

      const inFlight: Promise<SendResult>[] = [];
      for (let i = 1; i <= SENDS_AT_STOP; i++) inFlight.push(sendOne(h.upstream, { topic: 'outage', partition: 0, records: [record(i)] }));
      const stopped = h.stopServer();
      const { rejected } = await unavailableRejections(inFlight);
      expect(rejected).toBeGreaterThan(0);
      await stopped;
      await waitFor(() => drops.length > 0, 'onDisconnect after the server stopped');
      expect(drops[0]).toBeInstanceOf(EdgelogError);
      expect((drops[0] as EdgelogError).code).toBe('UPSTREAM_UNAVAILABLE');

      await expectUnavailable(sendOne(h.upstream, { topic: 'outage', partition: 0, records: [record(SENDS_AT_STOP + 1)] }));
      await h.upstream.disconnect();
      await expectUnavailable(h.upstream.connect());

      await h.startServer();
      await retryUntil(() => h.upstream.connect(), 'connect() after the restart', RECONNECT_TIMEOUT_MS);
      const after = await sendOne(h.upstream, { topic: 'outage', partition: 0, records: [record(SENDS_AT_STOP + 2)] });
      expect(after.duplicate).toBe(false);
      const offsets = (await h.received()).map((r) => r.offset);
      expect(offsets[0]).toBe(0);
      expect(offsets).toContain(SENDS_AT_STOP + 2);
      await h.upstream.disconnect();
      expect(drops).toHaveLength(1);
    });

    test('disconnect() rejects sends in flight and is idempotent; connect() may follow', async () => {
      const h = await makeHarness({ batch: null });
      const drops: Error[] = [];
      h.upstream.onDisconnect((error) => drops.push(error));
      await h.upstream.connect();
      const inFlight = Array.from({ length: 100 }, (_, i) => sendOne(h.upstream, { topic: 'closing', partition: 0, records: [record(i)] }));
      const closing = h.upstream.disconnect();
      const { rejected } = await unavailableRejections(inFlight);
      expect(rejected).toBe(inFlight.length);
      await closing;
      await h.upstream.disconnect();
      await h.upstream.disconnect();
      await expectUnavailable(sendOne(h.upstream, { topic: 'closing', partition: 0, records: [record(100)] }));

      await h.upstream.connect();
      await sendOne(h.upstream, { topic: 'closing', partition: 0, records: [record(101)] });
      await h.upstream.disconnect();
      expect(drops).toHaveLength(0);
    });

    test('encode() counts at least the payload in bytes', async () => {
      const single = await makeHarness({ batch: null });
      const value = Buffer.alloc(1_000, 7);
      const one = single.upstream.encode({ topic: 'sizes', partition: 0, records: [record(0, { value })] });
      expect(one.bytes).toBeGreaterThanOrEqual(value.length + 'sizes'.length);

      const batched = await makeHarness({ batch: { records: 10, gzip: false } });
      const records = Array.from({ length: 10 }, (_, i) => record(i, { value }));
      const many = batched.upstream.encode({ topic: 'sizes', partition: 0, records });
      expect(many.bytes).toBeGreaterThanOrEqual(10 * value.length);
      expect(many.message.records).toHaveLength(10);
    });
  });
}
