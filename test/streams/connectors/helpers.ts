import { pino, type Logger } from 'pino';
import { onTestFinished } from 'vitest';
import type { CommitLog } from '../../../src/index.js';
import { DEFAULT_POLL_INTERVAL_MS } from '../../../src/streams/connectors/config.js';
import { FileSink } from '../../../src/streams/connectors/file-sink.js';
import { FileSource } from '../../../src/streams/connectors/file-source.js';
import type { SinkFormat } from '../../../src/streams/connectors/config.js';
import { readAll } from '../../helpers/log.js';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A logger whose lines (info and above) land in `lines`, parsed. */
export function capturingLogger(lines: LogLine[] = []): { logger: Logger; lines: LogLine[] } {
  const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { logger, lines };
}

/** A file source on `log`, closed when the test finishes. */
export async function startSource(
  log: CommitLog,
  file: string,
  opts: { name?: string; topic?: string; key?: string | null; pollIntervalMs?: number; logger?: Logger; readChunkBytes?: number } = {},
): Promise<FileSource> {
  const source = await FileSource.start({
    name: opts.name ?? 'src',
    file,
    topic: opts.topic ?? 'lines',
    options: { key: opts.key ?? null, pollIntervalMs: opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS },
    log,
    logger: opts.logger ?? capturingLogger().logger,
    ...(opts.readChunkBytes === undefined ? {} : { readChunkBytes: opts.readChunkBytes }),
  });
  onTestFinished(() => source.close());
  return source;
}

/** A file sink on `log`, closed when the test finishes. */
export async function startSink(
  log: CommitLog,
  file: string,
  opts: { name?: string; topic?: string; format?: SinkFormat; batchRecords?: number; logger?: Logger } = {},
): Promise<FileSink> {
  const sink = await FileSink.start({
    name: opts.name ?? 'sink',
    file,
    topic: opts.topic ?? 'lines',
    options: { format: opts.format ?? 'value', batchRecords: opts.batchRecords ?? 500 },
    log,
    logger: opts.logger ?? capturingLogger().logger,
  });
  onTestFinished(() => sink.close());
  return sink;
}

/** The values of a one-partition topic, as strings, in offset order. */
export function values(log: CommitLog, topic = 'lines', partition = 0): string[] {
  return log.hasTopic(topic) ? readAll(log, topic, partition).map((r) => r.value.toString()) : [];
}

/** `prefix-from` … `prefix-(to-1)`. */
export function numbered(prefix: string, from: number, to: number): string[] {
  return Array.from({ length: to - from }, (_, i) => `${prefix}-${from + i}`);
}
