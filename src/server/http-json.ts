/**
 * JSON over plain HTTP for the admin API (docs/api.md): bounded, safely parsed request bodies,
 * JSON answers, and errors as `{"error":{"code","message","retryable"}}` with an HTTP status
 * mapped from the EdgelogError code. Nothing here ever sends a stack trace.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EdgelogError, type ErrorCode } from '../errors.js';

/** Admin requests are small JSON objects (a topic's settings, a reset target): 64 KiB leaves ample room and bounds what one request holds in memory. */
export const MAX_API_BODY_BYTES = 64 * 1024;

/**
 * Bytes of an oversize body read and thrown away (never held) so that the client gets to read the
 * 413 rather than a connection reset while it is still sending; past it the connection is closed.
 */
const MAX_DISCARD_BYTES = 1024 * 1024;

/** Seconds a client is told to wait (Retry-After) after a 503: the conditions behind it clear fast or not at all. */
const RETRY_AFTER_SECONDS = 1;

/** HTTP status per error code; a code not listed is a server-side failure (500). */
const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  INVALID_TOPIC_NAME: 400,
  UNKNOWN_PARTITION: 400,
  OFFSET_OUT_OF_RANGE: 400,
  OFFSET_AHEAD: 400,
  AUTH_FAILED: 401,
  NOT_AUTHORIZED: 403,
  UNKNOWN_TOPIC: 404,
  UNKNOWN_GROUP: 404,
  UNKNOWN_BRIDGE: 404,
  UNKNOWN_DEVICE: 404,
  UNKNOWN_ROUTE: 404,
  METHOD_NOT_ALLOWED: 405,
  TOPIC_EXISTS: 409,
  GROUP_NOT_EMPTY: 409,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  LOG_FULL: 507,
  LOG_OVERLOADED: 503,
  LOG_CLOSED: 503,
  GATEWAY_CLOSING: 503,
  API_BUSY: 503,
};

/** The HTTP status that answers an error with this code. */
export function statusOf(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

/** Answers with a JSON body; `no-store` because every answer is the log's state at this moment. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** Answers with `{"error":{"code","message","retryable"}}` and the status of its code. */
export function sendError(res: ServerResponse, error: EdgelogError, headers: Record<string, string> = {}): void {
  const status = statusOf(error.code);
  const retry: Record<string, string> = status === 503 ? { 'retry-after': String(RETRY_AFTER_SECONDS) } : {};
  sendJson(res, status, { error: { code: error.code, message: error.message, retryable: error.retryable } }, { ...retry, ...headers });
}

/** Whether a Content-Type header names JSON (`application/json`, any parameters). */
export function isJsonContentType(header: string | undefined): boolean {
  return (header ?? '').split(';')[0]!.trim().toLowerCase() === 'application/json';
}

/**
 * Reads a request's JSON body: refuses another Content-Type (415), more than
 * {@link MAX_API_BODY_BYTES} (413), bytes that are not UTF-8 or text that is not JSON (400).
 * Resolves to undefined for an empty body. An oversize body is drained up to MAX_DISCARD_BYTES so
 * the client reads the answer; past that the response closes the connection.
 */
export function readJsonBody(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (!isJsonContentType(req.headers['content-type'])) {
      const given = req.headers['content-type'] === undefined ? 'no Content-Type' : `Content-Type '${truncate(req.headers['content-type'])}'`;
      reject(new EdgelogError('UNSUPPORTED_MEDIA_TYPE', `the body must be JSON sent with Content-Type: application/json; this request has ${given}`));
      return;
    }
    const tooLarge = () =>
      new EdgelogError('BODY_TOO_LARGE', `the body is over ${MAX_API_BODY_BYTES} bytes, the most an /api request may send; send only the fields docs/api.md lists`);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_API_BODY_BYTES + MAX_DISCARD_BYTES) {
      // Not worth reading to the end: answer and close.
      res.setHeader('connection', 'close');
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received <= MAX_API_BODY_BYTES) chunks.push(chunk);
      else chunks.length = 0;
      if (received > MAX_API_BODY_BYTES + MAX_DISCARD_BYTES) {
        stop();
        req.pause();
        res.setHeader('connection', 'close');
        reject(tooLarge());
      }
    };
    const onEnd = () => {
      stop();
      if (received > MAX_API_BODY_BYTES) return reject(tooLarge());
      try {
        resolve(parseJson(Buffer.concat(chunks, received)));
      } catch (error) {
        reject(error);
      }
    };
    const onError = (error: Error) => {
      stop();
      // The client went away mid-body; nobody reads the answer, but the handler must end.
      reject(new EdgelogError('INVALID_ARGUMENT', `the request body did not arrive: ${error.message}`));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseJson(bytes: Buffer): unknown {
  if (bytes.length === 0) return undefined;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new EdgelogError('INVALID_ARGUMENT', 'the body is not UTF-8 text: send JSON encoded as UTF-8');
  }
  try {
    // JSON.parse makes `__proto__` an own property, never the prototype: parsed input cannot pollute objects.
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new EdgelogError('INVALID_ARGUMENT', `the body is not valid JSON (${(error as Error).message})`);
  }
}

function truncate(text: string): string {
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
