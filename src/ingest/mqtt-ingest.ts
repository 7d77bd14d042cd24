import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import type { Logger } from 'pino';
import { EdgelogError } from '../errors.js';
import type { CommitLog } from '../log/commit-log.js';
import { mapDefaultTopic } from './topic-mapping.js';

export interface MqttIngestOptions {
  log: CommitLog;
  logger: Logger;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Address to listen on: 127.0.0.1 unless anonymous clients are allowed from the network. */
  host: string;
}

/**
 * MQTT 3.1.1 ingest through an embedded aedes broker. The append happens in `authorizePublish`:
 * aedes writes a QoS 1 PUBACK only after that hook calls back (its `published` hook runs after
 * the PUBACK, see aedes lib/handlers/publish.js), so a PUBACK means the reading is durable.
 */
export class MqttIngest {
  private readonly creating = new Map<string, Promise<unknown>>();
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly opts: MqttIngestOptions,
    private readonly broker: Aedes,
    private readonly server: Server,
    private readonly logger: Logger,
  ) {}

  static async start(opts: MqttIngestOptions): Promise<MqttIngest> {
    const logger = opts.logger.child({ component: 'mqtt' });
    let ingest: MqttIngest | undefined;
    const broker = await Aedes.createBroker({
      authorizePublish: (client, packet, done) => {
        if (!ingest) return done(new Error('gateway is starting'));
        ingest.ingest(client, packet).then(() => done(null), (error: unknown) => done(error as Error));
      },
    });
    const server = createServer(broker.handle);
    try {
      server.listen(opts.port, opts.host);
      await once(server, 'listening');
    } catch (error) {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'EADDRINUSE' ? 'the port is in use by another program' : code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : String(error);
      throw new EdgelogError('LISTEN_FAILED', `cannot listen for MQTT on ${opts.host}:${opts.port}: ${why}; choose another with --mqtt-port (0 picks a free port)`, { cause: error });
    }
    ingest = new MqttIngest(opts, broker, server, logger);
    logger.info({ host: opts.host, port: ingest.port }, 'MQTT listening');
    return ingest;
  }

  /** The port the MQTT listener is bound to. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private async ingest(client: Client | null, packet: PublishPacket): Promise<void> {
    const mapped = mapDefaultTopic(packet.topic);
    if (typeof mapped === 'string') {
      // MQTT 3.1.1 has no reason code on PUBACK: refusing closes the connection, and the warning says why.
      this.logger.warn({ clientId: client?.id, reason: mapped }, 'publish refused');
      throw new EdgelogError('INVALID_ARGUMENT', mapped);
    }
    await this.ensureTopic(mapped.topic);
    await this.opts.log.append(mapped.topic, [
      {
        key: mapped.key,
        value: packet.payload as Buffer,
        headers: { 'mqtt-topic': packet.topic, 'device-id': mapped.deviceId, 'received-at': String(Date.now()) },
      },
    ]);
  }

  /** Creates a log topic on first use; concurrent first publishes share one creation. */
  private async ensureTopic(topic: string): Promise<void> {
    if (this.opts.log.hasTopic(topic)) return;
    let pending = this.creating.get(topic);
    if (!pending) {
      pending = this.opts.log.createTopic(topic).catch((error: unknown) => {
        if (!(error instanceof EdgelogError && error.code === 'TOPIC_EXISTS')) throw error;
      });
      this.creating.set(topic, pending);
      void pending.finally(() => this.creating.delete(topic)).catch(() => {});
    }
    await pending;
  }

  /** Stops accepting connections and closes the broker (its clients are disconnected). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await new Promise<void>((resolve) => this.broker.close(() => resolve()));
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
    })();
    return this.closing;
  }
}
