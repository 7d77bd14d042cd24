import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { validate as validateCron } from 'node-cron';
import { parse as parseYaml } from 'yaml';
import { EdgelogError } from './errors.js';
import {
  DEFAULT_MIN_FREE_DISK_BYTES,
  MAX_COMMIT_INTERVAL_MS,
  DEFAULT_RETENTION_SCHEDULE,
  DISK_PRESSURE_POLICIES,
  type DiskPressurePolicy,
} from './log/commit-log.js';
import { DEFAULT_TOPIC_RULES, topicRuleError, type TopicRule } from './ingest/topic-mapping.js';
import { DEFAULT_TOPIC_CONFIG, MAX_MESSAGE_BYTES_LIMIT, MAX_PARTITIONS, type TopicConfig } from './log/topic-config.js';
import { parseConnectors, type ConnectorConfig } from './streams/connectors/config.js';
import { parseStreamsConfig, type StreamProcessorConfig } from './streams/config.js';
import { parseBridges, type BridgeConfig } from '../bridges/config.js';

/**
 * The gateway's configuration, read and validated in one place (STYLE.md §6) and then passed down
 * frozen. Precedence, lowest first: embedded defaults, the config file, EDGELOG_* environment
 * variables, command-line flags. config/edgelog.yaml ships the defaults spelled out.
 */
export interface GatewayConfig {
  /** This gateway's name upstream: every replicated record carries it. Default: the host name. */
  gatewayId: string;
  /** Where the commit log lives. */
  dataDir: string;
  /** Accept anonymous clients from the network too (like Mosquitto 2's allow_anonymous); otherwise loopback only. */
  allowAnonymous: boolean;
  mqtt: {
    /** MQTT 3.1.1 over TCP; 0 picks a free port. */
    port: number;
  };
  http: {
    /** The one HTTP port: MQTT over WebSocket at /mqtt, WebSocket ingest at /ingest, /consume, /produce, /api, /metrics, the dashboard; 0 picks a free port. */
    port: number;
  };
  admin: {
    /**
     * The admin token: when set, /api, /metrics, /consume, /produce and the dashboard's data need
     * it (Authorization: Bearer TOKEN) from every address; when empty they answer loopback only.
     */
    token: string;
  };
  /** MQTT over TLS and HTTPS/WSS, on when certFile and keyFile are set. */
  tls: {
    /** PEM server certificate (chain); '' turns TLS off. */
    certFile: string;
    /** PEM private key of certFile. */
    keyFile: string;
    /** PEM CA bundle: clients presenting a certificate it signed authenticate as the device named by the certificate's CN. '' accepts no client certificates. */
    caFile: string;
    /** MQTT over TLS; 0 picks a free port. */
    mqttPort: number;
    /** HTTPS: /mqtt and /ingest over WSS; 0 picks a free port. */
    httpsPort: number;
  };
  devices: {
    /** The device registry (YAML, see devices/README.md); with one, clients must authenticate unless allowAnonymous. '' for none. */
    registryFile: string;
    /** Folder of device profiles (*.json); '' for the shipped devices/profiles. */
    profilesDir: string;
    /** A device silent this long is shown as quiet (dashboard, /api/devices, metrics). */
    quietAfterMs: number;
  };
  ingest: {
    /** Bytes of readings taken off sockets and not yet committed; past it the gateway stops reading sockets (TCP backpressure). */
    maxPendingBytes: number;
    /** Readings per second one connection may send; past it the gateway reads its socket more slowly. 0 for no limit. */
    maxReadingsPerSecond: number;
    /** Readings a connection may send at once above its rate before it is slowed. */
    burstReadings: number;
    /** MQTT topic → log topic and key, first match wins (src/ingest/topic-mapping.ts). */
    topicRules: TopicRule[];
  };
  log: {
    /** Capacity of the log in stored bytes; -1 lets the disk be the limit. */
    maxLogBytes: number;
    /** Free disk space kept in reserve: appends stop (LogFullError) below it. */
    minFreeDiskBytes: number;
    /** When retention runs (node-cron expression). */
    retentionSchedule: string;
    /** 'keep' records bridges have not replicated even when the log fills (appends are refused), or 'drop-oldest' of them past their retention under disk pressure (counted and logged). */
    diskPressurePolicy: DiskPressurePolicy;
    /** The least time between two group commits (fsyncs); 0 commits at once. Trades ack latency for fewer fsyncs on SD cards. */
    commitIntervalMs: number;
    /** Settings of topics created on first use. */
    topicDefaults: TopicConfig;
  };
  /** File connectors (file-source, file-sink), validated by src/streams/connectors/config.ts; see docs/connectors.md. */
  connectors: ConnectorConfig[];
  /** Stream processors (filter, map, window, alert), validated by src/streams/config.ts; see docs/streams.md. */
  streams: readonly StreamProcessorConfig[];
  /** Upstream bridges (MQTT, NATS JetStream), validated by bridges/config.ts; see docs/bridges.md. */
  bridges: readonly BridgeConfig[];
}

/** Long enough not to be guessed, and only characters that travel in an HTTP header and a WebSocket subprotocol unchanged. */
const ADMIN_TOKEN = /^[A-Za-z0-9._~+/=-]{16,256}$/;
const ADMIN_TOKEN_RULE = '16 to 256 of a-z A-Z 0-9 . _ ~ + / = -';

/** Host names may hold characters that upstream topic levels and subject tokens do not take well. */
const GATEWAY_ID = /^[A-Za-z0-9._-]{1,64}$/;

export const DEFAULT_CONFIG: Readonly<GatewayConfig> = deepFreeze({
  gatewayId: hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64) || 'edgelog',
  dataDir: './data',
  allowAnonymous: false,
  mqtt: { port: 1883 },
  http: { port: 8080 },
  admin: { token: '' },
  tls: { certFile: '', keyFile: '', caFile: '', mqttPort: 8883, httpsPort: 8443 },
  devices: { registryFile: '', profilesDir: '', quietAfterMs: 60_000 },
  ingest: {
    // A quarter of the log's own bound (DEFAULT_MAX_PENDING_BYTES): sockets are paused well
    // before the log would refuse appends with LOG_OVERLOADED.
    maxPendingBytes: 16 * 1024 * 1024,
    maxReadingsPerSecond: 0,
    burstReadings: 1000,
    topicRules: DEFAULT_TOPIC_RULES.map((rule) => ({ ...rule })),
  },
  log: {
    maxLogBytes: -1,
    minFreeDiskBytes: DEFAULT_MIN_FREE_DISK_BYTES,
    retentionSchedule: DEFAULT_RETENTION_SCHEDULE,
    diskPressurePolicy: 'keep',
    commitIntervalMs: 0,
    topicDefaults: { ...DEFAULT_TOPIC_CONFIG },
  },
  connectors: [],
  streams: [],
  bridges: [],
});

/** Topic rules are matched in turn for every publish: a bound on that work. */
const MAX_TOPIC_RULES = 32;

/** Environment variables that override config keys. */
export const ENV_KEYS: Readonly<Record<string, string>> = {
  EDGELOG_GATEWAY_ID: 'gatewayId',
  EDGELOG_DATA_DIR: 'dataDir',
  EDGELOG_ALLOW_ANONYMOUS: 'allowAnonymous',
  EDGELOG_MQTT_PORT: 'mqtt.port',
  EDGELOG_HTTP_PORT: 'http.port',
  EDGELOG_DEVICE_REGISTRY: 'devices.registryFile',
  EDGELOG_ADMIN_TOKEN: 'admin.token',
};

export interface ConfigSources {
  /** A YAML (or JSON) config file. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, by config key path (`mqtt.port`). */
  flags?: Record<string, string | boolean | undefined>;
}

/** Builds the gateway's configuration; throws INVALID_CONFIG naming the key, the source and what is allowed. */
export function loadConfig(sources: ConfigSources = {}): Readonly<GatewayConfig> {
  const config = structuredClone(DEFAULT_CONFIG) as GatewayConfig;
  if (sources.file !== undefined) {
    const fromFile = readConfigFile(sources.file);
    mergeInto(config as unknown as Tree, fromFile, '', `config file ${sources.file}`);
  }
  for (const [name, path] of Object.entries(ENV_KEYS)) {
    const value = sources.env?.[name];
    if (value !== undefined && value !== '') setPath(config as unknown as Tree, path, coerce(config, path, value, `environment variable ${name}`), `environment variable ${name}`);
  }
  for (const [path, value] of Object.entries(sources.flags ?? {})) {
    if (value !== undefined) setPath(config as unknown as Tree, path, coerce(config, path, value, `flag --${flagName(path)}`), `flag --${flagName(path)}`);
  }
  validate(config);
  return deepFreeze(config);
}

type Tree = Record<string, unknown>;

function readConfigFile(file: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new EdgelogError('INVALID_CONFIG', `cannot read config file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new EdgelogError('INVALID_CONFIG', `config file ${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new EdgelogError('INVALID_CONFIG', `config file ${file} must hold a mapping of keys, got ${Array.isArray(parsed) ? 'a list' : typeof parsed}`);
  return parsed as Tree;
}

/** Copies `from` onto `into`, refusing keys the defaults do not have and values of another type. */
function mergeInto(into: Tree, from: Tree, prefix: string, source: string): void {
  for (const [key, value] of Object.entries(from)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (!(key in into)) {
      throw new EdgelogError('INVALID_CONFIG', `unknown config key '${path}' in ${source}: allowed here are ${Object.keys(into).map((k) => (prefix ? `${prefix}.${k}` : k)).join(', ')}`);
    }
    const current = into[key];
    if (isTree(current)) {
      if (!isTree(value)) throw new EdgelogError('INVALID_CONFIG', `config key '${path}' in ${source} must be a mapping with keys ${Object.keys(current).join(', ')}`);
      mergeInto(current, value, path, source);
    } else {
      if (typeof value !== typeof current) throw new EdgelogError('INVALID_CONFIG', `config key '${path}' in ${source} must be a ${typeof current}, got ${describeValue(value)}`);
      into[key] = value;
    }
  }
}

function setPath(config: Tree, path: string, value: unknown, source: string): void {
  const keys = path.split('.');
  let node = config;
  for (const k of keys.slice(0, -1)) node = node[k] as Tree;
  const last = keys[keys.length - 1]!;
  if (!(last in node)) throw new EdgelogError('INVALID_CONFIG', `${source} sets unknown config key '${path}'`);
  node[last] = value;
}

/** Turns a string from the environment or a flag into the type the key has. */
function coerce(config: GatewayConfig, path: string, value: string | boolean, source: string): unknown {
  const current = path.split('.').reduce<unknown>((node, k) => (node as Tree)[k], config);
  if (typeof current === 'number') {
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
    if (!Number.isFinite(n)) throw new EdgelogError('INVALID_CONFIG', `${source} must be a number for '${path}', got ${describeValue(value)}`);
    return n;
  }
  if (typeof current === 'boolean') {
    if (typeof value === 'boolean') return value;
    if (/^(true|1|yes)$/i.test(value)) return true;
    if (/^(false|0|no)$/i.test(value)) return false;
    throw new EdgelogError('INVALID_CONFIG', `${source} must be true or false for '${path}', got ${describeValue(value)}`);
  }
  return value;
}

function validate(c: GatewayConfig): void {
  const int = (path: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new EdgelogError('INVALID_CONFIG', `config key '${path}' must be an integer from ${min} to ${max}, got ${v}`);
  };
  if (!GATEWAY_ID.test(c.gatewayId)) throw new EdgelogError('INVALID_CONFIG', `config key 'gatewayId' must be 1 to 64 of a-z A-Z 0-9 . _ - (it names this gateway in every replicated record), got ${describeValue(c.gatewayId)}`);
  if (c.dataDir.trim() === '') throw new EdgelogError('INVALID_CONFIG', `config key 'dataDir' must name a folder, got an empty string`);
  int('mqtt.port', c.mqtt.port, 0, 65535);
  int('http.port', c.http.port, 0, 65535);
  int('tls.mqttPort', c.tls.mqttPort, 0, 65535);
  int('tls.httpsPort', c.tls.httpsPort, 0, 65535);
  if ((c.tls.certFile === '') !== (c.tls.keyFile === '')) {
    throw new EdgelogError('INVALID_CONFIG', `config keys 'tls.certFile' and 'tls.keyFile' go together: set both to turn TLS on, or neither`);
  }
  if (c.tls.caFile !== '' && c.tls.certFile === '') {
    throw new EdgelogError('INVALID_CONFIG', `config key 'tls.caFile' needs 'tls.certFile' and 'tls.keyFile': client certificates are only asked for on the TLS listeners`);
  }
  int('ingest.maxPendingBytes', c.ingest.maxPendingBytes, 64 * 1024, Number.MAX_SAFE_INTEGER);
  int('ingest.maxReadingsPerSecond', c.ingest.maxReadingsPerSecond, 0, 1_000_000);
  int('ingest.burstReadings', c.ingest.burstReadings, 1, 1_000_000);
  const rules: unknown = c.ingest.topicRules;
  if (!Array.isArray(rules) || rules.length === 0 || rules.length > MAX_TOPIC_RULES) {
    throw new EdgelogError('INVALID_CONFIG', `config key 'ingest.topicRules' must be a list of 1 to ${MAX_TOPIC_RULES} rules {match, topic, key}, got ${describeValue(rules)}`);
  }
  rules.forEach((rule, i) => {
    const error = topicRuleError(rule);
    if (error !== undefined) throw new EdgelogError('INVALID_CONFIG', `config key 'ingest.topicRules[${i}]': ${error}`);
  });
  int('log.maxLogBytes', c.log.maxLogBytes, -1, Number.MAX_SAFE_INTEGER);
  int('log.minFreeDiskBytes', c.log.minFreeDiskBytes, 0, Number.MAX_SAFE_INTEGER);
  int('log.commitIntervalMs', c.log.commitIntervalMs, 0, MAX_COMMIT_INTERVAL_MS);
  int('devices.quietAfterMs', c.devices.quietAfterMs, 1000, 7 * 24 * 3600 * 1000);
  if (c.admin.token !== '' && !ADMIN_TOKEN.test(c.admin.token)) {
    // The token is never echoed: the message names the rule, not the value.
    throw new EdgelogError('INVALID_CONFIG', `config key 'admin.token' must be ${ADMIN_TOKEN_RULE} (for example from: openssl rand -hex 24), or empty for loopback-only access`);
  }
  if (!validateCron(c.log.retentionSchedule)) {
    throw new EdgelogError('INVALID_CONFIG', `config key 'log.retentionSchedule' must be a cron expression (seconds field allowed, e.g. '*/30 * * * * *'), got ${describeValue(c.log.retentionSchedule)}`);
  }
  const t = c.log.topicDefaults;
  int('log.topicDefaults.partitions', t.partitions, 1, MAX_PARTITIONS);
  int('log.topicDefaults.retentionMs', t.retentionMs, -1, Number.MAX_SAFE_INTEGER);
  int('log.topicDefaults.retentionBytes', t.retentionBytes, -1, Number.MAX_SAFE_INTEGER);
  int('log.topicDefaults.maxMessageBytes', t.maxMessageBytes, 64, MAX_MESSAGE_BYTES_LIMIT);
  c.connectors = parseConnectors(c.connectors);
  if (!DISK_PRESSURE_POLICIES.includes(c.log.diskPressurePolicy)) {
    throw new EdgelogError('INVALID_CONFIG', `config key 'log.diskPressurePolicy' must be one of ${DISK_PRESSURE_POLICIES.join(', ')}, got ${describeValue(c.log.diskPressurePolicy)}`);
  }
  c.streams = parseStreamsConfig(c.streams);
  c.bridges = parseBridges(c.bridges, c.gatewayId);
}

function flagName(path: string): string {
  return { dataDir: 'data-dir', allowAnonymous: 'allow-anonymous', 'mqtt.port': 'mqtt-port', 'http.port': 'http-port' }[path] ?? path;
}

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'a mapping' : String(v);
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
