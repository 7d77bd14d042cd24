import { validate as validateCron } from 'node-cron';
import { EdgelogError } from '../src/index.js';
import type { BridgeTopicRule } from './bridge-rules.js';
import { BRIDGE_GROUP_PREFIX, type BridgeSettings } from './bridge.js';
import { parseTemplate, type Template } from './template.js';

/**
 * The `bridges:` section of the gateway config (docs/bridges.md): each entry names a bridge, the
 * topics it replicates and its upstream. Parsed and checked here once; src/config.ts calls
 * {@link parseBridges}. Every refusal names the key path, what was wrong and what is allowed.
 */

export interface MqttBridgeConfig {
  readonly type: 'mqtt';
  readonly settings: BridgeSettings;
  readonly mqtt: {
    readonly url: string;
    readonly protocolVersion: 4 | 5;
    readonly clientId: string;
    readonly topic: Template | undefined;
    readonly username: string | undefined;
    readonly password: string | undefined;
    readonly tls: Tls | undefined;
    readonly keepaliveSec: number | undefined;
    readonly connectTimeoutMs: number | undefined;
    readonly ackTimeoutMs: number | undefined;
    readonly commands: { readonly topic?: string; readonly allow?: readonly string[] } | null;
  };
}

export interface NatsBridgeConfig {
  readonly type: 'nats';
  readonly settings: BridgeSettings;
  readonly nats: {
    readonly servers: string[];
    readonly subject: Template | undefined;
    readonly stream: { name: string; create: boolean; subjects: string[]; replicas: number; duplicateWindowMs: number } | null;
    readonly user: string | undefined;
    readonly pass: string | undefined;
    readonly token: string | undefined;
    readonly tls: Tls | undefined;
    readonly ackTimeoutMs: number | undefined;
    readonly connectTimeoutMs: number | undefined;
  };
}

export type BridgeConfig = MqttBridgeConfig | NatsBridgeConfig;

interface Tls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** Bridges in one gateway: each holds a connection, a window of messages and a retention hold. */
export const MAX_BRIDGES = 8;
export const MAX_TOPIC_RULES = 32;
export const DEFAULT_MAX_IN_FLIGHT = 1000;
/** Messages in flight are held in memory until acked: 8 MiB bounds a bridge's share. */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;
/** A crash resends at most this much of acknowledged data (JetStream drops it as duplicates). */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 1000;
export const DEFAULT_RECONNECT = { initialDelayMs: 500, maxDelayMs: 30_000 } as const;
/** How long a device's PUBACK waits for the upstream under `ack: upstream` before the local ack. */
export const DEFAULT_UPSTREAM_ACK_TIMEOUT_MS = 5000;
/** JetStream's own default duplicate window. */
export const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;
const MAX_BATCH_RECORDS = 10_000;
const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const PATTERN = /^[A-Za-z0-9._*-]{1,249}$/;

type Tree = Record<string, unknown>;

function refuse(path: string, message: string): never {
  throw new EdgelogError('INVALID_CONFIG', `config key '${path}' ${message}`);
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (Array.isArray(v)) return 'a list';
  if (v === null || v === undefined) return String(v);
  return typeof v === 'object' ? 'a mapping' : String(v);
}

function mapping(path: string, v: unknown, allowed: readonly string[]): Tree {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse(path, `must be a mapping with keys ${allowed.join(', ')}, got ${show(v)}`);
  for (const k of Object.keys(v)) if (!allowed.includes(k)) refuse(`${path}.${k}`, `is not known: allowed in ${path} are ${allowed.join(', ')}`);
  return v as Tree;
}

function integer(path: string, v: unknown, min: number, max: number, fallback: number): number;
function integer(path: string, v: unknown, min: number, max: number, fallback: undefined): number | undefined;
function integer(path: string, v: unknown, min: number, max: number, fallback: number | undefined): number | undefined {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) refuse(path, `must be an integer from ${min} to ${max}, got ${show(v)}`);
  return v;
}

function text(path: string, v: unknown, what: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') refuse(path, `must be ${what}, got ${show(v)}`);
  return v;
}

function template(path: string, v: unknown): Template | undefined {
  const t = text(path, v, 'a template string');
  if (t === undefined) return undefined;
  try {
    return parseTemplate(t);
  } catch (error) {
    return refuse(path, `is not a valid template: ${(error as Error).message}`);
  }
}

function tls(path: string, v: unknown): Tls | undefined {
  if (v === undefined || v === null) return undefined;
  const node = mapping(path, v, ['caFile', 'certFile', 'keyFile']);
  const out: Tls = {};
  for (const k of ['caFile', 'certFile', 'keyFile'] as const) {
    const f = text(`${path}.${k}`, node[k], 'the path of a PEM file');
    if (f !== undefined) out[k] = f;
  }
  if ((out.certFile === undefined) !== (out.keyFile === undefined)) refuse(path, 'needs certFile and keyFile together (a client certificate and its key), or neither');
  return out;
}

/** Validates `bridges:` and fills every default. `gatewayId` is the gateway's own (config key gatewayId). */
export function parseBridges(raw: unknown, gatewayId: string, path = 'bridges'): BridgeConfig[] {
  if (raw === null || raw === undefined) return [];
  if (!Array.isArray(raw) || raw.length > MAX_BRIDGES) refuse(path, `must be a list of at most ${MAX_BRIDGES} bridges { name, type, topics, mqtt | nats }, got ${show(raw)}`);
  const names = new Set<string>();
  return raw.map((entry, i) => {
    const bridge = parseBridge(`${path}[${i}]`, entry, gatewayId);
    if (names.has(bridge.settings.name)) refuse(`${path}[${i}].name`, `repeats ${show(bridge.settings.name)}: names must be unique (each is the checkpoint group '${BRIDGE_GROUP_PREFIX}<name>')`);
    names.add(bridge.settings.name);
    return bridge;
  });
}

const COMMON_KEYS = ['name', 'type', 'topics', 'maxInFlight', 'maxInFlightBytes', 'batch', 'bandwidthBytesPerSecond', 'checkpointIntervalMs', 'reconnect', 'upstreamAckTimeoutMs'];

function parseBridge(path: string, raw: unknown, gatewayId: string): BridgeConfig {
  const node = mapping(path, raw, [...COMMON_KEYS, 'mqtt', 'nats']);
  const name = node['name'];
  if (typeof name !== 'string' || !NAME.test(name)) refuse(`${path}.name`, `must be 1 to 64 of a-z A-Z 0-9 . _ - (it names the checkpoint group '${BRIDGE_GROUP_PREFIX}<name>'), got ${show(name)}`);
  const type = node['type'];
  if (type !== 'mqtt' && type !== 'nats') refuse(`${path}.type`, `must be 'mqtt' or 'nats', got ${show(type)}`);
  const other = type === 'mqtt' ? 'nats' : 'mqtt';
  if (node[other] !== undefined) refuse(`${path}.${other}`, `does not go with type '${type}': use ${path}.${type}`);
  const settings = parseSettings(path, node, name, gatewayId);
  if (type === 'mqtt') return { type, settings, mqtt: parseMqtt(`${path}.mqtt`, node['mqtt'], name, gatewayId, settings) };
  return { type, settings, nats: parseNats(`${path}.nats`, node['nats']) };
}

function parseSettings(path: string, node: Tree, name: string, gatewayId: string): BridgeSettings {
  const topics = node['topics'];
  if (!Array.isArray(topics) || topics.length === 0 || topics.length > MAX_TOPIC_RULES) {
    refuse(`${path}.topics`, `must be a list of 1 to ${MAX_TOPIC_RULES} topic rules { match, priority?, syncWindow?, ack? } (a name or a pattern like 'climate-*'), got ${show(topics)}`);
  }
  let batch: BridgeSettings['batch'] = null;
  if (node['batch'] !== undefined && node['batch'] !== null) {
    const b = mapping(`${path}.batch`, node['batch'], ['records', 'gzip']);
    const gzip = b['gzip'] ?? false;
    if (typeof gzip !== 'boolean') refuse(`${path}.batch.gzip`, `must be true or false, got ${show(gzip)}`);
    batch = { records: integer(`${path}.batch.records`, b['records'], 2, MAX_BATCH_RECORDS, 100), gzip };
  }
  const reconnect = node['reconnect'] === undefined ? {} : mapping(`${path}.reconnect`, node['reconnect'], ['initialDelayMs', 'maxDelayMs']);
  const initialDelayMs = integer(`${path}.reconnect.initialDelayMs`, reconnect['initialDelayMs'], 10, 600_000, DEFAULT_RECONNECT.initialDelayMs);
  const maxDelayMs = integer(`${path}.reconnect.maxDelayMs`, reconnect['maxDelayMs'], initialDelayMs, 3_600_000, Math.max(initialDelayMs, DEFAULT_RECONNECT.maxDelayMs));
  return Object.freeze({
    name,
    gatewayId,
    topics: topics.map((t, i) => parseRule(`${path}.topics[${i}]`, t)),
    maxInFlight: integer(`${path}.maxInFlight`, node['maxInFlight'], 1, 100_000, DEFAULT_MAX_IN_FLIGHT),
    maxInFlightBytes: integer(`${path}.maxInFlightBytes`, node['maxInFlightBytes'], 64 * 1024, 1024 ** 3, DEFAULT_MAX_IN_FLIGHT_BYTES),
    batch,
    bandwidthBytesPerSecond: integer(`${path}.bandwidthBytesPerSecond`, node['bandwidthBytesPerSecond'], 0, Number.MAX_SAFE_INTEGER, 0),
    checkpointIntervalMs: integer(`${path}.checkpointIntervalMs`, node['checkpointIntervalMs'], 100, 600_000, DEFAULT_CHECKPOINT_INTERVAL_MS),
    reconnect: { initialDelayMs, maxDelayMs },
    upstreamAckTimeoutMs: integer(`${path}.upstreamAckTimeoutMs`, node['upstreamAckTimeoutMs'], 10, 600_000, DEFAULT_UPSTREAM_ACK_TIMEOUT_MS),
  });
}

function parseRule(path: string, raw: unknown): BridgeTopicRule {
  const node = typeof raw === 'string' ? { match: raw } : mapping(path, raw, ['match', 'priority', 'syncWindow', 'ack']);
  const match = node['match'];
  if (typeof match !== 'string' || !PATTERN.test(match)) refuse(`${path}.match`, `must be a topic name or a pattern of a-z A-Z 0-9 . _ - and '*' (any run of characters), got ${show(match)}`);
  const syncWindow = node['syncWindow'] ?? null;
  if (syncWindow !== null && (typeof syncWindow !== 'string' || !validateCron(syncWindow))) {
    refuse(`${path}.syncWindow`, `must be a cron expression naming the minutes the topic may be sent (e.g. '* 1-5 * * *' for 01:00 to 05:59), got ${show(syncWindow)}`);
  }
  const ack = node['ack'] ?? 'local';
  if (ack !== 'local' && ack !== 'upstream') refuse(`${path}.ack`, `must be 'local' (PUBACK after the local fsync) or 'upstream' (PUBACK after the upstream's ack while the link is up), got ${show(ack)}`);
  return { match, priority: integer(`${path}.priority`, node['priority'], -1000, 1000, 0), syncWindow, ack };
}

function parseMqtt(path: string, raw: unknown, name: string, gatewayId: string, settings: BridgeSettings): MqttBridgeConfig['mqtt'] {
  const node = mapping(path, raw, ['url', 'protocolVersion', 'clientId', 'topic', 'username', 'password', 'tls', 'keepaliveSec', 'connectTimeoutMs', 'ackTimeoutMs', 'commands']);
  const url = text(`${path}.url`, node['url'], 'the broker address, mqtt://HOST:PORT or mqtts://HOST:PORT');
  if (url === undefined || !/^mqtts?:\/\/[^/@]+(:\d+)?\/?$/.test(url)) refuse(`${path}.url`, `must be mqtt://HOST:PORT or mqtts://HOST:PORT (credentials go in username and password), got ${show(url)}`);
  const version = node['protocolVersion'] ?? 5;
  if (version !== 4 && version !== 5) refuse(`${path}.protocolVersion`, `must be 5 (MQTT 5) or 4 (MQTT 3.1.1), got ${show(version)}`);
  const topic = template(`${path}.topic`, node['topic']);
  if (topic && settings.batch && topic.some((p) => typeof p !== 'string' && p.field === 'key')) {
    refuse(`${path}.topic`, 'uses {key}, but the bridge batches records of many keys into one message: drop {key} or the batch setting');
  }
  let commands: MqttBridgeConfig['mqtt']['commands'] = null;
  if (node['commands'] !== undefined && node['commands'] !== null) {
    const c = mapping(`${path}.commands`, node['commands'], ['topic', 'allow']);
    const allow = c['allow'];
    if (allow !== undefined && (!Array.isArray(allow) || allow.length === 0 || allow.some((a) => typeof a !== 'string' || a === ''))) {
      refuse(`${path}.commands.allow`, `must be a list of MQTT topic filters the local topic of a command must match (e.g. ['devices/+/commands/#']), got ${show(allow)}`);
    }
    commands = {
      ...(c['topic'] === undefined ? {} : { topic: text(`${path}.commands.topic`, c['topic'], "an upstream topic filter ending in '/#'")! }),
      ...(allow === undefined ? {} : { allow: allow as string[] }),
    };
  }
  return {
    url,
    protocolVersion: version,
    clientId: text(`${path}.clientId`, node['clientId'], 'a client id') ?? `edgelog-${gatewayId}-${name}`,
    topic,
    username: text(`${path}.username`, node['username'], 'a user name'),
    password: text(`${path}.password`, node['password'], 'a password'),
    tls: tls(`${path}.tls`, node['tls']),
    keepaliveSec: integer(`${path}.keepaliveSec`, node['keepaliveSec'], 1, 65_535, undefined),
    connectTimeoutMs: integer(`${path}.connectTimeoutMs`, node['connectTimeoutMs'], 100, 600_000, undefined),
    ackTimeoutMs: integer(`${path}.ackTimeoutMs`, node['ackTimeoutMs'], 100, 600_000, undefined),
    commands,
  };
}

function parseNats(path: string, raw: unknown): NatsBridgeConfig['nats'] {
  const node = mapping(path, raw, ['servers', 'subject', 'stream', 'user', 'pass', 'token', 'tls', 'ackTimeoutMs', 'connectTimeoutMs']);
  const rawServers = typeof node['servers'] === 'string' ? [node['servers']] : node['servers'];
  if (!Array.isArray(rawServers) || rawServers.length === 0 || rawServers.some((s) => typeof s !== 'string' || !/^(nats|tls):\/\/[^/@]+(:\d+)?\/?$/.test(s))) {
    refuse(`${path}.servers`, `must be a server address or a list of them, nats://HOST:PORT or tls://HOST:PORT (credentials go in user/pass or token), got ${show(node['servers'])}`);
  }
  let stream: NatsBridgeConfig['nats']['stream'] = null;
  if (node['stream'] !== undefined && node['stream'] !== null) {
    const s = mapping(`${path}.stream`, node['stream'], ['name', 'create', 'subjects', 'replicas', 'duplicateWindowMs']);
    const streamName = text(`${path}.stream.name`, s['name'], 'a JetStream stream name');
    if (streamName === undefined || !/^[^\s.*>/\\]+$/.test(streamName)) refuse(`${path}.stream.name`, `must be a stream name without spaces, '.', '*', '>', '/' or '\\', got ${show(s['name'])}`);
    const create = s['create'] ?? false;
    if (typeof create !== 'boolean') refuse(`${path}.stream.create`, `must be true (create the stream if missing) or false, got ${show(create)}`);
    const subjects = s['subjects'] ?? ['edgelog.>'];
    if (!Array.isArray(subjects) || subjects.length === 0 || subjects.some((x) => typeof x !== 'string' || x === '')) {
      refuse(`${path}.stream.subjects`, `must be a list of subjects the stream stores (e.g. ['edgelog.>']), got ${show(s['subjects'])}`);
    }
    stream = {
      name: streamName,
      create,
      subjects: subjects as string[],
      replicas: integer(`${path}.stream.replicas`, s['replicas'], 1, 5, 1),
      duplicateWindowMs: integer(`${path}.stream.duplicateWindowMs`, s['duplicateWindowMs'], 1000, 7 * 86_400_000, DEFAULT_DUPLICATE_WINDOW_MS),
    };
  }
  return {
    servers: rawServers as string[],
    subject: template(`${path}.subject`, node['subject']),
    stream,
    user: text(`${path}.user`, node['user'], 'a user name'),
    pass: text(`${path}.pass`, node['pass'], 'a password'),
    token: text(`${path}.token`, node['token'], 'a token'),
    tls: tls(`${path}.tls`, node['tls']),
    ackTimeoutMs: integer(`${path}.ackTimeoutMs`, node['ackTimeoutMs'], 100, 600_000, undefined),
    connectTimeoutMs: integer(`${path}.connectTimeoutMs`, node['connectTimeoutMs'], 100, 600_000, undefined),
  };
}
