import { jetstream, jetstreamManager, JetStreamApiError, StorageType } from '@nats-io/jetstream';
import type { StreamInfo } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import type { MsgHdrs } from '@nats-io/transport-node';
import { onTestFinished } from 'vitest';
import { DEFAULT_DUPLICATE_WINDOW_MS } from '../../bridges/config.js';
import { decodeBatchPayload, retryUntil, type ReceivedRecord } from './upstream-contract.js';

/**
 * The central side of the NATS bridge tests: what a JetStream stream holds, read back and decoded
 * into the records the bridge published (shared by nats-upstream.test.ts and bridge-nats.test.ts).
 */

/** One stored message of a stream. */
export interface StoredNatsMessage {
  subject: string;
  headers: MsgHdrs | undefined;
  data: Uint8Array;
}

/** A cluster that lost its meta leader answers JetStream API requests again after an election. */
const READ_TIMEOUT_MS = 30_000;
/** JetStream's err_code for "stream not found": the bridge has not created it yet. */
const ERR_STREAM_NOT_FOUND = 10059;
/** How long one fetch of the whole stream may take: tens of thousands of messages over loopback. */
const FETCH_EXPIRES_MS = 20_000;

/** Decodes what the NATS upstream publishes back into records: batches from NDJSON, single records from headers. */
export function decodeNatsMessage(headers: MsgHdrs | undefined, data: Uint8Array): ReceivedRecord[] {
  const payload = Buffer.from(data);
  if (headers === undefined) throw new Error('a message without headers');
  if (headers.get('Content-Type') === 'application/x-ndjson') return decodeBatchPayload(payload);
  const base64 = new Set(headers.get('edgelog-base64-headers').split(',').filter((n) => n !== ''));
  const recordHeaders: Record<string, string | Buffer> = {};
  for (const [name, values] of headers) {
    if (/^(nats-|edgelog-)/i.test(name)) continue;
    recordHeaders[decodeURIComponent(name)] = base64.has(name) ? Buffer.from(values[0]!, 'base64') : values[0]!;
  }
  const key = headers.has('edgelog-key') ? headers.get('edgelog-key') : null;
  return [
    {
      gateway: headers.get('edgelog-gateway'),
      topic: headers.get('edgelog-topic'),
      partition: Number(headers.get('edgelog-partition')),
      offset: Number(headers.get('edgelog-offset')),
      key: key !== null && headers.get('edgelog-key-encoding') === 'base64' ? Buffer.from(key, 'base64') : key,
      timestamp: Number(headers.get('edgelog-timestamp')),
      value: payload,
      headers: recordHeaders,
    },
  ];
}

/** Every message of the stream, in stream order, read with an ordered consumer. */
export async function readStream(servers: string[], stream: string): Promise<StoredNatsMessage[]> {
  const nc = await connect({ servers, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    const count = (await jsm.streams.info(stream)).state.messages;
    const out: StoredNatsMessage[] = [];
    if (count === 0) return out;
    const consumer = await jetstream(nc).consumers.get(stream);
    const messages = await consumer.fetch({ max_messages: count, expires: FETCH_EXPIRES_MS });
    for await (const m of messages) {
      out.push({ subject: m.subject, headers: m.headers, data: m.data });
      if (out.length === count) break;
    }
    if (out.length !== count) throw new Error(`read ${out.length} of ${count} messages of ${stream}`);
    return out;
  } finally {
    await nc.close();
  }
}

/** Every record the stream holds, in stream order; retried while a cluster elects its leaders. */
export async function receivedRecords(servers: string[], stream: string): Promise<ReceivedRecord[]> {
  const messages = await retryUntil(() => readStream(servers, stream), `reading stream ${stream}`, READ_TIMEOUT_MS);
  return messages.flatMap((m) => decodeNatsMessage(m.headers, m.data));
}

/** The stream's info (config, state, cluster) from one of `servers`. */
export async function streamInfo(servers: string[], stream: string): Promise<StreamInfo> {
  const nc = await connect({ servers, reconnect: false });
  try {
    return await (await jetstreamManager(nc)).streams.info(stream);
  } finally {
    await nc.close();
  }
}

/** Creates a file-backed stream as the central side would, with JetStream's default 2-minute duplicate window. */
export async function createStream(servers: string[], config: { name: string; subjects: string[]; num_replicas: number }): Promise<void> {
  const nc = await connect({ servers, reconnect: false });
  try {
    await (await jetstreamManager(nc)).streams.add({ ...config, storage: StorageType.File, duplicate_window: nanos(DEFAULT_DUPLICATE_WINDOW_MS) });
  } finally {
    await nc.close();
  }
}

/** A connection that watches one stream while a test runs; closed when the test finishes. */
export interface StreamWatch {
  /** The stream's info, or null while it does not exist yet. */
  info(): Promise<StreamInfo | null>;
  /** Messages the stream holds; 0 while it does not exist yet. */
  messages(): Promise<number>;
  close(): Promise<void>;
}

/** Opens one connection to poll `stream` cheaply (one API request per poll, not a connection). */
export async function watchStream(servers: string[], stream: string): Promise<StreamWatch> {
  const nc = await connect({ servers, reconnect: false });
  onTestFinished(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const info = async (): Promise<StreamInfo | null> => {
    try {
      return await jsm.streams.info(stream);
    } catch (error) {
      if (error instanceof JetStreamApiError && error.apiError().err_code === ERR_STREAM_NOT_FOUND) return null;
      throw error;
    }
  };
  return {
    info,
    messages: async () => (await info())?.state.messages ?? 0,
    close: () => nc.close(),
  };
}
