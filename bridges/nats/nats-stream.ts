import { JetStreamApiError, jetstreamManager, StorageType } from '@nats-io/jetstream';
import type { StreamInfo } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { NatsStreamOptions } from './nats-options.js';

/** JetStream's err_code for "stream not found". */
const ERR_STREAM_NOT_FOUND = 10059;
/** JetStream's err_code for "stream name already in use" (another gateway created it first). */
const ERR_STREAM_NAME_EXISTS = 10058;
/** One retry after losing a creation race to another gateway: the second look finds the stream. */
const ENSURE_ATTEMPTS_MAX = 2;

/**
 * Makes sure the bridge's stream exists: creates it (file storage, the configured replicas and
 * duplicate window), or accepts an existing one. An existing stream gets the configured subjects it
 * lacks and a duplicate window at least as long as configured, since a shorter window would let a
 * resend after a long outage be stored twice; everything else the central side set is kept.
 * Errors are the client's (JetStreamApiError, TimeoutError, ...): the caller maps them.
 */
export async function ensureStream(nc: NatsConnection, stream: NatsStreamOptions, timeoutMs: number, log: Logger): Promise<void> {
  const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
  const windowNs = nanos(stream.duplicateWindowMs);
  for (let attempt = 1; ; attempt++) {
    const info = await streamInfo(jsm.streams, stream.name);
    if (info === null) {
      try {
        await jsm.streams.add({
          name: stream.name,
          subjects: stream.subjects,
          num_replicas: stream.replicas,
          duplicate_window: windowNs,
          storage: StorageType.File,
        });
        log.info({ stream: stream.name, subjects: stream.subjects, replicas: stream.replicas, duplicateWindowMs: stream.duplicateWindowMs }, 'created JetStream stream');
        return;
      } catch (error) {
        if (attempt < ENSURE_ATTEMPTS_MAX && error instanceof JetStreamApiError && error.apiError().err_code === ERR_STREAM_NAME_EXISTS) continue;
        throw error;
      }
    }
    const missing = stream.subjects.filter((s) => !info.config.subjects.includes(s));
    const widen = info.config.duplicate_window < windowNs;
    if (info.config.num_replicas !== stream.replicas) {
      log.warn({ stream: stream.name, replicas: info.config.num_replicas, configured: stream.replicas }, 'existing JetStream stream keeps its own replica count');
    }
    if (missing.length === 0 && !widen) return;
    await jsm.streams.update(stream.name, {
      subjects: [...info.config.subjects, ...missing],
      duplicate_window: Math.max(info.config.duplicate_window, windowNs),
    });
    log.info({ stream: stream.name, addedSubjects: missing, duplicateWindowMs: stream.duplicateWindowMs, widened: widen }, 'updated JetStream stream');
    return;
  }
}

async function streamInfo(streams: { info(name: string): Promise<StreamInfo> }, name: string): Promise<StreamInfo | null> {
  try {
    return await streams.info(name);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.apiError().err_code === ERR_STREAM_NOT_FOUND) return null;
    throw error;
  }
}
