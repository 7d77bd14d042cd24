import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { CommitLog, type CommitLogOptions } from './log/commit-log.js';

/** What the gateway needs to start; the CLI builds it from flags and defaults. */
export interface GatewayOptions {
  /** The data folder (default ./data). */
  dataDir: string;
  log?: Omit<CommitLogOptions, 'dir' | 'logger'>;
  logger: Logger;
}

/**
 * The composition root: builds and wires the parts, starts and stops them. Today it owns the
 * commit log; ingest, consumers and bridges join it as their issues land (see DESIGN.md).
 */
export class Gateway {
  private closing: Promise<void> | null = null;

  private constructor(
    readonly log: CommitLog,
    private readonly logger: Logger,
  ) {}

  static async start(options: GatewayOptions): Promise<Gateway> {
    const dir = resolve(options.dataDir);
    const log = await CommitLog.open({ ...options.log, dir, logger: options.logger });
    options.logger.info({ dataDir: dir, topics: log.listTopics().length }, 'edgelog gateway started');
    return new Gateway(log, options.logger);
  }

  /** Waits for in-flight appends, then closes the log. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.log.close();
      this.logger.info('edgelog gateway stopped');
    })();
    return this.closing;
  }
}
