import type { Logger } from 'pino';
import { decodeReading, detectFormat } from '../../devices/payload-codec.js';
import type { DeviceProfile } from '../../devices/profile.js';
import { EdgelogError } from '../errors.js';
import type { AppendResult, CommitLog } from '../log/commit-log.js';
import type { AppendRecord } from '../log/prepare-records.js';
import { ByteBudget } from './byte-budget.js';
import type { DeviceActivity } from './device-activity.js';
import { newBucket, takeToken, type TokenBucket } from './token-bucket.js';
import type { MappedTopic, TopicMapper } from './topic-mapping.js';

/** Readings that fail to decode or validate go here, with the reason in a header (never dropped). */
export const DEADLETTER_TOPIC = '_deadletter';

/** Bytes a record holds beyond its payload (key, headers, framing), for the ingest byte budget. */
const RECORD_OVERHEAD_BYTES = 256;

/** Dead-letter warnings per device: one line per minute, not one per reading (STYLE.md §9). */
const DEADLETTER_WARN_INTERVAL_MS = 60_000;
const DEADLETTER_WARN_DEVICES_MAX = 10_000;

export const CONTENT_TYPES = {
  json: 'application/json',
  edgebin: 'application/vnd.edgelog.edgebin',
  unknown: 'application/octet-stream',
} as const;

/** What the intake needs of the device registry (devices/registry.ts). */
export interface DeviceDirectory {
  get(id: string): { readonly profile: DeviceProfile } | undefined;
}

export interface IntakeOptions {
  log: CommitLog;
  devices: DeviceDirectory;
  /** The topic rules (config ingest.topicRules), shared by every transport. */
  mapper: TopicMapper;
  logger: Logger;
  /** Bytes taken off sockets and not yet committed; past it sessions wait (config ingest.maxPendingBytes). */
  maxPendingBytes: number;
  /** Per session; 0 for no limit (config ingest.maxReadingsPerSecond). */
  maxReadingsPerSecond: number;
  burstReadings: number;
  /**
   * What a stored reading's ack waits for besides its fsync, or null for nothing: a bridge's
   * upstream ack on topics configured `ack: upstream`. Always settles (falling back to the local ack).
   */
  ackGate?: (topic: string, partition: number, offset: number) => Promise<unknown> | null;
  /** Told of every reading stored, dead-lettered or refused, by device (the dashboard's device table). */
  activity?: DeviceActivity;
  /** The wall clock, ms since the epoch: the `received-at` header. */
  now?: () => number;
  /**
   * The monotonic clock, ms: the rate limit's token buckets and the dead-letter warning interval,
   * which a step back of the wall clock would otherwise stall (no refill) for as long as the step.
   * Default performance.now(); `now` when only that is given.
   */
  monotonicNow?: () => number;
}

/** Who sends readings on one connection. */
export interface SessionIdentity {
  /** The authenticated device, or null for an anonymous client. */
  deviceId: string | null;
  transport: 'mqtt' | 'ws';
  /** Names the connection in logs: client id and remote address. */
  client: string;
}

/** Where a reading was stored. */
export interface StoredReading {
  topic: string;
  partition: number;
  offset: number;
  /** Set when the reading did not decode or validate and went to the dead-letter topic instead. */
  deadLetterReason?: string;
}

export interface IntakeStats {
  stored: number;
  deadLettered: number;
  /** Readings refused (not stored), by error code. */
  refused: Record<string, number>;
  /** True from the first LOG_FULL refusal until an append succeeds again. */
  logFull: boolean;
  pendingBytes: number;
}

interface Planned {
  topic: string;
  record: AppendRecord;
  bytes: number;
  deadLetterReason: string | undefined;
  tokenTaken: boolean;
  budgetHeld: boolean;
  resolve: (stored: StoredReading) => void;
  reject: (error: unknown) => void;
}

/**
 * The one path from a connection to the log, shared by MQTT and WebSocket ingest: ACL, decoding
 * by the device's profile (or the dead-letter topic), rate limit, the byte budget that turns a
 * slow log into TCP backpressure, and the append whose durable commit the ack waits for.
 *
 * The byte budget covers readings admitted and not yet committed. Readings still queued in a
 * session (waiting for their turn) are bounded by the transport: aedes reads a client's socket
 * again only once every packet of its last read is handled; WebSocket ingest pauses a connection
 * past its own bound (ws-connection.ts).
 */
export class Intake {
  private readonly budget: ByteBudget;
  private readonly deadLetterWarnedMs = new Map<string, number>();
  private readonly counts = { stored: 0, deadLettered: 0, refused: {} as Record<string, number> };
  private logFull = false;
  private inflight = 0;
  private idle: (() => void) | null = null;
  private closing: Promise<void> | null = null;
  readonly now: () => number;
  readonly monotonicNow: () => number;
  readonly mapper: TopicMapper;

  constructor(readonly opts: IntakeOptions) {
    this.mapper = opts.mapper;
    this.budget = new ByteBudget(opts.maxPendingBytes);
    this.now = opts.now ?? Date.now;
    this.monotonicNow = opts.monotonicNow ?? opts.now ?? (() => performance.now());
  }

  /** A session per connection: its readings reach the log in the order they were submitted. */
  openSession(identity: SessionIdentity): IntakeSession {
    return new IntakeSession(this, identity);
  }

  stats(): IntakeStats {
    return { ...this.counts, refused: { ...this.counts.refused }, logFull: this.logFull, pendingBytes: this.budget.used };
  }

  /** Counts a refusal made before a reading reached a session (auth, topic mapping). */
  countRefusal(code: string): void {
    this.counts.refused[code] = (this.counts.refused[code] ?? 0) + 1;
  }

  /**
   * Starts no more appends and waits for the ones in flight, so their acks go out before the
   * connections close. Readings that arrive meanwhile wait, unacknowledged, until their
   * connection closes (the client sends them again to the next gateway run). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.inflight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    })();
    return this.closing;
  }

  get isClosing(): boolean {
    return this.closing !== null;
  }

  /**
   * Checks the ACL, decodes the payload by the device's profile and builds the record: to its
   * topic, or to the dead-letter topic with the reason. Throws the refusal when the reading may
   * not be stored at all.
   */
  plan(identity: SessionIdentity, mapped: MappedTopic, payload: Buffer, mqttTopic: string | undefined): Omit<Planned, 'resolve' | 'reject'> {
    const { deviceId } = mapped;
    if (identity.deviceId !== null && deviceId !== identity.deviceId) {
      throw new EdgelogError('NOT_AUTHORIZED', `device '${identity.deviceId}' may publish only under its own id (devices/${identity.deviceId}/{stream}), not as '${deviceId}'`);
    }
    const entry = this.opts.devices.get(deviceId);
    if (identity.deviceId === null && entry) {
      throw new EdgelogError('NOT_AUTHORIZED', `device '${deviceId}' is registered: it must connect with its own credentials to publish`);
    }
    const headers: Record<string, string> = { 'device-id': deviceId, 'received-at': String(this.now()) };
    if (mqttTopic !== undefined) headers['mqtt-topic'] = mqttTopic;
    let deadLetterReason: string | undefined;
    if (entry) {
      headers['profile'] = entry.profile.name;
      try {
        decodeReading(entry.profile, mapped.stream, payload);
      } catch (error) {
        if (!(error instanceof EdgelogError && error.code === 'INVALID_PAYLOAD')) throw error;
        deadLetterReason = error.message;
      }
    }
    headers['content-type'] = CONTENT_TYPES[detectFormat(payload) ?? 'unknown'];
    let topic = mapped.topic;
    if (deadLetterReason !== undefined) {
      headers['deadletter-reason'] = deadLetterReason;
      headers['original-topic'] = mapped.topic;
      topic = DEADLETTER_TOPIC;
    }
    return {
      topic,
      record: { key: mapped.key, value: payload, headers },
      bytes: payload.length + RECORD_OVERHEAD_BYTES,
      deadLetterReason,
      tokenTaken: false,
      budgetHeld: false,
    };
  }

  /**
   * What a planned reading must wait for before its append, or null when it may go now: its
   * rate-limit token, its topic's creation on first use, its share of the byte budget.
   */
  admissionWait(item: Planned, bucket: TokenBucket): Promise<void> | null {
    const { maxReadingsPerSecond, burstReadings } = this.opts;
    if (!item.tokenTaken) {
      item.tokenTaken = true;
      if (maxReadingsPerSecond > 0) {
        const waitMs = takeToken(bucket, this.monotonicNow(), maxReadingsPerSecond, burstReadings);
        if (waitMs > 0) return new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    }
    // The log says 'topic created' itself: one line per state change.
    if (!this.opts.log.hasTopic(item.topic)) return this.opts.log.ensureTopic(item.topic);
    if (!item.budgetHeld) {
      if (this.budget.tryAcquire(item.bytes)) item.budgetHeld = true;
      else return this.budget.acquire(item.bytes).then(() => void (item.budgetHeld = true));
    }
    return null;
  }

  /** Starts the append of an admitted reading; it settles once the record is durable (or refused). */
  write(item: Planned, identity: SessionIdentity): void {
    this.inflight += 1;
    this.opts.log.append(item.topic, [item.record]).then(
      (results: AppendResult[]) => {
        const [result] = results as [AppendResult];
        this.settled(item);
        if (this.logFull) {
          this.logFull = false;
          this.opts.logger.info('the log has space again: ingest resumed');
        }
        if (item.deadLetterReason === undefined) {
          this.counts.stored += 1;
          this.opts.activity?.stored(deviceOf(item));
          const stored = { topic: item.topic, partition: result.partition, offset: result.offset };
          const gate = this.opts.ackGate?.(item.topic, result.partition, result.offset) ?? null;
          if (gate === null) item.resolve(stored);
          else void gate.finally(() => item.resolve(stored));
        } else {
          this.counts.deadLettered += 1;
          this.opts.activity?.deadLettered(deviceOf(item), item.deadLetterReason);
          this.warnDeadLetter(identity, item);
          item.resolve({ topic: item.topic, partition: result.partition, offset: result.offset, deadLetterReason: item.deadLetterReason });
        }
      },
      (error: unknown) => {
        this.settled(item);
        this.refused(error, deviceOf(item));
        item.reject(error);
      },
    );
  }

  /** Fails a reading that never reached the log; `count` false when its connection closed (the client sends it again). */
  drop(item: Planned, error: unknown, count = true): void {
    if (item.budgetHeld) this.budget.release(item.bytes);
    item.budgetHeld = false;
    if (count) this.refused(error, deviceOf(item));
    item.reject(error);
  }

  private settled(item: Planned): void {
    if (item.budgetHeld) this.budget.release(item.bytes);
    item.budgetHeld = false;
    this.inflight -= 1;
    if (this.inflight === 0 && this.idle) {
      this.idle();
      this.idle = null;
    }
  }

  /** Counts a refusal of a reading by `deviceId` (the device tables and the totals). */
  refused(error: unknown, deviceId: string): void {
    const code = error instanceof EdgelogError ? error.code : 'INTERNAL';
    this.countRefusal(code);
    this.opts.activity?.refused(deviceId, code, error instanceof Error ? error.message : String(error));
    if (code === 'LOG_FULL' && !this.logFull) {
      this.logFull = true;
      // One line per state change: refusals go on until an append succeeds again.
      this.opts.logger.warn({ reason: (error as Error).message }, 'the log is full: refusing readings until space is freed');
    }
  }

  private warnDeadLetter(identity: SessionIdentity, item: Planned): void {
    const deviceId = deviceOf(item);
    const nowMs = this.monotonicNow();
    const last = this.deadLetterWarnedMs.get(deviceId);
    if (last !== undefined && nowMs - last < DEADLETTER_WARN_INTERVAL_MS) return;
    if (this.deadLetterWarnedMs.size >= DEADLETTER_WARN_DEVICES_MAX) this.deadLetterWarnedMs.clear();
    this.deadLetterWarnedMs.set(deviceId, nowMs);
    this.opts.logger.warn({ deviceId, client: identity.client, reason: item.deadLetterReason }, 'reading stored in the dead-letter topic');
  }
}

/** The device a planned reading came from (plan() always sets the header). */
function deviceOf(item: Pick<Planned, 'record'>): string {
  return item.record.headers!['device-id'] as string;
}

/**
 * The readings of one connection, in order. Each reading waits for its admission (rate, topic,
 * budget) behind the ones before it, then its append starts; many appends are in flight at
 * once, and since the log commits appends in the order they were made, a device's readings stay
 * in order in its partition (issue 4, "Per-device order is kept").
 */
export class IntakeSession {
  private readonly queue: Planned[] = [];
  private readonly bucket: TokenBucket;
  private pumping = false;
  private closed = false;

  constructor(
    private readonly intake: Intake,
    readonly identity: SessionIdentity,
  ) {
    this.bucket = newBucket(intake.opts.burstReadings, intake.monotonicNow());
  }

  /** Readings taken but not yet appended (waiting for their admission). */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Submits a reading mapped to its topic; resolves once it is durable in the log (in its topic
   * or the dead-letter topic), rejects with the refusal otherwise.
   */
  submit(mapped: MappedTopic, payload: Buffer, mqttTopic?: string): Promise<StoredReading> {
    let planned: Omit<Planned, 'resolve' | 'reject'>;
    try {
      if (this.closed) throw new EdgelogError('GATEWAY_CLOSING', 'the connection is closing');
      planned = this.intake.plan(this.identity, mapped, payload, mqttTopic);
    } catch (error) {
      // A device publishing under another's id is counted as itself, not as the one it named.
      this.intake.refused(error, this.identity.deviceId ?? mapped.deviceId);
      return Promise.reject(error);
    }
    return new Promise<StoredReading>((resolve, reject) => {
      this.queue.push({ ...planned, resolve, reject });
      // Runs synchronously up to its first wait: with nothing to wait for, the append starts now.
      if (!this.pumping && !this.intake.isClosing) void this.pump();
    });
  }

  /** Fails the readings still waiting (their clients get no ack and send them again). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.pumping) this.failWaiting();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.closed && !this.intake.isClosing) {
        const item = this.queue[0]!;
        try {
          for (let wait = this.intake.admissionWait(item, this.bucket); wait; wait = this.intake.admissionWait(item, this.bucket)) {
            await wait;
            if (this.closed || this.intake.isClosing) break;
          }
        } catch (error) {
          this.queue.shift();
          this.intake.drop(item, error);
          continue;
        }
        if (this.closed || this.intake.isClosing) break;
        this.queue.shift();
        this.intake.write(item, this.identity);
      }
    } finally {
      this.pumping = false;
      if (this.closed) this.failWaiting();
    }
  }

  private failWaiting(): void {
    // Most connections close with nothing waiting: no error (and its stack trace) for them.
    if (this.queue.length === 0) return;
    const error = this.intake.isClosing
      ? new EdgelogError('GATEWAY_CLOSING', 'the gateway shut down before the reading was stored; send it again when it is back')
      : new EdgelogError('GATEWAY_CLOSING', 'the connection closed before the reading was stored');
    for (const item of this.queue.splice(0)) this.intake.drop(item, error, this.intake.isClosing);
  }
}
