import type { StoredRecord } from '../../log/record-codec.js';
import type { SinkFormat } from './config.js';

/**
 * How a file sink writes one record as one line. `value` writes the value's bytes as they are
 * (Kafka's FileStreamSink does the same), so a value holding a newline becomes two lines: topics
 * whose values may hold newlines or binary data want `json`, where bytes that are not UTF-8 are
 * written in base64 (`valueBase64`, `keyBase64`) rather than mangled.
 */

const NEWLINE = Buffer.from('\n');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The pieces of the lines of `records`, to be joined by one Buffer.concat. */
export function formatLines(format: SinkFormat, topic: string, partition: number, records: readonly StoredRecord[], out: Buffer[]): void {
  for (const r of records) {
    if (format === 'value') out.push(r.value, NEWLINE);
    else out.push(Buffer.from(`${JSON.stringify(jsonLine(topic, partition, r))}\n`));
  }
}

function jsonLine(topic: string, partition: number, r: StoredRecord): Record<string, unknown> {
  const line: Record<string, unknown> = { topic, partition, offset: r.offset, timestamp: r.timestamp };
  if (r.key === null || typeof r.key === 'string') line['key'] = r.key;
  else bytesField(line, 'key', r.key);
  bytesField(line, 'value', r.value);
  return line;
}

function bytesField(line: Record<string, unknown>, name: string, bytes: Buffer): void {
  try {
    line[name] = utf8.decode(bytes);
  } catch {
    line[`${name}Base64`] = bytes.toString('base64');
  }
}
