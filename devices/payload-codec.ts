import { PayloadError } from './errors.js';
import { BINARY_TYPE_INFO, findStream } from './profile.js';
import type { DeviceProfile, FieldSpec, PayloadFormat, StreamSpec } from './profile.js';

/** One reading of one stream, as a device sends it (devices/README.md "Payload formats"). */
export interface Reading {
  /** The device's reading counter, 0 at boot, +1 per reading (uint32). */
  readonly seq: number;
  /** The device's clock when it sampled, in ms since the Unix epoch; may be skewed. */
  readonly ts: number;
  /** One value per field of the stream, rounded to the field's resolution. */
  readonly values: Readonly<Record<string, number>>;
}

/** First byte of every edgebin payload; a JSON payload starts with '{' (0x7b), so one byte tells them apart. */
export const EDGEBIN_MAGIC = 0xeb;
export const EDGEBIN_VERSION = 1;
/** magic, version, stream index, flags, seq (uint32), ts (uint48). */
export const EDGEBIN_HEADER_BYTES = 14;
const UINT32_MAX = 0xffff_ffff;
// 2^48 ms is the year 10889; uint48 saves two bytes per reading against a uint64.
const UINT48_MAX = 2 ** 48 - 1;

/** Rounds `value` to the field's resolution, so JSON and edgebin carry exactly the same number. */
export function quantize(field: FieldSpec, value: number): number {
  const steps = Math.round(value / field.resolution);
  return Number((steps * field.resolution).toFixed(field.decimals));
}

/** The format of an encoded payload, from its first byte, or undefined if it is neither. */
export function detectFormat(payload: Uint8Array): PayloadFormat | undefined {
  if (payload[0] === EDGEBIN_MAGIC) return 'edgebin';
  if (payload[0] === 0x7b) return 'json';
  return undefined;
}

function streamOf(profile: DeviceProfile, streamName: string): StreamSpec {
  const stream = findStream(profile, streamName);
  if (stream === undefined) throw new PayloadError(profile.name, streamName, `the profile has no stream '${streamName}'`);
  return stream;
}

/** Encodes `reading` of `streamName` in `format` (the profile's own format by default). */
export function encodeReading(profile: DeviceProfile, streamName: string, reading: Reading, format: PayloadFormat = profile.payloadFormat): Buffer {
  const stream = streamOf(profile, streamName);
  return format === 'json' ? encodeJson(stream, reading) : encodeEdgebin(stream, reading);
}

function encodeJson(stream: StreamSpec, reading: Reading): Buffer {
  // Field names match NAME_PATTERN, so they need no escaping.
  let text = `{"seq":${reading.seq},"ts":${reading.ts}`;
  for (const field of stream.fields) text += `,"${field.name}":${quantize(field, valueOf(stream, field, reading))}`;
  return Buffer.from(`${text}}`, 'utf8');
}

function valueOf(stream: StreamSpec, field: FieldSpec, reading: Reading): number {
  const value = reading.values[field.name];
  if (value === undefined || !Number.isFinite(value)) {
    throw new Error(`edgelog invariant violated: reading for stream '${stream.name}' has no finite value for '${field.name}'`);
  }
  return value;
}

/** Bytes of one edgebin payload of `stream`. */
export function edgebinSize(stream: StreamSpec): number {
  return stream.fields.reduce((sum, f) => sum + BINARY_TYPE_INFO[f.binary].bytes, EDGEBIN_HEADER_BYTES);
}

function encodeEdgebin(stream: StreamSpec, reading: Reading): Buffer {
  const buf = Buffer.allocUnsafe(edgebinSize(stream));
  buf[0] = EDGEBIN_MAGIC;
  buf[1] = EDGEBIN_VERSION;
  buf[2] = stream.index;
  buf[3] = 0; // flags: none defined in version 1
  buf.writeUInt32BE(reading.seq >>> 0, 4);
  buf.writeUIntBE(Math.min(Math.max(Math.round(reading.ts), 0), UINT48_MAX), 8, 6);
  let offset = EDGEBIN_HEADER_BYTES;
  for (const field of stream.fields) {
    const value = valueOf(stream, field, reading);
    const info = BINARY_TYPE_INFO[field.binary];
    if (field.binary === 'float32') {
      buf.writeFloatBE(value, offset);
    } else {
      // Clamped so a value outside the type cannot wrap around into a plausible one.
      const raw = Math.min(Math.max(Math.round(value / field.resolution), info.min), info.max);
      writeInt(buf, field, raw, offset);
    }
    offset += info.bytes;
  }
  return buf;
}

function writeInt(buf: Buffer, field: FieldSpec, raw: number, offset: number): void {
  const bytes = BINARY_TYPE_INFO[field.binary].bytes;
  if (field.binary.startsWith('u')) buf.writeUIntBE(raw, offset, bytes);
  else buf.writeIntBE(raw, offset, bytes);
}

function readInt(buf: Buffer, field: FieldSpec, offset: number): number {
  const bytes = BINARY_TYPE_INFO[field.binary].bytes;
  return field.binary.startsWith('u') ? buf.readUIntBE(offset, bytes) : buf.readIntBE(offset, bytes);
}

/**
 * Decodes and validates a payload published on `devices/{id}/{streamName}` by a device with `profile`.
 * The format is detected from the first byte. Throws {@link PayloadError} with the reason when the
 * payload is malformed, of the wrong stream, or carries a value outside its field's range.
 */
export function decodeReading(profile: DeviceProfile, streamName: string, payload: Uint8Array): Reading {
  const stream = streamOf(profile, streamName);
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const fail = (detail: string): never => {
    throw new PayloadError(profile.name, streamName, detail);
  };
  const format = detectFormat(buf);
  const reading = format === 'edgebin' ? decodeEdgebin(stream, buf, fail) : format === 'json' ? decodeJson(stream, buf, fail) : fail(
    buf.length === 0 ? 'the payload is empty' : `unknown format (first byte 0x${(buf[0] ?? 0).toString(16).padStart(2, '0')}; expected '{' or 0xeb)`,
  );
  for (const field of stream.fields) {
    const value = reading.values[field.name] as number;
    if (value < field.min || value > field.max) fail(`'${field.name}' is ${value}, outside [${field.min}, ${field.max}] ${field.unit}`.trimEnd());
  }
  return reading;
}

function decodeJson(stream: StreamSpec, buf: Buffer, fail: (detail: string) => never): Reading {
  let document: unknown;
  try {
    document = JSON.parse(buf.toString('utf8'));
  } catch (error) {
    return fail(`invalid JSON (${(error as Error).message})`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) return fail('the JSON is not an object');
  const obj = document as Record<string, unknown>;
  const { seq, ts } = obj;
  if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0 || seq > UINT32_MAX) fail('"seq" must be an integer in [0, 2^32-1]');
  if (typeof ts !== 'number' || !Number.isInteger(ts) || ts < 0 || ts > UINT48_MAX) fail('"ts" must be an integer count of ms since the Unix epoch');
  const values: Record<string, number> = {};
  for (const field of stream.fields) {
    const value = obj[field.name];
    if (typeof value !== 'number' || !Number.isFinite(value)) fail(`"${field.name}" must be a number`);
    values[field.name] = value as number;
  }
  const known = stream.fields.length + 2;
  if (Object.keys(obj).length !== known) {
    const extra = Object.keys(obj).filter((k) => k !== 'seq' && k !== 'ts' && !stream.fields.some((f) => f.name === k));
    fail(`unknown keys ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
  }
  return { seq: seq as number, ts: ts as number, values };
}

function decodeEdgebin(stream: StreamSpec, buf: Buffer, fail: (detail: string) => never): Reading {
  const expected = edgebinSize(stream);
  if (buf.length !== expected) fail(`edgebin payload is ${buf.length} bytes; stream '${stream.name}' needs ${expected}`);
  if (buf[1] !== EDGEBIN_VERSION) fail(`edgebin version ${buf[1]} is not supported (only ${EDGEBIN_VERSION})`);
  if (buf[2] !== stream.index) fail(`edgebin stream index ${buf[2]} does not match stream '${stream.name}' (index ${stream.index})`);
  if (buf[3] !== 0) fail(`edgebin flags 0x${(buf[3] ?? 0).toString(16)} are not defined in version ${EDGEBIN_VERSION}`);
  const seq = buf.readUInt32BE(4);
  const ts = buf.readUIntBE(8, 6);
  const values: Record<string, number> = {};
  let offset = EDGEBIN_HEADER_BYTES;
  for (const field of stream.fields) {
    if (field.binary === 'float32') {
      const value = buf.readFloatBE(offset);
      if (!Number.isFinite(value)) fail(`'${field.name}' is not a finite number`);
      values[field.name] = quantize(field, value);
    } else {
      values[field.name] = Number((readInt(buf, field, offset) * field.resolution).toFixed(field.decimals));
    }
    offset += BINARY_TYPE_INFO[field.binary].bytes;
  }
  return { seq, ts, values };
}
