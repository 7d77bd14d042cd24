import { connect, createInbox, PermissionViolationError } from '@nats-io/transport-node';
import type { Msg, NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { assert, EdgelogError } from '../../src/errors.js';
import type { EncodedMessage, OutgoingMessage, SendResult, Upstream } from '../upstream.js';
import { encodeNatsMessage, type NatsEncodedMessage } from './nats-encoding.js';
import { natsConnectError } from './nats-errors.js';
import { resolveNatsOptions, type NatsUpstreamOptions, type ResolvedNatsOptions } from './nats-options.js';
import { ensureStream } from './nats-stream.js';

export type { NatsUpstreamOptions, NatsStreamOptions } from './nats-options.js';

/**
 * Sends beyond this many unacknowledged messages mean the core's in-flight window is broken: the
 * core bounds in-flight messages far lower, and each pending ack holds its record in memory.
 */
export const PENDING_ACKS_MAX = 100_000;
/** Ack deadlines are checked this often at most: a timeout is noticed within a quarter of ackTimeoutMs. */
const ACK_SWEEP_INTERVAL_MS_MAX = 1_000;
/** ...and at least this far apart, so a tiny ackTimeoutMs in tests does not spin a timer. */
const ACK_SWEEP_INTERVAL_MS_MIN = 10;

/** A JetStream PubAck, or its error answer. */
interface PubAckReply {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

interface PendingAck {
  readonly subject: string;
  readonly deadlineMs: number;
  readonly resolve: (result: SendResult) => void;
  readonly reject: (error: EdgelogError) => void;
}

/** One connection's state: replaced on every connect(), so a late event of an old one changes nothing. */
interface Link {
  readonly nc: NatsConnection;
  /** Replies arrive on `${inbox}.${id}`; `id` keys {@link NatsUpstream} pending acks. */
  readonly inbox: string;
  /** Set once disconnect() or a drop has ended this link. */
  ended: boolean;
}

/**
 * The NATS JetStream upstream (issue 6): publishes each message with a reply subject under one
 * wildcard inbox and counts the PubAcks, rather than js.publish(), which costs a request (a
 * subscription and a timer) per message and tops out at ~22k/s here (DESIGN "Traps"). JetStream
 * drops resends by Nats-Msg-Id within the stream's duplicate window, so replication is exactly-once.
 * The client never reconnects by itself: the core does, with its backoff and jitter.
 */
export class NatsUpstream implements Upstream {
  readonly kind = 'nats';
  readonly target: string;
  private readonly opts: ResolvedNatsOptions;
  private readonly log: Logger;
  private link: Link | undefined;
  private readonly pending = new Map<string, PendingAck>();
  private nextId = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly disconnectListeners: ((error: Error) => void)[] = [];
  /** Bumped by connect() and disconnect(): a connect() that started before gives up its connection. */
  private generation = 0;

  constructor(options: NatsUpstreamOptions) {
    this.opts = resolveNatsOptions(options);
    this.target = this.opts.target;
    this.log = options.logger.child({ component: 'nats-upstream', target: this.target });
  }

  /** Connects to one of the servers, sets up the stream when configured so and the PubAck inbox. */
  async connect(): Promise<void> {
    assert(this.link === undefined || this.link.ended, 'connect() while connected: call disconnect() first');
    this.link = undefined;
    // A newer connect() or a disconnect() bumps it: this one then gives up its connection.
    const generation = ++this.generation;
    let nc: NatsConnection;
    try {
      nc = await connect(this.connectionOptions());
    } catch (error) {
      throw natsConnectError(error, this.target);
    }
    try {
      if (this.opts.stream?.create === true) await ensureStream(nc, this.opts.stream, this.opts.connectTimeoutMs, this.log);
      if (generation !== this.generation) throw new EdgelogError('UPSTREAM_UNAVAILABLE', `disconnect() or a newer connect() was called while connecting to NATS server ${this.target}`);
      const link: Link = { nc, inbox: createInbox(), ended: false };
      nc.subscribe(`${link.inbox}.*`, { callback: (error, msg) => this.onReply(link, error, msg) });
      // The subscription must reach the server before any publish that expects a reply on it.
      await nc.flush();
      if (nc.isClosed() || generation !== this.generation) throw new EdgelogError('UPSTREAM_UNAVAILABLE', `the connection to NATS server ${nc.getServer()} closed while connecting`);
      this.link = link;
      void nc.closed().then((error) => this.onClosed(link, error));
      void this.watchStatus(link);
      this.startSweep();
      this.log.info({ server: nc.getServer(), version: nc.info?.version, stream: this.opts.stream?.name }, 'connected to NATS');
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw natsConnectError(error, this.target);
    }
  }

  /** Renders the subject and headers; the bytes count everything that crosses the link for this message. */
  encode(message: OutgoingMessage): EncodedMessage {
    assert(message.records.length >= 1, 'a message holds at least one record');
    assert(this.opts.batch !== null || message.records.length === 1, 'several records in one message without batching');
    assert(this.opts.batch === null || message.records.length <= this.opts.batch.records, 'a batch larger than batch.records');
    return encodeNatsMessage(this.opts.gatewayId, this.opts.subject, this.opts.batch, message);
  }

  /** Publishes with a reply subject under the inbox; settles on the PubAck, an error answer, the ack timeout or a drop. */
  send(encoded: EncodedMessage): Promise<SendResult> {
    const m = encoded as NatsEncodedMessage;
    assert(typeof m.subject === 'string' && m.payload instanceof Uint8Array, 'send() takes what this upstream encode() returned');
    const link = this.link;
    if (link === undefined || link.ended) {
      return Promise.reject(new EdgelogError('UPSTREAM_UNAVAILABLE', `not connected to NATS server ${this.target}: the message stays in the log and is sent after the reconnect`));
    }
    assert(this.pending.size < PENDING_ACKS_MAX, `more than ${PENDING_ACKS_MAX} unacknowledged NATS messages: the core's in-flight window is not applied`);
    const id = (this.nextId++).toString(36);
    return new Promise<SendResult>((resolve, reject) => {
      // Deadlines on the monotonic clock: a step of the wall clock neither times out every ack nor stalls a lost one.
      this.pending.set(id, { subject: m.subject, deadlineMs: performance.now() + this.opts.ackTimeoutMs, resolve, reject });
      try {
        link.nc.publish(m.subject, m.payload, { reply: `${link.inbox}.${id}`, headers: m.headers });
      } catch (error) {
        this.pending.delete(id);
        reject(this.publishError(error, m));
      }
    });
  }

  /** The server (host:port) of the open connection, for status and logs; undefined while not connected. */
  connectedServer(): string | undefined {
    return this.link === undefined || this.link.ended ? undefined : this.link.nc.getServer();
  }

  onDisconnect(listener: (error: Error) => void): void {
    this.disconnectListeners.push(listener);
  }

  /** Closes the connection at once; sends still waiting for their PubAck reject UPSTREAM_UNAVAILABLE. */
  async disconnect(): Promise<void> {
    this.generation++;
    const link = this.link;
    if (link === undefined || link.ended) return;
    link.ended = true;
    this.stopSweep();
    this.rejectAll(`disconnected from NATS server ${this.target} before the PubAck came: the message is sent again from the checkpoint`);
    // close(), not drain(): drain would wait for acks that the core no longer counts on.
    await link.nc.close().catch(() => undefined);
    this.log.info('disconnected from NATS');
  }

  private connectionOptions(): NodeConnectionOptions {
    const o = this.opts;
    return {
      servers: o.servers,
      // The core reconnects, with its own backoff and jitter; a client that reconnected by itself
      // would hide the outage from the core and keep acks pending across it.
      reconnect: false,
      timeout: o.connectTimeoutMs,
      name: `edgelog-bridge-${o.gatewayId}`,
      ...(o.user !== undefined ? { user: o.user, pass: o.pass } : {}),
      ...(o.token !== undefined ? { token: o.token } : {}),
      // PEM contents read at construction; an undefined CA means the system's CAs.
      ...(o.tls !== undefined ? { tls: { ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key } } : {}),
    };
  }

  private onReply(link: Link, error: Error | null, msg: Msg): void {
    if (error !== null || link.ended) return;
    const id = msg.subject.slice(link.inbox.length + 1);
    const p = this.pending.get(id);
    // A reply after its timeout or after a disconnect: the send already rejected and will be resent.
    if (p === undefined) return;
    this.pending.delete(id);
    const code = msg.headers?.code ?? 0;
    if (code === 503) {
      p.reject(new EdgelogError('UPSTREAM_REFUSED', `no JetStream stream takes subject '${p.subject}' at ${link.nc.getServer()}: set the bridge's stream (stream.create with subjects that cover it) or create such a stream on the central side; in a cluster, the stream may be electing a leader after a node failure (the bridge resends after reconnecting)`));
      return;
    }
    if (code >= 300) {
      p.reject(new EdgelogError('UPSTREAM_REFUSED', `NATS answered ${msg.headers?.status ?? code} to the message on subject '${p.subject}'`));
      return;
    }
    let ack: PubAckReply;
    try {
      ack = msg.json<PubAckReply>();
    } catch {
      p.reject(new EdgelogError('UPSTREAM_REFUSED', `the answer on subject '${p.subject}' is not a JetStream PubAck: is a plain NATS subscriber, not a stream, replying on it?`));
      return;
    }
    if (ack.error !== undefined) {
      const e = ack.error;
      p.reject(new EdgelogError('UPSTREAM_REFUSED', `JetStream refused the message on subject '${p.subject}': ${e.description ?? 'no description'} (code ${e.code}, err_code ${e.err_code})`));
      return;
    }
    if (typeof ack.stream !== 'string' || typeof ack.seq !== 'number') {
      p.reject(new EdgelogError('UPSTREAM_REFUSED', `the answer on subject '${p.subject}' is not a JetStream PubAck: is a plain NATS subscriber, not a stream, replying on it?`));
      return;
    }
    p.resolve({ duplicate: ack.duplicate === true });
  }

  /** The connection closed: by disconnect() (nothing to do) or on its own (the server or the link went away). */
  private onClosed(link: Link, error: void | Error): void {
    if (link.ended) return;
    link.ended = true;
    this.stopSweep();
    const reason = error instanceof Error ? error.message : 'the server closed the connection or the link dropped';
    const message = `lost the connection to NATS server ${link.nc.getServer()} (${reason}): unacknowledged messages are sent again after the reconnect`;
    this.rejectAll(message);
    this.log.warn({ err: error instanceof Error ? error : undefined }, 'lost the connection to NATS');
    const dropped = new EdgelogError('UPSTREAM_UNAVAILABLE', message, { cause: error instanceof Error ? error : undefined });
    for (const listener of this.disconnectListeners) listener(dropped);
  }

  /**
   * A publish the account may not make is dropped by the server with an async -ERR, never a reply:
   * refuse the sends to that subject now rather than after the ack timeout.
   */
  private async watchStatus(link: Link): Promise<void> {
    for await (const status of link.nc.status()) {
      if (status.type !== 'error' || link.ended) continue;
      const error = status.error;
      this.log.warn({ err: error }, 'NATS server reported an error');
      if (!(error instanceof PermissionViolationError) || error.operation !== 'publish') continue;
      for (const [id, p] of this.pending) {
        if (p.subject !== error.subject) continue;
        this.pending.delete(id);
        p.reject(new EdgelogError('UPSTREAM_REFUSED', `NATS server ${link.nc.getServer()} does not allow this user to publish to '${p.subject}': grant it in the server's authorization settings or change the bridge's subject`, { cause: error }));
      }
    }
  }

  private publishError(error: unknown, m: NatsEncodedMessage): EdgelogError {
    const message = error instanceof Error ? error.message : String(error);
    if (/max_payload/.test(message)) {
      return new EdgelogError('UPSTREAM_REFUSED', `a message of ${m.bytes} bytes on subject '${m.subject}' exceeds the NATS server's max_payload of ${this.link?.nc.info?.max_payload} bytes: lower batch.records or raise max_payload on the server`, { cause: error });
    }
    return new EdgelogError('UPSTREAM_UNAVAILABLE', `publishing to NATS server ${this.target} failed: ${message}`, { cause: error });
  }

  private startSweep(): void {
    const intervalMs = Math.min(ACK_SWEEP_INTERVAL_MS_MAX, Math.max(ACK_SWEEP_INTERVAL_MS_MIN, Math.floor(this.opts.ackTimeoutMs / 4)));
    this.sweepTimer = setInterval(() => this.sweepExpired(), intervalMs);
    this.sweepTimer.unref();
  }

  private stopSweep(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** Every ack shares one timeout, so the Map's insertion order is deadline order: stop at the first one still due. */
  private sweepExpired(): void {
    const now = performance.now();
    for (const [id, p] of this.pending) {
      if (p.deadlineMs > now) return;
      this.pending.delete(id);
      p.reject(new EdgelogError('UPSTREAM_UNAVAILABLE', `no PubAck from NATS server ${this.target} within ${this.opts.ackTimeoutMs} ms for subject '${p.subject}': the message is sent again from the checkpoint`));
    }
  }

  private rejectAll(message: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(new EdgelogError('UPSTREAM_UNAVAILABLE', message));
  }
}

