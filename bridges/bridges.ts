import type { Logger } from 'pino';
import type { CommitLog } from '../src/index.js';
import { Bridge, type BridgeStatus } from './bridge.js';
import type { BridgeConfig } from './config.js';
import { MqttUpstream } from './mqtt/mqtt-upstream.js';
import { NatsUpstream } from './nats/nats-upstream.js';
import type { Upstream } from './upstream.js';

export interface BridgesOptions {
  log: CommitLog;
  bridges: readonly BridgeConfig[];
  logger: Logger;
  /** Delivers a command from an MQTT bridge's upstream to local devices (the gateway's embedded broker). */
  onCommand?: (localTopic: string, payload: Buffer) => Promise<void>;
}

/** Status of one bridge, with its command downlink counters when it has one. */
export type BridgeReport = BridgeStatus & { commands?: { delivered: number; refused: number } };

/**
 * The gateway's bridges (config `bridges:`): builds each one's upstream, starts them, answers
 * status and `ack: upstream` questions across them, and closes them.
 */
export class Bridges {
  private constructor(private readonly entries: ReadonlyArray<{ bridge: Bridge; upstream: Upstream }>) {}

  /**
   * Builds and starts every bridge. Call it right after the log opens: each bridge holds retention
   * for its topics from its constructor on. Throws INVALID_CONFIG when an upstream's settings
   * cannot work (a TLS file that cannot be read, contradicting fields).
   */
  static start(opts: BridgesOptions): Bridges {
    const entries = opts.bridges.map((config) => {
      const upstream = createUpstream(config, opts);
      const bridge = new Bridge({ log: opts.log, settings: config.settings, upstream, logger: opts.logger });
      return { bridge, upstream };
    });
    for (const { bridge } of entries) bridge.start();
    return new Bridges(entries);
  }

  get size(): number {
    return this.entries.length;
  }

  status(): BridgeReport[] {
    return this.entries.map(({ bridge, upstream }) => {
      const status: BridgeReport = bridge.status();
      if (upstream instanceof MqttUpstream) status.commands = { delivered: upstream.commandsDelivered, refused: upstream.commandsRefused };
      return status;
    });
  }

  /** Whether a topic's PUBACKs wait for an upstream ack on some bridge. */
  acksUpstream(topic: string): boolean {
    return this.entries.some(({ bridge }) => bridge.acksUpstream(topic));
  }

  /**
   * Resolves once every bridge with `ack: upstream` for the topic has the record upstream (true),
   * or as soon as one cannot say so (link down, timeout: false, and the caller acks locally).
   */
  async waitReplicated(topic: string, partition: number, offset: number): Promise<boolean> {
    const waits = this.entries.filter(({ bridge }) => bridge.acksUpstream(topic)).map(({ bridge }) => bridge.waitReplicated(topic, partition, offset));
    return (await Promise.all(waits)).every(Boolean);
  }

  /** Closes every bridge: each commits its acknowledged positions and disconnects. Idempotent. */
  async close(): Promise<void> {
    await Promise.all(this.entries.map(({ bridge }) => bridge.close()));
  }
}

function createUpstream(config: BridgeConfig, opts: BridgesOptions): Upstream {
  const logger = opts.logger.child({ bridge: config.settings.name });
  const { gatewayId, batch } = config.settings;
  if (config.type === 'mqtt') {
    const m = config.mqtt;
    return new MqttUpstream({
      ...definedOnly({ ...m, commands: undefined }),
      url: m.url,
      protocolVersion: m.protocolVersion,
      clientId: m.clientId,
      gatewayId,
      batch,
      commands: m.commands,
      ...(opts.onCommand ? { onCommand: opts.onCommand } : {}),
      logger,
    });
  }
  const n = config.nats;
  return new NatsUpstream({ ...definedOnly(n), servers: n.servers, stream: n.stream, gatewayId, batch, logger });
}

/** The options that are set: the upstreams fill their own defaults for the rest. */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
