import { describe, expect, it } from 'vitest';
import { EdgelogError } from '../../../src/errors.js';
import { parseConnectors } from '../../../src/streams/connectors/config.js';

function refusal(value: unknown): string {
  try {
    parseConnectors(value);
  } catch (error) {
    expect(error).toBeInstanceOf(EdgelogError);
    expect((error as EdgelogError).code).toBe('INVALID_CONFIG');
    return (error as Error).message;
  }
  throw new Error('expected INVALID_CONFIG');
}

const source = { name: 'app', type: 'file-source', file: '/var/log/app.log', topic: 'app-log' };
const sink = { name: 'archive', type: 'file-sink', file: '/tmp/out.jsonl', topic: 'app-log' };

describe('connectors config', () => {
  it('fills in defaults for each type', () => {
    expect(parseConnectors([])).toEqual([]);
    expect(parseConnectors([source, { ...sink, options: { format: 'json' } }])).toEqual([
      { ...source, options: { key: null, pollIntervalMs: 1000 } },
      { ...sink, options: { format: 'json', batchRecords: 500 } },
    ]);
    expect(parseConnectors([{ ...source, options: { key: 'gw-1', pollIntervalMs: 250 } }])[0]!.options).toEqual({ key: 'gw-1', pollIntervalMs: 250 });
  });

  it.each([
    ['not a list', { a: 1 }, /config key 'connectors' must be a list of at most 64 connectors/],
    ['an entry that is not a mapping', ['x'], /'connectors\[0\]' must be a mapping \{ name, type, file, topic, options \}, got "x"/],
    ['an unknown key', [{ ...source, optoins: {} }], /'connectors\[0\]\.optoins' is not known: allowed keys of a connector are name, type, file, topic, options/],
    ['a bad name', [{ ...source, name: 'my app' }], /'connectors\[0\]\.name' must be 1 to 64 of a-z A-Z 0-9 \. _ -, got "my app"/],
    ['an unknown type', [{ ...source, type: 'kafka' }], /'connectors\[0\]\.type' must be one of file-source, file-sink, got "kafka"/],
    ['no file', [{ ...source, file: '' }], /'connectors\[0\]\.file' must be the path of a file, got ""/],
    ['a bad topic', [{ ...source, topic: 'a/b' }], /'connectors\[0\]\.topic' is not a valid topic name: .*use 1 to 249 characters/],
    ['an option of the other type', [{ ...source, options: { format: 'json' } }], /'connectors\[0\]\.options\.format' is not known: allowed options of a file-source are key, pollIntervalMs/],
    ['a poll interval out of range', [{ ...source, options: { pollIntervalMs: 5 } }], /'connectors\[0\]\.options\.pollIntervalMs' must be an integer from 100 to 60000, got 5/],
    ['an empty key', [{ ...source, options: { key: '' } }], /'connectors\[0\]\.options\.key' must be a non-empty string of at most 1024 bytes/],
    ['an unknown format', [{ ...sink, options: { format: 'csv' } }], /'connectors\[0\]\.options\.format' must be one of value, json, got "csv"/],
    ['batchRecords out of range', [{ ...sink, options: { batchRecords: 0 } }], /'connectors\[0\]\.options\.batchRecords' must be an integer from 1 to 10000, got 0/],
    ['a repeated name', [source, { ...sink, name: 'app' }], /'connectors\[1\]\.name' repeats the name "app" of connectors\[0\]/],
    ['two connectors on one file', [source, { ...sink, file: '/var/log/../log/app.log' }], /'connectors\[1\]\.file' names the file of connectors\[0\] \(\/var\/log\/app\.log\)/],
  ])('refuses %s, naming the key and what is allowed', (_, value, message) => {
    expect(refusal(value)).toMatch(message);
  });
});
