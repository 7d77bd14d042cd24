import { crc32c } from '@node-rs/crc32';
import { assert } from '../errors.js';

/**
 * The stored form of one record (little-endian). The CRC32C covers every byte after it, as in
 * Kafka's record batches, and the record's own offset is inside the checked bytes, so a record
 * that lands at the wrong key is caught as surely as a flipped bit.
 *
 *   0  u32  crc32c of bytes [4, end)
 *   4  u8   format version (1)
 *   5  u8   flags: bit 0 has key, bit 1 key is a string
 *   6  u16  header count
 *   8  f64  offset
 *  16  f64  timestamp (ms since the epoch; the producer's clock)
 *  24  f64  append time (ms since the epoch; the gateway's clock, used by retention)
 *  32  u32  key length, then the key bytes (only when flag bit 0 is set)
 *       per header: u16 name length, name (UTF-8), u8 kind (0 string, 1 bytes), u32 value length, value
 *       u32 value length, then the value bytes
 */
export const RECORD_FORMAT_VERSION = 1;
const FIXED_BYTES = 32;
const FLAG_HAS_KEY = 1;
const FLAG_KEY_STRING = 2;
const HEADER_STRING = 0;
const HEADER_BYTES = 1;

/** A header value as given to append: strings stay strings, bytes come back as Buffers. */
export type HeaderValue = string | Uint8Array;

/** A record as read back from the log. */
export interface StoredRecord {
  offset: number;
  timestamp: number;
  /** The log's time at the append (log-clock.ts: the wall clock less its steps), which retention ages by. */
  appendTime: number;
  key: string | Buffer | null;
  value: Buffer;
  headers: Record<string, string | Buffer>;
}

/** What encodeRecord needs; the key and header names arrive already validated. */
export interface RecordFields {
  offset: number;
  timestamp: number;
  appendTime: number;
  key: string | Uint8Array | null | undefined;
  value: Uint8Array;
  headers: Record<string, HeaderValue> | undefined;
}

/** The stored size of a record, computed without encoding it (used to enforce maxMessageBytes before queuing). */
export function encodedSize(fields: Omit<RecordFields, 'offset' | 'timestamp' | 'appendTime'>): number {
  let size = FIXED_BYTES + 4 + fields.value.length;
  if (fields.key != null) size += 4 + byteLength(fields.key);
  if (fields.headers) {
    for (const name in fields.headers) size += 2 + Buffer.byteLength(name) + 1 + 4 + byteLength(fields.headers[name]!);
  }
  return size;
}

function byteLength(v: string | Uint8Array): number {
  return typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}

/**
 * Encodes a record into `out` at `start`, taking exactly `size` bytes (as computed by
 * {@link encodedSize}), and returns the view of the encoded record. Many records share one
 * `out` buffer, so a batch costs one allocation, not one per record.
 */
export function encodeRecord(fields: RecordFields, size: number, out: Buffer = Buffer.allocUnsafe(size), start = 0): Buffer {
  return encodeInto(out, start, size, fields.offset, fields.timestamp, fields.appendTime, fields.key, fields.value, fields.headers);
}

/** {@link encodeRecord} with positional arguments, for the append path (no object per record). */
export function encodeInto(
  out: Buffer,
  start: number,
  size: number,
  offset: number,
  timestamp: number,
  appendTime: number,
  key: string | Uint8Array | null | undefined,
  value: Uint8Array,
  headers: Record<string, HeaderValue> | undefined,
): Buffer {
  const buf = out.subarray(start, start + size);
  let flags = 0;
  if (key != null) flags |= FLAG_HAS_KEY | (typeof key === 'string' ? FLAG_KEY_STRING : 0);
  let headerCount = 0;
  if (headers) for (const _ in headers) headerCount++;
  buf[4] = RECORD_FORMAT_VERSION;
  buf[5] = flags;
  buf.writeUInt16LE(headerCount, 6);
  buf.writeDoubleLE(offset, 8);
  buf.writeDoubleLE(timestamp, 16);
  buf.writeDoubleLE(appendTime, 24);
  let pos = FIXED_BYTES;
  if (key != null) pos = writeBytes(buf, pos, key);
  if (headers) {
    for (const name in headers) {
      const value = headers[name]!;
      const nameLength = buf.write(name, pos + 2, 'utf8');
      buf.writeUInt16LE(nameLength, pos);
      pos += 2 + nameLength;
      buf[pos++] = typeof value === 'string' ? HEADER_STRING : HEADER_BYTES;
      pos = writeBytes(buf, pos, value);
    }
  }
  pos = writeBytes(buf, pos, value);
  // The message is built only on failure: this runs once per record.
  if (pos !== size) assert(false, `encoded record size ${pos} differs from computed size ${size}`);
  buf.writeUInt32LE(crc32c(buf.subarray(4)), 0);
  return buf;
}

function writeBytes(buf: Buffer, pos: number, v: string | Uint8Array): number {
  if (typeof v === 'string') {
    const n = buf.write(v, pos + 4, 'utf8');
    buf.writeUInt32LE(n, pos);
    return pos + 4 + n;
  }
  buf.writeUInt32LE(v.length, pos);
  buf.set(v, pos + 4);
  return pos + 4 + v.length;
}

/** Thrown by decodeRecord; the log turns it into a CorruptRecordError naming topic, partition and offset. */
export class RecordDecodeError extends Error {
  override name = 'RecordDecodeError';
}

/**
 * Decodes a stored record, verifying its checksum and that it is the record for `expectedOffset`.
 * The returned key, value and byte headers are views into `buf`.
 */
export function decodeRecord(buf: Buffer, expectedOffset: number): StoredRecord {
  if (buf.length < FIXED_BYTES + 4) throw new RecordDecodeError(`stored record is ${buf.length} bytes, shorter than any valid record`);
  const stored = buf.readUInt32LE(0);
  const actual = crc32c(buf.subarray(4));
  if (stored !== actual) throw new RecordDecodeError(`checksum mismatch (stored crc32c ${hex(stored)}, computed ${hex(actual)})`);
  if (buf[4] !== RECORD_FORMAT_VERSION) throw new RecordDecodeError(`unknown record format version ${buf[4]}`);
  const offset = buf.readDoubleLE(8);
  if (offset !== expectedOffset) throw new RecordDecodeError(`record claims offset ${offset} but is stored at offset ${expectedOffset}`);
  const flags = buf[5]!;
  const headerCount = buf.readUInt16LE(6);
  let pos = FIXED_BYTES;
  // Moves `pos` past one length-prefixed field and returns where the field starts. Text fields are
  // decoded straight from `buf` (no Buffer per field: reads allocate per record, and that counts).
  const skip = (): number => {
    if (pos + 4 > buf.length) throw new RecordDecodeError('length field runs past the end of the record');
    const n = buf.readUInt32LE(pos);
    const start = pos + 4;
    if (start + n > buf.length) throw new RecordDecodeError('field runs past the end of the record');
    pos = start + n;
    return start;
  };
  const field = (asText: boolean): string | Buffer => {
    const start = skip();
    return asText ? buf.toString('utf8', start, pos) : buf.subarray(start, pos);
  };
  let key: string | Buffer | null = null;
  if (flags & FLAG_HAS_KEY) key = field((flags & FLAG_KEY_STRING) !== 0);
  const headers: Record<string, string | Buffer> = {};
  for (let i = 0; i < headerCount; i++) {
    if (pos + 2 > buf.length) throw new RecordDecodeError('header runs past the end of the record');
    const nameLength = buf.readUInt16LE(pos);
    const name = buf.toString('utf8', pos + 2, pos + 2 + nameLength);
    pos += 2 + nameLength;
    const kind = buf[pos++];
    headers[name] = field(kind === HEADER_STRING);
  }
  const value = field(false) as Buffer;
  if (pos !== buf.length) throw new RecordDecodeError(`${buf.length - pos} unexpected bytes after the value`);
  return { offset, timestamp: buf.readDoubleLE(16), appendTime: buf.readDoubleLE(24), key, value, headers };
}

/** Reads only the append time of a stored record (retention needs nothing else). */
export function appendTimeOf(buf: Buffer): number {
  return buf.readDoubleLE(24);
}

/** Reads only the producer timestamp of a stored record. */
export function timestampOf(buf: Buffer): number {
  return buf.readDoubleLE(16);
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
