import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { MqttIngest } from './ingest/mqtt-ingest.js';
import type { GatewayConfig } from './config.js';
import { CommitLog } from './log/commit-log.js';

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

  /** Starts the gateway from a validated config (see loadConfig). */
  static async start(config: Readonly<GatewayConfig>, logger: Logger): Promise<Gateway> {
    const dir = resolve(config.dataDir);
    const log = await CommitLog.open({ ...config.log, dir, logger });
    // Like Mosquitto 2: with no credentials configured, anonymous clients are accepted from
    // loopback only; allowAnonymous opens the listeners to the network.
    const host = config.allowAnonymous ? '0.0.0.0' : '127.0.0.1';
    if (!config.allowAnonymous) {
      logger.warn({ host }, 'no credentials are configured: accepting anonymous clients from loopback only (--allow-anonymous opens the listeners to the network)');
    }
    let mqtt: MqttIngest;
    try {
      mqtt = await MqttIngest.start({ log, logger, port: config.mqtt.port, host });
    } catch (error) {
      await log.close();
      throw error;
    }
    logger.info({ dataDir: dir, topics: log.listTopics().length, mqttPort: mqtt.port }, 'edgelog gateway started');
    return new Gateway(log, mqtt, logger);
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
