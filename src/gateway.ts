import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { MqttIngest } from './ingest/mqtt-ingest.js';
import { CommitLog, type CommitLogOptions } from './log/commit-log.js';

/** MQTT's registered port (IANA); the design's default. */
export const DEFAULT_MQTT_PORT = 1883;

/** What the gateway needs to start; the CLI builds it from flags and defaults. */
export interface GatewayOptions {
  /** The data folder (default ./data). */
  dataDir: string;
  log?: Omit<CommitLogOptions, 'dir' | 'logger'>;
  /** MQTT TCP port; 0 picks a free one. */
  mqttPort: number;
  /**
   * Like Mosquitto 2: with no credentials configured, anonymous clients are accepted from loopback
   * only (the listeners bind 127.0.0.1); true opens the listeners to the network.
   */
  allowAnonymous: boolean;
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
    readonly mqtt: MqttIngest,
    private readonly logger: Logger,
  ) {}

  static async start(options: GatewayOptions): Promise<Gateway> {
    const dir = resolve(options.dataDir);
    const log = await CommitLog.open({ ...options.log, dir, logger: options.logger });
    const host = options.allowAnonymous ? '0.0.0.0' : '127.0.0.1';
    if (!options.allowAnonymous) {
      options.logger.warn({ host }, 'no credentials are configured: accepting anonymous clients from loopback only (--allow-anonymous opens the listeners to the network)');
    }
    let mqtt: MqttIngest;
    try {
      mqtt = await MqttIngest.start({ log, logger: options.logger, port: options.mqttPort, host });
    } catch (error) {
      await log.close();
      throw error;
    }
    options.logger.info({ dataDir: dir, topics: log.listTopics().length, mqttPort: mqtt.port }, 'edgelog gateway started');
    return new Gateway(log, mqtt, options.logger);
  }

  /** Stops the listeners, waits for in-flight appends, then closes the log. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.mqtt.close();
      await this.log.close();
      this.logger.info('edgelog gateway stopped');
    })();
    return this.closing;
  }
}
