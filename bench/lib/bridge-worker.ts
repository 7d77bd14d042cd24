/**
 * The bridge side of the bridge benchmark (forked by bench/lib/bridge-process.ts, never run by
 * hand): opens the filled log, runs one Bridge with settings from bridges/config.ts (every default
 * but the ones the row names) and answers the coordinator. Nothing else runs in this process, so
 * its CPU is the bridge's: log reads, encoding, the upstream client.
 */
import { pino } from 'pino';
import { Bridge } from '../../bridges/bridge.js';
import { parseBridges, type BridgeConfig } from '../../bridges/config.js';
import { MqttUpstream } from '../../bridges/mqtt/mqtt-upstream.js';
import { NatsUpstream } from '../../bridges/nats/nats-upstream.js';
import type { Upstream } from '../../bridges/upstream.js';
import { CommitLog } from '../../src/index.js';
import type { BridgeCounters, BridgeSpec, FromBridgeWorker, ToBridgeWorker } from './bridge-process.js';

/** How often the worker looks for the bridge's first refused connect. */
const READY_POLL_MS = 20;
/** The first connect to a refusing proxy fails at once; this covers a bridge that never tries. */
const READY_TIMEOUT_MS = 30_000;

// Warnings only (a refused connect, a dropped link): one line each, to stderr, which the coordinator keeps.
const logger = pino({ level: 'warn', base: { component: 'bench-bridge-worker' } }, pino.destination(2));

let log: CommitLog | undefined;
let bridge: Bridge | undefined;

function send(message: FromBridgeWorker, then?: () => void): void {
  process.send?.(message, undefined, {}, () => then?.());
}

function counters(b: Bridge): BridgeCounters {
  const s = b.status();
  return {
    state: s.state,
    backlogRecords: s.backlogRecords,
    sentRecords: s.counters.sentRecords,
    ackedRecords: s.counters.ackedRecords,
    resentRecords: s.counters.resentRecords,
    duplicateRecords: s.counters.duplicateRecords,
    reconnects: s.counters.reconnects,
    errors: s.counters.errors,
    lastError: s.lastError === null ? null : `${s.lastError.code}: ${s.lastError.message}`,
  };
}

/** The row's bridge as the gateway's config would declare it, validated and defaulted by parseBridges. */
function configFor(spec: BridgeSpec): BridgeConfig {
  const common = { name: spec.name, topics: [spec.topic], ...(spec.batch === null ? {} : { batch: spec.batch }) };
  const raw =
    spec.kind === 'mqtt'
      ? { ...common, type: 'mqtt', mqtt: { url: spec.url } }
      : { ...common, type: 'nats', nats: { servers: [spec.url], stream: { name: spec.stream, create: true } } };
  const [config] = parseBridges([raw], spec.gatewayId);
  if (config === undefined) throw new Error('edgelog invariant violated: parseBridges returned no bridge');
  return config;
}

/** The upstream as bridges/bridges.ts builds it from the same config. */
function upstreamFor(config: BridgeConfig): Upstream {
  const { gatewayId, batch } = config.settings;
  if (config.type === 'mqtt') {
    const m = config.mqtt;
    return new MqttUpstream({ url: m.url, protocolVersion: m.protocolVersion, clientId: m.clientId, gatewayId, batch, commands: null, logger });
  }
  const n = config.nats;
  return new NatsUpstream({ servers: n.servers, stream: n.stream, gatewayId, batch, logger });
}

async function start(spec: BridgeSpec): Promise<void> {
  log = await CommitLog.open({ dir: spec.dataDir, retentionSchedule: null, logger });
  const logRecords = log.describeTopic(spec.topic).partitions.reduce((sum, p) => sum + p.records, 0);
  const config = configFor(spec);
  bridge = new Bridge({ log, settings: config.settings, upstream: upstreamFor(config), logger });
  bridge.start();
  const deadline = Date.now() + READY_TIMEOUT_MS;
  // Bounded by the deadline: the link is down, so the first connect fails at once.
  while (bridge.status().counters.errors === 0) {
    if (Date.now() > deadline) throw new Error(`the bridge made no connect attempt within ${READY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
  }
  const now = counters(bridge);
  if (now.state === 'connected') throw new Error('the bridge connected while the link was meant to be down');
  send({ type: 'ready', logRecords, counters: now });
}

async function stop(): Promise<void> {
  if (bridge === undefined || log === undefined) throw new Error('stop before start');
  // Taken before close(): close() counts what is still in flight as resent (it rewinds the window).
  const final = counters(bridge);
  await bridge.close();
  await log.close();
  send({ type: 'stopped', counters: final }, () => process.exit(0));
}

process.on('message', (message: ToBridgeWorker) => {
  const work = message.type === 'start' ? start(message.spec) : stop();
  work.catch((error: unknown) => send({ type: 'failed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }));
});
// A worker whose coordinator vanished must not linger with the log open.
process.on('disconnect', () => process.exit(1));
