import type { Logger } from 'pino';
import type { GroupCoordinator } from '../groups/coordinator.js';
import type { CommitLog } from '../log/commit-log.js';
import type { StreamProcessorConfig } from './config.js';
import { StreamProcessor, type StreamProcessorStats } from './processor.js';

export interface StreamProcessorsOptions {
  log: CommitLog;
  /** The gateway's coordinator: each processor is a member of its group `streams.<name>`. */
  groups?: GroupCoordinator;
  logger: Logger;
  /** The validated `streams:` config (src/streams/config.ts). */
  processors: readonly StreamProcessorConfig[];
}

/**
 * The gateway's stream processors (config `streams:`): started after the log and the group
 * coordinator, closed before them (src/gateway.ts).
 */
export class StreamProcessors {
  private closing: Promise<void> | null = null;

  private constructor(private readonly processors: readonly StreamProcessor[]) {}

  /** Starts every configured processor; each then runs and retries on its own, so this never fails on a runtime condition. */
  static start(opts: StreamProcessorsOptions): StreamProcessors {
    const processors = opts.processors.map((config) => new StreamProcessor({ log: opts.log, logger: opts.logger, config, ...(opts.groups ? { groups: opts.groups } : {}) }));
    for (const p of processors) p.start();
    return new StreamProcessors(processors);
  }

  /** One entry per processor, in config order. */
  stats(): StreamProcessorStats[] {
    return this.processors.map((p) => p.stats());
  }

  /** Lets each processor commit its batch in flight, then stops them. Idempotent. */
  close(): Promise<void> {
    this.closing ??= Promise.all(this.processors.map((p) => p.close())).then(() => undefined);
    return this.closing;
  }
}
