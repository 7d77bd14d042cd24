import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { CommitLog } from '../../log/commit-log.js';
import type { ConnectorConfig } from './config.js';
import { FileSink, type FileSinkStats } from './file-sink.js';
import { FileSource, type FileSourceStats } from './file-source.js';

/** One connector's identity and counters; `type` tells which stats it has. */
export type ConnectorStats = { name: string; file: string; topic: string } & (
  | { type: 'file-source'; stats: FileSourceStats }
  | { type: 'file-sink'; stats: FileSinkStats }
);

/**
 * The connectors declared in the config (`connectors:`), started after the log and closed before
 * it (src/gateway.ts).
 */
export class Connectors {
  private closing: Promise<void> | null = null;

  private constructor(private readonly running: Array<{ config: ConnectorConfig; file: string; connector: FileSource | FileSink }>) {}

  /** Starts every connector in config order; if one cannot start, those started are closed and the error is thrown. */
  static async start(options: { log: CommitLog; connectors: readonly ConnectorConfig[]; logger: Logger }): Promise<Connectors> {
    const logger = options.logger.child({ component: 'connector' });
    const running: Array<{ config: ConnectorConfig; file: string; connector: FileSource | FileSink }> = [];
    try {
      for (const config of options.connectors) {
        const file = resolve(config.file);
        const common = { name: config.name, file, topic: config.topic, log: options.log, logger };
        const connector =
          config.type === 'file-source' ? await FileSource.start({ ...common, options: config.options }) : await FileSink.start({ ...common, options: config.options });
        running.push({ config, file, connector });
      }
    } catch (error) {
      await Promise.all(running.map((r) => r.connector.close()));
      throw error;
    }
    return new Connectors(running);
  }

  stats(): ConnectorStats[] {
    return this.running.map(({ config, file, connector }): ConnectorStats => {
      const common = { name: config.name, file, topic: config.topic };
      return connector instanceof FileSource ? { ...common, type: 'file-source', stats: connector.stats() } : { ...common, type: 'file-sink', stats: connector.stats() };
    });
  }

  /** Closes every connector, each after its write in flight. Idempotent. */
  close(): Promise<void> {
    this.closing ??= Promise.all(this.running.map((r) => r.connector.close())).then(() => undefined);
    return this.closing;
  }
}
