import type { StoredRecord } from '../src/index.js';

/**
 * What the bridge core (bridge.ts) asks of an upstream engine (MQTT broker, NATS JetStream). The
 * core owns everything the contract says about order, checkpoints, windows, priorities, bandwidth
 * and reconnects; an upstream only turns records into its protocol's messages and reports acks.
 * Every upstream passes the contract suite in test/bridges/upstream-contract.ts.
 */

/** Consecutive records of one partition of one log topic, sent upstream as one message. */
export interface OutgoingMessage {
  readonly topic: string;
  readonly partition: number;
  /** One record, or a batch (bridge option `batch`); offsets are consecutive. */
  readonly records: readonly StoredRecord[];
}

/** A message encoded for the wire: its size is known before it is sent (the bandwidth cap counts it). */
export interface EncodedMessage {
  readonly message: OutgoingMessage;
  /** Bytes this message costs on the link: payload plus topic/subject and properties/headers. */
  readonly bytes: number;
}

/** What the upstream said when it acknowledged a message. */
export interface SendResult {
  /** The upstream recognised the message as one it already stored (JetStream's duplicate window). */
  readonly duplicate: boolean;
}

/**
 * A connection to one upstream engine. The core calls connect(), then encode()+send() many times
 * without waiting (its in-flight window bounds how many), and disconnect() on close or after a
 * failure. Acks may arrive in any order; the core orders them.
 */
export interface Upstream {
  /** 'mqtt' or 'nats', for logs and status. */
  readonly kind: string;
  /** Where it connects, for logs and status, without credentials. */
  readonly target: string;
  /**
   * Opens a connection and resolves once messages can be sent. Rejects with an EdgelogError
   * UPSTREAM_UNAVAILABLE (retryable) when the upstream cannot be reached, or UPSTREAM_REFUSED when
   * it refuses this connection (bad credentials, TLS failure): the core retries both with backoff.
   */
  connect(): Promise<void>;
  /** Encodes a message (sync). Throws only on a programmer's error: records are already validated. */
  encode(message: OutgoingMessage): EncodedMessage;
  /**
   * Sends one encoded message; resolves once the upstream has acknowledged it (MQTT QoS 1 PUBACK,
   * JetStream PubAck). Rejects with UPSTREAM_UNAVAILABLE when the connection drops or the ack does
   * not come within the upstream's ack timeout, or UPSTREAM_REFUSED when the upstream answered
   * with an error (MQTT 5 reason code ≥ 0x80, JetStream error). Never called before connect() resolved.
   */
  send(encoded: EncodedMessage): Promise<SendResult>;
  /** Registers the listener for a connection that drops on its own (not through disconnect()). */
  onDisconnect(listener: (error: Error) => void): void;
  /** Closes the connection; sends still in flight reject with UPSTREAM_UNAVAILABLE. Idempotent; connect() may follow. */
  disconnect(): Promise<void>;
}
