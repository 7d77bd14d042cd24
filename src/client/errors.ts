import type { ErrorCode } from '../errors.js';

/**
 * Conditions the client itself reports (the gateway's own refusals carry its codes, docs/errors.md):
 * - `GATEWAY_UNREACHABLE`: the WebSocket could not be opened (nothing listens, wrong path, timeout).
 * - `CONNECTION_LOST`: the connection closed under a consumer or producer that was not closing.
 * - `CLIENT_CLOSED`: a call after `close()`, or one still waiting when `close()` ended it.
 * - `PROTOCOL_ERROR`: the gateway sent something this client does not understand (a version mismatch).
 */
export type ClientErrorCode = 'GATEWAY_UNREACHABLE' | 'CONNECTION_LOST' | 'CLIENT_CLOSED' | 'PROTOCOL_ERROR';

/** Codes whose condition may clear by itself: the same call on a new connection, or later, can succeed. */
const RETRYABLE = new Set<string>(['GATEWAY_UNREACHABLE', 'CONNECTION_LOST', 'GATEWAY_CLOSING', 'LOG_FULL', 'LOG_OVERLOADED', 'LOG_IO_ERROR', 'STALE_GENERATION', 'INTERNAL']);

/**
 * What the client rejects and throws with: the gateway's refusal (its `code` and message, which
 * names what was wrong and what is allowed), or a condition of the connection ({@link ClientErrorCode}).
 */
export class EdgelogClientError extends Error {
  override name = 'EdgelogClientError';
  readonly code: ErrorCode | ClientErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode | ClientErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options?.retryable ?? RETRYABLE.has(code);
  }
}

/** An error frame from the gateway as an error to reject with. */
export function gatewayError(frame: Record<string, unknown>): EdgelogClientError {
  const code = (typeof frame['code'] === 'string' ? frame['code'] : 'INTERNAL') as ErrorCode;
  const message = typeof frame['message'] === 'string' ? frame['message'] : `the gateway refused the request (${code})`;
  return new EdgelogClientError(code, message, typeof frame['retryable'] === 'boolean' ? { retryable: frame['retryable'] } : undefined);
}
