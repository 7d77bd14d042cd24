import { describe, expect, it } from 'vitest';
import { decodeRecord, encodedSize, encodeRecord, RecordDecodeError } from '../../src/log/record-codec.js';

const fields = {
  offset: 42,
  timestamp: 1_700_000_000_123,
  appendTime: 1_700_000_000_456,
  key: 'device-0001',
  value: Buffer.from('{"t":21.5}'),
  headers: { 'content-type': 'application/json', raw: Uint8Array.from([1, 2, 3]) },
};

describe('record codec', () => {
  it('round-trips every field', () => {
    const buf = encodeRecord(fields, encodedSize(fields));
    const r = decodeRecord(buf, 42);
    expect(r.offset).toBe(42);
    expect(r.timestamp).toBe(fields.timestamp);
    expect(r.appendTime).toBe(fields.appendTime);
    expect(r.key).toBe('device-0001');
    expect(r.value.toString()).toBe('{"t":21.5}');
    expect(r.headers['content-type']).toBe('application/json');
    expect([...(r.headers['raw'] as Buffer)]).toEqual([1, 2, 3]);
  });

  it('keeps byte keys as bytes and no key as null', () => {
    const withBytes = { ...fields, key: Uint8Array.from([0, 255]), headers: undefined };
    expect([...(decodeRecord(encodeRecord(withBytes, encodedSize(withBytes)), 42).key as Buffer)]).toEqual([0, 255]);
    const noKey = { ...fields, key: null, headers: undefined };
    expect(decodeRecord(encodeRecord(noKey, encodedSize(noKey)), 42).key).toBeNull();
  });

  it('detects any flipped bit', () => {
    const buf = encodeRecord(fields, encodedSize(fields));
    for (let i = 0; i < buf.length; i++) {
      const bad = Buffer.from(buf);
      bad[i]! ^= 0x10;
      expect(() => decodeRecord(bad, 42), `byte ${i}`).toThrow(RecordDecodeError);
    }
  });

  it('detects a record stored under another offset', () => {
    const buf = encodeRecord(fields, encodedSize(fields));
    expect(() => decodeRecord(buf, 43)).toThrow(/claims offset 42 but is stored at offset 43/);
  });

  it('rejects truncated records', () => {
    const buf = encodeRecord(fields, encodedSize(fields));
    expect(() => decodeRecord(buf.subarray(0, 20), 42)).toThrow(RecordDecodeError);
    expect(() => decodeRecord(buf.subarray(0, buf.length - 1), 42)).toThrow(RecordDecodeError);
  });
});
