/**
 * A device's connection to the gateway, whatever the transport: the device owns its buffer,
 * in-flight window and reconnects; a link only connects, sends and reports how each send ended.
 * One link per connection attempt: after `closed` (or `end`) it reports nothing more.
 */

/** One reading (or fault-injected payload) to send. */
export interface Outgoing {
  /** The stream's name in the device's profile. */
  readonly stream: string;
  readonly payload: Buffer;
  /** True when `payload` is a compact JSON object's text (the profile's json format), so a JSON transport can carry it as is. */
  readonly json: boolean;
}

/** How one send ended, as the gateway answered it. */
export type SendOutcome =
  /** Stored: a QoS 1 PUBACK, or a WebSocket ingest ack; `deadLetter` when the gateway stored it in its dead-letter topic. */
  | { readonly kind: 'acked'; readonly deadLetter?: string }
  /** QoS 0: handed to the socket, never acknowledged. */
  | { readonly kind: 'sent' }
  /** Not stored (WebSocket ingest error): `retryable` says whether sending it again later can succeed. */
  | { readonly kind: 'refused'; readonly code: string; readonly retryable: boolean };

export interface LinkEvents {
  /** The link may send: CONNACK, or the WebSocket ingest auth-ok. */
  open(): void;
  /** The link is gone (closed, refused, timed out); sends not yet answered never will be. */
  closed(reason: string): void;
  /** Something worth counting happened (ECONNREFUSED, AUTH_FAILED, WS_CLOSE_1009, ...). */
  error(code: string): void;
}

export interface Link {
  /** Sends in order; `done(i, outcome)` is called at most once per item, only while the link is up. */
  send(items: readonly Outgoing[], done: (index: number, outcome: SendOutcome) => void): void;
  /** Ends the link without any further event: gracefully (bounded by `timeoutMs`) or at once. */
  end(graceful: boolean, timeoutMs: number): Promise<void>;
}
