import { describe, expect, it } from 'vitest';
import { PayloadError } from '../../devices/errors.js';
import { decodeReading, detectFormat, EDGEBIN_HEADER_BYTES, edgebinSize, encodeReading } from '../../devices/payload-codec.js';
import { loadProfiles } from '../../devices/profile.js';
import type { DeviceProfile } from '../../devices/profile.js';
import { SignalGenerator } from '../../firmware-sim/signal.js';

const profiles = loadProfiles();
const env = profiles.find((p) => p.name === 'environment-sensor') as DeviceProfile;
const reading = { seq: 42, ts: Date.UTC(2026, 0, 31, 8), values: { temperature: 21.53, humidity: 48.2, pressure: 1013.2 } };

describe('payload codec', () => {
  it('round-trips generated readings of every stream of every shipped profile in both formats', () => {
    for (const profile of profiles) {
      const generator = new SignalGenerator(profile, { seed: 9, deviceIndex: 3, startTimeMs: Date.UTC(2026, 0, 31), clockSkewMaxMs: 0 });
      for (let i = 0; i < 200; i++) {
        const { stream, reading: r } = generator.next(Date.UTC(2026, 0, 31) + i * 1000);
        for (const format of ['json', 'edgebin'] as const) {
          const payload = encodeReading(profile, stream.name, r, format);
          expect(detectFormat(payload)).toBe(format);
          expect(decodeReading(profile, stream.name, payload)).toEqual(r);
        }
      }
    }
  });

  it('encodes JSON as a flat object and edgebin in 14 header bytes plus the fields', () => {
    expect(encodeReading(env, 'climate', reading, 'json').toString()).toBe('{"seq":42,"ts":1769846400000,"temperature":21.53,"humidity":48.2,"pressure":1013.2}');
    const bin = encodeReading(env, 'climate', reading, 'edgebin');
    expect(bin.length).toBe(EDGEBIN_HEADER_BYTES + 6);
    expect(bin.length).toBe(edgebinSize(env.streams[0]!));
    // magic, version, stream 0, flags 0, seq 42, ts, temperature 2153 (int16), humidity 482, pressure 10132 (uint16)
    expect(bin.toString('hex')).toBe(`eb010000${'0000002a'}${(1769846400000).toString(16).padStart(12, '0')}${'0869'}${'01e2'}${'2794'}`);
  });

  it.each([
    ['an empty payload', Buffer.alloc(0), 'the payload is empty'],
    ['neither JSON nor edgebin', Buffer.from('hello'), 'unknown format (first byte 0x68'],
    ['truncated JSON', Buffer.from('{"seq":1,"ts":'), 'invalid JSON'],
    ['a missing field', Buffer.from('{"seq":1,"ts":5,"temperature":1,"humidity":2}'), '"pressure" must be a number'],
    ['an unknown key', Buffer.from('{"seq":1,"ts":5,"temperature":1,"humidity":2,"pressure":1000,"x":1}'), 'unknown keys "x"'],
    ['a negative seq', Buffer.from('{"seq":-1,"ts":5,"temperature":1,"humidity":2,"pressure":1000}'), '"seq" must be an integer'],
    ['a value out of range', Buffer.from('{"seq":1,"ts":5,"temperature":100,"humidity":2,"pressure":1000}'), "'temperature' is 100, outside [-40, 85] °C"],
  ])('refuses %s with a PayloadError that says why', (_what, payload, message) => {
    expect(() => decodeReading(env, 'climate', payload)).toThrow(PayloadError);
    expect(() => decodeReading(env, 'climate', payload)).toThrow(message);
  });

  it('refuses edgebin of the wrong size, version, stream or flags', () => {
    const good = encodeReading(env, 'climate', reading, 'edgebin');
    const variant = (at: number, value: number): Buffer => {
      const copy = Buffer.from(good);
      copy[at] = value;
      return copy;
    };
    expect(() => decodeReading(env, 'climate', good.subarray(0, 10))).toThrow('edgebin payload is 10 bytes; stream \'climate\' needs 20');
    expect(() => decodeReading(env, 'climate', variant(1, 2))).toThrow('edgebin version 2 is not supported');
    expect(() => decodeReading(env, 'climate', variant(2, 1))).toThrow("does not match stream 'climate'");
    expect(() => decodeReading(env, 'climate', variant(3, 1))).toThrow('edgebin flags 0x1');
    expect(() => decodeReading(env, 'nope', good)).toThrow("the profile has no stream 'nope'");
  });
});
