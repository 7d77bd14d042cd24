/**
 * The frames of WebSocket ingest (docs/ws-ingest.md): parsing what a client sends, field by field,
 * with messages that name what is wrong and what is allowed, and building the answers. Pure
 * functions: no sockets, no log, no registry.
 */
import { deviceIdError } from '../../devices/device-id.js';

/**
 * Readings in one publish frame. Bounds the work one frame starts and the size of its answer;
 * 1,000 is the intake's rate-limit burst by default, enough to empty a device's backlog quickly.
 */
export const MAX_READINGS_PER_FRAME = 1_000;
/** A frame id is echoed in its answer, so it is bounded like any other input. */
export const MAX_FRAME_ID_CHARS = 128;
/** Tokens are 32 characters (devices/credentials.ts generateSecret); room for human-chosen ones, never megabytes. */
export const MAX_TOKEN_CHARS = 1_024;

export type FrameId = string | number;

/** `{"type":"auth","deviceId":"…","token":"…"}`: the first frame of every connection. */
export interface AuthFrame {
  readonly type: 'auth';
  readonly deviceId: string;
  /** Absent for an anonymous client. */
  readonly token: string | undefined;
}

/** One reading of a publish frame: its stream and the payload bytes to store. */
export interface FrameReading {
  readonly stream: string;
  readonly payload: Buffer;
}

/** A publish frame, one reading or a batch, normalized to a list. */
export interface PublishFrame {
  readonly type: 'publish';
  readonly id: FrameId | undefined;
  readonly readings: readonly FrameReading[];
}

/** A frame that could not be understood; `message` names what is wrong and what is allowed. */
export interface InvalidFrame {
  readonly type: 'invalid';
  /** The frame's id when it had a valid one, so the answer can echo it. */
  readonly id: FrameId | undefined;
  readonly message: string;
}

export type ClientFrame = AuthFrame | PublishFrame | InvalidFrame;

export const AUTH_FRAME_SHAPE = '{"type":"auth","deviceId":"…","token":"…"}';
const FRAME_TYPES = "'auth' (the first frame) and 'publish'";
const AUTH_KEYS = ['type', 'deviceId', 'token'];
const PUBLISH_KEYS = ['type', 'id', 'stream', 'payload', 'payloadBase64', 'readings'];
const READING_KEYS = ['stream', 'payload', 'payloadBase64'];
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

class Invalid extends Error {}

/** Parses one text frame from a client. Never throws: what cannot be understood is an {@link InvalidFrame}. */
export function parseClientFrame(text: string): ClientFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid(undefined, `a frame must be a JSON object, got text that is not JSON: ${clip(text, 60)}`);
  }
  if (!isObject(value)) return invalid(undefined, `a frame must be a JSON object with a "type" (${FRAME_TYPES}), got ${describe(value)}`);
  const type = value['type'];
  if (type === 'auth') return parseAuth(value);
  if (type === 'publish') return parsePublish(value);
  if (type === undefined) return invalid(undefined, `a frame needs a "type": ${FRAME_TYPES}`);
  return invalid(undefined, `unknown frame type ${describe(type)}; the types are ${FRAME_TYPES}`);
}

function parseAuth(frame: Record<string, unknown>): ClientFrame {
  const unknown = Object.keys(frame).filter((k) => !AUTH_KEYS.includes(k));
  if (unknown.length > 0) return invalid(undefined, `unknown key ${quoteList(unknown)} in the auth frame; it is ${AUTH_FRAME_SHAPE} (token omitted for an anonymous client)`);
  const deviceId = frame['deviceId'];
  const idError = deviceIdError(deviceId);
  if (idError !== undefined) return invalid(undefined, `the auth frame's "deviceId" ${idError}`);
  const token = frame['token'];
  if (token === undefined || token === null) return { type: 'auth', deviceId: deviceId as string, token: undefined };
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS) {
    return invalid(undefined, `the auth frame's "token" must be a string of 1 to ${MAX_TOKEN_CHARS} characters, or be left out for an anonymous client`);
  }
  return { type: 'auth', deviceId: deviceId as string, token };
}

function parsePublish(frame: Record<string, unknown>): ClientFrame {
  const rawId = frame['id'];
  const idOk = rawId === undefined || (typeof rawId === 'string' && rawId.length > 0 && rawId.length <= MAX_FRAME_ID_CHARS) || (typeof rawId === 'number' && Number.isFinite(rawId));
  if (!idOk) return invalid(undefined, `"id" must be a string of 1 to ${MAX_FRAME_ID_CHARS} characters or a number, got ${describe(rawId)}`);
  const id = rawId as FrameId | undefined;
  try {
    const unknown = Object.keys(frame).filter((k) => !PUBLISH_KEYS.includes(k));
    if (unknown.length > 0) {
      throw new Invalid(`unknown key ${quoteList(unknown)} in the publish frame; its keys are ${PUBLISH_KEYS.join(', ')} (one reading: stream and payload or payloadBase64; a batch: readings)`);
    }
    if (frame['readings'] === undefined) return { type: 'publish', id, readings: [parseReading(frame, '')] };
    const single = READING_KEYS.filter((k) => frame[k] !== undefined);
    if (single.length > 0) throw new Invalid(`a publish frame has either "readings" (a batch) or ${quoteList(single)} (one reading), not both`);
    const list = frame['readings'];
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_READINGS_PER_FRAME) {
      throw new Invalid(`"readings" must be a list of 1 to ${MAX_READINGS_PER_FRAME} readings ({"stream":…,"payload":{…}}), got ${Array.isArray(list) ? `${list.length} readings` : describe(list)}; send more in further frames`);
    }
    const readings = list.map((item: unknown, i) => {
      if (!isObject(item)) throw new Invalid(`readings[${i}] must be an object {"stream":…,"payload":{…}}, got ${describe(item)}`);
      const extra = Object.keys(item).filter((k) => !READING_KEYS.includes(k));
      if (extra.length > 0) throw new Invalid(`readings[${i}]: unknown key ${quoteList(extra)}; a reading's keys are ${READING_KEYS.join(', ')}`);
      return parseReading(item, `readings[${i}].`);
    });
    return { type: 'publish', id, readings };
  } catch (error) {
    if (error instanceof Invalid) return invalid(id, error.message);
    throw error;
  }
}

/** One reading's stream and payload; `at` prefixes the field names in messages (`readings[3].`). */
function parseReading(r: Record<string, unknown>, at: string): FrameReading {
  const stream = r['stream'];
  if (typeof stream !== 'string') throw new Invalid(`${at}stream must be a string naming the reading's stream (its log topic), got ${describe(stream)}`);
  const payload = r['payload'];
  const base64 = r['payloadBase64'];
  if (payload !== undefined && base64 !== undefined) throw new Invalid(`${at}payload and ${at}payloadBase64 are alternatives: send one of them`);
  if (payload !== undefined) {
    if (!isObject(payload)) throw new Invalid(`${at}payload must be a JSON object (stored as its JSON text), got ${describe(payload)}; send other bytes as payloadBase64`);
    let text: string;
    try {
      text = JSON.stringify(payload);
    } catch {
      throw new Invalid(`${at}payload is nested too deeply to store`);
    }
    return { stream, payload: Buffer.from(text, 'utf8') };
  }
  if (base64 === undefined) throw new Invalid(`${at}payload is missing: send payload (a JSON object) or payloadBase64 (any bytes, e.g. edgebin)`);
  const bytes = typeof base64 === 'string' ? decodeBase64(base64) : undefined;
  if (bytes === undefined || bytes.length === 0) {
    throw new Invalid(`${at}payloadBase64 must be non-empty base64 (RFC 4648 §4: A-Z a-z 0-9 + /, padding optional), got ${describe(base64)}`);
  }
  return { stream, payload: bytes };
}

/** Strict base64: Node's decoder skips bad characters silently, so a typo would store wrong bytes. */
export function decodeBase64(text: string): Buffer | undefined {
  if (!BASE64.test(text)) return undefined;
  const bare = text.replace(/=+$/, '');
  if (bare.length % 4 === 1) return undefined;
  if (text.length !== bare.length && text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(bare, 'base64');
  // Canonical: non-zero bits after the last byte would be dropped by the decoder.
  if (bytes.toString('base64').replace(/=+$/, '') !== bare) return undefined;
  return bytes;
}

/** Where a reading was stored, or why it was not, as one entry of an answer's `results`. */
export type ReadingOutcome =
  | { readonly topic: string; readonly partition: number; readonly offset: number; readonly deadLetter?: string }
  | { readonly error: ReadingError };

export interface ReadingError {
  readonly code: string;
  readonly message: string;
  readonly retryable: boolean;
}

export interface AuthOkInfo {
  readonly deviceId: string;
  readonly anonymous: boolean;
  readonly maxReadingsPerFrame: number;
  readonly maxFrameBytes: number;
}

/** `{"type":"auth-ok",…}`: the connection may publish; its limits, so clients can size their batches. */
export function authOkFrame(info: AuthOkInfo): string {
  return JSON.stringify({
    type: 'auth-ok',
    deviceId: info.deviceId,
    anonymous: info.anonymous,
    limits: { maxReadingsPerFrame: info.maxReadingsPerFrame, maxFrameBytes: info.maxFrameBytes },
  });
}

/** An error frame that refuses a whole frame (nothing of it was stored), or the connection. */
export function errorFrame(id: FrameId | undefined, error: ReadingError): string {
  return JSON.stringify({ type: 'error', ...(id === undefined ? {} : { id }), code: error.code, message: error.message, retryable: error.retryable });
}

/**
 * The answer to a publish frame once every reading has settled: an ack when all were stored
 * (dead letters included), otherwise an error frame whose `results` say which were stored and
 * which to send again.
 */
export function answerFrame(id: FrameId | undefined, outcomes: readonly ReadingOutcome[]): string {
  const errors = outcomes.flatMap((o) => ('error' in o ? [o.error] : []));
  const idField = id === undefined ? {} : { id };
  if (errors.length === 0) return JSON.stringify({ type: 'ack', ...idField, results: outcomes });
  const [first] = errors as [ReadingError];
  const message =
    outcomes.length === 1
      ? first.message
      : `${errors.length} of ${outcomes.length} readings were not stored (the first: ${first.message}); results says which, send those again` +
        (errors.length < outcomes.length ? ' (the others are stored)' : '');
  // Retryable only if every refusal is: then resending the failed readings can succeed.
  return JSON.stringify({ type: 'error', ...idField, code: first.code, message, retryable: errors.every((e) => e.retryable), results: outcomes });
}

function invalid(id: FrameId | undefined, message: string): InvalidFrame {
  return { type: 'invalid', id, message };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(clip(value, 40))}`;
  return `${typeof value} ${String(value)}`;
}

function quoteList(keys: readonly string[]): string {
  return keys.slice(0, 5).map((k) => JSON.stringify(clip(k, 40))).join(', ') + (keys.length > 5 ? ` and ${keys.length - 5} more` : '');
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
