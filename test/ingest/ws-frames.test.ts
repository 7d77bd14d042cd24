import { describe, expect, it } from 'vitest';
import { MAX_READINGS_PER_FRAME, answerFrame, decodeBase64, parseClientFrame } from '../../src/ingest/ws-frames.js';

const parse = (frame: unknown) => parseClientFrame(typeof frame === 'string' ? frame : JSON.stringify(frame));

describe('WebSocket ingest frames', () => {
  it('parses an auth frame with and without a token', () => {
    expect(parse({ type: 'auth', deviceId: 'env-0001', token: 't0k3n' })).toEqual({ type: 'auth', deviceId: 'env-0001', token: 't0k3n' });
    expect(parse({ type: 'auth', deviceId: 'env-0001' })).toEqual({ type: 'auth', deviceId: 'env-0001', token: undefined });
    expect(parse({ type: 'auth', deviceId: 'env-0001', token: null })).toEqual({ type: 'auth', deviceId: 'env-0001', token: undefined });
  });

  it('parses one reading, storing a JSON payload as its compact JSON text', () => {
    const frame = parse('{ "type": "publish", "id": "c-1", "stream": "climate", "payload": { "seq": 1, "t": 21.50 } }');
    expect(frame).toEqual({ type: 'publish', id: 'c-1', readings: [{ stream: 'climate', payload: Buffer.from('{"seq":1,"t":21.5}') }] });
  });

  it('parses a batch, with binary payloads in base64 and a numeric id', () => {
    const frame = parse({ type: 'publish', id: 7, readings: [{ stream: 'a', payload: { x: 1 } }, { stream: 'b', payloadBase64: '6wEAAA==' }] });
    expect(frame).toEqual({
      type: 'publish',
      id: 7,
      readings: [
        { stream: 'a', payload: Buffer.from('{"x":1}') },
        { stream: 'b', payload: Buffer.from([0xeb, 1, 0, 0]) },
      ],
    });
  });

  it.each([
    ['not json', undefined, /must be a JSON object, got text that is not JSON/],
    ['[1,2]', undefined, /must be a JSON object with a "type".*got a list/],
    [{ id: 1 }, undefined, /needs a "type": 'auth' \(the first frame\) and 'publish'/],
    [{ type: 'subscribe' }, undefined, /unknown frame type the string "subscribe"; the types are 'auth'/],
    [{ type: 'auth', deviceId: 'a/b' }, undefined, /"deviceId" 'a\/b' must be 1 to 128 of/],
    [{ type: 'auth', deviceId: 'd', password: 'x' }, undefined, /unknown key "password" in the auth frame/],
    [{ type: 'auth', deviceId: 'd', token: 5 }, undefined, /"token" must be a string of 1 to 1024/],
    [{ type: 'publish', id: { a: 1 }, stream: 's', payload: {} }, undefined, /"id" must be a string of 1 to 128 characters or a number, got an object/],
    [{ type: 'publish', id: 'x'.repeat(129), stream: 's', payload: {} }, undefined, /"id" must be a string of 1 to 128/],
    [{ type: 'publish', id: 'k', stream: 's', paylod: {} }, 'k', /unknown key "paylod" in the publish frame/],
    [{ type: 'publish', id: 'k', payload: {} }, 'k', /stream must be a string naming the reading's stream/],
    [{ type: 'publish', id: 'k', stream: 's' }, 'k', /payload is missing: send payload \(a JSON object\) or payloadBase64/],
    [{ type: 'publish', id: 'k', stream: 's', payload: [1] }, 'k', /payload must be a JSON object \(stored as its JSON text\), got a list; send other bytes as payloadBase64/],
    [{ type: 'publish', id: 'k', stream: 's', payload: 'text' }, 'k', /payload must be a JSON object/],
    [{ type: 'publish', id: 'k', stream: 's', payload: {}, payloadBase64: 'AA==' }, 'k', /payload and payloadBase64 are alternatives/],
    [{ type: 'publish', id: 'k', stream: 's', payloadBase64: 'A' }, 'k', /payloadBase64 must be non-empty base64/],
    [{ type: 'publish', id: 'k', stream: 's', payloadBase64: '' }, 'k', /payloadBase64 must be non-empty base64/],
    [{ type: 'publish', id: 'k', stream: 's', readings: [] }, 'k', /either "readings" \(a batch\) or "stream"/],
    [{ type: 'publish', id: 'k', readings: [] }, 'k', /"readings" must be a list of 1 to 1000 readings .* got 0 readings/],
    [{ type: 'publish', id: 'k', readings: {} }, 'k', /"readings" must be a list .* got an object/],
    [{ type: 'publish', id: 'k', readings: [{ stream: 's', payload: {} }, 3] }, 'k', /readings\[1\] must be an object/],
    [{ type: 'publish', id: 'k', readings: [{ stream: 's', payload: {}, ts: 1 }] }, 'k', /readings\[0\]: unknown key "ts"/],
    [{ type: 'publish', id: 'k', readings: [{ stream: 's', payload: {} }, { stream: 's' }] }, 'k', /readings\[1\]\.payload is missing/],
  ])('refuses %j, naming what is wrong', (frame, id, message) => {
    const parsed = parse(frame);
    expect(parsed.type).toBe('invalid');
    if (parsed.type !== 'invalid') return;
    expect(parsed.id).toBe(id);
    expect(parsed.message).toMatch(message);
  });

  it('bounds a batch at MAX_READINGS_PER_FRAME', () => {
    const readings = (n: number) => Array.from({ length: n }, () => ({ stream: 's', payload: { v: 1 } }));
    expect(parse({ type: 'publish', readings: readings(MAX_READINGS_PER_FRAME) }).type).toBe('publish');
    expect(parse({ type: 'publish', readings: readings(MAX_READINGS_PER_FRAME + 1) })).toMatchObject({ type: 'invalid', message: /got 1001 readings; send more in further frames/ });
  });

  it('refuses a payload nested too deeply to serialize, without throwing', () => {
    const deep = `{"type":"publish","stream":"s","payload":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`;
    expect(parse(deep)).toMatchObject({ type: 'invalid', message: /nested too deeply/ });
  });

  it('decodes strict base64 only', () => {
    expect(decodeBase64('AQID')).toEqual(Buffer.from([1, 2, 3]));
    expect(decodeBase64('AQI=')).toEqual(Buffer.from([1, 2]));
    expect(decodeBase64('AQI')).toEqual(Buffer.from([1, 2]));
    expect(decodeBase64('AQ==')).toEqual(Buffer.from([1]));
    for (const bad of ['A', 'AQ=', 'AQI==', 'AR==', 'AQ-_', 'AQ ID', 'AQID=']) expect(decodeBase64(bad), bad).toBeUndefined();
  });

  it('answers an ack when every reading was stored, an error frame with per-reading results otherwise', () => {
    const stored = { topic: 'climate', partition: 0, offset: 4 };
    const dead = { topic: '_deadletter', partition: 0, offset: 0, deadLetter: 'bad' };
    expect(JSON.parse(answerFrame('c-1', [stored, dead]))).toEqual({ type: 'ack', id: 'c-1', results: [stored, dead] });
    const full = { error: { code: 'LOG_FULL', message: 'the log is full', retryable: true } };
    const big = { error: { code: 'RECORD_TOO_LARGE', message: 'too large', retryable: false } };
    expect(JSON.parse(answerFrame(3, [full]))).toEqual({ type: 'error', id: 3, code: 'LOG_FULL', message: 'the log is full', retryable: true, results: [full] });
    expect(JSON.parse(answerFrame(undefined, [stored, big, full]))).toEqual({
      type: 'error',
      code: 'RECORD_TOO_LARGE',
      message: '2 of 3 readings were not stored (the first: too large); results says which, send those again (the others are stored)',
      retryable: false,
      results: [stored, big, full],
    });
  });
});
